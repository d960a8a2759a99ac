/*
 * server/rules.h: the account and device rules shared by the handlers (which
 * check a request before proposing an entry) and apply (which re-checks the
 * entry): email normalisation, birth dates and the minimum age, who may invite
 * whom and see whom, and the signed byte layouts of carechat.proto (DeviceKeys
 * and DeviceList) with their Ed25519 verification.
 *
 * Visibility (LookupAccount, ListDevices): staff (provider, admin, sysadmin)
 * may see every account; a patient may see staff accounts and its own, never
 * another patient's, so a patient cannot probe which emails are patients here.
 *
 * Pure functions (libsodium for hashing and signatures), any thread.
 */
#ifndef SERVER_RULES_H
#define SERVER_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "server/records.h"
#include "server/records_keybackup.h"

#define RULES_EMAIL_MAX 254
#define RULES_MIN_AGE 13
#define RULES_DISPLAY_NAME_MAX 128
#define RULES_LABEL_MAX 64
#define RULES_PASSWORD_MAX 1024

/* Writes the normalised form of `email` (surrounding white space removed,
 * ASCII letters in lower case) into out[RULES_EMAIL_MAX + 1]. Returns 0, or
 * STATUS_BAD_REQUEST when it is empty, longer than RULES_EMAIL_MAX, has no '@'
 * with text on both sides, or contains white space or control characters. */
int rules_normalize_email(const char *email, char out[RULES_EMAIL_MAX + 1]);

/* Whether `label` is a device label: 1..RULES_LABEL_MAX bytes of UTF-8
 * without control characters. */
bool rules_label_ok(const char *label);

/* Parses "YYYY-MM-DD" (a real calendar date, year 1900 or later). Returns 0
 * with the parts, or STATUS_BAD_REQUEST. */
int rules_parse_date(const char *text, int *year, int *month, int *day);

/* Full years of age on the UTC date of `time_ms` of someone born on the given
 * date; negative when the date is after that day. */
int rules_age_at(int year, int month, int day, int64_t time_ms);

/* SHA-256 of `len` bytes into out[32]. */
void rules_sha256(const void *data, size_t len, uint8_t out[REC_HASH_LEN]);

/* Checks the DeviceKeys signature: Ed25519 by `identity_key` over
 * "carechat.v1 encryption key" || encryption_key || key_id (4, BE) ||
 * expires_at (8, BE). Returns 0 or STATUS_BAD_REQUEST. */
int rules_verify_key_signature(const uint8_t identity_key[REC_KEY_LEN],
                               const uint8_t encryption_key[REC_KEY_LEN], uint32_t key_id,
                               int64_t expires_at, const uint8_t signature[REC_SIG_LEN]);

/* Appends the signed bytes of a DeviceList to `out`: "carechat.v1 device
 * list" || account_id || version (8, BE) || count (4, BE) || for each item
 * sorted by device id: device_id || identity_key, and from version 2 on
 * || prev_list_hash (32; NULL: zeros), the hash of the list it follows. `items`
 * is not modified. */
void rules_device_list_message(const struct id *account_id, uint64_t version,
                               const struct rec_list_item *items, size_t n,
                               const uint8_t *prev_hash, struct buf *out);

/* The hash of a device list (the next version's prev_list_hash): SHA-256 of
 * rules_device_list_message(). */
void rules_device_list_hash(const struct id *account_id, uint64_t version,
                            const struct rec_list_item *items, size_t n, const uint8_t *prev_hash,
                            uint8_t out[REC_HASH_LEN]);

/* Checks a device list: at most REC_LIST_MAX items, no duplicate device ids,
 * and an Ed25519 signature by `signer_key` over rules_device_list_message().
 * Returns 0, STATUS_TOO_LARGE (too many items) or STATUS_BAD_REQUEST. */
int rules_verify_device_list(const struct id *account_id, uint64_t version,
                             const struct rec_list_item *items, size_t n, const uint8_t *prev_hash,
                             const uint8_t signer_key[REC_KEY_LEN],
                             const uint8_t signature[REC_SIG_LEN]);

/* The chain rule of device lists, checked by PublishDeviceList's handler and
 * by apply: a list follows the stored one (version `stored_version`, hash
 * `stored_hash`, items `stored`) when its version is the next, its
 * prev_list_hash (`prev_hash`, `prev_hash_len` bytes) is the stored list's
 * hash (empty for the first list), and its signer `signer` is a device of the
 * stored list, so that a device is added only by a device already trusted.
 * After an administrator's reset (`reset`) and for the first list, the signer
 * must instead be in the new list itself (trust on first use). Sets
 * *signer_key to the identity key to verify the signature with (from the
 * stored list when it is one of its devices). Returns 0; STATUS_CONFLICT (not
 * the next version, or another prev_list_hash); STATUS_FORBIDDEN (the signer
 * is not a device of the stored list). */
int rules_device_list_follows(uint64_t stored_version, const uint8_t stored_hash[REC_HASH_LEN],
                              const struct rec_list_item *stored, size_t n_stored, bool reset,
                              uint64_t version, const uint8_t *prev_hash, size_t prev_hash_len,
                              const struct id *signer, const struct rec_list_item *items, size_t n,
                              const uint8_t **signer_key);

/* True when a valid role (REC_ROLE_*). */
bool rules_role_valid(uint32_t role);

/* Who may invite whom: provider -> patient; admin -> patient, provider, admin;
 * sysadmin -> any role. */
bool rules_may_invite(uint32_t inviter_role, uint32_t invited_role);

/* Who may deactivate whom (the caller is never the target): a provider a
 * patient of their own (`own_patient`: invited by them, or sharing an active
 * care-team channel with them); an admin a patient or a provider; a sysadmin
 * anyone. */
bool rules_may_deactivate(uint32_t actor_role, uint32_t target_role, bool own_patient);

/* Who may create a care-team channel for a patient: an admin for anyone; a
 * provider only with a care relation to the patient (`care_relation`: they
 * invited the patient, or share an active care-team channel with them), so a
 * provider can never make a relation alone (and then deactivate the patient
 * or open a direct conversation on it). */
bool rules_may_create_channel(uint32_t actor_role, bool care_relation);

/* The longest legal hold reason, in bytes. */
#define RULES_REASON_MAX 256

/* The retention windows of the clinic's privacy promise (DESIGN.md): after
 * deactivation, REVIEW for 30 days, then RESTRICTED for a year, then purge. */
#define RULES_REVIEW_MS (30LL * 24 * 3600 * 1000)
#define RULES_RESTRICTED_MS (365LL * 24 * 3600 * 1000)

/* The lifecycle of an account deactivated at `at` with the given windows
 * (0: the defaults above): REVIEW until at + review_ms, RESTRICTED for
 * restricted_ms after that. A hold already in `l` stays. */
void rules_lifecycle_start(struct rec_lifecycle *l, int64_t at, int64_t review_ms,
                           int64_t restricted_ms);
/* The state the clock has brought `l` to at `now`: its own, or the next one
 * once its deadline has passed (one step at a time; never under a hold). */
uint32_t rules_lifecycle_due(const struct rec_lifecycle *l, int64_t now);
/* Lifts the hold of `l` at `now`: the deadlines still ahead move on by the
 * time the clock stood still (from the later of hold_since and the
 * deactivation). */
void rules_lifecycle_release(struct rec_lifecycle *l, int64_t now);

/* Quiet hours: minutes after midnight (0..RULES_DAY_MIN - 1) in a time zone
 * RULES_UTC_OFFSET_MIN..MAX minutes from UTC. */
#define RULES_DAY_MIN 1440
#define RULES_UTC_OFFSET_MIN (-720)
#define RULES_UTC_OFFSET_MAX 840
/* Whether the quiet hours are in range. */
bool rules_quiet_valid(uint32_t from_min, uint32_t until_min, int32_t utc_offset_min);
/* The earliest time at or after `t` (ms since the epoch) outside the quiet
 * hours [from_min, until_min) of the zone utc_offset_min from UTC (a span
 * may cross midnight; from == until: no quiet hours, `t` itself). */
int64_t rules_quiet_end(uint32_t from_min, uint32_t until_min, int32_t utc_offset_min, int64_t t);

/* Whether a caller of `caller_role` may see an account of `target_role`
 * (`self`: the caller's own account); the rule is at the top of this file. */
bool rules_may_see(uint32_t caller_role, uint32_t target_role, bool self);

/* The limits of an account's key backup (--key-backup-segment-max,
 * --key-backup-max-segments, --key-backup-quota), carried in KeyBackupPut. */
struct rules_key_backup_caps {
    uint32_t segment_max;  /* bytes of one segment */
    uint32_t max_segments; /* segments stored at once */
    uint64_t max_bytes;    /* bytes of all stored segments */
};

/* Whether segment `seq` of `size` bytes with SHA-256 `sha256`, made under
 * the key named `key_id`, may join the key backup `b` under `caps`, checked
 * by PutKeyBackupSegment's handler and again by apply: 0 when it is the next
 * one (seq == b->next_seq) and the backup stays within the caps; 0 with
 * *stored set when segment `seq` is stored already with the same SHA-256 (a
 * retry: nothing to write); STATUS_BAD_REQUEST for seq or size 0, or a key
 * id of zeros; STATUS_TOO_LARGE for a size above caps->segment_max (first,
 * whatever the rest), or a backup that would exceed caps->max_segments or
 * caps->max_bytes; STATUS_FORBIDDEN for a key id retired, or other than
 * b->key_id while the backup has one; STATUS_CONFLICT for any other seq, or
 * segment `seq` stored with other bytes. */
int rules_key_backup_put(const struct rec_key_backup *b, const struct rules_key_backup_caps *caps,
                         uint64_t seq, uint64_t size, const uint8_t sha256[REC_KEY_BACKUP_HASH_LEN],
                         const uint8_t key_id[REC_KEY_BACKUP_KEY_ID_LEN], bool *stored);

#endif
