/*
 * storage/seal_bench.c: values sealed and opened per second by one thread.
 *
 *   seal_bench [seconds per run (2)] [plaintext bytes ...(32 512 4096)]
 *
 * For each size, seals one value under a prepared data key for the given time
 * (seal_value(), SEAL_AUTO), then opens it as often (seal_open()), with the cf
 * name and a 24-byte record key of an inbox item, as the store does for each
 * record it writes or reads. Prints values/s and ns per value, CPU time of the
 * thread (CLOCK_THREAD_CPUTIME_ID), so a busy machine slows it less.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "base/buf.h"
#include "storage/seal.h"

static double thread_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs seal_value() (open false) or seal_open() for `seconds`; returns values/s. */
static double run(const struct seal_key *key, bool open, double seconds, const struct buf *plain,
                  struct buf *sealed) {
    static const uint8_t rkey[24] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const struct seal_key_id kid = {.version = 1};
    struct buf out;
    buf_init(&out);
    unsigned long long n = 0;
    double start = thread_seconds(), now = start;
    while (now - start < seconds) {
        for (int i = 0; i < 256; i++) {
            int rc = open ? seal_open(SEAL_AUTO, key, "inboxes", rkey, sizeof rkey, sealed->data,
                                      sealed->len, &out)
                          : seal_value(SEAL_AUTO, key, &kid, "inboxes", rkey, sizeof rkey,
                                       plain->data, plain->len, sealed);
            if (rc != 0) {
                fprintf(stderr, "seal_bench: %s failed: %d\n", open ? "seal_open" : "seal_value",
                        rc);
                exit(1);
            }
        }
        n += 256;
        now = thread_seconds();
    }
    buf_cleanup(&out);
    return (double)n / (now - start);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    static const size_t default_sizes[] = {32, 512, 4096};
    size_t nsizes = argc > 2 ? (size_t)(argc - 2) : sizeof default_sizes / sizeof *default_sizes;
    if (seconds <= 0 || seal_init() != 0) {
        fprintf(stderr, "usage: seal_bench [seconds per run] [plaintext bytes ...]\n");
        return 2;
    }
    uint8_t bytes[SEAL_KEY_LEN];
    randombytes_buf(bytes, sizeof bytes);
    struct seal_key key;
    seal_key_prepare(bytes, &key);
    sodium_memzero(bytes, sizeof bytes);
    printf("seal_bench: %s AES-256-GCM, %.1f s per run, CPU time of one thread\n",
           seal_sodium_available() ? "libsodium" : "OpenSSL", seconds);
    struct buf plain, sealed;
    buf_init(&plain);
    buf_init(&sealed);
    for (size_t i = 0; i < nsizes; i++) {
        size_t size = argc > 2 ? (size_t)strtoul(argv[2 + i], NULL, 10) : default_sizes[i];
        buf_reset(&plain);
        for (size_t j = 0; j < size; j++)
            buf_append_u8(&plain, (uint8_t)j);
        double seals = run(&key, false, seconds, &plain, &sealed);
        double opens = run(&key, true, seconds, &plain, &sealed);
        printf("%6zu bytes: seal %9.0f values/s (%6.0f ns), open %9.0f values/s (%6.0f ns)\n", size,
               seals, 1e9 / seals, opens, 1e9 / opens);
    }
    sodium_memzero(&key, sizeof key);
    buf_cleanup(&plain);
    buf_cleanup(&sealed);
    return 0;
}
