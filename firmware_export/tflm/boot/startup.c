/* Vector table and fault handlers for running a program under qemu-system-arm (MPS2 boards).
 *
 * Reset jumps to newlib's _start (rdimon crt0: semihosting arguments, .bss, constructors, main,
 * exit code through semihosting). A fault (bad memory access, undefined instruction, ...) ends
 * the program with exit code 128 + 11, the way a host process dies of SIGSEGV, so the caller
 * tells a crash from a refusal. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

extern void _start(void);
extern uint32_t __StackTop;

#define EDGE_FAULT_EXIT (128 + 11)

void edge_reset(void) {
  _start();
  for (;;) {
  }
}

void edge_fault(void) {
  _exit(EDGE_FAULT_EXIT);
}

typedef void (*edge_vector)(void);

__attribute__((section(".edge_vectors"), used)) const edge_vector edge_vector_table[16] = {
    (edge_vector)(uintptr_t)&__StackTop, /* initial stack pointer */
    edge_reset,                          /* reset */
    edge_fault,                          /* NMI */
    edge_fault,                          /* HardFault */
    edge_fault,                          /* MemManage */
    edge_fault,                          /* BusFault */
    edge_fault,                          /* UsageFault */
    0, 0, 0, 0,
    edge_fault,                          /* SVCall */
    edge_fault,                          /* DebugMonitor */
    0,
    edge_fault,                          /* PendSV */
    edge_fault,                          /* SysTick */
};

#ifdef __cplusplus
}
#endif
