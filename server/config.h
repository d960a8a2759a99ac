/*
 * server/config.h: carechatd's configuration, built in four steps.
 *
 *   1. defaults        CONFIG_DEFAULTS below (designated initialisers)
 *   2. config file     --config FILE: lines "key = value", keys named like the
 *                      long options without their dashes, '#' starts a comment
 *   3. command line    --key VALUE or --key=VALUE, later ones win
 *   4. validation      every value in range, TLS for any non-loopback listener
 *                      (the metrics listener included)
 *
 * A failed step leaves a one-line message that names the option (and FILE:LINE
 * for the file) for main() to print before exiting with status 2.
 *
 * Ownership: string values point either at string literals (defaults), into the
 * argv array given to config_load() (which must outlive the config), or at
 * copies of file values that the config owns and config_cleanup() frees.
 *
 * Runs on the main thread before anything else starts; the result is read-only
 * afterwards and may be shared by every thread.
 */
#ifndef SERVER_CONFIG_H
#define SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "storage/store.h"

#define CONFIG_MAX_ORIGINS 16
#define CONFIG_HOST_MAX 64

struct config_strings;

/* A listening address. */
struct config_addr {
    char host[CONFIG_HOST_MAX]; /* an IPv4 or IPv6 literal, without brackets */
    int port;                   /* 0..65535; 0 lets the kernel pick a free port */
};

struct server_config {
    struct config_addr listen;         /* WebSocket sessions (carechat.v1); no metrics */
    struct config_addr metrics_listen; /* GET /metrics and /healthz only, unauthenticated:
                                          keep it on loopback or a private network */
    const char *data_dir;              /* records in DATA_DIR/db */
    const char *key_dir;               /* NULL: DATA_DIR/keys */
    const char *master_key;            /* NULL: KEY_DIR/master.key */
    const char *holidays_file;         /* NULL: US federal holidays (server/calendar.h) */
    const char *old_master_key;        /* the previous master key, finishing a rotation */
    const char *new_master_key;        /* rotate-master-key: the new master key */
    const char *tls_cert;              /* PEM certificate chain; NULL: no TLS */
    const char *tls_key;               /* PEM private key; given together with tls_cert */
    bool insecure_no_tls;              /* allow plaintext on a non-loopback address */
    bool keys_in_data;                 /* allow keys inside the data directory off loopback */
    bool tls_compat_ciphers;           /* offer ChaCha20 and AES-128 suites besides AES-256-GCM */
    /* Browser origins allowed to open a WebSocket. A request without an Origin
     * header (native apps) is always allowed; one with an Origin must match an
     * entry exactly. No entries: every request with an Origin is refused. */
    const char *allowed_origins[CONFIG_MAX_ORIGINS];
    size_t n_allowed_origins;
    uint64_t max_frame;          /* largest WebSocket message, bytes */
    unsigned auth_timeout_s;     /* a connection must authenticate within this */
    unsigned ping_interval_s;    /* idle seconds before the server sends a ping */
    unsigned idle_timeout_s;     /* idle seconds before the server hangs up */
    unsigned max_conns_per_ip;   /* open TCP connections from one address */
    uint64_t min_free_bytes;     /* disk reserve: writes refused below it */
    uint64_t block_cache_bytes;  /* RocksDB block cache */
    uint64_t min_free_key_bytes; /* the key directory's volume's reserve */
    enum log_level log_level;
    unsigned invite_ttl_s;               /* invitations expire after this */
    unsigned session_idle_s;             /* sessions end after this long unused */
    unsigned session_max_s;              /* sessions end this long after login */
    unsigned pwhash_ops;                 /* Argon2id passes (>= 2) */
    uint64_t pwhash_mem;                 /* Argon2id memory in bytes (>= 19 MiB) */
    unsigned pwhash_workers;             /* Argon2id computations at once */
    unsigned password_min;               /* shortest password accepted at registration */
    unsigned login_burst;                /* free failed sign-ins per (account, network) */
    unsigned login_burst_per_ip;         /* ... per network */
    unsigned login_failures_per_account; /* ... per account, for new devices */
    unsigned login_window_s;             /* how long failures are remembered */
    unsigned send_burst;                 /* messages an account may send at once ... */
    unsigned send_window_s;              /* ... refilled over this many seconds */
    unsigned invite_burst;               /* invitations an account may send at once ... */
    unsigned invite_window_s;            /* ... refilled over this many seconds */
    unsigned read_burst;                 /* reads of patient data an account may make at once */
    unsigned read_window_s;              /* ... refilled over this many seconds */
    unsigned audit_coalesce_s;           /* repeated reads share a record within this */
    unsigned review_days;                /* REVIEW after deactivation ... */
    unsigned restriction_days;           /* ... then RESTRICTED, then purged */
    unsigned restore_days;               /* a restored file is visible this long */
    unsigned maintenance_interval_s;     /* how often the retention clock runs */
    unsigned inbox_max;                  /* undelivered entries per device inbox */
    unsigned inbox_sender_max;           /* ... of which undelivered messages of one sender */
    unsigned audit_anchor_every;         /* log the audit chain head every N records */
    /* Notifications (push/config.h): a channel is configured by its first field
     * (smtp_url, apns_key_file, fcm_service_account_file, vapid_key_file); one
     * that is configured but unusable stops carechatd at start. */
    const char *app_link; /* the https link every notice points to */
    const char *smtp_url, *smtp_from, *smtp_ca_file, *smtp_user, *smtp_password_file;
    const char *apns_key_file, *apns_key_id, *apns_team_id, *apns_topic, *apns_url,
        *apns_sandbox_url;
    const char *fcm_service_account_file, *fcm_url;
    const char *vapid_key_file, *vapid_subject, *webpush_allow_host;
    bool dev_invite_codes;                /* answer invitation codes to the inviter */
    const char *require_2fa;              /* "staff", "none" or NULL (none): --require-2fa */
    unsigned notify_email_delay_s;        /* first email after this, if still unread */
    unsigned notify_email_window_s;       /* then at most one email per window */
    unsigned notify_push_delay_s;         /* first push after this */
    unsigned notify_push_interval_s;      /* then at most one push per device per interval */
    unsigned notify_push_jitter_s;        /* plus up to this, against timing analysis */
    unsigned outbox_in_flight;            /* notification jobs being sent at once */
    uint64_t file_max;                    /* largest file (ciphertext bytes) */
    uint64_t patch_max;                   /* largest tus PATCH body */
    uint64_t upload_quota;                /* bytes of files one account may store */
    unsigned uploads_max;                 /* unfinished uploads per account */
    unsigned upload_burst;                /* uploads an account may begin at once ... */
    unsigned upload_window_s;             /* ... refilled over this many seconds */
    unsigned upload_ttl_s;                /* unfinished uploads expire after this */
    uint64_t key_backup_segment_max;      /* bytes of one key backup segment */
    unsigned key_backup_max_segments;     /* segments of one account's key backup */
    uint64_t key_backup_quota;            /* bytes of one account's key backup */
    unsigned password_reset_ttl_s;        /* password reset codes expire after this */
    unsigned password_reset_burst;        /* reset requests for one email at once ... */
    unsigned password_reset_burst_per_ip; /* ... from one network at once ... */
    unsigned password_reset_window_s;     /* ... refilled over this many seconds */
    int64_t clock_offset_ms;              /* added to the clock; for tests only */
    const char *config_file;              /* the --config given, or NULL */
    struct config_strings *owned;         /* private: copies of the file's values */
};

/* The defaults: ws://127.0.0.1:8080 with data in ./carechat-data. Ping every
 * 25 s and hang up after 60 s of silence keep mobile NAT mappings alive (most
 * expire idle TCP after 30 s or more) without waking radios often. */
#define CONFIG_DEFAULTS                                                                            \
    {                                                                                              \
        .listen = {"127.0.0.1", 8080}, .metrics_listen = {"127.0.0.1", 9464},                      \
        .data_dir = "./carechat-data", .max_frame = 256 * 1024, .auth_timeout_s = 10,              \
        .ping_interval_s = 25, .idle_timeout_s = 60, .max_conns_per_ip = 64,                       \
        .min_free_bytes = 256ull << 20, .min_free_key_bytes = 16ull << 20,                         \
        .block_cache_bytes = 32ull << 20, .log_level = LOG_INFO, .invite_ttl_s = 7 * 24 * 3600,    \
        .session_idle_s = 15 * 60, .session_max_s = 12 * 3600, .pwhash_ops = 2,                    \
        .pwhash_mem = 19ull << 20, .password_min = 10, .login_burst = 5, .login_burst_per_ip = 30, \
        .login_window_s = 300, .login_failures_per_account = 20, .pwhash_workers = 2,              \
        .send_burst = 60, .send_window_s = 60, .invite_burst = 30, .invite_window_s = 3600,        \
        .inbox_max = 10000, .inbox_sender_max = 2500, .read_burst = 300, .read_window_s = 60,      \
        .audit_coalesce_s = 10, .audit_anchor_every = 1000, .notify_email_delay_s = 15 * 60,       \
        .notify_email_window_s = 6 * 3600, .notify_push_delay_s = 10,                              \
        .notify_push_interval_s = 5 * 60, .notify_push_jitter_s = 20, .outbox_in_flight = 64,      \
        .review_days = 30, .restriction_days = 365, .restore_days = 30,                            \
        .maintenance_interval_s = 60, .file_max = 100ull << 20, .patch_max = 16ull << 20,          \
        .upload_quota = 2ull << 30, .uploads_max = 16, .upload_burst = 60, .upload_window_s = 60,  \
        .upload_ttl_s = 24 * 3600, .password_reset_ttl_s = 15 * 60, .password_reset_burst = 3,     \
        .password_reset_burst_per_ip = 20, .password_reset_window_s = 3600,                        \
        .key_backup_segment_max = 128ull << 10, .key_backup_max_segments = 256,                    \
        .key_backup_quota = 16ull << 20,                                                           \
    }

/* Builds the configuration from the defaults, the --config file and argv (argv[0]
 * is the program name and is skipped) into *cfg. Returns 0 when carechatd
 * should run with *cfg (release it with config_cleanup()); sets *help to true
 * when --help was given (then *cfg holds the defaults and must still be cleaned
 * up). Returns STATUS_BAD_REQUEST with a one-line message in err (at most
 * err_len bytes, NUL-terminated) for an unknown option, a missing or bad value,
 * an unreadable or malformed file, or a configuration that fails validation;
 * *cfg then needs no cleanup. */
int config_load(int argc, char **argv, struct server_config *cfg, bool *help, char *err,
                size_t err_len);

/* The frame of carechatd and of a subcommand: loads the configuration from
 * argv (argv[0], the program or subcommand name, is skipped), prints `usage`
 * for --help (exit 0), else sets the log level and returns run(cfg). A bad
 * configuration is reported as "carechatd[ NAME]: message" on stderr, where
 * `name` is the subcommand (NULL: carechatd itself), with CONFIG_EXIT_CONFIG. */
int config_run(int argc, char **argv, const char *name, const char *usage,
               int (*run)(const struct server_config *cfg));

/* Frees the copies of file values. Accepts NULL. */
void config_cleanup(struct server_config *cfg);

/* The --help text: every option and its argument; for each numeric option its
 * default and the range validation accepts (both from the same table). Never
 * NULL. */
const char *config_usage(void);

/* The store settings of `cfg` (data and key directories, master key, the two
 * free-space reserves) for opening the store in `mode`, into *out. The strings
 * are borrowed from `cfg`. */
void config_store(const struct server_config *cfg, enum store_mode mode, struct store_config *out);

/* Exit statuses shared by carechatd and its subcommands (audit-verify adds 3,
 * "chain broken"). */
enum config_exit {
    CONFIG_EXIT_OK = 0,
    CONFIG_EXIT_FAILED = 1, /* a step failed (logged) */
    CONFIG_EXIT_CONFIG = 2, /* configuration refused: an option, a TLS file, the master
                               key or the key directory (message says which) */
    CONFIG_EXIT_DATA = 4,   /* the data directory is not as the command needs it:
                               missing or incomplete (carechatd, bootstrap,
                               audit-verify), or already holding a database or keys
                               (init); nothing was changed */
};

/* The exit status for a start-up that failed with `status`: CONFIG_EXIT_CONFIG
 * for STATUS_BAD_REQUEST, CONFIG_EXIT_DATA for STATUS_NOT_FOUND and
 * STATUS_CONFLICT, CONFIG_EXIT_FAILED otherwise (CONFIG_EXIT_OK for 0). */
int config_exit_status(int status);

/* Opens the existing store of `cfg` (STORE_OPEN) for the offline subcommand
 * `tool` (e.g. "audit-verify") into *out. Returns CONFIG_EXIT_OK, or, having
 * told stderr why, config_exit_status() of the failure. */
int config_open_store(const struct server_config *cfg, const char *tool, struct store **out);

/* True when `host` (an IP literal) is a loopback address: 127.0.0.0/8 or ::1
 * (also written as ::ffff:127.x.y.z). Anything else, including 0.0.0.0 and ::,
 * is not. */
bool config_host_is_loopback(const char *host);

/* Whether the key directory or the master key lies inside the data directory
 * (by default they do: DATA/keys). Crypto-shredding depends on keys apart
 * from data: a copy or backup of the data directory must not carry them. A
 * server listening off loopback refuses it without --keys-in-data; every
 * start logs a warning for it. */
bool config_keys_in_data(const struct server_config *cfg);

/* The most dates a --holidays file may hold. */
#define CONFIG_HOLIDAYS_MAX 2048

/* What a frame carrying one key backup segment (PutKeyBackupSegment,
 * KeyBackupSegment) needs beside the segment's bytes, with room to spare. */
#define CONFIG_KEY_BACKUP_FRAME_SLACK 1024u

/* The largest key backup segment the server takes: --key-backup-segment-max,
 * lowered to fit one frame of --max-frame with CONFIG_KEY_BACKUP_FRAME_SLACK
 * to spare. */
uint64_t config_key_backup_segment_max(const struct server_config *cfg);

#endif
