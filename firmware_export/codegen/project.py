"""The firmware project: one dispatch table from output path to a pure text generator.

Generators read only :class:`FirmwareValues`: plain numbers, strings and bytes that
``export.py`` takes from the model, the board profile and the arena plan. Every string among
them reaches a file through :mod:`firmware_export.codegen.render`, which escapes or refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.boards import BoardProfile
from firmware_export.codegen.arena_h import ArenaValues, arena_cc, arena_h
from firmware_export.codegen.detector import CENTROIDS_HEADER, CentroidValues
from firmware_export.codegen.libraries import PinnedLibrary
from firmware_export.codegen.linker import linker_script
from firmware_export.codegen.main_cpp import main_cpp
from firmware_export.codegen.model_data import model_data_cc, model_data_h
from firmware_export.codegen.render import Code, c_string, ini_value, render
from firmware_export.codegen.resolver import op_resolver_h
from firmware_export.image import board_id

LABELS_HEADER = "edge_labels.h"
IMAGE_HEADER = "edge_model_image.h"
CRC_HEADER = "edge_crc32.h"  # included by both headers above
SUPPORT_HEADERS = (LABELS_HEADER, IMAGE_HEADER, CRC_HEADER, CENTROIDS_HEADER)
TFLM_LIB = "lib/tflm"


@dataclass(frozen=True)
class BoardValues:
    """What the generators use of a board profile."""

    name: str
    description: str
    platform: str
    pio_board: str
    framework: str
    progmem: bool
    board_id: int
    slot: tuple[int, int] | None  # (address, length); None: built without --model-slot
    model_region: tuple[int, int]  # (address, size) where model_data.cc links
    app: tuple[int, int]  # firmware + model parts: (address, size), the ESP32 app partition
    esp_partitions: bool  # write partitions.csv (boards flashed with esptool)
    linker_script: str  # link/board.ld, from the flash map


def board_values(board: BoardProfile, model_slot: bool, fallback: bool = True) -> BoardValues:
    """The plain values of an MCU profile (``board.mcu`` must be set) for firmware built with
    (``model_slot``) or without ``--model-slot``, with or without an embedded ``fallback``
    model: the flash map's layout for that build."""
    spec = board.mcu
    assert spec is not None
    firmware, model = spec.flash_part("firmware"), spec.model_region(model_slot, fallback)
    assert firmware is not None
    slot = spec.slot_region(model_slot, fallback)
    return BoardValues(
        name=board.name, description=board.description, platform=spec.platformio_platform,
        pio_board=spec.platformio_board, framework=spec.platformio_framework,
        progmem=spec.progmem, board_id=board_id(board.name),
        slot=None if slot is None else (slot.address, slot.length),
        model_region=(model.address, model.size),
        app=(firmware.address, model.end - firmware.address),
        esp_partitions=spec.flash_tool == "esptool",
        linker_script=linker_script(spec, board.name, model_slot, fallback))


@dataclass(frozen=True)
class FirmwareValues:
    """Everything the generators need; they read nothing else."""

    array_name: str  # C identifier of the model array
    model_file: str
    content: bytes
    opcodes: tuple[str, ...]
    input_shape: tuple[int, ...]
    input_dtype: str
    labels: tuple[str, ...]
    arena: ArenaValues
    board: BoardValues
    library: PinnedLibrary | None  # None: TFLM copied into lib/tflm (--tflm)
    tflm_flags: tuple[str, ...]  # compiler flags of the copied tree (include dirs, defines)
    model_slot: bool  # build with EDGE_USE_MODEL_SLOT
    headers: dict[str, str]  # support headers by file name (SUPPORT_HEADERS)
    fallback: bool = True  # with model_slot: embed the model to run when the slot's image is not
    detector: CentroidValues | None = None  # a centroid detector: main.cpp decodes its grid


def platformio_ini(v: FirmwareValues) -> str:
    board = v.board
    extra: list[str] = []
    flags: list[str] = []
    if v.library is None:
        tflm = f"copied into {TFLM_LIB}/ by edge-export --tflm"
        flags += [f"-I{TFLM_LIB}/{flag[2:]}" for flag in v.tflm_flags if flag.startswith("-I")]
        flags += [flag for flag in v.tflm_flags if flag.startswith("-D")]
    elif v.library.lib_deps:
        tflm = v.library.title
        extra += ["lib_deps =", *(f"    {ini_value(dep, 'lib_deps')}" for dep in
                                  v.library.lib_deps)]
    else:
        tflm = f"{v.library.title}, from src/idf_component.yml"
    if board.esp_partitions:
        extra.append("board_build.partitions = partitions.csv")
    if board.slot is not None:
        flags += [f"-DEDGE_MODEL_SLOT_ADDRESS={board.slot[0]:#x}u",
                  f"-DEDGE_MODEL_SLOT_LENGTH={board.slot[1]:#x}u"]
    note = ""
    if v.model_slot:
        flags.append("-DEDGE_USE_MODEL_SLOT=1")
        flags.append("-DEDGE_MODEL_FALLBACK=1" if v.fallback else "-DEDGE_MODEL_NO_FALLBACK=1")
    else:
        note = ("; No model slot: the model links into the slot's flash too. To boot from a "
                "slot that edge-flash\n; writes, re-export with edge-export --model-slot.\n")
    return render("platformio.ini.in", board=board.name, description=board.description,
                  tflm=tflm, platform=board.platform, pio_board=board.pio_board,
                  framework=board.framework, board_id=board.board_id,
                  extra_lines=Code("".join(f"{line}\n" for line in extra)),
                  flags=Code("".join(f"\n    {ini_value(f, 'build flag')}" for f in flags)),
                  slot_note=Code(note)).rstrip("\n") + "\n"


def idf_component_yml(v: FirmwareValues) -> str:
    assert v.library is not None
    return render("idf_component.yml.in", component=Code(ini_value(v.library.idf_component)),
                  version=Code(ini_value(v.library.version)))


def partitions_csv(v: FirmwareValues) -> str:
    slot = v.board.slot
    line = "" if slot is None else f"edge_model, data, 0x40,    {slot[0]:#x},          {slot[1]:#x}"
    return render("partitions.csv.in", board=v.board.name, app_offset=v.board.app[0],
                  app_size=v.board.app[1], slot_line=Code(line))


def labels_cc(labels: tuple[str, ...]) -> str:
    entries = "".join(f"\n  {c_string(label)}," for label in labels)
    return render("labels.cc.in", slots=max(len(labels), 1),
                  entries=Code(f"{entries}\n" if labels else " nullptr "), count=len(labels))


def tflm_library_json(flags: tuple[str, ...]) -> str:
    return render("library.json.in",
                  flags=Code(", ".join(c_string(ini_value(f, "TFLM flag")) for f in flags)))


Generator = Callable[[FirmwareValues], str]

# Output path (relative to the project folder) -> generator. The one place that lists them.
FILES: dict[str, Generator] = {
    "platformio.ini": platformio_ini,
    "src/main.cpp": lambda v: main_cpp(v.array_name, v.board.name, v.model_file, v.input_shape,
                                       v.input_dtype, v.detector),
    "src/model_data.h": lambda v: model_data_h(v.array_name, len(v.content), v.board.progmem),
    "src/model_data.cc": lambda v: model_data_cc(v.array_name, v.content, v.board.progmem,
                                                 embedded=v.fallback or not v.model_slot),
    "src/op_resolver.h": lambda v: op_resolver_h(v.opcodes),
    "src/arena.h": lambda v: arena_h(v.arena, v.model_file, v.board.name),
    "src/arena.cc": lambda v: arena_cc(),
    "src/labels.h": lambda v: render("labels.h.in"),
    "src/labels.cc": lambda v: labels_cc(v.labels),
    f"src/{LABELS_HEADER}": lambda v: v.headers[LABELS_HEADER],
    f"src/{IMAGE_HEADER}": lambda v: v.headers[IMAGE_HEADER],
    f"src/{CRC_HEADER}": lambda v: v.headers[CRC_HEADER],
    f"src/{CENTROIDS_HEADER}": lambda v: v.headers[CENTROIDS_HEADER],
    "src/idf_component.yml": idf_component_yml,
    "partitions.csv": partitions_csv,
    f"{TFLM_LIB}/library.json": lambda v: tflm_library_json(v.tflm_flags),
    "link/board.ld": lambda v: v.board.linker_script,
}


def _wanted(path: str, v: FirmwareValues) -> bool:
    name = path.rsplit("/", 1)[-1]
    if name == CENTROIDS_HEADER:
        return v.detector is not None and name in v.headers
    if name in SUPPORT_HEADERS:
        return name in v.headers
    if path == "src/idf_component.yml":
        return v.library is not None and bool(v.library.idf_component)
    if path == "partitions.csv":
        return v.board.esp_partitions
    if path.startswith(TFLM_LIB):
        return v.library is None
    return True


def render_all(v: FirmwareValues) -> dict[str, str]:
    """Every file of the project, by relative path."""
    return {path: generate(v) for path, generate in FILES.items() if _wanted(path, v)}
