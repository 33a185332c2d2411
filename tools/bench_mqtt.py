#!/usr/bin/env python3
"""MQTT sink throughput with QoS 1 and delivery after a broker outage, on a real mosquitto.

1. Events per second through MqttSink (spool + QoS 1, window of 20), against raw paho-mqtt
   QoS 1 publishing of the same payloads with the same window, in the same process.
2. Outage: the broker is stopped, events are queued in the spool, the broker restarts; prints
   events queued, delivered and the time to drain.
3. A nearly full disk (as root: a small tmpfs mounted for the purpose): spool appends per second
   while it drops the oldest for each new message, against appends on the same tmpfs with room.

Needs mosquitto (make sysdeps) and the mqtt extra.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.events import LabelEvent, Prediction  # noqa: E402
from edge.sinks.mqtt import WINDOW, MqttSink  # noqa: E402
from edge.sinks.mqtt_options import MqttOptions  # noqa: E402
from edge.sinks.mqtt_topics import label_payload  # noqa: E402
from edge.sinks.spool import Spool  # noqa: E402

CAMERA_FPS = 30.0


class Mosquitto:
    def __init__(self, folder: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        import getpass

        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\n"
                               "allow_anonymous true\n")
        self.exe = exe
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)


def event(i: int) -> LabelEvent:
    return LabelEvent(i, i, time.monotonic_ns(), 1.5, time.time(),
                      (Prediction(i % 10, str(i % 10), 0.97), Prediction(1, "1", 0.02)), i % 10)


def wait_delivered(sink: MqttSink, count: int, timeout: float = 600) -> float:
    start = time.perf_counter()
    while sink.counters()["delivered"] < count:
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"only {sink.counters()} after {timeout} s")
        time.sleep(0.002)
    return time.perf_counter() - start


def sink_rate(url: str, state: Path, n: int) -> float:
    with MqttSink.open(MqttOptions(url, device_name="bench", state_dir=str(state))) as sink:
        start = time.perf_counter()
        for i in range(n):
            sink.write(event(i))
        wait_delivered(sink, n)
        return n / (time.perf_counter() - start)


def raw_paho_rate(port: int, n: int) -> float:
    import paho.mqtt.client as mqtt

    from edge.sinks.mqtt_topics import label_payload

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.max_inflight_messages_set(WINDOW)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    payloads = [label_payload(event(i).as_dict(), "bench") for i in range(n)]
    start = time.perf_counter()
    infos = [client.publish("bench/raw/label", p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(600)
    rate = n / (time.perf_counter() - start)
    client.loop_stop()
    client.disconnect()
    return rate


def outage(broker: Mosquitto, url: str, state: Path, n: int) -> tuple[int, int, float]:
    with MqttSink.open(MqttOptions(url, device_name="outage", state_dir=str(state))) as sink:
        broker.stop()
        for i in range(n):
            sink.write(event(i))
        while sink.counters()["queued"] < n:
            time.sleep(0.01)
        queued = sink.counters()["queued"]
        restarted = time.perf_counter()
        broker.start()
        wait_delivered(sink, n)
        return queued, sink.counters()["delivered"], time.perf_counter() - restarted


def append_rate(path: Path, n: int) -> float:
    payload = label_payload(event(7).as_dict(), "bench")
    with Spool(path) as spool:
        start = time.perf_counter()
        for _ in range(n):
            spool.append("bench/bench/label", payload)
        return n / (time.perf_counter() - start)


def low_disk(folder: Path, n: int, rounds: int) -> tuple[float, float] | str:
    """(appends/s with room, appends/s with 300 KB free) on a tmpfs, or why not measured."""
    if os.geteuid() != 0:
        return "not measured: mounting a small tmpfs needs root"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"not measured: {done.stderr.strip()}"
    try:
        room, low = [], []
        for r in range(rounds):
            room.append(append_rate(folder / f"room{r}.sqlite3", n))
            st = os.statvfs(folder)
            (folder / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 300 * 1024))
            low.append(append_rate(folder / f"low{r}.sqlite3", n))
            (folder / "filler").unlink()
        return max(room), max(low)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events per throughput round")
    parser.add_argument("--outage-events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the outage's reconnect warnings are expected
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        url = f"mqtt://127.0.0.1:{broker.port}/bench"
        try:
            sink, raw = [], []
            for r in range(args.rounds):  # interleaved, so load affects both alike
                sink.append(sink_rate(url, Path(tmp) / f"state{r}", args.events))
                raw.append(raw_paho_rate(broker.port, args.events))
            queued, delivered, drain = outage(broker, url, Path(tmp) / "outage", args.outage_events)
        finally:
            broker.stop()
        disk = low_disk(Path(tmp) / "disk", args.outage_events, args.rounds)
    best_sink, best_raw = max(sink), max(raw)
    print(f"MQTT sink, QoS 1 through the spool: {best_sink:8.0f} events/s "
          f"(best of {args.rounds} x {args.events})")
    print(f"raw paho-mqtt QoS 1, same window:   {best_raw:8.0f} events/s")
    print(f"sink / raw paho:                    {best_sink / best_raw:8.2f}")
    print(f"sink / a {CAMERA_FPS:.0f} fps camera:              {best_sink / CAMERA_FPS:8.0f} x")
    print(f"outage: {queued} queued while the broker was down, {delivered} delivered after "
          f"it came back, drained in {drain:.2f} s ({delivered / drain:.0f} events/s, "
          "reconnect backoff included)")
    if isinstance(disk, str):
        print(f"nearly full disk: {disk}")
    else:
        print(f"spool appends on a tmpfs with room: {disk[0]:8.0f} /s; with 300 KB free (oldest "
              f"dropped for each new one): {disk[1]:.0f} /s, ratio {disk[1] / disk[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
