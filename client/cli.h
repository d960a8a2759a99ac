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
    CLI_REGISTER,
    CLI_DEVICES,
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
    CLI_APPROVE,
    CLI_TRUST,
    CLI_VERIFY,
    CLI_DEVICE_LIST_RESET,
};

#define CLI_MAX_WAIT_S 3600

#define CLI_MAX_PASSWORD 1024

/* The parsed command line; strings point into argv. */
struct cli_args {
    const char *server;  /* NULL: the library's default */
    const char *profile; /* NULL: $HOME/.carechat */
    const char *ca_file;
    bool json;
    bool help;
    enum cli_command command;
    const char *email; /* login, invite, register, account deactivate */
    const char *password_file;
    const char *role;
    const char *code;
    const char *birthdate;
    const char *name;
    const char *to;           /* send: the peer's email */
    const char *conversation; /* send, history, recall, urgent: 32 hex digits (checked);
                                 --channel ID sets it too */
    const char *text;         /* send */
    const char *client_id;    /* send: 32 hex digits (checked), or NULL */
    int wait_s;               /* recv: 0..CLI_MAX_WAIT_S (default 0) */
    unsigned limit;           /* history: 1..100 (default 0: the server's 50) */
    int64_t since, until;     /* audit query: ms since the epoch (0: no bound) */
    const char *actor;        /* audit query: an email, or NULL */
    const char *patient;      /* audit query, channel create: an email, or NULL */
    const char *member;       /* channel add/remove/approve: an email or a 32-hex account id */
    const char *message;      /* recall, urgent ack/status: 32 hex digits (checked) */
    bool urgent;              /* send --urgent */
    bool mark;                /* verify --mark */
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
