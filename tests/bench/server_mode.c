/*
 * tests/bench/server_mode.c: carechat-bench --mode server (what it measures,
 * in which order, and its output: server_mode.h).
 *
 * Accounts. The sysadmin invites admins (25 invitations each: the server lets
 * one account invite 30 an hour), the admins invite max(fanout, 2 * pairs)
 * providers and one patient, and each registers through libcarechat (one
 * device, its profile in its own directory). Provider 2s sends to provider
 * 2s + 1 in their direct conversation (pair s); provider 0 also creates the
 * care-team channel about the patient and adds providers 1 .. fanout - 1, so
 * the channel's receiving members are those and the patient. After setup the
 * libcarechat handles are closed; the bench reads each profile (device id,
 * identity and encryption keys, session token) and speaks the protocol itself.
 *
 * Envelopes. Every Send of every phase is sealed before any phase starts, on
 * as many threads as there are CPUs: envelope_seal() (client/envelope.h) of
 * one MessageContent of `size` text bytes, wrapped for every device of every
 * member (the sender's own included, as libcarechat does), signed by the
 * sender's identity key, with a client_msg_id that is the batch's tag (4
 * bytes), the message's index in the batch (4 bytes) and 8 random bytes, and
 * the per-(conversation, sender) counter counting up across phases. Each is
 * encoded as a Frame whose request_id is RID_SEND + index and framed (masked)
 * for the WebSocket, so sending one while measuring is one copy into the
 * socket's queue. A delivery names its message by the client_msg_id.
 *
 * Connections (struct peer), on the driver of wire.h:
 *
 *   CONNECTING --open: Authenticate(token, device)--> AUTH --OK, receiving: Sync--> SYNC
 *                                                      |                           |
 *                                                      | OK, idle                  | QueueEmpty
 *                                                      v                           v
 *                                                     IDLE                        LIVE
 *   any state --closed, refused, SessionRevoked, ReplacedElsewhere--> the run fails
 *
 * A receiving peer answers every Delivery and QueueEmpty OK at once and acks
 * (cumulatively) every ACK_EVERY deliveries, after the replay and at the end
 * of each phase, so no inbox grows. One receiving peer per account (one
 * device, one Sync); the idle peers authenticate with the same tokens and
 * never sync, which PROTOCOL.md allows ("one receiving connection per
 * device"; connections that never sync are left alone).
 *
 * Every wait runs the driver in rounds of at most 10 ms and ends at the
 * run's deadline or at the first failure.
 *
 * Thread: the main thread; setup and sealing use worker threads that share
 * nothing but read-only keys and their own slots of the arrays.
 */
#define _GNU_SOURCE
#include "tests/bench/server_mode.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/carechat.h"
#include "client/envelope.h"
#include "client/profile.h"
#include "protocol/proto.h"
#include "tests/bench/accounts.h"
#include "tests/bench/target.h"
#include "tests/bench/wire.h"

#define SETUP_PARALLEL 8
#define MAX_SEAL_THREADS 8
#define ACK_EVERY 64
#define CONNECT_PARALLEL 64 /* connections being set up at once */
#define ROUND_MS 10
#define SETTLE_MS 500
#define ACK_WAIT_MS 10000
#define FDS_SPARE 256

/* Request ids of the bench's requests on a connection. */
#define RID_AUTH 1u
#define RID_SYNC 2u
#define RID_SEND (1ull << 32) /* + the message's index in its batch */
#define RID_ACK (1ull << 48)  /* + a counter */

/* Batch tags (the first 4 bytes of client_msg_id). */
#define TAG_SATURATION 0x62310001u
#define TAG_FANOUT 0x62310002u
#define TAG_PACED 0x62310003u
#define TAG_PACED_IDLE 0x62310004u

/* What the bench starts carechatd with: its limits raised so that what is
 * measured is the server's work, not its throttles. */
static const char *const server_args[] = {
    "--send-burst",       "1000000", "--send-window", "1",       "--login-burst-per-ip", "1000000",
    "--max-conns-per-ip", "1000000", "--inbox-max",   "1000000", "--inbox-sender-max",   "1000000",
    "--read-burst",       "1000000",
};
#define N_SERVER_ARGS (sizeof server_args / sizeof server_args[0])

static const char *const wire_status[] = {
    "OK",       "BAD_REQUEST", "UNAUTHENTICATED", "FORBIDDEN",   "NOT_FOUND",
    "CONFLICT", "TOO_LARGE",   "RATE_LIMITED",    "UNAVAILABLE", "INTERNAL",
};

struct peer;

/* One registered account (one device). */
struct account {
    int index;
    bool patient;
    char dir[PATH_MAX];
    char email[64];
    char code[CARECHAT_MAX_CODE + 1];
    struct carechat *h; /* during setup only */
    struct id account_id;
    struct profile *prof; /* after setup: device id, keys, session token */
    struct envelope_identity *identity;
    struct envelope_enc_key *enc;
    struct peer *live; /* its receiving connection */
    int setup_rc;
    char setup_error[256];
};

/* A conversation the bench sends to; its first member is the one sender. */
struct conv {
    struct id id;
    struct account **members;
    size_t n;
    struct envelope_recipient *to; /* every member's device */
    uint64_t next_counter;         /* Envelope.counter of the sender's next message */
};

/* The Sends of one phase, sealed and framed ahead: message i in conversation
 * convs[i % n_convs], from its first member. */
struct batch {
    uint32_t tag;
    size_t n;
    struct conv **convs;
    size_t n_convs;
    uint64_t *first_counter; /* per conversation */
    struct buf *frame;
    int64_t *sent_us, *answered_us, *delivered_us; /* 0: not yet */
    size_t answered, delivered, deliveries;
    int64_t last_answer_us, last_delivery_us;
};

/* A sender keeping up to `window` Sends of the batch in flight: indexes
 * next, next + step, ... below the batch's n. */
struct sender {
    struct peer *p;
    size_t next, step;
    int inflight, window;
};

enum peer_state { PEER_CONNECTING, PEER_AUTH, PEER_SYNC, PEER_LIVE, PEER_IDLE, PEER_CLOSED };

struct peer {
    struct run *r;
    struct account *acct;
    struct wire_conn *conn; /* NULL once closed */
    bool receiving;
    enum peer_state state;
    uint8_t cursor[PROFILE_MAX_CURSOR]; /* of the last delivery */
    size_t cursor_len;
    int since_ack;
    int acks_in_flight;
    uint64_t next_ack;
    struct sender *sender; /* while it sends in a phase */
};

struct run {
    const struct server_mode_options *o;
    int64_t deadline_ms;
    struct target *target;
    pid_t pid;
    int port;
    int server_cpu, driver_cpu; /* -1: not pinned */
    struct account *accts;
    size_t n_accts, n_providers;
    struct conv *pair_conv; /* o->pairs */
    struct conv channel;
    struct buf content; /* the encoded MessageContent every message carries */
    struct buf scratch; /* frames the driver encodes as it goes */
    struct wire *wire;
    struct peer *idle;   /* o->idle */
    struct batch *batch; /* the running phase's; NULL between phases */
    size_t live, idle_ready, connecting;
    size_t stray; /* deliveries of no running batch */
    bool closing;
    bool failed;
    char error[512];
};

/* One reading before or after a phase. */
struct probe {
    int64_t t_us;
    double server_cpu_s, driver_cpu_s;
    struct target_journal journal;
};

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double driver_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct run *r, const char *fmt, ...) {
    if (r->failed)
        return;
    r->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

static const char *status_name(int wire) {
    return wire >= 0 && wire < (int)(sizeof wire_status / sizeof wire_status[0]) ? wire_status[wire]
                                                                                 : "?";
}

/* ---- setup: accounts and conversations through libcarechat --------------------------------- */

/* Invites the providers: the sysadmin invites admins, the admins invite the
 * providers. (The patient comes later: a provider makes channels only about
 * its own patients.) */
static int invite_all(struct run *r, const char *tmp) {
    const struct target_info *ti = target_info(r->target);
    const struct id run = id_new();
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s/p-root", PATH_MAX - 16, tmp);
    struct carechat *root = bench_open(ti->url, dir);
    struct carechat *admin = NULL;
    int rc = root ? carechat_login(root, ti->admin_email, ti->admin_password) : STATUS_IO;
    if (rc != 0) {
        fprintf(stderr, "carechat-bench: sysadmin login: %s\n", root ? carechat_error(root) : "");
        goto out;
    }
    for (size_t k = 0; k < r->n_providers; k++) {
        struct account *a = &r->accts[k];
        if ((rc = bench_inviter(root, ti->url, tmp, &run, k, &admin)) != 0)
            goto out;
        snprintf(a->email, sizeof a->email, "bench-provider%d-%02x%02x%02x@clinic.example",
                 a->index, run.b[0], run.b[1], run.b[2]);
        rc = carechat_invite(admin, a->email, CARECHAT_ROLE_PROVIDER, a->code, NULL);
        if (rc != 0) {
            fprintf(stderr, "carechat-bench: invite: %s\n", carechat_error(admin));
            goto out;
        }
    }
    struct account *patient = &r->accts[r->n_providers];
    snprintf(patient->email, sizeof patient->email, "bench-patient-%02x%02x%02x@clinic.example",
             run.b[0], run.b[1], run.b[2]);
out:
    carechat_close(admin);
    carechat_close(root);
    return rc;
}

/* Registers one account and keeps its handle open. Runs on a setup thread. */
static void *register_main(void *arg) {
    struct account *a = arg;
    char name[32];
    snprintf(name, sizeof name, "%s %d", a->patient ? "Patient" : "Provider", a->index);
    a->setup_rc = carechat_register(a->h, a->code, a->email, BENCH_PASSWORD, BENCH_BIRTHDATE, name);
    struct carechat_session_info info;
    if (a->setup_rc == 0)
        a->setup_rc = carechat_session(a->h, &info);
    if (a->setup_rc == 0)
        a->account_id = info.account_id;
    else
        snprintf(a->setup_error, sizeof a->setup_error, "register: %s", carechat_error(a->h));
    return NULL;
}

/* Registers the providers, then provider 0 invites the patient, who
 * registers. */
static int register_all(struct run *r) {
    const char *url = target_info(r->target)->url;
    for (size_t i = 0; i < r->n_accts; i++)
        if (!(r->accts[i].h = bench_open(url, r->accts[i].dir)))
            return STATUS_IO;
    /* In waves: a registration must authenticate within the server's
     * --auth-timeout, and password hashing is serialised there. */
    pthread_t th[SETUP_PARALLEL];
    for (size_t base = 0; base < r->n_providers; base += SETUP_PARALLEL) {
        size_t end =
            base + SETUP_PARALLEL < r->n_providers ? base + SETUP_PARALLEL : r->n_providers;
        for (size_t i = base; i < end; i++)
            if (pthread_create(&th[i - base], NULL, register_main, &r->accts[i]) != 0)
                abort();
        for (size_t i = base; i < end; i++)
            pthread_join(th[i - base], NULL);
    }
    struct account *owner = &r->accts[0], *patient = &r->accts[r->n_providers];
    if (owner->setup_rc == 0 && carechat_invite(owner->h, patient->email, CARECHAT_ROLE_PATIENT,
                                                patient->code, NULL) != 0) {
        fprintf(stderr, "carechat-bench: invite the patient: %s\n", carechat_error(owner->h));
        return STATUS_IO;
    }
    register_main(patient);
    for (size_t i = 0; i < r->n_accts; i++) {
        if (r->accts[i].setup_rc != 0) {
            fprintf(stderr, "carechat-bench: account %zu: %s\n", i, r->accts[i].setup_error);
            return r->accts[i].setup_rc;
        }
    }
    return 0;
}

static void conv_init(struct conv *c, const struct id *id, size_t n) {
    c->id = *id;
    c->members = xcalloc(n, sizeof *c->members);
    c->n = 0;
    c->next_counter = 1;
}

/* The pairs' direct conversations and the channel. */
static int open_conversations(struct run *r) {
    const struct server_mode_options *o = r->o;
    struct carechat_conversation cv;
    for (int s = 0; s < o->pairs; s++) {
        struct account *from = &r->accts[2 * s], *to = &r->accts[2 * s + 1];
        if (carechat_open_direct_id(from->h, &to->account_id, &cv) != 0) {
            fprintf(stderr, "carechat-bench: open direct: %s\n", carechat_error(from->h));
            return STATUS_IO;
        }
        conv_init(&r->pair_conv[s], &cv.conversation_id, 2);
        r->pair_conv[s].members[r->pair_conv[s].n++] = from;
        r->pair_conv[s].members[r->pair_conv[s].n++] = to;
        carechat_conversation_cleanup(&cv);
    }
    struct account *owner = &r->accts[0], *patient = &r->accts[r->n_accts - 1];
    if (carechat_channel_create(owner->h, patient->email, "Bench channel", &cv) != 0) {
        fprintf(stderr, "carechat-bench: create channel: %s\n", carechat_error(owner->h));
        return STATUS_IO;
    }
    conv_init(&r->channel, &cv.conversation_id, (size_t)o->fanout + 1);
    carechat_conversation_cleanup(&cv);
    r->channel.members[r->channel.n++] = owner;
    r->channel.members[r->channel.n++] = patient;
    for (int k = 1; k < o->fanout; k++) {
        if (carechat_channel_add(owner->h, &r->channel.id, &r->accts[k].account_id) != 0) {
            fprintf(stderr, "carechat-bench: add member: %s\n", carechat_error(owner->h));
            return STATUS_IO;
        }
        r->channel.members[r->channel.n++] = &r->accts[k];
    }
    return 0;
}

/* Closes the handles and takes each device's keys and token from its profile. */
static int load_devices(struct run *r) {
    for (size_t i = 0; i < r->n_accts; i++) {
        struct account *a = &r->accts[i];
        carechat_close(a->h);
        a->h = NULL;
    }
    for (size_t i = 0; i < r->n_accts; i++) {
        struct account *a = &r->accts[i];
        int rc = profile_load(a->dir, &a->prof);
        if (rc == 0 && (!a->prof->has_keys || !a->prof->has_device || !a->prof->has_session))
            rc = STATUS_CORRUPT;
        if (rc == 0)
            rc = envelope_identity_import(a->prof->identity_seed, &a->identity);
        if (rc == 0)
            rc = envelope_enc_key_import(
                a->identity, &a->prof->device_id, a->prof->encryption_key_id,
                a->prof->encryption_key_expires_at, a->prof->encryption_secret, &a->enc);
        if (rc != 0) {
            fprintf(stderr, "carechat-bench: profile %s: %s\n", a->dir, status_str(rc));
            return rc;
        }
    }
    struct conv *convs[SERVER_MODE_MAX_PAIRS + 1];
    size_t n = 0;
    for (int s = 0; s < r->o->pairs; s++)
        convs[n++] = &r->pair_conv[s];
    convs[n++] = &r->channel;
    for (size_t c = 0; c < n; c++) {
        struct conv *cv = convs[c];
        cv->to = xcalloc(cv->n, sizeof *cv->to);
        for (size_t m = 0; m < cv->n; m++) {
            cv->to[m].key = envelope_enc_key_public(cv->members[m]->enc);
            envelope_identity_public(cv->members[m]->identity, cv->to[m].identity_pk);
        }
    }
    return 0;
}

/* ---- sealing ahead ------------------------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Seals message `i` of `b` and stores its framed Send in b->frame[i]. */
static int seal_one(const struct run *r, struct batch *b, size_t i) {
    const struct conv *cv = b->convs[i % b->n_convs];
    const struct account *from = cv->members[0];
    struct envelope_header h = {
        .conversation_id = cv->id,
        .sender_device_id = from->prof->device_id,
        .urgent = false,
        .sent_at = clock_now(),
        .counter = b->first_counter[i % b->n_convs] + i / b->n_convs,
    };
    rand_bytes(h.client_msg_id.b, ID_LEN);
    put_be32(h.client_msg_id.b, b->tag);
    put_be32(h.client_msg_id.b + 4, (uint32_t)i);
    struct envelope env;
    int rc =
        envelope_seal(&h, r->content.data, r->content.len, cv->to, cv->n, from->identity, &env);
    if (rc != 0)
        return rc;
    struct envelope_wire ew;
    envelope_wire(&env, &ew);
    Carechat__V1__Send send;
    carechat__v1__send__init(&send);
    send.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)cv->id.b};
    send.client_msg_id = (ProtobufCBinaryData){ID_LEN, h.client_msg_id.b};
    send.envelope = &ew.pe;
    Carechat__V1__Frame f;
    carechat__v1__frame__init(&f);
    f.request_id = RID_SEND + i;
    f.body_case = CARECHAT__V1__FRAME__BODY_SEND;
    f.send = &send;
    struct buf enc;
    buf_init(&enc);
    rc = proto_encode(&f, &enc);
    if (rc == 0)
        wire_frame(enc.data, enc.len, &b->frame[i]);
    buf_cleanup(&enc);
    envelope_wire_cleanup(&ew);
    envelope_cleanup(&env);
    return rc;
}

struct seal_job {
    const struct run *r;
    struct batch *b;
    size_t from, to;
    int rc;
};

static void *seal_main(void *arg) {
    struct seal_job *j = arg;
    for (size_t i = j->from; i < j->to && j->rc == 0; i++)
        j->rc = seal_one(j->r, j->b, i);
    return NULL;
}

/* A batch of `n` messages spread over the `n_convs` conversations at
 * `convs` (borrowed), sealed on `threads` threads. */
static int batch_make(const struct run *r, struct batch *b, uint32_t tag, size_t n,
                      struct conv *const *convs, size_t n_convs, int threads) {
    *b = (struct batch){.tag = tag, .n = n, .n_convs = n_convs};
    b->convs = xmemdup(convs, n_convs * sizeof *convs);
    b->first_counter = xcalloc(n_convs, sizeof *b->first_counter);
    for (size_t c = 0; c < n_convs; c++) {
        b->first_counter[c] = convs[c]->next_counter;
        convs[c]->next_counter += n / n_convs + 1;
    }
    b->frame = xcalloc(n, sizeof *b->frame);
    for (size_t i = 0; i < n; i++)
        buf_init(&b->frame[i]);
    b->sent_us = xcalloc(n, sizeof *b->sent_us);
    b->answered_us = xcalloc(n, sizeof *b->answered_us);
    b->delivered_us = xcalloc(n, sizeof *b->delivered_us);
    struct seal_job jobs[MAX_SEAL_THREADS];
    pthread_t th[MAX_SEAL_THREADS];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct seal_job){.r = r,
                                    .b = b,
                                    .from = n * (size_t)t / (size_t)threads,
                                    .to = n * (size_t)(t + 1) / (size_t)threads};
        if (pthread_create(&th[t], NULL, seal_main, &jobs[t]) != 0)
            abort();
    }
    int rc = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        if (jobs[t].rc != 0)
            rc = jobs[t].rc;
    }
    if (rc != 0)
        fprintf(stderr, "carechat-bench: sealing a message: %s\n", status_str(rc));
    return rc;
}

static void batch_cleanup(struct batch *b) {
    for (size_t i = 0; b->frame && i < b->n; i++)
        buf_cleanup(&b->frame[i]);
    free(b->frame);
    free(b->convs);
    free(b->first_counter);
    free(b->sent_us);
    free(b->answered_us);
    free(b->delivered_us);
    memset(b, 0, sizeof *b);
}

/* ---- the driver's side of the protocol ------------------------------------------------------ */

static void send_frame(struct peer *p, const Carechat__V1__Frame *f) {
    struct buf *s = &p->r->scratch;
    buf_reset(s);
    if (proto_encode(f, s) == 0)
        wire_send(p->conn, s->data, s->len);
}

static void answer_ok(struct peer *p, uint64_t request_id) {
    Carechat__V1__Frame f;
    Carechat__V1__Response resp;
    proto_response_frame(&f, &resp, request_id, 0, NULL);
    send_frame(p, &f);
}

/* Acknowledges everything delivered to `p` so far. */
static void send_ack(struct peer *p) {
    if (p->cursor_len == 0 || !p->conn)
        return;
    Carechat__V1__Ack a;
    carechat__v1__ack__init(&a);
    a.cursor = (ProtobufCBinaryData){p->cursor_len, p->cursor};
    Carechat__V1__Frame f;
    carechat__v1__frame__init(&f);
    f.request_id = RID_ACK + p->next_ack++;
    f.body_case = CARECHAT__V1__FRAME__BODY_ACK;
    f.ack = &a;
    send_frame(p, &f);
    p->acks_in_flight++;
    p->since_ack = 0;
}

static void send_message(struct run *r, struct peer *p, size_t i) {
    struct batch *b = r->batch;
    b->sent_us[i] = now_us();
    wire_send_framed(p->conn, b->frame[i].data, b->frame[i].len);
}

/* Tops the sender's window up. */
static void sender_fill(struct run *r, struct sender *s) {
    while (s->inflight < s->window && s->next < r->batch->n) {
        send_message(r, s->p, s->next);
        s->next += s->step;
        s->inflight++;
    }
}

static void on_sent(struct peer *p, size_t i, const Carechat__V1__Response *resp) {
    struct run *r = p->r;
    struct batch *b = r->batch;
    if (!b || i >= b->n || b->answered_us[i] != 0 || b->sent_us[i] == 0) {
        fail(r, "an answer to a Send that is not in flight (request %zu)", i);
        return;
    }
    b->answered_us[i] = b->last_answer_us = now_us();
    b->answered++;
    if (resp->status != CARECHAT__V1__STATUS__OK) {
        fail(r, "Send answered %s (%s)", status_name(resp->status), resp->detail);
        return;
    }
    if (p->sender) {
        p->sender->inflight--;
        sender_fill(r, p->sender);
    }
}

static void on_response(struct peer *p, const Carechat__V1__Frame *f) {
    struct run *r = p->r;
    const Carechat__V1__Response *resp = f->response;
    uint64_t rid = f->request_id;
    bool ok = resp->status == CARECHAT__V1__STATUS__OK;
    if (rid == RID_AUTH) {
        if (!ok) {
            fail(r, "Authenticate answered %s (%s)", status_name(resp->status), resp->detail);
        } else if (p->receiving) {
            Carechat__V1__Sync s;
            carechat__v1__sync__init(&s);
            Carechat__V1__Frame sf;
            carechat__v1__frame__init(&sf);
            sf.request_id = RID_SYNC;
            sf.body_case = CARECHAT__V1__FRAME__BODY_SYNC;
            sf.sync = &s;
            send_frame(p, &sf);
            p->state = PEER_SYNC;
        } else {
            p->state = PEER_IDLE;
            r->idle_ready++;
            r->connecting--;
        }
    } else if (rid == RID_SYNC) {
        if (!ok)
            fail(r, "Sync answered %s (%s)", status_name(resp->status), resp->detail);
    } else if (rid >= RID_ACK) {
        p->acks_in_flight--;
        if (!ok)
            fail(r, "Ack answered %s (%s)", status_name(resp->status), resp->detail);
    } else if (rid >= RID_SEND) {
        on_sent(p, (size_t)(rid - RID_SEND), resp);
    } else {
        fail(r, "an answer to request %llu, which was not sent", (unsigned long long)rid);
    }
}

static void on_delivery(struct peer *p, const Carechat__V1__Delivery *d) {
    struct run *r = p->r;
    if (d->cursor.len > 0 && d->cursor.len <= sizeof p->cursor) {
        memcpy(p->cursor, d->cursor.data, d->cursor.len);
        p->cursor_len = d->cursor.len;
    }
    if (d->item_case == CARECHAT__V1__DELIVERY__ITEM_MESSAGE &&
        d->message->client_msg_id.len == ID_LEN) {
        const uint8_t *cmid = d->message->client_msg_id.data;
        struct batch *b = r->batch;
        uint32_t i = get_be32(cmid + 4);
        if (b && get_be32(cmid) == b->tag && i < b->n) {
            int64_t t = now_us();
            b->deliveries++;
            b->last_delivery_us = t;
            if (b->delivered_us[i] == 0) {
                b->delivered_us[i] = t;
                b->delivered++;
            }
        } else {
            r->stray++;
        }
    }
    if (++p->since_ack >= ACK_EVERY)
        send_ack(p);
}

static void peer_open(void *ctx, struct wire_conn *c) {
    struct peer *p = wire_user(c);
    Carechat__V1__Authenticate a;
    carechat__v1__authenticate__init(&a);
    a.session_token = (ProtobufCBinaryData){PROFILE_TOKEN_LEN, p->acct->prof->session_token};
    a.device_id = (ProtobufCBinaryData){ID_LEN, p->acct->prof->device_id.b};
    Carechat__V1__Frame f;
    carechat__v1__frame__init(&f);
    f.request_id = RID_AUTH;
    f.body_case = CARECHAT__V1__FRAME__BODY_AUTHENTICATE;
    f.authenticate = &a;
    send_frame(p, &f);
    p->state = PEER_AUTH;
}

static void peer_message(void *ctx, struct wire_conn *c, const uint8_t *data, size_t len) {
    struct peer *p = wire_user(c);
    struct run *r = p->r;
    Carechat__V1__Frame *f = NULL;
    if (proto_decode(NULL, data, len, &f) != 0) {
        fail(r, "the server sent a frame that does not decode (%zu bytes)", len);
        return;
    }
    switch (f->body_case) {
    case CARECHAT__V1__FRAME__BODY_RESPONSE:
        on_response(p, f);
        break;
    case CARECHAT__V1__FRAME__BODY_DELIVERY:
        answer_ok(p, f->request_id);
        on_delivery(p, f->delivery);
        break;
    case CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY:
        answer_ok(p, f->request_id);
        if (p->state == PEER_SYNC) {
            p->state = PEER_LIVE;
            r->live++;
            if (p->since_ack > 0)
                send_ack(p); /* what the replay brought (membership events) */
        }
        break;
    case CARECHAT__V1__FRAME__BODY_SESSION_REVOKED:
    case CARECHAT__V1__FRAME__BODY_REPLACED_ELSEWHERE:
        answer_ok(p, f->request_id);
        fail(r, "the server sent %s to account %d", proto_body_name(f), p->acct->index);
        break;
    default: /* typing events and the like: answered, not counted */
        answer_ok(p, f->request_id);
        break;
    }
    proto_free(f);
}

static void peer_closed(void *ctx, struct wire_conn *c, int code) {
    struct peer *p = wire_user(c);
    struct run *r = p->r;
    p->conn = NULL;
    if (p->state == PEER_CONNECTING || p->state == PEER_AUTH)
        r->connecting -= p->receiving ? 0 : 1;
    p->state = PEER_CLOSED;
    if (!r->closing)
        fail(r, "a connection of account %d closed (code %d)", p->acct->index, code);
}

static int peer_connect(struct run *r, struct peer *p, struct account *a, bool receiving) {
    *p = (struct peer){.r = r, .acct = a, .receiving = receiving, .state = PEER_CONNECTING};
    int rc = wire_connect(r->wire, r->port, p, &p->conn);
    if (rc != 0)
        fail(r, "cannot open connection %zu", wire_count(r->wire));
    return rc;
}

/* ---- waiting and measuring ------------------------------------------------------------------ */

typedef bool (*done_fn)(const struct run *r);

/* Runs the driver until done(r), the first failure or the deadline. */
static bool wait_for(struct run *r, done_fn done, const char *what) {
    while (!r->failed && !done(r)) {
        if (clock_monotonic_ms() >= r->deadline_ms) {
            fail(r, "the deadline passed while %s", what);
            break;
        }
        if (wire_run(r->wire, ROUND_MS) != 0)
            fail(r, "the driver's event loop failed");
    }
    return !r->failed;
}

static bool all_live(const struct run *r) {
    return r->live == r->n_accts;
}

static bool acks_done(const struct run *r) {
    for (size_t i = 0; i < r->n_accts; i++)
        if (r->accts[i].live->acks_in_flight > 0)
            return false;
    return true;
}

/* Every message answered and delivered once (1:1, paced). */
static bool batch_done(const struct run *r) {
    return r->batch->answered == r->batch->n && r->batch->delivered == r->batch->n;
}

/* Every message answered and delivered to every receiving member. */
static bool fanout_done(const struct run *r) {
    return r->batch->answered == r->batch->n &&
           r->batch->deliveries == r->batch->n * (size_t)r->o->fanout;
}

static bool idle_done(const struct run *r) {
    return r->idle_ready == (size_t)r->o->idle;
}

/* Acks what every receiving peer got, and waits for the answers. */
static bool ack_all(struct run *r) {
    for (size_t i = 0; i < r->n_accts; i++)
        if (r->accts[i].live->since_ack > 0)
            send_ack(r->accts[i].live);
    return wait_for(r, acks_done, "acknowledging");
}

/* Server figures first and last, so that GET /metrics itself is not counted. */
static struct probe probe_before(const struct run *r) {
    struct probe p;
    p.journal = target_journal(r->target);
    p.driver_cpu_s = driver_cpu_s();
    p.server_cpu_s = target_cpu_s(r->pid);
    p.t_us = now_us();
    return p;
}

static struct probe probe_after(const struct run *r) {
    struct probe p;
    p.t_us = now_us();
    p.server_cpu_s = target_cpu_s(r->pid);
    p.driver_cpu_s = driver_cpu_s();
    p.journal = target_journal(r->target);
    return p;
}

static void print_cpu(const struct probe *a, const struct probe *b) {
    double wall = (double)(b->t_us - a->t_us) / 1e6;
    double server = b->server_cpu_s - a->server_cpu_s, driver = b->driver_cpu_s - a->driver_cpu_s;
    printf("  CPU: server %.2f s (%.0f%% of one core), driver %.2f s (%.0f%%) in %.2f s\n", server,
           wall > 0 ? 100 * server / wall : 0, driver, wall > 0 ? 100 * driver / wall : 0, wall);
}

static void print_journal(const struct probe *a, const struct probe *b) {
    const struct target_journal *x = &a->journal, *y = &b->journal;
    if (!x->ok || !y->ok) {
        printf("  group commit: unavailable (GET /metrics did not answer)\n");
        return;
    }
    double batches = y->batch_count - x->batch_count, entries = y->batch_sum - x->batch_sum;
    double p50 = target_fsync_quantile_ms(x, y, 0.50), p99 = target_fsync_quantile_ms(x, y, 0.99);
    printf("  group commit: %.0f entries in %.0f synced batches, mean batch %.2f; fsync", entries,
           batches, batches > 0 ? entries / batches : 0);
    if (p50 < 0)
        printf(" none\n");
    else if (isinf(p99))
        printf(" p50 %.2f ms, p99 > 100 ms (histogram)\n", p50);
    else
        printf(" p50 %.2f ms, p99 %.2f ms (interpolated in the histogram)\n", p50, p99);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(const int64_t *sorted_us, size_t n, double q) {
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)sorted_us[i < n ? i : n - 1] / 1e3;
}

/* ---- phases ------------------------------------------------------------------------------- */

static void set_senders(struct run *r, struct sender *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        s[i].p->sender = &s[i];
}

static void clear_senders(struct run *r) {
    for (size_t i = 0; i < r->n_accts; i++)
        r->accts[i].live->sender = NULL;
}

/* 1:1 at saturation. Writes the server's CPU per message. */
static bool phase_saturation(struct run *r, struct batch *b, double *us_per_msg) {
    const struct server_mode_options *o = r->o;
    /* One batch for all pairs: message i goes from pair i % pairs. */
    struct sender s[SERVER_MODE_MAX_PAIRS];
    for (int k = 0; k < o->pairs; k++)
        s[k] = (struct sender){.p = r->accts[2 * k].live,
                               .next = (size_t)k,
                               .step = (size_t)o->pairs,
                               .window = o->window};
    set_senders(r, s, (size_t)o->pairs);
    printf("1:1 at saturation: %zu messages, %d pairs, %d in flight per sender\n", b->n, o->pairs,
           o->window);
    r->batch = b;
    struct probe p0 = probe_before(r);
    for (int k = 0; k < o->pairs; k++)
        sender_fill(r, &s[k]);
    bool ok = wait_for(r, batch_done, "sending 1:1 at saturation");
    struct probe p1 = probe_after(r);
    r->batch = NULL;
    clear_senders(r);
    if (!ok)
        return false;
    double answered_s = (double)(b->last_answer_us - p0.t_us) / 1e6;
    double delivered_s = (double)(b->last_delivery_us - p0.t_us) / 1e6;
    double cpu = p1.server_cpu_s - p0.server_cpu_s;
    *us_per_msg = cpu * 1e6 / (double)b->n;
    printf("  %.0f msgs/s answered, %.0f msgs/s delivered; server CPU %.1f us per message\n",
           (double)b->n / answered_s, (double)b->n / delivered_s, *us_per_msg);
    print_cpu(&p0, &p1);
    print_journal(&p0, &p1);
    return ack_all(r);
}

/* Fan-out to the channel. Writes the server's CPU per delivery. */
static bool phase_fanout(struct run *r, struct batch *b, double *us_per_delivery) {
    const struct server_mode_options *o = r->o;
    struct sender s = {.p = r->accts[0].live, .next = 0, .step = 1, .window = o->fanout_window};
    set_senders(r, &s, 1);
    printf("fan-out 1 -> %d members of one channel (all connected and receiving): %zu messages, "
           "%d in flight\n",
           o->fanout, b->n, o->fanout_window);
    r->batch = b;
    struct probe p0 = probe_before(r);
    sender_fill(r, &s);
    bool ok = wait_for(r, fanout_done, "sending to the channel");
    struct probe p1 = probe_after(r);
    r->batch = NULL;
    clear_senders(r);
    if (!ok)
        return false;
    double s_all = (double)(b->last_delivery_us - p0.t_us) / 1e6;
    double cpu = p1.server_cpu_s - p0.server_cpu_s;
    *us_per_delivery = cpu * 1e6 / (double)b->deliveries;
    printf("  %zu deliveries in %.2f s: %.0f deliveries/s (%.0f msgs/s); server CPU %.1f us per "
           "delivery\n",
           b->deliveries, s_all, (double)b->deliveries / s_all, (double)b->n / s_all,
           *us_per_delivery);
    print_cpu(&p0, &p1);
    print_journal(&p0, &p1);
    return ack_all(r);
}

/* 1:1 from pair 0 at o->rate messages a second. Writes p50 and p99 of
 * send-to-delivery in ms. */
static bool phase_paced(struct run *r, struct batch *b, const char *title, double *p50,
                        double *p99) {
    const struct server_mode_options *o = r->o;
    struct peer *p = r->accts[0].live;
    printf("%s: %zu messages 1:1 at %d msgs/s\n", title, b->n, o->rate);
    r->batch = b;
    struct probe p0 = probe_before(r);
    const int64_t t0 = p0.t_us, gap_us = 1000000 / o->rate;
    size_t next = 0;
    while (!r->failed && !(next == b->n && batch_done(r))) {
        if (clock_monotonic_ms() >= r->deadline_ms) {
            fail(r, "the deadline passed while sending paced messages");
            break;
        }
        int64_t t = now_us();
        while (next < b->n && t0 + (int64_t)next * gap_us <= t)
            send_message(r, p, next++);
        wire_flush(r->wire);
        int wait_ms = ROUND_MS;
        if (next < b->n) {
            int64_t due_ms = (t0 + (int64_t)next * gap_us - now_us()) / 1000;
            wait_ms = due_ms < 0 ? 0 : due_ms < ROUND_MS ? (int)due_ms : ROUND_MS;
        }
        if (wire_run(r->wire, wait_ms) != 0)
            fail(r, "the driver's event loop failed");
    }
    struct probe p1 = probe_after(r);
    r->batch = NULL;
    if (r->failed)
        return false;
    int64_t *lat = xcalloc(b->n, sizeof *lat);
    for (size_t i = 0; i < b->n; i++)
        lat[i] = b->delivered_us[i] - b->sent_us[i];
    qsort(lat, b->n, sizeof *lat, cmp_i64);
    *p50 = percentile_ms(lat, b->n, 0.50);
    *p99 = percentile_ms(lat, b->n, 0.99);
    printf("  send-to-delivery p50 %.2f ms, p99 %.2f ms, max %.2f ms; server CPU %.1f us per "
           "message\n",
           *p50, *p99, (double)lat[b->n - 1] / 1e3,
           (p1.server_cpu_s - p0.server_cpu_s) * 1e6 / (double)b->n);
    free(lat);
    print_cpu(&p0, &p1);
    print_journal(&p0, &p1);
    return ack_all(r);
}

/* Opens o->idle authenticated connections, CONNECT_PARALLEL at a time.
 * Writes the server's RSS per connection (KiB) and CPU per set-up (us). */
static bool phase_idle(struct run *r, double *kb_per_conn, double *us_per_setup) {
    const struct server_mode_options *o = r->o;
    printf("idle connections: %d, each upgraded and authenticated (session token of one of the "
           "%zu accounts), %d set up at a time\n",
           o->idle, r->n_accts, CONNECT_PARALLEL);
    long rss0, rss1, hwm;
    if (!target_rss_kb(r->pid, &rss0, &hwm)) {
        fail(r, "cannot read the server's VmRSS");
        return false;
    }
    struct probe p0 = probe_before(r);
    size_t opened = 0;
    while (!r->failed && !idle_done(r)) {
        if (clock_monotonic_ms() >= r->deadline_ms) {
            fail(r, "the deadline passed while opening idle connections");
            break;
        }
        while (opened < (size_t)o->idle && r->connecting < CONNECT_PARALLEL && !r->failed) {
            if (peer_connect(r, &r->idle[opened], &r->accts[opened % r->n_accts], false) != 0)
                break;
            opened++;
            r->connecting++;
        }
        if (wire_run(r->wire, ROUND_MS) != 0)
            fail(r, "the driver's event loop failed");
    }
    struct probe p1 = probe_after(r);
    if (r->failed)
        return false;
    /* Let the server finish what the last set-ups started (audit records,
     * buffers) before reading its memory. */
    int64_t settle = clock_monotonic_ms() + SETTLE_MS;
    while (clock_monotonic_ms() < settle && !r->failed)
        wire_run(r->wire, ROUND_MS);
    if (!target_rss_kb(r->pid, &rss1, &hwm)) {
        fail(r, "cannot read the server's VmRSS");
        return false;
    }
    double wall = (double)(p1.t_us - p0.t_us) / 1e6;
    *kb_per_conn = (double)(rss1 - rss0) / o->idle;
    *us_per_setup = (p1.server_cpu_s - p0.server_cpu_s) * 1e6 / o->idle;
    printf("  %d set up in %.2f s (%.0f/s); server CPU %.1f us per connection set-up\n", o->idle,
           wall, o->idle / wall, *us_per_setup);
    printf("  server VmRSS %.1f MiB -> %.1f MiB: %.2f KiB per idle authenticated connection\n",
           (double)rss0 / 1024, (double)rss1 / 1024, *kb_per_conn);
    print_cpu(&p0, &p1);
    print_journal(&p0, &p1);
    return true;
}

/* ---- the run ------------------------------------------------------------------------------ */

/* The first two CPUs this process may use: the server's and the driver's
 * (-1 and -1 when there are fewer). */
static void choose_cpus(int *server_cpu, int *driver_cpu) {
    *server_cpu = *driver_cpu = -1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set))
            continue;
        if (*server_cpu < 0) {
            *server_cpu = c;
        } else {
            *driver_cpu = c;
            return;
        }
    }
}

/* Soft RLIMIT_NOFILE up to the hard one (inherited by the server); false
 * when that is below `need`. */
static bool raise_fd_limit(rlim_t need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur < need) {
        fprintf(stderr,
                "carechat-bench: %llu connections need %llu descriptors; the hard limit is %llu "
                "(ulimit -Hn)\n",
                (unsigned long long)(need - FDS_SPARE), (unsigned long long)need,
                (unsigned long long)rl.rlim_max);
        return false;
    }
    return true;
}

static int seal_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_SEAL_THREADS ? MAX_SEAL_THREADS : (int)n;
}

/* Builds the message content: kind MESSAGE, o->size letters of text. */
static void make_content(struct run *r) {
    char *text = xmalloc(r->o->size + 1);
    for (size_t i = 0; i < r->o->size; i++)
        text[i] = (char)('a' + i % 26);
    text[r->o->size] = '\0';
    Carechat__V1__MessageContent mc;
    carechat__v1__message_content__init(&mc);
    mc.kind = CARECHAT__V1__CONTENT_KIND__CONTENT_KIND_MESSAGE;
    mc.text = text;
    proto_content_encode(&mc, &r->content);
    free(text);
}

static int setup(struct run *r, const char *tmp) {
    const struct server_mode_options *o = r->o;
    r->n_providers = (size_t)(o->fanout > 2 * o->pairs ? o->fanout : 2 * o->pairs);
    r->n_accts = r->n_providers + 1;
    r->accts = xcalloc(r->n_accts, sizeof *r->accts);
    for (size_t i = 0; i < r->n_accts; i++) {
        r->accts[i].index = (int)i;
        r->accts[i].patient = i == r->n_providers;
        snprintf(r->accts[i].dir, sizeof r->accts[i].dir, "%.*s/acct-%zu", PATH_MAX - 32, tmp, i);
    }
    r->pair_conv = xcalloc((size_t)o->pairs, sizeof *r->pair_conv);
    int64_t t = clock_monotonic_ms();
    int rc = invite_all(r, tmp);
    if (rc == 0)
        rc = register_all(r);
    if (rc == 0)
        rc = open_conversations(r);
    if (rc == 0)
        rc = load_devices(r);
    if (rc != 0)
        return rc;
    printf("setup: %zu accounts (%zu providers, 1 patient), %d direct conversations, a channel "
           "of %zu members, in %.1f s\n",
           r->n_accts, r->n_providers, o->pairs, r->channel.n,
           (double)(clock_monotonic_ms() - t) / 1e3);
    fflush(stdout);
    return 0;
}

static int connect_receivers(struct run *r) {
    for (size_t i = 0; i < r->n_accts; i++) {
        r->accts[i].live = xcalloc(1, sizeof *r->accts[i].live);
        if (peer_connect(r, r->accts[i].live, &r->accts[i], true) != 0)
            return STATUS_IO;
    }
    return wait_for(r, all_live, "connecting the receiving devices") ? 0 : STATUS_IO;
}

/* Seals every phase's messages (while the server idles, on every CPU). */
static int seal_all(struct run *r, struct batch *sat, struct batch *fan, struct batch *paced,
                    struct batch *paced_idle) {
    const struct server_mode_options *o = r->o;
    make_content(r);
    struct conv *pairs[SERVER_MODE_MAX_PAIRS];
    for (int k = 0; k < o->pairs; k++)
        pairs[k] = &r->pair_conv[k];
    struct conv *channel = &r->channel;
    int threads = seal_threads();
    int64_t t = clock_monotonic_ms();
    int rc =
        batch_make(r, sat, TAG_SATURATION, (size_t)o->messages, pairs, (size_t)o->pairs, threads);
    if (rc == 0)
        rc = batch_make(r, fan, TAG_FANOUT, (size_t)o->fanout_messages, &channel, 1, threads);
    if (rc == 0)
        rc = batch_make(r, paced, TAG_PACED, (size_t)o->paced, pairs, 1, threads);
    if (rc == 0)
        rc = batch_make(r, paced_idle, TAG_PACED_IDLE, (size_t)o->paced, pairs, 1, threads);
    if (rc != 0)
        return rc;
    printf("sealed ahead: %zu envelopes (%zu wraps each to the channel, %zu in 1:1), %.1f s on "
           "%d threads\n",
           sat->n + fan->n + paced->n + paced_idle->n, r->channel.n, r->pair_conv[0].n,
           (double)(clock_monotonic_ms() - t) / 1e3, threads);
    return 0;
}

/* From here on only the driver runs in this process: on its own CPU. */
static void pin_driver(struct run *r) {
    if (r->driver_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(r->driver_cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            r->driver_cpu = -1;
    }
    if (r->server_cpu >= 0 && r->driver_cpu >= 0)
        printf("CPUs: carechatd pinned to CPU %d, the load driver to CPU %d (%ld online)\n",
               r->server_cpu, r->driver_cpu, sysconf(_SC_NPROCESSORS_ONLN));
    else
        printf("CPUs: not pinned (fewer than two CPUs available): driver and server share\n");
    fflush(stdout);
}

static void run_cleanup(struct run *r) {
    r->closing = true;
    wire_free(r->wire);
    free(r->idle);
    for (size_t i = 0; r->accts && i < r->n_accts; i++) {
        struct account *a = &r->accts[i];
        carechat_close(a->h);
        envelope_enc_key_free(a->enc);
        envelope_identity_free(a->identity);
        profile_free(a->prof);
        free(a->live);
    }
    for (int s = 0; r->pair_conv && s < r->o->pairs; s++) {
        free(r->pair_conv[s].members);
        free(r->pair_conv[s].to);
    }
    free(r->pair_conv);
    free(r->channel.members);
    free(r->channel.to);
    free(r->accts);
    buf_cleanup(&r->content);
    buf_cleanup(&r->scratch);
    target_close(r->target, r->failed);
}

int server_mode_run(const struct server_mode_options *o, const char *tmp) {
    struct run run = {.o = o, .deadline_ms = clock_monotonic_ms() + (int64_t)o->timeout_s * 1000};
    struct run *r = &run;
    buf_init(&r->content);
    buf_init(&r->scratch);
    struct batch sat = {0}, fan = {0}, paced = {0}, paced_idle = {0};
    double us_msg = 0, us_delivery = 0, p50 = 0, p99 = 0, idle_p50 = 0, idle_p99 = 0;
    double kb_conn = 0, us_setup = 0;
    int result = 1;
    /* libcarechat's notes (trust on first use, ...) are not figures. */
    log_set_level(LOG_WARN);

    size_t accounts = (size_t)(o->fanout > 2 * o->pairs ? o->fanout : 2 * o->pairs) + 1;
    if (!raise_fd_limit((rlim_t)o->idle + accounts + FDS_SPARE)) {
        r->failed = true;
        goto out;
    }
    choose_cpus(&r->server_cpu, &r->driver_cpu);
    struct target_config tcfg = {
        .carechatd = o->carechatd,
        .dir = tmp,
        .args = server_args,
        .n_args = N_SERVER_ARGS,
        .cpu = r->server_cpu,
    };
    if (target_open(&tcfg, &r->target) != 0) {
        r->failed = true;
        goto out;
    }
    r->pid = target_info(r->target)->pid;
    r->port = target_info(r->target)->port;
    printf("carechat-bench --mode server: carechatd pid %d at %s, %zu-byte messages\n", (int)r->pid,
           target_info(r->target)->url, o->size);
    printf("server options:");
    for (size_t i = 0; i < N_SERVER_ARGS; i += 2)
        printf(" %s %s", server_args[i], server_args[i + 1]);
    printf("\n");
    fflush(stdout);

    if (setup(r, tmp) != 0) {
        r->failed = true;
        goto out;
    }
    if (seal_all(r, &sat, &fan, &paced, &paced_idle) != 0) {
        r->failed = true;
        goto out;
    }
    pin_driver(r);

    struct wire_handler h = {
        .open = peer_open, .message = peer_message, .closed = peer_closed, .ctx = r};
    if (wire_new(&h, &r->wire) != 0 || connect_receivers(r) != 0) {
        r->failed = true;
        goto out;
    }
    r->idle = xcalloc((size_t)o->idle, sizeof *r->idle);
    if (!phase_saturation(r, &sat, &us_msg))
        goto out;
    fflush(stdout);
    if (!phase_fanout(r, &fan, &us_delivery))
        goto out;
    fflush(stdout);
    if (!phase_paced(r, &paced, "paced, no idle connections", &p50, &p99))
        goto out;
    fflush(stdout);
    if (!phase_idle(r, &kb_conn, &us_setup))
        goto out;
    fflush(stdout);
    char title[96];
    snprintf(title, sizeof title, "paced, with %d idle connections open", o->idle);
    if (!phase_paced(r, &paced_idle, title, &idle_p50, &idle_p99))
        goto out;
    if (r->stray > 0)
        printf("note: %zu deliveries of no running phase\n", r->stray);
    printf("summary: 1:1 %.1f us/msg; fan-out %.1f us/delivery; paced p50/p99 %.2f/%.2f ms, with "
           "%d idle %.2f/%.2f ms; %.2f KiB and %.1f us per idle connection\n",
           us_msg, us_delivery, p50, p99, o->idle, idle_p50, idle_p99, kb_conn, us_setup);
    printf("server_cpu_us_per_msg=%.1f\n", us_msg);
    printf("server_cpu_us_per_delivery=%.1f\n", us_delivery);
    printf("idle_p99_ms=%.2f\n", idle_p99);
    printf("kb_per_idle_conn=%.2f\n", kb_conn);
    result = 0;
out:
    if (r->failed)
        fprintf(stderr, "carechat-bench: %s\n", r->error[0] ? r->error : "setup failed");
    batch_cleanup(&sat);
    batch_cleanup(&fan);
    batch_cleanup(&paced);
    batch_cleanup(&paced_idle);
    run_cleanup(r);
    return result;
}
