"""The interface every label sink implements, and the filter that wraps one.

Sinks are written from the :class:`~edge.pipeline.writer.SinkWriter` thread, so a slow
destination never holds up inference. Each kind lives in a module of its own and is imported
only when chosen (see :mod:`edge.sinks`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from edge.events import LabelEvent


class LabelSink(ABC):
    """Receives every label event of a run, in order.

    Attributes:
        name: what status lines call the sink's :meth:`counters`.
    """

    name = "sink"

    @abstractmethod
    def write(self, event: LabelEvent) -> None:
        """Deliver one event.

        Raises:
            SinkError: the destination failed and cannot recover.
        """

    def flush(self) -> None:
        """Push buffered output to the destination."""
        return

    def status(self, summary: Mapping[str, Any]) -> None:
        """The run's latest status numbers (called from the inference thread: never block)."""
        return

    def counters(self) -> dict[str, int]:
        """Delivery numbers for status lines and the summary (none by default)."""
        return {}

    def close(self) -> None:
        """Flush and release the destination; safe to call twice."""
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class OnChangeSink(LabelSink):
    """Passes an event on only when it differs from the last one passed on
    (:meth:`LabelEvent.change_key`: the top label, or a detector's labels and counts)."""

    _UNSET = object()

    def __init__(self, inner: LabelSink) -> None:
        self.inner = inner
        self.name = inner.name
        self._last: Any = self._UNSET

    def write(self, event: LabelEvent) -> None:
        key = event.change_key()
        if key != self._last:
            self._last = key
            self.inner.write(event)

    def flush(self) -> None:
        self.inner.flush()

    def status(self, summary: Mapping[str, Any]) -> None:
        self.inner.status(summary)

    def counters(self) -> dict[str, int]:
        return self.inner.counters()

    def close(self) -> None:
        self.inner.close()
