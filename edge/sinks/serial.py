"""The serial label protocol (:mod:`edge.serial.protocol`) on a port or pyserial URL."""

from __future__ import annotations

import logging
import secrets
import time
import zlib
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from edge.backoff import Backoff
from edge.errors import EdgeError, ProtocolError, SerialLinkError, SinkError
from edge.events import DETECT, Detection, LabelEvent, Prediction
from edge.sinks.base import LabelSink

if TYPE_CHECKING:
    from edge.serial.protocol import LabelRecord

log = logging.getLogger(__name__)

SERIAL_FORMATS = ("json", "binary")
U32_MASK = 0xFFFF_FFFF


def _unit(value: float) -> float:
    """``value`` clamped to [0, 1] (NaN to 0)."""
    return min(max(value, 0.0), 1.0) if value == value else 0.0


def _normalised_box(d: Detection, width: int, height: int) -> tuple[float, float, float, float]:
    """A box in frame pixels as fractions of the frame, clamped to it and ordered."""
    x0, y0, x1, y1 = (_unit(d.box[0] / width), _unit(d.box[1] / height),
                      _unit(d.box[2] / width), _unit(d.box[3] / height))
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def run_id(value: object) -> int | None:
    """A run id as the protocol carries it (uint32), from the event's run id; None if unset.

    An int is taken modulo 2**32, a string of 1 to 8 hex digits as that number, and any other
    non-empty string (e.g. ``"6932f1c4-9a1e"`` of :func:`edge.events.new_run_id`) as the CRC-32
    of its UTF-8, so one run's records carry one id on every serial sink.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value & U32_MASK
    if isinstance(value, str) and value:
        if len(value) <= 8 and all(c in "0123456789abcdefABCDEF" for c in value):
            return int(value, 16)
        return zlib.crc32(value.encode("utf-8", "replace"))
    return None


def label_record(event: LabelEvent, *, with_text: bool, seq: int | None = None,
                 device: str | None = None, run: int | None = None) -> LabelRecord:
    """The serial protocol's record of ``event`` (device time = capture time in ms).

    A detector's event (``kind == "detect"``) becomes a detector's record: its boxes normalised
    by ``frame_size``, best first, and its best object as ``label``/``score``; every
    detection is in it (see :func:`fit_detections` to trim to one frame).

    Args:
        event: the label event.
        with_text: include the label text (text mode).
        seq: the record's number among those sent (default: the event's own ``seq``); the
            event's ``seq`` travels as ``frame``, so frames skipped on purpose are told apart
            from records lost on the wire.
        device: the sender's name, when it should travel with the record.
        run: the sender's run id (uint32).
    """
    from edge.serial.protocol import DetectionRecord, LabelRecord

    top = event.top
    detections: tuple[DetectionRecord, ...] | None = None
    top_k: tuple[tuple[int, float], ...] = ()
    if event.kind == DETECT:
        objects = sorted(event.detections, key=lambda d: -d.score)
        width, height = event.frame_size or (0, 0)
        if width <= 0 or height <= 0:
            objects = []  # boxes without a frame size cannot be normalised
        detections = tuple(DetectionRecord(d.index, _unit(d.score),
                                           _normalised_box(d, width, height)) for d in objects)
        best: Detection | Prediction | None = objects[0] if objects else None
    else:
        best = top
        top_k = tuple((p.index, _unit(p.score)) for p in event.predictions[1:])
    return LabelRecord(
        seq=(event.seq if seq is None else seq) & U32_MASK,
        time_ms=(event.capture_ns // 1_000_000) & U32_MASK,
        label=best.index if best else 0xFFFF,
        score=_unit(best.score) if best else 0.0,
        text=(best.label if best else "") if with_text else None,
        top_k=top_k,
        latency_ms=max(event.latency_ms, 0.0),
        frame=event.seq & U32_MASK,
        device=device,
        file=PurePath(event.file).name if event.file is not None and with_text else None,
        run=run,
        detections=detections,
    )


def fit_detections(record: LabelRecord) -> tuple[LabelRecord, int]:
    """``record`` with the best detections that fit one frame, and how many were cut."""
    from dataclasses import replace

    from edge.serial.protocol import detections_room

    if not record.detections:
        return record, 0
    room = detections_room(record)
    cut = max(0, len(record.detections) - room)
    return (replace(record, detections=record.detections[:room]) if cut else record), cut


class SerialSink(LabelSink):
    """The serial label protocol (``edge.serial``) on a port or pyserial URL.

    A port that fails is closed and reopened with backoff; labels written meanwhile are
    dropped and counted in :attr:`lost`. An event with no prediction above the threshold is
    sent with label 0xFFFF and score 0. A detector's event goes as a detector's record with
    the best boxes that fit one frame; the objects cut are counted in :attr:`trimmed`. An
    event the protocol cannot carry (a label index above 65535, a label text that makes the
    line longer than 2,048 bytes) is dropped and counted in :attr:`unsendable`; its ``seq``
    is skipped, so a receiver counts it as lost. Every record carries a run id (the events'
    own, else one drawn at random for this sink), so ``(device, run, seq)`` names a record once
    although ``seq`` restarts at 0.

    Args:
        url: device path or pyserial URL.
        baud: line speed.
        fmt: ``json`` (text mode) or ``binary`` (COBS frames).
        device: a name sent with every record (``--device-name``), for gateways.
        run: the run id to send (default: the events' own ``run`` if they carry one, else a
            random uint32 drawn here).
    """

    name = "serial"

    def __init__(self, url: str, *, baud: int = 115200, fmt: str = "json",
                 device: str | None = None, run: int | None = None) -> None:
        if fmt not in SERIAL_FORMATS:
            raise SinkError(f"serial format (={fmt!r}) must be one of {', '.join(SERIAL_FORMATS)}")
        from edge.serial import protocol

        self.url = url
        self.baud = baud
        self.fmt = fmt
        self._encode = protocol.encode_binary if fmt == "binary" else protocol.encode_text
        self._start = protocol.STREAM_START if fmt == "binary" else b""
        self._link: Any = None
        self._backoff = Backoff(initial_s=0.2, max_s=5.0)
        self._retry_at = 0.0
        self.device = device
        self.run = run
        self._own_run = secrets.randbits(32)
        self.sent = 0  # records this sink meant to send: the wire's seq
        self.lost = 0
        self.trimmed = 0  # detections that did not fit a frame
        self.unsendable = 0  # events the protocol cannot carry (e.g. a label index > 65535)
        self._trim_said = False
        self._unsendable_said = False
        self.reconnects = 0
        try:
            self._open()
        except SerialLinkError as e:
            raise SinkError(f"--serial {url}: {e}") from e

    def _open(self) -> None:
        from edge.serial.link import open_link

        link = open_link(self.url, baud=self.baud, reset_on_open=False)
        try:
            if self._start:
                link.write(self._start)  # lets the receiver resynchronise at once
        except OSError:
            link.close()
            raise
        self._link = link

    def write(self, event: LabelEvent) -> None:
        run = self.run
        if run is None:
            run = run_id(getattr(event, "run", None))
            run = self._own_run if run is None else run
        record, cut = fit_detections(label_record(event, with_text=self.fmt == "json",
                                                  seq=self.sent, device=self.device, run=run))
        if cut:
            self.trimmed += cut
            if not self._trim_said:
                self._trim_said = True
                log.warning("serial %s: a frame holds %d detections here; the best are sent, "
                            "the rest counted as trimmed", self.url, len(record.detections or ()))
        self.sent += 1
        try:
            frame = self._encode(record)
        except ProtocolError as e:  # one odd event never stops the labels
            self.unsendable += 1
            if not self._unsendable_said:
                self._unsendable_said = True
                log.warning("serial %s: an event the protocol cannot carry is dropped (%s); "
                            "counted as unsendable, said once", self.url, e)
            return
        if self._link is None and not self._reconnect():
            self.lost += 1
            return
        try:
            self._link.write(frame)
        except (OSError, EdgeError) as e:
            log.warning("serial %s failed: %s; reconnecting", self.url, e)
            self._drop_link()
            self.lost += 1

    def _reconnect(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        try:
            self._open()
        except (OSError, EdgeError) as e:
            self._retry_at = time.monotonic() + self._backoff.next_delay()
            log.debug("serial %s still unavailable: %s", self.url, e)
            return False
        self._backoff.reset()
        self.reconnects += 1
        log.info("serial %s reconnected", self.url)
        return True

    def _drop_link(self) -> None:
        link, self._link = self._link, None
        self._retry_at = time.monotonic() + self._backoff.next_delay()
        if link is not None:
            try:
                link.close()
            except (OSError, EdgeError):
                pass

    def counters(self) -> dict[str, int]:
        return {"lost": self.lost, "reconnects": self.reconnects, "trimmed": self.trimmed,
                "unsendable": self.unsendable}

    def flush(self) -> None:
        if self._link is not None:
            try:
                self._link.flush()
            except (OSError, EdgeError) as e:
                log.warning("serial %s flush failed: %s", self.url, e)
                self._drop_link()

    def close(self) -> None:
        self.flush()
        link, self._link = self._link, None
        if link is not None:
            link.close()
