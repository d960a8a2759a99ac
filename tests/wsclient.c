/*
 * tests/wsclient.c: raw WebSocket client and HTTP GET over blocking sockets
 * (see wsclient.h).
 *
 * Invariant: c->in holds bytes received but not yet parsed (the tail of the
 * handshake answer, partial frames). Every read goes through read_some(), which
 * waits with poll() until an absolute monotonic deadline. Test thread only.
 */
#include "tests/wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/rand.h"
#include "base/status.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Largest message a test expects from the server. */
#define MAX_INCOMING (64u << 20)

struct wsc {
    int fd;
    struct buf in;
    char subprotocol[64];
};

static int tcp_connect(const char *host, const char *source, int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in src = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, host ? host : "127.0.0.1", &sa.sin_addr) != 1 ||
        (source && inet_pton(AF_INET, source, &src.sin_addr) != 1))
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if ((source && bind(fd, (struct sockaddr *)&src, sizeof src) != 0) ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const void *data, size_t len) {
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return STATUS_IO;
        p += n;
        len -= (size_t)n;
    }
    return STATUS_OK;
}

/* Appends what arrives before `deadline` to `in`. Returns the number of bytes
 * read (> 0), 0 at the end of the stream (or a reset), or STATUS_UNAVAILABLE
 * when the deadline passed. */
static int read_some(int fd, struct buf *in, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - clock_monotonic_ms();
        if (left <= 0)
            return STATUS_UNAVAILABLE;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return STATUS_UNAVAILABLE;
        uint8_t chunk[16384];
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        buf_append(in, chunk, (size_t)n);
        return (int)n;
    }
}

static void base64(const uint8_t *data, size_t len, char *out) {
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

/* Finds header `name` in the header block and copies its value into out. */
static bool header_value(const char *headers, const char *name, char *out, size_t out_len) {
    size_t nlen = strlen(name);
    for (const char *line = strstr(headers, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            size_t n = end ? (size_t)(end - v) : strlen(v);
            if (n >= out_len)
                n = out_len - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

/* Reads an HTTP header block into `in`; returns its length including the blank
 * line, 0 when the stream ended first, or STATUS_UNAVAILABLE. */
static int read_headers(int fd, struct buf *in, int64_t deadline) {
    for (;;) {
        if (in->len > 0) {
            const char *end = strstr((const char *)in->data, "\r\n\r\n");
            if (end)
                return (int)(end + 4 - (const char *)in->data);
        }
        int n = read_some(fd, in, deadline);
        if (n <= 0)
            return n;
    }
}

int wsc_connect(int port, const struct wsc_options *opts, char *status_line, size_t status_len,
                struct wsc **out) {
    static const struct wsc_options none = {0};
    if (!opts)
        opts = &none;
    const char *host = opts->host ? opts->host : "127.0.0.1";
    int64_t deadline = clock_monotonic_ms() + (opts->timeout_ms ? opts->timeout_ms : 5000);
    if (status_line && status_len)
        status_line[0] = '\0';
    int fd = tcp_connect(host, opts->source, port);
    if (fd < 0)
        return STATUS_IO;

    uint8_t nonce[16];
    rand_bytes(nonce, sizeof nonce);
    char key[32];
    base64(nonce, sizeof nonce, key);
    struct buf req;
    buf_init(&req);
    buf_printf(&req,
               "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
               opts->path ? opts->path : "/", host, port, key);
    if (opts->subprotocol)
        buf_printf(&req, "Sec-WebSocket-Protocol: %s\r\n", opts->subprotocol);
    if (opts->origin)
        buf_printf(&req, "Origin: %s\r\n", opts->origin);
    if (opts->extra)
        buf_printf(&req, "%s", opts->extra);
    buf_printf(&req, "\r\n");
    int rc = write_all(fd, req.data, req.len);
    buf_cleanup(&req);

    struct buf in;
    buf_init(&in);
    int hlen = rc == 0 ? read_headers(fd, &in, deadline) : 0;
    if (rc != 0 || hlen <= 0) {
        /* Nothing, or a partial status line, before the end or the deadline. */
        rc = hlen == STATUS_UNAVAILABLE ? STATUS_UNAVAILABLE : 0;
        if (rc == 0 && in.len > 12 && memcmp(in.data, "HTTP/1.1 ", 9) == 0) {
            if (status_line)
                snprintf(status_line, status_len, "%.*s", (int)in.len, (const char *)in.data);
            rc = atoi((const char *)in.data + 9);
        }
        goto fail;
    }
    char *headers = xmemdup(in.data, (size_t)hlen);
    const char *eol = strstr(headers, "\r\n");
    if (status_line)
        snprintf(status_line, status_len, "%.*s", (int)(eol - headers), headers);
    int status = strncmp(headers, "HTTP/1.1 ", 9) == 0 ? atoi(headers + 9) : 0;
    if (status != 101) {
        free(headers);
        rc = status;
        goto fail;
    }
    /* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)). */
    char concat[128], expected[64], accept[64];
    snprintf(concat, sizeof concat, "%s%s", key, WS_GUID);
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_Digest(concat, strlen(concat), digest, &dlen, EVP_sha1(), NULL);
    base64(digest, dlen, expected);
    if (!header_value(headers, "Sec-WebSocket-Accept", accept, sizeof accept) ||
        strcmp(accept, expected) != 0) {
        fprintf(stderr, "wsclient: bad Sec-WebSocket-Accept\n");
        free(headers);
        rc = STATUS_IO;
        goto fail;
    }
    struct wsc *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    buf_init(&c->in);
    buf_append(&c->in, in.data + hlen, in.len - (size_t)hlen);
    header_value(headers, "Sec-WebSocket-Protocol", c->subprotocol, sizeof c->subprotocol);
    free(headers);
    buf_cleanup(&in);
    *out = c;
    return 101;

fail:
    buf_cleanup(&in);
    close(fd);
    return rc;
}

const char *wsc_subprotocol(const struct wsc *c) {
    return c->subprotocol;
}

int wsc_send_frame(struct wsc *c, int opcode, bool fin, bool masked, const void *data, size_t len) {
    struct buf f;
    buf_init(&f);
    buf_append_u8(&f, (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f)));
    uint8_t mask_bit = masked ? 0x80 : 0;
    if (len < 126) {
        buf_append_u8(&f, (uint8_t)(mask_bit | len));
    } else if (len <= 0xffff) {
        buf_append_u8(&f, mask_bit | 126);
        buf_append_u8(&f, (uint8_t)(len >> 8));
        buf_append_u8(&f, (uint8_t)len);
    } else {
        buf_append_u8(&f, mask_bit | 127);
        for (int i = 7; i >= 0; i--)
            buf_append_u8(&f, (uint8_t)((uint64_t)len >> (8 * i)));
    }
    uint8_t mask[4] = {0};
    if (masked) {
        rand_bytes(mask, sizeof mask);
        buf_append(&f, mask, sizeof mask);
    }
    size_t start = f.len;
    buf_append(&f, data, len);
    for (size_t i = 0; masked && i < len; i++)
        f.data[start + i] ^= mask[i & 3];
    int rc = write_all(c->fd, f.data, f.len);
    buf_cleanup(&f);
    return rc;
}

int wsc_send_binary(struct wsc *c, const void *data, size_t len) {
    return wsc_send_frame(c, WSC_OP_BINARY, true, true, data, len);
}

int wsc_send_raw(struct wsc *c, const void *data, size_t len) {
    return write_all(c->fd, data, len);
}

/* Parses one frame from the front of c->in, reading more as needed. Returns 0
 * with the frame, 0 > status otherwise (STATUS_IO at the end of the stream). */
static int read_frame(struct wsc *c, int64_t deadline, bool *fin, int *opcode,
                      struct buf *payload) {
    for (;;) {
        const uint8_t *p = c->in.data;
        size_t have = c->in.len;
        if (have >= 2) {
            size_t hdr = 2;
            uint64_t len = p[1] & 0x7f;
            bool masked = p[1] & 0x80;
            if (len == 126)
                hdr += 2;
            else if (len == 127)
                hdr += 8;
            if (masked)
                hdr += 4;
            if (have >= hdr) {
                if (len == 126) {
                    len = (uint64_t)p[2] << 8 | p[3];
                } else if (len == 127) {
                    len = 0;
                    for (int i = 0; i < 8; i++)
                        len = len << 8 | p[2 + i];
                }
                if (len > MAX_INCOMING)
                    return STATUS_TOO_LARGE;
                if (have >= hdr + len) {
                    *fin = p[0] & 0x80;
                    *opcode = p[0] & 0x0f;
                    buf_append(payload, p + hdr, (size_t)len);
                    if (masked) {
                        const uint8_t *mask = p + hdr - 4;
                        uint8_t *dst = payload->data + payload->len - len;
                        for (uint64_t i = 0; i < len; i++)
                            dst[i] ^= mask[i & 3];
                    }
                    size_t used = hdr + (size_t)len;
                    memmove(c->in.data, c->in.data + used, have - used);
                    c->in.len = have - used;
                    return STATUS_OK;
                }
            }
        }
        int n = read_some(c->fd, &c->in, deadline);
        if (n == 0)
            return STATUS_IO;
        if (n < 0)
            return n;
    }
}

int wsc_recv(struct wsc *c, int timeout_ms, int *opcode, struct buf *payload, int *close_code) {
    int64_t deadline = clock_monotonic_ms() + timeout_ms;
    int message_op = -1;
    buf_reset(payload);
    *close_code = 0;
    for (;;) {
        bool fin;
        int op;
        struct buf frame;
        buf_init(&frame);
        int rc = read_frame(c, deadline, &fin, &op, &frame);
        if (rc != 0) {
            buf_cleanup(&frame);
            if (rc == STATUS_IO)
                *close_code = WSC_CLOSE_ABNORMAL;
            return rc;
        }
        if (op == WSC_OP_PING) {
            wsc_send_frame(c, WSC_OP_PONG, true, true, frame.data, frame.len);
            buf_cleanup(&frame);
            continue;
        }
        if (op == WSC_OP_PONG) {
            buf_cleanup(&frame);
            continue;
        }
        if (op == WSC_OP_CLOSE) {
            *opcode = WSC_OP_CLOSE;
            *close_code =
                frame.len >= 2 ? (frame.data[0] << 8 | frame.data[1]) : WSC_CLOSE_NO_STATUS;
            buf_reset(payload);
            if (frame.len > 2)
                buf_append(payload, frame.data + 2, frame.len - 2);
            buf_cleanup(&frame);
            return STATUS_OK;
        }
        if (op != WSC_OP_CONTINUATION)
            message_op = op;
        buf_append(payload, frame.data, frame.len);
        buf_cleanup(&frame);
        if (fin) {
            *opcode = message_op;
            return STATUS_OK;
        }
    }
}

int wsc_wait_close(struct wsc *c, int timeout_ms, int *close_code) {
    int64_t deadline = clock_monotonic_ms() + timeout_ms;
    struct buf payload;
    buf_init(&payload);
    int rc;
    for (;;) {
        int64_t left = deadline - clock_monotonic_ms();
        int op;
        rc = wsc_recv(c, left > 0 ? (int)left : 0, &op, &payload, close_code);
        if (rc == STATUS_IO) {
            rc = STATUS_OK;
            break;
        }
        if (rc != 0 || op == WSC_OP_CLOSE)
            break;
    }
    buf_cleanup(&payload);
    return rc;
}

void wsc_free(struct wsc *c) {
    if (!c)
        return;
    close(c->fd);
    buf_cleanup(&c->in);
    free(c);
}

int http_get(const char *host, int port, const char *path, int timeout_ms, int *status,
             struct buf *headers, struct buf *body) {
    int64_t deadline = clock_monotonic_ms() + timeout_ms;
    int fd = tcp_connect(host, NULL, port);
    if (fd < 0)
        return STATUS_IO;
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                     path, host ? host : "127.0.0.1", port);
    struct buf in;
    buf_init(&in);
    int rc = write_all(fd, req, (size_t)n);
    int hlen = rc == 0 ? read_headers(fd, &in, deadline) : 0;
    if (hlen <= 0) {
        rc = hlen == STATUS_UNAVAILABLE ? STATUS_UNAVAILABLE : STATUS_IO;
        goto out;
    }
    char *head = xmemdup(in.data, (size_t)hlen);
    char value[32];
    long content_length = -1;
    if (header_value(head, "content-length", value, sizeof value))
        content_length = atol(value);
    *status = strncmp(head, "HTTP/1.", 7) == 0 ? atoi(head + 9) : 0;
    if (headers)
        buf_append(headers, head, (size_t)hlen);
    free(head);
    /* Read the body: up to content-length, or to the end of the stream. */
    for (;;) {
        size_t have = in.len - (size_t)hlen;
        if (content_length >= 0 && have >= (size_t)content_length)
            break;
        int r = read_some(fd, &in, deadline);
        if (r == 0 && content_length < 0)
            break;
        if (r <= 0) {
            rc = r == 0 ? STATUS_IO : r;
            goto out;
        }
    }
    if (body)
        buf_append(body, in.data + hlen, in.len - (size_t)hlen);
    rc = STATUS_OK;
out:
    buf_cleanup(&in);
    close(fd);
    return rc;
}
