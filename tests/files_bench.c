/*
 * tests/files_bench.c: files-bench, the file transfer benchmark (issue 10).
 *
 *   bazel run //tests:files-bench -- [--mib 20] [--concurrent 8]
 *
 * Starts its own carechatd (tests/harness, a fresh data directory under
 * $TEST_TMPDIR or /tmp) with the upload limits raised, makes one provider and
 * one patient per transfer, and for 1 and then N concurrent transfers of
 * --mib MiB each measures:
 *   ws upload     carechat_upload_file() (encryption included) to durable
 *   ws download   carechat_download_file() (decryption and digest included)
 *   tus upload    POST + PATCHes of 8 MiB over plain HTTP (random bytes)
 *   tus download  GET of the whole file
 * and prints MiB/s of file bytes for each, the server's peak RSS (VmHWM) and
 * the largest VmRSS sampled while they ran, and, for scale, the raw
 * sequential synced write rate of the data directory's disk (1 MiB writes,
 * fdatasync after each). Exit status 0 when every transfer succeeded.
 *
 * Threads: main and one worker per transfer, each with its own handle and
 * socket; a sampler thread reads /proc/PID/status.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/id.h"
#include "base/rand.h"
#include "client/carechat.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define MAX_N 16
#define PATCH_BYTES (8u << 20)

static struct harness *server;
static char url[FIXTURE_URL_LEN];
static size_t mib = 20;
static int n_max = 8;

struct worker {
    struct carechat *dr, *pat;
    char dr_profile[FIXTURE_DIR_LEN];
    struct id conv;
    char src[PATH_MAX], dst[PATH_MAX];
    struct carechat_attachment att;
    char token[65];
    char location[128];
    int rc;
};
static struct worker w[MAX_N];

static atomic_bool sampling;
static atomic_long rss_max_kb;

static long status_kb(const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)server->pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            v = atol(line + strlen(field));
    fclose(f);
    return v;
}

static void *sampler(void *arg) {
    (void)arg;
    while (atomic_load(&sampling)) {
        long kb = status_kb("VmRSS:");
        if (kb > atomic_load(&rss_max_kb))
            atomic_store(&rss_max_kb, kb);
        usleep(20000);
    }
    return NULL;
}

/* ---- plain HTTP for tus -------------------------------------------------------------- */

static int http_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        b += k;
        n -= (size_t)k;
    }
    return true;
}

/* Reads a response's head into `head` and returns the status (0 on error);
 * *content_length from its header. */
static int read_head(int fd, char *head, size_t cap, uint64_t *content_length) {
    size_t n = 0;
    while (n + 1 < cap) {
        if (recv(fd, head + n, 1, 0) != 1)
            return 0;
        n++;
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[n] = '\0';
    *content_length = 0;
    for (char *p = head; (p = strcasestr(p, "\ncontent-length:")); p++)
        *content_length = strtoull(p + 16, NULL, 10);
    return atoi(head + 9);
}

static bool skip_body(int fd, uint64_t n, int out) {
    char buf[65536];
    while (n) {
        ssize_t k = recv(fd, buf, n < sizeof buf ? n : sizeof buf, 0);
        if (k <= 0)
            return false;
        if (out >= 0 && write(out, buf, (size_t)k) != k)
            return false;
        n -= (uint64_t)k;
    }
    return true;
}

static int tus_upload(struct worker *x) {
    int fd = http_connect();
    if (fd < 0)
        return -1;
    uint64_t size = (uint64_t)mib << 20, cl;
    char req[1024], head[4096], conv[ID_HEX_LEN + 1], b64[64], sha_hex[65], sha64[128];
    id_to_hex(&x->conv, conv);
    sodium_bin2base64(b64, sizeof b64, (const uint8_t *)conv, 32, sodium_base64_VARIANT_ORIGINAL);
    /* The bytes sent: one random block, repeated; declared so the last PATCH
     * completes the upload. */
    uint8_t *data = malloc(PATCH_BYTES);
    rand_bytes(data, PATCH_BYTES);
    crypto_hash_sha256_state hs;
    crypto_hash_sha256_init(&hs);
    for (uint64_t off = 0; off < size; off += PATCH_BYTES)
        crypto_hash_sha256_update(&hs, data, size - off < PATCH_BYTES ? size - off : PATCH_BYTES);
    uint8_t sha[32];
    crypto_hash_sha256_final(&hs, sha);
    sodium_bin2hex(sha_hex, sizeof sha_hex, sha, 32);
    sodium_bin2base64(sha64, sizeof sha64, (const uint8_t *)sha_hex, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(req, sizeof req,
                     "POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                     "Authorization: Bearer %s\r\nUpload-Length: %" PRIu64 "\r\n"
                     "Upload-Metadata: conversation %s,sha256 %s\r\nContent-Length: 0\r\n\r\n",
                     x->token, size, b64, sha64);
    char *loc = NULL;
    if (!send_all(fd, req, (size_t)n) || read_head(fd, head, sizeof head, &cl) != 201 ||
        !skip_body(fd, cl, -1) || !(loc = strcasestr(head, "\nlocation: "))) {
        free(data);
        close(fd);
        return -1;
    }
    sscanf(loc + 11, "%127s", x->location);
    for (uint64_t off = 0; off < size; off += PATCH_BYTES) {
        uint64_t len = size - off < PATCH_BYTES ? size - off : PATCH_BYTES;
        n = snprintf(req, sizeof req,
                     "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                     "Authorization: Bearer %s\r\nUpload-Offset: %" PRIu64 "\r\n"
                     "Content-Type: application/offset+octet-stream\r\n"
                     "Content-Length: %" PRIu64 "\r\n\r\n",
                     x->location, x->token, off, len);
        if (!send_all(fd, req, (size_t)n) || !send_all(fd, data, len) ||
            read_head(fd, head, sizeof head, &cl) != 204 || !skip_body(fd, cl, -1)) {
            free(data);
            close(fd);
            return -1;
        }
    }
    free(data);
    close(fd);
    return 0;
}

static int tus_download(struct worker *x) {
    int fd = http_connect();
    if (fd < 0)
        return -1;
    char req[512], head[4096];
    uint64_t cl;
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
                 x->location, x->token);
    int st = send_all(fd, req, (size_t)n) ? read_head(fd, head, sizeof head, &cl) : 0;
    bool ok = st == 200 && cl == (uint64_t)mib << 20 && skip_body(fd, cl, -1);
    close(fd);
    return ok ? 0 : -1;
}

/* ---- the phases ------------------------------------------------------------------------ */

enum phase { WS_UP, WS_DOWN, TUS_UP, TUS_DOWN };

struct job {
    int i;
    enum phase phase;
};

static void *job(void *arg) {
    struct job *j = arg;
    struct worker *x = &w[j->i];
    switch (j->phase) {
    case WS_UP:
        x->rc = carechat_upload_file(x->dr, &x->conv, x->src, "bench.bin", NULL, NULL, &x->att);
        break;
    case WS_DOWN:
        x->rc = carechat_download_file(x->pat, &x->att, x->dst, NULL);
        break;
    case TUS_UP:
        x->rc = tus_upload(x);
        break;
    case TUS_DOWN:
        x->rc = tus_download(x);
        break;
    }
    return NULL;
}

static double phase(enum phase ph, int n) {
    pthread_t t[MAX_N];
    struct job jobs[MAX_N];
    int64_t start = clock_monotonic_ms();
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct job){i, ph};
        pthread_create(&t[i], NULL, job, &jobs[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    int64_t ms = clock_monotonic_ms() - start;
    for (int i = 0; i < n; i++)
        if (w[i].rc != 0) {
            fprintf(stderr, "files-bench: transfer %d of phase %d failed (%s)\n", i, (int)ph,
                    w[i].dr ? carechat_error(ph == WS_DOWN ? w[i].pat : w[i].dr) : "");
            exit(1);
        }
    return (double)n * (double)mib / ((double)(ms ? ms : 1) / 1000.0);
}

/* Raw sequential synced writes in the data directory: MiB/s. */
static double disk_rate(void) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/bench.raw", server->data_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 0;
    uint8_t *buf = malloc(1 << 20);
    rand_bytes(buf, 1 << 20);
    int64_t start = clock_monotonic_ms();
    for (int i = 0; i < 64; i++)
        if (write(fd, buf, 1 << 20) != 1 << 20 || fdatasync(fd) != 0)
            break;
    int64_t ms = clock_monotonic_ms() - start;
    close(fd);
    unlink(path);
    free(buf);
    return 64.0 / ((double)(ms ? ms : 1) / 1000.0);
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--mib") == 0)
            mib = (size_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--concurrent") == 0)
            n_max = atoi(argv[i + 1]);
    }
    if (mib < 1 || mib > 60 || n_max < 1 || n_max > MAX_N) {
        fprintf(stderr, "usage: files-bench [--mib 1..60] [--concurrent 1..16]\n");
        return 2;
    }
    int64_t t0 = clock_monotonic_ms();
    if (!getenv("TEST_TMPDIR"))
        setenv("TEST_TMPDIR", "/tmp", 1);
    const char *args[] = {"--file-max",
                          "64m",
                          "--upload-quota",
                          "64g",
                          "--uploads-max",
                          "1000",
                          "--read-burst",
                          "1000000",
                          "--max-conns-per-ip",
                          "1000",
                          NULL};
    if (fixture_start_bootstrapped(args, &server) != 0)
        return 1;
    fixture_url(server, url);
    char rp[FIXTURE_DIR_LEN];
    fixture_fresh_profile("root", rp);
    struct carechat *root = fixture_open(url, rp);
    if (carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD) != 0)
        return 1;
    for (int i = 0; i < n_max; i++) {
        char e1[FIXTURE_EMAIL_LEN], e2[FIXTURE_EMAIL_LEN];
        fixture_email("dr", e1);
        fixture_email("pat", e2);
        w[i].dr = fixture_invite_register(url, root, e1, CARECHAT_ROLE_PROVIDER,
                                          "bench-secret-passphrase", "Dr", w[i].dr_profile);
        w[i].pat = fixture_invite_register(url, w[i].dr, e2, CARECHAT_ROLE_PATIENT,
                                           "bench-secret-passphrase", "Pat", NULL);
        struct carechat_conversation cv;
        if (carechat_open_direct(w[i].dr, e2, &cv) != 0)
            return 1;
        w[i].conv = cv.conversation_id;
        carechat_conversation_cleanup(&cv);
        char pf[FIXTURE_DIR_LEN + 16];
        snprintf(pf, sizeof pf, "%s/profile", w[i].dr_profile);
        FILE *f = fopen(pf, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "session_token ", 14) == 0)
                sscanf(line + 14, "%64s", w[i].token);
        if (f)
            fclose(f);
        char dir[PATH_MAX];
        harness_tmpdir("bench", dir);
        snprintf(w[i].src, sizeof w[i].src, "%.4000s/src", dir);
        snprintf(w[i].dst, sizeof w[i].dst, "%.4000s/dst", dir);
        FILE *s = fopen(w[i].src, "wb");
        uint8_t *buf = malloc(1 << 20);
        for (size_t k = 0; k < mib; k++) {
            rand_bytes(buf, 1 << 20);
            fwrite(buf, 1, 1 << 20, s);
        }
        free(buf);
        fclose(s);
    }
    printf("files-bench: setup done in %.1f s\n", (double)(clock_monotonic_ms() - t0) / 1000.0);
    double disk = disk_rate();
    printf("files-bench: %zu MiB per transfer; data directory %s\n", mib, server->data_dir);
    printf("raw sequential synced writes (1 MiB + fdatasync): %.1f MiB/s\n", disk);
    atomic_store(&sampling, true);
    pthread_t samp;
    pthread_create(&samp, NULL, sampler, NULL);
    int counts[2] = {1, n_max};
    for (int k = 0; k < (n_max > 1 ? 2 : 1); k++) {
        int n = counts[k];
        double wu = phase(WS_UP, n), wd = phase(WS_DOWN, n);
        double tu = phase(TUS_UP, n), td = phase(TUS_DOWN, n);
        printf("%d concurrent: ws upload %.1f MiB/s, ws download %.1f MiB/s, tus upload %.1f "
               "MiB/s, tus download %.1f MiB/s (upload %.2fx the raw disk rate)\n",
               n, wu, wd, tu, td, disk > 0 ? wu / disk : 0);
    }
    atomic_store(&sampling, false);
    pthread_join(samp, NULL);
    printf("server RSS: peak sampled %ld KiB, VmHWM %ld KiB\n", atomic_load(&rss_max_kb),
           status_kb("VmHWM:"));
    for (int i = 0; i < n_max; i++) {
        carechat_close(w[i].dr);
        carechat_close(w[i].pat);
    }
    carechat_close(root);
    return fixture_stop(server) == 0 ? 0 : 1;
}
