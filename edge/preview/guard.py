"""Who may ask the preview: the request head, the Host check and the token (pure).

The preview speaks a small subset of HTTP/1.1: ``GET`` and ``HEAD`` of a few paths, no bodies.
:func:`parse_head` turns the bytes up to the blank line into a :class:`Request`;
:class:`Guard` says whether it may be answered:

* **Host**: a browser tricked by DNS rebinding (``evil.example`` resolving to 127.0.0.1) sends
  ``Host: evil.example``; only the bound address, loopback names when bound to loopback, any
  IP literal when bound to all addresses, and the names given with ``--preview-host`` pass.
* **Token**: ``?token=`` or ``Authorization: Bearer`` (the scheme in any case), compared in
  constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

MAX_HEAD_BYTES = 8192
METHODS = ("GET", "HEAD")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


class BadRequestError(ValueError):
    """The request head is not one the preview answers; ``status`` is the HTTP code to send."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One parsed request head.

    Attributes:
        method: ``GET`` or ``HEAD``.
        path: the URL path, percent-decoded.
        query: the raw query string.
        version: ``HTTP/1.0`` or ``HTTP/1.1``.
        headers: header names in lower case -> value (the last one of repeated names).
    """

    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after the answer."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    @property
    def has_body(self) -> bool:
        length = self.headers.get("content-length", "0").strip() or "0"
        return "transfer-encoding" in self.headers or length != "0"


def parse_head(head: bytes) -> Request:
    """The request line and headers (``head`` ends before or at the blank line).

    Raises:
        BadRequestError: malformed (400), not GET/HEAD (405), another HTTP version (505).
    """
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as e:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequestError(400, "undecodable request") from e
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1]:
        raise BadRequestError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequestError(505, "HTTP/1.0 or HTTP/1.1 only")
    if method not in METHODS:
        raise BadRequestError(405, "only GET and HEAD")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise BadRequestError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if version == "HTTP/1.1" and "host" not in headers:
        raise BadRequestError(400, "HTTP/1.1 needs a Host header")
    url = urlsplit(target)
    return Request(method, unquote(url.path) or "/", url.query, version, headers)


def host_name(host_header: str) -> str:
    """The name or address of a Host header, without port and brackets, lower case."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Guard:
    """The checks every request passes before it is answered.

    Args:
        bound: the address the server listens on (as given, e.g. ``127.0.0.1``, ``0.0.0.0``).
        names: extra host names the preview is reached by (``--preview-host``).
        token: the token every request must carry; None for none.
    """

    bound: str
    names: tuple[str, ...] = ()
    token: str | None = None

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether a request with this Host header is meant for this preview.

        A missing Host (HTTP/1.0 clients such as scripts) passes: browsers always send one.
        """
        if host_header is None:
            return True
        name = host_name(host_header)
        if name in {host_name(n) for n in self.names}:
            return True
        bound = host_name(self.bound)
        ip = _ip(name)
        if bound in WILDCARDS:
            return ip is not None or name == "localhost"
        if name == bound:
            return True
        bound_ip = _ip(bound)
        loopback = bound == "localhost" or (bound_ip is not None and bound_ip.is_loopback)
        if loopback:
            return name == "localhost" or (ip is not None and ip.is_loopback)
        return ip is not None and bound_ip is not None and ip == bound_ip

    def authorised(self, request: Request) -> bool:
        """Whether the request carries the token (always, when there is none)."""
        if not self.token:
            return True
        given = parse_qs(request.query).get("token", [""])[0]
        scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            given = credentials.strip()
        return hmac.compare_digest(given.encode("utf-8", "replace"),
                                   self.token.encode("utf-8", "replace"))

    def refusal(self, request: Request) -> tuple[int, str] | None:
        """(status, reason) when the request may not be answered, else None."""
        if not self.host_allowed(request.headers.get("host")):
            return 421, (f"this preview is not served as {host_name(request.headers['host'])!r}; "
                         "start edge-run with --preview-host NAME to allow a name")
        if not self.authorised(request):
            return 401, "a valid token is required"
        return None
