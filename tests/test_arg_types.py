"""The one set of argparse types (edge.cli.arg_types) and the commands that use them."""

from __future__ import annotations

import argparse

import pytest

from edge.cli.arg_types import byte_count, fraction, non_negative_int, numbers, positive, unit


@pytest.mark.parametrize(("parse", "text", "value"), [
    (positive(int), "3", 3), (positive(int), "1_000_000", 1_000_000),
    (positive(float), "0.5", 0.5), (non_negative_int, "0", 0), (byte_count, "0", 0),
    (byte_count, "65536", 65536), (byte_count, "0x10000", 65536),
    (unit, "0", 0.0), (unit, "1", 1.0), (unit, "0.25", 0.25), (fraction, "0.1", 0.1),
    (numbers, "127.5", [127.5]), (numbers, "0.5,0.4,1", [0.5, 0.4, 1.0]),
])
def test_accepted(parse: object, text: str, value: float) -> None:
    assert callable(parse) and parse(text) == value


@pytest.mark.parametrize(("parse", "text"), [
    (positive(int), "0"), (positive(int), "-1"), (positive(int), "x"), (positive(float), "nan"),
    (positive(float), "0"), (non_negative_int, "-1"), (non_negative_int, "1.5"),
    (byte_count, "-1"), (byte_count, "12kB"), (byte_count, ""),
    (unit, "1.5"), (unit, "-0.1"), (unit, "nan"), (unit, "x"), (fraction, "0"), (fraction, "1"),
    (fraction, "nan"), (numbers, "1,,2"), (numbers, "a"),
])
def test_refused_with_one_line(parse: object, text: str) -> None:
    assert callable(parse)
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert "\n" not in str(info.value) and str(info.value)


@pytest.mark.parametrize(("command", "argv"), [
    ("edge.cli.inspect", ["m.tflite", "--margin", "-1"]),
    ("firmware_export.cli.flash", ["m.tflite", "--board", "pico", "--arena-size", "12kB"]),
    ("edge.cli.classify", ["--model", "m.tflite", "x.jpg", "--max-image-pixels", "0"]),
    ("edge.cli.classify", ["--model", "m.tflite", "x.jpg", "--count", "0"]),
    ("edge.cli.classify", ["--model", "m.tflite", "x.jpg", "--mean", "1,x"]),
    ("edge.cli.run", ["--threshold", "2"]),
    ("edge.cli.model", ["train", "data", "out.keras", "--val", "1"]),
    ("firmware_export.cli.export", ["m.tflite", "--board", "pico", "--margin", "-1"]),
])
def test_commands_refuse_bad_numbers_as_usage_errors(command: str, argv: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    with pytest.raises(SystemExit) as info:
        importlib.import_module(command).main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].count("error: argument") == 1, err
