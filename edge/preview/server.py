"""The preview's HTTP server: stdlib ``ThreadingHTTPServer``, one thread per client.

    /              the page (MJPEG picture, label updated from the event stream)
    /stream.mjpg   multipart/x-mixed-replace JPEG frames (encoded only while watched)
    /events        label events as Server-Sent Events (``event: label``, JSON data)
    /status        JSON: last run summary, preview numbers, last label event
    /metrics       Prometheus text format

With a token, every request must carry it as ``?token=`` or ``Authorization: Bearer``.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import threading
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from string import Template
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, urlsplit

from edge.errors import PreviewError
from edge.preview import LOOPBACK, PreviewOptions
from edge.preview.encoder import PreviewHub
from edge.preview.metrics import prometheus_text

log = logging.getLogger(__name__)

BOUNDARY = "edgeframe"
KEEPALIVE_S = 10.0


def render_page(title: str, token: str | None) -> bytes:
    """The page from ``page.html``; values are escaped here and only here."""
    template = Template(resources.files("edge.preview").joinpath("page.html").read_text("utf-8"))
    query = f"?token={quote(token, safe='')}" if token else ""
    return template.substitute(title=escape(title), query=escape(query)).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("preview %s: " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._authorised(url.query):
            self._send(401, "text/plain; charset=utf-8", b"a valid token is required\n",
                       {"WWW-Authenticate": "Bearer"})
            return
        route = {"/": self._page, "/stream.mjpg": self._stream, "/events": self._events,
                 "/status": self._status, "/metrics": self._metrics}.get(url.path)
        if route is None:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")
            return
        try:
            route()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client went away

    def _authorised(self, query: str) -> bool:
        token = self.server.options.token
        if not token:
            return True
        given = parse_qs(query).get("token", [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):]
        return hmac.compare_digest(given.encode(), token.encode())

    def _send(self, code: int, kind: str, body: bytes,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _page(self) -> None:
        self._send(200, "text/html; charset=utf-8", self.server.page)

    def _status(self) -> None:
        body = json.dumps(self.server.hub.snapshot()).encode()
        self._send(200, "application/json", body)

    def _metrics(self) -> None:
        hub = self.server.hub
        text = prometheus_text(hub.snapshot()["summary"], hub.numbers())
        self._send(200, "text/plain; version=0.0.4; charset=utf-8", text.encode())

    def _open_stream(self, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _stream(self) -> None:
        hub = self.server.hub
        self._open_stream(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        hub.watch()
        try:
            seq = 0
            while not hub.stopped:
                got = hub.next_jpeg(seq, KEEPALIVE_S)
                if got is None:
                    continue
                seq, jpeg = got
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                self.wfile.flush()
        finally:
            hub.unwatch()

    def _events(self) -> None:
        hub = self.server.hub
        self._open_stream("text/event-stream")
        listener = hub.listen()
        try:
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not hub.stopped:
                try:
                    event = listener.get(timeout=KEEPALIVE_S)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    data = json.dumps(event.as_dict(), separators=(",", ":"))
                    self.wfile.write(f"event: label\nid: {event.seq}\ndata: {data}\n\n".encode())
                self.wfile.flush()
        finally:
            hub.unlisten(listener)


class PreviewServer(ThreadingHTTPServer):
    """Serves :class:`PreviewHub` on ``options.host:options.port`` from a thread of its own.

    Raises:
        PreviewError: the address cannot be bound (in use, not an address of this host).
    """

    daemon_threads = True

    def __init__(self, options: PreviewOptions, title: str = "edge-run") -> None:
        self.options = options
        self.hub = PreviewHub(options)
        self.page = render_page(title, options.token)
        try:
            super().__init__((options.host, options.port), _Handler)
        except OSError as e:
            raise PreviewError(f"--preview {options.host}:{options.port}: cannot listen there: "
                               f"{e.strerror or e}; pick another port or address") from e
        if options.host != LOOPBACK and options.host != "localhost" and not options.token:
            log.warning("the preview at %s is open to the network without --preview-token",
                        self.url)
        self._thread = threading.Thread(target=self.serve_forever, name="edge-preview-http",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}/"

    def __enter__(self) -> Self:
        self.hub.start()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.hub.stop()
        self.shutdown()
        self.server_close()
