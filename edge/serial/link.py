"""Opening a serial port or pyserial URL, without resetting the device on the other end.

Arduino-style boards reset when DTR is asserted. Linux asserts DTR when a tty is opened and, with
HUPCL set (the default), drops it again on close, so every open of ``/dev/ttyACM0`` resets the
board. :func:`open_link` therefore clears HUPCL after opening: DTR then stays asserted between
sessions and later opens do not toggle it. (The very first open after plugging in still asserts
DTR on Linux; no user-space setting can prevent that.) On Windows DTR and RTS are kept low from
the start. ``reset_on_open=True`` pulses DTR on purpose, as the Arduino IDE does.

pyserial is imported here only, when a link is opened.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from edge.errors import BackendError, SerialLinkError

if TYPE_CHECKING:
    from serial import SerialBase

log = logging.getLogger(__name__)

DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT = 0.1
RESET_PULSE_S = 0.1
LIST_PORTS = "python -m serial.tools.list_ports"
URL_HINT = ("use a device path or a pyserial URL (loop://, spy://PORT, socket://HOST:PORT, "
            "hwgrep://VID:PID)")


def open_link(url: str, baud: int = DEFAULT_BAUD, *, reset_on_open: bool = False,
              timeout: float = DEFAULT_TIMEOUT) -> SerialBase:
    """Open ``url`` (a device path or any pyserial URL) for reading and writing.

    Args:
        url: ``/dev/ttyACM0``, ``COM3``, ``loop://``, ``spy:///dev/ttyUSB0``,
            ``socket://host:port``, ``hwgrep://2341:0043`` ...
        baud: line speed; ignored by URLs without one (``socket://``).
        reset_on_open: pulse DTR after opening to reset an Arduino-style board.
        timeout: seconds a read waits for data before returning what it has.

    Returns:
        The open pyserial port; use it as a context manager to close it.

    Raises:
        SerialLinkError: the port does not exist, is busy or forbidden, or the URL is invalid;
            the message names the port and what to do.
        BackendError: pyserial is not installed.
    """
    serial = _pyserial()
    try:
        port = serial.serial_for_url(url, do_not_open=True, baudrate=baud, timeout=timeout)
    except ValueError as e:
        raise SerialLinkError(f"cannot use {url!r} at {baud} baud: {e}; {URL_HINT}") from e
    except serial.SerialException as e:
        raise SerialLinkError(_explain(url, e)) from e
    if os.name == "nt" and not reset_on_open:
        port.dtr = False  # applied by pyserial as the port opens
        port.rts = False
    try:
        port.open()
    except (serial.SerialException, OSError) as e:
        raise SerialLinkError(_explain(url, e)) from e
    if reset_on_open:
        _pulse_dtr(port)
    else:
        _keep_dtr_on_close(port)
    log.debug("opened %s at %d baud", url, baud)
    return port


def _pyserial() -> Any:
    try:
        import serial
    except ImportError as e:
        raise BackendError("pyserial is not installed; install it with "
                           "`pip install pyserial`") from e
    return serial


def _explain(url: str, error: Exception) -> str:
    """One line saying what went wrong with ``url`` and what to do about it."""
    code = getattr(error, "errno", None)
    if code == errno.ENOENT:
        return f"no such port {url}; plug in the device or list ports with `{LIST_PORTS}`"
    if code == errno.EACCES:
        return (f"permission denied on {url}; add yourself to the dialout group "
                "(`sudo usermod -aG dialout $USER`, then log in again)")
    if code == errno.EBUSY:
        return f"{url} is busy; close the other program using it (a serial monitor?)"
    if "Could not configure port" in str(error):
        return f"{url} is not a serial port ({error}); {URL_HINT}"
    if "no ports found matching" in str(error):
        return f"no port matches {url}; list ports and their VID:PID with `{LIST_PORTS} -v`"
    return f"cannot open {url}: {error}"


def _pulse_dtr(port: SerialBase) -> None:
    """Reset an Arduino-style board: DTR and RTS low, then high again."""
    try:
        port.dtr = False
        port.rts = False
        time.sleep(RESET_PULSE_S)
        port.dtr = True
        port.rts = True
    except (OSError, ValueError) as e:  # ptys and sockets have no modem lines
        log.debug("cannot pulse DTR on %s: %s", port.portstr, e)


def _keep_dtr_on_close(port: SerialBase) -> None:
    """Clear HUPCL so closing the port does not drop DTR (and reset the board next time)."""
    fd = getattr(port, "fd", None)
    if not isinstance(fd, int):
        return
    import termios

    try:
        attrs = termios.tcgetattr(fd)
        attrs[2] &= ~termios.HUPCL
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error as e:
        log.debug("cannot clear HUPCL on %s: %s", port.portstr, e)
