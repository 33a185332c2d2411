"""The Edge TPU delegate path, up to the backend's load_delegate call (a stand-in here)."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from edge.errors import DelegateError, InterpreterError
from edge.runtime.delegate import (
    check_device,
    edgetpu_library,
    load_edgetpu_delegate,
    split_model_device,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class StandInLoader:
    """Records what the backend's load_delegate would have been asked, then answers."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, library: str, options: dict[str, str] | None = None) -> object:
        self.calls.append((library, dict(options or {})))
        if self.error is not None:
            raise self.error
        return "delegate"


def opens(name: str) -> None:
    return None


@pytest.mark.parametrize(("system", "library"), [
    ("Linux", "libedgetpu.so.1"), ("Darwin", "libedgetpu.1.dylib"), ("Windows", "edgetpu.dll")])
def test_library_name_per_os(system, library):
    assert edgetpu_library(system) == library
    loader = StandInLoader()
    assert load_edgetpu_delegate(loader, "usb", system=system, open_library=opens) == "delegate"
    assert loader.calls == [(library, {"device": "usb"})]


def test_unsupported_os():
    with pytest.raises(DelegateError, match="not available on FreeBSD"):
        edgetpu_library("FreeBSD")


@pytest.mark.parametrize("device", ["", "usb", "usb:0", "usb:12", "pci", "pci:1", ":0", ":3"])
def test_coral_device_strings(device):
    assert check_device(device) == device


@pytest.mark.parametrize("device", ["USB", "usb0", "usb:", "pci:-1", "tpu:0", ":", "usb:a"])
def test_bad_device_strings_list_the_accepted_forms(device):
    with pytest.raises(DelegateError, match="usb, usb:N, pci, pci:N or :N"):
        check_device(device)
    with pytest.raises(DelegateError):
        load_edgetpu_delegate(StandInLoader(), device, open_library=opens)


def test_model_path_with_device_suffix(tmp_path):
    assert split_model_device("m.tflite@usb:0") == ("m.tflite", "usb:0")
    assert split_model_device("dir@x/m.tflite@:1") == ("dir@x/m.tflite", ":1")
    assert split_model_device("m.tflite") == ("m.tflite", None)
    assert split_model_device("m.tflite@home") == ("m.tflite@home", None)
    odd = tmp_path / "model@usb"
    odd.write_bytes(b"")
    assert split_model_device(str(odd)) == (str(odd), None)


def test_first_edgetpu_gets_no_device_option():
    loader = StandInLoader()
    load_edgetpu_delegate(loader, None, system="Linux", open_library=opens)
    assert loader.calls == [("libedgetpu.so.1", {})]


def test_no_device_found_is_one_actionable_line():
    loader = StandInLoader(ValueError("Failed to load delegate from libedgetpu.so.1\n"))
    with pytest.raises(DelegateError) as info:
        load_edgetpu_delegate(loader, "usb:1", reason="m.tflite was compiled for the Edge TPU",
                              system="Linux", open_library=opens)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("m.tflite was compiled for the Edge TPU but no Edge TPU was found "
                              "at device 'usb:1'")
    assert "plug in the accelerator" in message and "CPU version" in message
    assert isinstance(info.value, InterpreterError)


@pytest.mark.ci_skip_ok
@pytest.mark.skipif(ctypes.util.find_library("edgetpu") is not None,
                    reason="libedgetpu is installed here")
def test_missing_runtime_library_with_the_real_loader():
    loader = StandInLoader()
    with pytest.raises(DelegateError) as info:
        load_edgetpu_delegate(loader, "usb")
    message = str(info.value)
    assert "Edge TPU runtime libedgetpu" in message and "not installed" in message
    assert "https://coral.ai/software/#edgetpu-runtime" in message and "\n" not in message
    assert loader.calls == []  # load_delegate itself would print a traceback at exit


@pytest.mark.edgetpu
def test_real_edgetpu_classifies_parrot():
    from edge.camera.images import read_image
    from edge.runtime import Classifier

    model = DATA / "models" / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    with Classifier.open(model, device="usb") as classifier:
        assert classifier.delegate_name == "edgetpu"
        frame = read_image(DATA / "images" / "parrot.jpg")
        assert classifier.classify(frame, color="bgr", top_k=1)[0].index == 89


def _refuses_to_open(name: str) -> None:
    raise OSError(f"{name}: cannot open shared object file: No such file or directory")


def test_missing_runtime_on_linux_names_the_apt_package_not_pycoral():
    with pytest.raises(DelegateError) as info:
        load_edgetpu_delegate(StandInLoader(), "usb", system="Linux",
                              open_library=_refuses_to_open)
    message = str(info.value)
    assert "\n" not in message
    assert "install libedgetpu1-std from Coral's apt repository" in message
    assert "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" in message
    assert "pycoral is not needed" in message


def test_missing_runtime_elsewhere_points_at_coral_s_page():
    with pytest.raises(DelegateError) as info:
        load_edgetpu_delegate(StandInLoader(), "usb", system="Darwin",
                              open_library=_refuses_to_open)
    assert "libedgetpu.1.dylib is not installed" in str(info.value)
    assert "apt" not in str(info.value)


@pytest.mark.parametrize(("device", "named", "not_named"), [
    ("usb:0", ["60-libedgetpu1-std.rules", "plugdev"], ["gasket"]),
    ("pci", ["gasket-dkms", "/dev/apex_0"], ["plugdev"]),
    ("", ["60-libedgetpu1-std.rules", "gasket-dkms"], []),
])
def test_no_device_on_linux_names_the_udev_rule_or_the_driver(device, named, not_named):
    loader = StandInLoader(ValueError("Failed to load delegate from libedgetpu.so.1"))
    with pytest.raises(DelegateError) as info:
        load_edgetpu_delegate(loader, device, system="Linux", open_library=opens)
    message = str(info.value)
    assert "\n" not in message
    assert all(word in message for word in named), message
    assert not any(word in message for word in not_named), message


def test_the_edge_tpu_path_needs_no_pycoral():
    """pycoral has no wheels for Python 3.11 (Pi 5, bookworm): edge must never import it."""
    import ast

    root = Path(__file__).resolve().parents[1]
    importers = []
    for path in [*root.glob("edge/**/*.py"), *root.glob("firmware_export/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] in {"pycoral", "edgetpu"} for name in names):
                importers.append(path.relative_to(root))
    assert importers == []
