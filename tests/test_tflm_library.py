"""Which TFLM a project builds with: the pinned library per board, or the tree --tflm copies.

The pinned TFLM tree (../shared/tflm) is unpacked into pytest's temporary folder, never the
repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from edge.errors import ExportError
from firmware_export.codegen.libraries import check_operators, library_for
from firmware_export.codegen.resolver import add_method
from firmware_export.codegen.tflm_sources import RESOLVER, select_files
from firmware_export.export import export_model
from firmware_export.plan.kernels import MICRO_OPS
from firmware_export.tflm.tree import open_tree
from tests.conftest import SHARED, shared_file

KERNELS = "tensorflow/lite/micro/kernels"


def unpack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    archive = SHARED / "tflm" / name
    if not archive.is_file():
        pytest.skip(f"pinned TFLM tree {archive} is absent (see ../shared/tflm/README.md)")
    folder = tmp_path_factory.mktemp(name.split(".")[0])
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return open_tree(folder).root


@pytest.fixture(scope="module")
def tflm_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(tmp_path_factory, "tflm_tree.tar.gz")


@pytest.fixture(scope="module")
def cmsis_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(tmp_path_factory, "tflm_tree_cmsis_nn.tar.gz")


def test_every_resolver_method_we_name_exists_in_the_pinned_tree(tflm_tree: Path) -> None:
    header = (tflm_tree / RESOLVER).read_text()
    methods = set(re.findall(r"TfLiteStatus (Add\w+)\(", header))
    assert add_method("CUMSUM") == "AddCumSum"
    assert sorted(add_method(op) for op in MICRO_OPS if add_method(op) not in methods) == []


def test_pinned_libraries_are_pinned_not_moving_branches() -> None:
    arduino, esp = library_for("cmsis-nn"), library_for("esp-nn")
    assert library_for("reference") == arduino
    for dep in arduino.lib_deps:
        assert re.fullmatch(r"https://\S+\.git#[0-9a-f]{40}", dep), dep
    assert "esp-tflite-micro" in esp.idf_component and re.fullmatch(r"\d+\.\d+\.\d+",
                                                                    esp.version)


def test_operators_the_pinned_library_lacks_are_refused_by_name() -> None:
    arduino = library_for("cmsis-nn")
    check_operators(arduino, ["CONV_2D", "SOFTMAX"])
    with pytest.raises(ExportError, match=r"has no AddCumSum \(CUMSUM\), AddReverseV2 "
                                          r"\(REVERSE_V2\); export with --tflm DIR"):
        check_operators(arduino, ["CONV_2D", "REVERSE_V2", "CUMSUM"])


def test_unchecked_library_warns_on_recent_operators(caplog: pytest.LogCaptureFixture) -> None:
    esp = library_for("esp-nn")
    with caplog.at_level("WARNING"):
        check_operators(esp, ["CONV_2D", "BATCH_MATMUL"])
    assert "AddBatchMatMul" in caplog.text and "--tflm DIR" in caplog.text


def test_esp32s3_pins_espressifs_library_with_esp_nn(tmp_path: Path) -> None:
    result = export_model(shared_file("models/person_detect.tflite"), "esp32s3",
                          tmp_path / "fw")
    component = (result.out / "src" / "idf_component.yml").read_text()
    assert 'espressif/esp-tflite-micro: "==1.3.5"' in component
    ini = (result.out / "platformio.ini").read_text()
    assert "framework = arduino, espidf" in ini and "lib_deps" not in ini


def test_tflm_copies_what_the_models_operators_need(tflm_tree: Path, tmp_path: Path) -> None:
    model = shared_file("models/person_detect.tflite")
    result = export_model(model, "nano33ble", tmp_path / "fw", tflm=tflm_tree.parent)
    lib = result.out / "lib" / "tflm"
    for needed in ("conv.cc", "depthwise_conv.cc", "pooling.cc", "reshape.cc", "softmax.cc",
                   "conv_common.cc", "kernel_util.cc"):
        assert (lib / KERNELS / needed).is_file(), needed
    for unused in ("add.cc", "cumsum.cc", "fully_connected.cc", "conv_test.h"):
        assert not (lib / KERNELS / unused).exists(), unused
    assert not [p for p in (lib / "signal").rglob("*") if p.suffix in (".cc", ".c")]
    assert (lib / "LICENSE").is_file()
    assert (lib / "third_party" / "flatbuffers" / "LICENSE").is_file()
    ini = (result.out / "platformio.ini").read_text()
    assert "lib_deps" not in ini and "-Ilib/tflm/third_party/flatbuffers/include" in ini
    assert result.library is None


TU = """
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
int Count() { ModelOpResolver r; return RegisterModelOps(r) == kTfLiteOk ? kNumModelOps : -1; }
"""


@pytest.mark.parametrize("which", ["reference", "cmsis-nn"])
def test_copied_tree_is_self_contained_for_the_resolver(which: str, tflm_tree: Path,
                                                        cmsis_tree: Path,
                                                        tmp_path: Path) -> None:
    """The copied subset, alone, compiles the generated resolver and the interpreter header."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("needs g++ (apt install g++)")
    tree = tflm_tree if which == "reference" else cmsis_tree
    model = shared_file("models/person_detect.tflite")
    result = export_model(model, "nano33ble", tmp_path / "fw", tflm=tree)
    lib = result.out / "lib" / "tflm"
    flags = [f.replace("-I", f"-I{lib}/", 1) if f.startswith("-I") else f
             for f in select_files(tree, ["CONV_2D"]).flags]
    (tmp_path / "tu.cc").write_text(TU)
    subprocess.run([gxx, "-std=c++17", "-fsyntax-only", *flags, f"-I{result.out / 'src'}",
                    str(tmp_path / "tu.cc")], check=True, capture_output=True, text=True)


def test_a_folder_that_is_not_a_tflm_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="is not a TensorFlow Lite Micro tree"):
        open_tree(tmp_path)


def test_repeated_tflm_copies_the_tree_for_the_boards_kernels(tflm_tree: Path, cmsis_tree: Path,
                                                             tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    from firmware_export.cli.export import main

    model = str(shared_file("models/person_detect.tflite"))
    for board, cmsis in (("nano33ble", True), ("esp32s3", False)):
        out = tmp_path / board
        assert main([model, "--board", board, "--out", str(out), "--tflm", str(tflm_tree),
                     "--tflm", str(cmsis_tree), "-q"]) == 0
        assert (out / "lib" / "tflm" / KERNELS / "cmsis_nn").is_dir() == cmsis
    capsys.readouterr()
