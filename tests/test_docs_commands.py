"""Every command line in README.md and docs/*.md runs as written on this checkout.

The convention (also in docs/CONTRIBUTING.md; follow it when you add a command to the docs):

* A fence with the info string ``sh`` (or ``shell``/``bash``) holds command lines that the
  test RUNS, one per line (a trailing ``\\`` continues a line, ``# comments`` are fine), with
  ``cwd`` = the repository root, the venv's ``bin/`` first on PATH (so ``edge-*`` and
  ``python`` are ours), stdin closed, under ``bash -o pipefail``. Each must exit 0.
* Every other fence is never run: ``text`` for synopses, sample output and commands that only
  make sense elsewhere, ``python``/``c``/``toml`` for code. A fence without an info string
  fails the test, so each block says which it is.
* An HTML comment on the line(s) just before a ``sh`` fence adjusts that block; directives are
  separated by ``;``:

  - ``<!-- docs-test: stand-in "TEXT" "REPLACEMENT" -->``: run with TEXT replaced. Only for
    hardware this machine cannot have: a camera index (``"--camera 0" "--camera demo
    --max-frames 30"``), a serial port (``"/dev/ttyACM0" "loop://"``), an Edge TPU.
  - ``<!-- docs-test: hardware WHY -->``: not run (a real board, a Pi's systemd, sudo). Each
    ``edge-*`` line in it must still be accepted by that command's argument parser.
  - ``<!-- docs-test: exit N -->``: each line of the block must exit with N (a documented
    refusal, e.g. 2 for bad input).

Files a command needs come from the project itself: ``../shared/data`` (the reference data
beside the checkout), the shipped demo model, or an earlier command of the same document (e.g.
``python -m edge.demo.clip clip.mp4``). Commands run in document order, each document on its
own. What they create in the checkout is removed afterwards; a command that changes a tracked
file fails the test. Keep commands short: long jobs (training) are documented in a short form
that still runs (few epochs, few images), the full form in a ``text`` block.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.__main__ import COMMANDS
from tests.conftest import ROOT, need_tool
from tests.test_cli_conventions import command_parser

SHELL_FENCES = {"sh", "shell", "bash"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:(.*?)-->\s*$")
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
COMMAND_NAME = re.compile(r"(?:^|/)edge-(\w+)$")


@dataclass
class Block:
    """One fenced block of a document and the directives in front of it."""

    doc: Path
    line: int  # of the opening fence, 1-based
    info: str
    lines: list[tuple[int, str]]  # (line number, command) with continuations joined
    stand_ins: list[tuple[str, str]] = field(default_factory=list)
    hardware: str | None = None
    exit_code: int = 0

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def parse_directives(text: str, block: Block) -> None:
    for directive in filter(None, (d.strip() for d in text.split(";"))):
        word, _, rest = directive.partition(" ")
        if word == "stand-in":
            pair = shlex.split(rest)
            if len(pair) != 2:
                raise ValueError(f'stand-in takes "TEXT" "REPLACEMENT", got {rest!r}')
            block.stand_ins.append((pair[0], pair[1]))
        elif word == "hardware":
            block.hardware = rest.strip() or "hardware"
        elif word == "exit":
            block.exit_code = int(rest)
        else:
            raise ValueError(f"unknown docs-test directive {word!r}")


def _command_lines(raw: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join ``\\`` continuations; drop blank and comment-only lines."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in raw:
        if pending is not None:
            number, text = pending[0], pending[1] + " " + text.strip()
            pending = None
        if text.rstrip().endswith("\\"):
            pending = (number, text.rstrip()[:-1].rstrip())
            continue
        if text.strip() and not text.lstrip().startswith("#"):
            lines.append((number, text.strip()))
    if pending is not None:
        lines.append(pending)
    return lines


def parse_document(doc: Path) -> list[Block]:
    """The fenced blocks of ``doc`` with their directives (ValueError on a bad directive)."""
    blocks: list[Block] = []
    directives: list[str] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        directive = DIRECTIVE.match(lines[i])
        if directive:
            directives.append(directive.group(1))
        elif match:
            fence, info, start = match.group(2), match.group(3).lower(), i
            body: list[tuple[int, str]] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append((i + 1, lines[i]))
                i += 1
            block = Block(doc, start + 1, info, _command_lines(body))
            for text in directives:
                parse_directives(text, block)
            blocks.append(block)
            directives = []
        elif lines[i].strip():
            directives = []
        i += 1
    return blocks


def _all_blocks() -> list[Block]:
    return [block for doc in DOCUMENTS for block in parse_document(doc)]


def test_every_fence_says_whether_it_runs() -> None:
    for block in _all_blocks():
        assert block.info, (f"{block.where}: give the fence an info string: sh (runs), text "
                            "(never runs), or a language")
        if block.stand_ins or block.hardware or block.exit_code:
            assert block.info in SHELL_FENCES, f"{block.where}: directives apply to sh blocks"


def test_stand_ins_replace_text_that_is_there() -> None:
    for block in _all_blocks():
        text = "\n".join(line for _, line in block.lines)
        for old, _new in block.stand_ins:
            assert old in text, f"{block.where}: stand-in {old!r} is not in the block"


def _edge_argv(line: str) -> tuple[str, list[str]] | None:
    """(command, arguments) of an ``edge-*`` command line, through ``sudo -u USER``."""
    words = shlex.split(line.split("|")[0], comments=True)
    while words and words[0] == "sudo":
        words = words[3:] if words[1:2] == ["-u"] else words[1:]
    match = COMMAND_NAME.search(words[0]) if words else None
    if match is None or match.group(1) not in COMMANDS:
        return None
    return match.group(1), words[1:]


def test_hardware_commands_are_accepted_by_their_parsers(
        capsys: pytest.CaptureFixture[str]) -> None:
    for block in _all_blocks():
        if block.info not in SHELL_FENCES or block.hardware is None:
            continue
        for number, line in block.lines:
            found = _edge_argv(line)
            if found is None:
                continue
            parser = command_parser(found[0])
            try:
                parser.parse_args(found[1])
            except SystemExit:
                error = capsys.readouterr().err.strip().splitlines()[-1:]
                pytest.fail(f"{block.doc.relative_to(ROOT)}:{number}: {line!r} is refused: "
                            f"{error}")


def _snapshot() -> tuple[set[str], str]:
    """(untracked paths, folders collapsed; status of tracked files) of the checkout."""
    others = subprocess.run(["git", "ls-files", "--others", "--directory", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    tracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(filter(None, others.split("\0"))), tracked


def _remove_new(before: set[str]) -> None:
    after, _ = _snapshot()
    for name in sorted(after - before, reverse=True):
        path = ROOT / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    return env


def _stand_in(line: str, block: Block) -> str:
    for old, new in block.stand_ins:
        line = line.replace(old, new)
    return line


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_documented_commands_run(doc: Path) -> None:
    need_tool("git", "apt install git")
    runnable = [b for b in parse_document(doc) if b.info in SHELL_FENCES and b.hardware is None]
    if not any(block.lines for block in runnable):
        return  # nothing to run in this document (its fences are text or code)
    bash = need_tool("bash", "apt install bash")
    before, tracked = _snapshot()
    try:
        for block in runnable:
            for number, line in block.lines:
                command = _stand_in(line, block)
                result = subprocess.run([bash, "-o", "pipefail", "-c", command], cwd=ROOT,
                                        env=_environment(), stdin=subprocess.DEVNULL,
                                        capture_output=True, text=True, timeout=900,
                                        check=False)
                where = f"{doc.relative_to(ROOT)}:{number}"
                assert result.returncode == block.exit_code, (
                    f"{where}: `{command}` exited {result.returncode}, the docs say "
                    f"{block.exit_code}\nstderr: {result.stderr[-2000:]}")
                _, now = _snapshot()
                assert now == tracked, f"{where}: `{command}` changed tracked files:\n{now}"
    finally:
        _remove_new(before)
