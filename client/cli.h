/*
 * client/cli.h: the pure parts of the `carechat` command-line tool: argument
 * parsing, exit codes, password files and JSON output. carechat_main.c wires
 * them to libcarechat (client/carechat.h).
 *
 * No global state; single-threaded use.
 */
#ifndef CLIENT_CLI_H
#define CLIENT_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

/* Exit codes, documented in `carechat --help`. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_USAGE = 1,      /* bad arguments or an unreadable password file */
    CLI_EXIT_REFUSED = 2,    /* the server refused the request */
    CLI_EXIT_CONNECTION = 3, /* cannot connect, connection lost, no answer in time */
    CLI_EXIT_SESSION = 4,    /* not logged in, or the session expired or ended */
    CLI_EXIT_PROFILE = 5,    /* the profile directory is unusable */
    CLI_EXIT_PROTOCOL = 6,   /* a malformed answer or a signature that does not verify */
    CLI_EXIT_AUDIT = 7,      /* audit verify: the audit chain is broken */
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
 * --since/--until that cli_parse_time() refuses, or
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

/* Appends `s` as a JSON string (quoted; '"', '\\' and control characters
 * escaped, other bytes as they are: the text is UTF-8) to `out`. */
void cli_json_string(struct buf *out, const char *s);

#endif
