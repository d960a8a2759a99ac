/*
 * server/handlers.c: the core of the request handlers: per-connection state
 * and its registry, dispatch, the session expiry check on every
 * authenticated request, replacing and revoking connections, and proposing
 * entries to the journal (handlers.h has the picture).
 *
 * Invariants: a `struct hconn` is on the registry list from attach to detach;
 * its refs count the conn (until detach) and every op in flight; at most one
 * Login/Register/Authenticate is in flight per connection (auth_busy).
 *
 * Thread: the lws loop thread (journal on_done callbacks and password
 * continuations are run from it by journal_poll / handlers_poll).
 */
#include "server/handlers.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "server/audit.h"
#include "server/authz.h"
#include "server/handlers_internal.h"
#include "storage/keys.h"

/* The idle expiry is written back at most this often per connection. */
#define TOUCH_INTERVAL_MS 60000

/* ---- connections ---------------------------------------------------------- */

static void hconn_unref(struct hconn *hc) {
    if (--hc->refs > 0)
        return;
    sodium_memzero(hc, sizeof *hc);
    free(hc);
}

static void *on_attach(void *ctx, struct conn *c) {
    struct handlers *h = ctx;
    struct hconn *hc = xcalloc(1, sizeof *hc);
    hc->h = h;
    hc->conn = c;
    hc->refs = 1;
    hc->next = h->conns;
    if (h->conns)
        h->conns->prev = hc;
    h->conns = hc;
    return hc;
}

static void on_detach(void *ctx, void *state) {
    struct handlers *h = ctx;
    struct hconn *hc = state;
    if (!hc)
        return;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        h->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
    hc->conn = NULL;
    hc->authenticated = false;
    hconn_unref(hc);
}

struct op *op_new(struct hconn *hc, enum op_kind kind, uint64_t request_id) {
    /* Plain heap, wiped on release: sodium_malloc costs an mmap, two mprotects
     * and a munmap (TLB shootdowns on every core) per request. */
    struct op *op = xcalloc(1, sizeof *op);
    op->kind = kind;
    op->hc = hc;
    op->request_id = request_id;
    op->action = hc->action;
    op->has_actor = hc->authenticated;
    op->actor = hc->account;
    op->actor_device = hc->device;
    hc->refs++;
    return op;
}

void op_release(struct op *op) {
    if (!op)
        return;
    struct hconn *hc = op->hc;
    if (op->kind == OP_LOGIN || op->kind == OP_REGISTER || op->kind == OP_REGISTER_REFUSED ||
        op->kind == OP_AUTHENTICATE)
        hc->auth_busy = false;
    buf_wipe(&op->frame);
    buf_cleanup(&op->frame);
    sodium_memzero(op, sizeof *op);
    free(op);
    hconn_unref(hc);
}

bool op_live(const struct op *op) {
    return op->hc->conn != NULL && !op->hc->h->closing;
}

/* ---- sessions on connections --------------------------------------------- */

static void send_server_request(struct conn *c, Carechat__V1__Frame *frame) {
    frame->request_id = conn_next_request_id(c);
    conn_send(c, frame);
}

void revoke(struct handlers *h, const struct id *account, const struct id *device,
            Carechat__V1__RevokeReason reason, const struct hconn *except) {
    for (struct hconn *x = h->conns; x; x = x->next) {
        if (x == except || !x->authenticated || !x->conn ||
            (device && memcmp(x->device.b, device->b, ID_LEN) != 0) ||
            (account && memcmp(x->account.b, account->b, ID_LEN) != 0))
            continue;
        Carechat__V1__Frame frame;
        Carechat__V1__SessionRevoked rev;
        carechat__v1__frame__init(&frame);
        carechat__v1__session_revoked__init(&rev);
        rev.reason = reason;
        frame.body_case = CARECHAT__V1__FRAME__BODY_SESSION_REVOKED;
        frame.session_revoked = &rev;
        send_server_request(x->conn, &frame);
        x->authenticated = false;
        conn_close(x->conn, CONN_CLOSE_POLICY, "session revoked", METRICS_CLOSE_REVOKED);
    }
}

void session_established(struct hconn *hc, const struct op *op) {
    struct handlers *h = hc->h;
    for (struct hconn *x = h->conns; x; x = x->next) {
        if (x == hc || !x->authenticated || !x->conn ||
            memcmp(x->device.b, op->device.b, ID_LEN) != 0)
            continue;
        Carechat__V1__Frame frame;
        Carechat__V1__ReplacedElsewhere rep;
        carechat__v1__frame__init(&frame);
        carechat__v1__replaced_elsewhere__init(&rep);
        frame.body_case = CARECHAT__V1__FRAME__BODY_REPLACED_ELSEWHERE;
        frame.replaced_elsewhere = &rep;
        send_server_request(x->conn, &frame);
        x->authenticated = false;
        conn_close(x->conn, CONN_CLOSE_NORMAL, "replaced elsewhere", METRICS_CLOSE_REPLACED);
    }
    hc->authenticated = true;
    hc->account = op->account;
    hc->device = op->device;
    hc->role = op->role;
    memcpy(hc->token_hash, op->token_hash, REC_HASH_LEN);
    hc->expires_at = op->expires_at;
    hc->idle_expires_at = op->idle_expires_at;
    hc->stored_idle_expires_at = op->idle_expires_at;
    conn_authenticated(hc->conn);
}

void respond_session(struct op *op, bool with_token) {
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__SessionResult sr;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__session_result__init(&sr);
    sr.account_id = (ProtobufCBinaryData){ID_LEN, op->account.b};
    sr.device_id = (ProtobufCBinaryData){ID_LEN, op->device.b};
    if (with_token)
        sr.session_token = (ProtobufCBinaryData){sizeof op->token, op->token};
    sr.expires_at = op->expires_at;
    sr.idle_expires_at = op->idle_expires_at;
    sr.role = (Carechat__V1__Role)op->role;
    sr.display_name = op->display_name;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_SESSION;
    resp.session = &sr;
    conn_send(op->hc->conn, &frame);
}

/* The expiry check and idle push of every authenticated request. Returns
 * false when the session has ended (the request was answered and the
 * connection is closing). */
static bool session_check(struct hconn *hc, uint64_t rid) {
    struct handlers *h = hc->h;
    int64_t now = clock_now();
    if (now >= hc->expires_at || now >= hc->idle_expires_at) {
        conn_respond(hc->conn, rid, STATUS_UNAUTHENTICATED, "session expired");
        audit_propose(hc, &hc->account, &hc->device, REC_AUDIT_SESSION_EXPIRE,
                      STATUS_UNAUTHENTICATED, hc->device.b, ID_LEN, NULL, NULL, NULL);
        revoke(h, NULL, &hc->device, CARECHAT__V1__REVOKE_REASON__EXPIRED, NULL);
        return false;
    }
    int64_t idle = now + h->session_idle_ms;
    if (idle > hc->expires_at)
        idle = hc->expires_at;
    hc->idle_expires_at = idle;
    if (idle - hc->stored_idle_expires_at >= TOUCH_INTERVAL_MS) {
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__SessionTouch t;
        entry_init(&e, now, &hc->account, &hc->device);
        carechat__entry__v1__session_touch__init(&t);
        t.token_hash = (ProtobufCBinaryData){REC_HASH_LEN, hc->token_hash};
        t.idle_expires_at = idle;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_TOUCH;
        e.session_touch = &t;
        struct buf b;
        buf_init(&b);
        /* Best effort: a lost touch only shortens the session. */
        if (proto_entry_encode(&e, &b) == 0 &&
            journal_append(h->journal, b.data, b.len, NULL, NULL) == 0)
            hc->stored_idle_expires_at = idle;
        buf_cleanup(&b);
    }
    return true;
}

/* ---- entries --------------------------------------------------------------- */

void entry_init(Carechat__Entry__V1__Entry *e, int64_t time, const struct id *account,
                const struct id *device) {
    carechat__entry__v1__entry__init(e);
    e->version = PROTO_ENTRY_VERSION;
    e->time = time;
    if (account)
        e->actor_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)account->b};
    if (device)
        e->actor_device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)device->b};
}

void handlers_entry_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    struct op *op = ctx;
    switch (op->kind) {
    case OP_AUDITED:
        audited_done(op, status);
        break;
    case OP_LOGIN:
    case OP_REGISTER:
    case OP_REGISTER_REFUSED:
    case OP_AUTHENTICATE:
    case OP_LOGOUT:
    case OP_INVITE:
        sessions_entry_done(op, status);
        break;
    case OP_REMOVE_DEVICE:
    case OP_DEVICE_LIST:
        devices_entry_done(op, status);
        break;
    case OP_CREATE_DIRECT:
    case OP_SEND:
    case OP_ACK:
    case OP_RECEIPT:
        messaging_entry_done(op, pos, status, result, len);
        break;
    case OP_CREATE_CHANNEL:
    case OP_MEMBER:
    case OP_RECALL:
    case OP_URGENT_ACK:
        channels_entry_done(op, pos, status, result, len);
        break;
    case OP_DEACTIVATE:
        admin_entry_done(op, status);
        break;
    case OP_VERIFY: /* never proposed */
        break;
    }
    audit_refusal(op, status);
    op_release(op);
}

void propose(struct handlers *h, struct op *op, const Carechat__Entry__V1__Entry *e) {
    Carechat__Entry__V1__Entry copy = *e;
    char src[REC_AUDIT_SOURCE_MAX + 1];
    audit_source(op->hc, src);
    copy.source_address = src;
    struct buf b;
    buf_init(&b);
    int rc = proto_entry_encode(&copy, &b);
    if (rc == 0)
        rc = journal_append(h->journal, b.data, b.len, handlers_entry_done, op);
    buf_wipe(&b);
    buf_cleanup(&b);
    if (rc != 0) {
        if (op_live(op))
            conn_respond(op->hc->conn, op->request_id, rc, "cannot write now");
        op_release(op);
    }
}

/* ---- store reads ------------------------------------------------------------ */

int read_account(struct handlers *h, const struct id *id, struct rec_account *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_ACCOUNTS, id->b, ID_LEN, &v);
    if (rc == 0)
        rc = rec_account_decode(v.data, v.len, out);
    buf_wipe(&v);
    buf_cleanup(&v);
    return rc;
}

int read_device(struct handlers *h, const struct id *account, const struct id *device,
                struct rec_device *out) {
    struct key k;
    key_id_id(&k, account, device);
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_DEVICES, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_device_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

int find_email(struct handlers *h, const uint8_t index[REC_HASH_LEN], struct id *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_EMAIL_INDEX, index, REC_HASH_LEN, &v);
    if (rc == 0 && id_from_bytes(v.data, v.len, out) != 0)
        rc = STATUS_CORRUPT;
    buf_cleanup(&v);
    return rc;
}

int dev_from_registration(const Carechat__V1__DeviceRegistration *r, int64_t now,
                          struct dev_new *out) {
    const Carechat__V1__DeviceKeys *k = r ? r->keys : NULL;
    if (!k || k->device_id.len != 0 || k->identity_key.len != REC_KEY_LEN ||
        k->encryption_key.len != REC_KEY_LEN || k->signature.len != REC_SIG_LEN ||
        k->encryption_key_id == 0 || k->encryption_key_expires_at <= now ||
        strlen(r->label) > RULES_LABEL_MAX)
        return STATUS_BAD_REQUEST;
    if (rules_verify_key_signature(k->identity_key.data, k->encryption_key.data,
                                   k->encryption_key_id, k->encryption_key_expires_at,
                                   k->signature.data) != 0)
        return STATUS_BAD_REQUEST;
    out->id = id_new();
    memcpy(out->identity_key, k->identity_key.data, REC_KEY_LEN);
    memcpy(out->encryption_key, k->encryption_key.data, REC_KEY_LEN);
    out->key_id = k->encryption_key_id;
    out->expires_at = k->encryption_key_expires_at;
    memcpy(out->signature, k->signature.data, REC_SIG_LEN);
    memcpy(out->label, r->label, strlen(r->label) + 1);
    return STATUS_OK;
}

void dev_to_entry(const struct dev_new *d, Carechat__Entry__V1__DeviceNew *out) {
    carechat__entry__v1__device_new__init(out);
    out->device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)d->id.b};
    out->identity_key = (ProtobufCBinaryData){REC_KEY_LEN, (uint8_t *)d->identity_key};
    out->encryption_key = (ProtobufCBinaryData){REC_KEY_LEN, (uint8_t *)d->encryption_key};
    out->encryption_key_id = d->key_id;
    out->encryption_key_expires_at = d->expires_at;
    out->signature = (ProtobufCBinaryData){REC_SIG_LEN, (uint8_t *)d->signature};
    out->label = (char *)d->label;
}

/* ---- dispatch ---------------------------------------------------------------- */

/* What the check learns about a request's object: the conversation it names
 * and that conversation's patient (or the patient a request names). */
struct target {
    bool has_conv, has_patient;
    struct id conv, patient;
};

/* The id in f's body field `name`, when it has one of 16 bytes. */
static bool body_id(const Carechat__V1__Frame *f, const char *name, struct id *out) {
    ProtobufCBinaryData b;
    return proto_body_bytes(f, name, &b) && id_from_bytes(b.data, b.len, out) == 0;
}

/* The caller's relation to t->conv (unknown, or not an ACTIVE member:
 * AUTHZ_STRANGER), filling t's patient from the conversation. *rc is set to a
 * store failure, else left alone. */
static enum authz_relation relation(struct hconn *hc, struct target *t, int *rc) {
    struct rec_conv c;
    struct rec_member me;
    int r = read_conv(hc->h, &t->conv, &c);
    if (r == 0 && c.has_owner) {
        t->has_patient = true;
        t->patient = c.owner;
    }
    if (r == 0)
        r = read_member(hc->h, &t->conv, &hc->account, &me);
    if (r == STATUS_NOT_FOUND || (r == 0 && me.state != REC_ACTIVE))
        return AUTHZ_STRANGER;
    if (r != 0) {
        *rc = r;
        return AUTHZ_STRANGER;
    }
    return c.has_owner && c.kind == REC_CARE_TEAM && memcmp(c.owner.b, hc->account.b, ID_LEN) == 0
               ? AUTHZ_OWNER
               : AUTHZ_ACTIVE_MEMBER;
}

/* The authorization check of every request (server/authz.h), after the
 * session check. Returns true with *t when `f` may go on; otherwise it was
 * answered (and a denial audited once). */
static bool authorize(struct hconn *hc, const Carechat__V1__Frame *f, const struct authz_rule *r,
                      struct target *t) {
    struct authz_caller who = {.authenticated = hc->authenticated, .role = hc->role};
    int store_rc = 0;
    enum authz_relation rel = AUTHZ_STRANGER;
    memset(t, 0, sizeof *t);
    t->has_conv = body_id(f, "conversation_id", &t->conv);
    if (t->has_conv && hc->authenticated && (r->roles & (1u << hc->role)) &&
        (authz_needs_relation(r) || r->read))
        rel = relation(hc, t, &store_rc);
    if (store_rc != 0) {
        respond_error(hc->conn, f->request_id, store_rc, NULL);
        return false;
    }
    if (!t->has_patient)
        t->has_patient = body_id(f, "patient_account_id", &t->patient);
    int rc = authz_decide(r, &who, rel);
    if (rc == 0)
        return true;
    deny(hc, f->request_id, rc,
         rc == STATUS_UNAUTHENTICATED ? "authenticate first"
         : rc == STATUS_FORBIDDEN     ? "not allowed for your role"
                                      : "no such conversation",
         t->has_conv ? t->conv.b : NULL, t->has_conv ? ID_LEN : 0);
    return false;
}

/* Runs the handler of an authorized request. Returns false for a request no
 * handler serves yet. */
static bool run_request(struct hconn *hc, uint64_t rid, const Carechat__V1__Frame *f) {
    switch (f->body_case) {
    case CARECHAT__V1__FRAME__BODY_LOGOUT:
        handle_logout(hc, rid);
        break;
    case CARECHAT__V1__FRAME__BODY_INVITE:
        handle_invite(hc, rid, f->invite);
        break;
    case CARECHAT__V1__FRAME__BODY_PUBLISH_DEVICE_LIST:
        handle_publish_device_list(hc, rid, f->publish_device_list);
        break;
    case CARECHAT__V1__FRAME__BODY_LIST_DEVICES:
        handle_list_devices(hc, rid, f->list_devices);
        break;
    case CARECHAT__V1__FRAME__BODY_REMOVE_DEVICE:
        handle_remove_device(hc, rid, f->remove_device);
        break;
    case CARECHAT__V1__FRAME__BODY_ROTATE_ENCRYPTION_KEY:
        handle_rotate_key(hc, rid, f->rotate_encryption_key);
        break;
    case CARECHAT__V1__FRAME__BODY_LOOKUP_ACCOUNT:
        handle_lookup_account(hc, rid, f->lookup_account);
        break;
    case CARECHAT__V1__FRAME__BODY_CREATE_DIRECT:
        handle_create_direct(hc, rid, f->create_direct);
        break;
    case CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS:
        handle_list_conversations(hc, rid, f->list_conversations);
        break;
    case CARECHAT__V1__FRAME__BODY_GET_CONVERSATION:
        handle_get_conversation(hc, rid, f->get_conversation);
        break;
    case CARECHAT__V1__FRAME__BODY_HISTORY:
        handle_history(hc, rid, f->history);
        break;
    case CARECHAT__V1__FRAME__BODY_SEND:
        handle_send(hc, rid, f->send);
        break;
    case CARECHAT__V1__FRAME__BODY_ACK:
        handle_ack(hc, rid, f->ack);
        break;
    case CARECHAT__V1__FRAME__BODY_SYNC:
        handle_sync(hc, rid, f->sync);
        break;
    case CARECHAT__V1__FRAME__BODY_SEND_RECEIPT:
        handle_send_receipt(hc, rid, f->send_receipt);
        break;
    case CARECHAT__V1__FRAME__BODY_TYPING:
        handle_typing(hc, rid, f->typing);
        break;
    case CARECHAT__V1__FRAME__BODY_CREATE_CHANNEL:
        handle_create_channel(hc, rid, f->create_channel);
        break;
    case CARECHAT__V1__FRAME__BODY_ADD_MEMBER:
        handle_add_member(hc, rid, f->add_member);
        break;
    case CARECHAT__V1__FRAME__BODY_REMOVE_MEMBER:
        handle_remove_member(hc, rid, f->remove_member);
        break;
    case CARECHAT__V1__FRAME__BODY_APPROVE_MEMBER:
        handle_approve_member(hc, rid, f->approve_member);
        break;
    case CARECHAT__V1__FRAME__BODY_LEAVE_CONVERSATION:
        handle_leave_conversation(hc, rid, f->leave_conversation);
        break;
    case CARECHAT__V1__FRAME__BODY_LIST_MEMBERS:
        handle_list_members(hc, rid, f->list_members);
        break;
    case CARECHAT__V1__FRAME__BODY_RECALL:
        handle_recall(hc, rid, f->recall);
        break;
    case CARECHAT__V1__FRAME__BODY_ACK_URGENT:
        handle_ack_urgent(hc, rid, f->ack_urgent);
        break;
    case CARECHAT__V1__FRAME__BODY_GET_URGENT_STATUS:
        handle_get_urgent_status(hc, rid, f->get_urgent_status);
        break;
    case CARECHAT__V1__FRAME__BODY_QUERY_AUDIT:
        handle_query_audit(hc, rid, f->query_audit);
        break;
    case CARECHAT__V1__FRAME__BODY_VERIFY_AUDIT:
        handle_verify_audit(hc, rid);
        break;
    case CARECHAT__V1__FRAME__BODY_DEACTIVATE_ACCOUNT:
        handle_deactivate_account(hc, rid, f->deactivate_account);
        break;
    default:
        return false; /* a later feature: "not implemented yet" */
    }
    return true;
}

/* The audited_fn of reads: runs the handler once the access record is durable. */
static void run_read(struct hconn *hc, uint64_t rid, const Carechat__V1__Frame *f) {
    if (!run_request(hc, rid, f))
        conn_respond(hc->conn, rid, STATUS_UNAVAILABLE, CONN_NOT_IMPLEMENTED);
}

static bool on_dispatch(void *ctx, void *state, const Carechat__V1__Frame *f) {
    struct hconn *hc = state;
    uint64_t rid = f->request_id;
    const struct authz_rule *rule = authz_rule((uint32_t)f->body_case);
    if (!rule)
        return false;
    hc->action = rule->action;
    if (rule->scope == AUTHZ_OPEN) {
        if (hc->auth_busy) {
            conn_respond(hc->conn, rid, STATUS_CONFLICT, "authentication in progress");
            return true;
        }
        if (f->body_case == CARECHAT__V1__FRAME__BODY_LOGIN)
            handle_login(hc, rid, f->login);
        else if (f->body_case == CARECHAT__V1__FRAME__BODY_REGISTER)
            handle_register(hc, rid, f->register_);
        else
            handle_authenticate(hc, rid, f->authenticate);
        return true;
    }
    if (hc->authenticated && !session_check(hc, rid))
        return true;
    struct target t;
    if (!authorize(hc, f, rule, &t))
        return true;
    if (!rule->read)
        return run_request(hc, rid, f);
    const struct id *object = t.has_conv ? &t.conv : t.has_patient ? &t.patient : NULL;
    audited_read(hc, rid, object ? object->b : NULL, object ? ID_LEN : 0,
                 t.has_patient ? &t.patient : NULL, f, run_read);
    return true;
}

static void on_response(void *ctx, void *state, const Carechat__V1__Frame *f) {
    struct hconn *hc = state;
    if (hc->authenticated)
        messaging_on_response(hc, f);
}

/* ---- lifecycle ----------------------------------------------------------------- */

int handlers_new(const struct handlers_config *cfg, struct handlers **out) {
    const struct server_config *sc = cfg->config;
    struct handlers *h = xcalloc(1, sizeof *h);
    h->cfg = *cfg;
    h->store = cfg->store;
    h->journal = cfg->journal;
    h->invite_ttl_ms = (int64_t)sc->invite_ttl_s * 1000;
    h->session_idle_ms = (int64_t)sc->session_idle_s * 1000;
    h->session_max_ms = (int64_t)sc->session_max_s * 1000;
    h->password_min = sc->password_min;
    int64_t window = (int64_t)sc->login_window_s * 1000;
    struct pwhash_config pc = {
        .opslimit = sc->pwhash_ops,
        .memlimit = (size_t)sc->pwhash_mem,
        .wake = cfg->wake,
        .wake_ctx = cfg->wake_ctx,
    };
    int rc = pwhash_new(&pc, &h->pw);
    if (rc == 0)
        rc =
            ratelimit_new(&(struct ratelimit_config){.burst = sc->login_burst, .window_ms = window},
                          &h->rl_account);
    if (rc == 0)
        rc = ratelimit_new(
            &(struct ratelimit_config){.burst = sc->login_burst_per_ip, .window_ms = window},
            &h->rl_address);
    if (rc == 0)
        rc = ratelimit_new(&(struct ratelimit_config){.burst = 60, .window_ms = 60000},
                           &h->rl_lookup);
    if (rc == 0)
        rc = ratelimit_new(&(struct ratelimit_config){.burst = 30, .window_ms = 3600000},
                           &h->rl_invite);
    if (rc == 0)
        rc = messaging_new(h, &h->msg);
    uint8_t head_hash[REC_HASH_LEN];
    if (rc == 0)
        rc = audit_head(h->store, &h->audit_anchored, head_hash);
    if (rc != 0) {
        handlers_free(h);
        return rc;
    }
    *out = h;
    return STATUS_OK;
}

void handlers_free(struct handlers *h) {
    if (!h)
        return;
    h->closing = true;
    op_release(h->verify_op);
    /* The anchor at a clean shutdown. */
    audit_anchor(h->store, 0, &h->audit_anchored);
    pwhash_free(h->pw);
    ratelimit_free(h->rl_account);
    ratelimit_free(h->rl_address);
    ratelimit_free(h->rl_lookup);
    ratelimit_free(h->rl_invite);
    messaging_free(h->msg);
    free(h);
}

void handlers_conn_handler(struct handlers *h, struct conn_handler *out) {
    *out = (struct conn_handler){
        .attach = on_attach,
        .detach = on_detach,
        .dispatch = on_dispatch,
        .response = on_response,
        .ctx = h,
    };
}

void handlers_poll(struct handlers *h) {
    pwhash_poll(h->pw);
    messaging_poll(h->msg);
    audit_verify_poll(h);
}

void handlers_tick(struct handlers *h) {
    int64_t now = clock_now();
    for (struct hconn *x = h->conns; x; x = x->next) {
        if (x->authenticated && x->conn && (now >= x->expires_at || now >= x->idle_expires_at)) {
            audit_propose(x, &x->account, &x->device, REC_AUDIT_SESSION_EXPIRE,
                          STATUS_UNAUTHENTICATED, x->device.b, ID_LEN, NULL, NULL, NULL);
            revoke(h, NULL, &x->device, CARECHAT__V1__REVOKE_REASON__EXPIRED, NULL);
        }
    }
    audit_anchor(h->store, h->cfg.config->audit_anchor_every, &h->audit_anchored);
}
