/*
 * tests/bench/bench.c: carechat-bench, the durable-send benchmark (issue 3).
 *
 *   carechat-bench --senders 16 --messages 200 --size 512
 *   carechat-bench --server ws://127.0.0.1:8080 --setup admin.txt --senders 4
 *
 * By default it starts its own carechatd (found with --carechatd, else in the
 * runfiles) on 127.0.0.1, port 0, with a fresh data directory in a temporary
 * directory (`carechatd init`), bootstrapped with a sysadmin, and with the per-account send rate
 * limit, the per-address login limit, the per-address connection cap and the
 * inbox cap raised (printed at the start), so that what is measured is the
 * journal's group commit and the delivery path, not the limits. With --server
 * it uses a running server instead; --setup then names a file holding the
 * email of a bootstrap sysadmin on its first line and the password on its
 * second, and the server's own limits apply.
 *
 * Accounts: the sysadmin invites ceil(2N / INVITES_PER_ADMIN) admins (the
 * server lets one account invite 30 per hour), each admin invites providers,
 * and every sender and every recipient is its own provider account with its
 * own profile (one device). Sender i writes to recipient i in their direct
 * conversation.
 *
 * Run: N sender threads each send M messages of BYTES random bytes with
 * carechat_send(), which returns only after the server answered, that is
 * after the synced write (DESIGN.md); the time of that call is the
 * send-to-ack latency (client-side encryption for three devices included).
 * N recipient threads, connected and synced (QueueEmpty seen) before the
 * first send, receive concurrently with carechat_recv() and acknowledge every
 * ACK_EVERY messages. Throughputs are counted from the moment the senders are
 * released to the last answer, respectively the last delivery.
 *
 * Output: the figures, the server's RSS (VmRSS and VmHWM from /proc, only for
 * a server it started), the group-commit batch sizes of the run (the delta of
 * GET /metrics carechat_journal_batch_size and carechat_journal_fsync_seconds
 * around the run, from the server's --metrics-listen address: its own on port
 * 0, or --metrics HOST:PORT with --server) and finally exactly one line
 *   send_ack_msgs_per_s=X p50_ms=Y p99_ms=Z deliveries_per_s=W
 * Exit status 0 when every send was answered OK and every message arrived; 1
 * otherwise (no final line then); 2 for bad arguments.
 *
 * Threads: main (setup, metrics, report) and 2N workers, each owning its own
 * libcarechat handle. Shared counters are written by their own thread only and
 * read by main after pthread_join. Every loop is bounded by a count and by
 * the --timeout deadline.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/carechat.h"

#define MAX_SENDERS 256
#define MAX_MESSAGES 100000
#define INVITES_PER_ADMIN 25
#define ACK_EVERY 64
#define SETUP_PARALLEL 8
#define PASSWORD "bench-passphrase-0123"
#define BIRTHDATE "1980-01-01"
#define START_DEADLINE_MS 30000
#define STOP_DEADLINE_MS 10000
#define BOOTSTRAP_DEADLINE_MS 60000
#define HTTP_DEADLINE_MS 5000
#define RECV_WAIT_MS 500

/* The limits raised on a server the bench starts (printed with the figures). */
static const char *const raised_limits[] = {
    "--send-burst",       "1000000", "--send-window", "1",       "--login-burst-per-ip", "1000000",
    "--max-conns-per-ip", "100000",  "--inbox-max",   "1000000",
};
#define N_RAISED (sizeof raised_limits / sizeof raised_limits[0])

struct options {
    int senders;
    int messages;
    size_t size;
    const char *server_url; /* NULL: start our own */
    const char *setup_file;
    const char *metrics; /* with --server: its metrics listener, IPV4:PORT */
    const char *carechatd;
    int timeout_s;
};

/* The server this run talks to. */
struct server {
    pid_t pid; /* 0: not ours, or not running */
    int port;  /* the WebSocket listener's, for a server we started */
    char url[128];
    char metrics_host[64]; /* the metrics listener (GET /metrics) */
    int metrics_port;      /* 0 when unknown (--server without --metrics) */
    char admin_email[CARECHAT_MAX_EMAIL + 1];
    char admin_password[256];
    char log_path[PATH_MAX];
};

/* One sender and its recipient. */
struct pair {
    int index;
    const struct options *opt;
    int64_t deadline; /* monotonic ms */
    char dir_s[PATH_MAX], dir_r[PATH_MAX];
    char email_s[64], email_r[64];
    char code_s[CARECHAT_MAX_CODE + 1], code_r[CARECHAT_MAX_CODE + 1];
    struct carechat *s, *r;
    struct id conv;
    int setup_rc;
    char setup_error[256];
    /* Sender results. */
    double *latency_ms; /* messages entries */
    int sent;
    int64_t last_answer_ms;
    char send_error[256];
    /* Recipient results. */
    int received;
    int bad; /* not OK state, wrong length */
    int64_t last_delivery_ms;
    char recv_error[256];
};

/* Releases the senders and recipients together. */
static pthread_mutex_t go_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static bool go;
static int64_t go_ms;

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void usage(FILE *f) {
    fprintf(f, "usage: carechat-bench [--senders N] [--messages M] [--size BYTES]\n"
               "                      [--carechatd PATH | --server URL --setup FILE\n"
               "                       [--metrics HOST:PORT]]\n"
               "                      [--timeout SECONDS]\n"
               "  --senders N       concurrent senders, each with its own account, device and\n"
               "                    online recipient (1..256, default 4)\n"
               "  --messages M      messages per sender (1..100000, default 200)\n"
               "  --size BYTES      plaintext bytes per message (1..65446, default 512)\n"
               "  --carechatd PATH  the server binary to start (default: from the runfiles)\n"
               "  --server URL      use a running server instead of starting one\n"
               "  --setup FILE      with --server: a sysadmin's email (line 1) and password\n"
               "                    (line 2), as given to `carechatd bootstrap`\n"
               "  --metrics HOST:PORT with --server: its --metrics-listen address (IPv4), for\n"
               "                    the group-commit figures from GET /metrics\n"
               "  --timeout SECONDS deadline for the whole run (default 600)\n");
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_options(int argc, char **argv, struct options *o) {
    *o = (struct options){.senders = 4, .messages = 200, .size = 512, .timeout_s = 600};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "carechat-bench: %s needs a value\n", a);
            return STATUS_BAD_REQUEST;
        }
        const char *v = argv[++i];
        long n;
        if (strcmp(a, "--senders") == 0 && parse_int(v, 1, MAX_SENDERS, &n))
            o->senders = (int)n;
        else if (strcmp(a, "--messages") == 0 && parse_int(v, 1, MAX_MESSAGES, &n))
            o->messages = (int)n;
        else if (strcmp(a, "--size") == 0 && parse_int(v, 1, CARECHAT_MAX_TEXT, &n))
            o->size = (size_t)n;
        else if (strcmp(a, "--timeout") == 0 && parse_int(v, 1, 86400, &n))
            o->timeout_s = (int)n;
        else if (strcmp(a, "--server") == 0)
            o->server_url = v;
        else if (strcmp(a, "--setup") == 0)
            o->setup_file = v;
        else if (strcmp(a, "--metrics") == 0 && strchr(v, ':'))
            o->metrics = v;
        else if (strcmp(a, "--carechatd") == 0)
            o->carechatd = v;
        else {
            fprintf(stderr, "carechat-bench: bad option or value: %s %s\n", a, v);
            return STATUS_BAD_REQUEST;
        }
    }
    if (o->server_url && !o->setup_file) {
        fprintf(stderr, "carechat-bench: --server needs --setup FILE (sysadmin email and "
                        "password)\n");
        return STATUS_BAD_REQUEST;
    }
    if (!o->server_url && (o->setup_file || o->metrics)) {
        fprintf(stderr, "carechat-bench: --setup and --metrics go with --server\n");
        return STATUS_BAD_REQUEST;
    }
    return 0;
}

/* ---- temporary directory ------------------------------------------------------------------ */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int make_tmpdir(char out[PATH_MAX]) {
    const char *base = getenv("TEST_TMPDIR");
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(out, PATH_MAX, "%s/carechat-bench-XXXXXX", base);
    if (!mkdtemp(out)) {
        fprintf(stderr, "carechat-bench: mkdtemp %s: %s\n", out, strerror(errno));
        return STATUS_IO;
    }
    return 0;
}

/* ---- our own carechatd -------------------------------------------------------------------- */

static const char *find_carechatd(const struct options *o, char path[PATH_MAX]) {
    if (o->carechatd)
        return o->carechatd;
    const char *roots[3] = {getenv("RUNFILES_DIR"), getenv("TEST_SRCDIR"), NULL};
    char exe[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char self_runfiles[PATH_MAX];
    if (n > 0) {
        exe[n] = '\0';
        snprintf(self_runfiles, sizeof self_runfiles, "%s.runfiles", exe);
        roots[2] = self_runfiles;
    }
    for (int i = 0; i < 3; i++) {
        if (!roots[i] || !*roots[i])
            continue;
        snprintf(path, PATH_MAX, "%s/carechat/server/carechatd", roots[i]);
        if (access(path, X_OK) == 0)
            return path;
    }
    return NULL;
}

static int exit_code(int ws) {
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    if (WIFSIGNALED(ws))
        return 128 + WTERMSIG(ws);
    return 255;
}

/* Waits for `pid` until `deadline`; true with its exit code when it ended. */
static bool wait_exit(pid_t pid, int64_t deadline, int *code) {
    for (;;) {
        int ws;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid) {
            *code = exit_code(ws);
            return true;
        }
        if ((r < 0 && errno != EINTR) || clock_monotonic_ms() >= deadline)
            return false;
        sleep_ms(10);
    }
}

static pid_t spawn(char *const *argv, const char *log_path) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "carechat-bench: %s: %s\n", log_path, strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    if (pid < 0)
        fprintf(stderr, "carechat-bench: fork: %s\n", strerror(errno));
    return pid;
}

/* The port of the "listening on HOST:PORT" line in the log (with `metrics`, of
 * the "metrics listening on HOST:PORT" line), or 0. */
static int port_from_log(const char *log_path, bool metrics) {
    FILE *f = fopen(log_path, "r");
    if (!f)
        return 0;
    char line[512];
    int port = 0;
    while (port == 0 && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "listening on ");
        if (!p || (strstr(line, "metrics listening on ") != NULL) != metrics)
            continue;
        char *space = strchr(p + 13, ' ');
        if (space)
            *space = '\0';
        char *colon = strrchr(p, ':');
        if (colon)
            port = atoi(colon + 1);
    }
    fclose(f);
    return port;
}

static void print_log(const char *log_path) {
    FILE *f = fopen(log_path, "r");
    if (!f)
        return;
    char line[512];
    fprintf(stderr, "---- %s ----\n", log_path);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* Runs carechatd `argv` (a subcommand) to its end; 0 when it exited with 0. */
static int run_step(char *const *argv, const char *log_path) {
    pid_t pid = spawn(argv, log_path);
    int code = -1;
    if (pid < 0)
        return STATUS_IO;
    if (!wait_exit(pid, clock_monotonic_ms() + BOOTSTRAP_DEADLINE_MS, &code) || code != 0) {
        if (code < 0) {
            kill(pid, SIGKILL);
            wait_exit(pid, clock_monotonic_ms() + STOP_DEADLINE_MS, &code);
        }
        fprintf(stderr, "carechat-bench: carechatd %s failed (%d)\n", argv[1], code);
        print_log(log_path);
        return STATUS_IO;
    }
    return 0;
}

/* Creates a fresh data directory under `tmp` (`carechatd init`), bootstraps it
 * with a sysadmin and starts carechatd on it. */
static int start_server(const struct options *o, const char *tmp, struct server *srv) {
    char bin_buf[PATH_MAX];
    const char *bin = find_carechatd(o, bin_buf);
    if (!bin) {
        fprintf(stderr, "carechat-bench: carechatd not found in the runfiles; use --carechatd\n");
        return STATUS_NOT_FOUND;
    }
    char data[PATH_MAX], pw_path[PATH_MAX];
    snprintf(data, sizeof data, "%.*s/data", PATH_MAX - 8, tmp);
    snprintf(pw_path, sizeof pw_path, "%.*s/sysadmin.pw", PATH_MAX - 16, tmp);
    snprintf(srv->log_path, sizeof srv->log_path, "%.*s/carechatd.log", PATH_MAX - 16, tmp);
    struct id tag = id_new();
    snprintf(srv->admin_email, sizeof srv->admin_email, "bench-root-%02x%02x@clinic.example",
             tag.b[0], tag.b[1]);
    snprintf(srv->admin_password, sizeof srv->admin_password, "%s", PASSWORD);
    FILE *f = fopen(pw_path, "w");
    if (!f) {
        fprintf(stderr, "carechat-bench: %s: %s\n", pw_path, strerror(errno));
        return STATUS_IO;
    }
    fprintf(f, "%s\n", srv->admin_password);
    fclose(f);

    char *init[] = {(char *)bin, "init", "--data", data, NULL};
    char *boot[] = {(char *)bin,      "bootstrap",       "--data", data, "--email",
                    srv->admin_email, "--password-file", pw_path,  NULL};
    if (run_step(init, srv->log_path) != 0 || run_step(boot, srv->log_path) != 0)
        return STATUS_IO;
    int code = -1;

    char *argv[11 + N_RAISED];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--dev-invite-codes"; /* no mail relay here: codes come in the answer */
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--metrics-listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--data";
    argv[n++] = data;
    for (size_t i = 0; i < N_RAISED; i++)
        argv[n++] = (char *)raised_limits[i];
    argv[n] = NULL;
    srv->pid = spawn(argv, srv->log_path);
    if (srv->pid < 0) {
        srv->pid = 0;
        return STATUS_IO;
    }
    int64_t deadline = clock_monotonic_ms() + START_DEADLINE_MS;
    while ((srv->port = port_from_log(srv->log_path, false)) == 0 ||
           (srv->metrics_port = port_from_log(srv->log_path, true)) == 0) {
        if (wait_exit(srv->pid, 0, &code) || clock_monotonic_ms() >= deadline) {
            fprintf(stderr, "carechat-bench: carechatd did not start\n");
            print_log(srv->log_path);
            return STATUS_IO;
        }
        sleep_ms(10);
    }
    snprintf(srv->metrics_host, sizeof srv->metrics_host, "127.0.0.1");
    snprintf(srv->url, sizeof srv->url, "ws://127.0.0.1:%d", srv->port);
    return 0;
}

/* SIGTERM, then SIGKILL after the deadline. */
static void stop_server(struct server *srv) {
    if (srv->pid <= 0)
        return;
    int code = -1;
    kill(srv->pid, SIGTERM);
    if (!wait_exit(srv->pid, clock_monotonic_ms() + STOP_DEADLINE_MS, &code)) {
        fprintf(stderr, "carechat-bench: carechatd ignored SIGTERM; killing it\n");
        kill(srv->pid, SIGKILL);
        wait_exit(srv->pid, clock_monotonic_ms() + STOP_DEADLINE_MS, &code);
    } else if (code != 0) {
        fprintf(stderr, "carechat-bench: carechatd exited with %d\n", code);
    }
    srv->pid = 0;
}

/* Reads the sysadmin's email and password for --server, and --metrics. */
static int external_server(const struct options *o, struct server *srv) {
    snprintf(srv->url, sizeof srv->url, "%s", o->server_url);
    FILE *f = fopen(o->setup_file, "r");
    if (!f) {
        fprintf(stderr, "carechat-bench: %s: %s\n", o->setup_file, strerror(errno));
        return STATUS_IO;
    }
    bool ok = fgets(srv->admin_email, sizeof srv->admin_email, f) &&
              fgets(srv->admin_password, sizeof srv->admin_password, f);
    fclose(f);
    srv->admin_email[strcspn(srv->admin_email, "\r\n")] = '\0';
    srv->admin_password[strcspn(srv->admin_password, "\r\n")] = '\0';
    if (!ok || !*srv->admin_email || !*srv->admin_password) {
        fprintf(stderr, "carechat-bench: %s: expected an email line and a password line\n",
                o->setup_file);
        return STATUS_BAD_REQUEST;
    }
    /* Metrics over plain HTTP only, from the --metrics-listen address. */
    const char *colon = o->metrics ? strrchr(o->metrics, ':') : NULL;
    if (colon && (size_t)(colon - o->metrics) < sizeof srv->metrics_host) {
        snprintf(srv->metrics_host, sizeof srv->metrics_host, "%.*s", (int)(colon - o->metrics),
                 o->metrics);
        srv->metrics_port = atoi(colon + 1);
    }
    return 0;
}

/* ---- GET /metrics ------------------------------------------------------------------------- */

struct journal_figures {
    bool ok;
    double batch_sum, batch_count;
    double batch_bucket[8]; /* cumulative, le 1 2 4 8 16 32 64 +Inf */
    double fsync_sum_s, fsync_count;
};

static const char *const batch_le[8] = {"1", "2", "4", "8", "16", "32", "64", "+Inf"};

/* GET http://host:port/path from the metrics listener into `out` (the whole
 * response). */
static int http_get(const struct server *srv, const char *path, struct buf *out) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->metrics_port)};
    if (srv->metrics_port <= 0 || inet_pton(AF_INET, srv->metrics_host, &sa.sin_addr) != 1)
        return STATUS_BAD_REQUEST;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return STATUS_IO;
    struct timeval tv = {.tv_sec = HTTP_DEADLINE_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc = STATUS_IO;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto out;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, srv->metrics_host);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    int64_t deadline = clock_monotonic_ms() + HTTP_DEADLINE_MS;
    char chunk[4096];
    while (clock_monotonic_ms() < deadline && out->len < (4u << 20)) {
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r <= 0)
            break;
        buf_append(out, chunk, (size_t)r);
    }
    buf_append(out, "", 1);
    rc = out->len > 1 ? 0 : STATUS_IO;
out:
    close(fd);
    return rc;
}

/* The value of the sample line `name` (exact, followed by a space), or -1. */
static double metric(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static struct journal_figures read_journal(const struct server *srv) {
    struct journal_figures j = {.ok = false};
    struct buf b;
    buf_init(&b);
    if (http_get(srv, "/metrics", &b) == 0) {
        const char *t = (const char *)b.data;
        j.batch_sum = metric(t, "carechat_journal_batch_size_sum");
        j.batch_count = metric(t, "carechat_journal_batch_size_count");
        j.fsync_sum_s = metric(t, "carechat_journal_fsync_seconds_sum");
        j.fsync_count = metric(t, "carechat_journal_fsync_seconds_count");
        j.ok = j.batch_sum >= 0 && j.batch_count >= 0;
        for (int i = 0; i < 8; i++) {
            char name[80];
            snprintf(name, sizeof name, "carechat_journal_batch_size_bucket{le=\"%s\"}",
                     batch_le[i]);
            j.batch_bucket[i] = metric(t, name);
        }
    }
    buf_cleanup(&b);
    return j;
}

/* ---- accounts ----------------------------------------------------------------------------- */

static struct carechat *open_handle(const char *url, const char *dir) {
    struct carechat_config cfg = {.server_url = url, .profile_dir = dir, .device_label = "bench"};
    struct carechat *c = NULL;
    int rc = carechat_open(&cfg, &c);
    if (rc != 0) {
        fprintf(stderr, "carechat-bench: cannot open a profile in %s: %s\n", dir, status_str(rc));
        return NULL;
    }
    return c;
}

static void make_email(const char *who, int i, const struct id *run, char out[64]) {
    snprintf(out, 64, "bench-%s%d-%02x%02x%02x@clinic.example", who, i, run->b[0], run->b[1],
             run->b[2]);
}

/* Invites the sender and recipient of every pair: the sysadmin invites admins,
 * admins invite the providers (INVITES_PER_ADMIN each). */
static int invite_all(const struct server *srv, const char *tmp, struct pair *pairs, int n) {
    const struct id run = id_new();
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s/p-root", PATH_MAX - 16, tmp);
    struct carechat *root = open_handle(srv->url, dir);
    struct carechat *admin = NULL;
    int rc = root ? carechat_login(root, srv->admin_email, srv->admin_password) : STATUS_IO;
    if (rc != 0) {
        fprintf(stderr, "carechat-bench: sysadmin login: %s\n", root ? carechat_error(root) : "");
        goto out;
    }
    for (int k = 0; k < 2 * n; k++) {
        struct pair *p = &pairs[k / 2];
        if (k % INVITES_PER_ADMIN == 0) {
            carechat_close(admin);
            admin = NULL;
            char email[64], code[CARECHAT_MAX_CODE + 1];
            int a = k / INVITES_PER_ADMIN;
            make_email("admin", a, &run, email);
            snprintf(dir, sizeof dir, "%.*s/p-admin%d", PATH_MAX - 32, tmp, a);
            if ((rc = carechat_invite(root, email, CARECHAT_ROLE_ADMIN, code, NULL)) != 0) {
                fprintf(stderr, "carechat-bench: invite admin: %s\n", carechat_error(root));
                goto out;
            }
            admin = open_handle(srv->url, dir);
            rc = admin ? carechat_register(admin, code, email, PASSWORD, BIRTHDATE, "Bench Admin")
                       : STATUS_IO;
            if (rc != 0) {
                fprintf(stderr, "carechat-bench: register admin: %s\n",
                        admin ? carechat_error(admin) : "");
                goto out;
            }
        }
        bool sender = k % 2 == 0;
        char *email = sender ? p->email_s : p->email_r;
        make_email(sender ? "s" : "r", p->index, &run, email);
        rc = carechat_invite(admin, email, CARECHAT_ROLE_PROVIDER, sender ? p->code_s : p->code_r,
                             NULL);
        if (rc != 0) {
            fprintf(stderr, "carechat-bench: invite provider: %s\n", carechat_error(admin));
            goto out;
        }
    }
out:
    carechat_close(admin);
    carechat_close(root);
    return rc;
}

static void pair_fail(struct pair *p, char *where, size_t len, struct carechat *c,
                      const char *what) {
    snprintf(where, len, "%s: %s", what, c ? carechat_error(c) : "no handle");
}

/* Registers both accounts of a pair, opens their conversation and brings the
 * recipient online (replay done). Runs on one thread per pair. */
static void *pair_setup(void *arg) {
    struct pair *p = arg;
    char name[32];
    snprintf(name, sizeof name, "Sender %d", p->index);
    p->setup_rc = carechat_register(p->s, p->code_s, p->email_s, PASSWORD, BIRTHDATE, name);
    if (p->setup_rc != 0) {
        pair_fail(p, p->setup_error, sizeof p->setup_error, p->s, "register sender");
        return NULL;
    }
    snprintf(name, sizeof name, "Recipient %d", p->index);
    p->setup_rc = carechat_register(p->r, p->code_r, p->email_r, PASSWORD, BIRTHDATE, name);
    if (p->setup_rc != 0) {
        pair_fail(p, p->setup_error, sizeof p->setup_error, p->r, "register recipient");
        return NULL;
    }
    struct carechat_session_info info;
    struct carechat_conversation conv;
    p->setup_rc = carechat_session(p->r, &info);
    if (p->setup_rc == 0)
        p->setup_rc = carechat_open_direct_id(p->s, &info.account_id, &conv);
    if (p->setup_rc != 0) {
        pair_fail(p, p->setup_error, sizeof p->setup_error, p->s, "open direct");
        return NULL;
    }
    p->conv = conv.conversation_id;
    carechat_conversation_cleanup(&conv);
    /* Online: synced, replay complete (an empty inbox: QueueEmpty). */
    struct carechat_message m;
    p->setup_rc = carechat_recv(p->r, 0, &m);
    if (p->setup_rc == 0) {
        carechat_message_cleanup(&m);
        snprintf(p->setup_error, sizeof p->setup_error, "recipient: unexpected message");
        p->setup_rc = STATUS_CONFLICT;
    } else if (p->setup_rc == STATUS_NOT_FOUND) {
        p->setup_rc = 0;
    } else {
        pair_fail(p, p->setup_error, sizeof p->setup_error, p->r, "recipient sync");
    }
    return NULL;
}

/* ---- the run ------------------------------------------------------------------------------ */

static void wait_go(void) {
    pthread_mutex_lock(&go_lock);
    while (!go)
        pthread_cond_wait(&go_cond, &go_lock);
    pthread_mutex_unlock(&go_lock);
}

static void *sender_main(void *arg) {
    struct pair *p = arg;
    uint8_t *body = xmalloc(p->opt->size);
    /* Random text (libcarechat sends UTF-8 only): letters a..p. */
    rand_bytes(body, p->opt->size);
    for (size_t i = 0; i < p->opt->size; i++)
        body[i] = (uint8_t)('a' + (body[i] & 15));
    wait_go();
    for (int k = 0; k < p->opt->messages; k++) {
        if (clock_monotonic_ms() >= p->deadline) {
            snprintf(p->send_error, sizeof p->send_error, "deadline passed after %d sends",
                     p->sent);
            break;
        }
        /* Distinct bodies: the first bytes carry the index, as letters. */
        for (size_t i = 0; i < sizeof k * 2 && i < p->opt->size; i++)
            body[i] = (uint8_t)('a' + (((unsigned)k >> (4 * i)) & 15));
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = carechat_send(p->s, &p->conv, body, p->opt->size, NULL, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (rc != 0) {
            pair_fail(p, p->send_error, sizeof p->send_error, p->s, "send");
            break;
        }
        p->latency_ms[p->sent++] =
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        p->last_answer_ms = clock_monotonic_ms();
    }
    free(body);
    return NULL;
}

static void *recipient_main(void *arg) {
    struct pair *p = arg;
    wait_go();
    int since_ack = 0;
    /* Bounded by the count and by the deadline: each round takes a message or
     * waits at most RECV_WAIT_MS (plus one request timeout). */
    while (p->received + p->bad < p->opt->messages) {
        if (clock_monotonic_ms() >= p->deadline) {
            snprintf(p->recv_error, sizeof p->recv_error, "deadline passed after %d deliveries",
                     p->received);
            break;
        }
        struct carechat_message m;
        int rc = carechat_recv(p->r, RECV_WAIT_MS, &m);
        if (rc == STATUS_NOT_FOUND)
            continue;
        if (rc != 0) {
            pair_fail(p, p->recv_error, sizeof p->recv_error, p->r, "recv");
            break;
        }
        if (m.state == CARECHAT_MESSAGE_OK && m.text_len == p->opt->size)
            p->received++;
        else
            p->bad++;
        p->last_delivery_ms = clock_monotonic_ms();
        carechat_message_cleanup(&m);
        if (++since_ack >= ACK_EVERY) {
            since_ack = 0;
            if (carechat_ack(p->r) != 0) {
                pair_fail(p, p->recv_error, sizeof p->recv_error, p->r, "ack");
                break;
            }
        }
    }
    if (since_ack > 0 && p->recv_error[0] == '\0' && carechat_ack(p->r) != 0)
        pair_fail(p, p->recv_error, sizeof p->recv_error, p->r, "ack");
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double q) {
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* CPU seconds (user + system) `pid` has used, or -1. */
static double process_cpu_s(pid_t pid) {
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    double cpu = -1;
    if (fgets(line, sizeof line, f)) {
        /* Fields after the command name (which may hold spaces): state is
         * field 3, utime 14, stime 15. */
        const char *p = strrchr(line, ')');
        unsigned long ut, st;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    fclose(f);
    return cpu;
}

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Prints VmRSS and VmHWM of `pid`. */
static void print_rss(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("server RSS: unavailable (%s)\n", strerror(errno));
        return;
    }
    long rss = -1, hwm = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            rss = atol(line + 6);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            hwm = atol(line + 6);
    }
    fclose(f);
    printf("server RSS: %.1f MiB (peak %.1f MiB)\n", (double)rss / 1024, (double)hwm / 1024);
}

static void print_batches(const struct journal_figures *a, const struct journal_figures *b) {
    if (!a->ok || !b->ok) {
        printf("journal batches: unavailable (GET /metrics needs --metrics HOST:PORT)\n");
        return;
    }
    double batches = b->batch_count - a->batch_count;
    double entries = b->batch_sum - a->batch_sum;
    printf("journal batches during the run: %.0f entries in %.0f synced batches, mean batch "
           "size %.2f\n",
           entries, batches, batches > 0 ? entries / batches : 0);
    printf("  batch size histogram (batches in the run):");
    double below = 0;
    for (int i = 0; i < 8; i++) {
        double cum = b->batch_bucket[i] - a->batch_bucket[i];
        printf(" le%s=%.0f", batch_le[i], cum - below);
        below = cum;
    }
    printf("\n");
    double fsyncs = b->fsync_count - a->fsync_count;
    if (fsyncs > 0)
        printf("  synced writes: %.0f, mean %.3f ms\n", fsyncs,
               (b->fsync_sum_s - a->fsync_sum_s) * 1e3 / fsyncs);
}

int main(int argc, char **argv) {
    struct options opt;
    if (parse_options(argc, argv, &opt) != 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const int64_t deadline = clock_monotonic_ms() + (int64_t)opt.timeout_s * 1000;
    int result = 1;
    char tmp[PATH_MAX];
    if (make_tmpdir(tmp) != 0)
        return 1;
    struct server srv = {.pid = 0};
    const int n = opt.senders;
    struct pair *pairs = xcalloc((size_t)n, sizeof *pairs);
    pthread_t *threads = xcalloc((size_t)(2 * n), sizeof *threads);
    int started = 0;

    if ((opt.server_url ? external_server(&opt, &srv) : start_server(&opt, tmp, &srv)) != 0)
        goto out;
    printf("carechat-bench: %d senders x %d messages x %zu bytes, server %s%s\n", n, opt.messages,
           opt.size, srv.url, srv.pid ? " (started here)" : "");
    if (srv.pid) {
        printf("raised limits:");
        for (size_t i = 0; i < N_RAISED; i += 2)
            printf(" %s %s", raised_limits[i], raised_limits[i + 1]);
        printf("\n");
    } else {
        printf("limits: the server's own (per-account send rate, per-address logins and "
               "connections)\n");
    }
    fflush(stdout);

    for (int i = 0; i < n; i++) {
        struct pair *p = &pairs[i];
        p->index = i;
        p->opt = &opt;
        p->deadline = deadline;
        p->latency_ms = xcalloc((size_t)opt.messages, sizeof *p->latency_ms);
        snprintf(p->dir_s, sizeof p->dir_s, "%.*s/p-s%d", PATH_MAX - 32, tmp, i);
        snprintf(p->dir_r, sizeof p->dir_r, "%.*s/p-r%d", PATH_MAX - 32, tmp, i);
        p->s = open_handle(srv.url, p->dir_s);
        p->r = open_handle(srv.url, p->dir_r);
        if (!p->s || !p->r)
            goto out;
    }
    int64_t t_setup = clock_monotonic_ms();
    if (invite_all(&srv, tmp, pairs, n) != 0)
        goto out;
    /* In waves: a registration's connection must authenticate within the
     * server's --auth-timeout, and password hashing is serialised there. */
    for (int base = 0; base < n; base += SETUP_PARALLEL) {
        int end = base + SETUP_PARALLEL < n ? base + SETUP_PARALLEL : n;
        for (int i = base; i < end; i++)
            if (pthread_create(&threads[i], NULL, pair_setup, &pairs[i]) != 0)
                abort();
        for (int i = base; i < end; i++)
            pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < n; i++) {
        if (pairs[i].setup_rc != 0) {
            fprintf(stderr, "carechat-bench: pair %d setup: %s\n", i, pairs[i].setup_error);
            goto out;
        }
    }
    printf("setup: %d accounts in %.1f s\n",
           2 * n + (2 * n + INVITES_PER_ADMIN - 1) / INVITES_PER_ADMIN + 1,
           (double)(clock_monotonic_ms() - t_setup) / 1e3);
    fflush(stdout);

    struct journal_figures before = read_journal(&srv);
    double server_cpu0 = srv.pid ? process_cpu_s(srv.pid) : -1, self_cpu0 = self_cpu_s();
    for (int i = 0; i < n; i++) {
        if (pthread_create(&threads[started], NULL, sender_main, &pairs[i]) != 0)
            abort();
        started++;
        if (pthread_create(&threads[started], NULL, recipient_main, &pairs[i]) != 0)
            abort();
        started++;
    }
    pthread_mutex_lock(&go_lock);
    go = true;
    go_ms = clock_monotonic_ms();
    pthread_cond_broadcast(&go_cond);
    pthread_mutex_unlock(&go_lock);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    started = 0;
    struct journal_figures after = read_journal(&srv);
    double server_cpu = srv.pid ? process_cpu_s(srv.pid) - server_cpu0 : -1;
    double self_cpu = self_cpu_s() - self_cpu0;

    size_t sent = 0, received = 0, bad = 0, errors = 0;
    int64_t last_answer = go_ms, last_delivery = go_ms;
    for (int i = 0; i < n; i++) {
        struct pair *p = &pairs[i];
        sent += (size_t)p->sent;
        received += (size_t)p->received;
        bad += (size_t)p->bad;
        if (p->last_answer_ms > last_answer)
            last_answer = p->last_answer_ms;
        if (p->last_delivery_ms > last_delivery)
            last_delivery = p->last_delivery_ms;
        if (p->send_error[0]) {
            fprintf(stderr, "carechat-bench: sender %d: %s\n", i, p->send_error);
            errors++;
        }
        if (p->recv_error[0]) {
            fprintf(stderr, "carechat-bench: recipient %d: %s\n", i, p->recv_error);
            errors++;
        }
    }
    double *lat = xcalloc(sent ? sent : 1, sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < pairs[i].sent; j++)
            lat[k++] = pairs[i].latency_ms[j];
    qsort(lat, sent, sizeof *lat, cmp_double);
    double send_s = (double)(last_answer - go_ms) / 1e3;
    double recv_s = (double)(last_delivery - go_ms) / 1e3;
    double send_rate = send_s > 0 ? (double)sent / send_s : 0;
    double recv_rate = recv_s > 0 ? (double)received / recv_s : 0;
    double p50 = percentile(lat, sent, 0.50), p99 = percentile(lat, sent, 0.99);
    printf("sends answered OK: %zu of %d in %.2f s: %.0f msgs/s; send-to-ack latency p50 %.2f ms, "
           "p99 %.2f ms, max %.2f ms\n",
           sent, n * opt.messages, send_s, send_rate, p50, p99, sent ? lat[sent - 1] : 0.0);
    printf("deliveries to online recipients: %zu of %d in %.2f s: %.0f deliveries/s%s\n", received,
           n * opt.messages, recv_s, recv_rate, bad ? " (some did not verify)" : "");
    free(lat);
    if (srv.pid) {
        print_rss(srv.pid);
        printf("CPU during the run: server %.2f s, bench clients (encryption, decryption) %.2f s, "
               "%ld cores\n",
               server_cpu, self_cpu, sysconf(_SC_NPROCESSORS_ONLN));
    } else {
        printf("server RSS: not measured (server not started here)\n");
    }
    print_batches(&before, &after);
    if (errors == 0 && bad == 0 && sent == (size_t)n * (size_t)opt.messages && received == sent) {
        printf("send_ack_msgs_per_s=%.0f p50_ms=%.2f p99_ms=%.2f deliveries_per_s=%.0f\n",
               send_rate, p50, p99, recv_rate);
        result = 0;
    } else {
        fprintf(stderr, "carechat-bench: incomplete run (%zu errors, %zu not verified)\n", errors,
                bad);
    }

out:
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < n; i++) {
        carechat_close(pairs[i].s);
        carechat_close(pairs[i].r);
        free(pairs[i].latency_ms);
    }
    free(pairs);
    free(threads);
    if (srv.pid) {
        stop_server(&srv);
        if (result != 0)
            print_log(srv.log_path);
    }
    fflush(stdout);
    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return result;
}
