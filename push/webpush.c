/*
 * push/webpush.c: Web Push with VAPID and the SSRF defence (contract in
 * webpush.h).
 *
 *   send --parse/scheme/port--> todo --resolver thread: getaddrinfo, classify,
 *   CURLOPT_RESOLVE list--> ready + curl_multi_wakeup() --poll--> transfer
 *
 * Invariants: a transfer is on exactly one of todo, ready, the engine's
 * running list, or finished. Only the resolver thread calls getaddrinfo(); the
 * lists todo and ready are guarded by `lock`.
 */
#include "push/webpush.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <jansson.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "push/content.h"
#include "push/ece.h"
#include "push/jose.h"
#include "push/ssrf.h"

#define MOD "push"
#define MAX_ADDRS 8
#define VAPID_LIFE_S (12 * 3600)

struct push_webpush {
    struct push_engine *engine;
    EVP_PKEY *vapid;
    struct buf vapid_k; /* b64url of the public point, NUL-terminated */
    char *subject;
    int ttl_s;
    char *urgency;
    char **allow;
    size_t n_allow;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct push_xfer *todo_head, *todo_tail;
    struct push_xfer *ready_head, *ready_tail;
    bool stop;
    bool started;
    pthread_t resolver;
};

/* The parsed endpoint, in x->aux. */
struct target {
    char host[256]; /* without brackets */
    char port[8];
    char origin[320]; /* scheme://host[:port], the VAPID audience */
    bool literal;     /* host is a numeric address: nothing to pin */
};

static bool host_allowed(const struct push_webpush *w, const char *host) {
    for (size_t i = 0; i < w->n_allow; i++) {
        if (strcasecmp(w->allow[i], host) == 0)
            return true;
    }
    return false;
}

/* --- resolver thread ------------------------------------------------------ */

/* Resolves and checks x's host; sets x->early_cause or x->list. */
static void resolve_one(struct push_xfer *x) {
    const struct target *t = x->aux;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(t->host, t->port, &hints, &res) != 0 || res == NULL) {
        x->early_cause = PUSH_CAUSE_DNS;
        return;
    }
    char pin[256 + 8 + MAX_ADDRS * (INET6_ADDRSTRLEN + 3)];
    int len = snprintf(pin, sizeof pin, "%s:%s:", t->host, t->port);
    const int prefix = len;
    int n = 0;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        enum push_ssrf_class cls = push_ssrf_classify(a->ai_addr, a->ai_addrlen);
        if (!x->allowed_host && cls != PUSH_SSRF_PUBLIC) {
            log_warn(MOD, "webpush endpoint refused: its host resolves to a %s address",
                     push_ssrf_class_str(cls));
            x->early_cause = PUSH_CAUSE_ADDRESS_REFUSED;
            break;
        }
        char text[INET6_ADDRSTRLEN];
        const void *addr = a->ai_family == AF_INET
                               ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                               : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (n == MAX_ADDRS || (a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
            inet_ntop(a->ai_family, addr, text, sizeof text) == NULL)
            continue;
        if (strstr(pin + prefix, text) != NULL) /* an address per socket type */
            continue;
        len += snprintf(pin + len, sizeof pin - (size_t)len,
                        a->ai_family == AF_INET6 ? "%s[%s]" : "%s%s", n > 0 ? "," : "", text);
        n++;
    }
    freeaddrinfo(res);
    if (x->early_cause == PUSH_CAUSE_NONE && n == 0)
        x->early_cause = PUSH_CAUSE_DNS;
    if (x->early_cause == PUSH_CAUSE_NONE && !x->allowed_host && strcmp(t->port, "443") != 0) {
        log_warn(MOD, "webpush endpoint refused: port %s is not 443", t->port);
        x->early_cause = PUSH_CAUSE_ADDRESS_REFUSED;
    }
    if (x->early_cause == PUSH_CAUSE_NONE && !t->literal) {
        x->list = curl_slist_append(NULL, pin);
        CHECK(x->list != NULL);
    }
}

static void *resolver_main(void *arg) {
    struct push_webpush *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stop && w->todo_head == NULL)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->stop)
            break;
        struct push_xfer *x = w->todo_head;
        w->todo_head = x->next;
        if (w->todo_head == NULL)
            w->todo_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        resolve_one(x);
        pthread_mutex_lock(&w->lock);
        push_xfer_list_append(&w->ready_head, &w->ready_tail, x);
        curl_multi_wakeup(w->engine->multi);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* --- notifier thread ------------------------------------------------------ */

static bool urgency_valid(const char *u) {
    return strcmp(u, "very-low") == 0 || strcmp(u, "low") == 0 || strcmp(u, "normal") == 0 ||
           strcmp(u, "high") == 0;
}

static bool subject_valid(const char *s) {
    return s != NULL && strlen(s) < 256 && strpbrk(s, "\r\n\"\\") == NULL &&
           (strncmp(s, "mailto:", 7) == 0 || strncmp(s, "https://", 8) == 0);
}

int push_webpush_open(const struct push_config *cfg, struct push_engine *e,
                      struct push_webpush **out) {
    const struct push_webpush_config *c = &cfg->webpush;
    if (c->vapid_key_file == NULL) {
        log_info(MOD, "webpush disabled: no VAPID key file configured");
        return STATUS_NOT_FOUND;
    }
    if (!subject_valid(c->subject) || (c->urgency != NULL && !urgency_valid(c->urgency)) ||
        c->ttl_s < 0) {
        log_error(MOD, "webpush disabled: the subject must be mailto: or https:, the urgency "
                       "very-low, low, normal or high, the ttl not negative");
        return STATUS_BAD_REQUEST;
    }
    EVP_PKEY *key = NULL;
    uint8_t pub[PUSH_P256_POINT_LEN];
    int rc = push_jose_read_key_file(c->vapid_key_file, PUSH_JOSE_ES256, &key);
    if (rc == 0)
        rc = push_jose_ec_public(key, pub);
    if (rc != 0) {
        log_error(MOD, "webpush disabled: the VAPID key file is not a usable P-256 key (%s)",
                  status_str(rc));
        EVP_PKEY_free(key);
        return rc;
    }
    struct push_webpush *w = xcalloc(1, sizeof *w);
    w->engine = e;
    w->vapid = key;
    buf_init(&w->vapid_k);
    push_jose_b64url(pub, sizeof pub, &w->vapid_k);
    w->subject = xstrdup(c->subject);
    w->ttl_s = c->ttl_s > 0 ? c->ttl_s : 86400;
    w->urgency = xstrdup(c->urgency != NULL ? c->urgency : "high");
    for (const char *const *h = c->allow_hosts; h != NULL && *h != NULL; h++)
        w->n_allow++;
    w->allow = xcalloc(w->n_allow + 1, sizeof *w->allow);
    for (size_t i = 0; i < w->n_allow; i++)
        w->allow[i] = xstrdup(c->allow_hosts[i]);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->resolver, NULL, resolver_main, w) != 0) {
        log_error(MOD, "webpush disabled: cannot start the resolver thread");
        push_webpush_close(w);
        return STATUS_INTERNAL;
    }
    w->started = true;
    log_info(MOD, "webpush enabled (%zu allow-listed hosts)", w->n_allow);
    *out = w;
    return 0;
}

void push_webpush_close(struct push_webpush *w) {
    if (w == NULL)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->resolver, NULL);
    }
    push_xfer_free_list(w->todo_head);
    push_xfer_free_list(w->ready_head);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    for (size_t i = 0; i < w->n_allow; i++)
        free(w->allow[i]);
    free(w->allow);
    free(w->subject);
    free(w->urgency);
    buf_cleanup(&w->vapid_k);
    EVP_PKEY_free(w->vapid);
    free(w);
}

/* Parses x's endpoint into x->url and a struct target in x->aux and applies
 * the scheme and port rules. Returns PUSH_CAUSE_NONE or why it is refused. */
static enum push_cause parse_endpoint(struct push_webpush *w, struct push_xfer *x) {
    enum push_cause cause = PUSH_CAUSE_ADDRESS_REFUSED;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *url = NULL, *given = NULL;
    struct target *t = xcalloc(1, sizeof *t);
    x->aux = t;
    if (u == NULL || curl_url_set(u, CURLUPART_URL, x->job.to.webpush_endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        cause = PUSH_CAUSE_BAD_JOB;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
        goto out; /* https://user@host/ is no push service */
    bool has_port = curl_url_get(u, CURLUPART_PORT, &given, 0) == CURLUE_OK;
    size_t hl = strlen(host);
    if (hl >= sizeof t->host || strlen(port) >= sizeof t->port)
        goto out;
    if (host[0] == '[') { /* an IPv6 literal */
        memcpy(t->host, host + 1, hl - 2);
        t->host[hl - 2] = 0;
    } else {
        memcpy(t->host, host, hl + 1);
    }
    snprintf(t->port, sizeof t->port, "%s", port);
    snprintf(t->origin, sizeof t->origin, "%s://%s%s%s", scheme, host, has_port ? ":" : "",
             has_port ? given : "");
    uint8_t probe[16];
    t->literal =
        inet_pton(AF_INET, t->host, probe) == 1 || inet_pton(AF_INET6, t->host, probe) == 1;
    x->allowed_host = host_allowed(w, t->host);
    /* the port is judged after the address (resolve_one), so that a refusal
     * names the address class when that is what is wrong */
    bool https = strcmp(scheme, "https") == 0;
    if (!x->allowed_host && !https)
        goto out;
    if (!https && strcmp(scheme, "http") != 0)
        goto out;
    x->url = xstrdup(url);
    cause = PUSH_CAUSE_NONE;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(given);
    curl_free(user);
    curl_free(url);
    curl_url_cleanup(u);
    return cause;
}

void push_webpush_send(struct push_webpush *w, struct push_xfer *x) {
    enum push_cause cause = parse_endpoint(w, x);
    if (cause != PUSH_CAUSE_NONE) {
        if (cause == PUSH_CAUSE_ADDRESS_REFUSED)
            log_warn(MOD, "webpush endpoint refused: scheme or user info not allowed");
        push_xfer_finish(w->engine, x, PUSH_OUTCOME_PERMANENT_FAILURE, cause, 0);
        return;
    }
    pthread_mutex_lock(&w->lock);
    push_xfer_list_append(&w->todo_head, &w->todo_tail, x);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* libcurl is about to open a socket to `sa`: the last check, in case any
 * path bypassed the pinned addresses. */
static bool address_ok(struct push_xfer *x, const struct sockaddr *sa, socklen_t len) {
    if (x->allowed_host || push_ssrf_classify(sa, len) == PUSH_SSRF_PUBLIC)
        return true;
    x->early_cause = PUSH_CAUSE_ADDRESS_REFUSED;
    return false;
}

static void webpush_done(struct push_xfer *x, CURLcode rc) {
    struct push_webpush *w = x->owner;
    long status = push_xfer_reply_code(x);
    if (x->early_cause == PUSH_CAUSE_ADDRESS_REFUSED)
        push_xfer_finish(w->engine, x, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_ADDRESS_REFUSED,
                         0);
    else if (rc == CURLE_OK && (status == 404 || status == 410))
        push_xfer_finish(w->engine, x, PUSH_OUTCOME_TOKEN_DEAD, PUSH_CAUSE_TOKEN_DEAD, (int)status);
    else
        push_xfer_finish_http(w->engine, x, rc);
}

/* The encrypted body and VAPID header; then the transfer starts. */
static void start(struct push_webpush *w, struct push_xfer *x) {
    const struct target *t = x->aux;
    const struct push_text *text = push_content_text(x->job.kind);
    uint8_t ua[PUSH_P256_POINT_LEN], auth[PUSH_ECE_AUTH_LEN];
    size_t ua_len = 0, auth_len = 0;
    struct buf body, jwt;
    buf_init(&body);
    buf_init(&jwt);
    if (push_jose_b64url_decode(x->job.to.webpush_p256dh, ua, sizeof ua, &ua_len) != 0 ||
        push_jose_b64url_decode(x->job.to.webpush_auth, auth, sizeof auth, &auth_len) != 0 ||
        ua_len != sizeof ua || auth_len != sizeof auth) {
        push_xfer_finish(w->engine, x, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_BAD_JOB, 0);
        goto out;
    }
    json_t *payload = json_pack("{s:s,s:s,s:s}", "kind", push_kind_str(x->job.kind), "title",
                                PUSH_CONTENT_TITLE, "body", text->alert);
    char *plain = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    int rc = push_ece_encrypt(ua, auth, NULL, NULL, (const uint8_t *)plain, strlen(plain), &body);
    free(plain);
    if (rc == STATUS_BAD_REQUEST) { /* p256dh is not a point on the curve */
        push_xfer_finish(w->engine, x, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_BAD_JOB, 0);
        goto out;
    }
    json_t *header = json_pack("{s:s}", "typ", "JWT");
    json_t *claims = json_pack("{s:s,s:I,s:s}", "aud", t->origin, "exp",
                               (json_int_t)(clock_now() / 1000 + VAPID_LIFE_S), "sub", w->subject);
    if (rc == 0)
        rc = push_jose_jwt(w->vapid, PUSH_JOSE_ES256, header, claims, &jwt);
    json_decref(header);
    json_decref(claims);
    if (rc != 0 || push_xfer_easy(w->engine, x) != 0) {
        push_xfer_finish(w->engine, x, PUSH_OUTCOME_RETRY, PUSH_CAUSE_INTERNAL, 0);
        goto out;
    }
    CURL *c = x->easy;
    curl_easy_setopt(c, CURLOPT_URL, x->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, x->allowed_host ? "https,http" : "https");
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    if (x->list != NULL)
        curl_easy_setopt(c, CURLOPT_RESOLVE, x->list);
    x->address_ok = address_ok;
    push_xfer_header(x, "Authorization: vapid t=%s, k=%s", (const char *)jwt.data,
                     (const char *)w->vapid_k.data);
    push_xfer_header(x, "TTL: %d", w->ttl_s);
    push_xfer_header(x, "Urgency: %s", w->urgency);
    push_xfer_header(x, "Content-Encoding: aes128gcm");
    push_xfer_header(x, "Content-Type: application/octet-stream");
    push_xfer_set_body(x, body.data, body.len, false);
    push_xfer_add(w->engine, x, webpush_done, w);
out:
    sodium_memzero(auth, sizeof auth);
    buf_cleanup(&body);
    buf_cleanup(&jwt);
}

void push_webpush_poll(struct push_webpush *w) {
    pthread_mutex_lock(&w->lock);
    struct push_xfer *x = w->ready_head;
    w->ready_head = w->ready_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    while (x != NULL) {
        struct push_xfer *next = x->next;
        x->next = NULL;
        if (x->early_cause == PUSH_CAUSE_ADDRESS_REFUSED)
            push_xfer_finish(w->engine, x, PUSH_OUTCOME_PERMANENT_FAILURE, x->early_cause, 0);
        else if (x->early_cause != PUSH_CAUSE_NONE)
            push_xfer_finish(w->engine, x, PUSH_OUTCOME_RETRY, x->early_cause, 0);
        else
            start(w, x);
        x = next;
    }
}
