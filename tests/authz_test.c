/*
 * tests/authz_test.c: the authorization matrix (issue 4) walked over the real
 * carechatd: every role (patient, provider, admin, sysadmin, a deactivated
 * account, an expired session) against every client operation of carechat.v1
 * up to UnlockLogin, 34 operations x 6 rows = 204 cases, each answered
 * as the table below says; and each denial leaves exactly one audit record
 * (the operation's action, the denial status, the caller as actor or none on
 * an unauthenticated connection; a refused Login names the account tried),
 * each allowed case none with a denial status.
 *
 * The table is written from the specification (the issue and PROTOCOL.md),
 * not from the server's code. The world, made once: S the bootstrap
 * sysadmin, A an admin, V and V2 providers, P a patient of V, D a patient of
 * V who logs in once and is then deactivated by V, E a provider whose session
 * expires, Q a patient of V2 (a patient P may not see), F a patient of V used
 * as a pending family member, and AUD an admin who only reads the audit log.
 * C is V's care-team channel about P (members V and P) and M an urgent
 * message of V in C. Every actor has one device (raw keys).
 *
 * Each case builds what it needs first (a fresh channel, message, device,
 * patient ...), then opens a raw connection, authenticates as the row's
 * actor, sends the one request and reads its Response. The expired row runs
 * last, after a restart on the same data with --clock-offset two hours ahead.
 *
 * One server (127.0.0.1, fresh data directory) for the whole group; every
 * wait has a deadline (tests/rawclient.h, tests/harness.h). Single-threaded.
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

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "protocol/transcript.h"
#include "storage/keys.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"
#include "tests/wsclient.h"

#define PASSWORD "correct horse battery staple"
/* How far the restart for the expired row moves the server's clock: well past
 * the default idle expiry (15 min), within the absolute one (12 h). */
#define EXPIRE_OFFSET_MS "7200000"
/* How long a denial's audit record may take to become visible. */
#define AUDIT_WAIT_MS 3000
/* Records one case may append (setup included). */
#define MAX_CASE_RECORDS 256

/* ---- rows and actors ------------------------------------------------------------------- */

enum row { PAT, PRO, ADM, SYS, DEA, EXP, N_ROWS };

static const char *const row_names[N_ROWS] = {"PAT", "PRO", "ADM", "SYS", "DEA", "EXP"};

/* An account as the test holds it: its user (id, email, devices), password,
 * current session token and the version of its last published device list. */
struct actor {
    struct rawc_user u;
    const char *password;
    uint8_t token[32];
    uint64_t list_version;
};

static struct harness *g_h;
static struct actor g_s, g_a, g_v, g_v2, g_p, g_d, g_e, g_q, g_f, g_aud;
static struct actor *const row_actor[N_ROWS] = {&g_p, &g_v, &g_a, &g_s, &g_d, &g_e};
static uint8_t g_conv_c[16], g_msg_m[16];
static struct rawc *g_d_conn; /* D's connection, open when V deactivates D */
static struct rawc *g_audit;  /* AUD's connection */
static uint64_t g_last_index; /* the highest audit index seen */
static int64_t g_last_time;   /* its time (server clock) */
static int g_fresh;           /* numbers fresh emails and names */

/* Logs `a` in on a new connection with its first device (registered already)
 * and keeps the new token; returns the connection. */
static struct rawc *login_actor(struct actor *a) {
    struct rawc *c = rawc_open(g_h);
    rawc_login_ok(c, a->u.email, a->password, &a->u.dev[0], NULL, a->token);
    return c;
}

/* A new connection authenticated as `a` with its stored token. */
static struct rawc *as(struct actor *a) {
    struct rawc *c = rawc_open(g_h);
    Carechat__V1__Frame *r = rawc_authenticate(c, a->token, a->u.dev[0].id);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    return c;
}

/* `inviter` invites a new account of `role`, which registers and logs in
 * once (token kept). */
static void make_actor(struct actor *inviter, Carechat__V1__Role role, struct actor *out) {
    struct rawc *c = as(inviter);
    rawc_make_user(g_h, c, role, PASSWORD, &out->u);
    rawc_free(c);
    out->password = PASSWORD;
    rawc_free(login_actor(out));
}

/* ---- requests the setup makes ------------------------------------------------------------ */

static void frame_init(Carechat__V1__Frame *f, Carechat__V1__Frame__BodyCase body) {
    carechat__v1__frame__init(f);
    f->body_case = body;
}

/* V creates a care-team channel about P with `extra` (NULL: none) as a
 * further member; its id goes to conv[16]. */
static void v_creates_channel(const uint8_t *extra, uint8_t conv[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__CreateChannel cc;
    ProtobufCBinaryData members[1] = {{16, (uint8_t *)extra}};
    char name[32];
    snprintf(name, sizeof name, "care team %d", ++g_fresh);
    frame_init(&f, CARECHAT__V1__FRAME__BODY_CREATE_CHANNEL);
    carechat__v1__create_channel__init(&cc);
    cc.patient_account_id = (ProtobufCBinaryData){16, g_p.u.account};
    cc.name = name;
    if (extra) {
        cc.n_member_account_ids = 1;
        cc.member_account_ids = members;
    }
    f.create_channel = &cc;
    struct rawc *c = as(&g_v);
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_CONVERSATION);
    memcpy(conv, r->response->conversation->conversation_id.data, 16);
    proto_free(r);
    rawc_free(c);
}

/* V adds F to `conv`; F is not staff, so F is pending. */
static void v_adds_pending_f(const uint8_t conv[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__AddMember am;
    frame_init(&f, CARECHAT__V1__FRAME__BODY_ADD_MEMBER);
    carechat__v1__add_member__init(&am);
    am.conversation_id = (ProtobufCBinaryData){16, (uint8_t *)conv};
    am.account_id = (ProtobufCBinaryData){16, g_f.u.account};
    f.add_member = &am;
    struct rawc *c = as(&g_v);
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    rawc_free(c);
}

/* Wraps for every current device of the members of C (V and P). */
static size_t wraps_for_c(struct rawc_wrap_to *to) {
    size_t n = 0;
    const struct actor *members[2] = {&g_v, &g_p};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < members[m]->u.n_dev; i++)
            to[n++] = (struct rawc_wrap_to){members[m]->u.dev[i].id, members[m]->u.dev[i].key_id};
    return n;
}

/* V sends a message into C; its id goes to mid[16]. */
static void v_sends_in_c(bool urgent, uint8_t mid[16]) {
    struct rawc_wrap_to to[2 * RAWC_MAX_DEVICES];
    size_t n = wraps_for_c(to);
    uint8_t cmid[16];
    randombytes_buf(cmid, sizeof cmid);
    struct rawc *c = as(&g_v);
    Carechat__V1__Frame *r =
        rawc_send_msg(c, g_conv_c, cmid, g_v.u.dev[0].id, to, n, "dummy ciphertext", urgent);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_SEND);
    memcpy(mid, r->response->send->message_id.data, 16);
    proto_free(r);
    rawc_free(c);
}

/* `inviter` invites a fresh patient, who registers; its id goes to account[16]. */
static void fresh_patient(struct actor *inviter, uint8_t account[16]) {
    struct rawc_user u;
    struct rawc *c = as(inviter);
    rawc_make_user(g_h, c, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &u);
    rawc_free(c);
    memcpy(account, u.account, 16);
}

/* The cursor of the last entry of a's inbox (Sync to QueueEmpty), or the
 * cursor of position 0 when the inbox never held anything. */
static size_t last_cursor(struct actor *a, uint8_t cursor[10]) {
    Carechat__V1__Frame f;
    Carechat__V1__Sync s;
    frame_init(&f, CARECHAT__V1__FRAME__BODY_SYNC);
    carechat__v1__sync__init(&s);
    f.sync = &s;
    struct rawc *c = as(a);
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    size_t len = 0;
    for (int i = 0; i < 1000; i++) {
        Carechat__V1__Frame *q = rawc_next_request(c, RAWC_TIMEOUT_MS);
        assert_non_null(q);
        if (q->body_case == CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY) {
            len = q->queue_empty->cursor.len;
            assert_true(len <= 10);
            memcpy(cursor, q->queue_empty->cursor.data, len);
            proto_free(q);
            break;
        }
        proto_free(q);
    }
    rawc_free(c);
    if (len == 0) {
        cursor[0] = 0;
        len = 1;
    }
    return len;
}

/* ---- one case: the request and what it needs ----------------------------------------------- */

/* A case in progress: the row, its actor, whether the request reaches a
 * handler at all (false for the deactivated and expired rows, whose
 * connection stays unauthenticated: their requests use the world's objects
 * and create nothing), and the storage the request's frame points into. */
struct cctx {
    enum row row;
    struct actor *me;
    bool live;
    Carechat__V1__Frame f;
    uint8_t id1[16], id2[16];
    uint8_t cursor[10];
    char text[64];
    ProtobufCBinaryData ids[1];
    struct raw_device dev; /* rotate: the new keys */
    uint8_t sig[64];
    Carechat__V1__DeviceList list;
    Carechat__V1__DeviceListEntry entry, *entries[1];
    Carechat__V1__DeviceKeys keys;
    struct rawc_send_buf send;
    union {
        Carechat__V1__Logout logout;
        Carechat__V1__Invite invite;
        Carechat__V1__PublishDeviceList publish;
        Carechat__V1__ListDevices list_devices;
        Carechat__V1__RemoveDevice remove_device;
        Carechat__V1__RotateEncryptionKey rotate;
        Carechat__V1__LookupAccount lookup;
        Carechat__V1__CreateDirect create_direct;
        Carechat__V1__ListConversations list_conversations;
        Carechat__V1__GetConversation get_conversation;
        Carechat__V1__History history;
        Carechat__V1__CreateChannel create_channel;
        Carechat__V1__AddMember add_member;
        Carechat__V1__RemoveMember remove_member;
        Carechat__V1__ApproveMember approve_member;
        Carechat__V1__LeaveConversation leave;
        Carechat__V1__ListMembers list_members;
        Carechat__V1__Ack ack;
        Carechat__V1__Sync sync;
        Carechat__V1__SendReceipt receipt;
        Carechat__V1__Typing typing;
        Carechat__V1__Recall recall;
        Carechat__V1__AckUrgent ack_urgent;
        Carechat__V1__GetUrgentStatus urgent_status;
        Carechat__V1__QueryAudit query_audit;
        Carechat__V1__VerifyAudit verify_audit;
        Carechat__V1__DeactivateAccount deactivate;
        Carechat__V1__GetRetentionState retention;
        Carechat__V1__UnlockLogin unlock;
        Carechat__V1__Login login;
    } m;
};

static ProtobufCBinaryData bin16(const uint8_t *id) {
    return (ProtobufCBinaryData){16, (uint8_t *)id};
}

static void build_logout(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_LOGOUT);
    carechat__v1__logout__init(&c->m.logout);
    c->f.logout = &c->m.logout;
}

static void build_invite(struct cctx *c) {
    snprintf(c->text, sizeof c->text, "invitee%d@home.example", ++g_fresh);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_INVITE);
    carechat__v1__invite__init(&c->m.invite);
    c->m.invite.email = c->text;
    c->m.invite.role = CARECHAT__V1__ROLE__PATIENT;
    c->f.invite = &c->m.invite;
}

/* The next version of the actor's device list: its one device, signed by it
 * (the layout of carechat.proto's DeviceList). */
static void build_publish_device_list(struct cctx *c) {
    struct raw_device *d = &c->me->u.dev[0];
    uint64_t version = c->me->list_version + 1;
    uint8_t msg[23 + 16 + 8 + 4 + 48];
    memcpy(msg, "carechat.v1 device list", 23);
    memcpy(msg + 23, c->me->u.account, 16);
    key_put_u64(msg + 39, version);
    key_put_u32(msg + 47, 1);
    memcpy(msg + 51, d->id, 16);
    memcpy(msg + 67, d->ipk, 32);
    crypto_sign_detached(c->sig, NULL, msg, sizeof msg, d->isk);
    carechat__v1__device_list_entry__init(&c->entry);
    c->entry.device_id = bin16(d->id);
    c->entry.identity_key = (ProtobufCBinaryData){32, d->ipk};
    c->entries[0] = &c->entry;
    carechat__v1__device_list__init(&c->list);
    c->list.account_id = bin16(c->me->u.account);
    c->list.version = version;
    c->list.n_devices = 1;
    c->list.devices = c->entries;
    c->list.signer_device_id = bin16(d->id);
    c->list.signature = (ProtobufCBinaryData){64, c->sig};
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_PUBLISH_DEVICE_LIST);
    carechat__v1__publish_device_list__init(&c->m.publish);
    c->m.publish.list = &c->list;
    c->f.publish_device_list = &c->m.publish;
}

static void build_list_devices(struct cctx *c) {
    c->ids[0] = bin16(g_v.u.account);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_LIST_DEVICES);
    carechat__v1__list_devices__init(&c->m.list_devices);
    c->m.list_devices.n_account_ids = 1;
    c->m.list_devices.account_ids = c->ids;
    c->f.list_devices = &c->m.list_devices;
}

/* A second device of the actor's own account, added for the case. */
static void build_remove_device(struct cctx *c) {
    if (c->live) {
        rawc_add_device(g_h, &c->me->u, c->me->password);
        memcpy(c->id1, c->me->u.dev[c->me->u.n_dev - 1].id, 16);
    } else {
        randombytes_buf(c->id1, 16);
    }
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_REMOVE_DEVICE);
    carechat__v1__remove_device__init(&c->m.remove_device);
    c->m.remove_device.device_id = bin16(c->id1);
    c->f.remove_device = &c->m.remove_device;
}

/* The actor's device with a new encryption key of the next key id. */
static void build_rotate_encryption_key(struct cctx *c) {
    c->dev = c->me->u.dev[0];
    randombytes_buf(c->dev.epk, sizeof c->dev.epk);
    c->dev.key_id++;
    raw_device_sign_key(&c->dev);
    carechat__v1__device_keys__init(&c->keys);
    c->keys.device_id = bin16(c->dev.id);
    c->keys.identity_key = (ProtobufCBinaryData){32, c->dev.ipk};
    c->keys.encryption_key = (ProtobufCBinaryData){32, c->dev.epk};
    c->keys.encryption_key_id = c->dev.key_id;
    c->keys.encryption_key_expires_at = c->dev.expires_at;
    c->keys.signature = (ProtobufCBinaryData){64, c->dev.sig};
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_ROTATE_ENCRYPTION_KEY);
    carechat__v1__rotate_encryption_key__init(&c->m.rotate);
    c->m.rotate.keys = &c->keys;
    c->f.rotate_encryption_key = &c->m.rotate;
}

static void build_lookup(struct cctx *c, const char *email) {
    snprintf(c->text, sizeof c->text, "%s", email);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_LOOKUP_ACCOUNT);
    carechat__v1__lookup_account__init(&c->m.lookup);
    c->m.lookup.email = c->text;
    c->f.lookup_account = &c->m.lookup;
}

static void build_lookup_provider(struct cctx *c) {
    build_lookup(c, g_v.u.email);
}

static void build_lookup_other_patient(struct cctx *c) {
    build_lookup(c, g_q.u.email);
}

/* PAT with V (who invited P), PRO with P, everyone else with V. */
static void build_create_direct(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_CREATE_DIRECT);
    carechat__v1__create_direct__init(&c->m.create_direct);
    c->m.create_direct.peer_account_id = bin16(c->row == PRO ? g_p.u.account : g_v.u.account);
    c->f.create_direct = &c->m.create_direct;
}

static void build_list_conversations(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS);
    carechat__v1__list_conversations__init(&c->m.list_conversations);
    c->f.list_conversations = &c->m.list_conversations;
}

static void build_get_conversation(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_GET_CONVERSATION);
    carechat__v1__get_conversation__init(&c->m.get_conversation);
    c->m.get_conversation.conversation_id = bin16(g_conv_c);
    c->f.get_conversation = &c->m.get_conversation;
}

static void build_history(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_HISTORY);
    carechat__v1__history__init(&c->m.history);
    c->m.history.conversation_id = bin16(g_conv_c);
    c->m.history.limit = 10;
    c->f.history = &c->m.history;
}

static void build_channel_of(struct cctx *c, const struct actor *patient) {
    snprintf(c->text, sizeof c->text, "care team %d", ++g_fresh);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_CREATE_CHANNEL);
    carechat__v1__create_channel__init(&c->m.create_channel);
    c->m.create_channel.patient_account_id = bin16(patient->u.account);
    c->m.create_channel.name = c->text;
    c->f.create_channel = &c->m.create_channel;
}

/* P's channel: V invited P. */
static void build_create_channel(struct cctx *c) {
    build_channel_of(c, &g_p);
}

/* Q's channel: V2 invited Q, so V has no care relation with Q and cannot
 * make one alone (and then deactivate Q or talk to Q directly). */
static void build_create_channel_stranger(struct cctx *c) {
    build_channel_of(c, &g_q);
}

/* A fresh channel of P by V (C itself for the rows that never reach a
 * handler). */
static void fresh_channel(struct cctx *c, const uint8_t *extra) {
    if (c->live)
        v_creates_channel(extra, c->id1);
    else
        memcpy(c->id1, g_conv_c, 16);
}

static void build_add_member(struct cctx *c) {
    fresh_channel(c, NULL);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_ADD_MEMBER);
    carechat__v1__add_member__init(&c->m.add_member);
    c->m.add_member.conversation_id = bin16(c->id1);
    c->m.add_member.account_id = bin16(g_v2.u.account);
    c->f.add_member = &c->m.add_member;
}

static void build_remove_member(struct cctx *c) {
    fresh_channel(c, g_v2.u.account);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_REMOVE_MEMBER);
    carechat__v1__remove_member__init(&c->m.remove_member);
    c->m.remove_member.conversation_id = bin16(c->id1);
    c->m.remove_member.account_id = bin16(g_v2.u.account);
    c->f.remove_member = &c->m.remove_member;
}

static void build_approve_member(struct cctx *c) {
    fresh_channel(c, NULL);
    if (c->live)
        v_adds_pending_f(c->id1);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_APPROVE_MEMBER);
    carechat__v1__approve_member__init(&c->m.approve_member);
    c->m.approve_member.conversation_id = bin16(c->id1);
    c->m.approve_member.account_id = bin16(g_f.u.account);
    c->f.approve_member = &c->m.approve_member;
}

static void build_leave_conversation(struct cctx *c) {
    fresh_channel(c, NULL);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_LEAVE_CONVERSATION);
    carechat__v1__leave_conversation__init(&c->m.leave);
    c->m.leave.conversation_id = bin16(c->id1);
    c->f.leave_conversation = &c->m.leave;
}

static void build_list_members(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_LIST_MEMBERS);
    carechat__v1__list_members__init(&c->m.list_members);
    c->m.list_members.conversation_id = bin16(g_conv_c);
    c->f.list_members = &c->m.list_members;
}

/* A message into C from the actor's device, wrapped for every device of V
 * and P. */
static void build_send(struct cctx *c) {
    struct rawc_wrap_to to[2 * RAWC_MAX_DEVICES];
    size_t n = wraps_for_c(to);
    randombytes_buf(c->id1, 16);
    rawc_build_send(&c->f, &c->send, g_conv_c, c->id1, c->me->u.dev[0].id, to, n,
                    "dummy ciphertext", false);
}

static void build_ack(struct cctx *c) {
    size_t len = 1;
    if (c->live)
        len = last_cursor(c->me, c->cursor);
    else
        c->cursor[0] = 0;
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_ACK);
    carechat__v1__ack__init(&c->m.ack);
    c->m.ack.cursor = (ProtobufCBinaryData){len, c->cursor};
    c->f.ack = &c->m.ack;
}

static void build_sync(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_SYNC);
    carechat__v1__sync__init(&c->m.sync);
    c->f.sync = &c->m.sync;
}

static void build_send_receipt(struct cctx *c) {
    c->ids[0] = bin16(g_msg_m);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_SEND_RECEIPT);
    carechat__v1__send_receipt__init(&c->m.receipt);
    c->m.receipt.conversation_id = bin16(g_conv_c);
    c->m.receipt.kind = CARECHAT__V1__RECEIPT_KIND__READ;
    c->m.receipt.n_message_ids = 1;
    c->m.receipt.message_ids = c->ids;
    c->f.send_receipt = &c->m.receipt;
}

static void build_typing(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_TYPING);
    carechat__v1__typing__init(&c->m.typing);
    c->m.typing.conversation_id = bin16(g_conv_c);
    c->m.typing.typing = true;
    c->f.typing = &c->m.typing;
}

/* A fresh message of V in C (M for the rows that never reach a handler). */
static void build_recall(struct cctx *c) {
    if (c->live)
        v_sends_in_c(false, c->id1);
    else
        memcpy(c->id1, g_msg_m, 16);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_RECALL);
    carechat__v1__recall__init(&c->m.recall);
    c->m.recall.conversation_id = bin16(g_conv_c);
    c->m.recall.message_id = bin16(c->id1);
    /* signed by the caller's device (the removal transcript) */
    uint8_t t[TRANSCRIPT_REMOVAL_LEN];
    transcript_removal(g_conv_c, c->id1, t);
    crypto_sign_detached(c->sig, NULL, t, sizeof t, c->me->u.dev[0].isk);
    c->m.recall.signature = (ProtobufCBinaryData){sizeof c->sig, c->sig};
    c->f.recall = &c->m.recall;
}

static void build_ack_urgent(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_ACK_URGENT);
    carechat__v1__ack_urgent__init(&c->m.ack_urgent);
    c->m.ack_urgent.conversation_id = bin16(g_conv_c);
    c->m.ack_urgent.message_id = bin16(g_msg_m);
    c->f.ack_urgent = &c->m.ack_urgent;
}

static void build_get_urgent_status(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_GET_URGENT_STATUS);
    carechat__v1__get_urgent_status__init(&c->m.urgent_status);
    c->m.urgent_status.conversation_id = bin16(g_conv_c);
    c->m.urgent_status.message_id = bin16(g_msg_m);
    c->f.get_urgent_status = &c->m.urgent_status;
}

static void build_query_audit(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_QUERY_AUDIT);
    carechat__v1__query_audit__init(&c->m.query_audit);
    c->m.query_audit.limit = 1;
    c->f.query_audit = &c->m.query_audit;
}

static void build_verify_audit(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_VERIFY_AUDIT);
    carechat__v1__verify_audit__init(&c->m.verify_audit);
    c->f.verify_audit = &c->m.verify_audit;
}

static void build_deactivate(struct cctx *c, struct actor *inviter) {
    if (c->live)
        fresh_patient(inviter, c->id1);
    else
        memcpy(c->id1, g_p.u.account, 16);
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_DEACTIVATE_ACCOUNT);
    carechat__v1__deactivate_account__init(&c->m.deactivate);
    c->m.deactivate.account_id = bin16(c->id1);
    c->f.deactivate_account = &c->m.deactivate;
}

static void build_deactivate_own_patient(struct cctx *c) {
    build_deactivate(c, &g_v);
}

static void build_deactivate_stranger_patient(struct cctx *c) {
    build_deactivate(c, &g_v2);
}

static void build_get_retention_state(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_GET_RETENTION_STATE);
    carechat__v1__get_retention_state__init(&c->m.retention);
    memcpy(c->id1, g_p.u.account, 16);
    c->m.retention.account_id = bin16(c->id1);
    c->f.get_retention_state = &c->m.retention;
}

static void build_unlock_login(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_UNLOCK_LOGIN);
    carechat__v1__unlock_login__init(&c->m.unlock);
    c->m.unlock.account_id = bin16(g_p.u.account);
    c->f.unlock_login = &c->m.unlock;
}

static void build_login(struct cctx *c) {
    frame_init(&c->f, CARECHAT__V1__FRAME__BODY_LOGIN);
    carechat__v1__login__init(&c->m.login);
    c->m.login.email = c->me->u.email;
    c->m.login.password = (char *)c->me->password;
    c->m.login.device_case = CARECHAT__V1__LOGIN__DEVICE_DEVICE_ID;
    c->m.login.device_id = bin16(c->me->u.dev[0].id);
    c->f.login = &c->m.login;
}

/* ---- the table ------------------------------------------------------------------------------ */

enum { OK = 0, NF = STATUS_NOT_FOUND, FB = STATUS_FORBIDDEN, UA = STATUS_UNAUTHENTICATED };

struct op {
    const char *name;
    const char *action; /* AuditRecord.action of its records */
    void (*build)(struct cctx *c);
    int expect[N_ROWS]; /* PAT, PRO, ADM, SYS, DEA, EXP */
};

/* Who may do what (issue 4), one line per operation. */
static const struct op ops[] = {
    {"logout", "session.logout", build_logout, {OK, OK, OK, OK, UA, UA}},
    {"invite", "account.invite", build_invite, {FB, OK, OK, OK, UA, UA}},
    {"publish_device_list",
     "device.publish_list",
     build_publish_device_list,
     {OK, OK, OK, OK, UA, UA}},
    {"list_devices", "device.read", build_list_devices, {OK, OK, OK, OK, UA, UA}},
    {"remove_device", "device.remove", build_remove_device, {OK, OK, OK, OK, UA, UA}},
    {"rotate_encryption_key",
     "device.rotate_key",
     build_rotate_encryption_key,
     {OK, OK, OK, OK, UA, UA}},
    {"lookup_account(provider)", "account.lookup", build_lookup_provider, {OK, OK, OK, OK, UA, UA}},
    {"lookup_account(other patient)",
     "account.lookup",
     build_lookup_other_patient,
     {NF, OK, OK, OK, UA, UA}},
    {"create_direct", "conversation.create", build_create_direct, {OK, OK, OK, OK, UA, UA}},
    {"list_conversations", "conversation.list", build_list_conversations, {OK, OK, OK, OK, UA, UA}},
    {"get_conversation", "conversation.read", build_get_conversation, {OK, OK, NF, NF, UA, UA}},
    {"history", "message.read", build_history, {OK, OK, NF, NF, UA, UA}},
    {"create_channel", "channel.create", build_create_channel, {FB, OK, OK, FB, UA, UA}},
    {"create_channel(stranger patient)",
     "channel.create",
     build_create_channel_stranger,
     {FB, FB, OK, FB, UA, UA}},
    {"add_member", "member.add", build_add_member, {FB, OK, OK, FB, UA, UA}},
    {"remove_member", "member.remove", build_remove_member, {FB, OK, OK, FB, UA, UA}},
    {"approve_member", "member.approve", build_approve_member, {OK, FB, FB, FB, UA, UA}},
    {"leave_conversation",
     "conversation.leave",
     build_leave_conversation,
     {OK, OK, NF, NF, UA, UA}},
    {"list_members", "member.list", build_list_members, {OK, OK, OK, NF, UA, UA}},
    {"send", "message.send", build_send, {OK, OK, NF, NF, UA, UA}},
    {"ack", "message.ack", build_ack, {OK, OK, OK, OK, UA, UA}},
    {"sync", "message.sync", build_sync, {OK, OK, OK, OK, UA, UA}},
    {"send_receipt", "message.receipt", build_send_receipt, {OK, OK, NF, NF, UA, UA}},
    {"typing", "message.typing", build_typing, {OK, OK, NF, NF, UA, UA}},
    {"recall", "message.recall", build_recall, {FB, OK, OK, NF, UA, UA}},
    {"ack_urgent", "message.urgent_ack", build_ack_urgent, {OK, NF, NF, NF, UA, UA}},
    {"get_urgent_status",
     "message.urgent_status",
     build_get_urgent_status,
     {FB, OK, OK, NF, UA, UA}},
    {"query_audit", "audit.query", build_query_audit, {FB, FB, OK, OK, UA, UA}},
    {"get_retention_state",
     "account.retention_read",
     build_get_retention_state,
     {FB, FB, OK, OK, UA, UA}},
    {"unlock_login", "account.unlock", build_unlock_login, {FB, FB, OK, OK, UA, UA}},
    {"verify_audit", "audit.verify", build_verify_audit, {FB, FB, OK, OK, UA, UA}},
    {"deactivate_account(own patient)",
     "account.deactivate",
     build_deactivate_own_patient,
     {FB, OK, OK, OK, UA, UA}},
    {"deactivate_account(stranger patient)",
     "account.deactivate",
     build_deactivate_stranger_patient,
     {FB, FB, OK, OK, UA, UA}},
    {"login", "session.login", build_login, {OK, OK, OK, OK, UA, OK}},
};

#define N_OPS (sizeof ops / sizeof ops[0])

/* ---- the audit log as AUD reads it --------------------------------------------------------- */

struct audit_rec {
    uint64_t index;
    int64_t time;
    char action[48];
    int outcome; /* wire status */
    uint8_t actor[16];
    size_t actor_len;
};

struct audit_window {
    struct audit_rec rec[MAX_CASE_RECORDS];
    size_t n;
};

/* Reads every record after g_last_index into `w` (paging) and moves
 * g_last_index and g_last_time past them. */
static void audit_read_new(struct audit_window *w) {
    ProtobufCBinaryData token = {0, NULL};
    uint8_t token_buf[64];
    uint64_t max_index = g_last_index;
    int64_t max_time = g_last_time;
    for (int page = 0; page < 100; page++) {
        Carechat__V1__Frame f;
        Carechat__V1__QueryAudit q;
        frame_init(&f, CARECHAT__V1__FRAME__BODY_QUERY_AUDIT);
        carechat__v1__query_audit__init(&q);
        /* Records are timed when proposed and indexed when applied: look a
         * little before the last one seen and filter by index. */
        q.since = g_last_time > 10000 ? g_last_time - 10000 : 0;
        q.limit = 500;
        q.page_token = token;
        f.query_audit = &q;
        Carechat__V1__Frame *r = rawc_rpc(g_audit, &f);
        raw_expect_status(r, STATUS_OK);
        const Carechat__V1__AuditPage *pg = r->response->audit_page;
        for (size_t i = 0; i < pg->n_records; i++) {
            const Carechat__V1__AuditRecord *x = pg->records[i];
            if (x->index <= g_last_index)
                continue;
            if (w->n == MAX_CASE_RECORDS)
                fail_msg("more than %d audit records in one case", MAX_CASE_RECORDS);
            struct audit_rec *o = &w->rec[w->n++];
            o->index = x->index;
            o->time = x->time;
            snprintf(o->action, sizeof o->action, "%s", x->action);
            o->outcome = (int)x->outcome;
            o->actor_len = x->actor_account_id.len <= 16 ? x->actor_account_id.len : 16;
            if (o->actor_len > 0)
                memcpy(o->actor, x->actor_account_id.data, o->actor_len);
            if (x->index > max_index) {
                max_index = x->index;
                max_time = x->time;
            }
        }
        assert_true(pg->next_page_token.len <= sizeof token_buf);
        token.len = pg->next_page_token.len;
        if (token.len > 0)
            memcpy(token_buf, pg->next_page_token.data, token.len);
        token.data = token_buf;
        proto_free(r);
        if (token.len == 0) {
            g_last_index = max_index;
            g_last_time = max_time;
            return;
        }
    }
    fail_msg("audit query did not end within 100 pages");
}

static bool is_denial(int wire) {
    return wire == status_wire(STATUS_UNAUTHENTICATED) || wire == status_wire(STATUS_FORBIDDEN) ||
           wire == status_wire(STATUS_NOT_FOUND);
}

/* Skips to the end of the log: what came before is not any case's. */
static void audit_skip(void) {
    struct audit_window *w = xcalloc(1, sizeof *w);
    audit_read_new(w);
    free(w);
}

/* The failed Authenticate that opens a case of the DEA and EXP rows. */
static bool is_auth_preface(const struct audit_rec *x) {
    return x->outcome == status_wire(STATUS_UNAUTHENTICATED) &&
           (strcmp(x->action, "session.authenticate") == 0 ||
            strcmp(x->action, "session.expire") == 0);
}

/* Checks the records the case appended: a denied case exactly one denial,
 * with the op's action, the expected status and the actor (none on an
 * unauthenticated connection, except a refused Login, which names the account
 * whose email was tried); an allowed case none; DEA and EXP cases also
 * exactly one failed Authenticate before. Returns false (after printing why)
 * on a mismatch. */
static bool audit_check(enum row row, const struct op *op, int expect) {
    bool unauth = row == DEA || row == EXP;
    size_t want = (expect != OK) + unauth;
    struct audit_window *w = xcalloc(1, sizeof *w);
    size_t denials = 0, prefaces = 0;
    int64_t deadline = clock_monotonic_ms() + AUDIT_WAIT_MS;
    for (;;) {
        audit_read_new(w);
        denials = prefaces = 0;
        for (size_t i = 0; i < w->n; i++) {
            if (!is_denial(w->rec[i].outcome))
                continue;
            if (unauth && prefaces == 0 && is_auth_preface(&w->rec[i]))
                prefaces++;
            else
                denials++;
        }
        if (denials + prefaces >= want || clock_monotonic_ms() >= deadline)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 50 * 1000000L}, NULL);
    }
    const uint8_t *actor = row_actor[row]->u.account;
    bool named = !unauth || strcmp(op->action, "session.login") == 0;
    bool ok = denials == (expect != OK) && prefaces == unauth;
    for (size_t i = 0; ok && i < w->n; i++) {
        const struct audit_rec *x = &w->rec[i];
        if (!is_denial(x->outcome) || (unauth && is_auth_preface(x)))
            continue;
        ok = strcmp(x->action, op->action) == 0 && x->outcome == status_wire(expect) &&
             (named ? x->actor_len == 16 && memcmp(x->actor, actor, 16) == 0 : x->actor_len == 0);
    }
    if (!ok) {
        printf("[%s %s] audit: expected %s%s record (%s, outcome %d, actor %s), got %zu "
               "denial record(s):\n",
               row_names[row], op->name, unauth ? "a failed authenticate and " : "",
               expect != OK ? "one" : "no denial", op->action, status_wire(expect),
               named ? row_names[row] : "none", denials + prefaces);
        for (size_t i = 0; i < w->n; i++)
            if (is_denial(w->rec[i].outcome))
                printf("    #%llu %s outcome %d actor %s\n", (unsigned long long)w->rec[i].index,
                       w->rec[i].action, w->rec[i].outcome,
                       w->rec[i].actor_len == 0                  ? "none"
                       : memcmp(w->rec[i].actor, actor, 16) == 0 ? "the row's"
                       : w->rec[i].actor_len == 16               ? "another account"
                                                                 : "malformed");
    }
    free(w);
    return ok;
}

/* ---- running a case ---------------------------------------------------------------------------
 */

/* Keeps what an allowed request changed of the actor's state. */
static void after_ok(struct cctx *c, const struct op *op, const Carechat__V1__Frame *r) {
    struct actor *me = c->me;
    if (op->build == build_logout) {
        rawc_free(login_actor(me)); /* the token ended */
    } else if (op->build == build_publish_device_list) {
        me->list_version++;
    } else if (op->build == build_remove_device) {
        me->u.n_dev--;
    } else if (op->build == build_rotate_encryption_key) {
        me->u.dev[0] = c->dev;
    } else if (op->build == build_login) {
        assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_SESSION);
        assert_int_equal(r->response->session->session_token.len, 32);
        assert_memory_equal(r->response->session->device_id.data, me->u.dev[0].id, 16);
        memcpy(me->token, r->response->session->session_token.data, 32);
    } else if (op->build == build_get_retention_state) {
        assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_RETENTION);
        assert_memory_equal(r->response->retention->account_id.data, c->id1, 16);
        assert_int_equal(r->response->retention->state,
                         CARECHAT__V1__RETENTION_STATE__RETENTION_ACTIVE);
    } else if (op->build == build_deactivate_own_patient ||
               op->build == build_deactivate_stranger_patient) {
        assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_RETENTION);
        assert_memory_equal(r->response->retention->account_id.data, c->id1, 16);
        assert_int_equal(r->response->retention->state,
                         CARECHAT__V1__RETENTION_STATE__RETENTION_REVIEW);
    }
}

/* Runs one case; returns false (after printing the case, the expected and
 * the received status with the server's detail) when the answer or the audit
 * records disagree with the table. */
static bool run_case(enum row row, const struct op *op) {
    struct cctx *c = xcalloc(1, sizeof *c);
    c->row = row;
    c->me = row_actor[row];
    c->live = row != DEA && row != EXP;
    int expect = op->expect[row];
    op->build(c);
    struct rawc *conn = rawc_open(g_h);
    bool ok = true;
    Carechat__V1__Frame *r;
    /* A Login is itself the authentication of its connection: the live rows
     * send it on a fresh one (an authenticated connection answers CONFLICT). */
    if (!c->live || op->build != build_login) {
        r = rawc_authenticate(conn, c->me->token, c->me->u.dev[0].id);
        int auth = status_wire(c->live ? STATUS_OK : STATUS_UNAUTHENTICATED);
        ok = (int)r->response->status == auth;
        if (!ok)
            printf("[%s %s] authenticate: expected %d, got %d (%s)\n", row_names[row], op->name,
                   auth, (int)r->response->status, r->response->detail);
        proto_free(r);
    }
    r = rawc_rpc(conn, &c->f);
    int got = (int)r->response->status;
    ok &= got == status_wire(expect);
    if (got != status_wire(expect))
        printf("[%s %s] expected %d, got %d (%s)\n", row_names[row], op->name, status_wire(expect),
               got, r->response->detail);
    else if (expect == OK)
        after_ok(c, op, r);
    proto_free(r);
    rawc_free(conn);
    ok &= audit_check(row, op, expect);
    free(c);
    return ok;
}

/* Runs every operation for the rows in [first, last]; returns how many cases
 * disagreed. */
static int run_rows(enum row first, enum row last, int *cases) {
    int bad = 0;
    for (size_t i = 0; i < N_OPS; i++)
        for (int row = (int)first; row <= (int)last; row++) {
            (*cases)++;
            bad += !run_case((enum row)row, &ops[i]);
        }
    return bad;
}

/* ---- the world ----------------------------------------------------------------------------------
 */

static int group_setup(void **state) {
    (void)state;
    const char *args[] = {"--login-burst", "100000", "--login-burst-per-ip", "1000000", NULL};
    if (fixture_start_bootstrapped(args, &g_h) != 0)
        return -1;
    int64_t t0 = clock_monotonic_ms();
    snprintf(g_s.u.email, sizeof g_s.u.email, "%s", FIXTURE_ROOT_EMAIL);
    g_s.password = FIXTURE_ROOT_PASSWORD;
    raw_device_make(&g_s.u.dev[0]);
    struct rawc *c = rawc_open(g_h);
    rawc_login_ok(c, g_s.u.email, g_s.password, &g_s.u.dev[0], g_s.u.account, g_s.token);
    rawc_free(c);
    g_s.u.n_dev = 1;

    make_actor(&g_s, CARECHAT__V1__ROLE__ADMIN, &g_a);
    make_actor(&g_s, CARECHAT__V1__ROLE__ADMIN, &g_aud);
    make_actor(&g_a, CARECHAT__V1__ROLE__PROVIDER, &g_v);
    make_actor(&g_a, CARECHAT__V1__ROLE__PROVIDER, &g_v2);
    make_actor(&g_a, CARECHAT__V1__ROLE__PROVIDER, &g_e);
    make_actor(&g_v, CARECHAT__V1__ROLE__PATIENT, &g_p);
    make_actor(&g_v, CARECHAT__V1__ROLE__PATIENT, &g_d);
    make_actor(&g_v, CARECHAT__V1__ROLE__PATIENT, &g_f);
    make_actor(&g_v2, CARECHAT__V1__ROLE__PATIENT, &g_q);
    g_d_conn = login_actor(&g_d);

    v_creates_channel(NULL, g_conv_c);
    v_sends_in_c(true, g_msg_m);

    g_audit = as(&g_aud);
    audit_skip();
    printf("world made in %lld ms\n", (long long)(clock_monotonic_ms() - t0));
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    rawc_free(g_audit);
    rawc_free(g_d_conn);
    return fixture_stop(g_h) == 0 ? 0 : -1;
}

/* ---- tests
 * ---------------------------------------------------------------------------------------- */

/* V deactivates D, whose open connection is told why and closed; D's
 * session no longer resumes. */
static void test_authz_deactivate_revokes_open_session(void **state) {
    (void)state;
    Carechat__V1__Frame f;
    Carechat__V1__DeactivateAccount da;
    frame_init(&f, CARECHAT__V1__FRAME__BODY_DEACTIVATE_ACCOUNT);
    carechat__v1__deactivate_account__init(&da);
    da.account_id = bin16(g_d.u.account);
    f.deactivate_account = &da;
    struct rawc *c = as(&g_v);
    int64_t t0 = clock_now();
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_RETENTION);
    const Carechat__V1__RetentionInfo *ri = r->response->retention;
    assert_memory_equal(ri->account_id.data, g_d.u.account, 16);
    assert_int_equal(ri->state, CARECHAT__V1__RETENTION_STATE__RETENTION_REVIEW);
    assert_true(ri->deactivated_at >= t0 - 1000 && ri->deactivated_at <= clock_now() + 1000);
    int64_t deactivated_at = ri->deactivated_at;
    proto_free(r);
    /* Again: CONFLICT, it is not active any more. */
    r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_CONFLICT);
    proto_free(r);
    rawc_free(c);
    /* An admin reads where D stands: REVIEW, with the windows of the policy. */
    Carechat__V1__GetRetentionState gs;
    frame_init(&f, CARECHAT__V1__FRAME__BODY_GET_RETENTION_STATE);
    carechat__v1__get_retention_state__init(&gs);
    gs.account_id = bin16(g_d.u.account);
    f.get_retention_state = &gs;
    c = as(&g_a);
    r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    ri = r->response->retention;
    assert_int_equal(ri->state, CARECHAT__V1__RETENTION_STATE__RETENTION_REVIEW);
    assert_true(ri->deactivated_at == deactivated_at);
    assert_true(ri->restricted_at == deactivated_at + 30LL * 24 * 3600 * 1000);
    assert_true(ri->purge_at == ri->restricted_at + 365LL * 24 * 3600 * 1000);
    proto_free(r);
    rawc_free(c);

    Carechat__V1__Frame *q = rawc_next_request(g_d_conn, RAWC_TIMEOUT_MS);
    assert_non_null(q);
    assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED);
    assert_int_equal(q->session_revoked->reason, CARECHAT__V1__REVOKE_REASON__ACCOUNT_DEACTIVATED);
    proto_free(q);
    int code = 0;
    assert_int_equal(wsc_wait_close(g_d_conn->ws, RAWC_TIMEOUT_MS, &code), 0);
    assert_int_equal(code, 1008);
    rawc_free(g_d_conn);
    g_d_conn = NULL;
    audit_skip();
}

/* Every operation for the patient, provider, admin, sysadmin and
 * deactivated rows. */
static void test_authz_matrix_roles_and_deactivated(void **state) {
    (void)state;
    int64_t t0 = clock_monotonic_ms();
    int cases = 0;
    int bad = run_rows(PAT, DEA, &cases);
    printf("%d cases in %lld ms, %d disagree with the table\n", cases,
           (long long)(clock_monotonic_ms() - t0), bad);
    if (bad)
        fail_msg("%d of %d cases disagree with the table (listed above)", bad, cases);
}

/* Every operation with E's token after the server's clock moved two hours
 * on: unauthenticated, except a fresh login. */
static void test_authz_matrix_expired_session(void **state) {
    (void)state;
    rawc_free(g_audit);
    g_audit = NULL;
    int status = -1;
    assert_int_equal(harness_stop(g_h, &status), 0);
    assert_int_equal(status, 0);
    assert_true(g_h->n_args + 2 <= HARNESS_MAX_ARGS);
    g_h->args[g_h->n_args++] = xstrdup("--clock-offset");
    g_h->args[g_h->n_args++] = xstrdup(EXPIRE_OFFSET_MS);
    assert_int_equal(harness_restart(g_h), 0);
    int64_t t0 = clock_monotonic_ms();
    g_audit = login_actor(&g_aud);
    audit_skip();
    int cases = 0;
    int bad = run_rows(EXP, EXP, &cases);
    printf("%d cases in %lld ms, %d disagree with the table\n", cases,
           (long long)(clock_monotonic_ms() - t0), bad);
    if (bad)
        fail_msg("%d of %d cases disagree with the table (listed above)", bad, cases);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authz_deactivate_revokes_open_session),
        cmocka_unit_test(test_authz_matrix_roles_and_deactivated),
        cmocka_unit_test(test_authz_matrix_expired_session),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
