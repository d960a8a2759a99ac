/*
 * tests/startup_test.c: what carechatd refuses at start (issue 15), each case
 * run on the real binary with its exit status, its message and what it left
 * on disk:
 *   - a data directory that is missing, incomplete (CURRENT and the WAL gone)
 *     or not mounted (the database gone, the keys there; or the key volume
 *     gone, the database there) is refused with exit status 4 and a message
 *     naming what is missing, and every file that was there is still there,
 *     byte for byte; `carechatd init` refuses to create a
 *     database over a database or over a key directory holding keys, and
 *     `bootstrap` does not create one;
 *   - a TLS key that is not the certificate's, a TLS key file or a key
 *     directory group or others may read, and a master key missing beside
 *     existing data keys are refused with exit status 2 and a message naming
 *     the file, before anything is written (no new master key, no data
 *     directory);
 *   - --clock-offset (a test seam) is refused with exit status 2 unless the
 *     environment has CARECHAT_TEST_CLOCK=1, and taken with it;
 *   - --help states the default and the allowed range of every numeric option,
 *     and the binary agrees: both ends are accepted (the run then stops at the
 *     missing data directory, exit 4), one past either end is refused (exit 2,
 *     the message naming the option and the same range);
 *   - a disk reserve below its floor (--min-free-bytes 0 or under 128 MiB,
 *     --min-free-key-bytes under 1 MiB) is refused with exit status 2;
 *   - a running carechatd has a core file size limit of 0 (soft and hard, in
 *     /proc/PID/limits) and is not dumpable: run without capabilities, its
 *     /proc/PID/environ cannot be read by a process of the same user without
 *     capabilities (the kernel's ptrace read check), while a dumpable one's can.
 *
 * Every server is started on 127.0.0.1 with a fresh data directory under
 * $TEST_TMPDIR; every run has a deadline (harness_run()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/version.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define RUN_DEADLINE_MS 60000
#define EXIT_CONFIG 2
#define EXIT_DATA 4

/* Runs carechatd with `args` to its end; fails the test unless it exits with
 * `status` and its output contains every string of `said` (NULL-terminated). */
static void expect_exit(const char *const *args, int status, const char *const *said) {
    struct buf out;
    buf_init(&out);
    int got = -1;
    assert_int_equal(harness_run(args, NULL, RUN_DEADLINE_MS, &got, &out), 0);
    buf_append_u8(&out, 0);
    const char *text = (const char *)out.data;
    if (got != status)
        fail_msg("%s exited with %d, expected %d:\n%s", args[0], got, status, text);
    for (size_t i = 0; said && said[i]; i++) {
        if (!strstr(text, said[i]))
            fail_msg("%s: the output does not say \"%s\":\n%s", args[0], said[i], text);
    }
    buf_cleanup(&out);
}

#define DATA_PATH_LEN (PATH_MAX + 16)

/* The path of a data directory that does not exist (in a fresh directory whose
 * name starts with `prefix`), into out. */
static void missing_data_dir(const char *prefix, char out[DATA_PATH_LEN]) {
    char dir[PATH_MAX];
    harness_tmpdir(prefix, dir);
    snprintf(out, DATA_PATH_LEN, "%s/data", dir);
}

/* Fails unless nothing is at `path`: a refusal made nothing. */
static void expect_absent(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0)
        fail_msg("%s was created", path);
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Every file under `dir` (recursively, sorted by readdir order of each
 * directory, which is stable while nothing changes) with its size and a hash
 * of its bytes, one per line. */
static void snapshot(const char *dir, struct buf *out) {
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dir, name);
            struct stat st;
            assert_int_equal(lstat(path, &st), 0);
            if (S_ISDIR(st.st_mode)) {
                buf_printf(out, "%s/\n", path);
                snapshot(path, out);
            } else {
                struct buf bytes;
                buf_init(&bytes);
                FILE *f = fopen(path, "rb");
                assert_non_null(f);
                uint8_t chunk[65536];
                size_t k;
                while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
                    buf_append(&bytes, chunk, k);
                fclose(f);
                buf_printf(out, "%s %zu %016llx\n", path, bytes.len,
                           (unsigned long long)fnv1a(bytes.data, bytes.len));
                buf_cleanup(&bytes);
            }
        }
        free(names[i]);
    }
    free(names);
}

static void expect_same(const struct buf *before, const struct buf *after) {
    if (before->len == after->len && memcmp(before->data, after->data, before->len) == 0)
        return;
    fprintf(stderr, "before:\n%.*s\nafter:\n%.*s\n", (int)before->len, (const char *)before->data,
            (int)after->len, (const char *)after->data);
    fail_msg("the files on disk changed (listed above)");
}

/* A data directory with a system administrator in it (init, bootstrap, a
 * start and a clean stop, so the records are in table files). The caller
 * frees the harness. */
static struct harness *stopped_server_with_data(void) {
    struct harness *h = NULL;
    assert_int_equal(fixture_start_bootstrapped(NULL, &h), 0);
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    assert_int_equal(status, 0);
    return h;
}

/* Deletes the files of `dir` whose names end in `suffix` (or equal it, for a
 * suffix without a dot); returns how many. */
static int delete_files(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    size_t k = strlen(suffix);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        bool match = suffix[0] == '.' ? len > k && strcmp(de->d_name + len - k, suffix) == 0
                                      : strcmp(de->d_name, suffix) == 0;
        if (match) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            assert_int_equal(unlink(path), 0);
            n++;
        }
    }
    closedir(d);
    return n;
}

static void test_startup_refuses_database_without_current_and_wal(void **state) {
    struct harness *h = stopped_server_with_data();
    char db[PATH_MAX + 8];
    snprintf(db, sizeof db, "%s/db", h->data_dir);
    assert_int_equal(delete_files(db, "CURRENT"), 1);
    assert_true(delete_files(db, ".log") >= 1);
    struct buf before, after;
    buf_init(&before);
    buf_init(&after);
    snapshot(h->data_dir, &before);
    assert_non_null(strstr((const char *)before.data, ".sst "));

    const char *serve[] = {"--listen", "127.0.0.1:0", "--data", h->data_dir, NULL};
    const char *said[] = {"CURRENT is missing", "holds keys", "refusing to start", NULL};
    expect_exit(serve, EXIT_DATA, said);
    snapshot(h->data_dir, &after);
    expect_same(&before, &after);

    /* init does not "repair" it either */
    const char *init[] = {"init", "--data", h->data_dir, NULL};
    const char *init_said[] = {"refused", "exists", NULL};
    expect_exit(init, EXIT_DATA, init_said);
    buf_reset(&after);
    snapshot(h->data_dir, &after);
    expect_same(&before, &after);
    buf_cleanup(&before);
    buf_cleanup(&after);
    harness_free(h);
}

static void test_startup_refuses_unmounted_or_missing_data(void **state) {
    struct harness *h = stopped_server_with_data();
    /* the data volume not mounted: its database is elsewhere, the keys are here */
    char db[PATH_MAX + 8], away[PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/db", h->data_dir);
    snprintf(away, sizeof away, "%s/db.away", h->data_dir);
    assert_int_equal(rename(db, away), 0);
    struct buf before, after;
    buf_init(&before);
    buf_init(&after);
    snapshot(h->data_dir, &before);
    const char *serve[] = {"--listen", "127.0.0.1:0", "--data", h->data_dir, NULL};
    const char *said[] = {"CURRENT is missing", "holds keys", "not mounted?", NULL};
    expect_exit(serve, EXIT_DATA, said);
    const char *init[] = {"init", "--data", h->data_dir, NULL};
    const char *init_said[] = {"holds the keys of another database", NULL};
    expect_exit(init, EXIT_DATA, init_said);
    snapshot(h->data_dir, &after);
    expect_same(&before, &after);

    /* the database back, the key volume not mounted: no new key store */
    char keys[PATH_MAX + 8], keys_away[PATH_MAX + 16];
    snprintf(keys, sizeof keys, "%s/keys", h->data_dir);
    snprintf(keys_away, sizeof keys_away, "%s/keys.away", h->data_dir);
    assert_int_equal(rename(away, db), 0);
    assert_int_equal(rename(keys, keys_away), 0);
    buf_reset(&before);
    snapshot(h->data_dir, &before);
    const char *keys_said[] = {"key directory", "does not exist", "not mounted?", NULL};
    expect_exit(serve, EXIT_DATA, keys_said);
    buf_reset(&after);
    snapshot(h->data_dir, &after);
    expect_same(&before, &after);

    /* no data directory at all: refused, and nothing is created */
    char missing[PATH_MAX + 16];
    snprintf(missing, sizeof missing, "%s/nowhere", h->data_dir);
    const char *serve_missing[] = {"--listen", "127.0.0.1:0", "--data", missing, NULL};
    const char *missing_said[] = {"No such file", "carechatd init", NULL};
    expect_exit(serve_missing, EXIT_DATA, missing_said);
    expect_absent(missing);
    buf_cleanup(&before);
    buf_cleanup(&after);
    harness_free(h);
}

static void test_startup_init_refuses_a_key_directory_with_keys(void **state) {
    char dir[PATH_MAX], data[PATH_MAX + 8], keys[PATH_MAX + 8], data2[PATH_MAX + 8];
    harness_tmpdir("init-keys", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(data2, sizeof data2, "%s/data2", dir);
    const char *init[] = {"init", "--data", data, "--key-dir", keys, NULL};
    const char *ok[] = {"initialised", NULL};
    expect_exit(init, 0, ok);
    /* a second database beside the first one's keys (a fresh, empty data
     * volume with the key volume still holding the old keys) */
    struct buf before, after;
    buf_init(&before);
    buf_init(&after);
    snapshot(dir, &before);
    const char *again[] = {"init", "--data", data2, "--key-dir", keys, NULL};
    const char *said[] = {"holds the keys of another database", NULL};
    expect_exit(again, EXIT_DATA, said);
    snapshot(dir, &after);
    expect_same(&before, &after);
    /* bootstrap does not create a database either */
    char pw[PATH_MAX + 8];
    snprintf(pw, sizeof pw, "%s/pw", dir);
    FILE *f = fopen(pw, "w");
    assert_non_null(f);
    fputs("a long enough password\n", f);
    fclose(f);
    const char *boot[] = {
        "bootstrap",        "--data",          data2, "--key-dir", keys, "--email",
        "x@clinic.example", "--password-file", pw,    NULL};
    const char *boot_said[] = {"carechatd init", NULL};
    expect_exit(boot, EXIT_DATA, boot_said);
    expect_absent(data2);
    buf_cleanup(&before);
    buf_cleanup(&after);
}

/* Makes a self-signed P-256 certificate and its key (mode 0600) in `dir` as
 * NAME.pem and NAME.key, with the openssl command. */
static void make_cert(const char *dir, const char *name) {
    char cmd[4 * PATH_MAX];
    snprintf(
        cmd, sizeof cmd,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
        "'%s/%s.key' -out '%s/%s.pem' -days 2 -subj /CN=localhost >/dev/null 2>&1 && chmod 600 "
        "'%s/%s.key'",
        dir, name, dir, name, dir, name);
    assert_int_equal(system(cmd), 0);
}

static void test_startup_refuses_bad_tls_files(void **state) {
    char dir[PATH_MAX], data[PATH_MAX + 8], cert_a[PATH_MAX + 8], key_a[PATH_MAX + 8],
        key_b[PATH_MAX + 8];
    harness_tmpdir("tls-files", dir);
    make_cert(dir, "a");
    make_cert(dir, "b");
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(cert_a, sizeof cert_a, "%s/a.pem", dir);
    snprintf(key_a, sizeof key_a, "%s/a.key", dir);
    snprintf(key_b, sizeof key_b, "%s/b.key", dir);
    /* the key of another certificate */
    const char *mismatch[] = {"--data", data, "--tls-cert", cert_a, "--tls-key", key_b, NULL};
    const char *mismatch_said[] = {"does not match the certificate", "b.key", NULL};
    expect_exit(mismatch, EXIT_CONFIG, mismatch_said);
    const char *init[] = {"init", "--data", data, "--tls-cert", cert_a, "--tls-key", key_b, NULL};
    expect_exit(init, EXIT_CONFIG, mismatch_said);
    /* a key others may read */
    assert_int_equal(chmod(key_a, 0640), 0);
    const char *loose[] = {"--data", data, "--tls-cert", cert_a, "--tls-key", key_a, NULL};
    const char *loose_said[] = {"a.key", "group or others", "chmod 600", NULL};
    expect_exit(loose, EXIT_CONFIG, loose_said);
    assert_int_equal(chmod(key_a, 0604), 0);
    expect_exit(loose, EXIT_CONFIG, loose_said);
    /* refused before anything was made */
    expect_absent(data);
    /* the pair as it should be passes the check (then the missing data
     * directory stops it) */
    assert_int_equal(chmod(key_a, 0600), 0);
    const char *missing_said[] = {"No such file", NULL};
    expect_exit(loose, EXIT_DATA, missing_said);
}

static void test_startup_refuses_open_key_dir_and_lost_master_key(void **state) {
    struct harness *h = stopped_server_with_data();
    char keys[PATH_MAX + 8], master[PATH_MAX + 24];
    snprintf(keys, sizeof keys, "%s/keys", h->data_dir);
    snprintf(master, sizeof master, "%s/master.key", keys);
    const char *serve[] = {"--listen",  "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data",
                           h->data_dir, NULL};
    /* a key directory group or others may enter */
    assert_int_equal(chmod(keys, 0750), 0);
    const char *open_said[] = {"refusing key directory", "chmod 700", NULL};
    expect_exit(serve, EXIT_CONFIG, open_said);
    assert_int_equal(chmod(keys, 0700), 0);
    /* the master key gone while the data keys are there: no new one */
    char saved[PATH_MAX + 32];
    snprintf(saved, sizeof saved, "%s/master.key.saved", h->data_dir);
    assert_int_equal(rename(master, saved), 0);
    struct buf before, after;
    buf_init(&before);
    buf_init(&after);
    snapshot(h->data_dir, &before);
    const char *lost_said[] = {"master.key is missing", "a new one would not open them", NULL};
    expect_exit(serve, EXIT_CONFIG, lost_said);
    const char *audit[] = {"audit-verify", "--data", h->data_dir, NULL};
    expect_exit(audit, EXIT_CONFIG, lost_said);
    snapshot(h->data_dir, &after);
    expect_same(&before, &after);
    /* put back, it serves again */
    assert_int_equal(rename(saved, master), 0);
    assert_int_equal(harness_restart(h), 0);
    buf_cleanup(&before);
    buf_cleanup(&after);
    harness_free(h);
}

static void test_startup_clock_offset_needs_the_test_environment(void **state) {
    /* harness_run() gives carechatd no CARECHAT_TEST_CLOCK */
    char data[DATA_PATH_LEN];
    missing_data_dir("clock", data);
    const char *serve[] = {"--data", data, "--clock-offset", "3600000", NULL};
    const char *said[] = {"clock-offset", "CARECHAT_TEST_CLOCK=1", NULL};
    expect_exit(serve, EXIT_CONFIG, said);
    const char *init[] = {"init", "--data", data, "--clock-offset", "3600000", NULL};
    expect_exit(init, EXIT_CONFIG, said);
    expect_absent(data);
    /* the harness's servers have it: the offset is taken (and logged) */
    const char *args[] = {"--clock-offset", "3600000", NULL};
    struct harness *h = NULL;
    assert_int_equal(harness_start(args, &h), 0);
    assert_true(harness_log_contains(h, "clock offset of 3600000 ms"));
    harness_free(h);
}

static void test_startup_refuses_a_disk_reserve_below_its_floor(void **state) {
    char data[DATA_PATH_LEN];
    missing_data_dir("reserve", data);
    const char *off[] = {"--data", data, "--min-free-bytes", "0", NULL};
    const char *off_said[] = {"min-free-bytes", "128m or more", NULL};
    expect_exit(off, EXIT_CONFIG, off_said);
    const char *small[] = {"--data", data, "--min-free-bytes", "100m", NULL};
    expect_exit(small, EXIT_CONFIG, off_said);
    const char *key[] = {"--data", data, "--min-free-key-bytes", "0", NULL};
    const char *key_said[] = {"min-free-key-bytes", "1m or more", NULL};
    expect_exit(key, EXIT_CONFIG, key_said);
    expect_absent(data);
}

/* A number as --help writes it: digits with an optional k, m or g (binary). */
static uint64_t parse_shown(const char *s) {
    char *end;
    uint64_t v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k':
        return v << 10;
    case 'm':
        return v << 20;
    case 'g':
        return v << 30;
    default:
        return v;
    }
}

/* Runs carechatd on a missing data directory with `--name value` (and what
 * the option must be paired with); returns the exit status and the output. */
static int run_option(const char *name, uint64_t value, struct buf *out) {
    static const char *const companions[][3] = {
        {"ping-interval", "--idle-timeout", "65535"},
        {"idle-timeout", "--ping-interval", "1"},
        {"session-idle", "--session-max", "7776000"},
        {"session-max", "--session-idle", "1"},
    };
    char data[DATA_PATH_LEN], flag[64], arg[32];
    missing_data_dir("range", data);
    snprintf(flag, sizeof flag, "--%s", name);
    snprintf(arg, sizeof arg, "%llu", (unsigned long long)value);
    const char *args[10] = {"--listen", "127.0.0.1:0", "--data", data};
    int n = 4;
    for (size_t i = 0; i < sizeof companions / sizeof companions[0]; i++) {
        if (strcmp(companions[i][0], name) == 0) {
            args[n++] = companions[i][1];
            args[n++] = companions[i][2];
        }
    }
    args[n++] = flag;
    args[n++] = arg;
    args[n] = NULL;
    int status = -1;
    buf_reset(out);
    assert_int_equal(harness_run(args, NULL, RUN_DEADLINE_MS, &status, out), 0);
    buf_append_u8(out, 0);
    return status;
}

static void expect_option(const char *name, uint64_t value, bool accepted, const char *range) {
    struct buf out;
    buf_init(&out);
    int status = run_option(name, value, &out);
    const char *text = (const char *)out.data;
    if (accepted && status != EXIT_DATA)
        fail_msg("--%s %llu is in the range --help gives, yet exit %d:\n%s", name,
                 (unsigned long long)value, status, text);
    if (!accepted && (status != EXIT_CONFIG || !strstr(text, name) || !strstr(text, range)))
        fail_msg("--%s %llu is outside %s, yet exit %d:\n%s", name, (unsigned long long)value,
                 range, status, text);
    buf_cleanup(&out);
}

/* --version, and --help of carechatd and of every subcommand: exit 0 with
 * the text on stdout. */
static void test_startup_version_and_subcommand_help(void **state) {
    (void)state;
    static const char *const runs[][3] = {
        {"--version", NULL, "carechatd " CARECHAT_VERSION},
        {"--help", NULL, "carechatd bootstrap"},
        {"init", "--help", "usage: carechatd init"},
        {"bootstrap", "--help", "usage: carechatd"},
        {"audit-verify", "--help", "usage: carechatd audit-verify"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const char *args[] = {runs[i][0], runs[i][1], NULL};
        struct buf out;
        buf_init(&out);
        int status = -1;
        assert_int_equal(harness_run(args, NULL, RUN_DEADLINE_MS, &status, &out), 0);
        buf_append_u8(&out, 0);
        if (status != 0 || !strstr((const char *)out.data, runs[i][2]))
            fail_msg("carechatd %s %s: exit %d, without '%s':\n%s", runs[i][0],
                     runs[i][1] ? runs[i][1] : "", status, runs[i][2], (const char *)out.data);
        buf_cleanup(&out);
    }
}

/* `carechatd rotate-master-key`: refused without --new-master-key or with a
 * loose key file; then it re-wraps the key store under the new key, which the
 * server needs from then on (the old one no longer opens it) and with which
 * the bootstrap administrator still logs in (the blind index and the data
 * keys survived). */
static void test_startup_rotate_master_key(void **state) {
    struct harness *h = stopped_server_with_data();
    char newkey[PATH_MAX + 16];
    snprintf(newkey, sizeof newkey, "%s.new.key", h->data_dir);
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    FILE *f = fopen(newkey, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(key, 1, sizeof key, f), sizeof key);
    fclose(f);
    const char *missing[] = {"rotate-master-key", "--data", h->data_dir, NULL};
    const char *missing_said[] = {"--new-master-key FILE is required", NULL};
    expect_exit(missing, EXIT_CONFIG, missing_said);
    assert_int_equal(chmod(newkey, 0644), 0);
    const char *rotate[] = {"rotate-master-key", "--data", h->data_dir,
                            "--new-master-key",  newkey,   NULL};
    expect_exit(rotate, EXIT_CONFIG, NULL);
    assert_int_equal(chmod(newkey, 0600), 0);
    const char *rotated[] = {"old master key id", "new master key id", "master key rotated", NULL};
    expect_exit(rotate, 0, rotated);
    /* the old master key (KEY_DIR/master.key) no longer opens the store */
    const char *audit_old[] = {"audit-verify", "--data", h->data_dir, NULL};
    const char *old_said[] = {"is wrapped by master key", NULL};
    expect_exit(audit_old, 1, old_said);
    const char *audit_new[] = {"audit-verify", "--data", h->data_dir, "--master-key", newkey, NULL};
    const char *intact[] = {"audit chain intact", NULL};
    expect_exit(audit_new, 0, intact);
    assert_true(h->n_args + 2 <= HARNESS_MAX_ARGS);
    h->args[h->n_args++] = strdup("--master-key");
    h->args[h->n_args++] = strdup(newkey);
    assert_int_equal(harness_restart(h), 0);
    char url[FIXTURE_URL_LEN], dir[FIXTURE_DIR_LEN];
    fixture_url(h, url);
    fixture_fresh_profile("rekey", dir);
    struct carechat *root = fixture_open(url, dir);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    carechat_close(root);
    assert_int_equal(fixture_stop(h), 0);
}

static void test_startup_help_ranges_are_what_is_enforced(void **state) {
    const char *help[] = {"--help", NULL};
    struct buf out;
    buf_init(&out);
    int status = -1;
    assert_int_equal(harness_run(help, NULL, RUN_DEADLINE_MS, &status, &out), 0);
    assert_int_equal(status, 0);
    buf_append_u8(&out, 0);
    char *text = (char *)out.data;
    int numeric = 0;
    bool invite_burst = false, invite_window = false;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "  --", 4) != 0)
            continue;
        char name[64];
        assert_int_equal(sscanf(line + 4, "%63s", name), 1);
        const char *def = strstr(line, "[default ");
        const char *allowed = strstr(line, "; allowed ");
        if (!allowed)
            continue; /* not a numeric option */
        assert_non_null(def);
        numeric++;
        invite_burst |= strcmp(name, "invite-burst") == 0;
        invite_window |= strcmp(name, "invite-window") == 0;
        char lo[24] = "", hi[24] = "", range[64];
        const char *r = allowed + 10;
        bool open_ended = strstr(r, " or more]") != NULL;
        if (open_ended) {
            assert_int_equal(sscanf(r, "%23[0-9kmg] or more]", lo), 1);
            snprintf(range, sizeof range, "%s or more", lo);
        } else {
            assert_int_equal(sscanf(r, "%23[0-9kmg]..%23[0-9kmg]]", lo, hi), 2);
            snprintf(range, sizeof range, "%s..%s", lo, hi);
        }
        uint64_t min = parse_shown(lo);
        expect_option(name, min, true, range);
        if (min > 0)
            expect_option(name, min - 1, false, range);
        if (!open_ended) {
            uint64_t max = parse_shown(hi);
            expect_option(name, max, true, range);
            expect_option(name, max + 1, false, range);
        }
    }
    assert_true(numeric >= 20);
    assert_true(invite_burst && invite_window);
    buf_cleanup(&out);
}

/* ---- core dumps -------------------------------------------------------------- */

/* Fails unless /proc/PID/limits says the core file size is 0, soft and hard. */
static void expect_no_core_limit(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    bool seen = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Max core file size", 18) != 0)
            continue;
        char soft[32], hard[32];
        assert_int_equal(sscanf(line + 18, "%31s %31s", soft, hard), 2);
        if (strcmp(soft, "0") != 0 || strcmp(hard, "0") != 0)
            fail_msg("core file size limit is %s (soft) / %s (hard), expected 0 / 0", soft, hard);
        seen = true;
    }
    fclose(f);
    assert_true(seen);
}

/* Drops every capability of the calling process, and as root first makes sure
 * an execve() does not give them back (SECBIT_NOROOT). Returns 0 or -1. */
static int drop_capabilities(void) {
    if (geteuid() == 0 &&
        prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0) != 0)
        return -1;
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct none[2];
    memset(none, 0, sizeof none);
    return (int)syscall(SYS_capset, &hdr, none);
}

/* Forks `argv` without capabilities (see drop_capabilities()), its output
 * appended to `log`. */
static pid_t spawn_without_caps(char *const *argv, const char *log) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (drop_capabilities() != 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    return pid;
}

/* Whether a process of the same user, without capabilities like its target,
 * may read the memory-backed /proc/PID/environ: the kernel's ptrace read
 * check allows it only while PID is dumpable. Returns 1 (read), 0 (refused) or
 * -1 (something else went wrong). */
static int environ_readable(pid_t pid) {
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (drop_capabilities() != 0)
            _exit(3);
        char path[64], byte;
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, &byte, 1) : -1;
        _exit(n >= 0 ? 0 : errno == EACCES || errno == EPERM ? 1 : 2);
    }
    int ws = 0;
    assert_int_equal(waitpid(child, &ws, 0), child);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) > 1)
        return -1;
    return WEXITSTATUS(ws) == 0 ? 1 : 0;
}

static void wait_for_log(const char *log, const char *text, pid_t pid) {
    int64_t deadline = clock_monotonic_ms() + HARNESS_START_DEADLINE_MS;
    for (;;) {
        struct buf b;
        buf_init(&b);
        FILE *f = fopen(log, "r");
        if (f) {
            char chunk[4096];
            size_t n;
            while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
                buf_append(&b, chunk, n);
            fclose(f);
        }
        buf_append_u8(&b, 0);
        bool found = strstr((const char *)b.data, text) != NULL;
        if (!found && (clock_monotonic_ms() >= deadline || waitpid(pid, NULL, WNOHANG) != 0))
            fail_msg("no \"%s\" from pid %d:\n%s", text, (int)pid, (const char *)b.data);
        buf_cleanup(&b);
        if (found)
            return;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000L}, NULL);
    }
}

static void stop(pid_t pid) {
    kill(pid, SIGTERM);
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
}

static void test_startup_forbids_core_dumps(void **state) {
    char dir[PATH_MAX], data[PATH_MAX + 8], log[PATH_MAX + 8];
    harness_tmpdir("dumps", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    const char *init[] = {"init", "--data", data, NULL};
    expect_exit(init, 0, NULL);
    /* The control: a dumpable process without capabilities is readable. */
    char *sleeper[] = {"/bin/sleep", "30", NULL};
    pid_t control = spawn_without_caps(sleeper, log);
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000L}, NULL);
    assert_int_equal(environ_readable(control), 1);
    stop(control);

    char *serve[] = {(char *)harness_binary(), "--listen", "127.0.0.1:0", "--data", data, NULL};
    pid_t pid = spawn_without_caps(serve, log);
    wait_for_log(log, "listening on", pid);
    expect_no_core_limit(pid);
    if (environ_readable(pid) != 0)
        fail_msg("carechatd (pid %d) is dumpable: its /proc/PID/environ is readable", (int)pid);
    stop(pid);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_refuses_database_without_current_and_wal),
        cmocka_unit_test(test_startup_refuses_unmounted_or_missing_data),
        cmocka_unit_test(test_startup_init_refuses_a_key_directory_with_keys),
        cmocka_unit_test(test_startup_refuses_bad_tls_files),
        cmocka_unit_test(test_startup_refuses_open_key_dir_and_lost_master_key),
        cmocka_unit_test(test_startup_rotate_master_key),
        cmocka_unit_test(test_startup_clock_offset_needs_the_test_environment),
        cmocka_unit_test(test_startup_refuses_a_disk_reserve_below_its_floor),
        cmocka_unit_test(test_startup_version_and_subcommand_help),
        cmocka_unit_test(test_startup_help_ranges_are_what_is_enforced),
        cmocka_unit_test(test_startup_forbids_core_dumps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
