/*
 * server/pwhash.c: the password worker (see pwhash.h).
 *
 * Invariants: an operation is on exactly one of the two lists (todo, done) or
 * being computed by the worker; the password bytes live in sodium_malloc
 * memory and are freed (sodium_free wipes) before the operation reaches the
 * done list. `lock` guards both lists and `stopping`.
 *
 * Threads: the worker runs worker_main; everything else runs on the thread
 * that owns the pwhash.
 */
#include "server/pwhash.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/status.h"

struct op {
    struct op *next;
    bool verify;
    bool priority;
    char *password; /* sodium_malloc, NUL-terminated */
    size_t password_len;
    char hash[crypto_pwhash_STRBYTES]; /* verify: the stored hash; hash: the result */
    bool use_dummy;
    bool ok;
    pwhash_done_fn done;
    void *ctx;
};

struct pwhash {
    struct pwhash_config cfg;
    char dummy[crypto_pwhash_STRBYTES];
    pthread_t threads[PWHASH_MAX_WORKERS];
    unsigned n_threads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct op *prio_head, *prio_tail; /* run before todo */
    struct op *todo_head, *todo_tail;
    struct op *done_head, *done_tail;
    size_t queued, prio_queued; /* submitted and not yet polled, per lane */
    bool stopping;
};

static void push(struct op **head, struct op **tail, struct op *o) {
    o->next = NULL;
    if (*tail)
        (*tail)->next = o;
    else
        *head = o;
    *tail = o;
}

static struct op *pop(struct op **head, struct op **tail) {
    struct op *o = *head;
    if (o) {
        *head = o->next;
        if (!*head)
            *tail = NULL;
    }
    return o;
}

static void op_free(struct op *o) {
    if (o->password)
        sodium_free(o->password);
    sodium_memzero(o->hash, sizeof o->hash);
    free(o);
}

static void compute(struct pwhash *p, struct op *o) {
    if (o->verify) {
        const char *hash = o->use_dummy ? p->dummy : o->hash;
        int rc = crypto_pwhash_str_verify(hash, o->password, o->password_len);
        o->ok = rc == 0 && !o->use_dummy;
    } else {
        o->ok = crypto_pwhash_str(o->hash, o->password, o->password_len, p->cfg.opslimit,
                                  p->cfg.memlimit) == 0;
    }
    sodium_free(o->password);
    o->password = NULL;
}

static void *worker_main(void *arg) {
    struct pwhash *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->prio_head && !p->todo_head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stopping)
            break;
        struct op *o =
            p->prio_head ? pop(&p->prio_head, &p->prio_tail) : pop(&p->todo_head, &p->todo_tail);
        pthread_mutex_unlock(&p->lock);
        compute(p, o);
        pthread_mutex_lock(&p->lock);
        push(&p->done_head, &p->done_tail, o);
        pthread_mutex_unlock(&p->lock);
        if (p->cfg.wake)
            p->cfg.wake(p->cfg.wake_ctx);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int pwhash_new(const struct pwhash_config *cfg, struct pwhash **out) {
    if (cfg->opslimit < PWHASH_MIN_OPSLIMIT || cfg->memlimit < PWHASH_MIN_MEMLIMIT ||
        cfg->workers < 1 || cfg->workers > PWHASH_MAX_WORKERS)
        return STATUS_BAD_REQUEST;
    if (sodium_init() < 0)
        return STATUS_INTERNAL;
    struct pwhash *p = xcalloc(1, sizeof *p);
    p->cfg = *cfg;
    uint8_t random_password[32];
    randombytes_buf(random_password, sizeof random_password);
    int rc = crypto_pwhash_str(p->dummy, (const char *)random_password, sizeof random_password,
                               cfg->opslimit, cfg->memlimit);
    sodium_memzero(random_password, sizeof random_password);
    if (rc != 0) {
        log_error("pwhash", "cannot compute the dummy hash (out of memory?)");
        free(p);
        return STATUS_INTERNAL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (; p->n_threads < cfg->workers; p->n_threads++)
        if (pthread_create(&p->threads[p->n_threads], NULL, worker_main, p) != 0) {
            log_error("pwhash", "cannot start the password workers");
            pwhash_free(p);
            return STATUS_INTERNAL;
        }
    *out = p;
    return STATUS_OK;
}

void pwhash_free(struct pwhash *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    struct op *o;
    while ((o = pop(&p->done_head, &p->done_tail))) {
        o->done(o->ctx, false, NULL);
        op_free(o);
    }
    while ((o = pop(&p->prio_head, &p->prio_tail)) || (o = pop(&p->todo_head, &p->todo_tail))) {
        o->done(o->ctx, false, NULL);
        op_free(o);
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    sodium_memzero(p->dummy, sizeof p->dummy);
    free(p);
}

static int submit(struct pwhash *p, struct op *o, const char *password, size_t len) {
    o->password = sodium_malloc(len + 1);
    if (!o->password) {
        free(o);
        return STATUS_UNAVAILABLE;
    }
    memcpy(o->password, password, len);
    o->password[len] = '\0';
    o->password_len = len;
    pthread_mutex_lock(&p->lock);
    size_t *queued = o->priority ? &p->prio_queued : &p->queued;
    if (*queued >= PWHASH_MAX_QUEUE) {
        pthread_mutex_unlock(&p->lock);
        op_free(o);
        return STATUS_UNAVAILABLE;
    }
    (*queued)++;
    if (o->priority)
        push(&p->prio_head, &p->prio_tail, o);
    else
        push(&p->todo_head, &p->todo_tail, o);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return STATUS_OK;
}

int pwhash_hash(struct pwhash *p, const char *password, size_t len, pwhash_done_fn done,
                void *ctx) {
    struct op *o = xcalloc(1, sizeof *o);
    o->done = done;
    o->ctx = ctx;
    return submit(p, o, password, len);
}

int pwhash_verify(struct pwhash *p, const char *password, size_t len, const char *hash,
                  bool priority, pwhash_done_fn done, void *ctx) {
    struct op *o = xcalloc(1, sizeof *o);
    o->verify = true;
    o->priority = priority;
    o->done = done;
    o->ctx = ctx;
    if (hash && strlen(hash) < sizeof o->hash)
        memcpy(o->hash, hash, strlen(hash) + 1);
    else
        o->use_dummy = true;
    return submit(p, o, password, len);
}

size_t pwhash_poll(struct pwhash *p) {
    size_t n = 0;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        struct op *o = pop(&p->done_head, &p->done_tail);
        if (o)
            (*(o->priority ? &p->prio_queued : &p->queued))--;
        pthread_mutex_unlock(&p->lock);
        if (!o)
            return n;
        o->done(o->ctx, o->ok, o->verify || !o->ok ? NULL : o->hash);
        op_free(o);
        n++;
    }
}
