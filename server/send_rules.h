/*
 * server/send_rules.h: the rules of a Send, checked the same way twice: early
 * by the Send handler (messaging.c, against the store as the loop thread sees
 * it) and for good by apply (apply_messages.c, against the transaction in
 * journal order). One set of limits, one shape check, one device-set check.
 *
 * The device-set check: the wraps of a message must cover exactly the current
 * devices of its recipients (every device of every ACTIVE member whose
 * account is active), each under the device's current, unexpired encryption
 * key. A device whose key has expired is no recipient (it needs no wrap: it
 * receives nothing until it rotates its key, and never blocks the senders).
 * The sending device needs no wrap; a wrap for it is allowed and not
 * delivered. Anything else is a mismatch: current devices without a wrap
 * (missing), wraps for devices that are not current recipients (extra), and
 * wraps under a key that is not the device's current one or has expired
 * (stale). The check sorts both sides and merges them: O(n log n) in the
 * number of devices and wraps, no store access.
 *
 * Pure, any thread.
 */
#ifndef SERVER_SEND_RULES_H
#define SERVER_SEND_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "protocol/proto.h"
#include "server/records.h"
#include "server/records_messages.h"

/* The only Envelope.version taken (protocol/transcript.h). */
#define SEND_ENVELOPE_VERSION 2
/* Envelope.body (carechat.proto: 64 KiB). */
#define SEND_BODY_MAX (64u * 1024u)
/* Message ids of one SendReceipt. */
#define SEND_RECEIPT_IDS_MAX 100u
/* The recipients' devices: every member of the largest conversation, each
 * with the most devices an account may have. */
#define SEND_DEVICES_MAX (REC_MEMBERS_MAX * REC_MAX_DEVICES)
/* Ids in each list of a mismatch: the answer stays below the decoder's
 * limit on repeated fields (PROTO_DEFAULT_MAX_REPEATED); a client that
 * fetches the device lists of the members again learns the rest. */
#define SEND_MISMATCH_MAX 512u

/* The sizes of a Send's envelope, the same for the request (carechat.v1
 * Envelope) and the entry (entry.proto MessageSend). */
struct send_shape {
    uint32_t version;
    size_t header_len, body_len, nonce_len, signature_len;
    size_t n_wraps;
};

/* Checks the envelope's sizes, before anything is allocated for it. Returns
 * 0, or STATUS_BAD_REQUEST / STATUS_TOO_LARGE with *detail (a constant). */
int send_check_shape(const struct send_shape *s, const char **detail);

/* Copies one KeyWrap into *out, checking the lengths of its fields. Returns 0
 * or STATUS_BAD_REQUEST. */
int send_copy_wrap(ProtobufCBinaryData device_id, uint32_t key_id, ProtobufCBinaryData enc,
                   ProtobufCBinaryData wrapped_key, struct rec_wrap *out);

/* Whether `device` of the account `a` takes part in messages (receives them,
 * and may send): every device of an account that never published a signed
 * list; otherwise only the devices its signed list names, so that a device
 * registered with the password alone (and not yet approved by a listed
 * device) neither receives nor blocks anyone (PROTOCOL.md section 5: the
 * signed list is the source of truth). */
bool send_is_recipient(const struct rec_account *a, const struct id *device);

/* A current device of a recipient, its account and its encryption key. */
struct send_device {
    struct id id, account;
    uint32_t key_id;
    int64_t expires_at;
};

/* The three lists of a mismatch, each of at most SEND_MISMATCH_MAX ids (the
 * rest is left out). */
struct send_mismatch {
    struct id missing[SEND_MISMATCH_MAX], extra[SEND_MISMATCH_MAX], stale[SEND_MISMATCH_MAX];
    uint32_t n_missing, n_extra, n_stale;
};

/* The device-set check at the top of this file. `devs` (n_devs <=
 * SEND_DEVICES_MAX, ids distinct) are the recipients' current devices, `wraps`
 * (n_wraps <= REC_WRAPS_MAX) the message's, `now` the time keys must not have
 * expired by. Sets recipient[i] (n_wraps of them) to the device wrap i is to
 * be delivered to (one of devs[]), NULL for the sender's own. Returns 0 when
 * they match; STATUS_BAD_REQUEST when two wraps name the same device;
 * STATUS_CONFLICT with *out filled otherwise. */
int send_check_devices(const struct send_device *devs, size_t n_devs, const struct rec_wrap *wraps,
                       size_t n_wraps, const struct id *sender_device, int64_t now,
                       struct send_mismatch *out, const struct send_device **recipient);

/* Verifies Envelope.signature (protocol/transcript.h) of a Send in
 * `conversation_id` with `client_msg_id` and `urgent`, whose envelope `env`
 * carries `wraps` (its n_wraps, as send_copy_wrap() copied them), against the
 * sending device's identity key `identity_key`. Returns 0, or
 * STATUS_BAD_REQUEST when it does not verify (or two wraps name one device). */
int send_verify_signature(const uint8_t identity_key[REC_KEY_LEN], const struct id *conversation_id,
                          const struct id *client_msg_id, bool urgent,
                          const Carechat__V1__Envelope *env, const struct rec_wrap *wraps);

/* Verifies a Recall.signature `sig` (64 bytes) by `identity_key`: over the
 * removal transcript of (conversation_id, message_id), or, when `by_sender`
 * (a device of the message's sender), also over the recall transcript of
 * (conversation_id, client_msg_id); protocol/transcript.h. Returns 0 or
 * STATUS_BAD_REQUEST. */
int send_verify_recall(const uint8_t identity_key[REC_KEY_LEN], const struct id *conversation_id,
                       const struct id *client_msg_id, const struct id *message_id, bool by_sender,
                       const uint8_t sig[REC_SIG_LEN]);

/* Appends the mismatch to `out` as three lists (u32 count, then the ids):
 * apply's result of a refused Send. */
void send_mismatch_encode(const struct send_mismatch *m, struct buf *out);
/* Reads what send_mismatch_encode() wrote. Returns 0 or STATUS_CORRUPT. */
int send_mismatch_decode(const uint8_t *data, size_t len, struct send_mismatch *out);

#endif
