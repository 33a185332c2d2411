"""A real mosquitto broker for tests, on a free port with a temporary config, and a subscriber.

The broker keeps its state on disk (``persistence true``) and is stopped with SIGTERM, so a
restarted broker still holds the messages queued for the persistent test subscriber.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_tool


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so that it stays free while a test's broker
    is down: no outgoing connection (a reconnecting client's own source port, which could otherwise
    connect to itself) and no other test's ``bind(0)`` can be given it in the meantime."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first = 10000 if low > 12000 else 1024
    rng = random.Random()  # seeded from the OS: parallel workers pick different ports
    for _ in range(200):
        port = rng.randrange(first, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port between {first} and {low}")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 and its key, made with openssl."""
    openssl = need_tool("openssl", "apt install openssl")
    cert, key = folder / "broker.crt", folder / "broker.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=120)
    return cert, key


class Broker:
    """mosquitto on 127.0.0.1; ``users`` enables password login, ``tls`` a TLS listener."""

    def __init__(self, folder: Path, *, users: dict[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.exe = need_tool("mosquitto", "apt install mosquitto")
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        import getpass

        # As root, mosquitto would switch to the "mosquitto" user, who cannot write here.
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "persistence true",
                 f"persistence_location {folder}/", "autosave_interval 1",
                 f"log_dest file {folder}/mosquitto.log", "max_queued_messages 100000"]
        if users:
            pw = folder / "passwd"
            pw.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            tool = need_tool("mosquitto_passwd", "apt install mosquitto")
            subprocess.run([tool, "-U", str(pw)], check=True, capture_output=True, timeout=60)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until it accepts connections (or dies)
            if self.proc.poll() is not None:
                log = self.folder / "mosquitto.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                err = self.proc.stderr.read() if self.proc.stderr else b""
                raise AssertionError(f"mosquitto on port {self.port} exited: {err!r}; "
                                     f"its log ends: {tail!r}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.proc = None

    def url(self, prefix: str = "test", *, user: str = "", scheme: str = "mqtt",
            host: str = "127.0.0.1") -> str:
        auth = f"{user}@" if user else ""
        return f"{scheme}://{auth}{host}:{self.port}/{prefix}"


class Subscriber:
    """A persistent-session QoS 1 subscriber collecting every message, reconnecting by itself."""

    def __init__(self, broker: Broker, topic: str = "#", *, auth: tuple[str, str] | None = None,
                 tls_ca: Path | None = None, name: str = "t") -> None:
        mqtt = pytest.importorskip("paho.mqtt.client", reason="pip install 'edge-labels[mqtt]'")
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{broker.port}",
                             clean_session=False)
        if auth:
            client.username_pw_set(*auth)
        if tls_ca:
            client.tls_set(ca_certs=str(tls_ca))
        client.reconnect_delay_set(0.05, 0.5)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *a: self._subscribed.set()
        client.on_message = self._on_message
        client.connect("localhost" if tls_ca else "127.0.0.1", broker.port, 30)
        client.loop_start()
        self.client = client
        assert self._subscribed.wait(60), "the subscription was not acknowledged"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[tuple[str, bytes, bool]]], bool],
                 timeout: float = 120) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.messages), timeout)

    def labels(self, topic: str) -> list[dict[str, Any]]:
        with self._cond:
            return [json.loads(p) for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def first_by_seq(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """QoS 1 may repeat a message: keep each ``seq``'s first arrival, in arrival order."""
    seen: set[int] = set()
    out = []
    for event in events:
        if event["seq"] not in seen:
            seen.add(event["seq"])
            out.append(event)
    return out
