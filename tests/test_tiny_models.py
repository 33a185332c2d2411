"""`edge-export --verify` on tiny and odd models (issue 24 point 1).

TFLM's own hello_world (three fully connected layers, a few KB), a keyword spotter, a single
operator and float in/out around QUANTIZE/DEQUANTIZE made the pip TFLM child crash while
bisecting its arena (too small an arena makes TFLM segfault), and that crash became
``--verify``'s verdict on every board. Must hold: on every MCU board profile the pip step plans
the pip interpreter's arena for its own ABI, runs, and finds no failure; a crash at one arena size
counts as "does not fit" there; and the real builds (64-bit host, Cortex-M4 under QEMU) pass on
one board.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from edge.boards import BoardProfile, get_board, load_boards
from edge.errors import InterpreterError
from edge.model import read_model
from edge.runtime.tflm import TflmInterpreter, minimum_arena
from firmware_export.export import export_model
from firmware_export.plan.fit import pip_arena
from firmware_export.tflm.build import Library
from firmware_export.verify.ladder import verify_export
from firmware_export.verify.report import NOT_COMPARED, PASS, VerifyReport
from tests.tflm_support import tflm_library, tflm_tree
from tests.tiny_models import NAMES, tiny_models

pytest.importorskip("tflite_micro", reason="needs the tflite-micro package (the mcu extra)")
PIP = "pip x86-64 (reference)"


@pytest.fixture(scope="module")
def models() -> dict[str, Path]:
    tf = pytest.importorskip("tensorflow", reason="building the tiny models needs tensorflow "
                             "(the build extra)")
    return tiny_models(tf)


def mcu_boards() -> list[BoardProfile]:
    return sorted((b for b in load_boards().values() if b.mcu is not None),
                  key=lambda b: b.name)


def test_the_models_are_what_they_claim(models: dict[str, Path]) -> None:
    ops = {name: set(read_model(path).opcodes) for name, path in models.items()}
    assert ops["hello"] == ops["single-op"] == {"FULLY_CONNECTED"}
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= ops["keyword"]
    assert {"QUANTIZE", "DEQUANTIZE", "FULLY_CONNECTED"} <= ops["float-io"]
    assert models["hello"].stat().st_size < 4096
    assert read_model(models["float-io"]).input_tensors[0].dtype == "float32"
    assert len(mcu_boards()) >= 6


def test_a_crash_while_bisecting_is_does_not_fit(models: dict[str, Path]) -> None:
    """From 0 the bisection goes through sizes where TFLM segfaults (1,957 B for hello_world
    on the pip package): each is "does not fit", and the answer is the real minimum."""
    model = read_model(models["hello"])
    planned = pip_arena(model)
    minimum = minimum_arena(model, planned.size, low=0)
    assert 0 < minimum <= planned.size
    with TflmInterpreter(model, minimum) as interpreter:
        assert interpreter.get_output_details()[0]["shape"].tolist() == [1, 1]
    with pytest.raises(InterpreterError):
        TflmInterpreter(model, minimum - 16).close()


def test_a_child_that_dies_while_bisecting_is_replaced(models: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The backstop: a child killed by a signal at one size counts "does not fit" there and a
    new child answers the next size (tests/child_fixture.py: SIGSEGV below 1,000 B, fits from
    1,500 B)."""
    from edge.runtime import tflm

    monkeypatch.setattr(tflm, "CHILD_MODULE", "tests.child_fixture")
    with caplog.at_level(logging.DEBUG, logger="edge.runtime.tflm"):
        assert tflm.minimum_arena(read_model(models["hello"]), 1500, low=0) == 1500
    crashes = [r.getMessage() for r in caplog.records if "crashed at an arena" in r.getMessage()]
    assert crashes and all("SIGSEGV (Segmentation fault)" in c for c in crashes), crashes


def check_pip_step(report: VerifyReport, what: str) -> None:
    assert not report.failed, f"{what}: {report.failed}"
    arena = report.find("minimal arena", PIP)
    assert arena is not None and arena.status != NOT_COMPARED, f"{what}: pip step did not run"
    assert arena.values["measured"] <= arena.values["arena_size"], what
    litert = [c for c in report.checks if c.name.startswith("outputs vs LiteRT")]
    assert litert and all(c.status == PASS for c in litert), f"{what}: {litert}"


@pytest.mark.parametrize("name", NAMES)
def test_pip_step_on_every_mcu_board(name: str, models: dict[str, Path], tmp_path: Path) -> None:
    """Boards with the same kernels export the same bytes: each distinct export runs once."""
    verified: dict[str, VerifyReport] = {}
    for board in mcu_boards():
        result = export_model(models[name], board, tmp_path / board.name)
        key = hashlib.sha256(result.model.content).hexdigest()
        if key not in verified:
            verified[key] = verify_export(result.model, result.model_path, result.out, board,
                                          [], result.arena)
        check_pip_step(verified[key], f"{name} on {board.name}")
    assert 1 <= len(verified) <= 3


@pytest.fixture(scope="module")
def libraries() -> list[Library]:
    return [tflm_library("host-64"), tflm_library("cortex-m4", "cmsis-nn")]


@pytest.mark.parametrize("name", ["hello", "float-io"])
def test_real_builds_on_one_board(name: str, models: dict[str, Path], libraries: list[Library],
                                  tmp_path: Path) -> None:
    board = get_board("nano33ble", kind="mcu")
    result = export_model(models[name], board, tmp_path / "out")
    report = verify_export(result.model, result.model_path, result.out, board,
                           [tflm_tree("reference"), tflm_tree("cmsis-nn")], result.arena)
    check_pip_step(report, name)
    for build in ("host-64 (reference)", "cortex-m4 (cmsis-nn)"):
        equal = report.find("outputs = pip interpreter", build)
        assert equal is not None and equal.status == PASS, (build, equal)
