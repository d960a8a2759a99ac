/*
 * server/request.h: the request core that every topic file of the handlers
 * library builds on: the server-wide handler state, the connections, the
 * request being dispatched (struct req), requests in flight (struct op), the
 * typed reads of the loop thread, refusals and audit records, and revoking
 * sessions. Private to the handlers library. Loop thread only.
 *
 * The path of a request (server/handlers.c runs it):
 *
 *   frame -> the request's row (server/requests.c) -> session expiry check
 *         -> authorization (server/authz.h): the conversation the request
 *            names and the caller's membership are read once, here, and
 *            handed to the handler in struct req
 *         -> [a `read` row: its access record first, durable; then the
 *            check again, since membership may end meanwhile]
 *         -> row->handle(r): returns 0 when it answered, or handed the
 *            request on to an op (proposed to the journal, or given to the
 *            password worker); a negative status that the dispatcher answers
 *            (with r->detail) and, for a denial (FORBIDDEN, NOT_FOUND,
 *            UNAUTHENTICATED), audits once (object r->object)
 *   journal: apply -> row->done(op, result) on the loop thread, which answers
 *            the same way (0, or a status answered with op->detail); a
 *            denial by apply is audited once, then the op is released.
 *
 * So every request is answered exactly once by construction: by its handler,
 * by the dispatcher, by its completion, or by the core.
 *
 * Lifetimes: a struct hconn is referenced by its conn (until detach) and by
 * every op in flight for it, and freed with the last reference; an op answers
 * through hc->conn only while op_live(). An op created during a handler and
 * not handed on (op_propose(), op_keep()) is released when the handler
 * returns.
 */
#ifndef SERVER_REQUEST_H
#define SERVER_REQUEST_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"
#include "protocol/proto.h"
#include "server/audit.h"
#include "server/authz.h"
#include "server/coalesce.h"
#include "server/conn.h"
#include "server/lockout.h"
#include "server/handlers.h"
#include "server/pwhash.h"
#include "server/ratelimit.h"
#include "server/calendar.h"
#include "server/records.h"
#include "server/records_messages.h"
#include "storage/journal.h"
#include "storage/store.h"

/* Buckets of each connection index of struct handlers (a power of two):
 * 64 KiB for both, a handful of connections a bucket at 10,000 open. */
#define REQ_INDEX_BUCKETS 4096

struct messaging;
struct files_stats;
struct req;
struct op;

/* What the journal reports for a proposed entry (storage/journal.h on_done). */
struct op_result {
    uint64_t pos;
    int status;          /* apply's status: 0 or a refusal */
    const uint8_t *data; /* apply's result, borrowed for the call */
    size_t len;
};

/* A request's handler: see the path at the top. */
typedef int (*request_fn)(struct req *r);
/* A proposed entry's completion: see the path at the top. Runs whether or not
 * the connection is still there (deliveries and revocations happen anyway);
 * answers only when op_live(). */
typedef int (*request_done_fn)(struct op *op, const struct op_result *res);

/* One row of the request table (server/requests.c). */
struct request_row {
    struct authz_rule rule;
    request_fn handle;    /* never NULL */
    request_done_fn done; /* the completion of what the handler proposes */
};

/* The row of a Frame body case, or NULL for a body that is not a client
 * request (requests.c). */
const struct request_row *request_row(uint32_t body_case);

struct handlers {
    struct handlers_config cfg;
    struct store *store;
    struct store_reader *reader; /* the loop thread's cache of metadata records */
    struct journal *journal;
    struct pwhash *pw;
    /* Failed sign-ins (sessions.c): per network; per account from one
     * network; per account from anywhere (new devices only). */
    struct lockout *lo_net, *lo_account_net, *lo_account;
    struct ratelimit *rl_lookup; /* LookupAccount per caller account */
    struct ratelimit *rl_read;   /* reads of patient or account data per account */
    struct coalesce *reads;      /* repeated reads under one access record */
    struct ratelimit *rl_invite; /* Invite per caller account */
    struct ratelimit *rl_upload; /* uploads begun per caller account (files.c) */
    /* RequestPasswordReset per email (its blind index) and per network
     * (sessions.c). */
    struct ratelimit *rl_reset_email, *rl_reset_net;
    struct files_stats *files; /* file transfer counters (files.c) */
    struct messaging *msg;     /* send and typing limits, typing bus (messaging.c) */
    struct calendar calendar;  /* business days of the breach deadline (breach.c) */
    calendar_day *holidays;    /* its dates (--holidays), owned; NULL: US federal */
    int64_t invite_ttl_ms, session_idle_ms, session_max_ms, reset_ttl_ms;
    unsigned password_min;
    char password_rule[64]; /* "passwords are N..1024 bytes", the detail of a refusal */
    bool closing;
    bool draining;       /* the server is closing its connections (handlers_draining()) */
    struct hconn *conns; /* attached connections */
    /* The attached connections that authenticated, by device and by account
     * (request.c), so that finding a device's connections does not walk all. */
    struct hconn *by_device[REQ_INDEX_BUCKETS], *by_account[REQ_INDEX_BUCKETS];
    uint64_t audit_anchored; /* the audit chain head last logged as an anchor */
    /* The VerifyAudit in progress (audit_queries.c): its op holds the
     * connection; NULL when none runs. */
    struct op *verify_op;
    struct audit_verify verify;
};

struct hconn {
    struct handlers *h;
    struct conn *conn; /* NULL once detached */
    unsigned refs;
    struct hconn *prev, *next;
    /* In h->by_device and h->by_account (by the ids below) from the first
     * authentication until detached, even after a revocation. */
    bool indexed;
    struct hconn *dev_prev, *dev_next, *acct_prev, *acct_next;
    bool auth_busy; /* a Login/Register/Authenticate is in flight */
    bool authenticated;
    /* The session may only enrol a second factor (server/twofactor.h) until
     * TotpConfirm: any other request but Logout is FORBIDDEN. */
    bool enrol_only;
    struct id account, device;
    uint32_t role;
    uint8_t token_hash[REC_HASH_LEN];
    int64_t expires_at, idle_expires_at;
    int64_t stored_idle_expires_at; /* the idle expiry last made durable */
    bool stay_signed_in;            /* the session outlives its idle expiry */
    /* Delivery of the device's inbox (delivery.c): OFF until Sync, REPLAY
     * while pages of the inbox are sent, LIVE after QueueEmpty. */
    enum { DELIVERY_OFF = 0, DELIVERY_REPLAY, DELIVERY_LIVE } delivery;
    uint64_t delivered_pos; /* the last inbox position sent on this connection */
    unsigned unanswered;    /* server requests without a Response yet */
    struct op *ops;         /* the connection's requests in flight */
};

/* The request being dispatched; borrowed by the handler for its call. */
struct req {
    struct handlers *h;
    struct hconn *hc;
    struct conn *conn;
    uint64_t id; /* the request id */
    const Carechat__V1__Frame *frame;
    const struct request_row *row;
    /* What authorization read: the conversation the request names (conv is
     * NULL when it names none, or none that exists), and the caller's
     * membership in it (member is NULL unless ACTIVE); the patient the
     * request concerns (the channel's owner, or a patient_account_id). */
    bool has_conv;
    struct id conv_id;
    const struct rec_conv *conv;
    const struct rec_member *member;
    bool has_patient;
    struct id patient;
    /* The file the request names (its file_id), whose conversation is then
     * conv_id: a download is authorized as a read of that conversation. */
    bool has_file;
    struct id file_id;
    /* For the dispatcher's answer when the handler returns a failure. */
    const char *detail;
    /* What a denial is recorded against (a copy: the caller's may be gone
     * by the time the dispatcher records it). */
    uint8_t object[REC_AUDIT_OBJECT_MAX];
    size_t object_len;
    uint32_t retry_after_s; /* with RATE_LIMITED: when to try again (0: not said) */
    struct op *op;          /* the op made by the handler, until handed on */
};

/* One request in flight. */
struct op {
    const struct request_row *row;
    struct hconn *hc;
    struct op *prev, *next; /* on hc->ops */
    uint64_t request_id;
    request_done_fn done; /* row->done, or the core's own */
    bool handed;          /* owned by the journal or a worker */
    /* Who and what a refusal by apply is recorded against: the session's
     * account and device at op_new (none before authentication; Login sets
     * the account it tried), and the object (a conversation or account). */
    uint32_t action;
    bool audit_refusals; /* false for the core's own ops */
    bool has_actor, has_object;
    struct id actor, actor_device, object;
    const char *detail; /* for the core's answer of a failing step */
    struct req *req;    /* the dispatch it was made in; NULL after it */
    size_t size;        /* of state[] */
    alignas(max_align_t) unsigned char state[];
};

/* ---- requests and ops (request.c) ------------------------------------------ */

/* Whether request id `rid` is in flight on `hc` (an op holds it). */
bool req_in_flight(const struct hconn *hc, uint64_t rid);
/* Sets r->detail and returns `status`: `return req_fail(r, STATUS_X, "...")`. */
int req_fail(struct req *r, int status, const char *detail);
/* As req_fail(), for a denial recorded against `object` (object_len bytes, at
 * most REC_AUDIT_OBJECT_MAX, copied; NULL/0 for none). */
int req_deny(struct req *r, int status, const char *detail, const void *object, size_t object_len);

/* A new op for the request `r` with `state_size` bytes of zeroed per-request
 * state (op->state; wiped at release). Takes a reference on the connection;
 * an op of an open row (Login, Register, Authenticate) marks the connection
 * auth_busy until it is released. */
struct op *op_new(struct req *r, size_t state_size);
/* The op's state, as the type its topic file gave it. */
#define OP_STATE(op, type) ((type *)(void *)(op)->state)
/* The handler keeps `op` beyond its return (a worker's continuation, or a
 * later step, will end it with op_step_done()). */
void op_keep(struct op *op);
/* The op a worker hands back to its continuation (ctx): the continuation owns
 * it again until it hands it on or ends the step with op_step_done(). */
struct op *op_resume(void *ctx);
/* Proposes `e` (with the client's address as source) for `op`; op->done runs
 * once it is applied. Returns 0 (the journal owns the op), or the failure
 * (the op is still the caller's; op->detail says why). */
int op_propose(struct op *op, const Carechat__Entry__V1__Entry *e);
/* The journal's on_done for an op (ctx): runs op->done, answers its failure,
 * audits a denial by apply, releases the op. op_propose() passes it; the
 * core's own audited reads too. */
void op_journal_done(void *ctx, uint64_t pos, int status, const uint8_t *data, size_t len);
/* Ends a step of `op` that ran outside the dispatcher (a worker's
 * continuation): when `status` is a failure it is answered with op->detail
 * (if the connection is still there); then, unless the step handed the op on,
 * the op is released. */
void op_step_done(struct op *op, int status);
/* Drops the op's reference and wipes and frees it. Accepts NULL. */
void op_release(struct op *op);
/* True when the op's connection is still there to be answered. */
bool op_live(const struct op *op);
/* Sets op->detail and returns `status`, like req_fail(). */
int op_fail(struct op *op, int status, const char *detail);

/* Fills the common fields of an entry (version, time, actor ids: NULL for
 * none). */
void entry_init(Carechat__Entry__V1__Entry *e, int64_t time, const struct id *account,
                const struct id *device);

/* Answers request `rid` with the failure `rc` and `detail`, except that a
 * store failure (STATUS_CORRUPT, STATUS_IO) is answered STATUS_INTERNAL
 * without detail. */
void req_respond_error(struct conn *c, uint64_t rid, int rc, const char *detail);

/* ---- audit records (request.c) ---------------------------------------------- */

/* Whether `status` is a denial: FORBIDDEN, NOT_FOUND, UNAUTHENTICATED. */
bool req_is_denial(int status);
/* Logs at info level, with ids and the client's address only, a request
 * refused (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, RATE_LIMITED) or a completed
 * administrative one (`status` 0: account, device and incident changes),
 * named by its audit `action`; `object` may be NULL. */
void req_log_outcome(const struct hconn *hc, uint32_t action, int status, const struct id *object);
/* The client's address as text ("" once detached) into out. */
void req_source(const struct hconn *hc, char out[REC_AUDIT_SOURCE_MAX + 1]);
/* Proposes an AuditAppend entry (actor: `actor`/`device`, NULL for none;
 * source: hc's address) with `done(ctx, ...)` as on_done (NULL: none).
 * `status` is 0 or the negative STATUS_* the request ended with. Returns 0
 * or the status of journal_append() (then done is never called). */
int req_audit(struct hconn *hc, const struct id *actor, const struct id *device, uint32_t action,
              int status, const void *object, size_t object_len, const struct id *patient,
              journal_done_fn done, void *ctx);

/* As req_audit(), for a request that came without a connection (tus over
 * HTTP): `source` is the client's address as text ("" for none) and
 * `repeated` the further identical reads the record stands for (0). */
int req_audit_source(struct handlers *h, const char *source, const struct id *actor,
                     const struct id *device, uint32_t action, int status, const void *object,
                     size_t object_len, const struct id *patient, uint32_t repeated,
                     journal_done_fn done, void *ctx);

/* The record of the further identical reads a coalescing window stood for
 * (server/coalesce.h): a coalesce_emit_fn with ctx `h`. Best effort: logged
 * when it cannot be appended. */
void req_audit_repeats(struct handlers *h, const struct coalesce_key *k, uint32_t repeated);

/* ---- connections and sessions (request.c) ------------------------------------ */

/* The per-connection state of a new conn (on the registry list, one
 * reference held by the conn). */
struct hconn *req_hconn_attach(struct handlers *h, struct conn *c);
/* The conn is gone: off the list, unauthenticated, its reference dropped. */
void req_hconn_detach(struct hconn *hc);

/* The attached connections that authenticated as `device` (or as a device
 * of `account`), without walking the others, in no particular order; they
 * may have been unauthenticated since (check hc->authenticated):
 *
 *   for (struct hconn *x = req_device_first(h, d); x; x = req_device_next(x))
 *
 * Closing a connection meanwhile is fine; it stays attached until its
 * WebSocket is gone. */
struct hconn *req_device_first(struct handlers *h, const struct id *device);
struct hconn *req_device_next(struct hconn *hc);
struct hconn *req_account_first(struct handlers *h, const struct id *account);
struct hconn *req_account_next(struct hconn *hc);

/* A session as it is established on a connection. */
struct session_info {
    struct id account, device;
    uint32_t role;
    bool enrol_only; /* as struct hconn's */
    uint8_t token_hash[REC_HASH_LEN];
    int64_t expires_at, idle_expires_at;
    bool stay_signed_in; /* the connection outlives the idle expiry */
};
/* Marks `hc` authenticated with the session `s`. Other connections of the
 * same device stay: a device may hold several (a CLI `send` beside a
 * running `recv`); only one of them receives deliveries
 * (req_replace_delivering()). */
void req_session_established(struct hconn *hc, const struct session_info *s);
/* Before `hc` starts receiving its device's deliveries (Sync): replaces the
 * device's other connection that receives them (ReplacedElsewhere, close
 * 1000), so that one connection per device is delivered to. */
void req_replace_delivering(struct hconn *hc);
/* Sends SessionRevoked(reason) and closes (1008) every authenticated
 * connection of `account` (NULL: any) and `device` (NULL: any) except
 * `except` (may be NULL); they are unauthenticated from then on. */
void req_revoke(struct handlers *h, const struct id *account, const struct id *device,
                Carechat__V1__RevokeReason reason, const struct hconn *except);
/* Numbers and sends a server request (a Delivery, an event) on `hc`,
 * counting it in hc->unanswered until its Response. */
void req_send_server_request(struct hconn *hc, Carechat__V1__Frame *frame);
/* The number of a server request about to be sent on `hc` encoded by the
 * caller (conn_send_encoded()), counted in hc->unanswered as above. */
uint64_t req_server_request_id(struct hconn *hc);

/* ---- typed reads of the loop thread (request.c) --------------------------------- */

/* Same returns as store_get(), or STATUS_CORRUPT for a record that does not
 * decode. */
int req_read_account(struct handlers *h, const struct id *id, struct rec_account *out);
/* req_read_account() and req_read_device() without the strings
 * (rec_account_decode_lean()): for a Send's checks of every recipient. */
int req_read_account_lean(struct handlers *h, const struct id *id, struct rec_account *out);
int req_read_device_lean(struct handlers *h, const struct id *account, const struct id *device,
                         struct rec_device *out);
/* The lifecycle record of a deactivated account; STATUS_NOT_FOUND for an
 * active one (or no account). */
int req_read_lifecycle(struct handlers *h, const struct id *account, struct rec_lifecycle *out);
/* The retention stage of `patient`'s conversations (server/authz.h step 4),
 * by the clock: AUTHZ_LIVE for an active patient. Returns 0 or a store
 * status. */
int req_patient_stage(struct handlers *h, const struct id *patient, enum authz_stage *stage);
/* The inputs of authz step 4 for a caller (`account` of `role`) reading data
 * of `patient`: its stage (a file restored until `restored_until`, 0 for
 * none, is in REVIEW while RESTRICTED), and *rel (the caller's membership, as
 * found) raised from AUTHZ_STRANGER to AUTHZ_CARE_TEAM for a provider of the
 * patient's care team in REVIEW. Returns 0 or a store status. */
int req_review_access(struct handlers *h, const struct id *patient, const struct id *account,
                      uint32_t role, int64_t restored_until, enum authz_relation *rel,
                      enum authz_stage *stage);
/* Whether `staff` is of `patient`'s care team: invited the patient, or
 * shares an active care-team channel with them (as apply_care_relation). */
int req_care_relation(struct handlers *h, const struct id *patient, const struct id *staff,
                      bool *out);
int req_read_device(struct handlers *h, const struct id *account, const struct id *device,
                    struct rec_device *out);
/* A device's inbox counters (without its senders: n_senders 0); an inbox
 * never written reads as all zero. */
int req_read_inbox(struct handlers *h, const struct id *device, struct rec_inbox *out);
/* The account id of a normalised email, through the blind index. */
int req_find_email(struct handlers *h, const uint8_t index[REC_HASH_LEN], struct id *out);
int req_read_conv(struct handlers *h, const struct id *conv, struct rec_conv *out);
int req_read_member(struct handlers *h, const struct id *conv, const struct id *account,
                    struct rec_member *out);
/* The current devices of `account` (at most REC_MAX_DEVICES): ids into
 * ids[], and their keys into keys[] when not NULL. Returns 0 with *n, or a
 * store status. */
struct req_device_key {
    uint32_t key_id;
    int64_t expires_at;
};
int req_account_devices(struct handlers *h, const struct id *account, struct id *ids,
                        struct req_device_key *keys, size_t *n);
/* The current devices of some accounts as the AccountDeviceIds lists of an
 * entry (the devices apply queues events for), borrowing from itself. Start
 * from all zero; append with req_device_lists_add(). */
struct req_device_lists {
    Carechat__Entry__V1__AccountDeviceIds ad[REC_MEMBERS_MAX], *adp[REC_MEMBERS_MAX];
    ProtobufCBinaryData ids[REC_MEMBERS_MAX][REC_MAX_DEVICES];
    struct id accounts[REC_MEMBERS_MAX];
    struct id devs[REC_MEMBERS_MAX][REC_MAX_DEVICES];
    size_t n;
};
/* Appends the current devices of `account`. Returns 0, STATUS_TOO_LARGE past
 * REC_MEMBERS_MAX accounts, or a store status. */
int req_device_lists_add(struct handlers *h, struct req_device_lists *l, const struct id *account);
/* Whether `other` is an active or pending member of a conversation in which
 * `account` is active (the first REQ_SHARE_SCAN of its conversations in its
 * conversation index's order: most recently joined first, records_messages.h):
 * members see each other's accounts and device lists whatever their roles (a
 * patient and a family member in one channel). */
#define REQ_SHARE_SCAN 1000
bool req_share_conversation(struct handlers *h, const struct id *account, const struct id *other);

#endif
