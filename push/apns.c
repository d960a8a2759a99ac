/*
 * push/apns.c: Apple Push Notification service (contract in apns.h).
 */
#include "push/apns.h"

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

#define MOD "push"
#define DEFAULT_BASE "https://api.push.apple.com"
#define DEFAULT_SANDBOX "https://api.sandbox.push.apple.com"

struct push_apns {
    struct push_engine *engine;
    EVP_PKEY *key;
    char *key_id, *team_id, *topic, *base_url, *sandbox_url;
    int64_t refresh_ms;
    struct buf token;     /* the current provider token; empty when none */
    int64_t token_made;   /* clock_monotonic_ms() when it was made */
    uint64_t tokens_made; /* for tests and logs */
};

/* Printable ASCII without spaces, for header values from the configuration. */
static bool header_safe(const char *s, size_t max) {
    size_t n = s != NULL ? strnlen(s, max + 1) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return false;
    }
    return true;
}

static bool base_url_valid(const char *u) {
    return header_safe(u, 512) && strncmp(u, "https://", 8) == 0;
}

int push_apns_open(const struct push_config *cfg, struct push_engine *e, struct push_apns **out) {
    const struct push_apns_config *c = &cfg->apns;
    if (c->key_file == NULL) {
        log_info(MOD, "apns disabled: no key file configured");
        return STATUS_NOT_FOUND;
    }
    const char *why = NULL;
    if (!header_safe(c->key_id, 64) || !header_safe(c->team_id, 64))
        why = "key_id and team_id are required";
    else if (!header_safe(c->topic, 256))
        why = "topic (the app's bundle id) is required";
    else if ((c->base_url != NULL && !base_url_valid(c->base_url)) ||
             (c->sandbox_url != NULL && !base_url_valid(c->sandbox_url)))
        why = "base urls must be https";
    if (why != NULL) {
        log_error(MOD, "apns disabled: %s", why);
        return STATUS_BAD_REQUEST;
    }
    EVP_PKEY *key = NULL;
    int rc = push_jose_read_key_file(c->key_file, PUSH_JOSE_ES256, &key);
    if (rc != 0) {
        log_error(MOD, "apns disabled: the key file is not a usable P-256 key (%s)",
                  status_str(rc));
        return rc;
    }
    struct push_apns *a = xcalloc(1, sizeof *a);
    a->engine = e;
    a->key = key;
    a->key_id = xstrdup(c->key_id);
    a->team_id = xstrdup(c->team_id);
    a->topic = xstrdup(c->topic);
    a->base_url = xstrdup(c->base_url != NULL ? c->base_url : DEFAULT_BASE);
    a->sandbox_url = xstrdup(c->sandbox_url != NULL ? c->sandbox_url : DEFAULT_SANDBOX);
    int refresh = c->token_refresh_s > 0 ? c->token_refresh_s : 2400;
    refresh = refresh < 1200 ? 1200 : refresh > 3600 ? 3600 : refresh;
    a->refresh_ms = (int64_t)refresh * 1000;
    buf_init(&a->token);
    log_info(MOD, "apns enabled");
    *out = a;
    return 0;
}

void push_apns_close(struct push_apns *a) {
    if (a == NULL)
        return;
    buf_wipe(&a->token);
    buf_cleanup(&a->token);
    EVP_PKEY_free(a->key);
    free(a->key_id);
    free(a->team_id);
    free(a->topic);
    free(a->base_url);
    free(a->sandbox_url);
    free(a);
}

/* The provider token, made again when missing or old. */
static int provider_token(struct push_apns *a) {
    int64_t now = clock_monotonic_ms();
    if (a->token.len > 0 && now - a->token_made < a->refresh_ms)
        return 0;
    buf_wipe(&a->token);
    json_t *header = json_pack("{s:s}", "kid", a->key_id);
    json_t *claims =
        json_pack("{s:s,s:I}", "iss", a->team_id, "iat", (json_int_t)(clock_now() / 1000));
    int rc = push_jose_jwt(a->key, PUSH_JOSE_ES256, header, claims, &a->token);
    json_decref(header);
    json_decref(claims);
    if (rc == 0) {
        a->token_made = now;
        a->tokens_made++;
    }
    return rc;
}

/* The "reason" of an APNs error body, or "" (into out[size]). */
static void apns_reason(const struct buf *body, char *out, size_t size) {
    out[0] = 0;
    json_t *j = body->len > 0 ? json_loadb((const char *)body->data, body->len, 0, NULL) : NULL;
    const char *r = json_string_value(json_object_get(j, "reason"));
    if (r != NULL)
        snprintf(out, size, "%s", r);
    json_decref(j);
}

static void apns_done(struct push_xfer *x, CURLcode rc) {
    struct push_apns *a = x->owner;
    long status = push_xfer_reply_code(x);
    char reason[64];
    if (rc != CURLE_OK) {
        push_xfer_finish_http(a->engine, x, rc);
        return;
    }
    apns_reason(&x->response, reason, sizeof reason);
    if (status == 410 || (status == 400 && strcmp(reason, "BadDeviceToken") == 0)) {
        push_xfer_finish(a->engine, x, PUSH_OUTCOME_TOKEN_DEAD, PUSH_CAUSE_TOKEN_DEAD, (int)status);
    } else if (status == 403 && (strcmp(reason, "ExpiredProviderToken") == 0 ||
                                 strcmp(reason, "InvalidProviderToken") == 0)) {
        log_warn(MOD, "apns refused the provider token (%s); making a new one", reason);
        buf_wipe(&a->token);
        push_xfer_finish(a->engine, x, PUSH_OUTCOME_RETRY, PUSH_CAUSE_AUTH, (int)status);
    } else {
        push_xfer_finish_http(a->engine, x, rc);
    }
}

void push_apns_send(struct push_apns *a, struct push_xfer *x) {
    const struct push_text *t = push_content_text(x->job.kind);
    char collapse[PUSH_CONTENT_ID_HEX];
    if (provider_token(a) != 0 || push_xfer_easy(a->engine, x) != 0) {
        push_xfer_finish(a->engine, x, PUSH_OUTCOME_RETRY, PUSH_CAUSE_INTERNAL, 0);
        return;
    }
    struct buf url;
    buf_init(&url);
    buf_printf(&url, "%s/3/device/%s", x->job.to.apns_sandbox ? a->sandbox_url : a->base_url,
               x->job.to.apns_token);
    x->url = (char *)buf_steal(&url, NULL);
    push_content_opaque_id(x->job.id, "collapse-id", collapse);
    json_t *body =
        json_pack("{s:{s:{s:s,s:s},s:s,s:i}}", "aps", "alert", "title", PUSH_CONTENT_TITLE, "body",
                  t->alert, "sound", "default", "mutable-content", 1);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    CURL *c = x->easy;
    curl_easy_setopt(c, CURLOPT_URL, x->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
    push_xfer_header(x, "authorization: bearer %s", (const char *)a->token.data);
    push_xfer_header(x, "apns-topic: %s", a->topic);
    push_xfer_header(x, "apns-push-type: alert");
    push_xfer_header(x, "apns-priority: 10");
    push_xfer_header(x, "apns-collapse-id: %s", collapse);
    push_xfer_header(x, "content-type: application/json");
    push_xfer_set_body(x, text, strlen(text), false);
    free(text);
    push_xfer_add(a->engine, x, apns_done, a);
}
