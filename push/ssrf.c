/*
 * push/ssrf.c: address classification (contract in ssrf.h).
 *
 * IPv4 is a table of prefixes checked in order; IPv6 either embeds an IPv4
 * address (judged by the IPv4 table) or is matched against its own table.
 * Anything not listed is public.
 */
#include "push/ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct v4_range {
    uint32_t net;
    int bits;
    enum push_ssrf_class cls;
};

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static const struct v4_range V4_RANGES[] = {
    {V4(0, 0, 0, 0), 8, PUSH_SSRF_UNSPECIFIED},     {V4(10, 0, 0, 0), 8, PUSH_SSRF_PRIVATE},
    {V4(100, 64, 0, 0), 10, PUSH_SSRF_CGNAT},       {V4(127, 0, 0, 0), 8, PUSH_SSRF_LOOPBACK},
    {V4(169, 254, 0, 0), 16, PUSH_SSRF_LINK_LOCAL}, {V4(172, 16, 0, 0), 12, PUSH_SSRF_PRIVATE},
    {V4(192, 0, 0, 0), 24, PUSH_SSRF_RESERVED},     {V4(192, 0, 2, 0), 24, PUSH_SSRF_RESERVED},
    {V4(192, 88, 99, 0), 24, PUSH_SSRF_RESERVED},   {V4(192, 168, 0, 0), 16, PUSH_SSRF_PRIVATE},
    {V4(198, 18, 0, 0), 15, PUSH_SSRF_RESERVED},    {V4(198, 51, 100, 0), 24, PUSH_SSRF_RESERVED},
    {V4(203, 0, 113, 0), 24, PUSH_SSRF_RESERVED},   {V4(224, 0, 0, 0), 4, PUSH_SSRF_MULTICAST},
    {V4(240, 0, 0, 0), 4, PUSH_SSRF_RESERVED}, /* includes 255.255.255.255 */
};

static enum push_ssrf_class classify_v4(uint32_t a) {
    for (size_t i = 0; i < sizeof V4_RANGES / sizeof V4_RANGES[0]; i++) {
        uint32_t mask = 0xffffffffu << (32 - V4_RANGES[i].bits);
        if ((a & mask) == V4_RANGES[i].net)
            return V4_RANGES[i].cls;
    }
    return PUSH_SSRF_PUBLIC;
}

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool prefix_is(const uint8_t *a, const uint8_t *prefix, int bits) {
    int bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, prefix, (size_t)bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (prefix[bytes] & mask);
}

struct v6_range {
    uint8_t net[16];
    int bits;
    enum push_ssrf_class cls;
};

static const struct v6_range V6_RANGES[] = {
    {{0x01, 0x00}, 64, PUSH_SSRF_RESERVED},             /* 100::/64 discard */
    {{0x20, 0x01, 0x00, 0x00}, 32, PUSH_SSRF_RESERVED}, /* Teredo */
    {{0x20, 0x01, 0x00, 0x02}, 48, PUSH_SSRF_RESERVED}, /* benchmarking */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, PUSH_SSRF_RESERVED}, /* documentation */
    {{0x20, 0x01, 0x00, 0x10}, 28, PUSH_SSRF_RESERVED}, /* ORCHID */
    {{0xfc}, 7, PUSH_SSRF_PRIVATE},                     /* unique local */
    {{0xfe, 0x80}, 10, PUSH_SSRF_LINK_LOCAL},
    {{0xfe, 0xc0}, 10, PUSH_SSRF_PRIVATE}, /* deprecated site-local */
    {{0xff}, 8, PUSH_SSRF_MULTICAST},
};

static enum push_ssrf_class classify_v6(const uint8_t a[16]) {
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    static const uint8_t sixtofour[2] = {0x20, 0x02};
    if (memcmp(a, zero, 15) == 0)
        return a[15] == 0   ? PUSH_SSRF_UNSPECIFIED
               : a[15] == 1 ? PUSH_SSRF_LOOPBACK
                            : PUSH_SSRF_RESERVED;
    /* ::ffff:a.b.c.d, ::a.b.c.d (deprecated compatible), 64:ff9b::a.b.c.d */
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, zero, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return classify_v4(load_be32(a + 12));
    if (memcmp(a, sixtofour, 2) == 0)
        return classify_v4(load_be32(a + 2));
    for (size_t i = 0; i < sizeof V6_RANGES / sizeof V6_RANGES[0]; i++) {
        if (prefix_is(a, V6_RANGES[i].net, V6_RANGES[i].bits))
            return V6_RANGES[i].cls;
    }
    return PUSH_SSRF_PUBLIC;
}

enum push_ssrf_class push_ssrf_classify(const struct sockaddr *sa, socklen_t len) {
    if (sa == NULL)
        return PUSH_SSRF_UNSUPPORTED;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return classify_v4(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return classify_v6(in6->sin6_addr.s6_addr);
    }
    return PUSH_SSRF_UNSUPPORTED;
}

enum push_ssrf_class push_ssrf_classify_text(const char *text) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, text, &a4) == 1)
        return classify_v4(ntohl(a4.s_addr));
    if (inet_pton(AF_INET6, text, &a6) == 1)
        return classify_v6(a6.s6_addr);
    return PUSH_SSRF_UNSUPPORTED;
}

const char *push_ssrf_class_str(enum push_ssrf_class c) {
    static const char *const names[PUSH_SSRF_CLASS_COUNT] = {
        "public", "unspecified", "loopback", "private",     "link_local",
        "cgnat",  "multicast",   "reserved", "unsupported",
    };
    return (unsigned)c < PUSH_SSRF_CLASS_COUNT ? names[c] : "unknown";
}
