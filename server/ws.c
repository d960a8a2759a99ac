/*
 * server/ws.c: the libwebsockets glue: the only file with lws callbacks.
 *
 * One context, two vhosts (LWS_SERVER_OPTION_EXPLICIT_VHOSTS):
 *   "carechat" on --listen, the public one:
 *     protocols[0] "http": requests under cfg.http.prefix (/files: tus and
 *       downloads) go to that handler as transactions (server/http.h: ws.c
 *       parses, feeds the body with flow control, writes the answer in
 *       HTTP_WRITEABLE); 404 for every other HTTP request; it also sees every
 *       connection's birth and death (NEW_CLIENT_INSTANTIATED, WSI_DESTROY),
 *       which is where the per-address cap is kept, and the
 *       EVENT_WAIT_CANCELLED wake-ups. A WebSocket upgrade that lands here (no
 *       subprotocol, or "http") is refused.
 *     protocols[1] "carechat.v1": WebSocket sessions; each has a struct session
 *       (lws's per-session data) holding its conn, the message being
 *       reassembled and the queue of frames waiting for WRITEABLE.
 *   "metrics" on --metrics-listen: GET /metrics and GET /healthz, 404
 *     otherwise; no WebSocket, no per-address cap. They are unauthenticated
 *     (a write counter, login and status counts), so they are never served on
 *     the public listener.
 *
 * Invariants:
 *   - every open TCP connection that passed the cap holds one reference on its
 *     address's `struct peer` (lws opaque user data), dropped in WSI_DESTROY;
 *   - s->msg never holds more than max_frame bytes: the size is checked against
 *     the bytes received plus those lws announces for the current frame before
 *     anything is appended;
 *   - frames are written only in SERVER_WRITEABLE, one lws_write per callback
 *     (write_frames()), of the frames s->out queued (server/wsframe.h);
 *     a pending close is sent after the queue drains;
 *   - a session's conn exists from ESTABLISHED to CLOSED;
 *   - from ESTABLISHED to CLOSED a session is in exactly one keepalive queue
 *     (ws->fresh or ws->pinged), and in ws->unauthed until its
 *     authentication deadline passed; each queue is in deadline order because
 *     everyone in it waits the same delay (below).
 *
 * lws 4.1.6 facts this relies on (NOTES.md): no per-peer limits, no message
 * size cap, no Origin check; the IPv6-enabled bind would misread an IPv4
 * address in `iface`, so IPv4 listeners disable IPv6.
 *
 * Event loop: lws runs on libev with the epoll backend, so an iteration costs
 * what its active sockets cost, not one poll() entry per open socket. lws
 * 4.1.6 dlopens its libev glue from LWS_INSTALL_LIBDIR
 * (/usr/lib/x86_64-linux-gnu/libwebsockets-evlib_ev.so, Debian's
 * libwebsockets-evlib-ev). The loop is ours ("foreign" to lws): ws_service()
 * runs one iteration of it, and lws installs no signal watcher on a foreign
 * loop (server.c takes SIGTERM and SIGINT with sigwait()). ws_wake()'s
 * lws_cancel_service() writes lws's eventfd, which the loop watches like a
 * socket. Two quirks of that glue in 4.1.6:
 *   - lws arms its one libev timer for its scheduled callbacks (lws_sul) after
 *     an I/O event or when that timer fires, and cannot move it earlier while
 *     it is armed: a sul may run late by up to the armed delay. The second
 *     tick (a sul) keeps that delay under a second; lws's own timeouts are in
 *     whole seconds; ws_open() wakes the loop once so that the tick is armed
 *     before any client comes; the shutdown's 50 ms bound is a libev timer.
 *   - it logs every watcher change at lws's notice level (debug here).
 *
 * Keepalive and the authentication deadline are ours, not lws's
 * (retry_and_idle_policy, lws_set_timer_usecs()): lws keeps its timers in one
 * sorted list that an insertion walks, so every connection set-up, ping and
 * pong cost a walk over every open connection. Ours are three FIFO queues of
 * sessions and one libev timer at the earliest head's deadline:
 *
 *   ESTABLISHED --> fresh --(ping_interval without a frame: ping)--> pinged
 *                     ^                                                |
 *                     +------------- any frame or pong ---------------+
 *                   pinged --(idle_timeout - ping_interval more)--> hang up
 *                             (TCP close, no close frame: the peer is gone)
 *   ESTABLISHED --> unauthed --(auth_timeout)--> conn_on_auth_timeout()
 *
 * so that every event is O(1) and a timer expiry O(expired sessions).
 * (Its libuv glue is worse on Debian: lws is built with _DEBUG there, and for
 * libuv that closes a connection twice in lws_service_fd_tsi(), which drops
 * the close frame of every close we start from WRITEABLE; it also spins on a
 * 0 ms timer until each sul is due.)
 *
 * Thread: the loop thread (the caller of ws_open/ws_service), except ws_wake().
 */
#include "server/ws.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <ev.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/conn.h"
#include "server/wsframe.h"

#define WS_VHOST "carechat"
#define METRICS_VHOST "metrics"
#define PEER_BUCKETS 256
#define HTTP_CHUNK 4096
/* lws hands a WebSocket message to RECEIVE in pieces of at most
 * WS_RX_CHUNK bytes (s->msg reassembles them) and keeps a buffer of that size
 * for every connection as long as it is open: 64 KiB cost an idle connection
 * 3 KiB of RSS more than 1 KiB (a page of it is touched, and it spreads the
 * small allocations of the other connections over more pages). Most requests
 * fit in 1 KiB; a larger one is a few more callbacks. WS_TX_CHUNK is what
 * lws writes to the socket at once (it takes rx_buffer_size when left 0). */
#define WS_RX_CHUNK 1024
#define WS_TX_CHUNK (64 * 1024)
/* Sessions told of a shutdown per loop iteration (shutdown_some()). */
#define SHUTDOWN_BATCH 128
/* Reassembly buffers larger than this are released after each message, so
 * idle sessions hold little memory. */
#define MSG_KEEP_CAP (64 * 1024)
/* Outgoing bytes queued for one session beyond which it is closed (1008):
 * a peer that does not read its responses must not grow our memory. */
#define OUT_QUEUE_MIN (8u << 20)
/* Request headers. lws keeps every header of a request in one buffer and closes
 * the connection without a status when it overflows; it calls us only once the
 * whole request is parsed. So the buffer is made larger than what we accept,
 * each header lws knows is cut at HEADER_MAX (lws stops storing it there, and
 * we see it at that length), and we answer 431 (414 for the URI) to a request
 * with a header that long or with more than HEADERS_MAX bytes of them. Headers
 * lws does not know are stored whole and only bounded by the buffer, beyond
 * which lws 4.1.6 still closes without a status. */
#define HEADER_MAX 4096
#define HEADERS_MAX (8 * 1024)
#define HEADER_BUFFER (32 * 1024)

/* TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only. TLS 1.3 suites are all
 * (EC)DHE; we list the AEADs we accept. */
/* The privacy policy promises AES-256 in transit: by default only
 * AES-256-GCM suites (TLS 1.3 TLS_AES_256_GCM_SHA384; TLS 1.2 ECDHE with
 * AES-256-GCM). --tls-compat-ciphers adds ChaCha20-Poly1305 and AES-128-GCM
 * for clients without AES-256. */
#define TLS12_CIPHERS "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define TLS13_CIPHERS "TLS_AES_256_GCM_SHA384"
#define TLS12_COMPAT_CIPHERS                                                                       \
    TLS12_CIPHERS ":ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                    \
                  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define TLS13_COMPAT_CIPHERS TLS13_CIPHERS ":TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

/* Open connections from one client address. */
struct peer {
    struct peer *next;
    uint8_t addr[16]; /* IPv6, or IPv4-mapped IPv6 */
    unsigned count;
    struct ws *ws;
};

/* lws's per-session data of a carechat.v1 connection (zeroed by lws). */
struct session {
    struct ws *ws;
    struct lws *wsi;
    struct conn *conn;
    struct session *prev, *next;
    struct buf msg;
    struct wsframe_queue out; /* frames waiting for WRITEABLE */
    int close_code;           /* non-zero: close after the queue drains */
    const char *close_reason;
    struct lws_dll2 keepalive; /* in ws->fresh or ws->pinged */
    int64_t keepalive_since;   /* monotonic ms: the last frame (fresh), the ping (pinged) */
    bool ping_due;             /* a ping to write in the next WRITEABLE */
    struct lws_dll2 unauthed;  /* in ws->unauthed until the deadline */
    int64_t auth_deadline;     /* monotonic ms */
};

/* An HTTP transaction given to the handler of cfg.http (server/http.h). */
struct txn {
    struct http_txn base; /* first: the handler's view */
    struct ws *ws;
    struct lws *wsi;
    void *state;        /* the handler's; NULL when no transaction is active */
    bool expect_body;   /* POST or PATCH with a body lws will read */
    bool body_complete; /* HTTP_BODY_COMPLETION came */
    bool responded;     /* http_txn_respond() was called */
    bool headers_sent;
    bool head_only; /* a HEAD: headers only */
    bool stream;    /* the body comes from fill() */
    bool deferred;  /* answered early: written once the body is read */
    int status;
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t n_headers;
    struct buf body;
    size_t sent;
    uint64_t content_length, streamed;
};

/* lws's per-transaction data of an HTTP request. */
struct http_session {
    struct buf body;
    size_t sent;
    struct txn txn;
};

struct ws {
    struct ws_config cfg;
    struct lws_token_limits token_limits; /* HEADER_MAX for every header; lws keeps a pointer */
    const struct server_config *config;
    struct lws_context *context; /* NULL once lws has destroyed it (info.pcontext) */
    struct ev_loop *loop;
    ev_timer drain; /* while stopping: bounds each ws_service() */
    struct lws_vhost *vhost;
    struct lws_protocols protocols[3];         /* the public vhost's, NULL-terminated */
    struct lws_protocols metrics_protocols[2]; /* the metrics vhost's */
    int port, metrics_port;
    bool stopping;
    struct session *shutdown_next; /* while stopping: the next to tell (shutdown_some()) */
    lws_sorted_usec_list_t second; /* cfg.on_tick, once a second */
    size_t open_count;
    struct session *sessions;
    /* Keepalive and authentication deadlines (see the top of this file). */
    struct lws_dll2_owner fresh, pinged, unauthed;
    ev_timer deadlines;
    int64_t deadlines_at; /* monotonic ms the timer is set for; 0: stopped */
    struct peer *peers[PEER_BUCKETS];
};

static struct ws *ws_of(struct lws *wsi) {
    return lws_context_user(lws_get_context(wsi));
}

/* ---- logging ------------------------------------------------------------ */

static void lws_log_emit(int level, const char *line) {
    enum log_level l = LOG_DEBUG;
    if (level & LLL_ERR)
        l = LOG_ERROR;
    else if (level & LLL_WARN)
        l = LOG_WARN;
    else if (level & LLL_USER)
        l = LOG_INFO;
    log_msg(l, "lws", "%s", line);
}

void ws_route_lws_logs(enum log_level level) {
    /* lws's notices may quote peer input (a requested subprotocol, a hexdump
     * of a bad frame): they only appear at debug level. */
    int mask = LLL_ERR;
    if (level >= LOG_WARN)
        mask |= LLL_WARN;
    if (level >= LOG_INFO)
        mask |= LLL_USER;
    if (level >= LOG_DEBUG)
        mask |= LLL_NOTICE | LLL_INFO;
    lws_set_log_level(mask, lws_log_emit);
}

/* ---- per-address connection cap ---------------------------------------- */

static bool peer_address(struct lws *wsi, uint8_t addr[16]) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET6) {
        memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return true;
    }
    if (ss.ss_family == AF_INET) {
        memset(addr, 0, 10);
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return true;
    }
    return false;
}

static unsigned peer_bucket(const uint8_t addr[16]) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 16777619u;
    return h % PEER_BUCKETS;
}

/* Takes a reference for a new connection from `addr`; NULL when the address
 * already has max_conns_per_ip. */
static struct peer *peer_acquire(struct ws *ws, const uint8_t addr[16]) {
    struct peer **head = &ws->peers[peer_bucket(addr)];
    struct peer *p = *head;
    while (p && memcmp(p->addr, addr, 16) != 0)
        p = p->next;
    if (!p) {
        p = xcalloc(1, sizeof *p);
        memcpy(p->addr, addr, 16);
        p->ws = ws;
        p->next = *head;
        *head = p;
    }
    if (p->count >= ws->config->max_conns_per_ip)
        return NULL;
    p->count++;
    return p;
}

static void peer_release(struct peer *p) {
    struct ws *ws = p->ws;
    CHECK(p->count > 0);
    if (--p->count > 0)
        return;
    struct peer **pp = &ws->peers[peer_bucket(p->addr)];
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    free(p);
}

/* ---- HTTP ---------------------------------------------------------------- */

static int http_respond(struct lws *wsi, struct http_session *h, const char *type) {
    uint8_t headers[LWS_PRE + 512];
    uint8_t *start = headers + LWS_PRE, *p = start, *end = headers + sizeof headers - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, type, h->body.len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    h->sent = 0;
    lws_callback_on_writable(wsi);
    return 0;
}

/* Refuses the upgrade unless the Origin header is absent or allowed. */
static bool origin_allowed(struct ws *ws, struct lws *wsi) {
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (n <= 0)
        return true;
    char origin[256];
    if (n >= (int)sizeof origin || lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) < 0)
        return false;
    for (size_t i = 0; i < ws->config->n_allowed_origins; i++) {
        /* Origins are serialised in lower case (RFC 6454); compare without case. */
        if (strcasecmp(origin, ws->config->allowed_origins[i]) == 0)
            return true;
    }
    return false;
}

/* 0 when the request's headers are within the limits, else the HTTP status
 * that refuses it: 414 for a URI of HEADER_MAX or more, 431 for another header
 * of HEADER_MAX or more (lws cut it there) or more than HEADERS_MAX in all. */
static int headers_refusal(struct lws *wsi) {
    size_t total = 0;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        int n = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        if (n <= 0)
            continue;
        if (n >= HEADER_MAX)
            return t == WSI_TOKEN_GET_URI || t == WSI_TOKEN_POST_URI ? HTTP_STATUS_REQ_URI_TOO_LONG
                                                                     : 431;
        total += (size_t)n;
    }
    return total > HEADERS_MAX ? 431 : 0;
}

/* Refuses a WebSocket upgrade with an HTTP/1.1 `status` and a one-line
 * `text` (never peer input), then hangs up. Written by hand: at this point
 * lws has not looked at the request's HTTP version and would answer
 * "HTTP/1.0". Returns what HTTP_CONFIRM_UPGRADE returns. */
static int refuse_upgrade(struct ws *ws, struct lws *wsi, int status, enum metrics_reject why,
                          const char *text) {
    static const struct {
        int status;
        const char *phrase;
    } phrases[] = {
        {HTTP_STATUS_BAD_REQUEST, "Bad Request"},
        {HTTP_STATUS_FORBIDDEN, "Forbidden"},
        {HTTP_STATUS_REQ_URI_TOO_LONG, "URI Too Long"},
        {431, "Request Header Fields Too Large"},
        {HTTP_STATUS_SERVICE_UNAVAILABLE, "Service Unavailable"},
    };
    const char *phrase = "Refused";
    for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
        if (phrases[i].status == status)
            phrase = phrases[i].phrase;
    metrics_conn_rejected(ws->cfg.metrics, why);
    log_info("ws", "WebSocket upgrade refused with %d: %s", status, text);
    uint8_t out[LWS_PRE + 512];
    int n = snprintf((char *)out + LWS_PRE, sizeof out - LWS_PRE,
                     "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\n"
                     "connection: close\r\n\r\n%s\n",
                     status, phrase, strlen(text) + 1, text);
    CHECK(n > 0 && (size_t)n < sizeof out - LWS_PRE);
    lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return -1;
}

/* True when the Sec-WebSocket-Protocol list names carechat.v1 before any other
 * protocol of this listener (lws binds the first one it knows). */
static bool asks_for_carechat(struct ws *ws, struct lws *wsi) {
    char list[256];
    int n = lws_hdr_copy(wsi, list, sizeof list, WSI_TOKEN_PROTOCOL);
    if (n <= 0)
        return false;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        tok += strspn(tok, " \t");
        size_t len = strcspn(tok, " \t");
        tok[len] = '\0';
        if (strcmp(tok, PROTO_SUBPROTOCOL) == 0)
            return true;
        if (strcmp(tok, ws->protocols[0].name) == 0)
            return false;
    }
    return false;
}

/* Whether a WebSocket upgrade may go on: 0, or the HTTP status that refuses it
 * (and the reason, for the metrics and the log). */
static int upgrade_refusal(struct ws *ws, struct lws *wsi, enum metrics_reject *why,
                           const char **text) {
    int status = headers_refusal(wsi);
    *why = METRICS_REJECT_HEADERS;
    *text = status == HTTP_STATUS_REQ_URI_TOO_LONG ? "request URI too long"
                                                   : "request headers too large";
    if (status)
        return status;
    if (ws->stopping) {
        *why = METRICS_REJECT_SHUTDOWN;
        *text = "shutting down";
        return HTTP_STATUS_SERVICE_UNAVAILABLE;
    }
    if (!asks_for_carechat(ws, wsi) || lws_hdr_total_length(wsi, WSI_TOKEN_KEY) <= 0) {
        *why = METRICS_REJECT_PROTOCOL;
        *text = "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Protocol "
                "carechat.v1";
        return HTTP_STATUS_BAD_REQUEST;
    }
    if (!origin_allowed(ws, wsi)) {
        *why = METRICS_REJECT_ORIGIN;
        *text = "Origin not allowed";
        return HTTP_STATUS_FORBIDDEN;
    }
    return 0;
}

/* ---- HTTP transactions of cfg.http (server/http.h) --------------------------- */

/* Copies header `token` (or custom header `custom`, "name:") into out. */
static void copy_header(struct lws *wsi, int token, const char *custom, char *out, size_t len) {
    out[0] = '\0';
    int n;
    if (custom)
        n = lws_hdr_custom_copy(wsi, out, (int)len, custom, (int)strlen(custom));
    else
        n = lws_hdr_copy(wsi, out, (int)len, (enum lws_token_indexes)token);
    if (n < 0)
        out[0] = '\0';
}

static bool has_token(struct lws *wsi, enum lws_token_indexes t) {
    return lws_hdr_total_length(wsi, t) > 0;
}

/* Ends the transaction after its answer: the handler lets go of it; the
 * connection goes on unless a body was left unread. Returns what the lws
 * callback returns. */
static int txn_end(struct txn *t, bool keep) {
    struct ws *ws = t->ws;
    void *state = t->state;
    t->state = NULL;
    buf_cleanup(&t->body);
    if (state)
        ws->cfg.http.closed(state);
    if (!keep)
        return -1;
    return lws_http_transaction_completed(t->wsi) ? -1 : 0;
}

static void txn_pause(struct http_txn *base, bool paused);
static void txn_respond(struct http_txn *base, int status, const struct http_header *headers,
                        size_t n, const void *body, size_t len, bool stream,
                        uint64_t content_length);

static int txn_begin(struct ws *ws, struct lws *wsi, struct http_session *h, const char *path) {
    struct txn *t = &h->txn;
    struct http_request *rq = xcalloc(1, sizeof *rq);
    memset(t, 0, sizeof *t);
    t->base.respond = txn_respond;
    t->base.pause = txn_pause;
    t->ws = ws;
    t->wsi = wsi;
    buf_init(&t->body);
    rq->method = has_token(wsi, WSI_TOKEN_GET_URI)       ? HTTP_GET
                 : has_token(wsi, WSI_TOKEN_HEAD_URI)    ? HTTP_HEAD
                 : has_token(wsi, WSI_TOKEN_POST_URI)    ? HTTP_POST
                 : has_token(wsi, WSI_TOKEN_PATCH_URI)   ? HTTP_PATCH
                 : has_token(wsi, WSI_TOKEN_DELETE_URI)  ? HTTP_DELETE
                 : has_token(wsi, WSI_TOKEN_OPTIONS_URI) ? HTTP_OPTIONS
                                                         : 0;
    snprintf(rq->path, sizeof rq->path, "%s", path);
    if (!lws_get_peer_simple(wsi, rq->source, sizeof rq->source))
        rq->source[0] = '\0';
    copy_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, NULL, rq->authorization,
                sizeof rq->authorization);
    copy_header(wsi, WSI_TOKEN_ORIGIN, NULL, rq->origin, sizeof rq->origin);
    copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, NULL, rq->content_type, sizeof rq->content_type);
    copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, NULL, rq->content_length,
                sizeof rq->content_length);
    copy_header(wsi, WSI_TOKEN_HTTP_RANGE, NULL, rq->range, sizeof rq->range);
    copy_header(wsi, 0, "tus-resumable:", rq->tus_resumable, sizeof rq->tus_resumable);
    copy_header(wsi, 0, "upload-length:", rq->upload_length, sizeof rq->upload_length);
    copy_header(wsi, 0, "upload-offset:", rq->upload_offset, sizeof rq->upload_offset);
    copy_header(wsi, 0, "upload-metadata:", rq->upload_metadata, sizeof rq->upload_metadata);
    copy_header(wsi, 0, "upload-checksum:", rq->upload_checksum, sizeof rq->upload_checksum);
    copy_header(wsi, 0, "upload-defer-length:", rq->upload_defer_length,
                sizeof rq->upload_defer_length);
    copy_header(wsi, 0, "access-control-request-method:", rq->acr_method, sizeof rq->acr_method);
    rq->origin_allowed = origin_allowed(ws, wsi);
    t->head_only = rq->method == HTTP_HEAD;
    t->expect_body = (rq->method == HTTP_POST || rq->method == HTTP_PATCH) &&
                     rq->content_length[0] && strcmp(rq->content_length, "0") != 0;
    if (!rq->method) {
        /* PUT, CONNECT...: not worth an answer with a body to skip. */
        free(rq);
        lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL);
        return -1;
    }
    t->state = ws->cfg.http.begin(ws->cfg.http.ctx, &t->base, rq);
    free(rq);
    return 0;
}

static void txn_pause(struct http_txn *base, bool paused) {
    struct txn *t = (struct txn *)base;
    lws_rx_flow_control(t->wsi, paused ? 0 : 1);
}

static void txn_respond(struct http_txn *base, int status, const struct http_header *headers,
                        size_t n, const void *body, size_t len, bool stream,
                        uint64_t content_length) {
    struct txn *t = (struct txn *)base;
    if (t->responded)
        return;
    t->responded = true;
    t->status = status;
    t->n_headers = n < HTTP_MAX_HEADERS ? n : HTTP_MAX_HEADERS;
    memcpy(t->headers, headers, t->n_headers * sizeof *headers);
    t->stream = stream;
    buf_cleanup(&t->body);
    if (!stream && len)
        buf_append(&t->body, body, len);
    t->content_length = stream ? content_length : len;
    /* An answer given before a body of reasonable size was read waits for
     * the rest of it (discarded), so the client sees the answer rather than
     * a reset; a larger body is not worth reading: answer and hang up. */
    uint64_t body_len = 0;
    char cl[32];
    if (t->expect_body && !t->body_complete &&
        lws_hdr_copy(t->wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
        body_len = strtoull(cl, NULL, 10);
    if (t->expect_body && !t->body_complete && body_len <= t->ws->config->patch_max) {
        t->deferred = true;
        lws_rx_flow_control(t->wsi, 1);
        return;
    }
    lws_callback_on_writable(t->wsi);
}

/* Writes the next piece of the answer. Returns what the callback returns. */
static int txn_writeable(struct txn *t) {
    struct lws *wsi = t->wsi;
    if (!t->headers_sent) {
        uint8_t buf[LWS_PRE + 4096];
        uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
        if (lws_add_http_header_status(wsi, (unsigned)t->status, &p, end))
            return -1;
        for (size_t i = 0; i < t->n_headers; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s:", t->headers[i].name);
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                            (const unsigned char *)t->headers[i].value,
                                            (int)strlen(t->headers[i].value), &p, end))
                return -1;
        }
        bool no_body = t->head_only || t->status == 204 || t->status == 304;
        if (!no_body &&
            lws_add_http_header_content_length(wsi, (lws_filepos_t)t->content_length, &p, end))
            return -1;
        /* A body left unread: the connection closes after this answer. */
        if (t->expect_body && !t->body_complete) {
            if (lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                             (const unsigned char *)"close", 5, &p, end))
                return -1;
        }
        if (lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        t->headers_sent = true;
        if (no_body || t->content_length == 0)
            return txn_end(t, !t->expect_body || t->body_complete);
        lws_callback_on_writable(wsi);
        return 0;
    }
    uint8_t chunk[LWS_PRE + 16384];
    size_t n;
    bool last;
    if (t->stream) {
        struct buf piece;
        buf_init(&piece);
        uint64_t left = t->content_length - t->streamed;
        bool fill_last = false;
        if (t->ws->cfg.http.fill(t->state, &piece, left < 16384 ? (size_t)left : 16384,
                                 &fill_last) != 0 ||
            piece.len > left || (piece.len == 0 && left > 0)) {
            buf_cleanup(&piece);
            return -1;
        }
        n = piece.len;
        memcpy(chunk + LWS_PRE, piece.data, n);
        buf_cleanup(&piece);
        t->streamed += n;
        last = t->streamed == t->content_length;
    } else {
        size_t left = t->body.len - t->sent;
        n = left < 16384 ? left : 16384;
        memcpy(chunk + LWS_PRE, t->body.data + t->sent, n);
        t->sent += n;
        last = t->sent == t->body.len;
    }
    if (lws_write(wsi, chunk + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    if (last)
        return txn_end(t, !t->expect_body || t->body_complete);
    lws_callback_on_writable(wsi);
    return 0;
}

/* An HTTP request on either listener; `metrics` tells which. */
static int http_request(struct ws *ws, struct lws *wsi, struct http_session *h, const char *path,
                        bool metrics) {
    bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    buf_cleanup(&h->body);
    int too_large = headers_refusal(wsi);
    if (too_large) {
        metrics_conn_rejected(ws->cfg.metrics, METRICS_REJECT_HEADERS);
        if (lws_return_http_status(wsi, (unsigned)too_large, "request headers too large"))
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    if (metrics && get && strcmp(path, "/healthz") == 0) {
        ws->cfg.render_health(ws->cfg.ctx, &h->body);
        return http_respond(wsi, h, "application/json");
    }
    if (metrics && get && strcmp(path, "/metrics") == 0) {
        ws->cfg.render_metrics(ws->cfg.ctx, &h->body);
        return http_respond(wsi, h, "text/plain; version=0.0.4");
    }
    const char *prefix = ws->cfg.http.prefix;
    size_t plen = prefix ? strlen(prefix) : 0;
    if (!metrics && prefix && strncmp(path, prefix, plen) == 0 &&
        (path[plen] == '\0' || path[plen] == '/'))
        return txn_begin(ws, wsi, h, path);
    if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
        return -1;
    /* A request with a body (not a GET) is not worth reading: hang up. */
    if (!get)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_writeable(struct lws *wsi, struct http_session *h) {
    uint8_t chunk[LWS_PRE + HTTP_CHUNK];
    size_t left = h->body.len - h->sent;
    size_t n = left < HTTP_CHUNK ? left : HTTP_CHUNK;
    bool last = n == left;
    if (n)
        memcpy(chunk + LWS_PRE, h->body.data + h->sent, n);
    if (lws_write(wsi, chunk + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    h->sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    buf_cleanup(&h->body);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* The HTTP transaction callbacks both listeners share. */
static int http_transaction(struct ws *ws, struct lws *wsi, enum lws_callback_reasons reason,
                            struct http_session *h, void *in, size_t len, bool metrics) {
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_request(ws, wsi, h, in ? (const char *)in : "", metrics);

    case LWS_CALLBACK_HTTP_BODY:
        /* Once answered, the rest of the body is read and dropped. */
        if (h && h->txn.state && !h->txn.responded && ws->cfg.http.body(h->txn.state, in, len) != 0)
            return -1;
        return 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (h && h->txn.state) {
            h->txn.body_complete = true;
            if (h->txn.responded)
                lws_callback_on_writable(wsi);
            else
                ws->cfg.http.body_done(h->txn.state);
            return 0;
        }
        break;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (h && h->txn.state && h->txn.responded &&
            (h->txn.headers_sent || !h->txn.expect_body || h->txn.body_complete ||
             !h->txn.deferred))
            return txn_writeable(&h->txn);
        if (h && h->txn.state)
            return 0;
        if (!h || !h->body.data)
            return 0;
        return http_writeable(wsi, h);

    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (h) {
            buf_cleanup(&h->body);
            if (h->txn.state) {
                void *state = h->txn.state;
                h->txn.state = NULL;
                buf_cleanup(&h->txn.body);
                ws->cfg.http.closed(state);
            }
        }
        return 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, h, in, len);
}

/* The metrics listener's only protocol. */
static int callback_metrics(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                            size_t len) {
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED)
        return 0; /* the public listener's protocol handles wake-ups */
    return http_transaction(ws_of(wsi), wsi, reason, user, in, len, true);
}

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len) {
    struct ws *ws = ws_of(wsi);
    struct http_session *h = user;
    uint8_t addr[16];
    struct peer *p;

    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        if (ws->stopping) {
            metrics_conn_rejected(ws->cfg.metrics, METRICS_REJECT_SHUTDOWN);
            return -1;
        }
        if (!peer_address(wsi, addr))
            return -1;
        p = peer_acquire(ws, addr);
        if (!p) {
            metrics_conn_rejected(ws->cfg.metrics, METRICS_REJECT_PER_IP);
            log_warn("ws", "connection refused: %u open from one address (--max-conns-per-ip)",
                     ws->config->max_conns_per_ip);
            return -1;
        }
        lws_set_opaque_user_data(wsi, p);
        ws->open_count++;
        metrics_conn_opened(ws->cfg.metrics);
        return 0;

    case LWS_CALLBACK_WSI_DESTROY:
        p = lws_get_opaque_user_data(wsi);
        if (p) {
            lws_set_opaque_user_data(wsi, NULL);
            peer_release(p);
            ws->open_count--;
            metrics_conn_closed(ws->cfg.metrics);
        }
        return 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* Every check of a WebSocket upgrade, while an HTTP status can still
         * be answered (lws's own refusals are a bare close). */
        if (!in || strcasecmp((const char *)in, "websocket") != 0)
            return 0;
        enum metrics_reject why;
        const char *text;
        int status = upgrade_refusal(ws, wsi, &why, &text);
        return status == 0 ? 0 : refuse_upgrade(ws, wsi, status, why, text);
    }

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* An upgrade bound to this protocol asked for no subprotocol or for
         * "http": only carechat.v1 is spoken. (HTTP_CONFIRM_UPGRADE refuses
         * such an upgrade with 400 first.) */
        metrics_conn_rejected(ws->cfg.metrics, METRICS_REJECT_PROTOCOL);
        return -1;

    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (ws && ws->cfg.on_wake)
            ws->cfg.on_wake(ws->cfg.ctx);
        return 0;

    default:
        break;
    }
    return http_transaction(ws, wsi, reason, h, in, len, false);
}

/* ---- keepalive and authentication deadlines ------------------------------ */

static int64_t ping_after_ms(const struct ws *ws) {
    return (int64_t)ws->config->ping_interval_s * 1000;
}

/* After the ping; the configuration refuses idle_timeout_s <= ping_interval_s. */
static int64_t hangup_after_ms(const struct ws *ws) {
    return (int64_t)(ws->config->idle_timeout_s - ws->config->ping_interval_s) * 1000;
}

static struct session *first_of(struct lws_dll2_owner *queue, bool keepalive) {
    struct lws_dll2 *d = lws_dll2_get_head(queue);
    if (!d)
        return NULL;
    return keepalive ? lws_container_of(d, struct session, keepalive)
                     : lws_container_of(d, struct session, unauthed);
}

/* The earliest deadline of the three queues (their first sessions'), or
 * INT64_MAX when they are empty. */
static int64_t next_deadline(struct ws *ws) {
    int64_t due = INT64_MAX;
    struct session *s;
    if ((s = first_of(&ws->fresh, true)) && s->keepalive_since + ping_after_ms(ws) < due)
        due = s->keepalive_since + ping_after_ms(ws);
    if ((s = first_of(&ws->pinged, true)) && s->keepalive_since + hangup_after_ms(ws) < due)
        due = s->keepalive_since + hangup_after_ms(ws);
    if ((s = first_of(&ws->unauthed, false)) && s->auth_deadline < due)
        due = s->auth_deadline;
    return due;
}

/* Sets the timer for the earliest deadline, unless it is set for that or
 * earlier already (it then finds nothing due and sets itself again). */
static void deadlines_arm(struct ws *ws) {
    int64_t due = next_deadline(ws);
    if (due == INT64_MAX || (ws->deadlines_at != 0 && ws->deadlines_at <= due))
        return;
    int64_t wait = due - clock_monotonic_ms();
    ev_timer_stop(ws->loop, &ws->deadlines);
    /* +1 ms: libev's clock is not ours; firing early would only re-arm. */
    ev_timer_set(&ws->deadlines, wait > 0 ? (double)(wait + 1) / 1e3 : 0., 0.);
    ev_timer_start(ws->loop, &ws->deadlines);
    ws->deadlines_at = due;
}

/* A frame from the peer (or the session's start): it is alive. */
static void keepalive_touch(struct ws *ws, struct session *s) {
    s->keepalive_since = clock_monotonic_ms();
    lws_dll2_remove(&s->keepalive);
    lws_dll2_add_tail(&s->keepalive, &ws->fresh);
    deadlines_arm(ws);
}

static void deadlines_expire(struct ev_loop *loop, ev_timer *w, int revents) {
    struct ws *ws = lws_container_of(w, struct ws, deadlines);
    ws->deadlines_at = 0;
    int64_t now = clock_monotonic_ms();
    struct session *s;
    while ((s = first_of(&ws->unauthed, false)) && s->auth_deadline <= now) {
        lws_dll2_remove(&s->unauthed);
        conn_on_auth_timeout(s->conn); /* nothing if authenticated meanwhile */
    }
    while ((s = first_of(&ws->fresh, true)) && s->keepalive_since + ping_after_ms(ws) <= now) {
        lws_dll2_remove(&s->keepalive);
        lws_dll2_add_tail(&s->keepalive, &ws->pinged);
        s->keepalive_since = now;
        if (!s->close_code) {
            s->ping_due = true;
            lws_callback_on_writable(s->wsi);
        }
    }
    while ((s = first_of(&ws->pinged, true)) && s->keepalive_since + hangup_after_ms(ws) <= now) {
        lws_dll2_remove(&s->keepalive);
        log_debug("ws", "hanging up on a peer silent for %u s", ws->config->idle_timeout_s);
        /* Here, outside lws's callbacks, lws may close at once: CLOSED runs
         * session_closed() before this returns. */
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
    deadlines_arm(ws);
}

/* ---- WebSocket sessions ---------------------------------------------- */

static void session_close(struct session *s, int code, const char *reason) {
    if (s->close_code)
        return;
    s->close_code = code;
    s->close_reason = reason;
    lws_callback_on_writable(s->wsi);
}

static void io_send(void *ctx, const uint8_t *frame, size_t len) {
    struct session *s = ctx;
    if (s->close_code)
        return;
    size_t limit = OUT_QUEUE_MIN;
    if (limit < 2 * s->ws->config->max_frame)
        limit = 2 * s->ws->config->max_frame;
    size_t queued = wsframe_queue_len(&s->out);
    if (queued + len > limit) {
        metrics_ws_closed_by_server(s->ws->cfg.metrics, METRICS_CLOSE_SEND_QUEUE);
        log_warn("ws", "closing a session whose peer does not read (%zu bytes queued)", queued);
        session_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full");
        return;
    }
    wsframe_queue_push(&s->out, frame, len);
    lws_callback_on_writable(s->wsi);
}

static void io_close(void *ctx, int code, const char *reason) {
    session_close(ctx, code, reason);
}

static int session_established(struct ws *ws, struct lws *wsi, struct session *s) {
    memset(s, 0, sizeof *s);
    s->ws = ws;
    s->wsi = wsi;
    buf_init(&s->msg);
    wsframe_queue_init(&s->out);
    struct conn_config cc = {
        .io = {.send = io_send, .close = io_close, .ctx = s},
        .handler = ws->cfg.handler,
        .metrics = ws->cfg.metrics,
        .max_frame = ws->config->max_frame,
    };
    if (!peer_address(wsi, cc.peer_addr))
        return -1;
    if (conn_new(&cc, &s->conn) != 0)
        return -1;
    s->next = ws->sessions;
    if (ws->sessions)
        ws->sessions->prev = s;
    ws->sessions = s;
    metrics_ws_opened(ws->cfg.metrics);
    s->auth_deadline = clock_monotonic_ms() + (int64_t)ws->config->auth_timeout_s * 1000;
    lws_dll2_add_tail(&s->unauthed, &ws->unauthed);
    keepalive_touch(ws, s);
    return 0;
}

static void session_closed(struct ws *ws, struct session *s) {
    if (!s->conn)
        return;
    if (ws->shutdown_next == s)
        ws->shutdown_next = s->next;
    lws_dll2_remove(&s->keepalive);
    lws_dll2_remove(&s->unauthed);
    if (s->prev)
        s->prev->next = s->next;
    else
        ws->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    conn_free(s->conn);
    s->conn = NULL;
    buf_cleanup(&s->msg);
    wsframe_queue_cleanup(&s->out);
    metrics_ws_closed(ws->cfg.metrics);
}

static int session_receive(struct ws *ws, struct lws *wsi, struct session *s, const uint8_t *in,
                           size_t len) {
    /* Input after we decided to close is read and dropped. */
    if (s->close_code || !s->conn)
        return 0;
    keepalive_touch(ws, s);
    if (!lws_frame_is_binary(wsi)) {
        metrics_ws_closed_by_server(ws->cfg.metrics, METRICS_CLOSE_TEXT);
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                         (unsigned char *)"binary frames only", 18);
        return -1;
    }
    size_t remaining = lws_remaining_packet_payload(wsi);
    uint64_t max = ws->config->max_frame;
    if ((uint64_t)len + remaining > max - s->msg.len) {
        metrics_ws_closed_by_server(ws->cfg.metrics, METRICS_CLOSE_TOO_LARGE);
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         (unsigned char *)"message too large", 17);
        return -1;
    }
    buf_append(&s->msg, in, len);
    if (!lws_is_final_fragment(wsi) || remaining != 0)
        return 0;
    conn_on_message(s->conn, s->msg.data, s->msg.len);
    if (s->msg.cap > MSG_KEEP_CAP)
        buf_cleanup(&s->msg);
    else
        buf_reset(&s->msg);
    return 0;
}

/* Writes the queued frames that fit in one send of WS_TX_CHUNK bytes (at
 * least one): a fan-out queues several per commit for each device, and one
 * send each cost a syscall and a pass through the TCP stack. They were framed
 * when queued (server/wsframe.h) and go out raw: the same bytes lws would
 * send, as no extension (permessage-deflate) is ever negotiated. Whole frames
 * only, so a ping or close lws writes later never lands inside one; lws
 * buffers what the socket does not take and flushes it before the next
 * WRITEABLE. Returns 0, or -1 to close. */
static int write_frames(struct lws *wsi, struct session *s) {
    size_t n;
    const uint8_t *p = wsframe_queue_peek(&s->out, WS_TX_CHUNK, &n);
    if (lws_write(wsi, (unsigned char *)p, n, LWS_WRITE_RAW) < (int)n)
        return -1;
    wsframe_queue_consumed(&s->out, n);
    return 0;
}

static int session_writeable(struct lws *wsi, struct session *s) {
    if (s->ping_due) {
        /* A payload: lws does not report an empty pong (RECEIVE_PONG). */
        uint8_t ping[LWS_PRE + 1];
        ping[LWS_PRE] = 'k';
        s->ping_due = false;
        if (lws_write(wsi, ping + LWS_PRE, 1, LWS_WRITE_PING) < 1)
            return -1;
        if (wsframe_queue_len(&s->out) > 0 || s->close_code)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (wsframe_queue_len(&s->out) > 0) {
        if (write_frames(wsi, s) != 0)
            return -1;
        if (wsframe_queue_len(&s->out) > 0 || s->close_code)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    return 0;
}

/* True for the close codes a peer may send (RFC 6455 section 7.4): those RFC
 * 6455 defines for sending (1000..1003, 1007..1011; lws refuses the later IANA
 * ones too) and anything in 3000..4999. */
static bool close_code_allowed(unsigned code) {
    if (code >= 3000 && code <= 4999)
        return true;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011);
}

/* A close frame from the peer. lws echoes its body as our close; a body of one
 * byte, or a code a peer may not send, is answered 1002 instead (lws 4.1.6
 * rewrites the bad codes below 3000 to 1002 itself, but echoes codes of 5000
 * and up and a one-byte body). */
static int peer_close(struct ws *ws, struct lws *wsi, const uint8_t *in, size_t len) {
    if (len == 0 || (len >= 2 && close_code_allowed((unsigned)in[0] << 8 | in[1])))
        return 0;
    metrics_ws_closed_by_server(ws->cfg.metrics, METRICS_CLOSE_BAD_CLOSE);
    lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"bad close frame", 15);
    return -1;
}

static int callback_carechat(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len) {
    struct ws *ws = ws_of(wsi);
    struct session *s = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        /* HTTP_CONFIRM_UPGRADE made the same checks with an HTTP status; this
         * is the last word for an upgrade that did not pass there (the server
         * started stopping in between). */
        enum metrics_reject why;
        const char *text;
        if (upgrade_refusal(ws, wsi, &why, &text) == 0)
            return 0;
        metrics_conn_rejected(ws->cfg.metrics, why);
        return -1;
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return peer_close(ws, wsi, in, len);

    case LWS_CALLBACK_ESTABLISHED:
        return session_established(ws, wsi, s);

    case LWS_CALLBACK_RECEIVE:
        return session_receive(ws, wsi, s, in, len);

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return session_writeable(wsi, s);

    case LWS_CALLBACK_RECEIVE_PONG:
        if (s->conn)
            keepalive_touch(ws, s);
        return 0;

    case LWS_CALLBACK_CLOSED:
        session_closed(ws, s);
        return 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- lifecycle ----------------------------------------------------------- */

static void second_tick(lws_sorted_usec_list_t *sul);
static void drain_tick(struct ev_loop *loop, ev_timer *w, int revents);
static void shutdown_some(struct ws *ws);
static void ws_destroy(struct ws *ws);

static void log_listening(const char *what, const struct config_addr *addr, int port,
                          const char *how) {
    bool v6 = strchr(addr->host, ':') != NULL;
    log_info("ws", "%s %s%s%s:%d (%s)", what, v6 ? "[" : "", addr->host, v6 ? "]" : "", port, how);
}

/* Creates vhost `name` listening on `addr` with `protocols` (TLS as
 * configured); writes it and its real port. Returns 0 or STATUS_IO (logged). */
static int listen_on(struct ws *ws, const char *name, const struct config_addr *addr,
                     const struct lws_protocols *protocols, struct lws_vhost **vhost, int *port) {
    const struct server_config *config = ws->config;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.vhost_name = name;
    info.iface = addr->host;
    info.port = addr->port;
    info.protocols = protocols;
    /* lws's own keepalive off (a hang-up delay of 0): without a policy a vhost
     * gets lws's default one (ping at 300 s). */
    static const lws_retry_bo_t no_validity_checks = {0};
    info.retry_and_idle_policy = &no_validity_checks;
    info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    if (!strchr(addr->host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (config->tls_cert) {
        /* lws reads it per vhost as "this vhost speaks TLS" */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = config->tls_cert;
        info.ssl_private_key_filepath = config->tls_key;
        info.ssl_cipher_list = config->tls_compat_ciphers ? TLS12_COMPAT_CIPHERS : TLS12_CIPHERS;
        info.tls1_3_plus_cipher_list =
            config->tls_compat_ciphers ? TLS13_COMPAT_CIPHERS : TLS13_CIPHERS;
        info.ssl_options_set = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 |
                               SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION;
        /* HTTP/1.1 only: WebSockets over HTTP/2 are not part of carechat.v1. */
        info.alpn = "http/1.1";
    }
    *vhost = lws_create_vhost(ws->context, &info);
    *port = *vhost ? lws_get_vhost_listen_port(*vhost) : -1;
    if (*port <= 0) {
        log_error("ws",
                  "cannot listen on %s:%d for %s (address in use, not local, or bad TLS files)",
                  addr->host, addr->port, name);
        return STATUS_IO;
    }
    return STATUS_OK;
}

int ws_open(const struct ws_config *cfg, struct ws **out) {
    const struct server_config *config = cfg->config;
    struct ws *ws = xcalloc(1, sizeof *ws);
    ws->cfg = *cfg;
    ws->config = config;

    ws_route_lws_logs(config->log_level);

    ws->protocols[0] = (struct lws_protocols){
        .name = "http",
        .callback = callback_http,
        .per_session_data_size = sizeof(struct http_session),
    };
    ws->protocols[1] = (struct lws_protocols){
        .name = PROTO_SUBPROTOCOL,
        .callback = callback_carechat,
        .per_session_data_size = sizeof(struct session),
        .rx_buffer_size = WS_RX_CHUNK,
        .tx_packet_size = WS_TX_CHUNK,
    };

    ws->metrics_protocols[0] = (struct lws_protocols){
        .name = "metrics",
        .callback = callback_metrics,
        .per_session_data_size = sizeof(struct http_session),
    };

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    for (int t = 0; t < WSI_TOKEN_COUNT; t++)
        ws->token_limits.token_limit[t] = HEADER_MAX;
    info.user = ws;
    info.server_string = "carechatd";
    info.max_http_header_data = HEADER_BUFFER;
    /* Reads of HTTP bodies (tus PATCH) come in pieces of this size. */
    info.pt_serv_buf_size = 32 * 1024;
    info.token_limits = &ws->token_limits;
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_LIBEV;
    if (config->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    ws->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!ws->loop) {
        log_error("ws", "cannot create the event loop (epoll)");
        free(ws);
        return STATUS_IO;
    }
    ev_timer_init(&ws->drain, drain_tick, 0.05, 0.05);
    ev_timer_init(&ws->deadlines, deadlines_expire, 0, 0);
    void *loops[1] = {ws->loop};
    info.foreign_loops = loops;
    info.pcontext = &ws->context;
    ws->context = lws_create_context(&info);
    if (!ws->context) {
        log_error("ws", "cannot create the libwebsockets context (its libev event loop comes "
                        "from the package libwebsockets-evlib-ev)");
        ws_destroy(ws);
        return STATUS_IO;
    }
    int rc = listen_on(ws, WS_VHOST, &config->listen, ws->protocols, &ws->vhost, &ws->port);
    struct lws_vhost *metrics = NULL;
    if (rc == 0)
        rc = listen_on(ws, METRICS_VHOST, &config->metrics_listen, ws->metrics_protocols, &metrics,
                       &ws->metrics_port);
    if (rc != 0) {
        ws_destroy(ws);
        return rc;
    }
    if (ws->cfg.on_tick) {
        lws_sul_schedule(ws->context, 0, &ws->second, second_tick, LWS_US_PER_SEC);
        /* lws arms libev's timer after an event: give it one. */
        lws_cancel_service(ws->context);
    }
    log_listening("listening on", &config->listen, ws->port,
                  config->tls_cert ? "wss, TLS 1.2+" : "ws, no TLS");
    log_listening("metrics listening on", &config->metrics_listen, ws->metrics_port,
                  config->tls_cert ? "https, TLS 1.2+" : "http, no TLS");
    *out = ws;
    return STATUS_OK;
}

int ws_port(const struct ws *ws) {
    return ws->port;
}

int ws_service(struct ws *ws) {
    /* True while lws watches something: its listeners at least. */
    if (!ev_run(ws->loop, EVRUN_ONCE)) {
        log_error("ws", "the event loop has nothing left to wait for");
        return STATUS_IO;
    }
    if (ws->stopping)
        shutdown_some(ws);
    return STATUS_OK;
}

void ws_wake(struct ws *ws) {
    lws_cancel_service(ws->context);
}

static void second_tick(lws_sorted_usec_list_t *sul) {
    struct ws *ws = lws_container_of(sul, struct ws, second);
    ws->cfg.on_tick(ws->cfg.ctx);
    lws_sul_schedule(ws->context, 0, &ws->second, second_tick, LWS_US_PER_SEC);
}

/* While stopping, a timer every 50 ms bounds how long one ws_service() waits,
 * so the caller's drain deadline holds even when no socket is active. */
static void drain_tick(struct ev_loop *loop, ev_timer *w, int revents) {}

/* Tells the next SHUTDOWN_BATCH sessions the server is stopping (1001).
 * lws keeps a timer for each WebSocket it is closing (the close frame to
 * send, then its echo to wait for), and inserting one walks the timers of
 * all the others: 5,000 closes begun at once took 0.7 s, most of it in
 * lws_dll2_add_sorted(). In batches, those before are mostly done. */
static void shutdown_some(struct ws *ws) {
    for (int n = 0; n < SHUTDOWN_BATCH && ws->shutdown_next; n++) {
        struct session *s = ws->shutdown_next;
        ws->shutdown_next = s->next;
        conn_on_shutdown(s->conn);
    }
}

void ws_shutdown_begin(struct ws *ws) {
    ws->stopping = true;
    ev_timer_start(ws->loop, &ws->drain);
    /* No session is added from now on: upgrades are refused. */
    ws->shutdown_next = ws->sessions;
    shutdown_some(ws);
}

size_t ws_open_count(const struct ws *ws) {
    return ws->open_count;
}

void ws_close(struct ws *ws) {
    if (!ws)
        return;
    lws_sul_cancel(&ws->second);
    ws_destroy(ws);
}

/* Destroys the lws context (with libev lws closes everything at once), the
 * loop and ws. */
static void ws_destroy(struct ws *ws) {
    if (ws->context)
        lws_context_destroy(ws->context);
    CHECK(!ws->context);
    if (ws->loop) {
        ev_timer_stop(ws->loop, &ws->drain);
        ev_timer_stop(ws->loop, &ws->deadlines);
        ev_loop_destroy(ws->loop);
    }
    for (int i = 0; i < PEER_BUCKETS; i++) {
        struct peer *p = ws->peers[i];
        while (p) {
            struct peer *next = p->next;
            free(p);
            p = next;
        }
    }
    free(ws);
}
