"""Writes label events to the sinks from a thread of its own, so inference never waits on I/O."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from edge.events import LabelEvent
from edge.sinks.base import LabelSink

_DONE = object()


class SinkWriter:
    """A bounded queue in front of the sinks, drained by one thread.

    :meth:`submit` blocks only when ``backlog`` events are already waiting (then the sinks set
    the pace instead of memory growing). Closing drains every event, then flushes and closes
    the sinks; an error of a sink is raised from the next :meth:`submit` or from :meth:`close`.

    Args:
        sinks: written in order, each event to every sink.
        backlog: events that may wait.
    """

    def __init__(self, sinks: Sequence[LabelSink], backlog: int = 256) -> None:
        self.sinks = list(sinks)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=backlog)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="edge-sinks", daemon=True)
        self.written = 0

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def submit(self, event: LabelEvent) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(event)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # keep draining so submit() never blocks on a dead writer
            try:
                for sink in self.sinks:
                    sink.write(item)  # type: ignore[arg-type]
                self.written += 1
            except BaseException as e:
                self._error = e

    def close(self) -> None:
        """Write what is queued, then flush and close every sink; re-raise a sink's error."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        errors = [self._error] if self._error is not None else []
        self._error = None
        for sink in self.sinks:
            try:
                sink.close()
            except BaseException as e:
                errors.append(e)
        self.sinks = []
        if errors:
            raise errors[0]
