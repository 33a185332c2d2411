"""Build the TFLM library a program needs, for one target, once, from a shared object store.

Each source compiles once into an object store, ``<cache>/tflm/objects/<target>-<kernels>-<key>/``,
where the key hashes the tree's content, the compiler's identity and every flag: an object is
named by the digest of its source's path and bytes and its own extra flags, written under a
temporary name and renamed into place (so a killed build resumes where it stopped, and two
processes compiling the same object both rename identical bytes). A library for an operator set
is the tree's core sources (:mod:`firmware_export.tflm.opset`) plus the kernel sources those
operators register, archived from the store into ``<cache>/tflm/lib/<target>-<kernels>-<key>/``
(the key: the store's and the objects'); a second operator set compiles only the kernels it adds.
Files compile in parallel (``$EDGE_TFLM_JOBS``, default the CPU count); progress goes to stderr.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edge.cache import cache_root
from edge.errors import ExportError
from firmware_export.tflm import compiler
from firmware_export.tflm.cache import cached_folder
from firmware_export.tflm.opset import sources_for
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
BUILD_REVISION = "2"  # bump when the way an object or a library is built changes
JOBS_ENV = "EDGE_TFLM_JOBS"
TREE_ROOT = "$TREE"  # stands for the tree's folder in the flags an object's key hashes
STALE_SECONDS = 2 * compiler.TIMEOUT  # a temporary object this old was left by a killed build

Progress = Callable[[str], None]


class BuildError(ExportError):
    """A compiler failed on the TFLM tree or on a program built against it."""


@dataclass(frozen=True)
class Library:
    """A built TFLM: the archive and what a program needs to compile against it.

    ``opcodes``: the operators whose kernels it holds (None: every kernel of the tree).
    """

    tree: TflmTree
    target: Target
    folder: Path
    opcodes: tuple[str, ...] | None = None

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


@dataclass(frozen=True)
class ObjectJob:
    """One source of the library: its object's key (the file name in the store) and the
    command that compiles it (without ``-o``)."""

    source: str  # relative to the tree
    key: str
    command: tuple[str, ...]


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


def store_key(tree: TflmTree, target: Target) -> str:
    """The object store's key: the tree's content, both compilers' identities, every flag."""
    parts = [BUILD_REVISION, tree.digest, compiler_identity(target.cxx),
             compiler_identity(target.cc), *target.cxx_command(), *target.cc_command(),
             *define_flags(tree, target)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def object_key(source: str, content: bytes, flags: Sequence[str]) -> str:
    """An object's name in its store: the source's path and bytes and its compile flags (the
    tree's folder written as :data:`TREE_ROOT`, so the same tree unpacked elsewhere matches)."""
    digest = hashlib.sha256(source.encode() + b"\0" + content + b"\0")
    digest.update("\0".join(flags).encode())
    return digest.hexdigest()[:20]


def library_key(store: str, object_keys: Sequence[str]) -> str:
    """A library's key: its store and the set of its objects."""
    return hashlib.sha256("\0".join([store, *sorted(set(object_keys))]).encode()).hexdigest()[:16]


def plan_objects(tree: TflmTree, target: Target, sources: Sequence[str]) -> list[ObjectJob]:
    """The object of each source: its key and its compile command."""
    base = [*include_flags(tree, target), *define_flags(tree, target)]
    jobs = []
    for source in sources:
        compiler_command = (target.cc_command() if source.endswith(".c")
                            else target.cxx_command())
        command = [*compiler_command, *base, *PER_FILE_DEFINES.get(source, ()), "-c",
                   str(tree.root / source)]
        portable = [part.replace(str(tree.root), TREE_ROOT) for part in command]
        key = object_key(source, (tree.root / source).read_bytes(), portable)
        jobs.append(ObjectJob(source, key, tuple(command)))
    return jobs


def stderr_progress(message: str) -> None:
    sys.stderr.write(f"edge: {message}\n")
    sys.stderr.flush()


def build_library(tree: TflmTree, target: Target, opcodes: Sequence[str] | None,
                  jobs: int | None = None,
                  progress: Progress | None = stderr_progress) -> Library:
    """The library for a program on ``target`` whose op resolver registers ``opcodes``, built
    now unless the cache has it. None: every kernel of the tree (no caller of the project needs
    that: every program here uses a ``MicroMutableOpResolver`` of its model's operators;
    ``tools/bench_tflm.py --all-kernels`` builds it for comparison).

    Raises:
        BuildError: a compiler is missing or fails.
        ExportError: the tree has no kernel for one of ``opcodes``.
    """
    ops = None if opcodes is None else tuple(sorted(set(opcodes)))
    planned = plan_objects(tree, target, sources_for(tree.root, ops))
    store_name = f"{target.name}-{tree.kernels}-{store_key(tree, target)}"
    store = cache_root() / "tflm" / "objects" / store_name
    key = library_key(store_name, [job.key for job in planned])
    folder = cache_root() / "tflm" / "lib" / f"{target.name}-{tree.kernels}-{key}"
    report = progress or (lambda _message: None)
    what = "every operator" if ops is None else f"{len(ops)} operator{'s' * (len(ops) != 1)}"

    def make(into: Path) -> None:
        started, children = time.monotonic(), _children_cpu()
        store.mkdir(parents=True, exist_ok=True)
        _remove_stale(store)
        missing = [job for job in planned if not _object(store, job).is_file()]
        report(f"building TFLM ({tree.kernels} kernels, {what}) for {target.name} into "
               f"{folder} ({len(planned) - len(missing)} of {len(planned)} files already "
               "built; later runs reuse them)")
        _compile_all(target, store, missing, jobs or default_jobs(), report)
        _archive(target, into / ARCHIVE, [_object(store, job) for job in planned])
        seconds = round(time.monotonic() - started, 1)
        manifest = {"key": key, "target": target.name, "kernels": tree.kernels,
                    "operators": "all" if ops is None else list(ops),
                    "tree": str(tree.root), "tree_digest": tree.digest, "store": str(store),
                    "compiler": compiler_identity(target.cxx), "files": len(planned),
                    "compiled": len(missing), "cxx": target.cxx_command(), "seconds": seconds,
                    "compiler_cpu_seconds": round(_children_cpu() - children, 1)}
        (into / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        report(f"built TFLM for {target.name} ({len(planned)} files, {len(missing)} compiled) "
               f"in {seconds:.0f} s")

    return Library(tree, target, cached_folder(folder, make), ops)


def default_jobs() -> int:
    configured = os.environ.get(JOBS_ENV, "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else (
        os.cpu_count() or 1)


def _object(store: Path, job: ObjectJob) -> Path:
    return store / f"{job.key}.o"


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _remove_stale(store: Path) -> None:
    """Temporary objects of builds killed long ago (a running build's are younger)."""
    now = time.time()
    for path in store.glob("*.tmp"):
        try:
            if now - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()
        except OSError:
            pass  # another process removed or renamed it


def _compile_all(target: Target, store: Path, missing: Sequence[ObjectJob], jobs: int,
                 report: Progress) -> None:
    done = 0
    step = max(1, len(missing) // 10)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_compile_one, store, job) for job in missing]
        try:
            for job, future in zip(missing, futures, strict=True):
                error = future.result()
                if error:
                    raise BuildError(f"compiling TFLM's {job.source} for {target.name} "
                                     f"failed: {error}")
                done += 1
                if done % step == 0 or done == len(missing):
                    report(f"TFLM {target.name}: {done}/{len(missing)} files compiled")
        except BaseException:
            for future in futures:  # stop soon: the files compiled so far stay in the store
                future.cancel()
            raise


def _compile_one(store: Path, job: ObjectJob) -> str:
    final = _object(store, job)
    if final.is_file():
        return ""  # another process compiled it meanwhile
    temporary = store / f"{job.key}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    error = compiler.run_compiler([*job.command, "-o", str(temporary)])
    if error:
        temporary.unlink(missing_ok=True)
        return error
    os.replace(temporary, final)  # atomic; a concurrent twin renames the same bytes
    return ""


def _archive(target: Target, archive: Path, objects: list[Path]) -> None:
    ar = target.cxx[: -len("g++")] + "ar" if target.cxx.endswith("g++") else "ar"
    error = compiler.run_compiler([ar, "rcs", str(archive), *map(str, objects)])
    if error:
        raise BuildError(f"{ar} failed on {archive}: {error}")
