/* Instruction counter for programs under qemu-system-arm -icount shift=0 on an MPS2 board.
 *
 * TIMER0 (CMSDK APB timer at 0x40000000) counts down at the 25 MHz peripheral clock. With
 * -icount shift=0 QEMU runs one instruction per nanosecond of virtual time, so one tick is
 * 40 instructions. (Semihosting clock() returns the host's time, not the guest's.) On a host
 * build the counter reads 0. */
#ifndef EDGE_CYCLE_TIMER_H_
#define EDGE_CYCLE_TIMER_H_

#include <stdint.h>

#define EDGE_INSTRUCTIONS_PER_TICK 40u

#if defined(__arm__) && defined(__ARM_ARCH_PROFILE) && (__ARM_ARCH_PROFILE == 'M')
#define EDGE_TIMER0 ((volatile uint32_t*)0x40000000u)

static inline void edge_timer_start(void) {
  EDGE_TIMER0[0] = 0;           /* CTRL: stop */
  EDGE_TIMER0[2] = 0xFFFFFFFFu; /* RELOAD */
  EDGE_TIMER0[1] = 0xFFFFFFFFu; /* VALUE */
  EDGE_TIMER0[0] = 1;           /* CTRL: enable */
}

/* Ticks since edge_timer_start() (the timer counts down). */
static inline uint32_t edge_timer_ticks(void) { return 0xFFFFFFFFu - EDGE_TIMER0[1]; }
#else
static inline void edge_timer_start(void) {}
static inline uint32_t edge_timer_ticks(void) { return 0; }
#endif

#endif /* EDGE_CYCLE_TIMER_H_ */
