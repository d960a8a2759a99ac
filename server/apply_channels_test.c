/*
 * server/apply_channels_test.c: apply for the care-team channel, recall and
 * urgent kinds of entry.proto through the real journal and RocksDB in
 * $TEST_TMPDIR: who may create a channel (a provider only for a patient of
 * their own) and add, approve, remove members;
 * a pending family member receives nothing until the patient approves; a
 * patient cannot remove staff; fan-out to every device of every active
 * member and to nobody else; history from the joined seq; sharing a care team
 * makes a patient and a provider contacts; recall leaves no ciphertext in
 * CF_MESSAGES and queues a tombstone for every device; urgent
 * acknowledgements; membership events (joined, pending, approved, removed,
 * left) queued for the active members and the departing account, none for a
 * pending one, and the membership item's encoding beside the older kinds';
 * replaying the same entries gives identical contents;
 * who may deactivate whom, and a deactivated actor's entries refused.
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
#include "server/records_messages.h"
#include "server/audit.h"
#include "server/records.h"
#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/store.h"

#define T0 FIXTURE_T0
#define DAY FIXTURE_DAY

/* ---- the channel kinds -------------------------------------------------------------- */

static int64_t now_ms = T0 + 1000;

static void entry_start(Carechat__Entry__V1__Entry *e, const struct fixture_person *actor,
                        const struct fixture_dev *d) {
    carechat__entry__v1__entry__init(e);
    e->time = ++now_ms;
    e->actor_account_id = fixture_bin(actor->id.b, 16);
    if (d)
        e->actor_device_id = fixture_bin(d->id.b, 16);
}

static int create_channel(struct fixture_db *db, const struct fixture_person *actor,
                          const struct fixture_person *patient, const struct id *conv,
                          const char *name, const struct fixture_person *const *extra,
                          size_t n_extra) {
    ProtobufCBinaryData ids[4];
    assert_true(n_extra <= 4);
    for (size_t i = 0; i < n_extra; i++)
        ids[i] = fixture_bin(extra[i]->id.b, 16);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__ChannelCreate c;
    entry_start(&e, actor, NULL);
    carechat__entry__v1__channel_create__init(&c);
    c.conversation_id = fixture_bin(conv->b, 16);
    c.patient_account_id = fixture_bin(patient->id.b, 16);
    c.name = (char *)name;
    c.n_member_account_ids = n_extra;
    c.member_account_ids = ids;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_CHANNEL_CREATE;
    e.channel_create = &c;
    return fixture_propose(db, &e);
}

#define MAX_DEVS 8

/* Sends message number n (client_msg_id and message id end in n) from
 * `from_dev`, wrapped for `to` (key id 1), with the proposer's view `view`
 * of the members' devices. */
static int csend(struct fixture_db *db, const struct fixture_person *from,
                 const struct fixture_dev *from_dev, const struct id *conv, uint8_t n, bool urgent,
                 const char *body, const struct fixture_dev *const *to, size_t n_to,
                 const struct fixture_dev *const *view, size_t n_view) {
    static uint8_t enc[32], wk[48], nonce[24], sig[64];
    uint8_t cmid[16] = {0xc0}, mid[16] = {0xe0};
    cmid[15] = n;
    mid[15] = n;
    Carechat__Entry__V1__WrapItem items[MAX_DEVS], *ip[MAX_DEVS];
    ProtobufCBinaryData mem[MAX_DEVS];
    assert_true(n_to <= MAX_DEVS && n_view <= MAX_DEVS);
    for (size_t i = 0; i < n_to; i++) {
        carechat__entry__v1__wrap_item__init(&items[i]);
        items[i].device_id = fixture_bin(to[i]->id.b, 16);
        items[i].key_id = 1;
        items[i].enc = fixture_bin(enc, 32);
        items[i].wrapped_key = fixture_bin(wk, 48);
        ip[i] = &items[i];
    }
    for (size_t i = 0; i < n_view; i++)
        mem[i] = fixture_bin(view[i]->id.b, 16);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MessageSend m;
    entry_start(&e, from, from_dev);
    carechat__entry__v1__message_send__init(&m);
    e.idempotency_key = fixture_bin(cmid, 16);
    m.conversation_id = fixture_bin(conv->b, 16);
    m.message_id = fixture_bin(mid, 16);
    m.client_msg_id = fixture_bin(cmid, 16);
    m.urgent = urgent;
    m.envelope_version = 2;
    m.sender_device_id = fixture_bin(from_dev->id.b, 16);
    m.body = fixture_bin(body, strlen(body));
    m.body_nonce = fixture_bin(nonce, 24);
    m.signature = fixture_bin(sig, 64);
    m.n_wraps = n_to;
    m.wraps = ip;
    m.n_member_device_ids = n_view;
    m.member_device_ids = mem;
    m.inbox_limit = 100;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_SEND;
    e.message_send = &m;
    return fixture_propose(db, &e);
}

/* One account's devices, as a proposer lists them. */
struct acct_devs {
    const struct fixture_person *p;
    const struct fixture_dev *d[3];
    size_t n;
};

struct lists {
    Carechat__Entry__V1__AccountDeviceIds ad[6], *adp[6];
    ProtobufCBinaryData ids[6][3];
};

static void lists_fill(struct lists *l, const struct acct_devs *a, size_t n) {
    assert_true(n <= 6);
    for (size_t i = 0; i < n; i++) {
        carechat__entry__v1__account_device_ids__init(&l->ad[i]);
        l->ad[i].account_id = fixture_bin(a[i].p->id.b, 16);
        for (size_t j = 0; j < a[i].n; j++)
            l->ids[i][j] = fixture_bin(a[i].d[j]->id.b, 16);
        l->ad[i].n_device_ids = a[i].n;
        l->ad[i].device_ids = l->ids[i];
        l->adp[i] = &l->ad[i];
    }
}

enum member_op { OP_ADD, OP_REMOVE, OP_APPROVE, OP_LEAVE };

/* A membership change by `actor` of `who` (OP_LEAVE: of the actor itself),
 * with the proposer's view `a` of the devices to tell (n_a 0: none, as in an
 * entry written before member_devices existed). */
static int member_change(struct fixture_db *db, enum member_op op,
                         const struct fixture_person *actor, const struct id *conv,
                         const struct fixture_person *who, const struct acct_devs *a, size_t n_a) {
    struct lists l;
    lists_fill(&l, a, n_a);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MemberAdd add;
    Carechat__Entry__V1__MemberRemove r;
    Carechat__Entry__V1__MemberApprove p;
    Carechat__Entry__V1__ConversationLeave lv;
    entry_start(&e, actor, NULL);
    if (op == OP_ADD) {
        carechat__entry__v1__member_add__init(&add);
        add.conversation_id = fixture_bin(conv->b, 16);
        add.account_id = fixture_bin(who->id.b, 16);
        add.n_member_devices = n_a;
        add.member_devices = l.adp;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_ADD;
        e.member_add = &add;
    } else if (op == OP_REMOVE) {
        carechat__entry__v1__member_remove__init(&r);
        r.conversation_id = fixture_bin(conv->b, 16);
        r.account_id = fixture_bin(who->id.b, 16);
        r.n_member_devices = n_a;
        r.member_devices = l.adp;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_REMOVE;
        e.member_remove = &r;
    } else if (op == OP_APPROVE) {
        carechat__entry__v1__member_approve__init(&p);
        p.conversation_id = fixture_bin(conv->b, 16);
        p.account_id = fixture_bin(who->id.b, 16);
        p.n_member_devices = n_a;
        p.member_devices = l.adp;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_APPROVE;
        e.member_approve = &p;
    } else {
        carechat__entry__v1__conversation_leave__init(&lv);
        lv.conversation_id = fixture_bin(conv->b, 16);
        lv.n_member_devices = n_a;
        lv.member_devices = l.adp;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_CONVERSATION_LEAVE;
        e.conversation_leave = &lv;
    }
    return fixture_propose(db, &e);
}

static int member_op(struct fixture_db *db, enum member_op op, const struct fixture_person *actor,
                     const struct id *conv, const struct fixture_person *who) {
    return member_change(db, op, actor, conv, who, NULL, 0);
}

static int leave(struct fixture_db *db, const struct fixture_person *actor, const struct id *conv) {
    return member_change(db, OP_LEAVE, actor, conv, actor, NULL, 0);
}

static int recall(struct fixture_db *db, const struct fixture_person *actor, const struct id *conv,
                  uint8_t n, const struct acct_devs *a, size_t n_a) {
    uint8_t mid[16] = {0xe0};
    mid[15] = n;
    struct lists l;
    lists_fill(&l, a, n_a);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MessageRecall r;
    entry_start(&e, actor, NULL);
    carechat__entry__v1__message_recall__init(&r);
    r.conversation_id = fixture_bin(conv->b, 16);
    r.message_id = fixture_bin(mid, 16);
    r.n_member_devices = n_a;
    r.member_devices = l.adp;
    /* the signature the proposer verified, by the actor's device */
    static const uint8_t signer[16] = {0x5d}, sig[64] = {0x51};
    r.signer_device_id = fixture_bin(signer, 16);
    r.signature = fixture_bin(sig, 64);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_RECALL;
    e.message_recall = &r;
    return fixture_propose(db, &e);
}

static int urgent_ack(struct fixture_db *db, const struct fixture_person *actor,
                      const struct id *conv, uint8_t n, const struct acct_devs *sender) {
    uint8_t mid[16] = {0xe0};
    mid[15] = n;
    struct lists l;
    lists_fill(&l, sender, 1);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__UrgentAck u;
    entry_start(&e, actor, NULL);
    carechat__entry__v1__urgent_ack__init(&u);
    u.conversation_id = fixture_bin(conv->b, 16);
    u.message_id = fixture_bin(mid, 16);
    u.n_sender_devices = 1;
    u.sender_devices = l.adp;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_URGENT_ACK;
    e.urgent_ack = &u;
    return fixture_propose(db, &e);
}

/* ---- reading back ----------------------------------------------------------------------- */

static struct rec_member member_of(struct fixture_db *db, const struct id *conv,
                                   const struct fixture_person *p) {
    struct key k;
    key_id_id(&k, conv, &p->id);
    struct buf v;
    buf_init(&v);
    struct rec_member m;
    assert_int_equal(store_get(db->store, CF_MEMBERS, k.b, k.len, &v), 0);
    assert_int_equal(rec_member_decode(v.data, v.len, &m), 0);
    buf_cleanup(&v);
    return m;
}

/* The last position of the device's inbox (0: nothing ever queued). */
static uint64_t inbox_last(struct fixture_db *db, const struct fixture_dev *d) {
    struct buf v;
    buf_init(&v);
    struct rec_inbox in = {0};
    int rc = store_get(db->store, CF_INBOXES, d->id.b, 16, &v);
    if (rc == 0)
        assert_int_equal(rec_inbox_decode(v.data, v.len, &in), 0);
    else
        assert_int_equal(rc, STATUS_NOT_FOUND);
    buf_cleanup(&v);
    return in.last;
}

static struct rec_item inbox_item(struct fixture_db *db, const struct fixture_dev *d, uint64_t pos,
                                  struct buf *v) {
    struct key k;
    key_id_u64(&k, &d->id, pos);
    struct rec_item it;
    assert_int_equal(store_get(db->store, CF_INBOXES, k.b, k.len, v), 0);
    assert_int_equal(rec_item_decode(v->data, v->len, &it), 0);
    return it;
}

static uint32_t deliveries(size_t skip) {
    uint32_t n;
    const uint8_t *entries;
    struct rec_list_message message;
    assert_true(fixture_last_result()->len >= skip);
    assert_int_equal(rec_deliveries_read(fixture_last_result()->data + skip,
                                         fixture_last_result()->len - skip, &n, &entries, &message),
                     0);
    return n;
}

struct find {
    const char *needle;
    size_t hits, records;
};

static bool find_in(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    struct find *f = ctx;
    size_t n = strlen(f->needle);
    f->records++;
    for (size_t i = 0; i + n <= vl; i++)
        if (memcmp(v + i, f->needle, n) == 0) {
            f->hits++;
            break;
        }
    return true;
}

/* How many records of `cf` hold `needle` in their (opened) value. */
static size_t records_holding(struct fixture_db *db, enum store_cf cf, const char *needle) {
    struct find f = {.needle = needle};
    assert_true(store_scan(db->store, cf, NULL, 0, NULL, 0, 100000, find_in, &f) >= 0);
    return f.hits;
}

static int urgent_acked_at(struct fixture_db *db, const struct id *conv, uint8_t n,
                           const struct fixture_person *p, int64_t *at) {
    uint8_t mid[16] = {0xe0};
    mid[15] = n;
    struct id m;
    memcpy(m.b, mid, 16);
    struct key k;
    rec_key_urgent(&k, conv, &m, &p->id);
    struct buf v;
    buf_init(&v);
    int rc = store_get(db->store, CF_RECEIPTS, k.b, k.len, &v);
    struct rec_urgent u;
    if (rc == 0) {
        assert_int_equal(rec_urgent_decode(v.data, v.len, &u), 0);
        *at = u.acked_at;
    }
    buf_cleanup(&v);
    return rc;
}

/* ---- the scenario -------------------------------------------------------------------------- */

static void run_scenario(struct fixture_db *db) {
    struct fixture_person sysadmin, admin, doc, nurse, pat, family, other;
    struct fixture_dev ad1, d1, d2, n1, a1, a2, f1, o1;
    fixture_person(&sysadmin, "sysadmin@x.example", 9);
    fixture_person(&admin, "admin@x.example", 1);
    fixture_person(&doc, "doc@x.example", 2);
    fixture_person(&nurse, "nurse@x.example", 3);
    fixture_person(&pat, "pat@x.example", 4);
    fixture_person(&family, "family@x.example", 5);
    fixture_person(&other, "other@x.example", 6);
    fixture_dev_make(&ad1, 1);
    fixture_dev_make(&d1, 2);
    fixture_dev_make(&d2, 3);
    fixture_dev_make(&n1, 4);
    fixture_dev_make(&a1, 5);
    fixture_dev_make(&a2, 6);
    fixture_dev_make(&f1, 7);
    fixture_dev_make(&o1, 8);
    fixture_bootstrap(db, &sysadmin);
    fixture_join(db, &sysadmin, &admin, 3, &ad1);
    fixture_join(db, &admin, &doc, 2, &d1);
    fixture_add_device(db, &doc, &d2);
    fixture_join(db, &admin, &nurse, 2, &n1);
    fixture_join(db, &doc, &pat, 1, &a1);
    fixture_add_device(db, &pat, &a2);
    fixture_join(db, &doc, &family, 1, &f1);
    fixture_join(db, &nurse, &other, 1, &o1);

    struct id ch = {{0xca, 1}}, ch2 = {{0xca, 2}}, dm = {{0xdd, 1}}, dm2 = {{0xdd, 2}};
    /* Not contacts before they share a channel. */
    assert_int_equal(fixture_direct(db, &other, &doc, &dm2), STATUS_NOT_FOUND);
    const struct fixture_person *with_nurse[1] = {&nurse};

    /* Creation: only staff; about an active patient; a name of 1..128 bytes. */
    assert_int_equal(create_channel(db, &pat, &pat, &ch, "Cardiology", NULL, 0), STATUS_FORBIDDEN);
    assert_int_equal(create_channel(db, &doc, &nurse, &ch, "Cardiology", NULL, 0),
                     STATUS_NOT_FOUND);
    assert_int_equal(create_channel(db, &doc, &pat, &ch, "", NULL, 0), STATUS_BAD_REQUEST);
    /* A provider only for a patient they have a care relation with: the
     * nurse has none with pat (doc invited pat) and cannot make one alone. */
    struct id ch_n = {{0xca, 9}};
    assert_int_equal(create_channel(db, &nurse, &pat, &ch_n, "Mine", NULL, 0), STATUS_FORBIDDEN);
    const struct fixture_person *not_staff[1] = {&family};
    assert_int_equal(create_channel(db, &doc, &pat, &ch, "Cardiology", not_staff, 1),
                     STATUS_NOT_FOUND);
    assert_int_equal(create_channel(db, &doc, &pat, &ch, "Cardiology", NULL, 0), 0);
    struct rec_audit rec = fixture_last_audit(db);
    assert_int_equal(rec.action, REC_AUDIT_CHANNEL_CREATE);
    assert_memory_equal(rec.actor.b, doc.id.b, ID_LEN);
    assert_int_equal(rec.object_len, ID_LEN);
    assert_memory_equal(rec.object, ch.b, ID_LEN);
    assert_memory_equal(rec.patient.b, pat.id.b, ID_LEN);
    assert_int_equal(fixture_last_result()->len, 16);
    assert_memory_equal(fixture_last_result()->data, ch.b, 16);
    assert_int_equal(create_channel(db, &doc, &pat, &ch, "Again", NULL, 0), STATUS_CONFLICT);
    assert_int_equal(member_of(db, &ch, &doc).state, REC_ACTIVE);
    assert_int_equal(member_of(db, &ch, &pat).state, REC_ACTIVE);
    /* The name is sealed: it is stored, under its own key. */
    assert_int_equal(records_holding(db, CF_CONVERSATIONS, "Cardiology"), 1);

    /* The patient and the nurse are no contacts yet: nurse did not invite her. */
    assert_int_equal(fixture_direct(db, &pat, &nurse, &dm), STATUS_NOT_FOUND);

    /* Members: staff add staff (active at once); a patient adds nobody. */
    assert_int_equal(member_op(db, OP_ADD, &pat, &ch, &nurse), STATUS_FORBIDDEN);
    assert_int_equal(member_op(db, OP_ADD, &nurse, &ch, &nurse), STATUS_NOT_FOUND);
    uint64_t audited = fixture_last_audit(db).index;
    assert_int_equal(member_op(db, OP_ADD, &doc, &ch, &nurse), 0);
    assert_int_equal(member_of(db, &ch, &nurse).state, REC_ACTIVE);
    /* Who changed the patient's care team, and how, is in the audit log. */
    rec = fixture_last_audit(db);
    assert_true(rec.index == audited + 1);
    assert_int_equal(rec.action, REC_AUDIT_MEMBER_ADD);
    assert_memory_equal(rec.actor.b, doc.id.b, ID_LEN);
    assert_int_equal(rec.object_len, 2 * ID_LEN);
    assert_memory_equal(rec.object, ch.b, ID_LEN);
    assert_memory_equal(rec.object + ID_LEN, nurse.id.b, ID_LEN);
    assert_memory_equal(rec.patient.b, pat.id.b, ID_LEN);
    assert_int_equal(member_op(db, OP_ADD, &doc, &ch, &nurse), STATUS_CONFLICT);
    /* Sharing the care team makes patient and nurse contacts. */
    assert_int_equal(fixture_direct(db, &pat, &nurse, &dm), 0);

    /* A family member (role patient) is pending until the patient approves. */
    assert_int_equal(member_op(db, OP_ADD, &nurse, &ch, &family), 0);
    assert_int_equal(member_of(db, &ch, &family).state, REC_PENDING);
    const struct fixture_dev *everyone[6] = {&d1, &d2, &n1, &a1, &a2, &f1};
    const struct fixture_dev *to_active[4] = {&d2, &n1, &a1, &a2};
    /* The pending member's device is not a recipient: wrapping for it is extra. */
    assert_int_equal(csend(db, &doc, &d1, &ch, 1, false, "m1", everyone + 1, 5, everyone, 6),
                     STATUS_CONFLICT);
    uint64_t f_before = inbox_last(db, &f1);
    assert_int_equal(csend(db, &doc, &d1, &ch, 1, false, "m1", to_active, 4, everyone, 5), 0);
    struct rec_sent sent;
    assert_int_equal(rec_sent_decode(fixture_last_result()->data, REC_SENT_SIZE, &sent), 0);
    assert_int_equal(sent.seq, 1);
    /* Every device of every active member but the sending one; the pending
     * member nothing. */
    assert_int_equal(deliveries(REC_SENT_SIZE), 4);
    assert_int_equal(inbox_last(db, &f1), f_before);

    /* Approval: not by staff, by the patient, once. */
    assert_int_equal(member_op(db, OP_APPROVE, &doc, &ch, &family), STATUS_FORBIDDEN);
    assert_int_equal(member_op(db, OP_APPROVE, &pat, &ch, &nurse), STATUS_CONFLICT);
    assert_int_equal(member_op(db, OP_APPROVE, &pat, &ch, &family), 0);
    struct rec_member fm = member_of(db, &ch, &family);
    assert_int_equal(fm.state, REC_ACTIVE);
    /* History from the moment of joining: after seq 1. */
    assert_int_equal(fm.joined_seq, 2);
    assert_int_equal(member_op(db, OP_APPROVE, &pat, &ch, &family), STATUS_CONFLICT);

    /* Now the family member's device must be covered. */
    assert_int_equal(csend(db, &doc, &d1, &ch, 2, false, "m2", to_active, 4, everyone, 6),
                     STATUS_CONFLICT);
    const struct fixture_dev *to_all[5] = {&d2, &n1, &a1, &a2, &f1};
    assert_int_equal(csend(db, &doc, &d1, &ch, 2, false, "m2", to_all, 5, everyone, 6), 0);
    assert_int_equal(deliveries(REC_SENT_SIZE), 5);
    assert_int_equal(inbox_last(db, &f1), f_before + 1);

    /* Removal: a patient cannot remove staff; nobody removes the patient. */
    assert_int_equal(member_op(db, OP_REMOVE, &pat, &ch, &nurse), STATUS_FORBIDDEN);
    assert_int_equal(member_op(db, OP_REMOVE, &doc, &ch, &pat), STATUS_FORBIDDEN);
    assert_int_equal(member_op(db, OP_REMOVE, &doc, &ch, &nurse), 0);
    assert_int_equal(member_of(db, &ch, &nurse).state, REC_REMOVED);
    assert_int_equal(member_op(db, OP_REMOVE, &doc, &ch, &nurse), STATUS_NOT_FOUND);
    /* The removed nurse receives nothing new and cannot send. */
    uint64_t n_before = inbox_last(db, &n1);
    const struct fixture_dev *without_nurse[5] = {&d1, &d2, &a1, &a2, &f1};
    const struct fixture_dev *to_rest[4] = {&d2, &a1, &a2, &f1};
    assert_int_equal(csend(db, &doc, &d1, &ch, 3, false, "m3", to_all, 5, without_nurse, 5),
                     STATUS_CONFLICT);
    assert_int_equal(csend(db, &doc, &d1, &ch, 3, false, "m3", to_rest, 4, without_nurse, 5), 0);
    assert_int_equal(inbox_last(db, &n1), n_before);
    const struct fixture_dev *to_doc[2] = {&d1, &d2};
    assert_int_equal(csend(db, &nurse, &n1, &ch, 4, false, "m4", to_doc, 2, without_nurse, 5),
                     STATUS_FORBIDDEN);
    /* The care team no longer joins patient and nurse. */
    assert_int_equal(fixture_direct(db, &pat, &nurse, &dm2), STATUS_NOT_FOUND);

    /* An admin manages any channel (a system administrator does not);
     * re-adding starts history afresh. */
    assert_int_equal(member_op(db, OP_ADD, &sysadmin, &ch, &nurse), STATUS_NOT_FOUND);
    assert_int_equal(member_op(db, OP_ADD, &admin, &ch, &nurse), 0);
    struct rec_member nm = member_of(db, &ch, &nurse);
    assert_int_equal(nm.state, REC_ACTIVE);
    assert_int_equal(nm.joined_seq, 4);
    assert_int_equal(member_op(db, OP_REMOVE, &admin, &ch, &nurse), 0);

    /* Leaving: the family member leaves once; a direct conversation cannot be left. */
    assert_int_equal(leave(db, &family, &ch), 0);
    assert_int_equal(member_of(db, &ch, &family).state, REC_LEFT);
    assert_int_equal(leave(db, &family, &ch), STATUS_NOT_FOUND);
    assert_int_equal(leave(db, &pat, &dm), STATUS_FORBIDDEN);

    /* A second channel with staff listed at creation: doc cannot attach
     * himself to the nurse's patient, the nurse can add him. */
    const struct fixture_person *with_doc[1] = {&doc};
    assert_int_equal(create_channel(db, &doc, &other, &ch2, "Team two", with_nurse, 1),
                     STATUS_FORBIDDEN);
    assert_int_equal(create_channel(db, &nurse, &other, &ch2, "Team two", with_doc, 1), 0);
    assert_int_equal(member_of(db, &ch2, &doc).state, REC_ACTIVE);
    struct id dm3 = {{0xdd, 3}};
    assert_int_equal(fixture_direct(db, &other, &doc, &dm3), 0);

    /* Recall: only the sender (or an admin); the envelope leaves CF_MESSAGES. */
    const struct fixture_dev *members_now[4] = {&d1, &d2, &a1, &a2};
    const struct fixture_dev *to_pat[3] = {&d2, &a1, &a2};
    assert_int_equal(
        csend(db, &doc, &d1, &ch, 5, false, "CANARY-ciphertext-5", to_pat, 3, members_now, 4), 0);
    assert_int_equal(records_holding(db, CF_MESSAGES, "CANARY-ciphertext-5"), 1);
    struct acct_devs all[3] = {{&doc, {&d1, &d2}, 2}, {&pat, {&a1, &a2}, 2}, {&nurse, {&n1}, 1}};
    assert_int_equal(recall(db, &pat, &ch, 5, all, 3), STATUS_FORBIDDEN);
    assert_int_equal(recall(db, &doc, &ch, 99, all, 3), STATUS_NOT_FOUND);
    uint64_t a1_before = inbox_last(db, &a1);
    assert_int_equal(recall(db, &doc, &ch, 5, all, 3), 0);
    /* The recall is audited: actor, message id and the channel's patient. */
    struct rec_audit ra = fixture_last_audit(db);
    assert_int_equal(ra.action, REC_AUDIT_MESSAGE_RECALL);
    assert_memory_equal(ra.actor.b, doc.id.b, 16);
    assert_int_equal(ra.object_len, 16);
    assert_int_equal(ra.object[0], 0xe0);
    assert_int_equal(ra.object[15], 5);
    assert_memory_equal(ra.patient.b, pat.id.b, 16);
    /* A tombstone for every device of every active member (the removed
     * nurse's device is left out), the sender's own included. */
    assert_int_equal(deliveries(0), 4);
    assert_int_equal(inbox_last(db, &a1), a1_before + 1);
    struct buf iv;
    buf_init(&iv);
    struct rec_item it = inbox_item(db, &a1, a1_before + 1, &iv);
    assert_int_equal(it.kind, REC_ITEM_RECALL);
    assert_int_equal(it.seq, 4); /* message 4 was refused: 5 is seq 4 */
    buf_cleanup(&iv);
    assert_int_equal(records_holding(db, CF_MESSAGES, "CANARY-ciphertext-5"), 0);
    /* The record that stays is a tombstone: metadata, no envelope. */
    struct key k;
    key_id_u64(&k, &ch, 4);
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(db->store, CF_MESSAGES, k.b, k.len, &v), 0);
    struct rec_message tomb;
    assert_int_equal(rec_message_decode(v.data, v.len, &tomb), 0);
    assert_true(tomb.recalled_at > 0);
    assert_int_equal(tomb.body.len, 0);
    assert_int_equal(tomb.header.len, 0);
    assert_int_equal(tomb.signature.len, 0);
    assert_int_equal(tomb.n_wraps, 0);
    assert_memory_equal(tomb.sender_account.b, doc.id.b, 16);
    /* kept with its signer, device and account (the actor) */
    assert_int_equal(tomb.recall_signature.len, 64);
    assert_int_equal(tomb.recall_signature.data[0], 0x51);
    assert_int_equal(tomb.recall_signer.b[0], 0x5d);
    assert_memory_equal(tomb.recall_signer_account.b, doc.id.b, 16);
    buf_cleanup(&v);
    assert_int_equal(recall(db, &doc, &ch, 5, all, 3), STATUS_CONFLICT);
    /* An admin may recall anyone's message. */
    assert_int_equal(
        csend(db, &pat, &a1, &ch, 6, false, "CANARY-ciphertext-6", to_doc, 2, members_now, 4),
        STATUS_CONFLICT); /* a2 missing */
    const struct fixture_dev *to_doc_a2[3] = {&d1, &d2, &a2};
    assert_int_equal(
        csend(db, &pat, &a1, &ch, 6, false, "CANARY-ciphertext-6", to_doc_a2, 3, members_now, 4),
        0);
    assert_int_equal(recall(db, &admin, &ch, 6, all, 3), 0);
    assert_int_equal(records_holding(db, CF_MESSAGES, "CANARY-ciphertext-6"), 0);

    /* Urgent: each recipient account must acknowledge; the sender hears it once. */
    assert_int_equal(member_op(db, OP_ADD, &doc, &ch, &nurse), 0);
    const struct fixture_dev *view3[5] = {&d1, &d2, &a1, &a2, &n1};
    const struct fixture_dev *to_u[4] = {&d2, &a1, &a2, &n1};
    assert_int_equal(csend(db, &doc, &d1, &ch, 7, true, "urgent", to_u, 4, view3, 5), 0);
    int64_t at = -1;
    assert_int_equal(urgent_acked_at(db, &ch, 7, &pat, &at), 0);
    assert_int_equal(at, 0);
    assert_int_equal(urgent_acked_at(db, &ch, 7, &nurse, &at), 0);
    assert_int_equal(urgent_acked_at(db, &ch, 7, &doc, &at), STATUS_NOT_FOUND);
    struct acct_devs sender = {&doc, {&d1, &d2}, 2};
    uint64_t d1_before = inbox_last(db, &d1);
    assert_int_equal(urgent_ack(db, &pat, &ch, 7, &sender), 0);
    assert_int_equal(deliveries(0), 2);
    assert_int_equal(inbox_last(db, &d1), d1_before + 1);
    buf_init(&iv);
    it = inbox_item(db, &d1, d1_before + 1, &iv);
    assert_int_equal(it.kind, REC_ITEM_URGENT_ACK);
    assert_memory_equal(it.account_id.b, pat.id.b, 16);
    buf_cleanup(&iv);
    assert_int_equal(urgent_acked_at(db, &ch, 7, &pat, &at), 0);
    assert_true(at > 0);
    assert_int_equal(urgent_acked_at(db, &ch, 7, &nurse, &at), 0);
    assert_int_equal(at, 0);
    /* A repeat changes nothing and tells nobody. */
    assert_int_equal(urgent_ack(db, &pat, &ch, 7, &sender), 0);
    assert_int_equal(deliveries(0), 0);
    assert_int_equal(inbox_last(db, &d1), d1_before + 1);
    /* The sender is no recipient; a normal message needs no acknowledgement. */
    assert_int_equal(urgent_ack(db, &doc, &ch, 7, &sender), STATUS_NOT_FOUND);
    assert_int_equal(urgent_ack(db, &pat, &ch, 1, &sender), STATUS_CONFLICT);
}

static void test_apply_channels_scenario(void **state) {
    fixture_log_reset();
    now_ms = T0 + 1000;
    struct fixture_db db;
    fixture_open(&db, "apply-chan");
    run_scenario(&db);
    fixture_close(&db);
    fixture_log_cleanup();
}

/* fixture_check_replay() of `run`, with the clock the scenarios start at. */
static void assert_replay_identical(void (*run)(struct fixture_db *db)) {
    now_ms = T0 + 1000;
    fixture_check_replay("apply-chan", run);
}

static void test_apply_channels_replay_is_deterministic(void **state) {
    assert_replay_identical(run_scenario);
}

/* ---- the account conversation index ------------------------------------------------------ */

/* An account's entries for one conversation in its conversation index. */
struct index_scan {
    const struct id *conv;
    int n;
    int64_t time; /* of the last one */
};

static bool count_index(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    struct index_scan *a = ctx;
    assert_int_equal(kl, 1 + ID_LEN + 8 + ID_LEN);
    if (memcmp(k + 1 + ID_LEN + 8, a->conv->b, ID_LEN) == 0) {
        a->n++;
        a->time = (int64_t)(UINT64_MAX - key_get_u64(k + 1 + ID_LEN));
    }
    return true;
}

/* Asserts that `p` has `n` entries for `conv` (the last at `time`). */
static void expect_index(struct fixture_db *db, const struct fixture_person *p,
                         const struct id *conv, int n, int64_t time) {
    struct key prefix;
    rec_key_account_conv_prefix(&prefix, &p->id);
    struct index_scan a = {.conv = conv};
    assert_true(store_scan(db->store, CF_CONVERSATIONS, prefix.b, prefix.len, NULL, 0, 1000,
                           count_index, &a) >= 0);
    assert_int_equal(a.n, n);
    if (n)
        assert_int_equal(a.time, time);
}

/* The conversation record of `conv` (free() it). */
static struct rec_conv *conv_of(struct fixture_db *db, const struct id *conv) {
    struct rec_conv *c = calloc(1, sizeof *c);
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(db->store, CF_CONVERSATIONS, conv->b, ID_LEN, &v), 0);
    assert_int_equal(rec_conv_decode(v.data, v.len, c), 0);
    buf_cleanup(&v);
    return c;
}

/* Asserts the conversation's index flag and last message. */
static void expect_conv(struct fixture_db *db, const struct id *conv, bool index_fixed,
                        uint64_t active_seq, int64_t active_at) {
    struct rec_conv *c = conv_of(db, conv);
    assert_int_equal(c->index_fixed, index_fixed);
    assert_int_equal(c->active_seq, active_seq);
    assert_int_equal(c->active_at, active_at);
    free(c);
}

/* The people and devices of the index scenarios: a channel about pat with
 * doc, and nurse to add. */
struct index_world {
    struct fixture_person sysadmin, admin, doc, nurse, pat;
    struct fixture_dev ad1, d1, n1, a1;
    struct id ch;
};

/* The nurse and the doctor leave: each entry goes, the patient's stays
 * where the channel's creation put it. Then the world is freed and closed. */
static void leave_and_close(struct fixture_db *db, struct index_world *w, int64_t created) {
    assert_int_equal(leave(db, &w->nurse, &w->ch), 0);
    expect_index(db, &w->nurse, &w->ch, 0, 0);
    assert_int_equal(leave(db, &w->doc, &w->ch), 0);
    expect_index(db, &w->doc, &w->ch, 0, 0);
    expect_index(db, &w->pat, &w->ch, 1, created);
    free(w);
    fixture_close(db);
    fixture_log_cleanup();
}

static void index_world_make(struct fixture_db *db, struct index_world *w) {
    fixture_person(&w->sysadmin, "sysadmin@x.example", 9);
    fixture_person(&w->admin, "admin@x.example", 1);
    fixture_person(&w->doc, "doc@x.example", 2);
    fixture_person(&w->nurse, "nurse@x.example", 3);
    fixture_person(&w->pat, "pat@x.example", 4);
    fixture_dev_make(&w->ad1, 1);
    fixture_dev_make(&w->d1, 2);
    fixture_dev_make(&w->n1, 4);
    fixture_dev_make(&w->a1, 5);
    fixture_bootstrap(db, &w->sysadmin);
    fixture_join(db, &w->sysadmin, &w->admin, 3, &w->ad1);
    fixture_join(db, &w->admin, &w->doc, 2, &w->d1);
    fixture_join(db, &w->admin, &w->nurse, 2, &w->n1);
    fixture_join(db, &w->doc, &w->pat, 1, &w->a1);
    w->ch = (struct id){{0xca, 7}};
}

/* Every active member has exactly one entry for the channel, at its joining,
 * which no message moves; a departed member has none; rejoining adds one at
 * the new time. */
static void test_apply_channels_conversation_index(void **state) {
    fixture_log_reset();
    now_ms = T0 + 1000;
    struct fixture_db db;
    fixture_open(&db, "apply-index");
    struct index_world *w = calloc(1, sizeof *w);
    index_world_make(&db, w);
    const struct fixture_dev *two[2] = {&w->d1, &w->a1}, *three[3] = {&w->d1, &w->a1, &w->n1};

    assert_int_equal(create_channel(&db, &w->doc, &w->pat, &w->ch, "Index", NULL, 0), 0);
    int64_t created = now_ms;
    expect_conv(&db, &w->ch, true, 0, 0);
    expect_index(&db, &w->doc, &w->ch, 1, created);
    expect_index(&db, &w->pat, &w->ch, 1, created);
    assert_int_equal(csend(&db, &w->doc, &w->d1, &w->ch, 1, false, "m1", two + 1, 1, two, 2), 0);
    int64_t t1 = now_ms;
    expect_conv(&db, &w->ch, true, 1, t1);
    expect_index(&db, &w->doc, &w->ch, 1, created);
    expect_index(&db, &w->pat, &w->ch, 1, created);
    assert_int_equal(member_op(&db, OP_ADD, &w->doc, &w->ch, &w->nurse), 0);
    int64_t joined = now_ms;
    expect_index(&db, &w->nurse, &w->ch, 1, joined);
    assert_int_equal(csend(&db, &w->doc, &w->d1, &w->ch, 2, false, "m2", three + 1, 2, three, 3),
                     0);
    expect_conv(&db, &w->ch, true, 2, now_ms);
    expect_index(&db, &w->nurse, &w->ch, 1, joined);
    expect_index(&db, &w->pat, &w->ch, 1, created);
    expect_index(&db, &w->doc, &w->ch, 1, created);
    /* Leaving removes the entry; rejoining adds one at the new time. */
    assert_int_equal(leave(&db, &w->nurse, &w->ch), 0);
    expect_index(&db, &w->nurse, &w->ch, 0, 0);
    expect_index(&db, &w->doc, &w->ch, 1, created);
    assert_int_equal(member_op(&db, OP_ADD, &w->doc, &w->ch, &w->nurse), 0);
    int64_t rejoined = now_ms;
    expect_index(&db, &w->nurse, &w->ch, 1, rejoined);
    assert_int_equal(csend(&db, &w->doc, &w->d1, &w->ch, 3, false, "m3", three + 1, 2, three, 3),
                     0);
    expect_index(&db, &w->nurse, &w->ch, 1, rejoined);
    expect_index(&db, &w->doc, &w->ch, 1, created);
    leave_and_close(&db, w, created);
}

/* Rewrites a conversation as an older server left it: its record without
 * the flags byte (nor the last message when there was none), and each
 * active member's entry at its rec_activity_time() instead of its join. */
static int unfix_conv(void *ctx, struct store_txn *txn) {
    const struct id *conv = ctx;
    struct rec_conv *c = calloc(1, sizeof *c);
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_CONVERSATIONS, conv->b, ID_LEN, &v);
    if (rc == 0)
        rc = rec_conv_decode(v.data, v.len, c);
    for (uint32_t i = 0; rc == 0 && i < c->n_members; i++) {
        struct rec_member m;
        struct key k;
        key_id_id(&k, conv, &c->members[i]);
        if ((rc = txn_get(txn, CF_MEMBERS, k.b, k.len, &v)) != 0 ||
            (rc = rec_member_decode(v.data, v.len, &m)) != 0)
            break;
        if (m.state != REC_ACTIVE)
            continue;
        rec_key_account_conv(&k, &c->members[i], m.joined_at, conv);
        if ((rc = txn_delete(txn, CF_CONVERSATIONS, k.b, k.len)) != 0)
            break;
        rec_key_account_conv(&k, &c->members[i], rec_activity_time(c, &m), conv);
        rc = txn_put(txn, CF_CONVERSATIONS, k.b, k.len, &c->owner, conv->b, ID_LEN);
    }
    if (rc == 0) {
        buf_reset(&v);
        rec_conv_encode(c, &v);
        v.len -= c->active_seq ? 1 : 17;
        rc = txn_put(txn, CF_CONVERSATIONS, conv->b, ID_LEN, &c->owner, v.data, v.len);
    }
    buf_cleanup(&v);
    free(c);
    return rc;
}

/* A conversation of an older server (entries at the activity times, no
 * flag): a leave removes the entry where it is; the next message moves each
 * active member's entry to its joining, once, and sets the flag; after that
 * a leave removes the entry at the joining. */
static void test_apply_channels_conversation_index_migration(void **state) {
    fixture_log_reset();
    now_ms = T0 + 1000;
    struct fixture_db db;
    fixture_open(&db, "apply-index-old");
    struct index_world *w = calloc(1, sizeof *w);
    index_world_make(&db, w);
    const struct fixture_dev *three[3] = {&w->d1, &w->a1, &w->n1};

    assert_int_equal(create_channel(&db, &w->doc, &w->pat, &w->ch, "Old", NULL, 0), 0);
    int64_t created = now_ms;
    assert_int_equal(member_op(&db, OP_ADD, &w->doc, &w->ch, &w->nurse), 0);
    int64_t joined = now_ms;
    assert_int_equal(csend(&db, &w->doc, &w->d1, &w->ch, 1, false, "m1", three + 1, 2, three, 3),
                     0);
    int64_t t1 = now_ms;
    fixture_run_txn(&db, unfix_conv, &w->ch);
    expect_conv(&db, &w->ch, false, 1, t1);
    expect_index(&db, &w->doc, &w->ch, 1, t1);
    expect_index(&db, &w->nurse, &w->ch, 1, t1);
    /* Not fixed yet: the entry at the activity time goes, not one at the
     * joining. */
    assert_true(joined != t1);
    assert_int_equal(leave(&db, &w->nurse, &w->ch), 0);
    expect_index(&db, &w->nurse, &w->ch, 0, 0);
    /* Rejoining before the next message: at the joining, which is also the
     * activity time. */
    assert_int_equal(member_op(&db, OP_ADD, &w->doc, &w->ch, &w->nurse), 0);
    int64_t rejoined = now_ms;
    expect_index(&db, &w->nurse, &w->ch, 1, rejoined);
    expect_conv(&db, &w->ch, false, 1, t1);
    /* The next message moves them to the joinings, once. */
    assert_int_equal(csend(&db, &w->doc, &w->d1, &w->ch, 2, false, "m2", three + 1, 2, three, 3),
                     0);
    int64_t t2 = now_ms;
    expect_conv(&db, &w->ch, true, 2, t2);
    expect_index(&db, &w->doc, &w->ch, 1, created);
    expect_index(&db, &w->pat, &w->ch, 1, created);
    expect_index(&db, &w->nurse, &w->ch, 1, rejoined);
    assert_int_equal(csend(&db, &w->doc, &w->d1, &w->ch, 3, false, "m3", three + 1, 2, three, 3),
                     0);
    expect_conv(&db, &w->ch, true, 3, now_ms);
    expect_index(&db, &w->doc, &w->ch, 1, created);
    expect_index(&db, &w->nurse, &w->ch, 1, rejoined);
    /* Fixed: a leave removes the entry at the joining. */
    leave_and_close(&db, w, created);
}

/* Where a member's activity is: the conversation's last message when that
 * came after the member's activation, else the member's own time. The end
 * of a conversation record in its three layouts: older servers' records
 * (with and without the last message) decode with the index not fixed; this
 * version's round-trip; damage is refused. */
static void test_msgrec_conv_activity_time(void **state) {
    struct rec_conv *c = calloc(1, sizeof *c), *d = calloc(1, sizeof *d);
    c->kind = REC_CARE_TEAM;
    c->last_seq = 3;
    c->n_members = 2;
    c->members[0].b[0] = 1;
    c->members[1].b[0] = 2;
    const size_t base = 1 + 4 + 8 + 8 + 1 + ID_LEN + 4 + 2 * ID_LEN;
    struct buf b;
    buf_init(&b);
    rec_conv_encode(c, &b);
    /* This version: always the last message (here none) and the flags. */
    assert_int_equal(b.len, base + 17);
    assert_int_equal(b.data[b.len - 1], 0);
    assert_int_equal(rec_conv_decode(b.data, b.len, d), 0);
    assert_true(d->active_seq == 0 && d->active_at == 0 && !d->index_fixed);
    /* The oldest layout: nothing after the members. */
    assert_int_equal(rec_conv_decode(b.data, base, d), 0);
    assert_true(d->active_seq == 0 && !d->index_fixed && d->n_members == 2);
    struct rec_member m = {.state = REC_ACTIVE, .last_active = 5};
    assert_true(rec_activity_time(d, &m) == 5);

    c->active_seq = 3;
    c->active_at = 9;
    c->index_fixed = true;
    buf_reset(&b);
    rec_conv_encode(c, &b);
    assert_int_equal(b.len, base + 17);
    assert_int_equal(b.data[b.len - 1], 1);
    assert_int_equal(rec_conv_decode(b.data, b.len, d), 0);
    assert_true(d->active_seq == 3 && d->active_at == 9 && d->index_fixed);
    assert_true(rec_activity_time(d, &m) == 9); /* a member since the creation */
    m.joined_seq = 3;
    assert_true(rec_activity_time(d, &m) == 9); /* message 3 came after joining */
    m.joined_seq = 4;
    assert_true(rec_activity_time(d, &m) == 5); /* joined after message 3 */
    /* An older server's record with its last message: not fixed. */
    assert_int_equal(rec_conv_decode(b.data, base + 16, d), 0);
    assert_true(d->active_seq == 3 && d->active_at == 9 && !d->index_fixed);

    assert_int_equal(rec_conv_decode(b.data, base + 8, d), STATUS_CORRUPT);
    b.data[b.len - 1] = 2; /* an unknown flag */
    assert_int_equal(rec_conv_decode(b.data, b.len, d), STATUS_CORRUPT);
    b.data[b.len - 1] = 1;
    buf_append(&b, "", 1); /* a byte too many */
    assert_int_equal(rec_conv_decode(b.data, b.len, d), STATUS_CORRUPT);
    memset(b.data + base, 0, 8); /* active_seq 0 in an older server's layout */
    assert_int_equal(rec_conv_decode(b.data, base + 16, d), STATUS_CORRUPT);
    assert_int_equal(rec_conv_decode(b.data, base + 17, d), 0); /* but not in this one's */
    buf_cleanup(&b);
    free(c);
    free(d);
}

/* ---- membership events ------------------------------------------------------------------ */

#define WATCHED 5

/* The inboxes a membership scenario watches and their last positions. */
struct watch {
    const struct fixture_dev *dev[WATCHED];
    uint64_t last[WATCHED];
};

static void watch_start(struct fixture_db *db, struct watch *w) {
    for (size_t i = 0; i < WATCHED; i++)
        w->last[i] = inbox_last(db, w->dev[i]);
}

/* After the last entry: asserts that the devices marked '1' in `want` (one
 * character per watched device) each got exactly one new inbox entry, the
 * membership item of `who` in `conv` changed by `by` to `change` at the
 * entry's time, that the others got nothing, and that the entry's result
 * lists exactly those (device, position) pairs for live delivery. */
static void expect_membership(struct fixture_db *db, struct watch *w, const char *want,
                              const struct id *conv, const struct fixture_person *who,
                              const struct fixture_person *by, uint32_t change) {
    assert_int_equal(strlen(want), WATCHED);
    uint32_t n;
    const uint8_t *entries;
    struct rec_list_message message;
    assert_int_equal(rec_deliveries_read(fixture_last_result()->data, fixture_last_result()->len,
                                         &n, &entries, &message),
                     0);
    assert_int_equal(message.len, 0); /* only a Send's list carries a message */
    uint32_t wanted = 0;
    for (size_t i = 0; i < WATCHED; i++) {
        uint64_t last = inbox_last(db, w->dev[i]);
        if (want[i] == '0') {
            assert_true(last == w->last[i]);
            continue;
        }
        wanted++;
        assert_true(last == w->last[i] + 1);
        struct buf v;
        buf_init(&v);
        struct rec_item it = inbox_item(db, w->dev[i], last, &v);
        assert_int_equal(it.kind, REC_ITEM_MEMBERSHIP);
        assert_memory_equal(it.conversation_id.b, conv->b, 16);
        assert_memory_equal(it.account_id.b, who->id.b, 16);
        assert_memory_equal(it.by_account.b, by->id.b, 16);
        assert_int_equal(it.change, change);
        assert_true(it.at == now_ms);
        buf_cleanup(&v);
        bool listed = false;
        for (uint32_t j = 0; j < n; j++) {
            struct id dev;
            uint64_t pos;
            rec_delivery_get(entries, j, &dev, &pos, NULL);
            listed = listed || (memcmp(dev.b, w->dev[i]->id.b, 16) == 0 && pos == last);
        }
        assert_true(listed);
        w->last[i] = last;
    }
    assert_int_equal(n, wanted);
}

static void run_membership(struct fixture_db *db) {
    struct fixture_person sysadmin, admin, doc, nurse, pat, family;
    struct fixture_dev ad1, d1, d2, n1, a1, f1, gone;
    fixture_person(&sysadmin, "sysadmin@x.example", 9);
    fixture_person(&admin, "admin@x.example", 1);
    fixture_person(&doc, "doc@x.example", 2);
    fixture_person(&nurse, "nurse@x.example", 3);
    fixture_person(&pat, "pat@x.example", 4);
    fixture_person(&family, "family@x.example", 5);
    fixture_dev_make(&ad1, 1);
    fixture_dev_make(&d1, 2);
    fixture_dev_make(&d2, 3);
    fixture_dev_make(&n1, 4);
    fixture_dev_make(&a1, 5);
    fixture_dev_make(&f1, 6);
    fixture_dev_make(&gone, 7); /* never registered: a stale entry in a proposer's view */
    fixture_bootstrap(db, &sysadmin);
    fixture_join(db, &sysadmin, &admin, 3, &ad1);
    fixture_join(db, &admin, &doc, 2, &d1);
    fixture_add_device(db, &doc, &d2);
    fixture_join(db, &admin, &nurse, 2, &n1);
    fixture_join(db, &doc, &pat, 1, &a1);
    fixture_join(db, &doc, &family, 1, &f1);
    struct id ch = {{0xca, 7}};
    assert_int_equal(create_channel(db, &doc, &pat, &ch, "Membership", NULL, 0), 0);

    struct watch w = {.dev = {&d1, &d2, &a1, &n1, &f1}};
    watch_start(db, &w);
    const struct acct_devs doc_v = {&doc, {&d1, &d2, &gone}, 3}, pat_v = {&pat, {&a1}, 1},
                           nurse_v = {&nurse, {&n1}, 1}, fam_v = {&family, {&f1}, 1};
    const struct acct_devs view[4] = {doc_v, pat_v, nurse_v, fam_v};

    /* Staff added: JOINED for every device of every active member, the new
     * one's included; the listed device that does not exist is skipped. */
    assert_int_equal(member_change(db, OP_ADD, &doc, &ch, &nurse, view, 3), 0);
    expect_membership(db, &w, "11110", &ch, &nurse, &doc, REC_CHANGE_JOINED);
    /* A refused change queues nothing. */
    assert_int_equal(member_change(db, OP_ADD, &doc, &ch, &nurse, view, 3), STATUS_CONFLICT);
    for (size_t i = 0; i < WATCHED; i++)
        assert_true(inbox_last(db, w.dev[i]) == w.last[i]);

    /* A family member added: PENDING for the active members, nothing for the
     * pending member's own device. */
    assert_int_equal(member_change(db, OP_ADD, &nurse, &ch, &family, view, 4), 0);
    expect_membership(db, &w, "11110", &ch, &family, &nurse, REC_CHANGE_PENDING);

    /* Approved by the patient: JOINED, now for the family member too. */
    assert_int_equal(member_change(db, OP_APPROVE, &pat, &ch, &family, view, 4), 0);
    expect_membership(db, &w, "11111", &ch, &family, &pat, REC_CHANGE_JOINED);

    /* Removed: REMOVED for the active members and the removed nurse's device. */
    assert_int_equal(member_change(db, OP_REMOVE, &doc, &ch, &nurse, view, 4), 0);
    expect_membership(db, &w, "11111", &ch, &nurse, &doc, REC_CHANGE_REMOVED);

    /* Leaving: LEFT, by the member itself, for the active members and the
     * leaver's device; the removed nurse, though still in this stale view,
     * hears nothing more. */
    assert_int_equal(member_change(db, OP_LEAVE, &family, &ch, &family, view, 4), 0);
    expect_membership(db, &w, "11101", &ch, &family, &family, REC_CHANGE_LEFT);

    /* An entry without member_devices (written before they existed) still
     * applies and tells nobody. */
    assert_int_equal(member_change(db, OP_ADD, &admin, &ch, &nurse, NULL, 0), 0);
    assert_int_equal(member_of(db, &ch, &nurse).state, REC_ACTIVE);
    expect_membership(db, &w, "00000", &ch, &nurse, &admin, REC_CHANGE_JOINED);
}

static void test_apply_channels_membership_events(void **state) {
    fixture_log_reset();
    now_ms = T0 + 1000;
    struct fixture_db db;
    fixture_open(&db, "apply-member");
    run_membership(&db);
    fixture_close(&db);
    fixture_log_cleanup();
}

static void test_apply_channels_membership_replay_is_deterministic(void **state) {
    assert_replay_identical(run_membership);
}

/* A membership item survives encoding; an item written before that kind
 * existed (its layout ends at `at`) still decodes; a membership item cut
 * before its own fields and another kind with trailing bytes do not. */
/* A delivery list carries each inbox item whole, and a Send's message
 * record, so that live delivery needs no read of either. */
static void test_msgrec_delivery_list_round_trip(void **state) {
    struct rec_item a = {
        .kind = REC_ITEM_MEMBERSHIP,
        .conversation_id = {{1, 2, 3}},
        .seq = 0x0102030405060708ull,
        .message_id = {{4}},
        .account_id = {{5}},
        .receipt_kind = 2,
        .at = -7,
        .by_account = {{6}},
        .change = REC_CHANGE_REMOVED,
    };
    struct rec_item b = {.kind = REC_ITEM_MESSAGE, .conversation_id = {{9}}, .seq = 3};
    struct id d1 = {{0xd1}}, d2 = {{0xd2}}, dev;
    struct buf list, out;
    buf_init(&list);
    buf_init(&out);
    buf_append(&out, "sent", 4); /* what precedes the list in a result */
    rec_delivery_add(&list, &d1, 10, &a);
    rec_delivery_add(&list, &d2, 11, &b);
    rec_deliveries_finish(&list, NULL, &out);
    uint32_t n;
    const uint8_t *entries;
    struct rec_list_message m;
    assert_int_equal(rec_deliveries_read(out.data + 4, out.len - 4, &n, &entries, &m), 0);
    assert_int_equal(n, 2);
    assert_int_equal(m.len, 0);
    uint64_t pos;
    struct rec_item got;
    rec_delivery_get(entries, 0, &dev, &pos, &got);
    assert_true(id_equal(&dev, &d1) && pos == 10);
    assert_int_equal(got.kind, a.kind);
    assert_true(id_equal(&got.conversation_id, &a.conversation_id) && got.seq == a.seq);
    assert_true(id_equal(&got.message_id, &a.message_id));
    assert_true(id_equal(&got.account_id, &a.account_id));
    assert_true(got.receipt_kind == a.receipt_kind && got.at == a.at && got.change == a.change);
    assert_true(id_equal(&got.by_account, &a.by_account));
    rec_delivery_get(entries, 1, &dev, &pos, &got);
    assert_true(id_equal(&dev, &d2) && pos == 11 && got.kind == REC_ITEM_MESSAGE && got.seq == 3);
    /* A count the bytes cannot hold is refused. */
    assert_int_equal(rec_deliveries_read(out.data + 4, out.len - 5, &n, &entries, &m),
                     STATUS_CORRUPT);
    /* With a message record: the same entries, then the record whole. */
    struct rec_list_message stored = {
        .conv = {{9}}, .seq = 3, .data = (const uint8_t *)"record", .len = 6};
    buf_reset(&out);
    rec_deliveries_finish(&list, &stored, &out);
    assert_int_equal(rec_deliveries_read(out.data, out.len, &n, &entries, &m), 0);
    assert_int_equal(n, 2);
    rec_delivery_get(entries, 1, &dev, &pos, &got);
    assert_true(id_equal(&dev, &d2) && pos == 11 && got.seq == 3);
    assert_true(id_equal(&m.conv, &stored.conv) && m.seq == 3);
    assert_int_equal(m.len, 6);
    assert_memory_equal(m.data, "record", 6);
    /* A record the bytes cannot hold is refused. */
    assert_int_equal(rec_deliveries_read(out.data, out.len - 1, &n, &entries, &m), STATUS_CORRUPT);
    buf_cleanup(&list);
    buf_cleanup(&out);
}

static void test_msgrec_membership_item_round_trip(void **state) {
    struct rec_item in = {
        .kind = REC_ITEM_MEMBERSHIP,
        .conversation_id = {{0xca, 1}},
        .account_id = {{0xa0, 3}},
        .by_account = {{0xa0, 2}},
        .change = REC_CHANGE_REMOVED,
        .at = T0 + 5,
    };
    struct buf v;
    buf_init(&v);
    rec_item_encode(&in, &v);
    struct rec_item out;
    assert_int_equal(rec_item_decode(v.data, v.len, &out), 0);
    assert_int_equal(out.kind, REC_ITEM_MEMBERSHIP);
    assert_memory_equal(out.conversation_id.b, in.conversation_id.b, 16);
    assert_memory_equal(out.account_id.b, in.account_id.b, 16);
    assert_memory_equal(out.by_account.b, in.by_account.b, 16);
    assert_int_equal(out.change, REC_CHANGE_REMOVED);
    assert_true(out.at == T0 + 5);
    /* Without by_account and change: corrupt. */
    assert_int_equal(rec_item_decode(v.data, v.len - 20, &out), STATUS_CORRUPT);
    assert_int_equal(rec_item_decode(v.data, v.len - 1, &out), STATUS_CORRUPT);

    /* A recall item laid out by hand as the format always was: format byte,
     * kind, conversation, seq, message, account, receipt kind, at
     * (big-endian). */
    uint8_t old[1 + 4 + 16 + 8 + 16 + 16 + 4 + 8];
    memset(old, 0, sizeof old);
    uint8_t *p = old;
    *p++ = REC_CONV_FORMAT;
    key_put_u32(p, REC_ITEM_RECALL);
    p += 4;
    memset(p, 0xca, 16);
    p += 16;
    key_put_u64(p, 42);
    p += 8;
    memset(p, 0xe0, 16);
    p += 16 + 16 + 4;
    key_put_u64(p, (uint64_t)(T0 + 9));
    assert_int_equal(rec_item_decode(old, sizeof old, &out), 0);
    assert_int_equal(out.kind, REC_ITEM_RECALL);
    assert_int_equal(out.seq, 42);
    assert_int_equal(out.message_id.b[15], 0xe0);
    assert_true(out.at == T0 + 9);
    assert_int_equal(out.change, 0);
    /* The encoder still writes exactly that layout for the older kinds. */
    buf_reset(&v);
    rec_item_encode(&out, &v);
    assert_int_equal(v.len, sizeof old);
    assert_memory_equal(v.data, old, sizeof old);
    /* Another kind followed by a membership item's fields: corrupt. */
    uint8_t longer[sizeof old + 20];
    memcpy(longer, old, sizeof old);
    memset(longer + sizeof old, 0, 20);
    assert_int_equal(rec_item_decode(longer, sizeof longer, &out), STATUS_CORRUPT);
    buf_cleanup(&v);
}

/* ---- AccountDeactivate ------------------------------------------------------------------- */

static int deactivate(struct fixture_db *db, const struct fixture_person *actor,
                      const struct fixture_person *target) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AccountDeactivate d;
    entry_start(&e, actor, NULL);
    carechat__entry__v1__account_deactivate__init(&d);
    d.account_id = fixture_bin(target->id.b, 16);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_ACCOUNT_DEACTIVATE;
    e.account_deactivate = &d;
    return fixture_propose(db, &e);
}

static struct rec_account account_of(struct fixture_db *db, const struct fixture_person *p) {
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(db->store, CF_ACCOUNTS, p->id.b, ID_LEN, &v), 0);
    struct rec_account a;
    assert_int_equal(rec_account_decode(v.data, v.len, &a), 0);
    buf_cleanup(&v);
    return a;
}

/* Who may deactivate whom (a provider only their own patients: invited by
 * them or sharing a channel), what it stores, that a deactivated account is
 * no recipient of its channels any more, and that a deactivated actor's later
 * entries are refused while its audit records are still written. */
static void test_apply_deactivate_rules_and_effect(void **state) {
    (void)state;
    fixture_log_reset();
    now_ms = T0 + 1000;
    struct fixture_db db;
    fixture_open(&db, "apply-deact");
    struct fixture_person sys, admin, doc, nurse, pat, pat2, pat3, other;
    struct fixture_dev d[8];
    fixture_person(&sys, "sys@x.example", 9);
    fixture_person(&admin, "admin@x.example", 1);
    fixture_person(&doc, "doc@x.example", 2);
    fixture_person(&nurse, "nurse@x.example", 3);
    fixture_person(&pat, "pat@x.example", 4);
    fixture_person(&pat2, "pat2@x.example", 5);
    fixture_person(&pat3, "pat3@x.example", 6);
    fixture_person(&other, "other@x.example", 7);
    for (int i = 0; i < 8; i++)
        fixture_dev_make(&d[i], i + 1);
    fixture_bootstrap(&db, &sys);
    fixture_join(&db, &sys, &admin, REC_ROLE_ADMIN, &d[0]);
    fixture_join(&db, &admin, &doc, REC_ROLE_PROVIDER, &d[1]);
    fixture_join(&db, &admin, &nurse, REC_ROLE_PROVIDER, &d[2]);
    fixture_join(&db, &doc, &pat, REC_ROLE_PATIENT, &d[3]);
    fixture_join(&db, &doc, &pat2, REC_ROLE_PATIENT, &d[4]);
    fixture_join(&db, &doc, &pat3, REC_ROLE_PATIENT, &d[5]);
    fixture_join(&db, &admin, &other, REC_ROLE_PROVIDER, &d[6]);
    struct id ch = {{0xca, 9}};
    const struct fixture_person *with_nurse[1] = {&nurse};
    assert_int_equal(create_channel(&db, &doc, &pat2, &ch, "Team", with_nurse, 1), 0);

    /* A patient deactivates nobody; nobody deactivates themselves; unknown. */
    assert_int_equal(deactivate(&db, &pat, &pat3), STATUS_FORBIDDEN);
    assert_int_equal(deactivate(&db, &doc, &doc), STATUS_BAD_REQUEST);
    struct fixture_person ghost;
    fixture_person(&ghost, "ghost@x.example", 8);
    assert_int_equal(deactivate(&db, &admin, &ghost), STATUS_NOT_FOUND);
    /* A provider: not someone else's patient, not staff; their own (invited, or
     * sharing a channel) yes. */
    assert_int_equal(deactivate(&db, &nurse, &pat), STATUS_FORBIDDEN);
    assert_int_equal(deactivate(&db, &doc, &nurse), STATUS_FORBIDDEN);
    /* pat2's device is a recipient of the channel; once pat2 is deactivated
     * the channel is kept read-only for review, whatever the device set. */
    const struct fixture_dev *to_nurse[1] = {&d[2]}, *view[2] = {&d[1], &d[2]};
    const struct fixture_dev *to_both[2] = {&d[2], &d[4]}, *view_all[3] = {&d[1], &d[2], &d[4]};
    assert_int_equal(csend(&db, &doc, &d[1], &ch, 1, false, "m1", to_nurse, 1, view, 2),
                     STATUS_CONFLICT);
    assert_int_equal(csend(&db, &doc, &d[1], &ch, 2, false, "m2", to_both, 2, view_all, 3), 0);
    assert_int_equal(deactivate(&db, &nurse, &pat2), 0);
    assert_int_equal(csend(&db, &doc, &d[1], &ch, 3, false, "m3", to_both, 2, view_all, 3),
                     STATUS_FORBIDDEN);
    assert_int_equal(csend(&db, &doc, &d[1], &ch, 4, false, "m4", to_nurse, 1, view, 2),
                     STATUS_FORBIDDEN);
    uint64_t before = fixture_last_audit(&db).index;
    assert_int_equal(deactivate(&db, &doc, &pat), 0);
    /* Its audit record, in the same batch: actor, object and patient. */
    struct rec_audit rec = fixture_last_audit(&db);
    assert_true(rec.index == before + 1);
    assert_int_equal(rec.action, REC_AUDIT_ACCOUNT_DEACTIVATE);
    assert_int_equal(rec.outcome, 0);
    assert_memory_equal(rec.actor.b, doc.id.b, ID_LEN);
    assert_int_equal(rec.object_len, ID_LEN);
    assert_memory_equal(rec.object, pat.id.b, ID_LEN);
    assert_memory_equal(rec.patient.b, pat.id.b, ID_LEN);
    assert_int_equal(deactivate(&db, &doc, &pat), STATUS_CONFLICT);
    assert_true(fixture_last_audit(&db).index == before + 1); /* a refusal writes nothing here */
    /* An admin: patients and providers, not the sysadmin; the sysadmin anyone. */
    assert_int_equal(deactivate(&db, &admin, &sys), STATUS_FORBIDDEN);
    assert_int_equal(deactivate(&db, &admin, &other), 0);
    assert_int_equal(deactivate(&db, &sys, &admin), 0);

    struct rec_account a = account_of(&db, &pat);
    assert_false(a.active);
    assert_true(a.deactivated_at > T0);
    rec_account_cleanup(&a);
    a = account_of(&db, &pat3);
    assert_true(a.active);
    assert_true(a.deactivated_at == 0);
    rec_account_cleanup(&a);

    /* The deactivated admin's next entries are refused; an audit record about
     * it is still written. */
    assert_int_equal(deactivate(&db, &admin, &pat3), STATUS_UNAUTHENTICATED);
    a = account_of(&db, &pat3);
    assert_true(a.active);
    rec_account_cleanup(&a);
    before = fixture_last_audit(&db).index;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AuditAppend au;
    entry_start(&e, &admin, &d[0]);
    carechat__entry__v1__audit_append__init(&au);
    au.action = REC_AUDIT_LOOKUP;
    au.outcome = 7;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_AUDIT_APPEND;
    e.audit_append = &au;
    assert_int_equal(fixture_propose(&db, &e), 0);
    assert_true(fixture_last_audit(&db).index == before + 1);
    fixture_close(&db);
    fixture_log_cleanup();
}

/* ---- the retention lifecycle ----------------------------------------------------------- */

static int lifecycle_entry(struct fixture_db *db, const struct fixture_person *actor, int64_t time,
                           Carechat__Entry__V1__Entry__KindCase kind, void *body) {
    Carechat__Entry__V1__Entry e;
    if (actor)
        entry_start(&e, actor, NULL);
    else
        carechat__entry__v1__entry__init(&e);
    e.time = time;
    e.kind_case = kind;
    switch (kind) {
    case CARECHAT__ENTRY__V1__ENTRY__KIND_ACCOUNT_REACTIVATE:
        e.account_reactivate = body;
        break;
    case CARECHAT__ENTRY__V1__ENTRY__KIND_LEGAL_HOLD_SET:
        e.legal_hold_set = body;
        break;
    default:
        e.retention_advance = body;
    }
    return fixture_propose(db, &e);
}

static int reactivate_at(struct fixture_db *db, const struct fixture_person *actor,
                         const struct fixture_person *target, int64_t time) {
    Carechat__Entry__V1__AccountReactivate m;
    carechat__entry__v1__account_reactivate__init(&m);
    m.account_id = fixture_bin(target->id.b, 16);
    return lifecycle_entry(db, actor, time, CARECHAT__ENTRY__V1__ENTRY__KIND_ACCOUNT_REACTIVATE,
                           &m);
}

static int hold_at(struct fixture_db *db, const struct fixture_person *actor,
                   const struct fixture_person *target, bool hold, int64_t time) {
    Carechat__Entry__V1__LegalHoldSet m;
    carechat__entry__v1__legal_hold_set__init(&m);
    m.account_id = fixture_bin(target->id.b, 16);
    m.hold = hold;
    m.reason = hold ? "court order 12" : "";
    return lifecycle_entry(db, actor, time, CARECHAT__ENTRY__V1__ENTRY__KIND_LEGAL_HOLD_SET, &m);
}

static int advance_at(struct fixture_db *db, const struct fixture_person *target, int64_t time) {
    Carechat__Entry__V1__RetentionAdvance m;
    uint8_t index[32];
    carechat__entry__v1__retention_advance__init(&m);
    m.account_id = fixture_bin(target->id.b, 16);
    store_blind_index(db->store, target->email, strlen(target->email), index);
    m.email_index = fixture_bin(index, sizeof index);
    return lifecycle_entry(db, NULL, time, CARECHAT__ENTRY__V1__ENTRY__KIND_RETENTION_ADVANCE, &m);
}

/* The state of `p`'s lifecycle record, or 0 without one. */
static uint32_t lifecycle_state(struct fixture_db *db, const struct fixture_person *p,
                                struct rec_lifecycle *out) {
    uint8_t k[1 + ID_LEN];
    rec_lifecycle_key(&p->id, k);
    struct buf v;
    buf_init(&v);
    struct rec_lifecycle l = {0};
    if (store_get(db->store, CF_ACCOUNTS, k, sizeof k, &v) == 0)
        assert_int_equal(rec_lifecycle_decode(v.data, v.len, &l), 0);
    buf_cleanup(&v);
    if (out)
        *out = l;
    return l.state;
}

/* Who may reactivate, hold and release at which stage; the clock moves one
 * step at a time by the entry's time, never under a hold; the purge deletes
 * the account record and its email index entry and names the account; every
 * step is audited. */
static void test_apply_lifecycle_transitions(void **state) {
    (void)state;
    fixture_log_reset();
    now_ms = T0 + 1000;
    struct fixture_db db;
    fixture_open(&db, "apply-lifecycle");
    struct fixture_person sys, admin, doc, pat;
    struct fixture_dev d[4];
    fixture_person(&sys, "sys@x.example", 9);
    fixture_person(&admin, "admin@x.example", 1);
    fixture_person(&doc, "doc@x.example", 2);
    fixture_person(&pat, "pat@x.example", 3);
    for (int i = 0; i < 4; i++)
        fixture_dev_make(&d[i], i + 1);
    fixture_bootstrap(&db, &sys);
    fixture_join(&db, &sys, &admin, REC_ROLE_ADMIN, &d[0]);
    fixture_join(&db, &admin, &doc, REC_ROLE_PROVIDER, &d[1]);
    fixture_join(&db, &doc, &pat, REC_ROLE_PATIENT, &d[2]);

    /* Active: nothing to reactivate or advance. */
    assert_int_equal(reactivate_at(&db, &admin, &pat, now_ms + 1), STATUS_CONFLICT);
    assert_int_equal(advance_at(&db, &pat, now_ms + 1), STATUS_NOT_FOUND);
    /* REVIEW; a provider may not reactivate, an admin may. */
    assert_int_equal(deactivate(&db, &doc, &pat), 0);
    struct rec_lifecycle l;
    assert_int_equal(lifecycle_state(&db, &pat, &l), REC_LC_REVIEW);
    int64_t t = l.deactivated_at;
    assert_int_equal(reactivate_at(&db, &doc, &pat, t + DAY), STATUS_FORBIDDEN);
    assert_int_equal(reactivate_at(&db, &admin, &pat, t + DAY), 0);
    assert_int_equal(lifecycle_state(&db, &pat, NULL), 0);
    struct rec_account a = account_of(&db, &pat);
    assert_true(a.active);
    rec_account_cleanup(&a);
    assert_int_equal(fixture_last_audit(&db).action, REC_AUDIT_ACCOUNT_REACTIVATE);

    /* Again; the clock: nothing before the deadline, one step at it. */
    now_ms = t + 2 * DAY;
    assert_int_equal(deactivate(&db, &doc, &pat), 0);
    assert_int_equal(lifecycle_state(&db, &pat, &l), REC_LC_REVIEW);
    assert_int_equal(advance_at(&db, &pat, l.restricted_at - 1), STATUS_CONFLICT);
    assert_int_equal(advance_at(&db, &pat, l.purge_at + DAY), 0); /* one step only */
    assert_int_equal(lifecycle_state(&db, &pat, NULL), REC_LC_RESTRICTED);
    struct rec_audit rec = fixture_last_audit(&db);
    assert_int_equal(rec.action, REC_AUDIT_ACCOUNT_RESTRICT);
    assert_memory_equal(rec.object, pat.id.b, ID_LEN);
    /* RESTRICTED: only a sysadmin reactivates or holds. */
    assert_int_equal(reactivate_at(&db, &admin, &pat, l.restricted_at + DAY), STATUS_FORBIDDEN);
    assert_int_equal(hold_at(&db, &admin, &pat, true, l.restricted_at + DAY), STATUS_FORBIDDEN);
    assert_int_equal(hold_at(&db, &sys, &pat, true, l.restricted_at + DAY), 0);
    assert_int_equal(hold_at(&db, &sys, &pat, true, l.restricted_at + DAY), STATUS_CONFLICT);
    a = account_of(&db, &pat);
    assert_string_equal(a.hold_reason, "court order 12");
    rec_account_cleanup(&a);
    /* Held: the purge never comes; released 100 days later, it moves on. */
    assert_int_equal(advance_at(&db, &pat, l.purge_at + 50 * DAY), STATUS_CONFLICT);
    assert_int_equal(hold_at(&db, &sys, &pat, false, l.restricted_at + 101 * DAY), 0);
    assert_int_equal(fixture_last_audit(&db).action, REC_AUDIT_LEGAL_HOLD_RELEASE);
    assert_int_equal(advance_at(&db, &pat, l.purge_at + 99 * DAY), STATUS_CONFLICT);
    assert_int_equal(advance_at(&db, &pat, l.purge_at + 100 * DAY), 0);
    assert_int_equal(lifecycle_state(&db, &pat, NULL), REC_LC_PURGED);
    const struct buf *result = fixture_last_result();
    assert_int_equal(result->len, ID_LEN);
    assert_memory_equal(result->data, pat.id.b, ID_LEN);
    assert_int_equal(fixture_last_audit(&db).action, REC_AUDIT_ACCOUNT_PURGE);
    /* The account record and its email index entry are gone. */
    struct buf v;
    buf_init(&v);
    uint8_t index[32];
    store_blind_index(db.store, pat.email, strlen(pat.email), index);
    assert_int_equal(store_get(db.store, CF_ACCOUNTS, pat.id.b, ID_LEN, &v), STATUS_NOT_FOUND);
    assert_int_equal(store_get(db.store, CF_EMAIL_INDEX, index, sizeof index, &v),
                     STATUS_NOT_FOUND);
    buf_cleanup(&v);
    /* PURGED: final. */
    assert_int_equal(reactivate_at(&db, &sys, &pat, l.purge_at + 200 * DAY), STATUS_CONFLICT);
    assert_int_equal(hold_at(&db, &sys, &pat, true, l.purge_at + 200 * DAY), STATUS_CONFLICT);
    assert_int_equal(advance_at(&db, &pat, l.purge_at + 200 * DAY), STATUS_CONFLICT);
    fixture_close(&db);
    fixture_log_cleanup();
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_channels_scenario),
        cmocka_unit_test(test_apply_channels_replay_is_deterministic),
        cmocka_unit_test(test_apply_channels_conversation_index),
        cmocka_unit_test(test_apply_channels_conversation_index_migration),
        cmocka_unit_test(test_msgrec_conv_activity_time),
        cmocka_unit_test(test_apply_channels_membership_events),
        cmocka_unit_test(test_apply_channels_membership_replay_is_deterministic),
        cmocka_unit_test(test_msgrec_membership_item_round_trip),
        cmocka_unit_test(test_msgrec_delivery_list_round_trip),
        cmocka_unit_test(test_apply_deactivate_rules_and_effect),
        cmocka_unit_test(test_apply_lifecycle_transitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
