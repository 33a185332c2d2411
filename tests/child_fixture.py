"""A child module for tests/test_child.py (``python -m tests.child_fixture``): it echoes, refuses,
misses a package, crashes, exits or hangs on request, through :func:`edge.child.serve`."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import numpy as np

from edge.child import Arrays, serve

Answer = tuple[dict[str, Any], Arrays]


def echo(header: dict[str, Any], arrays: list[np.ndarray]) -> Answer:
    print("stdout is not the answer channel")  # must not corrupt the answer
    return {"got": header, "pid": os.getpid()}, [a[::-1] for a in arrays]


def refuse(header: dict[str, Any], arrays: list[np.ndarray]) -> Answer:
    print("the interpreter said why", file=sys.stderr)
    raise ValueError("no such tensor\n(second line)")


def missing(header: dict[str, Any], arrays: list[np.ndarray]) -> Answer:
    import edge_no_such_package  # type: ignore[import-not-found]  # noqa: F401

    return {}, ()


def crash(header: dict[str, Any], arrays: list[np.ndarray]) -> Answer:
    print(header.get("say", "about to fail"), file=sys.stderr, flush=True)
    os.kill(os.getpid(), getattr(signal, header.get("signal", "SIGSEGV")))
    time.sleep(60)
    return {}, ()


def leave(header: dict[str, Any], arrays: list[np.ndarray]) -> Answer:
    print("leaving early", file=sys.stderr, flush=True)
    os._exit(3)


def fits(header: dict[str, Any], arrays: list[np.ndarray]) -> Answer:
    """A stand-in for TFLM's allocation: segfaults below 1,000 B, fits from 1,500 B."""
    arena = int(header["arena"])
    if arena < 1000:
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"fits": arena >= 1500}, ()


def hang(header: dict[str, Any], arrays: list[np.ndarray]) -> Answer:
    time.sleep(60)
    return {}, ()


if __name__ == "__main__":
    sys.exit(serve({"echo": echo, "refuse": refuse, "missing": missing, "crash": crash,
                    "leave": leave, "hang": hang, "fits": fits}))
