"""The capture thread: reads a frame source, survives its failures, hands over the newest frame.

Failures of a live source (a read that raises :class:`CameraError`: device gone, read timeout,
libcamera frontend timeout, end of a live stream) close and reopen it with exponential backoff.
A stall watchdog notices a read of a live source that has not returned for ``stall_timeout_s`` and
asks for a reopen as well (interrupting the read where the backend can). Files, folders and video
files are read at their own pace: a slow decode is not a stall, and reopening would start them
over. A read that never returns at all stops the systemd watchdog pings, and systemd restarts the
service.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from edge.backoff import Backoff
from edge.camera.base import Frame, FrameSource
from edge.errors import CameraError
from edge.pipeline.slot import LatestSlot

log = logging.getLogger(__name__)

MAX_SKIPPED = 10  # consecutive unreadable frames of a file or folder before giving up


@dataclass
class CaptureCounters:
    """What the capture thread went through.

    Attributes:
        frames: frames read.
        dropped: frames replaced by a newer one before inference took them.
        reconnects: successful reopens of the source.
        camera_errors: failed reads and failed reopen attempts.
        stalls: times the watchdog found a read hanging.
    """

    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    camera_errors: int = 0
    stalls: int = 0


class FrameGrabber:
    """Reads ``source`` in a thread of its own; :meth:`get` returns the newest frame.

    The source must already be open; the grabber reopens it on failures but never closes it.

    Args:
        source: an opened frame source.
        stall_timeout_s: a read of a live source taking longer than this counts as a stall and
            triggers a reopen (finite sources are never reopened).
        backoff: delays between reopen attempts.
    """

    def __init__(self, source: FrameSource, *, stall_timeout_s: float = 5.0,
                 backoff: Backoff | None = None) -> None:
        self.source = source
        self.stall_timeout_s = stall_timeout_s
        self.backoff = backoff or Backoff()
        self.counters = CaptureCounters()
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._stop = threading.Event()
        self._reopen = threading.Event()
        self._read_started: float | None = None
        self._skipped = 0
        self._last_error: CameraError | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="edge-capture", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; a read stuck in the backend is abandoned (the thread is a daemon)."""
        self._stop.set()
        self._slot.close()
        self.source.interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def ended(self) -> bool:
        """True once a finite source has no more frames, or the thread has stopped."""
        return self._slot.closed

    def get(self, timeout: float) -> Frame | None:
        """The newest frame, waiting up to ``timeout`` s; None if none came or the source ended.

        Raises:
            Exception: whatever unexpected error ended the capture thread.
        """
        frame = self._slot.take(timeout)
        self.counters.dropped = self._slot.dropped
        if frame is None:
            if self._failure is not None:
                raise self._failure
            self._check_stall()
        return frame

    def _check_stall(self) -> None:
        started = self._read_started
        if started is None or self._reopen.is_set() or not self.source.live:
            return
        if time.monotonic() - started > self.stall_timeout_s:
            self.counters.stalls += 1
            log.warning("%s sent no frame for %.1f s; reopening it", self.source.name,
                        self.stall_timeout_s)
            self._reopen.set()
            self.source.interrupt()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # handed to the inference loop by get()
            self._failure = e
        finally:
            self._slot.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._reopen.is_set():
                self._reopen_source()
                continue
            # A finite source reads the next frame only once inference has taken the last,
            # so the frame is fresh when taken (low latency) while decode still overlaps it.
            # A paced one (a video file in real time) is handed over like a live camera's.
            waits = not self.source.live and not self.source.paced
            if waits and not self._slot.wait_empty():
                return
            try:
                frame = self._read()
            except CameraError as e:
                self._on_error(e)
                continue
            if self._reopen.is_set() or self._stop.is_set():
                continue  # stale: the watchdog fired while this read hung
            if frame is None:
                log.debug("%s ended", self.source.name)
                self._check_anything_read()
                return
            self.counters.frames += 1
            self._skipped = 0
            self.backoff.reset()
            if not self._slot.put(frame, wait=waits):
                return

    def _read(self) -> Frame | None:
        self._read_started = time.monotonic()
        try:
            return self.source.read()
        finally:
            self._read_started = None

    def _check_anything_read(self) -> None:
        """A finite source that ended without a single readable frame is an error."""
        if self.counters.frames > 0:
            return
        last = f"; the last error: {self._last_error}" if self._last_error is not None else ""
        raise CameraError(f"{self.source.name}: no frame could be read{last}")

    def _on_error(self, error: CameraError) -> None:
        """A live source is reopened; a finite one skips the bad frame (up to a limit)."""
        if self._reopen.is_set() or self._stop.is_set():
            return  # the watchdog interrupted this read, or we are stopping
        self.counters.camera_errors += 1
        self._last_error = error
        if self.source.live:
            log.warning("%s; reopening", error)
            self._reopen.set()
            return
        self._skipped += 1
        if self._skipped > MAX_SKIPPED:
            raise error
        log.warning("%s; skipping it", error)

    def _reopen_source(self) -> None:
        """Reopen with backoff until it works or the grabber is stopped."""
        while not self._stop.is_set():
            if self._stop.wait(self.backoff.next_delay()):
                return
            try:
                self.source.reopen()
            except CameraError as e:
                self.counters.camera_errors += 1
                log.warning("reopening %s failed: %s", self.source.name, e)
                continue
            self.counters.reconnects += 1
            self._reopen.clear()
            log.info("reopened %s", self.source.name)
            return
