"""systemd's notify protocol over a plain AF_UNIX datagram socket (no dependency).

Under ``Type=notify`` systemd sets ``NOTIFY_SOCKET``; with ``WatchdogSec=`` it also sets
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). Outside systemd every call is a cheap no-op.

The socket is non-blocking: the inference loop sends from its own thread, and a notify socket
whose queue is full (systemd busy, or a stuck listener) must cost a dropped message, never a
hung run.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes:
    """``@name`` is a Linux abstract socket (leading NUL byte); anything else a path."""
    return b"\0" + value[1:].encode() if value.startswith("@") else value


class SystemdNotifier:
    """Sends ``READY=1``, ``WATCHDOG=1``, ``STATUS=...`` and ``STOPPING=1`` to systemd.

    Args:
        environ: where to find ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``
            (``os.environ`` by default).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = not pid or (pid.isdigit() and int(pid) == os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and watchdog_for_us else None
        self._sock: socket.socket | None = None
        self._last_ping = float("-inf")
        self.ready_sent = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        """Send one state string; False outside systemd, when the socket is gone or its queue
        is full (the message is dropped)."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            self._sock.sendto(state.encode(), _address(self.address))
        except OSError as e:
            log.debug("systemd notify %r failed: %s", state, e)
            return False
        return True

    def frame_classified(self) -> None:
        """Call after each classified frame: READY=1 the first time, then rate-limited pings."""
        if self.address is None:
            return
        if not self.ready_sent:
            self.ready_sent = self.notify("READY=1")
        now = time.monotonic()
        interval = self.watchdog_s / 4 if self.watchdog_s else 1.0
        if now - self._last_ping >= interval:
            self._last_ping = now
            self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
