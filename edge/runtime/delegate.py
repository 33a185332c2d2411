"""The Coral Edge TPU delegate: library names, device strings, and errors a user can act on.

``libedgetpu`` is loaded here and nowhere else, and only when the Edge TPU is chosen. The
backend's own ``load_delegate`` does the loading; it is passed in, so tests stand in for it.

Device strings are Coral's: ``usb``, ``usb:N``, ``pci``, ``pci:N``, ``:N`` (the N-th Edge TPU of
any kind) or empty (the first one found). A model path may carry one as ``model.tflite@usb:0``.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.errors import DelegateError

log = logging.getLogger(__name__)

EDGETPU_LIBRARIES = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}
DEVICE_PATTERN = re.compile(r"(usb|pci)?(:[0-9]+)?")
EDGETPU_OP = "edgetpu-custom-op"  # the custom op edgetpu_compiler puts into a model
DEVICE_FORMS = "usb, usb:N, pci, pci:N or :N"
RUNTIME_PAGE = "https://coral.ai/software/#edgetpu-runtime"
# Linux (Raspberry Pi OS, Debian): the runtime is one apt package from Coral's repository; edge
# loads it through the interpreter's own load_delegate, so pycoral (no wheels past Python 3.9)
# is not needed. The package's udev rule gives the plugdev group the USB accelerator.
APT_PACKAGE = "libedgetpu1-std"
APT_SOURCE = "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main"
UDEV_RULE = "/lib/udev/rules.d/60-libedgetpu1-std.rules"
INSTALL_HINTS = {
    "Linux": (f"install {APT_PACKAGE} from Coral's apt repository ({APT_SOURCE}; "
              f"{RUNTIME_PAGE}); pycoral is not needed"),
}
INSTALL_HINT = f"install the Edge TPU runtime (libedgetpu, {RUNTIME_PAGE})"
ACCESS_HINTS = {
    "usb": (f"plug in the accelerator, or replug it after installing {APT_PACKAGE} (its USB udev "
            f"rule {UDEV_RULE} lets the plugdev group open it: sudo usermod -aG plugdev $USER, "
            "then log in again)"),
    "pci": ("the PCIe/M.2 Edge TPU needs Coral's gasket-dkms driver and /dev/apex_0 readable by "
            "your user (the apex group)"),
}


def edgetpu_library(system: str | None = None) -> str:
    """The Edge TPU runtime's library name on ``system`` (default: this one).

    Raises:
        DelegateError: there is no Edge TPU runtime for that system.
    """
    system = system or platform.system()
    try:
        return EDGETPU_LIBRARIES[system]
    except KeyError:
        raise DelegateError(f"the Edge TPU runtime is not available on {system}; it exists for "
                            f"{', '.join(EDGETPU_LIBRARIES)}") from None


def check_device(device: str) -> str:
    """``device`` when it is one of Coral's device strings (``""`` = the first Edge TPU).

    Raises:
        DelegateError: naming the string and the accepted forms.
    """
    if not DEVICE_PATTERN.fullmatch(device):
        raise DelegateError(f"Edge TPU device {device!r} is not one of {DEVICE_FORMS} "
                            "(N counts from 0)")
    return device


def split_model_device(spec: str) -> tuple[str, str | None]:
    """``model.tflite@usb:0`` -> ``("model.tflite", "usb:0")``; no ``@device`` -> device None.

    A path that exists as a file is never split, so file names containing ``@`` still work.
    """
    path, sep, device = spec.rpartition("@")
    if not sep or Path(spec).is_file() or not DEVICE_PATTERN.fullmatch(device):
        return spec, None
    return path, device


def load_edgetpu_delegate(load_delegate: Callable[..., Any], device: str | None = None, *,
                          reason: str = "the Edge TPU was requested", system: str | None = None,
                          open_library: Callable[[str], Any] = ctypes.CDLL) -> Any:
    """Load the Edge TPU delegate for ``device`` through the backend's ``load_delegate``.

    The library is opened once on its own first: when it is missing, ``load_delegate`` fails
    half-constructed and prints an ignored-exception traceback at garbage collection.

    Args:
        load_delegate: the interpreter package's ``load_delegate(library, options)``.
        device: a Coral device string, or None/``""`` for the first Edge TPU found.
        reason: why the Edge TPU is needed, to start error messages with.
        system: ``platform.system()`` value to pick the library name for (tests).
        open_library: how to open a shared library (tests).

    Raises:
        DelegateError: the runtime library is missing, or no Edge TPU answers at ``device``.
    """
    library = edgetpu_library(system)
    device = check_device(device or "")
    where = f"at device {device!r}" if device else "on USB or PCIe"
    linux = (system or platform.system()) == "Linux"
    try:
        open_library(library)
    except OSError as e:
        install = INSTALL_HINTS["Linux"] if linux else INSTALL_HINT
        raise DelegateError(f"{reason} but the Edge TPU runtime {library} is not installed "
                            f"({_first_line(e)}); {install}, and plug in the accelerator, "
                            "or use the CPU version of the model") from e
    options = {"device": device} if device else {}
    try:
        delegate = load_delegate(library, options)
    except (ValueError, OSError, RuntimeError) as e:
        raise DelegateError(f"{reason} but no Edge TPU was found {where} ({_first_line(e)}); "
                            f"{_access_hint(device, linux)}, check the device string, or use "
                            "the CPU version of the model") from e
    log.info("Edge TPU delegate loaded from %s %s", library, where)
    return delegate


def _access_hint(device: str, linux: bool) -> str:
    """What lets this user reach the Edge TPU at ``device`` (Linux: the udev rule or driver)."""
    if not linux:
        return "plug in the accelerator (replug it after installing libedgetpu)"
    kinds = [kind for kind in ACCESS_HINTS if device.startswith(kind)] or list(ACCESS_HINTS)
    return "; ".join(ACCESS_HINTS[kind] for kind in kinds)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines[:2]) if lines else type(error).__name__
