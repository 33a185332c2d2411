"""The runtime on 64-bit ARM: the project's wheel in an arm64 Debian bookworm venv (Raspberry Pi
OS's base, Python 3.11, the aarch64 wheels of LiteRT, numpy and OpenCV), run under qemu-user
as a Raspberry Pi 4 (Cortex-A72) and a Pi 5 (Cortex-A76), gives the labels of the x86 run.

``edge-classify`` on shared's images with two real ImageNet models and ``edge-run --camera`` on a
short clip of the demo scene with the demo model, each compared with the same command on this
x86 machine: the same top-1 label for every image and frame, and every class's score within the
model's :data:`MAX_STEPS` quantization steps of the output tensor. XNNPACK's ARM and x86 kernels
requantize differently, so scores differ by a few steps, the same on both ARM CPUs and for any
thread count. Measured (largest gap over every class): MobileNetV1 0.25/128 uint8 (TF1,
per-tensor asymmetric, XNNPACK's QU8 kernels) 7 steps on parrot.jpg's top class (0.80 on x86);
MobileNetV2 1.0/224 int8 (per-channel, QS8) 2 steps; the demo model 0 (its scores are near
0 and 1).

The environment (sysroot, aarch64 wheels, arm64 venv) is a cached fixture: see
:mod:`tests.aarch64` for what is downloaded when, and how long it takes cold. About 1-4 s per
MobileNetV2 1.0/224 inference under emulation here, so the test keeps to 3 images and 12 frames.
It proves the ARM builds of the wheels and the ARM kernels give our answers; it says nothing of
speed on a Pi, of its camera or its ISP (docs/pi.md).

Measured on this 2-core machine shared with other work (load average about 15): cold, the
environment took about 15 minutes (mmdebstrap 1.5 min, wheels 6 s, the emulated pip 4-10 min);
warm, the module took 7.4 minutes, of which 2.3 building the project's wheel and installing it
with the emulated pip, and 4.5 the emulated commands. The install is now cached by the wheel's
bytes (:func:`tests.aarch64.project_venv`): unchanged sources skip it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.model import read_model
from tests.aarch64 import (
    CPUS,
    Arm64EnvError,
    build_project_wheel,
    deps_venv,
    emulated_env,
    missing_tools,
    project_venv,
    site_packages,
    sysroot,
    wheels,
)
from tests.conftest import ROOT, SHARED, shared_file

# The cold build (mmdebstrap, wheel download, emulated pip) is the module fixture's: pytest's
# timeout guards the test functions only (timeout_func_only), the build has its own hang guards.
pytestmark = [pytest.mark.slow]

DEMO = "demo model"
MAX_STEPS = {"models/tf2_mobilenet_v2_1.0_224_ptq.tflite": 3,
             "models/mobilenet_v1_0.25_128_quant.tflite": 8, DEMO: 3}
IMAGES = ("images/cat.bmp", "images/grace_hopper.bmp", "images/parrot.jpg")
# README of ../shared/data: the expected top-1 of the MobileNetV2 models.
EXPECTED_TOP1 = {"cat.bmp": 286, "grace_hopper.bmp": 653, "parrot.jpg": 89}
MODELS = ("models/tf2_mobilenet_v2_1.0_224_ptq.tflite", "models/mobilenet_v1_0.25_128_quant.tflite")
CLIP_FRAMES = 12
RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Arm64:
    venv: Path
    work: Path

    def run(self, cpu: str, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``venv/bin/COMMAND ARGS`` for ``cpu``, from a folder without the project's sources."""
        return subprocess.run([str(self.venv / "bin" / command), *args], capture_output=True,
                              text=True, cwd=self.work, env=emulated_env(cpu),
                              timeout=RUN_TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> Arm64:
    missing = missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: `make sysdeps` installs them as root")
    platform_dir = SHARED / "platform"
    if not platform_dir.is_dir():
        pytest.skip(f"{platform_dir} (the ARM cpuinfo files) is absent")
    work = tmp_path_factory.mktemp("arm64")
    try:
        tree = sysroot(platform_dir)
        wheel_dir = wheels()
        deps = deps_venv(tree, wheel_dir)
        wheel = build_project_wheel(ROOT, work / "dist")
        venv = project_venv(wheel, tree, deps, wheel_dir)
    except Arm64EnvError as e:
        pytest.skip(f"cannot build the arm64 environment: {e}")
    return Arm64(venv, work)


def _host(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", command, *args], capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S, check=False)


def output_step(model: Path) -> float:
    """The size of one quantization step of the model's (single) output."""
    (output,) = read_model(model).output_tensors
    assert output.quantization is not None, f"{model.name}: output is not quantized"
    return float(output.quantization.scale[0])


def compare_rows(reference: list[dict[int, float]], got: list[dict[int, float]],
                 step: float) -> tuple[list[int], float]:
    """Rows (index -> score) of two runs: the rows whose top-1 differ, the largest score gap.

    The gap is in quantization steps, over every class either row has.
    """
    assert len(reference) == len(got), f"{len(reference)} rows against {len(got)}"
    differing = [i for i, (a, b) in enumerate(zip(reference, got, strict=True))
                 if max(a, key=a.__getitem__) != max(b, key=b.__getitem__)]
    gaps = [abs(a.get(k, 0.0) - b.get(k, 0.0)) / step
            for a, b in zip(reference, got, strict=True) for k in a.keys() | b.keys()]
    return differing, max(gaps, default=0.0)


Rows = list[dict[int, float]]


def _classify_rows(done: subprocess.CompletedProcess[str]) -> tuple[list[str], Rows]:
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return ([Path(item["image"]).name for item in report["images"]],
            [{r["index"]: r["score"] for r in item["results"]} for item in report["images"]])


def _classify_args(model: Path) -> list[str]:
    images = [str(shared_file(name)) for name in IMAGES]
    classes = read_model(model).output_tensors[0].shape[-1]
    return ["--model", str(model), "--top-k", str(classes), "--json", *images]


@pytest.fixture(scope="module")
def x86_classify() -> dict[str, tuple[list[str], list[dict[int, float]]]]:
    """The x86 reference: every class's score on each image, per model."""
    runs = {}
    for name in MODELS:
        model = shared_file(name)
        runs[name] = _classify_rows(_host("classify", "--board", "host", *_classify_args(model)))
    return runs


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    done = subprocess.run([sys.executable, "-m", "edge.demo.clip", "--frames", str(CLIP_FRAMES),
                           str(path)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return path


def _run_args(clip: Path, output: Path) -> list[str]:
    from edge.demo import model_path

    classes = read_model(model_path()).output_tensors[0].shape[-1]
    return ["--camera", str(clip), "--top-k", str(classes), "--output", str(output), "-q"]


def _label_rows(path: Path) -> list[dict[int, float]]:
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["frame"] for e in events] == list(range(CLIP_FRAMES))
    return [{r["index"]: r["score"] for r in e["top_k"]} for e in events]


@pytest.fixture(scope="module")
def x86_run(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[int, float]]:
    output = tmp_path_factory.mktemp("x86-run") / "labels.jsonl"
    done = _host("run", "--board", "host", *_run_args(clip, output))
    assert done.returncode == 0, done.stderr[-2000:]
    return _label_rows(output)


@pytest.mark.parametrize("cpu", list(CPUS))
def test_the_venv_is_arm64_on_the_emulated_cpu(arm64: Arm64, cpu: str) -> None:
    probe = ("import json, platform, edge; part = [l.split(':')[1].strip() for l in "
             "open('/proc/cpuinfo') if l.startswith('CPU part')][0]; "
             "print(json.dumps([platform.machine(), part, edge.__file__]))")
    done = arm64.run(cpu, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    machine, part, module = json.loads(done.stdout)
    assert machine == "aarch64"
    assert part == CPUS[cpu][1]
    # The installed wheel, not the sources of this checkout.
    assert Path(module).is_relative_to(site_packages(arm64.venv))


@pytest.mark.parametrize("cpu", list(CPUS))
@pytest.mark.parametrize("model_name", MODELS)
def test_classify_gives_the_x86_labels(
        arm64: Arm64, x86_classify: dict[str, tuple[list[str], list[dict[int, float]]]],
        cpu: str, model_name: str) -> None:
    model = shared_file(model_name)
    names, reference = x86_classify[model_name]
    board = CPUS[cpu][2]
    got_names, got = _classify_rows(arm64.run(cpu, "edge-classify", "--board", board,
                                              *_classify_args(model)))
    assert got_names == names
    if "mobilenet_v2" in model_name:  # the README's expected classes: the reference is right
        assert [max(r, key=r.__getitem__) for r in reference] == [EXPECTED_TOP1[n]
                                                                  for n in names]
    differing, gap = compare_rows(reference, got, output_step(model))
    print(f"{model.name} on {cpu}: largest score gap {gap:.1f} steps")
    assert differing == [], f"top-1 differs from x86 on {[names[i] for i in differing]}"
    assert gap <= MAX_STEPS[model_name], f"a score is {gap:.1f} quantization steps from x86's"


@pytest.mark.parametrize("cpu", list(CPUS))
def test_run_on_a_clip_gives_the_x86_labels(arm64: Arm64, x86_run: list[dict[int, float]],
                                             clip: Path, cpu: str) -> None:
    from edge.demo import model_path

    output = arm64.work / f"labels-{cpu}.jsonl"
    done = arm64.run(cpu, "edge-run", "--board", CPUS[cpu][2], *_run_args(clip, output))
    assert done.returncode == 0, done.stderr[-2000:]
    differing, gap = compare_rows(x86_run, _label_rows(output), output_step(model_path()))
    print(f"demo model on {cpu}: largest score gap {gap:.1f} steps")
    assert differing == [], f"top-1 differs from x86 on frames {differing}"
    assert gap <= MAX_STEPS[DEMO], f"a score is {gap:.1f} quantization steps from x86's"


def test_compare_rows_finds_a_changed_label_and_a_score_gap() -> None:
    step = 1 / 256
    reference = [{1: 200 * step, 2: 50 * step}, {1: 10 * step, 2: 240 * step}]
    assert compare_rows(reference, reference, step) == ([], 0.0)
    near = [{1: 198 * step, 2: 51 * step}, {1: 10 * step, 2: 240 * step}]
    assert compare_rows(reference, near, step) == ([], pytest.approx(2.0))
    swapped = [{1: 200 * step, 2: 50 * step}, {1: 240 * step, 2: 10 * step}]
    assert compare_rows(reference, swapped, step)[0] == [1]
    missing_class = [{1: 200 * step}, {1: 10 * step, 2: 240 * step}]
    assert compare_rows(reference, missing_class, step)[1] == pytest.approx(50.0)
