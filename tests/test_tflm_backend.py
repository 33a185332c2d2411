"""--backend tflm: the real pip TFLite Micro interpreter in one long-lived child process.

person_detect.tflite (which LiteRT refuses) classifies TFLM's own person.bmp / no_person.bmp
exactly as TFLM's person_detection_test expects; the demo model's outputs are bit-exact with
LiteRT's reference kernels; one child serves every frame; a child that dies becomes our error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.cli import classify, run
from edge.demo import model_path
from edge.demo.scene import DemoScene
from edge.errors import BackendError, InterpreterError
from edge.model import read_model
from edge.runtime import Classifier
from edge.runtime.tflm import TflmInterpreter
from tests.conftest import ROOT, shared_file

pytest.importorskip("tflite_micro", reason="tflite-micro is not installed: pip install -e "
                    "'.[mcu]'")
pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")

LABELS = ROOT / "docs" / "labels" / "person_detect.txt"


@pytest.mark.parametrize(("image", "index", "label", "raw"), [
    ("person.bmp", 1, "person", [-113, 113]),
    ("no_person.bmp", 0, "no person", [57, -57]),
])
def test_person_detect_on_the_host(capsys: pytest.CaptureFixture[str], image: str, index: int,
                                   label: str, raw: list[int]) -> None:
    model = shared_file("models/person_detect.tflite")
    path = shared_file(f"images/{image}")
    assert classify.main(["--model", str(model), "--backend", "tflm", "--raw-input",
                          "--labels", str(LABELS), str(path), "--json", "--top-k", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"].startswith("tflm ") and doc["input"]["conversion"] == "raw bytes"
    results = doc["images"][0]["results"]
    assert doc["images"][0]["image"] == str(path)
    assert (results[0]["index"], results[0]["label"]) == (index, label)
    # Output scale 1/256, zero point -128: TFLM's documented int8 outputs, exactly.
    scores = {r["index"]: r["score"] for r in results}
    assert [scores[0], scores[1]] == [(q + 128) / 256 for q in raw]


def test_demo_model_is_bit_exact_with_litert_reference_kernels() -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content = model_path().read_bytes()
    reference = Interpreter(model_content=content,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    reference.allocate_tensors()
    source = reference.get_input_details()[0]["index"]
    target = reference.get_output_details()[0]["index"]
    scene = DemoScene(seed=5, hold_frames=1)
    with Classifier.open(content, backend="tflm") as clf:
        assert clf.threads == 1 and clf.labels == ()  # bytes: no file to find labels beside
        child = clf._interpreter._child
        for _ in range(4):
            tensor = clf.preprocess(scene.next_frame()[0])
            reference.set_tensor(source, tensor)
            reference.invoke()
            expected = reference.get_tensor(target).reshape(-1)
            clf.run(tensor)
            assert np.array_equal(clf._interpreter.get_tensor(0).reshape(-1), expected)
            assert clf._interpreter._child is child  # built once, not per frame
            assert 0 < clf._interpreter.child_invoke_ms
    assert child.poll() == 0  # closed with the classifier, exit code 0


def test_arena_comes_from_the_planner_for_the_pip_abi() -> None:
    from firmware_export.plan import plan_arena

    model = read_model(shared_file("models/person_detect.tflite"))
    interpreter = TflmInterpreter(model)
    try:
        assert interpreter.arena == plan_arena(model, 8, "reference", abi="pip").size
        # the package's recording allocator is larger than the x86-64 host build's
        assert interpreter.arena > plan_arena(model, 8, "reference", abi="x86-64").size
        assert interpreter.arena >= 85_264  # the measured minimum (../shared/data/README.md)
    finally:
        interpreter.close()


def test_a_refusal_and_a_crash_become_our_errors() -> None:
    model = read_model(model_path())
    with pytest.raises(InterpreterError, match=r"demo_model.tflite: TFLite Micro failed to "
                       "load it: TFLM failed to allocate tensors"):
        TflmInterpreter(model, arena=4096)
    interpreter = TflmInterpreter(model)
    child = interpreter._child
    assert child is not None
    os.kill(child.pid, signal.SIGSEGV)
    child.wait()
    details = interpreter.get_input_details()[0]
    interpreter.set_tensor(0, np.zeros(details["shape"], details["dtype"]))
    with pytest.raises(InterpreterError, match=r"demo_model.tflite: TFLite Micro crashed "
                       r"\(SIGSEGV\) during invoke"):
        interpreter.invoke()
    with pytest.raises(InterpreterError, match="closed"):
        interpreter.invoke()
    interpreter.close()


def test_models_tflm_cannot_run_are_refused_in_our_words(
        capsys: pytest.CaptureFixture[str]) -> None:
    model = shared_file("models/mobilenet_v2_1.0_224_quant.tflite")
    image = shared_file("images/parrot.jpg")
    assert classify.main(["--model", str(model), "--backend", "tflm", str(image)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1  # refused before the child starts, in edge.model.compat's words
    assert lines[0].startswith(
        "edge-classify: error: mobilenet_v2_1.0_224_quant.tflite: TFLite Micro cannot run it: "
        "operator 0 (CONV_2D) has uint8 weights: a uint8 asymmetric (hybrid) model, which "
        "TFLite Micro does not support; ")


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tflite_micro" else real(name, *a))
    with pytest.raises(BackendError, match=r"--backend tflm needs the TFLite Micro "
                       r"interpreter \(tflite-micro\); install it with `pip install "
                       r"'edge-labels\[mcu\]'`"):
        Classifier.open(model_path(), backend="tflm")


def test_edge_run_with_tflm_labels_the_demo_scene(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--camera", "demo", "--backend", "tflm", "--max-frames", "6", "--json",
                     "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines[:-1]]
    summary = json.loads(lines[-1])["summary"]
    assert len(events) == 6 and all(e["source"] == "demo" for e in events)
    assert summary["accuracy"] is not None and summary["frames"] == 6
    assert [e["frame"] for e in events] == list(range(6))


def test_litert_refusal_points_at_tflm(capsys: pytest.CaptureFixture[str]) -> None:
    model = shared_file("models/person_detect.tflite")
    image = Path(shared_file("images/person.bmp"))
    assert classify.main(["--model", str(model), str(image)]) == 2
    assert capsys.readouterr().err.rstrip().endswith("TFLite Micro may run it: --backend tflm")


def test_ctrl_c_to_the_process_group_ends_an_edge_run_cleanly() -> None:
    """A terminal's Ctrl-C reaches the TFLM child too: it must not take the frame in hand."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": ""}
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--camera", "demo",
                             "--backend", "tflm", "--json", "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = [proc.stdout.readline() for _ in range(3)]  # labelling through the child
        assert all(line.endswith("\n") for line in first)
        os.killpg(proc.pid, signal.SIGINT)
        rest, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in ("".join(first) + rest).splitlines()]
    assert "summary" in records[-1] and records[-1]["summary"]["frames"] == len(records) - 1


def test_the_boundary_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    tool = runpy.run_path(str(ROOT / "tools" / "bench_classify_tflm.py"))
    assert tool["main"](["--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "one child process" in out and "ratio of medians" in out
