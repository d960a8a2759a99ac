/*
 * server/records_messages.h: the typed records of conversations, messages, device
 * inboxes, receipts and send idempotency, their keys and byte encodings.
 *
 * Every record is one value in its column family (storage/store.h seals it
 * under the conversation's owner: the patient member's account id when a
 * patient is a member, so purging the patient shreds it; the server's key
 * otherwise). Ids are 16 bytes, integers big-endian at fixed width:
 *
 *   CF_CONVERSATIONS  conversation id (16)                 -> struct rec_conv
 *                     0x01 | account id | ~time (8) | conversation id
 *                                                          -> conversation id: the
 *                          account's conversation index, one entry per
 *                          conversation in which it is ACTIVE (~ is UINT64_MAX
 *                          minus the time, so newer sorts first). The time is
 *                          the member's joined_at in a conversation with
 *                          index_fixed, and no message moves the entry; in one
 *                          without (written by older servers) it is
 *                          rec_activity_time() until the next message moves
 *                          it to joined_at once. Listings order by activity
 *                          when they read, not by this key (conversations.c).
 *                     0x02 | lower id | higher id (33)     -> conversation id (16):
 *                                                             the direct pair index
 *                     0x03 | conversation id (17)          -> struct rec_channel:
 *                                                             a care-team channel's name
 *                     0x04 | patient id | staff id (33)    -> u32 count (4): the care
 *                          teams (channels where both are active) the two share
 *   CF_MEMBERS        conversation id | account id (32)    -> struct rec_member
 *   CF_MESSAGES       conversation id | seq (24)           -> struct rec_message
 *   CF_RECEIPTS       conversation id | message id (32)    -> struct rec_msgref
 *                     conversation id | message id | account id (48)
 *                                                          -> struct rec_receipt
 *                     conversation id | message id | 0x55 | account id (49)
 *                                                          -> struct rec_urgent: one
 *                          per recipient account of an urgent message
 *   CF_IDEMPOTENCY    conversation id | sender account id | client_msg_id (48)
 *                                                          -> struct rec_sent
 *   CF_INBOXES        device id (16)                       -> struct rec_inbox: the
 *                          head, with the per-sender counts of the quota
 *                     device id | position (24)            -> struct rec_item: kind,
 *                          conversation, seq, message, account, receipt kind, at;
 *                          a MEMBERSHIP item then by_account and change (items of
 *                          the other kinds end at `at`, as they always have)
 *   CF_INBOX_QUOTAS   device id | sender account id (32)   -> u32 count (4): the
 *                          sender's MESSAGE items in the device's inbox, for a
 *                          head of the old layout only (below)
 *
 * A device's inbox holds exactly the positions (acked, last]: positions are
 * assigned one after the other by apply, and acknowledgements drop a prefix.
 * Clients never rely on that (cursors are opaque, positions not contiguous).
 * An inbox holds at most the configured limit of undelivered entries, and one
 * sender's messages at most the sender quota of them: a message beyond either
 * is not queued for that device (it stays in the conversation's history) and
 * counts as missed; the device goes on receiving once it drains, and the
 * other devices are not held up by it.
 *
 * Where the sender counts live. A head written before they moved into it
 * (counts_in_head false) keeps them in CF_INBOX_QUOTAS, one row per sender
 * with a non-zero count (a count that drops to 0 deletes its row), and apply
 * goes on enforcing and releasing them there while the inbox holds items.
 * An empty inbox (acked == last: a device's first head, or one that
 * drained) holds no count anywhere, since each left with its item, so apply
 * reads and writes every empty head as counting in the head; a head that
 * counts stays so, and its device never touches CF_INBOX_QUOTAS again. No
 * step migrates anything: by the time a device switches, the
 * acknowledgements that emptied its inbox have deleted its rows. The rows
 * that remain belong to inboxes that have not emptied since the upgrade,
 * and (as before) to devices removed with messages pending, which stay,
 * unread, under the server's key. Which heads count is a function of the
 * records, hence of the entries, so a replay decides the same.
 *
 * Encoding: a format byte (REC_CONV_FORMAT), then the fields in a fixed order;
 * byte strings as a 4-byte length and the bytes. A conversation record ends
 * after its members in one of three ways: nothing (older servers, no message
 * since they kept active_seq), active_seq (8) | active_at (8) with active_seq
 * not 0 (older servers), or active_seq (8) | active_at (8) | flags (1), which
 * is what this version writes (active_seq 0 while no message; flags bit 0
 * index_fixed, the other bits 0). The first two decode with index_fixed
 * false. Decoders copy nothing: the byte strings they return point into the
 * encoded value, which must outlive the decoded record. Pure functions, any
 * thread.
 */
#ifndef SERVER_RECORDS_MESSAGES_H
#define SERVER_RECORDS_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "storage/keys.h"

#define REC_CONV_FORMAT 1

#define REC_ENC_LEN 32     /* HPKE encapsulated key */
#define REC_WRAPPED_LEN 48 /* sealed 32-byte message key */
/* A wrap as a message record holds it: device id, key id, enc, wrapped key. */
#define REC_WRAP_RAW_LEN (ID_LEN + 4 + REC_ENC_LEN + REC_WRAPPED_LEN)
#define REC_NONCE_LEN 24 /* XChaCha20-Poly1305 */
#define REC_SIG_LEN 64   /* Ed25519 */
#define REC_WRAPS_MAX 512
#define REC_DIRECT_MEMBERS 2
#define REC_MEMBERS_MAX 256 /* every account ever a member of a channel */
#define REC_CHANNEL_NAME_MAX 128

/* Conversation kinds and member states, numbered as carechat.v1. */
enum rec_kind { REC_DIRECT = 1, REC_CARE_TEAM = 2 };
enum rec_state { REC_ACTIVE = 1, REC_PENDING = 2, REC_LEFT = 3, REC_REMOVED = 4 };

/* Inbox item kinds. */
enum rec_item_kind {
    REC_ITEM_MESSAGE = 1,
    REC_ITEM_RECEIPT = 2,
    REC_ITEM_RECALL = 3,     /* conversation_id, message_id, seq, at */
    REC_ITEM_URGENT_ACK = 4, /* conversation_id, message_id, account_id, at */
    REC_ITEM_MEMBERSHIP = 5  /* conversation_id, account_id (whose membership
                                   changed), by_account, change, at */
};

/* Membership changes of a MEMBERSHIP item, numbered as carechat.v1
 * MembershipChange. */
enum rec_change {
    REC_CHANGE_JOINED = 1,  /* added as, or approved to, an active member */
    REC_CHANGE_PENDING = 2, /* added, awaiting the patient's approval */
    REC_CHANGE_LEFT = 3,
    REC_CHANGE_REMOVED = 4
};

/* Borrowed byte string. */
struct rec_bytes {
    const uint8_t *data;
    size_t len;
};

struct rec_conv {
    uint32_t kind;
    int64_t created_at;
    uint64_t last_seq; /* 0 while empty */
    bool has_owner;
    struct id owner;    /* the patient member; meaningful when has_owner */
    uint32_t n_members; /* every account ever a member; state in CF_MEMBERS */
    struct id members[REC_MEMBERS_MAX];
    /* The conversation's last message (seq, time; 0: none since records had
     * these fields): see rec_activity_time(). */
    uint64_t active_seq;
    int64_t active_at;
    /* Members' entries in the account conversation index are keyed by their
     * joined_at and never moved by messages. False in records of older
     * servers, whose entries sit at rec_activity_time(); their next message
     * moves them to joined_at and sets it (apply_messages.c). */
    bool index_fixed;
};

struct rec_channel {
    struct rec_bytes name; /* 1..REC_CHANNEL_NAME_MAX bytes, personal data */
};

struct rec_urgent {
    int64_t acked_at; /* 0 while not acknowledged */
};

struct rec_member {
    uint32_t role; /* REC_ROLE_* at the time of joining */
    uint32_t state;
    int64_t joined_at;
    int64_t left_at;
    int64_t last_active; /* time of its activation (or of a message before the
                            conversation kept active_at); see rec_activity_time() */
    uint64_t joined_seq; /* the first seq the member may read (history and
                            deliveries start there); encoded only when not 0 */
};

struct rec_wrap {
    struct id device_id;
    uint32_t key_id;
    uint8_t enc[REC_ENC_LEN];
    uint8_t wrapped_key[REC_WRAPPED_LEN];
};

struct rec_message {
    struct id message_id;
    struct id sender_account;
    struct id sender_device;
    int64_t sent_at;
    bool urgent;
    struct id client_msg_id;
    uint32_t envelope_version;
    struct rec_bytes header, body, body_nonce, signature;
    uint32_t n_wraps;
    /* Encoding: the wraps themselves. Decoding: points into the value
     * (n_wraps of REC_WRAP_RAW_LEN bytes), found with rec_message_find_wrap(). */
    const struct rec_wrap *wraps;
    const uint8_t *wraps_raw;
    /* Set by a recall, which also empties header, body, nonce, signature and
     * wraps; encoded only when not 0 (or when a field below follows). */
    int64_t recalled_at;
    /* Envelope version 2 (encoded after recalled_at when any is set): the
     * sender's signed clock and counter, and the recall's signature by the
     * device recall_signer of account recall_signer_account (the sender or an
     * administrator; empty: not recalled). */
    int64_t sender_sent_at;
    uint64_t counter;
    struct id recall_signer;
    struct rec_bytes recall_signature;
    struct id recall_signer_account;
};

struct rec_msgref {
    uint64_t seq;
    struct id sender_account;
};

struct rec_receipt {
    int64_t delivered_at; /* 0: none */
    int64_t read_at;      /* 0: none */
};

struct rec_sent {
    struct id message_id;
    uint64_t seq;
    int64_t sent_at;
};

/* A sender's entry in an inbox head: account id | u32 count. */
#define REC_INBOX_SENDER_SIZE (ID_LEN + 4)

struct rec_inbox {
    uint64_t last;  /* the last position assigned (0: none yet) */
    uint64_t acked; /* every position up to this one was acknowledged */
    /* Messages the device missed since its inbox last drained: at its limit,
     * or over the sender's share of it (written only when non-zero or when
     * the senders follow, so an inbox that never missed one keeps its old
     * layout). */
    uint64_t missed;
    int64_t full_since; /* the first miss since the inbox last drained (0: none) */
    /* Whether the senders below are the head's counts; false: a head of the
     * old layout, whose counts are in CF_INBOX_QUOTAS (above). Encoded by
     * the presence of n_senders after full_since. */
    bool counts_in_head;
    /* The senders with MESSAGE items in the inbox: n_senders entries of
     * REC_INBOX_SENDER_SIZE bytes, in increasing id order, each count not 0.
     * A count never exceeds its sender's items in (acked, last], so
     * n_senders and the sum of the counts are at most last - acked. Borrowed:
     * points into the decoded value, or into the caller's buffer after
     * rec_inbox_set_count(); read with rec_inbox_count(). */
    uint32_t n_senders;
    const uint8_t *senders;
};

struct rec_item {
    uint32_t kind; /* enum rec_item_kind */
    struct id conversation_id;
    /* MESSAGE (with account_id: its sender, for the sender's inbox quota;
     * zero in items written before quotas) */
    uint64_t seq;
    /* RECEIPT */
    struct id message_id;
    struct id account_id;
    uint32_t receipt_kind; /* 1 delivered, 2 read */
    int64_t at;
    /* MEMBERSHIP (with account_id): who made the change (the member itself
     * for LEFT) and the enum rec_change. */
    struct id by_account;
    uint32_t change;
};

/* The time of active member `m`'s last activity in conversation `c`, which
 * orders the account's conversation list: the conversation's active_at when
 * its last message (active_seq) came after m became active (m->joined_seq;
 * 0: a member from the creation), else m's own last_active (its activation,
 * or a message of a server older than active_at). Where m's entry in the
 * account conversation index is keyed while !c->index_fixed. */
int64_t rec_activity_time(const struct rec_conv *c, const struct rec_member *m);

/* Keys (each resets k). */
/* The account conversation index's entry of `conv` for `account` at `time`
 * (the member's joined_at, or rec_activity_time() while !index_fixed). */
void rec_key_account_conv(struct key *k, const struct id *account, int64_t time,
                          const struct id *conv);

/* The prefix of an account's conversation index (0x01 | account id). */
void rec_key_account_conv_prefix(struct key *k, const struct id *account);
void rec_key_pair(struct key *k, const struct id *a, const struct id *b);
void rec_key_idem(struct key *k, const struct id *conv, const struct id *sender,
                  const struct id *client_msg_id);
void rec_key_receipt(struct key *k, const struct id *conv, const struct id *message,
                     const struct id *account);
void rec_key_channel(struct key *k, const struct id *conv);
void rec_key_care_pair(struct key *k, const struct id *patient, const struct id *staff);
void rec_key_urgent(struct key *k, const struct id *conv, const struct id *message,
                    const struct id *account);
#define REC_URGENT_TAG 0x55

/* Encoders append to `out`. */
void rec_conv_encode(const struct rec_conv *c, struct buf *out);
void rec_member_encode(const struct rec_member *m, struct buf *out);
void rec_message_encode(const struct rec_message *m, struct buf *out);
void rec_msgref_encode(const struct rec_msgref *r, struct buf *out);
void rec_receipt_encode(const struct rec_receipt *r, struct buf *out);
void rec_sent_encode(const struct rec_sent *s, struct buf *out);
void rec_inbox_encode(const struct rec_inbox *i, struct buf *out);
void rec_item_encode(const struct rec_item *i, struct buf *out);
void rec_channel_encode(const struct rec_channel *c, struct buf *out);
void rec_urgent_encode(const struct rec_urgent *u, struct buf *out);

/* Decoders fill *out (zeroed first). Return 0, or STATUS_CORRUPT for another
 * format byte, a truncated or oversized field (rec_item_decode: also a
 * MEMBERSHIP item without by_account and change, or another kind with bytes
 * after `at`; rec_inbox_decode: also acked beyond last, or senders out of
 * order, repeated, with a count of 0, or counting more items than the inbox
 * holds). */
int rec_conv_decode(const uint8_t *data, size_t len, struct rec_conv *out);
int rec_member_decode(const uint8_t *data, size_t len, struct rec_member *out);
int rec_message_decode(const uint8_t *data, size_t len, struct rec_message *out);
int rec_msgref_decode(const uint8_t *data, size_t len, struct rec_msgref *out);
int rec_receipt_decode(const uint8_t *data, size_t len, struct rec_receipt *out);
int rec_sent_decode(const uint8_t *data, size_t len, struct rec_sent *out);
int rec_inbox_decode(const uint8_t *data, size_t len, struct rec_inbox *out);
int rec_item_decode(const uint8_t *data, size_t len, struct rec_item *out);
int rec_channel_decode(const uint8_t *data, size_t len, struct rec_channel *out);
int rec_urgent_decode(const uint8_t *data, size_t len, struct rec_urgent *out);

/* The wrap of a decoded message for `device`: 0 with *out, or
 * STATUS_NOT_FOUND. Compares the stored device ids in place and copies only
 * the match, as each device of a fan-out looks for its own among hundreds. */
int rec_message_find_wrap(const struct rec_message *m, const struct id *device,
                          struct rec_wrap *out);

/* The count of `sender` among the head's senders; 0 when it is not among
 * them. O(log n_senders). */
uint32_t rec_inbox_count(const struct rec_inbox *in, const struct id *sender);
/* Sets the count of `sender` among the head's senders to `count` (0 removes
 * it), keeping their order: copies them into `space` unless in->senders
 * points there already (after an earlier call with the same buffer), edits
 * them there and points in->senders at it. `space` (the caller's, cleaned up
 * by the caller) must outlive the use of `in`. O(n_senders). */
void rec_inbox_set_count(struct rec_inbox *in, const struct id *sender, uint32_t count,
                         struct buf *space);

/*
 * Results that apply appends for the proposer (journal on_done):
 *   DirectCreate  the conversation id (16): the new one, or the pair's existing one
 *   MessageSend   OK: struct rec_sent, then a delivery list (empty for a retry
 *                 answered from the idempotency record); CONFLICT: three id lists
 *                 (missing, extra, stale devices), each a u32 count and the ids
 *   ReceiptRecord a delivery list
 *   ChannelCreate the conversation id (16)
 *   MemberAdd, MemberRemove, MemberApprove, ConversationLeave, MessageRecall,
 *   UrgentAck: a delivery list
 * A delivery list is a u32 count, then per entry device id (16) | position (8)
 * | the item, every field of struct rec_item at fixed width (92): the inbox
 * entries the entry created, for live delivery without reading them back;
 * then a u32 length, 0 or that of the message record the list carries,
 * followed by its conversation id (16) | seq (8) | the record (a Send's
 * list carries the message it stored, so that live delivery need not read
 * it back either).
 */
#define REC_DELIVERY_SIZE (ID_LEN + 8 + 92)
#define REC_SENT_SIZE (1 + ID_LEN + 8 + 8)

/* The message record a delivery list carries: message `seq` of `conv`, as
 * the entry that made the list stored it in CF_MESSAGES (the value
 * rec_message_encode() wrote). A later entry of the same group commit (a
 * recall) may have changed the stored record since; its own list follows. */
struct rec_list_message {
    struct id conv;
    uint64_t seq;
    const uint8_t *data; /* borrowed; NULL with len 0: the list carries none */
    size_t len;
};

/* Appends one delivery (device, position, item) to `list` (the entries only;
 * the count is written by rec_deliveries_finish). */
void rec_delivery_add(struct buf *list, const struct id *device, uint64_t pos,
                      const struct rec_item *item);
/* Appends the count and the entries collected in `list` to `out`, then the
 * message record `message` (borrowed; NULL: none). */
void rec_deliveries_finish(const struct buf *list, const struct rec_list_message *message,
                           struct buf *out);
/* Reads a delivery list at the start of data[len]: returns 0 with *n,
 * *entries (borrowed, REC_DELIVERY_SIZE bytes each) and *message (its data
 * borrowed from `data`; len 0 when it carries none), or STATUS_CORRUPT. */
int rec_deliveries_read(const uint8_t *data, size_t len, uint32_t *n, const uint8_t **entries,
                        struct rec_list_message *message);
/* The i-th entry of a delivery list; `item` may be NULL. */
void rec_delivery_get(const uint8_t *entries, uint32_t i, struct id *device, uint64_t *pos,
                      struct rec_item *item);

/* Cursors: v1 encodes an inbox position as one unsigned LEB128 varint.
 * rec_cursor_encode writes it into out[10] and returns its length;
 * rec_cursor_decode returns 0 with *pos (an empty cursor is position 0),
 * or STATUS_BAD_REQUEST for anything but one minimal varint. */
size_t rec_cursor_encode(uint64_t pos, uint8_t out[10]);
int rec_cursor_decode(const uint8_t *data, size_t len, uint64_t *pos);

#endif
