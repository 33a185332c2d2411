"""edge-flash end to end: the real CLI, plans and command building, faked only at the tool boundary.

Programs (picotool, pyocd, bossac, pio) are stand-in executables on PATH that record their argv;
esptool, which edge-flash uses as a Python library, is a stand-in package on PYTHONPATH that
records the argv given to ``esptool.main``. Serial ports are real ptys. The ESP32-S3 merged image
is built by the real esptool.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from edge.boards import get_board, load_boards
from edge.model import read_model
from firmware_export import image as img
from firmware_export.cli.flash import main
from firmware_export.export import export_model
from firmware_export.flash import ports, uf2
from tests.conftest import shared_file

ROOT = Path(__file__).parents[1]
DATA = Path(__file__).parents[1] / ".." / "shared" / "data"
PERSON = DATA / "models" / "person_detect.tflite"
BIG = DATA / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"

# The stand-ins keep a copy of every file they are given: edge-flash removes its private
# temporary folder (and the images in it) once the tools have run.
RECORDER = """#!{python}
import json, os, sys
files = {{a: open(a, "rb").read().hex() for a in sys.argv[1:] if os.path.isfile(a)}}
with open(os.environ["EDGE_TEST_RECORD"], "a") as f:
    f.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), "argv": sys.argv[1:],
                        "files": files}}) + "\\n")
sys.exit(int(os.environ.get("EDGE_TEST_EXIT", "0")))
"""

FAKE_ESPTOOL = """
import json, os
__version__ = "5.6.0"
class FatalError(RuntimeError):
    pass
def main(argv=None):
    files = {a: open(a, "rb").read().hex() for a in argv if os.path.isfile(a)}
    with open(os.environ["EDGE_TEST_RECORD"], "a") as f:
        f.write(json.dumps({"tool": "esptool", "argv": list(argv), "files": files}) + "\\n")
"""


@pytest.fixture
def person() -> Path:
    if not PERSON.is_file():
        pytest.skip(f"shared reference data not found at {PERSON} (see ../shared/data/README.md)")
    return PERSON


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("no person\nperson\n")
    return path


class Bench:
    """A fake workbench: stand-in tools, a record of their calls, a private TMPDIR."""

    def __init__(self, root: Path, tools: tuple[str, ...], fake_esptool: bool = True) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        for tool in tools:
            path = self.bin / tool
            path.write_text(RECORDER.format(python=sys.executable))
            path.chmod(0o755)
        self.pylib = root / "pylib"
        if fake_esptool:
            (self.pylib / "esptool").mkdir(parents=True)
            (self.pylib / "esptool" / "__init__.py").write_text(FAKE_ESPTOOL)
        self.record = root / "record.jsonl"
        self.tmp = root / "tmp"
        self.tmp.mkdir()

    def run(self, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "PATH": f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
                    "PYTHONPATH": f"{self.pylib}{os.pathsep}{ROOT}", "TMPDIR": str(self.tmp),
                    "EDGE_TEST_RECORD": str(self.record), **(env or {})}
        return subprocess.run([sys.executable, "-m", "edge", "flash", *args], env=full_env,
                              capture_output=True, text=True, timeout=120, check=False)

    def calls(self) -> list[dict[str, Any]]:
        """Each tool run: ``tool``, ``argv`` (``files``: what it was given, by path)."""
        if not self.record.exists():
            return []
        calls = [json.loads(line) for line in self.record.read_text().splitlines()]
        return [{"tool": c["tool"], "argv": c["argv"]} for c in calls]

    def file_given(self, index: int, path: str) -> bytes:
        """The bytes of ``path`` as the ``index``-th tool run saw it."""
        call = json.loads(self.record.read_text().splitlines()[index])
        return bytes.fromhex(call["files"][path])

    def leftovers(self) -> list[str]:
        """What edge-flash left in its TMPDIR (nothing, once it has finished)."""
        return sorted(p.name for p in self.tmp.iterdir())


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return Bench(tmp_path / "bench", ("picotool", "pyocd", "bossac", "pio"))


@pytest.fixture
def pty_port() -> Iterator[str]:
    """A real tty nobody holds: the slave side of a pty whose master we keep open."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    yield name
    os.close(master)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge-flash: error: ")
    return lines[0]


# --- model-only updates ---------------------------------------------------------------------------


def test_dry_run_prints_every_command_and_address(bench: Bench, person: Path, labels: Path,
                                                  pty_port: str) -> None:
    result = bench.run(str(person), "--board", "esp32s3", "--port", pty_port, "--labels",
                       str(labels), "--arena-size", "85264", "--dry-run")
    assert result.returncode == 0, result.stderr
    image = bench.tmp / ".edge-flash.edge-tmp-PID-XXXXXXXX" / "model-esp32s3.img"
    assert f"write {image}  (model image, 300,649 of 2,097,152 slot bytes at 0x400000)" \
        in result.stdout
    assert "step 1: write the model image into the model slot at 0x00400000" in result.stdout
    assert (f"  $ esptool --chip esp32s3 --port {pty_port} --baud 921600 write-flash 0x400000 "
            f"{image}") in result.stdout
    assert bench.calls() == [] and not image.exists()  # nothing written, nothing run


def test_dry_run_json(bench: Bench, person: Path, pty_port: str) -> None:
    result = bench.run(str(person), "--board", "pico", "--arena-size", "0x14d10", "--dry-run",
                       "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["board"], doc["image_size"], doc["arena_size"], doc["flashed"]) == \
        ("pico", 300632, 85264, False)
    (step,) = doc["steps"]
    assert step["tool"] == "picotool" and step["address"] == "0x10100000"
    assert step["args"][:3] == ["load", "-f", "-v"] and step["args"][3].endswith("model-pico.uf2")
    assert [f["path"].rsplit("/", 1)[1] for f in doc["files"]] == ["model-pico.img",
                                                                    "model-pico.uf2"]


def test_esp32s3_model_update_calls_esptool_with_the_slot(bench: Bench, person: Path,
                                                          labels: Path, pty_port: str) -> None:
    result = bench.run(str(person), "--board", "esp32s3", "--port", pty_port, "--labels",
                       str(labels), "--arena-size", "85264")
    assert result.returncode == 0, result.stderr
    (call,) = bench.calls()
    argv = call["argv"]
    assert call["tool"] == "esptool"
    assert argv[:8] == ["--chip", "esp32s3", "--port", pty_port, "--baud", "921600",
                        "write-flash", "0x400000"]
    parsed = img.parse_image(bench.file_given(0, argv[8]), "esp32s3")
    assert parsed.model == person.read_bytes()
    assert parsed.labels == ("no person", "person") and parsed.header.arena_size == 85264
    assert Path(argv[8]).parent.name.startswith(".edge-flash.edge-tmp-")  # private mkdtemp
    assert bench.leftovers() == []  # and removed once flashed


def test_pico_model_update_with_picotool_loads_a_checked_uf2(bench: Bench, person: Path) -> None:
    result = bench.run(str(person), "--board", "pico", "--arena-size", "85264")
    assert result.returncode == 0, result.stderr
    (call,) = bench.calls()
    assert call["tool"] == "picotool" and call["argv"][:3] == ["load", "-f", "-v"]
    blob = bench.file_given(0, call["argv"][3])
    assert {b.family_id for b in uf2.parse_blocks(blob)} == {0xE48BFF56}
    ((address, data),) = uf2.from_uf2(blob, 0xE48BFF56)
    assert address == 0x10100000
    assert img.parse_image(data, "pico").model == person.read_bytes()


def test_pico_model_update_by_copy_to_the_boot_drive(bench: Bench, person: Path,
                                                     tmp_path: Path) -> None:
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\n")
    result = bench.run(str(person), "--board", "pico", "--port", str(drive),
                       "--arena-size", "85264")
    assert result.returncode == 0, result.stderr
    assert bench.calls() == []
    ((address, data),) = uf2.from_uf2((drive / "model-pico.uf2").read_bytes(), 0xE48BFF56)
    assert address == 0x10100000 and img.parse_image(data, "pico").header.arena_size == 85264


def test_stm32_model_update_with_pyocd(bench: Bench, person: Path) -> None:
    result = bench.run(str(person), "--board", "stm32h743", "--arena-size", "85264")
    assert result.returncode == 0, result.stderr
    (call,) = bench.calls()
    assert call["tool"] == "pyocd"
    assert call["argv"][:5] == ["flash", "--target", "stm32h743xx", "--base-address", "0x8100000"]
    assert img.parse_image(bench.file_given(0, call["argv"][5]), "stm32h743")


def test_nano33ble_model_update_touches_the_port_then_runs_bossac(bench: Bench, person: Path,
                                                                  pty_port: str) -> None:
    result = bench.run(str(person), "--board", "nano33ble", "--port", pty_port,
                       "--arena-size", "85264", "-v")
    assert result.returncode == 0, result.stderr
    assert "touched" in result.stderr and "1200 baud" in result.stderr
    (call,) = bench.calls()
    assert call["tool"] == "bossac"
    assert call["argv"][:7] == [f"--port={pty_port}", "-U", "-i", "--offset=0xa8000", "-w", "-v",
                                "-R"]
    assert "-e" not in call["argv"]  # erasing everything would wipe the firmware


def test_output_writes_the_uf2_without_flashing(bench: Bench, person: Path,
                                                tmp_path: Path) -> None:
    out = tmp_path / "out" / "model.uf2"
    result = bench.run(str(person), "--board", "pico", "--arena-size", "85264", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert bench.calls() == [] and f"wrote {out}" in result.stdout
    assert [p.name for p in out.parent.iterdir()] == ["model.uf2"]  # no temp file left behind
    ((address, data),) = uf2.from_uf2(out.read_bytes(), 0xE48BFF56)
    assert address == 0x10100000 and img.parse_image(data, "pico").model == person.read_bytes()


# --- firmware ---------------------------------------------------------------------------------


def _esp_build(folder: Path) -> dict[str, bytes]:
    build = folder / ".pio" / "build" / "esp32s3"
    build.mkdir(parents=True)
    parts = {"bootloader.bin": os.urandom(15000), "partitions.bin": os.urandom(3072),
             "boot_app0.bin": os.urandom(8192), "firmware.bin": os.urandom(300000)}
    for name, data in parts.items():
        (build / name).write_bytes(data)
    return parts


def test_esp32s3_firmware_flash_writes_every_part_at_its_offset(bench: Bench, tmp_path: Path,
                                                                pty_port: str) -> None:
    _esp_build(tmp_path / "proj")
    result = bench.run("--firmware", str(tmp_path / "proj"), "--board", "esp32s3", "--port",
                       pty_port)
    assert result.returncode == 0, result.stderr
    (call,) = bench.calls()
    argv = call["argv"]
    assert argv[:7] == ["--chip", "esp32s3", "--port", pty_port, "--baud", "921600",
                        "write-flash"]
    pairs = [(argv[i], Path(argv[i + 1]).name) for i in range(7, len(argv), 2)]
    assert pairs == [("0x0", "bootloader.bin"), ("0x8000", "partitions.bin"),
                     ("0xe000", "boot_app0.bin"), ("0x10000", "firmware.bin")]


def test_platformio_project_uploads_with_pio_when_installed(bench: Bench, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "platformio.ini").write_text("[env:pico]\nboard = pico\n")
    result = bench.run("--firmware", str(project), "--board", "pico")
    assert result.returncode == 0, result.stderr
    assert bench.calls() == [{"tool": "pio", "argv": ["run", "-d", str(project), "-t", "upload"]}]


def test_esp32s3_merge_bin_puts_the_model_image_at_the_slot(tmp_path: Path, person: Path) -> None:
    """Real esptool, offline: a full flash image with firmware and model at their offsets."""
    if importlib.util.find_spec("esptool") is None:
        pytest.skip("esptool is not installed (pip install esptool, the flash extra)")
    bench = Bench(tmp_path / "bench", (), fake_esptool=False)
    parts = _esp_build(tmp_path / "proj")
    out = tmp_path / "full.bin"
    result = bench.run(str(person), "--firmware", str(tmp_path / "proj"), "--board", "esp32s3",
                       "--arena-size", "85264", "-o", str(out))
    assert result.returncode == 0, result.stderr
    full = out.read_bytes()
    slot = get_board("esp32s3", kind="mcu").mcu.model_slot  # type: ignore[union-attr]
    assert slot is not None and slot.address == 0x400000
    parsed = img.parse_image(full[slot.address:], "esp32s3")
    assert parsed.model == person.read_bytes() and parsed.header.arena_size == 85264
    assert len(full) == slot.address + img.HEADER_SIZE + parsed.header.payload_length
    for offset, name in [(0x0, "bootloader.bin"), (0x8000, "partitions.bin"),
                         (0xE000, "boot_app0.bin"), (0x10000, "firmware.bin")]:
        assert full[offset:offset + len(parts[name])] == parts[name], name
    gap = full[0x10000 + len(parts["firmware.bin"]):slot.address]
    assert gap == b"\xff" * len(gap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "full.bin", "proj"]
    assert f"wrote {out}" in result.stdout and "flashed" not in result.stdout


def test_merge_dry_run_shows_every_part_and_offset(bench: Bench, tmp_path: Path,
                                                   person: Path) -> None:
    _esp_build(tmp_path / "proj")
    out = tmp_path / "full.bin"
    result = bench.run(str(person), "--firmware", str(tmp_path / "proj"), "--board", "esp32s3",
                       "--arena-size", "85264", "-o", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    merge = next(line for line in result.stdout.splitlines() if "merge-bin" in line)
    build = tmp_path / "proj" / ".pio" / "build" / "esp32s3"
    image = bench.tmp / ".edge-flash.edge-tmp-PID-XXXXXXXX" / "model-esp32s3.img"
    partial = re.search(r"merge-bin -o (\S+) ", merge)
    assert partial is not None
    assert re.fullmatch(rf"{tmp_path}/\.full\.bin\.edge-tmp-\d+-[0-9a-f]+", partial.group(1))
    assert merge == (f"  $ esptool --chip esp32s3 merge-bin -o {partial.group(1)} "
                     f"0x0 {build}/bootloader.bin 0x8000 {build}/partitions.bin "
                     f"0xe000 {build}/boot_app0.bin 0x10000 {build}/firmware.bin "
                     f"0x400000 {image}")
    assert f"  $ mv {partial.group(1)} {out}" in result.stdout
    assert not out.exists() and bench.calls() == []


def test_arena_size_defaults_to_edge_exports_prediction(person: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    plan = pytest.importorskip("firmware_export.plan")
    from edge.model import read_model

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert main([str(person), "--board", "pico", "--dry-run", "--json"]) == 0
    mcu = get_board("pico", kind="mcu").mcu
    assert mcu is not None
    expected = plan.plan_arena(read_model(person), pointer_size=mcu.pointer_size,
                               kernels=mcu.kernels).size
    assert json.loads(capsys.readouterr().out)["arena_size"] == expected > 0


# --- errors: one line, exit 2 -----------------------------------------------------------------


def test_image_larger_than_the_slot(bench: Bench, pty_port: str) -> None:
    if not BIG.is_file():
        pytest.skip(f"shared reference data not found at {BIG}")
    line = one_error_line(bench.run(str(BIG), "--board", "nano33ble", "--port", pty_port))
    assert line == ("edge-flash: error: model image is 4,091,924 bytes, larger than nano33ble's "
                    "model slot (360,448 bytes at 0xa8000) by 3,731,476 bytes; use a smaller "
                    "model")
    assert bench.calls() == []


def test_unknown_board(bench: Bench, person: Path) -> None:
    line = one_error_line(bench.run(str(person), "--board", "esp32", "--arena-size", "85264"))
    assert "unknown board 'esp32'; did you mean esp32s3" in line


def test_no_port(bench: Bench, person: Path) -> None:
    line = one_error_line(bench.run(str(person), "--board", "esp32s3", "--arena-size", "85264"))
    assert "no port: esp32s3 is flashed with esptool over a serial port; pass --port" in line


def test_port_that_does_not_exist(bench: Bench, person: Path) -> None:
    line = one_error_line(bench.run(str(person), "--board", "esp32s3", "--port",
                                    "/dev/ttyEDGE404", "--arena-size", "85264"))
    assert "port /dev/ttyEDGE404 does not exist" in line
    assert bench.calls() == []


def test_port_busy_held_open_by_another_process(bench: Bench, person: Path,
                                                pty_port: str) -> None:
    with serial.Serial(pty_port):
        line = one_error_line(bench.run(str(person), "--board", "esp32s3", "--port", pty_port,
                                        "--arena-size", "85264"))
    assert f"port {pty_port} is busy: open in process {os.getpid()}" in line
    assert bench.calls() == []


def test_port_busy_locked_exclusively(person: Path, pty_port: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: our own process's fds are not "another process", so the lock decides."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with serial.Serial(pty_port, exclusive=True):
        code = main([str(person), "--board", "esp32s3", "--port", pty_port,
                     "--arena-size", "85264"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"edge-flash: error: port {pty_port} is busy: another program")


def test_missing_program_says_what_to_install(tmp_path: Path, person: Path) -> None:
    bench = Bench(tmp_path / "bench", ())
    line = one_error_line(bench.run(str(person), "--board", "stm32h743", "--arena-size", "85264"))
    assert line == "edge-flash: error: pyocd not found on PATH; pip install pyocd"


def test_missing_esptool_package_says_what_to_install(tmp_path: Path, person: Path,
                                                      pty_port: str) -> None:
    bench = Bench(tmp_path / "bench", (), fake_esptool=False)
    (bench.pylib / "esptool").mkdir(parents=True)
    (bench.pylib / "esptool" / "__init__.py").write_text("raise ImportError('not here')\n")
    line = one_error_line(bench.run(str(person), "--board", "esp32s3", "--port", pty_port,
                                    "--arena-size", "85264"))
    assert line.startswith("edge-flash: error: esptool is not installed; pip install esptool")


def test_failing_tool(bench: Bench, person: Path) -> None:
    line = one_error_line(bench.run(str(person), "--board", "pico", "--arena-size", "85264",
                                    env={"EDGE_TEST_EXIT": "3"}))
    assert line.startswith("edge-flash: error: picotool failed with exit code 3")
    assert bench.leftovers() == []  # the private image folder goes on failure too


def test_teensy_refuses_model_only_updates(bench: Bench, person: Path) -> None:
    line = one_error_line(bench.run(str(person), "--board", "teensy41", "--arena-size", "85264"))
    assert "HalfKay bootloader erases the whole flash" in line


@pytest.mark.parametrize("args, message", [
    (["--board", "pico"], "nothing to flash"),
    (["MODEL", "--board", "pico", "--arena-size", "0"], "--arena-size (=0) must be in"),
    (["missing.tflite", "--board", "pico", "--arena-size", "85264"], "no such model file"),
    (["NOTMODEL", "--board", "pico", "--arena-size", "85264"], "not a TFLite model"),
    (["MODEL"], "--board is required"),
])
def test_bad_requests(args: list[str], message: str, person: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    not_model = tmp_path / "labels.tflite"
    not_model.write_text("cat\ndog\n")
    argv = [str(person) if a == "MODEL" else str(not_model) if a == "NOTMODEL" else a
            for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


# --- what edge-flash writes is validated as edge-export validates it --------------------------


def test_random_bytes_with_the_tflite_identifier_are_refused(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    fake = tmp_path / "fake.tflite"
    data = bytearray(random.Random(11).randbytes(1000))
    data[4:8] = b"TFL3"
    fake.write_bytes(bytes(data))
    out = tmp_path / "fake.img"
    assert main([str(fake), "--board", "pico", "--arena-size", "1000", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edge-flash: error: {fake}")
    assert list(tmp_path.iterdir()) == [fake]  # no image, no temporary


@pytest.mark.parametrize("model, reason", [
    ("mobilenet_v1_0.25_128_quant_edgetpu.tflite", "Edge TPU"),
    ("mobilenet_v2_1.0_224_quant.tflite", "uint8"),
    ("model_invoking_error.tflite", "fake-op-double"),
])
def test_models_edge_export_refuses_are_refused(model: str, reason: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_file(f"models/{model}")
    assert main([str(path), "--board", "esp32s3", "-o", str(tmp_path / "m.img")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and reason in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def exported(person: Path, tmp_path: Path) -> Path:
    """person_detect exported for nano33ble with the slot (kTensorArenaSize 82,576)."""
    out = tmp_path / "fw"
    export_model(person, "nano33ble", out, model_slot=True)
    return out


def test_arena_larger_than_the_firmwares_is_refused(exported: Path, person: Path,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The docs' old --arena-size 85264 against firmware whose kTensorArenaSize is 82,576."""
    out = tmp_path / "m.img"
    assert main([str(person), "--board", "nano33ble", "--firmware", str(exported),
                 "--arena-size", "85264", "-o", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "needs a tensor arena of 85,264 B but the firmware in" in line
    assert "kTensorArenaSize 82,576 B" in line and "re-export the firmware" in line
    assert not out.exists()


def test_arena_comes_from_the_exported_project(exported: Path, person: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Without --arena-size: the planner's size, checked against the project's; the image
    equals the slot image edge-export wrote beside the firmware."""
    out = tmp_path / "m.img"
    assert main([str(person), "--board", "nano33ble", "--firmware", str(exported), "-o",
                 str(out)]) == 0
    capsys.readouterr()
    header = img.unpack_header(out.read_bytes())
    assert header.arena_size == 82_576  # arm-eabi prediction 82,320 + 256 margin
    assert out.read_bytes() == (exported / "model_slot.img").read_bytes()


def test_projects_without_a_manifest_are_read_from_arena_h(exported: Path, person: Path,
                                                           tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    (exported / "edge-export.json").unlink()
    arena_h = exported / "src" / "arena.h"
    arena_h.write_text(arena_h.read_text().replace("= 82576;", "= 80000;"))
    assert main([str(person), "--board", "nano33ble", "--firmware", str(exported), "-o",
                 str(tmp_path / "m.img")]) == 2
    assert "kTensorArenaSize 80,000 B" in capsys.readouterr().err


def test_project_for_another_board_is_refused(exported: Path, person: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(person), "--board", "pico", "--firmware", str(exported), "-o",
                 str(tmp_path / "m.img")]) == 2
    assert "was exported for nano33ble, not pico" in capsys.readouterr().err


def test_slot_image_for_firmware_without_a_slot_is_refused(person: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """Exported without --model-slot, the firmware's model links into the slot's flash."""
    project = tmp_path / "fw"
    export_model(person, "nano33ble", project)
    out = tmp_path / "m.img"
    assert main([str(person), "--board", "nano33ble", "--firmware", str(project), "-o",
                 str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"the firmware in {project} was exported without --model-slot" in line
    assert "re-export it with --model-slot" in line
    assert not out.exists()


def test_without_firmware_says_once_it_must_be_built_with_a_slot(bench: Bench, person: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "m.img"
    result = bench.run(str(person), "--board", "nano33ble", "-o", str(out))
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "firmware on nano33ble must be exported with edge-export --model-slot" in line
    assert img.parse_image(out.read_bytes(), "nano33ble").model == person.read_bytes()


def test_arena_beyond_the_boards_ram_is_refused(person: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(person), "--board", "nano33ble", "--arena-size", "300000", "-o",
                 str(tmp_path / "m.img")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "the tensor arena needs 300,000 B but nano33ble has 217,088 B" in line


# --- ports ------------------------------------------------------------------------------------


def test_match_boards_by_usb_id() -> None:
    boards = load_boards()
    assert ports.match_boards(0x2E8A, 0x000A, boards) == ("pico",)
    assert ports.match_boards(0x303A, 0x1001, boards) == ("esp32s3",)
    assert ports.match_boards(0x0483, 0x374B, boards) == ("stm32f746-disco", "stm32h743")
    assert ports.match_boards(0x1234, 0x5678, boards) == ()
    assert ports.match_boards(None, None, boards) == ()


def test_list_ports_suggests_board_and_port(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from serial.tools.list_ports_common import ListPortInfo

    pico = ListPortInfo("/dev/ttyACM0")
    pico.vid, pico.pid, pico.description = 0x2E8A, 0x000A, "Board CDC"
    plain = ListPortInfo("/dev/ttyS0")
    monkeypatch.setattr(ports, "_comports", lambda: [plain, pico])
    assert main(["--list-ports"]) == 0
    header, *out = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["port", "usb", "id"]
    assert out[0].startswith("/dev/ttyACM0  2E8A:000A  Board CDC")
    assert out[0].endswith("-> edge-flash --board pico --port /dev/ttyACM0")
    assert out[1].split()[:2] == ["/dev/ttyS0", "-"]
    assert main(["--list-ports", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc[0] == {"device": "/dev/ttyACM0", "usb_id": "2E8A:000A",
                      "description": "Board CDC", "boards": ["pico"]}


def test_list_ports_on_this_machine(bench: Bench) -> None:
    result = bench.run("--list-ports", "--json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_cli_module_is_thin_and_prints_nothing_on_import() -> None:
    source = (ROOT / "firmware_export" / "cli" / "flash.py").read_text()
    assert "import esptool" not in source and "subprocess" not in source
    code = textwrap.dedent("""
        import sys, firmware_export.cli.flash, firmware_export.flash.tools
        assert "esptool" not in sys.modules and "serial" not in sys.modules, sorted(sys.modules)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ,
                                                                 "PYTHONPATH": str(ROOT)})


def test_edge_flash_plans_the_model_as_edge_export_does() -> None:
    """One function decides the model the firmware gets and its arena, for both commands: a
    model that edge-export rewrites with an offline plan goes into the image rewritten too, so
    its header arena matches the exported kTensorArenaSize."""
    from firmware_export.flash import request
    from firmware_export.plan.fit import plan_for_board

    assert request.plan_for_board is plan_for_board
    model = read_model(shared_file("models/mobilenet_v1_0.25_128_quant.tflite"))
    written, offline, arena = plan_for_board(model, get_board("stm32h743", kind="mcu"))
    assert offline is not None and arena.plan.head == 96 * 1024 < offline.greedy_head
    assert written.content != model.content


# --- the firmware's boot checks stay meaningful (issue 25 point 5) ----------------------------


def test_arena_below_the_plan_is_refused(person: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """An image claiming 1,000 B for a model that needs 82,576 would pass the firmware's
    ARENA_TOO_SMALL check: refused before anything is written."""
    out = tmp_path / "m.img"
    assert main([str(person), "--board", "nano33ble", "--arena-size", "1000", "-o",
                 str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--arena-size 1,000 is below the 82,576 B" in line and "on nano33ble" in line
    assert "omit --arena-size or give at least 82,576" in line
    assert not out.exists()
    # The plan itself and anything above it are accepted.
    for arena in ("82576", "90000"):
        assert main([str(person), "--board", "nano33ble", "--arena-size", arena, "-o",
                     str(out)]) == 0
        assert img.unpack_header(out.read_bytes()).arena_size == int(arena)
    capsys.readouterr()


def _edit_manifest(project: Path, **changes: Any) -> None:
    path = project / "edge-export.json"
    doc = json.loads(path.read_text())
    for key, value in changes.items():
        doc[key] = value
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(("changes", "words"), [
    ({"board_id": 0x12345678}, ["board_id 0x12345678 is not nano33ble's", "re-export"]),
    ({"slot": {"address": 0xA8000 + 4096, "length": 360_448 - 4096}},
     ["slot 356,352 B at 0xa9000 differs from the nano33ble profile's 360,448 B at 0xa8000"]),
    ({"slot": {"address": 0xA8000, "length": 720_896}}, ["slot 720,896 B at 0xa8000 differs"]),
    ({"slot": None}, ["slot none differs"]),
    ({"slot": {"address": "0xa8000"}}, ["malformed slot"]),
    ({"format": 2}, ["manifest format 2", "reads format 1"]),
    ({"board_id": -1}, ["malformed tensor_arena_size, board, board_id or model_slot"]),
])
def test_manifest_that_disagrees_with_the_profile_is_refused(
        exported: Path, person: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        changes: dict[str, Any], words: list[str]) -> None:
    _edit_manifest(exported, **changes)
    out = tmp_path / "m.img"
    assert main([str(person), "--board", "nano33ble", "--firmware", str(exported), "-o",
                 str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert all(word in line for word in words), line
    assert "edge-export.json" in line
    assert not out.exists()


def test_export_writes_the_manifest_format_flash_reads(exported: Path) -> None:
    from firmware_export.flash.exported import MANIFEST_FORMAT, read_project

    doc = json.loads((exported / "edge-export.json").read_text())
    assert doc["format"] == MANIFEST_FORMAT
    project = read_project(exported)
    assert project is not None and project.slot == (0xA8000, 360_448)
    assert project.board_id == img.board_id("nano33ble")


@pytest.mark.parametrize("kind", ["folder", "under a file"])
def test_output_naming_a_folder_is_a_user_error(person: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                kind: str) -> None:
    target = tmp_path / "images"
    if kind == "folder":
        target.mkdir()
        out = target
    else:
        target.write_text("not a folder")
        out = target / "m.img"
    assert main([str(person), "--board", "pico", "-o", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "internal error" not in line and "bug" not in line
    assert ("is a folder; name the image file in it" in line if kind == "folder"
            else f"{target} is a file, not a folder" in line)


# --- --fallback none: the demo model updated in place on nano33ble (issue 24 point 4) ---------

DEMO_MODEL = ROOT / "edge" / "demo" / "demo_model.tflite"


def test_image_too_big_for_the_fallback_layout_names_fallback_none(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.img"
    assert main([str(DEMO_MODEL), "--board", "nano33ble", "-o", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "larger than nano33ble's model slot (360,448 bytes at 0xa8000)" in line
    assert "--model-slot --fallback none (its slot holds 720,896 bytes)" in line
    assert main([str(DEMO_MODEL), "--board", "nano33ble", "--fallback", "none", "-o",
                 str(out)]) == 0
    image = img.parse_image(out.read_bytes(), "nano33ble")
    assert image.model == DEMO_MODEL.read_bytes()


def test_the_layout_comes_from_the_project_and_must_agree(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "fw"
    export_model(DEMO_MODEL, "nano33ble", project, model_slot=True, fallback=False)
    out = tmp_path / "demo.img"
    assert main([str(DEMO_MODEL), "--board", "nano33ble", "--firmware", str(project), "-o",
                 str(out)]) == 0
    assert out.read_bytes() == (project / "model_slot.img").read_bytes()
    capsys.readouterr()
    assert main([str(DEMO_MODEL), "--board", "nano33ble", "--firmware", str(project),
                 "--fallback", "embedded", "-o", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "was exported with --fallback none, not embedded" in line
    # A manifest whose slot is the other layout's is refused.
    _edit_manifest(project, slot={"address": 0xA8000, "length": 360_448})
    assert main([str(DEMO_MODEL), "--board", "nano33ble", "--firmware", str(project), "-o",
                 str(out)]) == 2
    assert "differs from the nano33ble profile's 720,896 B at 0x50000" in (
        capsys.readouterr().err)


def test_dry_run_writes_the_image_at_the_whole_slot(bench: Bench) -> None:
    result = bench.run(str(DEMO_MODEL), "--board", "nano33ble", "--fallback", "none",
                       "--port", "/dev/null", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    (step,) = doc["steps"]
    assert step["address"] == "0x00050000" and "--offset=0x50000" in step["args"]
    assert "--model-slot --fallback none" in result.stderr
