/*
 * client/histkeys.c: the device's store of message content keys
 * (client/histkeys.h): the records in memory with a hash index by message
 * id, and the append-only file. Caller's thread.
 */
#include "client/histkeys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"
#include "client/profile.h"

struct histkeys {
    char *path;
    struct histkeys_record *recs;
    size_t n, cap;
    /* Open addressing by message id, record index + 1 (0: empty), sized to a
     * power of two at least twice n. */
    uint32_t *slots;
    size_t n_slots;
};

/* Message ids are random: their first bytes spread well. */
static size_t slot_of(const struct id *message_id, size_t mask) {
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h = h << 8 | message_id->b[i];
    return (size_t)(h & mask);
}

static void index_one(struct histkeys *h, size_t i) {
    const size_t mask = h->n_slots - 1;
    size_t s = slot_of(&h->recs[i].message_id, mask);
    while (h->slots[s] != 0)
        s = (s + 1) & mask;
    h->slots[s] = (uint32_t)i + 1;
}

static void reindex(struct histkeys *h, size_t want) {
    size_t n_slots = 64;
    while (n_slots < 2 * (want + 1))
        n_slots *= 2;
    if (n_slots <= h->n_slots)
        return;
    free(h->slots);
    h->n_slots = n_slots;
    h->slots = xcalloc(n_slots, sizeof *h->slots);
    for (size_t i = 0; i < h->n; i++)
        index_one(h, i);
}

static const struct histkeys_record *lookup(const struct histkeys *h, const struct id *message_id) {
    const size_t mask = h->n_slots - 1;
    for (size_t s = slot_of(message_id, mask); h->slots[s] != 0; s = (s + 1) & mask) {
        const struct histkeys_record *r = &h->recs[h->slots[s] - 1];
        if (id_equal(&r->message_id, message_id))
            return r;
    }
    return NULL;
}

static void add(struct histkeys *h, const struct histkeys_record *r) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        struct histkeys_record *grown = xcalloc(cap, sizeof *grown);
        if (h->n > 0)
            memcpy(grown, h->recs, h->n * sizeof *grown);
        if (h->recs) {
            sodium_memzero(h->recs, h->cap * sizeof *h->recs);
            free(h->recs);
        }
        h->recs = grown;
        h->cap = cap;
    }
    h->recs[h->n++] = *r;
    if (2 * (h->n + 1) > h->n_slots)
        reindex(h, h->n); /* indexes the new one too */
    else
        index_one(h, h->n - 1);
}

static void encode(const struct histkeys_record *r, uint8_t *out) {
    out[0] = r->kind;
    memcpy(out + 1, r->message_id.b, ID_LEN);
    memcpy(out + 1 + ID_LEN, r->conversation_id.b, ID_LEN);
    memcpy(out + 1 + 2 * ID_LEN, r->key, HISTKEYS_KEY_LEN);
}

static void decode(const uint8_t *in, struct histkeys_record *r) {
    r->kind = in[0];
    memcpy(r->message_id.b, in + 1, ID_LEN);
    memcpy(r->conversation_id.b, in + 1 + ID_LEN, ID_LEN);
    memcpy(r->key, in + 1 + 2 * ID_LEN, HISTKEYS_KEY_LEN);
}

int histkeys_open(const char *dir, struct histkeys **out) {
    struct buf data;
    buf_init(&data);
    int rc = profile_read_file(
        dir, HISTKEYS_FILE,
        (size_t)HISTKEYS_MAX_RECORDS * HISTKEYS_RECORD_LEN + HISTKEYS_RECORD_LEN, &data);
    if (rc == STATUS_NOT_FOUND)
        rc = 0;
    if (rc != 0) {
        buf_cleanup(&data);
        return rc;
    }
    struct histkeys *h = xcalloc(1, sizeof *h);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, HISTKEYS_FILE);
    h->path = xstrdup(path);
    reindex(h, data.len / HISTKEYS_RECORD_LEN);
    /* A torn last record is left out (and overwritten by the next append). */
    for (size_t off = 0; rc == 0 && off + HISTKEYS_RECORD_LEN <= data.len;
         off += HISTKEYS_RECORD_LEN) {
        struct histkeys_record r;
        decode(data.data + off, &r);
        if (r.kind != HISTKEYS_LEARNED && r.kind != HISTKEYS_RESTORED)
            rc = STATUS_CORRUPT;
        else if (h->n == HISTKEYS_MAX_RECORDS)
            rc = STATUS_CORRUPT;
        else if (lookup(h, &r.message_id) == NULL)
            add(h, &r);
        sodium_memzero(&r, sizeof r);
    }
    buf_wipe(&data);
    buf_cleanup(&data);
    if (rc != 0) {
        histkeys_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void histkeys_free(struct histkeys *h) {
    if (h == NULL)
        return;
    if (h->recs) {
        sodium_memzero(h->recs, h->cap * sizeof *h->recs);
        free(h->recs);
    }
    free(h->slots);
    free(h->path);
    free(h);
}

size_t histkeys_count(const struct histkeys *h) {
    return h->n;
}

const struct histkeys_record *histkeys_at(const struct histkeys *h, size_t i) {
    return i < h->n ? &h->recs[i] : NULL;
}

bool histkeys_find(const struct histkeys *h, const struct id *message_id,
                   const struct id *conversation_id, uint8_t key[HISTKEYS_KEY_LEN]) {
    const struct histkeys_record *r = lookup(h, message_id);
    if (r == NULL || !id_equal(&r->conversation_id, conversation_id))
        return false;
    memcpy(key, r->key, HISTKEYS_KEY_LEN);
    return true;
}

int histkeys_add(struct histkeys *h, const struct histkeys_record *recs, size_t n, size_t *added) {
    if (added)
        *added = 0;
    /* Into memory first (lookup() then also sees the batch's earlier ones),
     * taken back when the file cannot have them. */
    const size_t start = h->n;
    bool full = false;
    for (size_t i = 0; i < n && !full; i++) {
        if (lookup(h, &recs[i].message_id) != NULL)
            continue;
        full = h->n == HISTKEYS_MAX_RECORDS;
        if (!full)
            add(h, &recs[i]);
    }
    const size_t k = h->n - start;
    int rc = full ? STATUS_TOO_LARGE : 0;
    struct buf bytes;
    buf_init(&bytes);
    if (rc == 0 && k > 0) {
        buf_reserve(&bytes, k * HISTKEYS_RECORD_LEN);
        for (size_t j = 0; j < k; j++)
            encode(&h->recs[start + j], bytes.data + j * HISTKEYS_RECORD_LEN);
        bytes.len = k * HISTKEYS_RECORD_LEN;
        int fd = open(h->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            rc = STATUS_IO;
        /* Whole records only: a torn tail is overwritten. */
        off_t at = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
        if (rc == 0 && at < 0)
            rc = STATUS_IO;
        if (rc == 0)
            at -= at % HISTKEYS_RECORD_LEN;
        if (rc == 0 && pwrite(fd, bytes.data, bytes.len, at) != (ssize_t)bytes.len)
            rc = STATUS_IO;
        if (rc == 0 && fdatasync(fd) != 0)
            rc = STATUS_IO;
        if (fd >= 0)
            close(fd);
    }
    if (rc != 0) {
        sodium_memzero(&h->recs[start], k * sizeof *h->recs);
        h->n = start;
        memset(h->slots, 0, h->n_slots * sizeof *h->slots);
        for (size_t i = 0; i < h->n; i++)
            index_one(h, i);
    } else if (added) {
        *added = k;
    }
    buf_wipe(&bytes);
    buf_cleanup(&bytes);
    return rc;
}

int histkeys_remove(const char *dir) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, HISTKEYS_FILE);
    if (unlink(path) != 0 && errno != ENOENT)
        return STATUS_IO;
    return 0;
}
