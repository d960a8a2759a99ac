/*
 * server/handlers_internal.h: what handlers.c (core: connection registry,
 * dispatch, session checks, proposing entries), sessions.c (Login, Register,
 * Authenticate, Logout, Invite), devices.c (PublishDeviceList, ListDevices,
 * RemoveDevice, RotateEncryptionKey, LookupAccount), messaging.c
 * (conversations, messages, delivery, receipts, typing), channels.c,
 * handlers_audit.c and admin.c (DeactivateAccount) share. Private to the
 * handlers library. Loop thread only.
 *
 * Lifetimes: a `struct hconn` is referenced by its conn (until detach) and by
 * every `struct op` in flight for it; it is freed when the last reference
 * goes. An op answers through hc->conn only while that is non-NULL.
 */
#ifndef SERVER_HANDLERS_INTERNAL_H
#define SERVER_HANDLERS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/id.h"
#include "protocol/proto.h"
#include "server/handlers.h"
#include "server/records_messages.h"
#include "server/pwhash.h"
#include "server/ratelimit.h"
#include "server/records.h"
#include "server/audit.h"
#include "server/rules.h"

struct messaging;

struct handlers {
    struct handlers_config cfg;
    struct store *store;
    struct journal *journal;
    struct pwhash *pw;
    struct ratelimit *rl_account; /* Login/Register attempts per email */
    struct ratelimit *rl_address; /* Login/Register/Authenticate attempts per address */
    struct ratelimit *rl_lookup;  /* LookupAccount per caller account */
    struct ratelimit *rl_invite;  /* Invite per caller account */
    struct messaging *msg;        /* conversations, messages, delivery (messaging.c) */
    int64_t invite_ttl_ms, session_idle_ms, session_max_ms;
    unsigned password_min;
    bool closing;
    struct hconn *conns;     /* attached connections */
    uint64_t audit_anchored; /* the audit chain head last logged as an anchor */
    /* The VerifyAudit in progress (handlers_audit.c): its op holds the
     * connection; NULL when none runs. */
    struct op *verify_op;
    struct audit_verify verify;
};

struct hconn {
    struct handlers *h;
    struct conn *conn; /* NULL once detached */
    unsigned refs;
    struct hconn *prev, *next;
    bool auth_busy; /* a Login/Register/Authenticate is in flight */
    bool authenticated;
    struct id account, device;
    uint32_t role;
    uint32_t action; /* the audit action of the request being dispatched (authz.h) */
    uint8_t token_hash[REC_HASH_LEN];
    int64_t expires_at, idle_expires_at;
    int64_t stored_idle_expires_at; /* the idle expiry last made durable */
    /* Delivery of the device's inbox (messaging.c): OFF until Sync, REPLAY
     * while pages of the inbox are sent, LIVE after QueueEmpty. */
    enum { DELIVERY_OFF = 0, DELIVERY_REPLAY, DELIVERY_LIVE } delivery;
    uint64_t delivered_pos; /* the last inbox position sent on this connection */
    unsigned unanswered;    /* server requests of messaging.c without a Response yet */
};

/* A new device as proposed (copied out of a DeviceRegistration). */
struct dev_new {
    struct id id;
    uint8_t identity_key[REC_KEY_LEN];
    uint8_t encryption_key[REC_KEY_LEN];
    uint32_t key_id;
    int64_t expires_at;
    uint8_t signature[REC_SIG_LEN];
    char label[RULES_LABEL_MAX + 1];
};

enum op_kind {
    OP_LOGIN = 1,
    OP_REGISTER,
    OP_REGISTER_REFUSED,
    OP_AUTHENTICATE,
    OP_LOGOUT,
    OP_INVITE,
    OP_REMOVE_DEVICE,
    OP_DEVICE_LIST, /* PublishDeviceList and RotateEncryptionKey */
    OP_CREATE_DIRECT,
    OP_SEND,
    OP_ACK,
    OP_RECEIPT,
    OP_AUDITED, /* a read answered once its audit record is durable (handlers_audit.c) */
    OP_CREATE_CHANNEL,
    OP_MEMBER, /* AddMember, RemoveMember, ApproveMember, LeaveConversation */
    OP_RECALL,
    OP_URGENT_ACK,
    OP_DEACTIVATE,
    OP_VERIFY, /* a VerifyAudit walking the chain; never proposed (handlers_audit.c) */
};

/* Answers a request (`f`, decoded again from op->frame) once its audit
 * record is durable. */
typedef void (*audited_fn)(struct hconn *hc, uint64_t rid, const Carechat__V1__Frame *f);

/* One request in flight. Secrets (token) are wiped by op_release(). */
struct op {
    enum op_kind kind;
    struct hconn *hc;
    uint64_t request_id;
    uint32_t action; /* the audit action of its request (hc->action at op_new) */
    /* Who sent it: the connection's session at op_new (has_actor false before
     * authentication; refusals of Login name op->account instead). */
    bool has_actor;
    struct id actor, actor_device;
    struct id account, device;
    uint32_t role;
    bool found;      /* Login: the email belongs to an active account */
    bool new_device; /* Login/Register: dev is to be created */
    struct dev_new dev;
    uint8_t token[32];
    uint8_t token_hash[REC_HASH_LEN];
    int64_t expires_at, idle_expires_at;
    char email[RULES_EMAIL_MAX + 1];
    uint8_t email_index[REC_HASH_LEN];
    uint8_t code_hash[REC_HASH_LEN];
    char code[64];
    char birth_date[11];
    char display_name[RULES_DISPLAY_NAME_MAX + 1];
    struct id conversation; /* messaging ops */
    struct id target;       /* OP_DEACTIVATE: the account */
    int64_t time;           /* OP_DEACTIVATE: the entry's time */
    struct buf frame;       /* OP_AUDITED: the encoded request */
    audited_fn answer;      /* OP_AUDITED */
};

/* ---- handlers.c ---------------------------------------------------------- */

/* A new op for the request being dispatched on `hc` (takes a reference on
 * hc; its action is hc->action). */
struct op *op_new(struct hconn *hc, enum op_kind kind, uint64_t request_id);
/* Drops the op's reference and wipes and frees it. */
void op_release(struct op *op);
/* True when the op's connection is still there to be answered. */
bool op_live(const struct op *op);

/* Fills the common fields of an entry (version, time, actor ids: NULL for
 * none). */
void entry_init(Carechat__Entry__V1__Entry *e, int64_t time, const struct id *account,
                const struct id *device);
/* The journal on_done of every op (ctx: the op): answers, then appends the
 * audit record of a denial (audit_refusal()) and releases the op. */
void handlers_entry_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len);
/* Encodes `e` (with the client's address as source_address) and appends it
 * with handlers_entry_done as on_done for `op`.
 * On failure answers the request with the status and releases the op. */
void propose(struct handlers *h, struct op *op, const Carechat__Entry__V1__Entry *e);

/* Marks `hc` authenticated with the op's account, device and session, and
 * replaces every other connection of the same device. */
void session_established(struct hconn *hc, const struct op *op);
/* Sends SessionRevoked(reason) and closes (1008) every authenticated
 * connection of `account` (NULL: any) and `device` (NULL: any) except
 * `except` (may be NULL); they are unauthenticated from then on. */
void revoke(struct handlers *h, const struct id *account, const struct id *device,
            Carechat__V1__RevokeReason reason, const struct hconn *except);

/* Answers with a SessionResult built from the op. */
void respond_session(struct op *op, bool with_token);

/* Reads an account / device record from the store (loop thread). Same returns
 * as store_get(), or STATUS_CORRUPT. */
int read_account(struct handlers *h, const struct id *id, struct rec_account *out);
int read_device(struct handlers *h, const struct id *account, const struct id *device,
                struct rec_device *out);
/* Looks up the account id of a normalised email through the blind index. */
int find_email(struct handlers *h, const uint8_t index[REC_HASH_LEN], struct id *out);
/* Reads a conversation / the membership of `account` in `conv` (loop thread).
 * Same returns as store_get(), or STATUS_CORRUPT. */
int read_conv(struct handlers *h, const struct id *conv, struct rec_conv *out);
int read_member(struct handlers *h, const struct id *conv, const struct id *account,
                struct rec_member *out);
/* Answers request `rid` with `rc` and `detail`, except that a store failure
 * (STATUS_CORRUPT, STATUS_IO) is answered STATUS_INTERNAL without detail. */
void respond_error(struct conn *c, uint64_t rid, int rc, const char *detail);

/* Checks and copies a DeviceRegistration (keys, signature, unexpired at `now`,
 * label), choosing a new device id. Returns 0 or STATUS_BAD_REQUEST. */
int dev_from_registration(const Carechat__V1__DeviceRegistration *r, int64_t now,
                          struct dev_new *out);
/* Points a DeviceNew entry message at `d` (which must outlive it). */
void dev_to_entry(const struct dev_new *d, Carechat__Entry__V1__DeviceNew *out);

/* ---- handlers_audit.c ------------------------------------------------------ */

/* The client's address as text ("" once detached) into out. */
void audit_source(const struct hconn *hc, char out[REC_AUDIT_SOURCE_MAX + 1]);
/* Proposes an AuditAppend entry (actor: `actor`/`device`, NULL for none;
 * source: hc's address) with `done(ctx, ...)` as on_done (NULL: none).
 * `status` is 0 or the negative STATUS_* the request ended with. Returns 0
 * or the status of journal_append() (then done is never called). */
int audit_propose(struct hconn *hc, const struct id *actor, const struct id *device,
                  uint32_t action, int status, const void *object, size_t object_len,
                  const struct id *patient, journal_done_fn done, void *ctx);
/* Answers `rid`, the request being dispatched (not from an on_done: see
 * audit_refusal()), with the failure `status` as respond_error() does, and
 * when it is a denial (FORBIDDEN, NOT_FOUND, UNAUTHENTICATED) appends its
 * audit record: action hc->action, outcome `status`, actor the connection's
 * account and device when authenticated (none otherwise), object `object`
 * (NULL/0 for none). Every refusal of a request by role, membership, account
 * state or target goes through here, once. */
void deny(struct hconn *hc, uint64_t rid, int status, const char *detail, const void *object,
          size_t object_len);
/* Fail-closed read (the `read` rows of server/authz.c): appends the access
 * record of `f` (request `rid`, action hc->action, the given object and
 * patient, NULL for none) and runs answer(hc, rid, f) once it is durable;
 * answers UNAVAILABLE when it cannot be written. */
void audited_read(struct hconn *hc, uint64_t rid, const void *object, size_t object_len,
                  const struct id *patient, const Carechat__V1__Frame *f, audited_fn answer);
/* on_done of OP_AUDITED. */
void audited_done(struct op *op, int status);
/* After a state-changing op was refused with `status` by apply: appends the
 * refusal's audit record (action op->action) when it is a denial (FORBIDDEN,
 * NOT_FOUND, UNAUTHENTICATED). */
void audit_refusal(struct op *op, int status);
void handle_query_audit(struct hconn *hc, uint64_t rid, const Carechat__V1__QueryAudit *m);
/* VerifyAudit walks the chain in steps of VERIFY_STEP records, one per loop
 * wake, so a long log never stalls the loop; one verification at a time
 * (another gets RATE_LIMITED). */
void handle_verify_audit(struct hconn *hc, uint64_t rid);
/* Runs the next step of the verification in progress. Loop thread, from
 * handlers_poll(). */
void audit_verify_poll(struct handlers *h);

/* ---- sessions.c ---------------------------------------------------------- */

void handle_login(struct hconn *hc, uint64_t rid, const Carechat__V1__Login *m);
void handle_register(struct hconn *hc, uint64_t rid, const Carechat__V1__Register *m);
void handle_authenticate(struct hconn *hc, uint64_t rid, const Carechat__V1__Authenticate *m);
void handle_logout(struct hconn *hc, uint64_t rid);
void handle_invite(struct hconn *hc, uint64_t rid, const Carechat__V1__Invite *m);
/* on_done of the session kinds: answers and updates the connection. */
void sessions_entry_done(struct op *op, int status);

/* ---- devices.c ----------------------------------------------------------- */

void handle_publish_device_list(struct hconn *hc, uint64_t rid,
                                const Carechat__V1__PublishDeviceList *m);
void handle_list_devices(struct hconn *hc, uint64_t rid, const Carechat__V1__ListDevices *m);
void handle_remove_device(struct hconn *hc, uint64_t rid, const Carechat__V1__RemoveDevice *m);
void handle_rotate_key(struct hconn *hc, uint64_t rid, const Carechat__V1__RotateEncryptionKey *m);
void handle_lookup_account(struct hconn *hc, uint64_t rid, const Carechat__V1__LookupAccount *m);
/* on_done of the device kinds. */
void devices_entry_done(struct op *op, int status);

/* ---- messaging.c --------------------------------------------------------- */

/* Creates the messaging state (send rate limiter, typing bus) for `h`.
 * Returns 0 and *out (free with messaging_free()), or STATUS_BAD_REQUEST for a
 * bad limit in the configuration. */
int messaging_new(struct handlers *h, struct messaging **out);
/* Accepts NULL. */
void messaging_free(struct messaging *m);
/* Delivers the typing hints waiting on the bus. Loop thread, after a wake. */
void messaging_poll(struct messaging *m);

void handle_create_direct(struct hconn *hc, uint64_t rid, const Carechat__V1__CreateDirect *m);
void handle_list_conversations(struct hconn *hc, uint64_t rid,
                               const Carechat__V1__ListConversations *m);
void handle_get_conversation(struct hconn *hc, uint64_t rid,
                             const Carechat__V1__GetConversation *m);
void handle_history(struct hconn *hc, uint64_t rid, const Carechat__V1__History *m);
void handle_send(struct hconn *hc, uint64_t rid, const Carechat__V1__Send *m);
void handle_ack(struct hconn *hc, uint64_t rid, const Carechat__V1__Ack *m);
void handle_sync(struct hconn *hc, uint64_t rid, const Carechat__V1__Sync *m);
void handle_send_receipt(struct hconn *hc, uint64_t rid, const Carechat__V1__SendReceipt *m);
void handle_typing(struct hconn *hc, uint64_t rid, const Carechat__V1__Typing *m);
/* Answers `rid` with the Conversation `conv` (or the store's error). */
void respond_conversation(struct hconn *hc, uint64_t rid, const struct id *conv);
/* Delivers the inbox entries of a delivery list (server/records_messages.h), created by
 * an entry just applied, to their devices' open connections. */
void deliver_list(struct handlers *h, const uint8_t *data, size_t len);
/* A Response from the client to a server request of this connection. */
void messaging_on_response(struct hconn *hc, const Carechat__V1__Frame *f);
/* on_done of the messaging kinds: answers and delivers the new inbox entries
 * to the devices' open connections. */
void messaging_entry_done(struct op *op, uint64_t pos, int status, const uint8_t *result,
                          size_t len);

/* ---- channels.c ---------------------------------------------------------- */

void handle_create_channel(struct hconn *hc, uint64_t rid, const Carechat__V1__CreateChannel *m);
void handle_add_member(struct hconn *hc, uint64_t rid, const Carechat__V1__AddMember *m);
void handle_remove_member(struct hconn *hc, uint64_t rid, const Carechat__V1__RemoveMember *m);
void handle_approve_member(struct hconn *hc, uint64_t rid, const Carechat__V1__ApproveMember *m);
void handle_leave_conversation(struct hconn *hc, uint64_t rid,
                               const Carechat__V1__LeaveConversation *m);
void handle_list_members(struct hconn *hc, uint64_t rid, const Carechat__V1__ListMembers *m);
void handle_recall(struct hconn *hc, uint64_t rid, const Carechat__V1__Recall *m);
void handle_ack_urgent(struct hconn *hc, uint64_t rid, const Carechat__V1__AckUrgent *m);
void handle_get_urgent_status(struct hconn *hc, uint64_t rid,
                              const Carechat__V1__GetUrgentStatus *m);
/* Whether `other` is an active or pending member of a conversation in which
 * `account` is active (the first CHANNELS_SHARE_SCAN of its conversations,
 * most recently active first): members see each other's accounts and device
 * lists whatever their roles (a patient and a family member in one channel). */
#define CHANNELS_SHARE_SCAN 1000
bool channels_share(struct handlers *h, const struct id *account, const struct id *other);
/* on_done of the channel kinds: answers and delivers tombstones and urgent
 * acknowledgements to the devices' open connections. */
void channels_entry_done(struct op *op, uint64_t pos, int status, const uint8_t *result,
                         size_t len);

/* ---- admin.c -------------------------------------------------------------- */

void handle_deactivate_account(struct hconn *hc, uint64_t rid,
                               const Carechat__V1__DeactivateAccount *m);
/* on_done of OP_DEACTIVATE: answers RetentionInfo and revokes the account's
 * live sessions. */
void admin_entry_done(struct op *op, int status);

#endif
