/* server/config_test.c: unit tests for defaults, the config file, flags and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/config.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char err[512];

static int load(int argc, char **argv, struct server_config *cfg) {
    bool help;
    int rc = config_load(argc, argv, cfg, &help, err, sizeof err);
    assert_false(help);
    return rc;
}

static const char *write_file(const char *name, const char *text) {
    static char path[512];
    const char *dir = getenv("TEST_TMPDIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "/tmp", name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_config_defaults(void **state) {
    char *argv[] = {"carechatd"};
    struct server_config cfg;
    assert_int_equal(load(ARGC(argv), argv, &cfg), 0);
    assert_string_equal(cfg.listen.host, "127.0.0.1");
    /* The privacy promise's windows, and a maintenance that does not spin. */
    assert_int_equal(cfg.review_days, 30);
    assert_int_equal(cfg.restriction_days, 365);
    assert_int_equal(cfg.restore_days, 30);
    assert_int_equal(cfg.maintenance_interval_s, 60);
    assert_int_equal(cfg.listen.port, 8080);
    assert_string_equal(cfg.metrics_listen.host, "127.0.0.1");
    assert_int_equal(cfg.metrics_listen.port, 9464);
    assert_string_equal(cfg.data_dir, "./carechat-data");
    assert_null(cfg.key_dir);
    assert_null(cfg.tls_cert);
    assert_int_equal(cfg.max_frame, 256 * 1024);
    assert_int_equal(cfg.auth_timeout_s, 10);
    assert_true(cfg.ping_interval_s < cfg.idle_timeout_s);
    assert_int_equal(cfg.max_conns_per_ip, 64);
    assert_int_equal(cfg.min_free_bytes, 256ull << 20);
    assert_int_equal(cfg.n_allowed_origins, 0);
    assert_int_equal(cfg.log_level, LOG_INFO);
    /* The key backup: 128 KiB segments, 256 of them, 16 MiB per account. */
    assert_int_equal(config_key_backup_segment_max(&cfg), 128 * 1024);
    assert_int_equal(cfg.key_backup_max_segments, 256);
    assert_int_equal(cfg.key_backup_quota, 16 << 20);
    cfg.max_frame = 4096;
    assert_int_equal(config_key_backup_segment_max(&cfg), 3072);
    config_cleanup(&cfg);
}

static void test_config_flags_override(void **state) {
    char *argv[] = {"carechatd",
                    "--listen",
                    "127.0.0.1:0",
                    "--data=/tmp/x",
                    "--max-frame",
                    "1m",
                    "--auth-timeout",
                    "2",
                    "--allowed-origin",
                    "https://a.example",
                    "--allowed-origin=https://b.example",
                    "--log-level",
                    "debug",
                    "--clock-offset",
                    "-5000"};
    struct server_config cfg;
    setenv("CARECHAT_TEST_CLOCK", "1", 1);
    assert_int_equal(load(ARGC(argv), argv, &cfg), 0);
    unsetenv("CARECHAT_TEST_CLOCK");
    assert_int_equal(cfg.listen.port, 0);
    assert_string_equal(cfg.data_dir, "/tmp/x");
    assert_int_equal(cfg.max_frame, 1 << 20);
    assert_int_equal(cfg.auth_timeout_s, 2);
    assert_int_equal(cfg.n_allowed_origins, 2);
    assert_string_equal(cfg.allowed_origins[1], "https://b.example");
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.clock_offset_ms, -5000);
    config_cleanup(&cfg);
}

static void test_config_file_then_flags(void **state) {
    const char *path = write_file("carechatd.conf", "# comment\n"
                                                    "listen = 127.0.0.1:9001\n"
                                                    "data = /srv/carechat   # trailing comment\n"
                                                    "\n"
                                                    "ping-interval = 20\n"
                                                    "allowed-origin = https://file.example\n"
                                                    "insecure-no-tls = false\n");
    char *argv[] = {"carechatd", "--ping-interval", "5", "--config", (char *)path};
    struct server_config cfg;
    assert_int_equal(load(ARGC(argv), argv, &cfg), 0);
    assert_int_equal(cfg.listen.port, 9001);
    assert_string_equal(cfg.data_dir, "/srv/carechat");
    assert_int_equal(cfg.ping_interval_s, 5); /* the command line wins */
    assert_int_equal(cfg.n_allowed_origins, 1);
    assert_string_equal(cfg.allowed_origins[0], "https://file.example");
    assert_string_equal(cfg.config_file, path);
    config_cleanup(&cfg);
}

static void test_config_file_errors_name_the_line(void **state) {
    const char *path = write_file("bad.conf", "listen = 127.0.0.1:9001\nno-such-key = 1\n");
    char *argv[] = {"carechatd", "--config", (char *)path};
    struct server_config cfg;
    assert_int_equal(load(ARGC(argv), argv, &cfg), -1);
    assert_non_null(strstr(err, "bad.conf:2"));
    assert_non_null(strstr(err, "no-such-key"));

    path = write_file("bad2.conf", "max-frame\n");
    char *argv2[] = {"carechatd", "--config", (char *)path};
    assert_int_equal(load(ARGC(argv2), argv2, &cfg), -1);
    assert_non_null(strstr(err, "bad2.conf:1"));

    char *argv3[] = {"carechatd", "--config", "/nonexistent/carechatd.conf"};
    assert_int_equal(load(ARGC(argv3), argv3, &cfg), -1);
    assert_non_null(strstr(err, "/nonexistent/carechatd.conf"));
}

static void test_config_rejects_bad_values(void **state) {
    struct server_config cfg;
    char *unknown[] = {"carechatd", "--frobnicate"};
    assert_int_equal(load(ARGC(unknown), unknown, &cfg), -1);
    assert_non_null(strstr(err, "--frobnicate"));
    char *missing[] = {"carechatd", "--data"};
    assert_int_equal(load(ARGC(missing), missing, &cfg), -1);
    assert_non_null(strstr(err, "needs a value"));
    char *port[] = {"carechatd", "--listen", "127.0.0.1:70000"};
    assert_int_equal(load(ARGC(port), port, &cfg), -1);
    assert_non_null(strstr(err, "port"));
    char *host[] = {"carechatd", "--listen", "clinic.example:80"}; /* names are not looked up */
    assert_int_equal(load(ARGC(host), host, &cfg), -1);
    char *frame[] = {"carechatd", "--max-frame", "10"};
    assert_int_equal(load(ARGC(frame), frame, &cfg), -1);
    assert_non_null(strstr(err, "max-frame"));
    char *level[] = {"carechatd", "--log-level", "loud"};
    assert_int_equal(load(ARGC(level), level, &cfg), -1);
    char *origin[] = {"carechatd", "--allowed-origin", "example.org"};
    assert_int_equal(load(ARGC(origin), origin, &cfg), -1);
    char *ping[] = {"carechatd", "--ping-interval", "60", "--idle-timeout", "30"};
    assert_int_equal(load(ARGC(ping), ping, &cfg), -1);
    assert_non_null(strstr(err, "--idle-timeout"));
    char *twofa[] = {"carechatd", "--require-2fa", "everyone"};
    assert_int_equal(load(ARGC(twofa), twofa, &cfg), -1);
    assert_non_null(strstr(err, "--require-2fa"));
    char *positional[] = {"carechatd", "serve"};
    assert_int_equal(load(ARGC(positional), positional, &cfg), -1);
}

static void test_config_non_loopback_needs_tls(void **state) {
    struct server_config cfg;
    char *any[] = {"carechatd", "--listen", "0.0.0.0:8443"};
    assert_int_equal(load(ARGC(any), any, &cfg), -1);
    assert_non_null(strstr(err, "without TLS"));
    assert_non_null(strstr(err, "--insecure-no-tls"));
    char *any6[] = {"carechatd", "--listen", "[::]:8443"};
    assert_int_equal(load(ARGC(any6), any6, &cfg), -1);
    char *insecure[] = {"carechatd", "--listen",  "0.0.0.0:8443", "--insecure-no-tls",
                        "--data",    "/srv/data", "--key-dir",    "/keys/carechat"};
    assert_int_equal(load(ARGC(insecure), insecure, &cfg), 0);
    assert_true(cfg.insecure_no_tls);
    config_cleanup(&cfg);
    char *lo2[] = {"carechatd", "--listen", "127.0.0.2:0"};
    assert_int_equal(load(ARGC(lo2), lo2, &cfg), 0);
    config_cleanup(&cfg);
    char *localhost[] = {"carechatd", "--listen", "localhost:8443"};
    assert_int_equal(load(ARGC(localhost), localhost, &cfg), 0);
    assert_string_equal(cfg.listen.host, "127.0.0.1");
    assert_int_equal(cfg.listen.port, 8443);
    config_cleanup(&cfg);
    char *lo6[] = {"carechatd", "--listen", "[::1]:0"};
    assert_int_equal(load(ARGC(lo6), lo6, &cfg), 0);
    assert_string_equal(cfg.listen.host, "::1");
    config_cleanup(&cfg);
    /* The metrics listener: its own address, the same rule. */
    char *metrics[] = {"carechatd", "--metrics-listen", "[::1]:0"};
    assert_int_equal(load(ARGC(metrics), metrics, &cfg), 0);
    assert_string_equal(cfg.metrics_listen.host, "::1");
    assert_int_equal(cfg.metrics_listen.port, 0);
    assert_string_equal(cfg.listen.host, "127.0.0.1");
    assert_int_equal(cfg.listen.port, 8080);
    config_cleanup(&cfg);
    char *metrics_any[] = {"carechatd", "--metrics-listen", "0.0.0.0:9464"};
    assert_int_equal(load(ARGC(metrics_any), metrics_any, &cfg), -1);
    assert_non_null(strstr(err, "--metrics-listen"));
    char *metrics_bad[] = {"carechatd", "--metrics-listen", "9464"};
    assert_int_equal(load(ARGC(metrics_bad), metrics_bad, &cfg), -1);
    assert_non_null(strstr(err, "metrics-listen"));
    /* TLS files must come in pairs and exist. */
    char *half[] = {"carechatd", "--tls-cert", "/etc/hostname"};
    assert_int_equal(load(ARGC(half), half, &cfg), -1);
    assert_non_null(strstr(err, "together"));
    char *gone[] = {"carechatd", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"};
    assert_int_equal(load(ARGC(gone), gone, &cfg), -1);
    assert_non_null(strstr(err, "/nonexistent.pem"));
}

static void test_config_loopback_detection(void **state) {
    assert_true(config_host_is_loopback("127.0.0.1"));
    assert_true(config_host_is_loopback("127.255.0.9"));
    assert_true(config_host_is_loopback("::1"));
    assert_true(config_host_is_loopback("::ffff:127.0.0.1"));
    assert_false(config_host_is_loopback("0.0.0.0"));
    assert_false(config_host_is_loopback("::"));
    assert_false(config_host_is_loopback("128.0.0.1"));
    assert_false(config_host_is_loopback("10.0.0.1"));
    assert_false(config_host_is_loopback("::2"));
    assert_false(config_host_is_loopback("localhost"));
}

static void test_config_account_options(void **state) {
    struct server_config cfg;
    char *defaults[] = {"carechatd"};
    assert_int_equal(load(ARGC(defaults), defaults, &cfg), 0);
    assert_int_equal(cfg.invite_ttl_s, 7 * 24 * 3600);
    assert_int_equal(cfg.session_idle_s, 15 * 60);
    assert_int_equal(cfg.session_max_s, 12 * 3600);
    assert_int_equal(cfg.pwhash_ops, 2);
    assert_int_equal(cfg.pwhash_mem, 19ull << 20);
    assert_int_equal(cfg.password_min, 10);
    config_cleanup(&cfg);
    char *set[] = {"carechatd", "--invite-ttl", "3600", "--session-idle", "60", "--session-max",
                   "120",       "--pwhash-mem", "64m",  "--login-burst",  "9"};
    assert_int_equal(load(ARGC(set), set, &cfg), 0);
    assert_int_equal(cfg.invite_ttl_s, 3600);
    assert_int_equal(cfg.session_idle_s, 60);
    assert_int_equal(cfg.session_max_s, 120);
    assert_int_equal(cfg.pwhash_mem, 64ull << 20);
    assert_int_equal(cfg.login_burst, 9);
    config_cleanup(&cfg);
    /* Never below the Argon2id floor; idle expiry within the absolute one. */
    char *weak_ops[] = {"carechatd", "--pwhash-ops", "1"};
    assert_int_equal(load(ARGC(weak_ops), weak_ops, &cfg), -1);
    char *weak_mem[] = {"carechatd", "--pwhash-mem", "8m"};
    assert_int_equal(load(ARGC(weak_mem), weak_mem, &cfg), -1);
    char *idle[] = {"carechatd", "--session-idle", "100", "--session-max", "50"};
    assert_int_equal(load(ARGC(idle), idle, &cfg), -1);
    assert_non_null(strstr(err, "--session-idle"));
}

static void test_config_disk_reserves_have_floors(void **state) {
    struct server_config cfg;
    char *defaults[] = {"carechatd"};
    assert_int_equal(load(ARGC(defaults), defaults, &cfg), 0);
    assert_true(cfg.min_free_bytes == 256ull << 20);
    assert_true(cfg.min_free_key_bytes == 16ull << 20);
    config_cleanup(&cfg);
    /* the reserve cannot be turned off, nor set below what RocksDB writes unasked */
    static char *const refused[][3] = {{"carechatd", "--min-free-bytes", "0"},
                                       {"carechatd", "--min-free-bytes", "127m"},
                                       {"carechatd", "--min-free-key-bytes", "0"},
                                       {"carechatd", "--min-free-key-bytes", "1023k"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char *argv[3] = {refused[i][0], refused[i][1], refused[i][2]};
        assert_int_equal(load(3, argv, &cfg), -1);
        assert_non_null(strstr(err, refused[i][1] + 2));
    }
    char *floor[] = {"carechatd", "--min-free-bytes", "128m", "--min-free-key-bytes", "1m"};
    assert_int_equal(load(ARGC(floor), floor, &cfg), 0);
    assert_true(cfg.min_free_bytes == STORE_MIN_RESERVE);
    assert_true(cfg.min_free_key_bytes == 1ull << 20);
    struct store_config sc;
    config_store(&cfg, STORE_CREATE, &sc);
    assert_int_equal(sc.mode, STORE_CREATE);
    assert_true(sc.min_free_bytes == STORE_MIN_RESERVE && sc.min_free_key_bytes == 1ull << 20);
    assert_string_equal(sc.data_dir, cfg.data_dir);
    config_cleanup(&cfg);
}

static void test_config_clock_offset_only_for_tests(void **state) {
    struct server_config cfg;
    char *argv[] = {"carechatd", "--clock-offset", "7200000"};
    unsetenv("CARECHAT_TEST_CLOCK");
    assert_int_equal(load(ARGC(argv), argv, &cfg), -1);
    assert_non_null(strstr(err, "CARECHAT_TEST_CLOCK=1"));
    /* zero is the option all the same, and only "1" lets it through */
    char *zero[] = {"carechatd", "--clock-offset", "0"};
    assert_int_equal(load(ARGC(zero), zero, &cfg), -1);
    setenv("CARECHAT_TEST_CLOCK", "yes", 1);
    assert_int_equal(load(ARGC(argv), argv, &cfg), -1);
    const char *file = write_file("clock.conf", "clock-offset = 1000\n");
    char *from_file[] = {"carechatd", "--config", (char *)file};
    assert_int_equal(load(ARGC(from_file), from_file, &cfg), -1);
    setenv("CARECHAT_TEST_CLOCK", "1", 1);
    assert_int_equal(load(ARGC(argv), argv, &cfg), 0);
    assert_true(cfg.clock_offset_ms == 7200000);
    config_cleanup(&cfg);
    assert_int_equal(load(ARGC(from_file), from_file, &cfg), 0);
    assert_true(cfg.clock_offset_ms == 1000);
    config_cleanup(&cfg);
    unsetenv("CARECHAT_TEST_CLOCK");
}

static void test_config_help(void **state) {
    char *argv[] = {"carechatd", "--listen", "0.0.0.0:1", "--help"};
    struct server_config cfg;
    bool help = false;
    assert_int_equal(config_load(ARGC(argv), argv, &cfg, &help, err, sizeof err), 0);
    assert_true(help);
    config_cleanup(&cfg);
    const char *usage = config_usage();
    assert_non_null(strstr(usage, "--listen HOST:PORT"));
    assert_non_null(strstr(usage, "--clock-offset MS"));
    assert_non_null(strstr(usage, "--insecure-no-tls"));
    /* every numeric option with its default and range, as validation has them */
    assert_non_null(strstr(usage, "[default 30; allowed 1..100000]"));
    assert_non_null(strstr(usage, "[default 256k; allowed 1k..64m]"));
    assert_non_null(strstr(usage, "[default 256m; allowed 128m or more]"));
    char *frame[] = {"carechatd", "--max-frame", "65m"};
    struct server_config bad;
    assert_int_equal(load(ARGC(frame), frame, &bad), -1);
    assert_non_null(strstr(err, "in 1k..64m"));
    char *invites[] = {"carechatd", "--invite-burst", "3", "--invite-window", "60"};
    assert_int_equal(load(ARGC(invites), invites, &bad), 0);
    assert_int_equal(bad.invite_burst, 3);
    assert_int_equal(bad.invite_window_s, 60);
    config_cleanup(&bad);
}

/* Off loopback, keys inside the data directory need --keys-in-data: a copy
 * of the data would carry the keys that crypto-shredding destroys. */
static void test_config_keys_apart_from_data(void **state) {
    (void)state;
    struct server_config cfg;
    char *dflt[] = {"carechatd",         "--listen", "0.0.0.0:8443",
                    "--insecure-no-tls", "--data",   "/srv/data"};
    assert_int_equal(load(ARGC(dflt), dflt, &cfg), -1);
    assert_non_null(strstr(err, "--keys-in-data"));
    char *below[] = {"carechatd", "--listen",  "0.0.0.0:8443", "--insecure-no-tls",
                     "--data",    "/srv/data", "--key-dir",    "/srv/data/../data/./k"};
    assert_int_equal(load(ARGC(below), below, &cfg), -1);
    char *master[] = {"carechatd", "--listen",  "0.0.0.0:8443", "--insecure-no-tls", "--data",
                      "/srv/data", "--key-dir", "/keys",        "--master-key",      "/srv/data/m"};
    assert_int_equal(load(ARGC(master), master, &cfg), -1);
    char *apart[] = {"carechatd", "--listen",  "0.0.0.0:8443", "--insecure-no-tls",
                     "--data",    "/srv/data", "--key-dir",    "/srv/data2"};
    assert_int_equal(load(ARGC(apart), apart, &cfg), 0);
    assert_false(config_keys_in_data(&cfg));
    config_cleanup(&cfg);
    char *flag[] = {"carechatd", "--listen",  "0.0.0.0:8443",  "--insecure-no-tls",
                    "--data",    "/srv/data", "--keys-in-data"};
    assert_int_equal(load(ARGC(flag), flag, &cfg), 0);
    assert_true(config_keys_in_data(&cfg));
    config_cleanup(&cfg);
    /* On loopback (development, tests) only the start's warning. */
    char *lo[] = {"carechatd", "--data", "/srv/data"};
    assert_int_equal(load(ARGC(lo), lo, &cfg), 0);
    assert_true(config_keys_in_data(&cfg));
    config_cleanup(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_flags_override),
        cmocka_unit_test(test_config_file_then_flags),
        cmocka_unit_test(test_config_file_errors_name_the_line),
        cmocka_unit_test(test_config_rejects_bad_values),
        cmocka_unit_test(test_config_non_loopback_needs_tls),
        cmocka_unit_test(test_config_keys_apart_from_data),
        cmocka_unit_test(test_config_loopback_detection),
        cmocka_unit_test(test_config_account_options),
        cmocka_unit_test(test_config_disk_reserves_have_floors),
        cmocka_unit_test(test_config_clock_offset_only_for_tests),
        cmocka_unit_test(test_config_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
