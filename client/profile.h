/*
 * client/profile.h: a device's profile directory, where the CLI and libcarechat
 * keep what makes this device this device between runs.
 *
 * Contents (one text file DIR/profile, "name value" lines after a version line):
 *   identity_seed               the Ed25519 identity key (its 32-byte seed, hex)
 *   encryption_secret           the X25519 encryption private key (hex)
 *   encryption_key_id           its id (DeviceKeys.encryption_key_id)
 *   encryption_key_expires_at   its expiry, Unix milliseconds
 *   account_id, device_id       assigned by the server at Login/Register
 *   device_list_version         the device list version this device last saw
 *                               published with itself in it (0: not yet)
 *   session_token               the 32-byte session token (hex)
 *   session_expires_at          its absolute expiry
 *   session_stay_signed_in      1 when it outlives its idle expiry (absent: no)
 *   server_url, ca_file         the server this device logged in to and the CA
 *                               file it trusted (absolute path); absent: none
 *                               remembered (printable text, no spaces needed)
 *   ack_cursor                  the last delivery cursor this device
 *                               acknowledged (hex, opaque; absent: none yet)
 *   old_key                     a rotated-away encryption key, kept to open
 *                               what was wrapped to it: "ID EXPIRES RETIRED
 *                               SECRET" (retired: when it was replaced, Unix
 *                               ms; secret in hex); at most PROFILE_MAX_OLD_KEYS
 *                               lines, wiped by libcarechat after a grace period
 *   last_ack_at                 when this device last acknowledged deliveries
 *                               (Unix ms; 0 or absent: never)
 *   key_backup_key              the account's key backup key (hex; present
 *                               while this device keeps the backup,
 *                               client/keybackup.h): derived from the
 *                               recovery key, which itself is never stored
 *   key_backup_done             how many records of DIR/history_keys the
 *                               backup holds (the first ones; absent: 0)
 * Public keys are derived from the secrets; signatures are made again when
 * needed (Ed25519 is deterministic).
 *
 * Invariants: the directory is mode 0700 and the file 0600, both owned by the
 * user; a profile that another user could read or change is refused rather than
 * used. The file is replaced atomically (a temporary file, fsync, rename), so a
 * crash leaves either the old or the new profile. A struct profile lives in
 * sodium_malloc memory and is wiped when freed; file contents are wiped after
 * parsing.
 *
 * Threads: no global state; a struct profile belongs to one thread at a time.
 * Two processes writing one profile at once is not supported (the last rename
 * wins).
 */
#ifndef CLIENT_PROFILE_H
#define CLIENT_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"

#define PROFILE_SECRET_LEN 32
#define PROFILE_TOKEN_LEN 32
#define PROFILE_MAX_CURSOR 32
/* Rotated-away encryption keys a profile keeps at once. */
#define PROFILE_MAX_OLD_KEYS 8
/* The file's name inside the profile directory. */
#define PROFILE_FILE "profile"
/* The longest server URL and CA file path a profile remembers. */
#define PROFILE_MAX_TEXT 1024

struct profile {
    /* The device's keys, once generated. */
    bool has_keys;
    uint8_t identity_seed[PROFILE_SECRET_LEN];
    uint8_t encryption_secret[PROFILE_SECRET_LEN];
    uint32_t encryption_key_id; /* non-zero when has_keys */
    int64_t encryption_key_expires_at;

    /* Encryption keys rotated away, still opening what was wrapped to them. */
    size_t n_old_keys;
    struct profile_old_key {
        uint32_t key_id;
        int64_t expires_at;
        int64_t retired_at;
        uint8_t secret[PROFILE_SECRET_LEN];
    } old_keys[PROFILE_MAX_OLD_KEYS];
    int64_t last_ack_at;

    /* The server's ids for this device, after the first Login or Register. */
    bool has_device;
    struct id account_id;
    struct id device_id;
    uint64_t device_list_version;
    /* Where delivery resumes (Sync.after_cursor); length 0: from the start. */
    uint8_t ack_cursor[PROFILE_MAX_CURSOR];
    size_t ack_cursor_len;

    /* The session, between Login/Register and Logout (or expiry). */
    bool has_session;
    uint8_t session_token[PROFILE_TOKEN_LEN];
    int64_t session_expires_at;
    bool session_stay_signed_in; /* SessionResult.stay_signed_in */

    /* Where this device logs in ("" when not remembered): printable ASCII
     * without newlines, at most PROFILE_MAX_TEXT bytes. */
    char server_url[PROFILE_MAX_TEXT + 1];
    char ca_file[PROFILE_MAX_TEXT + 1];

    /* The account's key backup (needs the device's ids): its key, and how
     * many records of the device's history keys it holds. */
    bool has_backup_key;
    uint8_t backup_key[PROFILE_SECRET_LEN];
    uint64_t backup_done;
};

/* An empty profile (nothing set) in sodium_malloc memory. Stores it in *out
 * (free with profile_free()) and returns 0. */
int profile_new(struct profile **out);

/* Wipes and frees. Accepts NULL. */
void profile_free(struct profile *p);

/* Whether `s` can be remembered as server_url or ca_file: 1..PROFILE_MAX_TEXT
 * printable ASCII characters. */
bool profile_text_ok(const char *s);

/* Reads DIR/profile. Returns 0 and *out (free with profile_free()), or:
 *   STATUS_NOT_FOUND   the directory or the file does not exist (a fresh
 *                      profile: nothing to load);
 *   STATUS_FORBIDDEN   the directory or file is not owned by the user, or
 *                      group or others have any access to it;
 *   STATUS_CORRUPT     the file does not parse (unknown version or name, bad
 *                      value, a line twice, an incomplete group of values);
 *   STATUS_IO          it could not be read.
 * *out is written only on success. */
int profile_load(const char *dir, struct profile **out);

/* Writes `p` to DIR/profile, creating DIR and any missing parents with mode
 * 0700 when they do not exist. Returns 0; STATUS_FORBIDDEN when DIR exists with
 * access for group or others or another owner; STATUS_IO when it cannot be
 * created or written (the old file, if any, is then unchanged). */
int profile_save(const char *dir, const struct profile *p);

/* Replaces DIR/NAME (a file of the profile directory other than the profile
 * itself) with the `len` bytes at `data`, atomically and durably as
 * profile_save() does, mode 0600. Returns 0, STATUS_FORBIDDEN or STATUS_IO as
 * profile_save(). */
int profile_write_file(const char *dir, const char *name, const uint8_t *data, size_t len);

/* Reads DIR/NAME (at most `max` bytes) into `out` (appended). Returns 0;
 * STATUS_NOT_FOUND when it does not exist; STATUS_FORBIDDEN when it is open
 * to group or others or another owner's; STATUS_CORRUPT when it is larger
 * than `max`; STATUS_IO. */
int profile_read_file(const char *dir, const char *name, size_t max, struct buf *out);

#endif
