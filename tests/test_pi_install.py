"""The Pi install path: picamera2 comes from apt into the system Python (python3-picamera2), which
a plain venv cannot see (picamera2 #446).

A fake "system Python" stands in for Raspberry Pi OS's: a copy of this machine's interpreter in a
prefix of its own whose site-packages holds a stub ``picamera2`` (and ``libcamera``) package.
``make`` creates the venv from it with ``--system-site-packages`` and says so; from the same
Python without the stub it makes a plain venv, silently. And edge's picamera2 backend, in a venv
that hides the system's packages, names the apt package and the venv flag in one line.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from edge.camera.picamera2 import APT_PACKAGE, VENV_FLAG, install_advice
from tests.conftest import ROOT, need_tool

STUB = "PICAMERA2_STUB = True\n"
SYSTEM_NUMPY = "1.24.2"  # bookworm's python3-numpy


def _fake_system_python(prefix: Path, with_picamera2: bool) -> Path:
    """A Python installed at ``prefix`` (this interpreter's binary and stdlib) with its own site."""
    base = Path(sys.base_prefix)
    binary = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(binary, prefix / "bin" / binary.name)
    fake_stdlib = prefix / stdlib.relative_to(base)
    fake_stdlib.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in {"site-packages", "dist-packages"}:
            (fake_stdlib / entry.name).symlink_to(entry)
    python = prefix / "bin" / binary.name
    done = subprocess.run([str(python), "-I", "-c",
                           "import site, sys; print(sys.prefix); print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=False, env=_clean_env())
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2 or Path(lines[0]) != prefix:
        pytest.skip(f"this interpreter ({binary}) does not run from a copied prefix: "
                    f"{done.stderr.strip() or done.stdout.strip()}")
    site_dir = Path(lines[1])
    site_dir.mkdir(parents=True, exist_ok=True)
    if with_picamera2:
        for name in ("picamera2", "libcamera"):
            (site_dir / name).mkdir()
            (site_dir / name / "__init__.py").write_text(STUB)
        # Raspberry Pi OS's numpy (python3-numpy), which picamera2's compiled parts need.
        info = site_dir / f"numpy-{SYSTEM_NUMPY}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: numpy\n"
                                       f"Version: {SYSTEM_NUMPY}\n")
    return python


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MAKE", "MFLAGS"))}


def _make_venv(python: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    """The Makefile's own venv rule, run with ``python`` as the system Python."""
    make = need_tool("make", "apt install make")
    return subprocess.run([make, "-s", "-C", str(ROOT), f"PYTHON={python}", f"VENV={venv}",
                           f"{venv}/bin/python"], capture_output=True, text=True,
                          timeout=600, check=False, env=_clean_env())


def _imports_picamera2(venv: Path) -> bool:
    done = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import picamera2; assert picamera2.PICAMERA2_STUB"],
                          capture_output=True, text=True, check=False, env=_clean_env())
    return done.returncode == 0


@pytest.mark.slow
def test_make_sees_the_system_picamera2_and_says_so(tmp_path: Path) -> None:
    python = _fake_system_python(tmp_path / "pi-os", with_picamera2=True)
    venv = tmp_path / "venv"
    done = _make_venv(python, venv)
    assert done.returncode == 0, done.stderr
    assert "has picamera2" in done.stdout and VENV_FLAG in done.stdout
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    assert _imports_picamera2(venv)
    # pip in that venv keeps the system's numpy: it reads the venv's pip.conf.
    assert f"keeps the system's numpy {SYSTEM_NUMPY}" in done.stdout
    assert (venv / "system-numpy.txt").read_text() == f"numpy=={SYSTEM_NUMPY}\n"
    config = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "config", "list"],
                            capture_output=True, text=True, check=True, env=_clean_env())
    assert f"global.constraint='{venv / 'system-numpy.txt'}'" in config.stdout


@pytest.mark.slow
def test_elsewhere_make_creates_a_plain_venv_silently(tmp_path: Path) -> None:
    python = _fake_system_python(tmp_path / "laptop", with_picamera2=False)
    venv = tmp_path / "venv"
    done = _make_venv(python, venv)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    assert not _imports_picamera2(venv)
    assert not (venv / "pip.conf").exists()


@pytest.mark.slow
def test_edge_in_a_hiding_venv_names_the_venv_flag(tmp_path: Path) -> None:
    """edge-run --camera 0 on a Pi whose venv was made without the flag: one line saying so."""
    python = _fake_system_python(tmp_path / "pi-os", with_picamera2=True)
    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True,
                   env=_clean_env())
    # edge and its dependencies from this checkout's venv, after the venv's own site.
    dev_site = [p for p in site.getsitepackages() if Path(p).is_dir()]
    env = {**_clean_env(), "PYTHONPATH": os.pathsep.join([str(ROOT), *dev_site])}
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sys; from edge.cli.run import main; sys.exit(main(['--board', 'rpi4', "
         "'--camera', '0', '--max-frames', '1']))"],
        capture_output=True, text=True, timeout=300, check=False, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "installed for the system Python" in lines[0]
    assert f"python3 -m venv {VENV_FLAG} {venv}" in lines[0]


def test_install_advice_for_each_case(tmp_path: Path) -> None:
    missing = ModuleNotFoundError("No module named 'picamera2'", name="picamera2")
    system = tmp_path / "dist-packages"
    system.mkdir()
    advice = install_advice(missing, tmp_path / "venv", [system])
    assert f"sudo apt install {APT_PACKAGE}" in advice and VENV_FLAG in advice
    (system / "picamera2").mkdir()
    advice = install_advice(missing, tmp_path / "venv", [system])
    assert "installed for the system Python" in advice and str(tmp_path / "venv") in advice
    # Not in a venv (or one that sees the system): the apt package is what is missing.
    assert f"sudo apt install {APT_PACKAGE}" in install_advice(missing, None, [system])
    # picamera2 is there but one of its own imports fails (numpy ABI): the reason is kept.
    broken = ValueError("numpy.dtype size changed, may indicate binary incompatibility")
    advice = install_advice(broken, None, [system])
    assert "numpy.dtype size changed" in advice and APT_PACKAGE in advice
    other = ModuleNotFoundError("No module named 'simplejpeg'", name="simplejpeg")
    assert "simplejpeg" in install_advice(other, None, [system])
