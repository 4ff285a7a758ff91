/*
 * lease.h - what the gateway hands out to clients that are no process:
 * the deadlines of the leases it granted, and the grant an answer
 * carries.
 *
 * Layer 2: includes req.h and follow.h (see buf.h for the layers).
 *
 * Deadlines: a lease lives in the store and ends by itself whoever looks
 * (a waiter, or atr_sync_expire), but a lease nobody waits for would end
 * unseen: no `expired` or `released` event would come. So the gateway
 * notes the deadline of every lease it grants (a lock's lease, a leased
 * permit, a barrier's or a condition's place) and calls atr_sync_expire
 * on its object at that deadline, from the follower's thread; the event
 * it publishes also wakes the object's parked requests.
 *
 * Grants: a request that was granted something keeps it in req->grant;
 * if libmicrohttpd says its answer was not delivered, the completion
 * callback gives it back (gw_grant_undo), so a client that left is never
 * left holding anything.
 */
#ifndef ATRIUM_GW_LEASE_H
#define ATRIUM_GW_LEASE_H

#include "follow.h"
#include "req.h"

/* Notes that the lease token of the object h is open on ends ttl seconds
 * from now (a renewal moves the noted deadline). Takes a lock of its
 * own; never blocks on the store. */
void gw_lease_note(const atr_handle *h, uint64_t token, double ttl);
/* Notes that a lease of the queue h is open on may end ttl seconds from
 * now: the queue's one deadline moves earlier, never later (at it, the
 * next is noted from the queue's own state). */
void gw_lease_note_min(const atr_handle *h, double ttl);
/* Forgets the lease token of h (given back). */
void gw_lease_forget(const atr_handle *h, uint64_t token);
/* Notes the leases of the object info describes, if it is a leased lock
 * or a queue with leased items (at start, for every object: they outlive
 * the gateway). Thread-safe. */
void gw_lease_seen(atr_store *store, const atr_info *info);
/* Deadlines noted now (metrics). */
uint64_t gw_lease_count(void);

/* Sets what the answer to req hands out (see req.h's gw_grant). */
void gw_grant_keep(struct gw_req *req, enum gw_grant_kind kind,
                   const atr_handle *h, uint64_t token, uint64_t count);
/* Gives back what req was granted (its answer was not delivered) and
 * forgets it. */
void gw_grant_undo(struct gw_req *req);

/* The follower's subscriber that runs the deadlines. */
extern const struct gw_follow_sub gw_lease_sub;

#endif /* ATRIUM_GW_LEASE_H */
