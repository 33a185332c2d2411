"""Reading a running child process's stderr line by line, to wait on what it says."""

from __future__ import annotations

import queue
import re
import subprocess
import threading

EOF = ""  # what the queue receives after the last line (a line read always ends in a newline)


def stderr_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """A queue that receives every stderr line of ``proc`` (read by a daemon thread), then
    ``EOF`` once the process has closed its stderr."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(EOF)
    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_line(lines: queue.Queue[str], pattern: str, seen: list[str],
              timeout: float = 300) -> re.Match[str]:
    """The first line matching ``pattern`` (each line read is appended to ``seen``)."""
    while True:
        line = lines.get(timeout=timeout)
        if line == EOF:
            lines.put(EOF)
            raise AssertionError(f"the process ended without a line matching {pattern!r}: "
                                 + "".join(seen))
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match


def rest_of_lines(lines: queue.Queue[str], seen: list[str], timeout: float = 300) -> str:
    """Every line up to the end of stderr, appended to ``seen``; returns all of ``seen``."""
    while (line := lines.get(timeout=timeout)) != EOF:
        seen.append(line)
    lines.put(EOF)
    return "".join(seen)
