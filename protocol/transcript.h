/*
 * protocol/transcript.h: the byte strings a sending device signs about a
 * message, which the client (client/envelope.h) builds and the server
 * (server/messaging.c, Envelope.signature) verifies: one implementation for
 * both sides, so that they cannot drift apart. Integers are big-endian, ids
 * their 16 bytes, contexts ASCII without a NUL.
 *
 *   Recipient hash (32 bytes): SHA-256 of
 *     "carechat.v2 recipients"   22 bytes
 *     count                       4
 *     for each recipient, in strictly ascending bytewise order of device_id:
 *       device_id 16 || key_id 4  (the wraps' KeyWrap.device_id, .key_id)
 *
 *   Binding B (TRANSCRIPT_BINDING_LEN = 101 bytes): the message's context,
 *   bound into the inner signature, the body's and every wrap's additional
 *   data, and Envelope.signature:
 *     version                     4   Envelope.version (2)
 *     conversation_id            16
 *     client_msg_id              16   Send.client_msg_id
 *     sender_device_id           16   Envelope.sender_device_id
 *     urgent                      1   Send.urgent (0 or 1)
 *     sent_at                     8   Envelope.sent_at: the sender's clock, ms
 *     counter                     8   Envelope.counter: 1, 2, ... per
 *                                     (conversation, sender device)
 *     recipient hash             32   (above)
 *
 *   Envelope.signature's transcript (Ed25519 by the sender's identity key):
 *     "carechat.v2 envelope"     20 bytes
 *     B                         101
 *     SHA-256(Envelope.header)   32
 *     SHA-256(body_nonce || body) 32
 *     count                       4
 *     for each wrap in strictly ascending order of device_id:
 *       device_id 16 || key_id 4 || enc 32 || wrapped_key 48
 *
 *   Recall (Recall.signature, Ed25519 by a device of the message's sender):
 *     "carechat.v2 recall"       18 bytes
 *     conversation_id            16
 *     client_msg_id              16   of the recalled message
 *
 *   Removal (Recall.signature, Ed25519 by a device of an administrator, or of
 *   the sender on a device that did not send it and so does not know its
 *   client_msg_id):
 *     "carechat.v2 removal"      19 bytes
 *     conversation_id            16
 *     message_id                 16   the server's id of the removed message
 *
 *   Session refresh (Authenticate.refresh_signature, Ed25519 by the device's
 *   identity key):
 *     "carechat.v1 session refresh"  27 bytes
 *     device_id                      16
 *     SHA-256(session token)         32
 *     refresh_at                      8   ms since the epoch
 *
 * Pure functions; any thread.
 */
#ifndef PROTOCOL_TRANSCRIPT_H
#define PROTOCOL_TRANSCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TRANSCRIPT_VERSION 2
#define TRANSCRIPT_ID_LEN 16
#define TRANSCRIPT_HASH_LEN 32
#define TRANSCRIPT_BINDING_LEN 101
#define TRANSCRIPT_ENC_LEN 32
#define TRANSCRIPT_WRAPPED_LEN 48
#define TRANSCRIPT_RECALL_LEN (18 + 2 * TRANSCRIPT_ID_LEN)
#define TRANSCRIPT_REMOVAL_LEN (19 + 2 * TRANSCRIPT_ID_LEN)
#define TRANSCRIPT_REFRESH_LEN (27 + TRANSCRIPT_ID_LEN + TRANSCRIPT_HASH_LEN + 8)

/* The context of one message. */
struct transcript_context {
    uint32_t version;
    uint8_t conversation_id[TRANSCRIPT_ID_LEN];
    uint8_t client_msg_id[TRANSCRIPT_ID_LEN];
    uint8_t sender_device_id[TRANSCRIPT_ID_LEN];
    bool urgent;
    int64_t sent_at;
    uint64_t counter;
    uint8_t recipient_hash[TRANSCRIPT_HASH_LEN];
};

/* One wrap as the transcripts see it; pointers borrowed. `enc` and
 * `wrapped_key` are needed by transcript_envelope() only. */
struct transcript_wrap {
    const uint8_t *device_id; /* TRANSCRIPT_ID_LEN bytes */
    uint32_t key_id;
    const uint8_t *enc;         /* TRANSCRIPT_ENC_LEN bytes */
    const uint8_t *wrapped_key; /* TRANSCRIPT_WRAPPED_LEN bytes */
};

/* Sorts the `n` wraps at `w` by device id, ascending. Returns 0, or -1 when
 * two name the same device. */
int transcript_sort_wraps(struct transcript_wrap *w, size_t n);

/* The recipient hash of the `n` wraps at `w` (sorted: transcript_sort_wraps()). */
void transcript_recipient_hash(const struct transcript_wrap *w, size_t n,
                               uint8_t out[TRANSCRIPT_HASH_LEN]);

/* Binding B of `ctx`. */
void transcript_binding(const struct transcript_context *ctx, uint8_t out[TRANSCRIPT_BINDING_LEN]);

/* Appends Envelope.signature's transcript to `out`: binding B of `ctx`, the
 * client header (`header_len` bytes), nonce (24 bytes), body and the `n`
 * sorted wraps at `w`. */
void transcript_envelope(const struct transcript_context *ctx, const uint8_t *header,
                         size_t header_len, const uint8_t nonce[24], const uint8_t *body,
                         size_t body_len, const struct transcript_wrap *w, size_t n,
                         struct buf *out);

/* The signed bytes of a recall of (conversation, client_msg_id). */
void transcript_recall(const uint8_t conversation_id[TRANSCRIPT_ID_LEN],
                       const uint8_t client_msg_id[TRANSCRIPT_ID_LEN],
                       uint8_t out[TRANSCRIPT_RECALL_LEN]);

/* The signed bytes of a refresh of the session whose token hashes to
 * `token_hash`, by `device_id`, at `refresh_at`. */
void transcript_refresh(const uint8_t device_id[TRANSCRIPT_ID_LEN],
                        const uint8_t token_hash[TRANSCRIPT_HASH_LEN], int64_t refresh_at,
                        uint8_t out[TRANSCRIPT_REFRESH_LEN]);

/* The signed bytes of a removal of (conversation, message_id). */
void transcript_removal(const uint8_t conversation_id[TRANSCRIPT_ID_LEN],
                        const uint8_t message_id[TRANSCRIPT_ID_LEN],
                        uint8_t out[TRANSCRIPT_REMOVAL_LEN]);

#endif
