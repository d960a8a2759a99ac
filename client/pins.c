/*
 * client/pins.c: pinned device lists (client/pins.h). Caller's thread.
 */
#include "client/pins.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/hex.h"
#include "base/status.h"
#include "client/profile.h"

#define HEADER "carechat-pins 1"
#define MAX_BYTES ((size_t)PINS_MAX * 2 * (200 + STATEMENT_MAX_DEVICES * 100))

struct entry {
    struct pins_list pin;
    bool has_pending;
    struct pins_list pending;
};

struct pins {
    struct entry *e;
    size_t n;
};

static struct entry *find(const struct pins *p, const struct id *account) {
    for (size_t i = 0; i < p->n; i++)
        if (id_equal(&p->e[i].pin.account, account))
            return &p->e[i];
    return NULL;
}

const struct pins_list *pins_find(const struct pins *p, const struct id *account) {
    struct entry *e = find(p, account);
    return e ? &e->pin : NULL;
}

const struct pins_list *pins_pending(const struct pins *p, const struct id *account) {
    struct entry *e = find(p, account);
    return e && e->has_pending ? &e->pending : NULL;
}

static bool same_devices(const struct pins_list *a, const struct pins_list *b) {
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        bool found = false;
        for (size_t j = 0; j < b->n && !found; j++)
            found =
                id_equal(&a->devs[i].device_id, &b->devs[j].device_id) &&
                memcmp(a->devs[i].identity_key, b->devs[j].identity_key, STATEMENT_KEY_LEN) == 0;
        if (!found)
            return false;
    }
    return true;
}

enum pins_verdict pins_judge(const struct pins *p, const struct pins_list *shown,
                             const struct id *signer, const uint8_t *signer_key,
                             const uint8_t *prev_hash) {
    const struct entry *e = find(p, &shown->account);
    if (e == NULL)
        return PINS_FIRST_USE;
    const struct pins_list *pin = &e->pin;
    if (shown->version < pin->version)
        return PINS_ROLLBACK;
    if (shown->version == pin->version)
        return memcmp(shown->hash, pin->hash, STATEMENT_HASH_LEN) == 0 ? PINS_SAME : PINS_CHANGED;
    /* The next version names the pin's hash; a later one cannot. */
    if (shown->version == pin->version + 1 &&
        (prev_hash == NULL || memcmp(prev_hash, pin->hash, STATEMENT_HASH_LEN) != 0))
        return PINS_CHANGED;
    for (size_t i = 0; i < pin->n; i++)
        if (id_equal(&pin->devs[i].device_id, signer) &&
            memcmp(pin->devs[i].identity_key, signer_key, STATEMENT_KEY_LEN) == 0)
            return PINS_NEXT;
    return PINS_CHANGED; /* signed by a device the pinned list does not name */
}

static struct entry *entry_for(struct pins *p, const struct id *account, int *rc) {
    struct entry *e = find(p, account);
    *rc = 0;
    if (e != NULL)
        return e;
    if (p->n == PINS_MAX) {
        *rc = STATUS_TOO_LARGE;
        return NULL;
    }
    p->e = xrealloc(p->e, (p->n + 1) * sizeof *p->e);
    e = &p->e[p->n++];
    memset(e, 0, sizeof *e);
    e->pin.account = *account;
    return e;
}

int pins_accept(struct pins *p, const struct pins_list *l) {
    int rc;
    struct entry *e = entry_for(p, &l->account, &rc);
    if (e == NULL)
        return rc;
    const bool keep = e->pin.version > 0 && e->pin.verified && same_devices(&e->pin, l);
    e->pin = *l;
    e->pin.verified = keep;
    e->has_pending = false;
    return 0;
}

int pins_set_pending(struct pins *p, const struct pins_list *l) {
    int rc;
    struct entry *e = entry_for(p, &l->account, &rc);
    if (e == NULL)
        return rc;
    e->pending = *l;
    e->pending.verified = false;
    e->has_pending = true;
    return 0;
}

int pins_confirm(struct pins *p, const struct id *account) {
    struct entry *e = find(p, account);
    if (e == NULL || !e->has_pending)
        return STATUS_NOT_FOUND;
    e->pin = e->pending;
    e->pin.verified = false;
    e->has_pending = false;
    return 0;
}

int pins_set_verified(struct pins *p, const struct id *account, bool verified) {
    struct entry *e = find(p, account);
    if (e == NULL)
        return STATUS_NOT_FOUND;
    e->pin.verified = verified;
    return 0;
}

void pins_free(struct pins *p) {
    if (p == NULL)
        return;
    free(p->e);
    free(p);
}

static void put_list(struct buf *b, const char *tag, const struct pins_list *l) {
    buf_printf(b, "%s ", tag);
    hex_encode(l->account.b, ID_LEN, b);
    buf_printf(b, " %" PRIu64 " ", l->version);
    hex_encode(l->hash, STATEMENT_HASH_LEN, b);
    buf_printf(b, " %d %zu", l->verified ? 1 : 0, l->n);
    for (size_t i = 0; i < l->n; i++) {
        buf_append_u8(b, ' ');
        hex_encode(l->devs[i].device_id.b, ID_LEN, b);
        buf_append_u8(b, ':');
        hex_encode(l->devs[i].identity_key, STATEMENT_KEY_LEN, b);
    }
    buf_append_u8(b, '\n');
}

int pins_save(const char *dir, const struct pins *p) {
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s\n", HEADER);
    for (size_t i = 0; i < p->n; i++) {
        if (p->e[i].pin.version > 0)
            put_list(&b, "pin", &p->e[i].pin);
        if (p->e[i].has_pending)
            put_list(&b, "pending", &p->e[i].pending);
    }
    int rc = profile_write_file(dir, PINS_FILE, b.data, b.len);
    buf_cleanup(&b);
    return rc;
}

static bool hex_exact(const char *s, size_t len, uint8_t *out, size_t n) {
    struct buf b;
    buf_init(&b);
    bool ok = hex_decode(s, len, &b) == 0 && b.len == n;
    if (ok)
        memcpy(out, b.data, n);
    buf_cleanup(&b);
    return ok;
}

/* Parses "ACCOUNT VERSION HASH VERIFIED N DEV:KEY..." (modified in place). */
static bool parse_list(char *s, struct pins_list *l) {
    memset(l, 0, sizeof *l);
    char *save = NULL;
    char *acct = strtok_r(s, " ", &save), *ver = strtok_r(NULL, " ", &save);
    char *hash = strtok_r(NULL, " ", &save), *verified = strtok_r(NULL, " ", &save);
    char *count = strtok_r(NULL, " ", &save);
    if (!acct || !ver || !hash || !verified || !count ||
        !hex_exact(acct, strlen(acct), l->account.b, ID_LEN) ||
        !hex_exact(hash, strlen(hash), l->hash, STATEMENT_HASH_LEN))
        return false;
    char *end;
    l->version = strtoull(ver, &end, 10);
    if (*end != '\0' || l->version == 0)
        return false;
    l->verified = strcmp(verified, "1") == 0;
    unsigned long n = strtoul(count, &end, 10);
    if (*end != '\0' || n == 0 || n > STATEMENT_MAX_DEVICES)
        return false;
    for (l->n = 0; l->n < n; l->n++) {
        char *d = strtok_r(NULL, " ", &save);
        char *colon = d ? strchr(d, ':') : NULL;
        if (!colon || !hex_exact(d, (size_t)(colon - d), l->devs[l->n].device_id.b, ID_LEN) ||
            !hex_exact(colon + 1, strlen(colon + 1), l->devs[l->n].identity_key, STATEMENT_KEY_LEN))
            return false;
    }
    return strtok_r(NULL, " ", &save) == NULL;
}

int pins_load(const char *dir, struct pins **out) {
    struct buf b;
    buf_init(&b);
    int rc = profile_read_file(dir, PINS_FILE, MAX_BYTES, &b);
    struct pins *p = xcalloc(1, sizeof *p);
    if (rc == STATUS_NOT_FOUND) {
        buf_cleanup(&b);
        *out = p;
        return 0;
    }
    if (rc == 0 && (b.len == 0 || memchr(b.data, '\0', b.len) != NULL))
        rc = STATUS_CORRUPT;
    if (rc == 0) {
        buf_append_u8(&b, '\0');
        char *save = NULL;
        char *line = strtok_r((char *)b.data, "\n", &save);
        if (line == NULL || strcmp(line, HEADER) != 0)
            rc = STATUS_CORRUPT;
        while (rc == 0 && (line = strtok_r(NULL, "\n", &save)) != NULL) {
            char *sp = strchr(line, ' ');
            struct pins_list l;
            if (sp == NULL) {
                rc = STATUS_CORRUPT;
                break;
            }
            *sp = '\0';
            const bool pending = strcmp(line, "pending") == 0;
            if ((!pending && strcmp(line, "pin") != 0) || !parse_list(sp + 1, &l)) {
                rc = STATUS_CORRUPT;
                break;
            }
            rc = pending ? pins_set_pending(p, &l) : pins_accept(p, &l);
            if (rc == 0 && !pending) {
                struct entry *e = find(p, &l.account);
                e->pin.verified = l.verified;
            }
        }
    }
    buf_cleanup(&b);
    if (rc != 0) {
        pins_free(p);
        return rc;
    }
    *out = p;
    return 0;
}
