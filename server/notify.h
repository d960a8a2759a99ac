/*
 * server/notify.h: the notification requests (server/notify.c): settings per
 * account and push registrations per device, with the contract of
 * server/request.h. Loop thread.
 */
#ifndef SERVER_NOTIFY_H
#define SERVER_NOTIFY_H

#include "server/request.h"

/* GetNotificationSettings: the caller account's settings (email and push on
 * until changed). */
int notify_get_settings(struct req *r);
/* SetNotificationSettings: a NotifySettingsSet entry; answered with the
 * settings stored. */
int notify_set_settings(struct req *r);
int notify_set_settings_done(struct op *op, const struct op_result *res);
/* RegisterPush: the calling device's token or subscription, checked with
 * push_job_check() (BAD_REQUEST when the notifier would refuse it), as a
 * PushRegister entry with a new random registration id; answered with it. */
int notify_register_push(struct req *r);
int notify_register_push_done(struct op *op, const struct op_result *res);
/* UnregisterPush: a registration of one of the caller account's devices
 * (NOT_FOUND otherwise), as a PushUnregister entry. */
int notify_unregister_push(struct req *r);
int notify_unregister_push_done(struct op *op, const struct op_result *res);

/* The connection `hc` is going away (before it is detached): when it was
 * the device's last authenticated one, the device has undelivered inbox
 * entries and a push registration, proposes a PushDeviceLeft entry (best
 * effort), so the device gets one push. Nothing while the server drains. */
void notify_device_left(struct hconn *hc);

#endif
