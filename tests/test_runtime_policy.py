"""The one threads/backend/delegate/device policy shared by edge-run and edge-classify."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.boards import get_board
from edge.runtime.policy import RuntimeOptions, choose_runtime
from tests.conftest import ROOT

CORAL = get_board("rpi4-coral-usb", kind="linux")
PI = get_board("rpi4", kind="linux")


def choose(asked: RuntimeOptions, board=CORAL, compiled: bool = False):  # type: ignore[no-untyped-def]
    return choose_runtime(asked, board, model_name="m.tflite", edgetpu_compiled=compiled)


def test_board_defaults_fill_what_the_user_left_open() -> None:
    choice = choose(RuntimeOptions(), compiled=True)
    assert (choice.threads, choice.delegate, choice.device) == (2, None, "usb")
    assert choice.warning is None
    assert choose(RuntimeOptions(threads=0), compiled=True).threads == 0
    assert choose(RuntimeOptions(device="pci:1"), compiled=True).device == "pci:1"
    assert choose(RuntimeOptions(backend="tensorflow")).backend == "tensorflow"
    assert choose(RuntimeOptions(), board=None).threads is None


def test_tpu_board_with_a_cpu_model_warns_and_runs_on_the_cpu() -> None:
    choice = choose(RuntimeOptions())
    assert (choice.delegate, choice.device) == ("none", None)
    assert choice.warning is not None
    assert "board rpi4-coral-usb expects an Edge TPU" in choice.warning
    assert "running it on the CPU" in choice.warning and "CPU version" not in choice.warning


@pytest.mark.parametrize(("asked", "named"), [(RuntimeOptions(delegate="edgetpu"),
                                               "--delegate edgetpu"),
                                              (RuntimeOptions(device="usb:0"), "--device usb:0")])
def test_user_asking_the_tpu_for_a_cpu_model_is_told_what_they_did(asked: RuntimeOptions,
                                                                   named: str) -> None:
    choice = choose(asked, board=PI)
    assert choice.delegate == "none" and choice.warning is not None
    assert choice.warning.startswith(f"{named} was given but m.tflite was not compiled")


def test_cpu_board_and_cpu_model_say_nothing() -> None:
    choice = choose(RuntimeOptions(), board=PI)
    assert (choice.delegate, choice.warning) == (None, None)
    assert choose(RuntimeOptions(delegate="none")).warning is None


def test_edge_run_on_a_coral_board_with_the_cpu_demo_model_warns_once_and_labels() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--board", "rpi4-coral-usb", "--camera", "demo",
         "--max-frames", "3"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": ""})
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    warnings = [line for line in result.stderr.splitlines() if "expects an Edge TPU" in line]
    assert len(warnings) == 1, result.stderr
    assert "delegate none" in result.stderr


def test_edge_classify_with_delegate_edgetpu_and_a_cpu_model_runs_on_the_cpu(
        tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    from edge import demo
    from edge.demo.scene import DemoScene

    rgb, _ = DemoScene(seed=1).next_frame()
    image = tmp_path / "digit.png"
    assert cv2.imwrite(str(image), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    result = subprocess.run(
        [sys.executable, "-m", "edge", "classify", "--model", str(demo.model_path()),
         "--delegate", "edgetpu", str(image)], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "--delegate edgetpu was given but demo_model.tflite was not compiled" in result.stderr
    assert "delegate none" in result.stdout
