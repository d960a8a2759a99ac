/*
 * server/apply_outbox_test.c: apply of the notification kinds and the outbox
 * rows other kinds write (server/apply_outbox.c), on a real store: a message
 * to an offline recipient writes one email row and one push row per
 * registered channel, coalesced while they wait; the sender gets none;
 * OutboxResult settles rows (retry, stale results, delivered, token dead,
 * cancelled); an invitation with a mail code writes its row with the code;
 * settings off write nothing; registrations come and go; a replay of the
 * entries gives the same rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/apply_fixture.h"
#include "server/apply_internal.h"
#include "server/audit.h"
#include "server/records_notify.h"
#include "storage/keys.h"
#include "storage/store.h"

#define T0 FIXTURE_T0

/* ---- reading the outbox ---------------------------------------------------------------- */

struct jobs {
    size_t n;
    uint8_t id[16][16];
    struct rec_outbox_job job[16];
};

static bool collect(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    struct jobs *j = ctx;
    assert_int_equal(kl, 17);
    assert_true(j->n < 16);
    memcpy(j->id[j->n], k + 1, 16);
    assert_int_equal(rec_outbox_job_decode(v, vl, &j->job[j->n]), 0);
    j->n++;
    return true;
}

static void jobs_read(struct fixture_db *db, struct jobs *out) {
    memset(out, 0, sizeof *out);
    uint8_t tag = REC_OUTBOX_TAG_JOB;
    assert_true(store_scan(db->store, CF_OUTBOX, &tag, 1, NULL, 0, 16, collect, out) >= 0);
}

static void jobs_free(struct jobs *j) {
    for (size_t i = 0; i < j->n; i++)
        rec_outbox_job_cleanup(&j->job[i]);
}

/* The index of the job on `channel`, or -1. */
static int job_on(const struct jobs *j, uint8_t channel) {
    for (size_t i = 0; i < j->n; i++)
        if (j->job[i].channel == channel)
            return (int)i;
    return -1;
}

static bool reg_exists(struct fixture_db *db, const struct fixture_person *p,
                       const struct fixture_dev *d, uint8_t channel) {
    struct key k;
    rec_key_push_reg(&k, &p->id, &d->id, channel);
    struct buf v;
    buf_init(&v);
    int rc = store_get(db->store, CF_OUTBOX, k.b, k.len, &v);
    buf_cleanup(&v);
    return rc == 0;
}

static struct rec_notify_state state_of(struct fixture_db *db, const struct id *target,
                                        uint8_t channel) {
    struct key k;
    rec_key_notify_state(&k, target, channel);
    struct buf v;
    buf_init(&v);
    struct rec_notify_state s;
    memset(&s, 0, sizeof s);
    if (store_get(db->store, CF_OUTBOX, k.b, k.len, &v) == 0)
        assert_int_equal(rec_notify_state_decode(v.data, v.len, &s), 0);
    buf_cleanup(&v);
    return s;
}

/* ---- entries ------------------------------------------------------------------------------ */

static void actor(Carechat__Entry__V1__Entry *e, int64_t t, const struct fixture_person *p,
                  const struct fixture_dev *d) {
    carechat__entry__v1__entry__init(e);
    e->time = t;
    if (p)
        e->actor_account_id = fixture_bin(p->id.b, 16);
    if (d)
        e->actor_device_id = fixture_bin(d->id.b, 16);
}

static int send_msg(struct fixture_db *db, const struct fixture_person *from,
                    const struct fixture_dev *from_dev, const struct id *conv, uint8_t n,
                    const struct fixture_dev *to, const struct fixture_dev *const *members,
                    size_t n_members) {
    static uint8_t enc[32], wk[48], nonce[24], sig[64];
    uint8_t cmid[16] = {0xc0}, mid[16] = {0xe0};
    cmid[15] = n;
    mid[15] = n;
    Carechat__Entry__V1__WrapItem item, *ip = &item;
    carechat__entry__v1__wrap_item__init(&item);
    item.device_id = fixture_bin(to->id.b, 16);
    item.key_id = 1;
    item.enc = fixture_bin(enc, 32);
    item.wrapped_key = fixture_bin(wk, 48);
    ProtobufCBinaryData mem[4];
    for (size_t i = 0; i < n_members; i++)
        mem[i] = fixture_bin(members[i]->id.b, 16);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MessageSend m;
    actor(&e, T0 + 1000 + n, from, from_dev);
    carechat__entry__v1__message_send__init(&m);
    e.idempotency_key = fixture_bin(cmid, 16);
    m.conversation_id = fixture_bin(conv->b, 16);
    m.message_id = fixture_bin(mid, 16);
    m.client_msg_id = fixture_bin(cmid, 16);
    m.envelope_version = 2;
    m.sender_device_id = fixture_bin(from_dev->id.b, 16);
    m.body = fixture_bin("ciphertext", 10);
    m.body_nonce = fixture_bin(nonce, 24);
    m.signature = fixture_bin(sig, 64);
    m.n_wraps = 1;
    m.wraps = &ip;
    m.n_member_device_ids = n_members;
    m.member_device_ids = mem;
    m.inbox_limit = 100;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_SEND;
    e.message_send = &m;
    return fixture_propose(db, &e);
}

static int push_register(struct fixture_db *db, const struct fixture_person *p,
                         const struct fixture_dev *d, uint8_t reg_n, uint32_t channel) {
    uint8_t reg[16] = {0x7e};
    reg[15] = reg_n;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PushRegister r;
    actor(&e, T0 + 500, p, d);
    carechat__entry__v1__push_register__init(&r);
    r.registration_id = fixture_bin(reg, 16);
    r.channel = channel;
    r.token = channel == REC_CHANNEL_WEBPUSH ? "https://push.example/sub/1" : "abcdef0123";
    if (channel == REC_CHANNEL_WEBPUSH) {
        r.webpush_p256dh = "BPp256dhBase64url";
        r.webpush_auth = "authBase64url";
    }
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PUSH_REGISTER;
    e.push_register = &r;
    return fixture_propose(db, &e);
}

static int push_unregister(struct fixture_db *db, const struct fixture_person *p,
                           const struct fixture_dev *d, uint8_t reg_n, uint32_t channel) {
    uint8_t reg[16] = {0x7e};
    reg[15] = reg_n;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PushUnregister r;
    actor(&e, T0 + 600, p, d);
    carechat__entry__v1__push_unregister__init(&r);
    r.registration_id = fixture_bin(reg, 16);
    r.device_id = fixture_bin(d->id.b, 16);
    r.channel = channel;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PUSH_UNREGISTER;
    e.push_unregister = &r;
    return fixture_propose(db, &e);
}

static int settings(struct fixture_db *db, const struct fixture_person *p,
                    const struct fixture_dev *d, bool email, bool push) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__NotifySettingsSet s;
    actor(&e, T0 + 700, p, d);
    carechat__entry__v1__notify_settings_set__init(&s);
    s.email = email;
    s.push = push;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_NOTIFY_SETTINGS_SET;
    e.notify_settings_set = &s;
    return fixture_propose(db, &e);
}

static int result(struct fixture_db *db, const uint8_t id[16], uint32_t attempt, uint32_t outcome,
                  int64_t t, int64_t next_at) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__OutboxResult r;
    actor(&e, t, NULL, NULL);
    carechat__entry__v1__outbox_result__init(&r);
    r.job_id = fixture_bin(id, 16);
    r.attempt = attempt;
    r.outcome = outcome;
    r.next_at = next_at;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_OUTBOX_RESULT;
    e.outbox_result = &r;
    return fixture_propose(db, &e);
}

static int inbox_ack(struct fixture_db *db, const struct fixture_person *p,
                     const struct fixture_dev *d, uint64_t pos) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InboxAck a;
    actor(&e, T0 + 5000, p, d);
    carechat__entry__v1__inbox_ack__init(&a);
    a.position = pos;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INBOX_ACK;
    e.inbox_ack = &a;
    return fixture_propose(db, &e);
}

/* ---- the scenario ---------------------------------------------------------------------------- */

struct world {
    struct fixture_person admin, doc, pat;
    struct fixture_dev d1, p1, a1;
    struct id conv;
};

static void world_make(struct fixture_db *db, struct world *w) {
    fixture_person(&w->admin, "admin@x.example", 1);
    fixture_person(&w->doc, "doc@x.example", 2);
    fixture_person(&w->pat, "pat@x.example", 3);
    fixture_dev_make(&w->a1, 1);
    fixture_dev_make(&w->d1, 2);
    fixture_dev_make(&w->p1, 3);
    fixture_bootstrap(db, &w->admin);
    fixture_join(db, &w->admin, &w->doc, 2, &w->d1);
    fixture_join(db, &w->doc, &w->pat, 1, &w->p1);
    w->conv = (struct id){{0xcc, 1}};
    assert_int_equal(fixture_direct(db, &w->doc, &w->pat, &w->conv), 0);
}

/* doc sends message n to the patient's only device. */
static int doc_sends(struct fixture_db *db, struct world *w, uint8_t n) {
    const struct fixture_dev *members[2] = {&w->d1, &w->p1};
    return send_msg(db, &w->doc, &w->d1, &w->conv, n, &w->p1, members, 2);
}

static void run_scenario(struct fixture_db *db) {
    struct world w;
    world_make(db, &w);
    struct jobs j;
    jobs_read(db, &j);
    assert_int_equal(j.n, 0); /* fixture_join's invitations carry no mail code */

    /* The patient's phone registers for Web Push; bad registrations refused. */
    assert_int_equal(push_register(db, &w.pat, &w.p1, 1, REC_CHANNEL_WEBPUSH), 0);
    struct rec_audit a = fixture_last_audit(db);
    assert_int_equal(a.action, REC_AUDIT_PUSH_REGISTER);
    assert_true(reg_exists(db, &w.pat, &w.p1, REC_CHANNEL_WEBPUSH));
    assert_int_equal(push_register(db, &w.pat, &w.p1, 2, REC_CHANNEL_EMAIL), STATUS_BAD_REQUEST);
    assert_int_equal(push_register(db, &w.pat, &w.d1, 2, REC_CHANNEL_FCM), STATUS_UNAUTHENTICATED);

    /* Three messages: one email row for the patient's account and one Web
     * Push row for the phone; none for the sender. */
    for (uint8_t n = 1; n <= 3; n++)
        assert_int_equal(doc_sends(db, &w, n), 0);
    jobs_read(db, &j);
    assert_int_equal(j.n, 2);
    int em = job_on(&j, REC_CHANNEL_EMAIL), wp = job_on(&j, REC_CHANNEL_WEBPUSH);
    assert_true(em >= 0 && wp >= 0);
    assert_int_equal(j.job[em].kind, REC_NOTICE_NEW_MESSAGE);
    assert_memory_equal(j.job[em].account.b, w.pat.id.b, 16);
    assert_true(id_is_zero(&j.job[em].device));
    assert_null(j.job[em].email); /* the address is read when it is sent */
    assert_int_equal(j.job[em].created_at, T0 + 1001);
    assert_int_equal(j.job[em].attempt, 1);
    assert_memory_equal(j.job[wp].device.b, w.p1.id.b, 16);
    assert_int_equal(j.job[wp].registration.b[15], 1);
    uint8_t email_id[16], push_id[16];
    memcpy(email_id, j.id[em], 16);
    memcpy(push_id, j.id[wp], 16);
    jobs_free(&j);
    struct rec_notify_state st = state_of(db, &w.pat.id, REC_CHANNEL_EMAIL);
    assert_memory_equal(st.pending, email_id, 16);

    /* A retry: attempt 2 at next_at; the stale result of attempt 1 again and
     * a result for an unknown job change nothing. */
    assert_int_equal(result(db, email_id, 1, REC_OUTBOX_RETRY, T0 + 2000, T0 + 62000), 0);
    assert_int_equal(result(db, email_id, 1, REC_OUTBOX_DELIVERED, T0 + 2001, 0), 0);
    static const uint8_t unknown[16] = {0x99};
    assert_int_equal(result(db, unknown, 1, REC_OUTBOX_DELIVERED, T0 + 2001, 0), 0);
    assert_int_equal(result(db, email_id, 1, REC_OUTBOX_RETRY, T0 + 2001, 0), STATUS_BAD_REQUEST);
    jobs_read(db, &j);
    assert_int_equal(j.n, 2);
    em = job_on(&j, REC_CHANNEL_EMAIL);
    assert_int_equal(j.job[em].attempt, 2);
    assert_int_equal(j.job[em].next_at, T0 + 62000);
    jobs_free(&j);

    /* Delivered: the row goes, the window starts; the next message makes a
     * new row with another id. */
    assert_int_equal(result(db, email_id, 2, REC_OUTBOX_DELIVERED, T0 + 63000, 0), 0);
    st = state_of(db, &w.pat.id, REC_CHANNEL_EMAIL);
    assert_true(id_is_zero((const struct id *)st.pending));
    assert_int_equal(st.last_sent_at, T0 + 63000);
    assert_int_equal(doc_sends(db, &w, 4), 0);
    jobs_read(db, &j);
    assert_int_equal(j.n, 2);
    em = job_on(&j, REC_CHANNEL_EMAIL);
    assert_memory_not_equal(j.id[em], email_id, 16);
    memcpy(email_id, j.id[em], 16);
    jobs_free(&j);

    /* Reading (the inbox drained) resets the window. */
    assert_int_equal(inbox_ack(db, &w.pat, &w.p1, 4), 0);
    st = state_of(db, &w.pat.id, REC_CHANNEL_EMAIL);
    assert_int_equal(st.last_sent_at, 0);
    assert_memory_equal(st.pending, email_id, 16);

    /* Cancelled: the row goes and nothing else. */
    assert_int_equal(result(db, email_id, 1, REC_OUTBOX_CANCELLED, T0 + 6000, 0), 0);
    st = state_of(db, &w.pat.id, REC_CHANNEL_EMAIL);
    assert_true(id_is_zero((const struct id *)st.pending));

    /* The push endpoint is gone: the row and the registration go, audited. */
    assert_int_equal(result(db, push_id, 1, REC_OUTBOX_TOKEN_DEAD, T0 + 7000, 0), 0);
    assert_false(reg_exists(db, &w.pat, &w.p1, REC_CHANNEL_WEBPUSH));
    a = fixture_last_audit(db);
    assert_int_equal(a.action, REC_AUDIT_PUSH_TOKEN_DEAD);
    assert_int_equal(a.object_len, 16);
    jobs_read(db, &j);
    assert_int_equal(j.n, 0);
    jobs_free(&j);

    /* Settings off: no rows for the next message; the change is audited. */
    assert_int_equal(settings(db, &w.pat, &w.p1, false, false), 0);
    a = fixture_last_audit(db);
    assert_int_equal(a.action, REC_AUDIT_NOTIFY_WRITE);
    assert_int_equal(push_register(db, &w.pat, &w.p1, 3, REC_CHANNEL_FCM), 0);
    assert_int_equal(doc_sends(db, &w, 5), 0);
    jobs_read(db, &j);
    assert_int_equal(j.n, 0);
    jobs_free(&j);

    /* Unregister: only the current id of the device's registration. */
    assert_int_equal(push_unregister(db, &w.pat, &w.p1, 1, REC_CHANNEL_FCM), STATUS_NOT_FOUND);
    assert_int_equal(push_unregister(db, &w.pat, &w.p1, 3, REC_CHANNEL_FCM), 0);
    assert_false(reg_exists(db, &w.pat, &w.p1, REC_CHANNEL_FCM));
    assert_int_equal(fixture_last_audit(db).action, REC_AUDIT_PUSH_UNREGISTER);
}

static int device_left(struct fixture_db *db, const struct fixture_person *p,
                       const struct fixture_dev *d, int64_t t) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PushDeviceLeft l;
    actor(&e, t, p, d);
    carechat__entry__v1__push_device_left__init(&l);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PUSH_DEVICE_LEFT;
    e.push_device_left = &l;
    return fixture_propose(db, &e);
}

/* A device that goes away: one push row per registered channel, none while
 * one is pending, none for a device without registrations. */
static void test_apply_outbox_device_left(void **state) {
    (void)state;
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "outbox-left");
    struct world w;
    world_make(&db, &w);
    struct jobs j;
    assert_int_equal(device_left(&db, &w.pat, &w.p1, T0 + 800), 0);
    jobs_read(&db, &j);
    assert_int_equal(j.n, 0);
    assert_int_equal(push_register(&db, &w.pat, &w.p1, 1, REC_CHANNEL_APNS), 0);
    assert_int_equal(push_register(&db, &w.pat, &w.p1, 2, REC_CHANNEL_FCM), 0);
    assert_int_equal(device_left(&db, &w.pat, &w.p1, T0 + 900), 0);
    jobs_read(&db, &j);
    assert_int_equal(j.n, 2);
    assert_true(job_on(&j, REC_CHANNEL_APNS) >= 0 && job_on(&j, REC_CHANNEL_FCM) >= 0);
    assert_int_equal(j.job[0].created_at, T0 + 900);
    jobs_free(&j);
    assert_int_equal(device_left(&db, &w.pat, &w.p1, T0 + 950), 0);
    jobs_read(&db, &j);
    assert_int_equal(j.n, 2);
    jobs_free(&j);
    fixture_close(&db);
    fixture_log_cleanup();
}

static void test_apply_outbox_scenario(void **state) {
    (void)state;
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "outbox");
    run_scenario(&db);
    fixture_close(&db);
    fixture_log_cleanup();
}

/* The same entries on an empty store give the same outbox, byte for byte
 * once opened (job ids come from the entries, not from randomness). */
static void test_apply_outbox_replay_is_deterministic(void **state) {
    (void)state;
    fixture_log_reset();
    struct fixture_db a, b;
    fixture_open(&a, "outbox-a");
    struct world w;
    world_make(&a, &w);
    assert_int_equal(push_register(&a, &w.pat, &w.p1, 1, REC_CHANNEL_APNS), 0);
    assert_int_equal(doc_sends(&a, &w, 1), 0);
    assert_int_equal(doc_sends(&a, &w, 2), 0);
    fixture_open(&b, "outbox-b");
    fixture_replay(&b);
    struct buf da, dbb;
    buf_init(&da);
    buf_init(&dbb);
    fixture_dump(&a, CF_OUTBOX, CF_OUTBOX, &da);
    fixture_dump(&b, CF_OUTBOX, CF_OUTBOX, &dbb);
    assert_true(da.len > 0);
    assert_int_equal(da.len, dbb.len);
    assert_memory_equal(da.data, dbb.data, da.len);
    buf_cleanup(&da);
    buf_cleanup(&dbb);
    fixture_close(&a);
    fixture_close(&b);
    fixture_log_cleanup();
}

/* An invitation with a mail code: one INVITATION email row holding the
 * address and the code; a code that is not the hashed one is refused and
 * writes nothing. */
static void test_apply_outbox_invitation_row(void **state) {
    (void)state;
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "outbox-inv");
    struct fixture_person admin;
    fixture_person(&admin, "admin@x.example", 1);
    fixture_bootstrap(&db, &admin);
    const char *code = "0123456789abcdef0123456789abcdef";
    uint8_t hash[32], index[32];
    crypto_hash_sha256(hash, (const uint8_t *)code, strlen(code));
    crypto_hash_sha256(index, (const uint8_t *)"new@x.example", 13);
    for (int bad = 1; bad >= 0; bad--) {
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__InviteCreate in;
        actor(&e, T0 + 10, &admin, NULL);
        carechat__entry__v1__invite_create__init(&in);
        in.code_hash = fixture_bin(hash, 32);
        in.email = "new@x.example";
        in.email_index = fixture_bin(index, 32);
        in.role = 1;
        in.expires_at = T0 + FIXTURE_DAY;
        in.mail_code = bad ? "0123456789abcdef0123456789abcdee" : (char *)code;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INVITE_CREATE;
        e.invite_create = &in;
        assert_int_equal(fixture_propose(&db, &e), bad ? STATUS_BAD_REQUEST : 0);
        struct jobs j;
        jobs_read(&db, &j);
        assert_int_equal(j.n, bad ? 0 : 1);
        if (!bad) {
            assert_int_equal(j.job[0].kind, REC_NOTICE_INVITATION);
            assert_int_equal(j.job[0].channel, REC_CHANNEL_EMAIL);
            assert_string_equal(j.job[0].email, "new@x.example");
            assert_string_equal(j.job[0].code, code);
            assert_true(id_is_zero(&j.job[0].account));
            /* Delivered: the code leaves the store with the row. */
            assert_int_equal(result(&db, j.id[0], 1, REC_OUTBOX_DELIVERED, T0 + 20, 0), 0);
            jobs_free(&j);
            jobs_read(&db, &j);
            assert_int_equal(j.n, 0);
        }
        jobs_free(&j);
    }
    fixture_close(&db);
    fixture_log_cleanup();
}

/* apply_outbox_account_email(), for kinds of other features (breach
 * notices): called from an apply function of the test's own, as another
 * kind's apply would. */
struct account_email_case {
    struct id account;
    uint8_t job_id[16];
    int kind;
};

static int apply_account_email(void *ctx, struct store_txn *txn, uint64_t pos, const uint8_t *entry,
                               size_t entry_len, struct buf *result) {
    (void)pos;
    (void)entry;
    (void)entry_len;
    (void)result;
    const struct account_email_case *c = ctx;
    Carechat__Entry__V1__Entry e;
    carechat__entry__v1__entry__init(&e);
    e.time = T0 + 4242;
    return apply_outbox_account_email(txn, &e, &c->account, (enum rec_notice)c->kind, c->job_id);
}

static void test_apply_outbox_account_email(void **state) {
    (void)state;
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "outbox-breach");
    struct fixture_person admin;
    fixture_person(&admin, "admin@x.example", 1);
    fixture_bootstrap(&db, &admin);
    journal_close(db.journal);
    struct account_email_case c = {
        .account = admin.id, .job_id = {0xb7, 1}, .kind = REC_NOTICE_BREACH};
    struct journal_config jc = {.store = db.store, .apply = apply_account_email, .apply_ctx = &c};
    assert_int_equal(journal_open(&jc, &db.journal), 0);
    static const uint8_t any[1] = {0};
    assert_int_equal(fixture_append(&db, any, 1), 0);
    struct jobs j;
    jobs_read(&db, &j);
    assert_int_equal(j.n, 1);
    assert_memory_equal(j.id[0], c.job_id, 16);
    assert_int_equal(j.job[0].kind, REC_NOTICE_BREACH);
    assert_int_equal(j.job[0].channel, REC_CHANNEL_EMAIL);
    assert_memory_equal(j.job[0].account.b, admin.id.b, 16);
    assert_int_equal(j.job[0].created_at, T0 + 4242);
    assert_null(j.job[0].email); /* read from the account when it is sent */
    jobs_free(&j);
    /* The same id again: CONFLICT; an unknown account: NOT_FOUND; another
     * kind: BAD_REQUEST. Nothing more is written. */
    assert_int_equal(fixture_append(&db, any, 1), STATUS_CONFLICT);
    c.job_id[1] = 2;
    c.account.b[0] ^= 0xff;
    assert_int_equal(fixture_append(&db, any, 1), STATUS_NOT_FOUND);
    c.account = admin.id;
    c.kind = REC_NOTICE_INVITATION;
    assert_int_equal(fixture_append(&db, any, 1), STATUS_BAD_REQUEST);
    jobs_read(&db, &j);
    assert_int_equal(j.n, 1);
    jobs_free(&j);
    fixture_close(&db);
    fixture_log_cleanup();
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_outbox_scenario),
        cmocka_unit_test(test_apply_outbox_replay_is_deterministic),
        cmocka_unit_test(test_apply_outbox_invitation_row),
        cmocka_unit_test(test_apply_outbox_device_left),
        cmocka_unit_test(test_apply_outbox_account_email),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
