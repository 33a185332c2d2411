#!/usr/bin/env python3
"""The labelling loop's fps under preview load, over its fps without a preview.

Runs ``edge-run``'s service in this process on the demo scene with the bundled demo model (one
inference thread, the descriptor limit lowered to 1024 as a default systemd service has), and
interleaves rounds of:

* ``none``: no preview;
* ``mixed``: the preview, with 200 Server-Sent-Events clients, 30 MJPEG viewers and 300 idle
  sockets (connected, sending half a request and nothing more) at once, plus one new client
  asking ``/status`` every 0.25 s;
* ``flood``: the preview with 1,050 connections that never finish a request.

The clients run in a child process (``--load``) so their own work is not this process's.
Prints fps per case, the ratio to ``none`` (goal >= 0.95), what the clients got (events,
frames, the new client's p95 latency) and the server's counters. Example::

    python tools/bench_preview.py --frames 1500 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
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

CASES = {"none": None, "mixed": {"sse": 200, "mjpeg": 30, "idle": 300},
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

    def _get(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()

    async def stream(self, number: int, path: str) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self._get(path))
                while chunk := await reader.read(65536):
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
    print(json.dumps(asyncio.run(_load(url, sse, mjpeg, idle))), flush=True)
    return 0


# --- the measured process ---------------------------------------------------------------------

def run(frames: int, threads: int | None, case: str) -> tuple[float, dict[str, Any]]:
    load = CASES[case]
    options = RunOptions(source=SourceOptions(camera="demo"),
                         runtime=RuntimeOptions(threads=threads),
                         loop=LoopSettings(max_frames=frames, status_interval_s=3600),
                         sinks=SinkOptions(output="/dev/null"),
                         preview=PreviewOptions(port=0) if load else None)
    children: list[subprocess.Popen[str]] = []
    numbers: dict[str, Any] = {}

    def started(info: dict[str, Any]) -> None:
        if load is None:
            return
        child = subprocess.Popen(
            [sys.executable, __file__, "--load", info["preview"], "--sse", str(load["sse"]),
             "--mjpeg", str(load["mjpeg"]), "--idle", str(load["idle"])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the load generator did not start")

    try:
        summary = run_service(options, stdout=sys.stdout, on_start=started)
    finally:
        for child in children:
            out, _ = child.communicate("", timeout=60)
            numbers.update(json.loads(out.strip().splitlines()[-1]))
    return summary.fps, numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="inference threads (default 1: a core left, as the Pi profiles)")
    parser.add_argument("--nofile", type=int, default=1024,
                        help="this process's descriptor limit (default 1024, systemd's)")
    parser.add_argument("--cases", default="none,mixed,flood")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--sse", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--mjpeg", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--idle", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        return load_main(args.load, args.sse, args.mjpeg, args.idle)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.nofile, hard), hard))
    cases = args.cases.split(",")
    fps: dict[str, list[float]] = {case: [] for case in cases}
    last: dict[str, dict[str, Any]] = {}
    for round_ in range(args.rounds):  # interleaved, so a busy machine affects all alike
        for case in cases:
            value, numbers = run(args.frames, args.threads, case)
            fps[case].append(value)
            last[case] = numbers
            print(f"round {round_ + 1} {case:6} {value:7.1f} fps", file=sys.stderr, flush=True)
    base = statistics.median(fps["none"]) if "none" in fps else None
    print(f"descriptor limit {min(args.nofile, hard)}; medians of {args.rounds} interleaved "
          f"rounds of {args.frames} frames")
    for case in cases:
        median = statistics.median(fps[case])
        ratio = f"{median / base:6.3f}x" if base else "      "
        print(f"{case:6} {median:7.1f} fps  {ratio}  (goal >= 0.95x of none)")
        if last[case]:
            server = last[case].pop("server", {})
            print(f"       clients: {json.dumps(last[case])}")
            print(f"       server:  {json.dumps(server)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
