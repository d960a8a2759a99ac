/*
 * client/pins.h: the device lists this device has pinned, per account (its
 * own included), kept in the profile directory (DIR/pins, mode 0600, replaced
 * atomically) so that trust survives restarts (DESIGN.md "Trust does not rest
 * on the server").
 *
 * A pin is an account's device list as this device accepted it: version,
 * list hash (client/statement.h), the devices with their identity keys, and
 * whether the user compared safety numbers (`verified`). A list the server
 * shows next is judged against the pin (pins_judge()):
 *
 *   no pin                      PINS_FIRST_USE  pinned as it is (trust on first use)
 *   same version and hash       PINS_SAME
 *   version + 1, naming the     PINS_NEXT       pinned; `verified` cleared when the
 *   pin's hash, signed by a                     devices changed
 *   device of the pin with its
 *   pinned identity key
 *   a later version, signed by  PINS_NEXT       (the server keeps only the latest
 *   a device of the pin with                    list, so a device that was away
 *   its pinned identity key                     while its peer approved two devices
 *                                               sees a jump: still vouched for by a
 *                                               device it trusted)
 *   a lower version             PINS_ROLLBACK   refused; the pin stays
 *   anything else               PINS_CHANGED    kept as `pending`; the account is
 *                                               blocked (no sending to it) until the
 *                                               user confirms (pins_confirm())
 *
 * File: "carechat-pins 1", then per account a line
 *   pin ACCOUNT VERSION HASH VERIFIED N DEVICE:KEY ...
 * and, while one waits for confirmation, a line
 *   pending ACCOUNT VERSION HASH 0 N DEVICE:KEY ...
 * (hex; at most PINS_MAX accounts).
 *
 * Threads: a struct pins belongs to one thread (the handle's).
 */
#ifndef CLIENT_PINS_H
#define CLIENT_PINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"
#include "client/statement.h"

#define PINS_FILE "pins"
#define PINS_MAX 4096

/* One account's device list as pinned or shown. */
struct pins_list {
    struct id account;
    uint64_t version;
    uint8_t hash[STATEMENT_HASH_LEN];
    bool verified;
    size_t n;
    struct statement_device devs[STATEMENT_MAX_DEVICES];
};

enum pins_verdict {
    PINS_FIRST_USE = 1,
    PINS_SAME = 2,
    PINS_NEXT = 3,
    PINS_ROLLBACK = 4,
    PINS_CHANGED = 5,
};

struct pins;

/* Reads DIR/pins (none: empty). Returns 0 and *out (free with pins_free());
 * STATUS_FORBIDDEN (open to others), STATUS_CORRUPT, STATUS_IO. */
int pins_load(const char *dir, struct pins **out);

/* Writes DIR/pins. Returns 0 or profile_write_file()'s failure. */
int pins_save(const char *dir, const struct pins *p);

/* Accepts NULL. */
void pins_free(struct pins *p);

/* The pin of `account`, or NULL. Valid until the next change. */
const struct pins_list *pins_find(const struct pins *p, const struct id *account);

/* The pending (changed, unconfirmed) list of `account`, or NULL. */
const struct pins_list *pins_pending(const struct pins *p, const struct id *account);

/* The verdict on `shown`, a list whose signature by `signer` (with the
 * identity key `signer_key`) already verified, naming `prev_hash` (NULL for
 * none). */
enum pins_verdict pins_judge(const struct pins *p, const struct pins_list *shown,
                             const struct id *signer, const uint8_t *signer_key,
                             const uint8_t *prev_hash);

/* Pins `l` for its account (replacing the pin; `verified` is kept only when
 * the devices are the same), and drops a pending list. Returns 0, or
 * STATUS_TOO_LARGE when PINS_MAX accounts are pinned. */
int pins_accept(struct pins *p, const struct pins_list *l);

/* Keeps `l` as the pending list of its account. Returns 0 or
 * STATUS_TOO_LARGE. */
int pins_set_pending(struct pins *p, const struct pins_list *l);

/* The user confirmed the change: the pending list becomes the pin (not
 * verified). Returns 0, or STATUS_NOT_FOUND when none is pending. */
int pins_confirm(struct pins *p, const struct id *account);

/* Sets the verified flag of the pin of `account`. Returns 0 or
 * STATUS_NOT_FOUND. */
int pins_set_verified(struct pins *p, const struct id *account, bool verified);

#endif
