/*
 * snap.h - events as JSON: an event's topic and body around an object's
 * state (repr.h), and the state of every object read at once, for
 * snapshots and resyncs.
 *
 * Layer 0: includes buf.h and repr.h (see buf.h for the layers).
 */
#ifndef ATRIUM_GW_SNAP_H
#define ATRIUM_GW_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "atrium.h"
#include "buf.h"
#include "repr.h"

/* Room for any topic "<kind>/<name>/<op>". */
#define GW_TOPIC_MAX (16 + ATR_NAME_MAX + 16)

/* Writes "<kind>/<name>/<op>" into out (GW_TOPIC_MAX bytes); its length. */
size_t gw_event_topic(char *out, atr_kind kind, const char *name,
                      const char *op);
/* Appends an event's JSON: {"seq","name","kind","op", then state (the
 * members gw_repr_state gives; may be empty, for a delete)}. */
void gw_event_json(gw_buf *b, uint64_t seq, atr_kind kind, const char *name,
                   const char *op, const char *state, size_t state_len);

/* Every object of the store with its state, read at one time. */
struct gw_snap_obj {
  char name[ATR_NAME_MAX + 1];
  atr_kind kind;
  uint64_t id;                 /* the incarnation listed          */
  size_t state_off, state_len; /* in the snap's states; 0: gone */
};
struct gw_snap {
  struct gw_snap_obj *objs; /* sorted by name */
  size_t n, cap;
  gw_buf states;
};

/* Which objects a snapshot holds: those whose event topic
 * "<kind>/<name>/<op>" starts with one of topic[0..n) (n 0: every
 * object). */
struct gw_snap_want {
  const char *const *topic;
  const size_t *topic_len;
  size_t n;
  const char *op; /* "snapshot", "resync"; NULL: any op (a topic
                     naming an op of an object names the object) */
};
/* Whether a topic names one object: "<kind>/<name>/" and maybe more. */
int gw_topic_is_exact(const char *topic, size_t len);
/* Reads the state now (gw_repr_list) of the objects want names (NULL:
 * every object), sorted by name, each once. Topics that each name one
 * object cost a lookup each, whatever the store's size; any other topic
 * costs one walk of the store. 0 or a core error (s empty then). Takes
 * no lock of the gateway. */
int gw_snap_read(atr_store *store, const struct gw_snap_want *want,
                 struct gw_snap *s);
/* The event of object i with seq and op, into out (emptied first). */
void gw_snap_event(gw_buf *out, const struct gw_snap *s, size_t i, uint64_t seq,
                   const char *op);
void gw_snap_free(struct gw_snap *s);

#endif /* ATRIUM_GW_SNAP_H */
