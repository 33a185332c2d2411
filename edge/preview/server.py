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
  gets ``503`` and is closed. At most ``ACCEPT_RATE`` connections are accepted a second; the
  rest wait in the kernel's backlog, so a flood costs this thread a bounded amount of work.
* **One clock**: accepting, sending JPEGs and events and the timeouts all run on one tick
  (10 a second by default), so the number of clients does not set how often this thread wakes
  and takes the interpreter's lock from the labelling loop.
* **Timeouts**: a request head must arrive whole within ``REQUEST_TIMEOUT_S`` and within 8 KiB;
  a kept-alive connection idle for ``IDLE_TIMEOUT_S`` is closed (one sweep a second on the
  tick, no timer per connection). Connections are protocols, not tasks or threads: an idle one
  costs a descriptor and a few hundred bytes.
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
import contextlib
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable, Coroutine
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
SWEEP_S = 1.0
TICK_MIN_HZ = 10.0
RESPONSE_BACKLOG = 256 * 1024
ACCEPT_RATE = 100.0  # new connections a second, at most (the rest wait in the kernel's backlog)
ACCEPT_BURST = 256
IDLE_TIMEOUT_S = 15.0
WRITE_TIMEOUT_S = 10.0
SLOW_CLIENT_S = 10.0
KEEPALIVE_S = 10.0
EVENT_BACKLOG = 64 * 1024
VIEWER_BACKLOG_FRAMES = 2
STATUS_CACHE_S = 0.2
LISTEN_BACKLOG = 128  # connections the kernel holds for us (no descriptor of ours until accepted)
# Descriptors kept free for everything else in the process (model, camera, sinks, logs) and
# for connections accepted in one batch before the limit is applied to them.
FD_RESERVE = 256 + 64
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
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
    except OSError as e:
        raise PreviewError(f"--preview {host}:{port}: cannot listen there: "
                           f"{e.strerror or e}; pick another port or address") from e
    return sock


class _Conn(asyncio.Protocol):
    """One client connection: reads request heads, answers them, or becomes a stream client."""

    def __init__(self, server: PreviewServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock  # until the transport takes it over
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.stream: str | None = None  # "viewer" or "listener" once streaming
        self.deadline: float | None = time.monotonic() + REQUEST_TIMEOUT_S
        self.stalled_since: float | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.closing:  # evicted while being set up
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._forget(self)

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def data_received(self, data: bytes) -> None:
        if self.stream is not None or self.closing:
            return  # whatever a stream client sends is ignored
        self.buffer += data
        while not self.closing and self.stream is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self.server._error(self, 431, "request head larger than 8 KiB")
                return
            if end > MAX_HEAD_BYTES:
                self.server._error(self, 431, "request head larger than 8 KiB")
                return
            head = bytes(self.buffer[:end])
            del self.buffer[:end + 4]
            self.server._request(self, head)

    @property
    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        """Close after what is written has been sent."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close now, dropping what is unsent."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()
        else:
            self.sock.close()


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
        self._idle: dict[_Conn, None] = {}  # waiting for a request, oldest first: evicted first
        self._viewers: set[_Conn] = set()
        self._listeners: set[_Conn] = set()
        self._adopting: set[asyncio.Task[Any]] = set()
        self._tokens = float(ACCEPT_BURST)
        self._tokens_at = time.monotonic()
        self._accept_paused_until = 0.0
        self._sent_jpeg: bytes | None = None
        self._events_sent_at = 0
        self._quiet_since = time.monotonic()
        self._closed = False
        self._status_cache: tuple[float, bytes] = (float("-inf"), b"")
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="edge-preview-http",
                                        daemon=True)

    def __enter__(self) -> Self:
        self.hub.start()
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
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
        log.debug("preview: %s", context.get("message") or context.get("exception"))

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        ticker = asyncio.create_task(self._keep(self._ticker))
        self._ready.set()
        await self._stopping.wait()
        self._closed = True
        ticker.cancel()
        for conn in list(self._conns):
            conn.abort()

    @staticmethod
    async def _keep(periodic: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``periodic`` again should a bug end it (said once): the streams never stall."""
        warned = False
        while True:
            try:
                await periodic()
            except Exception:
                if not warned:
                    log.warning("preview: %s failed; restarting it", periodic.__name__,
                                exc_info=True)
                    warned = True
                await asyncio.sleep(1.0)

    # --- accepting, within the limits -----------------------------------------------------------

    def _accept(self, now: float) -> None:
        """Take the connections waiting in the kernel's backlog, as many as the rate allows."""
        if now < self._accept_paused_until:
            return
        self._tokens = min(ACCEPT_BURST, self._tokens + (now - self._tokens_at) * ACCEPT_RATE)
        self._tokens_at = now
        counters = self.hub.counters
        while self._tokens >= 1 and not self._closed:
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE, ENFILE, ENOBUFS: wait for descriptors to come back
                counters.accept_errors += 1
                if counters.accept_errors == 1:
                    log.warning("the preview cannot accept connections (%s); pausing 1 s",
                                e.strerror or e)
                self._accept_paused_until = now + 1.0
                return
            self._tokens -= 1
            if len(self._conns) >= self.limit and not self._make_room():
                counters.refused += 1
                try:  # what the client sent already is read, so the close is no reset
                    sock.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        sock.recv(MAX_HEAD_BYTES)
                    sock.send(response_head(503, {"Content-Length": "0", "Retry-After": "1",
                                                  "Connection": "close"}))
                except OSError:
                    pass
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(self, sock)
            self._opened(conn)
            task = self._loop.create_task(self._adopt(conn))
            self._adopting.add(task)
            task.add_done_callback(self._adopting.discard)

    def _make_room(self) -> bool:
        """Close the oldest idle connection; False when every connection is busy."""
        if not self._idle:
            return False
        victim = next(iter(self._idle))
        self._forget(victim)
        victim.abort()
        self.hub.counters.evicted += 1
        return True

    async def _adopt(self, conn: _Conn) -> None:
        """Hand the accepted socket to a transport speaking to ``conn``."""
        if conn.closing:
            return
        try:
            await self._loop.connect_accepted_socket(lambda: conn, conn.sock)
        except OSError:
            self._forget(conn)
            conn.sock.close()

    def _opened(self, conn: _Conn) -> None:
        self._conns.add(conn)
        self._idle[conn] = None
        self.hub.counters.connections = len(self._conns)

    def _forget(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        self._idle.pop(conn, None)
        self._viewers.discard(conn)
        self._listeners.discard(conn)
        counters = self.hub.counters
        counters.connections = len(self._conns)
        counters.viewers = len(self._viewers)
        counters.listeners = len(self._listeners)

    def _sweep(self, now: float) -> None:
        """Close connections whose request (or next request) is overdue."""
        for conn in list(self._conns):
            if conn.deadline is not None and now > conn.deadline:
                self.hub.counters.timed_out += 1
                self._forget(conn)
                conn.abort()

    async def _ticker(self) -> None:
        """Everything periodic on one clock, so clients cannot make this thread wake (and take
        the interpreter's lock from the labelling loop) more often: new connections, the
        newest JPEG to the viewers, the newest event to the event clients, timeouts."""
        period = 1.0 / max(self.options.max_fps, self.options.events_per_s, TICK_MIN_HZ)
        event_period = 1.0 / self.options.events_per_s
        next_event = next_sweep = time.monotonic()
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            self.hub.counters.cpu_s = time.thread_time()
            self._accept(now)
            if self._viewers:
                self.hub.want_frame()
            jpeg = self.hub.jpeg
            if jpeg is not None and jpeg is not self._sent_jpeg:
                self._sent_jpeg = jpeg
                self._send_jpeg(jpeg, now)
            if now >= next_event:
                next_event = now + event_period - period / 2
                self._send_event(now)
            if now >= next_sweep:
                next_sweep = now + SWEEP_S
                self._sweep(now)

    # --- requests -------------------------------------------------------------------------------

    def _request(self, conn: _Conn, head: bytes) -> None:
        """Answer one request head (called from the connection's ``data_received``)."""
        self._idle.pop(conn, None)
        try:
            request = parse_head(head)
        except BadRequestError as e:
            self._error(conn, e.status, str(e))
            return
        refusal = self.guard.refusal(request)
        if refusal is not None:
            extra = {"WWW-Authenticate": "Bearer"} if refusal[0] == 401 else {}
            self._error(conn, *refusal, extra)
            return
        if request.path == "/stream.mjpg":
            self._stream(conn, request)
            return
        if request.path == "/events":
            self._events(conn, request)
            return
        keep = request.keep_alive and not request.has_body and conn.buffered < RESPONSE_BACKLOG
        self._answer(conn, request, keep)
        if keep:
            conn.deadline = time.monotonic() + IDLE_TIMEOUT_S
            self._idle[conn] = None
        else:
            conn.deadline = time.monotonic() + WRITE_TIMEOUT_S
            conn.close()

    def _error(self, conn: _Conn, code: int, reason: str,
               headers: dict[str, str] | None = None) -> None:
        self.hub.counters.bad_requests += 1
        self._idle.pop(conn, None)
        body = (reason + "\n").encode("utf-8", "replace")
        conn.write(response_head(code, {
            "Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body)),
            "Connection": "close", **(headers or {})}) + body)
        conn.deadline = time.monotonic() + WRITE_TIMEOUT_S
        conn.close()

    def _answer(self, conn: _Conn, request: Request, keep: bool) -> None:
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
        conn.write(head + (body if request.method == "GET" else b""))

    def _status_body(self) -> bytes:
        at, body = self._status_cache
        now = time.monotonic()
        if now - at >= STATUS_CACHE_S:
            body = json.dumps(self.hub.snapshot()).encode()
            self._status_cache = (now, body)
        return body

    def _metrics(self) -> bytes:
        return prometheus_text(self.hub.live_summary(), self.hub.numbers()).encode()

    def _open_stream(self, conn: _Conn, request: Request, kind: str) -> bool:
        """Send the stream's head; True when the stream follows (GET), False for HEAD."""
        conn.write(response_head(200, {"Content-Type": kind, "Connection": "close"}))
        if request.method != "GET":
            conn.close()
            return False
        conn.deadline = None
        return True

    # --- the MJPEG stream -----------------------------------------------------------------------

    def _stream(self, conn: _Conn, request: Request) -> None:
        if not self._open_stream(conn, request,
                                 f"multipart/x-mixed-replace; boundary={BOUNDARY}"):
            return
        conn.stream = "viewer"
        jpeg = self.hub.jpeg
        if jpeg is not None:
            conn.write(self._part(jpeg))
        self._viewers.add(conn)
        self.hub.counters.viewers = len(self._viewers)

    @staticmethod
    def _part(jpeg: bytes) -> bytes:
        return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                "\r\n\r\n").encode() + jpeg + b"\r\n"

    def _send_jpeg(self, jpeg: bytes, now: float) -> None:
        part = self._part(jpeg)
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

    def _events(self, conn: _Conn, request: Request) -> None:
        if not self._open_stream(conn, request, "text/event-stream"):
            return
        conn.stream = "listener"
        conn.write(b"retry: 1000\n\n")
        event = self.hub.latest_event()[1]
        if event is not None:
            conn.write(self._message(event.as_dict()))
        self._listeners.add(conn)
        self.hub.counters.listeners = len(self._listeners)

    @staticmethod
    def _message(data: dict[str, Any]) -> bytes:
        text = json.dumps(data, separators=(",", ":"))
        return f"event: label\nid: {data['seq']}\ndata: {text}\n\n".encode()

    def _send_event(self, now: float) -> None:
        """The newest event, if new, to every event client (a keep-alive comment if quiet)."""
        observed, event = self.hub.latest_event()
        counters = self.hub.counters
        if not self._listeners:
            self._events_sent_at = observed
            return
        if observed != self._events_sent_at and event is not None:
            counters.events_coalesced += max(0, observed - self._events_sent_at - 1)
            self._events_sent_at = observed
            message = self._message(event.as_dict())
        elif now - self._quiet_since >= KEEPALIVE_S:
            message = b": keep-alive\n\n"
        else:
            return
        self._quiet_since = now
        for conn in list(self._listeners):
            if conn.buffered > EVENT_BACKLOG:
                self._drop_slow(conn)
                continue
            conn.write(message)
            counters.events_sent += 1
