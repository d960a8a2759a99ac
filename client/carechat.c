/*
 * client/carechat.c: the libcarechat handle (carechat.h): carechat_open()
 * checks the server URL and reads the profile, carechat_close() releases the
 * connection and the state every module of the library hangs off the handle.
 * The calls themselves live in accounts.c, messaging.c, channels.c, admin.c
 * and audit.c, over the core (client/core.h, which draws the layers); this
 * file is the top layer, the only one that knows every module's state.
 * Runs on the caller's thread only.
 */
#include "client/carechat.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "client/backup_sync.h"
#include "client/core.h"
#include "client/messaging.h"
#include "client/profile.h"
#include "client/transport.h"

#define DEFAULT_LABEL "carechat CLI"

/* Plaintext ws:// carries passwords and tokens: only to this machine. */
static bool is_loopback(const char *host) {
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

int carechat_open(const struct carechat_config *cfg, struct carechat **out) {
    if (cfg->profile_dir == NULL || cfg->profile_dir[0] == '\0')
        return STATUS_BAD_REQUEST;
    struct profile *p = NULL;
    int rc = profile_load(cfg->profile_dir, &p);
    if (rc == STATUS_NOT_FOUND)
        rc = profile_new(&p);
    if (rc != 0)
        return rc;
    /* The server and CA given, else those the profile remembers. */
    const char *url = cfg->server_url != NULL    ? cfg->server_url
                      : p->server_url[0] != '\0' ? p->server_url
                                                 : CARECHAT_DEFAULT_URL;
    const char *ca_file = cfg->ca_file != NULL                               ? cfg->ca_file
                          : cfg->server_url == NULL && p->ca_file[0] != '\0' ? p->ca_file
                                                                             : NULL;
    struct transport_url parsed;
    if (transport_parse_url(url, &parsed) != 0 || (!parsed.tls && !is_loopback(parsed.host))) {
        profile_free(p);
        return STATUS_BAD_REQUEST;
    }
    struct carechat *c = xcalloc(1, sizeof *c);
    c->server_url = xstrdup(url);
    c->profile_dir = xstrdup(cfg->profile_dir);
    c->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
    c->device_label = xstrdup(cfg->device_label != NULL ? cfg->device_label : DEFAULT_LABEL);
    c->stay_signed_in = cfg->stay_signed_in;
    c->connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : CARECHAT_DEFAULT_CONNECT_TIMEOUT_MS;
    c->request_timeout_ms =
        cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : CARECHAT_DEFAULT_REQUEST_TIMEOUT_MS;
    c->profile = p;
    *out = c;
    return 0;
}

void carechat_close(struct carechat *c) {
    if (c == NULL)
        return;
    cc_disconnect(c, 1000);
    cc_msg_free(c->msg);
    cc_bk_free(c->bk);
    pins_free(c->pins);
    profile_free(c->profile);
    free(c->server_url);
    free(c->profile_dir);
    free(c->ca_file);
    free(c->device_label);
    free(c);
}