/*
 * tests/push/toolcfg.h: fills a struct push_config from the JSON the Node
 * peers write (keys as in push/config.h: "app_link", "ca_file", "email":
 * {"url", "from", ...}, "apns": {...}, "fcm": {...}, "webpush": {...,
 * "allow_hosts": [...]}, "max_in_flight", "total_timeout_ms", ...), for
 * push_tool and push_bench. Test code; single-threaded.
 */
#ifndef TESTS_PUSH_TOOLCFG_H
#define TESTS_PUSH_TOOLCFG_H

#include <jansson.h>

#include "push/config.h"

#define TOOLCFG_MAX_HOSTS 8

/* Sets the fields of `cfg` from `c` (other fields are left alone). The
 * strings stay owned by `c`, which must outlive push_open(); `hosts` has room
 * for TOOLCFG_MAX_HOSTS + 1 entries and backs cfg->webpush.allow_hosts. */
void toolcfg_fill(json_t *c, struct push_config *cfg, const char **hosts);

#endif
