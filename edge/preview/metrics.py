"""``/metrics`` in Prometheus' text exposition format, from plain numbers (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (metric, type, help, key in the run summary)
_SUMMARY = (
    ("edge_frames_total", "counter", "Frames labelled since start.", "frames"),
    ("edge_fps", "gauge", "Frames labelled per second over the last status interval.",
     "recent_fps"),
    ("edge_dropped_frames_total", "counter", "Stale frames replaced before inference.",
     "dropped"),
    ("edge_camera_reconnects_total", "counter", "Camera reopens that worked.", "reconnects"),
    ("edge_camera_errors_total", "counter", "Failed camera reads and reopens.", "camera_errors"),
    ("edge_accuracy_ratio", "gauge", "Top-1 agreement with the source's ground truth.",
     "accuracy"),
)

# (key in the preview's numbers, help) of its counters
_PREVIEW_COUNTERS = (
    ("refused", "Connections refused with 503: every connection was busy."),
    ("evicted", "Idle connections closed to make room for new ones."),
    ("timed_out", "Connections closed because no whole request came in time."),
    ("bad_requests", "Malformed, oversized or refused (Host, token) requests."),
    ("slow_dropped", "Stream clients dropped for not keeping up."),
    ("frames_skipped", "JPEG frames not sent to a viewer still busy with earlier ones."),
    ("events_coalesced", "Label events not streamed: a newer one came within the rate cap."),
)


def _number(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def prometheus_text(summary: Mapping[str, Any], preview: Mapping[str, Any]) -> str:
    """The exposition text for the latest run summary and the preview's own numbers."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str,
               samples: list[tuple[str, Any]]) -> None:
        samples = [(labels, v) for labels, v in samples if v is not None]
        if not samples:
            return
        lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))
        lines.extend(f"{name}{labels} {_number(v)}" for labels, v in samples)

    for name, kind, help_text, key in _SUMMARY:
        metric(name, kind, help_text, [("", summary.get(key))])
    metric("edge_latency_ms", "gauge", "Capture-to-label latency percentiles.",
           [('{quantile="0.5"}', summary.get("latency_p50_ms")),
            ('{quantile="0.95"}', summary.get("latency_p95_ms"))])
    sinks = summary.get("sinks") or {}
    for counter in sorted({key for counts in sinks.values() for key in counts}):
        metric(f"edge_sink_{counter}", "gauge", f"Sink messages {counter}.",
               [(f'{{sink="{name}"}}', counts.get(counter)) for name, counts in sinks.items()])
    metric("edge_preview_clients", "gauge", "Clients of the MJPEG and event streams.",
           [("", preview.get("clients"))])
    metric("edge_preview_connections", "gauge", "Open connections to the preview.",
           [("", preview.get("connections"))])
    for key, help_text in _PREVIEW_COUNTERS:
        metric(f"edge_preview_{key}_total", "counter", help_text, [("", preview.get(key))])
    metric("edge_preview_frames_encoded_total", "counter", "JPEG frames encoded for the preview.",
           [("", preview.get("encoded"))])
    metric("edge_preview_fps", "gauge", "Labels per second seen by the preview (last 2 s).",
           [("", preview.get("fps"))])
    return "\n".join(lines) + "\n"
