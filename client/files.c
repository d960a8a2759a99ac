/*
 * client/files.c: carechat_upload_file() and carechat_download_file(): files
 * encrypted with filecrypt.h, moved as carechat.v1 UploadBegin / UploadChunk
 * / UploadStatus / UploadComplete and DownloadChunk requests, up to
 * CARECHAT_FILE_WINDOW of them in flight.
 *
 * Resumption. An upload's state is two files in PROFILE/uploads/, named by
 * a hash of (conversation, the file's real path, size, modification time):
 *   NAME.state   "file_id HEX", "key HEX", "sha256 HEX", "size N" (0600)
 *   NAME.enc     the whole ciphertext (0600)
 * written after UploadBegin; a later call for the same file asks the server
 * where the upload stands (UploadStatus) and sends the rest from the chunk
 * holding the stored offset. Both are removed once the upload completes, or
 * when the server no longer knows the upload (expired): then it starts over.
 * A download appends ciphertext to OUT.part and goes on from its length.
 *
 * Calls core.c only. The caller's thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/status.h"
#include "client/core.h"

#define STATE_MAX 512
/* Bytes read from a file at a time while encrypting or decrypting. */
#define IO_PIECE (1u << 20)

static ProtobufCBinaryData bin(const struct id *id) {
    return (ProtobufCBinaryData){ID_LEN, (uint8_t *)id->b};
}

static bool cancelled(const struct carechat_transfer *t, uint64_t done, uint64_t total) {
    return t && t->progress && !t->progress(t->ctx, done, total);
}

/* ---- upload state in the profile ------------------------------------------------------ */

struct upload_state {
    char state_path[PATH_MAX], enc_path[PATH_MAX];
    struct filecrypt_file file; /* key: secret */
};

/* PROFILE/uploads/NAME.{state,enc} for the file `path` (opened as fd) and
 * the conversation. Returns 0 or a recorded failure. */
static int state_paths(struct carechat *c, const struct id *conv, const char *path, int fd,
                       struct upload_state *st) {
    struct stat sb;
    char real[PATH_MAX];
    if (fstat(fd, &sb) != 0 || !realpath(path, real))
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "%s: cannot read: %s", path,
                       strerror(errno));
    char dir[PATH_MAX - 64];
    if (snprintf(dir, sizeof dir, "%s/uploads", c->profile_dir) >= (int)sizeof dir)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "profile path too long");
    if (mkdir(c->profile_dir, 0700) != 0 && errno != EEXIST)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_PROFILE, "cannot create the profile: %s",
                       strerror(errno));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_PROFILE, "cannot create %s: %s", dir,
                       strerror(errno));
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, conv->b, ID_LEN);
    crypto_hash_sha256_update(&h, (const uint8_t *)real, strlen(real) + 1);
    uint64_t meta[3] = {(uint64_t)sb.st_size, (uint64_t)sb.st_mtim.tv_sec,
                        (uint64_t)sb.st_mtim.tv_nsec};
    crypto_hash_sha256_update(&h, (const uint8_t *)meta, sizeof meta);
    uint8_t digest[32];
    crypto_hash_sha256_final(&h, digest);
    char name[33];
    sodium_bin2hex(name, sizeof name, digest, 16);
    if (strlen(dir) + 40 >= sizeof st->state_path)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "profile path too long");
    int n1 = snprintf(st->state_path, sizeof st->state_path, "%.4000s/%s.state", dir, name);
    int n2 = snprintf(st->enc_path, sizeof st->enc_path, "%.4000s/%s.enc", dir, name);
    (void)n1;
    (void)n2;
    return 0;
}

static bool hex_field(const char *line, const char *name, uint8_t *out, size_t len) {
    size_t n = strlen(name), got = 0;
    if (strncmp(line, name, n) != 0 || line[n] != ' ')
        return false;
    return sodium_hex2bin(out, len, line + n + 1, strlen(line + n + 1), "\n", &got, NULL) == 0 &&
           got == len;
}

/* Reads NAME.state into st->file. Returns true when it is there and whole. */
static bool state_load(struct upload_state *st) {
    FILE *f = fopen(st->state_path, "r");
    if (!f)
        return false;
    char line[STATE_MAX];
    unsigned have = 0;
    while (fgets(line, sizeof line, f)) {
        if (hex_field(line, "file_id", st->file.file_id.b, ID_LEN))
            have |= 1;
        else if (hex_field(line, "key", st->file.key, FILECRYPT_KEY_LEN))
            have |= 2;
        else if (hex_field(line, "sha256", st->file.sha256, FILECRYPT_DIGEST_LEN))
            have |= 4;
        else if (sscanf(line, "size %" SCNu64, &st->file.size) == 1)
            have |= 8;
    }
    sodium_memzero(line, sizeof line);
    fclose(f);
    st->file.version = FILECRYPT_VERSION;
    return have == 15;
}

static int state_save(struct carechat *c, const struct upload_state *st) {
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", st->state_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_PROFILE, "cannot write %s: %s", tmp,
                       strerror(errno));
    char text[STATE_MAX], fid[ID_LEN * 2 + 1], key[FILECRYPT_KEY_LEN * 2 + 1],
        sha[FILECRYPT_DIGEST_LEN * 2 + 1];
    sodium_bin2hex(fid, sizeof fid, st->file.file_id.b, ID_LEN);
    sodium_bin2hex(key, sizeof key, st->file.key, FILECRYPT_KEY_LEN);
    sodium_bin2hex(sha, sizeof sha, st->file.sha256, FILECRYPT_DIGEST_LEN);
    int n = snprintf(text, sizeof text, "file_id %s\nkey %s\nsha256 %s\nsize %" PRIu64 "\n", fid,
                     key, sha, st->file.size);
    bool ok = n > 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    sodium_memzero(text, sizeof text);
    sodium_memzero(key, sizeof key);
    ok = close(fd) == 0 && ok && rename(tmp, st->state_path) == 0;
    if (!ok)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_PROFILE, "cannot write %s", st->state_path);
    return 0;
}

static void state_drop(const struct upload_state *st) {
    unlink(st->state_path);
    unlink(st->enc_path);
}

/* ---- requests ---------------------------------------------------------------------------- */

static int upload_begin(struct carechat *c, const struct id *conv, uint64_t size, struct id *out) {
    Carechat__V1__UploadBegin m;
    carechat__v1__upload_begin__init(&m);
    m.conversation_id = bin(conv);
    m.size = size;
    m.chunk_size = CARECHAT_FILE_CHUNK;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_UPLOAD_BEGIN;
    req.upload_begin = &m;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such conversation, or you are not a member"},
        {CARECHAT__V1__STATUS__TOO_LARGE, "the file is over the server's limit or your quota"},
        {CARECHAT__V1__STATUS__OK, NULL}};
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_UPLOAD_BEGIN,
                        "beginning the upload", hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__UploadBeginResult *r = resp->response->upload_begin;
    if (!r || id_from_bytes(r->file_id.data, r->file_id.len, out) != 0 ||
        r->chunk_size != CARECHAT_FILE_CHUNK)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "beginning the upload: malformed answer from the server");
    cc_free_response(resp);
    return rc;
}

/* Where the upload stands: 0 with *received and *complete; STATUS_NOT_FOUND
 * (recorded) when the server does not know it (any more). */
static int upload_status(struct carechat *c, const struct id *file, uint64_t *received,
                         bool *complete) {
    Carechat__V1__UploadStatus m;
    carechat__v1__upload_status__init(&m);
    m.file_id = bin(file);
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_UPLOAD_STATUS;
    req.upload_status = &m;
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_UPLOAD_STATUS,
                        "reading the upload's state", NULL, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__UploadStatusResult *r = resp->response->upload_status;
    if (!r || r->chunk_size != CARECHAT_FILE_CHUNK || r->received > r->size) {
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "reading the upload's state: malformed answer from the server");
    } else {
        *received = r->received;
        *complete = r->complete;
    }
    cc_free_response(resp);
    return rc;
}

static int upload_complete(struct carechat *c, const struct filecrypt_file *file) {
    Carechat__V1__UploadComplete m;
    carechat__v1__upload_complete__init(&m);
    m.file_id = bin(&file->file_id);
    m.sha256 = (ProtobufCBinaryData){FILECRYPT_DIGEST_LEN, (uint8_t *)file->sha256};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_UPLOAD_COMPLETE;
    req.upload_complete = &m;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__CONFLICT, "the server holds other bytes than were sent"},
        {CARECHAT__V1__STATUS__OK, NULL}};
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_FILE, "completing the upload",
                        hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__FileInfo *fi = resp->response->file;
    if (!fi || fi->sha256.len != FILECRYPT_DIGEST_LEN ||
        memcmp(fi->sha256.data, file->sha256, FILECRYPT_DIGEST_LEN) != 0 ||
        fi->size != filecrypt_ciphertext_size(file->size))
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "completing the upload: the server describes another file");
    cc_free_response(resp);
    return rc;
}

/* Encrypts `fd` (size bytes) for file `st->file.file_id` into st->enc_path
 * and fills st->file. Returns 0 or a recorded failure. */
static int encrypt_to(struct carechat *c, int fd, uint64_t size, struct upload_state *st) {
    int out = open(st->enc_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_PROFILE, "cannot write %s: %s", st->enc_path,
                       strerror(errno));
    struct filecrypt_enc *enc = NULL;
    struct buf cipher;
    buf_init(&cipher);
    uint8_t *plain = sodium_malloc(IO_PIECE);
    CHECK(plain != NULL);
    struct id file_id = st->file.file_id;
    int rc = filecrypt_encrypt_open(&file_id, size, &cipher, &enc);
    uint64_t left = size;
    while (rc == 0) {
        if (cipher.len && write(out, cipher.data, cipher.len) != (ssize_t)cipher.len)
            rc = STATUS_IO;
        cipher.len = 0;
        if (rc != 0 || left == 0)
            break;
        ssize_t n = read(fd, plain, left < IO_PIECE ? (size_t)left : IO_PIECE);
        if (n <= 0) {
            rc = STATUS_IO;
            break;
        }
        left -= (uint64_t)n;
        rc = filecrypt_encrypt_update(enc, plain, (size_t)n, &cipher);
    }
    if (rc == 0)
        rc = filecrypt_encrypt_finish(enc, &cipher, &st->file);
    if (rc == 0 && cipher.len && write(out, cipher.data, cipher.len) != (ssize_t)cipher.len)
        rc = STATUS_IO;
    if (close(out) != 0 && rc == 0)
        rc = STATUS_IO;
    filecrypt_encrypt_free(enc);
    sodium_free(plain);
    buf_cleanup(&cipher);
    if (rc != 0)
        return cc_fail(c, rc, rc == STATUS_IO ? CARECHAT_ERROR_PROFILE : CARECHAT_ERROR_ARGUMENT,
                       "encrypting the file: %s", status_str(rc));
    st->file.file_id = file_id;
    return 0;
}

/* Sends the ciphertext in st->enc_path from the chunk that holds `received`
 * on, CARECHAT_FILE_WINDOW chunks in flight. Returns 0 once every byte is
 * durable, or a recorded failure. */
static int send_chunks(struct carechat *c, const struct upload_state *st, uint64_t received,
                       const struct carechat_transfer *transfer) {
    const char *what = "uploading the file";
    uint64_t total = filecrypt_ciphertext_size(st->file.size);
    int fd = open(st->enc_path, O_RDONLY);
    if (fd < 0)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_PROFILE, "cannot read %s: %s", st->enc_path,
                       strerror(errno));
    uint8_t *chunk = xmalloc(CARECHAT_FILE_CHUNK);
    /* Requests in flight, by slot (0: free); answered in any order. */
    uint64_t ids[CARECHAT_FILE_WINDOW] = {0};
    size_t count = 0;
    uint64_t offset = received - received % CARECHAT_FILE_CHUNK;
    int rc = 0;
    while (rc == 0 && (offset < total || count > 0)) {
        while (rc == 0 && offset < total && count < CARECHAT_FILE_WINDOW) {
            size_t n = total - offset < CARECHAT_FILE_CHUNK ? (size_t)(total - offset)
                                                            : CARECHAT_FILE_CHUNK;
            if (pread(fd, chunk, n, (off_t)offset) != (ssize_t)n) {
                rc = cc_fail(c, STATUS_IO, CARECHAT_ERROR_PROFILE, "cannot read %s", st->enc_path);
                break;
            }
            Carechat__V1__UploadChunk m;
            carechat__v1__upload_chunk__init(&m);
            m.file_id = bin(&st->file.file_id);
            m.offset = offset;
            m.data = (ProtobufCBinaryData){n, chunk};
            Carechat__V1__Frame req;
            carechat__v1__frame__init(&req);
            req.body_case = CARECHAT__V1__FRAME__BODY_UPLOAD_CHUNK;
            req.upload_chunk = &m;
            size_t slot = 0;
            while (ids[slot] != 0)
                slot++;
            rc = cc_send(c, &req, what, clock_monotonic_ms() + c->request_timeout_ms, &ids[slot]);
            if (rc == 0) {
                count++;
                offset += n;
            }
        }
        if (rc != 0 || count == 0)
            break;
        Carechat__V1__Frame *resp = NULL;
        rc = cc_await(c, ids, CARECHAT_FILE_WINDOW, what,
                      clock_monotonic_ms() + c->request_timeout_ms, &resp);
        if (rc != 0)
            break;
        for (size_t i = 0; i < CARECHAT_FILE_WINDOW; i++)
            if (ids[i] == resp->request_id)
                ids[i] = 0;
        count--;
        rc = cc_expect(c, resp, CARECHAT__V1__RESPONSE__RESULT_UPLOAD_CHUNK, what, NULL);
        if (rc == 0) {
            if (resp->response->upload_chunk->received > received)
                received = resp->response->upload_chunk->received;
            if (cancelled(transfer, received, total))
                rc = cc_fail(c, STATUS_UNAVAILABLE, CARECHAT_ERROR_ARGUMENT,
                             "%s: cancelled at %" PRIu64 " of %" PRIu64 " bytes", what, received,
                             total);
        }
        cc_free_response(resp);
    }
    free(chunk);
    close(fd);
    if (rc == 0 && received != total)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: the server stored %" PRIu64 " of %" PRIu64 " bytes", what, received,
                     total);
    /* Answers still due on a cancelled or failed connection are not awaited:
     * drop the connection so none is taken for a later request's. */
    if (rc != 0 && count > 0)
        cc_disconnect(c, 0);
    return rc;
}

int carechat_upload_file(struct carechat *c, const struct id *conversation_id, const char *path,
                         const char *file_name, const char *media_type,
                         const struct carechat_transfer *transfer,
                         struct carechat_attachment *out) {
    cc_clear_error(c);
    if (!conversation_id || !path || !out)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "upload: a conversation, a file and a result are required");
    if ((file_name && strlen(file_name) > CARECHAT_MAX_FILE_NAME) ||
        (media_type && strlen(media_type) > CARECHAT_MAX_MEDIA_TYPE))
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "upload: file name or media type too long");
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "%s: cannot open: %s", path,
                       strerror(errno));
    struct upload_state *st = sodium_malloc(sizeof *st);
    CHECK(st != NULL);
    memset(st, 0, sizeof *st);
    struct stat sb;
    int rc = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)
                 ? 0
                 : cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "%s: not a regular file",
                           path);
    uint64_t size = (uint64_t)sb.st_size;
    if (rc == 0 && size > FILECRYPT_MAX_SIZE)
        rc = cc_fail(c, STATUS_TOO_LARGE, CARECHAT_ERROR_ARGUMENT, "%s: larger than 64 GiB", path);
    if (rc == 0)
        rc = state_paths(c, conversation_id, path, fd, st);
    if (rc == 0)
        rc = cc_ensure_session(c);
    uint64_t received = 0;
    bool complete = false;
    if (rc == 0 && state_load(st) && st->file.size == size) {
        rc = upload_status(c, &st->file.file_id, &received, &complete);
        if (rc == STATUS_NOT_FOUND) {
            state_drop(st); /* expired or gone: start over */
            memset(&st->file, 0, sizeof st->file);
            cc_clear_error(c);
            rc = 0;
        }
    } else {
        memset(&st->file, 0, sizeof st->file);
    }
    if (rc == 0 && id_is_zero(&st->file.file_id)) {
        rc = upload_begin(c, conversation_id, filecrypt_ciphertext_size(size), &st->file.file_id);
        if (rc == 0)
            rc = encrypt_to(c, fd, size, st);
        if (rc == 0)
            rc = state_save(c, st);
    }
    /* A lost connection is retried from where the server stands. */
    for (int attempt = 0; rc == 0 && !complete; attempt++) {
        rc = send_chunks(c, st, received, transfer);
        if (rc == 0)
            rc = upload_complete(c, &st->file);
        if (rc == 0)
            break;
        if (carechat_error_kind(c) != CARECHAT_ERROR_CONNECTION || attempt >= 3)
            break;
        usleep(200000);
        cc_clear_error(c);
        rc = cc_ensure_session(c);
        if (rc == 0)
            rc = upload_status(c, &st->file.file_id, &received, &complete);
    }
    close(fd);
    if (rc == 0) {
        c->uploaded[c->uploaded_next++ % CC_UPLOADED_MAX] = st->file.file_id;
        memset(out, 0, sizeof *out);
        out->file = st->file;
        snprintf(out->file_name, sizeof out->file_name, "%s", file_name ? file_name : "");
        snprintf(out->media_type, sizeof out->media_type, "%s", media_type ? media_type : "");
        state_drop(st);
    }
    sodium_free(st);
    return rc;
}

int carechat_complete_upload(struct carechat *c, const struct filecrypt_file *file) {
    cc_clear_error(c);
    if (!file)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "complete: a file is required");
    int rc = cc_ensure_session(c);
    if (rc == 0)
        rc = upload_complete(c, file);
    if (rc == 0)
        c->uploaded[c->uploaded_next++ % CC_UPLOADED_MAX] = file->file_id;
    return rc;
}

/* ---- download ---------------------------------------------------------------------------- */

/* Appends the ciphertext of `file` from `have` bytes on to `fd`. */
static int fetch(struct carechat *c, const struct filecrypt_file *file, int fd, uint64_t have,
                 const struct carechat_transfer *transfer) {
    const char *what = "downloading the file";
    uint64_t total = filecrypt_ciphertext_size(file->size);
    /* Requests in flight, by slot (0: free), and their answers, written to
     * the file in offset order whatever order they come in. */
    uint64_t ids[CARECHAT_FILE_WINDOW] = {0}, offs[CARECHAT_FILE_WINDOW];
    Carechat__V1__Frame *got[CARECHAT_FILE_WINDOW] = {0};
    size_t count = 0;
    uint64_t next = have, written = have;
    int rc = 0;
    const struct cc_hint hints[] = {{CARECHAT__V1__STATUS__NOT_FOUND,
                                     "no such file, or you are not a member of its "
                                     "conversation"},
                                    {CARECHAT__V1__STATUS__OK, NULL}};
    while (rc == 0 && (written < total)) {
        while (rc == 0 && next < total && count < CARECHAT_FILE_WINDOW) {
            uint64_t n = total - next < CARECHAT_FILE_CHUNK ? total - next : CARECHAT_FILE_CHUNK;
            Carechat__V1__DownloadChunk m;
            carechat__v1__download_chunk__init(&m);
            m.file_id = bin(&file->file_id);
            m.offset = next;
            m.length = (uint32_t)n;
            Carechat__V1__Frame req;
            carechat__v1__frame__init(&req);
            req.body_case = CARECHAT__V1__FRAME__BODY_DOWNLOAD_CHUNK;
            req.download_chunk = &m;
            size_t slot = 0;
            while (ids[slot] != 0 || got[slot] != NULL)
                slot++;
            rc = cc_send(c, &req, what, clock_monotonic_ms() + c->request_timeout_ms, &ids[slot]);
            if (rc == 0) {
                offs[slot] = next;
                count++;
                next += n;
            }
        }
        if (rc != 0 || count == 0)
            break;
        Carechat__V1__Frame *resp = NULL;
        rc = cc_await(c, ids, CARECHAT_FILE_WINDOW, what,
                      clock_monotonic_ms() + c->request_timeout_ms, &resp);
        if (rc != 0)
            break;
        size_t slot = 0;
        while (ids[slot] != resp->request_id)
            slot++;
        ids[slot] = 0;
        rc = cc_expect(c, resp, CARECHAT__V1__RESPONSE__RESULT_DOWNLOAD_CHUNK, what,
                       resp->response->status == CARECHAT__V1__STATUS__NOT_FOUND ? hints[0].text
                                                                                 : NULL);
        if (rc == 0) {
            const Carechat__V1__DownloadChunkResult *d = resp->response->download_chunk;
            uint64_t off = offs[slot];
            uint64_t want = total - off < CARECHAT_FILE_CHUNK ? total - off : CARECHAT_FILE_CHUNK;
            if (d->offset != off || d->size != total || d->data.len != want)
                rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                             "%s: the server sent another piece of the file", what);
        }
        if (rc != 0) {
            cc_free_response(resp);
            break;
        }
        got[slot] = resp;
        /* Write every answer that is next in the file. */
        for (bool progress = true; rc == 0 && progress;) {
            progress = false;
            for (size_t i = 0; i < CARECHAT_FILE_WINDOW; i++) {
                if (!got[i] || offs[i] != written)
                    continue;
                const ProtobufCBinaryData *data = &got[i]->response->download_chunk->data;
                if (write(fd, data->data, data->len) != (ssize_t)data->len)
                    rc = cc_fail(c, STATUS_IO, CARECHAT_ERROR_ARGUMENT, "%s: cannot write: %s",
                                 what, strerror(errno));
                written += data->len;
                cc_free_response(got[i]);
                got[i] = NULL;
                count--;
                progress = true;
                if (rc == 0 && cancelled(transfer, written, total))
                    rc = cc_fail(c, STATUS_UNAVAILABLE, CARECHAT_ERROR_ARGUMENT,
                                 "%s: cancelled at %" PRIu64 " of %" PRIu64 " bytes", what, written,
                                 total);
            }
        }
    }
    for (size_t i = 0; i < CARECHAT_FILE_WINDOW; i++)
        cc_free_response(got[i]);
    if (rc != 0 && count > 0)
        cc_disconnect(c, 0);
    return rc;
}

/* Decrypts the ciphertext file `in` into `out` (created 0600). */
static int decrypt_file(const struct filecrypt_file *file, const char *in, const char *out) {
    int ifd = open(in, O_RDONLY);
    if (ifd < 0)
        return STATUS_IO;
    int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (ofd < 0) {
        close(ifd);
        return STATUS_IO;
    }
    struct filecrypt_dec *dec = NULL;
    struct buf plain;
    buf_init(&plain);
    uint8_t *piece = xmalloc(IO_PIECE);
    int rc = filecrypt_decrypt_open(file, &dec);
    while (rc == 0) {
        ssize_t n = read(ifd, piece, IO_PIECE);
        if (n < 0)
            rc = STATUS_IO;
        if (n <= 0)
            break;
        rc = filecrypt_decrypt_update(dec, piece, (size_t)n, &plain);
        if (rc == 0 && plain.len && write(ofd, plain.data, plain.len) != (ssize_t)plain.len)
            rc = STATUS_IO;
        buf_wipe(&plain);
        plain.len = 0;
    }
    if (rc == 0)
        rc = filecrypt_decrypt_finish(dec);
    if (rc == 0 && fsync(ofd) != 0)
        rc = STATUS_IO;
    if (close(ofd) != 0 && rc == 0)
        rc = STATUS_IO;
    close(ifd);
    filecrypt_decrypt_free(dec);
    buf_wipe(&plain);
    buf_cleanup(&plain);
    free(piece);
    return rc;
}

int carechat_download_file(struct carechat *c, const struct carechat_attachment *a,
                           const char *out_path, const struct carechat_transfer *transfer) {
    cc_clear_error(c);
    if (!a || !out_path)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "download: an attachment and an output path are required");
    if (a->file.size > FILECRYPT_MAX_SIZE || a->file.version != FILECRYPT_VERSION)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "download: an attachment of another format");
    char part[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(part, sizeof part, "%s.part", out_path) >= (int)sizeof part ||
        snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "download: path too long");
    uint64_t total = filecrypt_ciphertext_size(a->file.size);
    int fd = open(part, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0)
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_ARGUMENT, "%s: cannot write: %s", part,
                       strerror(errno));
    struct stat sb;
    uint64_t have = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if (have > total) {
        if (ftruncate(fd, 0) != 0) {
            close(fd);
            return cc_fail(c, STATUS_IO, CARECHAT_ERROR_ARGUMENT, "%s: cannot truncate", part);
        }
        have = 0;
    }
    int rc = cc_ensure_session(c);
    for (int attempt = 0; rc == 0 && have < total; attempt++) {
        rc = fetch(c, &a->file, fd, have, transfer);
        if (rc == 0 || carechat_error_kind(c) != CARECHAT_ERROR_CONNECTION || attempt >= 3)
            break;
        usleep(200000);
        cc_clear_error(c);
        have = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        rc = cc_ensure_session(c);
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = cc_fail(c, STATUS_IO, CARECHAT_ERROR_ARGUMENT, "%s: cannot write", part);
    close(fd);
    if (rc != 0)
        return rc;
    rc = decrypt_file(&a->file, part, tmp);
    if (rc != 0) {
        unlink(tmp);
        if (rc == STATUS_CORRUPT) {
            unlink(part);
            return cc_fail(c, rc, CARECHAT_ERROR_PROTOCOL,
                           "downloading the file: it does not verify (truncated, altered or "
                           "another file); nothing was written");
        }
        return cc_fail(c, rc, CARECHAT_ERROR_ARGUMENT, "%s: cannot write the file", out_path);
    }
    if (rename(tmp, out_path) != 0) {
        unlink(tmp);
        return cc_fail(c, STATUS_IO, CARECHAT_ERROR_ARGUMENT, "%s: cannot write: %s", out_path,
                       strerror(errno));
    }
    unlink(part);
    return 0;
}
