/*
 * tests/files_test.c: end-to-end encrypted file transfer through libcarechat
 * (carechat_upload_file, carechat_send_content, carechat_recv,
 * carechat_download_file) against the real carechatd:
 *   - files of 0, 1, 65536, 65537 bytes, one whose ciphertext ends exactly on
 *     a 128 KiB chunk boundary, and 3 MiB + 17 go from a provider to a
 *     patient, who downloads them, and the bytes are the same;
 *   - a 20 MiB upload cut five times at random offsets with chunks in flight
 *     (four dropped connections, the server closing it when the same device
 *     connects elsewhere, and once kill -9 of the server) resumes, within the
 *     call or from the profile after the restart, and the server never
 *     reports less than an offset it had acknowledged; the patient's download
 *     is byte-identical;
 *   - a 20 MiB file encrypted with filecrypt and uploaded over tus in PATCHes
 *     cut mid-body three times (each resumed at HEAD's offset, which never
 *     drops below an answered one) is completed on the WebSocket, sent, and
 *     downloaded by the patient over the WebSocket (byte-identical plaintext)
 *     and over HTTP (the digest the message names);
 *   - someone who is not a member of the conversation gets NOT_FOUND, and the
 *     refusal is in the audit log (file.download, outcome NOT_FOUND);
 *   - a file larger than --file-max is refused before anything is stored;
 *   - once the message carrying a file is recalled, the file is refused;
 *   - canary: a file whose plaintext holds a unique string, sent with a unique
 *     file name, leaves neither in any file of the data directory (SST, WAL,
 *     blob files, keys), the server's log or /metrics.
 *
 * One server (bootstrapped, --file-max 32m); every wait has a deadline;
 * everything is on 127.0.0.1.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/carechat.h"
#include "server/records_files.h"
#include "storage/blob.h"
#include "storage/store.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/wsclient.h"

#define PASSWORD "member-secret-passphrase"
#define WAIT_MS 3000

static struct harness *server;
static char url[FIXTURE_URL_LEN];
static struct carechat *root, *dr, *pat, *other;
static char root_profile[FIXTURE_DIR_LEN], dr_profile[FIXTURE_DIR_LEN],
    pat_profile[FIXTURE_DIR_LEN], other_profile[FIXTURE_DIR_LEN];
static struct id conv;

static int group_setup(void **state) {
    (void)state;
    const char *args[] = {
        "--file-max", "32m", "--audit-coalesce", "0", "--read-burst", "100000", "--upload-ttl",
        "60",         NULL};
    if (fixture_start_bootstrapped(args, &server) != 0)
        return -1;
    fixture_url(server, url);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    carechat_close(root);
    carechat_close(dr);
    carechat_close(pat);
    carechat_close(other);
    return fixture_stop(server);
}

/* The provider, the patient, a stranger and their direct conversation, made
 * once. */
static void people(void) {
    if (root)
        return;
    fixture_fresh_profile("root", root_profile);
    root = fixture_open(url, root_profile);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    char email[FIXTURE_EMAIL_LEN], pat_email[FIXTURE_EMAIL_LEN];
    fixture_email("dr", email);
    dr = fixture_invite_register(url, root, email, CARECHAT_ROLE_PROVIDER, PASSWORD, "Dr",
                                 dr_profile);
    fixture_email("pat", pat_email);
    pat = fixture_invite_register(url, dr, pat_email, CARECHAT_ROLE_PATIENT, PASSWORD, "Pat",
                                  pat_profile);
    fixture_email("other", email);
    other = fixture_invite_register(url, dr, email, CARECHAT_ROLE_PATIENT, PASSWORD, "Other",
                                    other_profile);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(dr, carechat_open_direct(dr, pat_email, &cv));
    conv = cv.conversation_id;
    carechat_conversation_cleanup(&cv);
}

/* After a restart (a new port): every handle again on its profile. */
static void reopen_all(void) {
    fixture_url(server, url);
    carechat_close(root);
    carechat_close(dr);
    carechat_close(pat);
    carechat_close(other);
    root = fixture_open(url, root_profile);
    dr = fixture_open(url, dr_profile);
    pat = fixture_open(url, pat_profile);
    other = fixture_open(url, other_profile);
}

static void tmp_path(const char *name, char out[PATH_MAX]) {
    char dir[PATH_MAX];
    harness_tmpdir(name, dir);
    snprintf(out, PATH_MAX, "%.4000s/%s", dir, name);
}

/* Writes `len` bytes (random, with `text` at the start and every 64 KiB when
 * not NULL) to a new file; returns its contents (free()). */
static uint8_t *write_file(const char *path, size_t len, const char *text) {
    uint8_t *data = malloc(len ? len : 1);
    assert_non_null(data);
    rand_bytes(data, len);
    for (size_t at = 0; text && at + strlen(text) <= len; at += 65536)
        memcpy(data + at, text, strlen(text));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return data;
}

static void assert_file_equals(const char *path, const uint8_t *data, size_t len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *got = malloc(len + 1);
    assert_non_null(got);
    size_t n = fread(got, 1, len + 1, f);
    fclose(f);
    assert_int_equal(n, len);
    assert_memory_equal(got, data, len);
    free(got);
}

/* Sends `a` with a text in the conversation; the patient receives it and
 * gets the attachment back into *out. */
static void send_and_receive(const struct carechat_attachment *a, struct carechat_attachment *out) {
    struct carechat_content content = {
        .text = "see attached", .text_len = 12, .attachments = a, .n_attachments = 1};
    FIXTURE_ASSERT_OK(dr, carechat_send_content(dr, &conv, &content, NULL, false, NULL));
    struct carechat_message m;
    FIXTURE_ASSERT_OK(pat, carechat_recv(pat, WAIT_MS, &m));
    assert_int_equal(m.state, CARECHAT_MESSAGE_OK);
    assert_int_equal(m.n_attachments, 1);
    *out = m.attachments[0];
    assert_true(id_equal(&out->file.file_id, &a->file.file_id));
    carechat_message_cleanup(&m);
    FIXTURE_ASSERT_OK(pat, carechat_ack(pat));
}

static void round_trip(size_t len) {
    char src[PATH_MAX], dst[PATH_MAX];
    tmp_path("src.bin", src);
    tmp_path("dst.bin", dst);
    uint8_t *data = write_file(src, len, NULL);
    struct carechat_attachment a, got;
    FIXTURE_ASSERT_OK(
        dr, carechat_upload_file(dr, &conv, src, "scan.bin", "application/octet-stream", NULL, &a));
    assert_int_equal(a.file.size, len);
    send_and_receive(&a, &got);
    assert_int_equal(got.file.size, len);
    assert_string_equal(got.file_name, "scan.bin");
    FIXTURE_ASSERT_OK(pat, carechat_download_file(pat, &got, dst, NULL));
    assert_file_equals(dst, data, len);
    free(data);
}

static void test_files_round_trip_sizes(void **state) {
    (void)state;
    people();
    /* A plaintext of 2 * 65536 - 24 - 2 * 17 bytes pads to 2 chunks; what
     * matters here is a ciphertext of exactly k * 128 KiB: find one. */
    size_t boundary = 0;
    for (size_t n = 65537; n < 4u << 20 && !boundary; n += 1)
        if (filecrypt_ciphertext_size(n) % (128u * 1024) == 0)
            boundary = n;
    const size_t sizes[] = {0, 1, 65536, 65537, boundary ? boundary : 300000, (3u << 20) + 17};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        round_trip(sizes[i]);
}

/* ---- interrupted upload ---------------------------------------------------------------- */

/* Cuts of one carechat_upload_file() call, at the offsets in `at` (the
 * first progress report past each): a cut drops the connection mid-flight
 * (another handle on the same device connects, and the server closes this
 * one: ReplacedElsewhere) and the library resumes within the call; with
 * `kill_last` the last cut is kill -9 of the server instead, which ends the
 * call. Every offset the server reports must be at least every one it
 * reported before, across cuts and restarts: nothing acknowledged is lost. */
struct cuts {
    uint64_t at[4];
    size_t n, next;
    bool kill_last, killed;
    uint64_t acked; /* the largest offset the server acknowledged so far */
    bool regressed;
    size_t reports;
};

static bool on_progress(void *ctx, uint64_t done, uint64_t total) {
    (void)total;
    struct cuts *k = ctx;
    k->reports++;
    if (done < k->acked)
        k->regressed = true;
    if (done > k->acked)
        k->acked = done;
    if (k->next < k->n && done >= k->at[k->next]) {
        bool last = ++k->next == k->n;
        if (last && k->kill_last) {
            harness_kill9(server);
            k->killed = true;
        } else {
            struct carechat *again = fixture_open(url, dr_profile);
            struct carechat_devices *d = NULL;
            assert_int_equal(carechat_devices(again, &d), 0);
            carechat_devices_free(d);
            carechat_close(again);
        }
    }
    return true;
}

static void test_files_interrupted_upload_resumes(void **state) {
    (void)state;
    people();
    const size_t len = 20u << 20;
    char src[PATH_MAX], dst[PATH_MAX];
    tmp_path("big.bin", src);
    tmp_path("big.out", dst);
    uint8_t *data = write_file(src, len, NULL);
    uint64_t total = filecrypt_ciphertext_size(len);
    /* Five cuts at random offsets: two connection drops and kill -9 in the
     * first call, two drops in the second, which completes. */
    uint64_t r[5];
    rand_bytes(r, sizeof r);
    uint64_t at[5];
    for (int i = 0; i < 5; i++)
        at[i] = (uint64_t)(i + 1) * total / 6 - r[i] % (total / 12);
    struct cuts k = {.at = {at[0], at[1], at[2]}, .n = 3, .kill_last = true};
    struct carechat_transfer t = {.progress = on_progress, .ctx = &k};
    struct carechat_attachment a;
    assert_int_not_equal(carechat_upload_file(dr, &conv, src, "big.bin", NULL, &t, &a), 0);
    assert_true(k.killed);
    assert_int_equal(k.next, 3);
    assert_int_equal(harness_restart(server), 0);
    reopen_all();
    uint64_t acked = k.acked;
    struct cuts k2 = {.at = {at[3], at[4]}, .n = 2, .acked = acked};
    t.ctx = &k2;
    FIXTURE_ASSERT_OK(dr, carechat_upload_file(dr, &conv, src, "big.bin", NULL, &t, &a));
    assert_int_equal(k2.next, 2);
    assert_false(k.regressed);
    assert_false(k2.regressed);
    assert_int_equal(k2.acked, total);
    /* Another member's device downloads it. */
    struct carechat_attachment got;
    send_and_receive(&a, &got);
    FIXTURE_ASSERT_OK(pat, carechat_download_file(pat, &got, dst, NULL));
    assert_file_equals(dst, data, len);
    free(data);
}

/* ---- both faces: tus and the WebSocket ----------------------------------------------------- */

/* A session token of `profile` (hex) into out[65]. */
static void profile_token(const char *profile, char out[65]) {
    char path[FIXTURE_DIR_LEN + 16];
    snprintf(path, sizeof path, "%s/profile", profile);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    out[0] = '\0';
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "session_token ", 14) == 0)
            sscanf(line + 14, "%64s", out);
    fclose(f);
    assert_int_equal(strlen(out), 64);
}

/* One HTTP/1.1 request on a new connection to the server: `head` (the
 * request line and headers, without the final CRLF) and `body_len` bytes of
 * `body`; with `cut` the connection is closed after that many body bytes
 * (0 returned). Otherwise returns the status, the response head in `resp`
 * (may be NULL) and the body appended to `out` (may be NULL). */
static int http(const char *head, const uint8_t *body, size_t body_len, size_t cut,
                struct buf *resp, struct buf *out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char h[2048];
    int n = snprintf(h, sizeof h, "%s\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n", head,
                     body_len);
    assert_int_equal(send(fd, h, (size_t)n, MSG_NOSIGNAL), n);
    size_t to_send = cut ? cut : body_len;
    for (size_t off = 0; off < to_send;) {
        ssize_t k = send(fd, body + off, to_send - off, MSG_NOSIGNAL);
        assert_true(k > 0);
        off += (size_t)k;
    }
    if (cut) {
        close(fd);
        usleep(300000); /* the chunks that arrived become durable */
        return 0;
    }
    struct buf in;
    buf_init(&in);
    char piece[65536];
    ssize_t k;
    size_t head_end = 0;
    uint64_t want = UINT64_MAX;
    while ((k = recv(fd, piece, sizeof piece, 0)) > 0) {
        buf_append(&in, piece, (size_t)k);
        if (!head_end) {
            buf_append(&in, "", 1);
            char *e = strstr((char *)in.data, "\r\n\r\n");
            in.len--;
            if (!e)
                continue;
            head_end = (size_t)(e - (char *)in.data) + 4;
            const char *cl = strcasestr((char *)in.data, "\ncontent-length: ");
            want = cl ? strtoull(cl + 17, NULL, 10) : 0;
        }
        if (in.len - head_end >= want)
            break;
    }
    close(fd);
    assert_true(head_end > 0);
    int status = atoi((char *)in.data + 9);
    if (resp) {
        buf_append(resp, in.data, head_end);
        buf_append(resp, "", 1);
    }
    if (out)
        buf_append(out, in.data + head_end, in.len - head_end);
    buf_cleanup(&in);
    return status;
}

/* The value of header `name` ("upload-offset") in a response head. */
static uint64_t header_u64(const struct buf *resp, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "\n%s: ", name);
    const char *p = strcasestr((const char *)resp->data, key);
    assert_non_null(p);
    return strtoull(p + strlen(key), NULL, 10);
}

static void test_files_tus_upload_downloaded_over_websocket(void **state) {
    (void)state;
    people();
    /* The provider encrypts a 20 MiB file for an upload created over tus. */
    char token[65], head[1024], conv_hex[ID_HEX_LEN + 1], conv64[64];
    profile_token(dr_profile, token);
    id_to_hex(&conv, conv_hex);
    sodium_bin2base64(conv64, sizeof conv64, (const uint8_t *)conv_hex, 32,
                      sodium_base64_VARIANT_ORIGINAL);
    const size_t len = 20u << 20;
    uint8_t *plain = malloc(len);
    rand_bytes(plain, len);
    uint64_t total = filecrypt_ciphertext_size(len);
    snprintf(head, sizeof head,
             "POST /files/ HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer %s\r\n"
             "Upload-Length: %" PRIu64 "\r\nUpload-Metadata: conversation %s",
             token, total, conv64);
    struct buf resp;
    buf_init(&resp);
    assert_int_equal(http(head, NULL, 0, 0, &resp, NULL), 201);
    char location[128];
    const char *loc = strcasestr((const char *)resp.data, "\nlocation: ");
    assert_non_null(loc);
    sscanf(loc + 11, "%127s", location);
    struct id file_id;
    assert_int_equal(id_from_hex(location + 7, &file_id), 0);
    struct buf cipher;
    buf_init(&cipher);
    struct filecrypt_enc *enc = NULL;
    assert_int_equal(filecrypt_encrypt_open(&file_id, len, &cipher, &enc), 0);
    assert_int_equal(filecrypt_encrypt_update(enc, plain, len, &cipher), 0);
    struct carechat_attachment a;
    memset(&a, 0, sizeof a);
    assert_int_equal(filecrypt_encrypt_finish(enc, &cipher, &a.file), 0);
    filecrypt_encrypt_free(enc);
    assert_int_equal(cipher.len, total);
    snprintf(a.file_name, sizeof a.file_name, "tus.bin");
    /* PATCHes of up to 8 MiB, the first three cut mid-body at random; each
     * resumes at the offset HEAD gives, never below what was answered. */
    uint64_t offset = 0, answered = 0;
    for (int round = 0; offset < total; round++) {
        uint64_t n = total - offset < (8u << 20) ? total - offset : (8u << 20);
        uint64_t r;
        rand_bytes(&r, sizeof r);
        size_t cut = round < 3 ? (size_t)(1 + r % (n - 1)) : 0;
        snprintf(head, sizeof head,
                 "PATCH %s HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/offset+octet-stream\r\nUpload-Offset: %" PRIu64,
                 location, token, offset);
        buf_reset(&resp);
        int st = http(head, cipher.data + offset, (size_t)n, cut, &resp, NULL);
        if (!cut) {
            assert_int_equal(st, 204);
            answered = header_u64(&resp, "upload-offset");
            assert_int_equal(answered, offset + n);
        }
        snprintf(head, sizeof head,
                 "HEAD %s HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer %s", location,
                 token);
        buf_reset(&resp);
        assert_int_equal(http(head, NULL, 0, 0, &resp, NULL), 200);
        uint64_t stored = header_u64(&resp, "upload-offset");
        assert_true(stored >= answered && stored >= offset);
        if (cut) /* whole chunks of what arrived are kept, nothing past it */
            assert_true(stored <= offset + cut);
        offset = stored;
    }
    assert_int_equal(offset, total);
    /* No sha256 was declared at creation (the file id it names is in the
     * ciphertext): the upload is completed on the WebSocket, then sent. */
    FIXTURE_ASSERT_OK(dr, carechat_complete_upload(dr, &a.file));
    struct carechat_attachment got;
    send_and_receive(&a, &got);
    char dst[PATH_MAX];
    tmp_path("tus.out", dst);
    FIXTURE_ASSERT_OK(pat, carechat_download_file(pat, &got, dst, NULL));
    assert_file_equals(dst, plain, len);
    /* And over HTTP: the ciphertext whose digest the message names. */
    char pat_token[65];
    profile_token(pat_profile, pat_token);
    snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nAuthorization: Bearer %s", location, pat_token);
    struct buf body;
    buf_init(&body);
    buf_reset(&resp);
    assert_int_equal(http(head, NULL, 0, 0, &resp, &body), 200);
    assert_int_equal(body.len, total);
    uint8_t digest[32];
    crypto_hash_sha256(digest, body.data, body.len);
    assert_memory_equal(digest, got.file.sha256, 32);
    buf_cleanup(&body);
    buf_cleanup(&resp);
    buf_cleanup(&cipher);
    free(plain);
}

/* ---- refusals --------------------------------------------------------------------------- */

static void metrics(struct buf *body) {
    int status = 0;
    buf_init(body);
    assert_int_equal(
        http_get("127.0.0.1", server->metrics_port, "/metrics", 5000, &status, NULL, body), 0);
    assert_int_equal(status, 200);
    buf_append(body, "", 1);
}

/* The value of the metrics line starting with `name` (-1 when absent). */
static long long metric(const char *name) {
    struct buf b;
    metrics(&b);
    const char *p = strstr((const char *)b.data, name);
    long long v = p ? atoll(p + strlen(name)) : -1;
    buf_cleanup(&b);
    return v;
}

static void test_files_non_member_refused_and_audited(void **state) {
    (void)state;
    people();
    char src[PATH_MAX], dst[PATH_MAX];
    tmp_path("letter.pdf", src);
    tmp_path("stolen.pdf", dst);
    uint8_t *data = write_file(src, 5000, NULL);
    struct carechat_attachment a, got;
    FIXTURE_ASSERT_OK(
        dr, carechat_upload_file(dr, &conv, src, "letter.pdf", "application/pdf", NULL, &a));
    send_and_receive(&a, &got);
    /* The stranger holds the whole attachment (key included), yet the
     * server serves nothing: NOT_FOUND, as for an unknown file. */
    assert_int_equal(carechat_download_file(other, &got, dst, NULL), STATUS_NOT_FOUND);
    assert_int_equal(access(dst, F_OK), -1);
    struct carechat_session_info who;
    assert_int_equal(carechat_session(other, &who), 0);
    struct carechat_audit_filter f = {.actor = &who.account_id};
    struct carechat_audit_records *recs = NULL;
    FIXTURE_ASSERT_OK(root, carechat_audit_query(root, &f, &recs));
    int refused = 0;
    for (size_t i = 0; i < recs->n; i++)
        if (strcmp(recs->items[i].action, "file.download") == 0 && recs->items[i].outcome == 4 &&
            recs->items[i].object_len == ID_LEN &&
            memcmp(recs->items[i].object, a.file.file_id.b, ID_LEN) == 0)
            refused++;
    carechat_audit_records_free(recs);
    assert_true(refused >= 1);
    /* The member's download is audited as a read of the file, before bytes. */
    FIXTURE_ASSERT_OK(pat, carechat_download_file(pat, &got, dst, NULL));
    assert_file_equals(dst, data, 5000);
    free(data);
}

static void test_files_recalled_file_refused(void **state) {
    (void)state;
    people();
    char src[PATH_MAX], dst[PATH_MAX];
    tmp_path("rash.jpg", src);
    tmp_path("rash.out", dst);
    uint8_t *data = write_file(src, 70000, NULL);
    struct carechat_attachment a;
    FIXTURE_ASSERT_OK(dr, carechat_upload_file(dr, &conv, src, "rash.jpg", "image/jpeg", NULL, &a));
    struct carechat_content content = {.attachments = &a, .n_attachments = 1};
    struct carechat_sent sent;
    FIXTURE_ASSERT_OK(dr, carechat_send_content(dr, &conv, &content, NULL, false, &sent));
    struct carechat_message m;
    FIXTURE_ASSERT_OK(pat, carechat_recv(pat, WAIT_MS, &m));
    assert_int_equal(m.n_attachments, 1);
    struct carechat_attachment got = m.attachments[0];
    carechat_message_cleanup(&m);
    FIXTURE_ASSERT_OK(pat, carechat_ack(pat));
    FIXTURE_ASSERT_OK(pat, carechat_download_file(pat, &got, dst, NULL));
    assert_file_equals(dst, data, 70000);
    /* Recalled: the file is no longer served, though the patient holds the
     * key. */
    FIXTURE_ASSERT_OK(dr, carechat_recall(dr, &conv, &sent.message_id));
    unlink(dst);
    assert_int_equal(carechat_download_file(pat, &got, dst, NULL), STATUS_NOT_FOUND);
    assert_int_equal(access(dst, F_OK), -1);
    free(data);
}

static void test_files_oversize_refused_before_storing(void **state) {
    (void)state;
    people();
    char src[PATH_MAX];
    tmp_path("huge.bin", src);
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 40ll << 20), 0); /* sparse: --file-max is 32m */
    close(fd);
    long long started = metric("carechat_uploads_total{event=\"started\"} ");
    struct carechat_attachment a;
    assert_int_equal(carechat_upload_file(dr, &conv, src, "huge.bin", NULL, NULL, &a),
                     STATUS_TOO_LARGE);
    assert_int_equal(metric("carechat_uploads_total{event=\"started\"} "), started);
    /* Nothing was encrypted into the profile either. */
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/uploads", dr_profile);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            assert_true(e->d_name[0] == '.');
        closedir(d);
    }
}

/* ---- garbage collection ------------------------------------------------------------------ */

static bool stop_early(void *ctx, uint64_t done, uint64_t total) {
    (void)ctx;
    (void)total;
    return done < 2 * CARECHAT_FILE_CHUNK;
}

/* The file id in the only upload state of the provider's profile. */
static void upload_state_file(struct id *out) {
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/uploads", dr_profile);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    bool found = false;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 6, ".state") != 0)
            continue;
        char path[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char line[256];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "file_id ", 8) == 0) {
                line[8 + 32] = '\0';
                assert_int_equal(id_from_hex(line + 8, out), 0);
                found = true;
            }
        fclose(f);
    }
    closedir(d);
    assert_true(found);
}

static void test_files_expired_upload_collected(void **state) {
    (void)state;
    people();
    char src[PATH_MAX];
    tmp_path("abandoned.bin", src);
    uint8_t *data = write_file(src, 1u << 20, NULL);
    struct carechat_attachment a;
    struct carechat_transfer t = {.progress = stop_early};
    assert_int_equal(carechat_upload_file(dr, &conv, src, "a.bin", NULL, &t, &a),
                     STATUS_UNAVAILABLE);
    struct id file;
    upload_state_file(&file);
    /* Two minutes later (--upload-ttl 60): the collector deletes it. */
    int status;
    assert_int_equal(harness_stop(server, &status), 0);
    assert_true(server->n_args + 2 <= HARNESS_MAX_ARGS);
    server->args[server->n_args++] = strdup("--clock-offset");
    server->args[server->n_args++] = strdup("120000");
    assert_int_equal(harness_restart(server), 0);
    reopen_all();
    long long expired = 0;
    for (int i = 0; i < 150 && expired < 1; i++) {
        usleep(100000);
        expired = metric("carechat_uploads_total{event=\"expired\"} ");
    }
    assert_true(expired >= 1);
    /* Its record and its chunks are gone from the store. */
    assert_int_equal(harness_stop(server, &status), 0);
    struct store *s = NULL;
    struct store_config sc = {.data_dir = server->data_dir};
    assert_int_equal(store_open(&sc, &s), 0);
    struct buf v;
    buf_init(&v);
    struct key k;
    rec_key_file(&k, &file);
    assert_int_equal(store_get(s, CF_FILES, k.b, k.len, &v), STATUS_NOT_FOUND);
    assert_int_equal(blob_get_chunk(s, &file, 0, &v), STATUS_NOT_FOUND);
    assert_int_equal(blob_get_chunk(s, &file, 1, &v), STATUS_NOT_FOUND);
    buf_cleanup(&v);
    store_close(s);
    assert_int_equal(harness_restart(server), 0);
    reopen_all();
    /* The same file again starts a new upload and completes. */
    FIXTURE_ASSERT_OK(dr, carechat_upload_file(dr, &conv, src, "a.bin", NULL, NULL, &a));
    assert_false(id_equal(&a.file.file_id, &file));
    free(data);
}

/* ---- canary --------------------------------------------------------------------------- */

/* Whether any regular file under `dir` contains `needle`. */
static bool tree_contains(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            found = tree_contains(path, needle);
            continue;
        }
        if (!S_ISREG(sb.st_mode))
            continue;
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        uint8_t *p = malloc((size_t)sb.st_size + 1);
        size_t n = fread(p, 1, (size_t)sb.st_size, f);
        fclose(f);
        found = memmem(p, n, needle, strlen(needle)) != NULL;
        free(p);
    }
    closedir(d);
    return found;
}

static void test_files_canary_leaves_no_trace(void **state) {
    (void)state;
    people();
    uint8_t r[8];
    rand_bytes(r, sizeof r);
    char canary[64], name[64];
    snprintf(canary, sizeof canary, "CANARY-%02x%02x%02x%02x%02x%02x%02x%02x-PLAINTEXT", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
    snprintf(name, sizeof name, "wound-%02x%02x%02x%02x%02x%02x.jpg", r[7], r[6], r[5], r[4], r[3],
             r[2]);
    char src[PATH_MAX], dst[PATH_MAX];
    tmp_path("canary.bin", src);
    tmp_path("canary.out", dst);
    const size_t len = 3u << 20; /* several chunks, so blob files hold them */
    uint8_t *data = write_file(src, len, canary);
    struct carechat_attachment a, got;
    FIXTURE_ASSERT_OK(dr, carechat_upload_file(dr, &conv, src, name, "image/jpeg", NULL, &a));
    send_and_receive(&a, &got);
    assert_string_equal(got.file_name, name);
    FIXTURE_ASSERT_OK(pat, carechat_download_file(pat, &got, dst, NULL));
    assert_file_equals(dst, data, len);
    struct buf m;
    metrics(&m);
    assert_null(strstr((const char *)m.data, canary));
    assert_null(strstr((const char *)m.data, name));
    buf_cleanup(&m);
    /* Stopped: memtables flushed into SST and blob files. */
    int status;
    assert_int_equal(harness_stop(server, &status), 0);
    assert_int_equal(status, 0);
    /* The finder finds the canary where it is: beside the plaintext. */
    char src_dir[PATH_MAX];
    snprintf(src_dir, sizeof src_dir, "%s", src);
    *strrchr(src_dir, '/') = '\0';
    assert_true(tree_contains(src_dir, canary));
    assert_false(tree_contains(server->data_dir, canary));
    assert_false(tree_contains(server->data_dir, name));
    assert_false(harness_log_contains(server, canary));
    assert_false(harness_log_contains(server, name));
    assert_int_equal(harness_restart(server), 0);
    reopen_all();
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_round_trip_sizes),
        cmocka_unit_test(test_files_non_member_refused_and_audited),
        cmocka_unit_test(test_files_oversize_refused_before_storing),
        cmocka_unit_test(test_files_recalled_file_refused),
        cmocka_unit_test(test_files_interrupted_upload_resumes),
        cmocka_unit_test(test_files_tus_upload_downloaded_over_websocket),
        cmocka_unit_test(test_files_expired_upload_collected),
        cmocka_unit_test(test_files_canary_leaves_no_trace),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
