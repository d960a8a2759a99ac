/*
 * server/config.c: defaults, the "key = value" file, command-line flags and
 * validation for carechatd (see config.h for the four steps).
 *
 * One table (options[]) names every option once: the flag parser, the file
 * parser and --help all read it, so they cannot disagree. Values are parsed and
 * range-checked as they are read; checks that involve several options run in
 * validate() at the end. Main thread only.
 */
#include "server/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"

/* Copies of values read from the config file, freed by config_cleanup(). */
struct config_strings {
    struct config_strings *next;
    char text[];
};

enum opt_kind {
    OPT_LISTEN,    /* HOST:PORT */
    OPT_PATH,      /* a non-empty string */
    OPT_FLAG,      /* no value on the command line; true/false in the file */
    OPT_ORIGIN,    /* repeatable */
    OPT_SIZE,      /* bytes, with an optional k/m/g (binary) suffix */
    OPT_SECONDS,   /* unsigned seconds */
    OPT_COUNT,     /* unsigned count */
    OPT_LOG_LEVEL, /* error|warn|info|debug */
    OPT_MS,        /* signed milliseconds */
    OPT_CONFIG,    /* --config FILE: command line only */
    OPT_HELP,      /* --help: command line only */
};

struct opt {
    const char *name;
    enum opt_kind kind;
    size_t offset; /* of the field in struct server_config */
    uint64_t min, max;
    const char *arg;
    const char *help;
};

#define FIELD(f) offsetof(struct server_config, f)

static const struct opt options[] = {
    {"listen", OPT_LISTEN, 0, 0, 0, "HOST:PORT",
     "address to listen on (default 127.0.0.1:8080); port 0 picks a free port; IPv6 as "
     "[::1]:PORT"},
    {"data", OPT_PATH, FIELD(data_dir), 0, 0, "DIR", "data directory (default ./carechat-data)"},
    {"key-dir", OPT_PATH, FIELD(key_dir), 0, 0, "DIR",
     "key store directory (default DATA/keys; production: another volume)"},
    {"master-key", OPT_PATH, FIELD(master_key), 0, 0, "FILE",
     "master key file (default KEY-DIR/master.key, generated on first start)"},
    {"tls-cert", OPT_PATH, FIELD(tls_cert), 0, 0, "FILE", "TLS certificate chain (PEM)"},
    {"tls-key", OPT_PATH, FIELD(tls_key), 0, 0, "FILE", "TLS private key (PEM)"},
    {"insecure-no-tls", OPT_FLAG, FIELD(insecure_no_tls), 0, 0, NULL,
     "allow plaintext on a non-loopback address (never in production)"},
    {"allowed-origin", OPT_ORIGIN, 0, 0, 0, "ORIGIN",
     "browser origin allowed to connect, e.g. https://chat.example.org (repeatable); "
     "requests without Origin (native apps) are always allowed"},
    {"max-frame", OPT_SIZE, FIELD(max_frame), 1024, 64ull << 20, "BYTES",
     "largest WebSocket message (default 256k; suffixes k, m)"},
    {"auth-timeout", OPT_SECONDS, FIELD(auth_timeout_s), 1, 3600, "SECONDS",
     "close connections not authenticated within this (default 10)"},
    {"ping-interval", OPT_SECONDS, FIELD(ping_interval_s), 1, 3600, "SECONDS",
     "ping a connection idle this long (default 25)"},
    {"idle-timeout", OPT_SECONDS, FIELD(idle_timeout_s), 2, 65535, "SECONDS",
     "hang up a connection idle this long (default 60)"},
    {"max-conns-per-ip", OPT_COUNT, FIELD(max_conns_per_ip), 1, 1000000, "N",
     "open connections allowed from one address (default 64)"},
    {"min-free-bytes", OPT_SIZE, FIELD(min_free_bytes), 0, UINT64_MAX, "BYTES",
     "refuse writes when the data volume has less free space (default 256m; 0 disables)"},
    {"log-level", OPT_LOG_LEVEL, FIELD(log_level), 0, 0, "LEVEL",
     "error, warn, info or debug (default info)"},
    {"invite-ttl", OPT_SECONDS, FIELD(invite_ttl_s), 60, 90u * 24 * 3600, "SECONDS",
     "invitations expire after this (default 604800: 7 days)"},
    {"session-idle", OPT_SECONDS, FIELD(session_idle_s), 1, 7u * 24 * 3600, "SECONDS",
     "sessions end after this long without a request (default 900)"},
    {"session-max", OPT_SECONDS, FIELD(session_max_s), 1, 90u * 24 * 3600, "SECONDS",
     "sessions end this long after login (default 43200)"},
    {"pwhash-ops", OPT_COUNT, FIELD(pwhash_ops), 2, 64, "N",
     "Argon2id passes for password hashes (default 2, at least 2)"},
    {"pwhash-mem", OPT_SIZE, FIELD(pwhash_mem), 19ull << 20, 4ull << 30, "BYTES",
     "Argon2id memory for password hashes (default 19m, at least 19m)"},
    {"pwhash-workers", OPT_COUNT, FIELD(pwhash_workers), 1, 16, "N",
     "password hashes computed at once (default 2); N x --pwhash-mem is their memory budget"},
    {"audit-anchor-every", OPT_COUNT, FIELD(audit_anchor_every), 1, 100000000, "N",
     "log the audit chain's head (index and hash) every N records (default 1000)"},
    {"password-min-length", OPT_COUNT, FIELD(password_min), 8, 1024, "N",
     "shortest password accepted at registration (default 10)"},
    {"login-burst", OPT_COUNT, FIELD(login_burst), 1, 100000, "N",
     "failed sign-ins to one account from one network before each further one waits, the "
     "wait doubling from a second up to 15 minutes (default 5); a correct password clears it"},
    {"login-burst-per-ip", OPT_COUNT, FIELD(login_burst_per_ip), 1, 1000000, "N",
     "failed sign-ins, registrations and resumes from one network (an IPv4 address, an IPv6 "
     "/64) before each further one waits (default 30)"},
    {"login-failures-per-account", OPT_COUNT, FIELD(login_failures_per_account), 1, 1000000, "N",
     "failed sign-ins to one account from anywhere before sign-ins on new devices wait; the "
     "account's own devices are never held by it (default 20)"},
    {"login-window", OPT_SECONDS, FIELD(login_window_s), 1, 86400, "SECONDS",
     "how long failed attempts are remembered (default 300)"},
    {"send-burst", OPT_COUNT, FIELD(send_burst), 1, 1000000, "N",
     "messages one account may send at once before --send-window paces it (default 60)"},
    {"send-window", OPT_SECONDS, FIELD(send_window_s), 1, 86400, "SECONDS",
     "time in which a spent --send-burst comes back (default 60: one message a second)"},
    {"read-burst", OPT_COUNT, FIELD(read_burst), 1, 1000000, "N",
     "reads of patient or account data one account may make at once before --read-window "
     "paces them (default 300)"},
    {"read-window", OPT_SECONDS, FIELD(read_window_s), 1, 86400, "SECONDS",
     "time in which a spent --read-burst comes back (default 60: five reads a second)"},
    {"audit-coalesce", OPT_SECONDS, FIELD(audit_coalesce_s), 0, 60, "SECONDS",
     "a read repeated by the same device within this of its durable access record is answered "
     "under it, and one more record says how many (default 10; 0: a record per read)"},
    {"inbox-max", OPT_COUNT, FIELD(inbox_max), 1, 10000000, "N",
     "undelivered entries one device's inbox may hold; a device at it misses what comes "
     "(it stays in the conversation's history) until it catches up (default 10000)"},
    {"inbox-sender-max", OPT_COUNT, FIELD(inbox_sender_max), 1, 10000000, "N",
     "undelivered messages of one sender one device's inbox may hold, so no member can fill "
     "another's inbox (default 2500)"},
    {"clock-offset", OPT_MS, FIELD(clock_offset_ms), 0, 0, "MS",
     "FOR TESTS ONLY: add MS milliseconds (may be negative) to the clock, to run "
     "time-dependent scenarios without waiting"},
    {"config", OPT_CONFIG, 0, 0, 0, "FILE",
     "read options from FILE first (lines 'key = value'; the command line wins)"},
    {"help", OPT_HELP, 0, 0, 0, NULL, "print this help and exit"},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return STATUS_BAD_REQUEST;
}

static const struct opt *find_option(const char *name, size_t len) {
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

static const char *keep_string(struct server_config *cfg, const char *s) {
    size_t n = strlen(s);
    struct config_strings *c = xmalloc(sizeof *c + n + 1);
    memcpy(c->text, s, n + 1);
    c->next = cfg->owned;
    cfg->owned = c;
    return c->text;
}

static int parse_u64(const char *s, bool allow_suffix, uint64_t *out) {
    if (!isdigit((unsigned char)s[0]))
        return STATUS_BAD_REQUEST;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return STATUS_BAD_REQUEST;
    unsigned shift = 0;
    if (allow_suffix && *end != '\0' && end[1] == '\0') {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            shift = 10;
            break;
        case 'm':
            shift = 20;
            break;
        case 'g':
            shift = 30;
            break;
        default:
            return STATUS_BAD_REQUEST;
        }
        end++;
    }
    if (*end != '\0')
        return STATUS_BAD_REQUEST;
    if (shift && v > (UINT64_MAX >> shift))
        return STATUS_BAD_REQUEST;
    *out = (uint64_t)v << shift;
    return STATUS_OK;
}

/* Accepts "IPV4:PORT" and "[IPV6]:PORT". */
static int parse_listen(const char *s, struct server_config *cfg, char *err, size_t err_len,
                        const char *where) {
    const char *colon;
    char host[CONFIG_HOST_MAX];
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return fail(err, err_len, "%s: listen: expected [IPV6]:PORT, got '%s'", where, s);
        hlen = (size_t)(close - s - 1);
        if (hlen >= sizeof host)
            return fail(err, err_len, "%s: listen: address too long", where);
        memcpy(host, s + 1, hlen);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return fail(err, err_len, "%s: listen: expected HOST:PORT, got '%s'", where, s);
        hlen = (size_t)(colon - s);
        if (hlen >= sizeof host)
            return fail(err, err_len, "%s: listen: address too long", where);
        memcpy(host, s, hlen);
    }
    host[hlen] = '\0';
    uint8_t addr[16];
    bool v6 = s[0] == '[';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
        return fail(err, err_len,
                    "%s: listen: '%s' is not an IPv4 address (IPv6 goes in brackets: [::1]:PORT)",
                    where, host);
    uint64_t port;
    if (parse_u64(colon + 1, false, &port) != 0 || port > 65535)
        return fail(err, err_len, "%s: listen: port must be 0..65535, got '%s'", where, colon + 1);
    memcpy(cfg->listen_host, host, hlen + 1);
    cfg->listen_port = (int)port;
    return STATUS_OK;
}

static int parse_bool(const char *s, bool *out) {
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "1") == 0) {
        *out = true;
        return STATUS_OK;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "0") == 0) {
        *out = false;
        return STATUS_OK;
    }
    return STATUS_BAD_REQUEST;
}

/* Stores `value` for option `o`; `where` names the source for messages
 * ("command line" or "FILE:LINE"). `from_file` values are copied. */
static int set_option(struct server_config *cfg, const struct opt *o, const char *value,
                      bool from_file, char *err, size_t err_len, const char *where) {
    char *field = (char *)cfg + o->offset;
    uint64_t v;
    switch (o->kind) {
    case OPT_LISTEN:
        return parse_listen(value, cfg, err, err_len, where);
    case OPT_PATH:
        if (value[0] == '\0')
            return fail(err, err_len, "%s: %s: empty value", where, o->name);
        *(const char **)(void *)field = from_file ? keep_string(cfg, value) : value;
        return STATUS_OK;
    case OPT_FLAG:
        if (parse_bool(value, (bool *)(void *)field) != 0)
            return fail(err, err_len, "%s: %s: expected true or false, got '%s'", where, o->name,
                        value);
        return STATUS_OK;
    case OPT_ORIGIN:
        if (cfg->n_allowed_origins == CONFIG_MAX_ORIGINS)
            return fail(err, err_len, "%s: allowed-origin: at most %d origins", where,
                        CONFIG_MAX_ORIGINS);
        if (!strstr(value, "://") || strlen(value) > 255 || strpbrk(value, " \t\r\n,") != NULL)
            return fail(err, err_len,
                        "%s: allowed-origin: '%s' is not an origin such as https://host[:port]",
                        where, value);
        cfg->allowed_origins[cfg->n_allowed_origins++] =
            from_file ? keep_string(cfg, value) : value;
        return STATUS_OK;
    case OPT_SIZE:
    case OPT_SECONDS:
    case OPT_COUNT:
        if (parse_u64(value, o->kind == OPT_SIZE, &v) != 0 || v < o->min || v > o->max)
            return fail(err, err_len, "%s: %s: expected %s in %" PRIu64 "..%" PRIu64 ", got '%s'",
                        where, o->name, o->kind == OPT_SIZE ? "a byte count" : "an integer", o->min,
                        o->max, value);
        if (o->kind == OPT_SIZE)
            *(uint64_t *)(void *)field = v;
        else
            *(unsigned *)(void *)field = (unsigned)v;
        return STATUS_OK;
    case OPT_LOG_LEVEL:
        if (log_parse_level(value, (enum log_level *)(void *)field) != 0)
            return fail(err, err_len,
                        "%s: log-level: expected error, warn, info or debug, got '%s'", where,
                        value);
        return STATUS_OK;
    case OPT_MS: {
        char *end;
        errno = 0;
        long long ms = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0')
            return fail(err, err_len, "%s: %s: expected milliseconds, got '%s'", where, o->name,
                        value);
        *(int64_t *)(void *)field = ms;
        return STATUS_OK;
    }
    case OPT_CONFIG:
    case OPT_HELP:
        break;
    }
    return fail(err, err_len, "%s: %s is allowed only on the command line", where, o->name);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

#define CONFIG_FILE_MAX (1 << 20)

static int read_file(struct server_config *cfg, const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, err_len, "--config %s: %s", path, strerror(errno));
    struct buf text;
    buf_init(&text);
    char chunk[4096];
    size_t n;
    int rc = STATUS_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (text.len + n > CONFIG_FILE_MAX) {
            rc = fail(err, err_len, "--config %s: larger than %d bytes", path, CONFIG_FILE_MAX);
            goto out;
        }
        buf_append(&text, chunk, n);
    }
    if (ferror(f)) {
        rc = fail(err, err_len, "--config %s: read error", path);
        goto out;
    }
    buf_append_u8(&text, '\0');
    char *line = (char *)text.data;
    for (int lineno = 1; line && *line; lineno++) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char where[300];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        line = next;
        if (*s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = fail(err, err_len, "%s: expected 'key = value'", where);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        const struct opt *o = find_option(key, strlen(key));
        if (!o) {
            rc = fail(err, err_len, "%s: unknown key '%s' (see --help)", where, key);
            goto out;
        }
        rc = set_option(cfg, o, value, true, err, err_len, where);
        if (rc != 0)
            goto out;
    }
out:
    buf_cleanup(&text);
    fclose(f);
    return rc;
}

static int validate(const struct server_config *cfg, char *err, size_t err_len) {
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
        return fail(err, err_len, "--tls-cert and --tls-key must be given together");
    if (cfg->tls_cert) {
        if (access(cfg->tls_cert, R_OK) != 0)
            return fail(err, err_len, "--tls-cert %s: %s", cfg->tls_cert, strerror(errno));
        if (access(cfg->tls_key, R_OK) != 0)
            return fail(err, err_len, "--tls-key %s: %s", cfg->tls_key, strerror(errno));
    }
    if (!cfg->tls_cert && !cfg->insecure_no_tls && !config_host_is_loopback(cfg->listen_host))
        return fail(err, err_len,
                    "refusing to listen on %s without TLS: give --tls-cert and --tls-key, or "
                    "--insecure-no-tls to accept plaintext on a non-loopback address",
                    cfg->listen_host);
    if (cfg->session_idle_s > cfg->session_max_s)
        return fail(err, err_len, "--session-idle (%u) must not exceed --session-max (%u)",
                    cfg->session_idle_s, cfg->session_max_s);
    if (cfg->ping_interval_s >= cfg->idle_timeout_s)
        return fail(err, err_len, "--ping-interval (%u) must be less than --idle-timeout (%u)",
                    cfg->ping_interval_s, cfg->idle_timeout_s);
    return STATUS_OK;
}

/* Splits "--name=value" / "--name value"; returns the option or NULL. */
static const struct opt *flag_option(const char *arg, const char **inline_value) {
    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    *inline_value = eq ? eq + 1 : NULL;
    return find_option(name, eq ? (size_t)(eq - name) : strlen(name));
}

int config_load(int argc, char **argv, struct server_config *cfg, bool *help, char *err,
                size_t err_len) {
    *cfg = (struct server_config)CONFIG_DEFAULTS;
    *help = false;
    err[0] = '\0';
    int rc;

    /* Pass 1: find --help and --config, and reject what is not an option. */
    for (int i = 1; i < argc; i++) {
        const char *inline_value;
        const struct opt *o = flag_option(argv[i], &inline_value);
        if (!o) {
            rc = fail(err, err_len, "unknown option '%s' (see --help)", argv[i]);
            goto fail;
        }
        if (o->kind == OPT_HELP) {
            *help = true;
            return STATUS_OK;
        }
        const char *value = inline_value;
        if (o->kind != OPT_FLAG && !value) {
            if (i + 1 >= argc) {
                rc = fail(err, err_len, "--%s needs a value (%s)", o->name, o->arg);
                goto fail;
            }
            value = argv[++i];
        }
        if (o->kind == OPT_CONFIG)
            cfg->config_file = value;
    }
    if (cfg->config_file) {
        rc = read_file(cfg, cfg->config_file, err, err_len);
        if (rc != 0)
            goto fail;
    }

    /* Pass 2: the command line over the file. Repeated origins given on the
     * command line replace the file's list rather than extend it. */
    bool origins_from_cli = false;
    for (int i = 1; i < argc; i++) {
        const char *inline_value;
        const struct opt *o = flag_option(argv[i], &inline_value);
        const char *value = inline_value;
        if (o->kind == OPT_FLAG) {
            if (!value)
                value = "true";
        } else if (!value) {
            value = argv[++i];
        }
        if (o->kind == OPT_CONFIG)
            continue;
        if (o->kind == OPT_ORIGIN && !origins_from_cli) {
            cfg->n_allowed_origins = 0;
            origins_from_cli = true;
        }
        rc = set_option(cfg, o, value, false, err, err_len, "command line");
        if (rc != 0)
            goto fail;
    }

    rc = validate(cfg, err, err_len);
    if (rc != 0)
        goto fail;
    return STATUS_OK;

fail:
    config_cleanup(cfg);
    return rc;
}

void config_cleanup(struct server_config *cfg) {
    if (!cfg)
        return;
    struct config_strings *c = cfg->owned;
    while (c) {
        struct config_strings *next = c->next;
        free(c);
        c = next;
    }
    cfg->owned = NULL;
}

const char *config_usage(void) {
    static char text[8192];
    if (text[0])
        return text;
    size_t used = (size_t)snprintf(text, sizeof text,
                                   "usage: carechatd [options]\n"
                                   "Serves CareChat over WebSocket (subprotocol carechat.v1); "
                                   "GET /healthz and /metrics on the same listener.\n\n");
    for (size_t i = 0; i < N_OPTIONS && used < sizeof text; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", options[i].name, options[i].arg ? " " : "",
                 options[i].arg ? options[i].arg : "");
        used += (size_t)snprintf(text + used, sizeof text - used, "  %-26s %s\n", left,
                                 options[i].help);
    }
    if (used < sizeof text)
        snprintf(text + used, sizeof text - used,
                 "\nA non-loopback --listen needs --tls-cert/--tls-key (TLS 1.2+ only) "
                 "or --insecure-no-tls.\n");
    return text;
}

bool config_host_is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) != 1)
        return false;
    static const uint8_t loopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a6.s6_addr, loopback6, 16) == 0)
        return true;
    return memcmp(a6.s6_addr, mapped_prefix, 12) == 0 && a6.s6_addr[12] == 127;
}
