/*
 * tests/bench/bench.c: carechat-bench, the durable-send benchmark (issue 3),
 * and with --mode server the server's own cost (issue 14: server_mode.h).
 *
 *   carechat-bench --senders 16 --messages 200 --size 512
 *   carechat-bench --server ws://127.0.0.1:8080 --setup admin.txt --senders 4
 *   carechat-bench --mode server [--idle 5000 --fanout 100 --messages 20000 ...]
 *
 * What follows describes the default mode (--mode send); --mode server is
 * server_mode.c's, which this file only hands its options to.
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
 * Accounts: the sysadmin invites ceil(2N / BENCH_INVITES_PER_ADMIN) admins (the
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
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/carechat.h"
#include "tests/bench/server_mode.h"
#include "tests/bench/accounts.h"
#include "tests/bench/target.h"

#define MAX_SENDERS 256
#define MAX_MESSAGES 100000
#define ACK_EVERY 64
#define SETUP_PARALLEL 8
#define RECV_WAIT_MS 500

/* The limits raised on a server the bench starts (printed with the figures). */
static const char *const raised_limits[] = {
    "--send-burst",       "1000000", "--send-window", "1",       "--login-burst-per-ip", "1000000",
    "--max-conns-per-ip", "100000",  "--inbox-max",   "1000000",
};
#define N_RAISED (sizeof raised_limits / sizeof raised_limits[0])

struct options {
    bool server_mode;               /* --mode server */
    struct server_mode_options srv; /* its options */
    int senders;
    int messages;
    size_t size;
    const char *server_url; /* NULL: start our own */
    const char *setup_file;
    const char *metrics; /* with --server: its metrics listener, IPV4:PORT */
    const char *carechatd;
    int timeout_s;
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

static void usage(FILE *f) {
    fprintf(f, "usage: carechat-bench [--mode send] [--senders N] [--messages M] [--size BYTES]\n"
               "                      [--carechatd PATH | --server URL --setup FILE\n"
               "                       [--metrics HOST:PORT]]\n"
               "                      [--timeout SECONDS]\n"
               "       carechat-bench --mode server [--carechatd PATH] [--messages M] [--pairs N]\n"
               "                      [--window N] [--fanout N] [--fanout-messages M]\n"
               "                      [--fanout-window N] [--idle N] [--rate N] [--paced M]\n"
               "                      [--size BYTES] [--timeout SECONDS]\n"
               "  --mode send|server send: the durable-send run through libcarechat (default);\n"
               "                    server: the server's CPU per message, per fan-out delivery\n"
               "                    and per connection, with a lean driver (issue 14)\n"
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
               "  --timeout SECONDS deadline for the whole run (default 600)\n"
               "--mode server:\n"
               "  --messages M      1:1 messages at saturation, in all (1..200000, default 20000)\n"
               "  --pairs N         1:1 sender/recipient pairs (1..64, default 16)\n"
               "  --window N        Sends in flight per 1:1 sender (1..256, default 4)\n"
               "  --fanout N        receiving members of the channel (1..255, default 100)\n"
               "  --fanout-messages M messages to the channel (1..200000, default 300)\n"
               "  --fanout-window N Sends in flight to the channel (1..256, default 4)\n"
               "  --idle N          idle authenticated connections (1..100000, default 5000)\n"
               "  --rate N          paced messages a second (1..10000, default 200)\n"
               "  --paced M         messages of each paced run (1..200000, default 2000)\n");
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

static bool listed(const char *a, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(a, names[i]) == 0)
            return true;
    return false;
}

/* Options that belong to one mode only. */
static const char *const send_options[] = {"--senders", "--server", "--setup", "--metrics"};
static const char *const server_options[] = {
    "--pairs",         "--window", "--fanout", "--fanout-messages",
    "--fanout-window", "--idle",   "--rate",   "--paced",
};

static int parse_options(int argc, char **argv, struct options *o) {
    *o = (struct options){
        .srv = SERVER_MODE_DEFAULTS, .senders = 4, .messages = 200, .size = 512, .timeout_s = 600};
    struct server_mode_options *s = &o->srv;
    bool send_only = false, server_only = false;
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
        send_only |= listed(a, send_options, sizeof send_options / sizeof send_options[0]);
        server_only |= listed(a, server_options, sizeof server_options / sizeof server_options[0]);
        if (strcmp(a, "--mode") == 0 && (strcmp(v, "send") == 0 || strcmp(v, "server") == 0))
            o->server_mode = strcmp(v, "server") == 0;
        else if (strcmp(a, "--senders") == 0 && parse_int(v, 1, MAX_SENDERS, &n))
            o->senders = (int)n;
        else if (strcmp(a, "--messages") == 0 && parse_int(v, 1, SERVER_MODE_MAX_MESSAGES, &n))
            o->messages = s->messages = (int)n; /* checked per mode below */
        else if (strcmp(a, "--size") == 0 && parse_int(v, 1, CARECHAT_MAX_TEXT, &n))
            o->size = s->size = (size_t)n;
        else if (strcmp(a, "--timeout") == 0 && parse_int(v, 1, 86400, &n))
            o->timeout_s = s->timeout_s = (int)n;
        else if (strcmp(a, "--server") == 0)
            o->server_url = v;
        else if (strcmp(a, "--setup") == 0)
            o->setup_file = v;
        else if (strcmp(a, "--metrics") == 0 && strchr(v, ':'))
            o->metrics = v;
        else if (strcmp(a, "--carechatd") == 0)
            o->carechatd = s->carechatd = v;
        else if (strcmp(a, "--pairs") == 0 && parse_int(v, 1, SERVER_MODE_MAX_PAIRS, &n))
            s->pairs = (int)n;
        else if (strcmp(a, "--window") == 0 && parse_int(v, 1, SERVER_MODE_MAX_WINDOW, &n))
            s->window = (int)n;
        else if (strcmp(a, "--fanout") == 0 && parse_int(v, 1, SERVER_MODE_MAX_FANOUT, &n))
            s->fanout = (int)n;
        else if (strcmp(a, "--fanout-messages") == 0 &&
                 parse_int(v, 1, SERVER_MODE_MAX_MESSAGES, &n))
            s->fanout_messages = (int)n;
        else if (strcmp(a, "--fanout-window") == 0 && parse_int(v, 1, SERVER_MODE_MAX_WINDOW, &n))
            s->fanout_window = (int)n;
        else if (strcmp(a, "--idle") == 0 && parse_int(v, 1, SERVER_MODE_MAX_IDLE, &n))
            s->idle = (int)n;
        else if (strcmp(a, "--rate") == 0 && parse_int(v, 1, SERVER_MODE_MAX_RATE, &n))
            s->rate = (int)n;
        else if (strcmp(a, "--paced") == 0 && parse_int(v, 1, SERVER_MODE_MAX_MESSAGES, &n))
            s->paced = (int)n;
        else {
            fprintf(stderr, "carechat-bench: bad option or value: %s %s\n", a, v);
            return STATUS_BAD_REQUEST;
        }
    }
    if (o->server_mode && send_only) {
        fprintf(stderr, "carechat-bench: --senders, --server, --setup and --metrics are not "
                        "options of --mode server\n");
        return STATUS_BAD_REQUEST;
    }
    if (!o->server_mode && server_only) {
        fprintf(stderr, "carechat-bench: --pairs, --window, --fanout*, --idle, --rate and --paced "
                        "go with --mode server\n");
        return STATUS_BAD_REQUEST;
    }
    if (!o->server_mode && o->messages > MAX_MESSAGES) {
        fprintf(stderr, "carechat-bench: --messages is at most %d per sender\n", MAX_MESSAGES);
        return STATUS_BAD_REQUEST;
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

/* ---- accounts ----------------------------------------------------------------------------- */

static void make_email(const char *who, int i, const struct id *run, char out[64]) {
    snprintf(out, 64, "bench-%s%d-%02x%02x%02x@clinic.example", who, i, run->b[0], run->b[1],
             run->b[2]);
}

/* Invites the sender and recipient of every pair: the sysadmin invites admins,
 * admins invite the providers (BENCH_INVITES_PER_ADMIN each). */
static int invite_all(const struct target_info *srv, const char *tmp, struct pair *pairs, int n) {
    const struct id run = id_new();
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s/p-root", PATH_MAX - 16, tmp);
    struct carechat *root = bench_open(srv->url, dir);
    struct carechat *admin = NULL;
    int rc = root ? carechat_login(root, srv->admin_email, srv->admin_password) : STATUS_IO;
    if (rc != 0) {
        fprintf(stderr, "carechat-bench: sysadmin login: %s\n", root ? carechat_error(root) : "");
        goto out;
    }
    for (int k = 0; k < 2 * n; k++) {
        struct pair *p = &pairs[k / 2];
        if ((rc = bench_inviter(root, srv->url, tmp, &run, (size_t)k, &admin)) != 0)
            goto out;
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
    p->setup_rc =
        carechat_register(p->s, p->code_s, p->email_s, BENCH_PASSWORD, BENCH_BIRTHDATE, name);
    if (p->setup_rc != 0) {
        pair_fail(p, p->setup_error, sizeof p->setup_error, p->s, "register sender");
        return NULL;
    }
    snprintf(name, sizeof name, "Recipient %d", p->index);
    p->setup_rc =
        carechat_register(p->r, p->code_r, p->email_r, BENCH_PASSWORD, BENCH_BIRTHDATE, name);
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

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Prints VmRSS and VmHWM of `pid`. */
static void print_rss(pid_t pid) {
    long rss, hwm;
    if (!target_rss_kb(pid, &rss, &hwm)) {
        printf("server RSS: unavailable (%s)\n", strerror(errno));
        return;
    }
    printf("server RSS: %.1f MiB (peak %.1f MiB)\n", (double)rss / 1024, (double)hwm / 1024);
}

static void print_batches(const struct target_journal *a, const struct target_journal *b) {
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
        printf(" le%s=%.0f", target_batch_le[i], cum - below);
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
    if (opt.server_mode) {
        result = server_mode_run(&opt.srv, tmp);
        fflush(stdout);
        nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        return result;
    }
    struct target *target = NULL;
    const int n = opt.senders;
    struct pair *pairs = xcalloc((size_t)n, sizeof *pairs);
    pthread_t *threads = xcalloc((size_t)(2 * n), sizeof *threads);
    int started = 0;

    struct target_config tcfg = {
        .carechatd = opt.carechatd,
        .dir = tmp,
        .args = raised_limits,
        .n_args = N_RAISED,
        .cpu = -1,
        .url = opt.server_url,
        .setup_file = opt.setup_file,
        .metrics = opt.metrics,
    };
    if (target_open(&tcfg, &target) != 0)
        goto out;
    const struct target_info srv = *target_info(target);
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
        p->s = bench_open(srv.url, p->dir_s);
        p->r = bench_open(srv.url, p->dir_r);
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
           2 * n + (2 * n + BENCH_INVITES_PER_ADMIN - 1) / BENCH_INVITES_PER_ADMIN + 1,
           (double)(clock_monotonic_ms() - t_setup) / 1e3);
    fflush(stdout);

    struct target_journal before = target_journal(target);
    double server_cpu0 = srv.pid ? target_cpu_s(srv.pid) : -1, self_cpu0 = self_cpu_s();
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
    struct target_journal after = target_journal(target);
    double server_cpu = srv.pid ? target_cpu_s(srv.pid) - server_cpu0 : -1;
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
    target_close(target, result != 0);
    fflush(stdout);
    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return result;
}
