/*
 * client/carechat_main.c: the `carechat` command-line tool over libcarechat.
 *
 * One command per run: parse (client/cli.h), open the profile, do the call,
 * print the result (text, or one JSON object per line with --json) on stdout
 * and any failure as one line on stderr, exit with the code cli.h names.
 * Passwords are read from files into a buffer that is wiped before exit.
 * Single-threaded.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/log.h"
#include "base/status.h"
#include "client/carechat.h"
#include "client/cli.h"
#include "base/hex.h"

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
        buf_printf(&line,
                   "{\"account_id\": \"%s\", \"device_id\": \"%s\", \"role\": \"%s\", "
                   "\"display_name\": ",
                   account, device, carechat_role_name(s.role));
        cli_json_string(&line, s.display_name);
        buf_printf(&line, ", \"expires_at\": %" PRId64 "}", s.expires_at);
    } else {
        buf_printf(&line, "%s as ", verb);
        append_printable(&line, s.display_name);
        buf_printf(&line, " (%s); account %s, device %s", carechat_role_name(s.role), account,
                   device);
    }
    print_line(&line);
    buf_cleanup(&line);
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
            buf_printf(&line, "{\"device_id\": \"%s\", \"label\": ", id);
            cli_json_string(&line, dev->label);
            buf_printf(&line,
                       ", \"identity_key\": \"%s\", \"encryption_key_id\": %" PRIu32
                       ", \"encryption_key_expires_at\": %" PRId64 ", \"created_at\": %" PRId64
                       ", \"this_device\": %s, \"listed\": %s, \"key_valid\": %s, "
                       "\"list_version\": %" PRIu64 "}",
                       (const char *)fp.data, dev->encryption_key_id,
                       dev->encryption_key_expires_at, dev->created_at,
                       dev->this_device ? "true" : "false", dev->listed ? "true" : "false",
                       dev->key_valid ? "true" : "false", d->list_version);
        } else {
            buf_printf(&line, "%s  ", id);
            append_printable(&line, dev->label);
            buf_printf(&line, "  identity %.16s...%s%s%s", (const char *)fp.data,
                       dev->this_device ? "  (this device)" : "",
                       dev->listed ? "" : "  NOT IN SIGNED LIST",
                       dev->key_valid ? "" : "  KEY INVALID OR EXPIRED");
        }
        buf_cleanup(&fp);
        print_line(&line);
    }
    buf_cleanup(&line);
}

static const char *state_name(enum carechat_message_state st) {
    switch (st) {
    case CARECHAT_MESSAGE_OK:
        return "ok";
    case CARECHAT_MESSAGE_RECALLED:
        return "recalled";
    case CARECHAT_MESSAGE_NO_KEY:
        return "no_key";
    case CARECHAT_MESSAGE_INVALID:
        return "invalid";
    }
    return "invalid";
}

/* One message: JSON, or "[conversation #seq] sender: text" with the text made
 * printable (someone else wrote it). */
static void print_message(const struct carechat_message *m, bool json) {
    char conv[ID_HEX_LEN + 1], mid[ID_HEX_LEN + 1], sender[ID_HEX_LEN + 1], device[ID_HEX_LEN + 1];
    id_to_hex(&m->conversation_id, conv);
    id_to_hex(&m->message_id, mid);
    id_to_hex(&m->sender_account_id, sender);
    id_to_hex(&m->sender_device_id, device);
    const char *text = m->state == CARECHAT_MESSAGE_OK ? (const char *)m->body : "";
    struct buf line;
    buf_init(&line);
    if (json) {
        buf_printf(&line,
                   "{\"conversation\": \"%s\", \"seq\": %" PRIu64
                   ", \"message_id\": \"%s\", \"sender\": \"%s\", \"sender_device\": \"%s\", "
                   "\"sent_at\": %" PRId64 ", \"urgent\": %s, \"state\": \"%s\", \"text\": ",
                   conv, m->seq, mid, sender, device, m->sent_at, m->urgent ? "true" : "false",
                   state_name(m->state));
        cli_json_string(&line, text);
        buf_append_u8(&line, '}');
    } else {
        buf_printf(&line, "[%s #%" PRIu64 "] %s: ", conv, m->seq, sender);
        if (m->state == CARECHAT_MESSAGE_OK)
            append_printable(&line, text);
        else
            buf_printf(&line, "(%s)", state_name(m->state));
    }
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
    struct buf line;
    buf_init(&line);
    if (json) {
        buf_printf(&line, "{\"conversation\": \"%s\", \"kind\": \"%s\", \"name\": ", id, kind);
        cli_json_string(&line, cv->name);
        buf_printf(&line,
                   ", \"last_seq\": %" PRIu64 ", \"created_at\": %" PRId64 ", \"members\": [",
                   cv->last_seq, cv->created_at);
        for (size_t i = 0; i < cv->n_members; i++) {
            char acct[ID_HEX_LEN + 1];
            id_to_hex(&cv->members[i].account_id, acct);
            buf_printf(&line, "%s{\"account_id\": \"%s\", \"role\": \"%s\", \"display_name\": ",
                       i > 0 ? ", " : "", acct, carechat_role_name(cv->members[i].role));
            cli_json_string(&line, cv->members[i].display_name);
            buf_append_u8(&line, '}');
        }
        buf_append(&line, "]}", 2);
    } else {
        buf_printf(&line, "%s  %s  last seq %" PRIu64 "  with", id, kind, cv->last_seq);
        for (size_t i = 0; i < cv->n_members; i++) {
            buf_append(&line, i > 0 ? ", " : " ", i > 0 ? 2 : 1);
            append_printable(&line, cv->members[i].display_name);
        }
    }
    print_line(&line);
    buf_cleanup(&line);
}

static int run_send(struct carechat *c, const struct cli_args *a) {
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
    int rc = (a->urgent ? carechat_send_urgent
                        : carechat_send)(c, &conv, (const uint8_t *)a->text, strlen(a->text),
                                         a->client_id != NULL ? &cmid : NULL, &sent);
    if (rc != 0)
        return rc;
    char cid[ID_HEX_LEN + 1], mid[ID_HEX_LEN + 1], client[ID_HEX_LEN + 1];
    id_to_hex(&conv, cid);
    id_to_hex(&sent.message_id, mid);
    id_to_hex(&sent.client_msg_id, client);
    struct buf line;
    buf_init(&line);
    if (a->json)
        buf_printf(&line,
                   "{\"conversation\": \"%s\", \"seq\": %" PRIu64
                   ", \"message_id\": \"%s\", \"client_id\": \"%s\", \"sent_at\": %" PRId64
                   ", \"device_conflicts\": %d}",
                   cid, sent.seq, mid, client, sent.sent_at, sent.device_conflicts);
    else
        buf_printf(&line, "sent: conversation %s seq %" PRIu64 " message %s client id %s", cid,
                   sent.seq, mid, client);
    print_line(&line);
    buf_cleanup(&line);
    return 0;
}

/* Prints what arrives until the queue is empty and the wait has passed,
 * acknowledging what was printed (every 64 messages and at the end). */
static int run_recv(struct carechat *c, const struct cli_args *a) {
    int rc = 0;
    size_t unacked = 0;
    for (;;) {
        struct carechat_message m;
        rc = carechat_recv(c, a->wait_s * 1000, &m);
        if (rc != 0)
            break;
        print_message(&m, a->json);
        carechat_message_cleanup(&m);
        fflush(stdout);
        if (++unacked == 64) {
            rc = carechat_ack(c);
            if (rc != 0)
                return rc;
            unacked = 0;
        }
    }
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
    for (size_t i = 0; i < list->n; i++)
        print_message(&list->items[i], a->json);
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
    struct buf line;
    buf_init(&line);
    if (a->json)
        buf_printf(&line, "{\"channel\": \"%s\"}", id);
    else
        buf_printf(&line, "%s", id);
    print_line(&line);
    buf_cleanup(&line);
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
    struct buf line;
    buf_init(&line);
    if (a->json)
        buf_printf(&line, "{\"channel\": \"%s\", \"done\": \"%s\"}", a->conversation, done);
    else
        buf_printf(&line, "%s", done);
    print_line(&line);
    buf_cleanup(&line);
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
        struct buf line;
        buf_init(&line);
        if (a->json) {
            buf_printf(&line,
                       "{\"account_id\": \"%s\", \"role\": \"%s\", \"state\": \"%s\", "
                       "\"display_name\": ",
                       acct, carechat_role_name(m->role), member_state_name(m->state));
            cli_json_string(&line, m->display_name);
            buf_append_u8(&line, '}');
        } else {
            buf_printf(&line, "%s  %s  %s  ", acct, carechat_role_name(m->role),
                       member_state_name(m->state));
            append_printable(&line, m->display_name);
        }
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
    struct buf line;
    buf_init(&line);
    int rc;
    if (a->command == CLI_RECALL || a->command == CLI_URGENT_ACK) {
        bool recall = a->command == CLI_RECALL;
        rc = recall ? carechat_recall(c, &conv, &mid) : carechat_ack_urgent(c, &conv, &mid);
        if (rc == 0) {
            if (a->json)
                buf_printf(&line, "{\"%s\": \"%s\"}", recall ? "recalled" : "acknowledged",
                           a->message);
            else
                buf_printf(&line, "%s %s", recall ? "recalled" : "acknowledged", a->message);
            print_line(&line);
        }
        buf_cleanup(&line);
        return rc;
    }
    struct carechat_urgent_report *rep = NULL;
    rc = carechat_urgent_status(c, &conv, &mid, &rep);
    if (rc != 0) {
        buf_cleanup(&line);
        return rc;
    }
    if (a->json)
        buf_printf(&line, "{\"message_id\": \"%s\", \"recipients\": [", a->message);
    for (size_t i = 0; i < rep->n; i++) {
        char acct[ID_HEX_LEN + 1];
        id_to_hex(&rep->items[i].account_id, acct);
        if (a->json) {
            buf_printf(&line,
                       "%s{\"account_id\": \"%s\", \"acknowledged\": %s, "
                       "\"acknowledged_at\": %" PRId64 "}",
                       i > 0 ? ", " : "", acct, rep->items[i].acknowledged ? "true" : "false",
                       rep->items[i].acknowledged_at);
        } else {
            buf_printf(&line, "%s  %s", acct,
                       rep->items[i].acknowledged ? "acknowledged" : "not acknowledged");
            print_line(&line);
            buf_reset(&line);
        }
    }
    if (a->json) {
        buf_append(&line, "]}", 2);
        print_line(&line);
    }
    carechat_urgent_report_free(rep);
    buf_cleanup(&line);
    return 0;
}

/* ---- account deactivate ---- */

/* `ms` since the epoch as ISO-8601 UTC ("2025-03-04T05:06:07Z"). */
static void iso_time(int64_t ms, char out[32]) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%" PRId64 " ms", ms);
}

static int run_deactivate(struct carechat *c, const struct cli_args *a) {
    struct carechat_retention r;
    int rc = carechat_deactivate(c, a->email, &r);
    if (rc != 0)
        return rc;
    char account[ID_HEX_LEN + 1];
    id_to_hex(&r.account_id, account);
    struct buf line;
    buf_init(&line);
    if (a->json) {
        buf_printf(&line,
                   "{\"account\": \"%s\", \"state\": \"%s\", \"deactivated_at\": %" PRId64
                   ", \"restricted_at\": %" PRId64 ", \"purge_at\": %" PRId64 "}",
                   account, carechat_retention_state_name(r.state), r.deactivated_at,
                   r.restricted_at, r.purge_at);
    } else {
        char review_until[32], restricted_until[32];
        iso_time(r.restricted_at, review_until);
        iso_time(r.purge_at, restricted_until);
        buf_append(&line, "deactivated ", 12);
        append_printable(&line, a->email);
        buf_printf(&line, ": review until %s, restricted until %s", review_until, restricted_until);
    }
    print_line(&line);
    buf_cleanup(&line);
    return 0;
}

static void json_hex_field(struct buf *line, const char *name, bool has, const uint8_t *p,
                           size_t n) {
    buf_printf(line, ", \"%s\": \"", name);
    if (has)
        hex_encode(p, n, line);
    buf_append(line, "\"", 1);
}

/* One JSON object per record: ids and hashes in hex, "" for none. */
static void print_audit_record(const struct carechat_audit_record *r) {
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "{\"index\": %" PRIu64 ", \"time\": %" PRId64 ", \"action\": ", r->index,
               r->time);
    cli_json_string(&line, r->action);
    buf_printf(&line, ", \"outcome\": %d", r->outcome);
    json_hex_field(&line, "actor", r->has_actor, r->actor.b, ID_LEN);
    json_hex_field(&line, "device", r->has_device, r->device.b, ID_LEN);
    json_hex_field(&line, "object", r->object_len > 0, r->object, r->object_len);
    json_hex_field(&line, "patient", r->has_patient, r->patient.b, ID_LEN);
    buf_append(&line, ", \"source\": ", 12);
    cli_json_string(&line, r->source);
    json_hex_field(&line, "prev_hash", true, r->prev_hash, 32);
    json_hex_field(&line, "hash", true, r->hash, 32);
    buf_append(&line, "}", 1);
    print_line(&line);
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
        print_audit_record(&list->items[i]);
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
    struct buf line;
    buf_init(&line);
    if (a->json && ok)
        buf_printf(&line, "{\"ok\": true, \"checked\": %" PRIu64 "}", checked);
    else if (a->json)
        buf_printf(&line,
                   "{\"ok\": false, \"first_bad_index\": %" PRIu64 ", \"checked\": %" PRIu64 "}",
                   first_bad, checked);
    else if (ok)
        buf_printf(&line, "audit chain intact (%" PRIu64 " records)", checked);
    else
        buf_printf(&line, "audit chain broken at index %" PRIu64, first_bad);
    print_line(&line);
    buf_cleanup(&line);
    *broken = !ok;
    return 0;
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
    const char *pw = (const char *)password.data;
    struct buf line;
    buf_init(&line);
    bool broken = false;
    switch (a->command) {
    case CLI_LOGIN:
        rc = carechat_login(c, a->email, pw);
        if (rc == 0)
            print_session(c, a->json, "logged in");
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
        if (rc == 0) {
            if (a->json) {
                buf_append(&line, "{\"code\": ", 9);
                cli_json_string(&line, code);
                buf_printf(&line, ", \"expires_at\": %" PRId64 "}", expires_at);
            } else {
                buf_printf(&line, "%s", code);
            }
            print_line(&line);
        }
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
    case CLI_LOGOUT:
        rc = carechat_logout(c);
        if (rc == 0) {
            buf_printf(&line, "%s", a->json ? "{\"logged_out\": true}" : "logged out");
            print_line(&line);
        }
        break;
    case CLI_SEND:
        rc = run_send(c, a);
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
    case CLI_NONE:
        break;
    }
    buf_cleanup(&line);
    buf_wipe(&password);
    buf_cleanup(&password);
    if (rc != 0) {
        fprintf(stderr, "carechat: %s\n", carechat_error(c));
        return exit_for_kind(carechat_error_kind(c));
    }
    return broken ? CLI_EXIT_AUDIT : CLI_EXIT_OK;
}

int main(int argc, char **argv) {
    log_set_level(LOG_ERROR);
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
    char profile[PATH_MAX];
    if (a.profile != NULL) {
        snprintf(profile, sizeof profile, "%s", a.profile);
    } else {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] == '\0') {
            fprintf(stderr, "carechat: HOME is not set: pass --profile DIR\n");
            return CLI_EXIT_USAGE;
        }
        snprintf(profile, sizeof profile, "%s/.carechat", home);
    }
    struct carechat_config cfg = {
        .server_url = a.server,
        .profile_dir = profile,
        .ca_file = a.ca_file,
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
