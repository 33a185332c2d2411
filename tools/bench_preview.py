#!/usr/bin/env python3
"""The labelling loop's fps under preview load, over its fps without load.

Runs ``edge-run``'s service in this process on the demo scene with the bundled demo model and
its preview (one inference thread, the descriptor limit lowered to 1024 as a default systemd
service has), and alternates windows without clients and with one of:

* ``mixed``: 200 Server-Sent-Events clients, 30 MJPEG viewers and 300 idle sockets (connected,
  sending half a request and nothing more) at once, plus one new client asking ``/status``
  every 0.25 s;
* ``flood``: 1,050 connections that never finish a request (and reconnect when closed).

Each loaded window is compared with the unloaded windows either side of it, so a machine whose
load drifts affects both alike. The clients run in a child process (``--load``) so their own
work is not this process's, in a session of its own at nice 19 (also its autogroup) so it takes
the CPU the measured process leaves (on a real device the clients are other machines); their
connecting is not inside the window. Prints the
ratio per case (goal >= 0.95), what the clients got (events, frames, the new client's p95
latency) and the server's counters. Example::

    python tools/bench_preview.py --rounds 6 --window 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.pipeline.runner import LoopSettings  # noqa: E402
from edge.pipeline.service import RunOptions, SourceOptions, run_service  # noqa: E402
from edge.preview import PreviewOptions  # noqa: E402
from edge.runtime.policy import RuntimeOptions  # noqa: E402
from edge.sinks import SinkOptions  # noqa: E402

CASES: dict[str, dict[str, int]] = {"mixed": {"sse": 200, "mjpeg": 30, "idle": 300},
                                    "flood": {"sse": 0, "mjpeg": 0, "idle": 1050}}


# --- the load, in a child process -------------------------------------------------------------

class Load:
    """Clients of one preview, counting what they get."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.events = 0
        self.sse_served: set[int] = set()
        self.mjpeg_bytes = 0
        self.frames = 0
        self.mjpeg_served: set[int] = set()
        self.idle_closed = 0
        self.refused = 0
        self.probe_ms: list[float] = []
        self.probe_failed = 0
        self.server: dict[str, Any] = {}
        self.stop = asyncio.Event()
        self.connected: set[tuple[str, int]] = set()

    def _get(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()

    async def stream(self, number: int, path: str) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self._get(path))
                while chunk := await reader.read(65536):
                    self.connected.add((path, number))
                    if b" 503 " in chunk[:16]:
                        self.refused += 1
                    if path == "/events":
                        got = chunk.count(b"event: label")
                        self.events += got
                        if got:
                            self.sse_served.add(number)
                    else:
                        self.mjpeg_bytes += len(chunk)
                        got = chunk.count(b"--edgeframe")
                        self.frames += got
                        if got:
                            self.mjpeg_served.add(number)
                writer.close()
            except OSError:
                pass
            await asyncio.sleep(0.5)

    async def idle(self) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(f"GET /status HTTP/1.1\r\nHost: {self.host}\r\n".encode())
                await reader.read()  # until the server closes it (timeout, eviction)
                self.idle_closed += 1
                writer.close()
            except OSError:
                await asyncio.sleep(0.2)

    async def probe(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(0.25)
            start = time.monotonic()
            try:
                async with asyncio.timeout(10):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    writer.write(self._get("/status").replace(b"\r\n\r\n",
                                                              b"\r\nConnection: close\r\n\r\n"))
                    body = await reader.read()
                    writer.close()
                if not body.startswith(b"HTTP/1.1 200"):
                    raise OSError("not 200")
                self.server = json.loads(body.partition(b"\r\n\r\n")[2])["preview"]
                self.probe_ms.append((time.monotonic() - start) * 1000)
            except (OSError, TimeoutError):
                self.probe_failed += 1

    def report(self, sse: int, mjpeg: int) -> dict[str, Any]:
        probes = sorted(self.probe_ms)
        p95 = probes[int(0.95 * (len(probes) - 1))] if probes else None
        return {"events": self.events, "sse_clients_served": len(self.sse_served),
                "sse_clients": sse, "mjpeg_frames": self.frames,
                "mjpeg_clients_served": len(self.mjpeg_served), "mjpeg_clients": mjpeg,
                "mjpeg_mb": round(self.mjpeg_bytes / 1e6, 1), "idle_closed": self.idle_closed,
                "refused": self.refused, "server": self.server,
                "new_client_p95_ms": None if p95 is None else round(p95, 1),
                "new_client_failed": self.probe_failed}


async def _load(url: str, sse: int, mjpeg: int, idle: int) -> dict[str, Any]:
    parts = urlsplit(url)
    load = Load(parts.hostname or "127.0.0.1", parts.port or 80)
    tasks = [asyncio.create_task(load.idle()) for _ in range(idle)]
    await asyncio.sleep(0.5)  # the idle ones first: the streams must still get in
    tasks += [asyncio.create_task(load.stream(i, "/events")) for i in range(sse)]
    tasks += [asyncio.create_task(load.stream(i, "/stream.mjpg")) for i in range(mjpeg)]
    tasks.append(asyncio.create_task(load.probe()))
    deadline = time.monotonic() + 30  # every stream in (or 30 s), then the window starts
    while len(load.connected) < sse + mjpeg and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    load.stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return load.report(sse, mjpeg)


def load_main(url: str, sse: int, mjpeg: int, idle: int) -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.nice(19)  # the clients' own work yields to the measured process's ...
    try:  # ... also across sessions, where Linux's autogroup shares the CPU per session
        Path("/proc/self/autogroup").write_text("19")
    except OSError:
        pass
    print(json.dumps(asyncio.run(_load(url, sse, mjpeg, idle))), flush=True)
    return 0


# --- the measured process ---------------------------------------------------------------------

class Frames:
    """The running pipeline's frame count, sampled by its status callback."""

    def __init__(self) -> None:
        self.frames = 0
        self.url: str | None = None
        self.started = threading.Event()

    def at(self) -> tuple[float, int]:
        return time.monotonic(), self.frames


def start_pipeline(threads: int | None, stop: threading.Event) -> tuple[Frames,
                                                                         threading.Thread]:
    frames = Frames()
    options = RunOptions(source=SourceOptions(camera="demo"),
                         runtime=RuntimeOptions(threads=threads),
                         loop=LoopSettings(status_interval_s=0.1),
                         sinks=SinkOptions(output="/dev/null"),
                         preview=PreviewOptions(port=0))

    def started(info: dict[str, Any]) -> None:
        frames.url = info["preview"]
        frames.started.set()

    def status(summary: Any) -> None:
        frames.frames = summary.frames

    thread = threading.Thread(target=run_service, args=(options,), kwargs={
        "stdout": sys.stdout, "on_start": started, "on_status": status, "stop": stop},
        daemon=True)
    thread.start()
    if not frames.started.wait(300):
        raise RuntimeError("the pipeline did not start")
    return frames, thread


def window_fps(frames: Frames, seconds: float) -> float:
    t0, f0 = frames.at()
    time.sleep(seconds)
    t1, f1 = frames.at()
    return (f1 - f0) / (t1 - t0)


def loaded_window(frames: Frames, case: str, seconds: float) -> tuple[float, dict[str, Any]]:
    """fps over ``seconds`` while the case's clients are connected (connecting not counted)."""
    load = CASES[case]
    assert frames.url is not None
    child = subprocess.Popen(
        [sys.executable, __file__, "--load", frames.url, "--sse", str(load["sse"]),
         "--mjpeg", str(load["mjpeg"]), "--idle", str(load["idle"])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("the load generator did not start")
    cpu0, t0 = preview_cpu(frames.url), time.monotonic()
    fps = window_fps(frames, seconds)
    cpu1, t1 = preview_cpu(frames.url), time.monotonic()
    out, _ = child.communicate("", timeout=120)
    numbers = json.loads(out.strip().splitlines()[-1])
    numbers["preview_cpu_share"] = None if cpu0 is None or cpu1 is None else \
        round((cpu1 - cpu0) / (t1 - t0), 4)
    return fps, numbers


def preview_cpu(url: str) -> float | None:
    """CPU seconds used so far by the preview's server and encoder threads; None when this
    client did not get in (under the flood a new client waits behind it)."""
    try:
        with urllib.request.urlopen(url + "status", timeout=10) as response:
            preview = json.load(response)["preview"]
    except OSError:
        return None
    return float(preview["cpu_s"]) + float(preview["encode_cpu_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6,
                        help="loaded windows per case (default: 6)")
    parser.add_argument("--window", type=float, default=5.0,
                        help="seconds of each measured window (default: 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="inference threads (default 1: a core left, as the Pi profiles)")
    parser.add_argument("--nofile", type=int, default=1024,
                        help="this process's descriptor limit (default 1024, systemd's)")
    parser.add_argument("--cases", default="mixed,flood")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--sse", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--mjpeg", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--idle", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        return load_main(args.load, args.sse, args.mjpeg, args.idle)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = min(args.nofile, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    cases = args.cases.split(",")
    stop = threading.Event()
    frames, thread = start_pipeline(args.threads, stop)
    window_fps(frames, 3.0)  # warm-up
    ratios: dict[str, list[float]] = {case: [] for case in cases}
    plain: list[float] = []
    last: dict[str, dict[str, Any]] = {}
    windows: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    before = window_fps(frames, args.window)
    plain.append(before)
    for round_ in range(args.rounds):
        for case in cases:  # each loaded window between two unloaded ones
            loaded, last[case] = loaded_window(frames, case, args.window)
            windows[case].append(dict(last[case]))
            after = window_fps(frames, args.window)
            plain.append(after)
            ratios[case].append(loaded / ((before + after) / 2))
            print(f"round {round_ + 1} {case:5} {loaded:7.1f} fps, unloaded around it "
                  f"{before:6.1f} / {after:6.1f}: {ratios[case][-1]:.3f}x",
                  file=sys.stderr, flush=True)
            before = after
    stop.set()
    thread.join(60)
    print(f"descriptor limit {nofile}; one edge-run pipeline (demo scene, bundled model, "
          f"{args.threads} inference thread) with its preview; {args.window:g} s windows, each "
          "loaded one between two unloaded ones")
    print(f"unloaded: median {statistics.median(plain):.1f} fps over {len(plain)} windows")
    for case in cases:
        load = CASES[case]
        print(f"{case:5} {load}: loop at {statistics.median(ratios[case]):.3f}x of unloaded "
              f"(median of {len(ratios[case])}; min {min(ratios[case]):.3f}, max "
              f"{max(ratios[case]):.3f}; goal >= 0.95)")
        shares = [n["preview_cpu_share"] for n in windows[case]
                  if n["preview_cpu_share"] is not None]
        if shares:
            print(f"      the preview's own threads used {statistics.median(shares):.1%} of a "
                  "core (median; server and JPEG encoder, from their thread CPU clocks)")
        server = last[case].pop("server", {})
        print(f"      clients: {json.dumps(last[case])}")
        print(f"      server:  {json.dumps(server)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
