"""What the MQTT sink is told: the broker URL parsed into parts, and where its spool lives.

Pure: no network, no paho-mqtt. ``mqtt://[user:pass@]host[:port]/prefix`` or ``mqtts://`` (TLS,
checked against ``ca_file`` or the system's CA store).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edge.errors import SinkError

SCHEMES = {"mqtt": 1883, "mqtts": 8883}
URL_FORM = "mqtt://[user:pass@]host[:port]/prefix (or mqtts:// for TLS)"
DEFAULT_PREFIX = "edge"
# MQTT topic levels may not hold wildcards; keep names to what every broker and HA accept.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class BrokerUrl:
    """A parsed ``--mqtt`` URL."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    prefix: str

    def redacted(self) -> str:
        """The URL without its password, for logs and status lines."""
        user = f"{self.username}@" if self.username else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{user}{self.host}:{self.port}/{self.prefix}"


def parse_broker_url(url: str) -> BrokerUrl:
    """``mqtt://[user:pass@]host[:port]/prefix`` -> :class:`BrokerUrl`.

    Raises:
        SinkError: the URL is not of that form (the message says what is wrong).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise SinkError(f"--mqtt {_safe(url)}: scheme must be mqtt or mqtts; use {URL_FORM}")
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise SinkError(f"--mqtt {_safe(url)}: the port is not a number in [1, 65535]; "
                        f"use {URL_FORM}") from None
    if not parts.hostname:
        raise SinkError(f"--mqtt {_safe(url)}: no broker host; use {URL_FORM}")
    if "?" in url or "#" in url:
        raise SinkError(f"--mqtt {_safe(url)}: may not contain '?' or '#' (no query, and no "
                        f"MQTT wildcard in the prefix); use {URL_FORM}")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    if not prefix.isprintable() or any(c in prefix for c in "+\x00") or "//" in prefix:
        raise SinkError(f"--mqtt {_safe(url)}: the topic prefix {prefix!r} may not contain "
                        "+, NUL, unprintable characters or empty levels")
    return BrokerUrl(host=parts.hostname, port=port, tls=scheme == "mqtts",
                     username=unquote(parts.username) if parts.username else None,
                     password=unquote(parts.password) if parts.password is not None else None,
                     prefix=prefix)


def _safe(url: str) -> str:
    """``url`` with any password replaced, so error messages never show it."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def device_id(name: str | None) -> str:
    """The device's name as one topic level: the host name by default.

    Raises:
        SinkError: ``name`` is empty or holds characters other than letters, digits, ``_.-``.
    """
    name = socket.gethostname() if name is None else name
    if not _NAME.fullmatch(name):
        raise SinkError(f"--device-name {name!r}: use letters, digits, '_', '.' and '-' only "
                        "(it is one MQTT topic level and a Home Assistant id)")
    return name


def default_state_dir() -> Path:
    """Where the spool lives: ``$STATE_DIRECTORY`` (systemd), else ``$XDG_STATE_HOME/edge``."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edge"


@dataclass(frozen=True)
class MqttOptions:
    """The MQTT sink's part of the options.

    Attributes:
        url: the ``--mqtt`` URL.
        ca_file: CA certificate(s) for ``mqtts://`` (default: the system's).
        device_name: topic level of this device (default: the host name).
        state_dir: folder of the on-disk spool (default: :func:`default_state_dir`).
        spool_max: events the spool holds before dropping the oldest.
        keepalive_s: MQTT keep-alive.
        drain_timeout_s: at the end, how long to keep delivering what is queued.
    """

    url: str
    ca_file: str | None = None
    device_name: str | None = None
    state_dir: str | None = None
    spool_max: int = 100_000
    keepalive_s: int = 30
    drain_timeout_s: float = 10.0
