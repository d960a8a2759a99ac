/*
 * client/cli.h: the pure parts of the `carechat` command-line tool: argument
 * parsing, exit codes, password files and JSON output. carechat_main.c wires
 * them to libcarechat (client/carechat.h).
 *
 * JSON (--json) is written only with Debian's libjansson, behind the helpers
 * below: one object per line, in jansson's default one-line form. Strings
 * that are not UTF-8 never reach jansson as they are (it refuses them): their
 * ill-formed bytes become U+FFFD, and a message's text that needed it gets a
 * "text_error" field, so every line is valid JSON whatever a peer sent.
 *
 * No global state except jansson's allocator (cli_json_init()); single-threaded
 * use.
 */
#ifndef CLIENT_CLI_H
#define CLIENT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "base/buf.h"
#include "client/carechat.h"

/* Exit codes, documented in `carechat --help`. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_USAGE = 1,      /* bad arguments (send: --text not UTF-8), unreadable password file */
    CLI_EXIT_REFUSED = 2,    /* the server refused the request */
    CLI_EXIT_CONNECTION = 3, /* cannot connect, connection lost, no answer in time */
    CLI_EXIT_SESSION = 4,    /* not logged in, or the session expired or ended */
    CLI_EXIT_PROFILE = 5,    /* the profile directory is unusable */
    CLI_EXIT_PROTOCOL = 6,   /* a malformed answer or a signature that does not verify */
    CLI_EXIT_AUDIT = 7,      /* audit verify: the audit chain is broken */
    CLI_EXIT_TRUST = 8,      /* an account's identity changed: verify, then trust */
};

enum cli_command {
    CLI_NONE = 0,
    CLI_LOGIN,
    CLI_INVITE,
    CLI_INVITE_LIST,
    CLI_INVITE_REVOKE,
    CLI_REGISTER,
    CLI_DEVICES,
    CLI_DEVICES_REMOVE,
    CLI_DEVICES_RENAME,
    CLI_LOGOUT,
    CLI_SEND,
    CLI_RECV,
    CLI_HISTORY,
    CLI_CONVERSATIONS,
    CLI_AUDIT_QUERY,
    CLI_AUDIT_VERIFY,
    CLI_CHANNEL_CREATE,
    CLI_CHANNEL_ADD,
    CLI_CHANNEL_REMOVE,
    CLI_CHANNEL_APPROVE,
    CLI_CHANNEL_LEAVE,
    CLI_CHANNEL_LIST,
    CLI_CHANNEL_MEMBERS,
    CLI_RECALL,
    CLI_URGENT_ACK,
    CLI_URGENT_STATUS,
    CLI_ACCOUNT_DEACTIVATE,
    CLI_ACCOUNT_LIST,
    CLI_ACCOUNT_STATE,
    CLI_ACCOUNT_REACTIVATE,
    CLI_ACCOUNT_HOLD,
    CLI_ACCOUNT_RELEASE,
    CLI_ACCOUNT_UNLOCK,
    CLI_PASSWORD_CHANGE,
    CLI_NOTIFY_SETTINGS,
    CLI_PUSH_REGISTER,
    CLI_PUSH_UNREGISTER,
    CLI_DOWNLOAD,
    CLI_BREACH_DECLARE,
    CLI_BREACH_STATUS,
    CLI_APPROVE,
    CLI_TRUST,
    CLI_VERIFY,
    CLI_DEVICE_LIST_RESET,
    CLI_PASSWORD_RESET_REQUEST,
    CLI_PASSWORD_RESET,
    CLI_2FA_ENABLE,
    CLI_2FA_CONFIRM,
    CLI_2FA_DISABLE,
    CLI_KEYS_BACKUP_ENABLE,
    CLI_KEYS_BACKUP_STATUS,
    CLI_KEYS_BACKUP_SYNC,
    CLI_KEYS_BACKUP_DISABLE,
    CLI_KEYS_RESTORE,
};

#define CLI_MAX_WAIT_S 3600

#define CLI_MAX_PASSWORD 1024

/* Reads the text of a message from `path` ("-": standard input) into `out`
 * (at most `max` bytes). Returns 0, or STATUS_TOO_LARGE / STATUS_IO /
 * STATUS_BAD_REQUEST (not UTF-8, or holding NUL) with a message in err. */
int cli_read_text(const char *path, size_t max, struct buf *out, char *err, size_t err_len);

/* The parsed command line; strings point into argv. */
struct cli_args {
    const char *server;  /* NULL: the library's default */
    const char *profile; /* NULL: $HOME/.carechat */
    const char *ca_file;
    bool json;
    bool help;
    bool version; /* --version */
    enum cli_command command;
    const char *email; /* login, invite, register, account (but list) */
    const char *password_file;
    const char *new_password_file; /* password change, password reset */
    const char *code_file;         /* password reset: a file holding the emailed code */
    const char *recovery_file;     /* keys restore: a file holding the recovery key */
    const char *invite;            /* invite revoke: 64 hex digits (checked) */
    const char *role;              /* invite; account list: the role listed (NULL: every role) */
    const char *code;              /* register, approve, 2fa confirm, 2fa disable */
    const char *totp;              /* login: a 6-digit code or a recovery code */
    const char *totp_file;         /* login: the same, read from this file */
    const char *birthdate;
    const char *name;
    const char *to;               /* send: the peer's email */
    const char *conversation;     /* send, history, recall, urgent: 32 hex digits (checked);
                                     --channel ID sets it too */
    const char *text;             /* send: the text, or "-" for standard input */
    const char *text_file;        /* send: a file holding the text */
    const char *client_id;        /* send: 32 hex digits (checked), or NULL */
    int wait_s;                   /* recv: 0..CLI_MAX_WAIT_S (default 0) */
    unsigned limit;               /* history, account list (page size): 1..100 (default 0: the
                                     server's 50) */
    int64_t since, until;         /* audit query, breach declare --from/--to: ms since the epoch
                                     (0: no bound) */
    const char *incident;         /* breach: 32 hex digits (checked) */
    int64_t discovered;           /* breach declare --discovered: ms (0: now) */
    const char *accounts;         /* breach declare: comma-separated emails */
    const char *description;      /* breach declare: the operators' note (sensitive) */
    const char *description_file; /* ... or a file holding it */
    const char *actor;            /* audit query: an email, or NULL */
    const char *patient;          /* audit query, channel create: an email, or NULL */
    const char *member;           /* channel add/remove/approve: an email or a 32-hex account id */
    const char *message;          /* recall, urgent ack/status: 32 hex digits (checked) */
    bool urgent;                  /* send --urgent */
    const char *reason;           /* account hold: 1..CARECHAT_MAX_REASON bytes of UTF-8 */
    int email_notices;            /* notify settings: -1 unchanged, 0 off, 1 on */
    int push_notices;             /* likewise */
    int quiet_from, quiet_until;  /* notify settings --quiet: minutes, -1 unchanged; equal: off */
    int utc_offset;               /* notify settings --utc-offset: minutes; INT_MIN unchanged */
    const char *apns;             /* push register: the APNs token in hex (checked) */
    bool sandbox;                 /* push register --apns: a development build */
    const char *fcm;              /* push register: an FCM token */
    const char *webpush;          /* push register: a Web Push endpoint, with: */
    const char *p256dh;           /* its key, base64url of 65 bytes (checked) */
    const char *auth;             /* its secret, base64url of 16 bytes (checked) */
    const char *id;         /* push unregister, devices remove|rename: 32 hex digits (checked) */
    const char *label;      /* devices rename --label (checked by the server) */
    bool forget_device;     /* logout --forget-device */
    const char *file;       /* send --file PATH, or NULL */
    const char *media_type; /* send --type, or NULL */
    const char *out;        /* download --out PATH, or NULL */
    const char *file_id;    /* download --file-id: 32 hex digits (checked), or NULL */
    uint64_t seq;           /* download --seq, or 0 */
    bool mark;              /* verify --mark */
    bool stay_signed_in;    /* login --stay-signed-in */
};

/* Parses a time given as milliseconds since the epoch (digits) or as
 * ISO-8601 UTC "YYYY-MM-DDTHH:MM:SS[.mmm]Z" into *ms. Returns 0 or
 * STATUS_BAD_REQUEST. */
int cli_parse_time(const char *s, int64_t *ms);

/* Parses argv[1..argc-1]: global options (--server URL, --profile DIR,
 * --ca-file FILE, --json, --help) anywhere, one command, and its options, each
 * as "--name value" or "--name=value". Returns 0 with *out filled (with
 * out->help set, nothing else need be valid), or STATUS_BAD_REQUEST with one
 * line for the user in `err` (an unknown command or option, a missing value or
 * required option, an option the command does not take, a role that is not
 * patient/provider/admin/sysadmin, a birthdate not shaped YYYY-MM-DD, send
 * without exactly one of --to, --conversation and --channel, recall and urgent
 * without exactly one of --conversation and --channel, an id that is not 32 hex
 * digits, a --wait outside 0..CLI_MAX_WAIT_S or a --limit outside 1..100, a
 * --reason that is empty, longer than CARECHAT_MAX_REASON bytes or not UTF-8
 * (the message does not repeat it: it is personal data), a
 * --since/--until that cli_parse_time() refuses, a --text that is not UTF-8
 * (the message would be unreadable to other clients), or
 * --password, which is refused: passwords come only from files). */
int cli_parse(int argc, char **argv, struct cli_args *out, char *err, size_t err_len);

/* The usage text for --help, with the exit codes. */
const char *cli_usage(void);

/* Reads the password in `path`: the file's bytes without one trailing "\n" or
 * "\r\n". Appends it to `out` (the caller wipes it with buf_wipe()) and
 * returns 0, or returns STATUS_NOT_FOUND / STATUS_IO (unreadable),
 * STATUS_BAD_REQUEST (empty, a NUL byte, or another line after it) or
 * STATUS_TOO_LARGE (over CLI_MAX_PASSWORD bytes), with a line for the user in
 * `err`. Nothing read is left in memory except in `out` on success. */
int cli_read_password(const char *path, struct buf *out, char *err, size_t err_len);

/* The flags of every json_dumpf() of the CLI: 0, jansson's default one-line
 * form ({"key": value, "key": [...]}: ", " and ": " between items, keys in
 * the order set, UTF-8 as it is). Not JSON_COMPACT, which drops those spaces:
 * this form is the line format --json has printed since it exists, and
 * scripts (and the shell tests) match it. */
#define CLI_JSON_FLAGS 0

/* Makes jansson wipe every block it frees (JSON objects and lines carry
 * message text). Call once at the start of the process, before any other
 * json_* call. */
void cli_json_init(void);

/* A new JSON string (never NULL) holding the `len` bytes at `s`: the same
 * bytes when they are UTF-8 (NUL and control characters included; jansson
 * escapes them on output), else a copy in which every byte that does not
 * start a well-formed UTF-8 character (base/utf8.h) is replaced by U+FFFD.
 * *replaced (may be NULL) says whether anything was replaced. */
json_t *cli_json_text(const char *s, size_t len, bool *replaced);

/* cli_json_text() of the NUL-terminated `s`, for names and labels. */
json_t *cli_json_str(const char *s);

/* A JSON integer for `v`; values above INT64_MAX (which jansson's integers
 * cannot hold) become a real, the nearest double. */
json_t *cli_json_u64(uint64_t v);

/* Prints `obj` (takes ownership; NULL is a bug: CHECK) as one line to `out`
 * with CLI_JSON_FLAGS. */
void cli_json_print(FILE *out, json_t *obj);

/* Room for cli_iso_time()'s text and its NUL. */
#define CLI_ISO_TIME_MAX 32

/* Writes `ms` since the epoch as ISO-8601 UTC to whole seconds
 * ("2025-03-04T05:06:07Z"; a time gmtime() cannot show as "N ms"). */
void cli_iso_time(int64_t ms, char out[CLI_ISO_TIME_MAX]);

/* Appends where `r` (borrowed) stands in the retention lifecycle, in words
 * for a person, with its dates in cli_iso_time()'s form:
 *   active
 *   review (deactivated D), review until R, restricted until P
 *   restricted (deactivated D), restricted until P
 *   purged (deactivated D, purged P)
 * followed by ", legal hold since H" while the account is on hold. No
 * personal data: ids, names and emails are the caller's to add. */
void cli_retention_text(const struct carechat_retention *r, struct buf *out);

/* The JSON object of `r` (borrowed) that account deactivate, state,
 * reactivate, hold and release print: account (32 hex digits), state
 * (carechat_retention_state_name()), deactivated_at, restricted_at, purge_at
 * (Unix ms, 0 while active), legal_hold (true/false), legal_hold_since (Unix
 * ms, 0 without a hold). The caller releases it with json_decref(). */
json_t *cli_retention_json(const struct carechat_retention *r);

/* The JSON object account list prints for `s` (borrowed): the fields of
 * cli_retention_json() of its retention, then role, display_name, email,
 * active and created_at (Unix ms). The caller releases it with
 * json_decref(). */
json_t *cli_account_json(const struct carechat_account_summary *s);

/* The CLI's configuration file ($CARECHAT_CONFIG, else
 * $XDG_CONFIG_HOME/carechat/config, else ~/.config/carechat/config):
 * "NAME VALUE" lines with NAME one of server, ca_file, profile, each at most
 * once; blank lines and lines starting with '#' are skipped. Values are
 * the rest of the line, at most CLI_DEFAULT_MAX bytes. */
#define CLI_DEFAULT_MAX 1024
struct cli_defaults {
    char server[CLI_DEFAULT_MAX + 1]; /* "" when absent */
    char ca_file[CLI_DEFAULT_MAX + 1];
    char profile[CLI_DEFAULT_MAX + 1];
};

/* Parses the configuration text `text` into *out. Returns 0, or -1 with a
 * one-line message naming the line in `err`. */
int cli_parse_defaults(const char *text, struct cli_defaults *out, char *err, size_t err_len);

/* "ok", "recalled", "no_key", "invalid", "malformed" or "unsupported". */
const char *cli_message_state_name(enum carechat_message_state state);

/* The JSON object recv and history print for message `m` (borrowed): fields
 * conversation, seq, message_id, sender, sender_device (32 hex digits),
 * sent_at, urgent, state, text ("" unless state is "ok"); when the text was
 * not UTF-8 (libcarechat does not hand out such text; checked all the same),
 * text_error: "invalid_utf8" (the text then holds U+FFFD for each ill-formed
 * byte); reply_to (32 hex digits) for a reply; and attachments, each with
 * file_id, file_name, media_type and size (never the key), when there are
 * any. The caller releases it with json_decref(). */
json_t *cli_message_json(const struct carechat_message *m);

#endif
