/* base/rand.c: kernel randomness with a test seam; 128-bit ids. */
#include "base/rand.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/hex.h"
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
    struct buf b;
    buf_init(&b);
    hex_encode(id->b, ID_LEN, &b);
    memcpy(out, b.data, ID_HEX_LEN + 1);
    buf_cleanup(&b);
}

int id_from_hex(const char *hex, struct id *out) {
    if (strlen(hex) != ID_HEX_LEN)
        return STATUS_BAD_REQUEST;
    struct buf b;
    buf_init(&b);
    int rc = hex_decode(hex, ID_HEX_LEN, &b);
    if (rc == 0)
        memcpy(out->b, b.data, ID_LEN);
    buf_cleanup(&b);
    return rc;
}

int id_from_bytes(const uint8_t *bytes, size_t len, struct id *out) {
    if (len != ID_LEN)
        return STATUS_BAD_REQUEST;
    memcpy(out->b, bytes, ID_LEN);
    return STATUS_OK;
}
