// sizeof / alignof of the TFLM structs the arena model uses, printed as "NAME SIZE ALIGN".
// Compiled by tests/test_tflm_abi.py with each compiler against ../shared/tflm's headers only
// (no library): private members are opened to reach the planner's internal records.
#include <stdio.h>
#include <stddef.h>
#define private public
#define protected public
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_allocation_info.h"
#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
#include "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/kernels/conv.h"
#include "tensorflow/lite/micro/kernels/fully_connected.h"
#include "tensorflow/lite/micro/kernels/add.h"
#include "tensorflow/lite/micro/kernels/reduce.h"
#include "tensorflow/lite/micro/kernels/quantize.h"
#include "tensorflow/lite/micro/kernels/pooling.h"
#include "tensorflow/lite/micro/kernels/softmax.h"
#include "tensorflow/lite/micro/kernels/pad.h"
#include "tensorflow/lite/micro/kernels/mul.h"
#include "tensorflow/lite/core/c/builtin_op_data.h"
#undef private
#undef protected
#define N(NAME, T) printf("%s %u %u\n", NAME, (unsigned)sizeof(T), (unsigned)alignof(T));
#define S(T) printf("%s %u %u\n", #T, (unsigned)sizeof(T), (unsigned)alignof(T));
using namespace tflite;
using tflite::internal::ScratchBufferRequest;
using BufferRequirements = GreedyMemoryPlanner::BufferRequirements;
using ListEntry = GreedyMemoryPlanner::ListEntry;
int main() {
S(SingleArenaBufferAllocator) S(GreedyMemoryPlanner) S(MicroAllocator) S(SubgraphAllocations)
S(TfLiteEvalTensor) S(NodeAndRegistration) S(TfLiteTensor) S(TfLiteAffineQuantization) S(AllocationInfo)
S(BufferRequirements) S(ListEntry) S(ScratchBufferHandle) S(ScratchBufferRequest)
S(TfLiteConvParams) S(TfLiteDepthwiseConvParams) S(TfLiteFullyConnectedParams) S(TfLiteAddParams) S(TfLiteReducerParams) S(TfLiteSoftmaxParams) S(TfLitePoolParams) S(TfLiteReshapeParams) S(TfLiteMulParams)
S(OpDataConv) S(OpDataFullyConnected) S(OpDataAdd) S(OpDataReduce) S(OpDataQuantizeReference) S(OpDataPooling) S(SoftmaxParams) S(TfLiteNode) S(TfLiteIntArray)
S(TfLiteConcatenationParams) N("OpDataConcatenation", ConcatenationParams) N("OpDataPad", tflite::OpData) S(OpDataMul)
return 0; }
