/*
 * client/transport.h: libcarechat's WebSocket connection to carechatd, the
 * only file of the client that uses libwebsockets (client side).
 *
 * One transport is one WebSocket (subprotocol "carechat.v1") carrying binary
 * messages, each one encoded Frame. There is no thread inside: lws is serviced
 * only from within transport_open(), transport_send(), transport_recv() and
 * transport_close(), on the calling thread, until what the call waits for has
 * happened or its deadline (clock_monotonic_ms() milliseconds) has passed. A
 * timer scheduled on the lws context at the deadline wakes the service loop, so
 * every wait is bounded. Pings from the server are answered by lws while any of
 * these calls runs.
 *
 * Limits: a received message above max_frame_bytes closes the connection
 * (1009); a text message closes it (1003); at most TRANSPORT_MAX_QUEUED
 * received messages wait to be read, more close it (1008). Bytes sent are
 * wiped from the transport's memory once written (they may hold a password).
 *
 * Threads: a transport belongs to one thread at a time. lws logging is
 * process-wide: the first transport_open() routes lws's errors and warnings to
 * log_debug() (base/log.h); the transport reports failures as statuses.
 */
#ifndef CLIENT_TRANSPORT_H
#define CLIENT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TRANSPORT_MAX_QUEUED 256
#define TRANSPORT_MAX_HOST 253

/* A parsed server URL. */
struct transport_url {
    bool tls; /* wss:// */
    char host[TRANSPORT_MAX_HOST + 1];
    int port;
    char path[256];
};

/* Parses "ws://HOST[:PORT][/PATH]" or "wss://..." (HOST a name, an IPv4
 * address or a bracketed IPv6 address; the port defaults to 80 and 443, the
 * path to "/"). Returns 0 and fills *out, or STATUS_BAD_REQUEST for anything
 * else (another scheme, no host, a port outside 1..65535, user info, a query
 * or a fragment, a path longer than 255 bytes). */
int transport_parse_url(const char *url, struct transport_url *out);

struct transport_config {
    const char *url;        /* as transport_parse_url() accepts */
    const char *ca_file;    /* wss: PEM file of trusted CAs; NULL: the system store */
    size_t max_frame_bytes; /* largest message received; 0: PROTO_DEFAULT_MAX_FRAME */
    int64_t deadline_ms;    /* clock_monotonic_ms() by which the upgrade must be done */
};

struct transport;

/* Connects and completes the WebSocket upgrade. Returns 0 and *out (close with
 * transport_close()), or STATUS_BAD_REQUEST (bad URL), STATUS_IO (the
 * connection or the upgrade failed: refused, TLS, no "carechat.v1"), or
 * STATUS_UNAVAILABLE (the deadline passed). On STATUS_IO, libwebsockets'
 * reason (e.g. a certificate that does not verify) is copied to `reason`
 * (`reason_len` bytes, NUL-terminated; "" when it gave none). */
int transport_open(const struct transport_config *cfg, struct transport **out, char *reason,
                   size_t reason_len);

/* Sends the `len` bytes at `data` (borrowed) as one binary message, servicing
 * the connection until lws has taken them. Returns 0; STATUS_IO when the
 * connection is (or becomes) closed; STATUS_UNAVAILABLE when the deadline
 * passed first (the message may still go out later). */
int transport_send(struct transport *t, const uint8_t *data, size_t len, int64_t deadline_ms);

/* Receives the next message into `out` (replacing its contents), servicing the
 * connection until one is complete. Returns 0; STATUS_IO when the connection
 * is closed and nothing is left to read; STATUS_TOO_LARGE when it was closed
 * because a message broke the limits above; STATUS_UNAVAILABLE when the
 * deadline passed first (the connection stays usable). */
int transport_recv(struct transport *t, int64_t deadline_ms, struct buf *out);

/* True while the WebSocket is open. */
bool transport_is_open(const struct transport *t);

/* The close code the server sent (1000, 1008, ...), 1006 when the connection
 * ended without one, 0 while open. */
int transport_close_code(const struct transport *t);

/* Closes the WebSocket (code 1000, waiting at most `linger_ms` for the
 * handshake), destroys the lws context and frees. Accepts NULL. */
void transport_close(struct transport *t, int linger_ms);

#endif
