/*
 * client/backup_sync.c: the account's key backup kept in step with what
 * this device reads and sends (contracts and the flush's diagram in
 * backup_sync.h; the format in keybackup.h). Content keys and the backup key
 * are wiped wherever they are copied; none reaches a log line or an error
 * text. Runs on the caller's thread only.
 */
#include "client/backup_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/status.h"
#include "client/core.h"
#include "client/histkeys.h"

#define MOD "carechat"
/* Puts that may meet another device's segment (CONFLICT) before a flush gives
 * up until the next one. */
#define PUT_RETRIES 3

struct cc_bk {
    struct histkeys *keys; /* DIR/history_keys, on first use */
    bool hold;
    char last_error[256];
};

/* The handle's failure state, kept across a step whose own failure is not
 * the call's (a best-effort step of the key backup). */
struct saved_error {
    int status;
    enum carechat_error_kind kind;
    char text[sizeof((struct carechat *)0)->err];
};

static void save_error(const struct carechat *c, struct saved_error *s) {
    s->status = c->err_status;
    s->kind = c->err_kind;
    memcpy(s->text, c->err, sizeof s->text);
}

static void restore_error(struct carechat *c, const struct saved_error *s) {
    c->err_status = s->status;
    c->err_kind = s->kind;
    memcpy(c->err, s->text, sizeof s->text);
}

static struct cc_bk *state(struct carechat *c) {
    if (c->bk == NULL)
        c->bk = xcalloc(1, sizeof *c->bk);
    return c->bk;
}

void cc_bk_free(struct cc_bk *b) {
    if (b == NULL)
        return;
    histkeys_free(b->keys);
    free(b);
}

bool cc_bk_enabled(const struct carechat *c) {
    return c->profile->has_backup_key && c->profile->has_device;
}

/* The handle's history keys, read on first use. */
static int keys_of(struct carechat *c, struct histkeys **out) {
    struct cc_bk *b = state(c);
    if (b->keys == NULL) {
        int rc = histkeys_open(c->profile_dir, &b->keys);
        if (rc != 0)
            return cc_fail(c, rc, CARECHAT_ERROR_PROFILE,
                           "the profile's history keys cannot be read (%s)", status_str(rc));
    }
    *out = b->keys;
    return 0;
}

void cc_bk_learn(struct carechat *c, const struct id *message_id, const struct id *conversation_id,
                 const uint8_t key[KEYBACKUP_KEY_LEN]) {
    if (!cc_bk_enabled(c))
        return;
    struct histkeys *h = NULL;
    struct histkeys_record r = {
        .kind = HISTKEYS_LEARNED, .message_id = *message_id, .conversation_id = *conversation_id};
    memcpy(r.key, key, sizeof r.key);
    /* The caller's own failure state is not this one's to change. */
    struct saved_error e;
    save_error(c, &e);
    if (keys_of(c, &h) != 0 || histkeys_add(h, &r, 1, NULL) != 0)
        log_warn(MOD, "a message key could not be kept for the key backup");
    restore_error(c, &e);
    sodium_memzero(&r, sizeof r);
}

bool cc_bk_find(struct carechat *c, const struct id *message_id, const struct id *conversation_id,
                uint8_t key[KEYBACKUP_KEY_LEN]) {
    struct histkeys *h = NULL;
    struct saved_error e;
    save_error(c, &e);
    bool found = keys_of(c, &h) == 0 && histkeys_find(h, message_id, conversation_id, key);
    restore_error(c, &e);
    return found;
}

void cc_bk_hold(struct carechat *c, bool hold) {
    state(c)->hold = hold;
}

const char *cc_bk_last_error(const struct carechat *c) {
    return c->bk != NULL ? c->bk->last_error : "";
}

/* The indexes of the records this device learned and has not uploaded:
 * kind LEARNED at key_backup_done and after. */
static size_t pending_of(const struct carechat *c, const struct histkeys *h, size_t *first) {
    size_t n = histkeys_count(h), done = c->profile->backup_done;
    if (done > n)
        done = n;
    size_t pending = 0;
    for (size_t i = done; i < n; i++)
        pending += histkeys_at(h, i)->kind == HISTKEYS_LEARNED;
    if (first)
        *first = done;
    return pending;
}

int cc_bk_counts(struct carechat *c, size_t *records, size_t *pending) {
    struct histkeys *h = NULL;
    int rc = keys_of(c, &h);
    if (rc != 0)
        return rc;
    *records = histkeys_count(h);
    *pending = cc_bk_enabled(c) ? pending_of(c, h, NULL) : 0;
    return 0;
}

int cc_bk_store_restored(struct carechat *c, const struct keybackup_record *recs, size_t n,
                         size_t *added) {
    struct histkeys *h = NULL;
    int rc = keys_of(c, &h);
    if (rc != 0)
        return rc;
    struct histkeys_record *r = xcalloc(n + 1, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        r[i].kind = HISTKEYS_RESTORED;
        r[i].message_id = recs[i].message_id;
        r[i].conversation_id = recs[i].conversation_id;
        memcpy(r[i].key, recs[i].key, KEYBACKUP_KEY_LEN);
    }
    rc = histkeys_add(h, r, n, added);
    sodium_memzero(r, (n + 1) * sizeof *r);
    free(r);
    if (rc != 0)
        return cc_fail(c, rc, CARECHAT_ERROR_PROFILE,
                       "the restored keys cannot be written to the profile (%s)", status_str(rc));
    return 0;
}

int cc_bk_forget_local(struct carechat *c) {
    struct cc_bk *b = state(c);
    histkeys_free(b->keys);
    b->keys = NULL;
    int rc = histkeys_remove(c->profile_dir);
    if (rc != 0)
        return cc_fail(c, rc, CARECHAT_ERROR_PROFILE,
                       "the profile's history keys cannot be removed");
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* The account every request names: the caller's own. */
static ProtobufCBinaryData own_account(struct carechat *c) {
    return (ProtobufCBinaryData){ID_LEN, c->profile->account_id.b};
}

void cc_bk_listing_cleanup(struct cc_bk_listing *l) {
    if (l == NULL)
        return;
    free(l->seqs);
    memset(l, 0, sizeof *l);
}

int cc_bk_list(struct carechat *c, struct cc_bk_listing *out) {
    const char *what = "reading the key backup";
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__ListKeyBackup m;
    carechat__v1__list_key_backup__init(&m);
    m.account_id = own_account(c);
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_LIST_KEY_BACKUP;
    req.list_key_backup = &m;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_KEY_BACKUP_LIST, what, NULL, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__KeyBackupList *kl = resp->response->key_backup_list;
    struct cc_bk_listing l = {.next_seq = kl->next_seq,
                              .segment_max = kl->segment_max_bytes,
                              .max_segments = kl->max_segments,
                              .max_bytes = kl->max_total_bytes,
                              .total_bytes = kl->total_bytes};
    l.seqs = xcalloc(kl->n_segments + 1, sizeof *l.seqs);
    if (kl->key_id.len == KEYBACKUP_KEY_ID_LEN) {
        l.has_key_id = true;
        memcpy(l.key_id, kl->key_id.data, KEYBACKUP_KEY_ID_LEN);
    } else if (kl->key_id.len != 0) {
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: the server's key id is malformed", what);
    }
    for (size_t i = 0; i < kl->n_segments; i++) {
        const Carechat__V1__KeyBackupSegmentInfo *s = kl->segments[i];
        if (s->seq == 0 || s->seq >= kl->next_seq || (i > 0 && s->seq <= l.seqs[i - 1]))
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                         "%s: the server's list of segments is malformed", what);
        l.seqs[l.n++] = s->seq;
        if (s->created_at > l.last_at)
            l.last_at = s->created_at;
    }
    cc_free_response(resp);
    if (rc != 0) {
        cc_bk_listing_cleanup(&l);
        return rc;
    }
    *out = l;
    return 0;
}

/* GetKeyBackupSegment `seq` into `out` (replacing its contents). */
static int get_segment(struct carechat *c, uint64_t seq, struct buf *out) {
    Carechat__V1__GetKeyBackupSegment m;
    carechat__v1__get_key_backup_segment__init(&m);
    m.account_id = own_account(c);
    m.seq = seq;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_GET_KEY_BACKUP_SEGMENT;
    req.get_key_backup_segment = &m;
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_KEY_BACKUP_SEGMENT,
                        "reading a segment of the key backup", NULL, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__KeyBackupSegment *s = resp->response->key_backup_segment;
    buf_reset(out);
    buf_append(out, s->data.data, s->data.len);
    cc_free_response(resp);
    return 0;
}

int cc_bk_download(struct carechat *c, const uint8_t key[KEYBACKUP_KEY_LEN],
                   const struct cc_bk_listing *l, struct keybackup_record **out, size_t *n) {
    struct keybackup_record *all = NULL;
    size_t n_all = 0;
    struct buf seg;
    buf_init(&seg);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        rc = get_segment(c, l->seqs[i], &seg);
        struct keybackup_record *recs = NULL;
        size_t k = 0;
        if (rc == 0 && keybackup_open(key, &c->profile->account_id, l->seqs[i], seg.data, seg.len,
                                      &recs, &k) != 0) {
            if (i == 0)
                rc = cc_fail(c, STATUS_FORBIDDEN, CARECHAT_ERROR_ARGUMENT,
                             "the recovery key does not open this account's key backup (it is "
                             "another backup's key, or another account's): nothing was changed");
            else
                rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                             "segment %llu of the key backup does not open: it was altered, or "
                             "made under another key; nothing was changed",
                             (unsigned long long)l->seqs[i]);
        }
        if (rc == 0 && k > 0) {
            struct keybackup_record *grown = xcalloc(n_all + k + 1, sizeof *grown);
            if (n_all > 0)
                memcpy(grown, all, n_all * sizeof *all);
            memcpy(grown + n_all, recs, k * sizeof *recs);
            keybackup_records_free(all, n_all);
            all = grown;
            n_all += k;
        }
        keybackup_records_free(recs, k);
    }
    buf_cleanup(&seg);
    if (rc != 0) {
        keybackup_records_free(all, n_all);
        return rc;
    }
    *out = all;
    *n = n_all;
    return 0;
}

int cc_bk_delete(struct carechat *c, uint64_t before_seq) {
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__DeleteKeyBackup m;
    carechat__v1__delete_key_backup__init(&m);
    m.account_id = own_account(c);
    m.before_seq = before_seq;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_DELETE_KEY_BACKUP;
    req.delete_key_backup = &m;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT__NOT_SET, "deleting the key backup",
                    NULL, &resp);
    cc_free_response(resp);
    return rc;
}

/* This device no longer keeps the account's backup: the server holds
 * another key's, or turned this key's off. Returns the recorded failure. */
static int stale(struct carechat *c) {
    c->profile->has_backup_key = false;
    sodium_memzero(c->profile->backup_key, sizeof c->profile->backup_key);
    c->profile->backup_done = 0;
    int rc = cc_save_profile(c);
    if (rc != 0)
        return rc;
    return cc_fail(c, STATUS_FORBIDDEN, CARECHAT_ERROR_SERVER,
                   "the account's key backup was turned off or made anew on another device: this "
                   "device stopped backing up (carechat keys restore with the current recovery "
                   "key keeps it again)");
}

/* PutKeyBackupSegment `seq` with `data` under `key_id`. Returns 0;
 * STATUS_CONFLICT unrecorded (the number was taken: list again);
 * STATUS_FORBIDDEN unrecorded (another key's backup); or a recorded
 * failure. */
static int put_segment(struct carechat *c, uint64_t seq, const struct buf *data,
                       const uint8_t key_id[KEYBACKUP_KEY_ID_LEN]) {
    const char *what = "backing up message keys";
    Carechat__V1__PutKeyBackupSegment m;
    carechat__v1__put_key_backup_segment__init(&m);
    m.account_id = own_account(c);
    m.seq = seq;
    m.data = (ProtobufCBinaryData){data->len, data->data};
    m.key_id = (ProtobufCBinaryData){KEYBACKUP_KEY_ID_LEN, (uint8_t *)key_id};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_PUT_KEY_BACKUP_SEGMENT;
    req.put_key_backup_segment = &m;
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_call(c, &req, what, &resp);
    if (rc != 0)
        return rc;
    if (resp->response->status == CARECHAT__V1__STATUS__CONFLICT)
        rc = STATUS_CONFLICT;
    else if (resp->response->status == CARECHAT__V1__STATUS__FORBIDDEN)
        rc = STATUS_FORBIDDEN;
    else
        rc = cc_expect(c, resp, CARECHAT__V1__RESPONSE__RESULT_KEY_BACKUP_SEGMENT_INFO, what,
                       resp->response->status == CARECHAT__V1__STATUS__TOO_LARGE
                           ? "the key backup is full (the server's limits)"
                           : NULL);
    cc_free_response(resp);
    return rc;
}

/* Seals the `n` records at `recs` into segments of at most `per` records and
 * puts them from l->next_seq on (listing again when another device took a
 * number meanwhile). Sets *first to the number of the first one put.
 * Returns 0 or a recorded failure. */
static int upload(struct carechat *c, const uint8_t key[KEYBACKUP_KEY_LEN],
                  const struct keybackup_record *recs, size_t n, size_t per,
                  struct cc_bk_listing *l, uint64_t *first) {
    struct buf seg;
    buf_init(&seg);
    int rc = 0, retries = 0;
    *first = 0;
    uint8_t key_id[KEYBACKUP_KEY_ID_LEN];
    keybackup_key_id(key, key_id);
    for (size_t at = 0; rc == 0 && at < n;) {
        size_t k = n - at < per ? n - at : per;
        uint64_t seq = l->next_seq;
        rc = keybackup_seal(key, &c->profile->account_id, seq, recs + at, k, &seg);
        if (rc == 0)
            rc = put_segment(c, seq, &seg, key_id);
        if (rc == STATUS_FORBIDDEN) {
            rc = stale(c);
            break;
        }
        if (rc == STATUS_CONFLICT && retries++ < PUT_RETRIES) {
            cc_bk_listing_cleanup(l);
            rc = cc_bk_list(c, l);
            continue;
        }
        if (rc == STATUS_CONFLICT)
            rc = cc_fail(c, rc, CARECHAT_ERROR_SERVER,
                         "backing up message keys: other devices keep adding segments; retrying "
                         "later");
        if (rc != 0)
            break;
        if (*first == 0)
            *first = seq;
        l->next_seq = seq + 1;
        at += k;
    }
    buf_wipe(&seg);
    buf_cleanup(&seg);
    return rc;
}

static int by_message(const void *a, const void *b) {
    return memcmp(((const struct keybackup_record *)a)->message_id.b,
                  ((const struct keybackup_record *)b)->message_id.b, ID_LEN);
}

/* The records of `h` at the indexes in [from, n) of kind `kind` (0: any). */
static size_t gather(const struct histkeys *h, size_t from, uint8_t kind,
                     struct keybackup_record *out) {
    size_t k = 0;
    for (size_t i = from; i < histkeys_count(h); i++) {
        const struct histkeys_record *r = histkeys_at(h, i);
        if (kind != 0 && r->kind != kind)
            continue;
        out[k].message_id = r->message_id;
        out[k].conversation_id = r->conversation_id;
        memcpy(out[k].key, r->key, KEYBACKUP_KEY_LEN);
        k++;
    }
    return k;
}

static size_t segments_for(size_t records, size_t per) {
    return (records + per - 1) / per;
}

/* The whole backup anew: every segment's records and this device's, each
 * message once, as new segments; then the older segments go. Returns 0, or
 * STATUS_TOO_LARGE unrecorded when the new segments would not fit beside the
 * old ones, or a recorded failure. */
static int compact(struct carechat *c, const uint8_t key[KEYBACKUP_KEY_LEN],
                   const struct histkeys *h, size_t per, struct cc_bk_listing *l) {
    struct keybackup_record *stored = NULL;
    size_t n_stored = 0;
    int rc = cc_bk_download(c, key, l, &stored, &n_stored);
    if (rc != 0)
        return rc;
    size_t n_all = n_stored + histkeys_count(h);
    struct keybackup_record *all = xcalloc(n_all + 1, sizeof *all);
    if (n_stored > 0)
        memcpy(all, stored, n_stored * sizeof *all);
    keybackup_records_free(stored, n_stored);
    n_all = n_stored + gather(h, 0, 0, all + n_stored);
    qsort(all, n_all, sizeof *all, by_message);
    size_t u = 0;
    for (size_t i = 0; i < n_all; i++)
        if (u == 0 || memcmp(all[u - 1].message_id.b, all[i].message_id.b, ID_LEN) != 0)
            all[u++] = all[i];
    const size_t need = segments_for(u, per);
    const uint64_t bytes = need * KEYBACKUP_OVERHEAD + u * (uint64_t)KEYBACKUP_RECORD_LEN;
    uint64_t first = 0;
    if (l->n + need > l->max_segments || l->total_bytes + bytes > l->max_bytes)
        rc = STATUS_TOO_LARGE;
    if (rc == 0)
        rc = upload(c, key, all, u, per, l, &first);
    if (rc == 0 && first != 0)
        rc = cc_bk_delete(c, first);
    keybackup_records_free(all, n_all);
    return rc;
}

int cc_bk_flush(struct carechat *c) {
    if (!cc_bk_enabled(c) || (c->bk != NULL && c->bk->hold))
        return 0;
    struct histkeys *h = NULL;
    int rc = keys_of(c, &h);
    if (rc != 0)
        return rc;
    size_t first = 0;
    const size_t pending = pending_of(c, h, &first);
    const size_t n = histkeys_count(h);
    if (pending == 0) {
        if (c->profile->backup_done == n)
            return 0;
        c->profile->backup_done = n;
        return cc_save_profile(c);
    }
    struct cc_bk_listing l;
    rc = cc_bk_list(c, &l);
    if (rc != 0)
        return rc;
    uint8_t key_id[KEYBACKUP_KEY_ID_LEN];
    keybackup_key_id(c->profile->backup_key, key_id);
    if (l.has_key_id && sodium_memcmp(l.key_id, key_id, sizeof key_id) != 0) {
        cc_bk_listing_cleanup(&l);
        return stale(c);
    }
    const size_t per = keybackup_records_per_segment(l.segment_max);
    struct keybackup_record *recs = xcalloc(pending + 1, sizeof *recs);
    const size_t k = gather(h, first, HISTKEYS_LEARNED, recs);
    uint8_t key[KEYBACKUP_KEY_LEN];
    memcpy(key, c->profile->backup_key, sizeof key);
    if (per == 0)
        rc = cc_fail(c, STATUS_TOO_LARGE, CARECHAT_ERROR_SERVER,
                     "backing up message keys: the server's segments are too small");
    const size_t need = per ? segments_for(k, per) : 0;
    const uint64_t bytes = need * KEYBACKUP_OVERHEAD + k * (uint64_t)KEYBACKUP_RECORD_LEN;
    /* Compacted at half the caps, so the new copy fits beside the old one. */
    const bool crowded = l.n + need > l.max_segments / 2 || l.total_bytes + bytes > l.max_bytes / 2;
    int crc = rc == 0 && crowded && l.n > 0 ? compact(c, key, h, per, &l) : STATUS_NOT_FOUND;
    uint64_t seq = 0;
    if (rc == 0 && crc != 0 && crc != STATUS_NOT_FOUND && crc != STATUS_TOO_LARGE)
        rc = crc; /* a compaction that failed on the way */
    else if (rc == 0 && crc != 0) {
        /* No compaction (or no room for one): the new keys alone, if they fit. */
        if (l.n + need > l.max_segments || l.total_bytes + bytes > l.max_bytes)
            rc = cc_fail(c, STATUS_TOO_LARGE, CARECHAT_ERROR_SERVER,
                         "backing up message keys: the key backup is full (%zu segments, %llu "
                         "bytes: the server's limits)",
                         l.n, (unsigned long long)l.total_bytes);
        else
            rc = upload(c, key, recs, k, per, &l, &seq);
    }
    sodium_memzero(key, sizeof key);
    keybackup_records_free(recs, pending);
    cc_bk_listing_cleanup(&l);
    if (rc != 0)
        return rc;
    c->profile->backup_done = n;
    return cc_save_profile(c);
}

void cc_bk_flush_quietly(struct carechat *c) {
    if (!cc_bk_enabled(c))
        return;
    struct saved_error e;
    save_error(c, &e);
    struct cc_bk *b = state(c);
    if (cc_bk_flush(c) != 0) {
        cc_copy_text(b->last_error, sizeof b->last_error, c->err);
        log_warn(MOD, "the key backup was not brought up to date: %s", c->err);
    } else {
        b->last_error[0] = '\0';
    }
    restore_error(c, &e);
}
