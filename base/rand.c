/*
 * base/rand.c: kernel randomness. The test seam (rand_set_source()) lives in
 * base/rand_testing.c, a testonly library: a production binary cannot link
 * it (Bazel refuses a testonly dependency of a non-test target), and without
 * it the weak hook below is NULL, so nothing can replace the kernel's CSPRNG.
 */
#include "base/rand.h"

#include <errno.h>
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

void rand_bytes(void *buf, size_t n) {
    if (rand_test_hook != NULL && rand_test_hook(buf, n))
        return;
    kernel_bytes(buf, n);
}
