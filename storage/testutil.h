/*
 * storage/testutil.h: helpers shared by the storage tests and benchmarks
 * (testonly): fresh
 * directories under $TEST_TMPDIR, searching raw files for plaintext, copying a
 * directory tree, capturing the log (stderr), and a completion counter that the
 * journal's `wake` can signal. Single-threaded unless said otherwise.
 */
#ifndef STORAGE_TESTUTIL_H
#define STORAGE_TESTUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"
#include "storage/store.h"

/* A new empty directory $TEST_TMPDIR/<name>-<n> (or under /tmp). Free with free(). */
char *testutil_fresh_dir(const char *name);

/* Removes `path` and everything under it (the benchmarks' fresh stores). */
void testutil_remove_tree(const char *path);

/* "<dir>/<name>"; free with free(). */
char *testutil_path(const char *dir, const char *name);

/* True when any regular file under `dir` (recursively) contains `needle`. */
bool testutil_tree_contains(const char *dir, const void *needle, size_t len);

/* Copies the tree at `from` into the new directory `to`. Returns 0 or -1. */
int testutil_copy_tree(const char *from, const char *to);

/* Writes `len` bytes to a new file with `mode`. Returns 0 or -1. */
int testutil_write_file(const char *path, const void *data, size_t len, unsigned mode);

/* Reads a whole file; free with free(). NULL when it cannot be read. */
uint8_t *testutil_read_file(const char *path, size_t *len);

/* Redirects stderr (the log) into a temporary file until testutil_capture_end(),
 * which returns what was written (NUL-terminated; free with free()). */
void testutil_capture_begin(void);
char *testutil_capture_end(void);

/* A counter of wake-ups, safe from any thread. */
struct testutil_waker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t wakes;
};
void testutil_waker_init(struct testutil_waker *w);
void testutil_waker_cleanup(struct testutil_waker *w);
/* A journal/bus `wake` function: ctx is a struct testutil_waker. */
void testutil_wake(void *ctx);
/* Waits until wakes > seen or timeout_ms passes; returns the current count. */
uint64_t testutil_waker_wait(struct testutil_waker *w, uint64_t seen, int timeout_ms);

/* STORE_CREATE for a data directory without a database (no DIR/db), else
 * STORE_OPEN: for tests that open the same directory fresh and again. */
enum store_mode testutil_store_mode(const char *data_dir);

/* Milliseconds on a monotonic clock. */
int64_t testutil_now_ms(void);

/* CPU seconds this thread has used (CLOCK_THREAD_CPUTIME_ID): the benchmarks'
 * figure, which a busy machine disturbs less than the wall clock. */
double testutil_thread_seconds(void);

/* For the benchmarks: a store created in a fresh directory (*dir, free with
 * free() after testutil_remove_tree()) from `cfg`'s options, the log quieted
 * to errors (not the new master key's warning), and `n` random device ids
 * (*devices, free with free()). Exits the process when the store does not
 * open. */
struct store *testutil_bench_store(const char *name, struct store_config cfg, char **dir, size_t n,
                                   struct id **devices);

#endif
