/*
 * server/records_notify.h: the records of notifications: the durable outbox,
 * per-target notice state, push registrations and notification settings, all
 * in CF_OUTBOX under a one-byte tag, and their byte encodings.
 *
 *   'J' | job id (16)                          -> struct rec_outbox_job: one
 *        notification job; sealed under the account it is for (the server's
 *        key for an invitation, which has no account yet: it holds the
 *        invitee's address and code until it is handed over)
 *   'S' | target id (16) | channel (1)         -> struct rec_notify_state: the
 *        job pending for an account's email (target = account) or a device's
 *        push channel (target = device), and when the last notice went out;
 *        ids and times only (server's key)
 *   'R' | account (16) | device (16) | channel (1) -> struct rec_push_reg: a
 *        device's push registration for one channel; sealed under the account
 *   'N' | account (16)                         -> struct rec_notify_settings
 *
 * Channels and kinds are numbered as push/job.h's enum push_channel and enum
 * push_kind (this file does not depend on push/; server/outbox.c checks the
 * numbers agree).
 *
 * Coalescing: a target has at most one pending NEW_MESSAGE job per channel
 * (the 'S' record names it); more messages while it waits add nothing.
 *
 * Encoding: a format byte (REC_NOTIFY_FORMAT), then the fields in a fixed
 * order (server/record_codec.h); records grow by appending fields. Decoders
 * copy the strings they return (rec_*_cleanup frees). Pure, any thread.
 */
#ifndef SERVER_RECORDS_NOTIFY_H
#define SERVER_RECORDS_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "storage/keys.h"

#define REC_NOTIFY_FORMAT 1

#define REC_OUTBOX_TAG_JOB 'J'
#define REC_OUTBOX_TAG_STATE 'S'
#define REC_OUTBOX_TAG_REG 'R'
#define REC_OUTBOX_TAG_SETTINGS 'N'

/* As push/job.h enum push_channel. */
enum rec_push_channel {
    REC_CHANNEL_EMAIL = 0,
    REC_CHANNEL_APNS = 1,
    REC_CHANNEL_FCM = 2,
    REC_CHANNEL_WEBPUSH = 3,
    REC_CHANNEL_COUNT
};

/* As push/job.h enum push_kind. */
enum rec_notice {
    REC_NOTICE_NEW_MESSAGE = 0,
    REC_NOTICE_INVITATION = 1,
    REC_NOTICE_PASSWORD_RESET = 2,
    REC_NOTICE_BREACH = 3,
    REC_NOTICE_COUNT
};

/* entry.proto OutboxResult outcomes. */
enum rec_outbox_outcome {
    REC_OUTBOX_DELIVERED = 1,
    REC_OUTBOX_RETRY = 2,
    REC_OUTBOX_DROPPED = 3,
    REC_OUTBOX_TOKEN_DEAD = 4,
    REC_OUTBOX_CANCELLED = 5,
};

#define REC_JOB_ID_LEN 16
#define REC_PUSH_TOKEN_MAX 4096 /* the longest destination string (an FCM token) */

struct rec_outbox_job {
    uint8_t kind;           /* enum rec_notice */
    uint8_t channel;        /* enum rec_push_channel */
    struct id account;      /* who it is for; all zero for an invitation */
    struct id device;       /* push: the device; else zero */
    struct id registration; /* push: the registration it was made for; else zero */
    int64_t created_at;     /* the entry time that made it */
    uint32_t attempt;       /* the next attempt's number, 1 for the first */
    int64_t next_at;        /* a retry's time; 0 before the first attempt */
    char *email;            /* an invitation's address; else NULL; owned */
    char *code;             /* an invitation's code; else NULL; owned */
};

struct rec_notify_state {
    uint8_t pending[REC_JOB_ID_LEN]; /* all zero: none */
    int64_t last_sent_at;            /* 0: none since the target last read */
};

struct rec_push_reg {
    struct id registration;
    char *token; /* APNs hex, FCM token or Web Push endpoint; owned */
    bool apns_sandbox;
    char *p256dh; /* Web Push only; owned, else NULL */
    char *auth;   /* Web Push only; owned, else NULL */
    int64_t created_at;
};

struct rec_notify_settings {
    bool email;
    bool push;
    /* Quiet hours, as rules_quiet_end() takes them; 0, 0, 0: none. */
    uint32_t quiet_from_min, quiet_until_min;
    int32_t utc_offset_min;
};

/* The settings of an account that never set any. */
#define REC_NOTIFY_SETTINGS_DEFAULT                                                                \
    { .email = true, .push = true }

/* Keys; each resets k. */
void rec_key_outbox_job(struct key *k, const uint8_t job_id[REC_JOB_ID_LEN]);
void rec_key_notify_state(struct key *k, const struct id *target, uint8_t channel);
void rec_key_push_reg(struct key *k, const struct id *account, const struct id *device,
                      uint8_t channel);
void rec_key_notify_settings(struct key *k, const struct id *account);

void rec_outbox_job_encode(const struct rec_outbox_job *j, struct buf *out);
void rec_notify_state_encode(const struct rec_notify_state *s, struct buf *out);
void rec_push_reg_encode(const struct rec_push_reg *r, struct buf *out);
void rec_notify_settings_encode(const struct rec_notify_settings *s, struct buf *out);

/* Return 0, or STATUS_CORRUPT for another format or a truncated record
 * (nothing then needs cleanup). */
int rec_outbox_job_decode(const uint8_t *data, size_t len, struct rec_outbox_job *out);
int rec_notify_state_decode(const uint8_t *data, size_t len, struct rec_notify_state *out);
int rec_push_reg_decode(const uint8_t *data, size_t len, struct rec_push_reg *out);
int rec_notify_settings_decode(const uint8_t *data, size_t len, struct rec_notify_settings *out);

/* Wipe and free the strings. Accept NULL. */
void rec_outbox_job_cleanup(struct rec_outbox_job *j);
void rec_push_reg_cleanup(struct rec_push_reg *r);

#endif
