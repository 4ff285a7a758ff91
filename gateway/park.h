/*
 * park.h - requests that wait hold no thread: the one park/retry
 * mechanism every waiting route uses, and the follower's subscriber that
 * wakes parked requests.
 *
 * Layer 2: includes req.h and follow.h (see buf.h for the layers).
 *
 * A waiting route is a try function and two calls:
 *
 *   static int my_try(struct gw_req *req, void *arg) {
 *     return atr_lock_acquire(&req->wait.h, ..., 0);  // never blocks
 *   }
 *   ...
 *   if (req->runs == 1)    // the first run: what it waits on, how long
 *     gw_park_begin(req, GW_WAIT_ANY, &h, timeout);
 *   if (gw_park_run(req, my_try, NULL, ATR_EBUSY, &rv) == GW_DONE)
 *     return GW_DONE;      // parked: the handler runs again when woken
 *   ...answer from rv...   // done, or busy at the deadline
 *
 * A resumed request runs its handler again (req->runs > 1, req->wait as
 * it was), which calls gw_park_run again - unless its client has gone:
 * the daemon then closes it without running anything (http.c), so a pop
 * takes nothing and a put adds nothing. A run that met a busy lock and
 * left the request unanswered (gw_reply_core, ATR_ELOCKED) is not
 * counted: it runs again with the same req->runs, so a first run's work
 * (the open, a barrier's arrival) is done on the run that gets through.
 */
#ifndef ATRIUM_GW_PARK_H
#define ATRIUM_GW_PARK_H

#include "follow.h"
#include "req.h"

/* Tries the operation once, without waiting; returns its result (the
 * caller's busy code when it would have to wait). */
typedef int (*gw_park_try)(struct gw_req *req, void *arg);

/* The first run of a waiting route: req waits on the object h is open
 * on (copied to req->wait.h) for kind (req->wait.version or .max as the
 * handler set them), up to timeout seconds (0: it does not wait). */
void gw_park_begin(struct gw_req *req, enum gw_wait_kind kind,
                   const atr_handle *h, double timeout);
/*
 * Runs try_op until its result is not busy, the request parks, or the
 * deadline passes (or the daemon stops). Returns GW_DONE when parked (the
 * handler returns GW_DONE at once, without answering), else GW_NEXT
 * with *rv the last result of try_op (busy: the time is up; ATR_ELOCKED:
 * the object's lock stayed held past --busy-wait, the caller's
 * gw_reply_core answers 503 busy). Between two tries the request is on
 * its object's list, so no change is missed. try_op meeting ATR_ELOCKED
 * parks the request too and tries again (see park.c).
 */
int gw_park_run(struct gw_req *req, gw_park_try try_op, void *arg, int busy,
                int *rv);
/* Parks a request whose handler met a lock held by a live process and
 * left it unanswered (req->lock_wait, see gw_reply_core): its handler
 * runs again on a change of its object or a short timer. GW_DONE (parked,
 * or answered 503 busy when it cannot park: shutdown). */
int gw_park_locked(struct gw_req *req);
/* Called by the completion callback: the request leaves every list. */
void gw_park_forget(struct gw_req *req);
/* Parked requests now (metrics). */
uint64_t gw_park_count(void);
/* Answers every parked request (as if timed out) and refuses to park
 * from now on; waits up to grace seconds for them to complete. */
void gw_park_shutdown(double grace);

/* The follower's subscriber for parked requests. */
extern const struct gw_follow_sub gw_park_sub;

#endif /* ATRIUM_GW_PARK_H */
