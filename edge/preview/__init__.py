"""The live preview of ``edge-run --preview [HOST:]PORT``: what the camera sees, labelled.

* :mod:`~edge.preview.overlay`: the labels, score, fps and latency drawn on a frame (pure);
* :mod:`~edge.preview.encoder`: the latest frame, JPEG-encoded off the inference thread, only
  while someone watches, at a capped rate; label events fanned out to listeners;
* :mod:`~edge.preview.metrics`: ``/metrics`` in Prometheus' text format (pure);
* :mod:`~edge.preview.guard`: the request head, the Host check and the token (pure);
* :mod:`~edge.preview.server`: the HTTP server (page, MJPEG stream, Server-Sent Events,
  ``/status``, ``/metrics``) on an asyncio loop in a thread of its own, with a bounded number
  of connections; bound to 127.0.0.1 unless told otherwise, guarded by a token when given.

Only :mod:`~edge.preview.encoder` and :mod:`~edge.preview.overlay` import OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import PreviewError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PreviewOptions:
    """The preview's part of ``edge-run``'s options.

    Attributes:
        host: address to bind (127.0.0.1 by default; ``0.0.0.0`` exposes it).
        port: TCP port (0 picks a free one).
        token: when set, every request must carry it (``?token=`` or ``Authorization: Bearer``).
        max_fps: most JPEG frames encoded per second while someone watches.
        quality: JPEG quality.
        width: the streamed picture's width (frames are scaled to it).
        hosts: extra names the preview is reached by (``--preview-host``); requests naming
            another host are refused (DNS rebinding).
        max_connections: most connections held at once (lowered to fit the process's
            descriptor limit).
        events_per_s: most label events a second sent to each event-stream client (the
            newest; those in between are coalesced away).
    """

    host: str = LOOPBACK
    port: int = 8080
    token: str | None = None
    max_fps: float = 10.0
    quality: int = 80
    width: int = 480
    hosts: tuple[str, ...] = ()
    max_connections: int = 640
    events_per_s: float = 5.0


def parse_bind(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); host defaults to 127.0.0.1.

    Raises:
        PreviewError: not of that form, or the port is outside [0, 65535].
    """
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") if sep else LOOPBACK
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or (sep and not host):
        raise PreviewError(f"--preview {text!r}: use [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080 "
                           "(port 0-65535)")
    return host, port
