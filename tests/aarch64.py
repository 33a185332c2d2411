"""An arm64 Raspberry Pi OS-like Python (Debian bookworm, Python 3.11) run under qemu-user.

What the aarch64 tests run the project in, built once and cached under
``$XDG_CACHE_HOME/edge-tests/aarch64/`` (:func:`tests.cache.artefact_cache`), each part in a
folder keyed by the hash of what it depends on, built in a temporary sibling and renamed into
place under a lock (:func:`firmware_export.tflm.cache.cached_folder`):

- ``sysroot-KEY/root``: ``mmdebstrap --variant=extract --arch=arm64`` of bookworm with python3,
  python3-venv, python3-pip, libgl1 and libglib2.0-0 (about 300 MB; 20-90 s, downloads from
  deb.debian.org). Beside it one qemu ``-L`` prefix per CPU, ``cpu-cortex-a72`` (Pi 4) and
  ``cpu-cortex-a76`` (Pi 5): relative links to the tree plus that CPU's ``proc/cpuinfo`` from
  ``../shared/platform``. qemu-user otherwise hands LiteRT the host's x86 cpuinfo (a crash)
  and with ``QEMU_CPU=max`` MobileNetV2 silently returns a wrong class (its README).
- ``wheels-KEY``: the aarch64 wheels of the runtime's dependencies, pinned to the versions
  this (x86) interpreter has, fetched by ``pip download --only-binary=:all: --python-version 3.11``
  with the four manylinux aarch64 tags (ai-edge-litert ships only ``manylinux_2_27_aarch64``);
  about 65 MB from PyPI.
- ``venv-KEY``: an arm64 venv with those wheels installed by the arm64 pip under emulation
  (1-4 minutes). Its ``bin/python`` is a shell script that runs the sysroot's python3.11 under
  ``qemu-aarch64-static -L cpu-$QEMU_CPU``, so no binfmt_misc registration is needed and the
  project's child processes (``sys.executable``) run emulated too.

The project's own wheel is built per test session and installed into a small venv whose
``.pth`` file adds the cached venv's site-packages (:func:`project_venv`); pip resolves its
dependencies against them from the wheels folder (no index). That venv is cached too, as
``project-KEY`` keyed by the wheel's bytes: the same sources reuse it, changed sources install
anew.

These downloads happen only when a cache entry is built (CI's network reaches PyPI and
Debian); later runs are offline.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from firmware_export.tflm.cache import cached_folder
from tests.cache import artefact_cache

SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "python3-pip", "libgl1", "libglib2.0-0")
PYTHON_VERSION = "3.11"
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64",
             "manylinux_2_28_aarch64")
PROJECT = Path(__file__).resolve().parents[1]


def runtime_distributions() -> tuple[str, ...]:
    """The runtime's dependencies as pyproject.toml lists them, without version bounds."""
    doc = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    return tuple(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0]
                 for dep in doc["project"]["dependencies"])


# QEMU_CPU -> (the cpuinfo file in ../shared/platform, the "CPU part" it declares, the board).
CPUS = {"cortex-a72": ("cpuinfo_cortex_a72", "0xd08", "rpi4"),
        "cortex-a76": ("cpuinfo_cortex_a76", "0xd0b", "rpi5")}
QEMU = "qemu-aarch64-static"
# Hang guards only: the cold build under a loaded 2-core machine took minutes, not hours.
BUILD_TIMEOUT_S = 1800

_WRAPPER = """#!/bin/sh
# arm64 python under qemu-user: QEMU_CPU picks the CPU and its /proc/cpuinfo ({cpus}).
cpu="${{QEMU_CPU:?set QEMU_CPU to one of {cpus}}}"
prefix="{sysroot}/cpu-$cpu"
if [ ! -d "$prefix" ]; then echo "QEMU_CPU=$cpu: no prefix $prefix" >&2; exit 2; fi
export QEMU_CPU="$cpu"
exec {qemu} -L "$prefix" -0 "$0" "{sysroot}/root/usr/bin/python{version}" "$@"
"""


class Arm64EnvError(RuntimeError):
    """A part of the arm64 environment could not be built (the message says which)."""


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise Arm64EnvError(f"{what}: still running after {BUILD_TIMEOUT_S} s") from e
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise Arm64EnvError(f"{what} failed (exit {done.returncode}): {last}")


def pinned_requirements() -> list[str]:
    """The runtime dependencies at the versions this interpreter has (the x86 reference)."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in runtime_distributions()]


def sysroot(platform_dir: Path) -> Path:
    """The cached bookworm arm64 tree with one ``cpu-*`` qemu prefix per entry of :data:`CPUS`."""
    cpuinfo = {cpu: (platform_dir / name).read_bytes() for cpu, (name, _, _) in CPUS.items()}
    key = _key(SUITE, DEBIAN_PACKAGES, {c: hashlib.sha256(b).hexdigest()
                                        for c, b in cpuinfo.items()})

    def make(folder: Path) -> None:
        root = folder / "root"
        _run(["mmdebstrap", "--variant=extract", "--arch=arm64",
              f"--include={','.join(DEBIAN_PACKAGES)}", SUITE, str(root)],
             f"mmdebstrap of {SUITE} arm64")
        for cpu, content in cpuinfo.items():
            prefix = folder / f"cpu-{cpu}"
            (prefix / "proc").mkdir(parents=True)
            (prefix / "proc" / "cpuinfo").write_bytes(content)
            # /tmp, /dev and /proc stay the host's: only the tree's programs and libraries and
            # this CPU's cpuinfo are redirected.
            for entry in sorted(root.iterdir()):
                if entry.name not in {"proc", "dev", "tmp"}:
                    (prefix / entry.name).symlink_to(Path("..") / "root" / entry.name)

    return cached_folder(artefact_cache("aarch64") / f"sysroot-{key}", make)


def wheels() -> Path:
    """The cached folder of aarch64 wheels of :func:`pinned_requirements` and their deps."""
    requirements = pinned_requirements()
    key = _key(requirements, PYTHON_VERSION, PLATFORMS)

    def make(folder: Path) -> None:
        platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
        _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
              "--only-binary=:all:", "--python-version", PYTHON_VERSION, *platforms,
              "-d", str(folder), *requirements], "pip download of the aarch64 wheels")

    return cached_folder(artefact_cache("aarch64") / f"wheels-{key}", make)


def write_python_wrapper(venv: Path, sysroot_dir: Path) -> Path:
    """Make ``venv`` (created or not) an arm64 venv of ``sysroot_dir``'s python; its python."""
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "lib" / f"python{PYTHON_VERSION}" / "site-packages").mkdir(parents=True,
                                                                        exist_ok=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {PYTHON_VERSION}\n")
    python = venv / "bin" / "python"
    python.write_text(_WRAPPER.format(cpus=" ".join(CPUS), sysroot=sysroot_dir.resolve(),
                                      qemu=QEMU, version=PYTHON_VERSION))
    python.chmod(0o755)
    for alias in ("python3", f"python{PYTHON_VERSION}"):
        link = venv / "bin" / alias
        if not link.is_symlink():
            link.symlink_to("python")
    return python


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{PYTHON_VERSION}" / "site-packages"


def emulated_env(cpu: str) -> dict[str, str]:
    """The environment for running arm64 programs for ``cpu`` (no host pip configuration)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    return {**env, "QEMU_CPU": cpu, "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def arm64_pip(python: Path, sysroot_dir: Path, args: list[str], what: str) -> None:
    """Run the sysroot's own pip (its wheel from python3-venv) with the arm64 ``python``."""
    found = sorted((sysroot_dir / "root" / "usr" / "share" / "python-wheels").glob("pip-*.whl"))
    if not found:
        raise Arm64EnvError(f"{sysroot_dir}: the tree has no pip wheel (python3-venv)")
    _run([str(python), f"{found[-1]}/pip", *args], what, env=emulated_env("cortex-a72"))


def deps_venv(sysroot_dir: Path, wheels_dir: Path) -> Path:
    """The cached arm64 venv with the runtime's dependencies installed from ``wheels_dir``."""
    key = _key(sysroot_dir.name, wheels_dir.name, _WRAPPER, pinned_requirements())

    def make(folder: Path) -> None:
        python = write_python_wrapper(folder, sysroot_dir)
        arm64_pip(python, sysroot_dir, ["install", "-q", "--no-index", "--find-links",
                                        str(wheels_dir), *pinned_requirements()],
                  "arm64 pip install of the runtime's dependencies")

    return cached_folder(artefact_cache("aarch64") / f"venv-{key}", make)


def project_venv(project_wheel: Path, sysroot_dir: Path, deps: Path, wheels_dir: Path) -> Path:
    """The cached arm64 venv with ``project_wheel`` installed by the arm64 pip.

    Keyed by the wheel's bytes (hatchling builds the same bytes from the same sources) and the
    venvs it stands on: a run whose sources changed installs again (1-2 minutes of emulated
    pip), a run on the same sources finds the venv its wheel made.
    """
    key = _key(hashlib.sha256(project_wheel.read_bytes()).hexdigest(), sysroot_dir.name,
               deps.name, wheels_dir.name, _WRAPPER)
    venv = artefact_cache("aarch64") / f"project-{key}"

    def make(folder: Path) -> None:
        python = write_python_wrapper(folder, sysroot_dir)
        (site_packages(folder) / "edge-runtime-deps.pth").write_text(f"{site_packages(deps)}\n")
        arm64_pip(python, sysroot_dir, ["install", "-q", "--no-compile", "--no-index",
                                        "--find-links", str(wheels_dir), str(project_wheel)],
                  f"arm64 pip install of {project_wheel.name}")
        # pip wrote the console scripts for the folder it installed into, renamed when done.
        for script in (folder / "bin").iterdir():
            if script.is_file() and not script.is_symlink():
                text = script.read_bytes()
                if bytes(folder) in text:
                    script.write_bytes(text.replace(bytes(folder), bytes(venv)))

    return cached_folder(venv, make)


def build_project_wheel(project: Path, out: Path) -> Path:
    """The project's wheel, built from ``project`` into ``out`` (no build isolation)."""
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
          "--no-deps", "--no-build-isolation", "-w", str(out), str(project)],
         "building the project's wheel")
    built = sorted(out.glob("*.whl"))
    if len(built) != 1:
        raise Arm64EnvError(f"expected one wheel in {out}, found {len(built)}")
    return built[0]


def missing_tools() -> list[str]:
    """The host tools the environment needs that are not installed (``make sysdeps``)."""
    tools = {"mmdebstrap": "mmdebstrap", QEMU: "qemu-user-static"}
    return [f"{tool} (Debian package {package})" for tool, package in tools.items()
            if shutil.which(tool) is None]
