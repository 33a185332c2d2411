"""The CLI boundary: every failure, ours or not, is one line on stderr and exit code 2."""

from __future__ import annotations

import logging
import sys
import tomllib

import cv2
import numpy as np
import pytest

from edge.cli.common import EXIT_ERROR, OneLineFormatter, run_command
from edge.errors import ModelError, one_line


def _cv2_error() -> int:
    cv2.resize(np.zeros((0, 0), np.uint8), (1, 1))  # OpenCV asserts: !ssize.empty()
    return 0


def _memory_error() -> int:
    np.empty(1 << 62, np.uint8)  # numpy cannot allocate it
    return 0


def _recursion_error() -> int:
    tomllib.loads("x = " + "[" * 100_000 + "]" * 100_000)
    return 0


def _bug() -> int:
    return {}["missing"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("body", "needle"), [
    (_cv2_error, "internal error: error: OpenCV"),
    (_memory_error, "out of memory"),
    (_recursion_error, "input nested too deeply"),
    (_bug, "internal error: KeyError: 'missing'"),
])
def test_unexpected_exceptions_are_one_line_and_exit_2(
        body, needle: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
        ) -> None:
    caplog.set_level(logging.WARNING)  # no -v
    assert run_command("edge-x", body) == EXIT_ERROR
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("edge-x: error: ") and needle in lines[0]
    assert "run with -v" in lines[0] and "Traceback" not in captured.err
    assert captured.out == "" and not caplog.records


def test_with_verbose_the_traceback_is_logged(capsys: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # -v
    assert run_command("edge-x", _bug) == EXIT_ERROR
    assert len(capsys.readouterr().err.splitlines()) == 1
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_messages_with_line_breaks_stay_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise ModelError("evil\nname\r\x1b[31m\u2028.tflite: no such model file")

    assert run_command("edge-x", body) == 2
    assert capsys.readouterr().err == (
        "edge-x: error: evil\\nname\\r\\x1b[31m\\u2028.tflite: no such model file\n")


def test_one_line_leaves_printable_text_alone() -> None:
    assert one_line("café 'quoted' \"x\" tab\there") == "café 'quoted' \"x\" tab\\there"


def test_log_lines_escape_line_breaks_but_tracebacks_keep_theirs() -> None:
    formatter = OneLineFormatter("%(levelname)s: %(message)s")
    record = logging.LogRecord("edge", logging.WARNING, __file__, 1, "%s: skipped",
                               ('a\nb".png',), None)
    assert formatter.format(record) == 'WARNING: a\\nb".png: skipped'
    try:
        raise KeyError("x")
    except KeyError:
        record.exc_info = sys.exc_info()
    assert formatter.format(record).startswith('WARNING: a\\nb".png: skipped\nTraceback')
