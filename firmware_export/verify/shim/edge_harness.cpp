// Runs an exported firmware (main.cpp) with the Arduino shim: setup(), then loop() once per
// frame of a raw input file, then a few more times (a firmware that refused to start idles
// there), saying on stderr how many timer ticks each loop() took ("edge-loop ticks T"; MPS2
// TIMER0 under QEMU, 0 on a host). Usage: firmware FRAMES_FILE FRAME_BYTES [EXTRA_LOOPS]
//
// edge_camera_frame() here replaces main.cpp's weak test pattern: it copies the next frame
// (the model's input tensor, byte for byte) from FRAMES_FILE and returns false when none is
// left.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "Arduino.h"
#include "edge_cycle_timer.h"
#include "edge_tflm_log.h"

ShimSerial Serial;

namespace {
FILE* g_frames = nullptr;
long g_frame_bytes = 0;
long g_frame_count = 0;
}  // namespace

extern "C" bool edge_camera_frame(void* pixels, int height, int width, int channels,
                                  uint32_t frame_index) {
  (void)frame_index;
  (void)height;
  (void)width;
  (void)channels;
  if (g_frames == nullptr || g_frame_bytes <= 0) return false;
  return fread(pixels, 1, static_cast<size_t>(g_frame_bytes), g_frames) ==
         static_cast<size_t>(g_frame_bytes);
}

uint32_t micros() {
#if defined(__arm__)
  return edge_timer_ticks() / 25u;  // TIMER0 runs at 25 MHz
#else
  static uint32_t fake = 0;
  return fake += 1000;
#endif
}
uint32_t millis() { return micros() / 1000u; }
void delay(uint32_t ms) { (void)ms; }

void ShimSerial::begin(unsigned long baud) { (void)baud; }
size_t ShimSerial::write(uint8_t byte) { return fwrite(&byte, 1, 1, stdout); }
size_t ShimSerial::write(const uint8_t* data, size_t length) {
  return fwrite(data, 1, length, stdout);
}
size_t ShimSerial::write(const char* text) { return fwrite(text, 1, strlen(text), stdout); }
size_t ShimSerial::print(const char* text) { return write(text); }
size_t ShimSerial::println(const char* text) { return write(text) + write("\r\n"); }
void ShimSerial::flush() { fflush(stdout); }

int main(int argc, char** argv) {
  edge_tflm_log_init();
  edge_timer_start();
  if (argc < 3) {
    fprintf(stderr, "usage: %s FRAMES_FILE FRAME_BYTES [EXTRA_LOOPS]\n", argv[0]);
    return 64;
  }
  g_frames = fopen(argv[1], "rb");
  if (g_frames == nullptr) {
    fprintf(stderr, "cannot open %s\n", argv[1]);
    return 66;
  }
  g_frame_bytes = atol(argv[2]);
  fseek(g_frames, 0, SEEK_END);
  g_frame_count = g_frame_bytes > 0 ? ftell(g_frames) / g_frame_bytes : 0;
  fseek(g_frames, 0, SEEK_SET);
  const long extra = argc > 3 ? atol(argv[3]) : 1;
  setup();
  for (long i = 0; i < g_frame_count + extra; ++i) {
    const uint32_t before = edge_timer_ticks();
    loop();
    const uint32_t ticks = edge_timer_ticks() - before;
    fprintf(stderr, "edge-loop ticks %lu\n", static_cast<unsigned long>(ticks));
  }
  fflush(stdout);
  fclose(g_frames);
  return 0;
}
