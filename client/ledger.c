/*
 * client/ledger.c: the durable replay ledger (client/ledger.h): the records
 * in memory with two hash indexes (by client_msg_id and by counter), the
 * highest counter per (conversation, sender device), and the append-only
 * file. Caller's thread.
 */
#include "client/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"
#include "client/profile.h"

struct rec {
    struct id conv, dev, cmid, mid;
    uint64_t counter;
};

struct pair {
    struct id conv, dev;
    uint64_t max;
};

struct ledger {
    char *path;
    struct rec *recs;
    size_t n, cap;
    /* Open addressing, record index + 1 (0: empty), sized to a power of two
     * at least twice n. */
    uint32_t *by_cmid, *by_counter;
    size_t slots;
    struct pair *pairs;
    size_t n_pairs;
};

static uint64_t mix(const struct id *a, const struct id *b, const uint8_t *c, size_t c_len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < ID_LEN; i++)
        h = (h ^ a->b[i]) * 1099511628211ull;
    for (size_t i = 0; i < ID_LEN; i++)
        h = (h ^ b->b[i]) * 1099511628211ull;
    for (size_t i = 0; i < c_len; i++)
        h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_cmid(const struct rec *r) {
    return mix(&r->conv, &r->dev, r->cmid.b, ID_LEN);
}

static uint64_t hash_counter(const struct rec *r) {
    uint8_t c[8];
    for (int i = 0; i < 8; i++)
        c[i] = (uint8_t)(r->counter >> (56 - 8 * i));
    return mix(&r->conv, &r->dev, c, 8);
}

static void index_one(struct ledger *l, size_t i) {
    const size_t mask = l->slots - 1;
    size_t s = hash_cmid(&l->recs[i]) & mask;
    while (l->by_cmid[s] != 0)
        s = (s + 1) & mask;
    l->by_cmid[s] = (uint32_t)i + 1;
    s = hash_counter(&l->recs[i]) & mask;
    while (l->by_counter[s] != 0)
        s = (s + 1) & mask;
    l->by_counter[s] = (uint32_t)i + 1;
}

static void reindex(struct ledger *l) {
    size_t slots = 64;
    while (slots < 2 * (l->n + 1))
        slots *= 2;
    free(l->by_cmid);
    free(l->by_counter);
    l->slots = slots;
    l->by_cmid = xcalloc(slots, sizeof *l->by_cmid);
    l->by_counter = xcalloc(slots, sizeof *l->by_counter);
    for (size_t i = 0; i < l->n; i++)
        index_one(l, i);
}

static struct pair *find_pair(const struct ledger *l, const struct id *conv, const struct id *dev) {
    for (size_t i = 0; i < l->n_pairs; i++)
        if (id_equal(&l->pairs[i].conv, conv) && id_equal(&l->pairs[i].dev, dev))
            return &l->pairs[i];
    return NULL;
}

/* Adds `r` in memory. */
static void add(struct ledger *l, const struct rec *r) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->recs = xrealloc(l->recs, l->cap * sizeof *l->recs);
    }
    l->recs[l->n++] = *r;
    if (2 * (l->n + 1) > l->slots)
        reindex(l);
    else
        index_one(l, l->n - 1);
    struct pair *p = find_pair(l, &r->conv, &r->dev);
    if (p == NULL) {
        l->pairs = xrealloc(l->pairs, (l->n_pairs + 1) * sizeof *l->pairs);
        p = &l->pairs[l->n_pairs++];
        *p = (struct pair){r->conv, r->dev, 0};
    }
    if (r->counter > p->max)
        p->max = r->counter;
}

static void encode(const struct rec *r, uint8_t out[LEDGER_RECORD_LEN]) {
    memcpy(out, r->conv.b, ID_LEN);
    memcpy(out + 16, r->dev.b, ID_LEN);
    memcpy(out + 32, r->cmid.b, ID_LEN);
    memcpy(out + 48, r->mid.b, ID_LEN);
    for (int i = 0; i < 8; i++)
        out[64 + i] = (uint8_t)(r->counter >> (56 - 8 * i));
}

static void decode(const uint8_t *in, struct rec *r) {
    memcpy(r->conv.b, in, ID_LEN);
    memcpy(r->dev.b, in + 16, ID_LEN);
    memcpy(r->cmid.b, in + 32, ID_LEN);
    memcpy(r->mid.b, in + 48, ID_LEN);
    r->counter = 0;
    for (int i = 0; i < 8; i++)
        r->counter = r->counter << 8 | in[64 + i];
}

int ledger_open(const char *dir, struct ledger **out) {
    struct buf data;
    buf_init(&data);
    int rc = profile_read_file(dir, LEDGER_FILE,
                               (size_t)LEDGER_MAX_RECORDS * LEDGER_RECORD_LEN + LEDGER_RECORD_LEN,
                               &data);
    if (rc == STATUS_NOT_FOUND)
        rc = 0;
    if (rc != 0) {
        buf_cleanup(&data);
        return rc;
    }
    struct ledger *l = xcalloc(1, sizeof *l);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, LEDGER_FILE);
    l->path = xstrdup(path);
    reindex(l);
    /* A torn last record is left out (and overwritten by the next append). */
    for (size_t off = 0; off + LEDGER_RECORD_LEN <= data.len; off += LEDGER_RECORD_LEN) {
        struct rec r;
        decode(data.data + off, &r);
        add(l, &r);
    }
    buf_cleanup(&data);
    *out = l;
    return 0;
}

void ledger_free(struct ledger *l) {
    if (l == NULL)
        return;
    free(l->path);
    free(l->recs);
    free(l->by_cmid);
    free(l->by_counter);
    free(l->pairs);
    free(l);
}

static bool zero_id(const struct id *id) {
    static const struct id zero;
    return id_equal(id, &zero);
}

enum ledger_verdict ledger_check(const struct ledger *l, const struct id *conversation,
                                 const struct id *sender_device, const struct id *client_msg_id,
                                 uint64_t counter, const struct id *message_id, bool *gap) {
    *gap = false;
    struct rec probe = {*conversation, *sender_device, *client_msg_id, *message_id, counter};
    const size_t mask = l->slots - 1;
    bool same = false, other = false;
    for (size_t s = hash_cmid(&probe) & mask; l->by_cmid[s] != 0; s = (s + 1) & mask) {
        const struct rec *r = &l->recs[l->by_cmid[s] - 1];
        if (!id_equal(&r->conv, conversation) || !id_equal(&r->dev, sender_device) ||
            !id_equal(&r->cmid, client_msg_id))
            continue;
        if (id_equal(&r->mid, message_id) || zero_id(&r->mid))
            same = true;
        else
            other = true;
    }
    if (same)
        return LEDGER_SAME;
    if (other)
        return LEDGER_REPLAY;
    for (size_t s = hash_counter(&probe) & mask; l->by_counter[s] != 0; s = (s + 1) & mask) {
        const struct rec *r = &l->recs[l->by_counter[s] - 1];
        if (id_equal(&r->conv, conversation) && id_equal(&r->dev, sender_device) &&
            r->counter == counter)
            return LEDGER_REPLAY; /* the same counter, another message */
    }
    const struct pair *p = find_pair(l, conversation, sender_device);
    *gap = p != NULL && counter > p->max + 1;
    return LEDGER_NEW;
}

int ledger_record(struct ledger *l, const struct id *conversation, const struct id *sender_device,
                  const struct id *client_msg_id, const struct id *message_id, uint64_t counter) {
    if (l->n >= LEDGER_MAX_RECORDS)
        return STATUS_TOO_LARGE;
    struct rec r = {*conversation, *sender_device, *client_msg_id, *message_id, counter};
    uint8_t bytes[LEDGER_RECORD_LEN];
    encode(&r, bytes);
    int fd = open(l->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return STATUS_IO;
    int rc = 0;
    /* Whole records only: a torn tail is overwritten. */
    off_t at = lseek(fd, 0, SEEK_END);
    if (at < 0)
        rc = STATUS_IO;
    else
        at -= at % LEDGER_RECORD_LEN;
    if (rc == 0 && pwrite(fd, bytes, sizeof bytes, at) != (ssize_t)sizeof bytes)
        rc = STATUS_IO;
    if (rc == 0 && fdatasync(fd) != 0)
        rc = STATUS_IO;
    close(fd);
    if (rc == 0)
        add(l, &r);
    return rc;
}

int ledger_reserve(struct ledger *l, const struct id *conversation, const struct id *device,
                   const struct id *client_msg_id, uint64_t *counter) {
    for (size_t i = 0; i < l->n; i++) {
        const struct rec *r = &l->recs[l->n - 1 - i];
        if (id_equal(&r->conv, conversation) && id_equal(&r->dev, device) &&
            id_equal(&r->cmid, client_msg_id)) {
            *counter = r->counter;
            return 0;
        }
    }
    const struct pair *p = find_pair(l, conversation, device);
    const uint64_t next = (p != NULL ? p->max : 0) + 1;
    static const struct id zero;
    int rc = ledger_record(l, conversation, device, client_msg_id, &zero, next);
    if (rc == 0)
        *counter = next;
    return rc;
}

int ledger_find_sent(const struct ledger *l, const struct id *conversation, const struct id *device,
                     const struct id *message_id, struct id *client_msg_id) {
    for (size_t i = 0; i < l->n; i++) {
        const struct rec *r = &l->recs[i];
        if (id_equal(&r->conv, conversation) && id_equal(&r->dev, device) &&
            id_equal(&r->mid, message_id)) {
            *client_msg_id = r->cmid;
            return 0;
        }
    }
    return STATUS_NOT_FOUND;
}
