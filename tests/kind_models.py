"""Tiny real .tflite models of each kind the runtime accepts or refuses, made with TensorFlow.

Each is an 8x8x3 image model of a few hundred parameters, converted by the real TFLite
converter. The detection model ends in a real ``TFLite_Detection_PostProcess`` op, made the
way TensorFlow's Object Detection API exports SSDs (a function annotated with
``experimental_implements``). Built once per source version and cached outside the repo
(``$XDG_CACHE_HOME/edge-tests``), keyed by this file's hash and the TensorFlow version.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from edge.outputs import atomic_write_bytes
from tests.cache import artefact_cache, artefact_lock

KINDS = ("classifier", "two-output", "embedding", "dense", "single-score", "detection",
         "uint8-raw")
SIZE = 8


def kind_models(tf: Any) -> dict[str, bytes]:
    """Every model of :data:`KINDS` as .tflite bytes (cached)."""
    key = hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()[:16]
    folder = artefact_cache("kind-models") / key
    paths = {kind: folder / f"{kind}.tflite" for kind in KINDS}
    with artefact_lock(folder):
        if not all(p.is_file() for p in paths.values()):
            for kind, content in _build_all(tf).items():
                atomic_write_bytes(paths[kind], content)
    return {kind: p.read_bytes() for kind, p in paths.items()}


def _build_all(tf: Any) -> dict[str, bytes]:
    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers
    image = layers.Input((SIZE, SIZE, 3))
    features = layers.Conv2D(4, 3, strides=2, activation="relu")(image)
    flat = layers.Flatten()(features)
    raw = layers.Input((SIZE, SIZE, 3), dtype="uint8")
    scaled = layers.Rescaling(1 / 255)(raw)
    keras_models = {
        "classifier": tf.keras.Model(image, layers.Dense(3, activation="softmax")(flat)),
        "two-output": tf.keras.Model(image, [layers.Dense(3, activation="softmax")(flat),
                                             layers.Dense(2)(flat)]),
        "embedding": tf.keras.Model(image, layers.GlobalAveragePooling2D()(features)),
        "dense": tf.keras.Model(image, features),
        "single-score": tf.keras.Model(image, layers.Dense(1, activation="sigmoid")(flat)),
        "uint8-raw": tf.keras.Model(raw, layers.Dense(3, activation="softmax")(
            layers.Flatten()(scaled))),
    }
    built = {kind: bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
             for kind, model in keras_models.items()}
    built["detection"] = _detection(tf)
    return built


_POSTPROCESS = " ".join([
    'name: "TFLite_Detection_PostProcess"',
    'attr { key: "max_detections" value { i: 4 } }',
    'attr { key: "max_classes_per_detection" value { i: 1 } }',
    'attr { key: "detections_per_class" value { i: 4 } }',
    'attr { key: "use_regular_nms" value { b: false } }',
    'attr { key: "nms_score_threshold" value { f: 0.1 } }',
    'attr { key: "nms_iou_threshold" value { f: 0.5 } }',
    'attr { key: "num_classes" value { i: 2 } }',
    'attr { key: "y_scale" value { f: 10.0 } }',
    'attr { key: "x_scale" value { f: 10.0 } }',
    'attr { key: "h_scale" value { f: 5.0 } }',
    'attr { key: "w_scale" value { f: 5.0 } }',
])


def _detection(tf: Any) -> bytes:
    @tf.function(experimental_implements=_POSTPROCESS)
    def postprocess(boxes: Any, scores: Any, anchors: Any) -> Any:
        # The converter replaces this body with the op; these are placeholders.
        return (tf.constant(0.0, name="boxes"), tf.constant(0.0, name="classes"),
                tf.constant(0.0, name="scores"), tf.constant(0.0, name="num_detections"))

    class Detector(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(tf.random.stateless_normal([3, 3, 3, 4], seed=(1, 2)))
            self.anchors = tf.constant([[0.5, 0.5, 0.2, 0.2]] * 16)

        @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
        def __call__(self, x: Any) -> Any:
            grid = tf.nn.conv2d(x, self.kernel, 2, "SAME")
            boxes = tf.reshape(grid, [1, 16, 4])
            scores = tf.nn.sigmoid(tf.reshape(grid[..., :3], [1, 16, 3]))
            return postprocess(boxes, scores, self.anchors)

    detector = Detector()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [detector.__call__.get_concrete_function()], detector)
    converter.allow_custom_ops = True
    return bytes(converter.convert())
