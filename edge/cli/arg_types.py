"""The argparse types every command shares: numbers with a range, lists of numbers, byte counts.

Each raises :class:`argparse.ArgumentTypeError`, which argparse turns into one usage line
(``edge-run: error: argument --top-k: must be a positive number, got '0'``) and exit code 2.
Integers accept ``_`` between digits (``1_000_000``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text (``int``, ``float``), which must be > 0."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        return value
    return parse


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"(={value}) must be 0 or more")
    return value


def byte_count(text: str) -> int:
    """An argparse type: a number of bytes >= 0, decimal or ``0x`` hex (``65536``, ``0x10000``)."""
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a byte count (0 or more, decimal "
                                         "or 0x hex)")
    return value


def unit(text: str) -> float:
    """An argparse type: a number in [0, 1] (a score threshold, an IoU)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (a share of the data)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}")
    return value


def numbers(text: str) -> list[float]:
    """An argparse type: one number or comma-separated numbers (``127.5`` or ``0.5,0.4,0.4``)."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or comma-separated "
                                         "numbers") from None


def frame_size(text: str) -> tuple[int, int]:
    """An argparse type: ``WxH`` in pixels, each from 1 to 8192 (``224x224``, ``160x120``)."""
    width, _, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = (0, 0)
    if not all(1 <= side <= 8192 for side in size):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size WxH (e.g. 224x224)")
    return size
