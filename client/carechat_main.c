/*
 * client/carechat_main.c: the `carechat` command-line tool over libcarechat.
 *
 * One command per run: parse (client/cli.h), open the profile, do the call,
 * print the result (text, or one JSON object per line with --json) on stdout
 * and any failure as one line on stderr, exit with the code cli.h names.
 * Passwords are read from files into a buffer that is wiped before exit.
 * Single-threaded.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "base/version.h"
#include "client/carechat.h"
#include "client/cli.h"
#include "base/hex.h"

#include <sodium.h>

static int exit_for_kind(enum carechat_error_kind kind) {
    switch (kind) {
    case CARECHAT_ERROR_NONE:
        return CLI_EXIT_OK;
    case CARECHAT_ERROR_ARGUMENT:
        return CLI_EXIT_USAGE;
    case CARECHAT_ERROR_SERVER:
        return CLI_EXIT_REFUSED;
    case CARECHAT_ERROR_CONNECTION:
        return CLI_EXIT_CONNECTION;
    case CARECHAT_ERROR_SESSION:
        return CLI_EXIT_SESSION;
    case CARECHAT_ERROR_PROFILE:
        return CLI_EXIT_PROFILE;
    case CARECHAT_ERROR_PROTOCOL:
        return CLI_EXIT_PROTOCOL;
    case CARECHAT_ERROR_TRUST:
        return CLI_EXIT_TRUST;
    }
    return CLI_EXIT_PROTOCOL;
}

static const char *command_name(enum cli_command cmd) {
    switch (cmd) {
    case CLI_LOGIN:
        return "login";
    case CLI_INVITE:
        return "invite";
    case CLI_REGISTER:
        return "register";
    case CLI_DEVICES:
        return "devices";
    case CLI_DEVICES_REMOVE:
        return "devices remove";
    case CLI_DEVICES_RENAME:
        return "devices rename";
    case CLI_LOGOUT:
        return "logout";
    case CLI_SEND:
        return "send";
    case CLI_RECV:
        return "recv";
    case CLI_HISTORY:
        return "history";
    case CLI_CONVERSATIONS:
        return "conversations";
    case CLI_AUDIT_QUERY:
        return "audit query";
    case CLI_AUDIT_VERIFY:
        return "audit verify";
    case CLI_CHANNEL_CREATE:
        return "channel create";
    case CLI_CHANNEL_ADD:
        return "channel add";
    case CLI_CHANNEL_REMOVE:
        return "channel remove";
    case CLI_CHANNEL_APPROVE:
        return "channel approve";
    case CLI_CHANNEL_LEAVE:
        return "channel leave";
    case CLI_CHANNEL_LIST:
        return "channel list";
    case CLI_CHANNEL_MEMBERS:
        return "channel members";
    case CLI_RECALL:
        return "recall";
    case CLI_URGENT_ACK:
        return "urgent ack";
    case CLI_URGENT_STATUS:
        return "urgent status";
    case CLI_ACCOUNT_DEACTIVATE:
        return "account deactivate";
    case CLI_ACCOUNT_LIST:
        return "account list";
    case CLI_ACCOUNT_STATE:
        return "account state";
    case CLI_ACCOUNT_REACTIVATE:
        return "account reactivate";
    case CLI_ACCOUNT_HOLD:
        return "account hold";
    case CLI_ACCOUNT_RELEASE:
        return "account release";
    case CLI_ACCOUNT_UNLOCK:
        return "account unlock";
    case CLI_PASSWORD_CHANGE:
        return "password change";
    case CLI_PASSWORD_RESET_REQUEST:
        return "password reset-request";
    case CLI_PASSWORD_RESET:
        return "password reset";
    case CLI_INVITE_LIST:
        return "invite list";
    case CLI_INVITE_REVOKE:
        return "invite revoke";
    case CLI_NOTIFY_SETTINGS:
        return "notify settings";
    case CLI_PUSH_REGISTER:
        return "push register";
    case CLI_PUSH_UNREGISTER:
        return "push unregister";
    case CLI_DOWNLOAD:
        return "download";
    case CLI_BREACH_DECLARE:
        return "breach declare";
    case CLI_BREACH_STATUS:
        return "breach status";
    case CLI_APPROVE:
        return "approve";
    case CLI_TRUST:
        return "trust";
    case CLI_VERIFY:
        return "verify";
    case CLI_DEVICE_LIST_RESET:
        return "device-list reset";
    case CLI_2FA_ENABLE:
        return "2fa enable";
    case CLI_2FA_CONFIRM:
        return "2fa confirm";
    case CLI_2FA_DISABLE:
        return "2fa disable";
    case CLI_KEYS_BACKUP_ENABLE:
        return "keys backup enable";
    case CLI_KEYS_BACKUP_STATUS:
        return "keys backup status";
    case CLI_KEYS_BACKUP_SYNC:
        return "keys backup sync";
    case CLI_KEYS_BACKUP_DISABLE:
        return "keys backup disable";
    case CLI_KEYS_RESTORE:
        return "keys restore";
    case CLI_NONE:
        break;
    }
    return "carechat";
}

/* Appends text another person chose (a display name, a device label) for a
 * terminal: control characters become '?', so it cannot move the cursor or
 * change colours. */
static void append_printable(struct buf *out, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        buf_append_u8(out, *p < 0x20 || *p == 0x7f ? '?' : *p);
}

static void print_line(struct buf *line) {
    buf_append_u8(line, '\n');
    fwrite(line->data, 1, line->len, stdout);
    buf_reset(line);
}

static void print_session(struct carechat *c, bool json, const char *verb) {
    struct carechat_session_info s;
    if (carechat_session(c, &s) != 0)
        return;
    char account[ID_HEX_LEN + 1], device[ID_HEX_LEN + 1];
    id_to_hex(&s.account_id, account);
    id_to_hex(&s.device_id, device);
    struct buf line;
    buf_init(&line);
    if (json) {
        cli_json_print(stdout, json_pack("{s:s, s:s, s:s, s:o, s:I}", "account_id", account,
                                         "device_id", device, "role", carechat_role_name(s.role),
                                         "display_name", cli_json_str(s.display_name), "expires_at",
                                         (json_int_t)s.expires_at));
    } else {
        buf_printf(&line, "%s as ", verb);
        append_printable(&line, s.display_name);
        buf_printf(&line, " (%s); account %s, device %s", carechat_role_name(s.role), account,
                   device);
        print_line(&line);
    }
    buf_cleanup(&line);
}

/* After a login whose session can only enrol a second factor: says so. */
static void print_must_enrol(struct carechat *c, bool json) {
    struct carechat_session_info s;
    if (carechat_session(c, &s) != 0 || !s.must_enrol_second_factor)
        return;
    if (json)
        cli_json_print(stdout, json_pack("{s:b}", "must_enrol_second_factor", 1));
    else
        printf("this server requires two-factor sign-in for your role: run carechat 2fa enable, "
               "then carechat 2fa confirm\n");
}

static void print_devices(const struct carechat_devices *d, bool json) {
    struct buf line;
    buf_init(&line);
    if (!json) {
        buf_printf(&line, "device list version %" PRIu64 ", %zu device%s", d->list_version, d->n,
                   d->n == 1 ? "" : "s");
        print_line(&line);
    }
    for (size_t i = 0; i < d->n; i++) {
        const struct carechat_device *dev = &d->devices[i];
        char id[ID_HEX_LEN + 1];
        id_to_hex(&dev->device_id, id);
        struct buf fp;
        buf_init(&fp);
        hex_encode(dev->identity_key, sizeof dev->identity_key, &fp);
        if (json) {
            cli_json_print(
                stdout,
                json_pack("{s:s, s:o, s:s, s:I, s:I, s:I, s:b, s:b, s:b, s:o}", "device_id", id,
                          "label", cli_json_str(dev->label), "identity_key", (const char *)fp.data,
                          "encryption_key_id", (json_int_t)dev->encryption_key_id,
                          "encryption_key_expires_at", (json_int_t)dev->encryption_key_expires_at,
                          "created_at", (json_int_t)dev->created_at, "this_device",
                          dev->this_device, "listed", dev->listed, "key_valid", dev->key_valid,
                          "list_version", cli_json_u64(d->list_version)));
        } else {
            buf_printf(&line, "%s  ", id);
            append_printable(&line, dev->label);
            buf_printf(&line, "  identity %.16s...%s%s%s", (const char *)fp.data,
                       dev->this_device ? "  (this device)" : "",
                       dev->listed ? "" : "  NOT IN SIGNED LIST",
                       dev->key_valid ? "" : "  KEY INVALID OR EXPIRED");
            print_line(&line);
        }
        buf_cleanup(&fp);
    }
    buf_cleanup(&line);
}

/* One message: JSON, or "[conversation #seq] sender: text" with the text made
 * printable (someone else wrote it). */
/* The members of the conversations a command printed messages of, fetched
 * once each (at most NAMES_MAX conversations; beyond, ids are printed). */
#define NAMES_MAX 32
struct names {
    struct carechat *c;
    size_t n;
    struct id conv[NAMES_MAX];
    struct carechat_members *members[NAMES_MAX]; /* NULL: could not be fetched */
};

static void names_free(struct names *nm) {
    for (size_t i = 0; i < nm->n; i++)
        carechat_members_free(nm->members[i]);
    nm->n = 0;
}

/* The display name of `account` in `conv`, or NULL when it is not known. */
static const char *name_of(struct names *nm, const struct id *conv, const struct id *account) {
    size_t i = 0;
    while (i < nm->n && !id_equal(&nm->conv[i], conv))
        i++;
    if (i == nm->n) {
        if (nm->n == NAMES_MAX)
            return NULL;
        nm->conv[i] = *conv;
        nm->members[i] = NULL;
        if (carechat_members(nm->c, conv, &nm->members[i]) != 0)
            nm->members[i] = NULL; /* shown by id */
        nm->n++;
    }
    const struct carechat_members *m = nm->members[i];
    for (size_t k = 0; m != NULL && k < m->n; k++)
        if (id_equal(&m->items[k].account_id, account) && m->items[k].display_name[0] != '\0')
            return m->items[k].display_name;
    return NULL;
}

/* One message: its JSON object, or for a person a line with the sender's
 * name (its id when the name is not known) and URGENT when it is. */
static void print_message(const struct carechat_message *m, bool json, struct names *nm) {
    if (json) {
        cli_json_print(stdout, cli_message_json(m));
        return;
    }
    char conv[ID_HEX_LEN + 1], sender[ID_HEX_LEN + 1];
    id_to_hex(&m->conversation_id, conv);
    id_to_hex(&m->sender_account_id, sender);
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "[%s #%" PRIu64 "] %s", conv, m->seq, m->urgent ? "URGENT " : "");
    const char *name = name_of(nm, &m->conversation_id, &m->sender_account_id);
    if (name != NULL)
        append_printable(&line, name);
    else
        buf_append(&line, sender, ID_HEX_LEN);
    buf_append(&line, ": ", 2);
    if (m->state == CARECHAT_MESSAGE_OK) {
        append_printable(&line, m->text);
        for (size_t i = 0; i < m->n_attachments; i++) {
            buf_append(&line, " [file ", 7);
            append_printable(&line, m->attachments[i].file_name);
            buf_printf(&line, ", %" PRIu64 " bytes]", m->attachments[i].file.size);
        }
    } else
        buf_printf(&line, "(%s)", cli_message_state_name(m->state));
    print_line(&line);
    buf_wipe(&line);
    buf_cleanup(&line);
}

static void print_conversation(const struct carechat_conversation *cv, bool json) {
    char id[ID_HEX_LEN + 1];
    id_to_hex(&cv->conversation_id, id);
    const char *kind = cv->kind == CARECHAT_CONVERSATION_DIRECT      ? "direct"
                       : cv->kind == CARECHAT_CONVERSATION_CARE_TEAM ? "care_team"
                                                                     : "unknown";
    if (json) {
        json_t *members = json_array();
        for (size_t i = 0; i < cv->n_members; i++) {
            char acct[ID_HEX_LEN + 1];
            id_to_hex(&cv->members[i].account_id, acct);
            CHECK(json_array_append_new(
                      members, json_pack("{s:s, s:s, s:o}", "account_id", acct, "role",
                                         carechat_role_name(cv->members[i].role), "display_name",
                                         cli_json_str(cv->members[i].display_name))) == 0);
        }
        cli_json_print(stdout, json_pack("{s:s, s:s, s:o, s:o, s:I, s:o}", "conversation", id,
                                         "kind", kind, "name", cli_json_str(cv->name), "last_seq",
                                         cli_json_u64(cv->last_seq), "created_at",
                                         (json_int_t)cv->created_at, "members", members));
        return;
    }
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "%s  %s  ", id, kind);
    if (cv->name[0] != '\0') {
        append_printable(&line, cv->name);
        buf_append(&line, "  ", 2);
    }
    buf_printf(&line, "last seq %" PRIu64 "  with", cv->last_seq);
    for (size_t i = 0; i < cv->n_members; i++) {
        buf_append(&line, i > 0 ? ", " : " ", i > 0 ? 2 : 1);
        append_printable(&line, cv->members[i].display_name);
    }
    print_line(&line);
    buf_cleanup(&line);
}

/* The progress bar of a transfer on a terminal (stderr): bytes, rate and
 * remaining time, redrawn at most ten times a second. */
struct progress {
    const char *verb;
    int64_t started_ms, drawn_ms;
    bool shown;
};

static bool draw_progress(void *ctx, uint64_t done, uint64_t total) {
    struct progress *p = ctx;
    int64_t now = clock_monotonic_ms();
    if (p->started_ms == 0)
        p->started_ms = now;
    if (done < total && now - p->drawn_ms < 100)
        return true;
    p->drawn_ms = now;
    double secs = (double)(now - p->started_ms) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    double left = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\r%s %7.1f / %.1f MiB  %6.1f MiB/s  %3d:%02d left ", p->verb,
            (double)done / 1048576.0, (double)total / 1048576.0, rate / 1048576.0, (int)left / 60,
            (int)left % 60);
    p->shown = true;
    return true;
}

static void end_progress(struct progress *p) {
    if (p->shown)
        fputc('\n', stderr);
}

/* A progress bar only for a person watching: on a terminal, without --json. */
static bool want_progress(const struct cli_args *a) {
    return !a->json && isatty(STDERR_FILENO);
}

/* `text` is what --text gave, or what was read from --text-file or stdin. */
static int run_send(struct carechat *c, const struct cli_args *a, const uint8_t *text,
                    size_t text_len) {
    struct id conv, cmid;
    if (a->to != NULL) {
        struct carechat_conversation cv;
        int rc = carechat_open_direct(c, a->to, &cv);
        if (rc != 0)
            return rc;
        conv = cv.conversation_id;
        carechat_conversation_cleanup(&cv);
    } else {
        CHECK(id_from_hex(a->conversation, &conv) == 0);
    }
    if (a->client_id != NULL)
        CHECK(id_from_hex(a->client_id, &cmid) == 0);
    struct carechat_sent sent;
    struct carechat_attachment att;
    int rc;
    if (a->file != NULL) {
        const char *base = strrchr(a->file, '/');
        struct progress p = {.verb = "uploading"};
        struct carechat_transfer t = {.progress = draw_progress, .ctx = &p};
        rc = carechat_upload_file(c, &conv, a->file, base ? base + 1 : a->file, a->media_type,
                                  want_progress(a) ? &t : NULL, &att);
        end_progress(&p);
        if (rc != 0)
            return rc;
        struct carechat_content content = {
            .text = text ? (const char *)text : "",
            .text_len = text ? text_len : 0,
            .attachments = &att,
            .n_attachments = 1,
        };
        rc = carechat_send_content(c, &conv, &content, a->client_id != NULL ? &cmid : NULL,
                                   a->urgent, &sent);
        sodium_memzero(&att, sizeof att);
    } else {
        rc = (a->urgent ? carechat_send_urgent : carechat_send)(
            c, &conv, text, text_len, a->client_id != NULL ? &cmid : NULL, &sent);
    }
    if (rc != 0)
        return rc;
    char cid[ID_HEX_LEN + 1], mid[ID_HEX_LEN + 1], client[ID_HEX_LEN + 1];
    id_to_hex(&conv, cid);
    id_to_hex(&sent.message_id, mid);
    id_to_hex(&sent.client_msg_id, client);
    if (a->json) {
        cli_json_print(stdout, json_pack("{s:s, s:o, s:s, s:s, s:I, s:i}", "conversation", cid,
                                         "seq", cli_json_u64(sent.seq), "message_id", mid,
                                         "client_id", client, "sent_at", (json_int_t)sent.sent_at,
                                         "device_conflicts", sent.device_conflicts));
        return 0;
    }
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "sent: conversation %s seq %" PRIu64 " message %s client id %s", cid,
               sent.seq, mid, client);
    print_line(&line);
    buf_cleanup(&line);
    return 0;
}

/* A file name from a message, safe to create in the current directory:
 * its last path component, control characters replaced; "" when unusable. */
static void safe_name(const char *name, char out[CARECHAT_MAX_FILE_NAME + 1]) {
    const char *base = strrchr(name, '/');
    snprintf(out, CARECHAT_MAX_FILE_NAME + 1, "%s", base ? base + 1 : name);
    for (char *q = out; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f || *q == '\\')
            *q = '_';
    if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
        out[0] = '\0';
}

/* Downloads the attachments of message --seq (or the one with --file-id
 * among the conversation's newest 100 messages) of --conversation. */
static int run_download(struct carechat *c, const struct cli_args *a) {
    struct id conv, want;
    CHECK(id_from_hex(a->conversation, &conv) == 0);
    if (a->file_id)
        CHECK(id_from_hex(a->file_id, &want) == 0);
    struct carechat_messages *list = NULL;
    int rc = carechat_history(c, &conv, a->seq ? a->seq + 1 : 0, a->seq ? 1 : 100, &list);
    if (rc != 0)
        return rc;
    size_t done = 0, matching = 0;
    for (size_t i = 0; i < list->n; i++) {
        const struct carechat_message *m = &list->items[i];
        if (a->seq && m->seq != a->seq)
            continue;
        for (size_t j = 0; j < m->n_attachments; j++)
            if (!a->file_id || id_equal(&m->attachments[j].file.file_id, &want))
                matching++;
    }
    if (matching == 0) {
        carechat_messages_free(list);
        fprintf(stderr, "carechat: no such file in that message or conversation\n");
        return STATUS_NOT_FOUND;
    }
    if (matching > 1 && a->out) {
        carechat_messages_free(list);
        fprintf(stderr, "carechat: the message has %zu files: --out names one\n", matching);
        return STATUS_BAD_REQUEST;
    }
    for (size_t i = 0; rc == 0 && i < list->n; i++) {
        const struct carechat_message *m = &list->items[i];
        if (a->seq && m->seq != a->seq)
            continue;
        for (size_t j = 0; rc == 0 && j < m->n_attachments; j++) {
            const struct carechat_attachment *at = &m->attachments[j];
            if (a->file_id && !id_equal(&at->file.file_id, &want))
                continue;
            char name[CARECHAT_MAX_FILE_NAME + 1];
            safe_name(at->file_name, name);
            char fid[ID_HEX_LEN + 1];
            id_to_hex(&at->file.file_id, fid);
            const char *path = a->out ? a->out : name[0] ? name : fid;
            struct progress p = {.verb = "downloading"};
            struct carechat_transfer t = {.progress = draw_progress, .ctx = &p};
            rc = carechat_download_file(c, at, path, want_progress(a) ? &t : NULL);
            end_progress(&p);
            if (rc != 0)
                break;
            done++;
            if (a->json) {
                cli_json_print(stdout,
                               json_pack("{s:s, s:s, s:o, s:s, s:s}", "file_id", fid, "path", path,
                                         "size", cli_json_u64(at->file.size), "name", at->file_name,
                                         "media_type", at->media_type));
            } else {
                struct buf line;
                buf_init(&line);
                buf_printf(&line, "downloaded: %" PRIu64 " bytes to ", at->file.size);
                append_printable(&line, path);
                print_line(&line);
                buf_cleanup(&line);
            }
        }
    }
    carechat_messages_free(list);
    return rc;
}

/* Prints what arrives until the queue is empty and the wait has passed,
 * acknowledging what was printed (every 64 messages and at the end). */
static int run_recv(struct carechat *c, const struct cli_args *a) {
    int rc = 0;
    size_t unacked = 0;
    struct names nm = {.c = c};
    for (;;) {
        struct carechat_message m;
        rc = carechat_recv(c, a->wait_s * 1000, &m);
        if (rc != 0)
            break;
        print_message(&m, a->json, &nm);
        carechat_message_cleanup(&m);
        fflush(stdout);
        if (++unacked == 64) {
            rc = carechat_ack(c);
            if (rc != 0)
                break;
            unacked = 0;
        }
    }
    names_free(&nm);
    if (rc != STATUS_NOT_FOUND)
        return rc;
    return carechat_ack(c);
}

static int run_history(struct carechat *c, const struct cli_args *a) {
    struct id conv;
    CHECK(id_from_hex(a->conversation, &conv) == 0);
    struct carechat_messages *list = NULL;
    int rc = carechat_history(c, &conv, 0, a->limit, &list);
    if (rc != 0)
        return rc;
    struct names nm = {.c = c};
    for (size_t i = 0; i < list->n; i++)
        print_message(&list->items[i], a->json, &nm);
    names_free(&nm);
    carechat_messages_free(list);
    return 0;
}

static int run_conversations(struct carechat *c, const struct cli_args *a) {
    struct carechat_conversations *list = NULL;
    int rc = carechat_conversations(c, &list);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < list->n; i++)
        print_conversation(&list->items[i], a->json);
    carechat_conversations_free(list);
    return 0;
}

/* ---- channels, recall, urgent ---- */

static const char *member_state_name(int state) {
    switch (state) {
    case 1:
        return "active";
    case 2:
        return "pending";
    case 3:
        return "left";
    case 4:
        return "removed";
    default:
        return "unknown";
    }
}

/* --member: 32 hex digits name an account; anything else is an email. */
static int member_account(struct carechat *c, const char *member, struct id *out) {
    if (id_from_hex(member, out) == 0)
        return 0;
    struct carechat_account acc;
    int rc = carechat_lookup(c, member, &acc);
    if (rc == 0)
        *out = acc.account_id;
    return rc;
}

static int run_channel_create(struct carechat *c, const struct cli_args *a) {
    struct carechat_conversation cv;
    int rc = carechat_channel_create(c, a->patient, a->name, &cv);
    if (rc != 0)
        return rc;
    char id[ID_HEX_LEN + 1];
    id_to_hex(&cv.conversation_id, id);
    carechat_conversation_cleanup(&cv);
    if (a->json)
        cli_json_print(stdout, json_pack("{s:s}", "channel", id));
    else
        printf("%s\n", id);
    return 0;
}

static int run_channel_member(struct carechat *c, const struct cli_args *a) {
    struct id channel, account;
    CHECK(id_from_hex(a->conversation, &channel) == 0);
    int rc = 0;
    const char *done = "left";
    if (a->command != CLI_CHANNEL_LEAVE && (rc = member_account(c, a->member, &account)) != 0)
        return rc;
    switch (a->command) {
    case CLI_CHANNEL_ADD:
        rc = carechat_channel_add(c, &channel, &account);
        done = "added";
        break;
    case CLI_CHANNEL_REMOVE:
        rc = carechat_channel_remove(c, &channel, &account);
        done = "removed";
        break;
    case CLI_CHANNEL_APPROVE:
        rc = carechat_channel_approve(c, &channel, &account);
        done = "approved";
        break;
    default:
        rc = carechat_channel_leave(c, &channel);
        break;
    }
    if (rc != 0)
        return rc;
    if (a->json)
        cli_json_print(stdout, json_pack("{s:s, s:s}", "channel", a->conversation, "done", done));
    else
        printf("%s\n", done);
    return 0;
}

static int run_channel_list(struct carechat *c, const struct cli_args *a) {
    struct carechat_conversations *list = NULL;
    int rc = carechat_conversations(c, &list);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < list->n; i++)
        if (list->items[i].kind == CARECHAT_CONVERSATION_CARE_TEAM)
            print_conversation(&list->items[i], a->json);
    carechat_conversations_free(list);
    return 0;
}

static int run_channel_members(struct carechat *c, const struct cli_args *a) {
    struct id channel;
    CHECK(id_from_hex(a->conversation, &channel) == 0);
    struct carechat_members *list = NULL;
    int rc = carechat_members(c, &channel, &list);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < list->n; i++) {
        const struct carechat_member *m = &list->items[i];
        char acct[ID_HEX_LEN + 1];
        id_to_hex(&m->account_id, acct);
        if (a->json) {
            cli_json_print(stdout, json_pack("{s:s, s:s, s:s, s:o}", "account_id", acct, "role",
                                             carechat_role_name(m->role), "state",
                                             member_state_name(m->state), "display_name",
                                             cli_json_str(m->display_name)));
            continue;
        }
        struct buf line; /* the name for a person; the id only in --json */
        buf_init(&line);
        append_printable(&line, m->display_name[0] != '\0' ? m->display_name : acct);
        buf_printf(&line, "  %s  %s", carechat_role_name(m->role), member_state_name(m->state));
        print_line(&line);
        buf_cleanup(&line);
    }
    carechat_members_free(list);
    return 0;
}

static int run_message_op(struct carechat *c, const struct cli_args *a) {
    struct id conv, mid;
    CHECK(id_from_hex(a->conversation, &conv) == 0);
    CHECK(id_from_hex(a->message, &mid) == 0);
    int rc;
    if (a->command == CLI_RECALL || a->command == CLI_URGENT_ACK) {
        const char *done = a->command == CLI_RECALL ? "recalled" : "acknowledged";
        rc = a->command == CLI_RECALL ? carechat_recall(c, &conv, &mid)
                                      : carechat_ack_urgent(c, &conv, &mid);
        if (rc == 0 && a->json)
            cli_json_print(stdout, json_pack("{s:s}", done, a->message));
        else if (rc == 0)
            printf("%s %s\n", done, a->message);
        return rc;
    }
    struct carechat_urgent_report *rep = NULL;
    rc = carechat_urgent_status(c, &conv, &mid, &rep);
    if (rc != 0)
        return rc;
    json_t *recipients = json_array();
    for (size_t i = 0; i < rep->n; i++) {
        char acct[ID_HEX_LEN + 1];
        id_to_hex(&rep->items[i].account_id, acct);
        if (a->json)
            CHECK(json_array_append_new(
                      recipients, json_pack("{s:s, s:b, s:I}", "account_id", acct, "acknowledged",
                                            rep->items[i].acknowledged, "acknowledged_at",
                                            (json_int_t)rep->items[i].acknowledged_at)) == 0);
        else
            printf("%s  %s\n", acct,
                   rep->items[i].acknowledged ? "acknowledged" : "not acknowledged");
    }
    if (a->json)
        cli_json_print(stdout,
                       json_pack("{s:s, s:o}", "message_id", a->message, "recipients", recipients));
    else
        json_decref(recipients);
    carechat_urgent_report_free(rep);
    return 0;
}

/* ---- account ---- */

static int run_deactivate(struct carechat *c, const struct cli_args *a) {
    struct carechat_retention r;
    int rc = carechat_deactivate(c, a->email, &r);
    if (rc != 0)
        return rc;
    if (a->json) {
        cli_json_print(stdout, cli_retention_json(&r));
        return 0;
    }
    char review_until[CLI_ISO_TIME_MAX], restricted_until[CLI_ISO_TIME_MAX];
    cli_iso_time(r.restricted_at, review_until);
    cli_iso_time(r.purge_at, restricted_until);
    struct buf line;
    buf_init(&line);
    buf_append(&line, "deactivated ", 12);
    append_printable(&line, a->email);
    buf_printf(&line, ": review until %s, restricted until %s", review_until, restricted_until);
    print_line(&line);
    buf_cleanup(&line);
    return 0;
}

/* One account of `account list`: JSON, or "ID  ROLE  NAME  EMAIL  STATE..."
 * with the name and email made printable. */
static void print_account(const struct carechat_account_summary *s, bool json) {
    if (json) {
        cli_json_print(stdout, cli_account_json(s));
        return;
    }
    char id[ID_HEX_LEN + 1];
    id_to_hex(&s->account.account_id, id);
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "%s  %s  ", id, carechat_role_name(s->account.role));
    append_printable(&line, s->account.display_name);
    buf_append(&line, "  ", 2);
    append_printable(&line, s->account.email);
    buf_append(&line, "  ", 2);
    cli_retention_text(&s->retention, &line);
    print_line(&line);
    buf_cleanup(&line);
}

/* Every page, --limit accounts per request; the library refuses a page
 * token that does not move on, so this ends. */
static int run_account_list(struct carechat *c, const struct cli_args *a) {
    enum carechat_role role = CARECHAT_ROLE_UNSPECIFIED;
    if (a->role != NULL)
        CHECK(carechat_role_parse(a->role, &role) == 0);
    struct carechat_page_token token = {.len = 0};
    size_t n = 0;
    do {
        struct carechat_account_page *page = NULL;
        int rc = carechat_list_accounts(c, role, a->limit, &token, &page);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < page->n; i++)
            print_account(&page->items[i], a->json);
        n += page->n;
        token = page->next;
        carechat_account_page_free(page);
    } while (token.len > 0);
    if (!a->json)
        printf("%zu account%s\n", n, n == 1 ? "" : "s");
    return 0;
}

/* account state, reactivate, hold and release: the call, then the account's
 * retention as JSON or as "PREFIX EMAIL: STATE...". */
static int run_retention(struct carechat *c, const struct cli_args *a) {
    struct carechat_retention r;
    const char *prefix = "";
    int rc;
    switch (a->command) {
    case CLI_ACCOUNT_REACTIVATE:
        rc = carechat_reactivate(c, a->email, &r);
        prefix = "reactivated ";
        break;
    case CLI_ACCOUNT_HOLD:
        rc = carechat_legal_hold(c, a->email, true, a->reason, &r);
        prefix = "legal hold set on ";
        break;
    case CLI_ACCOUNT_RELEASE:
        rc = carechat_legal_hold(c, a->email, false, NULL, &r);
        prefix = "legal hold released on ";
        break;
    default:
        rc = carechat_get_retention(c, a->email, &r);
        break;
    }
    if (rc != 0)
        return rc;
    if (a->json) {
        cli_json_print(stdout, cli_retention_json(&r));
        return 0;
    }
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "%s", prefix);
    append_printable(&line, a->email);
    buf_append(&line, ": ", 2);
    cli_retention_text(&r, &line);
    print_line(&line);
    buf_cleanup(&line);
    return 0;
}

static int run_unlock(struct carechat *c, const struct cli_args *a) {
    struct id account;
    int rc = carechat_unlock_login(c, a->email, &account);
    if (rc != 0)
        return rc;
    char id[ID_HEX_LEN + 1];
    id_to_hex(&account, id);
    if (a->json) {
        cli_json_print(stdout, json_pack("{s:s, s:b}", "account", id, "unlocked", 1));
        return 0;
    }
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "unlocked sign-in for ");
    append_printable(&line, a->email);
    buf_printf(&line, ": its failed sign-ins are forgotten");
    print_line(&line);
    buf_cleanup(&line);
    return 0;
}

static int run_notify(struct carechat *c, const struct cli_args *a) {
    struct carechat_notify_settings s;
    int rc = carechat_notify_get(c, &s);
    if (rc == 0 && (a->email_notices >= 0 || a->push_notices >= 0 || a->quiet_from >= 0 ||
                    a->utc_offset != INT_MIN)) {
        if (a->email_notices >= 0)
            s.email = a->email_notices == 1;
        if (a->push_notices >= 0)
            s.push = a->push_notices == 1;
        if (a->quiet_from >= 0) {
            s.quiet_from_min = (unsigned)a->quiet_from;
            s.quiet_until_min = (unsigned)a->quiet_until;
        }
        if (a->utc_offset != INT_MIN)
            s.utc_offset_min = a->utc_offset;
        rc = carechat_notify_set(c, &s, &s);
    }
    if (rc != 0)
        return rc;
    if (a->json) {
        cli_json_print(stdout, json_pack("{s:b, s:b, s:i, s:i, s:i}", "email", s.email, "push",
                                         s.push, "quiet_from", (int)s.quiet_from_min, "quiet_until",
                                         (int)s.quiet_until_min, "utc_offset", s.utc_offset_min));
        return 0;
    }
    printf("email notices %s, push notices %s", s.email ? "on" : "off", s.push ? "on" : "off");
    int off = s.utc_offset_min < 0 ? -s.utc_offset_min : s.utc_offset_min;
    if (s.quiet_from_min != s.quiet_until_min)
        printf(", quiet %02u:%02u-%02u:%02u (UTC%c%02d:%02d)", s.quiet_from_min / 60,
               s.quiet_from_min % 60, s.quiet_until_min / 60, s.quiet_until_min % 60,
               s.utc_offset_min < 0 ? '-' : '+', off / 60, off % 60);
    printf("\n");
    return 0;
}

static int run_push(struct carechat *c, const struct cli_args *a) {
    struct id reg;
    int rc;
    if (a->command == CLI_PUSH_UNREGISTER) {
        CHECK(id_from_hex(a->id, &reg) == 0); /* cli_parse() checked it */
        rc = carechat_push_unregister(c, &reg);
        if (rc == 0 && a->json)
            cli_json_print(stdout, json_pack("{s:b}", "unregistered", 1));
        else if (rc == 0)
            printf("unregistered\n");
        return rc;
    }
    struct carechat_push_target t;
    memset(&t, 0, sizeof t);
    uint8_t token[100];
    size_t len = 0;
    if (a->apns) {
        t.kind = CARECHAT_PUSH_APNS;
        len = strlen(a->apns) / 2;
        CHECK(len <= sizeof token && hex_decode_exact(a->apns, token, len) == 0);
        t.apns_token = token;
        t.apns_token_len = len;
        t.apns_sandbox = a->sandbox;
    } else if (a->fcm) {
        t.kind = CARECHAT_PUSH_FCM;
        t.fcm_token = a->fcm;
    } else {
        t.kind = CARECHAT_PUSH_WEBPUSH;
        t.webpush_endpoint = a->webpush;
        CHECK(sodium_base642bin(t.webpush_p256dh, sizeof t.webpush_p256dh, a->p256dh,
                                strlen(a->p256dh), NULL, &len, NULL,
                                sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
        CHECK(sodium_base642bin(t.webpush_auth, sizeof t.webpush_auth, a->auth, strlen(a->auth),
                                NULL, &len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    }
    rc = carechat_push_register(c, &t, &reg);
    if (rc != 0)
        return rc;
    char hex[ID_HEX_LEN + 1];
    id_to_hex(&reg, hex);
    if (a->json)
        cli_json_print(stdout, json_pack("{s:s}", "registration_id", hex));
    else
        printf("%s\n", hex);
    return 0;
}

/* The `n` bytes at `p` in hex as a JSON string, "" when !has. */
static json_t *json_hex(bool has, const uint8_t *p, size_t n) {
    struct buf hex;
    buf_init(&hex);
    if (has)
        hex_encode(p, n, &hex);
    json_t *j = json_stringn(has ? (const char *)hex.data : "", hex.len);
    buf_cleanup(&hex);
    return j;
}

/* One JSON object per record: ids and hashes in hex, "" for none. */
/* Appends " LABEL NAME" for a person of an audit record: the name, else the
 * account id (no name: none known, or purged). */
static void append_person(struct buf *line, const char *label, bool has, const struct id *id,
                          const char *name) {
    if (!has)
        return;
    buf_printf(line, " %s ", label);
    if (name[0] != '\0') {
        append_printable(line, name);
        return;
    }
    char hex[ID_HEX_LEN + 1];
    id_to_hex(id, hex);
    buf_append(line, hex, ID_HEX_LEN);
}

/* One audit record: its JSON object (ids, and names where known), or for a
 * person a line with the time, action, outcome and names. */
static void print_audit_record(const struct carechat_audit_record *r, bool json) {
    if (json) {
        json_t *o = json_pack(
            "{s:o, s:I, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "index",
            cli_json_u64(r->index), "time", (json_int_t)r->time, "action", cli_json_str(r->action),
            "outcome", r->outcome, "actor", json_hex(r->has_actor, r->actor.b, ID_LEN), "device",
            json_hex(r->has_device, r->device.b, ID_LEN), "object",
            json_hex(r->object_len > 0, r->object, r->object_len), "patient",
            json_hex(r->has_patient, r->patient.b, ID_LEN), "source", cli_json_str(r->source),
            "prev_hash", json_hex(true, r->prev_hash, 32), "hash", json_hex(true, r->hash, 32));
        if (r->repeated > 0)
            json_object_set_new(o, "repeated", json_integer(r->repeated));
        if (r->actor_name[0] != '\0')
            json_object_set_new(o, "actor_name", cli_json_str(r->actor_name));
        if (r->patient_name[0] != '\0')
            json_object_set_new(o, "patient_name", cli_json_str(r->patient_name));
        cli_json_print(stdout, o);
        return;
    }
    char when[CLI_ISO_TIME_MAX];
    cli_iso_time(r->time, when);
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "#%" PRIu64 " %s ", r->index, when);
    append_printable(&line, r->action);
    buf_printf(&line, " %s", carechat_status_name(r->outcome));
    append_person(&line, "by", r->has_actor, &r->actor, r->actor_name);
    append_person(&line, "patient", r->has_patient, &r->patient, r->patient_name);
    if (r->object_len > 0) {
        buf_append(&line, " object ", 8);
        hex_encode(r->object, r->object_len, &line);
    }
    if (r->source[0] != '\0') {
        buf_append(&line, " from ", 6);
        append_printable(&line, r->source);
    }
    if (r->repeated > 0)
        buf_printf(&line, " (repeated %" PRIu32 " times)", r->repeated);
    print_line(&line);
    buf_wipe(&line);
    buf_cleanup(&line);
}

/* Resolves an --actor/--patient email to an account id. */
static int audit_account(struct carechat *c, const char *email, struct id *out) {
    struct carechat_account acc;
    int rc = carechat_lookup(c, email, &acc);
    if (rc == 0)
        *out = acc.account_id;
    return rc;
}

static int run_audit_query(struct carechat *c, const struct cli_args *a) {
    struct id actor, patient;
    struct carechat_audit_filter f = {.since = a->since, .until = a->until};
    int rc = 0;
    if (a->actor != NULL && (rc = audit_account(c, a->actor, &actor)) == 0)
        f.actor = &actor;
    if (rc == 0 && a->patient != NULL && (rc = audit_account(c, a->patient, &patient)) == 0)
        f.patient = &patient;
    struct carechat_audit_records *list = NULL;
    if (rc == 0)
        rc = carechat_audit_query(c, &f, &list);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < list->n; i++)
        print_audit_record(&list->items[i], a->json);
    carechat_audit_records_free(list);
    return 0;
}

/* Returns the library's status; *broken is set when the chain is broken. */
static int run_audit_verify(struct carechat *c, const struct cli_args *a, bool *broken) {
    bool ok = false;
    uint64_t first_bad = 0, checked = 0;
    int rc = carechat_audit_verify(c, &ok, &first_bad, &checked);
    if (rc != 0)
        return rc;
    if (a->json && ok)
        cli_json_print(stdout, json_pack("{s:b, s:o}", "ok", 1, "checked", cli_json_u64(checked)));
    else if (a->json)
        cli_json_print(stdout,
                       json_pack("{s:b, s:o, s:o}", "ok", 0, "first_bad_index",
                                 cli_json_u64(first_bad), "checked", cli_json_u64(checked)));
    else if (ok)
        printf("audit chain intact (%" PRIu64 " records)\n", checked);
    else
        printf("audit chain broken at index %" PRIu64 "\n", first_bad);
    *broken = !ok;
    return 0;
}

static int run_invite_list(struct carechat *c, const struct cli_args *a) {
    struct carechat_invites *l = NULL;
    int rc = carechat_list_invites(c, &l);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < l->n; i++) {
        const struct carechat_invite *in = &l->items[i];
        char inviter[ID_HEX_LEN + 1], expires[CLI_ISO_TIME_MAX];
        struct buf hex;
        buf_init(&hex);
        hex_encode(in->id, sizeof in->id, &hex);
        const char *id = (const char *)hex.data;
        id_to_hex(&in->inviter, inviter);
        if (a->json)
            cli_json_print(stdout,
                           json_pack("{s:s, s:o, s:s, s:s, s:I, s:I}", "invite", id, "email",
                                     cli_json_str(in->email), "role", carechat_role_name(in->role),
                                     "inviter", inviter, "created_at", (json_int_t)in->created_at,
                                     "expires_at", (json_int_t)in->expires_at));
        else {
            cli_iso_time(in->expires_at, expires);
            struct buf line;
            buf_init(&line);
            buf_printf(&line, "%s %s ", id, carechat_role_name(in->role));
            append_printable(&line, in->email);
            buf_printf(&line, " expires %s", expires);
            print_line(&line);
            buf_cleanup(&line);
        }
        buf_cleanup(&hex);
    }
    carechat_invites_free(l);
    return 0;
}

static int run_password_change(struct carechat *c, const struct cli_args *a, const char *current,
                               const char *next) {
    int rc = carechat_change_password(c, current, next);
    if (rc == 0 && a->json)
        cli_json_print(stdout, json_pack("{s:b}", "password_changed", 1));
    else if (rc == 0)
        printf("password changed; every other session of the account has ended\n");
    return rc;
}

/* ---- two-factor sign-in ------------------------------------------------------------------ */

static int run_2fa(struct carechat *c, const struct cli_args *a, const char *password) {
    int rc;
    if (a->command == CLI_2FA_ENABLE) {
        struct carechat_totp_enrollment e;
        rc = carechat_totp_enroll(c, &e);
        if (rc == 0 && a->json)
            cli_json_print(
                stdout, json_pack("{s:s, s:s}", "secret", e.secret, "otpauth_uri", e.otpauth_uri));
        else if (rc == 0)
            printf("secret %s\n%s\nadd it to your authenticator app, then run carechat 2fa "
                   "confirm --code CODE\n",
                   e.secret, e.otpauth_uri);
        sodium_memzero(&e, sizeof e);
        return rc;
    }
    if (a->command == CLI_2FA_DISABLE) {
        rc = carechat_totp_disable(c, password, a->code);
        if (rc == 0)
            printf(a->json ? "{\"disabled\":true}\n" : "two-factor sign-in disabled\n");
        return rc;
    }
    char codes[CARECHAT_RECOVERY_CODES][CARECHAT_RECOVERY_CODE_LEN + 1];
    rc = carechat_totp_confirm(c, a->code, codes);
    if (rc == 0 && a->json) {
        json_t *list = json_array();
        for (int i = 0; i < CARECHAT_RECOVERY_CODES; i++)
            json_array_append_new(list, json_string(codes[i]));
        cli_json_print(stdout, json_pack("{s:b, s:o}", "enabled", 1, "recovery_codes", list));
    } else if (rc == 0) {
        printf("two-factor sign-in enabled; recovery codes (each works once, shown only now):\n");
        for (int i = 0; i < CARECHAT_RECOVERY_CODES; i++)
            printf("%s\n", codes[i]);
    }
    sodium_memzero(codes, sizeof codes);
    return rc;
}

/* ---- the key backup ---------------------------------------------------------------------- */

static void print_key_backup_status(const struct carechat_key_backup_status *st, bool json) {
    if (json) {
        cli_json_print(stdout, json_pack("{s:b, s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:o}", "enabled",
                                         st->enabled, "local_keys", (json_int_t)st->local_keys,
                                         "pending_keys", (json_int_t)st->pending_keys, "segments",
                                         (json_int_t)st->segments, "bytes", cli_json_u64(st->bytes),
                                         "last_backup_at", (json_int_t)st->last_backup_at,
                                         "max_segments", (json_int_t)st->max_segments, "max_bytes",
                                         cli_json_u64(st->max_bytes), "last_error",
                                         cli_json_str(st->last_error)));
        return;
    }
    printf("key backup: %s\n",
           st->enabled ? "on (this device keeps it current)" : "off on this device");
    printf("message keys on this device: %zu (%zu waiting to be backed up)\n", st->local_keys,
           st->pending_keys);
    char at[CLI_ISO_TIME_MAX] = "never";
    if (st->last_backup_at > 0)
        cli_iso_time(st->last_backup_at, at);
    printf("on the server: %zu segment%s, %llu bytes (at most %u segments, %llu bytes); newest "
           "%s\n",
           st->segments, st->segments == 1 ? "" : "s", (unsigned long long)st->bytes,
           st->max_segments, (unsigned long long)st->max_bytes, at);
    if (st->last_error[0] != '\0')
        printf("last automatic backup failed: %s\n", st->last_error);
}

static int run_keys(struct carechat *c, const struct cli_args *a) {
    int rc = 0;
    switch (a->command) {
    case CLI_KEYS_BACKUP_ENABLE: {
        char recovery[CARECHAT_RECOVERY_KEY_LEN + 1];
        size_t keys = 0;
        rc = carechat_key_backup_enable(c, recovery, &keys);
        if (rc == 0 && a->json)
            cli_json_print(stdout, json_pack("{s:b, s:s, s:I}", "enabled", 1, "recovery_key",
                                             recovery, "keys", (json_int_t)keys));
        else if (rc == 0)
            printf("key backup on: %zu message key%s backed up\n"
                   "recovery key (shown only now; write it down and keep it apart from this\n"
                   "device: a new device needs it to read your earlier messages, and nobody,\n"
                   "the clinic included, can recover it):\n"
                   "%s\n",
                   keys, keys == 1 ? "" : "s", recovery);
        sodium_memzero(recovery, sizeof recovery);
        return rc;
    }
    case CLI_KEYS_BACKUP_STATUS:
    case CLI_KEYS_BACKUP_SYNC: {
        if (a->command == CLI_KEYS_BACKUP_SYNC && (rc = carechat_key_backup_sync(c)) != 0)
            return rc;
        struct carechat_key_backup_status st;
        rc = carechat_key_backup_status(c, &st);
        if (rc == 0)
            print_key_backup_status(&st, a->json);
        return rc;
    }
    case CLI_KEYS_BACKUP_DISABLE:
        rc = carechat_key_backup_disable(c);
        if (rc == 0)
            printf(a->json ? "{\"disabled\": true}\n"
                           : "key backup off: the server's copy is deleted and this account's "
                             "devices stop keeping it\n");
        return rc;
    default: {
        struct buf key;
        buf_init(&key);
        char err[512];
        rc = cli_read_password(a->recovery_file, &key, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "carechat keys restore: %s\n", err);
            buf_cleanup(&key);
            return STATUS_BAD_REQUEST;
        }
        size_t keys = 0;
        rc = carechat_key_backup_restore(c, (const char *)key.data, &keys);
        buf_wipe(&key);
        buf_cleanup(&key);
        if (rc == 0 && a->json)
            cli_json_print(stdout, json_pack("{s:I}", "restored", (json_int_t)keys));
        else if (rc == 0)
            printf("restored %zu message key%s: history on this device shows the earlier "
                   "messages; this device keeps the backup from now on\n",
                   keys, keys == 1 ? "" : "s");
        return rc;
    }
    }
}

/* ---- breach ------------------------------------------------------------------------------ */

#define MAX_BREACH_EMAILS CARECHAT_MAX_BREACH_ACCOUNTS

static int run_breach_declare(struct carechat *c, const struct cli_args *a) {
    struct buf desc;
    buf_init(&desc);
    char err[256];
    if (a->description_file &&
        cli_read_text(a->description_file, CARECHAT_MAX_DESCRIPTION, &desc, err, sizeof err) != 0) {
        fprintf(stderr, "carechat breach declare: %s\n", err);
        buf_cleanup(&desc);
        return STATUS_BAD_REQUEST;
    }
    if (!a->description_file && a->description)
        buf_append(&desc, a->description, strlen(a->description));
    buf_append_u8(&desc, 0);
    /* The emails of --accounts, split at commas (copied: argv stays). */
    char *list = a->accounts ? strdup(a->accounts) : NULL;
    const char *emails[MAX_BREACH_EMAILS];
    size_t n = 0;
    int rc = 0;
    for (char *save = NULL, *e = list ? strtok_r(list, ",", &save) : NULL; e;
         e = strtok_r(NULL, ",", &save)) {
        if (n == MAX_BREACH_EMAILS) {
            fprintf(stderr, "carechat breach declare: more than %d accounts\n", MAX_BREACH_EMAILS);
            rc = STATUS_BAD_REQUEST;
            break;
        }
        emails[n++] = e;
    }
    struct id incident;
    struct carechat_breach_declaration d = {
        .discovered_at = a->discovered,
        .description = (const char *)desc.data,
        .emails = emails,
        .n_emails = n,
        .from = a->since,
        .until = a->until,
        .accessor_email = a->actor,
    };
    if (a->incident) {
        CHECK(id_from_hex(a->incident, &incident) == 0);
        d.incident = &incident;
    }
    struct carechat_breach b;
    if (rc == 0)
        rc = carechat_breach_declare(c, &d, &b);
    buf_wipe(&desc);
    buf_cleanup(&desc);
    free(list);
    if (rc != 0)
        return rc;
    char id[ID_HEX_LEN + 1], due[CLI_ISO_TIME_MAX];
    id_to_hex(&b.incident, id);
    cli_iso_time(b.deadline, due);
    if (a->json)
        cli_json_print(stdout,
                       json_pack("{s:s, s:I, s:I, s:I}", "incident", id, "queued",
                                 (json_int_t)b.queued, "discovered_at", (json_int_t)b.discovered_at,
                                 "deadline", (json_int_t)b.deadline));
    else
        printf("incident %s: %u notice%s queued; every notice due by %s\n", id, b.queued,
               b.queued == 1 ? "" : "s", due);
    return 0;
}

static const char *notice_state_name(enum carechat_notice_state s) {
    return s == CARECHAT_NOTICE_SENT ? "sent" : s == CARECHAT_NOTICE_FAILED ? "failed" : "pending";
}

static int run_breach_status(struct carechat *c, const struct cli_args *a) {
    struct id incident;
    CHECK(id_from_hex(a->incident, &incident) == 0);
    struct carechat_breach_status *st = NULL;
    int rc = carechat_breach_status(c, &incident, &st);
    if (rc != 0)
        return rc;
    size_t count[4] = {0};
    for (size_t i = 0; i < st->n; i++) {
        const struct carechat_breach_notice *n = &st->notices[i];
        char who[ID_HEX_LEN + 1], queued[CLI_ISO_TIME_MAX], settled[CLI_ISO_TIME_MAX];
        id_to_hex(&n->account, who);
        count[n->state <= CARECHAT_NOTICE_FAILED ? n->state : 0]++;
        if (a->json) {
            cli_json_print(stdout, json_pack("{s:s, s:s, s:I, s:I}", "account", who, "state",
                                             notice_state_name(n->state), "queued_at",
                                             (json_int_t)n->queued_at, "settled_at",
                                             (json_int_t)n->settled_at));
            continue;
        }
        cli_iso_time(n->queued_at, queued);
        cli_iso_time(n->settled_at, settled);
        printf("%s %s queued %s%s%s\n", who, notice_state_name(n->state), queued,
               n->settled_at ? (n->state == CARECHAT_NOTICE_SENT ? " sent " : " failed ") : "",
               n->settled_at ? settled : "");
    }
    char id[ID_HEX_LEN + 1], due[CLI_ISO_TIME_MAX];
    id_to_hex(&st->incident, id);
    cli_iso_time(st->deadline, due);
    int64_t left = st->deadline - (int64_t)time(NULL) * 1000;
    if (a->json)
        cli_json_print(stdout, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "incident", id,
                                         "total", (json_int_t)st->total, "sent",
                                         (json_int_t)count[CARECHAT_NOTICE_SENT], "pending",
                                         (json_int_t)count[CARECHAT_NOTICE_PENDING], "failed",
                                         (json_int_t)count[CARECHAT_NOTICE_FAILED], "overdue",
                                         (json_int_t)st->overdue, "discovered_at",
                                         (json_int_t)st->discovered_at, "deadline",
                                         (json_int_t)st->deadline));
    else if (left > 0)
        printf("incident %s: %u notices: %zu sent, %zu pending, %zu failed; due by %s "
               "(%lld h left)\n",
               id, st->total, count[CARECHAT_NOTICE_SENT], count[CARECHAT_NOTICE_PENDING],
               count[CARECHAT_NOTICE_FAILED], due, (long long)(left / 3600000));
    else
        printf("incident %s: %u notices: %zu sent, %zu pending, %zu failed; due by %s: "
               "%u OVERDUE\n",
               id, st->total, count[CARECHAT_NOTICE_SENT], count[CARECHAT_NOTICE_PENDING],
               count[CARECHAT_NOTICE_FAILED], due, st->overdue);
    carechat_breach_status_free(st);
    return 0;
}

/* ---- trust ---- */

/* After login: a device that awaits approval says how to give it. */
static void print_approval(struct carechat *c, bool json) {
    if (!carechat_awaiting_approval(c))
        return;
    char code[CARECHAT_DEVICE_CODE_LEN + 1];
    if (carechat_device_code(c, code) != 0)
        return;
    if (json)
        cli_json_print(stdout, json_pack("{s:b, s:s}", "awaiting_approval", 1, "code", code));
    else
        printf("this device awaits approval: on a device of this account run\n"
               "  carechat approve --code %s\n",
               code);
}

static int run_trust(struct carechat *c, const struct cli_args *a) {
    struct carechat_account acc;
    int rc = carechat_lookup(c, a->email, &acc);
    if (rc != 0)
        return rc;
    switch (a->command) {
    case CLI_TRUST:
        rc = carechat_trust(c, &acc.account_id);
        if (rc == 0)
            printf(a->json ? "{\"trusted\":true}\n" : "new identity confirmed\n");
        return rc;
    case CLI_VERIFY: {
        if (a->mark && (rc = carechat_set_verified(c, &acc.account_id, true)) != 0)
            return rc;
        char number[CARECHAT_SAFETY_NUMBER_LEN + 1];
        bool verified = false;
        rc = carechat_safety_number(c, &acc.account_id, number, &verified);
        if (rc == 0 && a->mark)
            rc = carechat_set_verified(c, &acc.account_id, true);
        if (rc != 0)
            return rc;
        if (a->json)
            cli_json_print(stdout, json_pack("{s:s, s:b}", "safety_number", number, "verified",
                                             verified || a->mark));
        else
            printf("%s\n%s\n", number, verified || a->mark ? "verified" : "not verified");
        return 0;
    }
    default:
        rc = carechat_reset_device_list(c, a->email);
        if (rc == 0)
            printf(a->json ? "{\"reset\":true}\n" : "device list reset\n");
        return rc;
    }
}

/* password reset-request, and password reset with `next` (the new password
 * read from its file). */
static int run_password_reset(struct carechat *c, const struct cli_args *a, const char *next) {
    if (a->command == CLI_PASSWORD_RESET_REQUEST) {
        int rc = carechat_request_password_reset(c, a->email);
        if (rc == 0 && a->json)
            cli_json_print(stdout, json_pack("{s:b}", "reset_requested", 1));
        else if (rc == 0)
            printf("if %s has an account, a reset code is on its way there by email\n", a->email);
        return rc;
    }
    struct buf code;
    buf_init(&code);
    char err[512];
    int rc = cli_read_password(a->code_file, &code, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "carechat password reset: %s\n", err);
        buf_cleanup(&code);
        return CLI_EXIT_USAGE;
    }
    rc = carechat_reset_password(c, a->email, (const char *)code.data, next);
    buf_wipe(&code);
    buf_cleanup(&code);
    if (rc == 0 && a->json)
        cli_json_print(stdout, json_pack("{s:b}", "password_reset", 1));
    else if (rc == 0)
        printf("password reset; every session of the account has ended: log in again\n");
    return rc;
}

static int run(struct carechat *c, const struct cli_args *a) {
    struct buf password;
    buf_init(&password);
    char err[512];
    int rc = 0;
    if (a->password_file != NULL) {
        rc = cli_read_password(a->password_file, &password, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "carechat %s: %s\n", command_name(a->command), err);
            buf_cleanup(&password);
            return CLI_EXIT_USAGE;
        }
    }
    /* The other input read from a file: a new password, a second factor
     * (--totp-file), or the text to send (--text-file, or --text - for
     * standard input). */
    struct buf input;
    buf_init(&input);
    const char *text_from = a->command != CLI_SEND                 ? NULL
                            : a->text_file                         ? a->text_file
                            : a->text && strcmp(a->text, "-") == 0 ? "-"
                                                                   : NULL;
    if (a->new_password_file != NULL)
        rc = cli_read_password(a->new_password_file, &input, err, sizeof err);
    else if (a->totp_file != NULL)
        rc = cli_read_password(a->totp_file, &input, err, sizeof err);
    else if (text_from != NULL)
        rc = cli_read_text(text_from, CARECHAT_MAX_TEXT, &input, err, sizeof err);
    else if (a->command == CLI_SEND && a->text != NULL)
        buf_append(&input, a->text, strlen(a->text));
    if (rc != 0) {
        fprintf(stderr, "carechat %s: %s\n", command_name(a->command), err);
        buf_wipe(&password);
        buf_cleanup(&password);
        buf_cleanup(&input);
        return CLI_EXIT_USAGE;
    }
    const char *pw = (const char *)password.data;
    bool broken = false;
    switch (a->command) {
    case CLI_LOGIN:
        rc = carechat_login_2fa(c, a->email, pw, a->totp_file ? (const char *)input.data : a->totp);
        if (rc == 0) {
            print_session(c, a->json, "logged in");
            print_approval(c, a->json);
            print_must_enrol(c, a->json);
        }
        break;
    case CLI_REGISTER:
        rc = carechat_register(c, a->code, a->email, pw, a->birthdate, a->name);
        if (rc == 0)
            print_session(c, a->json, "registered");
        break;
    case CLI_INVITE: {
        enum carechat_role role = CARECHAT_ROLE_UNSPECIFIED;
        (void)carechat_role_parse(a->role, &role);
        char code[CARECHAT_MAX_CODE + 1];
        int64_t expires_at = 0;
        rc = carechat_invite(c, a->email, role, code, &expires_at);
        if (rc == 0 && code[0] == '\0' && a->json)
            cli_json_print(stdout, json_pack("{s:b, s:I}", "sent_by_email", 1, "expires_at",
                                             (json_int_t)expires_at));
        else if (rc == 0 && code[0] == '\0')
            printf("invitation sent by email\n");
        else if (rc == 0 && a->json)
            cli_json_print(stdout, json_pack("{s:o, s:I}", "code", cli_json_str(code), "expires_at",
                                             (json_int_t)expires_at));
        else if (rc == 0)
            printf("%s\n", code);
        break;
    }
    case CLI_DEVICES: {
        struct carechat_devices *d = NULL;
        rc = carechat_devices(c, &d);
        if (rc == 0)
            print_devices(d, a->json);
        carechat_devices_free(d);
        break;
    }
    case CLI_DEVICES_REMOVE:
    case CLI_DEVICES_RENAME: {
        struct id device;
        CHECK(id_from_hex(a->id, &device) == 0); /* cli_parse() checked it */
        rc = a->command == CLI_DEVICES_REMOVE ? carechat_remove_device(c, &device)
                                              : carechat_rename_device(c, &device, a->label);
        if (rc == 0) {
            if (a->json)
                cli_json_print(
                    stdout, json_pack("{s:s, s:b}", "device", a->id,
                                      a->command == CLI_DEVICES_REMOVE ? "removed" : "renamed", 1));
            else
                printf("%s\n", a->command == CLI_DEVICES_REMOVE ? "removed" : "renamed");
        }
        break;
    }
    case CLI_LOGOUT:
        rc = a->forget_device ? carechat_forget_device(c) : carechat_logout(c);
        if (rc == 0) {
            if (a->json)
                cli_json_print(stdout, json_pack("{s:b, s:b}", "logged_out", 1, "device_forgotten",
                                                 a->forget_device));
            else
                printf("%s\n",
                       a->forget_device ? "logged out; this device is forgotten" : "logged out");
        }
        break;
    case CLI_SEND:
        rc = run_send(c, a, input.data, input.len);
        break;
    case CLI_RECV:
        rc = run_recv(c, a);
        break;
    case CLI_HISTORY:
        rc = run_history(c, a);
        break;
    case CLI_CONVERSATIONS:
        rc = run_conversations(c, a);
        break;
    case CLI_AUDIT_QUERY:
        rc = run_audit_query(c, a);
        break;
    case CLI_AUDIT_VERIFY:
        rc = run_audit_verify(c, a, &broken);
        break;
    case CLI_CHANNEL_CREATE:
        rc = run_channel_create(c, a);
        break;
    case CLI_CHANNEL_ADD:
    case CLI_CHANNEL_REMOVE:
    case CLI_CHANNEL_APPROVE:
    case CLI_CHANNEL_LEAVE:
        rc = run_channel_member(c, a);
        break;
    case CLI_CHANNEL_LIST:
        rc = run_channel_list(c, a);
        break;
    case CLI_CHANNEL_MEMBERS:
        rc = run_channel_members(c, a);
        break;
    case CLI_RECALL:
    case CLI_URGENT_ACK:
    case CLI_URGENT_STATUS:
        rc = run_message_op(c, a);
        break;
    case CLI_ACCOUNT_DEACTIVATE:
        rc = run_deactivate(c, a);
        break;
    case CLI_ACCOUNT_LIST:
        rc = run_account_list(c, a);
        break;
    case CLI_ACCOUNT_STATE:
    case CLI_ACCOUNT_REACTIVATE:
    case CLI_ACCOUNT_HOLD:
    case CLI_ACCOUNT_RELEASE:
        rc = run_retention(c, a);
        break;
    case CLI_ACCOUNT_UNLOCK:
        rc = run_unlock(c, a);
        break;
    case CLI_PASSWORD_CHANGE:
        rc = run_password_change(c, a, pw, (const char *)input.data);
        break;
    case CLI_PASSWORD_RESET_REQUEST:
    case CLI_PASSWORD_RESET:
        rc = run_password_reset(c, a, (const char *)input.data);
        break;
    case CLI_INVITE_LIST:
        rc = run_invite_list(c, a);
        break;
    case CLI_INVITE_REVOKE: {
        uint8_t id[CARECHAT_INVITE_ID_LEN];
        CHECK(hex_decode_exact(a->invite, id, sizeof id) == 0);
        rc = carechat_revoke_invite(c, id);
        if (rc == 0 && a->json)
            cli_json_print(stdout, json_pack("{s:s, s:b}", "invite", a->invite, "revoked", 1));
        else if (rc == 0)
            printf("revoked %s\n", a->invite);
        break;
    }
    case CLI_NOTIFY_SETTINGS:
        rc = run_notify(c, a);
        break;
    case CLI_PUSH_REGISTER:
    case CLI_PUSH_UNREGISTER:
        rc = run_push(c, a);
        break;
    case CLI_DOWNLOAD:
        rc = run_download(c, a);
        break;
    case CLI_BREACH_DECLARE:
        rc = run_breach_declare(c, a);
        break;
    case CLI_BREACH_STATUS:
        rc = run_breach_status(c, a);
        break;
    case CLI_APPROVE:
        rc = carechat_approve(c, a->code);
        if (rc == 0)
            printf(a->json ? "{\"approved\":true}\n" : "device approved\n");
        break;
    case CLI_TRUST:
    case CLI_VERIFY:
    case CLI_DEVICE_LIST_RESET:
        rc = run_trust(c, a);
        break;
    case CLI_2FA_ENABLE:
    case CLI_2FA_CONFIRM:
    case CLI_2FA_DISABLE:
        rc = run_2fa(c, a, pw);
        break;
    case CLI_KEYS_BACKUP_ENABLE:
    case CLI_KEYS_BACKUP_STATUS:
    case CLI_KEYS_BACKUP_SYNC:
    case CLI_KEYS_BACKUP_DISABLE:
    case CLI_KEYS_RESTORE:
        rc = run_keys(c, a);
        break;
    case CLI_NONE:
        break;
    }
    buf_wipe(&password);
    buf_cleanup(&password);
    buf_wipe(&input);
    buf_cleanup(&input);
    /* A failure the command found itself (download: no such file in the
     * message) was printed where it was found. */
    if (rc != 0 && carechat_error_kind(c) == CARECHAT_ERROR_NONE)
        return rc == STATUS_NOT_FOUND ? CLI_EXIT_REFUSED : CLI_EXIT_USAGE;
    if (rc != 0) {
        fprintf(stderr, "carechat: %s\n", carechat_error(c));
        return exit_for_kind(carechat_error_kind(c));
    }
    return broken ? CLI_EXIT_AUDIT : CLI_EXIT_OK;
}

/* The first of `flag`, `env` and `file` that is set and not empty, or NULL. */
static const char *first_set(const char *flag, const char *env, const char *file) {
    if (flag != NULL)
        return flag;
    if (env != NULL && env[0] != '\0')
        return env;
    return file[0] != '\0' ? file : NULL;
}

/* Reads the configuration file (cli.h) into *d; none there: no defaults.
 * Returns 0, or -1 having told stderr why (unreadable, too large, bad line,
 * or $CARECHAT_CONFIG naming a file that does not exist). */
static int read_defaults(struct cli_defaults *d) {
    memset(d, 0, sizeof *d);
    char path[PATH_MAX];
    const char *named = getenv("CARECHAT_CONFIG");
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (named != NULL && named[0] != '\0')
        snprintf(path, sizeof path, "%s", named);
    else if (xdg != NULL && xdg[0] != '\0')
        snprintf(path, sizeof path, "%s/carechat/config", xdg);
    else if (home != NULL && home[0] != '\0')
        snprintf(path, sizeof path, "%s/.config/carechat/config", home);
    else
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT && (named == NULL || named[0] == '\0'))
            return 0;
        fprintf(stderr, "carechat: configuration file %s: %s\n", path, strerror(errno));
        return -1;
    }
    static char text[64 * 1024 + 1];
    size_t n = fread(text, 1, sizeof text - 1, f);
    const bool too_large = n == sizeof text - 1 || ferror(f);
    fclose(f);
    text[n] = '\0';
    char err[160];
    if (too_large || strlen(text) != n) {
        fprintf(stderr, "carechat: configuration file %s: not a text file of at most 64 KiB\n",
                path);
        return -1;
    }
    if (cli_parse_defaults(text, d, err, sizeof err) != 0) {
        fprintf(stderr, "carechat: configuration file %s: %s\n", path, err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    log_set_level(LOG_ERROR);
    cli_json_init();
    struct cli_args a;
    char err[512];
    if (cli_parse(argc, argv, &a, err, sizeof err) != 0) {
        fprintf(stderr, "carechat: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    if (a.help) {
        fputs(cli_usage(), stdout);
        return CLI_EXIT_OK;
    }
    if (a.version) {
        printf("carechat %s\n", CARECHAT_VERSION);
        return CLI_EXIT_OK;
    }
    struct cli_defaults defaults;
    if (read_defaults(&defaults) != 0)
        return CLI_EXIT_USAGE;
    char profile[PATH_MAX];
    const char *chosen = first_set(a.profile, getenv("CARECHAT_PROFILE"), defaults.profile);
    if (chosen != NULL) {
        snprintf(profile, sizeof profile, "%s", chosen);
    } else {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] == '\0') {
            fprintf(stderr, "carechat: HOME is not set: pass --profile DIR\n");
            return CLI_EXIT_USAGE;
        }
        snprintf(profile, sizeof profile, "%s/.carechat", home);
    }
    struct carechat_config cfg = {
        .server_url = first_set(a.server, getenv("CARECHAT_SERVER"), defaults.server),
        .profile_dir = profile,
        .ca_file = first_set(a.ca_file, getenv("CARECHAT_CA_FILE"), defaults.ca_file),
        .stay_signed_in = a.stay_signed_in,
    };
    struct carechat *c = NULL;
    int rc = carechat_open(&cfg, &c);
    switch (rc) {
    case 0:
        break;
    case STATUS_BAD_REQUEST:
        fprintf(stderr, "carechat: --server must be wss://HOST[:PORT][/PATH], or ws:// to "
                        "127.0.0.1, ::1 or localhost (no plaintext passwords over a network)\n");
        return CLI_EXIT_USAGE;
    case STATUS_FORBIDDEN:
        fprintf(stderr,
                "carechat: profile %s is accessible by other users or owned by another "
                "(chmod 700 the directory, 600 its files)\n",
                profile);
        return CLI_EXIT_PROFILE;
    case STATUS_CORRUPT:
        fprintf(stderr, "carechat: profile %s is damaged (%s/profile does not parse)\n", profile,
                profile);
        return CLI_EXIT_PROFILE;
    default:
        fprintf(stderr, "carechat: cannot read profile %s\n", profile);
        return CLI_EXIT_PROFILE;
    }
    int code = run(c, &a);
    carechat_close(c);
    return code;
}
