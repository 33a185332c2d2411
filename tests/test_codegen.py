"""Generated C/C++: golden files, determinism, speed, and real compilers.

Set EDGE_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then review the
diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.boards import get_board
from firmware_export.codegen.linker import linker_script
from firmware_export.codegen.model_data import model_data_cc, model_data_h
from firmware_export.codegen.names import c_identifier, check_identifier
from firmware_export.codegen.resolver import add_method, op_resolver_h
from firmware_export.export import export_model
from firmware_export.plan.kernels import MICRO_OPS
from tests.conftest import ROOT, SHARED_DATA, shared_file

GOLDEN = ROOT / "tests" / "golden" / "export"
SMALL_MODEL = b"\x1c\x00\x00\x00TFL3" + bytes(range(0, 250, 7))
STUB_RESOLVER_DIR = "tensorflow/lite/micro"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("EDGE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.is_file(), f"golden file {path} is missing (run with EDGE_UPDATE_GOLDEN=1)"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def test_model_data_golden() -> None:
    check_golden("model_data.h", model_data_h("g_small_model", len(SMALL_MODEL), False))
    check_golden("model_data.cc", model_data_cc("g_small_model", SMALL_MODEL, False))
    check_golden("model_data_progmem.h", model_data_h("g_small_model", len(SMALL_MODEL), True))


def test_resolver_golden() -> None:
    text = op_resolver_h(["DEPTHWISE_CONV_2D", "CONV_2D", "SOFTMAX", "RESHAPE", "CONV_2D"])
    check_golden("op_resolver.h", text)
    assert "MicroMutableOpResolver<kNumModelOps>" in text and "kNumModelOps = 4;" in text


def test_linker_script_golden() -> None:
    spec = get_board("nano33ble", kind="mcu").mcu
    assert spec is not None
    check_golden("nano33ble.ld", linker_script(spec, "nano33ble", True))  # --model-slot
    check_golden("nano33ble_no_slot.ld", linker_script(spec, "nano33ble", False))


def test_project_golden(tmp_path: Path) -> None:
    model = shared_file("models/person_detect.tflite")
    result = export_model(model, "nano33ble", tmp_path / "fw")
    for relative in ("platformio.ini", "src/main.cpp", "src/arena.h", "src/op_resolver.h"):
        check_golden(f"person_detect_nano33ble/{relative.replace('/', '_')}",
                     (result.out / relative).read_text(encoding="utf-8"))


@pytest.mark.parametrize("file_name, identifier", [
    ("mobilenet_v2_1.0_224.tflite", "g_mobilenet_v2_1_0_224_model"),
    ("models/2-class person.tflite", "g_2_class_person_model"),
    ("model.tflite", "g_model"),
    ("Détecteur.tflite", "g_d_tecteur_model"),
])
def test_identifiers_come_from_the_whole_stem(file_name: str, identifier: str) -> None:
    assert c_identifier(file_name) == identifier


def test_bad_names_are_refused() -> None:
    from edge.errors import ExportError

    for bad in ("1model", "my-model", "__x", ""):
        with pytest.raises(ExportError, match="C identifier"):
            check_identifier(bad)


def test_model_data_is_deterministic() -> None:
    """Byte-for-byte the same text twice. Speed is not judged here (no wall-clock limits in
    tests): tools/bench_export.py times it against xxd -i in the same run."""
    big = SHARED_DATA / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    content = big.read_bytes() if big.is_file() else bytes(range(256)) * 16_000  # ~4 MB
    first = model_data_cc("g_big_model", content, False)
    assert first == model_data_cc("g_big_model", content, False)
    assert first.count("0x") == len(content)


def test_every_micro_op_has_a_method_name() -> None:
    assert add_method("CONV_2D") == "AddConv2D"
    assert add_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert add_method("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"
    assert len({add_method(op) for op in MICRO_OPS}) == len(MICRO_OPS)


def write_stub_resolver(include: Path) -> None:
    """A stand-in for TFLM's resolver header: counts Add*() calls and enforces N."""
    folder = include / STUB_RESOLVER_DIR
    folder.mkdir(parents=True)
    methods = "\n".join(f"  TfLiteStatus {add_method(op)}() {{ return Add(); }}"
                        for op in sorted(MICRO_OPS))
    (folder / "micro_mutable_op_resolver.h").write_text(f"""#pragma once
typedef enum {{ kTfLiteOk = 0, kTfLiteError = 1 }} TfLiteStatus;
namespace tflite {{
template <unsigned int tOpCount>
class MicroMutableOpResolver {{
 public:
  unsigned int registered = 0;
{methods}
 private:
  TfLiteStatus Add() {{
    if (registered >= tOpCount) return kTfLiteError;
    ++registered;
    return kTfLiteOk;
  }}
}};
}}  // namespace tflite
""")


HOST_MAIN = r"""
#include <cstdio>
#include "arena.h"
#include "edge_labels.h"
#include "labels.h"
#include "model_data.h"
#include "op_resolver.h"

int main(int argc, char** argv) {
  ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk || resolver.registered != kNumModelOps) return 3;
  if (kTensorArenaSize % 16 != 0 || reinterpret_cast<unsigned long>(g_tensor_arena) % 16) return 4;
  if (reinterpret_cast<unsigned long>(MODEL) % 16 != 0) return 5;
  edge_labels_record_t record = {};
  record.label = 1;
  record.score_q16 = edge_labels_quantize_score(0.5f);
  uint8_t frame[EDGE_LABELS_MAX_FRAME];
  if (edge_labels_encode_binary(&record, frame, sizeof frame) == 0) return 6;
  FILE* out = std::fopen(argv[1], "wb");
  if (out == nullptr) return 2;
  std::fwrite(MODEL, 1, MODEL_size, out);
  std::fclose(out);
  return argc == 2 ? 0 : 1;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_generated_sources_compile_and_the_array_reads_back(tmp_path: Path) -> None:
    model = shared_file("models/person_detect.tflite")
    result = export_model(model, "nano33ble", tmp_path / "fw")
    src = result.out / "src"
    write_stub_resolver(tmp_path / "include")
    name = "g_person_detect_model"
    (tmp_path / "host_main.cc").write_text(HOST_MAIN.replace("MODEL", name))
    program = tmp_path / "host"
    sources = [src / "model_data.cc", src / "arena.cc", src / "labels.cc",
               tmp_path / "host_main.cc"]
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1",
                    f"-I{src}", f"-I{tmp_path / 'include'}", *map(str, sources),
                    "-o", str(program)], check=True, capture_output=True, timeout=300)
    copy = tmp_path / "readback.tflite"
    subprocess.run([str(program), str(copy)], check=True, timeout=60)
    assert copy.read_bytes() == result.model_path.read_bytes() == model.read_bytes()


STUBS = {
    # ESP-IDF 5's partition API, as declared in its esp_partition.h (ESP32 maps the slot).
    "esp_partition.h": """#pragma once
#include <cstddef>
#include <cstdint>
typedef int esp_err_t;
#define ESP_OK 0
typedef enum { ESP_PARTITION_TYPE_APP = 0x00, ESP_PARTITION_TYPE_DATA = 0x01 }
    esp_partition_type_t;
typedef enum { ESP_PARTITION_SUBTYPE_ANY = 0xff } esp_partition_subtype_t;
typedef enum { ESP_PARTITION_MMAP_DATA, ESP_PARTITION_MMAP_INST } esp_partition_mmap_memory_t;
typedef uint32_t esp_partition_mmap_handle_t;
typedef struct { uint32_t address; uint32_t size; } esp_partition_t;
const esp_partition_t* esp_partition_find_first(esp_partition_type_t type,
                                                esp_partition_subtype_t subtype,
                                                const char* label);
esp_err_t esp_partition_mmap(const esp_partition_t* partition, size_t offset, size_t size,
                             esp_partition_mmap_memory_t memory, const void** out_ptr,
                             esp_partition_mmap_handle_t* out_handle);
""",
    "Arduino.h": """#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
struct SerialStub {
  void begin(unsigned long) {}
  size_t write(const uint8_t* data, size_t n) { return fwrite(data, 1, n, stdout); }
};
inline SerialStub Serial;
inline uint32_t millis() { return 0; }
inline uint32_t micros() { return 0; }
inline void delay(unsigned long) {}
""",
    "tensorflow/lite/schema/schema_generated.h": """#pragma once
namespace tflite {
struct Model {};
inline const Model* GetModel(const void*) { static Model m; return &m; }
}  // namespace tflite
""",
    "tensorflow/lite/micro/micro_interpreter.h": """#pragma once
#include <cstdint>
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
typedef enum { kTfLiteFloat32 = 1, kTfLiteUInt8 = 3, kTfLiteInt8 = 9 } TfLiteType;
struct TfLiteIntArray { int size; int data[4]; };
struct TfLiteQuantizationParams { float scale; int32_t zero_point; };
union TfLitePtrUnion { int8_t* int8; uint8_t* uint8; float* f; char* raw; };
struct TfLiteTensor {
  TfLiteType type; TfLitePtrUnion data; TfLiteIntArray* dims; TfLiteQuantizationParams params;
};
namespace tflite {
class MicroInterpreter {
 public:
  template <typename Resolver>
  MicroInterpreter(const Model*, const Resolver&, uint8_t*, size_t) {}
  TfLiteStatus AllocateTensors() { return kTfLiteOk; }
  TfLiteStatus Invoke() { return kTfLiteOk; }
  TfLiteTensor* input(size_t) { return &input_; }
  TfLiteTensor* output(size_t) { return &output_; }
 private:
  TfLiteTensor input_{}, output_{};
};
}  // namespace tflite
""",
}


def write_api_stubs(include: Path, changes: tuple[tuple[str, str], ...] = ()) -> None:
    """The resolver, interpreter and Arduino stand-ins main.cpp compiles against, with each
    ``(old, new)`` text change applied."""
    write_stub_resolver(include)
    for relative, text in STUBS.items():
        for old, new in changes:
            text = text.replace(old, new)
        (include / relative).parent.mkdir(parents=True, exist_ok=True)
        (include / relative).write_text(text)


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_main_cpp_compiles_against_api_stubs(tmp_path: Path) -> None:
    """main.cpp is valid C++ for the TFLM / Arduino / label-encoder names it uses."""
    result = export_model(shared_file("models/person_detect.tflite"), "nano33ble",
                          tmp_path / "fw")
    include = tmp_path / "include"
    write_api_stubs(include)
    src = result.out / "src"
    slot = ["-DEDGE_USE_MODEL_SLOT=1", "-DEDGE_MODEL_SLOT_ADDRESS=0xB0000u",
            "-DEDGE_MODEL_SLOT_LENGTH=0x50000u", "-DEDGE_BOARD_ID=0x1u"]
    for flags in ([], slot, [*slot, "-DESP_PLATFORM"]):
        subprocess.run(["g++", "-std=gnu++17", "-Wall", "-Werror", "-fsyntax-only", *flags,
                        f"-I{src}", f"-I{include}", str(src / "main.cpp")],
                       check=True, capture_output=True, text=True, timeout=300)


FAILING_INVOKE_MAIN = r"""
#include <cstdint>
void setup();
void loop();
int main() {
  setup();
  for (int i = 0; i < 6; ++i) loop();
  return 0;
}
"""


def test_main_cpp_writes_only_frames_once_the_stream_is_binary(tmp_path: Path) -> None:
    """Every other Invoke fails: the stream after STREAM_START holds only valid frames, and the
    failures show as skipped sequence numbers, never as text."""
    from edge.serial.protocol import LabelRecord, decode_frame

    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("needs g++ (apt install g++)")
    result = export_model(shared_file("models/person_detect.tflite"), "nano33ble",
                          tmp_path / "fw")
    include = tmp_path / "include"
    write_api_stubs(include, (
        ("TfLiteStatus Invoke() { return kTfLiteOk; }",
         "TfLiteStatus Invoke() { return (calls_++ % 2) ? kTfLiteError : kTfLiteOk; }\n"
         "  int calls_ = 0;"),
        ("TfLiteTensor* output(size_t) { return &output_; }",
         "TfLiteTensor* output(size_t) { output_.type = kTfLiteInt8; output_.data.int8 = out_; "
         "output_.dims = &dims_; output_.params.scale = 1.0f / 256; return &output_; }\n"
         "  int8_t out_[2] = {-100, 100};\n  TfLiteIntArray dims_{2, {1, 2}};"),
        ("TfLiteTensor* input(size_t) { return &input_; }",
         "TfLiteTensor* input(size_t) { input_.data.int8 = in_; return &input_; }\n"
         "  int8_t in_[96 * 96] = {};")))
    (tmp_path / "host.cc").write_text(FAILING_INVOKE_MAIN)
    src = result.out / "src"
    program = tmp_path / "firmware"
    subprocess.run([gxx, "-std=gnu++17", "-Wall", "-Werror", f"-I{src}", f"-I{include}",
                    str(src / "main.cpp"), str(src / "arena.cc"), str(src / "model_data.cc"),
                    str(src / "labels.cc"), str(tmp_path / "host.cc"), "-o", str(program)],
                   check=True, capture_output=True, text=True, timeout=300)
    out = subprocess.run([str(program)], check=True, capture_output=True, timeout=60).stdout
    assert out[:1] == b"\0"  # STREAM_START first: nothing went wrong during setup
    chunks = [c for c in out[1:].split(b"\0") if c]
    records = [decode_frame(c) for c in chunks]
    assert all(isinstance(r, LabelRecord) for r in records), records
    assert [r.seq for r in records if isinstance(r, LabelRecord)] == [0, 2, 4]
    assert all(r.label == 1 for r in records if isinstance(r, LabelRecord))
