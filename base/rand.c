/*
 * base/rand.c: kernel randomness. The test seam (rand_set_source()) lives in
 * base/rand_testing.c, a testonly library: a production binary cannot link
 * it (Bazel refuses a testonly dependency of a non-test target), and without
 * it the weak hook below is NULL, so nothing can replace the kernel's CSPRNG.
 */
#include "base/rand.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "base/check.h"

/* Defined by base/rand_testing.c when a test links it: fills buf and returns
 * true while a test source is installed. */
bool rand_test_hook(void *buf, size_t n) __attribute__((weak));

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

/* Each thread's bytes read ahead from the kernel: pool.bytes[RAND_POOL_LEN -
 * left ..] are unused, the rest zeros. A forked child empties its copy, so
 * that parent and child never hand out the same bytes. */
#define RAND_POOL_LEN 512
#define RAND_POOLED_MAX 64 /* larger requests go to the kernel directly */
static _Thread_local struct {
    uint8_t bytes[RAND_POOL_LEN];
    size_t left;
} pool;

static void pool_forget(void) {
    explicit_bzero(pool.bytes, sizeof pool.bytes);
    pool.left = 0;
}

static void pool_register(void) {
    CHECK(pthread_atfork(NULL, NULL, pool_forget) == 0);
}

static void pooled_bytes(uint8_t *p, size_t n) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (pool.left < n) {
        pthread_once(&once, pool_register);
        kernel_bytes(pool.bytes, RAND_POOL_LEN);
        pool.left = RAND_POOL_LEN;
    }
    uint8_t *from = pool.bytes + RAND_POOL_LEN - pool.left;
    memcpy(p, from, n);
    explicit_bzero(from, n);
    pool.left -= n;
}

void rand_bytes(void *buf, size_t n) {
    if (rand_test_hook != NULL && rand_test_hook(buf, n))
        return;
    if (n <= RAND_POOLED_MAX)
        pooled_bytes(buf, n);
    else
        kernel_bytes(buf, n);
}
