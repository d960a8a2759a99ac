/*
 * push/job.c: job checks, names and the retry schedule (contract in job.h).
 *
 * The checks are allow-lists of characters: whatever reaches a mail header, a
 * URL path or a JSON string from a job has passed one of them, so CR, LF and
 * other separators never get there (header injection).
 */
#include "push/job.h"

#include <string.h>

#include <sodium.h>

#include "base/rand.h"
#include "base/status.h"

#define MIN_MS (60LL * 1000)
#define HOUR_MS (60 * MIN_MS)

static const int64_t SCHEDULE_MS[] = {1 * MIN_MS, 5 * MIN_MS, 30 * MIN_MS, 2 * HOUR_MS,
                                      6 * HOUR_MS};
#define SCHEDULE_LEN (sizeof SCHEDULE_MS / sizeof SCHEDULE_MS[0])

/* RFC 5322 atext, without the dot (handled apart). */
static bool is_atext(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL;
}

static bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Dot-separated labels of letters, digits and inner hyphens, 1..63 each. */
static bool domain_valid(const char *d, size_t len) {
    size_t label = 0;
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
        } else if (is_alnum(c) || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && d[len - 1] != '-';
}

bool push_email_valid(const char *s) {
    if (s == NULL)
        return false;
    size_t len = strnlen(s, PUSH_MAX_EMAIL + 1);
    const char *at = memchr(s, '@', len);
    if (len > PUSH_MAX_EMAIL || at == NULL)
        return false;
    size_t local = (size_t)(at - s);
    if (local == 0 || local > PUSH_MAX_EMAIL_LOCAL || s[0] == '.' || s[local - 1] == '.')
        return false;
    for (size_t i = 0; i < local; i++) {
        if (s[i] == '.' ? s[i + 1] == '.' : !is_atext(s[i]))
            return false;
    }
    return domain_valid(at + 1, len - local - 1);
}

/* Printable ASCII without space, quotes, angle brackets, backslash or braces:
 * what may stand alone on a line of text or inside a JSON string unescaped. */
static bool url_chars_valid(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"'<>\\{}|^`", c) != NULL)
            return false;
    }
    return true;
}

bool push_link_valid(const char *s) {
    if (s == NULL)
        return false;
    size_t len = strnlen(s, PUSH_MAX_LINK + 1);
    return len <= PUSH_MAX_LINK && len > 8 && strncmp(s, "https://", 8) == 0 &&
           url_chars_valid(s, len);
}

static bool hex_token_valid(const char *s) {
    if (s == NULL)
        return false;
    size_t len = strnlen(s, PUSH_MAX_APNS_TOKEN_HEX + 1);
    if (len == 0 || len > PUSH_MAX_APNS_TOKEN_HEX || len % 2 != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_hex(s[i]))
            return false;
    }
    return true;
}

static bool fcm_token_valid(const char *s) {
    if (s == NULL)
        return false;
    size_t len = strnlen(s, PUSH_MAX_FCM_TOKEN + 1);
    if (len == 0 || len > PUSH_MAX_FCM_TOKEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_alnum(s[i]) && strchr("_:.-", s[i]) == NULL)
            return false;
    }
    return true;
}

/* True when `s` is base64url (padding tolerated) of exactly `want` bytes. */
static bool b64url_len_is(const char *s, size_t want) {
    uint8_t tmp[80];
    size_t n = 0;
    if (s == NULL || want > sizeof tmp || strlen(s) > 4 * sizeof tmp / 3 + 4)
        return false;
    if (sodium_base642bin(tmp, sizeof tmp, s, strlen(s), "=", &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return false;
    bool ok = n == want && (want != 65 || tmp[0] == 0x04);
    sodium_memzero(tmp, sizeof tmp);
    return ok;
}

static bool endpoint_valid(const char *s) {
    if (s == NULL)
        return false;
    size_t len = strnlen(s, PUSH_MAX_ENDPOINT + 1);
    if (len > PUSH_MAX_ENDPOINT || !url_chars_valid(s, len))
        return false;
    return (len > 8 && strncmp(s, "https://", 8) == 0) ||
           (len > 7 && strncmp(s, "http://", 7) == 0);
}

static bool code_valid(const char *s) {
    if (s == NULL)
        return false;
    size_t len = strnlen(s, PUSH_MAX_CODE + 1);
    if (len == 0 || len > PUSH_MAX_CODE)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_alnum(s[i]) && s[i] != '-')
            return false;
    }
    return true;
}

static bool destination_valid(const struct push_job *job) {
    const struct push_destination *to = &job->to;
    switch (job->channel) {
    case PUSH_CHANNEL_EMAIL:
        return push_email_valid(to->email);
    case PUSH_CHANNEL_APNS:
        return hex_token_valid(to->apns_token);
    case PUSH_CHANNEL_FCM:
        return fcm_token_valid(to->fcm_token);
    case PUSH_CHANNEL_WEBPUSH:
        return endpoint_valid(to->webpush_endpoint) && b64url_len_is(to->webpush_p256dh, 65) &&
               b64url_len_is(to->webpush_auth, 16);
    default:
        return false;
    }
}

int push_job_check(const struct push_job *job) {
    if (job == NULL || (unsigned)job->channel >= PUSH_CHANNEL_COUNT ||
        (unsigned)job->kind >= PUSH_KIND_COUNT || job->attempt < 1)
        return STATUS_BAD_REQUEST;
    bool has_code = job->kind == PUSH_KIND_INVITATION || job->kind == PUSH_KIND_PASSWORD_RESET;
    if (has_code && job->channel != PUSH_CHANNEL_EMAIL)
        return STATUS_BAD_REQUEST;
    if (has_code ? !code_valid(job->code) : job->code != NULL)
        return STATUS_BAD_REQUEST;
    if (job->link != NULL && (job->kind != PUSH_KIND_INVITATION || !push_link_valid(job->link)))
        return STATUS_BAD_REQUEST;
    return destination_valid(job) ? 0 : STATUS_BAD_REQUEST;
}

static const char *name_of(const char *const *names, size_t n, unsigned v) {
    return v < n && names[v] != NULL ? names[v] : "unknown";
}
#define NAME_OF(names, v) name_of(names, sizeof names / sizeof names[0], (unsigned)(v))

const char *push_channel_str(enum push_channel c) {
    static const char *const names[] = {"email", "apns", "fcm", "webpush"};
    return NAME_OF(names, c);
}

const char *push_kind_str(enum push_kind k) {
    static const char *const names[] = {"new_message", "invitation", "password_reset",
                                        "breach_notice"};
    return NAME_OF(names, k);
}

const char *push_outcome_str(enum push_outcome o) {
    static const char *const names[] = {"delivered", "retry", "permanent_failure", "token_dead"};
    return NAME_OF(names, o);
}

const char *push_cause_str(enum push_cause c) {
    static const char *const names[PUSH_CAUSE_COUNT] = {
        [PUSH_CAUSE_NONE] = "none",
        [PUSH_CAUSE_NOT_CONFIGURED] = "not_configured",
        [PUSH_CAUSE_BAD_JOB] = "bad_job",
        [PUSH_CAUSE_ADDRESS_REFUSED] = "address_refused",
        [PUSH_CAUSE_DNS] = "dns",
        [PUSH_CAUSE_CONNECT] = "connect",
        [PUSH_CAUSE_TLS] = "tls",
        [PUSH_CAUSE_TIMEOUT] = "timeout",
        [PUSH_CAUSE_PROTOCOL] = "protocol",
        [PUSH_CAUSE_TOO_LARGE] = "response_too_large",
        [PUSH_CAUSE_REDIRECT] = "redirect",
        [PUSH_CAUSE_AUTH] = "provider_auth",
        [PUSH_CAUSE_THROTTLED] = "throttled",
        [PUSH_CAUSE_PROVIDER_ERROR] = "provider_error",
        [PUSH_CAUSE_TEMPORARY] = "temporary",
        [PUSH_CAUSE_REJECTED] = "rejected",
        [PUSH_CAUSE_TOKEN_DEAD] = "token_dead",
        [PUSH_CAUSE_INTERNAL] = "internal",
    };
    return NAME_OF(names, c);
}

int64_t push_retry_delay_ms(uint32_t attempt, int64_t since_first_ms) {
    uint32_t r;
    size_t step = attempt < 1 ? 0 : attempt - 1;
    int64_t base = SCHEDULE_MS[step < SCHEDULE_LEN ? step : SCHEDULE_LEN - 1];
    rand_bytes(&r, sizeof r);
    /* factor in [0.8, 1.2): 0.8 + 0.4 * r / 2^32; 0.4 * 6 h < 2^24 ms, so the
     * product stays below 2^56 */
    int64_t delay = base * 4 / 5 + ((base * 2 / 5 * (int64_t)r) >> 32);
    if (since_first_ms < 0)
        since_first_ms = 0;
    if (since_first_ms + delay > PUSH_RETRY_HORIZON_MS)
        return PUSH_RETRY_GIVE_UP;
    return delay;
}
