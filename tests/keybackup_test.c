/*
 * tests/keybackup_test.c: the account's end-to-end encrypted key backup over
 * the real carechatd (issue 13, "History on a new device"), run with
 * --key-backup-segment-max 4096, --key-backup-max-segments 8 and retention
 * windows of a day:
 *
 *   - a new device: device A of a patient receives messages (direct and a
 *     care-team channel) and turns the backup on (libcarechat); a fresh
 *     profile B of the same account reads them as no_key, is refused a
 *     mistyped and a foreign recovery key without change, and reads every
 *     text after restoring with the right one;
 *   - only the account itself: another patient, an admin and a sysadmin
 *     naming the patient's account (or an unknown one) in any of the four
 *     requests are FORBIDDEN, and each refusal is audited against the
 *     patient; the segment is unchanged;
 *   - limits: a segment over the limit is TOO_LARGE before anything is
 *     stored and the connection goes on; a frame over --max-frame closes
 *     1009; another device's number is CONFLICT, a retry of a stored segment
 *     is OK once; another key is FORBIDDEN; the ninth segment TOO_LARGE;
 *   - purge: a deactivated patient cannot sign in to add segments; once
 *     purged, nothing of its backup is in the store (and the canary the
 *     segments carried is nowhere in the data directory).
 *
 * One server (127.0.0.1, fresh data directory); every wait has a deadline.
 * Single-threaded.
 */
#define _GNU_SOURCE /* memmem() */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "client/carechat.h"
#include "protocol/proto.h"
#include "storage/store.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"
#include "tests/wsclient.h"

#define PASSWORD "correct-horse-battery-staple"
#define SEGMENT_MAX 4096
#define MAX_SEGMENTS 8
#define DAY_MS (24LL * 3600 * 1000)
#define CANARY "CANARY-7c1e-KEY-BACKUP-SEGMENT"
#define WAIT_MS 20000

static struct harness *g_h;
static char g_url[FIXTURE_URL_LEN];
static struct raw_device g_root_dev;
static struct rawc_user g_admin, g_doc, g_pat, g_other;
static uint8_t g_root[16];
/* The key id g_pat's segments carry. */
static uint8_t g_kid[16] = {0x4b, 0x49, 0x44};

/* ---- frames ----------------------------------------------------------------------------- */

static int status_of(Carechat__V1__Frame *r) {
    assert_non_null(r);
    assert_int_equal(r->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
    return -(int)r->response->status;
}

static int call(struct rawc *c, Carechat__V1__Frame *f) {
    Carechat__V1__Frame *r = rawc_rpc(c, f);
    int rc = status_of(r);
    proto_free(r);
    return rc;
}

static ProtobufCBinaryData bin(const void *p, size_t n) {
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

static int put(struct rawc *c, const uint8_t *account, uint64_t seq, const void *data, size_t len,
               const uint8_t kid[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__PutKeyBackupSegment m;
    carechat__v1__frame__init(&f);
    carechat__v1__put_key_backup_segment__init(&m);
    if (account)
        m.account_id = bin(account, 16);
    m.seq = seq;
    m.data = bin(data, len);
    m.key_id = bin(kid, 16);
    f.body_case = CARECHAT__V1__FRAME__BODY_PUT_KEY_BACKUP_SEGMENT;
    f.put_key_backup_segment = &m;
    return call(c, &f);
}

/* ListKeyBackup naming `account` (NULL: none): the status; on OK the answer
 * in *out (the caller frees it with proto_free()) when `out` is not NULL. */
static int list(struct rawc *c, const uint8_t *account, Carechat__V1__Frame **out) {
    Carechat__V1__Frame f;
    Carechat__V1__ListKeyBackup m;
    carechat__v1__frame__init(&f);
    carechat__v1__list_key_backup__init(&m);
    if (account)
        m.account_id = bin(account, 16);
    f.body_case = CARECHAT__V1__FRAME__BODY_LIST_KEY_BACKUP;
    f.list_key_backup = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int rc = status_of(r);
    if (rc == 0 && out)
        *out = r;
    else
        proto_free(r);
    return rc;
}

/* GetKeyBackupSegment: the status; the bytes into `data` on OK. */
static int get(struct rawc *c, const uint8_t *account, uint64_t seq, struct buf *data) {
    Carechat__V1__Frame f;
    Carechat__V1__GetKeyBackupSegment m;
    carechat__v1__frame__init(&f);
    carechat__v1__get_key_backup_segment__init(&m);
    if (account)
        m.account_id = bin(account, 16);
    m.seq = seq;
    f.body_case = CARECHAT__V1__FRAME__BODY_GET_KEY_BACKUP_SEGMENT;
    f.get_key_backup_segment = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int rc = status_of(r);
    if (rc == 0 && data) {
        buf_reset(data);
        buf_append(data, r->response->key_backup_segment->data.data,
                   r->response->key_backup_segment->data.len);
    }
    proto_free(r);
    return rc;
}

static int delete_before(struct rawc *c, const uint8_t *account, uint64_t before) {
    Carechat__V1__Frame f;
    Carechat__V1__DeleteKeyBackup m;
    carechat__v1__frame__init(&f);
    carechat__v1__delete_key_backup__init(&m);
    if (account)
        m.account_id = bin(account, 16);
    m.before_seq = before;
    f.body_case = CARECHAT__V1__FRAME__BODY_DELETE_KEY_BACKUP;
    f.delete_key_backup = &m;
    return call(c, &f);
}

/* The number of segments and next_seq of the caller's backup. */
static void own_backup(struct rawc *c, size_t *n, uint64_t *next, uint64_t *bytes) {
    Carechat__V1__Frame *r = NULL;
    assert_int_equal(list(c, NULL, &r), 0);
    *n = r->response->key_backup_list->n_segments;
    *next = r->response->key_backup_list->next_seq;
    if (bytes)
        *bytes = r->response->key_backup_list->total_bytes;
    assert_int_equal(r->response->key_backup_list->segment_max_bytes, SEGMENT_MAX);
    assert_int_equal(r->response->key_backup_list->max_segments, MAX_SEGMENTS);
    proto_free(r);
}

static struct rawc *as(struct rawc_user *u) {
    return rawc_open_login(g_h, u->email, PASSWORD, &u->dev[0], NULL);
}

static struct rawc *as_root(void) {
    return rawc_open_login(g_h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &g_root_dev, NULL);
}

/* The audit records `root` finds of `actor` about `patient` with action
 * `action` and outcome `status`. */
static size_t audit_count(struct rawc *root, const uint8_t actor[16], const uint8_t patient[16],
                          const char *action, int status) {
    Carechat__V1__Frame f;
    Carechat__V1__QueryAudit m;
    carechat__v1__frame__init(&f);
    carechat__v1__query_audit__init(&m);
    m.actor_account_id = bin(actor, 16);
    m.patient_account_id = bin(patient, 16);
    m.limit = 500;
    f.body_case = CARECHAT__V1__FRAME__BODY_QUERY_AUDIT;
    f.query_audit = &m;
    Carechat__V1__Frame *r = rawc_rpc(root, &f);
    assert_int_equal(status_of(r), 0);
    size_t n = 0;
    for (size_t i = 0; i < r->response->audit_page->n_records; i++) {
        const Carechat__V1__AuditRecord *a = r->response->audit_page->records[i];
        if (strcmp(a->action, action) == 0 && -(int)a->outcome == status &&
            a->object_id.len == 16 && memcmp(a->object_id.data, patient, 16) == 0)
            n++;
    }
    proto_free(r);
    return n;
}

/* ---- the server ---------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    const char *args[] = {"--key-backup-segment-max",
                          "4096",
                          "--key-backup-max-segments",
                          "8",
                          "--maintenance-interval",
                          "1",
                          "--review-days",
                          "1",
                          "--restriction-days",
                          "1",
                          NULL};
    if (fixture_start_bootstrapped(args, &g_h) != 0)
        return -1;
    fixture_url(g_h, g_url);
    raw_device_make(&g_root_dev);
    struct rawc *root =
        rawc_open_login(g_h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &g_root_dev, g_root);
    rawc_make_user(g_h, root, CARECHAT__V1__ROLE__ADMIN, PASSWORD, &g_admin);
    rawc_make_user(g_h, root, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &g_doc);
    struct rawc *doc = as(&g_doc);
    rawc_make_user(g_h, doc, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &g_pat);
    rawc_make_user(g_h, doc, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &g_other);
    rawc_free(doc);
    rawc_free(root);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return fixture_stop(g_h) == 0 ? 0 : -1;
}

/* ---- a new device reads history ---------------------------------------------------------------
 */

/* Receives until the queue is empty, then acknowledges (which backs up). */
static size_t drain(struct carechat *c) {
    size_t n = 0;
    for (;;) {
        struct carechat_message m;
        int rc = carechat_recv(c, 300, &m);
        if (rc == STATUS_NOT_FOUND)
            break;
        FIXTURE_ASSERT_OK(c, rc);
        assert_int_equal(m.state, CARECHAT_MESSAGE_OK);
        carechat_message_cleanup(&m);
        n++;
    }
    FIXTURE_ASSERT_OK(c, carechat_ack(c));
    return n;
}

/* The messages of `conv` as `c` reads them: how many, and how many in state
 * OK with one of the `n` texts (each at most once). */
static void read_history(struct carechat *c, const struct id *conv, const char *const *texts,
                         size_t n, size_t *total, size_t *readable) {
    struct carechat_messages *page = NULL;
    FIXTURE_ASSERT_OK(c, carechat_history(c, conv, 0, 100, &page));
    *total = page->n;
    *readable = 0;
    for (size_t i = 0; i < page->n; i++) {
        const struct carechat_message *m = &page->items[i];
        if (m->state != CARECHAT_MESSAGE_OK)
            continue;
        for (size_t t = 0; t < n; t++)
            if (m->text_len == strlen(texts[t]) && memcmp(m->text, texts[t], m->text_len) == 0)
                (*readable)++;
    }
    carechat_messages_free(page);
}

static void test_keybackup_new_device_reads_history(void **state) {
    (void)state;
    char dir[FIXTURE_DIR_LEN], pat_email[FIXTURE_EMAIL_LEN];
    fixture_fresh_profile("root", dir);
    struct carechat *root = fixture_open(g_url, dir);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    char doc_email[FIXTURE_EMAIL_LEN];
    fixture_email("kbdoc", doc_email);
    struct carechat *doc = fixture_invite_register(g_url, root, doc_email, CARECHAT_ROLE_PROVIDER,
                                                   PASSWORD, "Dr Key", NULL);
    fixture_email("kbpat", pat_email);
    struct carechat *a = fixture_invite_register(g_url, doc, pat_email, CARECHAT_ROLE_PATIENT,
                                                 PASSWORD, "Pat Key", NULL);
    struct carechat_conversation direct, channel;
    FIXTURE_ASSERT_OK(doc, carechat_open_direct(doc, pat_email, &direct));
    FIXTURE_ASSERT_OK(doc, carechat_channel_create(doc, pat_email, "Key ward", &channel));
    const char *direct_texts[] = {"direct one", "direct two", "direct three"};
    const char *channel_texts[] = {"channel one", "channel two"};
#define SEND(c, conv, text)                                                                        \
    FIXTURE_ASSERT_OK(c, carechat_send(c, &(conv).conversation_id, (const uint8_t *)(text),        \
                                       strlen(text), NULL, NULL))
    SEND(doc, direct, direct_texts[0]);
    SEND(doc, channel, channel_texts[0]);
    assert_int_equal(drain(a), 2);

    /* On: what A can read now, and from then on what it receives and sends. */
    char recovery[CARECHAT_RECOVERY_KEY_LEN + 1];
    size_t keys = 0;
    FIXTURE_ASSERT_OK(a, carechat_key_backup_enable(a, recovery, &keys));
    assert_int_equal(keys, 2);
    assert_int_equal(strlen(recovery), CARECHAT_RECOVERY_KEY_LEN);
    SEND(doc, direct, direct_texts[1]);
    SEND(doc, channel, channel_texts[1]);
    assert_int_equal(drain(a), 2);
    SEND(a, direct, direct_texts[2]);
    struct carechat_key_backup_status st;
    FIXTURE_ASSERT_OK(a, carechat_key_backup_status(a, &st));
    assert_true(st.enabled);
    assert_int_equal(st.local_keys, 5);
    assert_int_equal(st.pending_keys, 0);
    assert_true(st.segments >= 1);

    /* B: a new phone of the same account; A is not asked. */
    char bdir[FIXTURE_DIR_LEN];
    fixture_fresh_profile("newphone", bdir);
    struct carechat *b = fixture_open(g_url, bdir);
    FIXTURE_ASSERT_OK(b, carechat_login(b, pat_email, PASSWORD));
    size_t total = 0, readable = 0;
    read_history(b, &direct.conversation_id, direct_texts, 3, &total, &readable);
    assert_int_equal(total, 3);
    assert_int_equal(readable, 0);
    struct carechat_messages *page = NULL;
    FIXTURE_ASSERT_OK(b, carechat_history(b, &channel.conversation_id, 0, 100, &page));
    assert_int_equal(page->n, 2);
    for (size_t i = 0; i < page->n; i++)
        assert_int_equal(page->items[i].state, CARECHAT_MESSAGE_NO_KEY);
    carechat_messages_free(page);

    /* A typo; another backup's key: refused, nothing changes. */
    char typo[sizeof recovery];
    memcpy(typo, recovery, sizeof typo);
    typo[5] = typo[5] == 'Z' ? 'Y' : 'Z';
    assert_int_equal(carechat_key_backup_restore(b, typo, &keys), STATUS_BAD_REQUEST);
    assert_int_equal(carechat_error_kind(b), CARECHAT_ERROR_ARGUMENT);
    assert_non_null(strstr(carechat_error(b), "mistyped"));
    char other_dir[FIXTURE_DIR_LEN], other_email[FIXTURE_EMAIL_LEN], other_key[sizeof recovery];
    fixture_email("kbother", other_email);
    struct carechat *other = fixture_invite_register(g_url, doc, other_email, CARECHAT_ROLE_PATIENT,
                                                     PASSWORD, "Other Key", other_dir);
    FIXTURE_ASSERT_OK(other, carechat_key_backup_enable(other, other_key, NULL));
    assert_int_equal(carechat_key_backup_restore(b, other_key, &keys), STATUS_FORBIDDEN);
    assert_non_null(strstr(carechat_error(b), "does not open this account's key backup"));
    FIXTURE_ASSERT_OK(b, carechat_key_backup_status(b, &st));
    assert_false(st.enabled);
    assert_int_equal(st.local_keys, 0);
    read_history(b, &direct.conversation_id, direct_texts, 3, &total, &readable);
    assert_int_equal(readable, 0);

    /* The right key: every earlier message reads. */
    FIXTURE_ASSERT_OK(b, carechat_key_backup_restore(b, recovery, &keys));
    assert_int_equal(keys, 5);
    read_history(b, &direct.conversation_id, direct_texts, 3, &total, &readable);
    assert_int_equal(total, 3);
    assert_int_equal(readable, 3);
    read_history(b, &channel.conversation_id, channel_texts, 2, &total, &readable);
    assert_int_equal(readable, 2);
    FIXTURE_ASSERT_OK(b, carechat_key_backup_status(b, &st));
    assert_true(st.enabled);
    sodium_memzero(recovery, sizeof recovery);
#undef SEND
    carechat_conversation_cleanup(&direct);
    carechat_conversation_cleanup(&channel);
    carechat_close(other);
    carechat_close(b);
    carechat_close(a);
    carechat_close(doc);
    carechat_close(root);
}

/* ---- only the account itself ------------------------------------------------------------------
 */

static void test_keybackup_only_the_account_itself(void **state) {
    (void)state;
    struct rawc *pat = as(&g_pat);
    const char segment[] = "opaque ciphertext " CANARY;
    size_t n;
    uint64_t next;
    own_backup(pat, &n, &next, NULL);
    assert_int_equal(n, 0);
    assert_int_equal(next, 1);
    assert_int_equal(put(pat, g_pat.account, 1, segment, sizeof segment, g_kid), 0);

    struct rawc *root = as_root();
    struct rawc *strangers[] = {
        as(&g_other), as(&g_admin),
        rawc_open_login(g_h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &g_root_dev, NULL)};
    const uint8_t *who[] = {g_other.account, g_admin.account, g_root};
    uint8_t unknown[16];
    randombytes_buf(unknown, sizeof unknown);
    for (size_t i = 0; i < 3; i++) {
        struct rawc *s = strangers[i];
        struct buf data;
        buf_init(&data);
        assert_int_equal(list(s, g_pat.account, NULL), STATUS_FORBIDDEN);
        assert_int_equal(get(s, g_pat.account, 1, &data), STATUS_FORBIDDEN);
        assert_int_equal(put(s, g_pat.account, 2, "x", 1, g_kid), STATUS_FORBIDDEN);
        assert_int_equal(delete_before(s, g_pat.account, 0), STATUS_FORBIDDEN);
        /* An account that does not exist: the same answer. */
        assert_int_equal(list(s, unknown, NULL), STATUS_FORBIDDEN);
        /* Its own backup it may read (empty). */
        assert_int_equal(list(s, NULL, NULL), 0);
        buf_cleanup(&data);
        /* Each refusal is recorded against the patient (written beside the
         * answer: wait for it). */
        const char *actions[] = {"key_backup.list", "key_backup.read", "key_backup.write",
                                 "key_backup.delete"};
        for (size_t a = 0; a < 4; a++) {
            size_t found = 0;
            for (int t = 0; t < 50 && found == 0; t++) {
                found = audit_count(root, who[i], g_pat.account, actions[a], STATUS_FORBIDDEN);
                if (found == 0)
                    usleep(100 * 1000);
            }
            if (found != 1)
                fail_msg("stranger %zu: %zu %s refusals recorded", i, found, actions[a]);
        }
        rawc_free(s);
    }
    /* The patient's backup is as it was; its reads are audited too. */
    struct buf data;
    buf_init(&data);
    assert_int_equal(get(pat, NULL, 1, &data), 0);
    assert_int_equal(data.len, sizeof segment);
    assert_memory_equal(data.data, segment, sizeof segment);
    assert_int_equal(get(pat, NULL, 2, &data), STATUS_NOT_FOUND);
    buf_cleanup(&data);
    size_t reads = 0;
    for (int t = 0; t < 50 && reads == 0; t++) {
        reads = audit_count(root, g_pat.account, g_pat.account, "key_backup.read", 0);
        if (reads == 0)
            usleep(100 * 1000);
    }
    assert_true(reads >= 1);
    assert_true(audit_count(root, g_pat.account, g_pat.account, "key_backup.write", 0) >= 1);
    rawc_free(root);
    rawc_free(pat);
}

/* ---- limits --------------------------------------------------------------------------------- */

static void test_keybackup_limits(void **state) {
    (void)state;
    struct rawc *pat = as(&g_pat);
    size_t n;
    uint64_t next, bytes, bytes_after;
    own_backup(pat, &n, &next, &bytes);
    assert_int_equal(n, 1);
    assert_int_equal(next, 2);
    /* Over the segment limit: refused, nothing stored, the connection goes on. */
    uint8_t *big = xcalloc(1, 300 * 1024);
    memcpy(big, CANARY, strlen(CANARY));
    assert_int_equal(put(pat, NULL, 2, big, SEGMENT_MAX + 1, g_kid), STATUS_TOO_LARGE);
    own_backup(pat, &n, &next, &bytes_after);
    assert_true(n == 1 && next == 2 && bytes_after == bytes);
    /* Over the frame limit: the connection is closed (1009) before the frame
     * is read into memory. */
    struct rawc *greedy = as(&g_pat);
    Carechat__V1__Frame f;
    Carechat__V1__PutKeyBackupSegment m;
    carechat__v1__frame__init(&f);
    carechat__v1__put_key_backup_segment__init(&m);
    m.seq = 2;
    m.data = bin(big, 300 * 1024);
    m.key_id = bin(g_kid, 16);
    f.body_case = CARECHAT__V1__FRAME__BODY_PUT_KEY_BACKUP_SEGMENT;
    f.put_key_backup_segment = &m;
    rawc_send_request(greedy, &f);
    int code = 0;
    assert_int_equal(wsc_wait_close(greedy->ws, 5000, &code), 0);
    assert_int_equal(code, 1009);
    rawc_free(greedy);
    free(big);
    own_backup(pat, &n, &next, NULL);
    assert_int_equal(n, 1);

    /* Numbers: only the next one; a retry of a stored segment is OK once;
     * other bytes under a stored number, or another key, are not. */
    assert_int_equal(put(pat, NULL, 3, "three", 5, g_kid), STATUS_CONFLICT);
    assert_int_equal(put(pat, NULL, 2, "two", 3, g_kid), 0);
    assert_int_equal(put(pat, NULL, 2, "two", 3, g_kid), 0);
    assert_int_equal(put(pat, NULL, 2, "deux", 4, g_kid), STATUS_CONFLICT);
    uint8_t other_kid[16] = {1};
    assert_int_equal(put(pat, NULL, 3, "three", 5, other_kid), STATUS_FORBIDDEN);
    own_backup(pat, &n, &next, NULL);
    assert_true(n == 2 && next == 3);
    /* At most 8 segments. */
    for (uint64_t seq = 3; seq <= MAX_SEGMENTS; seq++)
        assert_int_equal(put(pat, NULL, seq, "more", 4, g_kid), 0);
    assert_int_equal(put(pat, NULL, MAX_SEGMENTS + 1, "one too many", 12, g_kid), STATUS_TOO_LARGE);
    /* A compaction frees room: the older segments go. */
    assert_int_equal(delete_before(pat, NULL, 3), 0);
    own_backup(pat, &n, &next, NULL);
    assert_true(n == MAX_SEGMENTS - 2 && next == MAX_SEGMENTS + 1);
    assert_int_equal(
        put(pat, NULL, MAX_SEGMENTS + 1, "fits again " CANARY, 11 + strlen(CANARY), g_kid), 0);
    rawc_free(pat);
}

/* ---- purge -------------------------------------------------------------------------------- */

static bool count_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    (void)k;
    (void)kl;
    size_t *n = ctx;
    n[0]++;
    if (memmem(v, vl, CANARY, strlen(CANARY)))
        n[1]++;
    return true;
}

/* The records of g_pat's backup that open with the store's keys now, and of
 * them those that carry the canary. */
static void backup_records(size_t *records, size_t *canaries) {
    struct store_config sc = {.data_dir = g_h->data_dir, .mode = STORE_OPEN};
    struct store *s = NULL;
    assert_int_equal(store_open(&sc, &s), 0);
    size_t n[2] = {0, 0};
    assert_true(store_scan(s, CF_KEY_BACKUP, g_pat.account, 16, NULL, 0, SIZE_MAX, count_one, n) >=
                0);
    store_close(s);
    *records = n[0];
    *canaries = n[1];
}

/* Restarts the server with its clock `days` ahead. */
static void restart_at_day(int days) {
    int status = -1;
    assert_int_equal(harness_stop(g_h, &status), 0);
    assert_int_equal(status, 0);
    char offset[32];
    snprintf(offset, sizeof offset, "%lld", (long long)days * DAY_MS);
    for (int i = 0; i + 1 < g_h->n_args; i++)
        if (strcmp(g_h->args[i], "--clock-offset") == 0) {
            free(g_h->args[i + 1]);
            g_h->args[i + 1] = xstrdup(offset);
            assert_int_equal(harness_restart(g_h), 0);
            return;
        }
    assert_true(g_h->n_args + 2 <= HARNESS_MAX_ARGS);
    g_h->args[g_h->n_args++] = xstrdup("--clock-offset");
    g_h->args[g_h->n_args++] = xstrdup(offset);
    assert_int_equal(harness_restart(g_h), 0);
}

static int retention_state(struct rawc *c, const uint8_t account[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__GetRetentionState m;
    carechat__v1__frame__init(&f);
    carechat__v1__get_retention_state__init(&m);
    m.account_id = bin(account, 16);
    f.body_case = CARECHAT__V1__FRAME__BODY_GET_RETENTION_STATE;
    f.get_retention_state = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int rc = status_of(r);
    if (rc == 0)
        rc = (int)r->response->retention->state;
    proto_free(r);
    return rc;
}

static void test_keybackup_purged_account_has_none(void **state) {
    (void)state;
    /* Before: the backup's records open, the canary among them. */
    int status = -1;
    assert_int_equal(harness_stop(g_h, &status), 0);
    size_t records = 0, canaries = 0;
    backup_records(&records, &canaries);
    assert_true(records >= 2);
    assert_true(canaries >= 1);
    assert_int_equal(harness_restart(g_h), 0);

    /* Deactivated: its sessions end, it cannot sign in to add segments. */
    struct rawc *doc = as(&g_doc);
    Carechat__V1__Frame f;
    Carechat__V1__DeactivateAccount m;
    carechat__v1__frame__init(&f);
    carechat__v1__deactivate_account__init(&m);
    m.account_id = bin(g_pat.account, 16);
    f.body_case = CARECHAT__V1__FRAME__BODY_DEACTIVATE_ACCOUNT;
    f.deactivate_account = &m;
    assert_int_equal(call(doc, &f), 0);
    rawc_free(doc);
    struct rawc *pat = rawc_open(g_h);
    Carechat__V1__Frame *r = rawc_login(pat, g_pat.email, PASSWORD, &g_pat.dev[0]);
    assert_int_equal(status_of(r), STATUS_UNAUTHENTICATED);
    proto_free(r);
    rawc_free(pat);

    /* Purged (review and restriction take a day each here). */
    restart_at_day(3);
    struct rawc *root = as_root();
    int64_t deadline = clock_monotonic_ms() + WAIT_MS;
    int got;
    while ((got = retention_state(root, g_pat.account)) !=
               CARECHAT__V1__RETENTION_STATE__RETENTION_PURGED &&
           clock_monotonic_ms() < deadline)
        usleep(100 * 1000);
    assert_int_equal(got, CARECHAT__V1__RETENTION_STATE__RETENTION_PURGED);
    rawc_free(root);
    while (!harness_log_contains(g_h, "compacted after a purge") && clock_monotonic_ms() < deadline)
        usleep(100 * 1000);
    assert_true(harness_log_contains(g_h, "compacted after a purge"));
    assert_int_equal(harness_stop(g_h, &status), 0);
    backup_records(&records, &canaries);
    assert_int_equal(records, 0);
    assert_int_equal(canaries, 0);
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "grep -rqaF -- '%s' '%s'", CANARY, g_h->data_dir);
    assert_int_not_equal(system(cmd), 0);
    assert_int_equal(harness_restart(g_h), 0);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keybackup_new_device_reads_history),
        cmocka_unit_test(test_keybackup_only_the_account_itself),
        cmocka_unit_test(test_keybackup_limits),
        cmocka_unit_test(test_keybackup_purged_account_has_none),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
