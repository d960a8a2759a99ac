/*
 * push/config.h: the notifier's configuration, filled in by the server with
 * designated initialisers (like lws_context_creation_info):
 *
 *   struct push_config cfg = {
 *       .wake = wake_loop, .wake_ctx = server,
 *       .app_link = "https://clinic.example/app",
 *       .email = {.url = "smtp://mail.clinic.example:587",
 *                 .from = "no-reply@clinic.example",
 *                 .username = "carechat", .password_file = "/etc/carechat/smtp.pw"},
 *       .apns = {.key_file = "/etc/carechat/apns.p8", .key_id = "ABC123DEFG",
 *                .team_id = "DEF123GHIJ", .topic = "example.clinic.carechat"},
 *       .fcm = {.service_account_file = "/etc/carechat/fcm.json"},
 *       .webpush = {.vapid_key_file = "/etc/carechat/vapid.pem",
 *                   .subject = "mailto:ops@clinic.example"},
 *   };
 *
 * A channel whose required fields are missing is disabled with one log line;
 * one whose credentials cannot be used (a file that is missing, readable by
 * group or others, or not a key) is disabled with one error line. Jobs for a
 * disabled channel end PERMANENT_FAILURE with cause PUSH_CAUSE_NOT_CONFIGURED;
 * push_channel_enabled() tells the server which channels work, so it may refuse
 * to start instead. Every credential is read from a file that must have mode
 * 0600 or stricter (push/secret.h). Zero means "the default" for every number.
 *
 * Every string is borrowed only for the duration of push_open(), which copies
 * or reads what it needs.
 */
#ifndef PUSH_CONFIG_H
#define PUSH_CONFIG_H

#include <stddef.h>

struct push_email_config {
    /* "smtp://host:587" (STARTTLS is then required: CURLUSESSL_ALL) or
     * "smtps://host:465". NULL: email disabled. */
    const char *url;
    const char *from;              /* the envelope sender and From:; required */
    const char *username;          /* AUTH user; NULL: no AUTH */
    const char *password_file;     /* required with username */
    const char *message_id_domain; /* right of the Message-ID's "@"; NULL: from's domain */
};

struct push_apns_config {
    const char *key_file;    /* the provider token signing key (.p8, PEM, P-256). NULL:
                                APNs disabled */
    const char *key_id;      /* the key's 10-character id: the JWT's "kid"; required */
    const char *team_id;     /* the JWT's "iss"; required */
    const char *topic;       /* apns-topic: the app's bundle id; required */
    const char *base_url;    /* NULL: https://api.push.apple.com */
    const char *sandbox_url; /* for tokens marked sandbox; NULL:
                                https://api.sandbox.push.apple.com */
    int token_refresh_s;     /* provider token lifetime; 0: 2400; clamped to 1200..3600
                                (Apple refuses tokens older than an hour, and more often
                                than every 20 minutes) */
};

struct push_fcm_config {
    /* The service account JSON (client_email, private_key, token_uri, project_id).
     * NULL: FCM disabled. */
    const char *service_account_file;
    const char *base_url; /* NULL: https://fcm.googleapis.com */
};

struct push_webpush_config {
    const char *vapid_key_file; /* VAPID signing key (PEM, P-256). NULL: disabled */
    const char *subject;        /* the VAPID "sub": "mailto:..." or an https URL; required */
    int ttl_s;                  /* the TTL header; 0: 86400 */
    const char *urgency;        /* "very-low", "low", "normal" or "high"; NULL: "high" */
    /* Hosts (exact, case-insensitive names or literal addresses) exempt from the
     * address checks and allowed over plain http and on any port. For tests;
     * production leaves it NULL. NULL-terminated. */
    const char *const *allow_hosts;
};

struct push_config {
    /* Called on the notifier thread when results are ready; the server passes a
     * function that wakes its event loop (lws_cancel_service()), which then calls
     * push_poll(). Must not block or call back into push. May be NULL. */
    void (*wake)(void *ctx);
    void *wake_ctx;

    /* The https link every notice points to (the app or the sign-in page); it
     * must not identify anyone. Required for email. */
    const char *app_link;
    /* A CA bundle to trust instead of the system's (tests); NULL: system CAs. */
    const char *ca_file;

    struct push_email_config email;
    struct push_apns_config apns;
    struct push_fcm_config fcm;
    struct push_webpush_config webpush;

    size_t max_pending;        /* submitted jobs whose result was not polled yet;
                                  beyond it push_submit() refuses. 0: 10000 */
    size_t max_in_flight;      /* transfers at once; the rest wait. 0: 64 */
    long connect_timeout_ms;   /* 0: 10000 */
    long total_timeout_ms;     /* one transfer, connect included. 0: 30000 */
    size_t max_response_bytes; /* a larger answer aborts the transfer. 0: 65536 */
};

#endif
