#!/usr/bin/env python3
"""Pipeline throughput with the live preview watched by one client, over without it.

Runs ``edge-run``'s service on the demo scene with the bundled demo model, interleaving rounds
without a preview and with ``--preview`` while one HTTP client reads the MJPEG stream (so frames
are encoded, at the default cap of 10 per second). Goal: ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.pipeline.runner import LoopSettings  # noqa: E402
from edge.pipeline.service import RunOptions, SourceOptions, run_service  # noqa: E402
from edge.preview import PreviewOptions  # noqa: E402
from edge.runtime.policy import RuntimeOptions  # noqa: E402
from edge.sinks import SinkOptions  # noqa: E402


class Watcher:
    """One client reading the MJPEG stream until stopped; counts the bytes it got."""

    def __init__(self) -> None:
        self.bytes = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, url: str) -> None:
        def read() -> None:
            with urllib.request.urlopen(url + "stream.mjpg", timeout=60) as stream:
                while not self.stop.is_set():
                    chunk = stream.read1(65536)
                    if not chunk:
                        return
                    self.bytes += len(chunk)
        self.thread = threading.Thread(target=read, daemon=True)
        self.thread.start()


def run(frames: int, threads: int | None, preview: bool) -> tuple[float, int]:
    options = RunOptions(source=SourceOptions(camera="demo"),
                         runtime=RuntimeOptions(threads=threads),
                         loop=LoopSettings(max_frames=frames, status_interval_s=3600),
                         sinks=SinkOptions(output="/dev/null"),
                         preview=PreviewOptions(port=0) if preview else None)
    watcher = Watcher()

    def started(info: dict[str, Any]) -> None:
        if info["preview"]:
            watcher.start(info["preview"])

    summary = run_service(options, stdout=sys.stdout, on_start=started)
    watcher.stop.set()
    return summary.fps, watcher.bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="inference threads (default 1: a core left, as the Pi profiles)")
    args = parser.parse_args(argv)
    plain, watched, streamed = [], [], []
    for _ in range(args.rounds):  # interleaved, so a busy machine affects both alike
        plain.append(run(args.frames, args.threads, preview=False)[0])
        fps, sent = run(args.frames, args.threads, preview=True)
        watched.append(fps)
        streamed.append(sent)
    p, w = statistics.median(plain), statistics.median(watched)
    print(f"pipeline without preview:            {p:7.1f} fps")
    print(f"pipeline with preview, one watcher:  {w:7.1f} fps "
          f"({statistics.median(streamed) / 1e6:.1f} MB of MJPEG per run)")
    print(f"with / without:                      {w / p:7.3f}  (goal >= 0.95; medians of "
          f"{args.rounds} interleaved rounds of {args.frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
