/*
 * push/fcm.c: Firebase Cloud Messaging HTTP v1 (contract in fcm.h).
 *
 * Token state:
 *
 *   NONE --job--> FETCHING --200 + token--> VALID --expiry - 5 min--> NONE
 *                    |                        |
 *                    +--failure--> NONE       +--401 on a send--> NONE
 *
 * Jobs that arrive while the state is not VALID wait on `parked` and are sent
 * (or failed) together when the token request ends.
 */
#include "push/fcm.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "push/content.h"
#include "push/jose.h"
#include "push/secret.h"

#define MOD "push"
#define MAX_ACCOUNT_FILE 65536
#define MAX_TOKEN 4096
#define SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define DEFAULT_BASE "https://fcm.googleapis.com"
#define EARLY_MS (5 * 60 * 1000)

struct push_fcm {
    struct push_engine *engine;
    EVP_PKEY *key;
    char *client_email, *token_uri, *send_url;
    struct buf token;      /* the access token; empty when none */
    int64_t token_expires; /* clock_monotonic_ms() when it must be renewed */
    bool fetching;
    struct push_xfer *parked_head, *parked_tail;
};

static bool url_ok(const char *u) {
    if (u == NULL || strlen(u) > 512 || strpbrk(u, "\r\n \"") != NULL)
        return false;
    return strncmp(u, "https://", 8) == 0;
}

/* Project ids are lower-case letters, digits and hyphens. */
static bool project_ok(const char *p) {
    size_t n = p != NULL ? strlen(p) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
            return false;
    }
    return true;
}

int push_fcm_open(const struct push_config *cfg, struct push_engine *e, struct push_fcm **out) {
    const struct push_fcm_config *c = &cfg->fcm;
    if (c->service_account_file == NULL) {
        log_info(MOD, "fcm disabled: no service account file configured");
        return STATUS_NOT_FOUND;
    }
    const char *base = c->base_url != NULL ? c->base_url : DEFAULT_BASE;
    struct buf text;
    buf_init(&text);
    json_t *j = NULL;
    EVP_PKEY *key = NULL;
    const char *why = NULL;
    int rc = push_secret_read(c->service_account_file, MAX_ACCOUNT_FILE, &text);
    if (rc != 0) {
        why = "the service account file cannot be read";
        goto fail;
    }
    rc = STATUS_BAD_REQUEST;
    j = json_loadb((const char *)text.data, text.len, 0, NULL);
    const char *email = json_string_value(json_object_get(j, "client_email"));
    const char *pem = json_string_value(json_object_get(j, "private_key"));
    const char *token_uri = json_string_value(json_object_get(j, "token_uri"));
    const char *project = json_string_value(json_object_get(j, "project_id"));
    if (j == NULL || email == NULL || pem == NULL || token_uri == NULL || project == NULL) {
        why = "the service account file lacks client_email, private_key, token_uri or "
              "project_id";
        goto fail;
    }
    if (!url_ok(token_uri) || !url_ok(base) || !project_ok(project) || strlen(email) > 256) {
        why = "bad token_uri, base url or project_id";
        goto fail;
    }
    rc = push_jose_load_key(pem, strlen(pem), PUSH_JOSE_RS256, &key);
    if (rc != 0) {
        why = "private_key is not an RSA key of 2048 bits or more";
        goto fail;
    }
    struct push_fcm *f = xcalloc(1, sizeof *f);
    f->engine = e;
    f->key = key;
    f->client_email = xstrdup(email);
    f->token_uri = xstrdup(token_uri);
    struct buf url;
    buf_init(&url);
    buf_printf(&url, "%s/v1/projects/%s/messages:send", base, project);
    f->send_url = (char *)buf_steal(&url, NULL);
    buf_init(&f->token);
    /* the private key's text is in the JSON tree: wipe before freeing */
    sodium_memzero((char *)pem, strlen(pem));
    json_decref(j);
    buf_wipe(&text);
    buf_cleanup(&text);
    log_info(MOD, "fcm enabled");
    *out = f;
    return 0;
fail:
    log_error(MOD, "fcm disabled: %s", why);
    if (j != NULL) {
        const char *p = json_string_value(json_object_get(j, "private_key"));
        if (p != NULL)
            sodium_memzero((char *)p, strlen(p));
    }
    json_decref(j);
    buf_wipe(&text);
    buf_cleanup(&text);
    return rc;
}

void push_fcm_close(struct push_fcm *f) {
    if (f == NULL)
        return;
    push_xfer_free_list(f->parked_head);
    buf_wipe(&f->token);
    buf_cleanup(&f->token);
    EVP_PKEY_free(f->key);
    free(f->client_email);
    free(f->token_uri);
    free(f->send_url);
    free(f);
}

static bool token_valid(const struct push_fcm *f) {
    return f->token.len > 0 && clock_monotonic_ms() < f->token_expires;
}

/* True when an FCM error body names UNREGISTERED (error.status or a detail's
 * errorCode). */
static bool unregistered(const struct buf *body) {
    bool dead = false;
    json_t *j = body->len > 0 ? json_loadb((const char *)body->data, body->len, 0, NULL) : NULL;
    json_t *err = json_object_get(j, "error");
    const char *status = json_string_value(json_object_get(err, "status"));
    if (status != NULL && strcmp(status, "UNREGISTERED") == 0)
        dead = true;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(err, "details"), i, d) {
        const char *code = json_string_value(json_object_get(d, "errorCode"));
        if (code != NULL && strcmp(code, "UNREGISTERED") == 0)
            dead = true;
    }
    json_decref(j);
    return dead;
}

static void send_done(struct push_xfer *x, CURLcode rc) {
    struct push_fcm *f = x->owner;
    long status = push_xfer_reply_code(x);
    if (rc == CURLE_OK && (status == 404 || (status >= 400 && unregistered(&x->response)))) {
        push_xfer_finish(f->engine, x, PUSH_OUTCOME_TOKEN_DEAD, PUSH_CAUSE_TOKEN_DEAD, (int)status);
    } else if (rc == CURLE_OK && status == 401) {
        log_warn(MOD, "fcm refused the access token; requesting a new one");
        buf_wipe(&f->token);
        push_xfer_finish(f->engine, x, PUSH_OUTCOME_RETRY, PUSH_CAUSE_AUTH, (int)status);
    } else {
        push_xfer_finish_http(f->engine, x, rc);
    }
}

static void start_send(struct push_fcm *f, struct push_xfer *x) {
    const struct push_text *t = push_content_text(x->job.kind);
    if (push_xfer_easy(f->engine, x) != 0) {
        push_xfer_finish(f->engine, x, PUSH_OUTCOME_RETRY, PUSH_CAUSE_INTERNAL, 0);
        return;
    }
    json_t *body =
        json_pack("{s:{s:s,s:{s:s,s:s,s:s},s:{s:s}}}", "message", "token", x->job.to.fcm_token,
                  "data", "kind", push_kind_str(x->job.kind), "title", PUSH_CONTENT_TITLE, "body",
                  t->alert, "android", "priority", "high");
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    curl_easy_setopt(x->easy, CURLOPT_URL, f->send_url);
    curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "https");
    push_xfer_header(x, "Authorization: Bearer %s", (const char *)f->token.data);
    push_xfer_header(x, "Content-Type: application/json; charset=UTF-8");
    push_xfer_set_body(x, text, strlen(text), false);
    free(text);
    push_xfer_add(f->engine, x, send_done, f);
}

/* Parses the token answer into f->token. Returns 0 or STATUS_BAD_REQUEST. */
static int take_token(struct push_fcm *f, const struct buf *body) {
    int rc = STATUS_BAD_REQUEST;
    json_t *j = json_loadb((const char *)body->data, body->len, 0, NULL);
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    json_t *exp = json_object_get(j, "expires_in");
    size_t n = tok != NULL ? strlen(tok) : 0;
    if (n > 0 && n <= MAX_TOKEN && strpbrk(tok, "\r\n ") == NULL && json_is_integer(exp) &&
        json_integer_value(exp) > 0) {
        json_int_t secs = json_integer_value(exp);
        int64_t life = secs > 86400 ? 86400000 : (int64_t)secs * 1000;
        buf_wipe(&f->token);
        buf_append(&f->token, tok, n);
        /* renew 5 minutes early, or halfway through a short life */
        f->token_expires =
            clock_monotonic_ms() + (life > 2 * EARLY_MS ? life - EARLY_MS : life / 2);
        sodium_memzero((char *)tok, n);
        rc = 0;
    }
    json_decref(j);
    return rc;
}

static void token_done(struct push_xfer *t, CURLcode rc) {
    struct push_fcm *f = t->owner;
    long status = push_xfer_reply_code(t);
    enum push_cause cause = PUSH_CAUSE_AUTH;
    if (rc != CURLE_OK)
        cause = push_xfer_curl_cause(t, rc);
    else if (status == 200 && take_token(f, &t->response) == 0)
        cause = PUSH_CAUSE_NONE;
    if (cause != PUSH_CAUSE_NONE)
        log_error(MOD, "fcm token request failed (HTTP %ld, %s)", status, push_cause_str(cause));
    push_xfer_free(t);
    f->fetching = false;
    struct push_xfer *x = f->parked_head;
    f->parked_head = f->parked_tail = NULL;
    while (x != NULL) {
        struct push_xfer *next = x->next;
        x->next = NULL;
        if (cause == PUSH_CAUSE_NONE)
            start_send(f, x);
        else
            push_xfer_finish(f->engine, x, PUSH_OUTCOME_RETRY, cause, (int)status);
        x = next;
    }
}

/* Starts the token request. Returns 0 or STATUS_INTERNAL. */
static int fetch_token(struct push_fcm *f) {
    struct push_xfer *t = push_xfer_new_job_less(f);
    struct buf body;
    buf_init(&body);
    int64_t now = clock_now() / 1000;
    json_t *header = json_pack("{s:s}", "typ", "JWT");
    json_t *claims =
        json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", f->client_email, "scope", SCOPE, "aud",
                  f->token_uri, "iat", (json_int_t)now, "exp", (json_int_t)(now + 3600));
    buf_printf(&body, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
                      "&assertion=");
    /* a JWT is base64url and dots: nothing to escape in a form value */
    int rc = push_jose_jwt(f->key, PUSH_JOSE_RS256, header, claims, &body);
    json_decref(header);
    json_decref(claims);
    if (rc != 0 || push_xfer_easy(f->engine, t) != 0) {
        buf_wipe(&body);
        buf_cleanup(&body);
        push_xfer_free(t);
        return STATUS_INTERNAL;
    }
    curl_easy_setopt(t->easy, CURLOPT_URL, f->token_uri);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "https");
    push_xfer_header(t, "Content-Type: application/x-www-form-urlencoded");
    push_xfer_set_body(t, body.data, body.len, false);
    buf_wipe(&body);
    buf_cleanup(&body);
    push_xfer_add(f->engine, t, token_done, f);
    f->fetching = true;
    return 0;
}

void push_fcm_send(struct push_fcm *f, struct push_xfer *x) {
    if (token_valid(f)) {
        start_send(f, x);
        return;
    }
    if (!f->fetching && fetch_token(f) != 0) {
        push_xfer_finish(f->engine, x, PUSH_OUTCOME_RETRY, PUSH_CAUSE_INTERNAL, 0);
        return;
    }
    push_xfer_list_append(&f->parked_head, &f->parked_tail, x);
}
