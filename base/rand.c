/* base/rand.c: kernel randomness with a test seam. */
#include "base/rand.h"

#include <errno.h>
#include <pthread.h>
#include <sys/random.h>

#include "base/check.h"

static pthread_mutex_t rand_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*rand_fn)(void *ctx, void *buf, size_t n);
static void *rand_ctx;

static void kernel_bytes(uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        CHECK(got > 0);
        p += got;
        n -= (size_t)got;
    }
}

void rand_bytes(void *buf, size_t n) {
    pthread_mutex_lock(&rand_lock);
    void (*fn)(void *, void *, size_t) = rand_fn;
    void *ctx = rand_ctx;
    pthread_mutex_unlock(&rand_lock);
    if (fn)
        fn(ctx, buf, n);
    else
        kernel_bytes(buf, n);
}

void rand_set_source(void (*fn)(void *ctx, void *buf, size_t n), void *ctx) {
    pthread_mutex_lock(&rand_lock);
    rand_fn = fn;
    rand_ctx = ctx;
    pthread_mutex_unlock(&rand_lock);
}
