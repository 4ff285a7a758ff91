/*
 * follow.h - the follower: the one thread that reads the store's change
 * feed, and hands what it reads to its subscribers (parked requests,
 * events), each through the same small table of calls.
 *
 * Layer 1: includes nothing of the gateway (see buf.h for the layers).
 * Others reach the follower through one call, gw_follow_kick.
 */
#ifndef ATRIUM_GW_FOLLOW_H
#define ATRIUM_GW_FOLLOW_H

#include <stddef.h>
#include <stdint.h>

#include "atrium.h"

/* A subscriber. Every call runs on the follower thread, with none of the
 * follower's locks held, in this order per round: interest, (after a
 * pause) rebase, tick, then event or gap. */
struct gw_follow_sub {
  /* Whether it needs the feed read now (now: monotonic seconds). */
  int (*interest)(double now);
  /* At start: the seq the follower reads first. */
  void (*begin)(uint64_t next);
  /* The follower paused (nobody listened) and follows again from next:
   * what came meanwhile was not seen. */
  void (*rebase)(uint64_t next);
  /* Its timers; returns when it wants its next tick (monotonic s). */
  double (*tick)(double now);
  /* One event of the feed, in feed order. */
  void (*event)(const atr_event *ev);
  /* The follower fell a whole feed ring behind (ATR_EGAP) and goes on
   * from next: every object may have changed. */
  void (*gap)(uint64_t next);
};

/*
 * Starts the follower on store with the subscribers subs[0..n) (kept;
 * static storage). 0, or -1 (no thread, or the feed cannot be opened).
 */
int gw_follow_start(atr_store *store, const struct gw_follow_sub *const *subs,
                    size_t n);
/*
 * Tells the follower it may be needed by the time due (monotonic
 * seconds; 0: now). Interest may have appeared (a new stream, an nng
 * subscriber, a parked request): a paused follower re-arms its cursor at
 * the feed's end before this returns, so a caller that answers its client
 * after the call misses no change made after its answer; with due 0 the
 * follower runs a round at once (a new stream is served first). Cheap:
 * takes the follower's lock, and wakes it only when it would sleep past
 * due.
 */
void gw_follow_kick(double due);
/* Stops the follower and waits for its thread. */
void gw_follow_stop(void);

#endif /* ATRIUM_GW_FOLLOW_H */
