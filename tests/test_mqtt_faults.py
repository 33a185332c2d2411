"""The MQTT sink under faults, with a real mosquitto: the spool's disk full (a real small tmpfs),
a damaged spool file, poison messages, a locked spool, a delivery thread that dies, a broker
restart around the end of a run; and the Home Assistant count sensors of detectors.

Each case checks that the labels keep flowing to the other sinks and that what MQTT loses is
counted and said once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.events import DETECT, Detection, LabelEvent, Prediction
from edge.sinks import mqtt_topics as topics
from edge.sinks.mqtt import MqttSink
from edge.sinks.mqtt_options import MqttOptions
from edge.sinks.spool import Spool
from tests.conftest import ROOT
from tests.mqtt_broker import Broker, Subscriber, first_by_seq
from tests.process_lines import stderr_lines, wait_line
from tests.test_mqtt import edge_run, env, jsonl, run

pytestmark = pytest.mark.slow

LABEL_TOPIC = "test/cam1/label"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test (needs root; skips with the reason otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is tested on a small tmpfs this test mounts, which needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=60)


def leave_free(folder: Path, free: int) -> None:
    """Fill ``folder``'s filesystem with one file until about ``free`` bytes are left."""
    st = os.statvfs(folder)
    have = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            f.write(b"\0" * max(0, have - free))
            if free == 0:
                while True:
                    f.write(b"\0" * 4096)
        except OSError:
            pass
    left = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    assert abs(left - free) <= 8192, left


def summary_counts(stderr: str) -> dict[str, int]:
    line = next(x for x in stderr.splitlines() if x.startswith("edge-run: done in"))
    found = re.search(r"mqtt ((?:\w+ \d+ ?)+)", line)
    assert found, line
    words = found.group(1).split()
    return {k: int(v) for k, v in zip(words[::2], words[1::2], strict=True)}


# --- 25.2: the spool never stops the labels -----------------------------------------------------

def test_a_nearly_full_disk_drops_the_oldest_and_the_labels_go_on(small_disk: Path,
                                                                  tmp_path: Path) -> None:
    state = small_disk / "state"
    state.mkdir()
    leave_free(small_disk, 248 * 1024)
    broker = Broker(tmp_path)  # not started: everything waits in the spool
    out = tmp_path / "labels.jsonl"
    first = run("--max-frames", "600", "--mqtt", broker.url(), "--state-dir", str(state),
                "--output", str(out), "--stdout", "--mqtt-drain", "0.5")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == len(jsonl(out)) == 600
    assert first.stderr.count("free on its disk") == 1, first.stderr  # said once
    counts = summary_counts(first.stderr)
    assert counts["queued"] + counts["dropped"] == 600, counts
    assert counts["dropped"] > 0 and counts["queued"] > 50, counts
    assert "Traceback" not in first.stderr
    broker.start()
    try:
        sub = Subscriber(broker)
        second = run("--max-frames", "3", "--mqtt", broker.url(), "--state-dir", str(state),
                     "--output", str(tmp_path / "b.jsonl"))
        assert second.returncode == 0, second.stderr
        again = summary_counts(second.stderr)  # the disk is still low: the oldest go on
        # (an in-flight message the spool drops for room may still be acknowledged)
        assert again["queued"] == 0, second.stderr
        assert again["delivered"] + again["dropped"] >= counts["queued"] + 3 >= \
            again["delivered"], second.stderr
        assert sub.wait_for(lambda m: sum(t == LABEL_TOPIC for t, _, _ in m)
                            >= again["delivered"])
        runs = [e["seq"] for e in first_by_seq(sub.labels(LABEL_TOPIC))
                if e["run"] == jsonl(out)[0]["run"]]
        # the oldest went: what stayed is the newest, in order
        assert runs == list(range(600 - len(runs), 600))
        assert len(runs) >= counts["queued"] - 3
        sub.close()
    finally:
        broker.stop()


def test_a_full_disk_keeps_the_spool_in_memory_and_delivers(small_disk: Path, broker: Broker,
                                                            tmp_path: Path) -> None:
    leave_free(small_disk, 0)
    sub = Subscriber(broker)
    out = tmp_path / "labels.jsonl"
    result = run("--max-frames", "60", "--mqtt", broker.url(),
                 "--state-dir", str(small_disk / "state"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    warnings = [x for x in result.stderr.splitlines() if "in memory for this run only" in x]
    assert len(warnings) == 1, result.stderr
    assert sub.wait_for(lambda m: sum(t == LABEL_TOPIC for t, _, _ in m) >= 60)
    assert [e["seq"] for e in first_by_seq(sub.labels(LABEL_TOPIC))] == list(range(60))
    assert summary_counts(result.stderr)["queued"] == 0
    sub.close()


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(3000))


def _other_schema(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE messages (a TEXT, b INTEGER)")
    db.execute("INSERT INTO messages VALUES ('x', 1)")
    db.commit()
    db.close()


def _truncated(path: Path) -> None:
    with Spool(path) as spool:
        for i in range(3000):
            spool.append(LABEL_TOPIC, json.dumps({"seq": i, "pad": "x" * 200}).encode())
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = path.read_bytes()
    path.write_bytes(data[:4096] + os.urandom(4096) + data[8192:len(data) // 2])


@pytest.mark.parametrize("damage", [_garbage, _other_schema, _truncated],
                         ids=["garbage", "other-schema", "truncated"])
def test_a_damaged_spool_is_moved_aside_with_one_warning(damage, broker: Broker,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    damage(state / "mqtt-cam1.sqlite3")
    sub = Subscriber(broker)
    for attempt in range(2):  # the second start finds the new, healthy spool
        out = tmp_path / f"labels{attempt}.jsonl"
        result = run("--max-frames", "20", "--mqtt", broker.url(), "--state-dir", str(state),
                     "--output", str(out))
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        said = [x for x in result.stderr.splitlines() if "moved it aside" in x]
        assert len(said) == (1 if attempt == 0 else 0), result.stderr
        assert len(jsonl(out)) == 20
    aside = list(state.glob("mqtt-cam1.sqlite3.corrupt-*"))
    assert [p.name for p in aside if not p.name.endswith(("-wal", "-shm"))] != []
    assert sub.wait_for(lambda m: sum(t == LABEL_TOPIC for t, _, _ in m) >= 40)
    sub.close()


# --- 25.3: the delivery thread cannot die silently ----------------------------------------------

POISON = ["test/+/label", "", "test/#", "test/a\x00b"]


def test_poison_messages_in_the_spool_are_dropped_counted_and_said_once(
        broker: Broker, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Spool(state / "mqtt-cam1.sqlite3") as spool:
        for i, bad in enumerate(POISON):
            spool.append(LABEL_TOPIC, json.dumps({"seq": 1000 + i, "old": True}).encode())
            spool.append(bad, b"{}")
    sub = Subscriber(broker)
    out = tmp_path / "labels.jsonl"
    result = run("--max-frames", "10", "--mqtt", broker.url(), "--state-dir", str(state),
                 "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("refuses") == 1, result.stderr
    counts = summary_counts(result.stderr)
    assert (counts["queued"], counts["delivered"], counts["dropped"]) == (0, 14, 4), counts
    assert sub.wait_for(lambda m: sum(t == LABEL_TOPIC for t, _, _ in m) >= 14)
    assert [e["seq"] for e in sub.labels(LABEL_TOPIC)] == [1000, 1001, 1002, 1003, *range(10)]
    sub.close()


def _wait(predicate, timeout: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _event(seq: int, detections: tuple[Detection, ...] = ()) -> LabelEvent:
    top = (Prediction(detections[0].index, detections[0].label, detections[0].score),) \
        if detections else ()
    return LabelEvent(seq, seq, 0, 1.0, time.time(), top, kind=DETECT, detections=detections,
                      frame_size=(640, 480), run="r1")


def test_a_locked_spool_is_retried_with_backoff_and_delivery_resumes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    broker = Broker(tmp_path)
    broker.start()
    sub = Subscriber(broker)  # a persistent session: the broker keeps what comes meanwhile
    broker.stop()  # not listening: the labels wait in the spool
    state = tmp_path / "state"
    sink = MqttSink.open(MqttOptions(broker.url(), device_name="cam1", state_dir=str(state)))
    try:
        for i in range(50):
            sink.write(_event(i))
        locker = sqlite3.connect(state / "mqtt-cam1.sqlite3", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the file: deletes fail
        broker.start()
        assert sub.wait_for(lambda m: sum(t == LABEL_TOPIC for t, _, _ in m) >= 50)
        assert _wait(lambda: "cannot delete from the message spool" in caplog.text)
        time.sleep(1.0)
        assert sink._thread.is_alive() and sink.failure is None
        assert sink.counters()["queued"] == 50  # acknowledged, but not yet forgotten
        locker.execute("ROLLBACK")
        locker.close()
        assert _wait(lambda: sink.counters()["queued"] == 0), sink.counters()
        assert sink.counters()["delivered"] == 50
        assert "works again" in caplog.text
        assert caplog.text.count("cannot delete from the message spool") == 1
        sub.close()
    finally:
        sink.close()
        broker.stop()
    assert sink.failure is None


def test_a_dead_delivery_thread_fails_the_run_but_not_the_labels(
        broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    from edge.cli import run as run_cli

    calls = []
    real = MqttSink._move

    def move_then_break(self: MqttSink, link: object) -> None:
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("an error nobody foresaw")
        real(self, link)  # type: ignore[arg-type]

    monkeypatch.setattr(MqttSink, "_move", move_then_break)
    out = tmp_path / "labels.jsonl"
    code = run_cli.main(["--camera", "demo", "--device-name", "cam1", "--max-frames", "200",
                         "--mqtt", broker.url(), "--state-dir", str(tmp_path / "state"),
                         "--output", str(out), "--mqtt-drain", "0.5"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(jsonl(out)) == 200  # the other sink got every label
    assert "MQTT delivery stopped: RuntimeError: an error nobody foresaw" in caplog.text
    done = next(x for x in err.splitlines() if x.startswith("edge-run: done in"))
    assert re.search(r"mqtt queued \d+ delivered \d+ dropped 0 reconnects 0 failed 1", done)
    assert err.rstrip().endswith("edge-run: error: mqtt delivery stopped during the run (said "
                                 "above); the other sinks got every label")


# --- 24.2: nothing left behind at exit ----------------------------------------------------------

def test_at_exit_the_drain_waits_for_the_broker_and_delivers_everything(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # away when the run starts and when its frames are done
    proc = subprocess.Popen(
        edge_run("--max-frames", "20", "--mqtt", broker.url(), "--mqtt-drain", "60",
                 "--state-dir", str(tmp_path / "state")),
        cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        lines = stderr_lines(proc)
        wait_line(lines, r"edge-run: board ", seen)  # the model is loaded: 20 frames take ms
        time.sleep(2.0)
        assert proc.poll() is None  # still draining
        broker.start()
        sub = Subscriber(broker)
        assert proc.wait(timeout=120) == 0
        wait_line(lines, r"edge-run: done in", seen)
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()
    text = "".join(seen)
    assert re.search(r"MQTT broker \S+: connected, 20 queued", text), text
    assert summary_counts(text) == {"queued": 0, "delivered": 20, "dropped": 0, "reconnects": 1}
    sub.close()


@pytest.mark.serial
def test_edge_listen_drains_at_exit_once_the_broker_is_back(tmp_path: Path) -> None:
    import sys

    from tests.test_run_serial import ENV, linked_ptys, listening, rest_of

    broker = Broker(tmp_path)
    broker.start()
    sub = Subscriber(broker, "test/+/label")  # a persistent session, kept across the restart
    broker.stop()
    try:
        with linked_ptys() as (writer_port, reader_port), listening(reader_port, [
                "--format", "json", "--json", "--max-frames", "30", "--mqtt", broker.url(),
                "--device-name", "gw", "--state-dir", str(tmp_path / "state"),
                "--mqtt-drain", "60"]) as (gateway, lines, seen):
            sender = subprocess.run(
                [sys.executable, "-m", "edge", "run", "--camera", "demo", "--max-frames",
                 "30", "--serial", writer_port, "--device-name", "mcu-1"],
                cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
            assert sender.returncode == 0, sender.stderr
            time.sleep(1.0)
            assert gateway.poll() is None  # 30 records read, waiting for the broker
            broker.start()
            _, err = rest_of(gateway, lines, seen, timeout=120)
        assert gateway.returncode == 0, err
        summary = json.loads(err.strip().splitlines()[-1])["summary"]
        assert (summary["mqtt_queued"], summary["mqtt_delivered"]) == (0, 30), err
        assert summary["mqtt_reconnects"] == 1
        assert sub.wait_for(lambda m: len(m) >= 30)
        assert [json.loads(p)["seq"] for _, p, _ in sub.messages][:30] == list(range(30))
    finally:
        sub.close()
        broker.stop()


@pytest.mark.parametrize("stop_after", [60, 500])  # mid-run, and about when the run ends
def test_a_broker_restart_mid_run_leaves_nothing_in_the_spool(broker: Broker, tmp_path: Path,
                                                              stop_after: int) -> None:
    sub = Subscriber(broker)
    proc = subprocess.Popen(
        edge_run("--max-frames", "600", "--mqtt", broker.url(), "--preview", "0",
                 "--state-dir", str(tmp_path / "state"), "--output", str(tmp_path / "o.jsonl")),
        cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        lines = stderr_lines(proc)
        assert sub.wait_for(lambda m: sum(t == LABEL_TOPIC for t, _, _ in m) >= stop_after)
        broker.stop()
        all_sent_before = proc.poll() is not None  # a fast run may end before the outage
        time.sleep(2.0)
        broker.start()
        assert proc.wait(timeout=300) == 0
        wait_line(lines, r"edge-run: done in", seen)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(seen)
    counts = summary_counts(text)
    assert (counts["queued"], counts["dropped"]) == (0, 0), text
    assert counts["reconnects"] == (0 if all_sent_before else 1), text
    assert "stay spooled" not in text, text
    assert sub.wait_for(lambda m: len({json.loads(p)["seq"] for t, p, _ in m if t == LABEL_TOPIC})
                        >= 600)
    assert [e["seq"] for e in first_by_seq(sub.labels(LABEL_TOPIC))] == list(range(600))
    sub.close()


# --- 19.3: Home Assistant count sensors of detectors --------------------------------------------

def test_detector_counts_get_bounded_home_assistant_count_sensors(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    sub = Subscriber(broker)
    sink = MqttSink.open(MqttOptions(broker.url(), device_name="cam1",
                                     state_dir=str(tmp_path / "state")))
    person = Detection(0, "person", 0.9, (10.0, 20.0, 110.0, 220.0))
    tie = Detection(27, "tie", 0.6, (50.0, 90.0, 60.0, 140.0))
    try:
        sink.write(_event(0, (person, person, tie)))
        sink.write(_event(1, (person,)))
        many = tuple(Detection(i, f"thing {i}", 0.5, (0.0, 0.0, 1.0, 1.0)) for i in range(30))
        sink.write(_event(2, many))
        sink.publish_label({"seq": 0, "counts": {"cat": 1}}, device="wire", announce=False)
        assert _wait(lambda: sink.counters()["delivered"] == 4)
    finally:
        sink.close()
    configs = {}
    assert sub.wait_for(lambda m: sum(t.endswith("/config") for t, _, _ in m) >= 4 + 16)
    time.sleep(0.5)
    for t, p, _ in sub.messages:
        if t.startswith("homeassistant/") and "_count_" in t:
            configs[t] = json.loads(p)
    assert len(configs) == topics.MAX_COUNT_SENSORS  # bounded: 2 + 30 labels seen, 16 announced
    by_name = {c["name"]: c for c in configs.values()}
    assert {"person count", "tie count"} <= set(by_name)
    assert by_name["person count"]["state_topic"] == LABEL_TOPIC
    assert by_name["person count"]["unique_id"] == "edge_cam1_count_person"
    assert "['person']" not in by_name["person count"]["value_template"]
    assert '["person"]' in by_name["person count"]["value_template"]
    assert caplog.text.count("not announcing more") == 1
    assert not any("wire" in t for t, _, _ in sub.messages if t.startswith("homeassistant/"))
    labels = sub.labels(LABEL_TOPIC)
    assert labels[0]["counts"] == {"person": 2, "tie": 1}
    assert labels[0]["detections"][0] == {"label": "person", "index": 0, "score": 0.9,
                                          "box": [10.0, 20.0, 110.0, 220.0]}
    assert labels[1]["counts"] == {"person": 1}  # the tie sensor reads 0 (default) here
    assert {e["run"] for e in labels} == {"r1"}
    sub.close()


def test_text_that_cannot_be_encoded_never_stops_the_spool_or_a_payload(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3") as spool:
        spool.append("edge/a\udc80/label", b"{}")  # a lone surrogate: SQLite refuses the text
        spool.append("edge/cam1/label", b"{}")
        assert (len(spool), spool.dropped) == (1, 1)
    payload = topics.label_payload({"label": "a\ud800b"}, "cam1")
    assert json.loads(payload) == {"label": "a\ud800b", "device": "cam1"}


def test_count_sensor_ids_are_unique_and_safe() -> None:
    ids = {topics.count_sensor_id(x) for x in ["person", "Person", "traffic light", "a/b",
                                                "traffic_light", "", "+#"]}
    assert len(ids) == 7
    assert all(re.fullmatch(r"[a-z0-9_]+", i) for i in ids)
    assert topics.count_sensor_id("person") == "person"
