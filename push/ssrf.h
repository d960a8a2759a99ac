/*
 * push/ssrf.h: which network addresses a user-supplied URL may make us reach.
 *
 * Web Push endpoints come from clients, so a hostile one could point the
 * notifier at the server's own network (loopback services, a cloud metadata
 * address, private ranges). push/webpush.c resolves the endpoint's host itself,
 * refuses it unless every address is PUBLIC here (or the host is on the
 * configured allow-list), pins the checked addresses with CURLOPT_RESOLVE and
 * checks again the address libcurl actually connects to.
 *
 * IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96)
 * and 6to4 (2002::/16) addresses are judged by the IPv4 address they carry;
 * Teredo (2001::/32) hides its target and is refused.
 *
 * Pure functions; safe from any thread.
 */
#ifndef PUSH_SSRF_H
#define PUSH_SSRF_H

#include <sys/socket.h>

enum push_ssrf_class {
    PUSH_SSRF_PUBLIC = 0,  /* may be reached */
    PUSH_SSRF_UNSPECIFIED, /* 0.0.0.0/8, :: */
    PUSH_SSRF_LOOPBACK,    /* 127.0.0.0/8, ::1 */
    PUSH_SSRF_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 */
    PUSH_SSRF_LINK_LOCAL,  /* 169.254/16 (cloud metadata), fe80::/10 */
    PUSH_SSRF_CGNAT,       /* 100.64/10 */
    PUSH_SSRF_MULTICAST,   /* 224/4, ff00::/8 */
    PUSH_SSRF_RESERVED,    /* 240/4, broadcast, 192.0.0/24, benchmarking 198.18/15,
                              documentation ranges, 6to4 relay, 100::/64, Teredo,
                              other special-purpose blocks */
    PUSH_SSRF_UNSUPPORTED, /* not an AF_INET or AF_INET6 address */
    PUSH_SSRF_CLASS_COUNT
};

/* Classifies `sa` (AF_INET or AF_INET6; `len` its size). */
enum push_ssrf_class push_ssrf_classify(const struct sockaddr *sa, socklen_t len);

/* Parses a numeric IPv4 or IPv6 address (no brackets) and classifies it;
 * PUSH_SSRF_UNSUPPORTED when `text` is not one. For tests and tables. */
enum push_ssrf_class push_ssrf_classify_text(const char *text);

/* A constant name ("public", "loopback", ...); never NULL. */
const char *push_ssrf_class_str(enum push_ssrf_class c);

#endif
