"""What every command shares: --version, examples at the end of --help, help on every option,
quiet third-party libraries unless -v, aligned tables and --json wherever it is accepted."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import DISTRIBUTION, distribution_version
from edge.__main__ import COMMANDS
from edge.demo import model_path
from edge.nativelog import split_banners
from tests.conftest import ROOT, shared_file

BIN = Path(sys.executable).parent


def command_parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[command])
    build = getattr(module, "build_parser", None) or module._parser
    parser: argparse.ArgumentParser = build()
    return parser


def _with_subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _with_subparsers(sub)


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    for name in ("TF_CPP_MIN_LOG_LEVEL", "OPENCV_LOG_LEVEL"):
        full_env.pop(name, None)
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=300, check=False)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_ends_with_examples_and_every_option_is_explained(command: str) -> None:
    for parser in _with_subparsers(command_parser(command)):
        help_text = parser.format_help()
        tail = help_text.rstrip().split("\n\n")[-1]
        assert tail.startswith("examples:"), (parser.prog, tail)
        examples = tail.splitlines()[1:]
        assert examples and all(line.strip().startswith("edge-") for line in examples)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (parser.prog,
                                                                      action.option_strings
                                                                      or action.dest)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_version_names_the_distribution(command: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(COMMANDS[command])
    with pytest.raises(SystemExit) as info:
        module.main(["--version"])
    assert info.value.code == 0
    prog = f"edge-{command}"
    assert capsys.readouterr().out == f"{prog} {distribution_version()} ({DISTRIBUTION})\n"


def test_console_scripts_report_the_installed_version() -> None:
    from importlib.metadata import version

    result = _run("edge-listen", "--version")
    assert result.returncode == 0
    assert result.stdout == f"edge-listen {version(DISTRIBUTION)} ({DISTRIBUTION})\n"


def test_classify_is_quiet_by_default_and_shows_the_native_banner_with_v() -> None:
    image = str(shared_file("images/parrot.jpg"))
    quiet = _run("edge-classify", "--model", str(model_path()), image)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = _run("edge-classify", "-v", "--model", str(model_path()), image)
    assert loud.returncode == 0
    assert "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in loud.stderr


def test_missing_camera_prints_no_opencv_warnings() -> None:
    quiet = _run("edge-run", "--camera", "9", "--max-frames", "1")
    assert quiet.returncode == 2
    assert quiet.stderr.startswith("edge-run: error: cannot open camera 9")
    assert len(quiet.stderr.strip().splitlines()) == 1, quiet.stderr
    loud = _run("edge-run", "-v", "--camera", "9", "--max-frames", "1")
    assert "[ WARN" in loud.stderr  # the same warnings are there with -v: we hid them above


def test_tensorflow_banners_are_hidden_unless_verbose() -> None:
    pytest.importorskip("tensorflow", reason="needs the build extra (make test installs it)")
    code = ("import sys; from edge.cli.common import configure_logging; "
            "configure_logging(int(sys.argv[1]), 0); "
            "from edge.modelbuild.build import import_tensorflow; import_tensorflow()")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "OPENCV_LOG_LEVEL")}
    quiet = subprocess.run([sys.executable, "-c", code, "0"], capture_output=True, text=True,
                           env=env, timeout=300, check=True)
    assert "oneDNN" not in quiet.stderr and "cpu_feature_guard" not in quiet.stderr
    assert "absl::InitializeLog" not in quiet.stderr, quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code, "1"], capture_output=True, text=True,
                          env=env, timeout=300, check=True)
    # What -v shows is what the quiet run hid; which banners TensorFlow prints depends on the
    # CPU (oneDNN's only where its custom operations are on, the feature guard where the
    # binary lacks the CPU's instructions).
    assert "oneDNN" in loud.stderr or "cpu_feature_guard" in loud.stderr, loud.stderr


def test_banner_filter_keeps_warnings_and_errors() -> None:
    text = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
            "I0000 00:00:1796060388.894947   15767 port.cc:153] oneDNN custom operations are on.\n"
            "W0000 00:00:1.2   15767 tf.cc:1] a real warning\n"
            "ERROR: Didn't find op for builtin opcode 'FOO'\n"
            "WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\n")
    banners, kept = split_banners(text)
    assert len(banners) == 3
    assert kept == ("W0000 00:00:1.2   15767 tf.cc:1] a real warning\n"
                    "ERROR: Didn't find op for builtin opcode 'FOO'\n")


def test_run_list_boards_honours_json_and_aligns() -> None:
    table = _run("edge-run", "--list-boards")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:5] == ["board", "cores", "threads", "camera", "delegate"]
    for column in ("cores", "threads"):
        end = header.index(column) + len(column)
        assert all(row[end - 1] != " " and row[end] == " " for row in rows), column
    listed = _run("edge-run", "--list-boards", "--json")
    assert listed.returncode == 0
    boards = json.loads(listed.stdout)
    assert [b["name"] for b in boards] == [row.split()[0] for row in rows]
    assert {"rpi4", "host", "rpi5-coral-usb"} <= {b["name"] for b in boards}
    assert all(b["camera"] and b["delegate"] for b in boards)


def test_flash_list_ports_has_headers_and_aligned_columns(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from firmware_export.cli import flash as flash_cli
    from firmware_export.flash import ports

    found = [ports.DetectedPort("/dev/ttyACM0", 0x2341, 0x805A, "Arduino Nano 33 BLE",
                                ("nano33ble",)),
             ports.DetectedPort("/dev/serial/by-id/usb-x", None, None, "n/a", ())]
    monkeypatch.setattr(ports, "list_ports", lambda boards: found)
    assert flash_cli.main(["--list-ports"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["port", "usb", "id"]
    column = header.index("usb id")
    assert [row[column:column + 9].strip() for row in rows] == ["2341:805A", "-"]
    assert "edge-flash --board nano33ble --port /dev/ttyACM0" in rows[0]


def test_generated_project_names_edge_listen_as_it_parses() -> None:
    golden = ROOT / "tests" / "golden" / "export" / "person_detect_nano33ble" / "platformio.ini"
    hint = golden.read_text().split("Labels: ", 1)[1].splitlines()[0].strip()
    words = hint.replace("PORT", "/dev/ttyACM0").split()
    assert words[0] == "edge-listen"
    args = command_parser("listen").parse_args(words[1:])
    assert args.port == "/dev/ttyACM0"
