/*
 * client/backup.c: the account's end-to-end encrypted key backup as the
 * application sees it: enable, restore, sync, status, disable (contracts in
 * carechat.h; the format in keybackup.h; keeping it current in
 * backup_sync.c). The recovery secret lives only in this file's locals and is
 * wiped on every path; the profile keeps the key derived from it. Runs on the
 * caller's thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/status.h"
#include "client/backup_sync.h"
#include "client/carechat.h"
#include "client/core.h"
#include "client/keybackup.h"

_Static_assert(CARECHAT_RECOVERY_KEY_LEN == KEYBACKUP_RECOVERY_LEN, "recovery key length");
_Static_assert(KEYBACKUP_KEY_LEN == PROFILE_SECRET_LEN, "backup key length");

#define PAGE 100

/* Reads the history of every conversation of the caller, so that the keys
 * of every message this device can open are recorded (flushes held). Best
 * effort per conversation: one that cannot be read is skipped. Returns 0 or
 * the failure to list the conversations. */
static int sweep(struct carechat *c) {
    struct carechat_conversations *list = NULL;
    int rc = carechat_conversations(c, &list);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < list->n; i++) {
        uint64_t before = 0;
        for (;;) {
            struct carechat_messages *page = NULL;
            if (carechat_history(c, &list->items[i].conversation_id, before, PAGE, &page) != 0)
                break;
            bool more = page->more && page->n > 0;
            if (more)
                before = page->items[0].seq; /* sorted by seq: the oldest first */
            carechat_messages_free(page);
            if (!more)
                break;
        }
    }
    carechat_conversations_free(list);
    return 0;
}

/* Keeps `key` in the profile as the account's backup key; the records this
 * device learned earlier are uploaded by the next flush. */
static int keep_key(struct carechat *c, const uint8_t key[KEYBACKUP_KEY_LEN]) {
    struct profile *p = c->profile;
    memcpy(p->backup_key, key, KEYBACKUP_KEY_LEN);
    p->has_backup_key = true;
    p->backup_done = 0;
    return cc_save_profile(c);
}

int carechat_key_backup_enable(struct carechat *c, char recovery_key[CARECHAT_RECOVERY_KEY_LEN + 1],
                               size_t *keys) {
    cc_clear_error(c);
    const char *what = "turning the key backup on";
    if (recovery_key == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "%s: no output", what);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    if (cc_bk_enabled(c))
        return cc_fail(c, STATUS_CONFLICT, CARECHAT_ERROR_ARGUMENT,
                       "%s: this device keeps the key backup already (carechat keys backup "
                       "status)",
                       what);
    struct cc_bk_listing l;
    rc = cc_bk_list(c, &l);
    if (rc != 0)
        return rc;
    const size_t existing = l.n;
    cc_bk_listing_cleanup(&l);
    if (existing > 0)
        return cc_fail(c, STATUS_CONFLICT, CARECHAT_ERROR_ARGUMENT,
                       "%s: this account has a key backup already, made on another device: "
                       "restore it with its recovery key (carechat keys restore), or turn it off "
                       "first (carechat keys backup disable)",
                       what);
    uint8_t secret[KEYBACKUP_SECRET_LEN], key[KEYBACKUP_KEY_LEN];
    keybackup_secret_new(secret);
    keybackup_derive(secret, &c->profile->account_id, key);
    rc = keep_key(c, key);
    sodium_memzero(key, sizeof key);
    if (rc == 0) {
        /* Every key this device can read now, then one upload. */
        cc_bk_hold(c, true);
        rc = sweep(c);
        cc_bk_hold(c, false);
    }
    if (rc == 0) {
        cc_bk_flush_quietly(c);
        keybackup_recovery_format(secret, recovery_key);
        size_t records = 0, pending = 0;
        if (keys && cc_bk_counts(c, &records, &pending) == 0)
            *keys = records - pending;
        /* A conversation the sweep could not read is not the call's failure. */
        cc_clear_error(c);
    } else {
        /* Nobody saw the recovery key: the backup is not on. */
        struct profile *p = c->profile;
        p->has_backup_key = false;
        sodium_memzero(p->backup_key, sizeof p->backup_key);
        (void)profile_save(c->profile_dir, p);
    }
    sodium_memzero(secret, sizeof secret);
    return rc;
}

int carechat_key_backup_restore(struct carechat *c, const char *recovery_key, size_t *keys) {
    cc_clear_error(c);
    const char *what = "restoring the key backup";
    uint8_t secret[KEYBACKUP_SECRET_LEN];
    /* A typo is caught here, before anything is sent. */
    int rc = recovery_key ? keybackup_recovery_parse(recovery_key, secret) : STATUS_BAD_REQUEST;
    if (rc == STATUS_CORRUPT)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: the recovery key is mistyped (its check letters do not match): check "
                       "each group of 4",
                       what);
    if (rc != 0)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: that is not a recovery key (36 letters and digits in groups of 4)",
                       what);
    rc = cc_ensure_session(c);
    if (rc != 0) {
        sodium_memzero(secret, sizeof secret);
        return rc;
    }
    uint8_t key[KEYBACKUP_KEY_LEN], key_id[KEYBACKUP_KEY_ID_LEN];
    keybackup_derive(secret, &c->profile->account_id, key);
    sodium_memzero(secret, sizeof secret);
    keybackup_key_id(key, key_id);
    if (cc_bk_enabled(c) && sodium_memcmp(c->profile->backup_key, key, sizeof key) != 0)
        rc = cc_fail(c, STATUS_CONFLICT, CARECHAT_ERROR_ARGUMENT,
                     "%s: this device keeps another key backup (carechat keys backup disable "
                     "turns it off)",
                     what);
    struct cc_bk_listing l;
    memset(&l, 0, sizeof l);
    if (rc == 0)
        rc = cc_bk_list(c, &l);
    if (rc == 0 && l.n == 0)
        rc = cc_fail(c, STATUS_NOT_FOUND, CARECHAT_ERROR_SERVER,
                     "%s: this account has no key backup", what);
    /* The key's id tells a wrong recovery key before any segment is read. */
    if (rc == 0 && l.has_key_id && sodium_memcmp(l.key_id, key_id, sizeof key_id) != 0)
        rc = cc_fail(c, STATUS_FORBIDDEN, CARECHAT_ERROR_ARGUMENT,
                     "%s: the recovery key does not open this account's key backup (it is "
                     "another backup's key, or another account's): nothing was changed",
                     what);
    struct keybackup_record *recs = NULL;
    size_t n = 0, added = 0;
    if (rc == 0)
        rc = cc_bk_download(c, key, &l, &recs, &n);
    cc_bk_listing_cleanup(&l);
    if (rc == 0)
        rc = cc_bk_store_restored(c, recs, n, &added);
    keybackup_records_free(recs, n);
    if (rc == 0 && !cc_bk_enabled(c))
        rc = keep_key(c, key);
    sodium_memzero(key, sizeof key);
    if (rc != 0)
        return rc;
    /* What this device learned before goes in too. */
    cc_bk_flush_quietly(c);
    if (keys)
        *keys = added;
    cc_clear_error(c);
    return 0;
}

int carechat_key_backup_sync(struct carechat *c) {
    cc_clear_error(c);
    return cc_bk_flush(c);
}

int carechat_key_backup_status(struct carechat *c, struct carechat_key_backup_status *out) {
    cc_clear_error(c);
    if (out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "key backup status: no output");
    struct carechat_key_backup_status st;
    memset(&st, 0, sizeof st);
    st.enabled = cc_bk_enabled(c);
    int rc = cc_bk_counts(c, &st.local_keys, &st.pending_keys);
    struct cc_bk_listing l;
    memset(&l, 0, sizeof l);
    if (rc == 0)
        rc = cc_bk_list(c, &l);
    if (rc != 0)
        return rc;
    st.segments = l.n;
    st.bytes = l.total_bytes;
    st.last_backup_at = l.last_at;
    st.max_segments = l.max_segments;
    st.max_bytes = l.max_bytes;
    cc_copy_text(st.last_error, sizeof st.last_error, cc_bk_last_error(c));
    cc_bk_listing_cleanup(&l);
    *out = st;
    return 0;
}

int carechat_key_backup_disable(struct carechat *c) {
    cc_clear_error(c);
    int rc = cc_ensure_session(c);
    if (rc == 0)
        rc = cc_bk_delete(c, 0);
    if (rc != 0)
        return rc;
    struct profile *p = c->profile;
    if (!p->has_backup_key)
        return 0;
    p->has_backup_key = false;
    sodium_memzero(p->backup_key, sizeof p->backup_key);
    p->backup_done = 0;
    return cc_save_profile(c);
}
