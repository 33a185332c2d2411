"""The one process boundary (edge.child): wire format, long-lived and one-shot children, and
every way a child can fail turned into our error with its signal's name and last words."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.child import Child, ask_once, exit_description, pack, signal_name, unpack
from edge.errors import (
    ChildCrashError,
    ChildError,
    ChildMissingError,
    ChildRefusedError,
    ChildTimeoutError,
    EdgeError,
)

MODULE = "tests.child_fixture"

dtypes = st.sampled_from(["int8", "uint8", "int16", "int32", "float32", "float64", "bool"])
arrays = dtypes.flatmap(lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=4,
                                                                    max_side=5)))


@settings(max_examples=60, deadline=None)
@given(header=st.dictionaries(st.text(max_size=5).filter(lambda k: k != "arrays"),
                              st.integers() | st.text(max_size=8), max_size=3),
       values=st.lists(arrays, max_size=3))
def test_the_wire_format_round_trips(header: dict[str, object],
                                     values: list[np.ndarray]) -> None:
    got_header, got = unpack(pack(header, values))
    assert got_header == header
    assert len(got) == len(values)
    for a, b in zip(got, values, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64))
def test_a_payload_that_is_not_one_is_a_value_error(data: bytes) -> None:
    try:
        unpack(data)
    except ValueError:
        pass


def test_signals_are_named_once() -> None:
    assert exit_description(-11) == "SIGSEGV (Segmentation fault)"
    assert exit_description(-6).startswith("SIGABRT")
    assert exit_description(3) == "exit code 3"
    assert signal_name(200) == "signal 200"


def test_a_long_lived_child_answers_many_requests_and_ends_cleanly() -> None:
    with Child(MODULE, "the fixture") as child:
        first, _ = child.ask("echo", {"n": 1}, [np.arange(3, dtype=np.int8)])
        for n in range(2, 5):
            header, out = child.ask("echo", {"n": n}, [np.arange(n, dtype=np.float32)])
            assert header["got"] == {"n": n, "op": "echo"} and header["pid"] == first["pid"]
            np.testing.assert_array_equal(out[0], np.arange(n, dtype=np.float32)[::-1])
        with pytest.raises(ChildRefusedError, match=r"^no such tensor \(second line\)$") as e:
            child.ask("refuse")
        assert e.value.last == "the interpreter said why"
        header, _ = child.ask("echo")  # a refusal leaves the child ready
        assert header["pid"] == first["pid"]
    assert child.returncode == 0


@pytest.mark.parametrize(("name", "words"), [("SIGSEGV", "Segmentation fault"),
                                             ("SIGABRT", "Aborted"), ("SIGBUS", "Bus error")])
def test_a_signal_is_named_with_the_last_stderr_line(name: str, words: str) -> None:
    with pytest.raises(ChildCrashError) as info:
        ask_once(MODULE, "the fixture", "crash", {"signal": name, "say": "TFLM: arena too small"})
    error = info.value
    assert str(error) == f"the fixture crashed with {name} ({words}): TFLM: arena too small"
    assert error.returncode == -getattr(signal, name) and error.last == "TFLM: arena too small"
    assert "exit code -" not in str(error) and "no message" not in str(error)
    assert isinstance(error, EdgeError)


def test_an_exit_and_a_closed_child_are_our_errors() -> None:
    child = Child(MODULE, "the fixture")
    with pytest.raises(ChildCrashError, match=r"^the fixture ended with exit code 3: leaving "
                                              r"early$"):
        child.ask("leave")
    with pytest.raises(ChildCrashError, match="closed"):
        child.ask("echo")
    assert child.returncode == 3


def test_a_missing_package_and_an_unknown_request() -> None:
    with pytest.raises(ChildMissingError, match="edge_no_such_package"):
        ask_once(MODULE, "the fixture", "missing")
    with pytest.raises(ChildRefusedError, match="unknown request 'nope'"):
        ask_once(MODULE, "the fixture", "nope")


def test_a_hang_is_killed_after_the_timeout() -> None:
    child = Child(MODULE, "the fixture")
    child.ask("echo", timeout=120)  # started and answering: what follows times the hang only
    start = time.monotonic()
    with pytest.raises(ChildTimeoutError, match="did not answer within 1 s") as info:
        child.ask("hang", timeout=1.0)
    assert isinstance(info.value, ChildError) and isinstance(info.value, TimeoutError)
    assert time.monotonic() - start < 30  # killed, not waited for (the hang is 60 s)
    assert child.returncode == -signal.SIGKILL
