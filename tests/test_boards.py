"""Board profiles: every shipped file validates; bad files say which field and why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.boards import MAX_PROFILE_BYTES, builtin_boards_dir, get_board, load_boards
from edge.errors import BoardError
from tests.hostile import deep_toml, make_fifo

LINUX = ["rpi4", "rpi5", "rpi-zero2w", "coral-devboard", "rpi4-coral-usb", "rpi5-coral-usb",
         "host"]
MCU = ["nano33ble", "esp32s3", "pico", "stm32h743", "stm32f746-disco", "teensy41"]


def test_every_required_board_ships() -> None:
    boards = load_boards()
    assert set(LINUX + MCU) <= set(boards)
    for name in LINUX:
        assert boards[name].kind == "linux" and boards[name].runtime is not None
    for name in MCU:
        assert boards[name].kind == "mcu" and boards[name].mcu is not None


def test_pi_isp_capabilities_are_data() -> None:
    assert get_board("rpi4").runtime.lores_formats == ("YUV420",)  # type: ignore[union-attr]
    assert "RGB888" in get_board("rpi5").runtime.lores_formats  # type: ignore[union-attr]
    coral = get_board("rpi4-coral-usb").runtime
    assert coral is not None and coral.delegate == "edgetpu" and coral.device == "usb"
    rpi4 = get_board("rpi4")
    assert rpi4.runtime is not None and 0 < rpi4.runtime.threads < rpi4.cores


def test_mcu_memory_maps() -> None:
    nano = get_board("nano33ble", kind="mcu").mcu
    assert nano is not None
    assert nano.region("ram").length == 256 * 1024 and nano.region("flash").length == 1024 * 1024
    h7 = get_board("stm32h743").mcu
    assert h7 is not None and h7.region(h7.arena_region).length == 512 * 1024
    for name in MCU:
        spec = get_board(name).mcu
        assert spec is not None and spec.pointer_size == 4
        assert 0 < spec.ram_for_arena < spec.region(spec.arena_region).length
        assert spec.model_slot is not None


def test_unknown_board_names_the_nearest() -> None:
    with pytest.raises(BoardError, match=r"unknown board 'rpi3'; did you mean rpi.*known boards"):
        get_board("rpi3")


def test_wrong_kind_is_refused() -> None:
    with pytest.raises(BoardError, match="is a mcu board"):
        get_board("pico", kind="linux")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_user_folder_adds_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "myboard", 'name = "myboard"\nkind = "linux"\ncores = 2\n'
                                "[runtime]\nthreads = 1\n")
    _write(tmp_path, "host", 'name = "host"\nkind = "linux"\ndescription = "mine"\n')
    boards = load_boards([tmp_path])
    assert boards["myboard"].runtime.threads == 1  # type: ignore[union-attr]
    assert boards["host"].description == "mine"
    monkeypatch.setenv("EDGE_BOARDS_DIR", str(tmp_path))
    assert get_board("myboard").source == (tmp_path / "myboard.toml").resolve()


@pytest.mark.parametrize(("text", "message"), [
    ('name = "x"\nkind = "linux"\ncores = 4\n[runtime]\nthreads = 99\n',
     r"threads \(=99\) must be in \[0\.\.\.4\]"),
    ('name = "x"\nkind = "toaster"\n', r"kind \(='toaster'\) must be one of linux, mcu"),
    ('name = "y"\nkind = "linux"\n', r"name \(='y'\) must match the file name 'x'"),
    ('name = "x"\nkind = "linux"\n[runtime]\ncamera = "kinect"\n',
     r"camera \(='kinect'\) must be one of picamera2, opencv"),
    ('name = "x"\nkind = "linux"\n[runtime]\nbaud = "fast"\n', r"baud \(='fast'\) must be an "),
    ('name = "x"\nkind = "mcu"\n', r"\[mcu\] table is missing"),
    ('name = "x"\nkind = "linux"\ncores = 4\n[runtime]\nlores_formats = ["MJPEG"]\n',
     r"lores_formats \(='MJPEG'\) must be among"),
    ("name = ", "not valid TOML"),
])
def test_invalid_profiles_name_file_field_and_range(tmp_path: Path, text: str,
                                                    message: str) -> None:
    path = _write(tmp_path, "x", text)
    with pytest.raises(BoardError, match=message) as info:
        load_boards([tmp_path])
    assert str(path.resolve()) in str(info.value)


def test_mcu_field_errors(tmp_path: Path) -> None:
    source = (builtin_boards_dir() / "pico.toml").read_text()
    _write(tmp_path, "pico", source.replace("pointer_size = 4", "pointer_size = 3"))
    with pytest.raises(BoardError, match=r"pointer_size \(=3\) must be in \[4\.\.\.8\]"):
        load_boards([tmp_path])
    _write(tmp_path, "pico", source.replace('arena_region = "ram"', 'arena_region = "flash"'))
    with pytest.raises(BoardError, match=r"arena_region \(='flash'\) must be one of ram"):
        load_boards([tmp_path])


def test_missing_boards_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match="boards folder does not exist"):
        load_boards([tmp_path / "nowhere"])


def test_deeply_nested_toml_is_one_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "deep", deep_toml(5000))
    with pytest.raises(BoardError, match=rf"^{re.escape(str(path))}: arrays or tables nested "
                                         "too deeply"):
        load_boards([tmp_path])


@pytest.mark.parametrize(("text", "message"), [
    ('name = "x"\nkind = "linux"\ndescription = "two\\nlines"\n',
     r"description \(='two\\nlines'\) must not contain control characters or line breaks"),
    ('name = "x"\nkind = "linux"\ncpu = "nul\\u0000"\n', "cpu .* must not contain control"),
    ('name = "x"\nkind = "linux"\n[runtime]\nlores_formats = ["YUV420\\r"]\n',
     "lores_formats .* must not contain control"),
    ('name = "x"\nkind = "linux"\n[runtime]\nserial_port = "/dev/tty\\u2028"\n',
     "serial_port .* must not contain control"),
])
def test_strings_with_control_characters_are_refused(tmp_path: Path, text: str,
                                                     message: str) -> None:
    _write(tmp_path, "x", text)
    with pytest.raises(BoardError, match=message):
        load_boards([tmp_path])


@pytest.mark.parametrize(("field", "value"), [
    ("platformio_board", 'nano33ble\\" extra_scripts = evil.py'),
    ("platformio_platform", "a b"),
    ("tool_target", "$(reboot)"),
    ("flash_tool", "../../bin/sh"),
])
def test_mcu_names_that_reach_generated_files_are_plain_tokens(tmp_path: Path, field: str,
                                                               value: str) -> None:
    source = (builtin_boards_dir() / "pico.toml").read_text()
    lines = [line for line in source.splitlines() if not line.startswith(f"{field} ")]
    text = "\n".join(lines).replace("[mcu]\n", f'[mcu]\n{field} = "{value}"\n', 1)
    _write(tmp_path, "pico", text)
    with pytest.raises(BoardError, match=rf"{field} .* must be letters, digits"):
        load_boards([tmp_path])


def test_a_file_name_with_a_newline_is_not_a_board_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "a\nb", 'name = "a\\nb"\nkind = "linux"\n')
    with pytest.raises(BoardError, match=r"name \(='a\\nb'\) must not contain control"):
        load_boards([tmp_path])
    path.unlink()
    _write(tmp_path, "it's", 'name = "it\'s"\nkind = "linux"\n')
    with pytest.raises(BoardError, match=r"name .* must be letters, digits"):
        load_boards([tmp_path])


@pytest.mark.parametrize("kind", ["fifo", "zero", "huge"])
def test_special_or_huge_profile_files_are_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.toml"
    if kind == "fifo":
        make_fifo(path)  # nobody writes: a blocking read would hang
        message = "is a FIFO"
    elif kind == "zero":
        path.symlink_to("/dev/zero")
        message = "is a device"
    else:
        path.write_text('name = "x"\nkind = "linux"\n' + "#" * MAX_PROFILE_BYTES + "\n")
        message = f"larger than {MAX_PROFILE_BYTES:,} bytes"
    with pytest.raises(BoardError, match=message):
        load_boards([tmp_path])


def test_platformio_framework_may_list_several() -> None:
    esp = get_board("esp32s3").mcu
    assert esp is not None and esp.platformio_framework == "arduino, espidf"
