"""A hostile-input corpus run on every command: 0 crashes, 0 tracebacks, 0 hangs.

Generated here, never copied: decompression bombs of every image format, FIFOs and /dev/zero
where files are expected, a 5,000-deep TOML board profile, names with line breaks and quotes,
non-UTF-8 and huge labels files. Each case runs as its own process (a crash or a hang cannot take
the test run with it; the timeout is only there to turn a hang into a failure) and must exit 2
with exactly one line on stderr: ``edge-COMMAND: error: ...``. Model files are fuzzed by
tests/test_model_bad_input.py; here the model is always the bundled demo model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import demo
from tests.conftest import ROOT
from tests.hostile import BOMBS, deep_toml, make_fifo, png_bomb

HANG_S = 300  # far beyond any of these; only a hang gets there
# LiteRT's C++ prints this when the interpreter starts; a failure found only while frames are
# read (a folder of bombs) comes after it. Every other case must fail before it.
LITERT_BANNER = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@dataclass(frozen=True)
class Case:
    command: str
    args: tuple[str, ...]
    after_start: bool = False  # the failure is found while running, after LiteRT started


def _paths(root: Path) -> dict[str, Path]:
    """Where each hostile file of the corpus lives under ``root``."""
    return {**{f"bomb.{kind}": root / f"bomb.{kind}" for kind in BOMBS},
            "newline image": root / 'evil\nname".png', "fifo image": root / "fifo.png",
            "fifo labels": root / "fifo.txt", "nonutf8 labels": root / "latin1.txt",
            "huge labels": root / "huge.txt", "bomb folder": root / "bombs",
            "image": root / "ok.png"}


def _write_corpus(root: Path) -> None:
    """Write every hostile file under ``root``."""
    paths = _paths(root)
    for kind, bomb in BOMBS.items():
        paths[f"bomb.{kind}"].write_bytes(bomb())
    paths["newline image"].write_bytes(png_bomb())
    cv2.imwrite(str(paths["image"]), np.full((8, 8, 3), 128, np.uint8))
    make_fifo(paths["fifo image"])
    make_fifo(paths["fifo labels"])
    paths["nonutf8 labels"].write_bytes("caf\xe9\nna\xefve\n".encode("latin-1"))
    with paths["huge labels"].open("wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of NULs that cost no disk
    paths["bomb folder"].mkdir()
    (paths["bomb folder"] / "a.png").write_bytes(png_bomb())
    (paths["bomb folder"] / "b.jpg").write_bytes(BOMBS["jpg"]())
    boards = {
        "deep": ("deep", deep_toml(5000)),
        "newline": ("x", 'name = "x"\nkind = "linux"\ndescription = "a\\nb"\n'),
        "nul": ("x", 'name = "x"\nkind = "linux"\ncpu = "a\\u0000b"\n'),
        "quote": ("x", (ROOT / "boards" / "pico.toml").read_text().replace(
            'name = "pico"', 'name = "x"').replace(
            'platformio_board = "pico"', 'platformio_board = "pico\\" extra_scripts = x.py"')),
    }
    for kind, (name, text) in boards.items():
        folder = root / f"boards-{kind}"
        folder.mkdir()
        (folder / f"{name}.toml").write_text(text)
    make_fifo((root / "boards-fifo").mkdir() or root / "boards-fifo" / "x.toml")
    (root / "boards-zero").mkdir()
    (root / "boards-zero" / "x.toml").symlink_to("/dev/zero")


def _cases(root: Path) -> dict[str, Case]:
    p = _paths(root)
    model = str(demo.model_path())
    boards = {kind: str(root / f"boards-{kind}")
              for kind in ("deep", "newline", "nul", "quote", "fifo", "zero")}
    ok_image = str(p["image"])
    cases: dict[str, Case] = {}
    for kind in ("deep", "fifo", "zero"):
        cases[f"inspect boards-{kind}"] = Case("inspect", ("--list-boards", "--boards-dir",
                                                           boards[kind]))
    cases["inspect model name with newline"] = Case("inspect", (str(root / 'no\nsuch".tflite'),))
    for kind in ("png", "webp"):  # every format: tests/test_images.py
        image = str(p[f"bomb.{kind}"])
        cases[f"classify {kind} bomb"] = Case("classify", ("--model", model, image))
    for name in ("newline image", "fifo image"):
        cases[f"classify {name}"] = Case("classify", ("--model", model, str(p[name])))
    cases["classify /dev/zero image"] = Case("classify", ("--model", model, "/dev/zero"))
    for name in ("fifo labels", "nonutf8 labels", "huge labels"):
        cases[f"classify {name}"] = Case("classify", ("--model", model, "--labels", str(p[name]),
                                                      ok_image))
    cases["classify /dev/zero labels"] = Case("classify", ("--model", model, "--labels",
                                                           "/dev/zero", ok_image))
    cases["classify boards-nul"] = Case("classify", ("--model", model, "--board", "x",
                                                     "--boards-dir", boards["nul"], ok_image))
    run = ("--max-frames", "2", "-q")
    cameras = {"/dev/zero": "/dev/zero", "fifo": str(p["fifo image"]),
               "newline name": str(root / "no\nsuch folder")}
    for kind, camera in cameras.items():
        cases[f"run camera {kind}"] = Case("run", ("--camera", camera, *run))
    cases["run camera bomb folder"] = Case("run", ("--camera", str(p["bomb folder"]), *run),
                                           after_start=True)
    cases["run camera bomb image"] = Case("run", ("--camera", str(p["newline image"]), *run),
                                          after_start=True)
    for name in ("fifo labels", "huge labels"):
        cases[f"run {name}"] = Case("run", ("--camera", "demo", "--labels", str(p[name]), *run))
    cases["run /dev/zero labels"] = Case("run", ("--camera", "demo", "--labels", "/dev/zero",
                                                 *run))
    for kind in ("deep", "fifo"):
        cases[f"run boards-{kind}"] = Case("run", ("--camera", "demo", "--boards-dir",
                                                   boards[kind], *run))
    for name in ("fifo labels", "huge labels"):
        cases[f"listen {name}"] = Case("listen", ("loop://", "--labels", str(p[name]),
                                                  "--max-frames", "1"))
    for kind, port in {"/dev/zero": "/dev/zero", "fifo": str(p["fifo image"])}.items():
        cases[f"listen port {kind}"] = Case("listen", (port, "--max-frames", "1"))
    out = str(root / "out")
    for kind in ("deep", "quote"):
        cases[f"export boards-{kind}"] = Case("export", (model, "--board", "x", "--boards-dir",
                                                         boards[kind], "--out", out))
    cases["export name with newline"] = Case("export", (model, "--board", "pico", "--out", out,
                                                        "--name", 'a"\nb'))
    flash = (model, "--board", "pico", "--arena-size", "4096", "--dry-run")
    for name in ("fifo labels", "nonutf8 labels"):
        cases[f"flash {name}"] = Case("flash", (*flash, "--labels", str(p[name])))
    cases["flash /dev/zero labels"] = Case("flash", (*flash, "--labels", "/dev/zero"))
    cases["flash boards-quote"] = Case("flash", (model, "--board", "x", "--boards-dir",
                                                 boards["quote"], "--dry-run"))
    keras, tflite = str(root / "m.keras"), str(root / "m.tflite")
    for kind in ("bomb folder", "fifo image"):
        cases[f"model representative {kind}"] = Case(
            "model", ("-q", "quantize", keras, "--representative", str(p[kind]), tflite))
    return cases


CASE_IDS = sorted(_cases(Path("/corpus")))


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None: still running at HANG_S
    stdout: str
    stderr: str


def _run(case: Case, cwd: Path) -> Outcome:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NOTIFY_SOCKET", None)
    try:
        result = subprocess.run([sys.executable, "-m", "edge", case.command, *case.args],
                                cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, errors="replace",
                                timeout=HANG_S)
    except subprocess.TimeoutExpired as e:
        return Outcome(None, str(e.stdout), str(e.stderr))
    return Outcome(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, Outcome]]:
    root = tmp_path_factory.mktemp("hostile")
    _write_corpus(root)
    cases = _cases(root)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, case, root) for name, case in cases.items()}
        return {name: (cases[name], future.result()) for name, future in futures.items()}


@pytest.mark.parametrize("name", CASE_IDS)
def test_hostile_input_is_one_line_and_exit_2(
        name: str, outcomes: dict[str, tuple[Case, Outcome]]) -> None:
    case, outcome = outcomes[name]
    assert outcome.returncode is not None, f"hung: {outcome.stderr}"
    assert outcome.returncode == 2, f"exit {outcome.returncode}: {outcome.stderr}"
    assert "Traceback" not in outcome.stderr
    lines = outcome.stderr.splitlines()
    if case.after_start:
        lines = [line for line in lines if line != LITERT_BANNER]
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith(f"edge-{case.command}: error: "), outcome.stderr
    assert outcome.stdout == ""
