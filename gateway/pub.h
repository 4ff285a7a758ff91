/*
 * pub.h - the nng publisher of change events.
 *
 * Layer 2: includes req.h and follow.h (see buf.h for the layers).
 */
#ifndef ATRIUM_GW_PUB_H
#define ATRIUM_GW_PUB_H

#include <stddef.h>

#include "follow.h"
#include "req.h"

/*
 * Opens the pub socket and listens on cfg.events_url (a busy default
 * address falls back to a free port, with a warning; a busy address that
 * was asked for fails). 0, or -1 with a message on stderr.
 */
int gw_pub_open(void);
/* What it listens on (the real port, when 0 was asked). */
const char *gw_pub_url(void);
/* Prints the warnings of gw_pub_open (after the ready line, which
 * starters wait for as the first line). */
void gw_pub_warn(void);
/* Whether an nng subscriber is connected (lock-free). */
int gw_pub_interest(void);
/* Sends msg[0..len) ("<topic> <json>") to the subscribers, dropping it
 * for one whose queue is full. Follower only. */
void gw_pub_send(const char *msg, size_t len);
/* Closes the socket and ends nng (after the follower stopped). */
void gw_pub_close(void);

#endif /* ATRIUM_GW_PUB_H */
