/*
 * tests/bench/wire.c: non-blocking client WebSockets on one epoll loop
 * (contract and state machine in wire.h).
 *
 * Invariants: a connection is on the loop's list from wire_connect() until it
 * is freed; once CLOSED its descriptor is closed, it is off epoll and on the
 * dead list, freed at the end of the round (so events of the same round that
 * still name it find it CLOSED, never freed memory). EPOLLOUT is asked for
 * only while connecting or while queued output is left over.
 *
 * Thread: the loop's owner.
 */
#define _GNU_SOURCE
#include "tests/bench/wire.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/rand.h"
#include "base/status.h"

#define MAX_EVENTS 512
#define READ_CHUNK (256u * 1024u)
#define MAX_UPGRADE_ANSWER 8192
#define CLOSE_PROTOCOL 1002
#define CLOSE_TOO_BIG 1009
#define OP_CONT 0x0
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xa

enum wire_state { CONNECTING, UPGRADING, OPEN, CLOSED };

struct wire_conn {
    struct wire *w;
    int fd;
    enum wire_state state;
    void *user;
    struct buf out; /* queued bytes, written from out_off */
    size_t out_off;
    struct buf in;  /* received bytes not yet a complete frame (or the upgrade answer) */
    struct buf msg; /* a fragmented message being reassembled */
    bool fragmented;
    bool want_out;                 /* EPOLLOUT is asked for */
    bool dirty;                    /* on the dirty list */
    struct wire_conn *prev, *next; /* the loop's list */
    struct wire_conn *next_dirty, *next_dead;
};

struct wire {
    int ep;
    struct wire_handler h;
    struct wire_conn *conns;
    struct wire_conn *dirty, *dead;
    size_t count;
    uint8_t *scratch;    /* READ_CHUNK bytes */
    uint64_t mask_state; /* xorshift64 for masking keys; seeded from rand_bytes() */
};

int wire_new(const struct wire_handler *h, struct wire **out) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        fprintf(stderr, "carechat-bench: epoll_create1: %s\n", strerror(errno));
        return STATUS_IO;
    }
    struct wire *w = xcalloc(1, sizeof *w);
    w->ep = ep;
    w->h = *h;
    w->scratch = xmalloc(READ_CHUNK);
    while (w->mask_state == 0)
        rand_bytes(&w->mask_state, sizeof w->mask_state);
    *out = w;
    return 0;
}

static void conn_free(struct wire_conn *c) {
    buf_cleanup(&c->out);
    buf_cleanup(&c->in);
    buf_cleanup(&c->msg);
    free(c);
}

static void unlink_conn(struct wire_conn *c) {
    struct wire *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->count--;
}

void wire_free(struct wire *w) {
    if (!w)
        return;
    while (w->conns) {
        struct wire_conn *c = w->conns;
        unlink_conn(c);
        if (c->state != CLOSED)
            close(c->fd);
        conn_free(c);
    }
    /* The dead are off the list already. */
    while (w->dead) {
        struct wire_conn *c = w->dead;
        w->dead = c->next_dead;
        conn_free(c);
    }
    close(w->ep);
    free(w->scratch);
    free(w);
}

static void set_events(struct wire_conn *c, bool want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

/* Moves `c` to CLOSED, tells the caller and queues it for freeing. */
static void close_conn(struct wire_conn *c, int code) {
    if (c->state == CLOSED)
        return;
    c->state = CLOSED;
    epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    unlink_conn(c);
    c->next_dead = c->w->dead;
    c->w->dead = c;
    if (c->w->h.closed)
        c->w->h.closed(c->w->h.ctx, c, code);
}

int wire_connect(struct wire *w, int port, void *user, struct wire_conn **out) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "carechat-bench: socket: %s\n", strerror(errno));
        return STATUS_IO;
    }
    /* Latency is measured per message: no Nagle delay on small frames. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        fprintf(stderr, "carechat-bench: connect: %s\n", strerror(errno));
        close(fd);
        return STATUS_IO;
    }
    struct wire_conn *c = xcalloc(1, sizeof *c);
    c->w = w;
    c->fd = fd;
    c->state = CONNECTING;
    c->user = user;
    buf_init(&c->out);
    buf_init(&c->in);
    buf_init(&c->msg);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        fprintf(stderr, "carechat-bench: epoll_ctl: %s\n", strerror(errno));
        close(fd);
        conn_free(c);
        return STATUS_IO;
    }
    c->want_out = true;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->count++;
    *out = c;
    return 0;
}

void *wire_user(const struct wire_conn *c) {
    return c->user;
}

size_t wire_count(const struct wire *w) {
    return w->count;
}

/* ---- output ------------------------------------------------------------------------------- */

static void mark_dirty(struct wire_conn *c) {
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = c->w->dirty;
    c->w->dirty = c;
}

/* A masking key for a frame sent as it goes. RFC 6455 wants keys a browser's
 * script cannot predict, against cache poisoning of proxies; a bench talking
 * to 127.0.0.1 has neither, and a system call per frame would be the
 * driver's largest cost, so the loop's keys come from xorshift64. */
static void next_mask(struct wire *w, uint8_t key[4]) {
    uint64_t x = w->mask_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->mask_state = x;
    memcpy(key, &x, 4);
}

static void frame_op(int opcode, const uint8_t mask[4], const uint8_t *data, size_t len,
                     struct buf *out) {
    uint8_t hdr[14];
    size_t n = 0;
    hdr[n++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        hdr[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[n++] = 0x80 | 126;
        hdr[n++] = (uint8_t)(len >> 8);
        hdr[n++] = (uint8_t)len;
    } else {
        hdr[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t *key = hdr + n;
    memcpy(key, mask, 4);
    n += 4;
    buf_reserve(out, n + len);
    buf_append(out, hdr, n);
    uint8_t *p = out->data + out->len;
    for (size_t i = 0; i < len; i++)
        p[i] = data[i] ^ key[i & 3];
    out->len += len;
    out->data[out->len] = '\0';
}

void wire_frame(const uint8_t *data, size_t len, struct buf *out) {
    uint8_t mask[4];
    rand_bytes(mask, sizeof mask);
    frame_op(OP_BINARY, mask, data, len, out);
}

void wire_send(struct wire_conn *c, const uint8_t *data, size_t len) {
    if (c->state != OPEN)
        return;
    uint8_t mask[4];
    next_mask(c->w, mask);
    frame_op(OP_BINARY, mask, data, len, &c->out);
    mark_dirty(c);
}

void wire_send_framed(struct wire_conn *c, const uint8_t *framed, size_t len) {
    if (c->state != OPEN)
        return;
    buf_append(&c->out, framed, len);
    mark_dirty(c);
}

/* Writes what `c` has queued; asks for EPOLLOUT when the socket is full. */
static void flush_conn(struct wire_conn *c) {
    while (c->state != CLOSED && c->state != CONNECTING && c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out)
                set_events(c, true);
            return;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            close_conn(c, WIRE_CLOSE_ABNORMAL);
            return;
        }
    }
    if (c->state == CLOSED || c->state == CONNECTING)
        return;
    buf_reset(&c->out);
    c->out_off = 0;
    if (c->want_out)
        set_events(c, false);
}

void wire_flush(struct wire *w) {
    while (w->dirty) {
        struct wire_conn *c = w->dirty;
        w->dirty = c->next_dirty;
        c->dirty = false;
        flush_conn(c);
    }
}

/* ---- input -------------------------------------------------------------------------------- */

/* Handles one complete frame; false when the connection closed. */
static bool on_frame(struct wire_conn *c, int opcode, bool fin, const uint8_t *p, size_t n) {
    struct wire *w = c->w;
    switch (opcode) {
    case OP_BINARY:
        if (c->fragmented) {
            close_conn(c, CLOSE_PROTOCOL);
            return false;
        }
        if (fin) {
            w->h.message(w->h.ctx, c, p, n);
        } else {
            c->fragmented = true;
            buf_reset(&c->msg);
            buf_append(&c->msg, p, n);
        }
        break;
    case OP_CONT:
        if (!c->fragmented) {
            close_conn(c, CLOSE_PROTOCOL);
            return false;
        }
        if (c->msg.len + n > WIRE_MAX_MESSAGE) {
            close_conn(c, CLOSE_TOO_BIG);
            return false;
        }
        buf_append(&c->msg, p, n);
        if (fin) {
            c->fragmented = false;
            w->h.message(w->h.ctx, c, c->msg.data, c->msg.len);
            buf_reset(&c->msg);
        }
        break;
    case OP_PING: {
        uint8_t mask[4];
        next_mask(w, mask);
        frame_op(OP_PONG, mask, p, n, &c->out);
        mark_dirty(c);
        break;
    }
    case OP_PONG:
        break;
    case OP_CLOSE: {
        int code = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
        close_conn(c, code);
        return false;
    }
    default: /* text, reserved opcodes */
        close_conn(c, CLOSE_PROTOCOL);
        return false;
    }
    return c->state == OPEN;
}

/* Handles the complete frames at the start of `data`; returns the bytes
 * used (the rest is an incomplete frame), or SIZE_MAX when `c` closed. */
static size_t parse_frames(struct wire_conn *c, const uint8_t *data, size_t len) {
    size_t used = 0;
    while (len - used >= 2) {
        const uint8_t *p = data + used;
        size_t avail = len - used, hdr = 2;
        uint64_t n = p[1] & 0x7f;
        if (p[1] & 0x80) { /* a server never masks */
            close_conn(c, CLOSE_PROTOCOL);
            return SIZE_MAX;
        }
        if (n == 126) {
            if (avail < 4)
                break;
            n = (uint64_t)p[2] << 8 | p[3];
            hdr = 4;
        } else if (n == 127) {
            if (avail < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | p[2 + i];
            hdr = 10;
        }
        if (n > WIRE_MAX_MESSAGE) {
            close_conn(c, CLOSE_TOO_BIG);
            return SIZE_MAX;
        }
        if (avail - hdr < n)
            break;
        if (!on_frame(c, p[0] & 0x0f, (p[0] & 0x80) != 0, p + hdr, (size_t)n))
            return SIZE_MAX;
        used += hdr + (size_t)n;
    }
    return used;
}

/* The upgrade answer in c->in: 101 with carechat.v1, then frames may follow. */
static void on_upgrade_bytes(struct wire_conn *c) {
    const uint8_t *end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
    if (!end) {
        if (c->in.len > MAX_UPGRADE_ANSWER)
            close_conn(c, CLOSE_PROTOCOL);
        return;
    }
    size_t hlen = (size_t)(end - c->in.data) + 4;
    char head[MAX_UPGRADE_ANSWER + 1];
    if (hlen > MAX_UPGRADE_ANSWER) {
        close_conn(c, CLOSE_PROTOCOL);
        return;
    }
    memcpy(head, c->in.data, hlen);
    head[hlen] = '\0';
    const char *proto = strcasestr(head, "\r\nSec-WebSocket-Protocol:");
    if (strncmp(head, "HTTP/1.1 101", 12) != 0 || !proto || !strstr(proto + 25, "carechat.v1")) {
        fprintf(stderr, "carechat-bench: upgrade refused: %.*s\n", (int)strcspn(head, "\r\n"),
                head);
        close_conn(c, WIRE_CLOSE_ABNORMAL);
        return;
    }
    c->state = OPEN;
    memmove(c->in.data, c->in.data + hlen, c->in.len - hlen);
    c->in.len -= hlen;
    if (c->w->h.open)
        c->w->h.open(c->w->h.ctx, c);
    if (c->state != OPEN || c->in.len == 0)
        return;
    size_t used = parse_frames(c, c->in.data, c->in.len);
    if (used == SIZE_MAX)
        return;
    memmove(c->in.data, c->in.data + used, c->in.len - used);
    c->in.len -= used;
}

static void on_readable(struct wire_conn *c) {
    struct wire *w = c->w;
    ssize_t r = recv(c->fd, w->scratch, READ_CHUNK, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (r <= 0) {
        close_conn(c, WIRE_CLOSE_ABNORMAL);
        return;
    }
    if (c->state == UPGRADING) {
        buf_append(&c->in, w->scratch, (size_t)r);
        on_upgrade_bytes(c);
        return;
    }
    if (c->state != OPEN)
        return;
    if (c->in.len == 0) {
        /* The common case: frames straight from the read, the tail kept. */
        size_t used = parse_frames(c, w->scratch, (size_t)r);
        if (used != SIZE_MAX && used < (size_t)r)
            buf_append(&c->in, w->scratch + used, (size_t)r - used);
        return;
    }
    buf_append(&c->in, w->scratch, (size_t)r);
    size_t used = parse_frames(c, c->in.data, c->in.len);
    if (used == SIZE_MAX)
        return;
    memmove(c->in.data, c->in.data + used, c->in.len - used);
    c->in.len -= used;
}

/* The connect finished (or failed): send the upgrade request. */
static void on_connected(struct wire_conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        fprintf(stderr, "carechat-bench: connect: %s\n", strerror(err ? err : errno));
        close_conn(c, WIRE_CLOSE_ABNORMAL);
        return;
    }
    uint8_t key[16];
    char key64[sodium_base64_ENCODED_LEN(16, sodium_base64_VARIANT_ORIGINAL)];
    rand_bytes(key, sizeof key);
    sodium_bin2base64(key64, sizeof key64, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getpeername(c->fd, (struct sockaddr *)&sa, &sl);
    buf_printf(&c->out,
               "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: carechat.v1\r\n\r\n",
               ntohs(sa.sin_port), key64);
    c->state = UPGRADING;
    c->want_out = true; /* as registered by wire_connect() */
    flush_conn(c);
}

int wire_run(struct wire *w, int timeout_ms) {
    wire_flush(w);
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(w->ep, ev, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR) {
        fprintf(stderr, "carechat-bench: epoll_wait: %s\n", strerror(errno));
        return STATUS_IO;
    }
    for (int i = 0; i < n; i++) {
        struct wire_conn *c = ev[i].data.ptr;
        if (c->state == CONNECTING) {
            if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected(c);
            continue;
        }
        if (c->state != CLOSED && (ev[i].events & EPOLLOUT))
            flush_conn(c);
        if (c->state != CLOSED && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            on_readable(c);
    }
    wire_flush(w);
    while (w->dead) {
        struct wire_conn *c = w->dead;
        w->dead = c->next_dead;
        conn_free(c);
    }
    return 0;
}
