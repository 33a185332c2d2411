"""The serial-to-MQTT gateway: records decoded from a device, published like edge-run's labels.

Each record becomes one JSON object (the same one ``edge-listen --json`` prints) on
``PREFIX/DEVICE/label`` through the MQTT sink's spool, where DEVICE is the name the record
carries (firmware or ``edge-run --serial --device-name``) or else the gateway's own
``--device-name`` (default: the host name).

A device on the wire chooses the names it sends, and every new name is a device on the broker
with retained Home Assistant discovery messages, so :class:`DeviceGate` bounds the names the
gateway publishes for: the first ``max_devices`` heard, or only those of an allow-list. Records
of other names are refused (counted, each name logged once), never published.

Consumers de-duplicate on ``(device, run, seq)``. A record without a ``run`` (firmware that
sends none) gets the gateway's: its own random id and how many restarts of that device it has
seen, so ``seq`` starting again at 0 never repeats a key.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from edge.serial.protocol import U32_MAX, LabelRecord

if TYPE_CHECKING:
    from edge.sinks.mqtt import MqttSink

log = logging.getLogger(__name__)

_NOT_TOPIC = re.compile(r"[^A-Za-z0-9_.-]")
DEFAULT_MAX_DEVICES = 8
NAMED_REFUSALS = 20  # refused names logged one by one; after that, one line for the rest


def label_name(record: LabelRecord, names: Sequence[str]) -> str | None:
    """The record's label text, else its name in ``names``, else None."""
    if record.text is not None:
        return record.text
    return names[record.label] if record.label < len(names) else None


def record_json(record: LabelRecord, names: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON form of a decoded record (``edge-listen --json`` and the gateway).

    Shaped as edge-run's events where the record has the field: ``kind``, and for a
    detector's record ``detections`` (box as fractions of the frame) and ``counts`` per label.
    """
    data: dict[str, Any] = {"seq": record.seq, "time_ms": record.time_ms, "label": record.label,
                            "text": label_name(record, names), "score": record.score}
    if record.top_k:
        data["top_k"] = [list(pair) for pair in record.top_k]
    if record.latency_ms is not None:
        data["latency_ms"] = record.latency_ms
    if record.frame is not None:
        data["frame"] = record.frame
    if record.device is not None:
        data["device"] = record.device
    if record.file is not None:
        data["file"] = record.file
    if record.run is not None:
        data["run"] = f"{record.run:08x}"
    data["kind"] = "classify" if record.detections is None else "detect"
    if record.detections is not None:
        objects = [(_object_name(record, d.label, names), d) for d in record.detections]
        data["detections"] = [{"label": name, "index": d.label, "score": d.score,
                               "box": list(d.box)} for name, d in objects]
        data["counts"] = dict(Counter(name or str(d.label) for name, d in objects))
    return data


def _object_name(record: LabelRecord, index: int, names: Sequence[str]) -> str | None:
    """A detection's label: from ``names``, else the record's text if it names that index."""
    if index < len(names):
        return names[index]
    return record.text if record.text is not None and index == record.label else None


def topic_level(name: str) -> str:
    """A device name from the wire as one safe topic level (other characters become ``_``)."""
    return _NOT_TOPIC.sub("_", name)[:64] or "_"


class DeviceGate:
    """Which device names the gateway publishes for: a bounded set, or an allow-list.

    Args:
        own: the gateway's own device name (always allowed, never counted).
        max_devices: at most this many other names, the first ones heard.
        allow: if given, only these names (as topic levels) besides ``own``.
    """

    def __init__(self, own: str, max_devices: int = DEFAULT_MAX_DEVICES,
                 allow: Iterable[str] | None = None) -> None:
        if max_devices < 0:
            raise ValueError(f"max_devices (={max_devices}) must be >= 0")
        self.own = own
        self.max_devices = max_devices
        self.allow = None if allow is None else frozenset(topic_level(n) for n in allow)
        self.admitted: set[str] = set()
        self.refused_names: set[str] = set()
        self.refused = 0  # records refused
        self._more_said = False

    def admit(self, device: str) -> bool:
        """Whether records of ``device`` (a topic level) may be published; counts refusals."""
        if device == self.own or device in self.admitted:
            return True
        if (device in self.allow) if self.allow is not None else (
                len(self.admitted) < self.max_devices):
            self.admitted.add(device)
            return True
        self.refused += 1
        if device not in self.refused_names:
            self._say_refused(device)
        return False

    def _say_refused(self, device: str) -> None:
        if len(self.refused_names) < NAMED_REFUSALS:
            self.refused_names.add(device)
            why = ("not in --allow-device" if self.allow is not None
                   else f"--max-devices {self.max_devices} reached")
            log.warning("device %r: %s; its records are not published", device, why)
        elif not self._more_said:
            self._more_said = True
            log.warning("more devices refused; not naming each (see the summary's refused count)")


class StreamRuns:
    """Run ids for devices that send none: ``GATEWAY.N``, N counting the device's restarts.

    A restart is what the stream decoder calls one: ``seq`` back to 0, repeated or going back.

    Args:
        gateway: this gateway's own run id (default: ``gw`` and 8 random hex digits).
    """

    def __init__(self, gateway: str | None = None) -> None:
        self.gateway = gateway or f"gw{secrets.token_hex(4)}"
        self._last: dict[str, int] = {}
        self._restarts: dict[str, int] = {}

    def run_for(self, device: str, seq: int) -> str:
        last = self._last.get(device)
        if last is not None:
            delta = (seq - last) & U32_MAX
            if not (delta == 1 or (seq != 0 and 1 < delta < 1 << 31)):
                self._restarts[device] = self._restarts.get(device, 0) + 1
        self._last[device] = seq
        return f"{self.gateway}.{self._restarts.get(device, 0)}"


class MqttGateway:
    """Publishes decoded records through ``sink`` (an open :class:`MqttSink`).

    Args:
        sink: the open MQTT sink.
        names: label names for label indices.
        gate: which device names to publish for (default: the first
            :data:`DEFAULT_MAX_DEVICES`).
    """

    def __init__(self, sink: MqttSink, names: Sequence[str] = (),
                 gate: DeviceGate | None = None) -> None:
        self.sink = sink
        self.names = tuple(names)
        self.gate = gate or DeviceGate(sink.device)
        self.runs = StreamRuns()

    def publish(self, record: LabelRecord) -> None:
        device = topic_level(record.device) if record.device else self.sink.device
        if not self.gate.admit(device):
            return
        data = record_json(record, self.names)
        if record.run is None:
            data["run"] = self.runs.run_for(device, record.seq)
        self.sink.publish_label(data, device=device)
