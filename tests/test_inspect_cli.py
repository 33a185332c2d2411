"""edge-inspect end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from edge.cli.inspect import main
from tests.conftest import ROOT, shared_file


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edge", "inspect", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_table_and_totals() -> None:
    result = _run(str(shared_file("models/mobilenet_v2_1.0_224_quant.tflite")))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "300,775,552" in out and "1,505,280  bytes at op 4 (DEPTHWISE_CONV_2D)" in out
    assert "TFLite Micro    no: " in out and "uint8" in out
    assert "labels          1001 embedded" in out
    assert len([line for line in out.splitlines() if "CONV_2D" in line]) >= 53


def test_json_matches_the_table(capsys) -> None:  # type: ignore[no-untyped-def]
    model = shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    assert main([str(model), "--json", "--activation-bytes", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_macs"] == sum(op["macs"] for op in data["ops"])
    assert data["peak_live_bytes"] == max(op["live_bytes"] for op in data["ops"]) == 1_505_280
    assert data["micro_runnable"] is True
    assert data["bytes_per_activation"] == 2
    assert data["inputs"][0]["shape"] == [1, 224, 224, 3]
    assert "params" in data["definitions"]


def test_edgetpu_model_is_reported(capsys) -> None:  # type: ignore[no-untyped-def]
    model = shared_file("models/mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    assert main([str(model), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["edgetpu_compiled"] is True and data["micro_runnable"] is False


def test_list_boards() -> None:
    result = _run("--list-boards")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    for board in ("rpi4", "rpi5", "host", "nano33ble", "esp32s3", "pico"):
        assert board in names


def test_no_model_is_a_usage_error() -> None:
    result = _run()
    assert result.returncode == 2 and "give a MODEL" in result.stderr
