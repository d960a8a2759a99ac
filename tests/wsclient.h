/*
 * tests/wsclient.h: a raw WebSocket client (RFC 6455) and an HTTP GET for tests.
 *
 * It writes exactly the bytes a test asks for, so tests can send what a real
 * client library never would: no subprotocol, a foreign Origin, text frames,
 * fragments, unmasked frames, garbage. Blocking TCP on 127.0.0.x with every
 * read bounded by a timeout (poll). Pings from the server are answered with a
 * pong automatically while receiving.
 *
 * Single-threaded test code.
 */
#ifndef TESTS_WSCLIENT_H
#define TESTS_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define WSC_OP_CONTINUATION 0x0
#define WSC_OP_TEXT 0x1
#define WSC_OP_BINARY 0x2
#define WSC_OP_CLOSE 0x8
#define WSC_OP_PING 0x9
#define WSC_OP_PONG 0xa

/* Close code reported when the peer closed TCP without a close frame (as
 * RFC 6455 section 7.1.5 names it). */
#define WSC_CLOSE_ABNORMAL 1006
/* Close code reported for a close frame without a code. */
#define WSC_CLOSE_NO_STATUS 1005

struct wsc_options {
    const char *host;        /* NULL: 127.0.0.1 */
    const char *source;      /* the local IPv4 address to connect from; NULL: any */
    const char *path;        /* NULL: "/" */
    const char *subprotocol; /* NULL: no Sec-WebSocket-Protocol header */
    const char *origin;      /* NULL: no Origin header */
    const char *extra;       /* NULL, or more header lines, each ending in \r\n */
    int timeout_ms;          /* for the handshake; 0: 5000 */
};

struct wsc;

/* Opens a TCP connection to host:port and sends the upgrade request. Returns
 * the HTTP/1.1 status of the answer: 101 (then *out is the connection, and the
 * Sec-WebSocket-Accept was checked) or another status (no connection kept);
 * 0 when the server closed the connection without sending a status line;
 * STATUS_IO when the TCP connection failed; STATUS_UNAVAILABLE on timeout.
 * `status_line` (may be NULL) receives the first line of the answer. */
int wsc_connect(int port, const struct wsc_options *opts, char *status_line, size_t status_len,
                struct wsc **out);

/* The subprotocol the server selected ("" for none). */
const char *wsc_subprotocol(const struct wsc *c);

/* Sends one frame. `fin` false leaves the message open for continuation frames;
 * `masked` false sends the payload in the clear (a protocol violation by a
 * client). Returns 0 or STATUS_IO. */
int wsc_send_frame(struct wsc *c, int opcode, bool fin, bool masked, const void *data, size_t len);

/* Sends one complete masked binary message. */
int wsc_send_binary(struct wsc *c, const void *data, size_t len);

/* Sends bytes as they are (after the handshake). */
int wsc_send_raw(struct wsc *c, const void *data, size_t len);

/* Receives the next message (reassembled from fragments) or close frame within
 * `timeout_ms`. Returns 0 with *opcode (WSC_OP_BINARY, WSC_OP_TEXT or
 * WSC_OP_CLOSE) and the payload in `payload` (replaced; for a close frame the
 * payload after the code), and for a close frame the code in *close_code;
 * STATUS_IO when the connection ended without a close frame (*close_code is then
 * WSC_CLOSE_ABNORMAL); STATUS_UNAVAILABLE on timeout. */
int wsc_recv(struct wsc *c, int timeout_ms, int *opcode, struct buf *payload, int *close_code);

/* Reads until a close frame or the end of the connection; writes the close code
 * (WSC_CLOSE_ABNORMAL without a close frame). Data messages before it are
 * dropped. Returns 0, or STATUS_UNAVAILABLE when neither came in `timeout_ms`. */
int wsc_wait_close(struct wsc *c, int timeout_ms, int *close_code);

/* Closes the socket (without a close handshake) and frees. Accepts NULL. */
void wsc_free(struct wsc *c);

/* GET http://host:port/path with "Connection: close". Returns 0 with the status
 * code in *status and the body in `body` (appended; may be NULL), `headers`
 * (may be NULL) gets the raw header block; STATUS_IO when the connection failed
 * or ended before a complete response; STATUS_UNAVAILABLE on timeout. */
int http_get(const char *host, int port, const char *path, int timeout_ms, int *status,
             struct buf *headers, struct buf *body);

#endif
