/*
 * server/rules.c: the account and device rules (contracts in rules.h). Pure,
 * any thread.
 */
#include "server/rules.h"

#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/status.h"
#include "base/utf8.h"
#include "storage/keys.h"

#define KEY_CONTEXT "carechat.v1 encryption key"
#define LIST_CONTEXT "carechat.v1 device list"

int rules_normalize_email(const char *email, char out[RULES_EMAIL_MAX + 1]) {
    while (*email == ' ' || *email == '\t' || *email == '\r' || *email == '\n')
        email++;
    size_t n = strlen(email);
    while (n > 0 && (email[n - 1] == ' ' || email[n - 1] == '\t' || email[n - 1] == '\r' ||
                     email[n - 1] == '\n'))
        n--;
    if (n == 0 || n > RULES_EMAIL_MAX)
        return STATUS_BAD_REQUEST;
    const char *at = memchr(email, '@', n);
    if (!at || at == email || at == email + n - 1)
        return STATUS_BAD_REQUEST;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= 0x20 || c == 0x7f)
            return STATUS_BAD_REQUEST;
        out[i] = (char)(c < 0x80 ? tolower(c) : c);
    }
    out[n] = '\0';
    return STATUS_OK;
}

static bool leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool rules_label_ok(const char *label) {
    size_t n = label != NULL ? strlen(label) : 0;
    if (n == 0 || n > RULES_LABEL_MAX || !utf8_valid((const uint8_t *)label, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
            return false;
    return true;
}

int rules_parse_date(const char *text, int *year, int *month, int *day) {
    if (strlen(text) != 10 || text[4] != '-' || text[7] != '-')
        return STATUS_BAD_REQUEST;
    for (int i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && !isdigit((unsigned char)text[i]))
            return STATUS_BAD_REQUEST;
    }
    int y = atoi(text), m = atoi(text + 5), d = atoi(text + 8);
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1900 || m < 1 || m > 12 || d < 1)
        return STATUS_BAD_REQUEST;
    int max = days[m - 1] + (m == 2 && leap(y) ? 1 : 0);
    if (d > max)
        return STATUS_BAD_REQUEST;
    *year = y;
    *month = m;
    *day = d;
    return STATUS_OK;
}

int rules_age_at(int year, int month, int day, int64_t time_ms) {
    time_t t = (time_t)(time_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    int y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
    int age = y - year;
    if (m < month || (m == month && d < day))
        age--;
    return age;
}

void rules_sha256(const void *data, size_t len, uint8_t out[REC_HASH_LEN]) {
    crypto_hash_sha256(out, data, len);
}

int rules_verify_key_signature(const uint8_t identity_key[REC_KEY_LEN],
                               const uint8_t encryption_key[REC_KEY_LEN], uint32_t key_id,
                               int64_t expires_at, const uint8_t signature[REC_SIG_LEN]) {
    uint8_t msg[sizeof KEY_CONTEXT - 1 + REC_KEY_LEN + 4 + 8];
    size_t n = sizeof KEY_CONTEXT - 1;
    memcpy(msg, KEY_CONTEXT, n);
    memcpy(msg + n, encryption_key, REC_KEY_LEN);
    n += REC_KEY_LEN;
    key_put_u32(msg + n, key_id);
    n += 4;
    key_put_u64(msg + n, (uint64_t)expires_at);
    n += 8;
    return crypto_sign_verify_detached(signature, msg, n, identity_key) == 0 ? STATUS_OK
                                                                             : STATUS_BAD_REQUEST;
}

static int item_cmp(const void *a, const void *b) {
    return memcmp(((const struct rec_list_item *)a)->device_id.b,
                  ((const struct rec_list_item *)b)->device_id.b, ID_LEN);
}

void rules_device_list_message(const struct id *account_id, uint64_t version,
                               const struct rec_list_item *items, size_t n,
                               const uint8_t *prev_hash, struct buf *out) {
    struct rec_list_item sorted[REC_LIST_MAX];
    size_t count = n < REC_LIST_MAX ? n : REC_LIST_MAX;
    memcpy(sorted, items, count * sizeof *items);
    qsort(sorted, count, sizeof *sorted, item_cmp);
    buf_append(out, LIST_CONTEXT, sizeof LIST_CONTEXT - 1);
    buf_append(out, account_id->b, ID_LEN);
    uint8_t x[8];
    key_put_u64(x, version);
    buf_append(out, x, 8);
    key_put_u32(x, (uint32_t)count);
    buf_append(out, x, 4);
    for (size_t i = 0; i < count; i++) {
        buf_append(out, sorted[i].device_id.b, ID_LEN);
        buf_append(out, sorted[i].identity_key, REC_KEY_LEN);
    }
    if (version >= 2) {
        static const uint8_t zeros[REC_HASH_LEN];
        buf_append(out, prev_hash != NULL ? prev_hash : zeros, REC_HASH_LEN);
    }
}

void rules_device_list_hash(const struct id *account_id, uint64_t version,
                            const struct rec_list_item *items, size_t n, const uint8_t *prev_hash,
                            uint8_t out[REC_HASH_LEN]) {
    struct buf msg;
    buf_init(&msg);
    rules_device_list_message(account_id, version, items, n, prev_hash, &msg);
    crypto_hash_sha256(out, msg.data, msg.len);
    buf_cleanup(&msg);
}

int rules_device_list_follows(uint64_t stored_version, const uint8_t stored_hash[REC_HASH_LEN],
                              const struct rec_list_item *stored, size_t n_stored, bool reset,
                              uint64_t version, const uint8_t *prev_hash, size_t prev_hash_len,
                              const struct id *signer, const struct rec_list_item *items, size_t n,
                              const uint8_t **signer_key) {
    *signer_key = NULL;
    if (version != stored_version + 1)
        return STATUS_CONFLICT;
    if (stored_version == 0
            ? prev_hash_len != 0
            : prev_hash_len != REC_HASH_LEN || memcmp(prev_hash, stored_hash, REC_HASH_LEN) != 0)
        return STATUS_CONFLICT;
    const struct rec_list_item *from = stored_version == 0 || reset ? items : stored;
    const size_t n_from = stored_version == 0 || reset ? n : n_stored;
    for (size_t i = 0; i < n_from; i++)
        if (id_equal(&from[i].device_id, signer))
            *signer_key = from[i].identity_key;
    return *signer_key != NULL ? STATUS_OK : STATUS_FORBIDDEN;
}

int rules_verify_device_list(const struct id *account_id, uint64_t version,
                             const struct rec_list_item *items, size_t n, const uint8_t *prev_hash,
                             const uint8_t signer_key[REC_KEY_LEN],
                             const uint8_t signature[REC_SIG_LEN]) {
    if (n > REC_LIST_MAX)
        return STATUS_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            if (memcmp(items[i].device_id.b, items[j].device_id.b, ID_LEN) == 0)
                return STATUS_BAD_REQUEST;
        }
    }
    struct buf msg;
    buf_init(&msg);
    rules_device_list_message(account_id, version, items, n, prev_hash, &msg);
    int ok = crypto_sign_verify_detached(signature, msg.data, msg.len, signer_key);
    buf_cleanup(&msg);
    return ok == 0 ? STATUS_OK : STATUS_BAD_REQUEST;
}

bool rules_role_valid(uint32_t role) {
    return role >= REC_ROLE_PATIENT && role <= REC_ROLE_SYSADMIN;
}

bool rules_may_create_channel(uint32_t actor_role, bool care_relation) {
    return actor_role == REC_ROLE_ADMIN || (actor_role == REC_ROLE_PROVIDER && care_relation);
}

bool rules_may_deactivate(uint32_t actor_role, uint32_t target_role, bool own_patient) {
    switch (actor_role) {
    case REC_ROLE_PROVIDER:
        return target_role == REC_ROLE_PATIENT && own_patient;
    case REC_ROLE_ADMIN:
        return target_role == REC_ROLE_PATIENT || target_role == REC_ROLE_PROVIDER;
    case REC_ROLE_SYSADMIN:
        return rules_role_valid(target_role);
    default:
        return false;
    }
}

bool rules_may_invite(uint32_t inviter_role, uint32_t invited_role) {
    if (!rules_role_valid(invited_role))
        return false;
    switch (inviter_role) {
    case REC_ROLE_PROVIDER:
        return invited_role == REC_ROLE_PATIENT;
    case REC_ROLE_ADMIN:
        return invited_role != REC_ROLE_SYSADMIN;
    case REC_ROLE_SYSADMIN:
        return true;
    default:
        return false;
    }
}

bool rules_may_see(uint32_t caller_role, uint32_t target_role, bool self) {
    if (self)
        return true;
    if (caller_role == REC_ROLE_PATIENT)
        return target_role != REC_ROLE_PATIENT;
    return rules_role_valid(caller_role);
}

void rules_lifecycle_start(struct rec_lifecycle *l, int64_t at, int64_t review_ms,
                           int64_t restricted_ms) {
    l->state = REC_LC_REVIEW;
    l->deactivated_at = at;
    l->changed_at = at;
    l->restricted_at = at + (review_ms > 0 ? review_ms : RULES_REVIEW_MS);
    l->purge_at = l->restricted_at + (restricted_ms > 0 ? restricted_ms : RULES_RESTRICTED_MS);
}

uint32_t rules_lifecycle_due(const struct rec_lifecycle *l, int64_t now) {
    if (l->hold)
        return l->state;
    if (l->state == REC_LC_REVIEW && now >= l->restricted_at)
        return REC_LC_RESTRICTED;
    if (l->state == REC_LC_RESTRICTED && now >= l->purge_at)
        return REC_LC_PURGED;
    return l->state;
}

void rules_lifecycle_release(struct rec_lifecycle *l, int64_t now) {
    if (!l->hold)
        return;
    l->hold = false;
    if (l->state != REC_LC_REVIEW && l->state != REC_LC_RESTRICTED)
        return; /* ACTIVE: no clock runs yet */
    int64_t from = l->hold_since > l->deactivated_at ? l->hold_since : l->deactivated_at;
    int64_t held = now > from ? now - from : 0;
    if (l->state == REC_LC_REVIEW)
        l->restricted_at += held;
    l->purge_at += held;
    l->hold_since = 0;
}

bool rules_quiet_valid(uint32_t from_min, uint32_t until_min, int32_t utc_offset_min) {
    return from_min < RULES_DAY_MIN && until_min < RULES_DAY_MIN &&
           utc_offset_min >= RULES_UTC_OFFSET_MIN && utc_offset_min <= RULES_UTC_OFFSET_MAX;
}

int64_t rules_quiet_end(uint32_t from_min, uint32_t until_min, int32_t utc_offset_min, int64_t t) {
    if (from_min == until_min || !rules_quiet_valid(from_min, until_min, utc_offset_min))
        return t;
    const int64_t min_ms = 60000, day_ms = RULES_DAY_MIN * min_ms;
    int64_t local = t + (int64_t)utc_offset_min * min_ms;
    int64_t day = local >= 0 ? local / day_ms : (local - day_ms + 1) / day_ms;
    int64_t into = local - day * day_ms; /* ms since local midnight */
    int64_t from = (int64_t)from_min * min_ms, until = (int64_t)until_min * min_ms;
    int64_t end; /* local ms of the quiet span's end, when `into` is inside it */
    if (from < until) {
        if (into < from || into >= until)
            return t;
        end = day * day_ms + until;
    } else { /* across midnight */
        if (into >= until && into < from)
            return t;
        end = day * day_ms + until + (into >= from ? day_ms : 0);
    }
    return end - (int64_t)utc_offset_min * min_ms;
}

int rules_key_backup_put(const struct rec_key_backup *b, const struct rules_key_backup_caps *caps,
                         uint64_t seq, uint64_t size, const uint8_t sha256[REC_KEY_BACKUP_HASH_LEN],
                         const uint8_t key_id[REC_KEY_BACKUP_KEY_ID_LEN], bool *stored) {
    static const uint8_t none[REC_KEY_BACKUP_KEY_ID_LEN];
    *stored = false;
    if (seq == 0 || size == 0 || memcmp(key_id, none, sizeof none) == 0)
        return STATUS_BAD_REQUEST;
    if (size > caps->segment_max)
        return STATUS_TOO_LARGE;
    if (rec_key_backup_retired(b, key_id) ||
        (memcmp(b->key_id, none, sizeof none) != 0 &&
         memcmp(b->key_id, key_id, REC_KEY_BACKUP_KEY_ID_LEN) != 0))
        return STATUS_FORBIDDEN;
    const struct rec_key_backup_segment *s = rec_key_backup_find(b, seq);
    if (s) {
        if (s->size != size || sodium_memcmp(s->sha256, sha256, REC_KEY_BACKUP_HASH_LEN) != 0)
            return STATUS_CONFLICT;
        *stored = true;
        return STATUS_OK;
    }
    if (seq != b->next_seq)
        return STATUS_CONFLICT;
    if (b->n + 1 > caps->max_segments || b->total_bytes + size > caps->max_bytes)
        return STATUS_TOO_LARGE;
    return STATUS_OK;
}
