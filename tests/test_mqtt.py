"""edge-run --mqtt against a real mosquitto: every label arrives, in order, through outages,
restarts, passwords and TLS; the spool and URL parsing on plain values."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import SinkError
from edge.sinks.mqtt_options import parse_broker_url
from edge.sinks.spool import Spool
from tests.conftest import ROOT
from tests.mqtt_broker import Broker, Subscriber, first_by_seq, make_certificate
from tests.process_lines import stderr_lines, wait_line

pytestmark = pytest.mark.slow


def edge_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge", "run", "--camera", "demo", "--device-name", "cam1",
            *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": ""}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(edge_run(*args), cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=300)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_device(events: list[dict]) -> list[dict]:
    assert all(e.pop("device") == "cam1" for e in events)
    return events


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


# --- pure parts ---------------------------------------------------------------------------------

def test_broker_url_forms() -> None:
    url = parse_broker_url("mqtts://me:p%40ss@broker.lan/site/a")
    assert (url.host, url.port, url.tls, url.username, url.password, url.prefix) == (
        "broker.lan", 8883, True, "me", "p@ss", "site/a")
    assert parse_broker_url("mqtt://h:1884").port == 1884
    assert parse_broker_url("mqtt://h").prefix == "edge"
    assert "p@ss" not in url.redacted()


BAD_URLS = [("http://h/x", "scheme"), ("mqtt:///x", "no broker"), ("mqtt://h:99999/x", "port"),
            ("mqtt://h/a/#", "may not contain '?' or '#'"), ("mqtt://h/a/+/b", "may not contain +"),
            ("mqtt://u:secret@h:x/p", "port"), ("mqtt://h/a\udc80b", "unprintable")]


@pytest.mark.parametrize(("url", "says"), BAD_URLS)
def test_bad_broker_urls_are_refused_without_showing_the_password(url: str, says: str) -> None:
    with pytest.raises(SinkError, match=re.escape(says)) as info:
        parse_broker_url(url)
    assert "secret" not in str(info.value)


def test_spool_keeps_order_across_reopen_and_drops_the_oldest_when_full(tmp_path: Path) -> None:
    path = tmp_path / "state" / "spool.sqlite3"
    with Spool(path, max_messages=5) as spool:
        for i in range(7):
            spool.append("t", str(i).encode())
        assert (len(spool), spool.dropped) == (5, 2)
        head = spool.peek(0, 2)
        assert [m.payload for m in head] == [b"2", b"3"]
        spool.remove([head[0].id])
    with Spool(path, max_messages=5) as again:
        assert [m.payload for m in again.peek(0, 10)] == [b"3", b"4", b"5", b"6"]
        after = again.peek(0, 10)[1].id
        assert [m.payload for m in again.peek(after, 10)] == [b"5", b"6"]


# --- a real broker ------------------------------------------------------------------------------

def test_every_label_arrives_with_status_and_home_assistant_discovery(
        broker: Broker, tmp_path: Path) -> None:
    sub = Subscriber(broker)
    out = tmp_path / "labels.jsonl"
    result = run("--max-frames", "40", "--mqtt", broker.url(), "--output", str(out),
                 "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    assert sub.wait_for(lambda m: sum(t == "test/cam1/label" for t, _, _ in m) >= 40)
    assert without_device(sub.labels("test/cam1/label")) == jsonl(out)
    assert "mqtt queued 0 delivered 40 dropped 0 reconnects 0" in result.stderr
    sub.close()
    late = Subscriber(broker, topic="#")  # a new subscriber gets only the retained messages
    assert late.wait_for(lambda m: any(t == "test/cam1/status" for t, _, _ in m))
    assert late.wait_for(lambda m: sum(t.startswith("homeassistant/") for t, _, _ in m) >= 4)
    status = json.loads([p for t, p, r in late.messages if t == "test/cam1/status"][-1])
    assert status == {"state": "offline", "mqtt": {"queued": 0, "delivered": 40, "dropped": 0,
                                                   "reconnects": 0}}
    configs = [json.loads(p) for t, p, r in late.messages if t.startswith("homeassistant/")]
    label = next(c for c in configs if c["unique_id"] == "edge_cam1_label")
    assert label["state_topic"] == "test/cam1/label"
    assert label["availability_topic"] == "test/cam1/status"
    late.close()


def test_broker_outage_mid_run_loses_nothing_and_keeps_order(broker: Broker,
                                                             tmp_path: Path) -> None:
    sub = Subscriber(broker)
    out = tmp_path / "labels.jsonl"
    proc = subprocess.Popen(
        edge_run("--max-frames", "1000000", "--status-interval", "0.2", "--mqtt", broker.url(),
                 "--output", str(out), "--state-dir", str(tmp_path / "state")),
        cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        lines = stderr_lines(proc)
        assert sub.wait_for(lambda m: len(m) >= 20)
        broker.stop()
        wait_line(lines, r"mqtt queued ([1-9]\d{2,})", seen)  # >= 100 waiting in the spool
        broker.start()
        wait_line(lines, r"mqtt queued \d+ delivered \d+ dropped 0", seen)
        delivered = int(wait_line(lines, r"delivered (\d+)", seen).group(1))
        wait_line(lines, rf"delivered (?!{delivered}\b)\d+", seen)  # moving again
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_line(lines, r"edge-run: done in", seen)
    text = "".join(seen)
    assert len(re.findall(r"reconnected after \d+\.\d s, [\d,]+ queued", text)) == 1, text
    assert re.search(r"done in .* mqtt queued 0 delivered \d+ dropped 0 reconnects 1\n", text)
    sent = jsonl(out)
    topic = "test/cam1/label"
    arrived = sub.wait_for(lambda m: len({json.loads(p)["seq"] for t, p, _ in m if t == topic})
                           >= len(sent))
    missing = sorted({e["seq"] for e in sent} - {e["seq"] for e in sub.labels(topic)})
    assert arrived, f"{len(missing)} of {len(sent)} missing: {missing[:20]}...; {''.join(seen)}"
    got = without_device(first_by_seq(sub.labels(topic)))
    assert got == sent  # each label once, in order, equal to what was written to the file
    sub.close()


def test_the_spool_of_a_run_without_broker_is_delivered_by_the_next_run(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # not started yet: nothing listens on its port
    state = str(tmp_path / "state")
    first = run("--max-frames", "25", "--mqtt", broker.url(), "--state-dir", state,
                "--output", str(tmp_path / "a.jsonl"), "--mqtt-drain", "0.5")
    assert first.returncode == 0, first.stderr
    assert "not reachable" in first.stderr
    assert "mqtt queued 25 delivered 0 dropped 0" in first.stderr
    assert "25 message(s) stay spooled in" in first.stderr
    broker.start()
    try:
        sub = Subscriber(broker)
        second = run("--max-frames", "5", "--mqtt", broker.url(), "--state-dir", state,
                     "--output", str(tmp_path / "b.jsonl"))
        assert second.returncode == 0, second.stderr
        assert "mqtt queued 0 delivered 30 dropped 0" in second.stderr
        assert sub.wait_for(lambda m: len(m) >= 30)
        got = without_device(sub.labels("test/cam1/label"))
        a, b = jsonl(tmp_path / "a.jsonl"), jsonl(tmp_path / "b.jsonl")
        assert got == a + b
        # seq restarts at 0 every run; the run id tells the two runs apart
        assert [e["seq"] for e in got] == list(range(25)) + list(range(5))
        assert len({e["run"] for e in a}) == len({e["run"] for e in b}) == 1
        assert a[0]["run"] != b[0]["run"] and a[0]["run"]
        sub.close()
    finally:
        broker.stop()


def test_wrong_password_is_one_line_and_exit_2(tmp_path: Path) -> None:
    broker = Broker(tmp_path, users={"cam": "right"})
    broker.start()
    try:
        ok_sub = Subscriber(broker, auth=("cam", "right"))
        result = run("--max-frames", "3", "--mqtt", broker.url(user="cam:wrong"),
                     "--state-dir", str(tmp_path / "state"))
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"edge-run: error: --mqtt mqtt://cam@127.0.0.1:{broker.port}/test: the broker "
            "refused the login (Not authorized); check the user name and password in the URL"]
        assert "wrong" not in result.stderr
        good = run("--max-frames", "3", "--mqtt", broker.url(user="cam:right"),
                   "--state-dir", str(tmp_path / "state"))
        assert good.returncode == 0, good.stderr
        assert ok_sub.wait_for(lambda m: len(m) >= 3)
        ok_sub.close()
    finally:
        broker.stop()


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    broker = Broker(tmp_path, tls=(cert, key))
    broker.start()
    try:
        sub = Subscriber(broker, tls_ca=cert)
        url = broker.url(scheme="mqtts", host="localhost")
        result = run("--max-frames", "10", "--mqtt", url, "--mqtt-ca", str(cert),
                     "--state-dir", str(tmp_path / "state"))
        assert result.returncode == 0, result.stderr
        assert sub.wait_for(lambda m: sum(t == "test/cam1/label" for t, _, _ in m) >= 10)
        untrusted = run("--max-frames", "1", "--mqtt", url,
                        "--state-dir", str(tmp_path / "state2"))
        assert untrusted.returncode == 2
        assert untrusted.stderr.splitlines() == [
            f"edge-run: error: --mqtt mqtts://localhost:{broker.port}/test: the broker's "
            "certificate is not trusted (self-signed certificate); pass its CA with "
            "--mqtt-ca FILE"]
        sub.close()
    finally:
        broker.stop()
