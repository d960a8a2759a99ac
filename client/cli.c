/*
 * client/cli.c: argument parsing, password files and JSON output (through
 * libjansson only) for the carechat CLI (cli.h).
 */
#include "client/cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/hex.h"
#include "base/id.h"
#include "base/status.h"
#include "base/utf8.h"
#include "client/carechat.h"

enum opt {
    O_SERVER,
    O_PROFILE,
    O_CA_FILE,
    O_JSON,
    O_HELP,
    O_VERSION,
    O_EMAIL,
    O_PASSWORD_FILE,
    O_NEW_PASSWORD_FILE,
    O_ROLE,
    O_CODE,
    O_BIRTHDATE,
    O_NAME,
    O_TO,
    O_CONVERSATION,
    O_TEXT,
    O_TEXT_FILE,
    O_CLIENT_ID,
    O_WAIT,
    O_LIMIT,
    O_SINCE,
    O_UNTIL,
    O_ACTOR,
    O_INCIDENT,
    O_DISCOVERED,
    O_ACCOUNTS,
    O_FROM,
    O_DESCRIPTION,
    O_DESCRIPTION_FILE,
    O_PATIENT,
    O_CHANNEL,
    O_MEMBER,
    O_MESSAGE,
    O_URGENT,
    O_REASON,
    O_INVITE,
    O_EMAIL_NOTICES,
    O_QUIET,
    O_UTC_OFFSET,
    O_PUSH_NOTICES,
    O_APNS,
    O_SANDBOX,
    O_FCM,
    O_WEBPUSH,
    O_P256DH,
    O_AUTH,
    O_ID,
    O_FILE,
    O_OUT,
    O_SEQ,
    O_FILE_ID,
    O_TYPE,
    O_MARK,
    O_STAY_SIGNED_IN,
    O_LABEL,
    O_FORGET_DEVICE,
    O_CODE_FILE,
    O_TOTP,
    O_TOTP_FILE,
    O_RECOVERY_FILE,
    O_COUNT,
};

struct option_def {
    const char *name;
    bool has_value;
    bool global;
};

static const struct option_def options[O_COUNT] = {
    [O_SERVER] = {"server", true, true},
    [O_PROFILE] = {"profile", true, true},
    [O_CA_FILE] = {"ca-file", true, true},
    [O_JSON] = {"json", false, true},
    [O_HELP] = {"help", false, true},
    [O_VERSION] = {"version", false, true},
    [O_EMAIL] = {"email", true, false},
    [O_PASSWORD_FILE] = {"password-file", true, false},
    [O_NEW_PASSWORD_FILE] = {"new-password-file", true, false},
    [O_ROLE] = {"role", true, false},
    [O_CODE] = {"code", true, false},
    [O_BIRTHDATE] = {"birthdate", true, false},
    [O_NAME] = {"name", true, false},
    [O_TO] = {"to", true, false},
    [O_CONVERSATION] = {"conversation", true, false},
    [O_TEXT] = {"text", true, false},
    [O_TEXT_FILE] = {"text-file", true, false},
    [O_CLIENT_ID] = {"client-id", true, false},
    [O_WAIT] = {"wait", true, false},
    [O_LIMIT] = {"limit", true, false},
    [O_SINCE] = {"since", true, false},
    [O_UNTIL] = {"until", true, false},
    [O_ACTOR] = {"actor", true, false},
    [O_INCIDENT] = {"incident", true, false},
    [O_DISCOVERED] = {"discovered", true, false},
    [O_ACCOUNTS] = {"accounts", true, false},
    [O_FROM] = {"from", true, false},
    [O_DESCRIPTION] = {"description", true, false},
    [O_DESCRIPTION_FILE] = {"description-file", true, false},
    [O_PATIENT] = {"patient", true, false},
    [O_CHANNEL] = {"channel", true, false},
    [O_MEMBER] = {"member", true, false},
    [O_MESSAGE] = {"message", true, false},
    [O_URGENT] = {"urgent", false, false},
    [O_REASON] = {"reason", true, false},
    [O_INVITE] = {"invite", true, false},
    [O_EMAIL_NOTICES] = {"email-notices", true, false},
    [O_QUIET] = {"quiet", true, false},
    [O_UTC_OFFSET] = {"utc-offset", true, false},
    [O_PUSH_NOTICES] = {"push-notices", true, false},
    [O_APNS] = {"apns", true, false},
    [O_SANDBOX] = {"sandbox", false, false},
    [O_FCM] = {"fcm", true, false},
    [O_WEBPUSH] = {"webpush", true, false},
    [O_P256DH] = {"p256dh", true, false},
    [O_AUTH] = {"auth", true, false},
    [O_ID] = {"id", true, false},
    [O_FILE] = {"file", true, false},
    [O_OUT] = {"out", true, false},
    [O_SEQ] = {"seq", true, false},
    [O_FILE_ID] = {"file-id", true, false},
    [O_TYPE] = {"type", true, false},
    [O_MARK] = {"mark", false, false},
    [O_STAY_SIGNED_IN] = {"stay-signed-in", false, false},
    [O_LABEL] = {"label", true, false},
    [O_FORGET_DEVICE] = {"forget-device", false, false},
    [O_CODE_FILE] = {"code-file", true, false},
    [O_TOTP] = {"totp", true, false},
    [O_TOTP_FILE] = {"totp-file", true, false},
    [O_RECOVERY_FILE] = {"recovery-file", true, false},
};

struct command_def {
    const char *name;
    enum cli_command command;
    /* Options the command requires; it takes no others. */
    enum opt required[5];
    size_t n_required;
    /* Options it also accepts. */
    enum opt optional[9];
    size_t n_optional;
};

static const struct command_def commands[] = {
    {"login", CLI_LOGIN, {O_EMAIL, O_PASSWORD_FILE}, 2, {O_STAY_SIGNED_IN, O_TOTP, O_TOTP_FILE}, 3},
    {"invite", CLI_INVITE, {O_EMAIL, O_ROLE}, 2, {0}, 0},
    {"invite list", CLI_INVITE_LIST, {0}, 0, {0}, 0},
    {"invite revoke", CLI_INVITE_REVOKE, {O_INVITE}, 1, {0}, 0},
    {"register", CLI_REGISTER, {O_CODE, O_EMAIL, O_PASSWORD_FILE, O_BIRTHDATE, O_NAME}, 5, {0}, 0},
    {"devices", CLI_DEVICES, {0}, 0, {0}, 0},
    {"devices remove", CLI_DEVICES_REMOVE, {O_ID}, 1, {0}, 0},
    {"devices rename", CLI_DEVICES_RENAME, {O_ID, O_LABEL}, 2, {0}, 0},
    {"logout", CLI_LOGOUT, {0}, 0, {O_FORGET_DEVICE}, 1},
    {"send",
     CLI_SEND,
     {0},
     0,
     {O_TEXT, O_TEXT_FILE, O_FILE, O_TYPE, O_TO, O_CONVERSATION, O_CHANNEL, O_CLIENT_ID, O_URGENT},
     9},
    {"breach declare",
     CLI_BREACH_DECLARE,
     {0},
     0,
     {O_INCIDENT, O_DISCOVERED, O_ACCOUNTS, O_FROM, O_TO, O_ACTOR, O_DESCRIPTION,
      O_DESCRIPTION_FILE},
     8},
    {"breach status", CLI_BREACH_STATUS, {O_INCIDENT}, 1, {0}, 0},
    {"download", CLI_DOWNLOAD, {O_CONVERSATION}, 1, {O_SEQ, O_FILE_ID, O_OUT}, 3},
    {"recv", CLI_RECV, {0}, 0, {O_WAIT}, 1},
    {"history", CLI_HISTORY, {O_CONVERSATION}, 1, {O_LIMIT}, 1},
    {"conversations", CLI_CONVERSATIONS, {0}, 0, {0}, 0},
    {"audit query", CLI_AUDIT_QUERY, {0}, 0, {O_SINCE, O_UNTIL, O_ACTOR, O_PATIENT}, 4},
    {"audit verify", CLI_AUDIT_VERIFY, {0}, 0, {0}, 0},
    {"channel create", CLI_CHANNEL_CREATE, {O_PATIENT, O_NAME}, 2, {0}, 0},
    {"channel add", CLI_CHANNEL_ADD, {O_CHANNEL, O_MEMBER}, 2, {0}, 0},
    {"channel remove", CLI_CHANNEL_REMOVE, {O_CHANNEL, O_MEMBER}, 2, {0}, 0},
    {"channel approve", CLI_CHANNEL_APPROVE, {O_CHANNEL, O_MEMBER}, 2, {0}, 0},
    {"channel leave", CLI_CHANNEL_LEAVE, {O_CHANNEL}, 1, {0}, 0},
    {"channel list", CLI_CHANNEL_LIST, {0}, 0, {0}, 0},
    {"channel members", CLI_CHANNEL_MEMBERS, {O_CHANNEL}, 1, {0}, 0},
    {"recall", CLI_RECALL, {O_MESSAGE}, 1, {O_CONVERSATION, O_CHANNEL}, 2},
    {"urgent ack", CLI_URGENT_ACK, {O_MESSAGE}, 1, {O_CONVERSATION, O_CHANNEL}, 2},
    {"urgent status", CLI_URGENT_STATUS, {O_MESSAGE}, 1, {O_CONVERSATION, O_CHANNEL}, 2},
    {"account deactivate", CLI_ACCOUNT_DEACTIVATE, {O_EMAIL}, 1, {0}, 0},
    {"account list", CLI_ACCOUNT_LIST, {0}, 0, {O_ROLE, O_LIMIT}, 2},
    {"account state", CLI_ACCOUNT_STATE, {O_EMAIL}, 1, {0}, 0},
    {"account reactivate", CLI_ACCOUNT_REACTIVATE, {O_EMAIL}, 1, {0}, 0},
    {"account hold", CLI_ACCOUNT_HOLD, {O_EMAIL, O_REASON}, 2, {0}, 0},
    {"account release", CLI_ACCOUNT_RELEASE, {O_EMAIL}, 1, {0}, 0},
    {"account unlock", CLI_ACCOUNT_UNLOCK, {O_EMAIL}, 1, {0}, 0},
    {"password change", CLI_PASSWORD_CHANGE, {O_PASSWORD_FILE, O_NEW_PASSWORD_FILE}, 2, {0}, 0},
    {"password reset-request", CLI_PASSWORD_RESET_REQUEST, {O_EMAIL}, 1, {0}, 0},
    {"password reset", CLI_PASSWORD_RESET, {O_EMAIL, O_CODE_FILE, O_NEW_PASSWORD_FILE}, 3, {0}, 0},
    {"notify settings",
     CLI_NOTIFY_SETTINGS,
     {0},
     0,
     {O_EMAIL_NOTICES, O_PUSH_NOTICES, O_QUIET, O_UTC_OFFSET},
     4},
    {"push register",
     CLI_PUSH_REGISTER,
     {0},
     0,
     {O_APNS, O_SANDBOX, O_FCM, O_WEBPUSH, O_P256DH, O_AUTH},
     6},
    {"push unregister", CLI_PUSH_UNREGISTER, {O_ID}, 1, {0}, 0},
    {"approve", CLI_APPROVE, {O_CODE}, 1, {0}, 0},
    {"trust", CLI_TRUST, {O_EMAIL}, 1, {0}, 0},
    {"verify", CLI_VERIFY, {O_EMAIL}, 1, {O_MARK}, 1},
    {"device-list reset", CLI_DEVICE_LIST_RESET, {O_EMAIL}, 1, {0}, 0},
    {"2fa enable", CLI_2FA_ENABLE, {0}, 0, {0}, 0},
    {"2fa confirm", CLI_2FA_CONFIRM, {O_CODE}, 1, {0}, 0},
    {"2fa disable", CLI_2FA_DISABLE, {O_PASSWORD_FILE, O_CODE}, 2, {0}, 0},
    {"keys backup enable", CLI_KEYS_BACKUP_ENABLE, {0}, 0, {0}, 0},
    {"keys backup status", CLI_KEYS_BACKUP_STATUS, {0}, 0, {0}, 0},
    {"keys backup sync", CLI_KEYS_BACKUP_SYNC, {0}, 0, {0}, 0},
    {"keys backup disable", CLI_KEYS_BACKUP_DISABLE, {0}, 0, {0}, 0},
    {"keys restore", CLI_KEYS_RESTORE, {O_RECOVERY_FILE}, 1, {0}, 0},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Whether `word` is the first of two-word commands ("account" of "account
 * list"), as the table names them. */
static bool is_group(const char *word) {
    size_t n = strlen(word);
    for (size_t c = 0; c < N_COMMANDS; c++)
        if (strncmp(commands[c].name, word, n) == 0 && commands[c].name[n] == ' ')
            return true;
    return false;
}

/* "HH:MM" into minutes after midnight; -1 when it is not one. */
static int parse_hhmm(const char *s, size_t len) {
    if (len != 5 || s[2] != ':' || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

/* --quiet HH:MM-HH:MM, or off (0-0). */
static int parse_quiet(const char *s, int *from, int *until) {
    if (strcmp(s, "off") == 0) {
        *from = *until = 0;
        return 0;
    }
    const char *dash = strchr(s, '-');
    if (!dash || (*from = parse_hhmm(s, (size_t)(dash - s))) < 0 ||
        (*until = parse_hhmm(dash + 1, strlen(dash + 1))) < 0)
        return -1;
    return 0;
}

/* --utc-offset +HH:MM / -HH:MM into minutes, -12:00..+14:00. */
static int parse_offset(const char *s, int *out) {
    if ((s[0] != '+' && s[0] != '-') || parse_hhmm(s + 1, strlen(s + 1)) < 0)
        return -1;
    int m = parse_hhmm(s + 1, strlen(s + 1)) * (s[0] == '-' ? -1 : 1);
    if (m < -720 || m > 840)
        return -1;
    *out = m;
    return 0;
}

static int usage_error(char *err, size_t err_len, const char *fmt, const char *arg) {
    snprintf(err, err_len, fmt, arg);
    return STATUS_BAD_REQUEST;
}

static bool is_date_shape(const char *s) {
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    return true;
}

/* Decimal digits only, at most `max`. */
static bool parse_number(const char *s, unsigned long max, unsigned long *out) {
    unsigned long v = 0;
    if (*s == '\0' || strlen(s) > 9)
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

int cli_parse(int argc, char **argv, struct cli_args *out, char *err, size_t err_len) {
    struct cli_args a;
    memset(&a, 0, sizeof a);
    const char *values[O_COUNT] = {NULL};
    bool seen[O_COUNT] = {false};
    const struct command_def *cmd = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            if (cmd != NULL)
                return usage_error(err, err_len, "unexpected argument '%s'", arg);
            /* A group word takes the next one ("audit query", "channel
             * create", "account deactivate", "invite list", and again
             * "keys backup enable"), unless options follow it and it is a
             * command of its own ("invite --email"). */
            char words[48];
            snprintf(words, sizeof words, "%s", arg);
            bool grouped = false;
            while (strlen(words) < 32 && is_group(words) && i + 1 < argc &&
                   strncmp(argv[i + 1], "--", 2) != 0 && strlen(argv[i + 1]) < 16) {
                size_t at = strlen(words);
                snprintf(words + at, sizeof words - at, " %s", argv[++i]);
                grouped = true;
            }
            if (grouped) {
                for (size_t c = 0; c < N_COMMANDS && cmd == NULL; c++)
                    if (strcmp(commands[c].name, words) == 0)
                        cmd = &commands[c];
                if (cmd == NULL)
                    return usage_error(err, err_len, "unknown command '%s' (see --help)", words);
                continue;
            }
            for (size_t c = 0; c < N_COMMANDS && cmd == NULL; c++)
                if (strcmp(commands[c].name, arg) == 0)
                    cmd = &commands[c];
            if (cmd == NULL)
                return usage_error(err, err_len, "unknown command '%s' (see --help)", arg);
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (name_len == 8 && strncmp(name, "password", 8) == 0)
            return usage_error(err, err_len, "%s",
                               "--password is not accepted: put the password in a file "
                               "(mode 0600) and pass --password-file FILE");
        int o = 0;
        while (o < O_COUNT && !(strlen(options[o].name) == name_len &&
                                strncmp(options[o].name, name, name_len) == 0))
            o++;
        if (o == O_COUNT)
            return usage_error(err, err_len, "unknown option '%s' (see --help)", arg);
        if (seen[o])
            return usage_error(err, err_len, "--%s given twice", options[o].name);
        seen[o] = true;
        if (!options[o].has_value) {
            if (eq != NULL)
                return usage_error(err, err_len, "--%s takes no value", options[o].name);
            continue;
        }
        if (eq != NULL) {
            values[o] = eq + 1;
        } else {
            if (i + 1 >= argc)
                return usage_error(err, err_len, "--%s needs a value", options[o].name);
            values[o] = argv[++i];
        }
        if (values[o][0] == '\0')
            return usage_error(err, err_len, "--%s needs a non-empty value", options[o].name);
    }
    a.help = seen[O_HELP];
    a.version = seen[O_VERSION];
    if (a.help || a.version) {
        *out = a;
        return 0;
    }
    if (cmd == NULL)
        return usage_error(err, err_len, "%s", "no command given (see --help)");
    for (int o = 0; o < O_COUNT; o++) {
        if (!seen[o] || options[o].global)
            continue;
        bool takes = false;
        for (size_t r = 0; r < cmd->n_required; r++)
            takes |= cmd->required[r] == (enum opt)o;
        for (size_t r = 0; r < cmd->n_optional; r++)
            takes |= cmd->optional[r] == (enum opt)o;
        if (!takes) {
            snprintf(err, err_len, "'%s' does not take --%s", cmd->name, options[o].name);
            return STATUS_BAD_REQUEST;
        }
    }
    for (size_t r = 0; r < cmd->n_required; r++) {
        if (!seen[cmd->required[r]]) {
            snprintf(err, err_len, "'%s' needs --%s", cmd->name, options[cmd->required[r]].name);
            return STATUS_BAD_REQUEST;
        }
    }
    enum carechat_role role;
    if (values[O_ROLE] != NULL && carechat_role_parse(values[O_ROLE], &role) != 0)
        return usage_error(err, err_len,
                           "--role must be patient, provider, admin or sysadmin, not '%s'",
                           values[O_ROLE]);
    uint8_t invite[CARECHAT_INVITE_ID_LEN];
    if (values[O_INVITE] != NULL && hex_decode_exact(values[O_INVITE], invite, sizeof invite) != 0)
        return usage_error(err, err_len, "--invite must be 64 hex digits, not '%s'",
                           values[O_INVITE]);
    if (values[O_BIRTHDATE] != NULL && !is_date_shape(values[O_BIRTHDATE]))
        return usage_error(err, err_len, "--birthdate must be YYYY-MM-DD, not '%s'",
                           values[O_BIRTHDATE]);
    if (cmd->command == CLI_SEND && (int)seen[O_TO] + seen[O_CONVERSATION] + seen[O_CHANNEL] != 1)
        return usage_error(err, err_len, "%s",
                           "'send' needs exactly one of --to, --conversation and --channel");
    if (seen[O_TOTP] && seen[O_TOTP_FILE])
        return usage_error(err, err_len, "%s", "'login' takes one of --totp and --totp-file");
    if (cmd->command == CLI_SEND && seen[O_TEXT] && seen[O_TEXT_FILE])
        return usage_error(err, err_len, "%s", "'send' takes one of --text and --text-file");
    if (cmd->command == CLI_SEND && !seen[O_TEXT] && !seen[O_TEXT_FILE] && !seen[O_FILE])
        return usage_error(err, err_len, "%s",
                           "'send' needs --text (or --text-file), --file or both");
    if (cmd->command == CLI_BREACH_DECLARE && seen[O_ACCOUNTS] == seen[O_FROM])
        return usage_error(err, err_len, "%s",
                           "'breach declare' needs exactly one of --accounts and --from");
    if (cmd->command == CLI_BREACH_DECLARE && !seen[O_FROM] && (seen[O_TO] || seen[O_ACTOR]))
        return usage_error(err, err_len, "%s", "--to and --actor go with --from");
    if (cmd->command == CLI_BREACH_DECLARE && seen[O_DESCRIPTION] && seen[O_DESCRIPTION_FILE])
        return usage_error(err, err_len, "%s",
                           "'breach declare' takes one of --description and --description-file");
    if (cmd->command == CLI_DOWNLOAD && seen[O_SEQ] == seen[O_FILE_ID])
        return usage_error(err, err_len, "%s",
                           "'download' needs exactly one of --seq and --file-id");

    if ((cmd->command == CLI_RECALL || cmd->command == CLI_URGENT_ACK ||
         cmd->command == CLI_URGENT_STATUS) &&
        seen[O_CONVERSATION] == seen[O_CHANNEL])
        return usage_error(err, err_len, "'%s' needs exactly one of --conversation and --channel",
                           cmd->name);
    struct id id;
    if (values[O_INCIDENT] != NULL && id_from_hex(values[O_INCIDENT], &id) != 0)
        return usage_error(err, err_len, "--incident must be 32 hex digits, not '%s'",
                           values[O_INCIDENT]);
    if (values[O_CHANNEL] != NULL && id_from_hex(values[O_CHANNEL], &id) != 0)
        return usage_error(err, err_len, "--channel must be 32 hex digits, not '%s'",
                           values[O_CHANNEL]);
    if (values[O_MESSAGE] != NULL && id_from_hex(values[O_MESSAGE], &id) != 0)
        return usage_error(err, err_len, "--message must be 32 hex digits, not '%s'",
                           values[O_MESSAGE]);
    if (values[O_CONVERSATION] != NULL && id_from_hex(values[O_CONVERSATION], &id) != 0)
        return usage_error(err, err_len, "--conversation must be 32 hex digits, not '%s'",
                           values[O_CONVERSATION]);
    if (values[O_TEXT] != NULL && strcmp(values[O_TEXT], "-") != 0 &&
        !utf8_valid((const uint8_t *)values[O_TEXT], strlen(values[O_TEXT])))
        return usage_error(err, err_len, "%s",
                           "--text is not valid UTF-8 text: nothing was sent (check the "
                           "terminal's or the script's character encoding)");
    /* The reason is personal data: the message does not repeat it. */
    if (values[O_REASON] != NULL &&
        (values[O_REASON][0] == '\0' || strlen(values[O_REASON]) > CARECHAT_MAX_REASON ||
         !utf8_valid((const uint8_t *)values[O_REASON], strlen(values[O_REASON])))) {
        snprintf(err, err_len, "--reason must be 1..%d bytes of UTF-8 text", CARECHAT_MAX_REASON);
        return STATUS_BAD_REQUEST;
    }
    if (values[O_FILE_ID] != NULL && id_from_hex(values[O_FILE_ID], &id) != 0)
        return usage_error(err, err_len, "--file-id must be 32 hex digits, not '%s'",
                           values[O_FILE_ID]);
    if (values[O_CLIENT_ID] != NULL && id_from_hex(values[O_CLIENT_ID], &id) != 0)
        return usage_error(err, err_len, "--client-id must be 32 hex digits, not '%s'",
                           values[O_CLIENT_ID]);
    a.quiet_from = a.quiet_until = -1;
    a.utc_offset = INT_MIN;
    if (values[O_QUIET] != NULL && parse_quiet(values[O_QUIET], &a.quiet_from, &a.quiet_until) != 0)
        return usage_error(err, err_len, "--quiet must be HH:MM-HH:MM or off, not '%s'",
                           values[O_QUIET]);
    if (values[O_UTC_OFFSET] != NULL && parse_offset(values[O_UTC_OFFSET], &a.utc_offset) != 0)
        return usage_error(err, err_len,
                           "--utc-offset must be +HH:MM or -HH:MM (-12:00..+14:00), not '%s'",
                           values[O_UTC_OFFSET]);
    a.email_notices = a.push_notices = -1;
    const int switches[] = {O_EMAIL_NOTICES, O_PUSH_NOTICES};
    for (size_t i = 0; i < 2; i++) {
        int o = switches[i];
        if (values[o] == NULL)
            continue;
        int on = strcmp(values[o], "on") == 0 ? 1 : strcmp(values[o], "off") == 0 ? 0 : -1;
        if (on < 0) {
            snprintf(err, err_len, "--%s must be on or off", options[o].name);
            return STATUS_BAD_REQUEST;
        }
        *(o == O_EMAIL_NOTICES ? &a.email_notices : &a.push_notices) = on;
    }
    if (cmd->command == CLI_PUSH_REGISTER) {
        if ((int)seen[O_APNS] + seen[O_FCM] + seen[O_WEBPUSH] != 1)
            return usage_error(err, err_len, "%s",
                               "'push register' needs exactly one of --apns, --fcm and --webpush");
        if (seen[O_WEBPUSH] != (seen[O_P256DH] && seen[O_AUTH]) ||
            (!seen[O_WEBPUSH] && (seen[O_P256DH] || seen[O_AUTH])))
            return usage_error(err, err_len, "%s",
                               "--webpush needs --p256dh and --auth (and they need --webpush)");
        if (seen[O_SANDBOX] && !seen[O_APNS])
            return usage_error(err, err_len, "%s", "--sandbox goes with --apns");
        size_t hex = values[O_APNS] ? strlen(values[O_APNS]) : 0;
        if (values[O_APNS] && (hex < 64 || hex > 200 || hex % 2 != 0 ||
                               strspn(values[O_APNS], "0123456789abcdefABCDEF") != hex))
            return usage_error(err, err_len, "%s",
                               "--apns must be the device token in hex (64..200 digits)");
        uint8_t bin[65];
        size_t len = 0;
        if (values[O_P256DH] &&
            (sodium_base642bin(bin, sizeof bin, values[O_P256DH], strlen(values[O_P256DH]), NULL,
                               &len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
             len != 65))
            return usage_error(err, err_len, "%s", "--p256dh must be base64url of 65 bytes");
        if (values[O_AUTH] &&
            (sodium_base642bin(bin, sizeof bin, values[O_AUTH], strlen(values[O_AUTH]), NULL, &len,
                               NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
             len != 16))
            return usage_error(err, err_len, "%s", "--auth must be base64url of 16 bytes");
    }
    if (values[O_ID] != NULL && id_from_hex(values[O_ID], &id) != 0)
        return usage_error(err, err_len, "--id must be 32 hex digits, not '%s'", values[O_ID]);
    a.apns = values[O_APNS];
    a.sandbox = seen[O_SANDBOX];
    a.fcm = values[O_FCM];
    a.webpush = values[O_WEBPUSH];
    a.p256dh = values[O_P256DH];
    a.auth = values[O_AUTH];
    a.id = values[O_ID];
    unsigned long n = 0;
    if (values[O_SEQ] != NULL) {
        if (!parse_number(values[O_SEQ], 999999999999ul, &n) || n == 0)
            return usage_error(err, err_len, "--seq must be a message's sequence, not '%s'",
                               values[O_SEQ]);
        a.seq = n;
    }
    if (values[O_WAIT] != NULL) {
        if (!parse_number(values[O_WAIT], CLI_MAX_WAIT_S, &n))
            return usage_error(err, err_len, "--wait must be 0..3600 seconds, not '%s'",
                               values[O_WAIT]);
        a.wait_s = (int)n;
    }
    if (values[O_LIMIT] != NULL) {
        if (!parse_number(values[O_LIMIT], 100, &n) || n == 0)
            return usage_error(err, err_len, "--limit must be 1..100, not '%s'", values[O_LIMIT]);
        a.limit = (unsigned)n;
    }
    const char *times[][2] = {{"--from", values[O_FROM]},
                              {"--discovered", values[O_DISCOVERED]},
                              {"--to", cmd->command == CLI_BREACH_DECLARE ? values[O_TO] : NULL}};
    int64_t *at[] = {&a.since, &a.discovered, &a.until};
    for (size_t t = 0; t < sizeof times / sizeof times[0]; t++)
        if (times[t][1] != NULL && cli_parse_time(times[t][1], at[t]) != 0) {
            snprintf(err, err_len, "%s must be milliseconds or YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                     times[t][0], times[t][1]);
            return STATUS_BAD_REQUEST;
        }
    if (values[O_SINCE] != NULL && cli_parse_time(values[O_SINCE], &a.since) != 0)
        return usage_error(err, err_len,
                           "--since must be milliseconds or YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                           values[O_SINCE]);
    if (values[O_UNTIL] != NULL && cli_parse_time(values[O_UNTIL], &a.until) != 0)
        return usage_error(err, err_len,
                           "--until must be milliseconds or YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                           values[O_UNTIL]);
    a.actor = values[O_ACTOR];
    a.patient = values[O_PATIENT];
    a.to = values[O_TO];
    a.conversation = values[O_CONVERSATION] != NULL ? values[O_CONVERSATION] : values[O_CHANNEL];
    a.member = values[O_MEMBER];
    a.message = values[O_MESSAGE];
    a.urgent = seen[O_URGENT];
    a.reason = values[O_REASON];
    a.mark = seen[O_MARK];
    a.stay_signed_in = seen[O_STAY_SIGNED_IN];
    a.label = values[O_LABEL];
    a.forget_device = seen[O_FORGET_DEVICE];
    a.text = values[O_TEXT];
    a.text_file = values[O_TEXT_FILE];
    a.file = values[O_FILE];
    a.media_type = values[O_TYPE];
    a.out = values[O_OUT];
    a.file_id = values[O_FILE_ID];
    a.client_id = values[O_CLIENT_ID];
    a.command = cmd->command;
    a.server = values[O_SERVER];
    a.profile = values[O_PROFILE];
    a.ca_file = values[O_CA_FILE];
    a.json = seen[O_JSON];
    a.email = values[O_EMAIL];
    a.password_file = values[O_PASSWORD_FILE];
    a.new_password_file = values[O_NEW_PASSWORD_FILE];
    a.code_file = values[O_CODE_FILE];
    a.recovery_file = values[O_RECOVERY_FILE];
    a.incident = values[O_INCIDENT];
    a.accounts = values[O_ACCOUNTS];
    a.description = values[O_DESCRIPTION];
    a.description_file = values[O_DESCRIPTION_FILE];
    a.invite = values[O_INVITE];
    a.role = values[O_ROLE];
    a.code = values[O_CODE];
    a.totp = values[O_TOTP];
    a.totp_file = values[O_TOTP_FILE];
    a.birthdate = values[O_BIRTHDATE];
    a.name = values[O_NAME];
    *out = a;
    return 0;
}

int cli_parse_time(const char *s, int64_t *ms) {
    size_t n = strlen(s);
    if (n > 0 && n <= 15 && strspn(s, "0123456789") == n) {
        int64_t v = 0;
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (s[i] - '0');
        *ms = v;
        return 0;
    }
    int y, mo, d, h, mi, sec, frac = 0, used = 0;
    bool got = false;
    if (n == 20)
        got = sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &sec, &used) == 6 &&
              used == 20;
    else if (n == 24)
        got = sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &y, &mo, &d, &h, &mi, &sec, &frac,
                     &used) == 7 &&
              used == 24;
    if (!got)
        return STATUS_BAD_REQUEST;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
        frac < 0 || h < 0 || mi < 0 || sec < 0)
        return STATUS_BAD_REQUEST;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t < 0)
        return STATUS_BAD_REQUEST;
    *ms = (int64_t)t * 1000 + frac;
    return 0;
}

int cli_parse_defaults(const char *text, struct cli_defaults *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    const char *p = text;
    for (int line = 1; *p != '\0'; line++) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len > 0 && p[0] != '#') {
            const char *sp = memchr(p, ' ', len);
            size_t name_len = sp != NULL ? (size_t)(sp - p) : len;
            char *field = NULL;
            if (name_len == 6 && memcmp(p, "server", 6) == 0)
                field = out->server;
            else if (name_len == 7 && memcmp(p, "ca_file", 7) == 0)
                field = out->ca_file;
            else if (name_len == 7 && memcmp(p, "profile", 7) == 0)
                field = out->profile;
            size_t value_len = sp != NULL ? len - name_len - 1 : 0;
            if (field == NULL) {
                snprintf(err, err_len, "line %d: unknown setting (server, ca_file or profile)",
                         line);
                return -1;
            }
            if (field[0] != '\0' || value_len == 0 || value_len > CLI_DEFAULT_MAX) {
                snprintf(err, err_len, "line %d: %s given twice, empty or too long", line,
                         field == out->server    ? "server"
                         : field == out->ca_file ? "ca_file"
                                                 : "profile");
                return -1;
            }
            memcpy(field, sp + 1, value_len);
            field[value_len] = '\0';
        }
        p = end != NULL ? end + 1 : p + strlen(p);
    }
    return 0;
}

const char *cli_usage(void) {
    return "usage: carechat [--server URL] [--profile DIR] [--ca-file FILE] [--json] COMMAND "
           "[OPTIONS]\n"
           "\n"
           "global options:\n"
           "  --server URL     wss://HOST[:PORT], or ws:// on loopback; else $CARECHAT_SERVER,\n"
           "                   else the configuration file's, else the one the profile\n"
           "                   remembers from login, else " CARECHAT_DEFAULT_URL "\n"
           "  --profile DIR    this device's keys and session; else $CARECHAT_PROFILE, else\n"
           "                   the configuration file's, else ~/.carechat (made 0700 with\n"
           "                   its missing parents)\n"
           "  --ca-file FILE   PEM file of CAs trusted for wss://; else $CARECHAT_CA_FILE,\n"
           "                   else the configuration file's, else the one remembered with\n"
           "                   the server, else the system store\n"
           "  --json           print results as one JSON object per line\n"
           "  --version        print the version and exit\n"
           "configuration file: $CARECHAT_CONFIG, else $XDG_CONFIG_HOME/carechat/config,\n"
           "  else ~/.config/carechat/config: lines \"server URL\", \"ca_file FILE\",\n"
           "  \"profile DIR\"; '#' starts a comment line\n"
           "\n"
           "commands:\n"
           "  login --email E --password-file F [--stay-signed-in]\n"
           "        [--totp CODE | --totp-file F]\n"
           "      log in (as a new device on a fresh profile) and publish the device list;\n"
           "      --stay-signed-in: the session outlives the server's idle expiry (15\n"
           "      minutes without use by default) until its absolute expiry, resumed with\n"
           "      this device's key instead of the password (for a profile only its user\n"
           "      reaches);\n"
           "      --totp: the 6-digit code of your authenticator app, or an unused recovery\n"
           "      code, for an account with two-factor sign-in (each code works once);\n"
           "      --totp-file F: the same read from F, kept out of the process list\n"
           "  invite --email E --role patient|provider|admin|sysadmin\n"
           "      create an invitation and print its code\n"
           "  invite list\n"
           "      the pending invitations you may see (yours; everyone's for admins): id,\n"
           "      email, role, expiry\n"
           "  invite revoke --invite ID\n"
           "      end a pending invitation (ID: 64 hex digits from invite list)\n"
           "      create an invitation; the server mails the code to E (a server\n"
           "      without mail, run with --dev-invite-codes, answers it: then it is printed)\n"
           "  register --code C --email E --password-file F --birthdate YYYY-MM-DD --name N\n"
           "      create an account from an invitation, with this profile as its device\n"
           "  devices\n"
           "      list the devices of your account\n"
           "  devices remove --id DEVICE\n"
           "      remove another device of your account (a lost phone): the signed device\n"
           "      list without it is published first, then its sessions end\n"
           "  devices rename --id DEVICE --label L\n"
           "      give a device of your account a new label (1..64 bytes)\n"
           "  logout [--forget-device]\n"
           "      end this device's session; --forget-device also removes this device from\n"
           "      the account (freeing its slot of 6) and wipes its keys from the profile\n"
           "  password change --password-file CURRENT --new-password-file NEW\n"
           "      replace the account's password; every other session of the account ends,\n"
           "      this one goes on\n"
           "  password reset-request --email E\n"
           "      ask for a password reset code, which the server emails to E if E has an\n"
           "      account (the answer is the same either way); no session needed\n"
           "  password reset --email E --code-file F --new-password-file NEW\n"
           "      set a new password with the emailed code (in file F; it works once, for 15\n"
           "      minutes, and dies after 5 wrong tries); every session of the account ends,\n"
           "      this profile's too: log in again\n"
           "  send (--to EMAIL | --conversation ID | --channel ID) [--text TEXT | --text-file "
           "PATH]\n"
           "       [--file PATH [--type MEDIA-TYPE]] [--client-id ID] [--urgent]\n"
           "      encrypt TEXT (--text - and --text-file: read it from standard input or PATH,\n"
           "      at most 65456 bytes) for every device of every active member and send it (--to\n"
           "      opens the direct conversation with EMAIL); a retry with the same --client-id\n"
           "      (32 hex digits) stores the message once; --urgent asks every recipient to\n"
           "      acknowledge; prints conversation, seq, message and client ids; TEXT that\n"
           "      is not valid UTF-8 is refused before anything is sent (exit 1)\n"
           "      --file: encrypt the file on this device, upload it (resuming an\n"
           "      interrupted upload of the same file, whose state is in the profile) and\n"
           "      send it as an attachment; a progress bar on a terminal (not with --json)\n"
           "  download --conversation ID (--seq N | --file-id ID) [--out PATH]\n"
           "      fetch the attachment(s) of message N (or the file ID) of the\n"
           "      conversation, verify and decrypt them to PATH (default: the file's name\n"
           "      in the current directory); an interrupted download resumes from\n"
           "      PATH.part; exit 6 when the file does not verify (nothing is written)\n"
           "  recv [--wait SECONDS]\n"
           "      print and acknowledge what arrived for this device, then wait SECONDS\n"
           "      (default 0) after the server's queue is empty; JSON fields: conversation,\n"
           "      seq, message_id, sender, sender_device, sent_at, urgent, state (ok,\n"
           "      recalled, removed, no_key, invalid, malformed, unsupported, replayed),\n"
           "      text; removed_by (the account whose signature removed it, or null)\n"
           "      with removed; reply_to and\n"
           "      attachments (file_id, file_name, media_type, size) when there are; and\n"
           "      text_error \"invalid_utf8\" when a text was not UTF-8 (each ill-formed\n"
           "      byte is then shown as U+FFFD)\n"
           "  history --conversation ID [--limit N]\n"
           "      the newest N (1..100, default 50) messages, decrypted, oldest first\n"
           "  conversations\n"
           "      your conversations, most recently active first\n"
           "  channel create --patient EMAIL --name NAME\n"
           "      (providers, admins) a care-team channel about the patient; prints its id\n"
           "  channel add|remove|approve --channel ID --member EMAIL|ACCOUNT_ID\n"
           "      staff add and remove members; a non-staff member is pending until the\n"
           "      channel's patient approves\n"
           "  channel leave --channel ID\n"
           "      leave the channel\n"
           "  channel list\n"
           "      your care-team channels\n"
           "  channel members --channel ID\n"
           "      every member with role and state (active, pending, left, removed)\n"
           "  recall (--conversation ID | --channel ID) --message ID\n"
           "      (the sender, admins) delete a message's ciphertext on the server\n"
           "  urgent ack|status (--conversation ID | --channel ID) --message ID\n"
           "      acknowledge an urgent message; or (its sender, admins) who has and who\n"
           "      has not acknowledged it\n"
           "  notify settings [--email-notices on|off] [--push-notices on|off]\n"
           "       [--quiet HH:MM-HH:MM|off] [--utc-offset +HH:MM]\n"
           "      show (and change) your account's notification settings; in quiet hours\n"
           "      new-message notices wait until they end, in your time zone (--utc-offset);\n"
           "      JSON fields: email, push, quiet_from, quiet_until (minutes), utc_offset\n"
           "  push register (--apns HEX [--sandbox] | --fcm TOKEN |\n"
           "                 --webpush URL --p256dh B64URL --auth B64URL)\n"
           "      register this device for push notices (for testing a server's setup);\n"
           "      prints the registration id\n"
           "  push unregister --id ID\n"
           "      remove a push registration of your account\n"
           "  account deactivate --email EMAIL\n"
           "      (providers: their own patients; admins: patients and providers; system\n"
           "      administrators: anyone else) end the account's sessions and start its\n"
           "      retention: review for 30 days, then restricted for a year, then purged;\n"
           "      JSON fields: account, state, deactivated_at, restricted_at, purge_at,\n"
           "      legal_hold, legal_hold_since (times in ms since the epoch, 0 for none)\n"
           "  account list [--role patient|provider|admin|sysadmin] [--limit N]\n"
           "      (admins, system administrators) every account (of one role), N (1..100,\n"
           "      default 50) per request to the server, all pages: id, role, retention\n"
           "      state and dates, name, email; JSON fields as account state, then role,\n"
           "      display_name, email, active, created_at; purged accounts are not listed\n"
           "  account state --email EMAIL\n"
           "      (admins, system administrators) where the account stands: active, review\n"
           "      (readable by its care team and admins), restricted (system administrators\n"
           "      only) or purged, with the dates and any legal hold; JSON as deactivate\n"
           "  account reactivate --email EMAIL\n"
           "      (admins: accounts in review; system administrators: in review or\n"
           "      restricted) back to active: the person may log in again\n"
           "  account hold --email EMAIL --reason TEXT\n"
           "      (system administrators) a legal hold: the retention clock stops, nothing\n"
           "      is restricted or purged until it is released; TEXT (1..256 bytes) is kept\n"
           "      with the account and shown nowhere, not even in the audit log\n"
           "  account release --email EMAIL\n"
           "      (system administrators) end the legal hold: the clock runs again, its\n"
           "      dates moved on by the time held\n"
           "  account unlock --email EMAIL\n"
           "      (admins, system administrators) forget the account's failed sign-ins, so\n"
           "      that its owner can log in at once instead of waiting out the backoff\n"
           "  breach declare (--accounts EMAIL[,EMAIL...] | --from T [--to T] [--actor EMAIL])\n"
           "       [--incident ID] [--discovered T] [--description TEXT | --description-file "
           "PATH]\n"
           "      (system administrators) declare a data breach: every affected person (given,\n"
           "      or whose data --actor, or anyone, accessed in [--from, --to)) gets a notice by\n"
           "      email; prints the incident id, the notices queued and the deadline (7\n"
           "      business days after --discovered, default now). The description is for the\n"
           "      operators only and sensitive: prefer --description-file (a command line is\n"
           "      visible to other local users); a repeat with the same --incident adds only\n"
           "      people not yet notified\n"
           "  breach status --incident ID\n"
           "      every notice of the incident (account id, pending/sent/failed, times), the\n"
           "      totals, the overdue count and the time left\n"
           "  audit query [--since T] [--until T] [--actor EMAIL] [--patient EMAIL]\n"
           "      (administrators) audit records matching every filter, oldest first, one\n"
           "      per line: time, action, outcome, the actor's and patient's names (their\n"
           "      ids once purged), object, address; with --json the ids and the hash\n"
           "      chain too; T is milliseconds or YYYY-MM-DDTHH:MM:SS[.mmm]Z\n"
           "  audit verify\n"
           "      (administrators) walk the audit hash chain; exit 7 naming the first bad\n"
           "      index when it is broken\n"
           "  approve --code CODE\n"
           "      list the new device of your account that shows CODE (login prints it on\n"
           "      the new device, which receives nothing until approved)\n"
           "  trust --email EMAIL\n"
           "      confirm the changed identity (device list) of EMAIL after comparing\n"
           "      safety numbers; sending to EMAIL stops until then (exit 8)\n"
           "  verify --email EMAIL [--mark]\n"
           "      print the safety number of you and EMAIL (both sides see the same\n"
           "      digits); --mark records that you compared it (cleared by a key change)\n"
           "  device-list reset --email EMAIL\n"
           "      (administrators) recovery of an account without a device left: its next\n"
           "      device list may be signed by any of its devices; audited; every peer sees\n"
           "      a changed identity\n"
           "  2fa enable\n"
           "      start two-factor sign-in (TOTP): prints a secret and its otpauth:// URI\n"
           "      for an authenticator app (shown once); nothing changes until confirmed\n"
           "  2fa confirm --code CODE\n"
           "      activate it with the app's current 6-digit code; prints 10 single-use\n"
           "      recovery codes (shown once: keep them offline)\n"
           "  2fa disable --password-file F --code CODE\n"
           "      turn it off, with the password and a current code or a recovery code\n"
           "  On a server run with --require-2fa staff, staff without two-factor sign-in\n"
           "  get a session that can only run 2fa enable and 2fa confirm (and logout).\n"
           "  keys backup enable\n"
           "      keep the keys of your messages in an end-to-end encrypted backup on the\n"
           "      server, so a new device (a new phone, even with the old one lost) can read\n"
           "      your earlier messages: prints a recovery key (shown once: write it down;\n"
           "      the server never sees it). From then on recv, history and send keep the\n"
           "      backup current by themselves\n"
           "  keys backup status\n"
           "      whether this device keeps the backup, its keys waiting to be backed up,\n"
           "      and the backup's segments on the server\n"
           "  keys backup sync\n"
           "      back up now what this device read or sent since the last backup\n"
           "  keys backup disable\n"
           "      turn the backup off: the server deletes it; every device stops keeping it\n"
           "  keys restore --recovery-file F\n"
           "      on a new device: read the backup with the recovery key in F (one line)\n"
           "      and show earlier messages in history; this device then keeps the backup\n"
           "\n"
           "Passwords and recovery keys are read only from files (one line; never from\n"
           "the command line).\n"
           "\n"
           "exit codes:\n"
           "  0  success\n"
           "  1  usage: bad arguments (send: TEXT not UTF-8), unreadable password file\n"
           "  2  the server refused the request (wrong password, not allowed, no such\n"
           "     account, already done, ...)\n"
           "  3  connection: cannot connect, connection lost, no answer in time\n"
           "  4  session: not logged in, or the session expired or ended (run carechat login)\n"
           "  5  profile: the profile directory is unusable (permissions, corrupt, unwritable)\n"
           "  6  protocol: a malformed answer, or signed data that does not verify\n"
           "  7  audit verify: the audit chain is broken\n"
           "  8  trust: an account's identity changed (run carechat verify, then trust)\n";
}

int cli_read_text(const char *path, size_t max, struct buf *out, char *err, size_t err_len) {
    bool stdin_ = strcmp(path, "-") == 0;
    FILE *f = stdin_ ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return STATUS_IO;
    }
    char block[4096];
    int rc = STATUS_OK;
    for (size_t n; rc == 0 && (n = fread(block, 1, sizeof block, f)) > 0;) {
        if (out->len + n > max) {
            snprintf(err, err_len, "the text in %s is over %zu bytes", stdin_ ? "stdin" : path,
                     max);
            rc = STATUS_TOO_LARGE;
        } else
            buf_append(out, block, n);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, err_len, "cannot read %s", stdin_ ? "stdin" : path);
        rc = STATUS_IO;
    }
    if (!stdin_)
        fclose(f);
    if (rc == 0 && (!utf8_valid(out->data, out->len) || memchr(out->data, 0, out->len))) {
        snprintf(err, err_len, "the text in %s is not valid UTF-8 text: nothing was sent",
                 stdin_ ? "stdin" : path);
        rc = STATUS_BAD_REQUEST;
    }
    return rc;
}

int cli_read_password(const char *path, struct buf *out, char *err, size_t err_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "cannot read password file %s: %s", path, strerror(errno));
        return errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO;
    }
    /* One byte more than allowed plus a "\r\n", to tell "too long" apart. */
    unsigned char pw[CLI_MAX_PASSWORD + 3];
    size_t len = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, pw + len, sizeof pw - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, err_len, "cannot read password file %s: %s", path, strerror(errno));
            rc = STATUS_IO;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof pw) {
            char extra;
            n = read(fd, &extra, 1);
            if (n != 0) {
                snprintf(err, err_len, "password in %s is longer than %d bytes", path,
                         CLI_MAX_PASSWORD);
                rc = STATUS_TOO_LARGE;
            }
            break;
        }
    }
    close(fd);
    if (rc == 0 && len > 0 && pw[len - 1] == '\n')
        len--;
    if (rc == 0 && len > 0 && pw[len - 1] == '\r')
        len--;
    if (rc == 0 && len > CLI_MAX_PASSWORD) {
        snprintf(err, err_len, "password in %s is longer than %d bytes", path, CLI_MAX_PASSWORD);
        rc = STATUS_TOO_LARGE;
    }
    if (rc == 0 && len == 0) {
        snprintf(err, err_len, "password file %s is empty", path);
        rc = STATUS_BAD_REQUEST;
    }
    if (rc == 0 && (memchr(pw, '\0', len) != NULL || memchr(pw, '\n', len) != NULL)) {
        snprintf(err, err_len, "password file %s must hold one line of text", path);
        rc = STATUS_BAD_REQUEST;
    }
    if (rc == 0)
        buf_append(out, pw, len);
    sodium_memzero(pw, sizeof pw);
    return rc;
}

/* ---- JSON ---- */

/* jansson's blocks carry their size in front, so that they can be wiped when
 * freed. */
union wipe_hdr {
    size_t size;
    max_align_t align;
};

static void *wipe_malloc(size_t size) {
    union wipe_hdr *h = malloc(sizeof *h + size);
    if (h == NULL)
        return NULL;
    h->size = size;
    return h + 1;
}

static void wipe_free(void *p) {
    if (p == NULL)
        return;
    union wipe_hdr *h = (union wipe_hdr *)p - 1;
    sodium_memzero(p, h->size);
    free(h);
}

void cli_json_init(void) {
    json_set_alloc_funcs(wipe_malloc, wipe_free);
}

json_t *cli_json_text(const char *s, size_t len, bool *replaced) {
    const uint8_t *p = (const uint8_t *)s;
    if (replaced != NULL)
        *replaced = false;
    if (utf8_valid(p, len)) {
        json_t *j = json_stringn(s, len);
        CHECK(j != NULL);
        return j;
    }
    static const char fffd[] = "\xef\xbf\xbd"; /* U+FFFD REPLACEMENT CHARACTER */
    struct buf clean;
    buf_init(&clean);
    for (size_t i = 0; i < len;) {
        size_t k = utf8_char_len(p + i, len - i);
        if (k == 0) {
            buf_append(&clean, fffd, 3);
            i++;
        } else {
            buf_append(&clean, p + i, k);
            i += k;
        }
    }
    json_t *j = json_stringn((const char *)clean.data, clean.len);
    CHECK(j != NULL);
    buf_wipe(&clean);
    buf_cleanup(&clean);
    if (replaced != NULL)
        *replaced = true;
    return j;
}

json_t *cli_json_str(const char *s) {
    return cli_json_text(s, strlen(s), NULL);
}

json_t *cli_json_u64(uint64_t v) {
    return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

void cli_json_print(FILE *out, json_t *obj) {
    CHECK(obj != NULL);
    CHECK(json_dumpf(obj, out, CLI_JSON_FLAGS) == 0);
    fputc('\n', out);
    json_decref(obj);
}

void cli_iso_time(int64_t ms, char out[CLI_ISO_TIME_MAX]) {
    /* Whole seconds, rounded down also before 1970. */
    time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL ||
        strftime(out, CLI_ISO_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, CLI_ISO_TIME_MAX, "%" PRId64 " ms", ms);
}

void cli_retention_text(const struct carechat_retention *r, struct buf *out) {
    char deactivated[CLI_ISO_TIME_MAX], restricted[CLI_ISO_TIME_MAX], purge[CLI_ISO_TIME_MAX];
    cli_iso_time(r->deactivated_at, deactivated);
    cli_iso_time(r->restricted_at, restricted);
    cli_iso_time(r->purge_at, purge);
    switch (r->state) {
    case CARECHAT_RETENTION_REVIEW:
        buf_printf(out, "review (deactivated %s), review until %s, restricted until %s",
                   deactivated, restricted, purge);
        break;
    case CARECHAT_RETENTION_RESTRICTED:
        buf_printf(out, "restricted (deactivated %s), restricted until %s", deactivated, purge);
        break;
    case CARECHAT_RETENTION_PURGED:
        buf_printf(out, "purged (deactivated %s, purged %s)", deactivated, purge);
        break;
    default:
        buf_printf(out, "%s", carechat_retention_state_name(r->state));
        break;
    }
    if (r->legal_hold) {
        char since[CLI_ISO_TIME_MAX];
        cli_iso_time(r->legal_hold_since, since);
        buf_printf(out, ", legal hold since %s", since);
    }
}

json_t *cli_retention_json(const struct carechat_retention *r) {
    char account[ID_HEX_LEN + 1];
    id_to_hex(&r->account_id, account);
    json_t *j = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:b, s:I}", "account", account, "state",
        carechat_retention_state_name(r->state), "deactivated_at", (json_int_t)r->deactivated_at,
        "restricted_at", (json_int_t)r->restricted_at, "purge_at", (json_int_t)r->purge_at,
        "legal_hold", r->legal_hold, "legal_hold_since", (json_int_t)r->legal_hold_since);
    CHECK(j != NULL);
    return j;
}

json_t *cli_account_json(const struct carechat_account_summary *s) {
    json_t *j = cli_retention_json(&s->retention);
    CHECK(json_object_set_new(j, "role", json_string(carechat_role_name(s->account.role))) == 0);
    CHECK(json_object_set_new(j, "display_name", cli_json_str(s->account.display_name)) == 0);
    CHECK(json_object_set_new(j, "email", cli_json_str(s->account.email)) == 0);
    CHECK(json_object_set_new(j, "active", json_boolean(s->account.active)) == 0);
    CHECK(json_object_set_new(j, "created_at", json_integer((json_int_t)s->created_at)) == 0);
    return j;
}

const char *cli_message_state_name(enum carechat_message_state state) {
    switch (state) {
    case CARECHAT_MESSAGE_OK:
        return "ok";
    case CARECHAT_MESSAGE_RECALLED:
        return "recalled";
    case CARECHAT_MESSAGE_NO_KEY:
        return "no_key";
    case CARECHAT_MESSAGE_INVALID:
        return "invalid";
    case CARECHAT_MESSAGE_MALFORMED:
        return "malformed";
    case CARECHAT_MESSAGE_UNSUPPORTED:
        return "unsupported";
    case CARECHAT_MESSAGE_REPLAYED:
        return "replayed";
    case CARECHAT_MESSAGE_REMOVED:
        return "removed";
    }
    return "invalid";
}

json_t *cli_message_json(const struct carechat_message *m) {
    char conv[ID_HEX_LEN + 1], mid[ID_HEX_LEN + 1], sender[ID_HEX_LEN + 1], device[ID_HEX_LEN + 1];
    id_to_hex(&m->conversation_id, conv);
    id_to_hex(&m->message_id, mid);
    id_to_hex(&m->sender_account_id, sender);
    id_to_hex(&m->sender_device_id, device);
    const bool ok = m->state == CARECHAT_MESSAGE_OK && m->text != NULL;
    bool replaced = false;
    json_t *text = cli_json_text(ok ? m->text : "", ok ? m->text_len : 0, &replaced);
    json_t *j = json_pack("{s:s, s:o, s:s, s:s, s:s, s:I, s:b, s:s, s:o}", "conversation", conv,
                          "seq", cli_json_u64(m->seq), "message_id", mid, "sender", sender,
                          "sender_device", device, "sent_at", (json_int_t)m->sent_at, "urgent",
                          m->urgent, "state", cli_message_state_name(m->state), "text", text);
    CHECK(j != NULL);
    if (replaced)
        CHECK(json_object_set_new(j, "text_error", json_string("invalid_utf8")) == 0);
    if (m->state == CARECHAT_MESSAGE_REMOVED) {
        /* who removed it, only when its signature says so */
        char by[ID_HEX_LEN + 1];
        id_to_hex(&m->removed_by, by);
        CHECK(json_object_set_new(j, "removed_by",
                                  m->removed_by_verified ? json_string(by) : json_null()) == 0);
    }
    if (m->has_reply_to) {
        char reply[ID_HEX_LEN + 1];
        id_to_hex(&m->reply_to, reply);
        CHECK(json_object_set_new(j, "reply_to", json_string(reply)) == 0);
    }
    if (m->n_attachments == 0)
        return j;
    /* What a user may see of a file; never its key. */
    json_t *atts = json_array();
    for (size_t i = 0; i < m->n_attachments; i++) {
        const struct carechat_attachment *a = &m->attachments[i];
        char file_id[ID_HEX_LEN + 1];
        id_to_hex(&a->file.file_id, file_id);
        CHECK(json_array_append_new(atts, json_pack("{s:s, s:o, s:o, s:o}", "file_id", file_id,
                                                    "file_name", cli_json_str(a->file_name),
                                                    "media_type", cli_json_str(a->media_type),
                                                    "size", cli_json_u64(a->file.size))) == 0);
    }
    CHECK(json_object_set_new(j, "attachments", atts) == 0);
    return j;
}
