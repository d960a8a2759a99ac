/*
 * base/clock.h: the time seam.
 *
 * Everything that needs the time of day asks clock_now(); tests move it with
 * clock_set_manual()/clock_advance() instead of sleeping. Handlers and proposers
 * read the clock and put the time into journal entries; apply never reads it
 * (DESIGN.md). clock_monotonic_ms() is for timeouts and latency figures and is
 * never moved. All functions are safe from any thread.
 */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch: the real time plus the configured offset,
 * or the manual time once clock_set_manual() was called. */
int64_t clock_now(void);

/* Milliseconds from an arbitrary fixed point; never jumps, never moved by tests. */
int64_t clock_monotonic_ms(void);

/* Adds `offset_ms` to the real time (carechatd's --clock-offset, for tests that
 * start the real binary in the future). */
void clock_set_offset(int64_t offset_ms);

/* Freezes the clock at `now_ms`; clock_now() returns it until changed. */
void clock_set_manual(int64_t now_ms);

/* Moves a manual clock forward by `ms`, or adds `ms` to the offset of a real one. */
void clock_advance(int64_t ms);

/* Back to the real time with no offset. */
void clock_reset(void);

#endif
