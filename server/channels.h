/*
 * server/channels.h: the care-team channel, recall and urgent requests
 * (server/channels.c): handlers and completions named by the request table
 * (server/requests.c), with the contract of server/request.h. Loop thread.
 */
#ifndef SERVER_CHANNELS_H
#define SERVER_CHANNELS_H

#include "server/request.h"

/* CreateChannel: a ChannelCreate entry; answered with the Conversation. */
int channels_create(struct req *r);
int channels_create_done(struct op *op, const struct op_result *res);
/* AddMember, RemoveMember, ApproveMember, LeaveConversation: one entry each,
 * with the devices the membership event goes to; answered OK, the events
 * delivered. */
int channels_add_member(struct req *r);
int channels_remove_member(struct req *r);
int channels_approve_member(struct req *r);
int channels_leave(struct req *r);
int channels_member_done(struct op *op, const struct op_result *res);
/* ListMembers: every account that was ever a member, with its state. */
int channels_list_members(struct req *r);
/* Recall: a MessageRecall entry (the sender, or an admin); the tombstone goes
 * to every active member's devices. */
int channels_recall(struct req *r);
int channels_recall_done(struct op *op, const struct op_result *res);
/* AckUrgent: an UrgentAck entry; the acknowledgement goes to the sender's
 * devices. */
int channels_ack_urgent(struct req *r);
int channels_ack_urgent_done(struct op *op, const struct op_result *res);
/* GetUrgentStatus: who has acknowledged an urgent message (its sender and
 * admins). */
int channels_get_urgent_status(struct req *r);

#endif
