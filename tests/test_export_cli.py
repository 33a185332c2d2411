"""edge-export end to end: files written, refusals with one line and exit code 2, --verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_export.cli.export import main
from tests.conftest import shared_file


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_exports_a_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = shared_file("models/person_detect.tflite")
    out = tmp_path / "fw"
    code, stdout, _ = run(capsys, str(model), "--board", "nano33ble", "--out", str(out),
                          "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["budget"]["ram_left"] > 0
    assert report["arena"]["arena_size"] % 16 == 0
    for relative in ("platformio.ini", "src/main.cpp", "src/model_data.cc", "src/arena.h",
                     "src/op_resolver.h", "src/edge_labels.h", "link/board.ld", "model.tflite"):
        assert (out / relative).is_file(), relative
    assert "g_person_detect_model" in (out / "src" / "model_data.h").read_text()
    # exporting again replaces the project in place
    code, _, _ = run(capsys, str(model), "--board", "nano33ble", "--out", str(out),
                     "--name", "g_detector")
    assert code == 0 and "g_detector" in (out / "src" / "model_data.h").read_text()


def test_will_not_overwrite_a_foreign_folder(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run(capsys, str(shared_file("models/person_detect.tflite")), "--board",
                       "nano33ble", "--out", str(tmp_path))
    assert code == 2 and "not made by edge-export" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("model, board, expected", [
    ("tf2_mobilenet_v2_1.0_224_ptq.tflite", "nano33ble", "B too many"),
    ("mobilenet_v2_1.0_224_quant.tflite", "nano33ble", "edge-model quantize"),
    ("mobilenet_v1_0.25_128_quant_edgetpu.tflite", "nano33ble", "Edge TPU"),
    ("model_invoking_error.tflite", "nano33ble", "fake-op-double"),
    ("person_detect.tflite", "rpi4", "linux board"),
    ("person_detect.tflite", "nano-33", "unknown board"),
])
def test_refusals_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          model: str, board: str, expected: str) -> None:
    path = shared_file(f"models/{model}")
    code, _, err = run(capsys, str(path), "--board", board, "--out", str(tmp_path / "fw"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("edge-export: error: ")
    assert expected in err
    assert not (tmp_path / "fw").exists()


def test_does_not_fit_says_by_how_much_and_what_would(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    code, _, err = run(capsys, str(path), "--board", "stm32h743", "--out", str(tmp_path / "fw"))
    assert code == 2
    assert "too many" in err and "largest MobileNetV2 that fits is width" in err


def test_offline_plan_is_written_when_it_helps(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # MobileNetV1 0.25/128 is uint8 (refused), so plan it through the library instead.
    from edge.model import read_model
    from firmware_export.plan.fit import apply_offline_plan

    model = read_model(shared_file("models/mobilenet_v1_0.25_128_quant.tflite"))
    written, plan = apply_offline_plan(model, "cmsis-nn", "auto")
    assert plan is not None and "OfflineMemoryAllocation" in written.metadata
    same, none = apply_offline_plan(model, "cmsis-nn", "off")
    assert none is None and same is model


@pytest.mark.slow
def test_verify_prints_predicted_and_measured(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tflite_micro", reason="needs the tflite-micro package (the mcu extra)")
    model = shared_file("models/person_detect.tflite")
    code, stdout, _ = run(capsys, str(model), "--board", "nano33ble", "--out",
                          str(tmp_path / "fw"), "--verify")
    assert code == 0
    assert "predicted 85,264 B, real minimum 85,264 B (x1.0000)" in stdout


def test_verify_refuses_a_crashing_model_cleanly(tmp_path: Path) -> None:
    pytest.importorskip("tflite_micro", reason="needs the tflite-micro package (the mcu extra)")
    from edge.errors import VerifyError
    from firmware_export.verify.children import PIP_CHILD, call_child

    bad = tmp_path / "garbage.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(VerifyError):
        call_child(PIP_CHILD, {"op": "minimum", "model": str(bad), "low": 0, "high": 4096},
                   "the pip interpreter", timeout=120)
