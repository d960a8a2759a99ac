/*
 * client/statement_test.c: the signed byte layouts match carechat.proto's
 * comments byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/status.h"
#include "client/statement.h"

static void test_statement_encryption_key_layout(void **state) {
    (void)state;
    uint8_t pk[STATEMENT_KEY_LEN];
    for (size_t i = 0; i < sizeof pk; i++)
        pk[i] = (uint8_t)(0xa0 + i);
    uint8_t out[STATEMENT_ENCRYPTION_KEY_LEN];
    statement_encryption_key(pk, 0x01020304u, 0x1122334455667788LL, out);
    assert_memory_equal(out, "carechat.v1 encryption key", 26);
    assert_memory_equal(out + 26, pk, 32);
    const uint8_t tail[] = {1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    assert_memory_equal(out + 58, tail, sizeof tail);
}

/* The entries are signed sorted by device id, so the caller's order does not
 * change the bytes. */
static void test_statement_device_list_layout_sorted(void **state) {
    (void)state;
    struct id account;
    memset(account.b, 0xcc, ID_LEN);
    struct statement_device d[2];
    memset(d, 0, sizeof d);
    memset(d[0].device_id.b, 0x20, ID_LEN);
    memset(d[0].identity_key, 0x21, STATEMENT_KEY_LEN);
    memset(d[1].device_id.b, 0x10, ID_LEN);
    memset(d[1].identity_key, 0x11, STATEMENT_KEY_LEN);

    struct buf a, b;
    buf_init(&a);
    buf_init(&b);
    assert_int_equal(statement_device_list(&account, 0x0102, d, 2, NULL, &a), 0);
    struct statement_device swapped[2] = {d[1], d[0]};
    assert_int_equal(statement_device_list(&account, 0x0102, swapped, 2, NULL, &b), 0);
    assert_int_equal(a.len, 23 + 16 + 8 + 4 + 2 * 48 + 32); /* prev hash: zeros */
    assert_int_equal(b.len, a.len);
    assert_memory_equal(a.data, b.data, a.len);

    const uint8_t *p = a.data;
    assert_memory_equal(p, "carechat.v1 device list", 23);
    assert_memory_equal(p + 23, account.b, 16);
    const uint8_t version_count[] = {0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 2};
    assert_memory_equal(p + 39, version_count, sizeof version_count);
    assert_memory_equal(p + 51, d[1].device_id.b, 16);
    assert_memory_equal(p + 67, d[1].identity_key, 32);
    assert_memory_equal(p + 99, d[0].device_id.b, 16);
    assert_memory_equal(p + 115, d[0].identity_key, 32);
    /* From version 2 on, the previous list's hash follows. */
    uint8_t prev[32];
    memset(prev, 0x5a, sizeof prev);
    buf_reset(&b);
    assert_int_equal(statement_device_list(&account, 2, d, 2, prev, &b), 0);
    assert_int_equal(b.len, 23 + 16 + 8 + 4 + 2 * 48 + 32);
    assert_memory_equal(b.data + b.len - 32, prev, 32);
    buf_cleanup(&a);
    buf_cleanup(&b);
}

static void test_statement_device_list_refuses_bad_lists(void **state) {
    (void)state;
    struct id account = {{0}};
    struct statement_device d[STATEMENT_MAX_DEVICES + 1];
    memset(d, 0, sizeof d);
    for (size_t i = 0; i < STATEMENT_MAX_DEVICES + 1; i++)
        d[i].device_id.b[0] = (uint8_t)i;
    struct buf out;
    buf_init(&out);
    assert_int_equal(statement_device_list(&account, 1, d, 0, NULL, &out), STATUS_BAD_REQUEST);
    assert_int_equal(statement_device_list(&account, 1, d, STATEMENT_MAX_DEVICES + 1, NULL, &out),
                     STATUS_BAD_REQUEST);
    assert_int_equal(statement_device_list(&account, 1, d, STATEMENT_MAX_DEVICES, NULL, &out), 0);
    size_t len = out.len;
    d[1].device_id = d[0].device_id;
    assert_int_equal(statement_device_list(&account, 1, d, 2, NULL, &out), STATUS_BAD_REQUEST);
    assert_int_equal(out.len, len);
    buf_cleanup(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_encryption_key_layout),
        cmocka_unit_test(test_statement_device_list_layout_sorted),
        cmocka_unit_test(test_statement_device_list_refuses_bad_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
