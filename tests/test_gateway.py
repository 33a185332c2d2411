"""The serial-to-MQTT gateway on real ttys and a real mosquitto: ``edge-run --serial
--on-change`` on one end, ``edge-listen --mqtt`` on the other; frames skipped on purpose are
not lost, every record arrives on the broker under the device name it carries."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.serial.gateway import topic_level
from tests.conftest import ROOT
from tests.mqtt_broker import Broker, Subscriber
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
