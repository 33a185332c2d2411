"""Board profiles: one TOML file per board, parsed once into frozen dataclasses.

Built-in profiles live in the project's ``boards/`` folder (shipped inside the wheel as
``edge/boards``). Users add their own with ``--boards-dir DIR`` or ``EDGE_BOARDS_DIR`` (a list of
folders separated by ``os.pathsep``); a user profile with a built-in's name replaces it.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from edge.bounded_read import not_regular_reason, read_bounded
from edge.errors import BoardError, one_line

KINDS = ("linux", "mcu")
CAMERA_BACKENDS = ("picamera2", "opencv")
DELEGATES = ("none", "edgetpu")
KERNELS = ("reference", "cmsis-nn", "esp-nn")
MEMORY_KINDS = ("ram", "flash", "psram")
# Parts of a board's flash map: ours (firmware code, the embedded model, the model slot) and
# the rest (bootloaders, partition tables, EEPROM emulation: "reserved"; unused: "free").
FLASH_PARTS = ("reserved", "firmware", "model", "slot", "free")
FLASH_PAGE = 0x1000  # every part starts and ends on a 4 KiB boundary (erase-sector friendly)
LORES_FORMATS = ("YUV420", "RGB888", "BGR888", "XRGB8888", "XBGR8888")
# 40 megapixels: a 7300x5500 photo, 120 MB once decoded to BGR; boards with less RAM set less.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
MAX_PROFILE_BYTES = 256 * 1024
# Names that end up in file names, generated C and platformio.ini: a conservative token.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TOKEN_HELP = "letters, digits, '.', '_' or '-', starting with a letter or digit"
_TOKENS = re.compile(rf"{_TOKEN.pattern}(?:, ?{_TOKEN.pattern})*")  # "arduino, espidf"


@dataclass(frozen=True)
class RuntimeSpec:
    """How edge-run drives a Linux board."""

    threads: int  # 0 = use every core
    camera: str
    lores_formats: tuple[str, ...]
    delegate: str
    device: str
    serial_port: str
    baud: int
    max_activation_mb: int = 1024  # a model's non-constant tensors may not add up to more
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class MemoryRegion:
    """One region of an MCU's memory map."""

    name: str
    kind: str
    origin: int
    length: int


@dataclass(frozen=True)
class FlashSlot:
    """A flash region the firmware reserves for a model image (absolute address)."""

    address: int
    length: int


@dataclass(frozen=True)
class FlashPart:
    """One part of a board's flash map, at an absolute address."""

    kind: str
    name: str
    address: int
    size: int

    @property
    def end(self) -> int:
        return self.address + self.size


@dataclass(frozen=True)
class McuSpec:
    """What edge-export and edge-flash need to know about a microcontroller board."""

    pointer_size: int
    kernels: str
    progmem: bool
    memory: tuple[MemoryRegion, ...]
    arena_region: str
    flash_region: str
    reserved_ram: int
    flash_map: tuple[FlashPart, ...]  # tiles the flash region, in address order
    model_slot: FlashSlot | None  # the "slot" part of the flash map
    flash_tool: str
    tool_target: str
    uf2_family: int | None
    usb_ids: tuple[str, ...]
    platformio_platform: str
    platformio_board: str
    platformio_framework: str

    def region(self, name: str) -> MemoryRegion:
        for region in self.memory:
            if region.name == name:
                return region
        raise KeyError(name)

    @property
    def ram_for_arena(self) -> int:
        """Bytes of the arena region left after firmware, TFLM and stack."""
        return self.region(self.arena_region).length - self.reserved_ram

    def flash_part(self, kind: str) -> FlashPart | None:
        """The flash map's part of this kind (firmware, model and slot appear at most once)."""
        return next((part for part in self.flash_map if part.kind == kind), None)

    @property
    def model_part(self) -> FlashPart:
        """The flash map's model part: the embedded model's flash in firmware that boots from
        the slot (``--model-slot``). See :meth:`model_region` for where a model links."""
        part = self.flash_part("model")
        assert part is not None  # the parser requires one
        return part

    def model_region(self, slot: bool, fallback: bool = True) -> FlashPart:
        """Where the embedded model (``model_data.cc``) links: the linker script's FLASH.

        The one rule for every layout of the flash map. Firmware built to boot from the slot
        (``slot=True``, ``--model-slot``) keeps the model part for its fallback model and the
        slot part for edge-flash's image; without a fallback (``fallback=False``, ``--fallback
        none``) it embeds no model and the slot takes both parts, so the region is empty.
        Firmware built without a slot has none: its model gets the model part plus the adjacent
        slot part (the parser checks they touch), so no byte is counted twice and none is left
        unused.
        """
        model, slot_part = self.model_part, self.flash_part("slot")
        if slot and not fallback and slot_part is not None:
            return FlashPart("model", "none (no fallback model: the slot has its flash)",
                             min(model.address, slot_part.address), 0)
        if slot or slot_part is None:
            return model
        start = min(model.address, slot_part.address)
        return FlashPart("model", f"{model.name} + {slot_part.name}", start,
                         model.size + slot_part.size)

    def slot_region(self, slot: bool, fallback: bool = True) -> FlashSlot | None:
        """The model slot of firmware built with (``slot=True``) or without ``--model-slot``:
        the slot part (with a fallback model), the model and slot parts together (without
        one), or None (no slot: its flash belongs to the embedded model)."""
        if not slot or self.model_slot is None:
            return None
        if fallback:
            return self.model_slot
        whole = self.model_region(slot=False)
        return FlashSlot(whole.address, whole.size)

    @property
    def flash_for_model(self) -> int:
        """Bytes for the embedded model of firmware built without ``--model-slot`` (the
        default export); call :meth:`model_region` when the layout is known."""
        return self.model_region(slot=False).size


@dataclass(frozen=True)
class BoardProfile:
    """One board, as described by its TOML file."""

    name: str
    kind: str
    description: str
    cpu: str
    cores: int
    source: Path
    runtime: RuntimeSpec | None = None
    mcu: McuSpec | None = None


class _Fields:
    """Typed access to one TOML table, with errors that name the file, field and value."""

    def __init__(self, table: Mapping[str, Any], where: str) -> None:
        self.table = table
        self.where = where

    def fail(self, key: str, message: str) -> BoardError:
        return BoardError(f"{self.where}: {key} {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        value = self.table[key]
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            raise self.fail(key, f"(={value!r}) must be {_kind_name(kind)}")
        if not isinstance(value, kind):
            raise self.fail(key, f"(={value!r}) must be {_kind_name(kind)}")
        if isinstance(value, str):
            self._check_text(key, value)
        return value

    def _check_text(self, key: str, value: str) -> None:
        if one_line(value) != value:
            raise self.fail(key, f"(={value!r}) must not contain control characters or line "
                            "breaks")

    def token(self, key: str, default: Any = ..., *, several: bool = False) -> str:
        """A string that may end up in file names and generated files: a plain token (with
        ``several``, tokens separated by commas)."""
        value = self.get(key, str, default)
        if value and not (_TOKENS if several else _TOKEN).fullmatch(value):
            what = f"{_TOKEN_HELP}{' (several: separated by commas)' if several else ''}"
            raise self.fail(key, f"(={value!r}) must be {what}")
        return str(value)

    def integer(self, key: str, low: int, high: int, default: Any = ...) -> int:
        value = self.get(key, int, default)
        if not low <= value <= high:
            raise self.fail(key, f"(={value}) must be in [{low}...{high}]")
        return int(value)

    def choice(self, key: str, allowed: Iterable[str], default: Any = ...) -> str:
        value = self.get(key, str, default)
        allowed = tuple(allowed)
        if value not in allowed:
            raise self.fail(key, f"(={value!r}) must be one of {', '.join(allowed)}")
        return str(value)

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if not all(isinstance(item, str) for item in value):
            raise self.fail(key, f"(={value!r}) must be a list of strings")
        for item in value:
            self._check_text(key, item)
        return tuple(value)

    def sub(self, key: str) -> _Fields | None:
        if key not in self.table:
            return None
        return _Fields(self.get(key, dict), f"{self.where}: [{key}]")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", bool: "true or false", list: "a list",
             dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _parse_runtime(fields: _Fields, cores: int) -> RuntimeSpec:
    return RuntimeSpec(
        threads=fields.integer("threads", 0, max(cores, 1) if cores else 256, 0),
        camera=fields.choice("camera", CAMERA_BACKENDS, "opencv"),
        lores_formats=_lores(fields),
        delegate=fields.choice("delegate", DELEGATES, "none"),
        device=fields.get("device", str, ""),
        serial_port=fields.get("serial_port", str, ""),
        baud=fields.integer("baud", 300, 12_000_000, 115200),
        max_activation_mb=fields.integer("max_activation_mb", 1, 1 << 20, 1024),
        max_image_pixels=fields.integer("max_image_pixels", 1 << 16, 1 << 34,
                                        DEFAULT_MAX_IMAGE_PIXELS),
    )


def _lores(fields: _Fields) -> tuple[str, ...]:
    formats = fields.strings("lores_formats", ())
    for fmt in formats:
        if fmt not in LORES_FORMATS:
            allowed = ", ".join(LORES_FORMATS)
            raise fields.fail("lores_formats", f"(={fmt!r}) must be among {allowed}")
    return formats


def _parse_region(table: Any, where: str, index: int) -> MemoryRegion:
    if not isinstance(table, dict):
        raise BoardError(f"{where}: memory[{index}] must be a table")
    fields = _Fields(table, f"{where}: memory[{index}]")
    return MemoryRegion(
        name=fields.token("name"),
        kind=fields.choice("kind", MEMORY_KINDS),
        origin=fields.integer("origin", 0, 2**32 - 1),
        length=fields.integer("length", 1, 2**32),
    )


def _parse_mcu(fields: _Fields) -> McuSpec:
    regions = fields.get("memory", list)
    memory = tuple(_parse_region(t, fields.where, i) for i, t in enumerate(regions))
    names = [r.name for r in memory]
    arena_region = fields.choice("arena_region", [r.name for r in memory if r.kind != "flash"])
    flash_region = fields.choice("flash_region", [r.name for r in memory if r.kind == "flash"])
    by_name = dict(zip(names, memory, strict=True))
    flash_map = _parse_flash_map(fields, by_name[flash_region])
    slot_part = next((p for p in flash_map if p.kind == "slot"), None)
    slot = None if slot_part is None else FlashSlot(slot_part.address, slot_part.size)
    uf2 = fields.integer("uf2_family", 0, 2**32 - 1, 0)
    return McuSpec(
        pointer_size=fields.integer("pointer_size", 4, 8),
        kernels=fields.choice("kernels", KERNELS, "reference"),
        progmem=fields.get("progmem", bool, False),
        memory=memory,
        arena_region=arena_region,
        flash_region=flash_region,
        reserved_ram=fields.integer("reserved_ram", 0, by_name[arena_region].length),
        flash_map=flash_map,
        model_slot=slot,
        flash_tool=fields.token("flash_tool", ""),
        tool_target=fields.token("tool_target", ""),
        uf2_family=uf2 or None,
        usb_ids=fields.strings("usb_ids", ()),
        platformio_platform=fields.token("platformio_platform", ""),
        platformio_board=fields.token("platformio_board", ""),
        platformio_framework=fields.token("platformio_framework", "arduino", several=True),
    )


def _parse_flash_map(fields: _Fields, flash: MemoryRegion) -> tuple[FlashPart, ...]:
    """``[[mcu.flash_map]]``: parts in address order from the region's origin, tiling it.

    Every byte of the flash region belongs to exactly one part, so the linker script, the
    budget and the model slot, all derived from these parts, can neither overlap nor count a
    byte twice.
    """
    tables = fields.get("flash_map", list)
    parts: list[FlashPart] = []
    address = flash.origin
    for index, table in enumerate(tables):
        if not isinstance(table, dict):
            raise fields.fail(f"flash_map[{index}]", "must be a table")
        part = _Fields(table, f"{fields.where}: flash_map[{index}]")
        kind = part.choice("part", FLASH_PARTS)
        size = part.integer("size", FLASH_PAGE, flash.length)
        if size % FLASH_PAGE:
            raise part.fail("size", f"(={size:#x}) must be a multiple of {FLASH_PAGE:#x}")
        parts.append(FlashPart(kind, part.get("name", str, kind), address, size))
        address += size
    total = address - flash.origin
    if total != flash.length:
        raise fields.fail("flash_map", f"parts add up to {total:#x} B but {flash.name} is "
                          f"{flash.length:#x} B: every byte must belong to exactly one part")
    for kind in ("firmware", "model", "slot"):
        count = sum(p.kind == kind for p in parts)
        if count > 1 or (count == 0 and kind != "slot"):
            raise fields.fail("flash_map", f"needs {'exactly' if kind != 'slot' else 'at most'}"
                              f" one {kind!r} part, has {count}")
    _check_slot_adjacent(fields, [p.kind for p in parts])
    return tuple(parts)


def _check_slot_adjacent(fields: _Fields, kinds: list[str]) -> None:
    """The slot part must touch the model part: without --model-slot they are one region."""
    if "slot" not in kinds:
        return
    model, slot = kinds.index("model"), kinds.index("slot")
    if abs(model - slot) != 1:
        raise fields.fail(f"flash_map[{slot}]", "(the 'slot' part) must be right before or after"
                          f" the 'model' part (flash_map[{model}]): firmware exported without "
                          "--model-slot links its model into both as one region")


def parse_board(table: Mapping[str, Any], source: Path) -> BoardProfile:
    """Validate one parsed TOML table into a :class:`BoardProfile`.

    Raises:
        BoardError: naming the file, the field, its value and what is allowed.
    """
    fields = _Fields(table, str(source))
    name = fields.token("name")
    if name != source.stem:
        raise fields.fail("name", f"(={name!r}) must match the file name {source.stem!r}")
    kind = fields.choice("kind", KINDS)
    cores = fields.integer("cores", 0, 256, 0)
    runtime = mcu = None
    if kind == "linux":
        sub = fields.sub("runtime")
        runtime = _parse_runtime(sub or _Fields({}, f"{source}: [runtime]"), cores)
    else:
        sub = fields.sub("mcu")
        if sub is None:
            raise fields.fail("[mcu]", "table is missing (kind = 'mcu' needs it)")
        mcu = _parse_mcu(sub)
    return BoardProfile(
        name=name,
        kind=kind,
        description=fields.get("description", str, ""),
        cpu=fields.get("cpu", str, ""),
        cores=cores,
        source=source,
        runtime=runtime,
        mcu=mcu,
    )


def builtin_boards_dir() -> Path:
    """The folder of the profiles that ship with edge."""
    packaged = resources.files("edge") / "boards"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "boards"


def board_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Built-in folder, then EDGE_BOARDS_DIR entries, then ``extra`` (later ones win)."""
    dirs = [builtin_boards_dir()]
    env = os.environ.get("EDGE_BOARDS_DIR", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(p) for p in extra]
    return dirs


def _load_file(path: Path) -> BoardProfile:
    """``path`` as found in its folder (messages name it), parsed once per version."""
    try:
        stat = path.stat()
    except OSError as e:
        raise BoardError(f"{path}: cannot read board profile: {e}") from e
    reason = not_regular_reason(stat.st_mode)  # before resolving a link to /dev/zero
    if reason is not None:
        raise BoardError(f"{path}: {reason}; board profiles are TOML files")
    return _parse_file(path.resolve(), stat.st_mtime_ns, stat.st_size)


@cache
def _parse_file(path: Path, mtime_ns: int, size: int) -> BoardProfile:
    """Parsed once per file version (the key includes its modification time and size)."""
    del mtime_ns, size
    data = read_bounded(path, MAX_PROFILE_BYTES, error=BoardError, what="board profile")
    try:
        return parse_board(tomllib.loads(data.decode("utf-8")), path)
    except UnicodeDecodeError as e:
        raise BoardError(f"{path}: not UTF-8 text at byte {e.start}; board profiles are TOML "
                         "text") from e
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{path}: not valid TOML: {e}") from e
    except RecursionError as e:
        message = "arrays or tables nested too deeply for a board profile"
        raise BoardError(f"{path}: {message}") from e


def load_boards(extra_dirs: Iterable[str | Path] = ()) -> dict[str, BoardProfile]:
    """Every board profile found, by name.

    Raises:
        BoardError: a board folder is missing or a profile in it is invalid.
    """
    boards: dict[str, BoardProfile] = {}
    for folder in board_dirs(extra_dirs):
        if not folder.is_dir():
            raise BoardError(f"{folder}: boards folder does not exist (check --boards-dir / "
                             "EDGE_BOARDS_DIR)")
        for path in sorted(folder.glob("*.toml")):
            board = _load_file(path)
            boards[board.name] = board
    return boards


def get_board(name: str, extra_dirs: Iterable[str | Path] = (), kind: str | None = None
              ) -> BoardProfile:
    """The profile called ``name``.

    Args:
        name: board name, e.g. ``rpi4`` or ``nano33ble``.
        extra_dirs: user folders of profiles.
        kind: ``linux`` or ``mcu`` to refuse boards of the other kind.

    Raises:
        BoardError: unknown name (naming the nearest ones) or a board of the wrong kind.
    """
    boards = load_boards(extra_dirs)
    candidates = {n: b for n, b in boards.items() if kind is None or b.kind == kind}
    if name in candidates:
        return candidates[name]
    if name in boards:
        raise BoardError(f"board {name!r} is a {boards[name].kind} board; this command needs "
                         f"one of: {', '.join(sorted(candidates))}")
    near = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.4)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise BoardError(f"unknown board {name!r}; {hint}known boards: {', '.join(sorted(candidates))}"
                     " (add your own with --boards-dir)")
