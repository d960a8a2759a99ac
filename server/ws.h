/*
 * server/ws.h: carechatd's listener: libwebsockets (the only file with lws
 * callbacks is ws.c), HTTP endpoints and WebSocket sessions.
 *
 * One lws context with two listeners (vhosts):
 *   - config->listen, the public one: WebSocket with subprotocol "carechat.v1"
 *     only, binary messages of at most config->max_frame bytes, each handed to
 *     a `struct conn` (conn.h); HTTP requests under cfg->http.prefix go to
 *     that handler (server/http.h: tus and downloads under /files/), every
 *     other plain HTTP request gets 404;
 *   - config->metrics_listen: HTTP/1.1 GET /healthz (application/json) and
 *     GET /metrics (Prometheus text), everything else 404. Unauthenticated,
 *     hence never on the public listener.
 * Limits enforced here: the Origin allow-list, open connections per client
 * address, message size (1009), text messages (1003), the authentication
 * deadline (1008), ping/hang-up on idle, a bound on queued outgoing bytes.
 * TLS (1.2 and 1.3, ECDHE with AES-GCM or ChaCha20-Poly1305) when
 * config->tls_cert is set.
 *
 * Thread: everything here runs on the thread that calls ws_open() (the loop
 * thread), except ws_wake(), which any thread may call.
 */
#ifndef SERVER_WS_H
#define SERVER_WS_H

#include <stddef.h>

#include "base/buf.h"
#include "server/config.h"
#include "server/conn.h"
#include "server/http.h"
#include "server/metrics.h"

struct ws_config {
    const struct server_config *config; /* required, borrowed; outlives the ws */
    struct metrics *metrics;            /* required, borrowed */
    /* Copied into every session's conn_config (server/handlers.h). */
    struct conn_handler handler;
    /* Runs on the loop thread after ws_wake() was called (from any thread). */
    void (*on_wake)(void *ctx);
    /* Optional: runs on the loop thread about once a second (session expiry). */
    void (*on_tick)(void *ctx);
    /* Append the body of GET /healthz (JSON) and GET /metrics (Prometheus text). */
    void (*render_health)(void *ctx, struct buf *out);
    void (*render_metrics)(void *ctx, struct buf *out);
    void *ctx;
    /* The HTTP requests under http.prefix on the public listener (tus,
     * server/http.h); prefix NULL: none. */
    struct http_handler http;
};

struct ws;

/* Routes libwebsockets' own log lines into base/log.h (module "lws") at
 * `level`. Called by ws_open(); exposed so that main can set it before anything
 * else logs. */
void ws_route_lws_logs(enum log_level level);

/* Creates the lws context, binds both listeners and logs "listening on
 * HOST:PORT" and "metrics listening on HOST:PORT" with the real ports. Returns
 * 0 and *out (close with ws_close()), or STATUS_IO when an address cannot be
 * bound or the TLS files do not load (logged). */
int ws_open(const struct ws_config *cfg, struct ws **out);

/* The port the public listener is bound to (the real one when 0 was
 * configured). */
int ws_port(const struct ws *ws);

/* Runs one iteration of the event loop (waits for I/O, timers or ws_wake()).
 * Returns 0, or STATUS_IO when the loop has nothing left to wait for (lws
 * closed its listeners; logged). */
int ws_service(struct ws *ws);

/* Makes the loop thread run cfg->on_wake soon. Safe from any thread. */
void ws_wake(struct ws *ws);

/* Starts shutting down: new connections are refused and every WebSocket is
 * closed with 1001 after its queued frames. Keep calling ws_service() until
 * ws_open_count() is 0 or a deadline passes. */
void ws_shutdown_begin(struct ws *ws);

/* Open TCP connections (HTTP and WebSocket). */
size_t ws_open_count(const struct ws *ws);

/* Closes every connection and the listener and frees the ws. Accepts NULL. */
void ws_close(struct ws *ws);

#endif
