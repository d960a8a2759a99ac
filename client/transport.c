/*
 * client/transport.c: the client's WebSocket over libwebsockets 4.1.6
 * (transport.h). Runs on the caller's thread only: lws is serviced inside the
 * transport_* calls, and a sorted-usec-list timer at each call's deadline
 * guarantees lws_service() returns in time.
 *
 * Connection states:
 *
 *   transport_open --> [connecting] --ESTABLISHED--> [open] --CLIENT_CLOSED-->  [closed]
 *                          |  CONNECTION_ERROR        |  transport_close: close 1000
 *                          v                          v
 *                       [closed]                   [closed]
 *
 * Invariants: `wsi` is non-NULL only while connecting or open; the receive
 * queue holds complete binary messages in arrival order; sent bytes are wiped.
 */
#include "client/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "protocol/proto.h"

#define MOD "transport"

struct message {
    struct message *next;
    struct buf data; /* received: the payload; to send: LWS_PRE bytes, then the payload */
};

struct queue {
    struct message *head, *tail;
    size_t n;
};

struct transport {
    struct lws_context *ctx;
    struct lws *wsi;
    lws_sorted_usec_list_t deadline_sul;
    bool timed_out;
    bool established;
    bool closed;
    bool closing;    /* transport_close asked for a close handshake */
    bool over_limit; /* we closed it: a message broke a limit */
    int close_code;
    char reason[160]; /* why the connection failed, from lws */
    size_t max_frame;
    struct buf partial; /* the message being reassembled */
    struct queue rx;
    struct queue tx;
};

static const lws_retry_bo_t keepalive = {
    /* Well inside the server's 60 s idle hang-up (PROTOCOL.md section 1). */
    .secs_since_valid_ping = 20,
    .secs_since_valid_hangup = 70,
};

static void queue_push(struct queue *q, struct message *m) {
    m->next = NULL;
    if (q->tail != NULL)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->n++;
}

static struct message *queue_pop(struct queue *q) {
    struct message *m = q->head;
    if (m != NULL) {
        q->head = m->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->n--;
    }
    return m;
}

static void message_free(struct message *m) {
    if (m == NULL)
        return;
    buf_wipe(&m->data);
    buf_cleanup(&m->data);
    free(m);
}

static void queue_clear(struct queue *q) {
    struct message *m;
    while ((m = queue_pop(q)) != NULL)
        message_free(m);
}

/* ---- URL ---- */

int transport_parse_url(const char *url, struct transport_url *out) {
    struct transport_url u;
    memset(&u, 0, sizeof u);
    const char *p;
    if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
        u.port = 80;
    } else if (strncmp(url, "wss://", 6) == 0) {
        p = url + 6;
        u.tls = true;
        u.port = 443;
    } else {
        return STATUS_BAD_REQUEST;
    }
    const char *host_end;
    const char *after;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (host_end == NULL)
            return STATUS_BAD_REQUEST;
        p++;
        after = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/");
        after = host_end;
    }
    size_t host_len = (size_t)(host_end - p);
    if (host_len == 0 || host_len > TRANSPORT_MAX_HOST)
        return STATUS_BAD_REQUEST;
    memcpy(u.host, p, host_len);
    if (strpbrk(u.host, "@?#[] ") != NULL)
        return STATUS_BAD_REQUEST;
    if (*after == ':') {
        after++;
        int port = 0, digits = 0;
        while (*after >= '0' && *after <= '9' && digits < 6) {
            port = port * 10 + (*after - '0');
            after++;
            digits++;
        }
        if (digits == 0 || port < 1 || port > 65535)
            return STATUS_BAD_REQUEST;
        u.port = port;
    }
    if (*after == '\0') {
        strcpy(u.path, "/");
    } else if (*after == '/') {
        if (strlen(after) >= sizeof u.path || strpbrk(after, "?# ") != NULL)
            return STATUS_BAD_REQUEST;
        strcpy(u.path, after);
    } else {
        return STATUS_BAD_REQUEST;
    }
    *out = u;
    return 0;
}

/* ---- lws callbacks (run inside lws_service on the caller's thread) ---- */

static struct transport *of(struct lws *wsi) {
    return lws_context_user(lws_get_context(wsi));
}

static int on_receive(struct transport *t, struct lws *wsi, const void *in, size_t len) {
    if (!lws_frame_is_binary(wsi)) {
        t->over_limit = true;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, NULL, 0);
        return -1;
    }
    if (lws_is_first_fragment(wsi))
        buf_reset(&t->partial);
    if (t->partial.len + len > t->max_frame) {
        t->over_limit = true;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    buf_append(&t->partial, in, len);
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0)
        return 0;
    if (t->rx.n >= TRANSPORT_MAX_QUEUED) {
        t->over_limit = true;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, NULL, 0);
        return -1;
    }
    struct message *m = xcalloc(1, sizeof *m);
    buf_init(&m->data);
    m->data = t->partial;
    buf_init(&t->partial);
    queue_push(&t->rx, m);
    return 0;
}

static int on_writeable(struct transport *t, struct lws *wsi) {
    if (t->closing) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    struct message *m = queue_pop(&t->tx);
    if (m == NULL)
        return 0;
    size_t len = m->data.len - LWS_PRE;
    int n = lws_write(wsi, m->data.data + LWS_PRE, len, LWS_WRITE_BINARY);
    message_free(m);
    if (n < 0 || (size_t)n < len) {
        log_debug(MOD, "write failed");
        return -1;
    }
    if (t->tx.head != NULL)
        lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    struct transport *t = of(wsi);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        t->established = true;
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        log_debug(MOD, "connection failed: %s", in != NULL ? (const char *)in : "(no reason)");
        if (in != NULL)
            snprintf(t->reason, sizeof t->reason, "%s", (const char *)in);
        t->closed = true;
        t->close_code = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
        t->wsi = NULL;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_receive(t, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(t, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const uint8_t *b = in;
            t->close_code = (b[0] << 8) | b[1];
        }
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        t->closed = true;
        if (t->close_code == 0)
            t->close_code = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
        t->wsi = NULL;
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    /* A 64 KiB receive buffer: file chunks come in 128 KiB frames. */
    {PROTO_SUBPROTOCOL, callback, 0, 64 * 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_to_debug(int level, const char *line) {
    (void)level;
    log_debug("lws", "%s", line);
}

static void on_deadline(lws_sorted_usec_list_t *sul) {
    struct transport *t = lws_container_of(sul, struct transport, deadline_sul);
    t->timed_out = true;
    /* lws runs ripe timers before it polls, in the same lws_service() call:
     * without this wake-up that call would still wait for the next event. */
    lws_cancel_service(t->ctx);
}

/* Services lws until done(t), the connection closes or `deadline_ms` passes.
 * Returns 0 when done, STATUS_IO when closed, STATUS_UNAVAILABLE on timeout. */
static int service_until(struct transport *t, bool (*done)(const struct transport *),
                         int64_t deadline_ms) {
    if (done(t))
        return 0;
    if (t->closed)
        return STATUS_IO;
    int64_t left = deadline_ms - clock_monotonic_ms();
    if (left <= 0)
        return STATUS_UNAVAILABLE;
    t->timed_out = false;
    lws_sul_schedule(t->ctx, 0, &t->deadline_sul, on_deadline, (lws_usec_t)left * 1000);
    while (!done(t) && !t->closed && !t->timed_out) {
        if (lws_service(t->ctx, 0) < 0) {
            t->closed = true;
            break;
        }
    }
    lws_sul_cancel(&t->deadline_sul);
    if (done(t))
        return 0;
    return t->closed ? STATUS_IO : STATUS_UNAVAILABLE;
}

static bool is_established(const struct transport *t) {
    return t->established;
}

static bool tx_empty(const struct transport *t) {
    return t->tx.head == NULL;
}

static bool rx_ready(const struct transport *t) {
    return t->rx.head != NULL;
}

static bool is_closed(const struct transport *t) {
    return t->closed;
}

int transport_open(const struct transport_config *cfg, struct transport **out, char *reason,
                   size_t reason_len) {
    if (reason_len > 0)
        reason[0] = '\0';
    struct transport_url url;
    if (transport_parse_url(cfg->url, &url) != 0)
        return STATUS_BAD_REQUEST;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_debug);

    struct transport *t = xcalloc(1, sizeof *t);
    buf_init(&t->partial);
    t->max_frame = cfg->max_frame_bytes ? cfg->max_frame_bytes : PROTO_DEFAULT_MAX_FRAME;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = t;
    info.fd_limit_per_thread = 4;
    if (url.tls) {
        info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = cfg->ca_file;
    }
    int rc;
    t->ctx = lws_create_context(&info);
    if (t->ctx == NULL) {
        log_error(MOD, "lws_create_context failed");
        rc = STATUS_INTERNAL;
        goto fail;
    }

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = t->ctx;
    ci.address = url.host;
    ci.port = url.port;
    ci.path = url.path;
    ci.host = url.host;
    ci.protocol = PROTO_SUBPROTOCOL;
    ci.ssl_connection = url.tls ? LCCSCF_USE_SSL : 0;
    ci.retry_and_idle_policy = &keepalive;
    ci.pwsi = &t->wsi;
    if (lws_client_connect_via_info(&ci) == NULL && !t->closed) {
        t->closed = true;
        t->close_code = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
    }
    rc = service_until(t, is_established, cfg->deadline_ms);
    if (rc != 0) {
        if (rc == STATUS_IO && reason_len > 0)
            snprintf(reason, reason_len, "%s", t->reason);
        goto fail;
    }
    *out = t;
    return 0;
fail:
    transport_close(t, 0);
    return rc;
}

int transport_send(struct transport *t, const uint8_t *data, size_t len, int64_t deadline_ms) {
    if (t->closed || t->wsi == NULL)
        return STATUS_IO;
    struct message *m = xcalloc(1, sizeof *m);
    buf_init(&m->data);
    buf_reserve(&m->data, LWS_PRE + len);
    memset(m->data.data, 0, LWS_PRE);
    m->data.len = LWS_PRE;
    buf_append(&m->data, data, len);
    queue_push(&t->tx, m);
    lws_callback_on_writable(t->wsi);
    return service_until(t, tx_empty, deadline_ms);
}

int transport_recv(struct transport *t, int64_t deadline_ms, struct buf *out) {
    int rc = service_until(t, rx_ready, deadline_ms);
    if (rc == STATUS_IO && t->over_limit)
        rc = STATUS_TOO_LARGE;
    if (rc != 0)
        return rc;
    struct message *m = queue_pop(&t->rx);
    buf_reset(out);
    buf_append(out, m->data.data, m->data.len);
    message_free(m);
    return 0;
}

bool transport_is_open(const struct transport *t) {
    return t->established && !t->closed;
}

int transport_close_code(const struct transport *t) {
    return t->closed ? t->close_code : 0;
}

void transport_close(struct transport *t, int linger_ms) {
    if (t == NULL)
        return;
    if (t->ctx != NULL) {
        if (t->wsi != NULL && !t->closed && linger_ms > 0) {
            t->closing = true;
            lws_callback_on_writable(t->wsi);
            (void)service_until(t, is_closed, clock_monotonic_ms() + linger_ms);
        }
        lws_context_destroy(t->ctx);
    }
    queue_clear(&t->rx);
    queue_clear(&t->tx);
    buf_wipe(&t->partial);
    buf_cleanup(&t->partial);
    free(t);
}
