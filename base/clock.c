/* base/clock.c: wall and monotonic time with a test seam; any thread. */
#include "base/clock.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

static _Atomic int64_t clock_offset;
static _Atomic int64_t clock_manual;
static _Atomic bool clock_is_manual;

static int64_t ms_of(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_now(void) {
    if (atomic_load(&clock_is_manual))
        return atomic_load(&clock_manual);
    return ms_of(CLOCK_REALTIME) + atomic_load(&clock_offset);
}

int64_t clock_monotonic_ms(void) {
    return ms_of(CLOCK_MONOTONIC);
}

void clock_set_offset(int64_t offset_ms) {
    atomic_store(&clock_offset, offset_ms);
}

void clock_set_manual(int64_t now_ms) {
    atomic_store(&clock_manual, now_ms);
    atomic_store(&clock_is_manual, true);
}

void clock_advance(int64_t ms) {
    if (atomic_load(&clock_is_manual))
        atomic_fetch_add(&clock_manual, ms);
    else
        atomic_fetch_add(&clock_offset, ms);
}

void clock_reset(void) {
    atomic_store(&clock_is_manual, false);
    atomic_store(&clock_offset, 0);
}
