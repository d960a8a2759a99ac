/*
 * storage/inbox_bench.c: what the durable inbox alone costs per fan-out
 * delivery: the store's writes, their seals and RocksDB's work, without the
 * network, the protocol or the checks around them.
 *
 *   inbox_bench [devices (100)] [messages (3000)] [messages per commit (1)]
 *
 * A fresh store in $TEST_TMPDIR (or /tmp). Each message, for every device,
 * reads its inbox head, puts an item (ITEM_BYTES, as records_messages.h
 * encodes one) at the next position and puts the head back, as
 * apply_inbox_offer() does; the given number of messages share one synced
 * transaction, as the journal's group commit batches them (a head written
 * twice in one is written once: storage/store.h). Every ACK_EVERY messages
 * each device acknowledges: one transaction that reads and deletes its
 * acknowledged items and puts its head, as apply_inbox_ack() does. Prints the
 * CPU time of the process (RocksDB's flush and compaction threads included)
 * and of this thread per delivery, and the writes per delivery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <sodium.h>

#include "base/id.h"
#include "base/status.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "storage/store_internal.h"
#include "storage/testutil.h"

#define ITEM_BYTES 73 /* rec_item_encode() of a MESSAGE item */
#define HEAD_BYTES 57 /* rec_inbox_encode() of a head counting one sender */
#define ACK_EVERY 64  /* as carechat-bench --mode server acknowledges */

static double process_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "inbox_bench: %s failed: %d\n", what, rc);
    exit(1);
}

/* A head: its last and acknowledged positions, then filler to HEAD_BYTES. */
struct head {
    uint64_t last, acked;
};

static struct head read_head(struct store_txn *t, const struct id *device) {
    const uint8_t *v;
    size_t n;
    struct head h = {0};
    int rc = txn_view(t, CF_INBOXES, device->b, ID_LEN, &v, &n);
    if (rc == 0 && n == HEAD_BYTES) {
        h.last = key_get_u64(v);
        h.acked = key_get_u64(v + 8);
    } else if (rc != STATUS_NOT_FOUND) {
        die("reading a head", rc ? rc : STATUS_CORRUPT);
    }
    return h;
}

static void write_head(struct store_txn *t, const struct id *device, const struct head *h) {
    uint8_t v[HEAD_BYTES] = {0};
    key_put_u64(v, h->last);
    key_put_u64(v + 8, h->acked);
    int rc = txn_put(t, CF_INBOXES, device->b, ID_LEN, NULL, v, sizeof v);
    if (rc != 0)
        die("txn_put of a head", rc);
}

static void commit(struct store_txn *t) {
    int rc = store_txn_commit(t);
    if (rc != 0)
        die("store_txn_commit", rc);
    store_txn_free(t);
}

static struct store_txn *begin(struct store *s) {
    struct store_txn *t;
    int rc = store_txn_begin(s, &t);
    if (rc != 0)
        die("store_txn_begin", rc);
    return t;
}

/* One message offered to every device in `t`. */
static void offer(struct store_txn *t, const struct id *devices, size_t n) {
    int rc;
    uint8_t item[ITEM_BYTES];
    randombytes_buf(item, sizeof item);
    for (size_t d = 0; d < n; d++) {
        struct head h = read_head(t, &devices[d]);
        h.last++;
        struct key k;
        key_id_u64(&k, &devices[d], h.last);
        if ((rc = txn_put(t, CF_INBOXES, k.b, k.len, NULL, item, sizeof item)) != 0)
            die("txn_put of an item", rc);
        write_head(t, &devices[d], &h);
    }
}

/* Every device acknowledges all it holds, in one transaction. */
static void ack(struct store *s, const struct id *devices, size_t n) {
    struct store_txn *t = begin(s);
    int rc;
    for (size_t d = 0; d < n; d++) {
        struct head h = read_head(t, &devices[d]);
        for (uint64_t p = h.acked + 1; p <= h.last; p++) {
            struct key k;
            key_id_u64(&k, &devices[d], p);
            const uint8_t *v;
            size_t len;
            if ((rc = txn_view(t, CF_INBOXES, k.b, k.len, &v, &len)) != 0 ||
                (rc = txn_delete(t, CF_INBOXES, k.b, k.len)) != 0)
                die("acknowledging an item", rc);
        }
        h.acked = h.last;
        write_head(t, &devices[d], &h);
    }
    commit(t);
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    size_t messages = argc > 2 ? strtoul(argv[2], NULL, 10) : 3000;
    size_t group = argc > 3 ? strtoul(argv[3], NULL, 10) : 1;
    if (n == 0 || n > 10000 || messages == 0 || messages > 1000000 || group == 0 ||
        group > ACK_EVERY || argc > 4 || sodium_init() < 0) {
        fprintf(stderr,
                "usage: inbox_bench [devices (1-10000)] [messages (1-1000000)] "
                "[messages per commit (1-%d)]\n",
                ACK_EVERY);
        return 2;
    }
    char *dir;
    struct id *devices;
    struct store *s =
        testutil_bench_store("inbox-bench", (struct store_config){0}, &dir, n, &devices);

    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    size_t writes = 0; /* RocksDB's: each key's last write of a transaction */
    double proc0 = process_seconds(), thread0 = testutil_thread_seconds();
    struct store_txn *t = NULL;
    for (size_t m = 1; m <= messages; m++) {
        if (!t)
            t = begin(s);
        offer(t, devices, n);
        writes += n; /* the items */
        bool acks = m % ACK_EVERY == 0 || m == messages;
        if (acks || m % group == 0) {
            commit(t);
            t = NULL;
            writes += n; /* the heads */
        }
        if (acks) {
            size_t held = (m - 1) % ACK_EVERY + 1;
            ack(s, devices, n);
            writes += n * held + n; /* the items deleted, the heads */
        }
    }
    double proc = process_seconds() - proc0, thread = testutil_thread_seconds() - thread0;
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double deliveries = (double)n * (double)messages;
    printf("inbox_bench: %zu messages to %zu devices (%.0f deliveries) in %.2f s, %zu a commit, "
           "acknowledged every %d\n",
           messages, n, deliveries,
           (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9, group,
           ACK_EVERY);
    printf("  CPU per delivery: process %.2f us, this thread %.2f us; %.2f writes per delivery\n",
           proc * 1e6 / deliveries, thread * 1e6 / deliveries, (double)writes / deliveries);
    store_close(s);
    free(devices);
    testutil_remove_tree(dir);
    free(dir);
    return 0;
}
