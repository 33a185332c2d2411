"""Playing a video file at its own pace: when each frame is due, from its timestamp (pure)."""

from __future__ import annotations

MAX_LAG_S = 1.0  # further behind than this (slow decode, a pause): start the clock anew
DEFAULT_FPS = 30.0


class Pacer:
    """Maps a file's presentation timestamps onto the monotonic clock.

    The first frame (and the first after :meth:`reset`, e.g. a rewind) is due at once; every
    later one ``pts - first_pts`` seconds after it. A frame far behind its time re-anchors the
    clock, so a stall is never followed by a fast-forward burst.
    """

    def __init__(self, max_lag_s: float = MAX_LAG_S) -> None:
        self.max_lag_s = max_lag_s
        self._anchor: tuple[float, float] | None = None  # (clock, pts) of the first frame
        self._last_pts: float | None = None

    def reset(self) -> None:
        self._anchor = None
        self._last_pts = None

    def timestamp(self, pts_s: float | None, fps: float | None) -> float:
        """The frame's timestamp: ``pts_s`` when it moves forward, else the last one plus one
        frame interval (containers without usable timestamps, or a decoder reporting 0)."""
        step = 1.0 / fps if fps is not None and 0 < fps <= 1000 else 1.0 / DEFAULT_FPS
        last = self._last_pts
        if pts_s is None or pts_s != pts_s or (last is not None and pts_s <= last):
            pts_s = step if last is None else last + step
        self._last_pts = pts_s
        return pts_s

    def delay(self, pts_s: float, now: float) -> float:
        """Seconds to wait from ``now`` until the frame at ``pts_s`` is due (0: at once)."""
        anchor = self._anchor
        if anchor is None or pts_s < anchor[1]:
            self._anchor = (now, pts_s)
            return 0.0
        due = anchor[0] + (pts_s - anchor[1])
        if now - due > self.max_lag_s:
            self._anchor = (now, pts_s)
            return 0.0
        return max(0.0, due - now)
