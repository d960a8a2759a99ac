/*
 * server/server.c: start-up, the main loop and clean shutdown of carechatd
 * (the sequence is in server.h).
 *
 * Threads: the main thread runs everything here and is the lws loop thread;
 * the journal's writer thread calls server_wake(); the signal thread waits in
 * sigwait() and only sets `stop` and wakes the loop. SIGTERM and SIGINT are
 * blocked in every thread (the mask is set before any thread starts), so they
 * are only ever consumed by sigwait().
 */
#include "server/server.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/id.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/handlers.h"
#include "server/maintenance.h"
#include "server/metrics.h"
#include "server/outbox.h"
#include "server/ws.h"
#include "push/push.h"
#include "storage/journal.h"
#include "storage/store.h"

/* How long a stop waits for WebSockets to take their close frames. */
#define DRAIN_DEADLINE_MS 2000

struct server {
    const struct server_config *cfg;
    struct store *store;
    struct journal *journal;
    struct metrics *metrics;
    struct handlers *handlers;
    struct maintenance *maintenance;
    struct push *push;
    struct outbox *outbox;
    struct ws *ws;
    struct id server_id;
    char server_id_hex[ID_HEX_LEN + 1];

    pthread_mutex_t wake_lock; /* guards ws (read by the writer thread) */

    pthread_t signal_thread;
    bool signal_thread_started;
    _Atomic int stop; /* the signal that asked us to stop, or 0 */
};

/* Writer thread (after each batch) or signal thread. */
static void server_wake(void *ctx) {
    struct server *s = ctx;
    pthread_mutex_lock(&s->wake_lock);
    if (s->ws)
        ws_wake(s->ws);
    pthread_mutex_unlock(&s->wake_lock);
}

/* Loop thread, from EVENT_WAIT_CANCELLED. */
static void server_on_wake(void *ctx) {
    struct server *s = ctx;
    journal_poll(s->journal);
    handlers_poll(s->handlers);
    outbox_poll(s->outbox);
}

/* Loop thread, once a second. */
static void server_on_tick(void *ctx) {
    struct server *s = ctx;
    handlers_tick(s->handlers);
    outbox_tick(s->outbox);
}

static void *signal_main(void *arg) {
    struct server *s = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    if (sigwait(&set, &sig) == 0) {
        atomic_store(&s->stop, sig);
        server_wake(s);
    }
    return NULL;
}

static int start_signal_thread(struct server *s) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc == 0)
        rc = pthread_create(&s->signal_thread, NULL, signal_main, s);
    if (rc != 0) {
        log_error("server", "cannot start the signal thread: %s", strerror(rc));
        return STATUS_IO;
    }
    s->signal_thread_started = true;
    return STATUS_OK;
}

static const char *body_name(unsigned number) {
    /* proto_body_name() reads only body_case. */
    Carechat__V1__Frame frame;
    carechat__v1__frame__init(&frame);
    frame.body_case = (Carechat__V1__Frame__BodyCase)number;
    const char *name = proto_body_name(&frame);
    return strcmp(name, "none") == 0 ? NULL : name;
}

static void render_health(void *ctx, struct buf *out) {
    struct server *s = ctx;
    buf_printf(out, "{\"status\":\"%s\",\"server_id\":\"%s\",\"applied_pos\":%" PRIu64 "}\n",
               atomic_load(&s->stop) ? "stopping" : "ok", s->server_id_hex,
               journal_applied_pos(s->journal));
}

static void render_metrics(void *ctx, struct buf *out) {
    struct server *s = ctx;
    struct journal_stats js;
    journal_get_stats(s->journal, &js);
    metrics_render(s->metrics, &js, store_size_bytes(s->store), out);
    struct metrics_retention mr;
    maintenance_get_stats(s->maintenance, &mr);
    metrics_render_retention(&mr, out);
    outbox_render_metrics(s->outbox, out);
    handlers_render_metrics(s->handlers, out);
}

/* The notifier with every channel the configuration names; a channel that is
 * named but cannot be used (a credential file missing, loose or not a key)
 * stops the start (STATUS_BAD_REQUEST: a configuration refusal). */
static int open_push(struct server *s) {
    const struct server_config *c = s->cfg;
    const char *allow[2] = {c->webpush_allow_host, NULL};
    struct push_config pc = {
        .wake = server_wake,
        .wake_ctx = s,
        .app_link = c->app_link,
        .ca_file = c->smtp_ca_file,
        .email = {.url = c->smtp_url,
                  .from = c->smtp_from,
                  .username = c->smtp_user,
                  .password_file = c->smtp_password_file},
        .apns = {.key_file = c->apns_key_file,
                 .key_id = c->apns_key_id,
                 .team_id = c->apns_team_id,
                 .topic = c->apns_topic,
                 .base_url = c->apns_url,
                 .sandbox_url = c->apns_sandbox_url},
        .fcm = {.service_account_file = c->fcm_service_account_file, .base_url = c->fcm_url},
        .webpush = {.vapid_key_file = c->vapid_key_file,
                    .subject = c->vapid_subject,
                    .allow_hosts = c->webpush_allow_host ? allow : NULL},
    };
    int rc = push_open(&pc, &s->push);
    if (rc != 0)
        return rc;
    const struct {
        const char *set;
        enum push_channel ch;
        const char *flag;
    } named[] = {
        {c->smtp_url, PUSH_CHANNEL_EMAIL, "--smtp-url"},
        {c->apns_key_file, PUSH_CHANNEL_APNS, "--apns-key-file"},
        {c->fcm_service_account_file, PUSH_CHANNEL_FCM, "--fcm-service-account-file"},
        {c->vapid_key_file, PUSH_CHANNEL_WEBPUSH, "--vapid-key-file"},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (named[i].set && !push_channel_enabled(s->push, named[i].ch)) {
            log_error("server",
                      "%s is configured but cannot be used (see above); refusing to "
                      "start",
                      named[i].flag);
            return STATUS_BAD_REQUEST;
        }
    }
    if (!c->smtp_url)
        log_info("server", "no mail relay (--smtp-url): no email notices%s",
                 c->dev_invite_codes ? "" : ", and invitations are refused");
    if (c->dev_invite_codes)
        log_warn("server", "--dev-invite-codes: invitation codes are answered to the inviter "
                           "(development and tests only)");
    return STATUS_OK;
}

/* The identity ServerInit (written by `carechatd init`) gave the database. A
 * database without it is incomplete: refused like a missing one. */
static int read_identity(struct server *s) {
    int64_t created_at;
    int rc = apply_read_server_info(s->store, &s->server_id, &created_at);
    if (rc == STATUS_NOT_FOUND)
        log_error("server", "the database in %s has no server identity: it is incomplete",
                  s->cfg->data_dir);
    return rc;
}

/* Start-up failures past the data directory's checks are no statement about
 * the data directory or the configuration: keep them from looking like one
 * (config_exit_status()). */
static int startup_failure(int rc) {
    return rc == STATUS_NOT_FOUND || rc == STATUS_CONFLICT || rc == STATUS_BAD_REQUEST ? STATUS_IO
                                                                                       : rc;
}

int server_open(const struct server_config *cfg, struct server **out) {
    struct server *s = xcalloc(1, sizeof *s);
    s->cfg = cfg;
    pthread_mutex_init(&s->wake_lock, NULL);
    int rc;

    if (cfg->clock_offset_ms != 0) {
        log_warn("server", "clock offset of %" PRId64 " ms (--clock-offset is for tests only)",
                 cfg->clock_offset_ms);
        clock_set_offset(cfg->clock_offset_ms);
    }
    if (config_keys_in_data(cfg))
        log_warn("server",
                 "the key directory or master key is inside the data directory %s: "
                 "a copy or backup of the data carries the keys a purge destroys; "
                 "production keeps them on another volume (README: keys and backups)",
                 cfg->data_dir);
    rc = start_signal_thread(s);
    if (rc != 0)
        goto fail;
    struct store_config sc;
    config_store(cfg, STORE_OPEN, &sc);
    rc = store_open(&sc, &s->store);
    if (rc == 0)
        rc = read_identity(s);
    if (rc != 0) {
        if (rc == STATUS_NOT_FOUND)
            log_error("server", "refusing to start without a complete database (see above); "
                                "`carechatd init` creates a new one, never over existing data");
        goto fail;
    }
    struct journal_config jc = {
        .store = s->store,
        .apply = apply_entry,
        .wake = server_wake,
        .wake_ctx = s,
    };
    rc = journal_open(&jc, &s->journal);
    if (rc != 0) {
        rc = startup_failure(rc);
        goto fail;
    }
    id_to_hex(&s->server_id, s->server_id_hex);
    log_info("server", "server %s at journal position %" PRIu64, s->server_id_hex,
             journal_applied_pos(s->journal));

    rc = metrics_new(&(struct metrics_config){.body_name = body_name}, &s->metrics);
    if (rc != 0) {
        rc = startup_failure(rc);
        goto fail;
    }
    rc = open_push(s);
    if (rc != 0) {
        rc = rc == STATUS_BAD_REQUEST ? rc : startup_failure(rc);
        goto fail;
    }
    struct handlers_config hc = {
        .config = cfg,
        .store = s->store,
        .journal = s->journal,
        .wake = server_wake,
        .wake_ctx = s,
        .mail = push_channel_enabled(s->push, PUSH_CHANNEL_EMAIL),
    };
    rc = handlers_new(&hc, &s->handlers);
    if (rc != 0) {
        log_error("server", "cannot start the request handlers: %s", status_str(rc));
        rc = startup_failure(rc);
        goto fail;
    }
    struct outbox_config oc = {
        .store = s->store,
        .journal = s->journal,
        .push = s->push,
        .online = handlers_device_online,
        .online_ctx = s->handlers,
        .email_delay_ms = (int64_t)cfg->notify_email_delay_s * 1000,
        .email_window_ms = (int64_t)cfg->notify_email_window_s * 1000,
        .push_delay_ms = (int64_t)cfg->notify_push_delay_s * 1000,
        .push_interval_ms = (int64_t)cfg->notify_push_interval_s * 1000,
        .push_jitter_ms = (int64_t)cfg->notify_push_jitter_s * 1000,
        .max_in_flight = cfg->outbox_in_flight,
    };
    rc = outbox_new(&oc, &s->outbox);
    if (rc == 0) {
        struct maintenance_config mc = {.config = cfg, .store = s->store, .journal = s->journal};
        rc = maintenance_start(&mc, &s->maintenance);
    }
    if (rc != 0) {
        rc = startup_failure(rc);
        goto fail;
    }
    struct ws_config wc = {
        .config = cfg,
        .metrics = s->metrics,
        .on_wake = server_on_wake,
        .on_tick = server_on_tick,
        .render_health = render_health,
        .render_metrics = render_metrics,
        .ctx = s,
    };
    handlers_conn_handler(s->handlers, &wc.handler);
    handlers_http_handler(s->handlers, &wc.http);
    struct ws *ws;
    rc = ws_open(&wc, &ws);
    if (rc != 0) {
        rc = startup_failure(rc);
        goto fail;
    }
    pthread_mutex_lock(&s->wake_lock);
    s->ws = ws;
    pthread_mutex_unlock(&s->wake_lock);
    *out = s;
    return STATUS_OK;

fail:
    server_close(s);
    return rc;
}

int server_run(struct server *s) {
    int rc = STATUS_OK;
    while (!atomic_load(&s->stop)) {
        rc = ws_service(s->ws);
        if (rc != 0) {
            log_error("server", "event loop failed");
            break;
        }
    }
    int sig = atomic_load(&s->stop);
    if (sig)
        log_info("server", "stopping on %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    handlers_draining(s->handlers);
    ws_shutdown_begin(s->ws);
    int64_t deadline = clock_monotonic_ms() + DRAIN_DEADLINE_MS;
    while (ws_open_count(s->ws) > 0 && clock_monotonic_ms() < deadline) {
        if (ws_service(s->ws) != 0)
            break;
    }
    handlers_stopping(s->handlers);
    return rc;
}

void server_close(struct server *s) {
    if (!s)
        return;
    /* The notifier first: no more results; the outbox's rows stay for the
     * next start. The maintenance stops proposing. Then the journal writes
     * what was appended and runs its callbacks (the outbox's among them)
     * while the listener still exists, then the listener, then RocksDB
     * (which needs the journal gone). */
    push_close(s->push);
    s->push = NULL;
    maintenance_stop(s->maintenance);
    journal_close(s->journal);
    s->journal = NULL;
    maintenance_free(s->maintenance);
    s->maintenance = NULL;
    pthread_mutex_lock(&s->wake_lock);
    struct ws *ws = s->ws;
    s->ws = NULL;
    pthread_mutex_unlock(&s->wake_lock);
    ws_close(ws);
    /* After the connections are gone: drops password work still queued. */
    handlers_free(s->handlers);
    outbox_free(s->outbox);
    store_close(s->store);
    metrics_free(s->metrics);
    if (s->signal_thread_started) {
        /* Still in sigwait() when the stop did not come from a signal. */
        if (!atomic_load(&s->stop))
            pthread_kill(s->signal_thread, SIGTERM);
        pthread_join(s->signal_thread, NULL);
    }
    pthread_mutex_destroy(&s->wake_lock);
    log_info("server", "stopped");
    free(s);
}
