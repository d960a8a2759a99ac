/*
 * server/apply_fixture.h: the test fixture shared by the apply tests: a store
 * and journal in a fresh directory under $TEST_TMPDIR, with apply_entry() as
 * the journal's apply function; proposing an entry records its encoding so
 * that a test can replay the same entries on another empty store; people and
 * devices created through the account kinds with deterministic ids.
 *
 * Test code only (cmocka): every failure is a cmocka assertion, so nothing
 * here returns an error of its own. The recorded entries and the last result
 * are process-wide; run on the test's thread only, one test at a time.
 */
#ifndef SERVER_APPLY_FIXTURE_H
#define SERVER_APPLY_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "protocol/proto.h"
#include "storage/journal.h"
#include "server/records.h"
#include "storage/store.h"

/* Entry times start here; a day in milliseconds. */
#define FIXTURE_T0 1790000000000LL
#define FIXTURE_DAY (24LL * 3600 * 1000)

struct fixture_db {
    char dir[512];
    struct store *store;
    struct journal *journal;
};

/* Opens a store and journal in a new directory $TEST_TMPDIR/<name>-XXXXXX
 * (/tmp if TEST_TMPDIR is unset). Asserts on any failure. */
void fixture_open(struct fixture_db *db, const char *name);

/* Records of an older server, present before any entry: once set (NULL:
 * none, the default), every store that fixture_open(), fixture_check_replay()
 * and fixture_check_read_cache() open first runs `seed` in a transaction of
 * its own (journal position 1), which writes them with txn_put() as that
 * server did and returns 0. */
void fixture_set_seed(int (*seed)(struct store_txn *txn));

/* Closes the journal and the store; the directory stays for inspection. */
void fixture_close(struct fixture_db *db);

/* Runs `fn(ctx, txn)` in a transaction of its own, through an entry of the
 * journal that only it applies (not recorded for replay): writes records as
 * an older server left them. Asserts that `fn` returns 0. */
void fixture_run_txn(struct fixture_db *db, int (*fn)(void *ctx, struct store_txn *txn), void *ctx);

/* Forgets every recorded entry (without freeing them: call
 * fixture_log_cleanup() first if any were recorded) and empties the last
 * result. Call at the start of every test that proposes. */
void fixture_log_reset(void);

/* Frees every recorded entry and the last result. */
void fixture_log_cleanup(void);

/* Appends the encoded entry `data` to the journal and polls it until the
 * entry is applied (asserting it is, within 10 s). Keeps a copy of the apply
 * result for fixture_last_result(). Returns the apply status: 0 or a negative
 * STATUS_*. Does not record the entry. */
int fixture_append(struct fixture_db *db, const uint8_t *data, size_t len);

/* Sets the entry version, encodes `e`, records the encoding for
 * fixture_replay() (at most 128 per test) and appends it with
 * fixture_append(). Returns the apply status. */
int fixture_propose(struct fixture_db *db, Carechat__Entry__V1__Entry *e);

/* Appends every recorded entry, in order, to `db`, ignoring their statuses. */
void fixture_replay(struct fixture_db *db);

/* Runs `scenario` on a new store (recording its entries), replays them on
 * another and asserts that both hold the same records in every column family,
 * then checks them with fixture_check_read_cache() and that its batches left
 * those records too (a restart may batch the journal differently); resets the
 * recorded entries before and frees them after. `name` names the directories. */
void fixture_check_replay(const char *name, void (*scenario)(struct fixture_db *db));

/* Replays every recorded entry into two new stores, one whose transactions
 * use the read cache (storage/store.h txn_get()) and one that reads every
 * record from RocksDB, appending them all at once so that the journal applies
 * them in batches; asserts that each entry got the same status and result in
 * both and that both hold the same records, and that the cache answered
 * reads. `name` names the directories. */
void fixture_check_read_cache(const char *name);

/* The result of the last entry applied; owned by the fixture, valid until the
 * next append or fixture_log_cleanup(). */
const struct buf *fixture_last_result(void);

/* `n` bytes at `p` as protobuf bytes (not copied: `p` must outlive the use). */
ProtobufCBinaryData fixture_bin(const void *p, size_t n);

/* A store_scan callback: appends the record to the struct buf `ctx` as key
 * length, key, value length, value (varint lengths). Returns true. */
bool fixture_dump_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);

/* Appends every record of the column families `from` to `to` (inclusive) to
 * `out` in key order, as fixture_dump_one() does. */
void fixture_dump(struct fixture_db *db, enum store_cf from, enum store_cf to, struct buf *out);

/* The newest audit record (the one with the highest index); fails the test
 * when there is none. */
struct rec_audit fixture_last_audit(struct fixture_db *db);

/* A device: id 0xd0 ... n, a fresh signing key pair, a random encryption key
 * (key id 1, expiring at T0 + 30 days) and its signature. */
struct fixture_dev {
    struct id id;
    uint8_t pk[32], sk[64], ek[32], sig[64];
};

void fixture_dev_make(struct fixture_dev *d, int n);

/* Fills `out` to register `d` (label "phone"); `out` points into `d`. */
void fixture_dev_entry(struct fixture_dev *d, Carechat__Entry__V1__DeviceNew *out);

/* A person: id 0xa0 ... n, `email` and its blind index (SHA-256). */
struct fixture_person {
    struct id id;
    char email[64];
    uint8_t index[32];
};

void fixture_person(struct fixture_person *p, const char *email, uint8_t n);

/* Proposes the bootstrap of `p` as the first sysadmin at T0; asserts it applies. */
void fixture_bootstrap(struct fixture_db *db, struct fixture_person *p);

/* `by` invites `p` as `role`; `p` registers with device `d`. Asserts both apply. */
void fixture_join(struct fixture_db *db, const struct fixture_person *by, struct fixture_person *p,
                  uint32_t role, struct fixture_dev *d);

/* `p` logs in with the new device `d`. Asserts it applies. */
void fixture_add_device(struct fixture_db *db, const struct fixture_person *p,
                        struct fixture_dev *d);

/* `from` opens the direct conversation `conv` with `to` at T0 + 10. Returns the
 * apply status. */
int fixture_direct(struct fixture_db *db, const struct fixture_person *from,
                   const struct fixture_person *to, const struct id *conv);

#endif
