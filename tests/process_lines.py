"""Reading a running child process's stderr line by line, to wait on what it says."""

from __future__ import annotations

import queue
import re
import subprocess
import threading


def stderr_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """A queue that receives every stderr line of ``proc`` (read by a daemon thread)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_line(lines: queue.Queue[str], pattern: str, seen: list[str],
              timeout: float = 300) -> re.Match[str]:
    """The first line matching ``pattern`` (each line read is appended to ``seen``)."""
    while True:
        line = lines.get(timeout=timeout)
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
