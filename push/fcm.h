/*
 * push/fcm.h: the FCM HTTP v1 channel, with the OAuth2 service-account flow.
 *
 *   service account JSON (client_email, private_key, token_uri, project_id)
 *   access token missing or near expiry:
 *     POST token_uri  grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
 *                     assertion=<RS256 JWT: iss=client_email, scope=firebase.messaging,
 *                                aud=token_uri, iat, exp=iat+3600>
 *     -> {"access_token", "expires_in"}: cached until 5 minutes before expiry
 *   jobs wait (parked) while a token request runs; one request at a time
 *   POST <base>/v1/projects/<project_id>/messages:send
 *     Authorization: Bearer <token>
 *     {"message":{"token":T,"data":{<string values>},"android":{"priority":"high"}}}
 *
 *   200                                  -> DELIVERED
 *   404, error status/errorCode UNREGISTERED -> TOKEN_DEAD
 *   401                                  -> RETRY (AUTH), the token is dropped
 *   429, 5xx                             -> RETRY
 *   other 4xx                            -> PERMANENT (REJECTED)
 *   token request failed                 -> RETRY (AUTH) for the jobs waiting
 *
 * A data-only message: the app shows its own fixed text. Notifier thread only.
 */
#ifndef PUSH_FCM_H
#define PUSH_FCM_H

#include "push/config.h"
#include "push/xfer.h"

struct push_fcm;

/* Reads cfg->fcm and the service account file. Returns 0 and *out;
 * STATUS_NOT_FOUND when FCM is not configured (one info line); another status
 * when the file cannot be used (one error line). */
int push_fcm_open(const struct push_config *cfg, struct push_engine *e, struct push_fcm **out);

/* Sends the (checked) FCM job x; it ends in push_xfer_finish(). */
void push_fcm_send(struct push_fcm *f, struct push_xfer *x);

/* Frees the key, the token and the jobs still waiting for a token (without
 * results: the notifier is closing). Accepts NULL. */
void push_fcm_close(struct push_fcm *f);

#endif
