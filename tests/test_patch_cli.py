"""edge-export --patch and edge-inspect --patch: the rewritten model is what the project ships and
what the table shows; bad values are one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli.inspect import main as inspect_main
from edge.model import read_model
from firmware_export.cli.export import main as export_main
from tests.conftest import ROOT

DEMO_MODEL = ROOT / "edge" / "demo" / "demo_model.tflite"


@pytest.fixture()
def demo() -> Path:
    if not DEMO_MODEL.is_file():
        pytest.skip(f"{DEMO_MODEL} is missing")
    return DEMO_MODEL


def test_export_fixed_grid_ships_the_tiled_model(demo: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fw"
    assert export_main([str(demo), "--board", "nano33ble", "--out", str(out), "--patch", "3x3",
                        "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    patch = report["patch"]
    assert patch["grid"] == "3x3" and patch["arena_after"] < patch["arena_before"]
    shipped = read_model(out / "model.tflite")
    assert {"SLICE", "CONCATENATION"} <= set(shipped.opcodes)
    assert report["arena"]["minimum"] == patch["arena_after"]  # the plan built from the tiles


def test_export_off_is_the_default(demo: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main([str(demo), "--board", "nano33ble", "--out", str(tmp_path / "fw"),
                        "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["patch"] is None
    assert "SLICE" not in read_model(tmp_path / "fw" / "model.tflite").opcodes


@pytest.mark.parametrize("value", ["1x1", "12x2", "tiles"])
def test_bad_patch_is_one_line(demo: Path, tmp_path: Path, value: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main([str(demo), "--board", "nano33ble", "--out", str(tmp_path / "fw"),
                        "--patch", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--patch" in err
    assert not (tmp_path / "fw").exists()


def test_inspect_patch_json(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert inspect_main([str(demo), "--patch", "2x2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["patch"]["grid"] == "2x2"
    assert any(op["opcode"] == "SLICE" for op in data["ops"])
