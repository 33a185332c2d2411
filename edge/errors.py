"""The one exception tree of edge.

Every error a user can cause or fix derives from :class:`EdgeError`, and each is mixed into the
standard exception type it resembles, so callers may catch either (``except ModelError`` or
``except ValueError``). Command-line tools map :class:`EdgeError` to exit code 2 and print its
message as one line.
"""

from __future__ import annotations

import re

# Anything that would break the one-line promise or fool a terminal: C0/C1 controls, line breaks.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with line breaks and control characters escaped, so it prints as one line."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class EdgeError(Exception):
    """Base of every error edge raises on purpose."""

    exit_code = 2


class ModelError(EdgeError, ValueError):
    """A model file is missing, malformed, or not usable for the requested job."""


class BoardError(EdgeError, ValueError):
    """A board profile is unknown or invalid."""


class BackendError(EdgeError, ImportError):
    """An optional package (interpreter, camera stack, flashing tool) is not installed."""


class InterpreterError(EdgeError, RuntimeError):
    """The interpreter refused the model or failed to run it."""


class ChildError(EdgeError, RuntimeError):
    """A child process (:mod:`edge.child`) failed a request.

    Attributes:
        last: the last line the child wrote to stderr during the request ('' if none).
    """

    def __init__(self, message: str, last: str = "") -> None:
        super().__init__(message)
        self.last = last


class ChildCrashError(ChildError):
    """The child died (a signal, an exit) before answering.

    Attributes:
        how: how it ended, in words (``crashed with SIGSEGV (Segmentation fault)``).
        returncode: its exit code, negative for the signal that ended it.
    """

    def __init__(self, message: str, last: str = "", returncode: int = 0, how: str = "") -> None:
        super().__init__(message, last)
        self.returncode, self.how = returncode, how or "ended"


class ChildTimeoutError(ChildError, TimeoutError):
    """The child did not answer in time and was killed."""


class ChildRefusedError(ChildError):
    """The child's handler failed (the interpreter refused the request); the child lives on."""


class ChildMissingError(ChildError):
    """A package the child's handler needs is not installed."""


class DelegateError(InterpreterError):
    """The Edge TPU delegate could not be loaded or used."""


class PreprocessError(EdgeError, ValueError):
    """A frame cannot be converted to the model's input."""


class ImageError(PreprocessError):
    """An image file is unreadable, not an image, or claims more pixels than allowed."""


class LabelError(EdgeError, ValueError):
    """A labels file is missing or malformed."""


class CameraError(EdgeError, OSError):
    """A frame source could not be opened or read."""


class SinkError(EdgeError, OSError):
    """A label sink (file, serial port) could not be opened or written."""


class PreviewError(EdgeError, OSError):
    """The live preview's address is unusable or cannot be bound."""


class SerialLinkError(EdgeError, OSError):
    """A serial port or URL could not be opened or vanished."""


class ProtocolError(EdgeError, ValueError):
    """Bytes on the wire do not form a valid frame of the label protocol."""


class ExportError(EdgeError, ValueError):
    """A model cannot be exported for a board."""


class BudgetError(ExportError):
    """A model does not fit a board's RAM or flash."""


class VerifyError(ExportError):
    """The TFLite Micro verification run failed or disagreed with the prediction."""


class FlashError(EdgeError, OSError):
    """A flashing step failed or its inputs are unusable."""


class TrainingError(EdgeError, RuntimeError):
    """Building, training or quantizing a model failed."""


class OutputError(EdgeError, OSError):
    """An output file (report, chart, table) could not be written."""
