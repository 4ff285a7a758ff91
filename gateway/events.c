/*
 * events.c - change events for subscribers: the nng publisher and
 * Server-Sent Events (GET /v1/events).
 *
 * One reader of the store's change feed (wait.c's follower thread) hands
 * every event here. For each we read the object's state now - a run of
 * one op may have been coalesced into one event, and the state read after
 * it arrives is the latest - print it once as JSON, publish it on the nng
 * pub socket as "<kind>/<name>/<op> <json>", keep it in a bounded ring of
 * recent events (for Last-Event-ID resumes), and append "id: <seq>" and
 * "data: <json>" to the buffer of every event stream whose topics match.
 *
 * Event streams. A stream starts "pending": the follower, between two
 * feed events, gives it one "snapshot" event per subscribed object, or
 * for a resume (Last-Event-ID) the events after that id from the ring, or
 * - when the id is no longer there - one "resync" event per subscribed
 * object; from then on it gets live events. Because all of that happens
 * on the follower thread in feed order, a stream never sees an event
 * older than its snapshot. Only the last event of a snapshot or resync
 * batch carries an id, so a client cut off in the middle of a batch
 * resumes with its old id and gets a whole batch again.
 *
 * libmicrohttpd reads a stream through ev_read, a content-reader
 * callback: it copies what is queued, and when nothing is it suspends the
 * connection and returns 0 (returning 0 without suspending makes MHD
 * spin); the follower resumes it when it queues more. The queue of a
 * stream is bounded (--sse-buffer): a client that stops reading never
 * slows the follower, the writers or other streams. On overflow the
 * queued events that MHD has not started are dropped, and once the client
 * has read what is left it gets a resync batch with the current state.
 *
 * On ATR_EGAP (the follower fell a whole feed ring behind) every object's
 * state is published with op "resync" (seq: the last one before the
 * resync point), the ring is emptied and every stream gets a resync batch.
 *
 * Nobody listening (no stream, no nng subscriber, counted with
 * nng_pipe_notify): nothing is formatted; the ring is marked
 * discontinuous instead, so an older Last-Event-ID gets a resync.
 *
 * Lock order: E.mu, then libmicrohttpd's own (suspend and resume take
 * it). E.mu is never held while the follower reads object state.
 */
#include <microhttpd.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "gw.h"

#define EV_SENDBUF 1024                 /* nng messages queued per subscriber */
#define EV_RING 4096                    /* recent events kept for resumes     */
#define EV_RING_BYTES ((size_t)8 << 20) /* and at most this many bytes    */
#define EV_ARRAY_VALUES 256  /* arrays up to this length carry "values" */
#define EV_MAX_TOPICS 32     /* prefixes in ?topics=                     */
#define EV_TOPIC_MAX 200     /* bytes of one prefix                      */
#define EV_BLOCK (16 * 1024) /* most bytes handed to MHD at once        */
#define EV_TICKETS 256       /* tickets outstanding at once             */
#define EV_TICKET_TTL 30     /* seconds a ticket lives                  */
#define EV_TICKET_LEN 32     /* hex digits (128 random bits)            */
#define EV_NEVER 1e300

enum ev_state {
  EV_PENDING, /* waits for the follower: snapshot, replay or resync */
  EV_LIVE,    /* gets live events                                   */
  EV_DROPPED, /* overflowed: waits to drain, then a resync          */
};
enum ev_start { EV_SNAPSHOT, EV_REPLAY, EV_RESYNC };

struct gw_sse {
  struct gw_sse *prev, *next;
  struct MHD_Connection *conn;
  enum ev_state state;
  enum ev_start start; /* what a pending stream needs                */
  uint64_t last_id;    /* EV_REPLAY: resume after this seq           */
  uint64_t accept_seq; /* the last event followed when it came        */
  int suspended;       /* by ev_read; only the follower resumes      */
  int boundary;        /* what MHD has taken ends at an event's end  */
  int last_nl;         /* ... and its last byte was a newline        */
  char *topics_text;   /* the prefixes, NUL-separated                */
  const char *topic[EV_MAX_TOPICS];
  size_t topic_len[EV_MAX_TOPICS];
  size_t n_topics; /* 0: every topic                              */
  char *buf;       /* queued bytes: buf[off..len)                 */
  size_t off, len, cap;
};

/* A recent event: its nng message "<topic> <json>". */
struct ev_entry {
  uint64_t seq;
  char *msg;
  size_t len, topic_len;
};

struct ev_ticket {
  char id[EV_TICKET_LEN];
  double expires; /* 0: free */
};

/* The objects of a snapshot or resync batch, with their state read once:
 * tail is the JSON after "op" (the state and the closing brace). */
struct ev_obj {
  char name[ATR_NAME_MAX + 1];
  atr_kind kind;
  uint64_t id;
  size_t tail_off, tail_len; /* tail_len 0: gone meanwhile */
};

struct ev_batch {
  struct ev_obj *objs;
  size_t n, cap;
  gw_buf tails;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t gone; /* a stream ended (shutdown waits on it) */
  atr_store *store;
  nng_socket pub;
  int pub_open;
  char *url;                /* what the publisher listens on           */
  const char *busy_default; /* the default address was in use  */
  /* Recent events: ring[(first + i) % EV_RING], i < n. */
  struct ev_entry *ring;
  size_t ring_first, ring_n, ring_bytes;
  uint64_t last_seq; /* the newest seq handed to streams         */
  uint64_t min_id;   /* a resume from an id below this: resync    */
  struct gw_sse *streams;
  size_t n_streams, n_pending;
  int stopping;
  double next_beat;
  struct ev_ticket tickets[EV_TICKETS];
  int complained;
  int pipes;       /* nng subscribers connected (atomic) */
  double retry_at; /* a batch failed for want of memory: not before */
  /* The follower's scratch buffers. */
  gw_buf json, msg, frame, batch_out, frame_out;
} E = {.mu = PTHREAD_MUTEX_INITIALIZER, .gone = PTHREAD_COND_INITIALIZER};

static void ev_buf_reset(gw_buf *b) {
  if (b->failed)
    gw_buf_fini(b);
  b->len = 0;
}

/* --------------------------------------------------------------- state */

/* Appends the head of an event's JSON: {"seq","kind","name","op". */
static void ev_head(gw_buf *b, uint64_t seq, atr_kind kind, const char *name,
                    const char *op) {
  gw_buf_fmt(b,
             "{\"seq\":%llu,\"kind\":\"%s\",\"name\":", (unsigned long long)seq,
             atr_kind_name(kind));
  gw_json_put_string(b, name, strlen(name));
  gw_buf_fmt(b, ",\"op\":\"%s\"", op);
}

static void ev_type(gw_buf *b, char type) {
  char t[2] = {type, 0};

  gw_buf_str(b, ",\"type\":");
  gw_json_put_string(b, t, 1);
}

/*
 * Appends the current state of the object (kind, name) as JSON members,
 * if it is still the incarnation id (0: whichever is there). Returns 1 if
 * it was, 0 if the object is gone or another one by now.
 */
static int ev_state(gw_buf *b, atr_kind kind, const char *name, uint64_t id) {
  atr_store *s = E.store;
  atr_handle h;
  atr_info info;
  atr_scalar v;
  uint64_t ver, length, n;

  switch (kind) {
  case ATR_VALUE:
    if (atr_value_open(s, name, 0, 0, NULL, &h) < 0 || (id && h.id != id) ||
        atr_value_get(&h, &v, &ver) != 0)
      return 0;
    ev_type(b, h.type);
    gw_buf_str(b, ",\"value\":");
    gw_json_put_scalar(b, h.type, v);
    gw_buf_fmt(b, ",\"version\":%llu", (unsigned long long)ver);
    return 1;
  case ATR_ARRAY: {
    atr_scalar vals[EV_ARRAY_VALUES];
    if (atr_array_open(s, name, 0, 0, 0, NULL, &h) < 0 || (id && h.id != id) ||
        atr_array_length(&h, &length) != 0)
      return 0;
    ev_type(b, h.type);
    gw_buf_fmt(b, ",\"length\":%llu", (unsigned long long)length);
    if (length <= EV_ARRAY_VALUES) {
      if (atr_array_get(&h, 0, INT64_MAX, vals, EV_ARRAY_VALUES, &n, &ver) != 0)
        return 0;
      gw_buf_str(b, ",\"values\":[");
      for (uint64_t i = 0; i < n; i++) {
        if (i)
          gw_buf_add(b, ",", 1);
        gw_json_put_scalar(b, h.type, vals[i]);
      }
      gw_buf_add(b, "]", 1);
    } else {
      if (atr_stat(s, name, &info) != 0 || info.id != h.id)
        return 0;
      ver = info.version;
    }
    gw_buf_fmt(b, ",\"version\":%llu", (unsigned long long)ver);
    return 1;
  }
  case ATR_QUEUE:
    if (atr_stat(s, name, &info) != 0 || info.kind != ATR_QUEUE ||
        (id && info.id != id))
      return 0;
    gw_buf_fmt(b, ",\"size\":%llu,\"maxsize\":%llu,\"version\":%llu",
               (unsigned long long)info.size, (unsigned long long)info.maxsize,
               (unsigned long long)info.version);
    return 1;
  default:
    return 0;
  }
}

/* "<kind>/<name>/<op>" into out (room for any); its length. */
static size_t ev_topic(char *out, size_t cap, atr_kind kind, const char *name,
                       const char *op) {
  int n = snprintf(out, cap, "%s/%s/%s", atr_kind_name(kind), name, op);

  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

#define EV_TOPIC_BUF (8 + ATR_NAME_MAX + 16)

static int ev_match(const struct gw_sse *s, const char *topic, size_t len) {
  if (s->n_topics == 0)
    return 1;
  for (size_t i = 0; i < s->n_topics; i++)
    if (s->topic_len[i] <= len &&
        memcmp(s->topic[i], topic, s->topic_len[i]) == 0)
      return 1;
  return 0;
}

/* -------------------------------------------------------------- streams */

/* Hands a suspended stream back to MHD. Called with E.mu held. */
static void ev_wake(struct gw_sse *s) {
  if (s->suspended) {
    s->suspended = 0;
    MHD_resume_connection(s->conn);
  }
}

/* Drops the queued bytes MHD has not started, keeping the rest of an
 * event it is in the middle of. Called with E.mu held. */
static void ev_drop(struct gw_sse *s) {
  size_t end = s->off;

  if (!s->boundary && s->off < s->len) {
    if (s->last_nl && s->buf[s->off] == '\n') {
      end = s->off + 1;
    } else {
      const char *p = memmem(s->buf + s->off, s->len - s->off, "\n\n", 2);
      end = p ? (size_t)(p - s->buf) + 2 : s->len;
    }
  }
  s->len = end;
  if (s->off == s->len)
    s->off = s->len = 0;
  s->state = EV_DROPPED;
  ev_wake(s); /* ev_read must see it drained to ask for the resync */
}

/*
 * Queues p[0..n) (whole events) on s. The --sse-buffer bound applies to
 * what is queued already, so one event always fits an empty queue; with
 * force it does not apply at all (a snapshot or resync batch goes whole;
 * it is bounded by the store's objects). Returns 0, or -1 when s
 * overflowed (its queue was dropped and it waits to drain) or memory ran
 * out (the same). Called with E.mu held.
 */
static int ev_append(struct gw_sse *s, const char *p, size_t n, int force) {
  if (s->state == EV_DROPPED)
    return -1;
  if (s->off > 0 && s->len + n > s->cap) {
    memmove(s->buf, s->buf + s->off, s->len - s->off);
    s->len -= s->off;
    s->off = 0;
  }
  if (!force && s->len > s->off &&
      s->len - s->off + n > gw_srv->cfg.sse_buffer) {
    ev_drop(s);
    return -1;
  }
  if (s->len + n > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    char *q;
    while (cap < s->len + n)
      cap *= 2;
    q = realloc(s->buf, cap);
    if (q == NULL) {
      ev_drop(s);
      return -1;
    }
    s->buf = q;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  ev_wake(s);
  return 0;
}

/* Queues one event: "id: <seq>\n" (when with_id), "data: <json>\n\n".
 * Follower only (a scratch buffer), E.mu held. */
static int ev_append_frame(struct gw_sse *s, uint64_t seq, int with_id,
                           const char *json, size_t len, int force) {
  gw_buf *f = &E.frame_out;

  ev_buf_reset(f);
  if (with_id)
    gw_buf_fmt(f, "id: %llu\n", (unsigned long long)seq);
  gw_buf_str(f, "data: ");
  gw_buf_add(f, json, len);
  gw_buf_add(f, "\n\n", 2);
  if (f->failed) {
    ev_drop(s);
    return -1;
  }
  return ev_append(s, f->data, f->len, force);
}

/* The content reader of a stream (an MHD thread). */
static ssize_t ev_read(void *cls, uint64_t pos, char *buf, size_t max) {
  struct gw_sse *s = cls;
  ssize_t rv;
  int kick = 0;

  (void)pos;
  pthread_mutex_lock(&E.mu);
  if (s->len > s->off) {
    size_t k = s->len - s->off < max ? s->len - s->off : max;
    size_t end = s->off + k;
    memcpy(buf, s->buf + s->off, k);
    s->boundary = s->buf[end - 1] == '\n' &&
                  (k >= 2 ? s->buf[end - 2] == '\n' : s->last_nl);
    s->last_nl = s->buf[end - 1] == '\n';
    s->off = end;
    if (s->off == s->len)
      s->off = s->len = 0;
    rv = (ssize_t)k;
  } else if (E.stopping) {
    rv = MHD_CONTENT_READER_END_OF_STREAM;
  } else {
    if (s->state == EV_DROPPED) {
      /* Drained after an overflow: the follower sends the state. */
      s->state = EV_PENDING;
      s->start = EV_RESYNC;
      E.n_pending++;
      kick = 1;
    }
    s->suspended = 1;
    MHD_suspend_connection(s->conn);
    rv = 0;
  }
  pthread_mutex_unlock(&E.mu);
  if (kick)
    gw_wait_kick();
  return rv;
}

/* ------------------------------------------------------------- the ring */

static void ev_ring_clear(void) {
  for (size_t i = 0; i < E.ring_n; i++)
    free(E.ring[(E.ring_first + i) % EV_RING].msg);
  E.ring_first = E.ring_n = E.ring_bytes = 0;
}

/* Keeps a copy of msg as event seq, forgetting the oldest as needed. Out
 * of memory forgets everything (resumes then resync). E.mu held. */
static void ev_ring_push(uint64_t seq, const char *msg, size_t len,
                         size_t topic_len) {
  struct ev_entry *e;
  char *copy;

  if (E.ring == NULL)
    return;
  while (E.ring_n > 0 &&
         (E.ring_n == EV_RING || E.ring_bytes + len > EV_RING_BYTES)) {
    e = &E.ring[E.ring_first];
    if (e->seq > E.min_id)
      E.min_id = e->seq;
    E.ring_bytes -= e->len;
    free(e->msg);
    E.ring_first = (E.ring_first + 1) % EV_RING;
    E.ring_n--;
  }
  copy = malloc(len ? len : 1);
  if (copy == NULL) {
    ev_ring_clear();
    E.min_id = seq;
    return;
  }
  memcpy(copy, msg, len);
  e = &E.ring[(E.ring_first + E.ring_n) % EV_RING];
  e->seq = seq;
  e->msg = copy;
  e->len = len;
  e->topic_len = topic_len;
  E.ring_n++;
  E.ring_bytes += len;
}

/* Queues on s the ring's events after s->last_id that match its topics.
 * E.mu held. */
static void ev_replay(struct gw_sse *s) {
  for (size_t i = 0; i < E.ring_n; i++) {
    const struct ev_entry *e = &E.ring[(E.ring_first + i) % EV_RING];
    if (e->seq <= s->last_id || !ev_match(s, e->msg, e->topic_len))
      continue;
    if (ev_append_frame(s, e->seq, 1, e->msg + e->topic_len + 1,
                        e->len - e->topic_len - 1, 0) != 0)
      return;
  }
}

/* ------------------------------------------------------------ publishing */

static void ev_complain(const char *what) {
  if (!E.complained)
    fprintf(stderr, "atriumd: events: %s\n", what);
  E.complained = 1;
}

/* Publishes one event, whose JSON is json[0..len), on nng; with ring and
 * streams also keeps it and hands it to every live stream it matches. */
static void ev_emit(uint64_t seq, const char *topic, size_t topic_len,
                    const char *json, size_t len, int to_streams) {
  gw_buf *m = &E.msg, *f = &E.frame;

  ev_buf_reset(m);
  gw_buf_add(m, topic, topic_len);
  gw_buf_add(m, " ", 1);
  gw_buf_add(m, json, len);
  ev_buf_reset(f);
  gw_buf_fmt(f, "id: %llu\ndata: ", (unsigned long long)seq);
  gw_buf_add(f, json, len);
  gw_buf_add(f, "\n\n", 2);
  if (m->failed || f->failed) {
    ev_complain("out of memory");
    return;
  }
  if (E.pub_open && __atomic_load_n(&E.pipes, __ATOMIC_RELAXED) > 0)
    nng_send(E.pub, m->data, m->len, NNG_FLAG_NONBLOCK); /* drops if full */
  if (!to_streams)
    return;
  pthread_mutex_lock(&E.mu);
  ev_ring_push(seq, m->data, m->len, topic_len);
  E.last_seq = seq;
  for (struct gw_sse *s = E.streams; s; s = s->next)
    if (s->state == EV_LIVE && ev_match(s, topic, topic_len))
      ev_append(s, f->data, f->len, 0);
  pthread_mutex_unlock(&E.mu);
}

void gw_events_begin(uint64_t next) {
  pthread_mutex_lock(&E.mu);
  E.last_seq = E.min_id = next - 1;
  pthread_mutex_unlock(&E.mu);
}

int gw_events_interest(void) {
  size_t n;

  if (__atomic_load_n(&E.pipes, __ATOMIC_RELAXED) > 0)
    return 1;
  pthread_mutex_lock(&E.mu);
  n = E.n_streams;
  pthread_mutex_unlock(&E.mu);
  return n > 0;
}

/* Forgets the ring: a resume from before seq gets a resync. E.mu held. */
static void ev_discontinue(uint64_t seq) {
  ev_ring_clear();
  E.last_seq = E.min_id = seq;
}

void gw_events_rebase(uint64_t next) {
  pthread_mutex_lock(&E.mu);
  if (next - 1 != E.last_seq) {
    ev_discontinue(next - 1);
    /* (A stream live before the pause cannot be, but if it were, it
     * needs the state again.) */
    for (struct gw_sse *s = E.streams; s; s = s->next) {
      if (s->state != EV_LIVE)
        continue;
      s->state = EV_PENDING;
      s->start = EV_RESYNC;
      E.n_pending++;
    }
  }
  pthread_mutex_unlock(&E.mu);
}

void gw_events_publish(const atr_event *ev) {
  const char *op = atr_op_name(ev->op);
  char topic[EV_TOPIC_BUF];
  size_t tl;
  gw_buf *j = &E.json;

  if (__atomic_load_n(&E.pipes, __ATOMIC_RELAXED) == 0) {
    int none;
    pthread_mutex_lock(&E.mu);
    none = E.n_streams == 0;
    if (none)
      ev_discontinue(ev->seq); /* nobody takes it: not even formatted */
    pthread_mutex_unlock(&E.mu);
    if (none)
      return;
  }
  tl = ev_topic(topic, sizeof(topic), ev->kind, ev->name, op);
  ev_buf_reset(j);
  ev_head(j, ev->seq, ev->kind, ev->name, op);
  if (ev->op != ATR_OP_DELETED)
    ev_state(j, ev->kind, ev->name, ev->id); /* none if gone meanwhile */
  gw_buf_add(j, "}", 1);
  if (j->failed) {
    ev_complain("out of memory");
    return;
  }
  ev_emit(ev->seq, topic, tl, j->data, j->len, 1);
}

/* ---------------------------------------------------------------- batches */

static int ev_collect(const atr_info *info, void *arg) {
  struct ev_batch *b = arg;
  struct ev_obj *o;

  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    struct ev_obj *p = realloc(b->objs, cap * sizeof(*p));
    if (p == NULL)
      return ATR_ENOMEM;
    b->objs = p;
    b->cap = cap;
  }
  o = &b->objs[b->n++];
  memset(o, 0, sizeof(*o));
  memcpy(o->name, info->name, sizeof(o->name));
  o->kind = info->kind;
  o->id = info->id;
  return 0;
}

static int ev_by_name(const void *a, const void *b) {
  return strcmp(((const struct ev_obj *)a)->name,
                ((const struct ev_obj *)b)->name);
}

static void ev_batch_free(struct ev_batch *b) {
  free(b->objs);
  gw_buf_fini(&b->tails);
  memset(b, 0, sizeof(*b));
}

/* Reads every object's state now, sorted by name. 0 or ATR_ENOMEM. Runs
 * on the follower without E.mu. */
static int ev_batch_read(struct ev_batch *b) {
  int rv;

  memset(b, 0, sizeof(*b));
  gw_buf_init(&b->tails);
  if ((rv = atr_list(E.store, ev_collect, b)) != 0)
    goto fail;
  if (b->n > 1)
    qsort(b->objs, b->n, sizeof(*b->objs), ev_by_name);
  for (size_t i = 0; i < b->n; i++) {
    struct ev_obj *o = &b->objs[i];
    size_t start = b->tails.len;
    o->tail_off = start;
    if (ev_state(&b->tails, o->kind, o->name, o->id)) {
      gw_buf_add(&b->tails, "}", 1);
      o->tail_len = b->tails.len - start;
    } else {
      b->tails.len = start; /* deleted meanwhile */
    }
  }
  if (b->tails.failed) {
    rv = ATR_ENOMEM;
    goto fail;
  }
  return 0;
fail:
  ev_batch_free(b);
  return rv;
}

/* One object of batch b as event JSON with op, into out. */
static void ev_batch_json(gw_buf *out, const struct ev_batch *b,
                          const struct ev_obj *o, uint64_t seq,
                          const char *op) {
  ev_buf_reset(out);
  ev_head(out, seq, o->kind, o->name, op);
  gw_buf_add(out, b->tails.data + o->tail_off, o->tail_len);
}

/* Queues batch b on the pending stream s with op (snapshot or resync) and
 * seq; only the last event carries the id. E.mu held. */
static void ev_batch_send(struct gw_sse *s, const struct ev_batch *b,
                          uint64_t seq, const char *op) {
  gw_buf *out = &E.batch_out;
  const struct ev_obj *last = NULL;
  char topic[EV_TOPIC_BUF];

  for (size_t i = 0; i < b->n; i++) {
    const struct ev_obj *o = &b->objs[i];
    size_t tl = ev_topic(topic, sizeof(topic), o->kind, o->name, op);
    if (o->tail_len == 0 || !ev_match(s, topic, tl))
      continue;
    if (last != NULL) {
      ev_batch_json(out, b, last, seq, op);
      if (out->failed || ev_append_frame(s, seq, 0, out->data, out->len, 1))
        return;
    }
    last = o;
  }
  if (last != NULL) {
    ev_batch_json(out, b, last, seq, op);
    if (!out->failed)
      ev_append_frame(s, seq, 1, out->data, out->len, 1);
  }
}

/* Serves the pending streams that need no batch (a resume whose id is
 * still in the ring); returns how many need one. E.mu held. */
static size_t ev_serve_replays(void) {
  size_t need = 0;

  for (struct gw_sse *s = E.streams; s; s = s->next) {
    if (s->state != EV_PENDING)
      continue;
    if (s->start == EV_REPLAY && s->last_id >= E.min_id &&
        s->last_id <= E.last_seq) {
      s->state = EV_LIVE;
      E.n_pending--;
      ev_replay(s);
      continue;
    }
    need++;
  }
  return need;
}

/* Gives every pending stream what it waits for. Takes E.mu. */
static void ev_serve_pending(void) {
  struct ev_batch b;
  size_t need;

  pthread_mutex_lock(&E.mu);
  need = ev_serve_replays();
  pthread_mutex_unlock(&E.mu);
  if (need == 0)
    return;
  /* The state is read without E.mu; the follower publishes nothing
   * meanwhile, so E.last_seq still names the feed position it matches. */
  if (ev_batch_read(&b) != 0) {
    ev_complain("out of memory reading the objects for a snapshot");
    pthread_mutex_lock(&E.mu);
    E.retry_at = gw_now() + 0.1; /* they stay pending: tried again */
    pthread_mutex_unlock(&E.mu);
    return;
  }
  pthread_mutex_lock(&E.mu);
  ev_serve_replays(); /* streams that came meanwhile */
  for (struct gw_sse *s = E.streams; s; s = s->next) {
    if (s->state != EV_PENDING)
      continue;
    s->state = EV_LIVE;
    E.n_pending--;
    /* Events followed between its request and now: a topic that takes
     * no snapshot (one op's prefix) would miss them otherwise. */
    if (s->start == EV_SNAPSHOT && s->accept_seq >= E.min_id) {
      s->last_id = s->accept_seq;
      ev_replay(s);
    }
    ev_batch_send(s, &b, E.last_seq,
                  s->start == EV_SNAPSHOT ? "snapshot" : "resync");
  }
  pthread_mutex_unlock(&E.mu);
  ev_batch_free(&b);
}

void gw_events_resync(uint64_t next) {
  struct ev_batch b;
  char topic[EV_TOPIC_BUF];
  uint64_t seq = next - 1;

  pthread_mutex_lock(&E.mu);
  ev_ring_clear();
  E.last_seq = E.min_id = seq;
  for (struct gw_sse *s = E.streams; s; s = s->next) {
    if (s->state == EV_PENDING)
      continue; /* a replay it waits for becomes a resync */
    if (s->state == EV_DROPPED)
      continue; /* gets its resync when it drains */
    s->state = EV_PENDING;
    s->start = EV_RESYNC;
    E.n_pending++;
  }
  pthread_mutex_unlock(&E.mu);
  if (ev_batch_read(&b) != 0) {
    ev_complain("out of memory reading the objects for a resync");
    return;
  }
  for (size_t i = 0; i < b.n; i++) {
    const struct ev_obj *o = &b.objs[i];
    size_t tl;
    if (o->tail_len == 0)
      continue;
    tl = ev_topic(topic, sizeof(topic), o->kind, o->name, "resync");
    ev_batch_json(&E.json, &b, o, seq, "resync");
    if (!E.json.failed)
      ev_emit(seq, topic, tl, E.json.data, E.json.len, 0);
  }
  ev_batch_free(&b);
  ev_serve_pending();
}

double gw_events_tick(double now) {
  double due;
  int pending, beat;

  pthread_mutex_lock(&E.mu);
  pending = E.n_pending > 0 && now >= E.retry_at;
  beat = E.n_streams > 0 && now >= E.next_beat;
  pthread_mutex_unlock(&E.mu);
  if (pending)
    ev_serve_pending();
  pthread_mutex_lock(&E.mu);
  if (beat) {
    /* A comment line keeps proxies from closing an idle stream and lets
     * MHD notice a client that left. */
    for (struct gw_sse *s = E.streams; s; s = s->next)
      if (s->state == EV_LIVE && s->len == s->off)
        ev_append(s, ":\n\n", 3, 0);
    E.next_beat = now + gw_srv->cfg.sse_heartbeat;
  }
  due = E.n_streams > 0 ? E.next_beat : EV_NEVER;
  if (E.n_pending > 0)
    due = E.retry_at > now ? E.retry_at : now;
  pthread_mutex_unlock(&E.mu);
  return due;
}

/* --------------------------------------------------------------- tickets */

static int ev_hex_equal(const char *a, const char *b, size_t n) {
  unsigned char diff = 0;

  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

/* 1 if t is a live ticket (which is then used up). */
static int ev_ticket_take(const char *t) {
  double now = gw_now();
  int ok = 0;

  if (strlen(t) != EV_TICKET_LEN)
    return 0;
  pthread_mutex_lock(&E.mu);
  for (size_t i = 0; i < EV_TICKETS; i++) {
    struct ev_ticket *k = &E.tickets[i];
    if (k->expires > now && ev_hex_equal(k->id, t, EV_TICKET_LEN) && !ok) {
      k->expires = 0;
      ok = 1;
    }
  }
  pthread_mutex_unlock(&E.mu);
  return ok;
}

int gw_events_ticket(struct gw_req *req) {
  static const char hex[] = "0123456789abcdef";
  unsigned char rnd[EV_TICKET_LEN / 2];
  char id[EV_TICKET_LEN + 1];
  struct ev_ticket *slot = NULL;
  double now = gw_now();
  gw_buf b;

  if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
    return gw_reply_error(req, 500, "internal_error", "no random bytes");
  for (size_t i = 0; i < sizeof(rnd); i++) {
    id[2 * i] = hex[rnd[i] >> 4];
    id[2 * i + 1] = hex[rnd[i] & 15];
  }
  id[EV_TICKET_LEN] = '\0';
  pthread_mutex_lock(&E.mu);
  /* A free or expired slot, else the one that expires first. */
  for (size_t i = 0; i < EV_TICKETS; i++) {
    struct ev_ticket *k = &E.tickets[i];
    if (k->expires <= now) {
      slot = k;
      break;
    }
    if (slot == NULL || k->expires < slot->expires)
      slot = k;
  }
  memcpy(slot->id, id, EV_TICKET_LEN);
  slot->expires = now + EV_TICKET_TTL;
  pthread_mutex_unlock(&E.mu);
  gw_buf_init(&b);
  gw_buf_fmt(&b, "{\"ticket\":\"%s\",\"expires_in\":%d}", id, EV_TICKET_TTL);
  return gw_reply_buf(req, 201, &b, 0);
}

/* --------------------------------------------------------------- streams */

/* Parses ?topics= into s (comma-separated byte prefixes; empty ones are
 * ignored; none at all means every topic). 0, or -1 after answering. */
static int ev_parse_topics(struct gw_req *req, struct gw_sse *s) {
  const char *q = gw_req_query(req, "topics");
  char *p, *save = NULL;

  if (q == NULL)
    return 0;
  s->topics_text = strdup(q);
  if (s->topics_text == NULL) {
    gw_reply_error(req, 500, "out_of_memory", "out of memory");
    return -1;
  }
  for (p = strtok_r(s->topics_text, ",", &save); p;
       p = strtok_r(NULL, ",", &save)) {
    size_t n = strlen(p);
    if (s->n_topics == EV_MAX_TOPICS || n > EV_TOPIC_MAX) {
      gw_reply_error(req, 400, "invalid_query",
                     "topics takes at most %d prefixes of at most %d bytes",
                     EV_MAX_TOPICS, EV_TOPIC_MAX);
      return -1;
    }
    s->topic[s->n_topics] = p;
    s->topic_len[s->n_topics++] = n;
  }
  return 0;
}

static void ev_stream_free(struct gw_sse *s) {
  if (s == NULL)
    return;
  free(s->topics_text);
  free(s->buf);
  free(s);
}

int gw_events_stream(struct gw_req *req) {
  const char *last, *ticket;
  struct MHD_Response *resp;
  struct gw_sse *s;
  int64_t id = -1;

  /* The route is open: a browser's EventSource cannot send a header, so
   * the token may come as a ticket instead. */
  if (gw_srv->cfg.token != NULL && !gw_auth_ok(req)) {
    ticket = gw_req_query(req, "ticket");
    if (ticket == NULL || !ev_ticket_take(ticket))
      return gw_reply_error(req, 401, "unauthorized",
                            "this stream needs an Authorization: Bearer token "
                            "or a ?ticket= from POST /v1/events/tickets");
  }
  last = gw_req_header(req, "Last-Event-ID");
  if (last == NULL || *last == '\0')
    last = gw_req_query(req, "lastEventId");
  if (last != NULL && *last != '\0' &&
      (gw_parse_int64(last, &id) != 0 || id < 0))
    return gw_reply_error(req, 400, "invalid_query",
                          "Last-Event-ID must be an event's seq");
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return gw_reply_error(req, 500, "out_of_memory", "out of memory");
  if (ev_parse_topics(req, s) != 0) {
    ev_stream_free(s);
    return MHD_YES;
  }
  s->conn = req->conn;
  s->state = EV_PENDING;
  s->start = id >= 0 ? EV_REPLAY : EV_SNAPSHOT;
  s->last_id = id >= 0 ? (uint64_t)id : 0;
  s->boundary = 1;
  resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, EV_BLOCK, ev_read,
                                           s, NULL);
  if (resp == NULL) {
    ev_stream_free(s);
    return gw_reply_error(req, 500, "out_of_memory", "out of memory");
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/event-stream");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  pthread_mutex_lock(&E.mu);
  if (E.stopping) {
    pthread_mutex_unlock(&E.mu);
    MHD_destroy_response(resp);
    ev_stream_free(s);
    return gw_reply_error(req, 503, "unavailable", "the daemon is stopping");
  }
  /* Linked before MHD can call ev_read; freed by gw_events_forget. */
  s->next = E.streams;
  if (E.streams)
    E.streams->prev = s;
  E.streams = s;
  if (E.n_streams++ == 0)
    E.next_beat = gw_now() + gw_srv->cfg.sse_heartbeat;
  E.n_pending++;
  s->accept_seq = E.last_seq;
  req->sse = s;
  pthread_mutex_unlock(&E.mu);
  gw_wait_kick(); /* the follower serves pending streams */
  return gw_reply_response(req, 200, resp);
}

void gw_events_forget(struct gw_req *req) {
  struct gw_sse *s = req->sse;

  if (s == NULL)
    return;
  req->sse = NULL;
  pthread_mutex_lock(&E.mu);
  if (s->prev)
    s->prev->next = s->next;
  else
    E.streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  if (s->state == EV_PENDING)
    E.n_pending--;
  E.n_streams--;
  pthread_cond_broadcast(&E.gone);
  pthread_mutex_unlock(&E.mu);
  ev_stream_free(s);
}

size_t gw_events_streams(void) {
  size_t n;

  pthread_mutex_lock(&E.mu);
  n = E.n_streams;
  pthread_mutex_unlock(&E.mu);
  return n;
}

/* ------------------------------------------------------------ lifecycle */

/* Counts the nng subscribers; the first one wakes the follower. (nng
 * runs REM_POST only for a pipe it ran ADD_PRE for.) */
static void ev_pipe_cb(nng_pipe p, nng_pipe_ev what, void *arg) {
  (void)p;
  (void)arg;
  if (what == NNG_PIPE_EV_ADD_PRE) {
    if (__atomic_fetch_add(&E.pipes, 1, __ATOMIC_SEQ_CST) == 0)
      gw_wait_kick();
  } else if (what == NNG_PIPE_EV_REM_POST) {
    __atomic_fetch_sub(&E.pipes, 1, __ATOMIC_SEQ_CST);
  }
}

/* Listens on url; with fallback a busy address is tried again on port 0.
 * 0 or an nng error. */
static int ev_listen(const char *url, int fallback) {
  nng_listener l;
  nng_url *u = NULL;
  char buf[512];
  int rv, port;

  if ((rv = nng_listener_create(&l, E.pub, url)) != 0)
    return rv;
  rv = nng_listener_start(l, 0);
  if (rv == NNG_EADDRINUSE && fallback) {
    nng_listener_close(l);
    if (nng_url_parse(&u, url) != 0)
      return rv;
    snprintf(buf, sizeof(buf), "%s://%s%s%s:0%s", u->u_scheme,
             strchr(u->u_hostname, ':') ? "[" : "", u->u_hostname,
             strchr(u->u_hostname, ':') ? "]" : "", u->u_path);
    E.busy_default = url; /* said after the ready line */
    nng_url_free(u);
    u = NULL;
    if ((rv = nng_listener_create(&l, E.pub, buf)) != 0)
      return rv;
    rv = nng_listener_start(l, 0);
    url = buf;
  }
  if (rv != 0)
    return rv;
  /* A TCP port 0 was given one: name the real one. */
  if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0 &&
      nng_url_parse(&u, url) == 0) {
    char real[512];
    snprintf(real, sizeof(real), "%s://%s%s%s:%d%s", u->u_scheme,
             strchr(u->u_hostname, ':') ? "[" : "", u->u_hostname,
             strchr(u->u_hostname, ':') ? "]" : "", port, u->u_path);
    nng_url_free(u);
    E.url = strdup(real);
  } else {
    E.url = strdup(url);
  }
  return E.url ? 0 : NNG_ENOMEM;
}

int gw_events_open(atr_store *store) {
  const struct gw_config *cfg = &gw_srv->cfg;
  int rv;

  E.store = store;
  E.ring = calloc(EV_RING, sizeof(*E.ring));
  if (E.ring == NULL) {
    fprintf(stderr, "atriumd: out of memory\n");
    return -1;
  }
  if ((rv = nng_pub0_open(&E.pub)) != 0) {
    fprintf(stderr, "atriumd: cannot open the events socket: %s\n",
            nng_strerror(rv));
    return -1;
  }
  E.pub_open = 1;
  nng_socket_set_int(E.pub, NNG_OPT_SENDBUF, EV_SENDBUF);
  if ((rv = nng_pipe_notify(E.pub, NNG_PIPE_EV_ADD_PRE, ev_pipe_cb, NULL)) !=
          0 ||
      (rv = nng_pipe_notify(E.pub, NNG_PIPE_EV_REM_POST, ev_pipe_cb, NULL)) !=
          0) {
    fprintf(stderr, "atriumd: cannot watch the events socket: %s\n",
            nng_strerror(rv));
    return -1;
  }
  if ((rv = ev_listen(cfg->events_url, !cfg->events_given)) != 0) {
    fprintf(stderr, "atriumd: cannot listen for events on %s: %s\n",
            cfg->events_url, nng_strerror(rv));
    return -1;
  }
  return 0;
}

const char *gw_events_url(void) {
  return E.url ? E.url : gw_srv->cfg.events_url;
}

void gw_events_warn(void) {
  if (E.busy_default != NULL)
    fprintf(stderr,
            "atriumd: warning: %s was in use; events on %s instead (set "
            "--events to choose)\n",
            E.busy_default, gw_events_url());
}

void gw_events_shutdown(double grace) {
  struct timespec until;

  pthread_mutex_lock(&E.mu);
  E.stopping = 1;
  /* A suspended connection left at MHD_stop_daemon is fatal: resume every
   * stream; ev_read then sends what is queued and ends it. */
  for (struct gw_sse *s = E.streams; s; s = s->next)
    ev_wake(s);
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)grace;
  until.tv_nsec += (long)((grace - (double)(time_t)grace) * 1e9);
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  while (E.n_streams > 0 && grace > 0)
    if (pthread_cond_timedwait(&E.gone, &E.mu, &until) != 0)
      break;
  pthread_mutex_unlock(&E.mu);
}

void gw_events_close(void) {
  if (E.pub_open)
    nng_close(E.pub);
  E.pub_open = 0;
  pthread_mutex_lock(&E.mu);
  if (E.ring)
    ev_ring_clear();
  free(E.ring);
  E.ring = NULL;
  pthread_mutex_unlock(&E.mu);
  free(E.url);
  E.url = NULL;
  gw_buf_fini(&E.json);
  gw_buf_fini(&E.msg);
  gw_buf_fini(&E.frame);
  gw_buf_fini(&E.batch_out);
  gw_buf_fini(&E.frame_out);
  nng_fini();
}
