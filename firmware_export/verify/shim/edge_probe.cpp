// Probes an exported project's model array and op resolver on the real TFLM, one question per
// process (TFLM may crash on an arena that is too small; the caller counts that as "no fit").
//
//   probe fit N              -> "fit 1 used U" or "fit 0"
//   probe plan N             -> "tensor I OFFSET" for every tensor placed in the arena head
//   probe run N IN OUT       -> runs each input of IN (raw bytes of input 0), appends output 0's
//                               bytes to OUT, prints "ticks T" per inference (MPS2 TIMER0 under
//                               QEMU, 0 on a host)
//
// Built with -DEDGE_MODEL_ARRAY=<the array in model_data.h> and -DEDGE_PROBE_CAPACITY=<bytes>.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_cycle_timer.h"
#include "edge_tflm_log.h"
#include "model_data.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// Every tensor's placement without changing the plan: MicroInterpreter::GetTensor() needs
// preserve_all_tensors (another plan), so read the interpreter's graph (a private member)
// through the standard explicit-instantiation access idiom instead.
struct GraphMember {
  using type = tflite::MicroInterpreterGraph tflite::MicroInterpreter::*;
  friend type graph_member(GraphMember);
};
template <typename Tag, typename Tag::type Member>
struct Expose {
  friend typename Tag::type graph_member(Tag) { return Member; }
};
template struct Expose<GraphMember, &tflite::MicroInterpreter::graph_>;

alignas(16) uint8_t g_arena[EDGE_PROBE_CAPACITY];
ModelOpResolver g_resolver;

int Fail(const char* what) {
  fprintf(stderr, "probe: %s\n", what);
  return 3;
}

int Plan(tflite::MicroInterpreter& interpreter, const tflite::Model* model, size_t arena) {
  const auto* tensors = model->subgraphs()->Get(0)->tensors();
  const uint8_t* start = g_arena;
  TfLiteEvalTensor* eval = (interpreter.*graph_member(GraphMember())).GetAllocations()[0].tensors;
  for (size_t i = 0; i < tensors->size(); ++i) {
    const TfLiteEvalTensor* tensor = &eval[i];
    if (tensor->data.raw == nullptr) continue;
    const uint8_t* data = reinterpret_cast<const uint8_t*>(tensor->data.raw);
    if (data >= start && data < start + arena) {
      printf("tensor %u %ld\n", static_cast<unsigned>(i), static_cast<long>(data - start));
    }
  }
  return 0;
}

int Run(tflite::MicroInterpreter& interpreter, const char* in_path, const char* out_path) {
  FILE* in = fopen(in_path, "rb");
  FILE* out = fopen(out_path, "wb");
  if (in == nullptr || out == nullptr) return Fail("cannot open the input or output file");
  TfLiteTensor* input = interpreter.input(0);
  const TfLiteTensor* output = interpreter.output(0);
  while (fread(input->data.raw, 1, input->bytes, in) == input->bytes) {
    edge_timer_start();
    if (interpreter.Invoke() != kTfLiteOk) return Fail("Invoke failed");
    const uint32_t ticks = edge_timer_ticks();
    fwrite(output->data.raw, 1, output->bytes, out);
    printf("ticks %lu\n", static_cast<unsigned long>(ticks));
  }
  fclose(in);
  fclose(out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  edge_tflm_log_init();
  if (argc < 3) return Fail("usage: probe fit|plan|run ARENA [IN OUT]");
  const size_t arena = strtoul(argv[2], nullptr, 10);
  if (arena > sizeof g_arena) return Fail("arena larger than EDGE_PROBE_CAPACITY");
  const tflite::Model* model = tflite::GetModel(EDGE_MODEL_ARRAY);
  if (RegisterModelOps(g_resolver) != kTfLiteOk) return Fail("RegisterModelOps failed");
  tflite::MicroInterpreter interpreter(model, g_resolver, g_arena, arena);
  const bool fits = interpreter.AllocateTensors() == kTfLiteOk;
  if (strcmp(argv[1], "fit") == 0) {
    if (fits) {
      printf("fit 1 used %lu\n", static_cast<unsigned long>(interpreter.arena_used_bytes()));
    } else {
      printf("fit 0\n");
    }
    return 0;
  }
  if (!fits) return Fail("AllocateTensors failed");
  if (strcmp(argv[1], "plan") == 0) return Plan(interpreter, model, arena);
  if (strcmp(argv[1], "run") == 0 && argc == 5) return Run(interpreter, argv[3], argv[4]);
  return Fail("unknown command");
}
