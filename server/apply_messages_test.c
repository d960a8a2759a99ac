/*
 * server/apply_messages_test.c: apply for the conversation and message kinds
 * of entry.proto (DirectCreate, MessageSend, InboxAck, ReceiptRecord) through
 * the real journal and RocksDB in $TEST_TMPDIR: who may open a direct
 * conversation, seq and inbox positions assigned in apply, an idempotent
 * retry stored once, the device-set CONFLICT with missing/extra/stale ids,
 * the inbox cap, acknowledgements deleting inbox entries, receipts, and that
 * replaying the same entries on two empty stores gives identical contents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/rand.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/msgrec.h"
#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/store.h"

#define DEADLINE_MS 10000
#define T0 1790000000000LL
#define DAY (24LL * 3600 * 1000)
#define MAX_LOG 64

struct db {
    char dir[512];
    struct store *store;
    struct journal *journal;
};

static struct buf log_entries[MAX_LOG];
static size_t n_log;

static void db_open(struct db *db) {
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(db->dir, sizeof db->dir, "%s/apply-msg-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(db->dir));
    struct store_config sc = {.data_dir = db->dir};
    assert_int_equal(store_open(&sc, &db->store), 0);
    struct journal_config jc = {.store = db->store, .apply = apply_entry};
    assert_int_equal(journal_open(&jc, &db->journal), 0);
}

static void db_close(struct db *db) {
    journal_close(db->journal);
    store_close(db->store);
}

struct done {
    bool called;
    int status;
    struct buf result;
};

static void on_done(void *ctx, uint64_t pos, int status, const uint8_t *r, size_t len) {
    struct done *d = ctx;
    d->called = true;
    d->status = status;
    buf_reset(&d->result);
    if (len)
        buf_append(&d->result, r, len);
}

/* The result of the last entry applied. */
static struct buf last_result;

static int append_raw(struct db *db, const uint8_t *data, size_t len) {
    struct done d = {0};
    buf_init(&d.result);
    assert_int_equal(journal_append(db->journal, data, len, on_done, &d), 0);
    int64_t deadline = clock_monotonic_ms() + DEADLINE_MS;
    while (!d.called && clock_monotonic_ms() < deadline) {
        journal_poll(db->journal);
        if (!d.called)
            nanosleep(&(struct timespec){.tv_nsec = 1000000L}, NULL);
    }
    assert_true(d.called);
    buf_reset(&last_result);
    buf_append(&last_result, d.result.data, d.result.len);
    buf_cleanup(&d.result);
    return d.status;
}

static int propose(struct db *db, Carechat__Entry__V1__Entry *e) {
    e->version = PROTO_ENTRY_VERSION;
    assert_true(n_log < MAX_LOG);
    struct buf *b = &log_entries[n_log++];
    buf_init(b);
    assert_int_equal(proto_entry_encode(e, b), 0);
    return append_raw(db, b->data, b->len);
}

static ProtobufCBinaryData bin(const void *p, size_t n) {
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

/* ---- accounts and devices (through the account kinds) ------------------------- */

struct dev {
    struct id id;
    uint8_t pk[32], sk[64], ek[32], sig[64];
};

static void dev_make(struct dev *d, int n) {
    /* Deterministic ids, so that the replay test can compare two runs' logs
     * only through the entries. */
    memset(d, 0, sizeof *d);
    d->id.b[0] = 0xd0;
    d->id.b[15] = (uint8_t)n;
    crypto_sign_keypair(d->pk, d->sk);
    randombytes_buf(d->ek, 32);
    uint8_t msg[70];
    memcpy(msg, "carechat.v1 encryption key", 26);
    memcpy(msg + 26, d->ek, 32);
    key_put_u32(msg + 58, 1);
    key_put_u64(msg + 62, (uint64_t)(T0 + 30 * DAY));
    crypto_sign_detached(d->sig, NULL, msg, sizeof msg, d->sk);
}

static void dev_entry(struct dev *d, Carechat__Entry__V1__DeviceNew *out) {
    carechat__entry__v1__device_new__init(out);
    out->device_id = bin(d->id.b, 16);
    out->identity_key = bin(d->pk, 32);
    out->encryption_key = bin(d->ek, 32);
    out->encryption_key_id = 1;
    out->encryption_key_expires_at = T0 + 30 * DAY;
    out->signature = bin(d->sig, 64);
    out->label = "phone";
}

struct person {
    struct id id;
    char email[64];
    uint8_t index[32];
};

static void person(struct person *p, const char *email, uint8_t n) {
    memset(p, 0, sizeof *p);
    p->id.b[0] = 0xa0;
    p->id.b[15] = n;
    snprintf(p->email, sizeof p->email, "%s", email);
    crypto_hash_sha256(p->index, (const uint8_t *)email, strlen(email));
}

static void bootstrap(struct db *db, struct person *p) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Bootstrap b;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__bootstrap__init(&b);
    b.account_id = bin(p->id.b, 16);
    b.email = p->email;
    b.email_index = bin(p->index, 32);
    b.password_hash = "$argon2id$fake";
    b.display_name = "Admin";
    e.time = T0;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_BOOTSTRAP;
    e.bootstrap = &b;
    assert_int_equal(propose(db, &e), 0);
}

/* `by` invites `p` as `role`; `p` registers with device `d`. */
static void join(struct db *db, const struct person *by, struct person *p, uint32_t role,
                 struct dev *d) {
    uint8_t code_hash[32], token_hash[32];
    crypto_hash_sha256(code_hash, (const uint8_t *)p->email, strlen(p->email) - 1);
    crypto_hash_sha256(token_hash, (const uint8_t *)p->email, strlen(p->email) - 2);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InviteCreate in;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__invite_create__init(&in);
    e.time = T0 + 1;
    e.actor_account_id = bin(by->id.b, 16);
    in.code_hash = bin(code_hash, 32);
    in.email = p->email;
    in.email_index = bin(p->index, 32);
    in.role = role;
    in.expires_at = T0 + 7 * DAY;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INVITE_CREATE;
    e.invite_create = &in;
    assert_int_equal(propose(db, &e), 0);

    Carechat__Entry__V1__Register r;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__register__init(&r);
    carechat__entry__v1__session_new__init(&sn);
    e.time = T0 + 2;
    r.account_id = bin(p->id.b, 16);
    r.code_hash = bin(code_hash, 32);
    r.email = p->email;
    r.email_index = bin(p->index, 32);
    r.password_hash = "$argon2id$fake2";
    r.birth_date = "1980-01-01";
    r.display_name = "Someone";
    dev_entry(d, &dn);
    r.device = &dn;
    sn.token_hash = bin(token_hash, 32);
    sn.expires_at = T0 + DAY;
    sn.idle_expires_at = T0 + 900000;
    r.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_REGISTER;
    e.register_ = &r;
    assert_int_equal(propose(db, &e), 0);
}

static void add_device(struct db *db, const struct person *p, struct dev *d) {
    uint8_t token_hash[32];
    memset(token_hash, 0, sizeof token_hash);
    memcpy(token_hash, d->id.b, 16);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Login l;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__login__init(&l);
    carechat__entry__v1__session_new__init(&sn);
    e.time = T0 + 3;
    e.actor_account_id = bin(p->id.b, 16);
    dev_entry(d, &dn);
    l.device_case = CARECHAT__ENTRY__V1__LOGIN__DEVICE_NEW_DEVICE;
    l.new_device = &dn;
    sn.token_hash = bin(token_hash, 32);
    sn.expires_at = T0 + DAY;
    sn.idle_expires_at = T0 + 900000;
    l.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_LOGIN;
    e.login = &l;
    assert_int_equal(propose(db, &e), 0);
}

/* ---- the messaging kinds ------------------------------------------------------------ */

static int direct(struct db *db, const struct person *from, const struct person *to,
                  const struct id *conv) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__DirectCreate d;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__direct_create__init(&d);
    e.time = T0 + 10;
    e.actor_account_id = bin(from->id.b, 16);
    d.conversation_id = bin(conv->b, 16);
    d.peer_account_id = bin(to->id.b, 16);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DIRECT_CREATE;
    e.direct_create = &d;
    return propose(db, &e);
}

struct wrap_to {
    const struct dev *d;
    const uint8_t *raw_id; /* instead of d: a device that does not exist */
    uint32_t key_id;
};

static int send_msg(struct db *db, const struct person *from, const struct dev *from_dev,
                    const struct id *conv, uint8_t cmid_n, uint8_t mid_n, const struct wrap_to *to,
                    size_t n_to, const struct dev *const *members, size_t n_members,
                    uint32_t inbox_limit) {
    static uint8_t enc[32], wk[48], nonce[24], sig[64];
    uint8_t cmid[16] = {0xc0}, mid[16] = {0xe0};
    cmid[15] = cmid_n;
    mid[15] = mid_n;
    Carechat__Entry__V1__WrapItem items[8], *ip[8];
    ProtobufCBinaryData mem[8];
    for (size_t i = 0; i < n_to; i++) {
        carechat__entry__v1__wrap_item__init(&items[i]);
        items[i].device_id = bin(to[i].d ? to[i].d->id.b : to[i].raw_id, 16);
        items[i].key_id = to[i].key_id;
        items[i].enc = bin(enc, 32);
        items[i].wrapped_key = bin(wk, 48);
        ip[i] = &items[i];
    }
    for (size_t i = 0; i < n_members; i++)
        mem[i] = bin(members[i]->id.b, 16);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MessageSend m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__message_send__init(&m);
    e.time = T0 + 20 + mid_n;
    e.actor_account_id = bin(from->id.b, 16);
    e.actor_device_id = bin(from_dev->id.b, 16);
    e.idempotency_key = bin(cmid, 16);
    m.conversation_id = bin(conv->b, 16);
    m.message_id = bin(mid, 16);
    m.client_msg_id = bin(cmid, 16);
    m.envelope_version = 1;
    m.sender_device_id = bin(from_dev->id.b, 16);
    m.body = bin("ciphertext", 10);
    m.body_nonce = bin(nonce, 24);
    m.signature = bin(sig, 64);
    m.n_wraps = n_to;
    m.wraps = ip;
    m.n_member_device_ids = n_members;
    m.member_device_ids = mem;
    m.inbox_limit = inbox_limit;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_SEND;
    e.message_send = &m;
    return propose(db, &e);
}

static int inbox_ack(struct db *db, const struct person *p, const struct dev *d, uint64_t pos) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InboxAck a;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__inbox_ack__init(&a);
    e.time = T0 + 100;
    e.actor_account_id = bin(p->id.b, 16);
    e.actor_device_id = bin(d->id.b, 16);
    a.position = pos;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INBOX_ACK;
    e.inbox_ack = &a;
    return propose(db, &e);
}

static int receipt(struct db *db, const struct person *p, const struct dev *d,
                   const struct id *conv, uint8_t mid_n, const struct person *sender,
                   const struct dev *sender_dev) {
    uint8_t mid[16] = {0xe0};
    mid[15] = mid_n;
    ProtobufCBinaryData ids[1] = {bin(mid, 16)};
    ProtobufCBinaryData devs[1] = {bin(sender_dev->id.b, 16)};
    Carechat__Entry__V1__AccountDeviceIds ad, *adp = &ad;
    carechat__entry__v1__account_device_ids__init(&ad);
    ad.account_id = bin(sender->id.b, 16);
    ad.n_device_ids = 1;
    ad.device_ids = devs;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__ReceiptRecord r;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__receipt_record__init(&r);
    e.time = T0 + 200;
    e.actor_account_id = bin(p->id.b, 16);
    e.actor_device_id = bin(d->id.b, 16);
    r.conversation_id = bin(conv->b, 16);
    r.kind = 2;
    r.n_message_ids = 1;
    r.message_ids = ids;
    r.n_sender_devices = 1;
    r.sender_devices = &adp;
    r.inbox_limit = 100;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_RECEIPT_RECORD;
    e.receipt_record = &r;
    return propose(db, &e);
}

/* ---- reading back ----------------------------------------------------------------------- */

static bool count_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    (*(int *)ctx)++;
    return true;
}

static int count_prefix(struct db *db, enum store_cf cf, const void *prefix, size_t len) {
    int n = 0;
    assert_true(store_scan(db->store, cf, prefix, len, NULL, 0, 1000, count_one, &n) >= 0);
    return n;
}

static bool inbox_has(struct db *db, const struct dev *d, uint64_t pos) {
    struct key k;
    key_id_u64(&k, &d->id, pos);
    struct buf v;
    buf_init(&v);
    int rc = store_get(db->store, CF_INBOXES, k.b, k.len, &v);
    buf_cleanup(&v);
    assert_true(rc == 0 || rc == STATUS_NOT_FOUND);
    return rc == 0;
}

static uint64_t conv_last_seq(struct db *db, const struct id *conv) {
    struct buf v;
    buf_init(&v);
    struct msgrec_conv c;
    assert_int_equal(store_get(db->store, CF_CONVERSATIONS, conv->b, 16, &v), 0);
    assert_int_equal(msgrec_conv_decode(v.data, v.len, &c), 0);
    buf_cleanup(&v);
    return c.last_seq;
}

/* The deliveries of the last result (after `skip` bytes). */
static uint32_t result_deliveries(size_t skip, struct id *devs, uint64_t *pos) {
    uint32_t n;
    const uint8_t *entries;
    assert_true(last_result.len >= skip);
    assert_int_equal(
        msgrec_deliveries_read(last_result.data + skip, last_result.len - skip, &n, &entries), 0);
    for (uint32_t i = 0; i < n && devs; i++)
        msgrec_delivery_get(entries, i, &devs[i], &pos[i]);
    return n;
}

/* Reads id list `which` (0 missing, 1 extra, 2 stale) of a CONFLICT result. */
static uint32_t mismatch_list(int which, struct id *out) {
    size_t off = 0;
    uint32_t n = 0;
    for (int l = 0; l <= which; l++) {
        assert_true(last_result.len >= off + 4);
        n = key_get_u32(last_result.data + off);
        off += 4;
        assert_true(last_result.len >= off + (size_t)n * 16);
        if (l == which)
            for (uint32_t i = 0; i < n; i++)
                memcpy(out[i].b, last_result.data + off + (size_t)i * 16, 16);
        off += (size_t)n * 16;
    }
    return n;
}

/* ---- the scenario -------------------------------------------------------------------------- */

static void run_scenario(struct db *db) {
    struct person admin, prov, pat, pat2;
    struct dev p1, p2, a1, b1;
    person(&admin, "admin@x.example", 1);
    person(&prov, "doc@x.example", 2);
    person(&pat, "pat@x.example", 3);
    person(&pat2, "pat2@x.example", 4);
    dev_make(&p1, 1);
    dev_make(&p2, 2);
    dev_make(&a1, 3);
    dev_make(&b1, 4);
    bootstrap(db, &admin);
    join(db, &admin, &prov, 2, &p1);
    add_device(db, &prov, &p2);
    join(db, &prov, &pat, 1, &a1);
    join(db, &prov, &pat2, 1, &b1);

    /* Who may talk: the inviting provider yes (once per pair); another
     * patient or staff who did not invite the patient: NOT_FOUND. */
    struct id conv = {{0xcc, 1}}, conv_again = {{0xcc, 2}}, conv_bad = {{0xcc, 3}};
    assert_int_equal(direct(db, &pat, &prov, &conv), 0);
    assert_int_equal(last_result.len, 16);
    assert_memory_equal(last_result.data, conv.b, 16);
    assert_int_equal(direct(db, &prov, &pat, &conv_again), 0);
    assert_memory_equal(last_result.data, conv.b, 16);
    assert_int_equal(direct(db, &pat, &pat2, &conv_bad), STATUS_NOT_FOUND);
    assert_int_equal(direct(db, &pat, &admin, &conv_bad), STATUS_NOT_FOUND);
    assert_int_equal(direct(db, &pat, &pat, &conv_bad), STATUS_BAD_REQUEST);
    assert_int_equal(count_prefix(db, CF_MEMBERS, conv.b, 16), 2);

    const struct dev *members[3] = {&a1, &p1, &p2};
    struct wrap_to to_prov[2] = {{&p1, NULL, 1}, {&p2, NULL, 1}};
    /* First message: seq 1, one inbox entry per recipient device (not the
     * sending device). */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 1, 1, to_prov, 2, members, 3, 100), 0);
    struct msgrec_sent sent;
    assert_int_equal(msgrec_sent_decode(last_result.data, MSGREC_SENT_SIZE, &sent), 0);
    assert_int_equal(sent.seq, 1);
    assert_int_equal(sent.sent_at, T0 + 21);
    struct id devs[4];
    uint64_t pos[4];
    assert_int_equal(result_deliveries(MSGREC_SENT_SIZE, devs, pos), 2);
    assert_memory_equal(devs[0].b, p1.id.b, 16);
    assert_int_equal(pos[0], 1);
    assert_memory_equal(devs[1].b, p2.id.b, 16);
    assert_int_equal(pos[1], 1);
    assert_false(inbox_has(db, &a1, 1));

    /* A retry with the same client_msg_id (and another proposed message id):
     * the first result, nothing stored twice, nothing delivered again. */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 1, 9, to_prov, 2, members, 3, 100), 0);
    struct msgrec_sent again;
    assert_int_equal(msgrec_sent_decode(last_result.data, MSGREC_SENT_SIZE, &again), 0);
    assert_memory_equal(&again, &sent, sizeof sent);
    assert_int_equal(result_deliveries(MSGREC_SENT_SIZE, NULL, NULL), 0);
    assert_int_equal(count_prefix(db, CF_MESSAGES, conv.b, 16), 1);
    assert_false(inbox_has(db, &p1, 2));

    /* Second message: seq 2, positions 2. */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 2, 2, to_prov, 2, members, 3, 100), 0);
    assert_int_equal(msgrec_sent_decode(last_result.data, MSGREC_SENT_SIZE, &sent), 0);
    assert_int_equal(sent.seq, 2);
    assert_int_equal(result_deliveries(MSGREC_SENT_SIZE, devs, pos), 2);
    assert_int_equal(pos[0], 2);

    /* Wrong device set: P1 missing, P2 stale (key 5), an unknown device extra. */
    static const uint8_t ghost[16] = {0xee, 0xee};
    struct wrap_to wrong[2] = {{&p2, NULL, 5}, {NULL, ghost, 1}};
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 3, 3, wrong, 2, members, 3, 100),
                     STATUS_CONFLICT);
    struct id ids[4];
    assert_int_equal(mismatch_list(0, ids), 1);
    assert_memory_equal(ids[0].b, p1.id.b, 16);
    assert_int_equal(mismatch_list(1, ids), 1);
    assert_memory_equal(ids[0].b, ghost, 16);
    assert_int_equal(mismatch_list(2, ids), 1);
    assert_memory_equal(ids[0].b, p2.id.b, 16);
    assert_int_equal(conv_last_seq(db, &conv), 2);
    /* A proposer's stale view of the members' devices (P2 unknown to it). */
    const struct dev *partial[2] = {&a1, &p1};
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 3, 3, to_prov, 2, partial, 2, 100),
                     STATUS_CONFLICT);
    /* A full inbox refuses the whole message. */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 3, 3, to_prov, 2, members, 3, 2),
                     STATUS_UNAVAILABLE);
    assert_int_equal(conv_last_seq(db, &conv), 2);
    assert_int_equal(count_prefix(db, CF_MESSAGES, conv.b, 16), 2);
    /* A sending device that does not exist (removed meanwhile). */
    struct dev gone;
    dev_make(&gone, 9);
    assert_int_equal(send_msg(db, &pat, &gone, &conv, 5, 5, to_prov, 2, members, 3, 100),
                     STATUS_UNAUTHENTICATED);
    /* A non-member cannot send into the conversation. */
    const struct dev *with_b[3] = {&a1, &p1, &p2};
    assert_int_equal(send_msg(db, &pat2, &b1, &conv, 4, 4, to_prov, 2, with_b, 3, 100),
                     STATUS_NOT_FOUND);

    /* Acknowledgements drop a prefix of P1's inbox. */
    assert_int_equal(inbox_ack(db, &prov, &p1, 1), 0);
    assert_false(inbox_has(db, &p1, 1));
    assert_true(inbox_has(db, &p1, 2));
    assert_true(inbox_has(db, &p2, 1));
    assert_int_equal(inbox_ack(db, &prov, &p1, 1), 0);
    assert_int_equal(inbox_ack(db, &prov, &p1, 3), STATUS_CONFLICT);
    assert_true(inbox_has(db, &p1, 2));

    /* A read receipt: recorded once, queued for the sender's device. */
    assert_int_equal(receipt(db, &prov, &p1, &conv, 1, &pat, &a1), 0);
    assert_int_equal(result_deliveries(0, devs, pos), 1);
    assert_memory_equal(devs[0].b, a1.id.b, 16);
    assert_int_equal(pos[0], 1);
    assert_int_equal(receipt(db, &prov, &p2, &conv, 1, &pat, &a1), 0);
    assert_int_equal(result_deliveries(0, NULL, NULL), 0);
    assert_false(inbox_has(db, &a1, 2));
    assert_int_equal(receipt(db, &prov, &p1, &conv, 77, &pat, &a1), STATUS_NOT_FOUND);
}

static void test_apply_messages_scenario(void **state) {
    n_log = 0;
    buf_init(&last_result);
    struct db db;
    db_open(&db);
    run_scenario(&db);
    db_close(&db);
    for (size_t i = 0; i < n_log; i++)
        buf_cleanup(&log_entries[i]);
    buf_cleanup(&last_result);
}

static bool dump_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    struct buf *b = ctx;
    buf_append_varint(b, kl);
    buf_append(b, k, kl);
    buf_append_varint(b, vl);
    buf_append(b, v, vl);
    return true;
}

static void dump(struct db *db, struct buf *out) {
    for (int cf = CF_CONVERSATIONS; cf <= CF_IDEMPOTENCY; cf++)
        assert_true(
            store_scan(db->store, (enum store_cf)cf, NULL, 0, NULL, 0, 100000, dump_one, out) >= 0);
}

static void test_apply_messages_replay_is_deterministic(void **state) {
    n_log = 0;
    buf_init(&last_result);
    struct db first;
    db_open(&first);
    run_scenario(&first);
    struct buf dumps[3];
    buf_init(&dumps[0]);
    dump(&first, &dumps[0]);
    db_close(&first);
    for (int r = 1; r < 3; r++) {
        struct db db;
        db_open(&db);
        for (size_t i = 0; i < n_log; i++)
            append_raw(&db, log_entries[i].data, log_entries[i].len);
        buf_init(&dumps[r]);
        dump(&db, &dumps[r]);
        db_close(&db);
    }
    assert_true(dumps[0].len > 1000);
    for (int r = 1; r < 3; r++) {
        assert_int_equal(dumps[r].len, dumps[0].len);
        assert_memory_equal(dumps[r].data, dumps[0].data, dumps[0].len);
        buf_cleanup(&dumps[r]);
    }
    buf_cleanup(&dumps[0]);
    for (size_t i = 0; i < n_log; i++)
        buf_cleanup(&log_entries[i]);
    buf_cleanup(&last_result);
}

static void test_apply_messages_cursor_encoding(void **state) {
    uint8_t c[10];
    uint64_t v;
    const uint64_t samples[] = {0, 1, 127, 128, 300, 1ull << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        size_t n = msgrec_cursor_encode(samples[i], c);
        assert_int_equal(msgrec_cursor_decode(c, n, &v), 0);
        assert_true(v == samples[i]);
    }
    assert_int_equal(msgrec_cursor_decode(NULL, 0, &v), 0);
    assert_true(v == 0);
    static const uint8_t open_end[] = {0x80}, padded[] = {0x81, 0x00}, early[] = {0x01, 0x01};
    assert_int_equal(msgrec_cursor_decode(open_end, 1, &v), STATUS_BAD_REQUEST);
    assert_int_equal(msgrec_cursor_decode(padded, 2, &v), STATUS_BAD_REQUEST);
    assert_int_equal(msgrec_cursor_decode(early, 2, &v), STATUS_BAD_REQUEST);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_messages_scenario),
        cmocka_unit_test(test_apply_messages_replay_is_deterministic),
        cmocka_unit_test(test_apply_messages_cursor_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
