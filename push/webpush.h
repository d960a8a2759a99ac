/*
 * push/webpush.h: the Web Push channel (RFC 8030), with payload encryption
 * (RFC 8291, push/ece.h), VAPID (RFC 8292) and a defence against server-side
 * request forgery, since endpoints are URLs that clients supply.
 *
 *   send (notifier thread): parse the endpoint (libcurl's URL parser, whose
 *     normalised URL is the one requested); https only unless the host is
 *     allow-listed (then http too); no user info
 *   -> resolver thread: getaddrinfo(host); every address must be public
 *     (push/ssrf.h) and the port 443, unless the host is allow-listed (then
 *     any address and port); the addresses checked are
 *     pinned for libcurl with CURLOPT_RESOLVE, so a second DNS answer cannot
 *     swap them
 *   -> push_webpush_poll() (notifier thread): encrypt, sign VAPID, start the
 *     transfer: no proxy, no redirects, the protocol list fixed, the address
 *     libcurl opens checked again (CURLOPT_OPENSOCKETFUNCTION), the answer
 *     bounded in size and the transfer in time.
 *
 *   Headers: Authorization: vapid t=<ES256 JWT: aud=endpoint origin, exp=now+12h,
 *   sub>, k=<b64url public key>; TTL; Urgency; Content-Encoding: aes128gcm.
 *   Body: {"kind","title","body"} encrypted, fixed text only.
 *
 *   201/200/202            -> DELIVERED
 *   404, 410               -> TOKEN_DEAD
 *   address refused        -> PERMANENT (ADDRESS_REFUSED), no request made
 *   3xx                    -> PERMANENT (REDIRECT), not followed
 *   DNS failure            -> RETRY (DNS)
 *   others                 -> as push_xfer_http_verdict()
 *
 * Threads: everything on the notifier thread but the resolver's getaddrinfo().
 */
#ifndef PUSH_WEBPUSH_H
#define PUSH_WEBPUSH_H

#include "push/config.h"
#include "push/xfer.h"

struct push_webpush;

/* Reads cfg->webpush and the VAPID key, starts the resolver thread. Returns 0
 * and *out; STATUS_NOT_FOUND when Web Push is not configured (one info line);
 * another status when the configuration or key cannot be used (one error
 * line). */
int push_webpush_open(const struct push_config *cfg, struct push_engine *e,
                      struct push_webpush **out);

/* Sends the (checked) Web Push job x; it ends in push_xfer_finish(), at once
 * or after resolution and transfer. */
void push_webpush_send(struct push_webpush *w, struct push_xfer *x);

/* Starts the transfers whose hosts were resolved, and ends the refused ones.
 * Call after every wake-up of the notifier. */
void push_webpush_poll(struct push_webpush *w);

/* Stops the resolver thread (after its current lookup) and frees the jobs it
 * held, without results. Accepts NULL. */
void push_webpush_close(struct push_webpush *w);

#endif
