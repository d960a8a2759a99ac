/*
 * storage/keystore.h: per-owner AES-256 data keys, wrapped by the master key and
 * kept outside the database (DESIGN.md "Storage and encryption at rest").
 *
 * Layout of the key directory (DATA_DIR/keys by default; production points it at
 * another volume):
 *
 *   KEY_DIR/master.key          32 random bytes, mode 0600 (only when no other
 *                               master key path is configured)
 *   KEY_DIR/blind.key           the blind-index secret, wrapped
 *   KEY_DIR/data/<owner>.key    the owner's data key versions, wrapped
 *   KEY_DIR/data/<owner>.destroyed  tombstone of a destroyed (purged) owner
 *
 * A wrapped-key file is
 *
 *   "CCKS" | format 1 | kind ('D' data, 'B' blind) | owner id (16)
 *   | master key id (8) | count (4, big-endian) | count x entry
 *
 * where each entry is one 32-byte key sealed with seal_value() under the master
 * key, its key id being (owner, version) and its additional data the file header
 * up to the master key id. The master key id is a keyed BLAKE2b of the master
 * key, so logs and files can name a master key without revealing it. Files are
 * written durably: temporary file, fsync, rename, fsync of the directory.
 *
 * The owner of a data key is a patient's account id, or the all-zero id for the
 * server's own records (owner NULL in this API). Destroying an owner's key
 * (purge) makes every sealed copy of their records unreadable, wherever those
 * copies are (crypto-shredding).
 *
 * Memory: the master key, the blind-index secret and the bounded cache of
 * unwrapped data keys live in sodium_malloc() memory. Master and data keys are
 * kept prepared (seal_key_prepare(), once when a key is loaded, created or
 * rotated in), so that state lives and dies with the key: keystore_destroy()
 * and keystore_close() wipe both. Keys copied out to callers are prepared too,
 * and must be wiped by them (sodium_memzero).
 *
 * Threads: every function is thread-safe (one mutex). A cache miss reads, and a
 * first use writes, one small file while holding it.
 */
#ifndef STORAGE_KEYSTORE_H
#define STORAGE_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"
#include "storage/seal.h"

#define KEYSTORE_MASTER_ID_LEN 8
/* Data key versions one owner may accumulate (keystore_rotate_owner()). */
#define KEYSTORE_MAX_VERSIONS 64

struct keystore_config {
    const char *key_dir;             /* required; see `create` */
    bool create;                     /* true: a new key store. KEY_DIR is created (0700)
                                        when missing and must hold no keys yet (no
                                        blind.key, nothing in data/); a missing default
                                        master key is generated (0600) with a warning.
                                        false: an existing one. KEY_DIR, the master key
                                        and blind.key must exist; nothing is created */
    const char *master_key_path;     /* NULL: KEY_DIR/master.key; a configured path is
                                        never generated */
    const char *old_master_key_path; /* NULL; or the previous master key, to finish a
                                        master key rotation that was interrupted:
                                        keystore_open() re-wraps what it still wraps */
    size_t cache_entries;            /* unwrapped data keys kept in memory; 0: 1024 */
    enum seal_impl impl;             /* SEAL_AUTO except in tests */
};

struct keystore;

/* Opens the key store in cfg->key_dir, or creates it (cfg->create). Returns 0
 * and *out (close with keystore_close()); STATUS_BAD_REQUEST for a bad
 * configuration, a key directory that group or others may access (mode & 077),
 * a master key file that is not a 32-byte regular file readable by its owner
 * only, or a missing master key of an existing store (never replaced by a new
 * one: that would orphan every data key); STATUS_NOT_FOUND when an existing
 * store is not there (no KEY_DIR, or no blind.key and no data keys: an empty or
 * unmounted key volume); STATUS_CONFLICT when a new store was asked for in a
 * directory that holds keys already; STATUS_CORRUPT when the store is wrapped by
 * another master key (logged with both master key ids) or blind.key is missing
 * while data keys exist; STATUS_IO for file system failures. Every refusal is
 * logged with what is wrong, and nothing is written before it. */
int keystore_open(const struct keystore_config *cfg, struct keystore **out);

/* True when `key_dir` holds keys of a key store (blind.key, a data key or a
 * tombstone); a master key alone does not count. */
bool keystore_dir_has_keys(const char *key_dir);

/* Wipes every key from memory and frees the store. Accepts NULL. */
void keystore_close(struct keystore *ks);

/* Copies the current data key of `owner` (NULL: the server), prepared, into
 * *key and its id into *kid, creating and durably storing version 1 on first
 * use. The caller wipes *key after use (sodium_memzero(key, sizeof *key)).
 * Returns 0; STATUS_NOT_FOUND when the owner's key was destroyed (a purged
 * owner gets no new key); STATUS_CORRUPT or STATUS_IO when the owner's key
 * file cannot be read or written (logged). *key is written only on success. */
int keystore_current_key(struct keystore *ks, const struct id *owner, struct seal_key_id *kid,
                         struct seal_key *key);

/* Copies the data key named by `kid`, prepared, into *key (the caller wipes
 * it). Returns 0; STATUS_NOT_FOUND when the owner's key was destroyed;
 * STATUS_CORRUPT when the key does not exist although a record names it, or its
 * file does not open under the master key (logged); STATUS_IO. *key is written
 * only on success. */
int keystore_find_key(struct keystore *ks, const struct seal_key_id *kid, struct seal_key *key);

/* Adds a new version of `owner`'s data key (NULL: the server's) and makes it
 * current; older versions still open what they sealed. Returns 0,
 * STATUS_NOT_FOUND (destroyed owner), STATUS_TOO_LARGE (KEYSTORE_MAX_VERSIONS
 * reached), STATUS_CORRUPT or STATUS_IO. */
int keystore_rotate_owner(struct keystore *ks, const struct id *owner);

/* Crypto-shreds `owner`: durably writes the tombstone, overwrites and deletes
 * the key file and drops the cached keys. Afterwards keystore_find_key() and
 * keystore_current_key() answer STATUS_NOT_FOUND for this owner, so their records
 * read as absent (store_get() answers STATUS_NOT_FOUND). Idempotent. Returns 0,
 * STATUS_BAD_REQUEST for the server's own key (owner NULL or all zero), or
 * STATUS_IO. */
int keystore_destroy(struct keystore *ks, const struct id *owner);

/* Whether `owner`'s data key was destroyed (its tombstone exists). A stat(2)
 * per call; thread-safe. */
bool keystore_destroyed(struct keystore *ks, const struct id *owner);

/* A number that changes whenever a keystore_destroy() begins: a holder of
 * opened values (store.c's read cache) drops them when it moved. Any thread. */
uint64_t keystore_generation(struct keystore *ks);

/* Re-wraps every data key and the blind-index secret under the master key in
 * `new_master_path` (same rules as a configured master key: 32 bytes, mode
 * 0600) and uses it from now on. Records are not touched: their data keys do not
 * change. The caller must configure `new_master_path` for the next start. If this
 * fails midway some files are wrapped by each key: open the store with
 * master_key_path = new and old_master_key_path = old to finish. Returns 0,
 * STATUS_BAD_REQUEST (unusable key file), STATUS_CORRUPT or STATUS_IO. */
int keystore_rotate_master(struct keystore *ks, const char *new_master_path);

/* Writes the id of the master key in use into out[]. */
void keystore_master_key_id(struct keystore *ks, uint8_t out[KEYSTORE_MASTER_ID_LEN]);

/* HMAC-SHA256 of `data` under the blind-index secret, into out[32]. */
void keystore_blind_index(struct keystore *ks, const void *data, size_t len, uint8_t out[32]);

#endif
