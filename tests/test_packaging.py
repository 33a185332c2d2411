"""A wheel built from the tree carries the boards and data files and runs from a fresh venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling", reason="hatchling (dev extra) builds the wheel")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (found,) = out.glob("edge_labels-*.whl")
    return found


def test_wheel_carries_the_distribution_name_and_its_extras(wheel: Path) -> None:
    from edge import DISTRIBUTION

    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(meta).decode()
    assert f"Name: {DISTRIBUTION}\n" in text
    assert "Provides-Extra: flash" in text
    assert "esptool" in text.split("Provides-Extra: flash", 1)[1]


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    boards = sorted(p.name for p in (ROOT / "boards").glob("*.toml"))
    assert boards and all(f"edge/boards/{b}" in names for b in boards)
    assert "edge/py.typed" in names and "firmware_export/py.typed" in names
    for data in (ROOT / "edge" / "demo").glob("*.tflite"):
        assert f"edge/demo/{data.name}" in names
    assert "edge/preview/page.html" in names  # the preview's page template
    for header in (ROOT / "firmware_export" / "c").glob("*.h"):
        assert f"firmware_export/c/{header.name}" in names
    assert not any(n.startswith("tests/") for n in names)


def test_fresh_venv_runs_edge_inspect_and_lists_boards(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    bin_dir = target / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    # The runtime dependencies (numpy, ai-edge-litert, ...) come from this test environment's
    # site-packages, appended after the fresh venv's own: the wheel's `edge` is the one found.
    site = Path(subprocess.run([str(bin_dir / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGE_BOARDS_DIR")}
    result = subprocess.run([str(bin_dir / "edge-inspect"), "--list-boards", "--json"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    boards = {b["name"]: b for b in json.loads(result.stdout)}
    assert {"rpi4", "host", "nano33ble"} <= set(boards)
    assert Path(boards["rpi4"]["source"]).is_relative_to(site.resolve())
    version = subprocess.run([str(bin_dir / "edge-run"), "--version"], capture_output=True,
                             text=True, env=env, timeout=120, check=True).stdout
    assert version.strip() == "edge-run 0.1.0 (edge-labels)"
