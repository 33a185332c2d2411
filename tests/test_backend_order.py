"""The backend order really works: the runtime contract under tflite-runtime (its own venv,
numpy<2) and under tensorflow.lite, each agreeing with ai-edge-litert.

The tflite-runtime venv is built once, outside the repository, under
``$EDGE_CACHE_DIR/test-venvs/`` (default ``~/.cache/edge``), keyed by its requirements and the
Python version; later runs reuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.demo.scene import render_sample
from edge.runtime.first_load import cache_dir
from tests.conftest import ROOT

TFLITE_RUNTIME_VENV = ("tflite-runtime==2.14.0", "numpy<2", "opencv-python-headless<4.11",
                       "flatbuffers>=24.3.25")

CONTRACT = """
import json, sys
import numpy as np
from edge.demo import model_path
from edge.model import read_model
from edge.runtime import Classifier
from edge.runtime.backends import load_backend

backend = load_backend()
model = read_model(model_path())  # edge's own schema binding: no interpreter needed for this
frames = np.load(sys.argv[1])  # the same pixels for every backend (OpenCV versions differ)
rows = []
with Classifier.open(model_path(), threads=1) as clf:
    for frame in frames:
        best = clf.classify(frame, top_k=3)
        rows.append({"top": [[c.index, round(c.score, 5)] for c in best]})
    name = clf.backend_name
print(json.dumps({"default": backend.name, "backend": name, "ops": len(model.main.operators),
                  "rows": rows, "numpy": np.__version__}))
"""


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rendered demo scenes with their true digits, saved for the other interpreters."""
    rng = np.random.default_rng(0)
    samples = [render_sample(rng) for _ in range(6)]
    path = tmp_path_factory.mktemp("frames") / "frames.npy"
    np.save(path, np.stack([frame for frame, _ in samples]))
    return path


def _run(python: str, frames: Path, prepend: str = "") -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (prepend, str(ROOT)) if p)}
    done = subprocess.run([python, "-c", CONTRACT, str(frames)], capture_output=True,
                          text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def reference(frames: Path) -> dict[str, Any]:
    result = _run(sys.executable, frames)
    assert result["default"] == "ai-edge-litert"
    return result


def _same_answers(got: dict[str, Any], reference: dict[str, Any]) -> None:
    assert got["ops"] == reference["ops"]
    for mine, theirs in zip(got["rows"], reference["rows"], strict=True):
        assert mine["top"][0][0] == theirs["top"][0][0]
        for (_, a), (_, b) in zip(mine["top"], theirs["top"], strict=True):
            assert abs(a - b) <= 2 / 256  # int8 outputs: at most two steps apart


def _tflite_runtime_venv() -> Path:
    key = hashlib.sha256(json.dumps([sys.version_info[:2], TFLITE_RUNTIME_VENV]).encode())
    venv = cache_dir().parent / "test-venvs" / f"tflite-runtime-{key.hexdigest()[:16]}"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    building = venv.with_name(venv.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
    done = subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", *TFLITE_RUNTIME_VENV],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        pytest.skip(f"cannot install {' '.join(TFLITE_RUNTIME_VENV)}: "
                    f"{(done.stderr.strip().splitlines() or ['pip failed'])[-1]}")
    subprocess.run([sys.executable, "-m", "venv", "--upgrade", str(building)], check=True)
    try:
        building.rename(venv)  # another run may have finished first: either venv will do
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return python


def test_tflite_runtime_in_its_own_venv(reference: dict[str, Any], frames: Path) -> None:
    got = _run(str(_tflite_runtime_venv()), frames)
    assert got["default"] == "tflite-runtime"  # ai-edge-litert is not in that venv
    assert got["backend"].startswith("tflite-runtime 2.14")
    assert got["numpy"].startswith("1.")
    _same_answers(got, reference)


def test_tensorflow_lite_when_litert_cannot_be_imported(reference: dict[str, Any],
                                                        frames: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="tensorflow-cpu comes with the build extra")
    shadow = tmp_path / "shadow" / "ai_edge_litert"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("hidden by this test")\n')
    got = _run(sys.executable, frames, prepend=str(shadow.parent))
    assert got["default"] == "tensorflow" and got["backend"].startswith("tensorflow")
    _same_answers(got, reference)
