"""The TFLite Micro child process: one interpreter, built once, serving invokes over a pipe.

Run by :mod:`edge.runtime.tflm` as ``python tflm_server.py`` (by path: it imports only the
standard library, numpy and ``tflite_micro``, never ``edge``), because TFLM aborts or segfaults
the whole process on some bad models and inputs. The protocol runs on stdin and on a private
copy of stdout; the real stdout is pointed at stderr so nothing TFLM prints can corrupt it.

Messages both ways are ``kind (1 byte) + length (u32 little-endian) + payload``:

* ``L`` arena size (u64) + model bytes -> ``O`` JSON ``{"inputs": [...], "outputs": [...]}``
  (``dtype``, ``shape``, ``scale``, ``zero_point`` of each tensor);
* ``I`` the input tensor's bytes -> ``O`` the invoke's duration in ms as measured here (f64,
  what the process boundary adds is the rest) + output 0's bytes;
* ``Q`` -> the child exits.

Any failure the interpreter reports as an exception is answered with ``E`` + a UTF-8 message,
and the child stays ready for the next request. SIGINT and SIGTERM are ignored: the parent
ends the child, which also exits when its stdin closes, so it never outlives the parent.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import time
from typing import IO, Any

HEADER = struct.Struct("<cI")
ARENA = struct.Struct("<Q")
MILLISECONDS = struct.Struct("<d")


def read_message(stream: IO[bytes]) -> tuple[bytes, bytes] | None:
    """One ``(kind, payload)``, or None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    kind, length = HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return kind, payload


def write_message(stream: IO[bytes], kind: bytes, payload: bytes = b"") -> None:
    stream.write(HEADER.pack(kind, len(payload)) + payload)
    stream.flush()


def _describe(details: dict[str, Any]) -> dict[str, Any]:
    quant = details.get("quantization_parameters") or {}
    scales = list(quant.get("scales", []))
    zero_points = list(quant.get("zero_points", []))
    return {"dtype": details["dtype"].__name__, "shape": [int(d) for d in details["shape"]],
            "scale": float(scales[0]) if scales else 0.0,
            "zero_point": int(zero_points[0]) if zero_points else 0}


class Server:
    """Holds the interpreter between requests."""

    def __init__(self) -> None:
        self.interpreter: Any = None
        self.input: dict[str, Any] = {}

    def load(self, payload: bytes) -> bytes:
        from tflite_micro.python.tflite_micro import runtime

        (arena,) = ARENA.unpack_from(payload)
        self.interpreter = runtime.Interpreter.from_bytes(payload[ARENA.size:],
                                                          arena_size=arena)
        inputs = self._all(self.interpreter.get_input_details)
        outputs = self._all(self.interpreter.get_output_details)
        self.input = inputs[0]
        return json.dumps({"inputs": inputs, "outputs": outputs}).encode()

    @staticmethod
    def _all(details: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            try:
                found.append(_describe(details(len(found))))
            except (IndexError, RuntimeError, ValueError):
                return found

    def invoke(self, payload: bytes) -> bytes:
        import numpy as np

        if self.interpreter is None:
            raise RuntimeError("no model loaded")
        data = np.frombuffer(payload, dtype=self.input["dtype"]).reshape(self.input["shape"])
        self.interpreter.set_input(data, 0)
        start = time.perf_counter()
        self.interpreter.invoke()
        elapsed_ms = (time.perf_counter() - start) * 1e3
        output = np.ascontiguousarray(self.interpreter.get_output(0))
        return MILLISECONDS.pack(elapsed_ms) + output.tobytes()


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    server = Server()
    handlers = {b"L": server.load, b"I": server.invoke}
    while True:
        message = read_message(requests)
        if message is None or message[0] == b"Q":
            return
        kind, payload = message
        handler = handlers.get(kind)
        try:
            if handler is None:
                raise ValueError(f"unknown request {kind!r}")
            answer = handler(payload)
        except (RuntimeError, ValueError, TypeError, KeyError, struct.error) as e:
            text = " ".join(str(e).split()) or type(e).__name__
            write_message(answers, b"E", text.encode("utf-8", "replace"))
            continue
        write_message(answers, b"O", answer)


def main() -> int:
    # The parent decides when this process ends (``Q``, or end of stdin when it exits): a
    # Ctrl-C or a service stop reaching the whole process group must not kill the frame the
    # parent is finishing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever TFLM prints goes to stderr, never into the answers
    serve(sys.stdin.buffer, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
