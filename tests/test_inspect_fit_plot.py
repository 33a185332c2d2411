"""edge-inspect --board (whether and where a model fits), --plot (PNG/SVG) and --csv."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.boards import get_board
from edge.cli.inspect import main
from edge.demo import model_path
from edge.model import read_model
from edge.model.analysis import analyze
from edge.model.layer_chart import MACS, MEMORY, PEAK, chart_png, chart_svg, layer_chart
from firmware_export.cli.export import main as export_main
from tests.conftest import shared_file

SVG = "{http://www.w3.org/2000/svg}"


def _inspect_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_agrees_with_edge_export(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = str(shared_file("models/person_detect.tflite"))
    fit = _inspect_json(capsys, model, "--board", "nano33ble")["fit"]
    assert export_main([model, "--board", "nano33ble", "--out", str(tmp_path / "fw"),
                        "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert fit["arena"]["arena_size"] == exported["arena"]["arena_size"]
    for key in ("arena", "ram_for_arena", "model_bytes", "flash_for_model", "flash_left"):
        assert fit["budget"][key] == exported["budget"][key], key
    spec = get_board("nano33ble").mcu
    assert spec is not None and spec.model_slot is not None
    arena, flash, fallback, slot = fit["placements"]
    assert [p["region"] for p in fit["placements"]] == [
        "ram", "flash model + slot", "flash model", "flash slot"]
    assert arena["need"] == exported["arena"]["arena_size"] and arena["origin"] == 0x20000000
    assert arena["left"] == arena["available"] - arena["need"] > 0
    # the default export links the model into the model and slot parts as one region
    whole = spec.model_region(slot=False)
    assert (flash["origin"], flash["available"]) == (whole.address, whole.size)
    assert (fallback["origin"], fallback["available"]) == (spec.model_part.address,
                                                           spec.model_part.size)
    # the model-only image: 64-byte header + the model + its labels (none embedded)
    assert slot["need"] == 64 + flash["need"]
    assert (slot["origin"], slot["available"]) == (spec.model_slot.address,
                                                   spec.model_slot.length)
    assert fit["fits_with_model_slot"] is True
    assert fit["fits"] is True and fit["advice"] is None


def test_too_big_says_by_how_much_and_what_fits(capsys: pytest.CaptureFixture[str]) -> None:
    model = str(shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite"))
    assert main([model, "--board", "nano33ble"]) == 0
    out = capsys.readouterr().out
    verdict = next(line for line in out.splitlines() if line.startswith("on nano33ble"))
    assert verdict.endswith("DOES NOT FIT")
    assert main([str(model_path()), "--board", "nano33ble"]) == 0  # 660 KB: only without a slot
    demo = capsys.readouterr().out
    assert "fits with the model built in; not with --model-slot" in demo
    arena_row = next(line for line in out.splitlines() if "tensor arena" in line)
    assert arena_row.split()[-1] == "(no)" and "0x20000000" in arena_row
    assert "largest MobileNetV2 that fits is width 0.35 at 96x96" in out


def test_fit_table_columns_align(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(model_path()), "--board", "esp32s3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("on esp32s3"))
    header, *rows = lines[start + 1:start + 6]
    assert len(rows) == 4 and all(row.startswith("  ") for row in rows)
    for column in ("needs B", "available B"):  # right-aligned: every row ends where it ends
        end = header.index(column) + len(column)
        assert all(row[end - 1].isdigit() and row[end] == " " for row in rows), column
    assert all(row.index("0x") == header.index("at") for row in rows)


def test_linux_board_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(model_path()), "--board", "rpi4"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "rpi4" in captured.err


def test_png_plot_reads_back_with_the_bars_of_the_report(tmp_path: Path) -> None:
    out = tmp_path / "layers.png"
    assert main([str(model_path()), "--plot", str(out)]) == 0
    image = cv2.imread(str(out), cv2.IMREAD_COLOR)
    report = analyze(read_model(model_path()), 1)
    chart = layer_chart(report)
    assert image is not None and image.shape == (chart.height, chart.width, 3)
    # every bar tall enough to see is drawn in its colour at its place; the peak one in red
    for bar in chart.bars:
        if bar.height < 3:
            continue
        x, y = round(bar.x + bar.width / 2), round(bar.y + bar.height - 2)
        b, g, r = (int(v) for v in image[y, x])
        assert (r, g, b) == bar.color, (bar.tip, (r, g, b))
    red = np.all(image == np.array(PEAK[::-1], np.uint8), axis=2)
    columns = np.flatnonzero(red.any(axis=0))
    peak_bar = next(b for b in chart.bars if b.color == PEAK)
    assert columns.min() >= peak_bar.x - 1 and columns.max() <= peak_bar.x + peak_bar.width + 1


def test_svg_plot_parses_and_bars_follow_the_report(tmp_path: Path) -> None:
    out = tmp_path / "layers.svg"
    model = str(shared_file("models/person_detect.tflite"))
    assert main([model, "--plot", str(out)]) == 0
    root = ET.parse(out).getroot()
    report = analyze(read_model(model), 1)
    for series, value in (("memory", "live_bytes"), ("macs", "macs")):
        rects = [r for r in root.iter(f"{SVG}rect") if r.get("class") == series]
        assert len(rects) == len(report.ops)
        values = [getattr(op, value) for op in report.ops]
        heights = [float(r.get("height", "nan")) for r in rects]
        tallest = max(heights)
        for v, h in zip(values, heights, strict=True):
            assert h == pytest.approx(tallest * v / max(values), abs=0.01)
        titles = [r.find(f"{SVG}title").text for r in rects]  # type: ignore[union-attr]
        assert all(f"op {op.index} {op.opcode}:" in t for op, t in zip(report.ops, titles,
                                                                        strict=True))
    fills = {r.get("fill") for r in root.iter(f"{SVG}rect") if r.get("class") == "macs"}
    assert fills == {"#{:02x}{:02x}{:02x}".format(*MACS)}
    peak = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "memory"][report.peak_op]
    assert peak.get("fill") == "#{:02x}{:02x}{:02x}".format(*PEAK) != "#{:02x}{:02x}{:02x}".format(
        *MEMORY)


def test_svg_escapes_names() -> None:
    report = analyze(read_model(model_path()), 1)
    hostile = dataclasses.replace(report, source="a<b>&'\".tflite")
    root = ET.fromstring(chart_svg(layer_chart(hostile)))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "a<b>&'\".tflite: per-layer live memory and multiply-adds" in texts
    assert chart_png(layer_chart(hostile))[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_has_one_row_per_operator(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    out = tmp_path / "layers.csv"
    data = _inspect_json(capsys, str(model_path()), "--csv", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [int(r["index"]) for r in rows] == [op["index"] for op in data["ops"]]
    assert sum(int(r["macs"]) for r in rows) == data["total_macs"]
    assert max(int(r["live_bytes"]) for r in rows) == data["peak_live_bytes"]


def test_bad_plot_name_and_unwritable_folder(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(model_path()), "--plot", str(tmp_path / "x.pdf")])
    assert info.value.code == 2 and "must end in .png or .svg" in capsys.readouterr().err
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be\n")  # refused even for root
    target = blocker / "x.svg"
    assert main([str(model_path()), "--plot", str(target), "--csv",
                 str(tmp_path / "ok.csv")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert f"cannot write {target}" in captured.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["not-a-folder"]
