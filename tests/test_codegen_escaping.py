"""Strings from file names, models and board profiles never inject code into generated files.

Every value reaches a generated file through ``codegen/render.py``; these tests feed it hostile
strings and check the results with real parsers: g++ for C/C++, configparser (what PlatformIO
reads ``platformio.ini`` with) for the project file.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.boards import get_board
from edge.errors import BoardError, ExportError
from firmware_export.codegen.render import c_string, comment_text, fill, ini_value
from firmware_export.export import export_model
from tests.conftest import shared_file
from tests.test_codegen import write_api_stubs

HOSTILE = [
    'quote " and backslash \\',
    "newline\n#error injected\n",
    "comment end */ int injected; /*",
    "trigraph ??/ and ??=",
    "line splice \\",
    "tab\tcr\rnul-free unicode: Détecteur ✓ 🙂",
    "${sysenv.HOME} %(here)s [env:evil]",
]


@given(st.text())
def test_c_string_and_comment_text_hold_no_line_breaks_or_comment_ends(value: str) -> None:
    for text in (c_string(value), comment_text(value)):
        assert "\n" not in text and "\r" not in text and text.isascii()
        assert not text[1:-1].endswith("\\") or text[1:-1].endswith("\\\\")
    assert "*/" not in comment_text(value)


@settings(max_examples=300)
@given(st.text())
def test_ini_values_are_refused_unless_harmless(value: str) -> None:
    try:
        ini_value(value)
    except ExportError:
        return
    assert not any(c in value for c in "\n\r;$%[]\"'") and " #" not in value


def test_fill_refuses_a_hostile_identifier_or_ini_value() -> None:
    with pytest.raises(ExportError, match="array_name"):
        fill("${ident:array_name}", {"array_name": "x; system(0)"})
    with pytest.raises(ExportError, match="pio_board"):
        fill("board = ${ini:pio_board}", {"pio_board": "x\nextra_scripts = pre:evil.py"})


HOST_LABELS = r"""
#include <cstdio>
#include "labels.h"
int main() {
  for (unsigned int i = 0; i < kLabelCount; ++i) std::printf("%s%c", kLabels[i], 0);
  return 0;
}
"""


def test_hostile_labels_compile_and_read_back_exactly(tmp_path: Path) -> None:
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("needs g++ (apt install g++)")
    from firmware_export.codegen.project import labels_cc
    from firmware_export.codegen.render import render

    src = tmp_path / "src"
    src.mkdir()
    (src / "labels.h").write_text(render("labels.h.in"))
    (src / "labels.cc").write_text(labels_cc(tuple(HOSTILE)))
    (src / "main.cc").write_text(HOST_LABELS)
    program = tmp_path / "labels"
    subprocess.run([gxx, "-std=c++17", "-Wall", "-Werror", "-Wno-trigraphs", f"-I{src}",
                    str(src / "labels.cc"), str(src / "main.cc"), "-o", str(program)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(program)], check=True, capture_output=True).stdout
    assert out.split(b"\0")[:-1] == [label.encode() for label in HOSTILE]


def test_hostile_model_file_name_stays_inside_its_comments(tmp_path: Path) -> None:
    """A file name with a newline and C code in it: main.cpp and arena.h still compile, and the
    code appears only inside comments (g++ with #error would fail otherwise)."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("needs g++ (apt install g++)")
    name = "evil\n#error injected \" \\\n.tflite"  # a file name cannot hold "/"
    model = tmp_path / name
    model.write_bytes(shared_file("models/person_detect.tflite").read_bytes())
    result = export_model(model, "nano33ble", tmp_path / "fw", name="g_model")
    include = tmp_path / "include"
    write_api_stubs(include)
    src = result.out / "src"
    for generated in ("main.cpp", "arena.h", "model_data.h", "labels.cc"):
        text = (src / generated).read_text()
        assert "#error" not in "\n".join(line for line in text.splitlines()
                                         if not line.lstrip().startswith("//"))
    subprocess.run([gxx, "-std=gnu++17", "-Wall", "-Werror", "-fsyntax-only", f"-I{src}",
                    f"-I{include}", str(src / "main.cpp")], check=True, capture_output=True,
                   text=True)
    assert "#error" not in (result.out / "link" / "board.ld").read_text().split("*/")[-1]


def hostile_board(tmp_path: Path, **fields: str) -> Path:
    source = get_board("nano33ble", kind="mcu").source.read_text()
    for key, value in fields.items():
        lines = [f"{key} = {toml_string(value)}" if line.startswith(f"{key} =") else line
                 for line in source.splitlines()]
        source = "\n".join(lines) + "\n"
    folder = tmp_path / "boards"
    folder.mkdir(exist_ok=True)
    (folder / "nano33ble.toml").write_text(source)
    return folder


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def test_board_description_with_an_injected_section_stays_a_comment(tmp_path: Path) -> None:
    model = shared_file("models/person_detect.tflite")
    # A line break never gets this far: the board loader refuses control characters.
    boards = hostile_board(tmp_path, description="ok\n[env:evil]\nextra_scripts = pre:evil.py\n")
    with pytest.raises(BoardError, match="description"):
        export_model(model, "nano33ble", tmp_path / "fw", boards_dirs=[boards])
    evil = "ok [env:evil] extra_scripts = pre:evil.py ; %(here)s ${sysenv.HOME} */"
    boards = hostile_board(tmp_path, description=evil)
    result = export_model(model, "nano33ble", tmp_path / "fw", boards_dirs=[boards])
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    ini.read_string((result.out / "platformio.ini").read_text())
    assert ini.sections() == ["env:nano33ble"]
    assert "extra_scripts" not in ini["env:nano33ble"]


@pytest.mark.parametrize("field", ["platformio_board", "platformio_platform",
                                   "platformio_framework"])
def test_board_strings_that_could_change_platformio_ini_are_refused(tmp_path: Path,
                                                                    field: str) -> None:
    boards = hostile_board(tmp_path, **{field: "x\nextra_scripts = pre:evil.py"})
    # The board loader refuses it (BoardError) before the generator would (ExportError).
    with pytest.raises((BoardError, ExportError), match=field.removeprefix("platformio_")):
        export_model(shared_file("models/person_detect.tflite"), "nano33ble",
                     tmp_path / "fw", boards_dirs=[boards])
    assert not (tmp_path / "fw").exists()
