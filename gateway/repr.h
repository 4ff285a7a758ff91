/*
 * repr.h - the one JSON builder per object kind: what GET answers, what
 * the listings (/v1/objects, /v1/values) list, what nng and SSE events,
 * snapshots and resyncs carry. The same object has the same members
 * everywhere: "name", "kind", the kind's own members, "version".
 *
 * Layer 0: includes buf.h and json.h only (see buf.h for the layers); it
 * takes handles and a store, never a request.
 *
 * Adding a kind: one row in repr.c's kind table (how to open it by name,
 * how to print its state from a handle).
 */
#ifndef ATRIUM_GW_REPR_H
#define ATRIUM_GW_REPR_H

#include <stdint.h>

#include "atrium.h"
#include "buf.h"

/* Arrays longer than this leave "values" out of listings and events
 * (GET gives them all). */
#define GW_REPR_LIST_VALUES 256

/* How much of an object to show. */
struct gw_repr_opts {
  uint64_t values_max; /* arrays longer than this omit "values"        */
  int sliced;          /* arrays: only [start:stop] (Python semantics), */
  int64_t start, stop; /* with "start" and "stop" members               */
};
/* All of it (GET), and what listings and events show. */
/* Who tells how many requests wait on an object by its id (park.c, a
 * layer above: main.c sets it). Locks, semaphores and flags count their
 * waiting processes in the store; their HTTP waiters are these. */
void gw_repr_set_waiting(uint64_t (*waiting)(uint64_t id));

extern const struct gw_repr_opts gw_repr_all, gw_repr_list;

/*
 * Opens the object called name, of kind, into *h if it is still the
 * incarnation id (0: whichever is there). 0, or ATR_ENOENT (none, or
 * another incarnation by now), ATR_EKIND, or another core error. No lock
 * is taken.
 */
int gw_repr_open(atr_store *store, atr_kind kind, const char *name, uint64_t id,
                 atr_handle *h);

/* Appends "name":<name>,"kind":"<kind>" (an object's first members). */
void gw_repr_head(gw_buf *b, atr_kind kind, const char *name);

/*
 * Appends the rest of the object h is open on: ,<the kind's members>,
 * "version":<n> (no closing brace). Reads the state by the handle (no
 * name lookup; a queue's counts without its locks). Returns 0 (*version,
 * if not NULL, gets the version), or a core error (ATR_ENOENT when the
 * object is gone) with b as it was.
 */
int gw_repr_state(gw_buf *b, const atr_handle *h, const struct gw_repr_opts *o,
                  uint64_t *version);

/* The whole object, {head, state}: 0 or a core error (b as it was). */
int gw_repr_object(gw_buf *b, const char *name, const atr_handle *h,
                   const struct gw_repr_opts *o, uint64_t *version);

/* A value from a state already read (the result of a set or an add):
 * the same JSON as gw_repr_object gives. */
void gw_repr_value(gw_buf *b, const char *name, char type, atr_scalar v,
                   uint64_t version);

#endif /* ATRIUM_GW_REPR_H */
