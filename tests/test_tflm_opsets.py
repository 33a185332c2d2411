"""A TFLM library per operator set, from one object store (issue 24 point 5), on a tiny tree.

The tree here has TFLM's shape and a resolver header in TFLM's format, with a handful of small
C/C++ files that the real host compiler builds in well under a second each. Which files compile
is counted through the compiler seam (``firmware_export.tflm.compiler.run_compiler``), never
timed: a second operator set compiles only the kernels it adds, a killed build resumes with the
files it had not compiled, and two processes building the same library at once both succeed.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.cache import CACHE_ENV
from edge.errors import ExportError
from firmware_export.tflm import build, compiler
from firmware_export.tflm.build import (
    BuildError,
    build_library,
    library_key,
    object_key,
    plan_objects,
)
from firmware_export.tflm.opset import sources_for, split_sources
from firmware_export.tflm.targets import get_target
from firmware_export.tflm.tree import open_tree
from tests.conftest import need_tool

MICRO = "tensorflow/lite/micro"
RESOLVER = """\
class MicroMutableOpResolver {
 public:
  TfLiteStatus AddFullyConnected(
      const TFLMRegistration& registration = Register_FULLY_CONNECTED()) {
    return AddBuiltin(registration);
  }

  TfLiteStatus AddSoftmax(
      const TFLMRegistration& registration = Register_SOFTMAX()) {
    return AddBuiltin(registration);
  }

  TfLiteStatus AddConv2D(
      const TFLMRegistration& registration = Register_CONV_2D()) {
    return AddBuiltin(registration);
  }

  TfLiteStatus AddMean() {
    return AddBuiltin(Register_MEAN());
  }
};
"""


def kernel(*names: str) -> str:
    """A kernel source defining these ``Register_*`` functions, as TFLM's do (at line start)."""
    defined = "".join(f"TFLMRegistration {name}() {{ return {{{n}}}; }}\n"
                      for n, name in enumerate(names))
    return f'#include "{MICRO}/kernels/registration.h"\n\n{defined}'


FILES = {
    f"{MICRO}/micro_interpreter.h": "// marker\n",
    f"{MICRO}/micro_mutable_op_resolver.h": RESOLVER,
    f"{MICRO}/kernels/registration.h": "struct TFLMRegistration { int id; };\n",
    f"{MICRO}/micro_interpreter.cc": "int edge_interpreter() { return 1; }\n",
    f"{MICRO}/micro_time.c": "int edge_ticks(void) { return 2; }\n",
    f"{MICRO}/kernels/kernel_util.cc": "int edge_kernel_util() { return 3; }\n",  # core helper
    f"{MICRO}/kernels/fully_connected.cc": kernel("Register_FULLY_CONNECTED"),
    f"{MICRO}/kernels/softmax.cc": kernel("Register_SOFTMAX"),
    f"{MICRO}/kernels/conv.cc": kernel("Register_CONV_2D"),
    f"{MICRO}/kernels/reduce.cc": kernel("Register_MEAN", "Register_SUM"),
    f"{MICRO}/kernels/softmax_test.cc": "int main() { return 0; }\n",
    f"{MICRO}/testing/helpers.cc": "#error not a library source\n",
    f"{MICRO}/test_helpers.cc": "#error test support, not a library source\n",
    "third_party/kissfft/kiss_fft.c": "#error not a library source\n",
    "signal/src/window.cc": "#error not a library source\n",
}
CORE = (f"{MICRO}/kernels/kernel_util.cc", f"{MICRO}/micro_interpreter.cc",
        f"{MICRO}/micro_time.c")


def make_tree(root: Path) -> Path:
    for relative, text in FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


@pytest.fixture
def tree_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    need_tool("g++", "apt-get install g++")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return make_tree(tmp_path / "tree")


Compiles = list[str]
REAL_COMPILER = compiler.run_compiler


def counting(monkeypatch: pytest.MonkeyPatch,
             fail_on: Callable[[str], bool] = lambda _source: False) -> Compiles:
    """Every source the build compiles, in order (the real compiler runs unless ``fail_on``)."""
    compiled: Compiles = []
    real = REAL_COMPILER

    def run(command: list[str], timeout: float = compiler.TIMEOUT) -> str:
        if "-c" not in command:
            return real(command, timeout)  # the archiver
        source = command[command.index("-c") + 1]
        if fail_on(source):
            return f"{source}: error: made to fail by the test"
        compiled.append(Path(source).name)
        return real(command, timeout)

    monkeypatch.setattr(compiler, "run_compiler", run)
    return compiled


def test_core_and_kernels_as_the_resolver_header_says(tree_root: Path) -> None:
    sources = split_sources(tree_root)
    assert sources.core == CORE
    assert dict(sources.kernels) == {
        f"{MICRO}/kernels/conv.cc": {"Register_CONV_2D"},
        f"{MICRO}/kernels/fully_connected.cc": {"Register_FULLY_CONNECTED"},
        f"{MICRO}/kernels/reduce.cc": {"Register_MEAN", "Register_SUM"},
        f"{MICRO}/kernels/softmax.cc": {"Register_SOFTMAX"}}
    assert sources_for(tree_root, ["FULLY_CONNECTED"]) == tuple(sorted(
        [*CORE, f"{MICRO}/kernels/fully_connected.cc"]))
    assert sources_for(tree_root, ["MEAN", "MEAN"]) == tuple(sorted(
        [*CORE, f"{MICRO}/kernels/reduce.cc"]))  # a method that calls Register_* in its body
    assert sources_for(tree_root, []) == CORE
    assert len(sources_for(tree_root, None)) == len(CORE) + 4
    with pytest.raises(ExportError, match=r"no AddTanh \(TANH\)"):
        sources_for(tree_root, ["TANH"])


def test_object_keys_follow_content_path_and_flags_not_the_trees_folder(
        tree_root: Path, tmp_path: Path) -> None:
    key = object_key("a.cc", b"int a;", ["g++", "-O2"])
    assert len(key) == 20 and key == object_key("a.cc", b"int a;", ["g++", "-O2"])
    assert len({key, object_key("b.cc", b"int a;", ["g++", "-O2"]),
                object_key("a.cc", b"int b;", ["g++", "-O2"]),
                object_key("a.cc", b"int a;", ["g++", "-O0"])}) == 4
    assert library_key("store", ["x", "y"]) == library_key("store", ["y", "x", "x"])
    assert library_key("store", ["x"]) != library_key("other", ["x"])

    host = get_target("host-64")
    elsewhere = open_tree(shutil.copytree(tree_root, tmp_path / "elsewhere"))
    here = plan_objects(open_tree(tree_root), host, CORE)
    there = plan_objects(elsewhere, host, CORE)
    assert [job.key for job in here] == [job.key for job in there]
    assert str(tree_root) in " ".join(here[0].command)  # the command itself is this tree's
    (tree_root / CORE[0]).write_text("int edge_kernel_util() { return 4; }\n")
    assert plan_objects(open_tree(tree_root), host, CORE)[0].key != here[0].key


def test_a_second_op_set_compiles_only_the_kernels_it_adds(
        tree_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree, host = open_tree(tree_root), get_target("host-64")
    compiled = counting(monkeypatch)
    messages: list[str] = []
    first = build_library(tree, host, ["FULLY_CONNECTED"], jobs=2, progress=messages.append)
    assert sorted(compiled) == ["fully_connected.cc", "kernel_util.cc", "micro_interpreter.cc",
                                "micro_time.c"]
    assert "(0 of 4 files already built; later runs reuse them)" in messages[0]
    assert first.opcodes == ("FULLY_CONNECTED",) and first.manifest()["compiled"] == 4

    compiled.clear()
    messages.clear()
    second = build_library(tree, host, ["SOFTMAX", "FULLY_CONNECTED"], jobs=2,
                           progress=messages.append)
    assert compiled == ["softmax.cc"]
    assert "(4 of 5 files already built" in messages[0] and second.folder != first.folder
    members = subprocess.run(["ar", "t", str(second.archive)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert len(members) == 5 and second.manifest()["operators"] == ["FULLY_CONNECTED", "SOFTMAX"]

    compiled.clear()
    messages.clear()
    assert build_library(tree, host, ["FULLY_CONNECTED"], progress=messages.append) == first
    assert build_library(tree, host, ["SOFTMAX"], progress=None).manifest()["compiled"] == 0
    assert compiled == [] and messages == []  # a cached library: nothing compiled, nothing said

    everything = build_library(tree, host, None, progress=None)
    assert sorted(compiled) == ["conv.cc", "reduce.cc"]
    assert everything.opcodes is None and everything.manifest()["operators"] == "all"


def test_a_killed_build_resumes_with_what_it_had_not_compiled(
        tree_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree, host = open_tree(tree_root), get_target("host-64")
    counting(monkeypatch, fail_on=lambda source: source.endswith("softmax.cc"))
    with pytest.raises(BuildError, match=rf"compiling TFLM's {MICRO}/kernels/softmax\.cc for "
                       "host-64 failed"):
        build_library(tree, host, ["FULLY_CONNECTED", "SOFTMAX"], jobs=1, progress=None)
    cache = Path(os.environ[CACHE_ENV]) / "tflm"
    assert not [p for p in (cache / "lib").iterdir() if p.suffix != ".lock"]  # no library
    (store,) = (cache / "objects").iterdir()
    kept = len(list(store.glob("*.o")))  # those before softmax.cc, and any already running
    assert 2 <= kept <= 4 and not list(store.glob("*.tmp"))

    stale, fresh = store / "dead.1-aaaa.tmp", store / "busy.2-bbbb.tmp"
    stale.write_bytes(b"half an object")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 2 * build.STALE_SECONDS,) * 2)
    compiled = counting(monkeypatch)
    library = build_library(tree, host, ["FULLY_CONNECTED", "SOFTMAX"], jobs=1, progress=None)
    assert len(compiled) == 5 - kept and "softmax.cc" in compiled and library.archive.is_file()
    assert not {"fully_connected.cc", "kernel_util.cc"} & set(compiled)  # sorted before it
    assert not stale.exists() and fresh.exists()  # only a killed build's leftovers go


def _build_in_child(root: str, cache: str, done: str) -> None:
    os.environ[CACHE_ENV] = cache
    library = build_library(open_tree(Path(root)), get_target("host-64"),
                            ["CONV_2D", "SOFTMAX"], jobs=2, progress=None)
    Path(done).write_text(str(library.folder))


def test_two_processes_building_the_same_objects_both_succeed(tree_root: Path,
                                                              tmp_path: Path) -> None:
    cache = os.environ[CACHE_ENV]
    workers = [multiprocessing.Process(target=_build_in_child,
                                       args=(str(tree_root), cache, str(tmp_path / f"done{i}")))
               for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    assert [w.exitcode for w in workers] == [0, 0]
    folders = {(tmp_path / f"done{i}").read_text() for i in range(2)}
    assert len(folders) == 1 and (Path(folders.pop()) / "libtflm.a").is_file()
    (store,) = (Path(cache) / "tflm" / "objects").iterdir()
    assert len(list(store.glob("*.o"))) == 5 and not list(store.glob("*.tmp"))
