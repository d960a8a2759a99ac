/*
 * server/http.h: plain HTTP transactions on the public listener, as ws.c
 * hands them to a handler outside the lws glue (the tus endpoint under
 * /files/, server/files_http.c). ws.c parses the request line and the headers
 * a handler may need into struct http_request, feeds the body, and writes the
 * response the handler gives it in the WRITEABLE callback; the handler never
 * sees lws.
 *
 *   ws.c                                  handler
 *   headers parsed       ---begin()--->   state (may respond at once)
 *   body bytes           ---body()---->   (may pause the body: flow control)
 *   body complete        ---body_done()->
 *   http_txn_respond()   <-------------   status, headers, body or fill()
 *   response written; the connection goes on (keep-alive) or closes
 *   connection gone      ---closed()-->   state released; `t` is dead
 *
 * A response given before the body was read closes the connection after it
 * (the rest of the body is not worth reading).
 *
 * Thread: the lws loop thread only.
 */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum http_method {
    HTTP_GET = 1,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PATCH,
    HTTP_DELETE,
    HTTP_OPTIONS,
};

/* Header values longer than this are cut (and then fail to parse). */
#define HTTP_VALUE_MAX 1024

/* A request as the handler sees it (values "" when absent). */
struct http_request {
    enum http_method method;
    char path[256];
    char source[46]; /* the client's address as text */
    char authorization[HTTP_VALUE_MAX];
    char origin[256];
    char tus_resumable[32];
    char upload_length[32];
    char upload_offset[32];
    char upload_metadata[HTTP_VALUE_MAX];
    char upload_checksum[128];
    char upload_defer_length[8];
    char content_type[128];
    char content_length[32];
    char range[128];
    char acr_method[32]; /* Access-Control-Request-Method (CORS preflight) */
    bool origin_allowed; /* no Origin, or one of --allowed-origin */
};

struct http_header {
    const char *name; /* lower case, without the colon */
    char value[128];
};

#define HTTP_MAX_HEADERS 16

/* One transaction (owned by ws.c, which fills in the functions; the
 * handlers library does not link ws.c). */
struct http_txn {
    void (*respond)(struct http_txn *t, int status, const struct http_header *headers, size_t n,
                    const void *body, size_t len, bool stream, uint64_t content_length);
    void (*pause)(struct http_txn *t, bool paused);
};

struct http_handler {
    /* A request under the handler's prefix. Returns the handler's state for
     * the transaction (passed to every later call, and released by closed()),
     * whether it answered at once with http_txn_respond() or will later. */
    void *(*begin)(void *ctx, struct http_txn *t, const struct http_request *rq);
    /* Body bytes (borrowed for the call). Returns 0, or -1 to hang up. */
    int (*body)(void *state, const uint8_t *data, size_t len);
    /* The whole body was read. */
    void (*body_done)(void *state);
    /* For a response given with `stream`: appends the next bytes of the body
     * to `out` (at most `max`); sets *last with the final ones. Returns 0, or
     * -1 to hang up (a failure after the status was sent). */
    int (*fill)(void *state, struct buf *out, size_t max, bool *last);
    /* The transaction is over (answered and written, or the connection
     * closed): the handler releases `state` and must not use `t` again. */
    void (*closed)(void *state);
    void *ctx;
    const char *prefix; /* the paths it serves, e.g. "/files" */
};

/* Answers the transaction: `status`, the `n` headers, and either `len` bytes
 * of `body` (copied; content-length len) or, when `stream` is true, a body of
 * `content_length` bytes the handler produces with fill(). A HEAD answer
 * carries the headers only (content-length as given). May be called once per
 * transaction, from begin() or later. */
static inline void http_txn_respond(struct http_txn *t, int status,
                                    const struct http_header *headers, size_t n, const void *body,
                                    size_t len, bool stream, uint64_t content_length) {
    t->respond(t, status, headers, n, body, len, stream, content_length);
}

/* Stops (true) or resumes (false) reading the request's body. */
static inline void http_txn_pause(struct http_txn *t, bool paused) {
    t->pause(t, paused);
}

#endif
