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
#include "base/id.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/apply_fixture.h"
#include "server/audit.h"
#include "server/records_messages.h"
#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/store.h"

#define T0 FIXTURE_T0
#define DAY FIXTURE_DAY

struct wrap_to {
    const struct fixture_dev *d;
    const uint8_t *raw_id; /* instead of d: a device that does not exist */
    uint32_t key_id;
};

/* The inbox_sender_quota of the entries send_msg() proposes (0: none). */
static uint32_t g_sender_quota;

static int send_msg(struct fixture_db *db, const struct fixture_person *from,
                    const struct fixture_dev *from_dev, const struct id *conv, uint8_t cmid_n,
                    uint8_t mid_n, const struct wrap_to *to, size_t n_to,
                    const struct fixture_dev *const *members, size_t n_members,
                    uint32_t inbox_limit) {
    static uint8_t enc[32], wk[48], nonce[24], sig[64];
    uint8_t cmid[16] = {0xc0}, mid[16] = {0xe0};
    cmid[15] = cmid_n;
    mid[15] = mid_n;
    Carechat__Entry__V1__WrapItem items[8], *ip[8];
    ProtobufCBinaryData mem[8];
    for (size_t i = 0; i < n_to; i++) {
        carechat__entry__v1__wrap_item__init(&items[i]);
        items[i].device_id = fixture_bin(to[i].d ? to[i].d->id.b : to[i].raw_id, 16);
        items[i].key_id = to[i].key_id;
        items[i].enc = fixture_bin(enc, 32);
        items[i].wrapped_key = fixture_bin(wk, 48);
        ip[i] = &items[i];
    }
    for (size_t i = 0; i < n_members; i++)
        mem[i] = fixture_bin(members[i]->id.b, 16);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MessageSend m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__message_send__init(&m);
    e.time = T0 + 20 + mid_n;
    e.actor_account_id = fixture_bin(from->id.b, 16);
    e.actor_device_id = fixture_bin(from_dev->id.b, 16);
    e.idempotency_key = fixture_bin(cmid, 16);
    m.conversation_id = fixture_bin(conv->b, 16);
    m.message_id = fixture_bin(mid, 16);
    m.client_msg_id = fixture_bin(cmid, 16);
    m.envelope_version = 2;
    m.sender_device_id = fixture_bin(from_dev->id.b, 16);
    m.body = fixture_bin("ciphertext", 10);
    m.body_nonce = fixture_bin(nonce, 24);
    m.signature = fixture_bin(sig, 64);
    m.n_wraps = n_to;
    m.wraps = ip;
    m.n_member_device_ids = n_members;
    m.member_device_ids = mem;
    m.inbox_limit = inbox_limit;
    m.inbox_sender_quota = g_sender_quota;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_SEND;
    e.message_send = &m;
    return fixture_propose(db, &e);
}

static int inbox_ack(struct fixture_db *db, const struct fixture_person *p,
                     const struct fixture_dev *d, uint64_t pos) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InboxAck a;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__inbox_ack__init(&a);
    e.time = T0 + 100;
    e.actor_account_id = fixture_bin(p->id.b, 16);
    e.actor_device_id = fixture_bin(d->id.b, 16);
    a.position = pos;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INBOX_ACK;
    e.inbox_ack = &a;
    return fixture_propose(db, &e);
}

static int receipt(struct fixture_db *db, const struct fixture_person *p,
                   const struct fixture_dev *d, const struct id *conv, uint8_t mid_n,
                   const struct fixture_person *sender, const struct fixture_dev *sender_dev) {
    uint8_t mid[16] = {0xe0};
    mid[15] = mid_n;
    ProtobufCBinaryData ids[1] = {fixture_bin(mid, 16)};
    ProtobufCBinaryData devs[1] = {fixture_bin(sender_dev->id.b, 16)};
    Carechat__Entry__V1__AccountDeviceIds ad, *adp = &ad;
    carechat__entry__v1__account_device_ids__init(&ad);
    ad.account_id = fixture_bin(sender->id.b, 16);
    ad.n_device_ids = 1;
    ad.device_ids = devs;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__ReceiptRecord r;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__receipt_record__init(&r);
    e.time = T0 + 200;
    e.actor_account_id = fixture_bin(p->id.b, 16);
    e.actor_device_id = fixture_bin(d->id.b, 16);
    r.conversation_id = fixture_bin(conv->b, 16);
    r.kind = 2;
    r.n_message_ids = 1;
    r.message_ids = ids;
    r.n_sender_devices = 1;
    r.sender_devices = &adp;
    r.inbox_limit = 100;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_RECEIPT_RECORD;
    e.receipt_record = &r;
    return fixture_propose(db, &e);
}

/* ---- reading back ----------------------------------------------------------------------- */

static bool count_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    (*(int *)ctx)++;
    return true;
}

static int count_prefix(struct fixture_db *db, enum store_cf cf, const void *prefix, size_t len) {
    int n = 0;
    assert_true(store_scan(db->store, cf, prefix, len, NULL, 0, 1000, count_one, &n) >= 0);
    return n;
}

static bool inbox_has(struct fixture_db *db, const struct fixture_dev *d, uint64_t pos) {
    struct key k;
    key_id_u64(&k, &d->id, pos);
    struct buf v;
    buf_init(&v);
    int rc = store_get(db->store, CF_INBOXES, k.b, k.len, &v);
    buf_cleanup(&v);
    assert_true(rc == 0 || rc == STATUS_NOT_FOUND);
    return rc == 0;
}

static struct rec_inbox inbox_of(struct fixture_db *db, const struct fixture_dev *d) {
    struct buf v;
    buf_init(&v);
    struct rec_inbox in;
    assert_int_equal(store_get(db->store, CF_INBOXES, d->id.b, 16, &v), 0);
    assert_int_equal(rec_inbox_decode(v.data, v.len, &in), 0);
    buf_cleanup(&v);
    return in;
}

/* The device's inbox head as stored; its senders point into `v` (the
 * caller's, cleaned up by the caller). */
static struct rec_inbox head_of(struct fixture_db *db, const struct fixture_dev *d, struct buf *v) {
    struct rec_inbox in;
    assert_int_equal(store_get(db->store, CF_INBOXES, d->id.b, 16, v), 0);
    assert_int_equal(rec_inbox_decode(v->data, v->len, &in), 0);
    return in;
}

/* The sender's count in the device's head (which must count in the head). */
static uint32_t head_count(struct fixture_db *db, const struct fixture_dev *d,
                           const struct fixture_person *sender, uint32_t *n_senders) {
    struct buf v;
    buf_init(&v);
    struct rec_inbox in = head_of(db, d, &v);
    assert_true(in.counts_in_head);
    uint32_t count = rec_inbox_count(&in, &sender->id);
    *n_senders = in.n_senders;
    buf_cleanup(&v);
    return count;
}

/* The sender's row in CF_INBOX_QUOTAS for the device (0: none). */
static uint32_t quota_row(struct fixture_db *db, const struct fixture_dev *d,
                          const struct fixture_person *sender) {
    struct key k;
    key_id_id(&k, &d->id, &sender->id);
    struct buf v;
    buf_init(&v);
    int rc = store_get(db->store, CF_INBOX_QUOTAS, k.b, k.len, &v);
    assert_true(rc == 0 || rc == STATUS_NOT_FOUND);
    if (rc == 0)
        assert_int_equal(v.len, 4);
    uint32_t count = rc == 0 ? key_get_u32(v.data) : 0;
    buf_cleanup(&v);
    return count;
}

static uint64_t conv_last_seq(struct fixture_db *db, const struct id *conv) {
    struct buf v;
    buf_init(&v);
    struct rec_conv c;
    assert_int_equal(store_get(db->store, CF_CONVERSATIONS, conv->b, 16, &v), 0);
    assert_int_equal(rec_conv_decode(v.data, v.len, &c), 0);
    buf_cleanup(&v);
    return c.last_seq;
}

/* The deliveries of the last result (after `skip` bytes), and the message
 * record its list carries (len 0: none; borrowed from the result). */
static uint32_t result_deliveries_carrying(size_t skip, struct id *devs, uint64_t *pos,
                                           struct rec_list_message *message) {
    uint32_t n;
    const uint8_t *entries;
    assert_true(fixture_last_result()->len >= skip);
    assert_int_equal(rec_deliveries_read(fixture_last_result()->data + skip,
                                         fixture_last_result()->len - skip, &n, &entries, message),
                     0);
    for (uint32_t i = 0; i < n && devs; i++)
        rec_delivery_get(entries, i, &devs[i], &pos[i], NULL);
    return n;
}

static uint32_t result_deliveries(size_t skip, struct id *devs, uint64_t *pos) {
    struct rec_list_message message;
    return result_deliveries_carrying(skip, devs, pos, &message);
}

/* The last result, a Send's, carries message `seq` of `conv` byte for byte
 * as it is stored, for live delivery without a read. */
static void expect_send_carries_stored(struct fixture_db *db, const struct id *conv, uint64_t seq) {
    struct rec_list_message carried;
    result_deliveries_carrying(REC_SENT_SIZE, NULL, NULL, &carried);
    assert_true(id_equal(&carried.conv, conv));
    assert_int_equal(carried.seq, seq);
    struct key k;
    key_id_u64(&k, conv, seq);
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(db->store, CF_MESSAGES, k.b, k.len, &v), 0);
    assert_int_equal(carried.len, v.len);
    assert_memory_equal(carried.data, v.data, v.len);
    buf_cleanup(&v);
}

/* Reads id list `which` (0 missing, 1 extra, 2 stale) of a CONFLICT result. */
static uint32_t mismatch_list(int which, struct id *out) {
    size_t off = 0;
    uint32_t n = 0;
    for (int l = 0; l <= which; l++) {
        assert_true(fixture_last_result()->len >= off + 4);
        n = key_get_u32(fixture_last_result()->data + off);
        off += 4;
        assert_true(fixture_last_result()->len >= off + (size_t)n * 16);
        if (l == which)
            for (uint32_t i = 0; i < n; i++)
                memcpy(out[i].b, fixture_last_result()->data + off + (size_t)i * 16, 16);
        off += (size_t)n * 16;
    }
    return n;
}

/* ---- the scenario -------------------------------------------------------------------------- */

static void run_scenario(struct fixture_db *db) {
    struct fixture_person admin, prov, pat, pat2;
    struct fixture_dev p1, p2, a1, b1;
    fixture_person(&admin, "admin@x.example", 1);
    fixture_person(&prov, "doc@x.example", 2);
    fixture_person(&pat, "pat@x.example", 3);
    fixture_person(&pat2, "pat2@x.example", 4);
    fixture_dev_make(&p1, 1);
    fixture_dev_make(&p2, 2);
    fixture_dev_make(&a1, 3);
    fixture_dev_make(&b1, 4);
    fixture_bootstrap(db, &admin);
    fixture_join(db, &admin, &prov, 2, &p1);
    fixture_add_device(db, &prov, &p2);
    fixture_join(db, &prov, &pat, 1, &a1);
    fixture_join(db, &prov, &pat2, 1, &b1);

    /* Who may talk: the inviting provider yes (once per pair); another
     * patient or staff who did not invite the patient: NOT_FOUND. */
    struct id conv = {{0xcc, 1}}, conv_again = {{0xcc, 2}}, conv_bad = {{0xcc, 3}};
    assert_int_equal(fixture_direct(db, &pat, &prov, &conv), 0);
    assert_int_equal(fixture_last_result()->len, 16);
    assert_memory_equal(fixture_last_result()->data, conv.b, 16);
    assert_int_equal(fixture_direct(db, &prov, &pat, &conv_again), 0);
    assert_memory_equal(fixture_last_result()->data, conv.b, 16);
    assert_int_equal(fixture_direct(db, &pat, &pat2, &conv_bad), STATUS_NOT_FOUND);
    assert_int_equal(fixture_direct(db, &pat, &admin, &conv_bad), STATUS_NOT_FOUND);
    assert_int_equal(fixture_direct(db, &pat, &pat, &conv_bad), STATUS_BAD_REQUEST);
    assert_int_equal(count_prefix(db, CF_MEMBERS, conv.b, 16), 2);

    const struct fixture_dev *members[3] = {&a1, &p1, &p2};
    struct wrap_to to_prov[2] = {{&p1, NULL, 1}, {&p2, NULL, 1}};
    /* First message: seq 1, one inbox entry per recipient device (not the
     * sending device). */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 1, 1, to_prov, 2, members, 3, 100), 0);
    struct rec_sent sent;
    assert_int_equal(rec_sent_decode(fixture_last_result()->data, REC_SENT_SIZE, &sent), 0);
    assert_int_equal(sent.seq, 1);
    assert_int_equal(sent.sent_at, T0 + 21);
    struct id devs[4];
    uint64_t pos[4];
    assert_int_equal(result_deliveries(REC_SENT_SIZE, devs, pos), 2);
    assert_memory_equal(devs[0].b, p1.id.b, 16);
    assert_int_equal(pos[0], 1);
    assert_memory_equal(devs[1].b, p2.id.b, 16);
    assert_int_equal(pos[1], 1);
    assert_false(inbox_has(db, &a1, 1));
    expect_send_carries_stored(db, &conv, 1);

    /* A retry with the same client_msg_id (and another proposed message id):
     * the first result, nothing stored twice, nothing delivered again. */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 1, 9, to_prov, 2, members, 3, 100), 0);
    struct rec_sent again;
    assert_int_equal(rec_sent_decode(fixture_last_result()->data, REC_SENT_SIZE, &again), 0);
    assert_memory_equal(&again, &sent, sizeof sent);
    struct rec_list_message carried;
    assert_int_equal(result_deliveries_carrying(REC_SENT_SIZE, NULL, NULL, &carried), 0);
    assert_int_equal(carried.len, 0); /* nothing stored, nothing carried */
    assert_int_equal(count_prefix(db, CF_MESSAGES, conv.b, 16), 1);
    assert_false(inbox_has(db, &p1, 2));

    /* Second message: seq 2, positions 2. */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 2, 2, to_prov, 2, members, 3, 100), 0);
    assert_int_equal(rec_sent_decode(fixture_last_result()->data, REC_SENT_SIZE, &sent), 0);
    assert_int_equal(sent.seq, 2);
    assert_int_equal(result_deliveries(REC_SENT_SIZE, devs, pos), 2);
    assert_int_equal(pos[0], 2);
    expect_send_carries_stored(db, &conv, 2);

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
    const struct fixture_dev *partial[2] = {&a1, &p1};
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 3, 3, to_prov, 2, partial, 2, 100),
                     STATUS_CONFLICT);
    /* Full inboxes (limit 2): the message is stored, the full devices miss
     * it (counted, and flagged once by an audit record); nobody waits. */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 3, 3, to_prov, 2, members, 3, 2), 0);
    assert_int_equal(result_deliveries(REC_SENT_SIZE, NULL, NULL), 0);
    assert_int_equal(conv_last_seq(db, &conv), 3);
    assert_int_equal(count_prefix(db, CF_MESSAGES, conv.b, 16), 3);
    struct rec_inbox in = inbox_of(db, &p1);
    assert_true(in.last == 2 && in.missed == 1 && in.full_since == T0 + 23);
    struct rec_audit full = fixture_last_audit(db);
    assert_int_equal(full.action, REC_AUDIT_DEVICE_INBOX_FULL);
    assert_memory_equal(full.actor.b, prov.id.b, 16);
    assert_memory_equal(full.object, p2.id.b, 16);
    /* A sending device that does not exist (removed meanwhile). */
    struct fixture_dev gone;
    fixture_dev_make(&gone, 9);
    assert_int_equal(send_msg(db, &pat, &gone, &conv, 5, 5, to_prov, 2, members, 3, 100),
                     STATUS_UNAUTHENTICATED);
    /* A non-member cannot send into the conversation. */
    const struct fixture_dev *with_b[3] = {&a1, &p1, &p2};
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
    /* Drained: what it missed was reported (QueueEmpty); the count clears. */
    assert_int_equal(inbox_of(db, &p1).missed, 1);
    assert_int_equal(inbox_ack(db, &prov, &p1, 2), 0);
    in = inbox_of(db, &p1);
    assert_true(in.missed == 0 && in.full_since == 0 && in.acked == 2);

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
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "apply-msg");
    run_scenario(&db);
    fixture_close(&db);
    fixture_log_cleanup();
}

static void test_apply_messages_replay_is_deterministic(void **state) {
    fixture_log_reset();
    struct fixture_db first;
    fixture_open(&first, "apply-msg");
    run_scenario(&first);
    struct buf dumps[3];
    buf_init(&dumps[0]);
    fixture_dump(&first, CF_CONVERSATIONS, CF_IDEMPOTENCY, &dumps[0]);
    fixture_close(&first);
    for (int r = 1; r < 3; r++) {
        struct fixture_db db;
        fixture_open(&db, "apply-msg");
        fixture_replay(&db);
        buf_init(&dumps[r]);
        fixture_dump(&db, CF_CONVERSATIONS, CF_IDEMPOTENCY, &dumps[r]);
        fixture_close(&db);
    }
    assert_true(dumps[0].len > 1000);
    for (int r = 1; r < 3; r++) {
        assert_int_equal(dumps[r].len, dumps[0].len);
        assert_memory_equal(dumps[r].data, dumps[0].data, dumps[0].len);
        buf_cleanup(&dumps[r]);
    }
    buf_cleanup(&dumps[0]);
    /* The same entries, in batches, with and without the read cache. */
    fixture_check_read_cache("apply-msg-cache");
    fixture_log_cleanup();
}

/* The sender-quota scenarios' world: a provider (devices p1, p2) and a
 * patient (a1) the provider invited, with their direct conversation. */
static void quota_setup(struct fixture_db *db, struct fixture_person *admin,
                        struct fixture_person *prov, struct fixture_person *pat,
                        struct fixture_dev *p1, struct fixture_dev *p2, struct fixture_dev *a1,
                        const struct id *conv) {
    fixture_person(admin, "admin@x.example", 1);
    fixture_person(prov, "doc@x.example", 2);
    fixture_person(pat, "pat@x.example", 3);
    fixture_dev_make(p1, 1);
    fixture_dev_make(p2, 2);
    fixture_dev_make(a1, 3);
    fixture_bootstrap(db, admin);
    fixture_join(db, admin, prov, 2, p1);
    fixture_add_device(db, prov, p2);
    fixture_join(db, prov, pat, 1, a1);
    assert_int_equal(fixture_direct(db, pat, prov, conv), 0);
}

/* One sender holds at most its quota of a device's inbox; another sender's
 * messages still arrive; acknowledging frees the quota. The counts are in
 * the inbox head: no row in CF_INBOX_QUOTAS. */
static void run_sender_quota(struct fixture_db *db) {
    struct fixture_person admin, prov, pat;
    struct fixture_dev p1, p2, a1;
    struct id conv = {{0xcc, 1}};
    quota_setup(db, &admin, &prov, &pat, &p1, &p2, &a1, &conv);
    const struct fixture_dev *members[3] = {&a1, &p1, &p2};
    struct wrap_to to_p1[2] = {{&p1, NULL, 1}, {&a1, NULL, 1}};
    struct wrap_to to_prov[2] = {{&p1, NULL, 1}, {&p2, NULL, 1}};
    g_sender_quota = 2;
    for (uint8_t n = 1; n <= 3; n++)
        assert_int_equal(send_msg(db, &pat, &a1, &conv, n, n, to_prov, 2, members, 3, 100), 0);
    struct rec_inbox in = inbox_of(db, &p1);
    assert_true(in.last == 2 && in.missed == 1);
    uint32_t n_senders;
    assert_int_equal(head_count(db, &p1, &pat, &n_senders), 2);
    assert_int_equal(n_senders, 1);
    /* The provider's other device sends: a second sender, queued for p1. */
    assert_int_equal(send_msg(db, &prov, &p2, &conv, 4, 4, to_p1, 2, members, 3, 100), 0);
    in = inbox_of(db, &p1);
    assert_true(in.last == 3 && in.missed == 1);
    assert_true(inbox_has(db, &p1, 3));
    assert_int_equal(head_count(db, &p1, &prov, &n_senders), 1);
    assert_int_equal(n_senders, 2);
    /* One of the patient's messages acknowledged: one more fits, not two. */
    assert_int_equal(inbox_ack(db, &prov, &p1, 1), 0);
    assert_int_equal(head_count(db, &p1, &pat, &n_senders), 1);
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 5, 5, to_prov, 2, members, 3, 100), 0);
    assert_true(inbox_has(db, &p1, 4));
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 6, 6, to_prov, 2, members, 3, 100), 0);
    in = inbox_of(db, &p1);
    assert_true(in.last == 4 && in.missed == 2);
    /* Acknowledged: the patient's share is free again. */
    assert_int_equal(inbox_ack(db, &prov, &p1, 4), 0);
    assert_int_equal(head_count(db, &p1, &pat, &n_senders), 0);
    assert_int_equal(n_senders, 0);
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 7, 7, to_prov, 2, members, 3, 100), 0);
    assert_true(inbox_has(db, &p1, 5));
    assert_int_equal(head_count(db, &p1, &pat, &n_senders), 1);
    assert_int_equal(count_prefix(db, CF_INBOX_QUOTAS, NULL, 0), 0);
    g_sender_quota = 0;
}

static void test_apply_messages_sender_quota(void **state) {
    fixture_check_replay("apply-quota", run_sender_quota);
}

/* An inbox head as an older server wrote it: format, last, acked (no
 * missed, no senders), beside its sender counts in CF_INBOX_QUOTAS. Device
 * 1 of the provider (0xd0 ... 1) holds two messages of the patient
 * (0xa0 ... 3), who has its quota of 2 there. */
static const struct id old_dev = {{0xd0, [15] = 1}}, old_pat = {{0xa0, [15] = 3}};

static int seed_old_inbox(struct store_txn *txn) {
    uint8_t head[17] = {REC_CONV_FORMAT};
    key_put_u64(head + 1, 2);
    key_put_u64(head + 9, 0);
    int rc = txn_put(txn, CF_INBOXES, old_dev.b, 16, NULL, head, sizeof head);
    for (uint64_t p = 1; rc == 0 && p <= 2; p++) {
        struct rec_item item = {.kind = REC_ITEM_MESSAGE,
                                .conversation_id = {{0xcc, 1}},
                                .seq = p,
                                .account_id = old_pat};
        struct buf v;
        buf_init(&v);
        rec_item_encode(&item, &v);
        struct key k;
        key_id_u64(&k, &old_dev, p);
        rc = txn_put(txn, CF_INBOXES, k.b, k.len, &old_pat, v.data, v.len);
        buf_cleanup(&v);
    }
    struct key k;
    key_id_id(&k, &old_dev, &old_pat);
    uint8_t count[4];
    key_put_u32(count, 2);
    return rc != 0 ? rc : txn_put(txn, CF_INBOX_QUOTAS, k.b, k.len, NULL, count, sizeof count);
}

/* The old head keeps its counts in CF_INBOX_QUOTAS, enforced and released
 * there, until its inbox empties; from then on it counts in the head. */
static void run_old_inbox(struct fixture_db *db) {
    struct fixture_person admin, prov, pat;
    struct fixture_dev p1, p2, a1;
    struct id conv = {{0xcc, 1}};
    quota_setup(db, &admin, &prov, &pat, &p1, &p2, &a1, &conv);
    assert_memory_equal(p1.id.b, old_dev.b, 16);
    assert_memory_equal(pat.id.b, old_pat.b, 16);
    const struct fixture_dev *members[3] = {&a1, &p1, &p2};
    struct wrap_to to_p1[2] = {{&p1, NULL, 1}, {&a1, NULL, 1}};
    struct wrap_to to_prov[2] = {{&p1, NULL, 1}, {&p2, NULL, 1}};
    g_sender_quota = 2;
    /* The patient is at its quota in p1's old rows: p1 misses the message
     * (p2, a new inbox, takes it). Read as no count, p1 would take it. */
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 1, 1, to_prov, 2, members, 3, 100), 0);
    struct id devs[2];
    uint64_t pos[2];
    assert_int_equal(result_deliveries(REC_SENT_SIZE, devs, pos), 1);
    assert_memory_equal(devs[0].b, p2.id.b, 16);
    struct rec_audit full = fixture_last_audit(db);
    assert_int_equal(full.action, REC_AUDIT_DEVICE_INBOX_FULL);
    assert_memory_equal(full.object, p1.id.b, 16);
    struct rec_inbox in = inbox_of(db, &p1);
    assert_true(in.last == 2 && in.acked == 0 && in.missed == 1 && !in.counts_in_head);
    assert_int_equal(quota_row(db, &p1, &pat), 2);
    uint32_t n_senders;
    assert_int_equal(head_count(db, &p2, &pat, &n_senders), 1);
    /* Another sender: counted in a row too, while the head is old. */
    assert_int_equal(send_msg(db, &prov, &p2, &conv, 2, 2, to_p1, 2, members, 3, 100), 0);
    assert_true(inbox_has(db, &p1, 3));
    assert_int_equal(quota_row(db, &p1, &prov), 1);
    assert_false(inbox_of(db, &p1).counts_in_head);
    /* Acknowledging one of the old messages releases its row's count. */
    assert_int_equal(inbox_ack(db, &prov, &p1, 1), 0);
    assert_int_equal(quota_row(db, &p1, &pat), 1);
    assert_false(inbox_of(db, &p1).counts_in_head);
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 3, 3, to_prov, 2, members, 3, 100), 0);
    assert_true(inbox_has(db, &p1, 4));
    assert_int_equal(quota_row(db, &p1, &pat), 2);
    assert_int_equal(send_msg(db, &pat, &a1, &conv, 4, 4, to_prov, 2, members, 3, 100), 0);
    in = inbox_of(db, &p1);
    assert_true(in.last == 4 && in.missed == 2 && !in.counts_in_head);
    /* Drained: the rows are gone, the head counts from now on. */
    assert_int_equal(inbox_ack(db, &prov, &p1, 4), 0);
    assert_int_equal(count_prefix(db, CF_INBOX_QUOTAS, p1.id.b, 16), 0);
    assert_int_equal(head_count(db, &p1, &pat, &n_senders), 0);
    assert_int_equal(n_senders, 0);
    for (uint8_t n = 5; n <= 7; n++)
        assert_int_equal(send_msg(db, &pat, &a1, &conv, n, n, to_prov, 2, members, 3, 100), 0);
    in = inbox_of(db, &p1);
    assert_true(in.last == 6 && in.acked == 4 && in.missed == 1);
    assert_int_equal(head_count(db, &p1, &pat, &n_senders), 2);
    assert_int_equal(count_prefix(db, CF_INBOX_QUOTAS, NULL, 0), 0);
    assert_int_equal(inbox_ack(db, &prov, &p1, 5), 0);
    assert_int_equal(head_count(db, &p1, &pat, &n_senders), 1);
    g_sender_quota = 0;
}

static void test_apply_messages_old_inbox_head(void **state) {
    fixture_set_seed(seed_old_inbox);
    fixture_check_replay("apply-old-inbox", run_old_inbox);
    fixture_set_seed(NULL);
}

/* The head's senders: kept in order by rec_inbox_set_count(), round-tripped,
 * and damaged ones refused. */
static void test_apply_messages_inbox_head_codec(void **state) {
    /* A head of the old layout decodes as it did. */
    uint8_t old[33] = {REC_CONV_FORMAT};
    key_put_u64(old + 1, 9);
    key_put_u64(old + 9, 4);
    key_put_u64(old + 17, 3);
    key_put_u64(old + 25, 77);
    struct rec_inbox in;
    for (size_t len = 17; len <= 33; len += 16) {
        assert_int_equal(rec_inbox_decode(old, len, &in), 0);
        assert_true(in.last == 9 && in.acked == 4 && !in.counts_in_head && in.n_senders == 0);
        assert_true(in.missed == (len == 33 ? 3 : 0));
    }
    struct buf b;
    buf_init(&b);
    rec_inbox_encode(&in, &b);
    assert_int_equal(b.len, 33);
    assert_memory_equal(b.data, old, 33);

    struct id a = {{0x10}}, c = {{0x30}}, mid = {{0x20}}, absent = {{0x15}};
    struct buf space;
    buf_init(&space);
    in = (struct rec_inbox){.last = 20, .acked = 10, .counts_in_head = true};
    rec_inbox_set_count(&in, &c, 3, &space);
    rec_inbox_set_count(&in, &a, 1, &space);
    rec_inbox_set_count(&in, &mid, 2, &space);
    rec_inbox_set_count(&in, &absent, 0, &space);
    assert_int_equal(in.n_senders, 3);
    assert_memory_equal(in.senders, a.b, 16);
    assert_memory_equal(in.senders + 2 * REC_INBOX_SENDER_SIZE, c.b, 16);
    assert_int_equal(rec_inbox_count(&in, &a), 1);
    assert_int_equal(rec_inbox_count(&in, &mid), 2);
    assert_int_equal(rec_inbox_count(&in, &c), 3);
    assert_int_equal(rec_inbox_count(&in, &absent), 0);
    rec_inbox_set_count(&in, &mid, 5, &space);
    rec_inbox_set_count(&in, &a, 0, &space);
    assert_int_equal(in.n_senders, 2);
    assert_int_equal(rec_inbox_count(&in, &a), 0);
    assert_int_equal(rec_inbox_count(&in, &mid), 5);
    buf_reset(&b);
    rec_inbox_encode(&in, &b);
    assert_int_equal(b.len, 33 + 4 + 2 * REC_INBOX_SENDER_SIZE);
    struct rec_inbox d;
    assert_int_equal(rec_inbox_decode(b.data, b.len, &d), 0);
    assert_true(d.last == 20 && d.acked == 10 && d.counts_in_head && d.n_senders == 2);
    assert_int_equal(rec_inbox_count(&d, &mid), 5);
    assert_int_equal(rec_inbox_count(&d, &c), 3);
    struct buf again;
    buf_init(&again);
    rec_inbox_encode(&d, &again);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);
    /* A head that counts, with no sender yet. */
    struct rec_inbox empty = {.last = 3, .acked = 3, .counts_in_head = true};
    buf_reset(&again);
    rec_inbox_encode(&empty, &again);
    assert_int_equal(rec_inbox_decode(again.data, again.len, &d), 0);
    assert_true(d.counts_in_head && d.n_senders == 0 && d.last == 3);

    /* Damage, each on a copy of the good encoding: entries at 37 and 57. */
    struct {
        size_t at;
        uint8_t byte;
        size_t len;
    } bad[] = {
        {36, 3, 0},            /* three senders announced, two there */
        {b.len, 0, b.len - 1}, /* truncated */
        {b.len, 0, b.len + 1}, /* a byte after the senders */
        {37, 0x40, 0},         /* out of order */
        {37, 0x30, 0},         /* the same sender twice */
        {37 + 19, 0, 0},       /* mid's count (5) becomes 0 */
        {37 + 19, 8, 0},       /* 8 + 3 items of 10 pending: more than there are */
        {16, 19, 0},           /* acked 19 of 20: 2 senders for 1 item */
    };
    uint8_t copy[128];
    assert_true(b.len < sizeof copy);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(copy, b.data, b.len);
        copy[b.len] = 0;
        if (bad[i].at < b.len)
            copy[bad[i].at] = bad[i].byte;
        size_t len = bad[i].len ? bad[i].len : b.len;
        assert_int_equal(rec_inbox_decode(copy, len, &d), STATUS_CORRUPT);
    }
    /* A huge count of senders with the items to match: refused by the
     * bytes there are, before any size is taken from it. */
    memcpy(copy, b.data, b.len);
    key_put_u64(copy + 1, UINT64_MAX);
    key_put_u64(copy + 9, 0);
    key_put_u32(copy + 33, UINT32_MAX);
    assert_int_equal(rec_inbox_decode(copy, b.len, &d), STATUS_CORRUPT);
    buf_cleanup(&again);
    buf_cleanup(&space);
    buf_cleanup(&b);
}

static void test_apply_messages_cursor_encoding(void **state) {
    uint8_t c[10];
    uint64_t v;
    const uint64_t samples[] = {0, 1, 127, 128, 300, 1ull << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        size_t n = rec_cursor_encode(samples[i], c);
        assert_int_equal(rec_cursor_decode(c, n, &v), 0);
        assert_true(v == samples[i]);
    }
    assert_int_equal(rec_cursor_decode(NULL, 0, &v), 0);
    assert_true(v == 0);
    static const uint8_t open_end[] = {0x80}, padded[] = {0x81, 0x00}, early[] = {0x01, 0x01};
    assert_int_equal(rec_cursor_decode(open_end, 1, &v), STATUS_BAD_REQUEST);
    assert_int_equal(rec_cursor_decode(padded, 2, &v), STATUS_BAD_REQUEST);
    assert_int_equal(rec_cursor_decode(early, 2, &v), STATUS_BAD_REQUEST);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_messages_scenario),
        cmocka_unit_test(test_apply_messages_replay_is_deterministic),
        cmocka_unit_test(test_apply_messages_sender_quota),
        cmocka_unit_test(test_apply_messages_old_inbox_head),
        cmocka_unit_test(test_apply_messages_inbox_head_codec),
        cmocka_unit_test(test_apply_messages_cursor_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
