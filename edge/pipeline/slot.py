"""A one-item hand-over between the capture thread and the inference loop."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds at most one item: the newest.

    A live camera ``put``s with ``wait=False``: an item not yet taken is stale, so it is replaced
    and counted in :attr:`dropped`. A file or synthetic source ``put``s with ``wait=True`` and
    blocks until the slot is free, so no frame is lost. :meth:`close` wakes every waiter.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0

    def put(self, item: T, *, wait: bool) -> bool:
        """Offer ``item``; False if the slot was closed (the item is discarded)."""
        with self._cond:
            if wait:
                while self._item is not None and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return True

    def wait_empty(self) -> bool:
        """Block until the item has been taken; False if the slot was closed meanwhile."""
        with self._cond:
            while self._item is not None and not self._closed:
                self._cond.wait()
            return not self._closed

    def take(self, timeout: float) -> T | None:
        """The newest item, waiting up to ``timeout`` seconds; None if none came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._item is None and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
