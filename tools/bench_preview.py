#!/usr/bin/env python3
"""The labelling loop's fps with its preview serving a crowd, over its fps with the preview off.

One ``edge-run`` pipeline runs in this process (demo scene, bundled demo model, one inference
thread, the descriptor limit lowered to 1024 as a default systemd service has) with its
preview. The clients connect once and stay: by default 200 Server-Sent-Events clients, 30 MJPEG
viewers and 300 idle sockets (connected, half a request sent, reconnecting when the server
times them out), each kind in a load-generator process of its own, at nice 19 in a session of
its own (so its CPU is neither this process's nor taken before this process's).

Then short windows alternate, with every client connected the whole time:

* **on**: the loop hands each frame to the preview and the server serves every client;
* **off**: the loop does not call the preview and the server's thread is held (the clients
  wait, reading nothing, so they cost no CPU either).

Each on window is compared with the mean of the off windows either side of it (a machine whose
load drifts moves both alike); the median of those ratios is the figure (goal >= 0.95). The
robust figure on a busy machine is the other one printed: the CPU seconds a second the
preview's own threads used during the on windows (server and JPEG encoder, by their thread CPU
clocks), next to the load generators' and the loop thread's, and the load average.

Examples::

    python tools/bench_preview.py                       # 200 SSE + 30 MJPEG + 300 idle
    python tools/bench_preview.py --pairs 20 --window 3 --json
    python tools/bench_preview.py --sse 200 --mjpeg 0 --idle 0
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.pipeline.runner import LoopSettings  # noqa: E402
from edge.pipeline.service import RunOptions, SourceOptions, run_service  # noqa: E402
from edge.preview import PreviewOptions  # noqa: E402
from edge.preview.encoder import PreviewHub  # noqa: E402
from edge.preview.server import PreviewServer  # noqa: E402
from edge.runtime.policy import RuntimeOptions  # noqa: E402
from edge.sinks import SinkOptions  # noqa: E402

KINDS = ("sse", "mjpeg", "idle")
TICKS = os.sysconf("SC_CLK_TCK")


# --- one kind of client, in a child process ---------------------------------------------------

class Load:
    """``count`` clients of one kind, counting what they get."""

    def __init__(self, kind: str, count: int, host: str, port: int) -> None:
        self.kind, self.count, self.host, self.port = kind, count, host, port
        self.received = 0  # events or frames
        self.bytes = 0
        self.served: set[int] = set()
        self.connected: set[int] = set()
        self.reconnects = 0
        self.refused = 0
        self.stop = asyncio.Event()

    def _head(self, path: str, whole: bool = True) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                + ("\r\n" if whole else "")).encode()

    async def stream(self, number: int) -> None:
        path, marker = (("/events", b"event: label") if self.kind == "sse"
                        else ("/stream.mjpg", b"--edgeframe"))
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self._head(path))
                first = True
                while chunk := await reader.read(65536):
                    if first and chunk.startswith(b"HTTP/1.1 503"):
                        self.refused += 1
                    first = False
                    self.connected.add(number)
                    self.bytes += len(chunk)
                    got = chunk.count(marker)
                    self.received += got
                    if got:
                        self.served.add(number)
                writer.close()
            except OSError:
                pass
            self.reconnects += 1
            await asyncio.sleep(0.5)

    async def idle(self, number: int) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self._head("/status", whole=False))
                self.connected.add(number)
                await reader.read()  # until the server closes it (timeout, eviction)
                writer.close()
            except OSError:
                await asyncio.sleep(0.2)
            self.reconnects += 1

    async def run(self) -> dict[str, Any]:
        client = self.idle if self.kind == "idle" else self.stream
        tasks = [asyncio.create_task(client(i)) for i in range(self.count)]
        deadline = time.monotonic() + 60
        while len(self.connected) < self.count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        print("ready", len(self.connected), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
        self.stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {"kind": self.kind, "clients": self.count, "connected": len(self.connected),
                "served": len(self.served), "received": self.received,
                "mb": round(self.bytes / 1e6, 1), "reconnects": self.reconnects,
                "refused": self.refused}


def load_main(url: str, kind: str, count: int, cpu: int | None) -> int:
    if cpu is not None:  # the measured process has that core; the clients take the others
        others = set(range(os.cpu_count() or 1)) - {cpu}
        if others:
            os.sched_setaffinity(0, others)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.nice(19)  # the clients' own work yields to the measured process's ...
    try:  # ... also across sessions, where Linux's autogroup shares the CPU per session
        Path("/proc/self/autogroup").write_text("19")
    except OSError:
        pass
    parts = urlsplit(url)
    load = Load(kind, count, parts.hostname or "127.0.0.1", parts.port or 80)
    print(json.dumps(asyncio.run(load.run())), flush=True)
    return 0


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


# --- the measured process ---------------------------------------------------------------------

class Gate:
    """Switches the preview off and on under a running pipeline, every client connected.

    Off: ``PreviewHub.observe`` returns at once (the loop hands nothing over) and the server's
    thread waits on an event scheduled on its asyncio loop (it serves nobody and wakes never).
    """

    def __init__(self, handover_when_off: bool = False) -> None:
        self.on = True
        self.server: PreviewServer | None = None
        self._resume = threading.Event()
        observe = self.observe = PreviewHub.observe
        enter = PreviewServer.__enter__
        gate = self

        def gated_observe(hub: PreviewHub, rgb: Any, event: Any) -> None:
            if gate.on or handover_when_off:
                observe(hub, rgb, event)

        def remembered_enter(server: PreviewServer) -> PreviewServer:
            gate.server = server
            return enter(server)

        setattr(PreviewHub, "observe", gated_observe)  # noqa: B010 - a bench-only switch
        setattr(PreviewServer, "__enter__", remembered_enter)  # noqa: B010

    def switch(self, on: bool) -> None:
        assert self.server is not None
        if on == self.on:
            return
        self.on = on
        if on:
            self._resume.set()
        else:
            self._resume = threading.Event()
            self.server._loop.call_soon_threadsafe(self._resume.wait)

    def thread_cpu_s(self) -> dict[str, float]:
        """CPU seconds so far of the server's and the encoder's threads."""
        assert self.server is not None
        return {"server": _thread_cpu(self.server._thread),
                "encoder": _thread_cpu(self.server.hub._thread)}


def handover_us(gate: Gate, calls: int = 100_000) -> float:
    """Microseconds of one call of the loop's hand-over (``PreviewHub.observe``), timed over
    ``calls`` calls on a hub of its own in this thread."""
    import numpy as np

    from edge.events import LabelEvent

    hub = PreviewHub(PreviewOptions())
    rgb = np.zeros((240, 320, 3), np.uint8)
    event = LabelEvent(0, 0, time.monotonic_ns(), 1.0, time.time(), ())
    start = time.perf_counter()
    for _ in range(calls):
        gate.observe(hub, rgb, event)
    return (time.perf_counter() - start) / calls * 1e6


def _thread_cpu(thread: threading.Thread) -> float:
    if thread.ident is None or not thread.is_alive():
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


class Frames:
    """The running pipeline's frame count (from its status callback) and its thread."""

    def __init__(self) -> None:
        self.frames = 0
        self.url: str | None = None
        self.started = threading.Event()
        self.loop_thread: threading.Thread | None = None

    def at(self) -> tuple[float, int, float, float]:
        """(now, frames, the loop thread's CPU seconds, its seconds waiting for a core)."""
        assert self.loop_thread is not None and self.loop_thread.native_id is not None
        try:  # the scheduler's own account: ns on a CPU, ns runnable but waiting for one
            run_ns, wait_ns = Path(f"/proc/self/task/{self.loop_thread.native_id}/schedstat"
                                   ).read_text().split()[:2]
            cpu, waited = int(run_ns) / 1e9, int(wait_ns) / 1e9
        except (OSError, ValueError):
            cpu, waited = _thread_cpu(self.loop_thread), 0.0
        return time.monotonic(), self.frames, cpu, waited


def start_pipeline(threads: int | None, stop: threading.Event
                   ) -> tuple[Frames, threading.Thread]:
    frames = Frames()
    options = RunOptions(source=SourceOptions(camera="demo"),
                         runtime=RuntimeOptions(threads=threads),
                         loop=LoopSettings(status_interval_s=0.05),
                         sinks=SinkOptions(output="/dev/null"),
                         preview=PreviewOptions(port=0))

    def started(info: dict[str, Any]) -> None:
        frames.url = info["preview"]
        frames.started.set()

    def status(summary: Any) -> None:
        frames.frames = summary.frames

    thread = threading.Thread(target=run_service, args=(options,), kwargs={
        "stdout": sys.stdout, "on_start": started, "on_status": status, "stop": stop},
        daemon=True, name="bench-loop")
    frames.loop_thread = thread
    thread.start()
    if not frames.started.wait(300):
        raise RuntimeError("the pipeline did not start")
    return frames, thread


def start_loads(url: str, counts: dict[str, int], cpu: int | None
                ) -> list[subprocess.Popen[str]]:
    children = []
    pin = [] if cpu is None else ["--cpu", str(cpu)]
    for kind in KINDS:
        if counts[kind]:
            children.append(subprocess.Popen(
                [sys.executable, __file__, "--load", url, "--kind", kind,
                 "--count", str(counts[kind]), *pin],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                start_new_session=True))
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError("a load generator did not start")
    return children


def window(frames: Frames, gate: Gate, children: list[subprocess.Popen[str]],
           seconds: float, on: bool, settle: float) -> dict[str, Any]:
    gate.switch(on)
    time.sleep(settle)  # what was queued while off is served before the window starts
    t0, f0, loop0, wait0 = frames.at()
    cpu0 = gate.thread_cpu_s()
    gen0 = sum(process_cpu_s(c.pid) for c in children)
    proc0 = time.process_time()
    time.sleep(seconds)
    proc1 = time.process_time()
    t1, f1, loop1, wait1 = frames.at()
    cpu1 = gate.thread_cpu_s()
    gen1 = sum(process_cpu_s(c.pid) for c in children)
    span = t1 - t0
    done = max(1, f1 - f0)
    return {"on": on, "fps": (f1 - f0) / span, "loop_cpu": (loop1 - loop0) / span,
            "loop_cpu_ms_per_frame": (loop1 - loop0) * 1e3 / done,
            "loop_wait_ms_per_frame": (wait1 - wait0) * 1e3 / done,
            # this process's CPU (loop, capture, sinks, preview) per frame labelled
            "process_cpu_ms_per_frame": (proc1 - proc0) * 1e3 / done,
            # the frame's time less the loop thread's waits for a core (the machine's load)
            "loop_own_ms_per_frame": max(1e-9, span - (wait1 - wait0)) * 1e3 / done,
            "server_cpu": (cpu1["server"] - cpu0["server"]) / span,
            "encoder_cpu": (cpu1["encoder"] - cpu0["encoder"]) / span,
            "clients_cpu": (gen1 - gen0) / span, "load1": os.getloadavg()[0]}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    gate = Gate(handover_when_off=args.keep_handover)
    stop = threading.Event()
    frames, loop_thread = start_pipeline(args.threads, stop)
    assert frames.url is not None and gate.server is not None
    counts = {"sse": args.sse, "mjpeg": args.mjpeg, "idle": args.idle}
    load_before = os.getloadavg()
    children = start_loads(frames.url, counts, args.cpu)
    connected = gate.server.hub.numbers()
    windows: list[dict[str, Any]] = []
    try:
        time.sleep(2.0)
        windows.append(window(frames, gate, children, args.window, False, args.settle))
        for pair in range(args.pairs):
            for switched_on in (True, False):
                windows.append(window(frames, gate, children, args.window, switched_on,
                                      args.settle))
            on_w, off_w = windows[-2], windows[-1]
            before = windows[-3]["fps"]
            ratio = on_w["fps"] / ((before + off_w["fps"]) / 2)
            if not args.json:
                print(f"pair {pair + 1:2}: on {on_w['fps']:6.1f} fps, off {before:6.1f} / "
                      f"{off_w['fps']:6.1f}: {ratio:.3f}x; server {on_w['server_cpu']:.1%} "
                      f"encoder {on_w['encoder_cpu']:.1%} clients {on_w['clients_cpu']:.1%} "
                      f"of a core; load {on_w['load1']:.1f}", file=sys.stderr, flush=True)
        numbers = gate.server.hub.numbers()
        handover = handover_us(gate)
    finally:
        gate.switch(True)
        reports = []
        for child in children:
            out, _ = child.communicate("", timeout=120)
            reports.append(json.loads(out.strip().splitlines()[-1]))
        stop.set()
        loop_thread.join(60)
    ratios = [windows[i]["fps"] / ((windows[i - 1]["fps"] + windows[i + 1]["fps"]) / 2)
              for i in range(1, len(windows) - 1, 2)]
    own = [((windows[i - 1]["loop_own_ms_per_frame"] + windows[i + 1]["loop_own_ms_per_frame"])
            / 2) / windows[i]["loop_own_ms_per_frame"] for i in range(1, len(windows) - 1, 2)]
    cost = [((windows[i - 1]["process_cpu_ms_per_frame"]
              + windows[i + 1]["process_cpu_ms_per_frame"]) / 2)
            / windows[i]["process_cpu_ms_per_frame"] for i in range(1, len(windows) - 1, 2)]
    on_ws = [w for w in windows if w["on"]]
    off_ws = [w for w in windows if not w["on"]]

    def med(key: str, ws: list[dict[str, Any]]) -> float:
        return round(statistics.median(w[key] for w in ws), 4)

    return {
        "clients": counts, "window_s": args.window, "pairs": args.pairs,
        "inference_threads": args.threads, "cores": os.cpu_count(), "pinned_to": args.cpu,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "fps_ratio_median": round(statistics.median(ratios), 4),
        "fps_ratio_min": round(min(ratios), 4), "fps_ratio_max": round(max(ratios), 4),
        "own_fps_ratio_median": round(statistics.median(own), 4),
        "own_fps_ratio_min": round(min(own), 4), "own_fps_ratio_max": round(max(own), 4),
        "cpu_per_frame_ratio_median": round(statistics.median(cost), 4),
        "cpu_per_frame_ratio_min": round(min(cost), 4),
        "cpu_per_frame_ratio_max": round(max(cost), 4),
        "process_cpu_ms_per_frame_on": med("process_cpu_ms_per_frame", on_ws),
        "process_cpu_ms_per_frame_off": med("process_cpu_ms_per_frame", off_ws),
        "fps_on_median": med("fps", on_ws), "fps_off_median": med("fps", off_ws),
        "handover_us_per_frame": round(handover, 3),
        "server_cpu_per_s": med("server_cpu", on_ws),
        "encoder_cpu_per_s": med("encoder_cpu", on_ws),
        "server_cpu_per_s_off": med("server_cpu", off_ws),
        "clients_cpu_per_s": med("clients_cpu", on_ws),
        "loop_cpu_per_s_on": med("loop_cpu", on_ws), "loop_cpu_per_s_off": med("loop_cpu", off_ws),
        "loop_cpu_ms_per_frame_on": med("loop_cpu_ms_per_frame", on_ws),
        "loop_cpu_ms_per_frame_off": med("loop_cpu_ms_per_frame", off_ws),
        "loop_wait_ms_per_frame_on": med("loop_wait_ms_per_frame", on_ws),
        "loop_wait_ms_per_frame_off": med("loop_wait_ms_per_frame", off_ws),
        "at_start": {k: connected[k] for k in ("connections", "viewers", "listeners")},
        "preview": numbers, "load_generators": reports}


def report(result: dict[str, Any]) -> None:
    c = result["clients"]
    preview_cpu = result["server_cpu_per_s"] + result["encoder_cpu_per_s"]
    print(f"{c['sse']} SSE + {c['mjpeg']} MJPEG + {c['idle']} idle clients, connected the "
          f"whole time; {result['pairs']} on/off pairs of {result['window_s']:g} s; "
          f"{result['cores']} cores, load average {result['load_average_before'][0]:.1f} "
          f"before, {result['load_average_after'][0]:.1f} after")
    print(f"loop fps, preview on over off: median {result['fps_ratio_median']:.3f}x (min "
          f"{result['fps_ratio_min']:.3f}, max {result['fps_ratio_max']:.3f}; goal >= 0.95); "
          f"on {result['fps_on_median']:.1f} fps, off {result['fps_off_median']:.1f} fps")
    print(f"the same without the loop thread's waits for a core (the machine's load): median "
          f"{result['own_fps_ratio_median']:.3f}x (min {result['own_fps_ratio_min']:.3f}, max "
          f"{result['own_fps_ratio_max']:.3f})")
    print(f"this process's CPU per frame (loop, capture, sinks, preview): "
          f"{result['process_cpu_ms_per_frame_on']:.3f} ms on / "
          f"{result['process_cpu_ms_per_frame_off']:.3f} off; off over on: median "
          f"{result['cpu_per_frame_ratio_median']:.3f}x (min "
          f"{result['cpu_per_frame_ratio_min']:.3f}, max {result['cpu_per_frame_ratio_max']:.3f})"
          ": the fps ratio of a CPU-bound loop")
    print(f"the preview's threads while on: server {result['server_cpu_per_s']:.2%} + encoder "
          f"{result['encoder_cpu_per_s']:.2%} = {preview_cpu:.2%} of a core "
          f"({preview_cpu / (result['cores'] or 1):.2%} of the machine); the load generators "
          f"{result['clients_cpu_per_s']:.1%}; the loop thread {result['loop_cpu_per_s_on']:.1%}"
          f" on / {result['loop_cpu_per_s_off']:.1%} off")
    print(f"the loop's hand-over to the preview: {result['handover_us_per_frame']:.2f} us a frame "
          "(timed alone)")
    print(f"the loop thread per frame: {result['loop_cpu_ms_per_frame_on']:.3f} ms on a CPU on /"
          f" {result['loop_cpu_ms_per_frame_off']:.3f} off; waiting for a core (machine load) "
          f"{result['loop_wait_ms_per_frame_on']:.3f} ms on / "
          f"{result['loop_wait_ms_per_frame_off']:.3f} off")
    for load in result["load_generators"]:
        print(f"  {load['kind']:5}: {load['served']}/{load['clients']} served, "
              f"{load['received']} received, {load['reconnects']} reconnects, "
              f"{load['refused']} refused")
    keys = ("connections", "viewers", "listeners", "encoded", "events_sent", "events_coalesced",
            "frames_skipped", "slow_dropped", "timed_out", "evicted", "refused", "accept_errors")
    print("  server: " + ", ".join(f"{k} {result['preview'][k]}" for k in keys))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python tools/bench_preview.py\n"
               "  python tools/bench_preview.py --pairs 20 --window 3 --json\n"
               "  python tools/bench_preview.py --sse 200 --mjpeg 0 --idle 0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sse", type=int, default=200, help="event-stream clients (200)")
    parser.add_argument("--mjpeg", type=int, default=30, help="MJPEG viewers (30)")
    parser.add_argument("--idle", type=int, default=300, help="idle sockets (300)")
    parser.add_argument("--pairs", type=int, default=12, help="on/off window pairs (12)")
    parser.add_argument("--window", type=float, default=2.0, help="seconds per window (2)")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds after each switch before a window counts (0.5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="inference threads (default 1: a core left, as the Pi profiles)")
    parser.add_argument("--nofile", type=int, default=1024,
                        help="this process's descriptor limit (default 1024, systemd's)")
    parser.add_argument("--cpu", type=int, metavar="N",
                        help="pin this process (loop, preview, everything) to core N and the "
                             "clients to the others: the preview competes with the loop for "
                             "one core, and the scheduler cannot spread either")
    parser.add_argument("--keep-handover", action="store_true",
                        help="off windows still hand frames to the preview (only the serving "
                             "stops): the serving's cost alone")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        return load_main(args.load, args.kind, args.count, args.cpu)
    if args.cpu is not None:  # every thread made from here on inherits it
        os.sched_setaffinity(0, {args.cpu})
    if args.pairs < 1 or args.window <= 0:
        parser.error("--pairs must be >= 1 and --window > 0")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.nofile, hard), hard))
    result = measure(args)
    if args.json:
        print(json.dumps(result))
    else:
        report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
