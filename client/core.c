/*
 * client/core.c: libcarechat's connection and request core (client/core.h):
 * errors and events of a handle, the connection and its request/response loop,
 * the server's requests answered and their deliveries queued, and the session.
 *
 * Session states of a handle:
 *
 *   [no session] --login/register OK--> [authenticated]
 *        ^   ^                               |  new handle or reconnect:
 *        |   |                               v
 *        |   +--UNAUTHENTICATED------- [stored] --Authenticate OK--> [authenticated]
 *        |                                                               |
 *        +------------logout, SessionRevoked------------------------------+
 *
 * Invariants: `authenticated` implies an open transport whose session was
 * established by this handle; the profile on disk is rewritten whenever the
 * ids, the published version or the session change; every request gets a
 * request id one above the previous on its connection; the delivery queue
 * holds only frames of the current connection. Calls no other file of
 * libcarechat (core.h draws the layers). Runs on the caller's thread only.
 */
#include "client/core.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "client/envelope.h"
#include "client/hpke.h"
#include "client/profile.h"
#include "client/statement.h"
#include "client/transport.h"
#include "protocol/proto.h"
#include "protocol/transcript.h"

#define MOD "carechat"
#define MAX_DETAIL 256

const char *carechat_revoke_reason_name(int reason) {
    switch (reason) {
    case CARECHAT_REVOKE_EXPIRED:
        return "expired";
    case CARECHAT_REVOKE_LOGGED_OUT:
        return "logged out";
    case CARECHAT_REVOKE_DEVICE_REMOVED:
        return "device removed";
    case CARECHAT_REVOKE_ACCOUNT_DEACTIVATED:
        return "account deactivated";
    default:
        return "unspecified";
    }
}

/* ---- errors ---- */

int cc_fail(struct carechat *c, int status, enum carechat_error_kind kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->err_status = status;
    c->err_kind = kind;
    return status;
}

void cc_clear_error(struct carechat *c) {
    c->err[0] = '\0';
    c->err_status = 0;
    c->err_kind = CARECHAT_ERROR_NONE;
}

const char *carechat_error(const struct carechat *c) {
    return c->err;
}

enum carechat_error_kind carechat_error_kind(const struct carechat *c) {
    return c->err_kind;
}

/* The server's detail text, reduced to printable ASCII so that it cannot drive a
 * terminal. */
static void clean_detail(const char *in, char out[MAX_DETAIL + 1]) {
    size_t n = 0;
    for (; in != NULL && in[n] != '\0' && n < MAX_DETAIL; n++)
        out[n] = (in[n] >= 0x20 && in[n] < 0x7f) ? in[n] : '?';
    out[n] = '\0';
}

/* Records a refusal by the server: `what` says what was refused, `hint` (may be
 * NULL) what it means for the user. Returns the status. */
int cc_refused(struct carechat *c, const Carechat__V1__Response *r, const char *what,
               const char *hint) {
    char detail[MAX_DETAIL + 1];
    clean_detail(r->detail, detail);
    int status = -(int)r->status;
    return cc_fail(c, status, CARECHAT_ERROR_SERVER, "%s: %s (server: %s%s%s)", what,
                   hint != NULL ? hint : "refused", status_str(status), detail[0] ? ", " : "",
                   detail);
}

/* ---- profile ---- */

int cc_forget_device_keys(struct carechat *c) {
    struct profile *fresh = NULL;
    CHECK(profile_new(&fresh) == 0);
    memcpy(fresh->server_url, c->profile->server_url, sizeof fresh->server_url);
    memcpy(fresh->ca_file, c->profile->ca_file, sizeof fresh->ca_file);
    profile_free(c->profile); /* wipes */
    c->profile = fresh;
    c->authenticated = false;
    c->have_info = false;
    c->awaiting_approval = false;
    return cc_save_profile(c);
}

int cc_save_profile(struct carechat *c) {
    int rc = profile_save(c->profile_dir, c->profile);
    if (rc == STATUS_FORBIDDEN)
        return cc_fail(c, rc, CARECHAT_ERROR_PROFILE,
                       "profile %s is accessible by other users (it must be mode 0700)",
                       c->profile_dir);
    if (rc != 0)
        return cc_fail(c, rc, CARECHAT_ERROR_PROFILE, "cannot write the profile in %s",
                       c->profile_dir);
    return 0;
}

int cc_drop_session(struct carechat *c) {
    c->authenticated = false;
    c->have_info = false;
    if (!c->profile->has_session)
        return 0;
    c->profile->has_session = false;
    sodium_memzero(c->profile->session_token, sizeof c->profile->session_token);
    c->profile->session_expires_at = 0;
    c->profile->session_stay_signed_in = false;
    return profile_save(c->profile_dir, c->profile);
}

void cc_own_keys(const struct profile *p, struct cc_own_keys *out,
                 struct envelope_identity **identity_out) {
    struct envelope_identity *identity = NULL;
    CHECK(envelope_identity_import(p->identity_seed, &identity) == 0);
    envelope_identity_public(identity, out->identity_pk);
    CHECK(crypto_scalarmult_base(out->encryption_pk, p->encryption_secret) == 0);
    uint8_t statement[STATEMENT_ENCRYPTION_KEY_LEN];
    statement_encryption_key(out->encryption_pk, p->encryption_key_id, p->encryption_key_expires_at,
                             statement);
    envelope_identity_sign(identity, statement, sizeof statement, out->signature);
    if (identity_out != NULL)
        *identity_out = identity;
    else
        envelope_identity_free(identity);
}

/* ---- deliveries ---- */

static void drop_deliveries(struct cc_deliveries *d) {
    for (size_t i = 0; i < d->count; i++)
        proto_free(d->queue[(d->head + i) % CARECHAT_MAX_QUEUED]);
    d->head = d->count = 0;
}

void cc_deliveries_restart(struct carechat *c) {
    struct cc_deliveries *d = &c->deliveries;
    drop_deliveries(d);
    d->queue_empty = d->overflowed = false;
    d->synced = true;
}

Carechat__V1__Frame *cc_take_delivery(struct carechat *c) {
    struct cc_deliveries *d = &c->deliveries;
    if (d->count == 0)
        return NULL;
    Carechat__V1__Frame *f = d->queue[d->head];
    d->head = (d->head + 1) % CARECHAT_MAX_QUEUED;
    d->count--;
    return f;
}

static bool get_id(ProtobufCBinaryData b, struct id *out) {
    return id_from_bytes(b.data, b.len, out) == 0;
}

/* A Delivery, QueueEmpty or TypingEvent request `f` the server made (already
 * answered OK): queues the delivery, notes the end of the replay or queues a
 * typing event. Takes ownership of `f`. */
static void take_server_item(struct carechat *c, Carechat__V1__Frame *f) {
    struct cc_deliveries *d = &c->deliveries;
    if (f->body_case == CARECHAT__V1__FRAME__BODY_TYPING_EVENT) {
        struct carechat_event e;
        memset(&e, 0, sizeof e);
        e.kind = CARECHAT_EVENT_TYPING;
        if (get_id(f->typing_event->conversation_id, &e.conversation_id) &&
            get_id(f->typing_event->account_id, &e.account_id)) {
            e.typing = f->typing_event->typing;
            cc_push_event(c, &e);
        }
        proto_free(f);
        return;
    }
    if (f->body_case == CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY) {
        if (!d->overflowed) {
            d->queue_empty = true;
            d->queue_empty_at = clock_monotonic_ms();
        }
        proto_free(f);
        return;
    }
    /* a Delivery */
    if (d->overflowed || !d->synced) {
        proto_free(f);
        return;
    }
    if (d->count == CARECHAT_MAX_QUEUED) {
        log_warn(MOD, "delivery queue full: the rest comes again after a new Sync");
        d->overflowed = true;
        d->queue_empty = false;
        proto_free(f);
        return;
    }
    d->queue[(d->head + d->count) % CARECHAT_MAX_QUEUED] = f;
    d->count++;
}

/* ---- connection and the request/response core ---- */

static int connection_failed(struct carechat *c, int rc, const char *what) {
    if (rc == STATUS_UNAVAILABLE)
        return cc_fail(c, rc, CARECHAT_ERROR_CONNECTION, "%s: no answer from %s in time", what,
                       c->server_url);
    if (rc == STATUS_TOO_LARGE)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_CONNECTION,
                       "%s: the server sent a message over the frame limit", what);
    int code = c->t != NULL ? transport_close_code(c->t) : 0;
    if (code != 0)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_CONNECTION,
                       "%s: the connection to %s was closed (code %d)", what, c->server_url, code);
    return cc_fail(c, STATUS_IO, CARECHAT_ERROR_CONNECTION, "%s: connection to %s failed", what,
                   c->server_url);
}

void cc_disconnect(struct carechat *c, int linger_ms) {
    transport_close(c->t, linger_ms);
    c->t = NULL;
    c->authenticated = false;
    drop_deliveries(&c->deliveries);
    c->deliveries.synced = c->deliveries.queue_empty = c->deliveries.overflowed = false;
}

static int ensure_connected(struct carechat *c) {
    if (c->t != NULL && transport_is_open(c->t))
        return 0;
    cc_disconnect(c, 0);
    c->last_request_id = 0;
    c->ended_by = 0;
    struct transport_config tc = {
        .url = c->server_url,
        .ca_file = c->ca_file,
        .deadline_ms = clock_monotonic_ms() + c->connect_timeout_ms,
    };
    char reason[160];
    int rc = transport_open(&tc, &c->t, reason, sizeof reason);
    if (rc == STATUS_UNAVAILABLE)
        return cc_fail(c, rc, CARECHAT_ERROR_CONNECTION, "cannot connect to %s: timed out",
                       c->server_url);
    if (rc != 0)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_CONNECTION, "cannot connect to %s: %s%s",
                       c->server_url,
                       reason[0] ? reason : "refused, unreachable, or not a carechat.v1 server",
                       strstr(reason, "SSL") != NULL || strstr(reason, "tls") != NULL
                           ? " (is the server's certificate trusted? see ca_file / --ca-file)"
                           : "");
    return 0;
}

void cc_push_event(struct carechat *c, const struct carechat_event *e) {
    if (c->event_count == CARECHAT_MAX_EVENTS) {
        c->event_head = (c->event_head + 1) % CARECHAT_MAX_EVENTS;
        c->event_count--;
    }
    c->events[(c->event_head + c->event_count) % CARECHAT_MAX_EVENTS] = *e;
    c->event_count++;
}

int carechat_next_event(struct carechat *c, struct carechat_event *out) {
    if (c->event_count == 0)
        return STATUS_NOT_FOUND;
    *out = c->events[c->event_head];
    c->event_head = (c->event_head + 1) % CARECHAT_MAX_EVENTS;
    c->event_count--;
    return 0;
}

static int send_frame(struct carechat *c, const Carechat__V1__Frame *f, int64_t deadline) {
    struct buf wire;
    buf_init(&wire);
    CHECK(proto_encode(f, &wire) == 0);
    int rc = transport_send(c->t, wire.data, wire.len, deadline);
    buf_wipe(&wire);
    buf_cleanup(&wire);
    return rc;
}

/* Answers a request the server made and records what the application should
 * know. Takes ownership of `f`. */
static void answer_server(struct carechat *c, Carechat__V1__Frame *f, int64_t deadline) {
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    struct carechat_event e;
    memset(&e, 0, sizeof e);
    switch (f->body_case) {
    case CARECHAT__V1__FRAME__BODY_SESSION_REVOKED:
        proto_response_frame(&frame, &resp, f->request_id, 0, NULL);
        e.kind = CARECHAT_EVENT_SESSION_REVOKED;
        e.revoke_reason = (int)f->session_revoked->reason;
        cc_push_event(c, &e);
        c->ended_by = CARECHAT_EVENT_SESSION_REVOKED;
        c->revoke_reason = e.revoke_reason;
        if (cc_drop_session(c) != 0)
            log_warn(MOD, "could not remove the revoked session from the profile");
        break;
    case CARECHAT__V1__FRAME__BODY_REPLACED_ELSEWHERE:
        proto_response_frame(&frame, &resp, f->request_id, 0, NULL);
        e.kind = CARECHAT_EVENT_REPLACED_ELSEWHERE;
        cc_push_event(c, &e);
        c->ended_by = CARECHAT_EVENT_REPLACED_ELSEWHERE;
        c->authenticated = false;
        break;
    case CARECHAT__V1__FRAME__BODY_DELIVERY:
    case CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY:
    case CARECHAT__V1__FRAME__BODY_TYPING_EVENT:
        proto_response_frame(&frame, &resp, f->request_id, 0, NULL);
        (void)send_frame(c, &frame, deadline);
        take_server_item(c, f);
        return;
    default:
        log_warn(MOD, "server request %s not handled by this client", proto_body_name(f));
        proto_response_frame(&frame, &resp, f->request_id, STATUS_BAD_REQUEST,
                             "not handled by this client");
        break;
    }
    (void)send_frame(c, &frame, deadline);
    proto_free(f);
}

/* Receives and decodes one frame; handles it unless it is the response to
 * `want` (non-zero), which is stored in *out. Returns 0 (a frame was
 * handled, or *out set), or the transport's status. */
static int receive_among(struct carechat *c, int64_t deadline, const uint64_t *want, size_t n_want,
                         Carechat__V1__Frame **out) {
    struct buf wire;
    buf_init(&wire);
    int rc = transport_recv(c->t, deadline, &wire);
    if (rc != 0) {
        buf_cleanup(&wire);
        return rc;
    }
    Carechat__V1__Frame *f = NULL;
    int drc = proto_decode(NULL, wire.data, wire.len, &f);
    buf_wipe(&wire);
    buf_cleanup(&wire);
    if (drc != 0) {
        log_warn(MOD, "undecodable frame from the server (%s)", status_str(drc));
        return 0;
    }
    if (f->body_case == CARECHAT__V1__FRAME__BODY_RESPONSE) {
        for (size_t i = 0; i < n_want; i++) {
            if (want[i] != 0 && f->request_id == want[i]) {
                *out = f;
                return 0;
            }
        }
        log_warn(MOD, "response to unknown request %" PRIu64, f->request_id);
        proto_free(f);
        return 0;
    }
    answer_server(c, f, deadline);
    return 0;
}

static int receive_one(struct carechat *c, int64_t deadline, uint64_t want,
                       Carechat__V1__Frame **out) {
    return receive_among(c, deadline, &want, 1, out);
}

/* Records why the connection failed during `what`, closes it, returns the
 * status. */
static int lost(struct carechat *c, int rc, const char *what) {
    if (c->ended_by == CARECHAT_EVENT_REPLACED_ELSEWHERE)
        rc = cc_fail(c, STATUS_IO, CARECHAT_ERROR_CONNECTION,
                     "%s: this device connected to the server elsewhere, which closed this "
                     "connection",
                     what);
    else if (c->ended_by == CARECHAT_EVENT_SESSION_REVOKED)
        rc = cc_fail(c, STATUS_UNAUTHENTICATED, CARECHAT_ERROR_SESSION,
                     "%s: the server ended the session (%s): run carechat login", what,
                     carechat_revoke_reason_name(c->revoke_reason));
    else
        rc = connection_failed(c, rc, what);
    cc_disconnect(c, 0);
    return rc;
}

int cc_call(struct carechat *c, Carechat__V1__Frame *req, const char *what,
            Carechat__V1__Frame **out) {
    const int64_t deadline = clock_monotonic_ms() + c->request_timeout_ms;
    req->request_id = ++c->last_request_id;
    int rc = send_frame(c, req, deadline);
    if (rc != 0) {
        /* Still read what the server had sent before the connection ended (a
         * ReplacedElsewhere, a SessionRevoked), without waiting for more. */
        for (int i = 0; i < TRANSPORT_MAX_QUEUED && receive_one(c, 0, 0, NULL) == 0; i++)
            ;
        return lost(c, rc, what);
    }
    Carechat__V1__Frame *resp = NULL;
    while (resp == NULL) {
        rc = receive_one(c, deadline, req->request_id, &resp);
        if (rc != 0)
            return lost(c, rc, what);
    }
    *out = resp;
    return 0;
}

int cc_send(struct carechat *c, Carechat__V1__Frame *req, const char *what, int64_t deadline,
            uint64_t *id) {
    req->request_id = ++c->last_request_id;
    int rc = send_frame(c, req, deadline);
    if (rc != 0)
        return lost(c, rc, what);
    *id = req->request_id;
    return 0;
}

int cc_await(struct carechat *c, const uint64_t *ids, size_t n, const char *what, int64_t deadline,
             Carechat__V1__Frame **out) {
    Carechat__V1__Frame *resp = NULL;
    while (resp == NULL) {
        int rc = receive_among(c, deadline, ids, n, &resp);
        if (rc != 0)
            return lost(c, rc, what);
    }
    *out = resp;
    return 0;
}

int cc_pump(struct carechat *c, int64_t deadline) {
    int rc = receive_one(c, deadline, 0, NULL);
    if (rc == STATUS_UNAVAILABLE && transport_is_open(c->t))
        return rc;
    if (rc != 0)
        return lost(c, rc, "receiving");
    return 0;
}

/* 0 when `f` answers OK with a result of `result_case`; otherwise records the
 * failure (the server's refusal, or a malformed answer) and returns it. */
int cc_expect(struct carechat *c, const Carechat__V1__Frame *f,
              Carechat__V1__Response__ResultCase result_case, const char *what, const char *hint) {
    const Carechat__V1__Response *r = f->response;
    if (r->status != CARECHAT__V1__STATUS__OK)
        return cc_refused(c, r, what, hint);
    if (r->result_case != result_case)
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "%s: malformed answer from the server", what);
    return 0;
}

int cc_request(struct carechat *c, Carechat__V1__Frame *req,
               Carechat__V1__Response__ResultCase result_case, const char *what,
               const struct cc_hint *hints, Carechat__V1__Frame **out) {
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_call(c, req, what, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__Status st = resp->response->status;
    const char *hint = NULL;
    if (hints != NULL) {
        size_t i = 0;
        while (hints[i].status != CARECHAT__V1__STATUS__OK && hints[i].status != st)
            i++;
        hint = hints[i].text;
    }
    rc = cc_expect(c, resp, result_case, what, hint);
    if (rc != 0) {
        cc_free_response(resp);
        return rc;
    }
    *out = resp;
    return 0;
}

/* Frees a response frame after wiping the session token it may carry. */
void cc_free_response(Carechat__V1__Frame *f) {
    if (f != NULL && f->body_case == CARECHAT__V1__FRAME__BODY_RESPONSE &&
        f->response->result_case == CARECHAT__V1__RESPONSE__RESULT_SESSION) {
        ProtobufCBinaryData *tok = &f->response->session->session_token;
        if (tok->data != NULL)
            sodium_memzero(tok->data, tok->len);
    }
    proto_free(f);
}

size_t cc_copy_text(char *out, size_t cap, const char *in) {
    size_t n = in != NULL ? strlen(in) : 0;
    if (n >= cap)
        n = cap - 1;
    /* Cut at a UTF-8 character boundary. */
    while (n > 0 && in[n] != '\0' && ((unsigned char)in[n] & 0xc0) == 0x80)
        n--;
    if (n > 0)
        memcpy(out, in, n);
    out[n] = '\0';
    return n;
}

/* Remembers in the profile the server this handle logged in to and its CA
 * file (as an absolute path), so that later handles need neither. */
static void remember_server(struct carechat *c) {
    struct profile *p = c->profile;
    if (profile_text_ok(c->server_url))
        snprintf(p->server_url, sizeof p->server_url, "%s", c->server_url);
    p->ca_file[0] = '\0';
    char abs[PATH_MAX];
    if (c->ca_file != NULL && realpath(c->ca_file, abs) != NULL && profile_text_ok(abs))
        memcpy(p->ca_file, abs, strlen(abs) + 1); /* (at most PROFILE_MAX_TEXT) */
}

/* Takes the session from a SessionResult: ids, role, name, expiry, and (after
 * Login or Register) the token, and saves the profile. */
int cc_take_session(struct carechat *c, const Carechat__V1__SessionResult *s, bool new_token,
                    const char *what) {
    struct profile *p = c->profile;
    struct carechat_session_info info;
    memset(&info, 0, sizeof info);
    if (id_from_bytes(s->account_id.data, s->account_id.len, &info.account_id) != 0 ||
        id_from_bytes(s->device_id.data, s->device_id.len, &info.device_id) != 0 ||
        (new_token && s->session_token.len != PROFILE_TOKEN_LEN))
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "%s: malformed session from the server", what);
    if (p->has_device && memcmp(info.device_id.b, p->device_id.b, ID_LEN) != 0)
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "%s: the server answered for another device", what);
    info.role = s->role >= CARECHAT__V1__ROLE__PATIENT && s->role <= CARECHAT__V1__ROLE__SYSADMIN
                    ? (enum carechat_role)s->role
                    : CARECHAT_ROLE_UNSPECIFIED;
    cc_copy_text(info.display_name, sizeof info.display_name, s->display_name);
    info.expires_at = s->expires_at;
    info.idle_expires_at = s->idle_expires_at;
    info.must_enrol_second_factor = s->must_enrol_second_factor;
    c->info = info;
    c->have_info = true;
    c->authenticated = true;
    if (!new_token)
        return 0;
    if (!p->has_device) {
        p->has_device = true;
        p->account_id = info.account_id;
        p->device_id = info.device_id;
        p->device_list_version = 0;
    }
    memcpy(p->session_token, s->session_token.data, PROFILE_TOKEN_LEN);
    remember_server(c);
    p->session_expires_at = s->expires_at;
    p->session_stay_signed_in = s->stay_signed_in;
    p->has_session = true;
    c->revoke_reason = 0;
    return cc_save_profile(c);
}

/* ---- device lists ---- */

/* Checks an account's signed list: its account, shape, signer and signature
 * over carechat.proto's layout. Copies its entries to `entries` (room for
 * STATEMENT_MAX_DEVICES) and their count to *n. */
int cc_verify_list(struct carechat *c, const struct id *account,
                   const Carechat__V1__DeviceList *list, struct statement_device *entries,
                   size_t *n, uint8_t *hash) {
    *n = 0;
    if (list == NULL || list->version == 0)
        return 0;
    if (list->account_id.len != ID_LEN || memcmp(list->account_id.data, account->b, ID_LEN) != 0 ||
        list->n_devices == 0 || list->n_devices > STATEMENT_MAX_DEVICES ||
        list->signature.len != ENVELOPE_SIG_LEN || list->signer_device_id.len != ID_LEN ||
        (list->version == 1 ? list->prev_list_hash.len != 0
                            : list->prev_list_hash.len != STATEMENT_HASH_LEN))
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "the account's device list is malformed");
    const uint8_t *signer_pk = NULL;
    for (size_t i = 0; i < list->n_devices; i++) {
        const Carechat__V1__DeviceListEntry *e = list->devices[i];
        if (id_from_bytes(e->device_id.data, e->device_id.len, &entries[i].device_id) != 0 ||
            e->identity_key.len != STATEMENT_KEY_LEN)
            return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                           "the account's device list is malformed");
        memcpy(entries[i].identity_key, e->identity_key.data, STATEMENT_KEY_LEN);
        if (memcmp(e->device_id.data, list->signer_device_id.data, ID_LEN) == 0)
            signer_pk = entries[i].identity_key;
    }
    struct buf statement;
    buf_init(&statement);
    int rc = statement_device_list(account, list->version, entries, list->n_devices,
                                   list->prev_list_hash.len ? list->prev_list_hash.data : NULL,
                                   &statement);
    if (rc == 0 && signer_pk == NULL)
        rc = STATUS_CORRUPT;
    if (rc == 0)
        rc = envelope_signature_verify(signer_pk, statement.data, statement.len,
                                       list->signature.data);
    if (rc == 0 && hash != NULL)
        crypto_hash_sha256(hash, statement.data, statement.len);
    buf_cleanup(&statement);
    if (rc != 0)
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "the account's device list (version %" PRIu64 ") does not verify: "
                       "do not trust this server's device data",
                       list->version);
    *n = list->n_devices;
    return 0;
}

/* Asks for the caller's own account's devices; on success *out is the
 * response frame (cc_free_response()) and *acct points into it. */
int cc_list_own_devices(struct carechat *c, const char *what, Carechat__V1__Frame **out,
                        const Carechat__V1__AccountDevices **acct) {
    ProtobufCBinaryData ids[1] = {{ID_LEN, c->profile->account_id.b}};
    Carechat__V1__ListDevices ld;
    carechat__v1__list_devices__init(&ld);
    ld.n_account_ids = 1;
    ld.account_ids = ids;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_LIST_DEVICES;
    req.list_devices = &ld;
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_DEVICE_BUNDLES, what, NULL, &resp);
    if (rc == 0) {
        const Carechat__V1__DeviceBundles *b = resp->response->device_bundles;
        *acct = NULL;
        for (size_t i = 0; i < b->n_accounts; i++)
            if (b->accounts[i]->account_id.len == ID_LEN &&
                memcmp(b->accounts[i]->account_id.data, c->profile->account_id.b, ID_LEN) == 0)
                *acct = b->accounts[i];
        if (*acct == NULL)
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                         "%s: the server did not list this account", what);
    }
    if (rc != 0) {
        cc_free_response(resp);
        return rc;
    }
    *out = resp;
    return 0;
}

int cc_pins(struct carechat *c, struct pins **out) {
    if (c->pins == NULL) {
        int rc = pins_load(c->profile_dir, &c->pins);
        if (rc != 0)
            return cc_fail(c, rc, CARECHAT_ERROR_PROFILE,
                           "the profile's pinned device lists cannot be read (%s)", status_str(rc));
    }
    *out = c->pins;
    return 0;
}

static void list_event(struct carechat *c, enum carechat_event_kind kind,
                       const struct id *account) {
    struct carechat_event e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.account_id = *account;
    cc_push_event(c, &e);
}

int cc_trusted_list(struct carechat *c, const struct id *account,
                    const Carechat__V1__DeviceList *list, struct statement_device *entries,
                    size_t *n, bool *blocked) {
    *blocked = false;
    struct pins *pins = NULL;
    int rc = cc_pins(c, &pins);
    if (rc != 0)
        return rc;
    struct pins_list shown;
    memset(&shown, 0, sizeof shown);
    shown.account = *account;
    rc = cc_verify_list(c, account, list, shown.devs, &shown.n, shown.hash);
    if (rc != 0)
        return rc;
    shown.version = list != NULL ? list->version : 0;
    const struct pins_list *pin = pins_find(pins, account);
    if (shown.version == 0) {
        if (pin != NULL)
            return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_TRUST,
                           "the server shows no device list for an account whose list version "
                           "%" PRIu64 " this device pinned: refused (rollback)",
                           pin->version);
        *n = 0;
        return 0;
    }
    struct id signer;
    memcpy(signer.b, list->signer_device_id.data, ID_LEN);
    const uint8_t *signer_key = NULL;
    for (size_t i = 0; i < shown.n; i++)
        if (id_equal(&shown.devs[i].device_id, &signer))
            signer_key = shown.devs[i].identity_key;
    enum pins_verdict v = pins_judge(pins, &shown, &signer, signer_key,
                                     list->prev_list_hash.len ? list->prev_list_hash.data : NULL);
    const bool pending = pins_pending(pins, account) != NULL;
    switch (v) {
    case PINS_ROLLBACK:
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_TRUST,
                       "the server sent an older device list (version %" PRIu64
                       " after the pinned %" PRIu64 "): refused; do not trust this server's "
                       "device data",
                       shown.version, pin->version);
    case PINS_SAME:
        break;
    case PINS_FIRST_USE:
    case PINS_NEXT:
        if (pending)
            break; /* the user has not confirmed the earlier change yet */
        if ((rc = pins_accept(pins, &shown)) != 0 || (rc = pins_save(c->profile_dir, pins)) != 0)
            return cc_fail(c, rc, CARECHAT_ERROR_PROFILE, "cannot pin a device list (%s)",
                           status_str(rc));
        if (v == PINS_FIRST_USE && !id_equal(account, &c->profile->account_id)) {
            log_info(MOD, "first device list of an account pinned: trust on first use "
                          "(compare safety numbers to be sure)");
            list_event(c, CARECHAT_EVENT_TRUST_FIRST_USE, account);
        }
        break;
    case PINS_CHANGED: {
        const struct pins_list *old = pins_pending(pins, account);
        if (old == NULL || memcmp(old->hash, shown.hash, STATEMENT_HASH_LEN) != 0) {
            if ((rc = pins_set_pending(pins, &shown)) != 0 ||
                (rc = pins_save(c->profile_dir, pins)) != 0)
                return cc_fail(c, rc, CARECHAT_ERROR_PROFILE,
                               "cannot record a changed device list (%s)", status_str(rc));
            log_warn(MOD, "an account's device list changed without the approval of a "
                          "pinned device: sending to it stops until the user confirms");
            list_event(c, CARECHAT_EVENT_IDENTITY_CHANGED, account);
        }
        break;
    }
    }
    pin = pins_find(pins, account);
    *blocked = pins_pending(pins, account) != NULL;
    if (*blocked || v == PINS_SAME) {
        /* Trust what was pinned, never the unconfirmed list. */
        memcpy(entries, pin->devs, pin->n * sizeof *entries);
        *n = pin->n;
    } else {
        memcpy(entries, shown.devs, shown.n * sizeof *entries);
        *n = shown.n;
    }
    return 0;
}

/* Publishes version `version` + 1 of the account's list: the `n` devices at
 * `entries`, following the list whose hash is `prev_hash` (NULL for the
 * first), signed by this device. */
static int publish_list(struct carechat *c, const struct statement_device *entries, size_t n,
                        uint64_t version, const uint8_t *prev_hash, const char *what) {
    struct profile *p = c->profile;
    struct envelope_identity *identity = NULL;
    struct cc_own_keys keys;
    cc_own_keys(p, &keys, &identity);
    struct buf statement;
    buf_init(&statement);
    CHECK(statement_device_list(&p->account_id, version + 1, entries, n, prev_hash, &statement) ==
          0);
    uint8_t sig[ENVELOPE_SIG_LEN];
    envelope_identity_sign(identity, statement.data, statement.len, sig);
    envelope_identity_free(identity);
    buf_cleanup(&statement);

    Carechat__V1__DeviceListEntry list_entries[STATEMENT_MAX_DEVICES];
    Carechat__V1__DeviceListEntry *entry_ptrs[STATEMENT_MAX_DEVICES];
    for (size_t i = 0; i < n; i++) {
        carechat__v1__device_list_entry__init(&list_entries[i]);
        list_entries[i].device_id =
            (ProtobufCBinaryData){ID_LEN, (uint8_t *)entries[i].device_id.b};
        list_entries[i].identity_key =
            (ProtobufCBinaryData){STATEMENT_KEY_LEN, (uint8_t *)entries[i].identity_key};
        entry_ptrs[i] = &list_entries[i];
    }
    Carechat__V1__DeviceList list;
    carechat__v1__device_list__init(&list);
    list.account_id = (ProtobufCBinaryData){ID_LEN, p->account_id.b};
    list.version = version + 1;
    list.n_devices = n;
    list.devices = entry_ptrs;
    list.signer_device_id = (ProtobufCBinaryData){ID_LEN, p->device_id.b};
    list.signature = (ProtobufCBinaryData){sizeof sig, sig};
    if (prev_hash != NULL)
        list.prev_list_hash = (ProtobufCBinaryData){STATEMENT_HASH_LEN, (uint8_t *)prev_hash};
    Carechat__V1__PublishDeviceList pub;
    carechat__v1__publish_device_list__init(&pub);
    pub.list = &list;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_PUBLISH_DEVICE_LIST;
    req.publish_device_list = &pub;
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_DEVICE_LIST, what, NULL, &resp);
    bool blocked = false;
    struct statement_device trusted[STATEMENT_MAX_DEVICES];
    size_t n_trusted = 0;
    if (rc == 0) {
        const Carechat__V1__DeviceList *stored = resp->response->device_list->list;
        if (stored == NULL || stored->version != version + 1)
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                         "%s: the server stored another version", what);
        else /* the list this device just signed is pinned as the next one */
            rc = cc_trusted_list(c, &p->account_id, stored, trusted, &n_trusted, &blocked);
    }
    cc_free_response(resp);
    if (rc != 0)
        return rc;
    p->device_list_version = version + 1;
    return cc_save_profile(c);
}

int cc_ensure_published(struct carechat *c) {
    const char *what = "publishing the device list";
    struct profile *p = c->profile;
    Carechat__V1__Frame *resp = NULL;
    const Carechat__V1__AccountDevices *acct = NULL;
    int rc = cc_list_own_devices(c, what, &resp, &acct);
    if (rc != 0)
        return rc;
    struct statement_device entries[STATEMENT_MAX_DEVICES + 1];
    size_t n = 0;
    bool blocked = false;
    uint8_t hash[STATEMENT_HASH_LEN];
    rc = cc_verify_list(c, &p->account_id, acct->list, entries, &n, hash);
    const uint64_t version = acct->list != NULL ? acct->list->version : 0;
    const bool reset = acct->list_reset_at != 0;
    bool listed = false;
    for (size_t i = 0; rc == 0 && i < n; i++)
        listed = listed || id_equal(&entries[i].device_id, &p->device_id);
    /* Listed: pin the list (this device trusts its own account's list as any
     * other); else only the first device, or any after an administrator's
     * reset, lists itself. */
    if (rc == 0 && listed)
        rc = cc_trusted_list(c, &p->account_id, acct->list, entries, &n, &blocked);
    cc_free_response(resp);
    if (rc != 0)
        return rc;
    if (listed) {
        c->awaiting_approval = false;
        p->device_list_version = version;
        return cc_save_profile(c);
    }
    if (version > 0 && !reset) {
        c->awaiting_approval = true;
        log_info(MOD, "this device awaits approval by a device of the account "
                      "(carechat approve CODE there)");
        return 0;
    }
    if (n == STATEMENT_MAX_DEVICES)
        return cc_fail(c, STATUS_TOO_LARGE, CARECHAT_ERROR_SERVER,
                       "%s: the account already has %d devices; remove one first", what,
                       STATEMENT_MAX_DEVICES);
    struct cc_own_keys keys;
    cc_own_keys(p, &keys, NULL);
    /* After a reset the list restarts from this device alone. */
    n = 0;
    entries[n].device_id = p->device_id;
    memcpy(entries[n].identity_key, keys.identity_pk, STATEMENT_KEY_LEN);
    n++;
    rc = publish_list(c, entries, n, version, version > 0 ? hash : NULL, what);
    if (rc == 0)
        c->awaiting_approval = false;
    return rc;
}

/* Drops from `entries` (*n of them) the devices that no longer exist on the
 * server (not among acct's devices: removed, e.g. one that forgot itself), so
 * that the next list names only devices the server accepts. */
static void keep_existing(const Carechat__V1__AccountDevices *acct,
                          struct statement_device *entries, size_t *n) {
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        bool exists = false;
        for (size_t d = 0; d < acct->n_devices && !exists; d++) {
            const Carechat__V1__DeviceKeys *k = acct->devices[d]->keys;
            exists = k != NULL && k->device_id.len == ID_LEN &&
                     memcmp(k->device_id.data, entries[i].device_id.b, ID_LEN) == 0;
        }
        if (exists)
            entries[kept++] = entries[i];
    }
    *n = kept;
}

/* The caller's account's list as the base of its next version: verified,
 * trusted (pinned) by this device, without devices that no longer exist.
 * Fills entries (room for STATEMENT_MAX_DEVICES + 1), *n, `hash` and
 * *version. Returns 0 or a recorded failure (CONFLICT, CARECHAT_ERROR_TRUST:
 * the list changed without this device's approval). */
static int own_list_for_next(struct carechat *c, const char *what, struct statement_device *entries,
                             size_t *n, uint8_t hash[STATEMENT_HASH_LEN], uint64_t *version) {
    struct profile *p = c->profile;
    Carechat__V1__Frame *resp = NULL;
    const Carechat__V1__AccountDevices *acct = NULL;
    int rc = cc_list_own_devices(c, what, &resp, &acct);
    if (rc != 0)
        return rc;
    bool blocked = false;
    rc = cc_verify_list(c, &p->account_id, acct->list, entries, n, hash);
    *version = acct->list != NULL ? acct->list->version : 0;
    if (rc == 0)
        rc = cc_trusted_list(c, &p->account_id, acct->list, entries, n, &blocked);
    if (rc == 0)
        keep_existing(acct, entries, n);
    cc_free_response(resp);
    if (rc == 0 && blocked)
        rc = cc_fail(c, STATUS_CONFLICT, CARECHAT_ERROR_TRUST,
                     "%s: your account's device list changed without your approval; "
                     "confirm it first (carechat trust)",
                     what);
    return rc;
}

int cc_approve(struct carechat *c, const struct id *device, const uint8_t identity_key[32]) {
    const char *what = "approving the device";
    struct statement_device entries[STATEMENT_MAX_DEVICES + 1];
    size_t n = 0;
    uint8_t hash[STATEMENT_HASH_LEN];
    uint64_t version = 0;
    int rc = own_list_for_next(c, what, entries, &n, hash, &version);
    if (rc != 0)
        return rc;
    bool me = false;
    for (size_t i = 0; i < n; i++) {
        me = me || id_equal(&entries[i].device_id, &c->profile->device_id);
        if (id_equal(&entries[i].device_id, device))
            return 0; /* approved already */
    }
    if (!me)
        return cc_fail(c, STATUS_FORBIDDEN, CARECHAT_ERROR_ARGUMENT,
                       "%s: this device is not in the account's list itself", what);
    if (n == STATEMENT_MAX_DEVICES)
        return cc_fail(c, STATUS_TOO_LARGE, CARECHAT_ERROR_SERVER,
                       "%s: the account already has %d devices; remove one first", what,
                       STATEMENT_MAX_DEVICES);
    entries[n].device_id = *device;
    memcpy(entries[n].identity_key, identity_key, STATEMENT_KEY_LEN);
    n++;
    return publish_list(c, entries, n, version, hash, what);
}

int cc_unlist(struct carechat *c, const struct id *device, bool publish, const char *what) {
    struct statement_device entries[STATEMENT_MAX_DEVICES + 1];
    size_t n = 0;
    uint8_t hash[STATEMENT_HASH_LEN];
    uint64_t version = 0;
    int rc = own_list_for_next(c, what, entries, &n, hash, &version);
    if (rc != 0)
        return rc;
    size_t kept = 0;
    bool listed = false;
    for (size_t i = 0; i < n; i++) {
        if (id_equal(&entries[i].device_id, device)) {
            listed = true;
            continue;
        }
        entries[kept++] = entries[i];
    }
    if (!listed)
        return 0;
    if (kept == 0)
        return cc_fail(c, STATUS_CONFLICT, CARECHAT_ERROR_ARGUMENT,
                       "%s: it is the account's only approved device; approve another first", what);
    return publish ? publish_list(c, entries, kept, version, hash, what) : 0;
}

/* Resumes the stored session on this connection if it is not authenticated
 * yet (and finishes a device list publish an earlier login could not do). */
int cc_ensure_session(struct carechat *c) {
    struct profile *p = c->profile;
    if (c->authenticated && c->t != NULL && transport_is_open(c->t))
        return 0;
    c->authenticated = false;
    if (!p->has_session && c->revoke_reason != 0)
        return cc_fail(c, STATUS_UNAUTHENTICATED, CARECHAT_ERROR_SESSION,
                       "the server ended the session (%s): run carechat login",
                       carechat_revoke_reason_name(c->revoke_reason));
    if (!p->has_session)
        return cc_fail(c, STATUS_UNAUTHENTICATED, CARECHAT_ERROR_SESSION,
                       "not logged in: run carechat login");
    if (p->session_expires_at != 0 && p->session_expires_at <= clock_now()) {
        (void)cc_drop_session(c);
        return cc_fail(c, STATUS_UNAUTHENTICATED, CARECHAT_ERROR_SESSION,
                       "session expired: run carechat login");
    }
    int rc = ensure_connected(c);
    if (rc != 0)
        return rc;
    Carechat__V1__Authenticate auth;
    carechat__v1__authenticate__init(&auth);
    auth.session_token = (ProtobufCBinaryData){PROFILE_TOKEN_LEN, p->session_token};
    auth.device_id = (ProtobufCBinaryData){ID_LEN, p->device_id.b};
    /* A session that stays signed in may be past its idle expiry: prove this
     * device's identity key (PROTOCOL.md section 3). */
    uint8_t sig[64];
    if (p->session_stay_signed_in) {
        uint8_t token_hash[crypto_hash_sha256_BYTES], t[TRANSCRIPT_REFRESH_LEN];
        crypto_hash_sha256(token_hash, p->session_token, PROFILE_TOKEN_LEN);
        auth.refresh_at = clock_now();
        transcript_refresh(p->device_id.b, token_hash, auth.refresh_at, t);
        struct envelope_identity *identity = NULL;
        CHECK(envelope_identity_import(p->identity_seed, &identity) == 0);
        envelope_identity_sign(identity, t, sizeof t, sig);
        envelope_identity_free(identity);
        auth.refresh_signature = (ProtobufCBinaryData){sizeof sig, sig};
    }
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_AUTHENTICATE;
    req.authenticate = &auth;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_call(c, &req, "resuming the session", &resp);
    if (rc != 0)
        return rc;
    if (resp->response->status == CARECHAT__V1__STATUS__UNAUTHENTICATED) {
        cc_free_response(resp);
        (void)cc_drop_session(c);
        return cc_fail(c, STATUS_UNAUTHENTICATED, CARECHAT_ERROR_SESSION,
                       "session expired or ended: run carechat login");
    }
    rc = cc_expect(c, resp, CARECHAT__V1__RESPONSE__RESULT_SESSION, "resuming the session", NULL);
    if (rc == 0)
        rc = cc_take_session(c, resp->response->session, false, "resuming the session");
    cc_free_response(resp);
    /* A session that must enrol a second factor may do nothing else. */
    if (rc == 0 && c->info.must_enrol_second_factor)
        return 0;
    if (rc == 0 && p->device_list_version == 0)
        rc = cc_ensure_published(c);
    if (rc == 0)
        rc = cc_maintain_keys(c);
    return rc;
}

/* ---- encryption key rotation ---- */

/* Wipes the old keys whose grace period is over: retired long enough ago, and
 * this device acknowledged its deliveries since (so what was queued for it
 * under the old key has been processed). */
static bool wipe_old_keys(struct profile *p, int64_t now) {
    bool changed = false;
    size_t kept = 0;
    for (size_t i = 0; i < p->n_old_keys; i++) {
        struct profile_old_key *k = &p->old_keys[i];
        if (k->retired_at + CARECHAT_OLD_KEY_GRACE_MS <= now && p->last_ack_at >= k->retired_at) {
            sodium_memzero(k, sizeof *k);
            changed = true;
            continue;
        }
        if (kept != i) {
            p->old_keys[kept] = *k;
            sodium_memzero(k, sizeof *k);
        }
        kept++;
    }
    p->n_old_keys = kept;
    return changed;
}

int cc_maintain_keys(struct carechat *c) {
    const char *what = "rotating the encryption key";
    struct profile *p = c->profile;
    const int64_t now = clock_now();
    bool changed = wipe_old_keys(p, now);
    const int64_t made_at = p->encryption_key_expires_at - CARECHAT_ENCRYPTION_KEY_LIFETIME_MS;
    if (!p->has_device || now < made_at + CARECHAT_KEY_ROTATION_MS)
        return changed ? cc_save_profile(c) : 0;
    if (p->n_old_keys == PROFILE_MAX_OLD_KEYS) {
        /* The oldest goes first: only the newest keys still open anything. */
        sodium_memzero(&p->old_keys[0], sizeof p->old_keys[0]);
        memmove(&p->old_keys[0], &p->old_keys[1],
                (PROFILE_MAX_OLD_KEYS - 1) * sizeof p->old_keys[0]);
        sodium_memzero(&p->old_keys[PROFILE_MAX_OLD_KEYS - 1], sizeof p->old_keys[0]);
        p->n_old_keys--;
    }
    uint8_t *sk = sodium_malloc(PROFILE_SECRET_LEN);
    CHECK(sk != NULL);
    uint8_t pk[HPKE_PK_LEN];
    hpke_keypair(pk, sk);
    const uint32_t key_id = p->encryption_key_id + 1;
    const int64_t expires_at = now + CARECHAT_ENCRYPTION_KEY_LIFETIME_MS;
    struct envelope_identity *identity = NULL;
    CHECK(envelope_identity_import(p->identity_seed, &identity) == 0);
    uint8_t identity_pk[ENVELOPE_SIGN_PK_LEN], sig[ENVELOPE_SIG_LEN];
    envelope_identity_public(identity, identity_pk);
    uint8_t statement[STATEMENT_ENCRYPTION_KEY_LEN];
    statement_encryption_key(pk, key_id, expires_at, statement);
    envelope_identity_sign(identity, statement, sizeof statement, sig);
    envelope_identity_free(identity);

    Carechat__V1__DeviceKeys keys;
    carechat__v1__device_keys__init(&keys);
    keys.device_id = (ProtobufCBinaryData){ID_LEN, p->device_id.b};
    keys.identity_key = (ProtobufCBinaryData){ENVELOPE_SIGN_PK_LEN, identity_pk};
    keys.encryption_key = (ProtobufCBinaryData){HPKE_PK_LEN, pk};
    keys.encryption_key_id = key_id;
    keys.encryption_key_expires_at = expires_at;
    keys.signature = (ProtobufCBinaryData){ENVELOPE_SIG_LEN, sig};
    Carechat__V1__RotateEncryptionKey rot;
    carechat__v1__rotate_encryption_key__init(&rot);
    rot.keys = &keys;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_ROTATE_ENCRYPTION_KEY;
    req.rotate_encryption_key = &rot;
    Carechat__V1__Frame *resp = NULL;
    /* The server first, then the profile: a crash in between leaves the
     * server naming a key this device lost (messages to it do not open until
     * the next rotation); the other order would leave the device on a key the
     * server never heard of. */
    int rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_DEVICE_LIST, what, NULL, &resp);
    cc_free_response(resp);
    if (rc == 0) {
        struct profile_old_key *old = &p->old_keys[p->n_old_keys++];
        old->key_id = p->encryption_key_id;
        old->expires_at = p->encryption_key_expires_at;
        old->retired_at = now;
        memcpy(old->secret, p->encryption_secret, PROFILE_SECRET_LEN);
        memcpy(p->encryption_secret, sk, PROFILE_SECRET_LEN);
        p->encryption_key_id = key_id;
        p->encryption_key_expires_at = expires_at;
        log_info(MOD, "encryption key rotated (key id %" PRIu32 ")", key_id);
        rc = cc_save_profile(c);
    }
    sodium_free(sk);
    return rc;
}

int cc_connect_fresh(struct carechat *c) {
    if (c->t != NULL)
        cc_disconnect(c, 1000);
    return ensure_connected(c);
}