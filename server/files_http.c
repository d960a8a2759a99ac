/*
 * server/files_http.c: tus 1.0.0 (https://tus.io/protocols/resumable-upload)
 * under /files/ on the public listener, and GET /files/ID downloads with
 * Range, over the same records as the carechat.v1 file requests (files.c).
 *
 *   OPTIONS /files/        Tus-Version, Tus-Extension, Tus-Max-Size (no token)
 *   POST    /files/        creation: Upload-Length, Upload-Metadata naming the
 *                          conversation (and optionally the sha256) -> 201 Location
 *   HEAD    /files/ID      Upload-Offset, Upload-Length, Upload-Expires
 *   PATCH   /files/ID      application/offset+octet-stream at Upload-Offset
 *                          (409 otherwise), optional Upload-Checksum sha256 (460)
 *   DELETE  /files/ID      termination of an unfinished upload
 *   GET     /files/ID      the complete file's ciphertext, Range -> 206
 *
 * Every request but OPTIONS needs `Authorization: Bearer <session token in
 * hex>` (401 otherwise, audited); an upload is its uploader device's (404 for
 * anyone else). Every answer carries Tus-Resumable: 1.0.0; a request with
 * another Tus-Resumable gets 412. A download is authorized like DownloadChunk
 * (an active member of the file's conversation, 404 and audited otherwise) and
 * served only once its access record is durable (503 when it cannot be
 * written: fail closed).
 *
 * A PATCH body is cut into chunks of the upload's chunk size as it arrives;
 * each chunk is one FileChunk entry, and the body is paused while
 * PATCH_WINDOW of them are in flight. The new offset is answered once every
 * chunk is durable. A body that stops short (the connection dropped) leaves
 * every complete chunk it carried stored; HEAD tells where to resume. With
 * Upload-Checksum the body is held until it is verified, then stored. When
 * the last byte of an upload whose creation declared its sha256 is stored, the
 * upload is completed (FileComplete) before the PATCH is answered.
 *
 * A transaction's state lives until the transaction is over and none of its
 * entries is in flight (`t` is NULL once ws.c has closed it).
 *
 * Thread: the lws loop thread.
 */
#include <ctype.h>
#include <stdarg.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "server/files.h"
#include "server/rules.h"
#include "storage/blob.h"

#define TUS_VERSION "1.0.0"
#define TUS_EXTENSIONS "creation,expiration,termination,checksum"
/* FileChunk entries of one PATCH in flight before its body is paused. */
#define PATCH_WINDOW 8
#define HTTP_CHECKSUM_MISMATCH 460

struct tus {
    struct handlers *h;
    struct http_txn *t; /* NULL once the transaction is over */
    struct http_request rq;
    struct id account, device, file;
    uint32_t role; /* the session's account's */
    struct rec_file f;
    /* PATCH */
    uint64_t body_len, body_seen;
    struct buf pending;  /* bytes from chunk `next_index` on, not yet proposed */
    uint64_t next_index; /* the chunk `pending` starts at */
    unsigned in_flight;  /* entries proposed and not completed */
    bool body_done, paused, completing;
    int failed;      /* the first failure of an entry (a negative status), or 0 */
    uint64_t stored; /* received, as the last completed FileChunk said */
    bool checksum;
    uint64_t held; /* bytes counted in files_stats.checksum_held */
    uint8_t checksum_want[32];
    crypto_hash_sha256_state checksum_state;
    /* GET */
    uint64_t pos, end;
    struct buf chunk;     /* the stored chunk `pos` is in, opened once */
    uint64_t chunk_index; /* which one; valid while chunk.len > 0 */
};

static void tus_free(struct tus *s) {
    s->h->files->checksum_held -= s->held;
    buf_wipe(&s->pending);
    buf_cleanup(&s->pending);
    buf_cleanup(&s->chunk);
    free(s);
}

/* Frees `s` once its transaction is over and nothing of it is in flight. */
static void maybe_free(struct tus *s) {
    if (!s->t && s->in_flight == 0)
        tus_free(s);
}

/* ---- answers ---------------------------------------------------------------------- */

struct headers {
    struct http_header h[HTTP_MAX_HEADERS];
    size_t n;
};

static void add(struct headers *hs, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add(struct headers *hs, const char *name, const char *fmt, ...) {
    if (hs->n >= HTTP_MAX_HEADERS)
        return;
    struct http_header *x = &hs->h[hs->n++];
    x->name = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->value, sizeof x->value, fmt, ap);
    va_end(ap);
}

/* The headers every answer carries. */
static void common(const struct http_request *rq, struct headers *hs) {
    hs->n = 0;
    add(hs, "tus-resumable", TUS_VERSION);
    add(hs, "cache-control", "no-store");
    if (rq->origin[0] && rq->origin_allowed) {
        add(hs, "access-control-allow-origin", "%s", rq->origin);
        add(hs, "access-control-expose-headers",
            "Upload-Offset, Upload-Length, Upload-Expires, Location, Tus-Resumable, Tus-Version, "
            "Tus-Extension, Tus-Max-Size, Content-Range");
        add(hs, "vary", "Origin");
    }
}

static void respond(struct tus *s, int status, struct headers *hs, const char *text) {
    if (!s->t)
        return;
    size_t len = text ? strlen(text) : 0;
    if (len)
        add(hs, "content-type", "text/plain");
    http_txn_respond(s->t, status, hs->h, hs->n, text, len, false, 0);
}

/* An answer with the common headers and a one-line text. */
static void answer(struct tus *s, int status, const char *text) {
    struct headers hs;
    common(&s->rq, &hs);
    respond(s, status, &hs, text);
}

/* HTTP status of a store or apply status. */
static int http_status(int rc) {
    switch (rc) {
    case STATUS_BAD_REQUEST:
        return 400;
    case STATUS_UNAUTHENTICATED:
        return 401;
    case STATUS_FORBIDDEN:
        return 403;
    case STATUS_NOT_FOUND:
        return 404;
    case STATUS_CONFLICT:
        return 409;
    case STATUS_TOO_LARGE:
        return 413;
    case STATUS_RATE_LIMITED:
        return 429;
    case STATUS_UNAVAILABLE:
        return 503;
    default:
        return 500;
    }
}

static void http_date(int64_t ms, char out[64]) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 64, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* ---- parsing ------------------------------------------------------------------------ */

static bool parse_u64(const char *s, uint64_t *out) {
    if (!*s || strlen(s) > 19)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* The id in "/files/ID" (32 hex digits). */
static bool path_id(const char *path, struct id *out) {
    const char *p = strrchr(path, '/');
    return p && strncmp(path, "/files/", 7) == 0 && p == path + 6 && id_from_hex(p + 1, out) == 0;
}

/* The value of `key` in Upload-Metadata ("key base64,key base64"), decoded,
 * into out (NUL-terminated). */
static bool metadata(const char *md, const char *key, char *out, size_t out_len) {
    size_t klen = strlen(key);
    for (const char *p = md; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p + strcspn(p, ",");
        const char *sp = memchr(p, ' ', (size_t)(e - p));
        if ((size_t)((sp ? sp : e) - p) == klen && strncmp(p, key, klen) == 0) {
            if (!sp)
                return false;
            size_t n = 0;
            if (sodium_base642bin((unsigned char *)out, out_len - 1, sp + 1, (size_t)(e - sp - 1),
                                  " ", &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
                return false;
            out[n] = '\0';
            return true;
        }
        p = e;
    }
    return false;
}

/* ---- the session -------------------------------------------------------------------- */

/* Checks the bearer token as Authenticate does (an unexpired session of an
 * existing device of an active account) and keeps the session alive like a
 * request on a WebSocket. Returns 0 with the caller in s, or
 * STATUS_UNAUTHENTICATED (audited with `action`). */
static int authenticate(struct tus *s, uint32_t action) {
    struct handlers *h = s->h;
    const char *a = s->rq.authorization;
    uint8_t token[32];
    size_t n = 0;
    int rc = STATUS_UNAUTHENTICATED;
    if (strncasecmp(a, "Bearer ", 7) == 0 && strlen(a + 7) == 64 &&
        sodium_hex2bin(token, sizeof token, a + 7, 64, NULL, &n, NULL) == 0 && n == 32) {
        uint8_t hash[REC_HASH_LEN];
        rules_sha256(token, sizeof token, hash);
        sodium_memzero(token, sizeof token);
        struct buf v;
        buf_init(&v);
        struct rec_session ses;
        int64_t now = clock_now();
        if (store_get(h->store, CF_SESSIONS, hash, REC_HASH_LEN, &v) == 0 &&
            rec_session_decode(v.data, v.len, &ses) == 0 && now < ses.expires_at &&
            now < ses.idle_expires_at) {
            struct rec_account acc;
            struct rec_device dev;
            if (req_read_device(h, &ses.account_id, &ses.device_id, &dev) == 0) {
                rec_device_cleanup(&dev);
                if (req_read_account(h, &ses.account_id, &acc) == 0) {
                    /* Ended by a password change: as Authenticate decides. */
                    if (acc.active && ses.created_at >= acc.sessions_after) {
                        rc = STATUS_OK;
                        s->role = acc.role;
                    }
                    rec_account_cleanup(&acc);
                }
            }
            if (rc == 0) {
                s->account = ses.account_id;
                s->device = ses.device_id;
                int64_t idle = now + h->session_idle_ms;
                if (idle > ses.expires_at)
                    idle = ses.expires_at;
                /* Best effort, at most once a minute: a lost touch only
                 * shortens the session. */
                if (idle - ses.idle_expires_at >= 60000) {
                    Carechat__Entry__V1__Entry e;
                    Carechat__Entry__V1__SessionTouch st;
                    entry_init(&e, now, &s->account, &s->device);
                    carechat__entry__v1__session_touch__init(&st);
                    st.token_hash = (ProtobufCBinaryData){REC_HASH_LEN, hash};
                    st.idle_expires_at = idle;
                    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_TOUCH;
                    e.session_touch = &st;
                    files_propose(h, &e, NULL, NULL);
                }
            }
        }
        buf_cleanup(&v);
    }
    sodium_memzero(token, sizeof token);
    if (rc != 0)
        req_audit_source(h, s->rq.source, NULL, NULL, action, STATUS_UNAUTHENTICATED, NULL, 0, NULL,
                         0, NULL, NULL);
    return rc;
}

/* The upload `s->file` of the caller's device into s->f: 0, or the HTTP
 * status to answer (404: unknown, another device's, or expired). */
static int own_upload(struct tus *s) {
    if (!path_id(s->rq.path, &s->file))
        return 404;
    int rc = files_read(s->h, &s->file, &s->f);
    if (rc == 0 && !id_equal(&s->f.uploader_device, &s->device))
        rc = STATUS_NOT_FOUND;
    if (rc == 0 && s->f.state == REC_FILE_UPLOADING && clock_now() >= s->f.expires_at)
        rc = STATUS_NOT_FOUND;
    if (rc != 0) {
        if (rc == STATUS_NOT_FOUND)
            req_audit_source(s->h, s->rq.source, &s->account, &s->device, REC_AUDIT_FILE_UPLOAD, rc,
                             s->file.b, ID_LEN, NULL, 0, NULL, NULL);
        return http_status(rc);
    }
    return 0;
}

/* ---- OPTIONS, HEAD ---------------------------------------------------------------------- */

static void do_options(struct tus *s) {
    struct headers hs;
    common(&s->rq, &hs);
    add(&hs, "tus-version", TUS_VERSION);
    add(&hs, "tus-extension", TUS_EXTENSIONS);
    add(&hs, "tus-max-size", "%" PRIu64, s->h->cfg.config->file_max);
    add(&hs, "tus-checksum-algorithm", "sha256");
    if (s->rq.origin[0] && s->rq.origin_allowed && s->rq.acr_method[0]) {
        add(&hs, "access-control-allow-methods", "GET, HEAD, POST, PATCH, DELETE, OPTIONS");
        add(&hs, "access-control-allow-headers",
            "Authorization, Content-Type, Range, Tus-Resumable, Upload-Length, Upload-Metadata, "
            "Upload-Offset, Upload-Checksum");
        add(&hs, "access-control-max-age", "600");
    }
    respond(s, 204, &hs, NULL);
}

static void do_head(struct tus *s) {
    int st = own_upload(s);
    if (st) {
        answer(s, st, NULL);
        return;
    }
    struct headers hs;
    common(&s->rq, &hs);
    add(&hs, "upload-offset", "%" PRIu64, s->f.received);
    add(&hs, "upload-length", "%" PRIu64, s->f.size);
    if (s->f.state == REC_FILE_UPLOADING) {
        char date[64];
        http_date(s->f.expires_at, date);
        add(&hs, "upload-expires", "%s", date);
    }
    respond(s, 200, &hs, NULL);
}

/* ---- POST (creation) ------------------------------------------------------------------- */

static void begin_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    (void)pos;
    (void)result;
    (void)len;
    struct tus *s = ctx;
    s->in_flight--;
    if (status == 0)
        s->h->files->uploads_started++;
    if (s->t) {
        if (status != 0) {
            answer(s, http_status(status),
                   status == STATUS_NOT_FOUND      ? "no such conversation"
                   : status == STATUS_RATE_LIMITED ? "too many unfinished uploads"
                   : status == STATUS_TOO_LARGE    ? "upload quota exceeded"
                                                   : "cannot create the upload");
        } else {
            struct headers hs;
            common(&s->rq, &hs);
            char hex[ID_HEX_LEN + 1], date[64];
            id_to_hex(&s->file, hex);
            add(&hs, "location", "/files/%s", hex);
            http_date(s->f.expires_at, date);
            add(&hs, "upload-expires", "%s", date);
            respond(s, 201, &hs, NULL);
        }
    }
    maybe_free(s);
}

static void do_post(struct tus *s) {
    const struct server_config *cfg = s->h->cfg.config;
    uint64_t size;
    if (s->rq.upload_defer_length[0]) {
        answer(s, 400, "Upload-Defer-Length is not supported");
        return;
    }
    if (!parse_u64(s->rq.upload_length, &size) || size == 0) {
        answer(s, 400, "Upload-Length required (1 or more)");
        return;
    }
    if (size > cfg->file_max) {
        answer(s, 413, "file larger than the server's limit");
        return;
    }
    char conv_hex[65], sha_hex[80];
    struct id conv;
    if (!metadata(s->rq.upload_metadata, "conversation", conv_hex, sizeof conv_hex) ||
        id_from_hex(conv_hex, &conv) != 0) {
        answer(s, 400, "Upload-Metadata must name the conversation (32 hex digits)");
        return;
    }
    uint8_t sha[32];
    bool has_sha = false;
    if (metadata(s->rq.upload_metadata, "sha256", sha_hex, sizeof sha_hex)) {
        size_t n = 0;
        if (strlen(sha_hex) != 64 ||
            sodium_hex2bin(sha, sizeof sha, sha_hex, 64, NULL, &n, NULL) != 0 || n != 32) {
            answer(s, 400, "Upload-Metadata sha256 must be 64 hex digits");
            return;
        }
        has_sha = true;
    }
    struct rec_member mem;
    int rc = req_read_member(s->h, &conv, &s->account, &mem);
    if (rc != 0 || mem.state != REC_ACTIVE) {
        req_audit_source(s->h, s->rq.source, &s->account, &s->device, REC_AUDIT_FILE_UPLOAD,
                         STATUS_NOT_FOUND, conv.b, ID_LEN, NULL, 0, NULL, NULL);
        answer(s, 404, "no such conversation");
        return;
    }
    if (!ratelimit_take(s->h->rl_upload, s->account.b, ID_LEN, clock_monotonic_ms())) {
        answer(s, 429, "too many uploads begun, retry later");
        return;
    }
    if (store_check_space(s->h->store) != 0) {
        answer(s, 503, "the server's disk reserve is reached");
        return;
    }
    int64_t now = clock_now();
    s->file = id_new();
    s->f.expires_at = now + (int64_t)cfg->upload_ttl_s * 1000;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileBegin fb;
    entry_init(&e, now, &s->account, &s->device);
    e.source_address = s->rq.source;
    carechat__entry__v1__file_begin__init(&fb);
    fb.file_id = (ProtobufCBinaryData){ID_LEN, s->file.b};
    fb.conversation_id = (ProtobufCBinaryData){ID_LEN, conv.b};
    fb.size = size;
    fb.chunk_size = FILES_TUS_CHUNK;
    fb.expires_at = s->f.expires_at;
    fb.max_uploads = cfg->uploads_max;
    fb.quota_bytes = cfg->upload_quota;
    if (has_sha)
        fb.sha256 = (ProtobufCBinaryData){32, sha};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_BEGIN;
    e.file_begin = &fb;
    if (files_propose(s->h, &e, begin_done, s) != 0) {
        answer(s, 503, "cannot create the upload now");
        return;
    }
    s->in_flight++;
}

/* ---- PATCH ---------------------------------------------------------------------------- */

static void patch_finish(struct tus *s);

static void complete_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    (void)pos;
    (void)result;
    (void)len;
    struct tus *s = ctx;
    s->in_flight--;
    s->completing = false;
    if (status == 0)
        s->h->files->uploads_completed++;
    else if (!s->failed)
        s->failed = status;
    patch_finish(s);
    maybe_free(s);
}

/* Every chunk of the body is durable (or failed): answers, completing the
 * upload first when its last byte is stored and its creation declared the
 * sha256. */
static void patch_finish(struct tus *s) {
    if (!s->t || !s->body_done || s->in_flight > 0 || s->completing)
        return;
    if (s->failed) {
        answer(s, http_status(s->failed),
               s->failed == STATUS_CONFLICT ? "the stored bytes, or the declared sha256, differ"
                                            : "the chunk was not stored");
        return;
    }
    static const uint8_t zero[REC_FILE_SHA256_LEN];
    if (s->stored == s->f.size && s->f.state == REC_FILE_UPLOADING &&
        memcmp(s->f.sha256, zero, sizeof zero) != 0) {
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__FileComplete fc;
        entry_init(&e, clock_now(), &s->account, &s->device);
        e.source_address = s->rq.source;
        carechat__entry__v1__file_complete__init(&fc);
        fc.file_id = (ProtobufCBinaryData){ID_LEN, s->file.b};
        fc.sha256 = (ProtobufCBinaryData){REC_FILE_SHA256_LEN, s->f.sha256};
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_COMPLETE;
        e.file_complete = &fc;
        s->f.state = REC_FILE_COMPLETE; /* proposed once */
        if (files_propose(s->h, &e, complete_done, s) == 0) {
            s->in_flight++;
            s->completing = true;
            return;
        }
        s->failed = STATUS_UNAVAILABLE;
        patch_finish(s);
        return;
    }
    struct headers hs;
    common(&s->rq, &hs);
    add(&hs, "upload-offset", "%" PRIu64, s->stored);
    respond(s, 204, &hs, NULL);
}

static void chunk_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    (void)pos;
    struct tus *s = ctx;
    s->in_flight--;
    if (status == 0 && len == 8) {
        uint64_t received = key_get_u64(result);
        if (received > s->stored) {
            s->h->files->bytes_in += received - s->stored;
            s->stored = received;
        }
    } else if (!s->failed) {
        s->failed = status ? status : STATUS_INTERNAL;
    }
    if (s->t && s->paused && s->in_flight < PATCH_WINDOW) {
        s->paused = false;
        http_txn_pause(s->t, false);
    }
    patch_finish(s);
    maybe_free(s);
}

/* Proposes the first `n` bytes of s->pending as chunk s->next_index. */
static int propose_chunk(struct tus *s, size_t n) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileChunk fc;
    entry_init(&e, clock_now(), &s->account, &s->device);
    e.source_address = s->rq.source;
    carechat__entry__v1__file_chunk__init(&fc);
    fc.file_id = (ProtobufCBinaryData){ID_LEN, s->file.b};
    fc.index = s->next_index;
    fc.data = (ProtobufCBinaryData){n, s->pending.data};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_CHUNK;
    e.file_chunk = &fc;
    int rc = files_propose(s->h, &e, chunk_done, s);
    if (rc != 0)
        return rc;
    s->in_flight++;
    s->next_index++;
    memmove(s->pending.data, s->pending.data + n, s->pending.len - n);
    s->pending.len -= n;
    return 0;
}

/* Proposes every whole chunk in s->pending (and the rest when `all`). */
static int flush_chunks(struct tus *s, bool all) {
    size_t cs = s->f.chunk_size;
    while (s->pending.len >= cs || (all && s->pending.len > 0)) {
        if (propose_chunk(s, s->pending.len >= cs ? cs : s->pending.len) != 0) {
            if (!s->failed)
                s->failed = STATUS_UNAVAILABLE;
            s->pending.len = 0;
            return -1;
        }
    }
    if (s->t && !s->paused && s->in_flight >= PATCH_WINDOW) {
        s->paused = true;
        http_txn_pause(s->t, true);
    }
    return 0;
}

static void do_patch(struct tus *s) {
    int st = own_upload(s);
    if (st) {
        answer(s, st, st == 404 ? "no such upload, or expired" : NULL);
        return;
    }
    uint64_t offset, len;
    if (strcasecmp(s->rq.content_type, "application/offset+octet-stream") != 0) {
        answer(s, 415, "Content-Type must be application/offset+octet-stream");
        return;
    }
    if (!parse_u64(s->rq.upload_offset, &offset)) {
        answer(s, 400, "Upload-Offset required");
        return;
    }
    if (!parse_u64(s->rq.content_length, &len)) {
        answer(s, 411, "Content-Length required");
        return;
    }
    if (s->f.state != REC_FILE_UPLOADING || offset != s->f.received) {
        struct headers hs;
        common(&s->rq, &hs);
        add(&hs, "upload-offset", "%" PRIu64, s->f.received);
        respond(s, 409, &hs, "Upload-Offset is not the stored offset");
        return;
    }
    if (len > s->h->cfg.config->patch_max) {
        answer(s, 413, "PATCH body larger than the server's limit");
        return;
    }
    if (len > s->f.size - offset) {
        answer(s, 413, "bytes past Upload-Length");
        return;
    }
    if (s->rq.upload_checksum[0]) {
        const char *c = s->rq.upload_checksum;
        size_t n = 0;
        if (strncmp(c, "sha256 ", 7) != 0) {
            answer(s, 400, "Upload-Checksum: only sha256 is supported");
            return;
        }
        if (sodium_base642bin(s->checksum_want, sizeof s->checksum_want, c + 7, strlen(c + 7), NULL,
                              &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            n != 32) {
            answer(s, 400, "Upload-Checksum: malformed");
            return;
        }
        if (s->h->files->checksum_held + len > FILES_CHECKSUM_BUDGET) {
            struct headers hs;
            common(&s->rq, &hs);
            add(&hs, "retry-after", "5");
            respond(s, 503, &hs, "too many checksummed PATCH bodies held now, retry later");
            return;
        }
        s->held = len;
        s->h->files->checksum_held += len;
        s->checksum = true;
        crypto_hash_sha256_init(&s->checksum_state);
    }
    if (store_check_space(s->h->store) != 0) {
        answer(s, 503, "the server's disk reserve is reached");
        return;
    }
    s->body_len = len;
    s->stored = s->f.received;
    s->next_index = s->f.received / s->f.chunk_size;
    /* A chunk the last PATCH left short is sent again with the new bytes. */
    uint64_t start = s->next_index * s->f.chunk_size;
    if (start < s->f.received &&
        files_read_range(s->h, &s->file, &s->f, start, s->f.received - start, &s->pending) != 0) {
        answer(s, 500, NULL);
        return;
    }
    if (len == 0) {
        s->body_done = true;
        patch_finish(s);
    }
}

static int on_body(void *state, const uint8_t *data, size_t len) {
    struct tus *s = state;
    if (s->rq.method != HTTP_PATCH || s->body_done)
        return 0;
    if (len > s->body_len - s->body_seen)
        return -1;
    s->body_seen += len;
    if (s->failed)
        return 0; /* answered when the body is done */
    buf_append(&s->pending, data, len);
    if (s->checksum) {
        crypto_hash_sha256_update(&s->checksum_state, data, len);
        return 0; /* stored once verified */
    }
    flush_chunks(s, false); /* a failure is answered when the body is done */
    return 0;
}

static void on_body_done(void *state) {
    struct tus *s = state;
    if (s->rq.method != HTTP_PATCH || s->body_done)
        return;
    s->body_done = true;
    if (s->body_seen != s->body_len && !s->failed)
        s->failed = STATUS_BAD_REQUEST;
    if (s->checksum && !s->failed) {
        uint8_t got[32];
        crypto_hash_sha256_final(&s->checksum_state, got);
        if (sodium_memcmp(got, s->checksum_want, 32) != 0) {
            answer(s, HTTP_CHECKSUM_MISMATCH, "Upload-Checksum mismatch: nothing stored");
            return;
        }
    }
    if (!s->failed)
        flush_chunks(s, true);
    patch_finish(s);
}

/* ---- DELETE ---------------------------------------------------------------------------- */

static void delete_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    (void)pos;
    (void)result;
    (void)len;
    struct tus *s = ctx;
    s->in_flight--;
    if (status == 0)
        s->h->files->uploads_terminated++;
    if (status == 0) {
        answer(s, 204, NULL);
    } else {
        answer(s, http_status(status), status == STATUS_CONFLICT ? "the upload is complete" : NULL);
    }
    maybe_free(s);
}

static void do_delete(struct tus *s) {
    int st = own_upload(s);
    if (st) {
        answer(s, st, NULL);
        return;
    }
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileDelete fd;
    entry_init(&e, clock_now(), &s->account, &s->device);
    e.source_address = s->rq.source;
    carechat__entry__v1__file_delete__init(&fd);
    fd.file_id = (ProtobufCBinaryData){ID_LEN, s->file.b};
    fd.reason = 1;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_DELETE;
    e.file_delete = &fd;
    if (files_propose(s->h, &e, delete_done, s) != 0) {
        answer(s, 503, NULL);
        return;
    }
    s->in_flight++;
}

/* ---- GET ------------------------------------------------------------------------------- */

/* Parses a single "bytes=a-b", "bytes=a-" or "bytes=-n" range of a file of
 * `size` bytes into [*from, *to). Returns false when unsatisfiable or
 * malformed. */
static bool parse_range(const char *r, uint64_t size, uint64_t *from, uint64_t *to) {
    if (strncmp(r, "bytes=", 6) != 0 || strchr(r, ','))
        return false;
    char a[32] = "", b[32] = "";
    const char *dash = strchr(r + 6, '-');
    if (!dash || (size_t)(dash - (r + 6)) >= sizeof a || strlen(dash + 1) >= sizeof b)
        return false;
    memcpy(a, r + 6, (size_t)(dash - (r + 6)));
    strcpy(b, dash + 1);
    uint64_t x, y;
    if (!a[0]) {
        if (!parse_u64(b, &y) || y == 0)
            return false;
        *from = y >= size ? 0 : size - y;
        *to = size;
        return true;
    }
    if (!parse_u64(a, &x) || x >= size)
        return false;
    if (!b[0]) {
        *to = size;
    } else {
        if (!parse_u64(b, &y) || y < x)
            return false;
        *to = y + 1 > size ? size : y + 1;
    }
    *from = x;
    return true;
}

static void download_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    (void)pos;
    (void)result;
    (void)len;
    struct tus *s = ctx;
    s->in_flight--;
    if (s->t) {
        if (status != 0) {
            answer(s, 503, "cannot write the access record");
        } else {
            bool ranged = s->rq.range[0] != '\0';
            struct headers hs;
            common(&s->rq, &hs);
            add(&hs, "content-type", "application/octet-stream");
            add(&hs, "accept-ranges", "bytes");
            if (ranged)
                add(&hs, "content-range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, s->pos,
                    s->end - 1, s->f.size);
            http_txn_respond(s->t, ranged ? 206 : 200, hs.h, hs.n, NULL, 0, true, s->end - s->pos);
        }
    }
    maybe_free(s);
}

/* Whether the caller may read file `f`: DownloadChunk's row, decided by
 * authz_decide() with the same inputs as every request (membership, the
 * patient's retention stage, a restore, the care team). Returns 0, a denial
 * status, or a store status. */
static int may_read(struct tus *s, const struct rec_file *f) {
    enum authz_relation rel = AUTHZ_STRANGER;
    enum authz_stage stage = AUTHZ_LIVE;
    struct rec_member mem;
    int rc = req_read_member(s->h, &f->conversation, &s->account, &mem);
    if (rc == 0 && mem.state == REC_ACTIVE)
        rel = AUTHZ_ACTIVE_MEMBER;
    else if (rc != 0 && rc != STATUS_NOT_FOUND)
        return rc;
    if (f->has_owner && (rc = req_review_access(s->h, &f->owner, &s->account, s->role,
                                                f->visible_until, &rel, &stage)) != 0)
        return rc;
    struct authz_caller who = {.authenticated = true, .role = s->role};
    return authz_decide(&request_row(CARECHAT__V1__FRAME__BODY_DOWNLOAD_CHUNK)->rule, &who, rel,
                        stage);
}

static void do_get(struct tus *s) {
    int rc = path_id(s->rq.path, &s->file) ? files_read(s->h, &s->file, &s->f) : STATUS_NOT_FOUND;
    if (rc == 0 && (s->f.state != REC_FILE_COMPLETE || files_recalled(s->h, &s->f)))
        rc = STATUS_NOT_FOUND;
    if (rc == 0 && (rc = may_read(s, &s->f)) == STATUS_FORBIDDEN)
        rc = STATUS_NOT_FOUND; /* a download is a read: refused as unknown */
    if (rc != 0) {
        req_audit_source(s->h, s->rq.source, &s->account, &s->device, REC_AUDIT_FILE_DOWNLOAD,
                         STATUS_NOT_FOUND, s->file.b, ID_LEN, NULL, 0, NULL, NULL);
        answer(s, rc == STATUS_NOT_FOUND ? 404 : 500,
               rc == STATUS_NOT_FOUND ? "no such file" : NULL);
        return;
    }
    s->pos = 0;
    s->end = s->f.size;
    if (s->rq.range[0] && !parse_range(s->rq.range, s->f.size, &s->pos, &s->end)) {
        struct headers hs;
        common(&s->rq, &hs);
        add(&hs, "content-range", "bytes */%" PRIu64, s->f.size);
        respond(s, 416, &hs, NULL);
        return;
    }
    /* Served once its access record is durable (fail closed). */
    if (req_audit_source(s->h, s->rq.source, &s->account, &s->device, REC_AUDIT_FILE_DOWNLOAD, 0,
                         s->file.b, ID_LEN, s->f.has_owner ? &s->f.owner : NULL, 0, download_done,
                         s) != 0) {
        answer(s, 503, "cannot write the access record");
        return;
    }
    s->in_flight++;
}

static int on_fill(void *state, struct buf *out, size_t max, bool *last) {
    struct tus *s = state;
    uint64_t index = s->pos / s->f.chunk_size, skip = s->pos % s->f.chunk_size;
    if (s->pos < s->end && (s->chunk.len == 0 || s->chunk_index != index)) {
        if (blob_get_chunk(s->h->store, &s->file, index, &s->chunk) != 0 || s->chunk.len <= skip)
            return -1;
        s->chunk_index = index;
    }
    uint64_t n = s->end - s->pos;
    if (n > max)
        n = max;
    if (n > s->chunk.len - skip)
        n = s->chunk.len - skip;
    if (n > 0)
        buf_append(out, s->chunk.data + skip, (size_t)n);
    s->pos += n;
    s->h->files->bytes_out += n;
    *last = s->pos == s->end;
    return 0;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void *on_begin(void *ctx, struct http_txn *t, const struct http_request *rq) {
    struct tus *s = xcalloc(1, sizeof *s);
    s->h = ctx;
    s->t = t;
    s->rq = *rq;
    buf_init(&s->pending);
    buf_init(&s->chunk);
    bool root = strcmp(rq->path, "/files") == 0 || strcmp(rq->path, "/files/") == 0;
    if (rq->origin[0] && !rq->origin_allowed) {
        answer(s, 403, "Origin not allowed");
    } else if (rq->method == HTTP_OPTIONS) {
        do_options(s);
    } else if (rq->method != HTTP_GET && rq->tus_resumable[0] == '\0') {
        struct headers hs;
        common(rq, &hs);
        add(&hs, "tus-version", TUS_VERSION);
        respond(s, 412, &hs, "Tus-Resumable: 1.0.0 required");
    } else if (rq->method != HTTP_GET && strcmp(rq->tus_resumable, TUS_VERSION) != 0) {
        struct headers hs;
        common(rq, &hs);
        add(&hs, "tus-version", TUS_VERSION);
        respond(s, 412, &hs, "unsupported Tus-Resumable");
    } else if (authenticate(s, rq->method == HTTP_GET ? REC_AUDIT_FILE_DOWNLOAD
                                                      : REC_AUDIT_FILE_UPLOAD) != 0) {
        struct headers hs;
        common(rq, &hs);
        add(&hs, "www-authenticate", "Bearer");
        respond(s, 401, &hs, "a valid session token is required");
    } else if (root) {
        if (rq->method == HTTP_POST)
            do_post(s);
        else
            answer(s, 405, NULL);
    } else {
        switch (rq->method) {
        case HTTP_HEAD:
            do_head(s);
            break;
        case HTTP_PATCH:
            do_patch(s);
            break;
        case HTTP_DELETE:
            do_delete(s);
            break;
        case HTTP_GET:
            do_get(s);
            break;
        default:
            answer(s, 405, NULL);
        }
    }
    return s;
}

static void on_closed(void *state) {
    struct tus *s = state;
    s->t = NULL;
    maybe_free(s);
}

void files_http_handler(struct handlers *h, struct http_handler *out) {
    *out = (struct http_handler){
        .begin = on_begin,
        .body = on_body,
        .body_done = on_body_done,
        .fill = on_fill,
        .closed = on_closed,
        .ctx = h,
        .prefix = "/files",
    };
}
