/*
 * push/xfer.h: one transfer and the libcurl multi handle they run on; the
 * layer under the channels (mail, apns, fcm, webpush) and the notifier.
 *
 *   notifier: push_xfer_new(job) -> channel send: push_xfer_easy(), options,
 *             push_xfer_add() ... curl multi ... push_xfer_run() sees it end
 *             -> x->on_done(x, CURLcode) (the channel's) -> push_xfer_finish()
 *             -> engine's finished list -> notifier takes the results
 *
 * Every job transfer ends in push_xfer_finish() exactly once (from a channel,
 * at once or after its easy handle completed); the channels may also run
 * transfers of their own (the FCM OAuth2 token) with `job_less` set, which end
 * in push_xfer_free() instead. Everything here runs on the notifier thread.
 */
#ifndef PUSH_XFER_H
#define PUSH_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <curl/curl.h>

#include "base/buf.h"
#include "push/config.h"
#include "push/job.h"

/* Connections to one host at once (HTTP/2 multiplexes many transfers on each;
 * SMTP sends one message per connection at a time). */
#define PUSH_XFER_MAX_HOST_CONNECTIONS 8

struct push_xfer;
typedef void (*push_xfer_done_fn)(struct push_xfer *x, CURLcode rc);

struct push_xfer {
    struct push_xfer *next; /* the list the transfer is on (one at a time) */
    struct push_job job;    /* its strings point into `strings` (owned) */
    char *strings;
    size_t strings_len;
    bool job_less;        /* a channel's own transfer: no job, no result */
    int64_t submitted_ms; /* clock_monotonic_ms() at push_submit() */

    CURL *easy;                  /* owned; NULL until push_xfer_easy() */
    struct curl_slist *headers;  /* owned: request headers */
    struct curl_slist *list;     /* owned: SMTP recipients or CURLOPT_RESOLVE */
    char *url;                   /* owned: the URL requested, when built per job */
    void *aux;                   /* owned (free()): a channel's scratch (Web Push:
                                    the parsed endpoint) */
    enum push_cause early_cause; /* a verdict reached before or while connecting
                                    (Web Push address checks); NONE otherwise */
    bool allowed_host;           /* Web Push: the host is on the allow-list */
    struct buf request;          /* the body we send (owned) */
    size_t request_off;          /* how much of it the read callback gave */
    struct buf response;         /* what came back, at most max_response bytes */
    size_t max_response;
    bool response_too_large;
    struct push_engine *engine;                  /* set by push_xfer_easy() */
    struct push_xfer *active_prev, *active_next; /* the engine's running list */
    push_xfer_done_fn on_done;                   /* set by whoever added the handle */
    /* Optional: asked before libcurl opens a socket to `sa`; false refuses it
     * (the transfer then fails to connect). Web Push's last address check. */
    bool (*address_ok)(struct push_xfer *x, const struct sockaddr *sa, socklen_t len);
    void *owner; /* the channel's object */

    struct push_result result; /* filled by push_xfer_finish() */
};

struct push_engine {
    CURLM *multi;
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_response_bytes;
    char *ca_file;            /* owned, or NULL */
    size_t running;           /* handles in the multi */
    struct push_xfer *active; /* their transfers */
    /* Every socket libcurl opened through us and has not closed: cleanup shuts
     * them down first, so no protocol goodbye (SMTP QUIT) blocks on a peer that
     * does not answer. */
    int *sockets;
    size_t n_sockets, cap_sockets;
    struct push_xfer *finished_head, *finished_tail;
};

/* Sets up the multi handle (HTTP/2 multiplexing on) with the limits of `cfg`
 * (defaults applied). Returns 0, or STATUS_INTERNAL. */
int push_xfer_engine_init(struct push_engine *e, const struct push_config *cfg);
/* Shuts down every open socket, then removes and frees every transfer still
 * running or finished and closes the connections. Never waits on a peer.
 * Accepts NULL. */
void push_xfer_engine_cleanup(struct push_engine *e);

/* A transfer for a copy of `job` (all its strings copied; the caller's may go
 * away). Aborts on memory exhaustion only. */
struct push_xfer *push_xfer_new(const struct push_job *job, int64_t submitted_ms);
/* A job-less transfer for a channel's own request. */
struct push_xfer *push_xfer_new_job_less(void *owner);
/* Frees everything the transfer owns (the request body is wiped). Accepts NULL.
 * The easy handle must not be in the multi. */
void push_xfer_free(struct push_xfer *x);

/* Creates x->easy with what every transfer shares: timeouts, the CA file, TLS
 * peer and host verification, no redirects, no signals, the response
 * collected into x->response up to the limit, CURLINFO_PRIVATE = x. Returns 0,
 * or STATUS_INTERNAL. */
int push_xfer_easy(struct push_engine *e, struct push_xfer *x);

/* Sets the request body (a copy, sent with CURLOPT_POSTFIELDS semantics for
 * HTTP or through the read callback for SMTP uploads). */
void push_xfer_set_body(struct push_xfer *x, const void *data, size_t len, bool upload);

/* Appends one request header ("Name: value"). */
void push_xfer_header(struct push_xfer *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Starts x (its easy handle and headers set); `on_done` runs when it ends. */
void push_xfer_add(struct push_engine *e, struct push_xfer *x, push_xfer_done_fn on_done,
                   void *owner);

/* Takes x->easy out of the multi (when it was in) and frees the per-request
 * state, keeping the job. */
void push_xfer_release(struct push_engine *e, struct push_xfer *x);

/* Ends a job transfer: releases its request state, fills x->result and puts
 * it on the engine's finished list. */
void push_xfer_finish(struct push_engine *e, struct push_xfer *x, enum push_outcome outcome,
                      enum push_cause cause, int reply_code);

/* Appends x to the FIFO (*head, *tail) through x->next. */
void push_xfer_list_append(struct push_xfer **head, struct push_xfer **tail, struct push_xfer *x);

/* Frees every transfer of the list starting at x (push_xfer_free()). */
void push_xfer_free_list(struct push_xfer *x);

/* The last reply code (HTTP status or SMTP code) of x's easy handle; 0 when
 * none was received. */
long push_xfer_reply_code(const struct push_xfer *x);

/* Drives the multi handle once: curl_multi_perform(), then on_done for every
 * transfer that ended. Returns the number of handles still running. */
size_t push_xfer_run(struct push_engine *e);

/* The cause for a transfer that failed with `rc` before any usable answer
 * (DNS, connect, TLS, timeout, too large, ...). */
enum push_cause push_xfer_curl_cause(const struct push_xfer *x, CURLcode rc);

/* The verdict for a provider's HTTP status that is not the channel's special
 * case: 2xx DELIVERED, 3xx PERMANENT (REDIRECT), 429 RETRY (THROTTLED), 5xx
 * RETRY (PROVIDER_ERROR), other 4xx PERMANENT (REJECTED), others RETRY
 * (PROTOCOL). */
void push_xfer_http_verdict(long status, enum push_outcome *outcome, enum push_cause *cause);

/* Ends x from its CURLcode and HTTP status with push_xfer_http_verdict(), or
 * push_xfer_curl_cause() when there was no answer. */
void push_xfer_finish_http(struct push_engine *e, struct push_xfer *x, CURLcode rc);

#endif
