/*
 * client/carechat_internal.h: what client/carechat.c (the request/response
 * core, accounts and devices) and client/messaging.c (conversations,
 * end-to-end messages, delivery) share inside libcarechat. Not part of the
 * API: the prefix cc_ marks these. Same thread rules as carechat.h: the
 * caller's thread only.
 */
#ifndef CLIENT_CARECHAT_INTERNAL_H
#define CLIENT_CARECHAT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/carechat.h"
#include "client/profile.h"
#include "client/statement.h"
#include "client/transport.h"
#include "protocol/proto.h"

struct cc_msg;

struct carechat {
    char *server_url;
    char *profile_dir;
    char *ca_file;
    char *device_label;
    int connect_timeout_ms;
    int request_timeout_ms;

    struct profile *profile; /* sodium_malloc memory */
    struct transport *t;     /* NULL until the first call that needs it */
    uint64_t last_request_id;
    bool authenticated;
    bool have_info;
    struct carechat_session_info info;

    struct carechat_event events[CARECHAT_MAX_EVENTS];
    /* CARECHAT_EVENT_SESSION_REVOKED or CARECHAT_EVENT_REPLACED_ELSEWHERE once
     * the server has said so on the current connection (it then closes it);
     * 0 on a new connection. */
    int ended_by;
    /* The reason of the last SessionRevoked (enum carechat_revoke_reason); 0
     * before any, and again after a new login or registration. */
    int revoke_reason;
    size_t event_head, event_count;

    struct cc_msg *msg; /* messaging state (messaging.c); NULL until first used */

    int err_status;
    enum carechat_error_kind err_kind;
    char err[640];
};

/* Records a failure (carechat_error() shows it) and returns `status`. */
int cc_fail(struct carechat *c, int status, enum carechat_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Queues an event for carechat_next_event() (the oldest is dropped when
 * full). */
void cc_push_event(struct carechat *c, const struct carechat_event *e);

/* Forgets the last failure. */
void cc_clear_error(struct carechat *c);

/* Records the server's refusal `r` of `what` (hint: what it means, or NULL)
 * and returns its status. */
int cc_refused(struct carechat *c, const Carechat__V1__Response *r, const char *what,
               const char *hint);

/* Writes the profile; records a failure and returns it when that fails. */
int cc_save_profile(struct carechat *c);

/* Closes the connection (if any); the next call connects again. */
void cc_disconnect(struct carechat *c, int linger_ms);

/* Connects and resumes the stored session unless already authenticated.
 * Returns 0 or a recorded failure. */
int cc_ensure_session(struct carechat *c);

/* Sends `req` with the next request id and waits for its response, answering
 * server requests meanwhile. Stores the response frame in *out (free with
 * cc_free_response()) and returns 0, or records a connection failure of
 * `what` and returns it (the connection is then closed). */
int cc_call(struct carechat *c, Carechat__V1__Frame *req, const char *what,
            Carechat__V1__Frame **out);

/* Receives one frame until `deadline` (clock_monotonic_ms()) and handles it:
 * answers a server request (queueing deliveries), drops a stray response.
 * Returns 0 after one frame; STATUS_UNAVAILABLE when the deadline passed;
 * otherwise records a connection failure and returns it (connection closed). */
int cc_pump(struct carechat *c, int64_t deadline);

/* 0 when `f` answers OK with a result of `result_case`; otherwise records the
 * failure and returns it. */
int cc_expect(struct carechat *c, const Carechat__V1__Frame *f,
              Carechat__V1__Response__ResultCase result_case, const char *what, const char *hint);

/* What a refusal means for the user, by the status the server answered. A
 * list of these ends with an entry of status OK, whose text (may be NULL) is
 * the hint for any other refusal. */
struct cc_hint {
    Carechat__V1__Status status;
    const char *text;
};

/* Sends `req` (cc_call()) and checks its answer (cc_expect()), with the text
 * of the first entry of `hints` (NULL: none) matching the server's status as
 * the hint. Stores the response frame in *out (free with cc_free_response())
 * and returns 0; otherwise leaves *out alone and returns the recorded
 * failure. */
int cc_request(struct carechat *c, Carechat__V1__Frame *req,
               Carechat__V1__Response__ResultCase result_case, const char *what,
               const struct cc_hint *hints, Carechat__V1__Frame **out);

/* Frees a response frame (wiping a session token in it). Accepts NULL. */
void cc_free_response(Carechat__V1__Frame *f);

/* Copies at most cap - 1 bytes of `in` (cut at a UTF-8 boundary) with a NUL.
 * Returns the length copied. */
size_t cc_copy_text(char *out, size_t cap, const char *in);

/* Verifies the signed device `list` of `account` (shape, signer in the list,
 * signature over carechat.proto's layout); copies its entries (room for
 * STATEMENT_MAX_DEVICES) and count. A missing list or version 0 gives n = 0.
 * Returns 0, or records STATUS_CORRUPT. */
int cc_verify_list(struct carechat *c, const struct id *account,
                   const Carechat__V1__DeviceList *list, struct statement_device *entries,
                   size_t *n);

/* ---- messaging.c hooks ---- */

/* A Delivery, QueueEmpty or TypingEvent request `f` from the server: answered
 * by the caller with OK; this takes ownership of `f` (queues or frees it). */
void cc_msg_on_request(struct carechat *c, Carechat__V1__Frame *f);

/* The connection closed: what was queued on it is dropped (the server
 * replays it after the next Sync). */
void cc_msg_connection_closed(struct carechat *c);

/* Frees the messaging state. Accepts NULL. */
void cc_msg_free(struct cc_msg *m);

/* Sends `req`, answered by a Conversation, and copies it into *out (and the
 * active members into the handle's cache for Send); `not_found_hint` goes
 * into the error of a NOT_FOUND answer. Returns 0, the server's status or a
 * local failure. (messaging.c) */
int cc_conversation_call(struct carechat *c, Carechat__V1__Frame *req, const char *what,
                         const char *not_found_hint, struct carechat_conversation *out);
/* Sends `req`, a request without a result (establishing the session first).
 * Returns 0, the server's status or a local failure. (messaging.c) */
int cc_simple_call(struct carechat *c, Carechat__V1__Frame *req, const char *what);

#endif
