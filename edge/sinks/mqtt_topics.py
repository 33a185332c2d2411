"""Topics and payloads of the MQTT sink, as pure functions of plain values.

    PREFIX/DEVICE/label    every label event, JSON, QoS 1 (not retained)
    PREFIX/DEVICE/status   retained JSON: {"state": "online"|"offline", ...status numbers};
                           "offline" is also the last will, sent by the broker if we vanish
    homeassistant/sensor/edge_DEVICE_*/config   retained Home Assistant discovery

See docs/fleet.md for the payloads.
"""

from __future__ import annotations

import json
from typing import Any

HA_PREFIX = "homeassistant"
ONLINE = "online"
OFFLINE = "offline"


def label_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/label"


def status_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/status"


def to_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, the one encoding of every payload."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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


def discovery_messages(prefix: str, device: str, *, model: str = "edge-run",
                       ha_prefix: str = HA_PREFIX) -> list[tuple[str, bytes]]:
    """Home Assistant MQTT discovery: one retained config message per sensor of ``device``."""
    status = status_topic(prefix, device)
    topics = {"label": label_topic(prefix, device), "status": status}
    ident = f"edge_{device}"
    messages = []
    for key, name, kind, template, unit in _SENSORS:
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"{ident}_{key}",
            "object_id": f"{ident}_{key}",
            "state_topic": topics[kind],
            "value_template": template,
            "availability_topic": status,
            "availability_template": "{{ value_json.state }}",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": {"identifiers": [ident], "name": device, "manufacturer": "edge",
                       "model": model},
        }
        if key == "label":
            config["json_attributes_topic"] = topics["label"]
        if unit is not None:
            config["unit_of_measurement"] = unit
            config["state_class"] = "measurement"
        messages.append((f"{ha_prefix}/sensor/{ident}_{key}/config", to_json(config)))
    return messages
