"""The serial-to-MQTT gateway: records decoded from a device, published like edge-run's labels.

Each record becomes one JSON object (the same one ``edge-listen --json`` prints) on
``PREFIX/DEVICE/label`` through the MQTT sink's spool, where DEVICE is the name the record
carries (firmware or ``edge-run --serial --device-name``) or else the gateway's own
``--device-name`` (default: the host name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edge.serial.protocol import LabelRecord

if TYPE_CHECKING:
    from edge.sinks.mqtt import MqttSink

_NOT_TOPIC = re.compile(r"[^A-Za-z0-9_.-]")


def label_name(record: LabelRecord, names: Sequence[str]) -> str | None:
    """The record's label text, else its name in ``names``, else None."""
    if record.text is not None:
        return record.text
    return names[record.label] if record.label < len(names) else None


def record_json(record: LabelRecord, names: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON form of a decoded record (``edge-listen --json`` and the gateway)."""
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
    return data


def topic_level(name: str) -> str:
    """A device name from the wire as one safe topic level (other characters become ``_``)."""
    return _NOT_TOPIC.sub("_", name)[:64] or "_"


class MqttGateway:
    """Publishes decoded records through ``sink`` (an open :class:`MqttSink`)."""

    def __init__(self, sink: MqttSink, names: Sequence[str] = ()) -> None:
        self.sink = sink
        self.names = tuple(names)

    def publish(self, record: LabelRecord) -> None:
        device = topic_level(record.device) if record.device else self.sink.device
        self.sink.publish_label(record_json(record, self.names), device=device)
