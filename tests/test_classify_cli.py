"""edge-classify end to end: real LiteRT, real images, real subprocesses for the error lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.classify import main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODELS = DATA / "models"
IMAGES = [DATA / "images" / name for name in ("parrot.jpg", "cat.bmp", "grace_hopper.bmp")]
EXPECTED = [(89, "macaw"), (286, "Egyptian cat"), (653, "military uniform")]

pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data not found at {DATA} "
                                "(see ../shared/data/README.md)")


def edge_classify(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edge", "classify", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


@pytest.mark.parametrize("model", ["mobilenet_v2_1.0_224_quant.tflite",
                                   "tf2_mobilenet_v2_1.0_224_ptq.tflite"])
def test_json_top1_with_labels_from_the_model(model, capsys):
    code = main(["--model", str(MODELS / model), *map(str, IMAGES), "--json", "--top-k", "2",
                 "--count", "3", "--threads", "2"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"].startswith("ai-edge-litert") and doc["threads"] == 2
    for report, (index, label) in zip(doc["images"], EXPECTED, strict=True):
        best = report["results"][0]
        assert (best["index"], best["label"]) == (index, label) and best["score"] >= 0.5
        assert len(report["results"]) == 2 and report["invoke_ms"]["count"] == 3


def test_text_output_and_threshold(capsys):
    code = main(["--model", str(MODELS / "mobilenet_v2_1.0_224_quant.tflite"), str(IMAGES[0]),
                 "--labels", str(DATA / "labels" / "imagenet_labels.txt"), "--threshold", "0.5",
                 "--count", "2", "--board", "host"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("mobilenet_v2_1.0_224_quant.tflite: ai-edge-litert")
    assert "median of 2" in out[1]
    assert out[2].split()[1:] == ["89", "macaw"] and len(out) == 3


@pytest.mark.parametrize(("model", "needle"), [
    ("mobilenet_v1_0.25_128_quant_edgetpu.tflite", "compiled for the Edge TPU"),
    ("model_invoking_error.tflite", "unresolved custom op fake-op-double"),
    ("person_detect.tflite", "quantized_dimension must be in range"),
])
def test_unusable_models_fail_with_one_line_and_exit_2(model, needle):
    result = edge_classify("--model", str(MODELS / model), str(IMAGES[1]))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge-classify: error: ") and needle in lines[0]
    assert result.stdout == ""


def test_unreadable_image_is_one_line(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    model = str(MODELS / "mobilenet_v1_0.25_128_quant.tflite")
    result = edge_classify("--model", model, str(tmp_path / "missing.jpg"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"edge-classify: error: {tmp_path / 'missing.jpg'}: "
                                          "no such image file or folder; check the path"]
    # The header is checked before LiteRT starts (and logs), so this too is the only line.
    result = edge_classify("--model", model, str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"edge-classify: error: {bad}: not a JPEG, PNG, BMP, GIF, WebP, TIFF or PNM "
        "(PBM/PGM/PPM) image, or its header is damaged"]


def test_bad_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--model", "m.tflite", "x.jpg", "--top-k", "0"])
    assert info.value.code == 2
    assert "must be a positive number" in capsys.readouterr().err


class CountingInterpreter:
    """The real LiteRT interpreter, counting its invokes (issue 24: every image was classified
    twice)."""

    def __init__(self, inner, counts: list[int]) -> None:
        self._inner = inner
        self._counts = counts

    def invoke(self) -> None:
        self._counts.append(1)
        self._inner.invoke()

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@pytest.mark.parametrize(("count", "broken"), [(1, False), (3, False), (1, True)])
def test_each_image_is_invoked_count_times_once(count, broken, tmp_path, monkeypatch, capsys):
    from edge.runtime import interpreter as runtime

    invokes: list[int] = []
    build = runtime._build_interpreter
    monkeypatch.setattr(runtime, "_build_interpreter",
                        lambda *a, **k: CountingInterpreter(build(*a, **k), invokes))
    images = [str(p) for p in IMAGES]
    if broken:
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"\xff\xd8 not a jpeg")
        images.insert(1, str(bad))
    code = main(["--model", str(MODELS / "mobilenet_v2_1.0_224_quant.tflite"), *images,
                 "--count", str(count), "--json"])
    assert code == (2 if broken else 0)
    doc = json.loads(capsys.readouterr().out)
    assert len(invokes) == count * len(IMAGES)
    assert [r["results"][0]["index"] for r in doc["images"] if "results" in r] == \
        [index for index, _ in EXPECTED]
