"""Running a compiler (or archiver, linker) as a child process: the first error line, or ''."""

from __future__ import annotations

import subprocess

TIMEOUT = 900.0


def run_compiler(command: list[str], timeout: float = TIMEOUT) -> str:
    """Run ``command``; return '' on success, else its first error line (or how it failed)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return f"{command[0]}: no result within {timeout:.0f} s"
    except OSError as e:
        return f"{command[0]}: {e.strerror}"
    if done.returncode == 0:
        return ""
    lines = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    return (lines or done.stderr.splitlines() or [f"exit code {done.returncode}"])[0]
