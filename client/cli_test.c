/*
 * client/cli_test.c: the carechat CLI's argument parsing, password files and
 * JSON strings, the transport's URL parsing, libcarechat's state and reason
 * names, and its failures that need no server (no session, nothing listening,
 * bad profile).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "client/carechat.h"
#include "client/cli.h"
#include "client/transport.h"

static int parse(const char *const *args, struct cli_args *out, char *err, size_t n) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"carechat";
    for (size_t i = 0; args[i] != NULL; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    return cli_parse(argc, argv, out, err, n);
}

static void test_cli_parse_commands(void **state) {
    (void)state;
    struct cli_args a;
    char err[256];
    const char *login[] = {
        "--server", "ws://127.0.0.1:9", "login", "--email=a@b.c", "--password-file",
        "/p",       "--json",           NULL};
    assert_int_equal(parse(login, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_LOGIN);
    assert_string_equal(a.server, "ws://127.0.0.1:9");
    assert_string_equal(a.email, "a@b.c");
    assert_string_equal(a.password_file, "/p");
    assert_true(a.json);
    assert_null(a.profile);

    const char *reg[] = {"register",        "--code",    "C",           "--email",    "e",
                         "--password-file", "f",         "--birthdate", "2001-02-03", "--name",
                         "Anna B",          "--profile", "/d",          NULL};
    assert_int_equal(parse(reg, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_REGISTER);
    assert_string_equal(a.name, "Anna B");
    assert_string_equal(a.birthdate, "2001-02-03");
    assert_string_equal(a.profile, "/d");

    const char *inv[] = {"invite", "--email", "x@y", "--role", "provider", NULL};
    assert_int_equal(parse(inv, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_INVITE);
    assert_string_equal(a.role, "provider");

    const char *devices[] = {"devices", NULL};
    assert_int_equal(parse(devices, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_DEVICES);
    const char *send_to[] = {"send", "--to", "p@x", "--text", "hello there", NULL};
    assert_int_equal(parse(send_to, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_SEND);
    assert_string_equal(a.to, "p@x");
    assert_string_equal(a.text, "hello there");
    assert_null(a.conversation);
    assert_null(a.client_id);
    const char *send_conv[] = {
        "send", "--conversation", "000102030405060708090a0b0c0d0e0f", "--text",
        "t",    "--client-id",    "ffeeddccbbaa99887766554433221100", NULL};
    assert_int_equal(parse(send_conv, &a, err, sizeof err), 0);
    assert_string_equal(a.conversation, "000102030405060708090a0b0c0d0e0f");
    assert_string_equal(a.client_id, "ffeeddccbbaa99887766554433221100");
    const char *recv[] = {"recv", "--wait", "15", NULL};
    assert_int_equal(parse(recv, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_RECV);
    assert_int_equal(a.wait_s, 15);
    const char *recv0[] = {"recv", NULL};
    assert_int_equal(parse(recv0, &a, err, sizeof err), 0);
    assert_int_equal(a.wait_s, 0);
    const char *hist[] = {
        "history", "--conversation", "000102030405060708090a0b0c0d0e0f", "--limit", "100", NULL};
    assert_int_equal(parse(hist, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_HISTORY);
    assert_int_equal(a.limit, 100);
    const char *convs[] = {"conversations", NULL};
    assert_int_equal(parse(convs, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_CONVERSATIONS);

    /* Three words: the key backup's commands. */
    const char *kb_on[] = {"keys", "backup", "enable", "--json", NULL};
    assert_int_equal(parse(kb_on, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_KEYS_BACKUP_ENABLE);
    assert_true(a.json);
    const char *kb_status[] = {"--json", "keys", "backup", "status", NULL};
    assert_int_equal(parse(kb_status, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_KEYS_BACKUP_STATUS);
    const char *kb_off[] = {"keys", "backup", "disable", NULL};
    assert_int_equal(parse(kb_off, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_KEYS_BACKUP_DISABLE);
    const char *kb_restore[] = {"keys", "restore", "--recovery-file", "/r", NULL};
    assert_int_equal(parse(kb_restore, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_KEYS_RESTORE);
    assert_string_equal(a.recovery_file, "/r");
    const char *kb_half[] = {"keys", "backup", NULL};
    assert_int_equal(parse(kb_half, &a, err, sizeof err), STATUS_BAD_REQUEST);
    const char *kb_bad[] = {"keys", "backup", "now", NULL};
    assert_int_equal(parse(kb_bad, &a, err, sizeof err), STATUS_BAD_REQUEST);
    assert_non_null(strstr(err, "keys backup now"));
    const char *kb_no_file[] = {"keys", "restore", NULL};
    assert_int_equal(parse(kb_no_file, &a, err, sizeof err), STATUS_BAD_REQUEST);
    assert_non_null(strstr(err, "--recovery-file"));

    const char *ch_create[] = {"channel", "create", "--patient", "p@x", "--name", "Cardio", NULL};
    assert_int_equal(parse(ch_create, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_CHANNEL_CREATE);
    assert_string_equal(a.patient, "p@x");
    assert_string_equal(a.name, "Cardio");
    const char *ch_add[] = {"channel",  "add", "--channel", "000102030405060708090a0b0c0d0e0f",
                            "--member", "f@x", NULL};
    assert_int_equal(parse(ch_add, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_CHANNEL_ADD);
    assert_string_equal(a.conversation, "000102030405060708090a0b0c0d0e0f");
    assert_string_equal(a.member, "f@x");
    const char *ch_list[] = {"channel", "list", NULL};
    assert_int_equal(parse(ch_list, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_CHANNEL_LIST);
    const char *send_ch[] = {
        "send", "--channel", "000102030405060708090a0b0c0d0e0f", "--text", "t", "--urgent", NULL};
    assert_int_equal(parse(send_ch, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_SEND);
    assert_string_equal(a.conversation, "000102030405060708090a0b0c0d0e0f");
    assert_true(a.urgent);
    const char *status[] = {"urgent",    "status",
                            "--channel", "000102030405060708090a0b0c0d0e0f",
                            "--message", "ffeeddccbbaa99887766554433221100",
                            NULL};
    assert_int_equal(parse(status, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_URGENT_STATUS);
    assert_string_equal(a.message, "ffeeddccbbaa99887766554433221100");

    const char *deact[] = {"--json", "account", "deactivate", "--email", "pat@x", NULL};
    assert_int_equal(parse(deact, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_ACCOUNT_DEACTIVATE);
    assert_string_equal(a.email, "pat@x");
    assert_true(a.json);
    const char *deact_eq[] = {"account", "deactivate", "--email=p@y", NULL};
    assert_int_equal(parse(deact_eq, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_ACCOUNT_DEACTIVATE);
    assert_string_equal(a.email, "p@y");
    assert_false(a.json);

    const char *list[] = {"account", "list", "--role", "patient", "--limit", "2", "--json", NULL};
    assert_int_equal(parse(list, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_ACCOUNT_LIST);
    assert_string_equal(a.role, "patient");
    assert_int_equal(a.limit, 2);
    assert_true(a.json);
    const char *list_all[] = {"account", "list", NULL};
    assert_int_equal(parse(list_all, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_ACCOUNT_LIST);
    assert_null(a.role);
    assert_int_equal(a.limit, 0);
    static const struct {
        const char *word;
        enum cli_command command;
    } by_email[] = {
        {"state", CLI_ACCOUNT_STATE},
        {"reactivate", CLI_ACCOUNT_REACTIVATE},
        {"release", CLI_ACCOUNT_RELEASE},
        {"unlock", CLI_ACCOUNT_UNLOCK},
    };
    for (size_t i = 0; i < sizeof by_email / sizeof by_email[0]; i++) {
        const char *args[] = {"account", by_email[i].word, "--email", "pat@x", NULL};
        assert_int_equal(parse(args, &a, err, sizeof err), 0);
        assert_int_equal(a.command, by_email[i].command);
        assert_string_equal(a.email, "pat@x");
    }
    const char *hold[] = {"account", "hold", "--email", "pat@x", "--reason=court order 7 \xc2\xa7",
                          NULL};
    assert_int_equal(parse(hold, &a, err, sizeof err), 0);
    assert_int_equal(a.command, CLI_ACCOUNT_HOLD);
    assert_string_equal(a.reason, "court order 7 \xc2\xa7");
    char longest[CARECHAT_MAX_REASON + 1];
    memset(longest, 'r', CARECHAT_MAX_REASON);
    longest[CARECHAT_MAX_REASON] = '\0';
    const char *hold_max[] = {"account", "hold", "--email", "pat@x", "--reason", longest, NULL};
    assert_int_equal(parse(hold_max, &a, err, sizeof err), 0);
    assert_int_equal(strlen(a.reason), CARECHAT_MAX_REASON);

    const char *help[] = {"--help", NULL};
    assert_int_equal(parse(help, &a, err, sizeof err), 0);
    assert_true(a.help);
    const char *version[] = {"--version", NULL};
    assert_int_equal(parse(version, &a, err, sizeof err), 0);
    assert_true(a.version && !a.help);
    assert_non_null(strstr(cli_usage(), "exit codes"));
    assert_non_null(strstr(cli_usage(), "account deactivate --email EMAIL"));
    const char *documented[] = {"account list [--role ",
                                "account state --email EMAIL",
                                "account reactivate --email EMAIL",
                                "account hold --email EMAIL --reason TEXT",
                                "account release --email EMAIL",
                                "account unlock --email EMAIL"};
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++)
        if (strstr(cli_usage(), documented[i]) == NULL)
            fail_msg("--help does not document '%s'", documented[i]);
}

static void expect_usage_error(const char *const *args, const char *needle) {
    struct cli_args a;
    char err[256] = "";
    assert_int_equal(parse(args, &a, err, sizeof err), STATUS_BAD_REQUEST);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_cli_parse_refuses_bad_arguments(void **state) {
    (void)state;
    const char *none[] = {NULL};
    expect_usage_error(none, "no command");
    const char *unknown[] = {"frobnicate", NULL};
    expect_usage_error(unknown, "unknown command");
    const char *password[] = {"login", "--email", "e", "--password", "hunter22", NULL};
    expect_usage_error(password, "--password-file");
    const char *password_eq[] = {"login", "--email", "e", "--password=hunter22", NULL};
    expect_usage_error(password_eq, "--password-file");
    const char *missing[] = {"login", "--email", "e", NULL};
    expect_usage_error(missing, "needs --password-file");
    const char *no_value[] = {"login", "--email", NULL};
    expect_usage_error(no_value, "needs a value");
    const char *wrong_cmd_opt[] = {"devices", "--email", "e", NULL};
    expect_usage_error(wrong_cmd_opt, "does not take --email");
    const char *ch_unknown[] = {"channel", "explode", NULL};
    expect_usage_error(ch_unknown, "unknown command 'channel explode'");
    const char *ch_bad_id[] = {"channel", "members", "--channel", "xyz", NULL};
    expect_usage_error(ch_bad_id, "--channel must be 32 hex digits");
    const char *recall_none[] = {"recall", "--message", "ffeeddccbbaa99887766554433221100", NULL};
    expect_usage_error(recall_none, "exactly one of --conversation and --channel");
    const char *urgent_flag_value[] = {"send", "--to", "p@x", "--text", "t", "--urgent=yes", NULL};
    expect_usage_error(urgent_flag_value, "--urgent takes no value");
    const char *role[] = {"invite", "--email", "e", "--role", "king", NULL};
    expect_usage_error(role, "--role must be");
    const char *date[] = {"register", "--code",      "c",        "--email", "e", "--password-file",
                          "f",        "--birthdate", "3/4/2001", "--name",  "n", NULL};
    expect_usage_error(date, "YYYY-MM-DD");
    const char *twice[] = {"--json", "devices", "--json", NULL};
    expect_usage_error(twice, "twice");
    const char *extra[] = {"conversations", "logout", NULL};
    expect_usage_error(extra, "unexpected argument");
    const char *json_value[] = {"--json=yes", "devices", NULL};
    expect_usage_error(json_value, "takes no value");
    const char *send_both[] = {
        "send",   "--to", "a@b", "--conversation", "000102030405060708090a0b0c0d0e0f",
        "--text", "t",    NULL};
    expect_usage_error(send_both, "exactly one of --to, --conversation and --channel");
    const char *send_neither[] = {"send", "--text", "t", NULL};
    expect_usage_error(send_neither, "exactly one of --to, --conversation and --channel");
    const char *send_no_text[] = {"send", "--to", "a@b", NULL};
    expect_usage_error(send_no_text, "needs --text (or --text-file), --file or both");
    const char *send_latin1[] = {"send", "--to", "a@b", "--text", "caf\xe9", NULL};
    expect_usage_error(send_latin1, "--text is not valid UTF-8");
    const char *send_truncated[] = {"send", "--to", "a@b", "--text=ok \xe2\x82", NULL};
    expect_usage_error(send_truncated, "--text is not valid UTF-8");
    const char *bad_conv[] = {"history", "--conversation", "00ff", NULL};
    expect_usage_error(bad_conv, "32 hex digits");
    const char *bad_cid[] = {"send", "--to", "a@b", "--text", "t", "--client-id", "zz", NULL};
    expect_usage_error(bad_cid, "--client-id must be 32 hex digits");
    const char *bad_wait[] = {"recv", "--wait", "3601", NULL};
    expect_usage_error(bad_wait, "--wait must be");
    const char *neg_wait[] = {"recv", "--wait", "-1", NULL};
    expect_usage_error(neg_wait, "--wait must be");
    const char *zero_limit[] = {
        "history", "--conversation", "000102030405060708090a0b0c0d0e0f", "--limit", "0", NULL};
    expect_usage_error(zero_limit, "--limit must be 1..100");
    const char *recv_text[] = {"recv", "--text", "t", NULL};
    expect_usage_error(recv_text, "does not take --text");
    const char *acct_unknown[] = {"account", "delete", "--email", "p@x", NULL};
    expect_usage_error(acct_unknown, "unknown command 'account delete'");
    const char *acct_alone[] = {"account", NULL};
    expect_usage_error(acct_alone, "unknown command 'account'");
    const char *deact_no_email[] = {"account", "deactivate", NULL};
    expect_usage_error(deact_no_email, "'account deactivate' needs --email");
    const char *deact_role[] = {"account", "deactivate", "--email", "p@x",
                                "--role",  "patient",    NULL};
    expect_usage_error(deact_role, "'account deactivate' does not take --role");
    const char *deact_twice[] = {"account", "deactivate", "--email", "p@x", "--email", "q@x", NULL};
    expect_usage_error(deact_twice, "--email given twice");

    const char *list_email[] = {"account", "list", "--email", "p@x", NULL};
    expect_usage_error(list_email, "'account list' does not take --email");
    const char *list_role[] = {"account", "list", "--role", "nurse", NULL};
    expect_usage_error(list_role, "--role must be");
    const char *list_limit[] = {"account", "list", "--limit", "101", NULL};
    expect_usage_error(list_limit, "--limit must be 1..100");
    const char *state_no_email[] = {"account", "state", NULL};
    expect_usage_error(state_no_email, "'account state' needs --email");
    const char *unlock_reason[] = {"account", "unlock", "--email", "p@x", "--reason", "r", NULL};
    expect_usage_error(unlock_reason, "'account unlock' does not take --reason");
    const char *release_reason[] = {"account", "release", "--email", "p@x", "--reason", "r", NULL};
    expect_usage_error(release_reason, "'account release' does not take --reason");
    const char *hold_no_reason[] = {"account", "hold", "--email", "p@x", NULL};
    expect_usage_error(hold_no_reason, "'account hold' needs --reason");
    const char *hold_empty[] = {"account", "hold", "--email", "p@x", "--reason=", NULL};
    expect_usage_error(hold_empty, "--reason needs a non-empty value");

    /* A refused reason is not repeated: it is personal data. */
    char toolong[CARECHAT_MAX_REASON + 16];
    memset(toolong, 'q', sizeof toolong - 1);
    memcpy(toolong, "SECRET-REASON", 13);
    toolong[sizeof toolong - 1] = '\0';
    const char *hold_long[] = {"account", "hold", "--email", "p@x", "--reason", toolong, NULL};
    const char *hold_latin1[] = {
        "account", "hold", "--email", "p@x", "--reason", "SECRET-REASON caf\xe9", NULL};
    const char *const *refused[] = {hold_long, hold_latin1};
    for (size_t i = 0; i < 2; i++) {
        struct cli_args a;
        char err[256] = "";
        assert_int_equal(parse(refused[i], &a, err, sizeof err), STATUS_BAD_REQUEST);
        assert_non_null(strstr(err, "--reason must be 1..256 bytes of UTF-8 text"));
        assert_null(strstr(err, "SECRET"));
    }
}

/* The names the CLI prints for retention states and revocation reasons. */
static void test_carechat_state_and_reason_names(void **state) {
    (void)state;
    assert_string_equal(carechat_retention_state_name(CARECHAT_RETENTION_ACTIVE), "active");
    assert_string_equal(carechat_retention_state_name(CARECHAT_RETENTION_REVIEW), "review");
    assert_string_equal(carechat_retention_state_name(CARECHAT_RETENTION_RESTRICTED), "restricted");
    assert_string_equal(carechat_retention_state_name(CARECHAT_RETENTION_PURGED), "purged");
    assert_string_equal(carechat_retention_state_name((enum carechat_retention_state)9),
                        "unspecified");
    assert_string_equal(carechat_revoke_reason_name(CARECHAT_REVOKE_EXPIRED), "expired");
    assert_string_equal(carechat_revoke_reason_name(CARECHAT_REVOKE_LOGGED_OUT), "logged out");
    assert_string_equal(carechat_revoke_reason_name(CARECHAT_REVOKE_DEVICE_REMOVED),
                        "device removed");
    assert_string_equal(carechat_revoke_reason_name(CARECHAT_REVOKE_ACCOUNT_DEACTIVATED),
                        "account deactivated");
    assert_string_equal(carechat_revoke_reason_name(0), "unspecified");
    assert_string_equal(carechat_revoke_reason_name(-3), "unspecified");
}

/* `obj` (released here) as the CLI prints it, parsed back by jansson: fails the
 * test unless the line is valid JSON. The caller releases the result. */
static json_t *print_and_parse(json_t *obj, char *line, size_t cap) {
    char *dumped = json_dumps(obj, CLI_JSON_FLAGS | JSON_ENCODE_ANY);
    assert_non_null(dumped);
    snprintf(line, cap, "%s", dumped);
    free(dumped);
    json_decref(obj);
    json_error_t err;
    json_t *back = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (back == NULL)
        fail_msg("not valid JSON (%s): %s", err.text, line);
    return back;
}

static void test_cli_json_text_keeps_utf8_and_control_characters(void **state) {
    (void)state;
    static const char text[] = "a\"b\\c\nd\te\x01\x1f\x7f \xc3\xa9 \xe2\x80\xa8 \x1b[31m\0end";
    bool replaced = true;
    char line[256];
    json_t *back =
        print_and_parse(cli_json_text(text, sizeof text - 1, &replaced), line, sizeof line);
    assert_false(replaced);
    assert_int_equal(json_string_length(back), sizeof text - 1);
    assert_memory_equal(json_string_value(back), text, sizeof text - 1);
    json_decref(back);
    /* Escaped: no raw control character (ESC, NUL, newline) reaches the line. */
    assert_null(strchr(line, '\x1b'));
    assert_null(strchr(line, '\n'));
    assert_non_null(strstr(line, "\\u0000end"));
}

static void test_cli_json_text_replaces_ill_formed_bytes(void **state) {
    (void)state;
    /* a stray continuation, a truncated 3-byte sequence, an overlong '/', 0xff */
    static const char text[] = "ok \x80 \xe2\x82 \xc0\xaf \xff!";
    bool replaced = false;
    char line[256];
    json_t *back =
        print_and_parse(cli_json_text(text, sizeof text - 1, &replaced), line, sizeof line);
    assert_true(replaced);
    assert_string_equal(json_string_value(back), "ok \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
                                                 "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd!");
    json_decref(back);
    json_t *seven = cli_json_u64(7), *big = cli_json_u64(UINT64_MAX);
    assert_int_equal(json_integer_value(seven), 7);
    assert_true(json_is_real(big));
    json_decref(seven);
    json_decref(big);
}

static void test_cli_message_json_fields(void **state) {
    (void)state;
    static const char body[] = "caf\xc3\xa9 \xff\xfe";
    struct carechat_message m;
    memset(&m, 0, sizeof m);
    m.conversation_id.b[0] = 0xab;
    m.seq = 42;
    m.sent_at = 1700000000123;
    m.urgent = true;
    m.state = CARECHAT_MESSAGE_OK;
    m.text = (char *)body;
    m.text_len = sizeof body - 1;
    char line[1024];
    json_t *j = print_and_parse(cli_message_json(&m), line, sizeof line);
    assert_string_equal(json_string_value(json_object_get(j, "conversation")),
                        "ab000000000000000000000000000000");
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 42);
    assert_int_equal(json_integer_value(json_object_get(j, "sent_at")), 1700000000123);
    assert_true(json_is_true(json_object_get(j, "urgent")));
    assert_string_equal(json_string_value(json_object_get(j, "state")), "ok");
    assert_string_equal(json_string_value(json_object_get(j, "text")),
                        "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(j, "text_error")), "invalid_utf8");
    json_decref(j);
    /* The line keeps the format scripts match. */
    assert_non_null(strstr(line, "{\"conversation\": \"ab0"));
    assert_non_null(strstr(line, ", \"seq\": 42, "));

    m.text = (char *)"fine";
    m.text_len = 4;
    j = print_and_parse(cli_message_json(&m), line, sizeof line);
    assert_null(json_object_get(j, "text_error"));
    json_decref(j);
    m.state = CARECHAT_MESSAGE_RECALLED;
    m.text = NULL;
    m.text_len = 0;
    j = print_and_parse(cli_message_json(&m), line, sizeof line);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "recalled");
    assert_string_equal(json_string_value(json_object_get(j, "text")), "");
    json_decref(j);
}

static void test_cli_iso_time(void **state) {
    (void)state;
    char s[CLI_ISO_TIME_MAX];
    cli_iso_time(0, s);
    assert_string_equal(s, "1970-01-01T00:00:00Z");
    cli_iso_time(1700000000999, s); /* whole seconds: the milliseconds are cut */
    assert_string_equal(s, "2023-11-14T22:13:20Z");
    cli_iso_time(951782400000, s); /* a leap day */
    assert_string_equal(s, "2000-02-29T00:00:00Z");
    cli_iso_time(-1, s); /* rounded down, not towards zero */
    assert_string_equal(s, "1969-12-31T23:59:59Z");
    /* What cli_parse_time() reads back. */
    int64_t ms = 0;
    cli_iso_time(1796315852830, s);
    assert_int_equal(cli_parse_time(s, &ms), 0);
    assert_int_equal(ms, 1796315852000);
}

/* A retention in review since 2023-11-14T22:13:20Z (30 days, then 365). */
static struct carechat_retention review_retention(void) {
    struct carechat_retention r;
    memset(&r, 0, sizeof r);
    r.account_id.b[0] = 0x12;
    r.account_id.b[15] = 0xef;
    r.state = CARECHAT_RETENTION_REVIEW;
    r.deactivated_at = 1700000000000;
    r.restricted_at = r.deactivated_at + 30LL * 86400000;
    r.purge_at = r.restricted_at + 365LL * 86400000;
    return r;
}

static void test_cli_retention_text(void **state) {
    (void)state;
    struct buf b;
    buf_init(&b);
    struct carechat_retention r = review_retention();
    cli_retention_text(&r, &b);
    assert_string_equal((const char *)b.data,
                        "review (deactivated 2023-11-14T22:13:20Z), review until "
                        "2023-12-14T22:13:20Z, restricted until 2024-12-13T22:13:20Z");
    buf_reset(&b);
    r.legal_hold = true;
    r.legal_hold_since = 1700086400000;
    cli_retention_text(&r, &b);
    assert_non_null(strstr((const char *)b.data,
                           "restricted until 2024-12-13T22:13:20Z, legal hold since "
                           "2023-11-15T22:13:20Z"));
    buf_reset(&b);
    r.legal_hold = false;
    r.state = CARECHAT_RETENTION_RESTRICTED;
    cli_retention_text(&r, &b);
    assert_string_equal((const char *)b.data, "restricted (deactivated 2023-11-14T22:13:20Z), "
                                              "restricted until 2024-12-13T22:13:20Z");
    buf_reset(&b);
    r.state = CARECHAT_RETENTION_PURGED;
    cli_retention_text(&r, &b);
    assert_string_equal((const char *)b.data,
                        "purged (deactivated 2023-11-14T22:13:20Z, purged 2024-12-13T22:13:20Z)");
    buf_reset(&b);
    struct carechat_retention active;
    memset(&active, 0, sizeof active);
    active.state = CARECHAT_RETENTION_ACTIVE;
    cli_retention_text(&active, &b);
    assert_string_equal((const char *)b.data, "active");
    buf_reset(&b);
    active.legal_hold = true;
    active.legal_hold_since = 1700000000000;
    cli_retention_text(&active, &b);
    assert_string_equal((const char *)b.data, "active, legal hold since 2023-11-14T22:13:20Z");
    buf_cleanup(&b);
}

static void test_cli_retention_and_account_json(void **state) {
    (void)state;
    struct carechat_retention r = review_retention();
    r.legal_hold = true;
    r.legal_hold_since = 1700086400000;
    char line[1024];
    json_t *j = print_and_parse(cli_retention_json(&r), line, sizeof line);
    assert_string_equal(line, "{\"account\": \"120000000000000000000000000000ef\", "
                              "\"state\": \"review\", \"deactivated_at\": 1700000000000, "
                              "\"restricted_at\": 1702592000000, \"purge_at\": 1734128000000, "
                              "\"legal_hold\": true, \"legal_hold_since\": 1700086400000}");
    json_decref(j);

    struct carechat_account_summary s;
    memset(&s, 0, sizeof s);
    s.account.account_id = r.account_id;
    s.account.role = CARECHAT_ROLE_PATIENT;
    snprintf(s.account.display_name, sizeof s.account.display_name, "Pat \"P\" \x01");
    snprintf(s.account.email, sizeof s.account.email, "pat@example.org");
    s.account.active = false;
    s.created_at = 1600000000000;
    s.retention = r;
    j = print_and_parse(cli_account_json(&s), line, sizeof line);
    /* The retention's fields first, in the same order, then the account's. */
    assert_non_null(strstr(line, "{\"account\": \"120000000000000000000000000000ef\", "
                                 "\"state\": \"review\", \"deactivated_at\": 1700000000000, "));
    assert_non_null(strstr(line, "\"legal_hold_since\": 1700086400000, \"role\": \"patient\", "));
    assert_string_equal(json_string_value(json_object_get(j, "display_name")), "Pat \"P\" \x01");
    assert_string_equal(json_string_value(json_object_get(j, "email")), "pat@example.org");
    assert_true(json_is_false(json_object_get(j, "active")));
    assert_int_equal(json_integer_value(json_object_get(j, "created_at")), 1600000000000);
    json_decref(j);
}

static void write_text(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_cli_read_password_file(void **state) {
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/pw-%d", getenv("TEST_TMPDIR"), (int)getpid());
    struct buf pw;
    buf_init(&pw);
    char err[256];

    write_text(path, "correct horse\n", 14);
    assert_int_equal(cli_read_password(path, &pw, err, sizeof err), 0);
    assert_int_equal(pw.len, 13);
    assert_memory_equal(pw.data, "correct horse", 13);
    buf_wipe(&pw);

    write_text(path, "crlf-pass\r\n", 11);
    assert_int_equal(cli_read_password(path, &pw, err, sizeof err), 0);
    assert_string_equal((const char *)pw.data, "crlf-pass");
    buf_wipe(&pw);

    write_text(path, "\n", 1);
    assert_int_equal(cli_read_password(path, &pw, err, sizeof err), STATUS_BAD_REQUEST);
    write_text(path, "two\nlines\n", 10);
    assert_int_equal(cli_read_password(path, &pw, err, sizeof err), STATUS_BAD_REQUEST);

    char big[CLI_MAX_PASSWORD + 2];
    memset(big, 'x', sizeof big);
    write_text(path, big, CLI_MAX_PASSWORD);
    assert_int_equal(cli_read_password(path, &pw, err, sizeof err), 0);
    assert_int_equal(pw.len, CLI_MAX_PASSWORD);
    buf_wipe(&pw);
    write_text(path, big, CLI_MAX_PASSWORD + 1);
    assert_int_equal(cli_read_password(path, &pw, err, sizeof err), STATUS_TOO_LARGE);
    assert_int_equal(pw.len, 0);

    unlink(path);
    assert_int_equal(cli_read_password(path, &pw, err, sizeof err), STATUS_NOT_FOUND);
    assert_non_null(strstr(err, path));
    buf_cleanup(&pw);
}

static void test_transport_parse_url(void **state) {
    (void)state;
    struct transport_url u;
    assert_int_equal(transport_parse_url("ws://127.0.0.1:8080", &u), 0);
    assert_false(u.tls);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/");
    assert_int_equal(transport_parse_url("wss://chat.example.org/v1/ws", &u), 0);
    assert_true(u.tls);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/v1/ws");
    assert_int_equal(transport_parse_url("ws://[::1]:9/", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9);
    const char *bad[] = {"http://h", "ws://",     "ws://h:0",  "ws://h:65536",   "ws://h:x",
                         "ws://u@h", "ws://h/?q", "ws://[::1", "127.0.0.1:8080", NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        if (transport_parse_url(bad[i], &u) != STATUS_BAD_REQUEST)
            fail_msg("accepted %s", bad[i]);
}

/* A port on 127.0.0.1 with nothing listening: bound, then closed. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_carechat_fails_cleanly_without_server(void **state) {
    (void)state;
    char dir[400], url[64];
    snprintf(dir, sizeof dir, "%s/offline-%d", getenv("TEST_TMPDIR"), (int)getpid());
    snprintf(url, sizeof url, "ws://127.0.0.1:%d", closed_port());
    struct carechat_config cfg = {
        .server_url = url, .profile_dir = dir, .connect_timeout_ms = 3000};
    struct carechat *c = NULL;
    assert_int_equal(carechat_open(&cfg, &c), 0);

    /* No session: refused locally, before any connection. */
    struct carechat_retention r;
    memset(&r, 0x5a, sizeof r);
    const struct carechat_retention untouched = r;
    assert_int_equal(carechat_deactivate(c, NULL, &r), STATUS_BAD_REQUEST);
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_ARGUMENT);
    assert_int_equal(carechat_deactivate(c, "p@example.org", &r), STATUS_UNAUTHENTICATED);
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_SESSION);
    assert_memory_equal(&r, &untouched, sizeof r);
    /* The new account calls: arguments checked first, then the session. */
    assert_int_equal(carechat_get_retention(c, NULL, &r), STATUS_BAD_REQUEST);
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_ARGUMENT);
    assert_int_equal(carechat_reactivate(c, "p@example.org", NULL), STATUS_BAD_REQUEST);
    assert_int_equal(carechat_legal_hold(c, "p@example.org", true, NULL, &r), STATUS_BAD_REQUEST);
    assert_int_equal(carechat_legal_hold(c, "p@example.org", true, "", &r), STATUS_BAD_REQUEST);
    char reason[CARECHAT_MAX_REASON + 2];
    memset(reason, 'z', sizeof reason - 1);
    memcpy(reason, "SECRET-REASON", 13);
    reason[sizeof reason - 1] = '\0';
    assert_int_equal(carechat_legal_hold(c, "p@example.org", true, reason, &r), STATUS_BAD_REQUEST);
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_ARGUMENT);
    assert_null(strstr(carechat_error(c), "SECRET"));
    assert_int_equal(carechat_legal_hold(c, "p@example.org", true, "SECRET-REASON \xff", &r),
                     STATUS_BAD_REQUEST);
    assert_null(strstr(carechat_error(c), "SECRET"));
    reason[CARECHAT_MAX_REASON] = '\0'; /* the longest allowed: on to the session check */
    assert_int_equal(carechat_legal_hold(c, "p@example.org", true, reason, &r),
                     STATUS_UNAUTHENTICATED);
    assert_null(strstr(carechat_error(c), "SECRET"));
    assert_int_equal(carechat_legal_hold(c, "p@example.org", false, NULL, &r),
                     STATUS_UNAUTHENTICATED);
    assert_int_equal(carechat_get_retention(c, "p@example.org", &r), STATUS_UNAUTHENTICATED);
    assert_int_equal(carechat_reactivate(c, "p@example.org", &r), STATUS_UNAUTHENTICATED);
    assert_int_equal(carechat_unlock_login(c, NULL, NULL), STATUS_BAD_REQUEST);
    assert_int_equal(carechat_unlock_login(c, "p@example.org", NULL), STATUS_UNAUTHENTICATED);
    assert_memory_equal(&r, &untouched, sizeof r);
    struct carechat_account_page *page = NULL;
    struct carechat_page_token token = {.len = CARECHAT_MAX_PAGE_TOKEN + 1};
    assert_int_equal(carechat_list_accounts(c, CARECHAT_ROLE_PATIENT, 101, NULL, &page),
                     STATUS_BAD_REQUEST);
    assert_int_equal(carechat_list_accounts(c, (enum carechat_role)7, 10, NULL, &page),
                     STATUS_BAD_REQUEST);
    assert_int_equal(carechat_list_accounts(c, CARECHAT_ROLE_PATIENT, 10, &token, &page),
                     STATUS_BAD_REQUEST);
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_ARGUMENT);
    assert_int_equal(carechat_list_accounts(c, CARECHAT_ROLE_UNSPECIFIED, 0, NULL, &page),
                     STATUS_UNAUTHENTICATED);
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_SESSION);
    assert_null(page);
    carechat_account_page_free(NULL);
    struct carechat_devices *d = NULL;
    assert_int_equal(carechat_devices(c, &d), STATUS_UNAUTHENTICATED);
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_SESSION);
    assert_non_null(strstr(carechat_error(c), "carechat login"));
    assert_null(d);

    /* Nothing listening: a connection failure, quickly. */
    int64_t t0 = clock_monotonic_ms();
    assert_int_equal(carechat_login(c, "a@example.org", "password1"), STATUS_IO);
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_CONNECTION);
    assert_non_null(strstr(carechat_error(c), url));
    assert_true(clock_monotonic_ms() - t0 < 3000);
    carechat_close(c);

    /* The keys were generated and saved privately before the attempt. */
    struct stat st;
    char path[512];
    snprintf(path, sizeof path, "%s/profile", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A profile others can read is refused at open. */
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(carechat_open(&cfg, &c), STATUS_FORBIDDEN);
    assert_int_equal(chmod(dir, 0700), 0);

    struct carechat_config bad_url = {.server_url = "http://x", .profile_dir = dir};
    assert_int_equal(carechat_open(&bad_url, &c), STATUS_BAD_REQUEST);
    /* Passwords never go in plaintext to another machine. */
    struct carechat_config remote = {.server_url = "ws://chat.example.org", .profile_dir = dir};
    assert_int_equal(carechat_open(&remote, &c), STATUS_BAD_REQUEST);
    remote.server_url = "wss://chat.example.org";
    assert_int_equal(carechat_open(&remote, &c), 0);
    carechat_close(c);
}

/* A server that accepts TCP but never answers the upgrade: the connect
 * deadline holds. */
static void test_carechat_connect_deadline(void **state) {
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char dir[400], url[64];
    snprintf(dir, sizeof dir, "%s/silent-%d", getenv("TEST_TMPDIR"), (int)getpid());
    snprintf(url, sizeof url, "ws://127.0.0.1:%d", ntohs(sa.sin_port));
    struct carechat_config cfg = {.server_url = url, .profile_dir = dir, .connect_timeout_ms = 700};
    struct carechat *c = NULL;
    assert_int_equal(carechat_open(&cfg, &c), 0);
    int64_t t0 = clock_monotonic_ms();
    assert_int_equal(carechat_login(c, "a@example.org", "password1"), STATUS_UNAVAILABLE);
    int64_t took = clock_monotonic_ms() - t0;
    assert_int_equal(carechat_error_kind(c), CARECHAT_ERROR_CONNECTION);
    assert_true(took >= 600);
    assert_true(took < 5000);
    carechat_close(c);
    close(fd);
}

/* The configuration file: its three settings, comments and blank lines;
 * an unknown name, a repeat or an empty value is refused with its line. */
static void test_cli_parse_defaults(void **state) {
    (void)state;
    struct cli_defaults d;
    char err[160];
    assert_int_equal(cli_parse_defaults("# CareChat\n\nserver wss://chat.clinic.example\r\n"
                                        "ca_file /etc/ssl/clinic ca.pem\nprofile /home/a/p",
                                        &d, err, sizeof err),
                     0);
    assert_string_equal(d.server, "wss://chat.clinic.example");
    assert_string_equal(d.ca_file, "/etc/ssl/clinic ca.pem");
    assert_string_equal(d.profile, "/home/a/p");
    assert_int_equal(cli_parse_defaults("", &d, err, sizeof err), 0);
    assert_string_equal(d.server, "");
    assert_int_equal(cli_parse_defaults("server a\nservr b\n", &d, err, sizeof err), -1);
    assert_string_equal(err, "line 2: unknown setting (server, ca_file or profile)");
    assert_int_equal(cli_parse_defaults("server a\nserver b\n", &d, err, sizeof err), -1);
    assert_string_equal(err, "line 2: server given twice, empty or too long");
    assert_int_equal(cli_parse_defaults("profile\n", &d, err, sizeof err), -1);
    assert_string_equal(err, "line 1: profile given twice, empty or too long");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_parse_commands),
        cmocka_unit_test(test_cli_parse_refuses_bad_arguments),
        cmocka_unit_test(test_cli_json_text_keeps_utf8_and_control_characters),
        cmocka_unit_test(test_cli_json_text_replaces_ill_formed_bytes),
        cmocka_unit_test(test_cli_message_json_fields),
        cmocka_unit_test(test_carechat_state_and_reason_names),
        cmocka_unit_test(test_cli_iso_time),
        cmocka_unit_test(test_cli_retention_text),
        cmocka_unit_test(test_cli_retention_and_account_json),
        cmocka_unit_test(test_cli_read_password_file),
        cmocka_unit_test(test_cli_parse_defaults),
        cmocka_unit_test(test_transport_parse_url),
        cmocka_unit_test(test_carechat_fails_cleanly_without_server),
        cmocka_unit_test(test_carechat_connect_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
