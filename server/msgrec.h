/*
 * server/msgrec.h: the typed records of conversations, messages, device
 * inboxes, receipts and send idempotency, their keys and byte encodings.
 *
 * Every record is one value in its column family (storage/store.h seals it
 * under the conversation's owner: the patient member's account id when a
 * patient is a member, so purging the patient shreds it; the server's key
 * otherwise). Ids are 16 bytes, integers big-endian at fixed width:
 *
 *   CF_CONVERSATIONS  conversation id (16)                 -> struct msgrec_conv
 *                     0x01 | account id | ~last_active (8) | conversation id
 *                                                          -> conversation id: the
 *                          account's conversations, most recently active first
 *                          (~ is UINT64_MAX minus the time, so newer sorts first)
 *                     0x02 | lower id | higher id (33)     -> conversation id (16):
 *                                                             the direct pair index
 *                     0x03 | conversation id (17)          -> struct msgrec_channel:
 *                                                             a care-team channel's name
 *                     0x04 | patient id | staff id (33)    -> u32 count (4): the care
 *                          teams (channels where both are active) the two share
 *   CF_MEMBERS        conversation id | account id (32)    -> struct msgrec_member
 *   CF_MESSAGES       conversation id | seq (24)           -> struct msgrec_message
 *   CF_RECEIPTS       conversation id | message id (32)    -> struct msgrec_msgref
 *                     conversation id | message id | account id (48)
 *                                                          -> struct msgrec_receipt
 *                     conversation id | message id | 0x55 | account id (49)
 *                                                          -> struct msgrec_urgent: one
 *                          per recipient account of an urgent message
 *   CF_IDEMPOTENCY    conversation id | sender account id | client_msg_id (48)
 *                                                          -> struct msgrec_sent
 *   CF_INBOXES        device id (16)                       -> struct msgrec_inbox
 *                     device id | position (24)            -> struct msgrec_item: kind,
 *                          conversation, seq, message, account, receipt kind, at;
 *                          a MEMBERSHIP item then by_account and change (items of
 *                          the other kinds end at `at`, as they always have)
 *
 * A device's inbox holds exactly the positions (acked, last]: positions are
 * assigned one after the other by apply, and acknowledgements drop a prefix.
 * Clients never rely on that (cursors are opaque, positions not contiguous).
 *
 * Encoding: a format byte (MSGREC_FORMAT), then the fields in a fixed order;
 * byte strings as a 4-byte length and the bytes. Decoders copy nothing: the
 * byte strings they return point into the encoded value, which must outlive
 * the decoded record. Pure functions, any thread.
 */
#ifndef SERVER_MSGREC_H
#define SERVER_MSGREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "storage/keys.h"

#define MSGREC_FORMAT 1

#define MSGREC_ENC_LEN 32     /* HPKE encapsulated key */
#define MSGREC_WRAPPED_LEN 48 /* sealed 32-byte message key */
#define MSGREC_NONCE_LEN 24   /* XChaCha20-Poly1305 */
#define MSGREC_SIG_LEN 64     /* Ed25519 */
#define MSGREC_HEADER_MAX 1024
#define MSGREC_WRAPS_MAX 512
#define MSGREC_DIRECT_MEMBERS 2
#define MSGREC_MEMBERS_MAX 256 /* every account ever a member of a channel */
#define MSGREC_CHANNEL_NAME_MAX 128

/* Conversation kinds and member states, numbered as carechat.v1. */
enum msgrec_kind { MSGREC_DIRECT = 1, MSGREC_CARE_TEAM = 2 };
enum msgrec_state { MSGREC_ACTIVE = 1, MSGREC_PENDING = 2, MSGREC_LEFT = 3, MSGREC_REMOVED = 4 };

/* Inbox item kinds. */
enum msgrec_item_kind {
    MSGREC_ITEM_MESSAGE = 1,
    MSGREC_ITEM_RECEIPT = 2,
    MSGREC_ITEM_RECALL = 3,     /* conversation_id, message_id, seq, at */
    MSGREC_ITEM_URGENT_ACK = 4, /* conversation_id, message_id, account_id, at */
    MSGREC_ITEM_MEMBERSHIP = 5  /* conversation_id, account_id (whose membership
                                   changed), by_account, change, at */
};

/* Membership changes of a MEMBERSHIP item, numbered as carechat.v1
 * MembershipChange. */
enum msgrec_change {
    MSGREC_CHANGE_JOINED = 1,  /* added as, or approved to, an active member */
    MSGREC_CHANGE_PENDING = 2, /* added, awaiting the patient's approval */
    MSGREC_CHANGE_LEFT = 3,
    MSGREC_CHANGE_REMOVED = 4
};

/* Borrowed byte string. */
struct msgrec_bytes {
    const uint8_t *data;
    size_t len;
};

struct msgrec_conv {
    uint32_t kind;
    int64_t created_at;
    uint64_t last_seq; /* 0 while empty */
    bool has_owner;
    struct id owner;    /* the patient member; meaningful when has_owner */
    uint32_t n_members; /* every account ever a member; state in CF_MEMBERS */
    struct id members[MSGREC_MEMBERS_MAX];
};

struct msgrec_channel {
    struct msgrec_bytes name; /* 1..MSGREC_CHANNEL_NAME_MAX bytes, personal data */
};

struct msgrec_urgent {
    int64_t acked_at; /* 0 while not acknowledged */
};

struct msgrec_member {
    uint32_t role; /* REC_ROLE_* at the time of joining */
    uint32_t state;
    int64_t joined_at;
    int64_t left_at;
    int64_t last_active; /* time of the last message (or the creation); keys the
                            account's activity index */
    uint64_t joined_seq; /* the first seq the member may read (history and
                            deliveries start there); encoded only when not 0 */
};

struct msgrec_wrap {
    struct id device_id;
    uint32_t key_id;
    uint8_t enc[MSGREC_ENC_LEN];
    uint8_t wrapped_key[MSGREC_WRAPPED_LEN];
};

struct msgrec_message {
    struct id message_id;
    struct id sender_account;
    struct id sender_device;
    int64_t sent_at;
    bool urgent;
    struct id client_msg_id;
    uint32_t envelope_version;
    struct msgrec_bytes header, body, body_nonce, signature;
    uint32_t n_wraps;
    /* Encoding: the wraps themselves. Decoding: points into the value, read
     * each with msgrec_message_wrap(). */
    const struct msgrec_wrap *wraps;
    const uint8_t *wraps_raw;
    /* Set by a recall, which also empties header, body, nonce, signature and
     * wraps; encoded only when not 0. */
    int64_t recalled_at;
};

struct msgrec_msgref {
    uint64_t seq;
    struct id sender_account;
};

struct msgrec_receipt {
    int64_t delivered_at; /* 0: none */
    int64_t read_at;      /* 0: none */
};

struct msgrec_sent {
    struct id message_id;
    uint64_t seq;
    int64_t sent_at;
};

struct msgrec_inbox {
    uint64_t last;  /* the last position assigned (0: none yet) */
    uint64_t acked; /* every position up to this one was acknowledged */
};

struct msgrec_item {
    uint32_t kind; /* enum msgrec_item_kind */
    struct id conversation_id;
    /* MESSAGE */
    uint64_t seq;
    /* RECEIPT */
    struct id message_id;
    struct id account_id;
    uint32_t receipt_kind; /* 1 delivered, 2 read */
    int64_t at;
    /* MEMBERSHIP (with account_id): who made the change (the member itself
     * for LEFT) and the enum msgrec_change. */
    struct id by_account;
    uint32_t change;
};

/* Keys (each resets k). */
void msgrec_key_activity(struct key *k, const struct id *account, int64_t last_active,
                         const struct id *conv);
/* The prefix of an account's activity index (0x01 | account id). */
void msgrec_key_activity_prefix(struct key *k, const struct id *account);
void msgrec_key_pair(struct key *k, const struct id *a, const struct id *b);
void msgrec_key_idem(struct key *k, const struct id *conv, const struct id *sender,
                     const struct id *client_msg_id);
void msgrec_key_receipt(struct key *k, const struct id *conv, const struct id *message,
                        const struct id *account);
void msgrec_key_channel(struct key *k, const struct id *conv);
void msgrec_key_care_pair(struct key *k, const struct id *patient, const struct id *staff);
void msgrec_key_urgent(struct key *k, const struct id *conv, const struct id *message,
                       const struct id *account);
#define MSGREC_URGENT_TAG 0x55

/* Encoders append to `out`. */
void msgrec_conv_encode(const struct msgrec_conv *c, struct buf *out);
void msgrec_member_encode(const struct msgrec_member *m, struct buf *out);
void msgrec_message_encode(const struct msgrec_message *m, struct buf *out);
void msgrec_msgref_encode(const struct msgrec_msgref *r, struct buf *out);
void msgrec_receipt_encode(const struct msgrec_receipt *r, struct buf *out);
void msgrec_sent_encode(const struct msgrec_sent *s, struct buf *out);
void msgrec_inbox_encode(const struct msgrec_inbox *i, struct buf *out);
void msgrec_item_encode(const struct msgrec_item *i, struct buf *out);
void msgrec_channel_encode(const struct msgrec_channel *c, struct buf *out);
void msgrec_urgent_encode(const struct msgrec_urgent *u, struct buf *out);

/* Decoders fill *out (zeroed first). Return 0, or STATUS_CORRUPT for another
 * format byte, a truncated or oversized field (msgrec_item_decode: also a
 * MEMBERSHIP item without by_account and change, or another kind with bytes
 * after `at`). */
int msgrec_conv_decode(const uint8_t *data, size_t len, struct msgrec_conv *out);
int msgrec_member_decode(const uint8_t *data, size_t len, struct msgrec_member *out);
int msgrec_message_decode(const uint8_t *data, size_t len, struct msgrec_message *out);
int msgrec_msgref_decode(const uint8_t *data, size_t len, struct msgrec_msgref *out);
int msgrec_receipt_decode(const uint8_t *data, size_t len, struct msgrec_receipt *out);
int msgrec_sent_decode(const uint8_t *data, size_t len, struct msgrec_sent *out);
int msgrec_inbox_decode(const uint8_t *data, size_t len, struct msgrec_inbox *out);
int msgrec_item_decode(const uint8_t *data, size_t len, struct msgrec_item *out);
int msgrec_channel_decode(const uint8_t *data, size_t len, struct msgrec_channel *out);
int msgrec_urgent_decode(const uint8_t *data, size_t len, struct msgrec_urgent *out);

/* The i-th wrap (i < m->n_wraps) of a decoded message. */
void msgrec_message_wrap(const struct msgrec_message *m, uint32_t i, struct msgrec_wrap *out);

/*
 * Results that apply appends for the proposer (journal on_done):
 *   DirectCreate  the conversation id (16): the new one, or the pair's existing one
 *   MessageSend   OK: struct msgrec_sent, then a delivery list (empty for a retry
 *                 answered from the idempotency record); CONFLICT: three id lists
 *                 (missing, extra, stale devices), each a u32 count and the ids
 *   ReceiptRecord a delivery list
 *   ChannelCreate the conversation id (16)
 *   MemberAdd, MemberRemove, MemberApprove, ConversationLeave, MessageRecall,
 *   UrgentAck: a delivery list
 * A delivery list is a u32 count, then per entry device id (16) | position (8):
 * the inbox entries the entry created, for live delivery.
 */
#define MSGREC_DELIVERY_SIZE (ID_LEN + 8)
#define MSGREC_SENT_SIZE (1 + ID_LEN + 8 + 8)

/* Appends one delivery (device, position) to `list` (the entries only; the
 * count is written by msgrec_deliveries_finish). */
void msgrec_delivery_add(struct buf *list, const struct id *device, uint64_t pos);
/* Appends the count and the entries collected in `list` to `out`. */
void msgrec_deliveries_finish(const struct buf *list, struct buf *out);
/* Reads a delivery list at the start of data[len]: returns 0 with *n and
 * *entries (borrowed, MSGREC_DELIVERY_SIZE bytes each), or STATUS_CORRUPT. */
int msgrec_deliveries_read(const uint8_t *data, size_t len, uint32_t *n, const uint8_t **entries);
/* The i-th entry of a delivery list. */
void msgrec_delivery_get(const uint8_t *entries, uint32_t i, struct id *device, uint64_t *pos);

/* Cursors: v1 encodes an inbox position as one unsigned LEB128 varint.
 * msgrec_cursor_encode writes it into out[10] and returns its length;
 * msgrec_cursor_decode returns 0 with *pos (an empty cursor is position 0),
 * or STATUS_BAD_REQUEST for anything but one minimal varint. */
size_t msgrec_cursor_encode(uint64_t pos, uint8_t out[10]);
int msgrec_cursor_decode(const uint8_t *data, size_t len, uint64_t *pos);

#endif
