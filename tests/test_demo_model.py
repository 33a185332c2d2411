"""The shipped demo model: its accuracy on fresh scenes, TFLite Micro agreement, MCU budget.

Frames are rendered with seeds the training script never used (it uses streams [4, 0..2]) and go
through the runtime's own preprocessing; LiteRT runs in-process and TFLite Micro in one child
process for all images (it aborts the whole process on bad input); the minimal arena is bisected
with one child per probe, since too small an arena can crash it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.demo import labels_path, model_path
from edge.demo.scene import LABELS, DemoScene, render_sample
from edge.model import read_model
from edge.runtime.preprocess import Preprocessor, input_spec

SAMPLES = 500
MIN_ACCURACY = 0.93
SRAM_BYTES = 256 * 1024
FLASH_BYTES = 1024 * 1024
DOC = Path(__file__).resolve().parents[1] / "docs" / "demo_model.md"

# argv: MODEL ARENA [INPUTS.npy OUTPUTS.npy]. Exit 0: the arena is enough (and the inputs ran);
# exit 3: TFLM refused the arena. Too small an arena can also crash TFLM (SIGSEGV), so every
# probe of the bisection gets its own process.
TFLM_CHILD = r"""
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime

try:
    interpreter = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(),
                                                 arena_size=int(sys.argv[2]))
except RuntimeError:
    sys.exit(3)
if len(sys.argv) > 3:
    outputs = []
    for x in np.load(sys.argv[3]):
        interpreter.set_input(x[None], 0)
        interpreter.invoke()
        outputs.append(np.asarray(interpreter.get_output(0)).reshape(-1))
    np.save(sys.argv[4], np.stack(outputs))
"""


def _tflm(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", TFLM_CHILD, *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False)


def minimal_arena(model: Path, high: int = 16 * 1024) -> int:
    """The smallest arena in which TFLite Micro allocates ``model``, by bisection."""
    low = 0
    while _tflm(model, high).returncode != 0:
        low, high = high, high * 2
        assert high < 1 << 26, "TFLite Micro does not allocate the model even with 64 MB"
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _tflm(model, middle).returncode == 0 else (middle, high)
    return high


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return model_path().read_bytes()


@pytest.fixture(scope="module")
def fresh_inputs(model_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """SAMPLES freshly rendered frames through the runtime's preprocessing, and their labels."""
    preprocess = Preprocessor(input_spec(read_model(model_bytes).input_tensors[0]))
    rng = np.random.default_rng([20261125, 9])
    inputs, labels = [], []
    for _ in range(SAMPLES):
        frame, label = render_sample(rng)
        inputs.append(preprocess(frame)[0].copy())
        labels.append(label)
    return np.stack(inputs), np.array(labels)


def _litert_outputs(model: bytes, inputs: np.ndarray, reference: bool = False) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kernels = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_content=model, experimental_op_resolver_type=kernels)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    outputs = []
    for x in inputs:
        interpreter.set_tensor(inp, x[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out)[0].copy())
    return np.stack(outputs)


@pytest.fixture(scope="module")
def litert_outputs(model_bytes: bytes, fresh_inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return _litert_outputs(model_bytes, fresh_inputs[0])


@pytest.fixture(scope="module")
def tflm_run(
    tmp_path_factory: pytest.TempPathFactory, fresh_inputs: tuple[np.ndarray, np.ndarray]
) -> tuple[int, np.ndarray]:
    """(minimal arena, outputs at that arena) from the pip tflite-micro interpreter."""
    pytest.importorskip("tflite_micro",
                        reason="needs tflite-micro (pip install 'edge-labels[mcu]')")
    minimum = minimal_arena(model_path())
    folder = tmp_path_factory.mktemp("tflm")
    np.save(folder / "inputs.npy", fresh_inputs[0])
    done = _tflm(model_path(), minimum, folder / "inputs.npy", folder / "outputs.npy")
    assert done.returncode == 0, done.stderr[-2000:]
    return minimum, np.load(folder / "outputs.npy")


def test_model_is_full_int8_with_pixel_input(model_bytes: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert tuple(inp["shape"]) == (1, 96, 96, 3) and inp["dtype"] == np.int8
    assert tuple(out["shape"]) == (1, len(LABELS)) and out["dtype"] == np.int8
    scale, zero_point = inp["quantization"]
    assert abs(scale - 1.0) < 0.01 and zero_point == -128
    assert {t["dtype"] for t in interpreter.get_tensor_details()} <= {np.int8, np.int32}
    assert labels_path().read_text().splitlines() == list(LABELS)


def test_accuracy_on_freshly_rendered_scenes(
    fresh_inputs: tuple[np.ndarray, np.ndarray], litert_outputs: np.ndarray
) -> None:
    accuracy = float(np.mean(np.argmax(litert_outputs, axis=1) == fresh_inputs[1]))
    assert accuracy >= MIN_ACCURACY, f"top-1 {accuracy:.1%} on {SAMPLES} fresh images"


def test_tflite_micro_is_bit_exact_with_litert_reference_kernels(
    model_bytes: bytes, fresh_inputs: tuple[np.ndarray, np.ndarray],
    tflm_run: tuple[int, np.ndarray],
) -> None:
    reference = _litert_outputs(model_bytes, fresh_inputs[0], reference=True)
    _, tflm_outputs = tflm_run
    assert tflm_outputs.shape == reference.shape
    assert np.array_equal(tflm_outputs, reference)  # hence the same top-1 on every image


def test_tflite_micro_agrees_with_litert_default_kernels(
    fresh_inputs: tuple[np.ndarray, np.ndarray], litert_outputs: np.ndarray,
    tflm_run: tuple[int, np.ndarray],
) -> None:
    # LiteRT's optimized kernels round differently from the reference ones (TFLM's), and the
    # differences add up over 60 layers: near-ties can flip (5 of the 500 images when measured).
    _, tflm_outputs = tflm_run
    same = np.argmax(tflm_outputs, axis=1) == np.argmax(litert_outputs, axis=1)
    assert same.mean() >= 0.98, f"top-1 differs on {int((~same).sum())} of {len(same)} images"
    accuracy = float(np.mean(np.argmax(tflm_outputs, axis=1) == fresh_inputs[1]))
    assert accuracy >= MIN_ACCURACY, f"TFLite Micro top-1 {accuracy:.1%}"


def test_fits_a_256k_sram_1m_flash_microcontroller(tflm_run: tuple[int, np.ndarray]) -> None:
    minimum, _ = tflm_run
    assert minimum <= SRAM_BYTES - 32 * 1024  # room left for stack, buffers and the app
    assert model_path().stat().st_size <= FLASH_BYTES - 256 * 1024  # room for the firmware


def test_documented_arena_is_the_measured_one(tflm_run: tuple[int, np.ndarray]) -> None:
    pattern = r"minimal arena[^0-9]*([0-9][0-9,]*) bytes"
    match = re.search(pattern, DOC.read_text(), re.IGNORECASE)
    assert match, f"{DOC} does not record the minimal arena"
    assert int(match.group(1).replace(",", "")) == tflm_run[0]


def test_live_demo_scene_is_recognised(model_bytes: bytes) -> None:
    preprocess = Preprocessor(input_spec(read_model(model_bytes).input_tensors[0]))
    scene = DemoScene(seed=77, hold_frames=5)
    frames, truth = [], []
    for _ in range(150):
        frame, label = scene.next_frame()
        frames.append(preprocess(frame)[0].copy())
        truth.append(label)
    outputs = _litert_outputs(model_bytes, np.stack(frames))
    accuracy = float(np.mean(np.argmax(outputs, axis=1) == np.array(truth)))
    assert accuracy >= 0.9, f"top-1 {accuracy:.1%} on 150 DemoScene frames"
