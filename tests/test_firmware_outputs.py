"""Outputs of edge-export and edge-flash: no temporaries survive a failure or (past the next run)
a ``kill -9``, and finished outputs get the umask's modes. Real subprocesses, real SIGKILL."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.errors import ExportError
from firmware_export.export import export_model
from tests.conftest import ROOT, shared_file

# Runs an export that stops inside its staging folder (once model.tflite is being written) and
# says so, so that the test can kill it there.
STALLING_EXPORT = textwrap.dedent("""
    import pathlib, sys, time
    from firmware_export.export import export_model
    original = pathlib.Path.write_bytes
    def stall(self, data):
        if self.name == "model.tflite":
            print(self.parent, flush=True)
            time.sleep(600)
        return original(self, data)
    pathlib.Path.write_bytes = stall
    export_model(sys.argv[1], "nano33ble", sys.argv[2])
""")


def kill_when_ready(args: list[str], env: dict[str, str] | None = None) -> str:
    """Start ``args``, read its first stdout line, SIGKILL its process group, return the line."""
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             start_new_session=True, env={**os.environ, **(env or {})})
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return line


def modes(folder: Path) -> set[tuple[str, int]]:
    return {("d" if p.is_dir() else "f", stat.S_IMODE(p.stat().st_mode))
            for p in [folder, *folder.rglob("*")]}


def test_export_killed_mid_write_leaves_a_temporary_that_the_next_run_removes(
        tmp_path: Path) -> None:
    model = shared_file("models/person_detect.tflite")
    out = tmp_path / "fw"
    staging = Path(kill_when_ready([sys.executable, "-c", STALLING_EXPORT, str(model),
                                    str(out)]))
    assert staging.parent == tmp_path and staging.is_dir() and not out.exists()
    assert staging.name.startswith(".fw.edge-tmp-")
    export_model(model, "nano33ble", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_project_files_get_the_umasks_modes(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        export_model(shared_file("models/person_detect.tflite"), "nano33ble", tmp_path / "fw",
                     model_slot=True)
    finally:
        os.umask(old)
    assert modes(tmp_path / "fw") == {("d", 0o777 & ~umask), ("f", 0o666 & ~umask)}


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ExportError):
        export_model(shared_file("models/person_detect.tflite"), "nano33ble", tmp_path / "fw",
                     tflm=tmp_path)  # not a TFLM tree: refused before anything is written
    assert list(tmp_path.iterdir()) == []


HANGING_TOOL = """#!/bin/sh
echo "$@"
exec sleep 600
"""


def test_flash_killed_mid_run_leaves_a_private_folder_that_the_next_run_removes(
        tmp_path: Path) -> None:
    """Images go to a private mkdtemp folder (0700), named so that the next run can tell it
    belonged to a process that is gone."""
    model = shared_file("models/person_detect.tflite")
    bin_dir, tmp = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    tmp.mkdir()
    for tool in ("picotool",):
        (bin_dir / tool).write_text(HANGING_TOOL)
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "TMPDIR": str(tmp),
           "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "edge", "flash", str(model), "--board", "pico"]
    args = kill_when_ready(argv, env)
    image = Path(args.split()[-1])
    (work,) = tmp.iterdir()
    assert image.parent == work and work.name.startswith(".edge-flash.edge-tmp-")
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    (bin_dir / "picotool").write_text("#!/bin/sh\nexit 0\n")
    done = subprocess.run(argv, env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert list(tmp.iterdir()) == []


def test_flash_output_gets_the_umasks_mode(tmp_path: Path) -> None:
    model = shared_file("models/person_detect.tflite")
    out = tmp_path / "o.img"
    done = subprocess.run(
        ["sh", "-c", f'umask 027 && exec "{sys.executable}" -m edge flash "{model}" '
         f'--board pico -o "{out}"'], cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["o.img"]


def test_export_failing_mid_write_leaves_nothing_and_keeps_the_old_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = shared_file("models/person_detect.tflite")
    out = tmp_path / "fw"
    export_model(model, "nano33ble", out)
    before = (out / "platformio.ini").read_bytes()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(ExportError, match="No space left on device"):
        export_model(model, "nano33ble", out, model_slot=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]
    assert (out / "platformio.ini").read_bytes() == before
