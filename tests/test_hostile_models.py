"""Issue 14, point 9 (models): a corpus of semantic mutants, generated here from real models, run
through every command that reads a model. 0 crashes, 0 tracebacks, 0 hangs; every wrong model
ends in exit code 2 and one line on stderr.

Each command runs in a forked child of this process (the real ``main(argv)``, its own stdout and
stderr), so a crash is a dead child, not a dead test run, and a few dozen mutants per command
cost seconds. A handful also run as ``python -m edge COMMAND`` subprocesses, entry point and all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli.classify import main as classify_main
from edge.cli.inspect import main as inspect_main
from edge.cli.run import main as run_main
from edge.demo import model_path
from firmware_export.cli.export import main as export_main
from firmware_export.cli.flash import main as flash_main
from tests.conftest import ROOT, shared_file
from tests.model_mutants import named_mutants, representative

HANG_GUARD_S = 300  # only to turn a hang into a failure instead of a stuck suite
RANDOM_PER_COMMAND = 10


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str

    @property
    def crashed(self) -> bool:
        return os.WIFSIGNALED(self.status)

    @property
    def code(self) -> int:
        return os.WEXITSTATUS(self.status)


def run_forked(main: Callable[[list[str]], int], argv: list[str], folder: Path) -> Outcome:
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    pid = os.fork()
    if pid == 0:  # the child: the command, then straight out (no pytest teardown)
        code = 99
        try:
            signal.alarm(HANG_GUARD_S)
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            code = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return Outcome(status, out.read_text(errors="replace"), err.read_text(errors="replace"))


def _image(folder: Path) -> Path:
    path = folder / "frame.png"
    if not path.exists():
        cv2.imwrite(str(path), np.full((96, 96, 3), 128, np.uint8))
    return path


COMMANDS: dict[str, tuple[Callable[[list[str]], int], Callable[[Path, Path], list[str]]]] = {
    "edge-inspect": (inspect_main, lambda m, d: [str(m)]),
    "edge-classify": (classify_main, lambda m, d: ["--model", str(m), str(_image(d))]),
    "edge-run": (run_main, lambda m, d: ["--camera", "demo", "--model", str(m),
                                         "--max-frames", "2"]),
    "edge-export": (export_main, lambda m, d: [str(m), "--board", "nano33ble", "--out",
                                               str(d / "project")]),
    "edge-flash": (flash_main, lambda m, d: [str(m), "--board", "pico", "--output",
                                             str(d / "image.uf2")]),
}


def _corpus() -> dict[str, bytes]:
    content = model_path().read_bytes()
    corpus = {f"demo {name}": data for name, data in named_mutants(content).items()}
    person = shared_file("models/person_detect.tflite").read_bytes()
    corpus.update({f"person_detect {name}": data for name, data in named_mutants(person).items()
                   if name in ("scale 1.1e15", "depthwise without bias", "bias index -1")})
    return corpus


def _check_refused(command: str, name: str, outcome: Outcome, folder: Path) -> None:
    assert not outcome.crashed, f"{command} on {name}: killed by signal {outcome.status}"
    lines = outcome.stderr.strip().splitlines()
    assert outcome.code == 2, f"{command} on {name}: exit {outcome.code}: {outcome.stderr}"
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), \
        f"{command} on {name}: {outcome.stderr!r}"
    assert "Traceback" not in outcome.stderr
    assert not (folder / "project").exists() and not (folder / "image.uf2").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_named_mutant_is_refused_by_every_command(command: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    main, argv = COMMANDS[command]
    corpus = _corpus()
    assert len(corpus) >= 17
    for i, (name, content) in enumerate(sorted(corpus.items())):
        folder = tmp_path / str(i)
        folder.mkdir()
        model = folder / "mutant.tflite"
        model.write_bytes(content)
        _check_refused(command, name, run_forked(main, argv(model, folder), folder), folder)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_random_semantic_mutants_never_crash_or_trace(command: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Random mutants may be harmless (a zero point moved inside its range): exit 0 or 2, and
    # exit 2 always as one line.
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    main, argv = COMMANDS[command]
    seed = sorted(COMMANDS).index(command)
    for i, mutant in enumerate(representative(model_path().read_bytes(), RANDOM_PER_COMMAND,
                                              seed=seed)):
        folder = tmp_path / str(i)
        folder.mkdir()
        model = folder / "mutant.tflite"
        model.write_bytes(mutant.content)
        outcome = run_forked(main, argv(model, folder), folder)
        assert not outcome.crashed, f"{command} on {mutant.description}: signal"
        assert outcome.code in (0, 2), (mutant.description, outcome.stderr)
        assert "Traceback" not in outcome.stderr, (mutant.description, outcome.stderr)
        if outcome.code == 2:
            _check_refused(command, mutant.description, outcome, folder)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_as_real_subprocesses(command: str, tmp_path: Path) -> None:
    _, argv = COMMANDS[command]
    mutants = named_mutants(model_path().read_bytes())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGE_CACHE_DIR": str(tmp_path / "cache")}
    for name in ("scale 1.1e15", "depthwise without bias"):
        model = tmp_path / "mutant.tflite"
        model.write_bytes(mutants[name])
        done = subprocess.run([sys.executable, "-m", "edge", command.removeprefix("edge-"),
                               *argv(model, tmp_path)], capture_output=True, text=True,
                              env=env, timeout=HANG_GUARD_S, check=False)
        outcome = Outcome(done.returncode << 8 if done.returncode >= 0 else -done.returncode,
                          done.stdout, done.stderr)
        _check_refused(command, name, outcome, tmp_path)
