/*
 * storage/keystore.c: wrapped per-owner data keys in small files beside the
 * master key (file format in keystore.h).
 *
 * Invariants:
 * - Every file in the key directory is replaced atomically (tmp, fsync, rename,
 *   fsync dir), so a crash leaves the old or the new version, never a mix.
 * - A data key file exists, durably, before any record sealed with its key can
 *   be committed (keystore_current_key() writes it before returning).
 * - Secrets are only in sodium_malloc() memory (master keys, blind secret, cache
 *   slots) or on the stack for the duration of one call, wiped before return.
 * - Master keys and cached data keys are held prepared (seal_key_prepare(), at
 *   load, creation and rotation), the derived HMAC state in the same struct as
 *   the key bytes, so wiping one wipes the other.
 * - The cache never holds a key of a destroyed owner: keystore_destroy() drops
 *   them under the same lock that loads them.
 *
 * Threads: any; `lock` serialises everything except keystore_blind_index(),
 * which reads the blind secret that never changes after open.
 */
#include "storage/keystore.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/check.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/keys.h"

#define MOD "keystore"
#define FILE_MAGIC "CCKS"
#define FILE_FORMAT 1
#define KIND_DATA 'D'
#define KIND_BLIND 'B'
/* magic | format | kind | owner | master key id: the additional data of entries */
#define FILE_AD_LEN (4 + 1 + 1 + ID_LEN + KEYSTORE_MASTER_ID_LEN)
#define FILE_HEADER_LEN (FILE_AD_LEN + 4)
#define ENTRY_LEN (SEAL_OVERHEAD + SEAL_KEY_LEN)
#define FILE_MAX (FILE_HEADER_LEN + KEYSTORE_MAX_VERSIONS * ENTRY_LEN)
#define WRAP_CF "keystore"
#define NONE UINT32_MAX

struct cache_entry {
    struct id owner;
    uint32_t version;
    bool current;
    uint32_t hnext; /* next in the bucket chain, or in the free list */
    uint32_t prev;  /* LRU list: head is the most recently used */
    uint32_t next;
};

struct keystore {
    pthread_mutex_t lock;
    char *key_dir;
    char *data_dir;
    enum seal_impl impl;
    struct seal_key *master; /* sodium_malloc */
    uint8_t master_id[KEYSTORE_MASTER_ID_LEN];
    struct seal_key *old_master; /* NULL, or the previous master key */
    uint8_t old_master_id[KEYSTORE_MASTER_ID_LEN];
    uint8_t *blind; /* blind-index secret, SEAL_KEY_LEN */

    struct seal_key *slots; /* cap prepared data keys, sodium_malloc */
    struct cache_entry *entries;
    uint32_t *buckets;
    uint32_t nbuckets; /* a power of two */
    uint32_t cap;
    uint32_t free_head;
    uint32_t lru_head;
    uint32_t lru_tail;
    _Atomic uint64_t destroyed; /* keystore_destroy() calls that began (generation) */
};

/* The parsed header of a wrapped-key file; `entries` points into the file bytes. */
struct keyfile {
    uint8_t kind;
    struct id owner;
    uint8_t master_id[KEYSTORE_MASTER_ID_LEN];
    uint32_t count;
    const uint8_t *ad; /* FILE_AD_LEN bytes */
    const uint8_t *entries;
};

static const struct id SERVER_OWNER;

static const struct id *owner_or_server(const struct id *owner) {
    return owner ? owner : &SERVER_OWNER;
}

static bool is_server(const struct id *owner) {
    return sodium_is_zero(owner->b, ID_LEN);
}

static void master_key_id(const struct seal_key *key, uint8_t out[KEYSTORE_MASTER_ID_LEN]) {
    static const char context[] = "carechat master key id";
    uint8_t h[16];
    crypto_generichash(h, sizeof h, (const uint8_t *)context, sizeof context - 1, key->bytes,
                       SEAL_KEY_LEN);
    memcpy(out, h, KEYSTORE_MASTER_ID_LEN);
}

static void id_hex8(const uint8_t id[KEYSTORE_MASTER_ID_LEN], char out[17]) {
    sodium_bin2hex(out, 17, id, KEYSTORE_MASTER_ID_LEN);
}

static void *secure_alloc(size_t n) {
    void *p = sodium_malloc(n);
    CHECK(p != NULL);
    return p;
}

/* ---- files ---- */

static char *path_join(const char *dir, const char *name) {
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s/%s", dir, name);
    return (char *)buf_steal(&b, NULL);
}

static char *owner_path(const struct keystore *ks, const struct id *owner, const char *suffix) {
    char hex[ID_HEX_LEN + 1];
    id_to_hex(owner, hex);
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s/%s%s", ks->data_dir, hex, suffix);
    return (char *)buf_steal(&b, NULL);
}

static int make_dir(const char *path) {
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    log_error(MOD, "cannot create %s: %s", path, strerror(errno));
    return STATUS_IO;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        log_error(MOD, "cannot sync directory %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return STATUS_IO;
    }
    close(fd);
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Replaces DIR/NAME with `data` durably. */
static int write_durably(const char *dir, const char *name, const uint8_t *data, size_t len) {
    char *path = path_join(dir, name);
    struct buf tmp;
    buf_init(&tmp);
    buf_printf(&tmp, "%s.tmp", path);
    int rc = STATUS_IO;
    int fd = open((char *)tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        log_error(MOD, "cannot write %s: %s", (char *)tmp.data, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename((char *)tmp.data, path) != 0) {
        log_error(MOD, "cannot rename %s: %s", (char *)tmp.data, strerror(errno));
        goto out;
    }
    rc = fsync_dir(dir);
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink((char *)tmp.data);
    buf_cleanup(&tmp);
    free(path);
    return rc;
}

/* Reads a whole small file. Returns 0, STATUS_NOT_FOUND, STATUS_CORRUPT (larger
 * than `max`) or STATUS_IO. */
static int read_small_file(const char *path, size_t max, struct buf *out) {
    buf_reset(out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return STATUS_NOT_FOUND;
        log_error(MOD, "cannot open %s: %s", path, strerror(errno));
        return STATUS_IO;
    }
    int rc = 0;
    uint8_t chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error(MOD, "cannot read %s: %s", path, strerror(errno));
            rc = STATUS_IO;
            break;
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > max) {
            log_error(MOD, "%s is larger than a key file can be", path);
            rc = STATUS_CORRUPT;
            break;
        }
        buf_append(out, chunk, (size_t)n);
    }
    sodium_memzero(chunk, sizeof chunk);
    close(fd);
    return rc;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- master keys ---- */

/* Loads a master key file into a new sodium_malloc'd key, prepared. `generate`
 * creates it when missing. Returns 0, STATUS_BAD_REQUEST (not a usable key
 * file) or STATUS_IO. */
static int load_master(const char *path, bool generate, struct seal_key **out) {
    struct seal_key *key = secure_alloc(sizeof *key);
    int rc = STATUS_BAD_REQUEST;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && generate) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        randombytes_buf(key->bytes, SEAL_KEY_LEN);
        if (fd < 0 || write_all(fd, key->bytes, SEAL_KEY_LEN) != 0 || fsync(fd) != 0) {
            log_error(MOD, "cannot create master key %s: %s", path, strerror(errno));
            if (fd >= 0)
                unlink(path);
            rc = STATUS_IO;
            goto fail;
        }
        close(fd);
        fd = -1;
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        rc = fsync_dir(slash ? dir : ".");
        free(dir);
        if (rc < 0)
            goto fail;
        log_warn(MOD,
                 "generated a new master key at %s; production keeps the master key on "
                 "another volume than the data (--master-key)",
                 path);
        seal_key_prepare(key->bytes, key);
        *out = key;
        return 0;
    }
    if (fd < 0) {
        int err = errno;
        log_error(MOD, "cannot open master key %s: %s", path, strerror(err));
        rc = err == ENOENT ? STATUS_BAD_REQUEST : STATUS_IO;
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        log_error(MOD, "cannot stat master key %s: %s", path, strerror(errno));
        rc = STATUS_IO;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        log_error(MOD, "master key %s is not a regular file", path);
        goto fail;
    }
    if (st.st_mode & 077) {
        log_error(MOD,
                  "refusing master key %s: mode %03o lets group or others read it; "
                  "chmod 600 it",
                  path, (unsigned)(st.st_mode & 0777));
        goto fail;
    }
    if (st.st_size != SEAL_KEY_LEN) {
        log_error(MOD, "master key %s must hold exactly %d bytes", path, SEAL_KEY_LEN);
        goto fail;
    }
    size_t got = 0;
    while (got < SEAL_KEY_LEN) {
        ssize_t n = read(fd, key->bytes + got, SEAL_KEY_LEN - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_error(MOD, "cannot read master key %s", path);
            rc = STATUS_IO;
            goto fail;
        }
        got += (size_t)n;
    }
    close(fd);
    seal_key_prepare(key->bytes, key);
    *out = key;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    sodium_free(key);
    return rc;
}

/* ---- wrapped-key files ---- */

static int parse_keyfile(const uint8_t *p, size_t len, struct keyfile *kf) {
    if (len < FILE_HEADER_LEN || memcmp(p, FILE_MAGIC, 4) != 0 || p[4] != FILE_FORMAT)
        return STATUS_CORRUPT;
    kf->kind = p[5];
    memcpy(kf->owner.b, p + 6, ID_LEN);
    memcpy(kf->master_id, p + 6 + ID_LEN, KEYSTORE_MASTER_ID_LEN);
    kf->count = key_get_u32(p + FILE_AD_LEN);
    kf->ad = p;
    kf->entries = p + FILE_HEADER_LEN;
    if (kf->count == 0 || kf->count > KEYSTORE_MAX_VERSIONS ||
        len != FILE_HEADER_LEN + (size_t)kf->count * ENTRY_LEN)
        return STATUS_CORRUPT;
    return 0;
}

/* The master key (current or old) whose id the file carries, or NULL. */
static const struct seal_key *wrapping_key(const struct keystore *ks, const struct keyfile *kf) {
    if (sodium_memcmp(kf->master_id, ks->master_id, KEYSTORE_MASTER_ID_LEN) == 0)
        return ks->master;
    if (ks->old_master &&
        sodium_memcmp(kf->master_id, ks->old_master_id, KEYSTORE_MASTER_ID_LEN) == 0)
        return ks->old_master;
    return NULL;
}

static void log_unknown_master(const struct keystore *ks, const char *what,
                               const struct keyfile *kf) {
    char file_id[17], cur_id[17];
    id_hex8(kf->master_id, file_id);
    id_hex8(ks->master_id, cur_id);
    log_error(MOD,
              "%s is wrapped by master key %s but the configured master key is %s "
              "(wrong --master-key, or an unfinished rotation: pass the old key too)",
              what, file_id, cur_id);
}

/* Unwraps entry i of a parsed file into key[] and reports its version. */
static int unwrap_entry(const struct keystore *ks, const struct keyfile *kf,
                        const struct seal_key *mkey, uint32_t i, uint32_t *version,
                        uint8_t key[SEAL_KEY_LEN]) {
    const uint8_t *e = kf->entries + (size_t)i * ENTRY_LEN;
    struct seal_key_id kid;
    if (seal_key_id_of(e, ENTRY_LEN, &kid) < 0 || sodium_memcmp(kid.owner.b, kf->owner.b, ID_LEN))
        return STATUS_CORRUPT;
    struct buf plain;
    buf_init(&plain);
    int rc = seal_open(ks->impl, mkey, WRAP_CF, kf->ad, FILE_AD_LEN, e, ENTRY_LEN, &plain);
    if (rc == 0 && plain.len != SEAL_KEY_LEN)
        rc = STATUS_CORRUPT;
    if (rc == 0) {
        memcpy(key, plain.data, SEAL_KEY_LEN);
        *version = kid.version;
    }
    buf_wipe(&plain);
    buf_cleanup(&plain);
    return rc;
}

/* Serialises a file of `count` keys (versions[i] -> keys + i*32) wrapped by mkey. */
static int build_keyfile(const struct keystore *ks, uint8_t kind, const struct id *owner,
                         const struct seal_key *mkey, const uint8_t mkey_id[KEYSTORE_MASTER_ID_LEN],
                         uint32_t count, const uint32_t *versions, const uint8_t *keys,
                         struct buf *out) {
    buf_reset(out);
    buf_append(out, FILE_MAGIC, 4);
    buf_append_u8(out, FILE_FORMAT);
    buf_append_u8(out, kind);
    buf_append(out, owner->b, ID_LEN);
    buf_append(out, mkey_id, KEYSTORE_MASTER_ID_LEN);
    uint8_t n4[4];
    key_put_u32(n4, count);
    buf_append(out, n4, 4);
    struct buf sealed;
    buf_init(&sealed);
    int rc = 0;
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        struct seal_key_id kid = {.owner = *owner, .version = versions[i]};
        rc = seal_value(ks->impl, mkey, &kid, WRAP_CF, out->data, FILE_AD_LEN,
                        keys + (size_t)i * SEAL_KEY_LEN, SEAL_KEY_LEN, &sealed);
        if (rc == 0)
            buf_append(out, sealed.data, sealed.len);
    }
    buf_cleanup(&sealed);
    return rc;
}

/* A file's keys, unwrapped into sodium_malloc memory (free with free_unwrapped). */
struct unwrapped {
    uint32_t count;
    uint32_t versions[KEYSTORE_MAX_VERSIONS];
    uint8_t *keys; /* count * SEAL_KEY_LEN */
};

static void free_unwrapped(struct unwrapped *u) {
    sodium_free(u->keys);
    u->keys = NULL;
}

/* Reads and unwraps the file at `path` (kind and owner must match). Returns 0,
 * STATUS_NOT_FOUND (no file), STATUS_CORRUPT (logged) or STATUS_IO. */
static int load_keyfile(const struct keystore *ks, const char *path, uint8_t kind,
                        const struct id *owner, struct unwrapped *u) {
    struct buf raw;
    buf_init(&raw);
    u->keys = NULL;
    int rc = read_small_file(path, FILE_MAX, &raw);
    if (rc < 0)
        goto out;
    struct keyfile kf;
    rc = parse_keyfile(raw.data, raw.len, &kf);
    if (rc == 0 && (kf.kind != kind || sodium_memcmp(kf.owner.b, owner->b, ID_LEN) != 0))
        rc = STATUS_CORRUPT;
    if (rc < 0) {
        log_error(MOD, "%s is not a valid key file", path);
        goto out;
    }
    const struct seal_key *mkey = wrapping_key(ks, &kf);
    if (!mkey) {
        log_unknown_master(ks, path, &kf);
        rc = STATUS_CORRUPT;
        goto out;
    }
    u->count = kf.count;
    u->keys = secure_alloc((size_t)kf.count * SEAL_KEY_LEN);
    for (uint32_t i = 0; i < kf.count && rc == 0; i++) {
        rc = unwrap_entry(ks, &kf, mkey, i, &u->versions[i], u->keys + (size_t)i * SEAL_KEY_LEN);
        if (rc == 0 && i > 0 && u->versions[i] <= u->versions[i - 1])
            rc = STATUS_CORRUPT;
    }
    if (rc < 0) {
        log_error(MOD, "%s does not open under its master key", path);
        free_unwrapped(u);
    }
out:
    buf_wipe(&raw);
    buf_cleanup(&raw);
    return rc;
}

static int store_keyfile(const struct keystore *ks, const char *dir, const char *name, uint8_t kind,
                         const struct id *owner, const struct seal_key *mkey,
                         const uint8_t *mkey_id, const struct unwrapped *u) {
    struct buf file;
    buf_init(&file);
    int rc = build_keyfile(ks, kind, owner, mkey, mkey_id, u->count, u->versions, u->keys, &file);
    if (rc == 0)
        rc = write_durably(dir, name, file.data, file.len);
    buf_cleanup(&file);
    return rc;
}

static char *owner_file_name(const struct id *owner) {
    char hex[ID_HEX_LEN + 1];
    id_to_hex(owner, hex);
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s.key", hex);
    return (char *)buf_steal(&b, NULL);
}

/* ---- cache ---- */

static uint32_t bucket_of(const struct keystore *ks, const struct id *owner) {
    /* owners are random ids: their first bytes are a fine hash */
    return key_get_u32(owner->b) & (ks->nbuckets - 1);
}

static void lru_unlink(struct keystore *ks, uint32_t i) {
    struct cache_entry *e = &ks->entries[i];
    if (e->prev != NONE)
        ks->entries[e->prev].next = e->next;
    else
        ks->lru_head = e->next;
    if (e->next != NONE)
        ks->entries[e->next].prev = e->prev;
    else
        ks->lru_tail = e->prev;
    e->prev = e->next = NONE;
}

static void lru_push_front(struct keystore *ks, uint32_t i) {
    struct cache_entry *e = &ks->entries[i];
    e->prev = NONE;
    e->next = ks->lru_head;
    if (ks->lru_head != NONE)
        ks->entries[ks->lru_head].prev = i;
    ks->lru_head = i;
    if (ks->lru_tail == NONE)
        ks->lru_tail = i;
}

static void cache_remove(struct keystore *ks, uint32_t i) {
    struct cache_entry *e = &ks->entries[i];
    uint32_t *link = &ks->buckets[bucket_of(ks, &e->owner)];
    while (*link != i) {
        CHECK(*link != NONE);
        link = &ks->entries[*link].hnext;
    }
    *link = e->hnext;
    lru_unlink(ks, i);
    sodium_memzero(&ks->slots[i], sizeof ks->slots[i]);
    e->hnext = ks->free_head;
    ks->free_head = i;
}

/* Finds (owner, version), or with current_only the owner's current key. */
static uint32_t cache_find(struct keystore *ks, const struct id *owner, uint32_t version,
                           bool current_only) {
    for (uint32_t i = ks->buckets[bucket_of(ks, owner)]; i != NONE; i = ks->entries[i].hnext) {
        struct cache_entry *e = &ks->entries[i];
        if (memcmp(e->owner.b, owner->b, ID_LEN) != 0)
            continue;
        if (current_only ? e->current : e->version == version) {
            lru_unlink(ks, i);
            lru_push_front(ks, i);
            return i;
        }
    }
    return NONE;
}

/* Caches `key` (raw bytes) prepared as (owner, version) unless it is there;
 * returns its slot, valid until the next insertion. */
static uint32_t cache_insert(struct keystore *ks, const struct id *owner, uint32_t version,
                             bool current, const uint8_t key[SEAL_KEY_LEN]) {
    uint32_t b = bucket_of(ks, owner);
    uint32_t found = NONE;
    for (uint32_t i = ks->buckets[b]; i != NONE; i = ks->entries[i].hnext) {
        struct cache_entry *e = &ks->entries[i];
        if (memcmp(e->owner.b, owner->b, ID_LEN) != 0)
            continue;
        if (current)
            e->current = false;
        if (e->version == version)
            found = i;
    }
    if (found != NONE) {
        ks->entries[found].current = ks->entries[found].current || current;
        return found;
    }
    if (ks->free_head == NONE)
        cache_remove(ks, ks->lru_tail);
    uint32_t i = ks->free_head;
    struct cache_entry *e = &ks->entries[i];
    ks->free_head = e->hnext;
    e->owner = *owner;
    e->version = version;
    e->current = current;
    e->hnext = ks->buckets[b];
    ks->buckets[b] = i;
    lru_push_front(ks, i);
    seal_key_prepare(key, &ks->slots[i]);
    return i;
}

static void cache_drop_owner(struct keystore *ks, const struct id *owner) {
    uint32_t i = ks->buckets[bucket_of(ks, owner)];
    while (i != NONE) {
        uint32_t next = ks->entries[i].hnext;
        if (memcmp(ks->entries[i].owner.b, owner->b, ID_LEN) == 0)
            cache_remove(ks, i);
        i = next;
    }
}

static void cache_init(struct keystore *ks, size_t entries) {
    ks->cap = (uint32_t)entries;
    ks->nbuckets = 1;
    while (ks->nbuckets < 2 * ks->cap)
        ks->nbuckets *= 2;
    ks->slots = secure_alloc((size_t)ks->cap * sizeof *ks->slots);
    sodium_memzero(ks->slots, (size_t)ks->cap * sizeof *ks->slots);
    ks->entries = xcalloc(ks->cap, sizeof *ks->entries);
    ks->buckets = xmalloc(ks->nbuckets * sizeof *ks->buckets);
    for (uint32_t i = 0; i < ks->nbuckets; i++)
        ks->buckets[i] = NONE;
    ks->free_head = NONE;
    for (uint32_t i = ks->cap; i-- > 0;) {
        ks->entries[i].hnext = ks->free_head;
        ks->entries[i].prev = ks->entries[i].next = NONE;
        ks->free_head = i;
    }
    ks->lru_head = ks->lru_tail = NONE;
}

/* ---- data keys ---- */

/* Loads the owner's file into the cache (every version, marking the last one
 * current); copies the wanted version (0: the current one) into *key. With
 * `create`, a missing file is created with version 1. Called with the lock held. */
static int load_owner(struct keystore *ks, const struct id *owner, uint32_t version, bool create,
                      struct seal_key_id *kid, struct seal_key *key) {
    char *path = owner_path(ks, owner, ".key");
    char *tomb = owner_path(ks, owner, ".destroyed");
    char *name = NULL;
    struct unwrapped u = {0};
    int rc;
    if (file_exists(tomb)) {
        /* a crash inside keystore_destroy() may have left the key file behind */
        unlink(path);
        rc = STATUS_NOT_FOUND;
        goto out;
    }
    rc = load_keyfile(ks, path, KIND_DATA, owner, &u);
    if (rc == STATUS_NOT_FOUND && create) {
        u.count = 1;
        u.versions[0] = 1;
        u.keys = secure_alloc(SEAL_KEY_LEN);
        randombytes_buf(u.keys, SEAL_KEY_LEN);
        name = owner_file_name(owner);
        rc = store_keyfile(ks, ks->data_dir, name, KIND_DATA, owner, ks->master, ks->master_id, &u);
    } else if (rc == STATUS_NOT_FOUND) {
        char hex[ID_HEX_LEN + 1];
        id_to_hex(owner, hex);
        log_error(MOD, "data key of owner %s is missing (and was not destroyed)", hex);
        rc = STATUS_CORRUPT;
    }
    if (rc < 0)
        goto out;
    rc = STATUS_CORRUPT;
    for (uint32_t i = 0; i < u.count; i++) {
        bool current = i + 1 == u.count;
        const uint8_t *k = u.keys + (size_t)i * SEAL_KEY_LEN;
        uint32_t slot = cache_insert(ks, owner, u.versions[i], current, k);
        if (version == 0 ? current : u.versions[i] == version) {
            *key = ks->slots[slot];
            kid->owner = *owner;
            kid->version = u.versions[i];
            rc = 0;
        }
    }
    if (rc < 0) {
        char hex[ID_HEX_LEN + 1];
        id_to_hex(owner, hex);
        log_error(MOD, "data key %s version %u does not exist", hex, (unsigned)version);
    }
out:
    if (u.keys)
        free_unwrapped(&u);
    free(name);
    free(tomb);
    free(path);
    return rc;
}

int keystore_current_key(struct keystore *ks, const struct id *owner, struct seal_key_id *kid,
                         struct seal_key *key) {
    owner = owner_or_server(owner);
    pthread_mutex_lock(&ks->lock);
    int rc = 0;
    uint32_t i = cache_find(ks, owner, 0, true);
    if (i != NONE) {
        *key = ks->slots[i];
        kid->owner = *owner;
        kid->version = ks->entries[i].version;
    } else {
        rc = load_owner(ks, owner, 0, true, kid, key);
    }
    pthread_mutex_unlock(&ks->lock);
    return rc;
}

int keystore_find_key(struct keystore *ks, const struct seal_key_id *kid, struct seal_key *key) {
    if (kid->version == 0)
        return STATUS_CORRUPT;
    pthread_mutex_lock(&ks->lock);
    int rc = 0;
    uint32_t i = cache_find(ks, &kid->owner, kid->version, false);
    if (i != NONE) {
        *key = ks->slots[i];
    } else {
        struct seal_key_id found;
        rc = load_owner(ks, &kid->owner, kid->version, false, &found, key);
    }
    pthread_mutex_unlock(&ks->lock);
    return rc;
}

int keystore_rotate_owner(struct keystore *ks, const struct id *owner) {
    owner = owner_or_server(owner);
    pthread_mutex_lock(&ks->lock);
    char *path = owner_path(ks, owner, ".key");
    char *tomb = owner_path(ks, owner, ".destroyed");
    char *name = owner_file_name(owner);
    struct unwrapped u = {0};
    int rc = STATUS_NOT_FOUND;
    if (file_exists(tomb))
        goto out;
    rc = load_keyfile(ks, path, KIND_DATA, owner, &u);
    if (rc == STATUS_NOT_FOUND) {
        rc = 0;
        u.count = 0;
        u.keys = secure_alloc(SEAL_KEY_LEN);
    } else if (rc == 0 && u.count == KEYSTORE_MAX_VERSIONS) {
        rc = STATUS_TOO_LARGE;
    } else if (rc == 0) {
        uint8_t *grown = secure_alloc((size_t)(u.count + 1) * SEAL_KEY_LEN);
        memcpy(grown, u.keys, (size_t)u.count * SEAL_KEY_LEN);
        free_unwrapped(&u);
        u.keys = grown;
    }
    if (rc < 0)
        goto out;
    uint32_t version = u.count ? u.versions[u.count - 1] + 1 : 1;
    u.versions[u.count] = version;
    uint8_t *fresh = u.keys + (size_t)u.count * SEAL_KEY_LEN;
    randombytes_buf(fresh, SEAL_KEY_LEN);
    u.count++;
    rc = store_keyfile(ks, ks->data_dir, name, KIND_DATA, owner, ks->master, ks->master_id, &u);
    if (rc == 0)
        cache_insert(ks, owner, version, true, fresh);
out:
    if (u.keys)
        free_unwrapped(&u);
    free(name);
    free(tomb);
    free(path);
    pthread_mutex_unlock(&ks->lock);
    return rc;
}

bool keystore_destroyed(struct keystore *ks, const struct id *owner) {
    if (!owner || is_server(owner))
        return false;
    char *tomb = owner_path(ks, owner, ".destroyed");
    bool gone = file_exists(tomb);
    free(tomb);
    return gone;
}

int keystore_destroy(struct keystore *ks, const struct id *owner) {
    if (!owner || is_server(owner))
        return STATUS_BAD_REQUEST;
    char hex[ID_HEX_LEN + 1];
    id_to_hex(owner, hex);
    pthread_mutex_lock(&ks->lock);
    char *path = owner_path(ks, owner, ".key");
    struct buf tomb_name;
    buf_init(&tomb_name);
    buf_printf(&tomb_name, "%s.destroyed", hex);
    atomic_fetch_add(&ks->destroyed, 1);
    /* The tombstone first: from then on nothing loads or recreates the key, even
     * if we crash before the key file is gone. */
    int rc = write_durably(ks->data_dir, (char *)tomb_name.data, (const uint8_t *)"", 0);
    if (rc < 0)
        goto out;
    cache_drop_owner(ks, owner);
    /* Overwrite before unlinking, so the wrapped key does not linger in the freed
     * blocks of a file system that writes in place. */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        static const uint8_t zeros[FILE_MAX];
        if (fstat(fd, &st) == 0 && st.st_size > 0 && (size_t)st.st_size <= sizeof zeros &&
            (write_all(fd, zeros, (size_t)st.st_size) != 0 || fsync(fd) != 0))
            log_warn(MOD, "cannot overwrite the data key of %s before deleting it", hex);
        close(fd);
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        log_error(MOD, "cannot delete %s: %s", path, strerror(errno));
        rc = STATUS_IO;
        goto out;
    }
    rc = fsync_dir(ks->data_dir);
    if (rc == 0)
        log_info(MOD, "destroyed the data key of %s", hex);
out:
    buf_cleanup(&tomb_name);
    free(path);
    pthread_mutex_unlock(&ks->lock);
    return rc;
}

uint64_t keystore_generation(struct keystore *ks) {
    return atomic_load(&ks->destroyed);
}

/* ---- master key rotation ---- */

/* Re-wraps one file under `to` unless it already is. */
static int rewrap_file(struct keystore *ks, const char *dir, const char *name, uint8_t kind,
                       const struct id *owner, const struct seal_key *to,
                       const uint8_t to_id[KEYSTORE_MASTER_ID_LEN]) {
    char *path = path_join(dir, name);
    struct buf raw;
    buf_init(&raw);
    struct unwrapped u = {0};
    int rc = read_small_file(path, FILE_MAX, &raw);
    if (rc == STATUS_NOT_FOUND)
        rc = 0; /* nothing to re-wrap */
    else if (rc < 0)
        goto out;
    struct keyfile kf;
    if (raw.len == 0)
        goto out;
    if (parse_keyfile(raw.data, raw.len, &kf) < 0) {
        log_error(MOD, "%s is not a valid key file", path);
        rc = STATUS_CORRUPT;
    }
    if (rc < 0 || sodium_memcmp(kf.master_id, to_id, KEYSTORE_MASTER_ID_LEN) == 0)
        goto out; /* invalid, or already wrapped by `to` */
    rc = load_keyfile(ks, path, kind, owner, &u);
    if (rc == 0)
        rc = store_keyfile(ks, dir, name, kind, owner, to, to_id, &u);
out:
    if (u.keys)
        free_unwrapped(&u);
    buf_wipe(&raw);
    buf_cleanup(&raw);
    free(path);
    return rc;
}

/* Re-wraps every data key file, then blind.key (last, so that an interrupted
 * rotation is visible at the next open), under `to`. */
static int rewrap_all(struct keystore *ks, const struct seal_key *to,
                      const uint8_t to_id[KEYSTORE_MASTER_ID_LEN]) {
    DIR *d = opendir(ks->data_dir);
    if (!d) {
        log_error(MOD, "cannot list %s: %s", ks->data_dir, strerror(errno));
        return STATUS_IO;
    }
    int rc = 0;
    size_t count = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct id owner;
        char hex[ID_HEX_LEN + 1];
        if (strlen(de->d_name) != ID_HEX_LEN + 4 || strcmp(de->d_name + ID_HEX_LEN, ".key") != 0)
            continue;
        memcpy(hex, de->d_name, ID_HEX_LEN);
        hex[ID_HEX_LEN] = '\0';
        if (id_from_hex(hex, &owner) < 0)
            continue;
        rc = rewrap_file(ks, ks->data_dir, de->d_name, KIND_DATA, &owner, to, to_id);
        count++;
    }
    closedir(d);
    if (rc == 0)
        rc = rewrap_file(ks, ks->key_dir, "blind.key", KIND_BLIND, &SERVER_OWNER, to, to_id);
    if (rc == 0) {
        char id[17];
        id_hex8(to_id, id);
        log_info(MOD, "%zu data keys and the blind-index secret are wrapped by master key %s",
                 count, id);
    }
    return rc;
}

int keystore_rotate_master(struct keystore *ks, const char *new_master_path) {
    struct seal_key *fresh = NULL;
    int rc = load_master(new_master_path, false, &fresh);
    if (rc < 0)
        return rc;
    uint8_t fresh_id[KEYSTORE_MASTER_ID_LEN];
    master_key_id(fresh, fresh_id);
    pthread_mutex_lock(&ks->lock);
    rc = rewrap_all(ks, fresh, fresh_id);
    if (rc == 0) {
        sodium_free(ks->old_master);
        ks->old_master = NULL;
        sodium_free(ks->master);
        ks->master = fresh;
        memcpy(ks->master_id, fresh_id, KEYSTORE_MASTER_ID_LEN);
        fresh = NULL;
    }
    pthread_mutex_unlock(&ks->lock);
    sodium_free(fresh);
    return rc;
}

void keystore_master_key_id(struct keystore *ks, uint8_t out[KEYSTORE_MASTER_ID_LEN]) {
    pthread_mutex_lock(&ks->lock);
    memcpy(out, ks->master_id, KEYSTORE_MASTER_ID_LEN);
    pthread_mutex_unlock(&ks->lock);
}

void keystore_blind_index(struct keystore *ks, const void *data, size_t len, uint8_t out[32]) {
    crypto_auth_hmacsha256(out, data, len, ks->blind);
}

/* ---- open and close ---- */

static bool dir_has_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    size_t k = strlen(suffix);
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        found = n > k && strcmp(de->d_name + n - k, suffix) == 0;
    }
    closedir(d);
    return found;
}

bool keystore_dir_has_keys(const char *key_dir) {
    char *blind = path_join(key_dir, "blind.key");
    char *data = path_join(key_dir, "data");
    bool found =
        file_exists(blind) || dir_has_suffix(data, ".key") || dir_has_suffix(data, ".destroyed");
    free(data);
    free(blind);
    return found;
}

/* Refuses a key directory (or its data/) that group or others may enter or read:
 * the key files are 0600, but their names are owner ids. */
static int check_private_dir(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        log_error(MOD, "cannot stat %s: %s", path, strerror(errno));
        return errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO;
    }
    if (!S_ISDIR(st.st_mode)) {
        log_error(MOD, "%s is not a directory", path);
        return STATUS_BAD_REQUEST;
    }
    if (st.st_mode & 077) {
        log_error(MOD, "refusing key directory %s: mode %03o lets group or others in; chmod 700 it",
                  path, (unsigned)(st.st_mode & 0777));
        return STATUS_BAD_REQUEST;
    }
    return 0;
}

/* A new key store: nothing of another one may be there; creates the directories. */
static int prepare_new_dir(const char *key_dir, const char *data_dir) {
    if (keystore_dir_has_keys(key_dir)) {
        log_error(MOD,
                  "refusing to create a key store in %s: it holds the keys of another "
                  "database already",
                  key_dir);
        return STATUS_CONFLICT;
    }
    int rc = make_dir(key_dir);
    if (rc == 0)
        rc = make_dir(data_dir);
    if (rc == 0)
        rc = check_private_dir(key_dir);
    if (rc == 0)
        rc = check_private_dir(data_dir);
    return rc;
}

/* An existing key store: its directories must be there, private, and hold keys. */
static int check_existing_dir(const char *key_dir, const char *data_dir) {
    struct stat st;
    if (stat(key_dir, &st) != 0 && errno == ENOENT) {
        log_error(MOD, "the key directory %s does not exist (key volume not mounted?)", key_dir);
        return STATUS_NOT_FOUND;
    }
    int rc = check_private_dir(key_dir);
    if (rc == 0 && !keystore_dir_has_keys(key_dir)) {
        log_error(MOD, "the key directory %s holds no key store (empty or unmounted key volume?)",
                  key_dir);
        rc = STATUS_NOT_FOUND;
    }
    if (rc == 0)
        rc = check_private_dir(data_dir);
    return rc;
}

/* Loads blind.key, generating it in a new key store. */
static int open_blind(struct keystore *ks, bool create) {
    char *path = path_join(ks->key_dir, "blind.key");
    struct unwrapped u = {0};
    int rc = load_keyfile(ks, path, KIND_BLIND, &SERVER_OWNER, &u);
    if (rc == STATUS_NOT_FOUND && !create) {
        log_error(MOD, "%s is missing while data keys exist", path);
        rc = STATUS_CORRUPT;
    } else if (rc == STATUS_NOT_FOUND) {
        u.count = 1;
        u.versions[0] = 1;
        u.keys = secure_alloc(SEAL_KEY_LEN);
        randombytes_buf(u.keys, SEAL_KEY_LEN);
        rc = store_keyfile(ks, ks->key_dir, "blind.key", KIND_BLIND, &SERVER_OWNER, ks->master,
                           ks->master_id, &u);
    } else if (rc == 0 && u.count != 1) {
        log_error(MOD, "%s holds %u secrets instead of one", path, (unsigned)u.count);
        rc = STATUS_CORRUPT;
    }
    if (rc == 0)
        memcpy(ks->blind, u.keys, SEAL_KEY_LEN);
    if (u.keys)
        free_unwrapped(&u);
    free(path);
    return rc;
}

int keystore_open(const struct keystore_config *cfg, struct keystore **out) {
    if (!cfg || !cfg->key_dir || !*cfg->key_dir)
        return STATUS_BAD_REQUEST;
    int rc = seal_init();
    if (rc < 0)
        return rc;
    struct keystore *ks = xcalloc(1, sizeof *ks);
    pthread_mutex_init(&ks->lock, NULL);
    ks->impl = cfg->impl;
    ks->key_dir = xstrdup(cfg->key_dir);
    ks->data_dir = path_join(cfg->key_dir, "data");
    ks->blind = secure_alloc(SEAL_KEY_LEN);
    cache_init(ks, cfg->cache_entries ? cfg->cache_entries : 1024);
    char *default_master = path_join(cfg->key_dir, "master.key");
    const char *master_path = cfg->master_key_path ? cfg->master_key_path : default_master;
    rc = cfg->create ? prepare_new_dir(ks->key_dir, ks->data_dir)
                     : check_existing_dir(ks->key_dir, ks->data_dir);
    if (rc < 0)
        goto fail;
    if (!cfg->create && !file_exists(master_path)) {
        /* A new master key would open none of the data keys: never make one here. */
        log_error(MOD,
                  "the master key %s is missing while %s holds keys: restore it (or point "
                  "--master-key at it); a new one would not open them",
                  master_path, ks->key_dir);
        rc = STATUS_BAD_REQUEST;
        goto fail;
    }
    rc = load_master(master_path, cfg->create && cfg->master_key_path == NULL, &ks->master);
    if (rc < 0)
        goto fail;
    master_key_id(ks->master, ks->master_id);
    if (cfg->old_master_key_path) {
        rc = load_master(cfg->old_master_key_path, false, &ks->old_master);
        if (rc < 0)
            goto fail;
        master_key_id(ks->old_master, ks->old_master_id);
        rc = rewrap_all(ks, ks->master, ks->master_id);
        if (rc < 0)
            goto fail;
    }
    rc = open_blind(ks, cfg->create);
    if (rc < 0)
        goto fail;
    free(default_master);
    *out = ks;
    return 0;
fail:
    free(default_master);
    keystore_close(ks);
    return rc;
}

void keystore_close(struct keystore *ks) {
    if (!ks)
        return;
    sodium_free(ks->slots);
    sodium_free(ks->master);
    sodium_free(ks->old_master);
    sodium_free(ks->blind);
    free(ks->entries);
    free(ks->buckets);
    free(ks->data_dir);
    free(ks->key_dir);
    pthread_mutex_destroy(&ks->lock);
    free(ks);
}
