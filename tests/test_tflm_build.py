"""Locating TFLM trees, the build cache (once per key, atomic, locked), targets per board,
and the suite's real library (the kernels of the tested models) built, reused, and a second
operator set archived from its objects without compiling (tests/test_tflm_opsets.py: the same
on a tiny tree)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from edge.boards import get_board
from edge.errors import ExportError
from edge.model import read_model
from firmware_export.export import export_model
from firmware_export.tflm import compiler
from firmware_export.tflm.build import build_library
from firmware_export.tflm.cache import cached_folder
from firmware_export.tflm.opset import sources_for, split_sources
from firmware_export.tflm.targets import board_target
from firmware_export.tflm.tree import TFLM_ENV, locate_tree
from tests.conftest import ROOT, shared_file
from tests.tflm_support import SUITE_OPS, tflm_library, tflm_tree


def _build_once(folder: str, log: str) -> None:
    def make(into: Path) -> None:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.5)
        (into / "payload").write_text("done")

    cached_folder(Path(folder), make)


def test_two_processes_build_a_key_once(tmp_path: Path) -> None:
    folder, log = tmp_path / "entry", tmp_path / "log"
    workers = [multiprocessing.Process(target=_build_once, args=(str(folder), str(log)))
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert log.read_text() == "built\n"
    assert (folder / "payload").read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry", "entry.lock", "log"]


def test_a_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    def make(into: Path) -> None:
        (into / "half").write_text("x")
        raise ExportError("compiler failed")

    with pytest.raises(ExportError):
        cached_folder(tmp_path / "entry", make)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.lock"]


def test_tree_from_env_folder_or_archive(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tflm_tree()
    assert tree.kernels == "reference" and len(tree.digest) == 16
    monkeypatch.setenv(TFLM_ENV, str(tree.root))
    assert locate_tree(None).digest == tree.digest
    assert tflm_tree("cmsis-nn").kernels == "cmsis-nn"
    assert not any(p.parts[0] == "signal" for p in tree.sources())


def test_not_a_tree_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TFLM_ENV, raising=False)
    with pytest.raises(ExportError, match="pass --tflm DIR"):
        locate_tree(None)
    with pytest.raises(ExportError, match="is not a TensorFlow Lite Micro tree"):
        locate_tree(tmp_path)


@pytest.mark.parametrize("board, target, machine", [
    ("nano33ble", "cortex-m4", "mps2-an386"), ("stm32f746-disco", "cortex-m7", "mps2-an500"),
    ("pico", "cortex-m0plus", "mps2-an385"), ("esp32s3", "host-32", None)])
def test_board_targets(board: str, target: str, machine: str | None) -> None:
    chosen, why = board_target(get_board(board, kind="mcu"))
    assert chosen.name == target
    assert (chosen.emulator.machine if chosen.emulator else None) == machine
    assert bool(why) == (machine is None)  # ESP32-S3: no emulator, said so


def test_library_is_built_once_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    library = tflm_library("host-64")
    assert library.archive.is_file() and library.opcodes == SUITE_OPS
    manifest = library.manifest()
    assert manifest["target"] == "host-64" and manifest["operators"] == list(SUITE_OPS)
    files = int(str(manifest["files"]))
    every = split_sources(library.tree.root)
    assert files == len(sources_for(library.tree.root, SUITE_OPS))
    assert len(every.core) < files < len(every.all) - 50  # some kernels, far from all
    messages: list[str] = []
    same = build_library(library.tree, library.target, SUITE_OPS, progress=messages.append)
    assert same.folder == library.folder and messages == []  # nothing rebuilt

    compiled: list[list[str]] = []
    real = compiler.run_compiler

    def counting(command: list[str], timeout: float = compiler.TIMEOUT) -> str:
        compiled.append(command)
        return real(command, timeout)

    monkeypatch.setattr(compiler, "run_compiler", counting)
    fewer = build_library(library.tree, library.target, ["SOFTMAX", "FULLY_CONNECTED"],
                          progress=None)
    assert int(str(fewer.manifest()["files"])) < files
    assert not [c for c in compiled if "-c" in c]  # its objects were all in the store
    assert fewer.folder != library.folder and fewer.archive.is_file()


def test_the_suite_library_holds_the_kernels_of_the_tested_models(tmp_path: Path) -> None:
    """The shared models the tests build programs for, the demo model, and person_detect's
    tiled rewrite (tests/test_patch_slot.py); the test-built models were collected when
    SUITE_OPS was written (tests/tflm_support.py)."""
    person = shared_file("models/person_detect.tflite")
    tiled = export_model(person, "nano33ble", tmp_path / "fw", patch=(2, 3)).model
    needed = set(tiled.opcodes).union(
        *(read_model(path).opcodes for path in (person, ROOT / "edge/demo/demo_model.tflite")))
    assert {"SLICE", "PAD", "CONCATENATION"} <= needed <= set(SUITE_OPS)
