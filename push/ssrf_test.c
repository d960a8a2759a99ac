/* push/ssrf_test.c: the address classification table behind the Web Push SSRF
 * defence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>

#include "push/ssrf.h"

struct row {
    const char *addr;
    enum push_ssrf_class want;
};

static const struct row TABLE[] = {
    {"8.8.8.8", PUSH_SSRF_PUBLIC},
    {"142.250.74.10", PUSH_SSRF_PUBLIC},
    {"0.0.0.0", PUSH_SSRF_UNSPECIFIED},
    {"0.1.2.3", PUSH_SSRF_UNSPECIFIED},
    {"127.0.0.1", PUSH_SSRF_LOOPBACK},
    {"127.255.255.254", PUSH_SSRF_LOOPBACK},
    {"10.0.0.1", PUSH_SSRF_PRIVATE},
    {"172.16.0.1", PUSH_SSRF_PRIVATE},
    {"172.31.255.255", PUSH_SSRF_PRIVATE},
    {"172.32.0.1", PUSH_SSRF_PUBLIC},
    {"192.168.1.1", PUSH_SSRF_PRIVATE},
    {"169.254.169.254", PUSH_SSRF_LINK_LOCAL},
    {"100.64.0.1", PUSH_SSRF_CGNAT},
    {"100.127.255.255", PUSH_SSRF_CGNAT},
    {"100.128.0.1", PUSH_SSRF_PUBLIC},
    {"224.0.0.1", PUSH_SSRF_MULTICAST},
    {"239.255.255.250", PUSH_SSRF_MULTICAST},
    {"240.0.0.1", PUSH_SSRF_RESERVED},
    {"255.255.255.255", PUSH_SSRF_RESERVED},
    {"192.0.0.170", PUSH_SSRF_RESERVED},
    {"192.0.2.1", PUSH_SSRF_RESERVED},
    {"198.18.0.1", PUSH_SSRF_RESERVED},
    {"198.51.100.7", PUSH_SSRF_RESERVED},
    {"203.0.113.9", PUSH_SSRF_RESERVED},
    {"2a00:1450:4001:82a::200e", PUSH_SSRF_PUBLIC},
    {"::", PUSH_SSRF_UNSPECIFIED},
    {"::1", PUSH_SSRF_LOOPBACK},
    {"fe80::1", PUSH_SSRF_LINK_LOCAL},
    {"febf::1", PUSH_SSRF_LINK_LOCAL},
    {"fc00::1", PUSH_SSRF_PRIVATE},
    {"fd12:3456::1", PUSH_SSRF_PRIVATE},
    {"fec0::1", PUSH_SSRF_PRIVATE},
    {"ff02::1", PUSH_SSRF_MULTICAST},
    {"::ffff:127.0.0.1", PUSH_SSRF_LOOPBACK},
    {"::ffff:169.254.169.254", PUSH_SSRF_LINK_LOCAL},
    {"::ffff:10.1.2.3", PUSH_SSRF_PRIVATE},
    {"::ffff:8.8.8.8", PUSH_SSRF_PUBLIC},
    {"::127.0.0.1", PUSH_SSRF_LOOPBACK},
    {"64:ff9b::a9fe:a9fe", PUSH_SSRF_LINK_LOCAL},
    {"64:ff9b::808:808", PUSH_SSRF_PUBLIC},
    {"2002:7f00:1::", PUSH_SSRF_LOOPBACK},
    {"2002:c0a8:101::1", PUSH_SSRF_PRIVATE},
    {"2001::1", PUSH_SSRF_RESERVED},
    {"2001:db8::1", PUSH_SSRF_RESERVED},
    {"100::1", PUSH_SSRF_RESERVED},
    {"not-an-address", PUSH_SSRF_UNSUPPORTED},
    {"127.1", PUSH_SSRF_UNSUPPORTED}, /* inet_pton refuses short forms; the resolver
                                         turns them into 127.0.0.1, classified then */
};

static void test_ssrf_classification_table(void **state) {
    int bad = 0;
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++) {
        enum push_ssrf_class got = push_ssrf_classify_text(TABLE[i].addr);
        if (got != TABLE[i].want) {
            fprintf(stderr, "%s: got %s, want %s\n", TABLE[i].addr, push_ssrf_class_str(got),
                    push_ssrf_class_str(TABLE[i].want));
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_ssrf_sockaddr_forms(void **state) {
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    assert_int_equal(push_ssrf_classify((struct sockaddr *)&in, sizeof in), PUSH_SSRF_LOOPBACK);
    /* a truncated length is not trusted */
    assert_int_equal(push_ssrf_classify((struct sockaddr *)&in, 4), PUSH_SSRF_UNSUPPORTED);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    in6.sin6_addr.s6_addr[15] = 1;
    assert_int_equal(push_ssrf_classify((struct sockaddr *)&in6, sizeof in6), PUSH_SSRF_LOOPBACK);
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_int_equal(push_ssrf_classify(&un, sizeof un), PUSH_SSRF_UNSUPPORTED);
    assert_int_equal(push_ssrf_classify(NULL, 0), PUSH_SSRF_UNSUPPORTED);
    assert_string_equal(push_ssrf_class_str(PUSH_SSRF_LINK_LOCAL), "link_local");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssrf_classification_table),
        cmocka_unit_test(test_ssrf_sockaddr_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
