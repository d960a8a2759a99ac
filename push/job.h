/*
 * push/job.h: what a notification job is, what its result says, the checks a
 * job passes before anything is sent, and the retry schedule.
 *
 * A job names a channel (email, APNs, FCM, Web Push), a kind of notice and a
 * destination; it has no field for a sender, a patient, a team, a text or a
 * count, so nothing personal can reach a provider through it (DESIGN.md
 * "Notifications"). Every text that goes out is fixed (push/content.h); the only
 * variable parts are the destination, the invitation or reset code, the
 * invitation link, and ids derived from the job id.
 *
 * Kinds per channel: NEW_MESSAGE and BREACH_NOTICE go to every channel;
 * INVITATION and PASSWORD_RESET carry a code and go by email only (a code in a
 * push notice would pass through Apple's or Google's servers and sit on a lock
 * screen).
 *
 * Everything here is a pure function of its arguments (push_retry_delay_ms()
 * draws its jitter through base/rand.h) and safe from any thread.
 */
#ifndef PUSH_JOB_H
#define PUSH_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PUSH_JOB_ID_LEN 16

/* Limits on what a job may carry; push_job_check() refuses anything longer. */
#define PUSH_MAX_EMAIL 254
#define PUSH_MAX_EMAIL_LOCAL 64
#define PUSH_MAX_APNS_TOKEN_HEX 200
#define PUSH_MAX_FCM_TOKEN 4096
#define PUSH_MAX_ENDPOINT 2048
#define PUSH_MAX_CODE 64
#define PUSH_MAX_LINK 512

enum push_channel {
    PUSH_CHANNEL_EMAIL = 0,
    PUSH_CHANNEL_APNS,
    PUSH_CHANNEL_FCM,
    PUSH_CHANNEL_WEBPUSH,
    PUSH_CHANNEL_COUNT
};

enum push_kind {
    PUSH_KIND_NEW_MESSAGE = 0, /* "you have a new secure message" */
    PUSH_KIND_INVITATION,      /* email only; carries `code` and `link` */
    PUSH_KIND_PASSWORD_RESET,  /* email only; carries `code` */
    PUSH_KIND_BREACH_NOTICE,   /* "important notice about your account" */
    PUSH_KIND_COUNT
};

enum push_outcome {
    PUSH_OUTCOME_DELIVERED = 0,     /* the provider accepted it: drop the job */
    PUSH_OUTCOME_RETRY,             /* try again later (push_retry_delay_ms()) */
    PUSH_OUTCOME_PERMANENT_FAILURE, /* never retry this job */
    PUSH_OUTCOME_TOKEN_DEAD,        /* the destination is gone: drop the job and forget
                                       the device token or subscription */
    PUSH_OUTCOME_COUNT
};

/* Why a job ended as it did; push_cause_str() gives a metrics label. */
enum push_cause {
    PUSH_CAUSE_NONE = 0,        /* delivered */
    PUSH_CAUSE_NOT_CONFIGURED,  /* the channel has no (valid) configuration: permanent */
    PUSH_CAUSE_BAD_JOB,         /* push_job_check() refused the job: permanent */
    PUSH_CAUSE_ADDRESS_REFUSED, /* Web Push endpoint not allowed (scheme, port, address
                                   class: SSRF defence): permanent */
    PUSH_CAUSE_DNS,             /* the host did not resolve: retry */
    PUSH_CAUSE_CONNECT,         /* no connection: retry */
    PUSH_CAUSE_TLS,             /* TLS failed or STARTTLS unavailable: retry */
    PUSH_CAUSE_TIMEOUT,         /* the transfer ran out of time: retry */
    PUSH_CAUSE_PROTOCOL,        /* an answer we could not make sense of: retry */
    PUSH_CAUSE_TOO_LARGE,       /* the answer exceeded max_response_bytes: retry */
    PUSH_CAUSE_REDIRECT,        /* a 3xx answer (redirects are never followed): permanent */
    PUSH_CAUSE_AUTH,            /* the provider refused our credentials: retry */
    PUSH_CAUSE_THROTTLED,       /* HTTP 429: retry */
    PUSH_CAUSE_PROVIDER_ERROR,  /* HTTP 5xx: retry */
    PUSH_CAUSE_TEMPORARY,       /* SMTP 4xx reply: retry */
    PUSH_CAUSE_REJECTED,        /* SMTP 5xx, HTTP 4xx other than the above: permanent */
    PUSH_CAUSE_TOKEN_DEAD,      /* APNs 410/BadDeviceToken, FCM 404/UNREGISTERED, Web
                                   Push 404/410 */
    PUSH_CAUSE_INTERNAL,        /* a bug or a library failure on our side: retry */
    PUSH_CAUSE_COUNT
};

/* Where a job goes: the fields of the job's channel, the others NULL. All are
 * borrowed for the duration of the call that takes the job. */
struct push_destination {
    const char *email;            /* EMAIL: one addr-spec, local@domain, ASCII */
    const char *apns_token;       /* APNS: the device token in hex */
    bool apns_sandbox;            /* APNS: a development build's token */
    const char *fcm_token;        /* FCM: the registration token */
    const char *webpush_endpoint; /* WEBPUSH: the subscription's endpoint URL */
    const char *webpush_p256dh;   /* WEBPUSH: keys.p256dh (base64url, 65-byte point) */
    const char *webpush_auth;     /* WEBPUSH: keys.auth (base64url, 16 bytes) */
};

struct push_job {
    uint8_t id[PUSH_JOB_ID_LEN]; /* random; the same for every attempt of a job */
    enum push_channel channel;
    enum push_kind kind;
    uint32_t attempt; /* 1 for the first try, 2 for the first retry, ... */
    struct push_destination to;
    const char *code; /* INVITATION, PASSWORD_RESET: [A-Za-z0-9-]{1,64}; else NULL */
    const char *link; /* INVITATION: an https URL (it may carry the code, nothing
                         personal); NULL: the configured app link. Else NULL */
};

struct push_result {
    uint8_t job_id[PUSH_JOB_ID_LEN];
    enum push_channel channel;
    uint32_t attempt; /* as submitted */
    enum push_outcome outcome;
    enum push_cause cause;
    int reply_code;     /* the provider's HTTP status or SMTP reply code; 0 when none */
    int64_t latency_ms; /* from push_submit() to the result */
};

/* Checks a job without any network access: enums in range, the destination
 * fields of its channel present, well formed and within the limits above (an
 * email address without CR, LF, spaces, quotes, angle brackets or non-ASCII; a
 * hex APNs token; an FCM token of [A-Za-z0-9_:.-]; a Web Push endpoint that is
 * an http(s) URL, a 65-byte uncompressed p256dh point and a 16-byte auth
 * secret), the kind allowed on the channel, `code` present exactly for
 * INVITATION and PASSWORD_RESET, `link` only for INVITATION and an https URL,
 * attempt >= 1. Whether a Web Push endpoint's address may be reached is decided
 * at send time (push/ssrf.h). The server can call it when a device registers a
 * token. Returns 0 or STATUS_BAD_REQUEST. */
int push_job_check(const struct push_job *job);

/* True when `s` is an addr-spec this package will send to (see above). */
bool push_email_valid(const char *s);

/* True when `s` is an https URL of printable ASCII without spaces, quotes or
 * angle brackets, at most PUSH_MAX_LINK bytes: safe to put on a line of a mail. */
bool push_link_valid(const char *s);

/* Constant snake_case names for metrics labels and logs; never NULL ("unknown"
 * for a value out of range). */
const char *push_channel_str(enum push_channel c);
const char *push_kind_str(enum push_kind k);
const char *push_outcome_str(enum push_outcome o);
const char *push_cause_str(enum push_cause c);

/* The retry schedule. After attempt number `attempt` (1 for the first try)
 * ended with PUSH_OUTCOME_RETRY, `since_first_ms` after the job's first
 * submission, returns the delay in milliseconds before the next attempt:
 * about 1 min, 5 min, 30 min, 2 h, 6 h, then every 6 h, each scaled by a
 * random factor in [0.8, 1.2) drawn through rand_bytes(); or
 * PUSH_RETRY_GIVE_UP when the next attempt would start more than
 * PUSH_RETRY_HORIZON_MS after the first (the job then counts as a permanent
 * failure). A negative `since_first_ms` counts as 0. */
#define PUSH_RETRY_GIVE_UP (-1)
#define PUSH_RETRY_HORIZON_MS (48LL * 3600 * 1000)
int64_t push_retry_delay_ms(uint32_t attempt, int64_t since_first_ms);

#endif
