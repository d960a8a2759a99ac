/*
 * storage/scan_bench.c: what the prefix bloom filters of CF_INBOXES buy.
 *
 *   scan_bench [--no-prefix-bloom] [devices (10000)] [operations per figure (100000)]
 *
 * Builds a fresh store in $TEST_TMPDIR (or /tmp) in which half the devices have an
 * inbox (a head and 4 items, compacted to the bottommost level, then 2 more
 * items for a third of them in each of 3 level-0 files) and the other half
 * none, like a replay after a reconnect finds it. Then, each for the given
 * number of operations on random devices, prints the CPU time of the thread
 * (CLOCK_THREAD_CPUTIME_ID) per operation of:
 *   - a replay page of a device with items: store_scan() by the device id
 *     after its position 0, at most 64 records, as server/delivery.c does;
 *   - the same for a device without items;
 *   - store_get() of an absent item key (a device with items, a position it
 *     never had).
 * --no-prefix-bloom opens the store without prefix extractors
 * (store_config.no_prefix_bloom) for the comparison.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/status.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "storage/store_internal.h"
#include "storage/testutil.h"

#define ITEMS_FIRST 4     /* per device with items, in the bottommost level */
#define ITEMS_LATER 2     /* per third of them, in each level-0 file */
#define LEVEL0_FILES 3    /* below the level-0 compaction trigger (4) */
#define VALUE_BYTES 96    /* about an inbox item's record */
#define PAGE 64           /* DELIVERY_PAGE of server/delivery.h */
#define BATCH_WRITES 1000 /* per transaction while building */

static void die(const char *what, int rc) {
    fprintf(stderr, "scan_bench: %s failed: %d\n", what, rc);
    exit(1);
}

/* Writes `key` into an open batch, committing it every BATCH_WRITES writes. */
static void put(struct store *s, struct store_txn **t, const struct key *k) {
    static const uint8_t value[VALUE_BYTES];
    int rc;
    if (!*t && (rc = store_txn_begin(s, t)) != 0)
        die("store_txn_begin", rc);
    if ((rc = txn_put(*t, CF_INBOXES, k->b, k->len, NULL, value, sizeof value)) != 0)
        die("txn_put", rc);
    if (store_txn_count(*t) >= BATCH_WRITES) {
        if ((rc = store_txn_commit(*t)) != 0)
            die("store_txn_commit", rc);
        store_txn_free(*t);
        *t = NULL;
    }
}

static void commit_and_flush(struct store *s, struct store_txn **t) {
    int rc;
    if (*t && (rc = store_txn_commit(*t)) != 0)
        die("store_txn_commit", rc);
    store_txn_free(*t);
    *t = NULL;
    if ((rc = store_flush(s)) != 0)
        die("store_flush", rc);
}

/* Devices [0, n/2) have items, the others none. */
static void build(struct store *s, const struct id *devices, size_t n) {
    struct store_txn *t = NULL;
    struct key k;
    for (size_t d = 0; d < n / 2; d++) {
        key_id(&k, &devices[d]);
        put(s, &t, &k);
        for (uint64_t pos = 1; pos <= ITEMS_FIRST; pos++) {
            key_id_u64(&k, &devices[d], pos);
            put(s, &t, &k);
        }
    }
    commit_and_flush(s, &t);
    store_compact(s);
    for (uint64_t file = 0; file < LEVEL0_FILES; file++) {
        for (size_t d = file; d < n / 2; d += 3) {
            for (uint64_t i = 0; i < ITEMS_LATER; i++) {
                key_id_u64(&k, &devices[d], ITEMS_FIRST + 1 + file * ITEMS_LATER + i);
                put(s, &t, &k);
            }
        }
        commit_and_flush(s, &t);
    }
}

static bool count(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                  size_t value_len) {
    (*(size_t *)ctx)++;
    return true;
}

enum op { SCAN_ITEMS, SCAN_NONE, GET_ABSENT };

/* Runs `ops` operations of kind `op` on random devices; returns µs per
 * operation, and the records they visited through *visited. */
static double run(struct store *s, const struct id *devices, size_t n, enum op op, size_t ops,
                  size_t *visited) {
    struct buf v;
    buf_init(&v);
    *visited = 0;
    double start = testutil_thread_seconds();
    for (size_t i = 0; i < ops; i++) {
        size_t d = randombytes_uniform((uint32_t)(n / 2)) + (op == SCAN_NONE ? n / 2 : 0);
        struct key k;
        int rc;
        if (op == GET_ABSENT) {
            key_id_u64(&k, &devices[d], 1000000 + i);
            rc = store_get(s, CF_INBOXES, k.b, k.len, &v);
            if (rc != STATUS_NOT_FOUND)
                die("store_get", rc);
        } else {
            key_id_u64(&k, &devices[d], 0);
            rc = store_scan(s, CF_INBOXES, devices[d].b, ID_LEN, k.b, k.len, PAGE, count, visited);
            if (rc < 0)
                die("store_scan", rc);
        }
    }
    double us = (testutil_thread_seconds() - start) * 1e6 / (double)ops;
    buf_cleanup(&v);
    return us;
}

int main(int argc, char **argv) {
    int arg = 1;
    bool no_prefix_bloom = argc > arg && strcmp(argv[arg], "--no-prefix-bloom") == 0;
    arg += no_prefix_bloom;
    size_t n = argc > arg ? strtoul(argv[arg++], NULL, 10) : 10000;
    size_t ops = argc > arg ? strtoul(argv[arg++], NULL, 10) : 100000;
    if (n < 6 || ops == 0 || argc > arg || sodium_init() < 0) {
        fprintf(stderr, "usage: scan_bench [--no-prefix-bloom] [devices] [operations]\n");
        return 2;
    }
    char *dir;
    struct id *devices;
    struct store *s = testutil_bench_store(
        "scan-bench", (struct store_config){.no_prefix_bloom = no_prefix_bloom}, &dir, n, &devices);
    build(s, devices, n);

    printf("scan_bench: %s, %zu devices (half with items), %zu operations each, CPU time of "
           "one thread\n",
           no_prefix_bloom ? "without prefix bloom" : "with prefix bloom", n, ops);
    static const char *const names[] = {
        [SCAN_ITEMS] = "replay page, device with items",
        [SCAN_NONE] = "replay page, device without   ",
        [GET_ABSENT] = "get of an absent item         ",
    };
    for (enum op op = SCAN_ITEMS; op <= GET_ABSENT; op++) {
        size_t visited;
        double us = run(s, devices, n, op, ops, &visited);
        printf("  %s %7.2f us  (%.1f records each)\n", names[op], us,
               (double)visited / (double)ops);
    }
    store_close(s);
    free(devices);
    testutil_remove_tree(dir);
    free(dir);
    return 0;
}
