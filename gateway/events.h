/*
 * events.h - change events: what the follower hands the nng publisher
 * and the SSE streams, as one subscriber of the follower.
 *
 * Layer 3: includes follow.h (and, in events.c, pub.h, sse.h, snap.h,
 * repr.h; see buf.h for the layers).
 */
#ifndef ATRIUM_GW_EVENTS_H
#define ATRIUM_GW_EVENTS_H

#include "follow.h"

/* Opens the nng publisher and the SSE side: 0, or -1 with a message on
 * stderr. Close frees both (after the follower and the daemon stopped). */
int gw_events_open(void);
void gw_events_close(void);

/* At start, for every object: a dict's keys are named from its version
 * now (events.c). Thread-safe; the follower takes them in. */
void gw_events_seen(const atr_info *info);

/* The follower's subscriber for events. */
extern const struct gw_follow_sub gw_events_sub;

#endif /* ATRIUM_GW_EVENTS_H */
