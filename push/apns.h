/*
 * push/apns.h: the APNs channel: HTTP/2 POST to <base>/3/device/<hex token>
 * with an ES256 provider token.
 *
 * The provider token is a JWT (header alg ES256 + kid, claims iss = team id and
 * iat) signed with the .p8 key; it is made once and reused for every request
 * until it is token_refresh_s old (20 to 60 minutes), or sooner when APNs
 * answers 403 ExpiredProviderToken / InvalidProviderToken. Requests share one
 * HTTP/2 connection per base URL (CURLPIPE_MULTIPLEX + CURLOPT_PIPEWAIT).
 *
 * Headers: authorization: bearer <jwt>, apns-topic, apns-push-type: alert,
 * apns-priority: 10, apns-collapse-id (opaque, from the job id). Body (jansson):
 * {"aps":{"alert":{"title":"CareChat","body":<fixed>},"sound":"default",
 * "mutable-content":1}}.
 *
 *   200                               -> DELIVERED
 *   410, 400 BadDeviceToken           -> TOKEN_DEAD
 *   403 Expired/InvalidProviderToken  -> RETRY (AUTH), token made again
 *   429, 5xx                          -> RETRY
 *   other 4xx                         -> PERMANENT (REJECTED)
 *
 * Notifier thread only.
 */
#ifndef PUSH_APNS_H
#define PUSH_APNS_H

#include "push/config.h"
#include "push/xfer.h"

struct push_apns;

/* Reads cfg->apns and the key file. Returns 0 and *out; STATUS_NOT_FOUND when
 * APNs is not configured (one info line); another status when the
 * configuration or the key cannot be used (one error line). */
int push_apns_open(const struct push_config *cfg, struct push_engine *e, struct push_apns **out);

/* Sends the (checked) APNs job x; it ends in push_xfer_finish(). */
void push_apns_send(struct push_apns *a, struct push_xfer *x);

/* Frees the key and the cached token. Accepts NULL. */
void push_apns_close(struct push_apns *a);

#endif
