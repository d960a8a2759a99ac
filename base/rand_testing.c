/*
 * base/rand_testing.c: the randomness test seam (base/rand.h
 * rand_set_source()), in a testonly library of its own so that production
 * binaries never contain it.
 */
#include <pthread.h>

#include "base/rand.h"

static pthread_mutex_t rand_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*rand_fn)(void *ctx, void *buf, size_t n);
static void *rand_ctx;

bool rand_test_hook(void *buf, size_t n);

bool rand_test_hook(void *buf, size_t n) {
    pthread_mutex_lock(&rand_lock);
    void (*fn)(void *, void *, size_t) = rand_fn;
    void *ctx = rand_ctx;
    pthread_mutex_unlock(&rand_lock);
    if (fn == NULL)
        return false;
    fn(ctx, buf, n);
    return true;
}

void rand_set_source(void (*fn)(void *ctx, void *buf, size_t n), void *ctx) {
    pthread_mutex_lock(&rand_lock);
    rand_fn = fn;
    rand_ctx = ctx;
    pthread_mutex_unlock(&rand_lock);
}
