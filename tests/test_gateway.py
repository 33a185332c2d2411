"""The serial-to-MQTT gateway on real ttys and a real mosquitto: ``edge-run --serial
--on-change`` on one end, ``edge-listen --mqtt`` on the other; frames skipped on purpose are
not lost, every record arrives on the broker under the device name it carries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.serial.gateway import NAMED_REFUSALS, DeviceGate, topic_level
from edge.serial.protocol import LabelRecord, encode_text
from edge.sinks.mqtt_topics import discovery_messages
from tests.conftest import ROOT
from tests.mqtt_broker import Broker, Subscriber, first_by_seq
from tests.test_listen_pty import SOCAT, Socat, hostile_text_stream, listener, seqs, summary_of
from tests.test_run_serial import ENV, linked_ptys

pytestmark = [pytest.mark.serial, pytest.mark.slow]

FRAMES = 90


def test_topic_level_keeps_names_safe() -> None:
    assert topic_level("cam-1.kitchen_2") == "cam-1.kitchen_2"
    assert topic_level("a/b+#c d") == "a_b__c_d"


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_on_change_stream_through_the_gateway_loses_nothing(tmp_path: Path, fmt: str) -> None:
    broker = Broker(tmp_path)
    broker.start()
    sub = Subscriber(broker, "test/+/label")
    status = Subscriber(broker, "test/gw/status", name="status")
    out = tmp_path / "sent.jsonl"
    try:
        with linked_ptys() as (writer_port, reader_port):
            gateway = subprocess.Popen(
                [sys.executable, "-m", "edge", "listen", reader_port, "--format",
                 "binary" if fmt == "binary" else "json", "--json", "--mqtt", broker.url(),
                 "--device-name", "gw", "--state-dir", str(tmp_path / "state"),
                 "--status-interval", "0.2"],
                cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                # The gateway publishes its status only once it reads the port: records written
                # before would be a test race, not a gateway fault (on a busy machine edge-run's
                # first frame can come before the gateway's imports end).
                assert status.wait_for(lambda m: len(m) >= 1), "the gateway did not start"
                run = subprocess.run(
                    [sys.executable, "-m", "edge", "run", "--camera", "demo", "--max-frames",
                     str(FRAMES), "--serial", writer_port, "--serial-format", fmt,
                     "--on-change", "--device-name", "mcu-1", "--output", str(out)],
                    cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
                assert run.returncode == 0, run.stderr
                sent = [json.loads(line) for line in out.read_text().splitlines()]
                assert 1 < len(sent) < FRAMES  # the scene changes every 15 frames
                assert sub.wait_for(lambda m: len(m) >= len(sent))
                # The gateway's periodic status carries the link's counters.
                assert status.wait_for(lambda m: any(
                    json.loads(p).get("frames", 0) >= len(sent) for _, p, _ in m))
                gateway.send_signal(signal.SIGTERM)
                _, err = gateway.communicate(timeout=120)
            finally:
                if gateway.poll() is None:
                    gateway.kill()
    finally:
        sub.close()
        status.close()
        broker.stop()
    assert gateway.returncode == 0, err
    got = [json.loads(p) for t, p, _ in sub.messages]
    assert {t for t, _, _ in sub.messages} == {"test/mcu-1/label"}
    assert [g["seq"] for g in got] == list(range(len(sent)))
    assert [g["frame"] for g in got] == [s["seq"] for s in sent]
    assert [g["label"] for g in got] == [s["index"] for s in sent]
    summary = json.loads(err.strip().splitlines()[-1])["summary"]
    assert (summary["lost"], summary["gaps"]) == (0, 0)
    assert summary["skipped"] == sent[-1]["seq"] - sent[0]["seq"] + 1 - len(sent)
    assert summary["mqtt_delivered"] == len(sent) and summary["mqtt_queued"] == 0


def test_device_gate_admits_the_first_n_or_an_allow_list(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    gate = DeviceGate("gw", max_devices=2)
    heard = ["gw", "a", "b", "c", "a", "gw", "d", "c"]
    assert [gate.admit(d) for d in heard] == [True, True, True, False, True, True, False, False]
    assert gate.refused == 3 and gate.admitted == {"a", "b"}
    assert sum("refused" in r.message or "not published" in r.message
               for r in caplog.records) == 2  # c and d, once each
    allow = DeviceGate("gw", max_devices=100, allow=["cam/1", "cam-2"])
    assert [allow.admit(d) for d in ("cam_1", "cam-2", "cam-3", "gw")] == [True, True, False,
                                                                            True]
    flood = DeviceGate("gw", max_devices=0)
    caplog.clear()
    assert not any(flood.admit(f"n{i}") for i in range(500))
    assert flood.refused == 500 and len(caplog.records) == NAMED_REFUSALS + 1


def _flood(first: int, count: int) -> bytes:
    """Text records from ``count`` device names, then from cam-1 (a record each)."""
    lines = [encode_text(LabelRecord(i, i, 1, 0.5, "cat", device=f"dev-{i:03d}", run=7))
             for i in range(first, first + count)]
    lines += [encode_text(LabelRecord(i, i, 2, 0.25, "dog", device="cam-1", run=7))
              for i in range(first + count, first + count + 5)]
    return b"".join(lines)


def _retained(broker: Broker) -> list[str]:
    """Topics of the retained Home Assistant messages the broker holds now."""
    sub = Subscriber(broker, "#", name="retained")
    try:
        sub.client.publish("zz/marker", b"1", qos=1)  # arrives after the retained ones
        assert sub.wait_for(lambda m: any(t == "zz/marker" for t, _, _ in m))
        return sorted(t for t, _, retain in sub.messages
                      if retain and t.startswith("homeassistant/"))
    finally:
        sub.close()


@pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
@pytest.mark.parametrize(("bound", "published"), [
    (["--max-devices", "3"], {"dev-000", "dev-001", "dev-002"}),
    (["--allow-device", "cam-1"], {"cam-1"}),
])
def test_500_device_names_announce_only_the_bounded_few(tmp_path: Path, bound: list[str],
                                                        published: set[str]) -> None:
    broker = Broker(tmp_path)
    broker.start()
    sub = Subscriber(broker, "test/+/label")
    link = Socat(tmp_path / "dev", tmp_path / "host")
    try:
        with listener(str(tmp_path / "host"), "--format", "json", "--json", "--mqtt",
                      broker.url(), "--device-name", "gw", "--state-dir", str(tmp_path / "s"),
                      "--max-frames", "505", "--duration", "120", "-v", *bound) as (
                          proc, _out, err):
            err.wait_line("listening on")
            os.write(link.fd, _flood(0, 500))
            assert proc.wait(120) == 0
            err.drain()
        retained = _retained(broker)
    finally:
        link.unplug()
        sub.close()
        broker.stop()
    assert retained == sorted(t for d in published | {"gw"}
                              for t, _ in discovery_messages("test", d))
    assert {t.split("/")[1] for t, _, _ in sub.messages} == published
    summary = summary_of(err)
    assert summary["frames"] == 505
    assert summary["refused"] == 505 - sum(1 if d.startswith("dev") else 5 for d in published)
    assert summary["mqtt_delivered"] == 505 - summary["refused"]
    refusals = [line for line in err.lines if "not published" in line]
    assert len(refusals) == NAMED_REFUSALS
    assert not any("Traceback" in line for line in err.lines)


@pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
def test_a_lone_surrogate_does_not_end_the_gateway(tmp_path: Path) -> None:
    data, good = hostile_text_stream()
    broker = Broker(tmp_path)
    broker.start()
    sub = Subscriber(broker, "test/+/label")
    link = Socat(tmp_path / "dev", tmp_path / "host")
    try:
        with listener(str(tmp_path / "host"), "--json", "--mqtt", broker.url(), "--stdout",
                      "--device-name", "gw", "--state-dir", str(tmp_path / "s"),
                      "--max-frames", str(len(good)), "--duration", "120", "-v") as (
                          proc, out, err):
            err.wait_line("listening on")
            os.write(link.fd, data)
            assert proc.wait(120) == 0
            out.drain()
            err.drain()
        assert sub.wait_for(lambda m: len(m) >= len(good))
    finally:
        link.unplug()
        sub.close()
        broker.stop()
    got = first_by_seq([json.loads(p) for _, p, _ in sub.messages])
    assert [g["seq"] for g in got] == good == seqs(out)
    assert {(g["device"], g["run"]) for g in got} == {("cam-1", "00001234")}
    summary = summary_of(err)
    assert summary["malformed"] == 4 and summary["mqtt_delivered"] >= len(good)


def test_detector_records_read_as_edge_run_events() -> None:
    from edge.cli.listen import _text_line
    from edge.serial.gateway import record_json
    from edge.serial.protocol import DetectionRecord

    boxes = (DetectionRecord(0, 0.9, (0.1, 0.2, 0.3, 0.4)), DetectionRecord(0, 0.8, (0, 0, 1, 1)),
             DetectionRecord(27, 0.5, (0.5, 0.5, 0.6, 0.7)))
    record = LabelRecord(3, 4, 0, 0.9, "person", run=0xAB, detections=boxes)
    data = record_json(record)  # text mode without --labels: the best object's text names it
    assert data["kind"] == "detect" and data["run"] == "000000ab"
    assert [d["label"] for d in data["detections"]] == ["person", "person", None]
    assert data["counts"] == {"person": 2, "27": 1}
    assert record_json(record, ["person"] + ["x"] * 26 + ["tie"])["counts"] == {
        "person": 2, "tie": 1}
    assert _text_line(record, ()) == (
        'seq=3 time_ms=4 label=0 "person" score=0.9000 run=000000ab detections=3 '
        '"person":0.9000@[0.1000,0.2000,0.3000,0.4000] "person":0.8000@[0.0000,0.0000,1.0000,'
        '1.0000] 27:0.5000@[0.5000,0.5000,0.6000,0.7000]')
    assert record_json(LabelRecord(1, 1, 1, 0.5))["kind"] == "classify"


def test_records_without_a_run_get_the_gateways_run_per_device_restart() -> None:
    from edge.serial.gateway import MqttGateway

    class Sink:
        device = "gw"

        def __init__(self) -> None:
            self.got: list[tuple[str, dict]] = []

        def publish_label(self, data: dict, device: str | None = None) -> None:
            self.got.append((device or self.device, data))

    sink = Sink()
    gateway = MqttGateway(sink)  # type: ignore[arg-type]
    sends = [("a", 0), ("a", 1), ("b", 5), ("a", 2), ("a", 0), ("b", 7), ("a", 1), ("b", 3),
             ("a", 0xFFFF_FFFF), ("a", 0)]
    for device, seq in sends:
        gateway.publish(LabelRecord(seq, 0, 1, 0.5, device=device))
    gateway.publish(LabelRecord(9, 0, 1, 0.5, device="a", run=0xC0FFEE))  # its own run wins
    base = gateway.runs.gateway
    assert [d["run"] for _, d in sink.got] == [
        f"{base}.0", f"{base}.0", f"{base}.0", f"{base}.0", f"{base}.1", f"{base}.0",
        f"{base}.1", f"{base}.1", f"{base}.2", f"{base}.2", "00c0ffee"]
    keys = [(dev, d["run"], d["seq"]) for dev, d in sink.got]
    assert len(set(keys)) == len(keys)  # what consumers de-duplicate on never repeats
