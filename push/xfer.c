/*
 * push/xfer.c: transfers and the multi handle (contract in xfer.h).
 *
 * Invariants:
 * - x->easy is in the multi exactly while x->on_done is pending; `running`
 *   counts those handles.
 * - A finished job transfer holds no easy handle, header list or body: only
 *   its job and result, until the notifier takes it.
 */
#include "push/xfer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"

#define MOD "push"

int push_xfer_engine_init(struct push_engine *e, const struct push_config *cfg) {
    memset(e, 0, sizeof *e);
    e->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    e->total_timeout_ms = cfg->total_timeout_ms > 0 ? cfg->total_timeout_ms : 30000;
    e->max_response_bytes = cfg->max_response_bytes > 0 ? cfg->max_response_bytes : 65536;
    e->ca_file = cfg->ca_file != NULL ? xstrdup(cfg->ca_file) : NULL;
    e->multi = curl_multi_init();
    if (e->multi == NULL) {
        free(e->ca_file);
        return STATUS_INTERNAL;
    }
    /* APNs wants many requests on one HTTP/2 connection (CURLOPT_PIPEWAIT per
     * handle makes new transfers wait for it instead of opening others). */
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* Without a cap a burst opens a connection per transfer before the first
     * one has negotiated HTTP/2; with it, transfers wait and then share. The
     * same cap keeps us polite to an SMTP relay. */
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)PUSH_XFER_MAX_HOST_CONNECTIONS);
    return 0;
}

void push_xfer_list_append(struct push_xfer **head, struct push_xfer **tail, struct push_xfer *x) {
    x->next = NULL;
    if (*tail != NULL)
        (*tail)->next = x;
    else
        *head = x;
    *tail = x;
}

void push_xfer_free_list(struct push_xfer *x) {
    while (x != NULL) {
        struct push_xfer *next = x->next;
        push_xfer_free(x);
        x = next;
    }
}

long push_xfer_reply_code(const struct push_xfer *x) {
    long code = 0;
    if (x->easy != NULL)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

void push_xfer_engine_cleanup(struct push_engine *e) {
    if (e == NULL || e->multi == NULL)
        return;
    for (size_t i = 0; i < e->n_sockets; i++)
        shutdown(e->sockets[i], SHUT_RDWR);
    while (e->active != NULL) {
        struct push_xfer *x = e->active;
        push_xfer_release(e, x);
        push_xfer_free(x);
    }
    push_xfer_free_list(e->finished_head);
    curl_multi_cleanup(e->multi);
    free(e->sockets);
    free(e->ca_file);
    memset(e, 0, sizeof *e);
}

static size_t str_size(const char *s) {
    return s != NULL ? strlen(s) + 1 : 0;
}

/* Copies s into the arena at *p and returns the copy (NULL stays NULL). */
static const char *put_str(char **p, const char *s) {
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*p, s, n);
    const char *copy = *p;
    *p += n;
    return copy;
}

struct push_xfer *push_xfer_new(const struct push_job *job, int64_t submitted_ms) {
    struct push_xfer *x = xcalloc(1, sizeof *x);
    const struct push_destination *to = &job->to;
    x->job = *job;
    x->submitted_ms = submitted_ms;
    x->strings_len = str_size(to->email) + str_size(to->apns_token) + str_size(to->fcm_token) +
                     str_size(to->webpush_endpoint) + str_size(to->webpush_p256dh) +
                     str_size(to->webpush_auth) + str_size(job->code) + str_size(job->link);
    x->strings = xmalloc(x->strings_len);
    char *p = x->strings;
    x->job.to.email = put_str(&p, to->email);
    x->job.to.apns_token = put_str(&p, to->apns_token);
    x->job.to.fcm_token = put_str(&p, to->fcm_token);
    x->job.to.webpush_endpoint = put_str(&p, to->webpush_endpoint);
    x->job.to.webpush_p256dh = put_str(&p, to->webpush_p256dh);
    x->job.to.webpush_auth = put_str(&p, to->webpush_auth);
    x->job.code = put_str(&p, job->code);
    x->job.link = put_str(&p, job->link);
    buf_init(&x->request);
    buf_init(&x->response);
    return x;
}

struct push_xfer *push_xfer_new_job_less(void *owner) {
    struct push_xfer *x = xcalloc(1, sizeof *x);
    x->job_less = true;
    x->owner = owner;
    buf_init(&x->request);
    buf_init(&x->response);
    return x;
}

static void release_request(struct push_xfer *x) {
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    x->easy = NULL;
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    curl_slist_free_all(x->list);
    x->list = NULL;
    free(x->url);
    x->url = NULL;
    free(x->aux);
    x->aux = NULL;
    /* bodies carry bearer tokens, assertions and codes */
    buf_wipe(&x->request);
    buf_cleanup(&x->request);
    buf_wipe(&x->response);
    buf_cleanup(&x->response);
    x->request_off = 0;
}

void push_xfer_free(struct push_xfer *x) {
    if (x == NULL)
        return;
    release_request(x);
    if (x->strings != NULL) {
        sodium_memzero(x->strings, x->strings_len);
        free(x->strings);
    }
    free(x);
}

static size_t on_write(char *data, size_t size, size_t n, void *ctx) {
    struct push_xfer *x = ctx;
    size_t len = size * n;
    if (len > x->max_response - x->response.len) {
        x->response_too_large = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    buf_append(&x->response, data, len);
    return len;
}

static size_t on_read(char *out, size_t size, size_t n, void *ctx) {
    struct push_xfer *x = ctx;
    size_t left = x->request.len - x->request_off;
    size_t len = size * n < left ? size * n : left;
    memcpy(out, x->request.data + x->request_off, len);
    x->request_off += len;
    return len;
}

static curl_socket_t open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *address) {
    struct push_xfer *x = ctx;
    struct push_engine *e = x->engine;
    if (x->address_ok != NULL && !x->address_ok(x, &address->addr, address->addrlen))
        return CURL_SOCKET_BAD;
    int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    if (e->n_sockets == e->cap_sockets) {
        e->cap_sockets = e->cap_sockets ? 2 * e->cap_sockets : 16;
        e->sockets = xrealloc(e->sockets, e->cap_sockets * sizeof *e->sockets);
    }
    e->sockets[e->n_sockets++] = fd;
    return fd;
}

static int close_socket(void *ctx, curl_socket_t fd) {
    struct push_engine *e = ctx;
    for (size_t i = 0; i < e->n_sockets; i++) {
        if (e->sockets[i] == fd) {
            e->sockets[i] = e->sockets[--e->n_sockets];
            break;
        }
    }
    return close(fd);
}

int push_xfer_easy(struct push_engine *e, struct push_xfer *x) {
    CHECK(x->easy == NULL);
    x->easy = curl_easy_init();
    if (x->easy == NULL)
        return STATUS_INTERNAL;
    CURL *c = x->easy;
    x->max_response = e->max_response_bytes;
    x->engine = e;
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(c, CURLOPT_CLOSESOCKETDATA, e);
    curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, e->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, e->total_timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (e->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, e->ca_file);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)e->max_response_bytes);
    return 0;
}

void push_xfer_set_body(struct push_xfer *x, const void *data, size_t len, bool upload) {
    buf_reset(&x->request);
    buf_append(&x->request, data, len);
    x->request_off = 0;
    if (upload) {
        curl_easy_setopt(x->easy, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(x->easy, CURLOPT_READDATA, x);
        curl_easy_setopt(x->easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(x->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, (char *)x->request.data);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
}

void push_xfer_header(struct push_xfer *x, const char *fmt, ...) {
    char line[4096 + 256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    CHECK(n > 0 && (size_t)n < sizeof line); /* callers pass bounded values */
    struct curl_slist *l = curl_slist_append(x->headers, line);
    CHECK(l != NULL);
    x->headers = l;
    sodium_memzero(line, sizeof line);
}

void push_xfer_add(struct push_engine *e, struct push_xfer *x, push_xfer_done_fn on_done,
                   void *owner) {
    x->on_done = on_done;
    x->owner = owner;
    if (x->headers != NULL)
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    CURLMcode mc = curl_multi_add_handle(e->multi, x->easy);
    CHECK(mc == CURLM_OK);
    e->running++;
    x->active_prev = NULL;
    x->active_next = e->active;
    if (e->active != NULL)
        e->active->active_prev = x;
    e->active = x;
}

/* Takes x's handle out of the multi and x off the running list. */
static void unlink_active(struct push_engine *e, struct push_xfer *x) {
    curl_multi_remove_handle(e->multi, x->easy);
    e->running--;
    if (x->active_prev != NULL)
        x->active_prev->active_next = x->active_next;
    else
        e->active = x->active_next;
    if (x->active_next != NULL)
        x->active_next->active_prev = x->active_prev;
    x->active_prev = x->active_next = NULL;
}

void push_xfer_release(struct push_engine *e, struct push_xfer *x) {
    if (x->on_done != NULL && x->easy != NULL)
        unlink_active(e, x);
    x->on_done = NULL;
    release_request(x);
    buf_init(&x->request);
    buf_init(&x->response);
    x->response_too_large = false;
}

void push_xfer_finish(struct push_engine *e, struct push_xfer *x, enum push_outcome outcome,
                      enum push_cause cause, int reply_code) {
    CHECK(!x->job_less);
    push_xfer_release(e, x);
    struct push_result *r = &x->result;
    memcpy(r->job_id, x->job.id, PUSH_JOB_ID_LEN);
    r->channel = x->job.channel;
    r->attempt = x->job.attempt;
    r->outcome = outcome;
    r->cause = cause;
    r->reply_code = reply_code;
    r->latency_ms = clock_monotonic_ms() - x->submitted_ms;
    push_xfer_list_append(&e->finished_head, &e->finished_tail, x);
}

size_t push_xfer_run(struct push_engine *e) {
    int still = 0;
    curl_multi_perform(e->multi, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct push_xfer *x = NULL;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CHECK(x != NULL && x->on_done != NULL);
        unlink_active(e, x);
        push_xfer_done_fn done = x->on_done;
        x->on_done = NULL;
        done(x, rc);
    }
    return e->running;
}

enum push_cause push_xfer_curl_cause(const struct push_xfer *x, CURLcode rc) {
    if (x->response_too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return PUSH_CAUSE_TOO_LARGE;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return PUSH_CAUSE_DNS;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return PUSH_CAUSE_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return PUSH_CAUSE_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
        return PUSH_CAUSE_TLS;
    case CURLE_LOGIN_DENIED:
        return PUSH_CAUSE_AUTH;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_NOT_BUILT_IN:
        return PUSH_CAUSE_INTERNAL;
    default:
        return PUSH_CAUSE_PROTOCOL;
    }
}

void push_xfer_http_verdict(long status, enum push_outcome *outcome, enum push_cause *cause) {
    if (status >= 200 && status < 300) {
        *outcome = PUSH_OUTCOME_DELIVERED;
        *cause = PUSH_CAUSE_NONE;
    } else if (status >= 300 && status < 400) {
        *outcome = PUSH_OUTCOME_PERMANENT_FAILURE;
        *cause = PUSH_CAUSE_REDIRECT;
    } else if (status == 429) {
        *outcome = PUSH_OUTCOME_RETRY;
        *cause = PUSH_CAUSE_THROTTLED;
    } else if (status >= 500 && status < 600) {
        *outcome = PUSH_OUTCOME_RETRY;
        *cause = PUSH_CAUSE_PROVIDER_ERROR;
    } else if (status >= 400 && status < 500) {
        *outcome = PUSH_OUTCOME_PERMANENT_FAILURE;
        *cause = PUSH_CAUSE_REJECTED;
    } else {
        *outcome = PUSH_OUTCOME_RETRY;
        *cause = PUSH_CAUSE_PROTOCOL;
    }
}

void push_xfer_finish_http(struct push_engine *e, struct push_xfer *x, CURLcode rc) {
    long status = push_xfer_reply_code(x);
    enum push_outcome outcome;
    enum push_cause cause;
    if (rc != CURLE_OK || x->response_too_large) {
        push_xfer_finish(e, x, PUSH_OUTCOME_RETRY, push_xfer_curl_cause(x, rc), (int)status);
        return;
    }
    push_xfer_http_verdict(status, &outcome, &cause);
    push_xfer_finish(e, x, outcome, cause, (int)status);
}
