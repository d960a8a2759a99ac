/*
 * server/handlers.c: dispatch and lifecycle of the request handlers: every
 * request goes through dispatch() here, which looks up its row in the request
 * table (server/requests.c), checks the session, authorizes it
 * (server/authz.h) with the conversation and membership it reads once and
 * hands to the handler, writes the access record of a read first, runs the
 * handler and answers its failure (server/request.h draws the path).
 *
 * Thread: the lws loop thread (journal completions and password
 * continuations are run from it by journal_poll / handlers_poll).
 */
#include "server/handlers.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "server/audit_queries.h"
#include "server/delivery.h"
#include "server/files.h"
#include "server/messaging.h"
#include "server/notify.h"
#include "server/request.h"
#include "server/rules.h"
#include "server/twofactor.h"

/* The idle expiry is written back at most this often per connection. */
#define TOUCH_INTERVAL_MS 60000

/* ---- the session check --------------------------------------------------------- */

/* Logs the session of `hc` off: its audit record, SessionRevoked EXPIRED and
 * close 1008 (every connection of the device). */
static void expire(struct hconn *hc) {
    req_audit(hc, &hc->account, &hc->device, REC_AUDIT_SESSION_EXPIRE, STATUS_UNAUTHENTICATED,
              hc->device.b, ID_LEN, NULL, NULL, NULL);
    req_revoke(hc->h, NULL, &hc->device, CARECHAT__V1__REVOKE_REASON__EXPIRED, NULL);
}

/* Whether the session of `hc` has ended at `now`: its absolute expiry, or
 * its idle expiry unless it stays signed in. */
static bool session_ended(const struct hconn *hc, int64_t now) {
    return now >= hc->expires_at || (!hc->stay_signed_in && now >= hc->idle_expires_at);
}

/* The expiry check and idle push of every authenticated request. Returns
 * false when the session has ended (the request was answered and the
 * connection is closing). */
static bool session_check(struct hconn *hc, uint64_t rid) {
    struct handlers *h = hc->h;
    int64_t now = clock_now();
    if (session_ended(hc, now)) {
        conn_respond(hc->conn, rid, STATUS_UNAUTHENTICATED, "session expired");
        expire(hc);
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

/* ---- authorization ------------------------------------------------------------ */

/* What authorization reads, owned by the dispatch of one request. */
struct target {
    struct rec_conv conv;
    struct rec_member member;
};

/* The id in f's body field `name`, when it has one of 16 bytes. */
static bool body_id(const Carechat__V1__Frame *f, const char *name, struct id *out) {
    ProtobufCBinaryData b;
    return proto_body_bytes(f, name, &b) && id_from_bytes(b.data, b.len, out) == 0;
}

/* False when f's body has a field `name` that is not a 16-byte id (empty is
 * allowed when `optional`). */
static bool id_field_ok(const Carechat__V1__Frame *f, const char *name, bool optional) {
    ProtobufCBinaryData b;
    return !proto_body_bytes(f, name, &b) || b.len == ID_LEN || (optional && b.len == 0);
}

/* The stage of the deactivated patient a review names (`reviewed_account_id`)
 * and the caller's relation to them; an active account (or none) is no
 * patient to review: AUTHZ_PURGED, so that nobody learns of it. */
static int reviewed(struct req *r, enum authz_relation *rel, enum authz_stage *stage) {
    int rc = req_review_access(r->h, &r->patient, &r->hc->account, r->hc->role, 0, rel, stage);
    if (rc == 0 && *stage == AUTHZ_LIVE)
        *stage = AUTHZ_PURGED;
    return rc;
}

/* The caller's relation to r->conv_id and the stage of its patient (a file
 * restored until `restored_until` is under review again), reading the
 * conversation and the caller's membership into t and pointing r at them.
 * Returns 0 or a store status. */
static int relation(struct req *r, struct target *t, int64_t restored_until,
                    enum authz_relation *rel, enum authz_stage *stage) {
    *rel = AUTHZ_STRANGER;
    *stage = AUTHZ_LIVE;
    int rc = req_read_conv(r->h, &r->conv_id, &t->conv);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_OK;
    if (rc != 0)
        return rc;
    r->conv = &t->conv;
    rc = req_read_member(r->h, &r->conv_id, &r->hc->account, &t->member);
    if (rc == 0 && t->member.state == REC_ACTIVE) {
        r->member = &t->member;
        *rel = t->conv.kind == REC_CARE_TEAM && t->conv.has_owner &&
                       id_equal(&t->conv.owner, &r->hc->account)
                   ? AUTHZ_OWNER
                   : AUTHZ_ACTIVE_MEMBER;
    } else if (rc != 0 && rc != STATUS_NOT_FOUND)
        return rc;
    if (!t->conv.has_owner)
        return STATUS_OK;
    r->has_patient = true;
    r->patient = t->conv.owner;
    return req_review_access(r->h, &t->conv.owner, &r->hc->account, r->hc->role, restored_until,
                             rel, stage);
}

/* The authorization check of every request (server/authz.h), after the
 * session check. Returns 0 when `r` may go on, or the status to answer. */
static int authorize(struct req *r, struct target *t) {
    const struct authz_rule *rule = &r->row->rule;
    struct hconn *hc = r->hc;
    struct authz_caller who = {.authenticated = hc->authenticated, .role = hc->role};
    enum authz_relation rel = AUTHZ_STRANGER;
    enum authz_stage stage = AUTHZ_LIVE;
    /* Ids are 16 bytes; a request naming a conversation it must be in names
     * one (BAD_REQUEST, as carechat.proto says, before anything is read). */
    if (!id_field_ok(r->frame, "conversation_id", !authz_needs_relation(rule)) ||
        !id_field_ok(r->frame, "patient_account_id", true) ||
        !id_field_ok(r->frame, "reviewed_account_id", true) ||
        !id_field_ok(r->frame, "account_id", true))
        return req_fail(r, STATUS_BAD_REQUEST, "ids must be 16 bytes");
    r->has_conv = body_id(r->frame, "conversation_id", &r->conv_id);
    /* A request naming a file is about the file's conversation. */
    if (!r->has_conv && !id_field_ok(r->frame, "file_id", false))
        return req_fail(r, STATUS_BAD_REQUEST, "ids must be 16 bytes");
    int64_t restored_until = 0; /* a restored file's end of review (RestoreFile) */
    if (!r->has_conv && body_id(r->frame, "file_id", &r->file_id)) {
        r->has_file = true;
        struct rec_file f;
        int frc = STATUS_NOT_FOUND;
        if (hc->authenticated && (authz_needs_relation(rule) || rule->read))
            frc = files_read(r->h, &r->file_id, &f);
        if (frc == 0) {
            r->has_conv = true;
            r->conv_id = f.conversation;
            restored_until = f.visible_until;
        } else if (frc != STATUS_NOT_FOUND) {
            return frc;
        }
    }
    if (r->has_conv && hc->authenticated && (rule->roles & (1u << hc->role)) &&
        (authz_needs_relation(rule) || rule->read)) {
        int rc = relation(r, t, restored_until, &rel, &stage);
        if (rc != 0)
            return rc;
    }
    if (!r->has_conv && hc->authenticated &&
        body_id(r->frame, "reviewed_account_id", &r->patient)) {
        r->has_patient = true;
        int rc = reviewed(r, &rel, &stage);
        if (rc != 0)
            return rc;
    }
    if (!r->has_patient)
        r->has_patient = body_id(r->frame, "patient_account_id", &r->patient);
    struct id named;
    bool names_other = rule->scope == AUTHZ_OWN_ACCOUNT &&
                       body_id(r->frame, "account_id", &named) && !id_equal(&named, &hc->account);
    if (rule->scope == AUTHZ_OWN_ACCOUNT) {
        rel = names_other ? AUTHZ_STRANGER : AUTHZ_OWNER;
        /* A patient's own backup is the patient's data (audit --patient). */
        if (!names_other && hc->authenticated && hc->role == REC_ROLE_PATIENT) {
            r->has_patient = true;
            r->patient = hc->account;
        }
    }
    int rc = authz_decide(rule, &who, rel, stage);
    if (rc == STATUS_UNAUTHENTICATED)
        conn_count_unauthenticated(r->conn);
    if (rc == 0)
        return 0;
    if (names_other && rc == STATUS_FORBIDDEN) {
        /* The refusal's record names the account asked for, and it as the
         * patient concerned when it is one. */
        struct rec_account a;
        if (req_read_account(r->h, &named, &a) == 0) {
            if (a.role == REC_ROLE_PATIENT) {
                r->has_patient = true;
                r->patient = named;
            }
            rec_account_cleanup(&a);
        }
        return req_deny(r, rc, "only the account itself may use its key backup", named.b, ID_LEN);
    }
    if (r->has_file)
        return req_deny(r, rc,
                        rc == STATUS_UNAUTHENTICATED ? "authenticate first"
                        : rc == STATUS_FORBIDDEN && stage != AUTHZ_LIVE
                            ? "read-only: the patient's account is deactivated"
                        : rc == STATUS_FORBIDDEN ? "not allowed for your role"
                                                 : "no such file",
                        r->file_id.b, ID_LEN);
    return req_deny(r, rc,
                    rc == STATUS_UNAUTHENTICATED ? "authenticate first"
                    : rc == STATUS_FORBIDDEN && stage != AUTHZ_LIVE
                        ? "read-only: the patient's account is deactivated"
                    : rc == STATUS_FORBIDDEN ? "not allowed for your role"
                                             : "no such conversation",
                    r->has_conv ? r->conv_id.b : NULL, r->has_conv ? ID_LEN : 0);
}

/* ---- running a request ----------------------------------------------------------- */

/* Answers RATE_LIMITED with the seconds to wait. */
static void respond_retry_after(struct conn *c, uint64_t rid, const char *detail,
                                uint32_t seconds) {
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    proto_response_frame(&frame, &resp, rid, STATUS_RATE_LIMITED, detail);
    resp.retry_after_s = seconds;
    conn_send(c, &frame);
}

/* Answers the failure `rc` of request `r` and audits it once when it is a
 * denial; releases the op the handler made and did not hand on. */
static void finish(struct req *r, int rc) {
    struct op *op = r->op;
    if (op)
        op->req = NULL;
    if (rc < 0) {
        const char *detail = r->detail ? r->detail : op ? op->detail : NULL;
        if (rc == STATUS_RATE_LIMITED && r->retry_after_s > 0)
            respond_retry_after(r->conn, r->id, detail, r->retry_after_s);
        else
            req_respond_error(r->conn, r->id, rc, detail);
        req_log_outcome(r->hc, r->row->rule.action, rc, NULL);
        if (req_is_denial(rc)) {
            bool who = r->hc->authenticated;
            req_audit(r->hc, who ? &r->hc->account : NULL, who ? &r->hc->device : NULL,
                      r->row->rule.action, rc, r->object_len ? r->object : NULL, r->object_len,
                      r->has_patient ? &r->patient : NULL, NULL, NULL);
        }
    }
    if (op && !op->handed)
        op_release(op);
}

/* Authorizes `r` and runs its handler. */
static void run(struct req *r) {
    struct target t;
    int rc = authorize(r, &t);
    if (rc == 0)
        rc = r->row->handle(r);
    finish(r, rc);
}

/* The state of a read waiting for its access record: the request, encoded,
 * and what its record names (for the window it opens, server/coalesce.h). */
struct audited_op {
    struct buf frame;
    struct coalesce_key key;
};

/* The access record of a read is durable (or failed): the read runs, checked
 * again, since membership may have ended meanwhile. */
static int audited_done(struct op *op, const struct op_result *res) {
    struct audited_op *a = OP_STATE(op, struct audited_op);
    struct hconn *hc = op->hc;
    int rc = STATUS_OK;
    if (res->status == 0)
        coalesce_opened(hc->h->reads, &a->key, clock_monotonic_ms());
    if (!op_live(op) || !hc->authenticated)
        goto out;
    if (res->status != 0) {
        rc = op_fail(op, STATUS_UNAVAILABLE, "cannot write the audit record");
        goto out;
    }
    Carechat__V1__Frame *f = NULL;
    if (proto_decode(NULL, a->frame.data, a->frame.len, &f) != 0) {
        rc = STATUS_INTERNAL;
        goto out;
    }
    struct req r = {
        .h = hc->h, .hc = hc, .conn = hc->conn, .id = op->request_id, .frame = f, .row = op->row};
    run(&r);
    proto_free(f);
out:
    buf_wipe(&a->frame);
    buf_cleanup(&a->frame);
    return rc;
}

/* The account a request names by `email` (LookupAccount), when there is one. */
static bool email_account(const struct req *r, struct id *out) {
    const char *email = proto_body_string(r->frame, "email");
    char normal[RULES_EMAIL_MAX + 1];
    uint8_t index[REC_HASH_LEN];
    if (!email || rules_normalize_email(email, normal) != 0)
        return false;
    store_blind_index(r->h->store, normal, strlen(normal), index);
    return req_find_email(r->h, index, out) == 0;
}

/* What the access record of read `r` names: the caller, the action, the
 * conversation, else the patient, else the account the request names (by id
 * or by email), the conversation's patient, and the client's address. */
static void read_key(const struct req *r, struct coalesce_key *k) {
    memset(k, 0, sizeof *k);
    k->actor = r->hc->account;
    k->device = r->hc->device;
    k->action = r->row->rule.action;
    struct id account;
    const struct id *object = r->has_file                                 ? &r->file_id
                              : r->has_conv                               ? &r->conv_id
                              : r->has_patient                            ? &r->patient
                              : body_id(r->frame, "account_id", &account) ? &account
                              : r->row->rule.scope == AUTHZ_OWN_ACCOUNT   ? &r->hc->account
                              : email_account(r, &account)                ? &account
                                                                          : NULL;
    if (object) {
        memcpy(k->object, object->b, ID_LEN);
        k->object_len = ID_LEN;
    }
    k->has_patient = r->has_patient;
    if (r->has_patient)
        k->patient = r->patient;
    req_source(r->hc, k->source);
    /* A file is read in many chunks: one access record covers every chunk of
     * it within the window (per-file audit of downloads). */
    if (r->has_file) {
        crypto_hash_sha256(k->request, r->file_id.b, ID_LEN);
        return;
    }
    /* The same request: its encoding, whatever its id. */
    Carechat__V1__Frame f = *r->frame;
    f.request_id = 1;
    struct buf b;
    buf_init(&b);
    if (proto_encode(&f, &b) == 0)
        crypto_hash_sha256(k->request, b.data, b.len);
    else
        randombytes_buf(k->request, sizeof k->request); /* never the same */
    buf_wipe(&b);
    buf_cleanup(&b);
}

/* A `read` row: appends its access record and runs the request once the
 * record is durable; UNAVAILABLE when it cannot be written (fail closed). */
static int audited_read(struct req *r, const struct coalesce_key *k) {
    struct op *op = op_new(r, sizeof(struct audited_op));
    struct audited_op *a = OP_STATE(op, struct audited_op);
    op->done = audited_done;
    op->audit_refusals = false;
    a->key = *k;
    buf_init(&a->frame);
    int rc = proto_encode(r->frame, &a->frame);
    if (rc == 0)
        rc = req_audit(r->hc, &k->actor, &k->device, k->action, 0, k->object_len ? k->object : NULL,
                       k->object_len, k->has_patient ? &k->patient : NULL, op_journal_done, op);
    if (rc != 0) {
        buf_cleanup(&a->frame);
        return req_fail(r, STATUS_UNAVAILABLE, "cannot write the audit record");
    }
    op_keep(op);
    return STATUS_OK;
}

/* A read: metered per account, checked, then answered under its own access
 * record, or under the durable one of the same read a moment ago. */
/* Takes a read token of the caller's account: true, or false with `r`
 * failed RATE_LIMITED. */
static bool read_token(struct req *r) {
    struct handlers *h = r->h;
    if (ratelimit_take(h->rl_read, r->hc->account.b, ID_LEN, clock_monotonic_ms()))
        return true;
    int64_t per_token = (int64_t)h->cfg.config->read_window_s * 1000 / h->cfg.config->read_burst;
    r->retry_after_s = (uint32_t)((per_token + 999) / 1000);
    req_fail(r, STATUS_RATE_LIMITED, "too many reads, retry later");
    return false;
}

static int read_request(struct req *r, struct target *t) {
    struct handlers *h = r->h;
    /* The chunks of one file count as one read: metered when they need a new
     * access record, below. */
    ProtobufCBinaryData file_field;
    bool per_file = proto_body_bytes(r->frame, "file_id", &file_field);
    if (!per_file && !read_token(r))
        return STATUS_RATE_LIMITED;
    /* Checked before its access record is written (a refusal is recorded as
     * one), and again when it runs. */
    int rc = authorize(r, t);
    if (rc != 0)
        return rc;
    struct coalesce_key k;
    read_key(r, &k);
    /* Coalesced only while the window's count can be written too. */
    bool covered =
        store_check_space(h->store) == 0 && coalesce_covered(h->reads, &k, clock_monotonic_ms());
    if (per_file && !covered && !read_token(r))
        return STATUS_RATE_LIMITED;
    if (!covered)
        return audited_read(r, &k);
    return r->row->handle(r);
}

static bool on_dispatch(void *ctx, void *state, const Carechat__V1__Frame *f) {
    struct hconn *hc = state;
    const struct request_row *row = request_row((uint32_t)f->body_case);
    if (!row)
        return false;
    struct req r = {
        .h = hc->h, .hc = hc, .conn = hc->conn, .id = f->request_id, .frame = f, .row = row};
    /* One answer per request id: a second request with the id of one still
     * in flight is refused, not run twice. */
    if (req_in_flight(hc, r.id)) {
        conn_respond(hc->conn, r.id, STATUS_CONFLICT, "request id in flight");
        return true;
    }
    if (row->rule.scope == AUTHZ_OPEN) {
        int rc = hc->authenticated ? req_fail(&r, STATUS_CONFLICT, "already authenticated")
                 : hc->auth_busy   ? req_fail(&r, STATUS_CONFLICT, "authentication in progress")
                                   : row->handle(&r);
        finish(&r, rc);
        return true;
    }
    if (hc->authenticated && !session_check(hc, r.id))
        return true;
    if (hc->authenticated && hc->enrol_only && !twofactor_enrolment_allows(f->body_case)) {
        finish(&r, req_deny(&r, STATUS_FORBIDDEN,
                            "two-factor sign-in required: enrol first (TotpEnroll, TotpConfirm)",
                            NULL, 0));
        return true;
    }
    if (!row->rule.read) {
        run(&r);
        return true;
    }
    struct target t;
    finish(&r, read_request(&r, &t));
    return true;
}

static void *on_attach(void *ctx, struct conn *c) {
    return req_hconn_attach(ctx, c);
}

static void on_detach(void *ctx, void *state) {
    if (state) {
        notify_device_left(state);
        req_hconn_detach(state);
    }
}

static void on_response(void *ctx, void *state, const Carechat__V1__Frame *f) {
    struct hconn *hc = state;
    if (hc->authenticated)
        delivery_on_response(hc);
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void emit_repeats(void *ctx, const struct coalesce_key *k, uint32_t repeated) {
    req_audit_repeats(ctx, k, repeated);
}

int handlers_new(const struct handlers_config *cfg, struct handlers **out) {
    const struct server_config *sc = cfg->config;
    struct handlers *h = xcalloc(1, sizeof *h);
    h->cfg = *cfg;
    h->store = cfg->store;
    h->reader = store_reader_new(cfg->store);
    h->journal = cfg->journal;
    h->invite_ttl_ms = (int64_t)sc->invite_ttl_s * 1000;
    h->reset_ttl_ms = (int64_t)sc->password_reset_ttl_s * 1000;
    h->session_idle_ms = (int64_t)sc->session_idle_s * 1000;
    h->session_max_ms = (int64_t)sc->session_max_s * 1000;
    h->password_min = sc->password_min;
    snprintf(h->password_rule, sizeof h->password_rule, "passwords are %u..%u bytes",
             sc->password_min, RULES_PASSWORD_MAX);
    if (sc->holidays_file) {
        char why[256];
        size_t n = 0;
        h->holidays = xcalloc(CONFIG_HOLIDAYS_MAX, sizeof *h->holidays);
        if (calendar_load(sc->holidays_file, h->holidays, CONFIG_HOLIDAYS_MAX, &n, why,
                          sizeof why) != 0) {
            log_error("handlers", "--holidays: %s", why);
            free(h->holidays);
            store_reader_free(h->reader);
            free(h);
            return STATUS_BAD_REQUEST;
        }
        h->calendar = (struct calendar){h->holidays, n};
    }
    int64_t window = (int64_t)sc->login_window_s * 1000;
    struct pwhash_config pc = {
        .opslimit = sc->pwhash_ops,
        .memlimit = (size_t)sc->pwhash_mem,
        .workers = sc->pwhash_workers,
        .wake = cfg->wake,
        .wake_ctx = cfg->wake_ctx,
    };
    /* After the free failures each further one waits: from a second,
     * doubling, up to 15 minutes. */
    struct lockout_config lc = {.base_ms = 1000, .max_ms = 15 * 60 * 1000, .forget_ms = window};
    int rc = pwhash_new(&pc, &h->pw);
    lc.free_failures = sc->login_burst_per_ip;
    if (rc == 0)
        rc = lockout_new(&lc, &h->lo_net);
    lc.free_failures = sc->login_burst;
    if (rc == 0)
        rc = lockout_new(&lc, &h->lo_account_net);
    lc.free_failures = sc->login_failures_per_account;
    if (rc == 0)
        rc = lockout_new(&lc, &h->lo_account);
    if (rc == 0)
        rc = ratelimit_new(&(struct ratelimit_config){.burst = 60, .window_ms = 60000},
                           &h->rl_lookup);
    if (rc == 0)
        rc = ratelimit_new(&(struct ratelimit_config){.burst = sc->invite_burst,
                                                      .window_ms = sc->invite_window_s * 1000ll},
                           &h->rl_invite);
    if (rc == 0)
        rc = ratelimit_new(
            &(struct ratelimit_config){.burst = sc->read_burst,
                                       .window_ms = (int64_t)sc->read_window_s * 1000},
            &h->rl_read);
    if (rc == 0)
        rc = ratelimit_new(&(struct ratelimit_config){.burst = sc->upload_burst,
                                                      .window_ms = sc->upload_window_s * 1000ll},
                           &h->rl_upload);
    int64_t reset_window = (int64_t)sc->password_reset_window_s * 1000;
    if (rc == 0)
        rc = ratelimit_new(&(struct ratelimit_config){.burst = sc->password_reset_burst,
                                                      .window_ms = reset_window},
                           &h->rl_reset_email);
    if (rc == 0)
        rc = ratelimit_new(&(struct ratelimit_config){.burst = sc->password_reset_burst_per_ip,
                                                      .window_ms = reset_window},
                           &h->rl_reset_net);
    h->files = xcalloc(1, sizeof *h->files);
    coalesce_new(0, (int64_t)sc->audit_coalesce_s * 1000, emit_repeats, h, &h->reads);
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
    lockout_free(h->lo_net);
    lockout_free(h->lo_account_net);
    lockout_free(h->lo_account);
    ratelimit_free(h->rl_lookup);
    ratelimit_free(h->rl_invite);
    ratelimit_free(h->rl_upload);
    ratelimit_free(h->rl_reset_email);
    ratelimit_free(h->rl_reset_net);
    free(h->files);
    ratelimit_free(h->rl_read);
    coalesce_free(h->reads);
    messaging_free(h->msg);
    free(h->holidays);
    store_reader_free(h->reader);
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
    audit_queries_poll(h);
}

void handlers_draining(struct handlers *h) {
    h->draining = true;
}

bool handlers_device_online(void *ctx, const struct id *device) {
    struct handlers *h = ctx;
    for (struct hconn *hc = req_device_first(h, device); hc; hc = req_device_next(hc))
        if (hc->authenticated)
            return true;
    return false;
}

void handlers_tick(struct handlers *h) {
    int64_t now = clock_now();
    for (struct hconn *x = h->conns; x; x = x->next)
        if (x->authenticated && x->conn && session_ended(x, now))
            expire(x);
    coalesce_tick(h->reads, clock_monotonic_ms());
    files_gc(h);
    audit_anchor(h->store, h->cfg.config->audit_anchor_every, &h->audit_anchored);
}

void handlers_stopping(struct handlers *h) {
    coalesce_tick(h->reads, INT64_MAX);
}

void handlers_render_metrics(struct handlers *h, struct buf *out) {
    files_render_metrics(h, out);
}

void handlers_http_handler(struct handlers *h, struct http_handler *out) {
    files_http_handler(h, out);
}
