/*
 * tests/cli_json_test.c: what `carechat --json` prints for text a peer chose,
 * against the real carechatd: every line it prints must parse as JSON
 * (jansson's strict parser, which refuses bytes that are not UTF-8) and give
 * back exactly the text that was sent.
 *
 *   - control characters, quotes, backslashes, U+2028 and a C1 control in a
 *     message: the text comes back byte for byte, and no raw ESC reaches the
 *     terminal;
 *   - a text that is not UTF-8 or holds a NUL byte is refused by libcarechat
 *     before sending (MessageContent strings are UTF-8 without NUL), so a
 *     received text is always UTF-8; what the CLI prints for one that is not
 *     (U+FFFD and "text_error") is client/cli_test.c's, and what libcarechat
 *     makes of such content (CARECHAT_MESSAGE_MALFORMED) client/content_test.c's.
 *     (Before MessageContent this test sent such bytes through libcarechat and
 *     the hand-written JSON printed lines that were not JSON.)
 *   - a display name with quotes and a backslash, in login, conversations and
 *     channel members;
 *   - send refuses --text that is not UTF-8 with exit 1 before it connects.
 *
 * One server for the group, bootstrapped like the other libcarechat tests;
 * the CLI is the real binary from the runfiles, run with a deadline. Every
 * wait has a deadline; everything is on 127.0.0.1.
 */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/buf.h"
#include "base/hex.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/carechat.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define PASSWORD "json-test-passphrase"
#define QUOTED_NAME "Dr \"Quote\" O'Brien \\ Jr"
#define MAX_LINES 16

static struct harness *server;
static char url[FIXTURE_URL_LEN];

static int group_setup(void **state) {
    if (fixture_start_bootstrapped(NULL, &server) != 0)
        return -1;
    fixture_url(server, url);
    return 0;
}

static int group_teardown(void **state) {
    return fixture_stop(server);
}

/* What one run of the CLI printed. */
struct run {
    int exit_code;
    char out[1 << 16];
    size_t out_len;
    bool raw_control;         /* stdout held a raw ESC or NUL byte */
    json_t *lines[MAX_LINES]; /* stdout, one parsed object per line */
    size_t n_lines;
};

static const char *cli_path(void) {
    static char path[PATH_MAX];
    const char *srcdir = getenv("TEST_SRCDIR");
    const char *ws = getenv("TEST_WORKSPACE");
    snprintf(path, sizeof path, "%s/%s/client/carechat", srcdir ? srcdir : ".", ws ? ws : "");
    return access(path, X_OK) == 0 ? path : "client/carechat";
}

/* Runs `timeout 60 carechat --server URL --profile PROFILE ARGS...` and parses
 * every stdout line as JSON, failing the test on a line that is not. */
static void cli(struct run *r, const char *profile, const char *const *args) {
    const char *argv[32] = {"timeout", "60", cli_path(), "--server", url, "--profile", profile};
    size_t n = 7;
    for (size_t i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        execvp("timeout", (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    r->out_len = 0;
    ssize_t got;
    while ((got = read(pipefd[0], r->out + r->out_len, sizeof r->out - 1 - r->out_len)) > 0)
        r->out_len += (size_t)got;
    close(pipefd[0]);
    r->out[r->out_len] = '\0';
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    r->raw_control = memchr(r->out, '\x1b', r->out_len) || memchr(r->out, '\0', r->out_len);
    r->n_lines = 0;
    for (char *line = r->out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        json_error_t err;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &err);
        if (j == NULL)
            fail_msg("line %zu of `carechat %s` is not JSON (%s): %s", r->n_lines + 1, args[1],
                     err.text, line);
        assert_true(r->n_lines < MAX_LINES);
        r->lines[r->n_lines++] = j;
    }
}

static void run_free(struct run *r) {
    for (size_t i = 0; i < r->n_lines; i++)
        json_decref(r->lines[i]);
    r->n_lines = 0;
}

static const char *field(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("no string field %s", key);
    return json_string_value(v);
}

/* The message of `r` with seq `seq`, or NULL. */
static json_t *by_seq(const struct run *r, uint64_t seq) {
    for (size_t i = 0; i < r->n_lines; i++)
        if (json_integer_value(json_object_get(r->lines[i], "seq")) == (json_int_t)seq)
            return r->lines[i];
    return NULL;
}

static void test_cli_json_prints_what_peers_sent(void **state) {
    char email[FIXTURE_EMAIL_LEN], root_dir[FIXTURE_DIR_LEN], pat_dir[FIXTURE_DIR_LEN],
        doc_dir[FIXTURE_DIR_LEN];
    fixture_fresh_profile("root", root_dir);
    struct carechat *root = fixture_open(url, root_dir);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    fixture_email("doc", email);
    struct carechat *doc = fixture_invite_register(url, root, email, CARECHAT_ROLE_PROVIDER,
                                                   PASSWORD, QUOTED_NAME, doc_dir);
    char pat_email[FIXTURE_EMAIL_LEN];
    fixture_email("pat", pat_email);
    struct carechat *pat = fixture_invite_register(url, doc, pat_email, CARECHAT_ROLE_PATIENT,
                                                   PASSWORD, "Pat", pat_dir);
    carechat_close(pat);

    struct carechat_conversation conv;
    FIXTURE_ASSERT_OK(doc, carechat_open_direct(doc, pat_email, &conv));
    static const char bad_utf8[] = "caf\xe9 \xff\xfe ok \xe2\x82";
    static const char with_nul[] = "a\0b";
    static const char controls[] =
        "a\x01b \x1b[31mred\x1b[0m \x07\t\n\r \x7f \"q\" \\ \xc2\x9b \xe2\x80\xa8 end";
    assert_int_equal(carechat_send(doc, &conv.conversation_id, (const uint8_t *)bad_utf8,
                                   sizeof bad_utf8 - 1, NULL, NULL),
                     STATUS_BAD_REQUEST);
    assert_int_equal(carechat_send(doc, &conv.conversation_id, (const uint8_t *)with_nul,
                                   sizeof with_nul - 1, NULL, NULL),
                     STATUS_BAD_REQUEST);
    struct carechat_sent s_ctl;
    FIXTURE_ASSERT_OK(doc, carechat_send(doc, &conv.conversation_id, (const uint8_t *)controls,
                                         sizeof controls - 1, NULL, &s_ctl));

    struct run *r = calloc(1, sizeof *r);
    const char *recv_args[] = {"--json", "recv", "--wait", "1", NULL};
    cli(r, pat_dir, recv_args);
    assert_int_equal(r->exit_code, 0);
    assert_int_equal(r->n_lines, 1);
    json_t *m = by_seq(r, s_ctl.seq);
    assert_non_null(m);
    json_t *text = json_object_get(m, "text");
    assert_int_equal(json_string_length(text), sizeof controls - 1);
    assert_memory_equal(json_string_value(text), controls, sizeof controls - 1);
    assert_null(json_object_get(m, "text_error"));
    /* No raw escape or NUL byte reaches the terminal from JSON output. */
    assert_false(r->raw_control);
    run_free(r);

    char conv_hex[ID_HEX_LEN + 1];
    id_to_hex(&conv.conversation_id, conv_hex);
    const char *history_args[] = {"--json", "history", "--conversation", conv_hex, NULL};
    cli(r, pat_dir, history_args);
    assert_int_equal(r->exit_code, 0);
    assert_int_equal(r->n_lines, 1);
    assert_string_equal(field(by_seq(r, s_ctl.seq), "state"), "ok");
    run_free(r);

    /* The quoted name, as the server and then the CLI show it. */
    const char *conversations_args[] = {"--json", "conversations", NULL};
    cli(r, pat_dir, conversations_args);
    assert_int_equal(r->exit_code, 0);
    assert_int_equal(r->n_lines, 1);
    json_t *members = json_object_get(r->lines[0], "members");
    bool found = false;
    for (size_t i = 0; i < json_array_size(members); i++)
        found |= strcmp(field(json_array_get(members, i), "display_name"), QUOTED_NAME) == 0;
    assert_true(found);
    run_free(r);

    char doc_pw[FIXTURE_DIR_LEN + 8];
    snprintf(doc_pw, sizeof doc_pw, "%s.pw", doc_dir);
    FILE *f = fopen(doc_pw, "w");
    assert_non_null(f);
    fputs(PASSWORD "\n", f);
    fclose(f);
    const char *login_args[] = {"--json",          "login", "--email", email,
                                "--password-file", doc_pw,  NULL};
    cli(r, doc_dir, login_args);
    assert_int_equal(r->exit_code, 0);
    assert_int_equal(r->n_lines, 1);
    assert_string_equal(field(r->lines[0], "display_name"), QUOTED_NAME);
    run_free(r);

    /* Not UTF-8: refused before anything is sent. */
    const char *send_args[] = {"--json",  "send", "--conversation", conv_hex, "--text",
                               "caf\xe9", NULL};
    cli(r, doc_dir, send_args);
    assert_int_equal(r->exit_code, 1);
    assert_int_equal(r->n_lines, 0);
    run_free(r);
    free(r);

    carechat_conversation_cleanup(&conv);
    carechat_close(doc);
    carechat_close(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_json_prints_what_peers_sent),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
