"""The second line of defence: an unseen model's first load runs in a child process.

The crash below is real: LiteRT segfaults on a DEPTHWISE_CONV_2D without its bias. The semantic
check refuses that model, so to prove the child process stands on its own the CLI tests turn the
semantic check off inside the command's process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.demo import model_path
from edge.errors import InterpreterError
from edge.runtime import first_load
from tests.conftest import ROOT, shared_file
from tests.model_mutants import named_mutants, tiny_model


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(first_load.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "loaded"


@pytest.fixture(scope="module")
def crashing() -> bytes:
    return named_mutants(model_path().read_bytes())["depthwise without bias"]


def test_a_real_litert_crash_becomes_one_error_and_is_not_cached(cache: Path,
                                                                 crashing: bytes) -> None:
    with pytest.raises(InterpreterError) as info:
        first_load.load_in_child(crashing, "broken.tflite")
    message = str(info.value)
    assert message.startswith("LiteRT crashed while loading broken.tflite: SIGSEGV")
    assert "\n" not in message
    assert not cache.exists() or not any(cache.iterdir())


def test_success_is_remembered_by_content_backend_and_version(cache: Path) -> None:
    content = tiny_model((1, 4, 4, 3))
    assert first_load.load_in_child(content, "tiny.tflite", "ai-edge-litert", "1") is True
    assert first_load.load_in_child(content, "tiny.tflite", "ai-edge-litert", "1") is False
    key = first_load.loaded_key(content, "ai-edge-litert", "1")
    assert [p.name for p in cache.iterdir()] == [key]
    # an upgrade of the package loads it again
    assert first_load.load_in_child(content, "tiny.tflite", "ai-edge-litert", "2") is True


def test_a_clean_refusal_keeps_the_interpreters_reason(cache: Path) -> None:
    content = shared_file("models/person_detect.tflite").read_bytes()
    with pytest.raises(InterpreterError, match=r"person_detect\.tflite: ai-edge-litert refused "
                                               "the model: quantized_dimension"):
        first_load.load_in_child(content, "person_detect.tflite")


def test_run_model_in_a_child_matches_litert_in_process() -> None:
    from ai_edge_litert.interpreter import Interpreter

    content = model_path().read_bytes()
    rng = np.random.default_rng(0)
    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    inputs = [rng.integers(0, 256, detail["shape"]).astype(detail["dtype"]) for _ in range(2)]
    expected = []
    for x in inputs:
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        expected.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    got = first_load.run_model(content, "demo", inputs)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b.reshape(-1))


_WITHOUT_SEMANTICS = """
import sys
import edge.model.semantics as semantics
semantics.check_semantics = lambda graphs: None
import edge.model.reader as reader
reader.check_semantics = semantics.check_semantics
from edge.cli.{module} import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["classify", "run"])
def test_commands_survive_a_litert_crash(command: str, crashing: bytes, tmp_path: Path) -> None:
    model = tmp_path / "broken.tflite"
    model.write_bytes(crashing)
    image = tmp_path / "frame.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((96, 96, 3), np.uint8))
    args = (["--model", str(model), str(image)] if command == "classify"
            else ["--camera", "demo", "--model", str(model), "--max-frames", "1"])
    env = {**os.environ, "PYTHONPATH": str(ROOT), first_load.CACHE_ENV: str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_SEMANTICS.format(module=command),
                           *args], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"edge-{command}: error: LiteRT crashed while loading broken.tflite: SIGSEGV" \
        in lines[0]
