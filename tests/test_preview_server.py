"""The preview server under abuse, over real sockets on loopback: a bounded number of
connections, timeouts, rate-capped and coalesced events, slow clients dropped, Host and token
checked; and the pure parts it stands on (request heads, Host names, limits)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import numpy as np
import pytest

from edge.events import LabelEvent, Prediction
from edge.preview import PreviewOptions
from edge.preview import server as server_module
from edge.preview.guard import BadRequestError, Guard, Request, host_name, parse_head
from edge.preview.server import PreviewServer, connection_limit

# --- pure ------------------------------------------------------------------------------------


def test_request_heads() -> None:
    r = parse_head(b"GET /status?token=a%20b HTTP/1.1\r\nHost: x:1\r\nConnection: close")
    assert (r.method, r.path, r.query, r.headers["host"]) == ("GET", "/status", "token=a%20b",
                                                            "x:1")
    assert not r.keep_alive and not r.has_body
    assert parse_head(b"HEAD / HTTP/1.0").keep_alive is False
    assert parse_head(b"GET / HTTP/1.1\r\nHost: a").keep_alive is True
    assert parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5").has_body
    for head, status in ((b"POST / HTTP/1.1\r\nHost: a", 405), (b"GET / HTTP/2.0", 505),
                         (b"GET /", 400), (b"GET / HTTP/1.1", 400),
                         (b"GET / HTTP/1.1\r\nHost a", 400),
                         (b"GET / HTTP/1.1\r\nHost: a\r\n Bad: b", 400)):
        with pytest.raises(BadRequestError) as info:
            parse_head(head)
        assert info.value.status == status, head


def test_host_names() -> None:
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("[::1]:80") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("cam.local.") == "cam.local"


@pytest.mark.parametrize(("bound", "names", "host", "allowed"), [
    ("127.0.0.1", (), "127.0.0.1:8080", True),
    ("127.0.0.1", (), "localhost:8080", True),
    ("127.0.0.1", (), "[::1]:8080", True),
    ("127.0.0.1", (), "rebind.example:8080", False),  # DNS rebinding
    ("127.0.0.1", ("cam.lan",), "CAM.lan:8080", True),
    ("0.0.0.0", (), "192.168.1.20:8080", True),  # an IP literal cannot be rebound
    ("0.0.0.0", (), "attacker.example", False),
    ("0.0.0.0", ("pi.local",), "pi.local:8080", True),
    ("192.168.1.20", (), "192.168.1.21", False),
    ("192.168.1.20", (), "192.168.1.20:80", True),
    ("::1", (), "[::1]:80", True),
    ("localhost", (), "127.0.0.1:9", True),
])
def test_host_check(bound: str, names: tuple[str, ...], host: str, allowed: bool) -> None:
    assert Guard(bound, names).host_allowed(host) is allowed


def test_token_in_query_or_bearer_of_any_case() -> None:
    guard = Guard("127.0.0.1", token="s3cret")

    def request(query: str = "", auth: str | None = None) -> Request:
        headers = {"host": "127.0.0.1"} | ({"authorization": auth} if auth else {})
        return Request("GET", "/", query, "HTTP/1.1", headers)

    assert guard.authorised(request("token=s3cret"))
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert guard.authorised(request(auth=f"{scheme} s3cret")), scheme
    assert not guard.authorised(request(auth="Basic s3cret"))
    assert not guard.authorised(request(auth="Bearer wrong"))
    assert not guard.authorised(request("token=s3cre"))
    assert guard.refusal(request()) == (401, "a valid token is required")
    assert Guard("127.0.0.1").authorised(request())


def test_connection_limit_leaves_descriptors() -> None:
    assert connection_limit(512, 1024) == 512
    assert connection_limit(512, 600) == 600 - server_module.FD_RESERVE
    assert connection_limit(512, 64) == server_module.MIN_CONNECTIONS
    assert connection_limit(100, 10_000) == 100


# --- a real server, fed as the loop feeds it ---------------------------------------------------

def _event(seq: int, width: int = 64, height: int = 48) -> LabelEvent:
    return LabelEvent(seq, seq, time.monotonic_ns(), 1.0, time.time(),
                      (Prediction(seq % 10, str(seq % 10), 0.9),), frame_size=(width, height))


class Feeder:
    """Calls ``hub.observe`` like the inference loop, ``rate`` times a second."""

    def __init__(self, server: PreviewServer, rate: float = 200.0,
                 frame: np.ndarray | None = None) -> None:
        self.server, self.rate = server, rate
        self.frame = frame if frame is not None else np.zeros((48, 64, 3), np.uint8)
        self.seq = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0 / self.rate):
            h, w = self.frame.shape[:2]
            self.server.hub.observe(self.frame, _event(self.seq, w, h))
            self.seq += 1

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


@contextmanager
def serving(**options: object) -> Iterator[PreviewServer]:
    with PreviewServer(PreviewOptions(port=0, **options), title="test") as server:  # type: ignore[arg-type]
        yield server


def _address(server: PreviewServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def _connect(server: PreviewServer, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(_address(server))
    return sock


def _get(server: PreviewServer, path: str, headers: str = "", host: str | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (Connection: close); (status, headers, body)."""
    with _connect(server) as sock:
        host = host or "{}:{}".format(*_address(server))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), fields, body


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def test_host_and_token_on_the_wire() -> None:
    with serving(token="s3cret", hosts=("cam.lan",)) as server:
        assert _get(server, "/status")[0] == 401
        status, fields, _ = _get(server, "/status", "Authorization: bearer s3cret\r\n")
        assert status == 200 and fields["Content-Type"] == "application/json"
        assert _get(server, "/status?token=s3cret", host="rebind.example:1")[0] == 421
        assert _get(server, "/status?token=s3cret", host="cam.lan:1")[0] == 200
        assert _get(server, "/nothing?token=s3cret")[0] == 404
        assert server.hub.counters.bad_requests == 2


def test_status_and_metrics_answer_from_the_first_frame() -> None:
    with serving() as server:
        summary = json.loads(_get(server, "/status")[2])["summary"]
        assert summary["frames"] == 0 and json.loads(_get(server, "/status")[2])["last"] is None
        time.sleep(server_module.STATUS_CACHE_S)
        server.hub.observe(np.zeros((48, 64, 3), np.uint8), _event(0))
        status = json.loads(_get(server, "/status")[2])
        assert status["summary"]["frames"] == 1 and status["last"]["seq"] == 0
        assert status["summary"]["latency_p50_ms"] == 1.0
        assert "edge_frames_total 1" in _get(server, "/metrics")[2].decode().splitlines()


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    with serving() as server, _connect(server) as sock:
        request = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock.sendall(request * 3)  # pipelined
        data = b""
        while data.count(b"HTTP/1.1 200") < 3:
            data += sock.recv(65536)
        assert server.hub.counters.connections == 1


def test_connections_are_bounded_idle_ones_make_room() -> None:
    with serving(max_connections=16) as server:
        idle = [_connect(server) for _ in range(40)]
        for sock in idle:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        deadline = time.monotonic() + 30
        while server.hub.counters.evicted < 40 - 16 and time.monotonic() < deadline:
            assert server.hub.counters.connections <= 16
            time.sleep(0.05)
        assert server.hub.counters.connections <= 16
        assert server.hub.counters.evicted >= 40 - 16
        assert _get(server, "/status")[0] == 200  # a new client still gets in
        closed = sum(_closed_by_server(sock, 0.05) for sock in idle)
        assert closed >= 40 - 16
        for sock in idle:
            sock.close()


def test_every_connection_busy_means_503_for_the_next() -> None:
    with serving(max_connections=8) as server:
        streams = [_connect(server) for _ in range(8)]
        for sock in streams:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        status, fields, _ = _get(server, "/status")
        assert status == 503 and fields["Retry-After"] == "1"
        assert server.hub.counters.refused == 1 and server.hub.counters.listeners == 8
        streams.pop().close()
        deadline = time.monotonic() + 10
        while server.hub.counters.listeners == 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _get(server, "/status")[0] == 200
        for sock in streams:
            sock.close()


def test_unfinished_requests_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT_S", 0.5)
    monkeypatch.setattr(server_module, "SWEEP_S", 0.1)
    with serving() as server, _connect(server) as slow:
        slow.sendall(b"GET /status HTTP/1.1\r\nHo")
        assert _closed_by_server(slow, 20)
        assert server.hub.counters.timed_out == 1 and server.hub.counters.connections == 0


def test_oversized_head_is_refused() -> None:
    with serving() as server, _connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 9000)
        assert sock.recv(4096).startswith(b"HTTP/1.1 431")


def _read_events(socks: list[socket.socket], seconds: float) -> list[list[int]]:
    """The event numbers each socket receives within ``seconds``, read side by side."""
    data = [b""] * len(socks)
    for sock in socks:
        sock.settimeout(0.02)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i, sock in enumerate(socks):
            with suppress(TimeoutError):
                data[i] += sock.recv(65536)
    return [[json.loads(line[6:])["seq"] for line in d.decode().splitlines()
             if line.startswith("data: ")] for d in data]


def test_events_are_coalesced_and_rate_capped_per_client() -> None:
    with serving(events_per_s=5.0) as server, Feeder(server, rate=300) as feeder:
        clients = [_connect(server) for _ in range(3)]
        for sock in clients:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        seen = _read_events(clients, 3.0)
        newest = feeder.seq
        later = _read_events(clients, 4.0)  # long enough for a tick on a starved machine
        for seqs, then in zip(seen, later, strict=True):
            assert 1 <= len(seqs) <= 5 * 3.0 + 3, seqs  # the cap, plus the one sent on connect
            assert seqs == sorted(set(seqs))  # newest each time, never repeated
            assert then and then[-1] >= newest  # fresh: the newest at the next tick
        assert server.hub.counters.events_coalesced > 100
        for sock in clients:
            sock.close()


def test_a_viewer_that_does_not_read_is_skipped_then_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "SLOW_CLIENT_S", 1.0)
    noise = np.random.default_rng(7).integers(0, 256, (720, 1280, 3), np.uint8)
    with serving(width=1280, quality=95, max_fps=20) as server, \
            Feeder(server, rate=50, frame=noise):
        stuck = _connect(server, rcvbuf=4096)
        stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with _connect(server) as reader:
            reader.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = 0
            deadline = time.monotonic() + 60
            while server.hub.counters.slow_dropped == 0 and time.monotonic() < deadline:
                got += reader.recv(1 << 20).count(b"--edgeframe")
            assert server.hub.counters.slow_dropped == 1
            assert server.hub.counters.frames_skipped > 0
            frames_then = got
            deadline = time.monotonic() + 30
            while got < frames_then + 5 and time.monotonic() < deadline:  # still served
                got += reader.recv(1 << 20).count(b"--edgeframe")
            assert got >= frames_then + 5 and server.hub.counters.viewers == 1
        assert _closed_by_server(stuck, 5)
        stuck.close()


# --- the design that keeps the labelling loop's cost flat, whatever the clients do -------------

def _stalled_clients(server: PreviewServer, listeners: int, viewers: int) -> list[socket.socket]:
    """Stream clients that never read, with small receive buffers (they fill at once)."""
    socks = []
    for i in range(listeners + viewers):
        sock = _connect(server, rcvbuf=4096)
        path = "/events" if i < listeners else "/stream.mjpg"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        socks.append(sock)
    deadline = time.monotonic() + 60
    while (server.hub.counters.listeners < listeners or server.hub.counters.viewers < viewers
           ) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.hub.counters.listeners == listeners
    assert server.hub.counters.viewers == viewers
    return socks


def test_the_loops_handover_never_waits_for_the_server_its_encoder_or_clients() -> None:
    """The loop's per-frame call shares no lock with the server or the encoder: with every
    client stalled (full socket buffers), the server's thread held and the encoder held inside
    an encoding, 20,000 frames are still handed over (a hang here would be the loop's)."""
    noise = np.random.default_rng(5).integers(0, 256, (240, 320, 3), np.uint8)
    release = threading.Event()
    in_encode = threading.Event()
    with serving(width=320, quality=95, max_fps=50) as server:
        hub = server.hub
        encode = hub.encode

        def held_encode(rgb: np.ndarray, event: LabelEvent) -> bytes:
            if hub.encoded >= 3:  # a few pictures out first, then stuck inside one
                in_encode.set()
                release.wait(120)
            return encode(rgb, event)

        hub.encode = held_encode  # type: ignore[method-assign]
        socks = _stalled_clients(server, listeners=50, viewers=10)
        with Feeder(server, rate=100, frame=noise):
            assert in_encode.wait(60)
        server._loop.call_soon_threadsafe(release.wait, 120)  # the server's thread held too
        observed = hub.latest_event()[0]
        def hand_over() -> None:
            for i in range(20_000):
                hub.observe(noise, _event(i, 320, 240))

        handed = threading.Thread(target=hand_over, daemon=True)
        handed.start()
        handed.join(120)  # a guard against a hang, not a time limit
        done = not handed.is_alive()
        release.set()
        assert done, "the loop's hand-over waited for the preview"
        assert hub.latest_event()[0] == observed + 20_000
        newest = hub.latest_event()[1]
        assert newest is not None and newest.seq == 19_999
        assert _get(server, "/status")[0] == 200  # the server carries on once released
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("viewers", [1, 30])
def test_at_most_one_encoding_per_frame_and_max_fps_whatever_the_viewers(viewers: int) -> None:
    """One JPEG per frame at most, shared by every viewer, at most ``max_fps`` a second: the
    encoder's work does not grow with the number of viewers (or with the loop's rate)."""
    encoded: list[int] = []
    with serving(max_fps=10) as server:
        hub = server.hub
        encode = hub.encode

        def counted(rgb: np.ndarray, event: LabelEvent) -> bytes:
            encoded.append(event.seq)
            jpeg = encode(rgb, event)
            sent.add(jpeg)
            return jpeg

        sent: set[bytes] = set()
        hub.encode = counted  # type: ignore[method-assign]
        socks = [_connect(server) for _ in range(viewers)]
        for sock in socks:
            sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with Feeder(server, rate=200):
            start = time.monotonic()
            data = [b""] * viewers
            for sock in socks:
                sock.settimeout(0.01)
            while time.monotonic() - start < 3.0 or min(d.count(b"--edgeframe")
                                                        for d in data) < 2:
                assert time.monotonic() - start < 120
                for i, sock in enumerate(socks):
                    with suppress(TimeoutError):
                        data[i] += sock.recv(1 << 20)
            elapsed = time.monotonic() - start
            frames = hub.latest_event()[0]
        assert len(encoded) == len(set(encoded))  # never one frame twice
        # the rate cap sets it, not the viewers, nor the loop's rate (up to 200 frames a second)
        assert 2 <= len(encoded) <= min(frames, 10 * elapsed + 2)
        for d in data:  # every viewer got the very bytes encoded once for all
            jpegs = [part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
                     for part in d.split(b"--edgeframe\r\n")[1:-1]]
            assert jpegs and all(jpeg in sent for jpeg in jpegs)
        for sock in socks:
            sock.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


CLIENTS = r"""
import os, resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
host, port, idle, half_open = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = []
for _ in range(idle):  # idle: connected, half a request, then nothing
    sock = socket.create_connection((host, port), timeout=60)
    sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    socks.append(sock)
for _ in range(half_open):  # half-open: connecting (the kernel queues them), never a byte
    sock = socket.socket()
    sock.setblocking(False)
    sock.connect_ex((host, port))
    socks.append(sock)
print("connected", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_descriptors_stay_bounded_under_idle_and_half_open_connections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """300 idle sockets and 1,100 half-open ones (connecting, never a byte sent), from another
    process: this process never holds more descriptors than the connection limit allows (and
    the reserve beside it), never fails an accept, and new clients are answered."""
    monkeypatch.setattr(server_module, "ACCEPT_RATE", 1000.0)  # the flood in seconds, not 14
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT_S", 3.0)
    monkeypatch.setattr(server_module, "SWEEP_S", 0.2)
    with serving(max_connections=200) as server, Feeder(server, rate=50):
        host, port = _address(server)
        before = _open_fds()
        clients = subprocess.Popen([sys.executable, "-c", CLIENTS, host, str(port), "300", "1100"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert clients.stdout is not None and clients.stdout.readline() == "connected\n"
            peak = 0
            answered = 0
            deadline = time.monotonic() + 120
            counters = server.hub.counters
            # until the limit made room (evicted) and more than the idle ones and the limit were
            # closed (evicted or timed out); the half-open
            # ones that never reach us wait in the kernel (accept queue full, handshake
            # unfinished): no descriptor of ours
            while (counters.evicted == 0 or counters.evicted + counters.timed_out < 500
                   or answered < 3) and \
                    time.monotonic() < deadline:
                peak = max(peak, _open_fds() - before)
                assert counters.connections <= 200
                try:
                    if _get(server, "/status")[0] == 200:
                        answered += 1
                except ConnectionError:  # evicted to make room, like any connection at the limit
                    pass
                time.sleep(0.05)
            assert counters.evicted > 0, server.hub.numbers()
            assert counters.evicted + counters.timed_out >= 500, server.hub.numbers()
            assert answered >= 3 and counters.accept_errors == 0
            # held: the limit, the new client's two ends, and the idle ones evicted within one
            # batch of accepts whose descriptors asyncio closes at the end of that batch
            assert 0 < peak <= 200 + server_module.ACCEPT_BURST + 2, peak
            assert server_module.ACCEPT_BURST + 2 <= server_module.FD_RESERVE
        finally:
            clients.communicate("", timeout=60)
        assert _get(server, "/status")[0] == 200
