/*
 * tests/push/toolcfg.c: a push_config from JSON (contract in toolcfg.h).
 */
#include "tests/push/toolcfg.h"

static const char *str(json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static long num(json_t *o, const char *key) {
    return (long)json_integer_value(json_object_get(o, key));
}

void toolcfg_fill(json_t *c, struct push_config *cfg, const char **hosts) {
    json_t *e = json_object_get(c, "email"), *a = json_object_get(c, "apns"),
           *f = json_object_get(c, "fcm"), *w = json_object_get(c, "webpush");
    cfg->app_link = str(c, "app_link");
    cfg->ca_file = str(c, "ca_file");
    cfg->email = (struct push_email_config){
        .url = str(e, "url"),
        .from = str(e, "from"),
        .username = str(e, "username"),
        .password_file = str(e, "password_file"),
        .message_id_domain = str(e, "message_id_domain"),
    };
    cfg->apns = (struct push_apns_config){
        .key_file = str(a, "key_file"),
        .key_id = str(a, "key_id"),
        .team_id = str(a, "team_id"),
        .topic = str(a, "topic"),
        .base_url = str(a, "base_url"),
        .sandbox_url = str(a, "sandbox_url"),
    };
    cfg->fcm = (struct push_fcm_config){
        .service_account_file = str(f, "service_account_file"),
        .base_url = str(f, "base_url"),
    };
    size_t i, n = 0;
    json_t *h;
    json_array_foreach(json_object_get(w, "allow_hosts"), i, h) {
        if (n < TOOLCFG_MAX_HOSTS)
            hosts[n++] = json_string_value(h);
    }
    hosts[n] = NULL;
    cfg->webpush = (struct push_webpush_config){
        .vapid_key_file = str(w, "vapid_key_file"),
        .subject = str(w, "subject"),
        .ttl_s = (int)num(w, "ttl_s"),
        .urgency = str(w, "urgency"),
        .allow_hosts = hosts,
    };
    cfg->max_in_flight = (size_t)num(c, "max_in_flight");
    cfg->total_timeout_ms = num(c, "total_timeout_ms");
    cfg->connect_timeout_ms = num(c, "connect_timeout_ms");
    cfg->max_response_bytes = (size_t)num(c, "max_response_bytes");
}
