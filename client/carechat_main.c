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
    case CLI_APPROVE:
        return "approve";
    case CLI_TRUST:
        return "trust";
    case CLI_VERIFY:
        return "verify";
    case CLI_DEVICE_LIST_RESET:
        return "device-list reset";
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
static void print_message(const struct carechat_message *m, bool json) {
    if (json) {
        cli_json_print(stdout, cli_message_json(m));
        return;
    }
    char conv[ID_HEX_LEN + 1], sender[ID_HEX_LEN + 1];
    id_to_hex(&m->conversation_id, conv);
    id_to_hex(&m->sender_account_id, sender);
    struct buf line;
    buf_init(&line);
    buf_printf(&line, "[%s #%" PRIu64 "] %s: ", conv, m->seq, sender);
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
    buf_printf(&line, "%s  %s  last seq %" PRIu64 "  with", id, kind, cv->last_seq);
    for (size_t i = 0; i < cv->n_members; i++) {
        buf_append(&line, i > 0 ? ", " : " ", i > 0 ? 2 : 1);
        append_printable(&line, cv->members[i].display_name);
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
        struct buf line;
        buf_init(&line);
        buf_printf(&line, "%s  %s  %s  ", acct, carechat_role_name(m->role),
                   member_state_name(m->state));
        append_printable(&line, m->display_name);
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
    if (a->json) {
        cli_json_print(stdout,
                       json_pack("{s:s, s:s, s:I, s:I, s:I}", "account", account, "state",
                                 carechat_retention_state_name(r.state), "deactivated_at",
                                 (json_int_t)r.deactivated_at, "restricted_at",
                                 (json_int_t)r.restricted_at, "purge_at", (json_int_t)r.purge_at));
        return 0;
    }
    char review_until[32], restricted_until[32];
    iso_time(r.restricted_at, review_until);
    iso_time(r.purge_at, restricted_until);
    struct buf line;
    buf_init(&line);
    buf_append(&line, "deactivated ", 12);
    append_printable(&line, a->email);
    buf_printf(&line, ": review until %s, restricted until %s", review_until, restricted_until);
    print_line(&line);
    buf_cleanup(&line);
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
static void print_audit_record(const struct carechat_audit_record *r) {
    cli_json_print(stdout,
                   json_pack("{s:o, s:I, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "index",
                             cli_json_u64(r->index), "time", (json_int_t)r->time, "action",
                             cli_json_str(r->action), "outcome", r->outcome, "actor",
                             json_hex(r->has_actor, r->actor.b, ID_LEN), "device",
                             json_hex(r->has_device, r->device.b, ID_LEN), "object",
                             json_hex(r->object_len > 0, r->object, r->object_len), "patient",
                             json_hex(r->has_patient, r->patient.b, ID_LEN), "source",
                             cli_json_str(r->source), "prev_hash", json_hex(true, r->prev_hash, 32),
                             "hash", json_hex(true, r->hash, 32)));
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
    bool broken = false;
    switch (a->command) {
    case CLI_LOGIN:
        rc = carechat_login(c, a->email, pw);
        if (rc == 0) {
            print_session(c, a->json, "logged in");
            print_approval(c, a->json);
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
        if (rc == 0 && a->json)
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
    case CLI_LOGOUT:
        rc = carechat_logout(c);
        if (rc == 0) {
            if (a->json)
                cli_json_print(stdout, json_pack("{s:b}", "logged_out", 1));
            else
                printf("logged out\n");
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
    case CLI_NONE:
        break;
    }
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
