/*
 * client/ledger.h: what a device remembers about messages across restarts,
 * so that a server cannot replay one (DESIGN.md "End-to-end encryption":
 * recipients deduplicate durably by (conversation, sender device,
 * client_msg_id) and flag gaps in the sender's counter).
 *
 * The file DIR/seen (DIR the profile directory, mode 0600) is append-only:
 * one LEDGER_RECORD_LEN-byte record per message this device accepted or
 * sent,
 *   conversation 16 | sender device 16 | client_msg_id 16 | message id 16
 *   | counter 8 (big-endian)
 * where a message this device is about to send has an all-zero message id
 * (its counter is reserved before the Send, so a crash never reuses it). A
 * torn last record (a crash mid-append) is ignored. Each append is synced
 * before the message is shown or sent.
 *
 * A message (conversation, sender device, client_msg_id, counter, message
 * id) is, against what the ledger holds:
 *   LEDGER_SAME    already accepted under this message id (a redelivery), or
 *                  one this device reserved for sending;
 *   LEDGER_REPLAY  the same client_msg_id under another message id, or the
 *                  same counter with another client_msg_id: the server (or
 *                  someone) replays a signed envelope as a new message;
 *   LEDGER_NEW     otherwise; `gap` tells whether the counter skips numbers
 *                  after the highest one seen from that device in that
 *                  conversation (messages withheld).
 *
 * Threads: a ledger belongs to one thread (the handle's).
 */
#ifndef CLIENT_LEDGER_H
#define CLIENT_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"

#define LEDGER_FILE "seen"
#define LEDGER_RECORD_LEN 72
/* Records a ledger holds at most (72 MB); beyond, it refuses to grow. */
#define LEDGER_MAX_RECORDS (1u << 20)

enum ledger_verdict {
    LEDGER_NEW = 0,
    LEDGER_SAME = 1,
    LEDGER_REPLAY = 2,
};

struct ledger;

/* Reads DIR/seen (none yet: an empty ledger). Stores it in *out (free with
 * ledger_free()) and returns 0, or STATUS_FORBIDDEN (open to others),
 * STATUS_CORRUPT (over LEDGER_MAX_RECORDS), STATUS_IO. */
int ledger_open(const char *dir, struct ledger **out);

/* Frees. Accepts NULL. */
void ledger_free(struct ledger *l);

/* The verdict on a received message (above). *gap only with LEDGER_NEW. */
enum ledger_verdict ledger_check(const struct ledger *l, const struct id *conversation,
                                 const struct id *sender_device, const struct id *client_msg_id,
                                 uint64_t counter, const struct id *message_id, bool *gap);

/* Appends the record and syncs it. Returns 0, STATUS_TOO_LARGE (full) or
 * STATUS_IO. */
int ledger_record(struct ledger *l, const struct id *conversation, const struct id *sender_device,
                  const struct id *client_msg_id, const struct id *message_id, uint64_t counter);

/* The counter to send `client_msg_id` in `conversation` from `device` with:
 * the one reserved for it before (a resend), or one above the highest
 * recorded, reserved now (appended with a zero message id). Returns 0 with
 * *counter, or ledger_record()'s failure. */
int ledger_reserve(struct ledger *l, const struct id *conversation, const struct id *device,
                   const struct id *client_msg_id, uint64_t *counter);

/* The client_msg_id this device recorded for message `message_id` it sent
 * from `device` in `conversation`. Returns 0 with *client_msg_id, or
 * STATUS_NOT_FOUND. */
int ledger_find_sent(const struct ledger *l, const struct id *conversation, const struct id *device,
                     const struct id *message_id, struct id *client_msg_id);

#endif
