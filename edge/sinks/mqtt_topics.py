"""Topics and payloads of the MQTT sink, as pure functions of plain values.

    PREFIX/DEVICE/label    every label event, JSON, QoS 1 (not retained)
    PREFIX/DEVICE/status   retained JSON: {"state": "online"|"offline", ...status numbers};
                           "offline" is also the last will, sent by the broker if we vanish
    homeassistant/sensor/edge_DEVICE_*/config   retained Home Assistant discovery: label,
                           score, fps, latency, and one "LABEL count" sensor per label a
                           detector reported (at most MAX_COUNT_SENSORS per device)

See docs/fleet.md for the payloads.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

HA_PREFIX = "homeassistant"
ONLINE = "online"
OFFLINE = "offline"
MAX_COUNT_SENSORS = 16  # "LABEL count" sensors announced per device, at most
_NOT_ID = re.compile(r"[^a-z0-9_]+")


def label_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/label"


def status_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/status"


def unpublishable(topic: str) -> str | None:
    """Why ``topic`` cannot be published to (None when it can): empty, wildcards, NUL, not
    encodable as UTF-8, or longer than MQTT allows. Checked before sending, since a broker
    answers some of these by closing the connection."""
    if not topic:
        return "empty topic"
    if "+" in topic or "#" in topic:
        return "wildcards in a topic"
    if "\x00" in topic:
        return "NUL in a topic"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "a topic that is not valid UTF-8"
    return "topic longer than 65,535 bytes" if size > 65535 else None


def to_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, the one encoding of every payload. A lone surrogate (text from a
    wire or a file decoded leniently) becomes its ``\\uXXXX`` escape, so encoding never fails
    and the JSON stays valid."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace")


def label_payload(data: dict[str, Any], device: str) -> bytes:
    """A label event's JSON with the device it came from."""
    return to_json({**data, "device": device})


def status_payload(state: str, numbers: dict[str, Any] | None = None) -> bytes:
    """The retained status: ``state`` first, then the latest status numbers."""
    return to_json({"state": state, **(numbers or {})})


# Sensors announced to Home Assistant: (id, name, topic kind, value template, unit).
_SENSORS = (
    ("label", "Label", "label", "{{ value_json.label }}", None),
    ("score", "Score", "label", "{{ value_json.score }}", None),
    ("fps", "Frames per second", "status", "{{ value_json.recent_fps | default(0) }}", "fps"),
    ("latency", "Latency p50", "status", "{{ value_json.latency_p50_ms | default(0) }}", "ms"),
)


def _device(device: str, model: str) -> dict[str, Any]:
    return {"identifiers": [f"edge_{device}"], "name": device, "manufacturer": "edge",
            "model": model}


def _availability(prefix: str, device: str) -> dict[str, Any]:
    return {"availability_topic": status_topic(prefix, device),
            "availability_template": "{{ value_json.state }}",
            "payload_available": ONLINE, "payload_not_available": OFFLINE}


def discovery_messages(prefix: str, device: str, *, model: str = "edge-run",
                       ha_prefix: str = HA_PREFIX) -> list[tuple[str, bytes]]:
    """Home Assistant MQTT discovery: one retained config message per sensor of ``device``."""
    topics = {"label": label_topic(prefix, device), "status": status_topic(prefix, device)}
    ident = f"edge_{device}"
    messages = []
    for key, name, kind, template, unit in _SENSORS:
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"{ident}_{key}",
            "object_id": f"{ident}_{key}",
            "state_topic": topics[kind],
            "value_template": template,
            **_availability(prefix, device),
            "device": _device(device, model),
        }
        if key == "label":
            config["json_attributes_topic"] = topics["label"]
        if unit is not None:
            config["unit_of_measurement"] = unit
            config["state_class"] = "measurement"
        messages.append((f"{ha_prefix}/sensor/{ident}_{key}/config", to_json(config)))
    return messages


def count_sensor_id(label: str) -> str:
    """A Home Assistant id part for ``label``: lower-case letters, digits and ``_``; a short
    hash of the label is added when that changed it, so two labels never share an id."""
    slug = _NOT_ID.sub("_", label.lower()).strip("_")[:32] or "label"
    if slug == label:
        return slug
    return f"{slug}_{zlib.crc32(label.encode('utf-8', 'surrogatepass')):08x}"


def count_discovery_message(prefix: str, device: str, label: str, *, model: str = "edge-run",
                            ha_prefix: str = HA_PREFIX) -> tuple[str, bytes]:
    """The retained discovery config of the "LABEL count" sensor of ``device``.

    Its state is the label's count in each label event (``counts`` of a detector's event),
    0 when the event does not name it. A caller announces at most :data:`MAX_COUNT_SENSORS`
    labels per device, so a model (or a device on the wire) cannot fill the broker.
    """
    ident = f"edge_{device}_count_{count_sensor_id(label)}"
    key = json.dumps(label, ensure_ascii=True)
    config: dict[str, Any] = {
        "name": f"{label} count",
        "unique_id": ident,
        "object_id": ident,
        "state_topic": label_topic(prefix, device),
        "value_template": f"{{{{ (value_json.counts | default({{}}))[{key}] | default(0) }}}}",
        "state_class": "measurement",
        **_availability(prefix, device),
        "device": _device(device, model),
    }
    return f"{ha_prefix}/sensor/{ident}/config", to_json(config)
