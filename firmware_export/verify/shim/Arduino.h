/* A small Arduino-compatible shim for running an exported main.cpp on a host or under QEMU.
 *
 * Serial writes its bytes to stdout unchanged (the label stream, binary or text); millis() and
 * micros() count from the program's start; delay() returns at once. The program's main()
 * (edge_harness.cpp) calls setup() and then loop() once per input frame. */
#ifndef EDGE_ARDUINO_SHIM_H_
#define EDGE_ARDUINO_SHIM_H_

#include <stddef.h>
#include <stdint.h>

uint32_t millis();
uint32_t micros();
void delay(uint32_t ms);

class ShimSerial {
 public:
  void begin(unsigned long baud);
  size_t write(uint8_t byte);
  size_t write(const uint8_t* data, size_t length);
  size_t write(const char* text);
  size_t print(const char* text);
  size_t println(const char* text);
  void flush();
  explicit operator bool() const { return true; }
};

extern ShimSerial Serial;

void setup();
void loop();

#endif  // EDGE_ARDUINO_SHIM_H_
