/*
 * client/statement.h: the byte strings a device signs for the server and for
 * other devices, exactly as protocol/carechat.proto lays them out.
 *
 *   Encryption key (DeviceKeys.signature), 70 bytes:
 *     "carechat.v1 encryption key"  26 ASCII bytes
 *     encryption_key                32  X25519 public key
 *     encryption_key_id              4  big-endian
 *     encryption_key_expires_at      8  big-endian (int64 milliseconds)
 *
 *   Device list (DeviceList.signature), 51 + 48 * count bytes:
 *     "carechat.v1 device list"     23 ASCII bytes
 *     account_id                    16
 *     version                        8  big-endian
 *     count                          4  big-endian
 *     for each entry in ascending bytewise order of device_id:
 *       device_id 16 || identity_key 32
 *     from version 2 on: prev_list_hash 32, the previous version's list hash
 *   A list's hash (the next version's prev_list_hash) is SHA-256 of these
 *   bytes, so the versions form a chain.
 *
 * Pure functions of their arguments: no global state, safe from any thread.
 */
#ifndef CLIENT_STATEMENT_H
#define CLIENT_STATEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"

#define STATEMENT_KEY_LEN 32 /* Ed25519 and X25519 public keys */
#define STATEMENT_ENCRYPTION_KEY_LEN 70
#define STATEMENT_HASH_LEN 32
/* Most devices in one list (carechat.proto DeviceList). */
#define STATEMENT_MAX_DEVICES 32

/* One device of a device list. */
struct statement_device {
    struct id device_id;
    uint8_t identity_key[STATEMENT_KEY_LEN];
};

/* Writes the signed bytes of an encryption key statement (layout above). */
void statement_encryption_key(const uint8_t encryption_key[STATEMENT_KEY_LEN], uint32_t key_id,
                              int64_t expires_at, uint8_t out[STATEMENT_ENCRYPTION_KEY_LEN]);

/* Appends the signed bytes of the device list of `account_id` at `version` with
 * the `n` devices at `devices` (borrowed, in any order) and, from version 2
 * on, `prev_hash` (STATEMENT_HASH_LEN bytes; NULL: zeros) to `out`. Returns 0, or
 * STATUS_BAD_REQUEST (leaving `out` unchanged) when `n` is 0 or above
 * STATEMENT_MAX_DEVICES or a device id appears twice. */
int statement_device_list(const struct id *account_id, uint64_t version,
                          const struct statement_device *devices, size_t n,
                          const uint8_t *prev_hash, struct buf *out);

#endif
