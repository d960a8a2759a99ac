/* base/rand.c: kernel randomness with a test seam; 128-bit ids. */
#include "base/rand.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "base/check.h"
#include "base/status.h"

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

struct id id_new(void) {
    struct id id;
    rand_bytes(id.b, sizeof id.b);
    return id;
}

void id_to_hex(const struct id *id, char out[ID_HEX_LEN + 1]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < ID_LEN; i++) {
        out[2 * i] = digits[id->b[i] >> 4];
        out[2 * i + 1] = digits[id->b[i] & 15];
    }
    out[ID_HEX_LEN] = '\0';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int id_from_hex(const char *hex, struct id *out) {
    if (strlen(hex) != ID_HEX_LEN)
        return STATUS_BAD_REQUEST;
    struct id id;
    for (int i = 0; i < ID_LEN; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return STATUS_BAD_REQUEST;
        id.b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = id;
    return STATUS_OK;
}

int id_from_bytes(const uint8_t *bytes, size_t len, struct id *out) {
    if (len != ID_LEN)
        return STATUS_BAD_REQUEST;
    memcpy(out->b, bytes, ID_LEN);
    return STATUS_OK;
}
