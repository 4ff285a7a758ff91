/*
 * events.c - change events for subscribers (events.h).
 *
 * The follower hands every event here. For each we read the object's
 * state now by its handle - a run of one op may have been coalesced into
 * one event, and the state read after it arrives is the latest - print it
 * once as JSON (repr.h, the same members GET gives), publish it on the
 * nng socket as "<kind>/<name>/<op> <json>", and give it to the SSE side,
 * which keeps it for resumes and queues it on the streams whose topics
 * match.
 *
 * On ATR_EGAP (the follower fell a whole feed ring behind) every object's
 * state is published with op "resync" (seq: the last one before the
 * resync point), and every stream gets a resync batch.
 *
 * Nobody listening (no stream, no nng subscriber): nothing is formatted;
 * the SSE ring is marked discontinuous instead, so an older Last-Event-ID
 * gets a resync.
 */
#include <stdio.h>
#include <string.h>

#include "events.h"
#include "pub.h"
#include "repr.h"
#include "snap.h"
#include "sse.h"

static struct {
  gw_buf state, msg; /* the follower's scratch buffers */
  int complained;
} V;

static void ev_complain(const char *what) {
  if (!V.complained)
    fprintf(stderr, "atriumd: events: %s\n", what);
  V.complained = 1;
}

/* msg = "<topic> <json of the event>", the topic tl bytes. */
static void ev_message(const char *topic, size_t tl, uint64_t seq,
                       atr_kind kind, const char *name, const char *op,
                       const char *state, size_t state_len) {
  gw_buf_reset(&V.msg);
  gw_buf_add(&V.msg, topic, tl);
  gw_buf_add(&V.msg, " ", 1);
  gw_event_json(&V.msg, seq, kind, name, op, state, state_len);
}

static int ev_interest(double now) {
  (void)now;
  return gw_pub_interest() || gw_sse_interest();
}

static void ev_event(const atr_event *ev) {
  const char *op = atr_op_name(ev->op);
  char topic[GW_TOPIC_MAX];
  atr_handle h;
  size_t tl;

  if (!gw_pub_interest() && gw_sse_skip(ev->seq))
    return; /* nobody takes it: not even formatted */
  tl = gw_event_topic(topic, ev->kind, ev->name, op);
  gw_buf_reset(&V.state);
  /* No state if gone meanwhile (or deleted). */
  if (ev->op != ATR_OP_DELETED &&
      gw_repr_open(gw_srv->store, ev->kind, ev->name, ev->id, &h) == 0)
    gw_repr_state(&V.state, &h, &gw_repr_list, NULL);
  ev_message(topic, tl, ev->seq, ev->kind, ev->name, op, V.state.data,
             V.state.len);
  if (V.msg.failed || V.state.failed) {
    ev_complain("out of memory");
    return;
  }
  gw_pub_send(V.msg.data, V.msg.len);
  gw_sse_publish(ev->seq, V.msg.data, V.msg.len, tl);
}

static void ev_gap(uint64_t next) {
  struct gw_snap b;
  char topic[GW_TOPIC_MAX];
  uint64_t seq = next - 1;

  gw_sse_gap(seq);
  if (gw_snap_read(gw_srv->store, &b) != 0) {
    ev_complain("out of memory reading the objects for a resync");
    return;
  }
  for (size_t i = 0; i < b.n; i++) {
    const struct gw_snap_obj *o = &b.objs[i];
    size_t tl;
    if (o->state_len == 0)
      continue;
    tl = gw_event_topic(topic, o->kind, o->name, "resync");
    ev_message(topic, tl, seq, o->kind, o->name, "resync",
               b.states.data + o->state_off, o->state_len);
    if (!V.msg.failed)
      gw_pub_send(V.msg.data, V.msg.len);
  }
  gw_snap_free(&b);
  gw_sse_serve();
}

int gw_events_open(void) {
  return gw_sse_open() != 0 || gw_pub_open() != 0 ? -1 : 0;
}

void gw_events_close(void) {
  gw_sse_close();
  gw_pub_close();
  gw_buf_fini(&V.state);
  gw_buf_fini(&V.msg);
}

const struct gw_follow_sub gw_events_sub = {
    ev_interest, gw_sse_begin, gw_sse_rebase, gw_sse_tick, ev_event, ev_gap};
