/*
 * server/devices.h: the device and account-lookup requests
 * (server/devices.c): handlers and completions named by the request table
 * (server/requests.c), with the contract of server/request.h. Loop thread.
 */
#ifndef SERVER_DEVICES_H
#define SERVER_DEVICES_H

#include "server/request.h"

/* PublishDeviceList: the calling device signs its account's list, version
 * stored + 1, exactly the account's devices. */
int devices_publish_list(struct req *r);
/* RemoveDevice: a device of the caller's account, the calling one included;
 * its connections are revoked (DEVICE_REMOVED), the caller's after the
 * answer. */
int devices_remove(struct req *r);
/* RenameDevice: a new label for a device of the caller's account. */
int devices_rename(struct req *r);
/* RotateEncryptionKey: the calling device's new encryption key, signed by
 * its identity key, with a higher key id. */
int devices_rotate_key(struct req *r);
/* The completion of the four: the account's stored DeviceList. */
int devices_done(struct op *op, const struct op_result *res);
/* ListDevices: the signed lists and current keys of at most 64 accounts the
 * caller may see (none for a deactivated account). */
int devices_list(struct req *r);
/* LookupAccount: an account the caller may see, by email. */
int devices_lookup_account(struct req *r);

/* ResetDeviceList (ADMIN, SYSADMIN): proposes a DeviceListReset. */
int devices_reset_list(struct req *r);
int devices_reset_list_done(struct op *op, const struct op_result *res);

#endif
