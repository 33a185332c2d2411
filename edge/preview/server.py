"""The preview's HTTP server: one asyncio loop in a thread of its own, every client on it.

    /              the page (MJPEG picture, label updated from the event stream)
    /stream.mjpg   multipart/x-mixed-replace JPEG frames (encoded only while watched)
    /events        label events as Server-Sent Events (``event: label``, JSON data)
    /status        JSON: live run summary, preview numbers, last label event
    /metrics       Prometheus text format

What keeps it from hurting the labelling loop, whoever connects:

* **Bounded connections**: at most ``max_connections`` (lowered to leave the process room under
  its descriptor limit). At the limit a new connection takes the place of the oldest idle one
  (no request yet, or between requests); when every connection is busy streaming, the new one
  gets ``503`` and is closed.
* **Timeouts**: a request head must arrive whole within ``REQUEST_TIMEOUT_S`` and within 8 KiB;
  a kept-alive connection idle for ``IDLE_TIMEOUT_S`` is closed.
* **Never waiting for a client**: stream clients are written to without waiting. A viewer still
  busy with earlier frames skips frames, and is dropped after ``SLOW_CLIENT_S`` of that; an
  event client with ``EVENT_BACKLOG`` bytes unsent is dropped (browsers reconnect).
* **Bounded work per frame**: the loop only hands over a reference (see
  :class:`~edge.preview.encoder.PreviewHub`); one JPEG per frame for all viewers at most
  ``max_fps`` a second; the newest event at most ``events_per_s`` a second, serialised once for
  all event clients; ``/status`` computed at most every ``STATUS_CACHE_S``.
* **Host and token** checked on every request (:class:`~edge.preview.guard.Guard`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable
from html import escape
from importlib import resources
from string import Template
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from edge.errors import PreviewError
from edge.preview import LOOPBACK, PreviewOptions
from edge.preview.encoder import PreviewHub
from edge.preview.guard import MAX_HEAD_BYTES, BadRequestError, Guard, Request, parse_head
from edge.preview.metrics import prometheus_text

log = logging.getLogger(__name__)

BOUNDARY = "edgeframe"
REQUEST_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 15.0
WRITE_TIMEOUT_S = 10.0
SLOW_CLIENT_S = 10.0
KEEPALIVE_S = 10.0
EVENT_BACKLOG = 64 * 1024
VIEWER_BACKLOG_FRAMES = 2
STATUS_CACHE_S = 0.2
ACCEPT_BATCH = 64
# Descriptors kept free for everything else in the process (model, camera, sinks, logs) and
# for connections accepted in one batch before the limit is applied to them.
FD_RESERVE = 256 + ACCEPT_BATCH
MIN_CONNECTIONS = 8

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 421: "Misdirected Request",
           431: "Request Header Fields Too Large", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}


def render_page(title: str, token: str | None) -> bytes:
    """The page from ``page.html``; values are escaped here and only here."""
    template = Template(resources.files("edge.preview").joinpath("page.html").read_text("utf-8"))
    query = f"?token={quote(token, safe='')}" if token else ""
    return template.substitute(title=escape(title), query=escape(query)).encode("utf-8")


def connection_limit(wanted: int, soft_limit: int | None = None) -> int:
    """``wanted`` connections, lowered so they cannot use up the process's descriptors."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return wanted
    return max(MIN_CONNECTIONS, min(wanted, soft_limit - FD_RESERVE))


def response_head(code: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {code} {REASONS.get(code, 'Error')}",
             "Cache-Control: no-store", "X-Content-Type-Options: nosniff"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (IPv4 or IPv6 as the address says)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family = infos[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            sock.listen(ACCEPT_BATCH)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
    except OSError as e:
        raise PreviewError(f"--preview {host}:{port}: cannot listen there: "
                           f"{e.strerror or e}; pick another port or address") from e
    return sock


class _Conn:
    """One client connection and where it stands."""

    __slots__ = ("stalled_since", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.stalled_since: float | None = None

    @property
    def buffered(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        self.writer.transport.write(data)

    def abort(self) -> None:
        self.writer.transport.abort()


class PreviewServer:
    """Serves a :class:`PreviewHub` on ``options.host:options.port`` from a thread of its own.

    Use it as a context manager; the address is bound in the constructor.

    Raises:
        PreviewError: the address cannot be bound (in use, not an address of this host).
    """

    def __init__(self, options: PreviewOptions, title: str = "edge-run") -> None:
        self.options = options
        self.hub = PreviewHub(options)
        self.page = render_page(title, options.token)
        self.guard = Guard(options.host, options.hosts, options.token)
        self.limit = connection_limit(options.max_connections)
        self._sock = _listen(options.host, options.port)
        host, port = self._sock.getsockname()[:2]
        self.url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
        if options.host not in (LOOPBACK, "localhost", "::1") and not options.token:
            log.warning("the preview at %s is open to the network without --preview-token",
                        self.url)
        self._conns: set[_Conn] = set()
        self._idle: dict[_Conn, None] = {}  # oldest first: the ones to evict at the limit
        self._viewers: set[_Conn] = set()
        self._listeners: set[_Conn] = set()
        self._status_cache: tuple[float, bytes] = (float("-inf"), b"")
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="edge-preview-http",
                                        daemon=True)

    def __enter__(self) -> Self:
        self.hub.on_jpeg = self._jpeg_from_thread
        self.hub.start()
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.hub.on_jpeg = None
        self.hub.stop()
        stopping = self._stopping
        if stopping is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop already ended
                pass
        self._thread.join(10)
        self._sock.close()

    # --- the loop thread ----------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(self._loop_error)
        try:
            self._loop.run_until_complete(self._main())
        except Exception:  # never the labelling's problem: said once, preview gone
            log.exception("the preview server stopped")
        finally:
            self._ready.set()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    @staticmethod
    def _loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # e.g. accept() failing with EMFILE: asyncio pauses accepting and retries by itself.
        log.warning("preview: %s", context.get("message") or context.get("exception"))

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._client, sock=self._sock,
                                            limit=MAX_HEAD_BYTES, backlog=ACCEPT_BATCH)
        ticker = asyncio.create_task(self._event_ticker())
        self._ready.set()
        await self._stopping.wait()
        server.close()
        ticker.cancel()
        for conn in list(self._conns):
            conn.abort()

    # --- connections ----------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        counters = self.hub.counters
        if len(self._conns) >= self.limit:
            if self._idle:
                victim = next(iter(self._idle))
                self._forget(victim)
                victim.abort()
                counters.evicted += 1
            else:
                counters.refused += 1
                conn.write(response_head(503, {"Content-Length": "0", "Retry-After": "1",
                                               "Connection": "close"}))
                writer.transport.close()
                return
        self._conns.add(conn)
        counters.connections = len(self._conns)
        try:
            await self._converse(conn, reader)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError):
            pass  # the client went away, or was too slow
        except Exception:  # a bug here costs one connection, never the server
            log.warning("preview: a connection failed", exc_info=True)
        finally:
            self._forget(conn)
            conn.abort()

    def _forget(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        self._idle.pop(conn, None)
        self._viewers.discard(conn)
        self._listeners.discard(conn)
        counters = self.hub.counters
        counters.connections = len(self._conns)
        counters.viewers = len(self._viewers)
        counters.listeners = len(self._listeners)

    async def _converse(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        """Requests on one connection until it closes, times out or turns into a stream."""
        timeout = REQUEST_TIMEOUT_S
        while True:
            self._idle[conn] = None
            try:
                async with asyncio.timeout(timeout):
                    head = await reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                self.hub.counters.timed_out += 1
                return
            except asyncio.LimitOverrunError:
                await self._error(conn, 431, "request head larger than 8 KiB")
                return
            except asyncio.IncompleteReadError:
                return
            self._idle.pop(conn, None)
            try:
                request = parse_head(head)
            except BadRequestError as e:
                await self._error(conn, e.status, str(e))
                return
            refusal = self.guard.refusal(request)
            if refusal is not None:
                extra = {"WWW-Authenticate": "Bearer"} if refusal[0] == 401 else {}
                await self._error(conn, *refusal, extra)
                return
            if request.path == "/stream.mjpg":
                await self._stream(conn, reader, request)
                return
            if request.path == "/events":
                await self._events(conn, reader, request)
                return
            keep = request.keep_alive and not request.has_body
            await self._answer(conn, request, keep)
            if not keep:
                return
            timeout = IDLE_TIMEOUT_S

    async def _send(self, conn: _Conn, data: bytes) -> None:
        conn.write(data)
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await conn.writer.drain()

    async def _error(self, conn: _Conn, code: int, reason: str,
                     headers: dict[str, str] | None = None) -> None:
        self.hub.counters.bad_requests += 1
        body = (reason + "\n").encode("utf-8", "replace")
        await self._send(conn, response_head(code, {
            "Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body)),
            "Connection": "close", **(headers or {})}) + body)

    async def _answer(self, conn: _Conn, request: Request, keep: bool) -> None:
        routes: dict[str, Callable[[], tuple[str, bytes]]] = {
            "/": lambda: ("text/html; charset=utf-8", self.page),
            "/status": lambda: ("application/json", self._status_body()),
            "/metrics": lambda: ("text/plain; version=0.0.4; charset=utf-8", self._metrics()),
        }
        route = routes.get(request.path)
        if route is None:
            code, (kind, body) = 404, ("text/plain; charset=utf-8", b"not found\n")
        else:
            code, (kind, body) = 200, route()
        head = response_head(code, {"Content-Type": kind, "Content-Length": str(len(body)),
                                    "Connection": "keep-alive" if keep else "close"})
        await self._send(conn, head + (body if request.method == "GET" else b""))

    def _status_body(self) -> bytes:
        at, body = self._status_cache
        now = time.monotonic()
        if now - at >= STATUS_CACHE_S:
            body = json.dumps(self.hub.snapshot()).encode()
            self._status_cache = (now, body)
        return body

    def _metrics(self) -> bytes:
        return prometheus_text(self.hub.live_summary(), self.hub.numbers()).encode()

    async def _open_stream(self, conn: _Conn, request: Request, kind: str) -> bool:
        await self._send(conn, response_head(200, {"Content-Type": kind,
                                                   "Connection": "close"}))
        return request.method == "GET"

    async def _hold(self, reader: asyncio.StreamReader) -> None:
        """Until the client closes (whatever it sends meanwhile is read and ignored)."""
        while await reader.read(4096):
            pass

    # --- the MJPEG stream -----------------------------------------------------------------------

    async def _stream(self, conn: _Conn, reader: asyncio.StreamReader, request: Request) -> None:
        if not await self._open_stream(conn, request,
                                       f"multipart/x-mixed-replace; boundary={BOUNDARY}"):
            return
        jpeg = self.hub.jpeg
        if jpeg is not None:
            conn.write(self._part(jpeg))
        self._viewers.add(conn)
        self.hub.counters.viewers = len(self._viewers)
        await self._hold(reader)

    @staticmethod
    def _part(jpeg: bytes) -> bytes:
        return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                "\r\n\r\n").encode() + jpeg + b"\r\n"

    def _jpeg_from_thread(self, jpeg: bytes) -> None:
        """From the encoder thread: hand the JPEG to the loop (never waits)."""
        if not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._send_jpeg, jpeg)
            except RuntimeError:  # the loop is closing
                pass

    def _send_jpeg(self, jpeg: bytes) -> None:
        part = self._part(jpeg)
        now = time.monotonic()
        counters = self.hub.counters
        for conn in list(self._viewers):
            if conn.buffered > VIEWER_BACKLOG_FRAMES * len(part):
                counters.frames_skipped += 1
                conn.stalled_since = conn.stalled_since or now
                if now - conn.stalled_since > SLOW_CLIENT_S:
                    self._drop_slow(conn)
                continue
            conn.stalled_since = None
            conn.write(part)

    def _drop_slow(self, conn: _Conn) -> None:
        self.hub.counters.slow_dropped += 1
        self._forget(conn)
        conn.abort()

    # --- the event stream -----------------------------------------------------------------------

    async def _events(self, conn: _Conn, reader: asyncio.StreamReader, request: Request) -> None:
        if not await self._open_stream(conn, request, "text/event-stream"):
            return
        conn.write(b"retry: 1000\n\n")
        event = self.hub.latest_event()[1]
        if event is not None:
            conn.write(self._message(event.as_dict()))
        self._listeners.add(conn)
        self.hub.counters.listeners = len(self._listeners)
        await self._hold(reader)

    @staticmethod
    def _message(data: dict[str, Any]) -> bytes:
        text = json.dumps(data, separators=(",", ":"))
        return f"event: label\nid: {data['seq']}\ndata: {text}\n\n".encode()

    async def _event_ticker(self) -> None:
        """The newest event to every event client, at most ``events_per_s`` times a second."""
        period = 1.0 / self.options.events_per_s
        sent = 0
        quiet_since = time.monotonic()
        counters = self.hub.counters
        while True:
            await asyncio.sleep(period)
            observed, event = self.hub.latest_event()
            if not self._listeners:
                sent = observed
                continue
            now = time.monotonic()
            if observed != sent and event is not None:
                counters.events_coalesced += max(0, observed - sent - 1)
                sent = observed
                message = self._message(event.as_dict())
            elif now - quiet_since >= KEEPALIVE_S:
                message = b": keep-alive\n\n"
            else:
                continue
            quiet_since = now
            for conn in list(self._listeners):
                if conn.buffered > EVENT_BACKLOG:
                    self._drop_slow(conn)
                    continue
                conn.write(message)
                counters.events_sent += 1
