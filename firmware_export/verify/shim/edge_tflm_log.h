// TFLM's cortex_m_generic DebugLog drops messages unless a callback is registered (the
// CMSIS-NN tree uses it); route them to stderr. Other trees print to stderr themselves.
#ifndef EDGE_TFLM_LOG_H_
#define EDGE_TFLM_LOG_H_

#include <stdio.h>

#if defined(EDGE_TFLM_LOG_CALLBACK)
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
static void edge_tflm_log(const char* message) { fputs(message, stderr); }
static inline void edge_tflm_log_init() { RegisterDebugLogCallback(edge_tflm_log); }
#else
static inline void edge_tflm_log_init() {}
#endif

#endif  // EDGE_TFLM_LOG_H_
