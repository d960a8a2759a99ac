/*
 * server/files.h: end-to-end encrypted file transfer, the server side: the
 * carechat.v1 requests UploadBegin, UploadChunk, UploadComplete, UploadStatus
 * and DownloadChunk (files.c), tus 1.0.0 over HTTP under /files/ on the same
 * listener (files_http.c), and the garbage collector of abandoned uploads.
 * Both faces write the same records (server/records_files.h) through the same
 * entries (entry.proto FileBegin, FileChunk, FileComplete, FileDelete), so an
 * upload begun over one can be finished or downloaded over the other.
 *
 * The server never sees plaintext: a file is ciphertext the client made
 * (client/filecrypt.h); the key travels inside an end-to-end message. Each
 * chunk is answered only once it is durable (group-committed, synced).
 *
 * Thread: the lws loop thread.
 */
#ifndef SERVER_FILES_H
#define SERVER_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "server/http.h"
#include "server/records_files.h"
#include "server/request.h"

/* Chunk sizes an UploadBegin may ask for (carechat.proto), and the largest
 * DownloadChunk. */
#define FILES_CHUNK_MIN (4u * 1024)
#define FILES_CHUNK_MAX (128u * 1024)
/* The chunk size of uploads created over tus. */
#define FILES_TUS_CHUNK FILES_CHUNK_MAX
/* UploadChunk requests one connection may have in flight (each holds its
 * chunk until it is durable): more are RATE_LIMITED. */
#define FILES_CHUNKS_IN_FLIGHT 32
/* Bytes of tus PATCH bodies held in memory for their Upload-Checksum, all
 * transactions together: a PATCH that would exceed it gets 503. */
#define FILES_CHECKSUM_BUDGET (64ull << 20)
/* How often the garbage collector looks for expired uploads, and how many it
 * deletes per run. */
#define FILES_GC_INTERVAL_MS 5000
#define FILES_GC_BATCH 16

/* Counters for /metrics. */
struct files_stats {
    uint64_t bytes_in, bytes_out;
    uint64_t uploads_started, uploads_completed, uploads_expired, uploads_terminated;
    int64_t next_gc_ms;     /* clock_monotonic_ms() of the next garbage collection */
    uint64_t checksum_held; /* bytes held by PATCHes with Upload-Checksum */
};

/* The request handlers and completions of the request table (requests.c). */
int files_upload_begin(struct req *r);
int files_upload_begin_done(struct op *op, const struct op_result *res);
int files_upload_chunk(struct req *r);
int files_upload_chunk_done(struct op *op, const struct op_result *res);
int files_upload_complete(struct req *r);
int files_upload_complete_done(struct op *op, const struct op_result *res);
int files_upload_status(struct req *r);
int files_bind(struct req *r);
int files_bind_done(struct op *op, const struct op_result *res);

/* Whether the message that carries file `f` (FileBind) has been recalled:
 * then the file is no longer served. False for a file bound to no message or
 * to one not sent (yet). */
bool files_recalled(struct handlers *h, const struct rec_file *f);
int files_download_chunk(struct req *r);

/* Reads file `id`'s record. Returns 0, STATUS_NOT_FOUND, STATUS_CORRUPT or
 * the store's status. */
int files_read(struct handlers *h, const struct id *id, struct rec_file *out);

/* Appends the bytes [offset, offset + len) of the complete or partly received
 * file `id` (record `f`) to `out`; len must lie within f->received. Returns 0
 * or the store's status (STATUS_NOT_FOUND: a chunk is missing, e.g. purged). */
int files_read_range(struct handlers *h, const struct id *id, const struct rec_file *f,
                     uint64_t offset, uint64_t len, struct buf *out);

/* Entries both faces propose: encode `e`'s FileChunk etc. and append it with
 * `done(ctx, ...)`. Returns 0 or journal_append()'s status. */
int files_propose(struct handlers *h, const Carechat__Entry__V1__Entry *e, journal_done_fn done,
                  void *ctx);

/* Once in a while (called from handlers_tick): proposes FileDelete for
 * uploads whose expiry has passed. */
void files_gc(struct handlers *h);

/* Appends the file counters to a Prometheus text page. */
void files_render_metrics(struct handlers *h, struct buf *out);

/* The tus endpoint's handler for ws.c (server/http.h). */
void files_http_handler(struct handlers *h, struct http_handler *out);

#endif
