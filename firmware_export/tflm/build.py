"""Build a TFLM tree into a static library for one target, once, in the cache.

The library lives in ``<cache>/tflm/lib/<target>-<kernels>-<key>/`` where the key hashes the
tree's content, the compiler's identity and every flag; a second request with the same inputs
finds it there. Files compile in parallel (``$EDGE_TFLM_JOBS``, default the CPU count) into a
persistent object folder beside it (each object written under a temporary name and renamed),
so a build that is killed resumes where it stopped; progress goes to stderr.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edge.cache import cache_root
from edge.errors import ExportError
from firmware_export.tflm.cache import cached_folder
from firmware_export.tflm.compiler import run_compiler
from firmware_export.tflm.targets import CMSIS_NN_DEFINES, Target
from firmware_export.tflm.tree import TflmTree

log = logging.getLogger(__name__)

ARCHIVE = "libtflm.a"
MANIFEST = "build.json"
THIRD_PARTY_INCLUDES = ("third_party/flatbuffers/include", "third_party/gemmlowp",
                        "third_party/ruy", "third_party/kissfft")
CMSIS_INCLUDES = ("third_party/cmsis_nn", "third_party/cmsis_nn/Include",
                  "third_party/cmsis/CMSIS/Core/Include")
# cortex_m_generic/micro_time.cc includes ARMCM4.h, which the tree does not carry; TFLM's own
# project generation compiles it as a stub.
PER_FILE_DEFINES = {"tensorflow/lite/micro/cortex_m_generic/micro_time.cc":
                    ("-DPROJECT_GENERATION",)}
BUILD_REVISION = "1"  # bump when the way a library is built changes
JOBS_ENV = "EDGE_TFLM_JOBS"

Progress = Callable[[str], None]


class BuildError(ExportError):
    """A compiler failed on the TFLM tree or on a program built against it."""


@dataclass(frozen=True)
class Library:
    """A built TFLM: the archive and what a program needs to compile against it."""

    tree: TflmTree
    target: Target
    folder: Path

    @property
    def archive(self) -> Path:
        return self.folder / ARCHIVE

    @property
    def kernels(self) -> str:
        return self.tree.kernels

    def include_flags(self) -> list[str]:
        return include_flags(self.tree, self.target)

    def define_flags(self) -> list[str]:
        return define_flags(self.tree, self.target)

    def manifest(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((self.folder / MANIFEST).read_text())
        return loaded


def include_flags(tree: TflmTree, target: Target) -> list[str]:
    folders = [tree.root] + [tree.root / p for p in THIRD_PARTY_INCLUDES]
    if tree.kernels == "cmsis-nn":
        folders += [tree.root / p for p in CMSIS_INCLUDES]
    return [f"-I{folder}" for folder in folders]


def define_flags(tree: TflmTree, target: Target) -> list[str]:
    if tree.kernels != "cmsis-nn":
        return []
    if not target.is_arm:
        raise BuildError(f"the CMSIS-NN tree {tree.root} builds only for Cortex-M targets, "
                         f"not {target.name}")
    return [*CMSIS_NN_DEFINES, *target.cmsis_cpu, "-DEDGE_TFLM_LOG_CALLBACK"]


def compiler_identity(command: str) -> str:
    """First line of ``command --version``.

    Raises:
        BuildError: the compiler is not installed.
    """
    try:
        done = subprocess.run([command, "--version"], capture_output=True, text=True,
                              timeout=60, check=False)
    except OSError as e:
        raise BuildError(f"{command} is not installed ({e.strerror}); install it "
                         "(`make sysdeps`: g++, g++-multilib, gcc-arm-none-eabi)") from e
    return (done.stdout.splitlines() or ["?"])[0]


def library_key(tree: TflmTree, target: Target) -> str:
    parts = [BUILD_REVISION, tree.digest, compiler_identity(target.cxx),
             compiler_identity(target.cc), *target.cxx_command(), *target.cc_command(),
             *define_flags(tree, target)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def stderr_progress(message: str) -> None:
    sys.stderr.write(f"edge: {message}\n")
    sys.stderr.flush()


def build_library(tree: TflmTree, target: Target, jobs: int | None = None,
                  progress: Progress | None = stderr_progress) -> Library:
    """The library for ``tree`` on ``target``, built now unless the cache has it.

    Raises:
        BuildError: a compiler is missing or fails.
    """
    key = library_key(tree, target)
    folder = cache_root() / "tflm" / "lib" / f"{target.name}-{tree.kernels}-{key}"
    report = progress or (lambda _message: None)

    def make(into: Path) -> None:
        started = time.monotonic()
        report(f"building TFLM ({tree.kernels} kernels) for {target.name} into {folder} "
               "(once; later runs reuse it)")
        objects_dir = folder.with_name(f".{folder.name}.objects")
        objects_dir.mkdir(parents=True, exist_ok=True)
        objects = _compile_all(tree, target, objects_dir, jobs or default_jobs(), report)
        _archive(target, into / ARCHIVE, objects)
        seconds = round(time.monotonic() - started, 1)
        manifest = {"key": key, "target": target.name, "kernels": tree.kernels,
                    "tree": str(tree.root), "tree_digest": tree.digest,
                    "compiler": compiler_identity(target.cxx), "files": len(objects),
                    "cxx": target.cxx_command(), "seconds": seconds}
        (into / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        report(f"built TFLM for {target.name} ({len(objects)} files) in {seconds:.0f} s")

    library = Library(tree, target, cached_folder(folder, make))
    shutil.rmtree(folder.with_name(f".{folder.name}.objects"), ignore_errors=True)
    return library


def default_jobs() -> int:
    configured = os.environ.get(JOBS_ENV, "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else (
        os.cpu_count() or 1)


def _compile_all(tree: TflmTree, target: Target, into: Path, jobs: int,
                 report: Progress) -> list[Path]:
    sources = tree.sources()
    base = [*include_flags(tree, target), *define_flags(tree, target)]
    commands = []
    for index, source in enumerate(sources):
        obj = into / f"{index:04d}_{source.stem}.o"
        compiler = target.cxx_command() if source.suffix == ".cc" else target.cc_command()
        extra = PER_FILE_DEFINES.get(source.as_posix(), ())
        commands.append((source, obj, [*compiler, *base, *extra, "-c",
                                       str(tree.root / source), "-o", f"{obj}.tmp"]))
    done = 0
    step = max(1, len(commands) // 10)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for source, error in pool.map(_compile_one, commands):
            if error:
                raise BuildError(f"compiling TFLM's {source} for {target.name} failed: {error}")
            done += 1
            if done % step == 0 or done == len(commands):
                report(f"TFLM {target.name}: {done}/{len(commands)} files compiled")
    return [obj for _, obj, _ in commands]


def _compile_one(job: tuple[Path, Path, list[str]]) -> tuple[Path, str]:
    source, obj, command = job
    if obj.is_file():
        return source, ""  # compiled by an earlier, interrupted build
    error = run_compiler(command)
    if not error:
        Path(f"{obj}.tmp").rename(obj)
    return source, error


def _archive(target: Target, archive: Path, objects: list[Path]) -> None:
    ar = target.cxx[: -len("g++")] + "ar" if target.cxx.endswith("g++") else "ar"
    error = run_compiler([ar, "rcs", str(archive), *map(str, objects)])
    if error:
        raise BuildError(f"{ar} failed on {archive}: {error}")
