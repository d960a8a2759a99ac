/*
 * client/core.h: libcarechat's connection and request core, the lowest layer
 * of the library: the handle's state, errors, events, the connection with its
 * request/response loop, the session (resumed with Authenticate, the device
 * list published when missing) and the deliveries of the connection. Not part
 * of the API: the prefix cc_ marks it.
 *
 * Files of libcarechat call each other in one direction only:
 *
 *   carechat.c (open, close)
 *      |      \
 *      |    channels.c --> messaging.c --> accounts.c      admin.c   audit.c   files.c
 *      |         |           ^     |  \        |  \           |         |         |
 *      |         |   backup.c-'    |   `-> backup_sync.c      |         |         |
 *      |         |      |  `-------|----------^  |            |         |         |
 *      v         v      v          v             v            v         v         v
 *   core.c  <-----------------------------------------------------------------------
 *
 * (channels.c and admin.c also call accounts.c: carechat_lookup(); backup.c,
 * the key backup's API, sweeps history through messaging.c; messaging.c and
 * accounts.c call backup_sync.c, which keeps the backup in step; carechat.c
 * calls messaging.c and backup_sync.c only to free their state.) core.c calls
 * none of them: the
 * deliveries it receives wait in `struct cc_deliveries` until messaging.c
 * takes them, and a module's state hanging off the handle (`msg`) is freed by
 * carechat_close(). files.c records the files it uploaded in the handle
 * (`uploaded`), where messaging.c finds those to bind to a message.
 *
 * Same thread rules as carechat.h: the caller's thread only.
 */
#ifndef CLIENT_CORE_H
#define CLIENT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/carechat.h"
#include "client/envelope.h"
#include "client/pins.h"
#include "client/profile.h"
#include "client/statement.h"
#include "client/transport.h"
#include "protocol/proto.h"

struct cc_msg;
struct cc_bk;

#define CC_UPLOADED_MAX 32

/* The Delivery frames of the current connection, answered OK by the core as
 * they arrive and kept in arrival (= cursor) order until messaging.c takes
 * them (cc_take_delivery()). Beyond CARECHAT_MAX_QUEUED the rest of the
 * connection's deliveries are dropped and `overflowed` says so; the server
 * replays them after a new Sync. A new connection starts with all of it
 * cleared. */
struct cc_deliveries {
    Carechat__V1__Frame *queue[CARECHAT_MAX_QUEUED];
    size_t head, count;
    bool synced;            /* Sync was sent on this connection: deliveries are kept */
    bool queue_empty;       /* QueueEmpty arrived, and nothing was dropped since Sync */
    bool overflowed;        /* deliveries were dropped since the last Sync */
    int64_t queue_empty_at; /* clock_monotonic_ms() when QueueEmpty arrived */
};

struct carechat {
    char *server_url;
    char *profile_dir;
    char *ca_file;
    char *device_label;
    bool stay_signed_in; /* carechat_config.stay_signed_in */
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

    struct cc_deliveries deliveries;
    struct cc_msg *msg; /* messaging state (messaging.c); NULL until first used */
    struct cc_bk *bk;   /* key backup state (backup_sync.c); NULL until first used */
    /* Files this handle uploaded last (files.c), newest at uploaded_next - 1:
     * carechat_send_content() binds those it carries to the message
     * (FileBind) before sending it. */
    struct id uploaded[CC_UPLOADED_MAX];
    size_t uploaded_next;
    struct pins *pins; /* pinned device lists (client/pins.h); NULL until first used */
    /* This device logged in but is not in its account's signed list yet: an
     * existing device must approve it (carechat_approve()). */
    bool awaiting_approval;

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

/* Forgets the session in the handle and the profile (the device and its keys
 * stay). Returns 0, or profile_save()'s status (nothing recorded). */
int cc_drop_session(struct carechat *c);

/* Wipes the device from the handle and the profile: keys (old ones too), ids,
 * session and cursor; the server and CA file it remembers stay. Saves the
 * profile; records a failure and returns it when that fails. */
int cc_forget_device_keys(struct carechat *c);

/* The public keys of this device, signed as carechat.proto's DeviceKeys. */
struct cc_own_keys {
    uint8_t identity_pk[ENVELOPE_SIGN_PK_LEN];
    uint8_t encryption_pk[CARECHAT_KEY_LEN];
    uint8_t signature[ENVELOPE_SIG_LEN];
};

/* Fills *out from the profile `p` (which has keys). When `identity_out` is not
 * NULL, the identity key is stored there too (free with
 * envelope_identity_free()). */
void cc_own_keys(const struct profile *p, struct cc_own_keys *out,
                 struct envelope_identity **identity_out);

/* Closes the connection (if any; the deliveries queued on it are dropped);
 * the next call connects again. */
void cc_disconnect(struct carechat *c, int linger_ms);

/* Closes the connection (if any) and opens a new one, unauthenticated (Login
 * and Register start on a connection of their own). Returns 0 or a recorded
 * failure. */
int cc_connect_fresh(struct carechat *c);

/* Takes a SessionResult into the handle: ids, role, name, expiry, and when
 * `new_token` (after Login or Register) the token and the device's ids into
 * the profile, which is saved. Returns 0 or a recorded failure
 * (STATUS_CORRUPT: malformed, or for another device). */
int cc_take_session(struct carechat *c, const Carechat__V1__SessionResult *s, bool new_token,
                    const char *what);

/* Makes sure this device is in the account's published device list: reads
 * the current list, verifies and pins it. The account's first device (and
 * any device after an administrator's reset) publishes a list of itself;
 * any other device that is not listed waits for an existing device's
 * approval (awaiting_approval set). Records the version in the profile.
 * Returns 0 or a recorded failure. */
int cc_ensure_published(struct carechat *c);

/* Publishes the next version of the caller's account's list with `device`
 * (identity key `identity_key`) added, signed by this device (which must be
 * listed and trust the current list). Returns 0 (also when it is listed
 * already) or a recorded failure. */
int cc_approve(struct carechat *c, const struct id *device, const uint8_t identity_key[32]);

/* Publishes the next version of the caller's account's list without `device`
 * (and without devices that no longer exist) when the stored list names it,
 * signed by this device (which must be listed and trust the current list).
 * With `publish` false, only checks that an approved device would be left:
 * for this device itself, which cannot sign a list that leaves it out in a
 * way a peer meeting the account for the first time could verify (the list
 * names its signer); the next list another device publishes drops it.
 * Returns 0 (also when it is not listed), or a recorded failure: CONFLICT
 * (CARECHAT_ERROR_ARGUMENT) when no approved device would be left. */
int cc_unlist(struct carechat *c, const struct id *device, bool publish, const char *what);

/* Rotates this device's encryption key when it is CARECHAT_KEY_ROTATION_MS
 * old (RotateEncryptionKey; the old private key stays in the profile to open
 * what was wrapped to it), and wipes old keys retired more than
 * CARECHAT_OLD_KEY_GRACE_MS ago once deliveries were acknowledged since.
 * Needs a session. Returns 0 or a recorded failure. */
int cc_maintain_keys(struct carechat *c);

/* Connects and resumes the stored session unless already authenticated.
 * Returns 0 or a recorded failure. */
int cc_ensure_session(struct carechat *c);

/* Sends `req` with the next request id and waits for its response, answering
 * server requests meanwhile. Stores the response frame in *out (free with
 * cc_free_response()) and returns 0, or records a connection failure of
 * `what` and returns it (the connection is then closed). */
int cc_call(struct carechat *c, Carechat__V1__Frame *req, const char *what,
            Carechat__V1__Frame **out);

/* For requests in flight together (file transfers): sends `req` with the
 * next request id, written to *id, without waiting. Returns 0, or records a
 * connection failure of `what` and returns it (connection closed). */
int cc_send(struct carechat *c, Carechat__V1__Frame *req, const char *what, int64_t deadline,
            uint64_t *id);
/* Waits until `deadline` for the response to any of the `n` requests `ids`
 * (0 entries are ignored; the server may answer a connection's requests out
 * of order, e.g. a read waiting for its access record after a later one
 * covered by it; responses to other requests are dropped). Stores it in *out
 * (free with cc_free_response(); its request_id says which) and returns 0,
 * or records a connection failure and returns it (connection closed). */
int cc_await(struct carechat *c, const uint64_t *ids, size_t n, const char *what, int64_t deadline,
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
 * signature over carechat.proto's layout, prev_list_hash included); copies its
 * entries (room for STATEMENT_MAX_DEVICES) and count, and its hash into
 * `hash` when not NULL. A missing list or version 0 gives n = 0. Returns 0,
 * or records STATUS_CORRUPT. */
int cc_verify_list(struct carechat *c, const struct id *account,
                   const Carechat__V1__DeviceList *list, struct statement_device *entries,
                   size_t *n, uint8_t *hash);

/* The handle's pinned device lists (loaded on first use). Returns 0 or a
 * recorded failure. */
int cc_pins(struct carechat *c, struct pins **out);

/* Verifies `list` of `account` (cc_verify_list()) and judges it against the
 * pinned one (client/pins.h): pins it on first use (CARECHAT_EVENT_TRUST_FIRST_USE)
 * and when it is the pin's signed successor; refuses a rollback
 * (STATUS_CORRUPT); keeps any other change pending
 * (CARECHAT_EVENT_IDENTITY_CHANGED) and sets *blocked. Copies the devices to
 * trust into `entries` (room for STATEMENT_MAX_DEVICES): the new list's, or
 * the pinned ones while a change is pending. Returns 0 or a recorded
 * failure. */
int cc_trusted_list(struct carechat *c, const struct id *account,
                    const Carechat__V1__DeviceList *list, struct statement_device *entries,
                    size_t *n, bool *blocked);

/* Asks for the caller's own account's devices; on success *out is the
 * response frame (cc_free_response()), *acct points into it, and 0 is
 * returned; otherwise a recorded failure. */
int cc_list_own_devices(struct carechat *c, const char *what, Carechat__V1__Frame **out,
                        const Carechat__V1__AccountDevices **acct);

/* ---- deliveries (struct cc_deliveries) ---- */

/* Starts keeping deliveries afresh (before a Sync): drops what is queued,
 * clears queue_empty and overflowed, sets synced. */
void cc_deliveries_restart(struct carechat *c);

/* The oldest queued Delivery frame (the caller frees it with proto_free()),
 * or NULL when none is queued. */
Carechat__V1__Frame *cc_take_delivery(struct carechat *c);

#endif
