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
 * A dict's "set" and "delete" events also name the keys changed:
 * "keys":[...] and "keys_truncated". The feed's entries are fixed
 * records that name the object only; the dict keeps a ring of its recent
 * key changes (atr_dict_changes), and we keep, per dict and op, the
 * version up to which we have named them. An event names the keys of
 * that op changed since (each once; a coalesced run names several); if
 * the ring no longer reaches back that far, or a commit changed more
 * keys than it records, "keys_truncated" is true and a reader re-reads
 * the dict. A dict not seen before (created since the daemon started,
 * or its entry pushed out of the table) names what its ring holds.
 *
 * On ATR_EGAP (the follower fell a whole feed ring behind) every object's
 * state is published with op "resync" (seq: the last one before the
 * resync point), and every stream gets a resync batch.
 *
 * Nobody listening (no stream, no nng subscriber): nothing is formatted;
 * the SSE ring is marked discontinuous instead, so an older Last-Event-ID
 * gets a resync.
 */
#include <pthread.h>
#include <stdatomic.h>
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

/* Per dict and op, the version up to which keys were named: an open
 * addressed table by incarnation id (ids never repeat, so an entry of a
 * deleted dict is only stale; a full table is emptied). */
#define EV_DICTS 4096
static struct ev_dict {
  uint64_t id;
  uint64_t named[2]; /* set, delete */
} ev_dicts[EV_DICTS];
static size_t ev_dicts_used;

static struct ev_dict *ev_dict_of(uint64_t id) {
  size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull >> 52) % EV_DICTS;

  for (size_t n = 0; n < EV_DICTS; n++, i = (i + 1) % EV_DICTS) {
    if (ev_dicts[i].id == id)
      return &ev_dicts[i];
    if (ev_dicts[i].id == 0)
      break;
  }
  if (ev_dicts_used >= EV_DICTS * 3 / 4) {
    memset(ev_dicts, 0, sizeof(ev_dicts));
    ev_dicts_used = 0;
    i = (size_t)(id * 0x9e3779b97f4a7c15ull >> 52) % EV_DICTS;
  }
  while (ev_dicts[i].id != 0)
    i = (i + 1) % EV_DICTS;
  ev_dicts[i].id = id;
  ev_dicts[i].named[0] = ev_dicts[i].named[1] = 0;
  ev_dicts_used++;
  return &ev_dicts[i];
}

/* Appends ,"keys":[...],"keys_truncated":b to a dict's set or delete
 * event. */
static void ev_dict_keys(gw_buf *b, const atr_handle *h, atr_op op) {
  struct ev_dict *d = ev_dict_of(h->id);
  int del = op == ATR_OP_DELETE, trunc = 0, first = 1;
  uint64_t *named = &d->named[del], version;
  atr_dict_items it = {0};

  if (atr_dict_changes(h, *named, &it, &trunc, &version) != 0) {
    atr_dict_items_free(&it);
    return;
  }
  gw_buf_str(b, ",\"keys\":[");
  for (size_t k = 0; k < it.count; k++) {
    if (it.item[k].deleted != del)
      continue;
    if (!first)
      gw_buf_add(b, ",", 1);
    first = 0;
    gw_json_put_string(b, it.data + it.item[k].key_off, it.item[k].key_len);
  }
  gw_buf_str(b, trunc ? "],\"keys_truncated\":true"
                      : "],\"keys_truncated\":false");
  *named = version;
  atr_dict_items_free(&it);
}

/* At the start the dicts that exist are named from their version then.
 * The walk that finds them runs beside the follower (main.c), so they
 * wait here, at most what the table holds, until the follower takes
 * them in; a dict the follower has met meanwhile keeps what it named. */
static struct {
  pthread_mutex_t mu;
  struct ev_seen {
    uint64_t id, version;
  } v[EV_DICTS / 2];
  size_t n;
  atomic_int any;
} ev_seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

void gw_events_seen(const atr_info *info) {
  if (info->kind != ATR_DICT)
    return;
  pthread_mutex_lock(&ev_seen.mu);
  if (ev_seen.n < sizeof(ev_seen.v) / sizeof(ev_seen.v[0])) {
    ev_seen.v[ev_seen.n].id = info->id;
    ev_seen.v[ev_seen.n++].version = info->version;
    atomic_store(&ev_seen.any, 1);
  }
  pthread_mutex_unlock(&ev_seen.mu);
}

/* The follower takes in the dicts the walk found. */
static void ev_seen_take(void) {
  if (!atomic_load_explicit(&ev_seen.any, memory_order_relaxed))
    return;
  pthread_mutex_lock(&ev_seen.mu);
  for (size_t i = 0; i < ev_seen.n; i++) {
    size_t used = ev_dicts_used;
    struct ev_dict *d = ev_dict_of(ev_seen.v[i].id);
    if (ev_dicts_used != used) /* new to the table */
      d->named[0] = d->named[1] = ev_seen.v[i].version;
  }
  ev_seen.n = 0;
  atomic_store(&ev_seen.any, 0);
  pthread_mutex_unlock(&ev_seen.mu);
}

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

  ev_seen_take();
  if (!gw_pub_interest() && gw_sse_skip(ev->seq))
    return; /* nobody takes it: not even formatted */
  tl = gw_event_topic(topic, ev->kind, ev->name, op);
  gw_buf_reset(&V.state);
  /* No state if gone meanwhile (or deleted). */
  if (ev->op != ATR_OP_DELETED &&
      gw_repr_open(gw_srv->store, ev->kind, ev->name, ev->id, &h) == 0 &&
      gw_repr_state(&V.state, &h, &gw_repr_list, NULL) == 0 &&
      ev->kind == ATR_DICT && (ev->op == ATR_OP_SET || ev->op == ATR_OP_DELETE))
    ev_dict_keys(&V.state, &h, ev->op);
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
  if (gw_snap_read(gw_srv->store, NULL, &b) != 0) {
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
