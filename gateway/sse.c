/*
 * sse.c - Server-Sent Events (sse.h).
 *
 * A stream starts "pending": the follower, between two feed events, gives
 * it one "snapshot" event per subscribed object, or for a resume
 * (Last-Event-ID) the events after that id from the ring, or - when the
 * id is no longer there - one "resync" event per subscribed object; from
 * then on it gets live events. Because all of that happens on the
 * follower thread in feed order, a stream never sees an event older than
 * its snapshot. Only the last event of a snapshot or resync batch carries
 * an id, so a client cut off in the middle of a batch resumes with its old
 * id and gets a whole batch again.
 *
 * libmicrohttpd reads a stream through sse_read, a content-reader
 * callback: it copies what is queued, and when nothing is it suspends the
 * connection and returns 0 (returning 0 without suspending makes MHD
 * spin); the follower resumes it when it queues more. The queue of a
 * stream is bounded (--sse-buffer): a client that stops reading never
 * slows the follower, the writers or other streams. On overflow the
 * queued events that MHD has not started are dropped, and once the client
 * has read what is left it gets a resync batch with the current state.
 *
 * All streams' queues together are bounded too (--sse-memory): a queue
 * that must grow past it first sheds the streams with the most queued
 * (the slowest readers): they are dropped as above and their memory is
 * given back at once. A drained queue larger than EV_KEEP is freed, a
 * closed stream's too, and once EV_TRIM_AT bytes went back that way the
 * follower hands them to the system (malloc_trim: glibc keeps them).
 *
 * Matching. A topic that names one object ("<kind>/<name>/", maybe an
 * op after it) is kept in a hash table by that object's part (E.index);
 * a stream with any other topic (none: all; "value/"; "queue/jo") is on
 * E.broad. An event is matched against the streams of its object's
 * bucket and the broad ones only, so a thousand streams on other
 * objects cost an event nothing, and a stream's snapshot names its
 * objects by lookup, not by a walk of the store (snap.h).
 *
 * Lock order: E.mu, then libmicrohttpd's own (suspend and resume take
 * it). E.mu is never held while the follower reads object state.
 */
#include <microhttpd.h>

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "follow.h"
#include "snap.h"
#include "sse.h"

#define EV_RING 4096                    /* recent events kept for resumes     */
#define EV_RING_BYTES ((size_t)8 << 20) /* and at most this many bytes    */
#define EV_MAX_TOPICS 32     /* prefixes in ?topics=                     */
#define EV_TOPIC_MAX 200     /* bytes of one prefix                      */
#define EV_BLOCK (16 * 1024) /* most bytes handed to MHD at once        */
#define EV_NEVER 1e300
#define EV_KEEP (64 * 1024)          /* a drained queue keeps this much  */
#define EV_TRIM_AT ((size_t)4 << 20) /* freed bytes before a malloc_trim */

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
  uint64_t accept_seq; /* the feed's last event when it came: a
                          snapshot stream gets none up to it (its
                          snapshot holds their effect)               */
  int suspended;       /* by ev_read; only the follower resumes      */
  int boundary;        /* what MHD has taken ends at an event's end  */
  int last_nl;         /* ... and its last byte was a newline        */
  char *topics_text;   /* the prefixes, NUL-separated                */
  const char *topic[EV_MAX_TOPICS];
  size_t topic_len[EV_MAX_TOPICS];
  size_t n_topics; /* 0: every topic                              */
  char *buf;       /* queued bytes: buf[off..len)                 */
  size_t off, len, cap;
  /* Who the follower matches it against (see "Matching" above). */
  int broad;                    /* on E.broad, not in E.index          */
  struct gw_sse *bprev, *bnext; /* E.broad                             */
  struct ev_ref *refs;          /* one per topic, in E.index          */
  uint64_t mark;                /* the last publish that queued on it  */
  unsigned round;               /* the serve round reading its batch  */
};

/* A topic of a stream that names one object, in E.index under the hash
 * of its "<kind>/<name>/". */
struct ev_ref {
  struct ev_ref *next;
  struct gw_sse *s;
  uint64_t hash;
  size_t t; /* its index in s->topic */
};

/* A recent event: its nng message "<topic> <json>". */
struct ev_entry {
  uint64_t seq;
  char *msg;
  size_t len, topic_len;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t gone; /* a stream ended (shutdown waits on it) */
  /* Recent events: ring[(first + i) % EV_RING], i < n. */
  struct ev_entry *ring;
  size_t ring_first, ring_n, ring_bytes;
  uint64_t last_seq; /* the newest seq handed to streams         */
  uint64_t min_id;   /* a resume from an id below this: resync    */
  struct gw_sse *streams;
  size_t n_streams, n_pending;
  int stopping;
  double next_beat;
  int complained;
  double retry_at; /* a batch failed for want of memory: not before */
  size_t mem;      /* bytes of every stream's queue (their caps)    */
  size_t freed;    /* of them freed since the last malloc_trim      */
  uint64_t shed;   /* streams dropped for the total bound           */
  /* The follower's scratch buffers. */
  gw_buf frame, batch_out, frame_out;
  /* Matching: exact topics by hash, and the streams that are not. */
  struct ev_ref **index;
  size_t index_cap, index_n;
  struct gw_sse *broad;
  uint64_t publishes; /* gw_sse_publish calls: a stream's mark */
  unsigned round;     /* gw_sse_serve rounds                   */
} E = {.mu = PTHREAD_MUTEX_INITIALIZER, .gone = PTHREAD_COND_INITIALIZER};

static int ev_match(const struct gw_sse *s, const char *topic, size_t len) {
  if (s->n_topics == 0)
    return 1;
  for (size_t i = 0; i < s->n_topics; i++)
    if (s->topic_len[i] <= len &&
        memcmp(s->topic[i], topic, s->topic_len[i]) == 0)
      return 1;
  return 0;
}

/* ----------------------------------------------------------- matching */

/* The length of a topic's "<kind>/<name>/" part (exact topics, and the
 * topics of events, have one). */
static size_t ev_key_len(const char *topic, size_t len) {
  const char *a = memchr(topic, '/', len);
  const char *b = a ? memchr(a + 1, '/', len - (size_t)(a + 1 - topic)) : NULL;

  return b ? (size_t)(b + 1 - topic) : len;
}

static uint64_t ev_hash(const char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
  return h;
}

/* Doubles E.index (or makes it): 0, or -1 out of memory. E.mu held. */
static int ev_index_grow(void) {
  size_t cap = E.index_cap ? E.index_cap * 2 : 256;
  struct ev_ref **t = calloc(cap, sizeof(*t));

  if (t == NULL)
    return -1;
  for (size_t b = 0; b < E.index_cap; b++)
    for (struct ev_ref *r = E.index[b], *next; r; r = next) {
      next = r->next;
      r->next = t[r->hash & (cap - 1)];
      t[r->hash & (cap - 1)] = r;
    }
  free(E.index);
  E.index = t;
  E.index_cap = cap;
  return 0;
}

/* Files a new stream for matching. E.mu held. */
static void ev_match_add(struct gw_sse *s) {
  s->broad = s->n_topics == 0;
  for (size_t t = 0; t < s->n_topics && !s->broad; t++)
    s->broad = !gw_topic_is_exact(s->topic[t], s->topic_len[t]);
  if (!s->broad && (E.index_n + s->n_topics > E.index_cap * 2 &&
                    ev_index_grow() != 0 && E.index_cap == 0))
    s->broad = 1;
  if (!s->broad && (s->refs = calloc(s->n_topics, sizeof(*s->refs))) == NULL)
    s->broad = 1; /* (matched by a scan: slower, never wrong) */
  if (s->broad) {
    s->bnext = E.broad;
    if (E.broad)
      E.broad->bprev = s;
    E.broad = s;
    return;
  }
  for (size_t t = 0; t < s->n_topics; t++) {
    struct ev_ref *r = &s->refs[t];
    r->s = s;
    r->t = t;
    r->hash = ev_hash(s->topic[t], ev_key_len(s->topic[t], s->topic_len[t]));
    r->next = E.index[r->hash & (E.index_cap - 1)];
    E.index[r->hash & (E.index_cap - 1)] = r;
    E.index_n++;
  }
}

/* Takes a stream out of matching. E.mu held. */
static void ev_match_del(struct gw_sse *s) {
  if (s->broad) {
    if (s->bprev)
      s->bprev->bnext = s->bnext;
    else if (E.broad == s)
      E.broad = s->bnext;
    if (s->bnext)
      s->bnext->bprev = s->bprev;
    s->bprev = s->bnext = NULL;
    return;
  }
  for (size_t t = 0; s->refs != NULL && t < s->n_topics; t++) {
    struct ev_ref **p = &E.index[s->refs[t].hash & (E.index_cap - 1)];
    while (*p != NULL && *p != &s->refs[t])
      p = &(*p)->next;
    if (*p != NULL) {
      *p = s->refs[t].next;
      E.index_n--;
    }
  }
}

/* -------------------------------------------------------------- streams */

/* Hands a suspended stream back to MHD. Called with E.mu held. */
static void ev_wake(struct gw_sse *s) {
  if (s->suspended) {
    s->suspended = 0;
    gw_conn_resume(s->conn);
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

/* Whether freed queues should go back to the system now: EV_TRIM_AT
 * bytes went, or some and no stream is left. E.mu held. */
static int ev_trim_due(void) {
  if (E.freed < EV_TRIM_AT && (E.freed == 0 || E.n_streams > 0))
    return 0;
  E.freed = 0;
  return 1;
}

/* Gives back s's queue memory beyond what it still holds. E.mu held. */
static void ev_shrink(struct gw_sse *s) {
  size_t left = s->len - s->off;
  char *q = NULL;

  if (left > 0 && (q = malloc(left)) == NULL)
    return; /* keeps its buffer */
  if (left > 0)
    memcpy(q, s->buf + s->off, left);
  free(s->buf);
  E.mem -= s->cap;
  E.freed += s->cap;
  s->buf = q;
  s->cap = s->len = left;
  s->off = 0;
  E.mem += s->cap;
}

/* Makes room for need more bytes under --sse-memory by dropping the
 * streams with the most queued, but keep; 0 when it fits. E.mu held. */
static int ev_shed(const struct gw_sse *keep, size_t need) {
  while (E.mem + need > gw_srv->cfg.sse_memory) {
    struct gw_sse *worst = NULL;
    for (struct gw_sse *t = E.streams; t; t = t->next)
      if (t != keep && t->len - t->off > 0 &&
          (worst == NULL || t->len - t->off > worst->len - worst->off))
        worst = t;
    if (worst == NULL)
      return -1;
    ev_drop(worst);
    ev_shrink(worst);
    E.shed++;
  }
  return 0;
}

/*
 * Queues p[0..n) (whole events) on s. The --sse-buffer bound applies to
 * what is queued already, so one event always fits an empty queue; with
 * force it does not apply at all (a snapshot or resync batch goes whole;
 * it is bounded by the store's objects). Growing the queue past
 * --sse-memory sheds the slowest other streams first, and s itself when
 * that is not enough (but for force). Returns 0, or -1 when s overflowed
 * (its queue was dropped and it waits to drain) or memory ran out (the
 * same). Called with E.mu held.
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
    if (ev_shed(s, cap - s->cap) != 0 && !force) {
      ev_drop(s);
      ev_shrink(s);
      E.shed++;
      return -1;
    }
    q = realloc(s->buf, cap);
    if (q == NULL) {
      ev_drop(s);
      return -1;
    }
    E.mem += cap - s->cap;
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

  gw_buf_reset(f);
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
    if (s->off == s->len) {
      s->off = s->len = 0;
      if (s->cap > EV_KEEP)
        ev_shrink(s); /* a burst is over: its memory goes back */
    }
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
    gw_follow_kick(0);
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

static void ev_complain(const char *what) {
  if (!E.complained)
    fprintf(stderr, "atriumd: events: %s\n", what);
  E.complained = 1;
}

/* Queues batch b on the pending stream s with op (snapshot or resync) and
 * seq; only the last event carries the id. E.mu held. */
static void ev_batch_send(struct gw_sse *s, const struct gw_snap *b,
                          uint64_t seq, const char *op) {
  gw_buf *out = &E.batch_out;
  size_t last = b->n;
  char topic[GW_TOPIC_MAX];

  for (size_t i = 0; i < b->n; i++) {
    const struct gw_snap_obj *o = &b->objs[i];
    size_t tl = gw_event_topic(topic, o->kind, o->name, op);
    if (o->state_len == 0 || !ev_match(s, topic, tl))
      continue;
    if (last != b->n) {
      gw_snap_event(out, b, last, seq, op);
      if (out->failed || ev_append_frame(s, seq, 0, out->data, out->len, 1))
        return;
    }
    last = i;
  }
  if (last != b->n) {
    gw_snap_event(out, b, last, seq, op);
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

/* The exact topics of the pending streams, copied (a stream may go
 * while they are read). */
struct ev_wanted {
  char *text;
  const char **topic;
  size_t *len;
  size_t n;
};

/* Marks the pending streams of this round and copies the exact topics of
 * those that are not broad; sets *broad when one is. 0 or -1 (memory).
 * E.mu held. */
static int ev_round(unsigned round, struct ev_wanted *w, int *broad) {
  size_t n = 0, bytes = 0, off = 0;

  memset(w, 0, sizeof(*w));
  *broad = 0;
  for (struct gw_sse *s = E.streams; s; s = s->next) {
    if (s->state != EV_PENDING)
      continue;
    s->round = round;
    if (s->broad) {
      *broad = 1;
      continue;
    }
    for (size_t t = 0; t < s->n_topics; t++)
      bytes += s->topic_len[t];
    n += s->n_topics;
  }
  if (n == 0)
    return 0;
  w->text = malloc(bytes ? bytes : 1);
  w->topic = malloc(n * sizeof(*w->topic));
  w->len = malloc(n * sizeof(*w->len));
  if (w->text == NULL || w->topic == NULL || w->len == NULL)
    return -1;
  for (struct gw_sse *s = E.streams; s; s = s->next) {
    if (s->state != EV_PENDING || s->broad)
      continue;
    for (size_t t = 0; t < s->n_topics; t++) {
      memcpy(w->text + off, s->topic[t], s->topic_len[t]);
      w->topic[w->n] = w->text + off;
      w->len[w->n++] = s->topic_len[t];
      off += s->topic_len[t];
    }
  }
  return 0;
}

static void ev_wanted_free(struct ev_wanted *w) {
  free(w->text);
  free(w->topic);
  free(w->len);
}

/* Gives every pending stream what it waits for. Takes E.mu. Streams
 * whose topics each name one object get the state of those objects,
 * read by lookup; the others share one read of every object. */
void gw_sse_serve(void) {
  struct gw_snap all, some;
  struct ev_wanted w;
  unsigned round;
  int broad, failed = 0, left = 0;

  pthread_mutex_lock(&E.mu);
  if (ev_serve_replays() == 0) {
    pthread_mutex_unlock(&E.mu);
    return;
  }
  round = ++E.round;
  failed = ev_round(round, &w, &broad) != 0;
  pthread_mutex_unlock(&E.mu);
  memset(&all, 0, sizeof(all));
  memset(&some, 0, sizeof(some));
  /* The state is read without E.mu; the follower publishes nothing
   * meanwhile, so E.last_seq still names the feed position it matches. */
  if (!failed && broad && gw_snap_read(gw_srv->store, NULL, &all) != 0)
    failed = 1;
  if (!failed && w.n > 0) {
    struct gw_snap_want want = {w.topic, w.len, w.n, NULL};
    failed = gw_snap_read(gw_srv->store, &want, &some) != 0;
  }
  ev_wanted_free(&w);
  if (failed) {
    ev_complain("out of memory reading the objects for a snapshot");
    gw_snap_free(&all);
    gw_snap_free(&some);
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
    if (s->round != round) {
      left = 1; /* came meanwhile: the next round reads for it */
      continue;
    }
    s->state = EV_LIVE;
    E.n_pending--;
    /* Events followed between its request and now: a topic that takes
     * no snapshot (one op's prefix) would miss them otherwise. */
    if (s->start == EV_SNAPSHOT && s->accept_seq >= E.min_id) {
      s->last_id = s->accept_seq;
      ev_replay(s);
    }
    ev_batch_send(s, s->broad ? &all : &some, E.last_seq,
                  s->start == EV_SNAPSHOT ? "snapshot" : "resync");
  }
  if (left)
    E.retry_at = 0;
  pthread_mutex_unlock(&E.mu);
  gw_snap_free(&all);
  gw_snap_free(&some);
}

double gw_sse_tick(double now) {
  double due;
  int pending, beat, trim;

  pthread_mutex_lock(&E.mu);
  pending = E.n_pending > 0 && now >= E.retry_at;
  beat = E.n_streams > 0 && now >= E.next_beat;
  pthread_mutex_unlock(&E.mu);
  if (pending)
    gw_sse_serve();
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
  trim = ev_trim_due();
  pthread_mutex_unlock(&E.mu);
  if (trim)
    malloc_trim(0); /* queues freed: back to the system */
  return due;
}

/* --------------------------------------------------------------- streams */

/* Parses ?topics= into s (comma-separated byte prefixes; empty ones are
 * ignored; none at all means every topic). GW_NEXT, or GW_DONE after
 * answering. */
static int ev_parse_topics(struct gw_req *req, struct gw_sse *s) {
  const char *q = gw_req_query(req, "topics");
  char *p, *save = NULL;

  if (q == NULL)
    return GW_NEXT;
  s->topics_text = strdup(q);
  if (s->topics_text == NULL)
    return gw_reply_core(req, ATR_ENOMEM);
  for (p = strtok_r(s->topics_text, ",", &save); p;
       p = strtok_r(NULL, ",", &save)) {
    size_t n = strlen(p);
    if (s->n_topics == EV_MAX_TOPICS || n > EV_TOPIC_MAX)
      return gw_reply_error(
          req, 400, "invalid_query",
          "topics takes at most %d prefixes of at most %d bytes", EV_MAX_TOPICS,
          EV_TOPIC_MAX);
    s->topic[s->n_topics] = p;
    s->topic_len[s->n_topics++] = n;
  }
  return GW_NEXT;
}

static void ev_stream_free(struct gw_sse *s) {
  if (s == NULL)
    return;
  free(s->topics_text);
  free(s->refs);
  free(s->buf);
  free(s);
}

static int sse_unauthorized(struct gw_req *req) {
  return gw_reply_error(req, 401, "unauthorized",
                        "this stream needs an Authorization: Bearer token "
                        "or a ?ticket= from POST /v1/events/tickets");
}

int gw_sse_stream(struct gw_req *req) {
  const char *last;
  struct MHD_Response *resp;
  struct gw_sse *s;
  int64_t id = -1;

  /* The route is open: a browser's EventSource cannot send a header, so
   * the token may come as a ticket instead, used up only once the
   * request has passed every other check. */
  if (!gw_auth_ok_or_ticket(req, 0))
    return sse_unauthorized(req);
  last = gw_req_header(req, "Last-Event-ID");
  if (last == NULL || *last == '\0')
    last = gw_req_query(req, "lastEventId");
  if (last != NULL && *last != '\0' &&
      (gw_parse_int64(last, &id) != 0 || id < 0))
    return gw_reply_error(req, 400, "invalid_query",
                          "Last-Event-ID must be an event's seq");
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return gw_reply_core(req, ATR_ENOMEM);
  if (ev_parse_topics(req, s) != GW_NEXT) {
    ev_stream_free(s);
    return GW_DONE;
  }
  if (!gw_auth_ok_or_ticket(req, 1)) { /* taken by another meanwhile */
    ev_stream_free(s);
    return sse_unauthorized(req);
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
    return gw_reply_core(req, ATR_ENOMEM);
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
  /* Linked before MHD can call ev_read; freed by gw_sse_forget. */
  s->next = E.streams;
  if (E.streams)
    E.streams->prev = s;
  E.streams = s;
  ev_match_add(s);
  if (E.n_streams++ == 0)
    E.next_beat = gw_now() + gw_srv->cfg.sse_heartbeat;
  E.n_pending++;
  /* The feed's end, not the follower's place: the follower may be behind
   * (or paused while nobody listened), and what it has yet to follow up
   * to here happened before this request. */
  atr_cursor end;
  s->accept_seq = atr_feed_open(gw_srv->store, &end) == 0 && end.next > 0
                      ? end.next - 1
                      : E.last_seq;
  req->sse = s;
  pthread_mutex_unlock(&E.mu);
  gw_follow_kick(0); /* the follower serves pending streams */
  return gw_reply_response(req, 200, resp);
}

void gw_sse_forget(struct gw_req *req) {
  struct gw_sse *s = req->sse;
  int trim;

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
  ev_match_del(s);
  if (s->state == EV_PENDING)
    E.n_pending--;
  E.n_streams--;
  E.mem -= s->cap;
  E.freed += s->cap;
  pthread_cond_broadcast(&E.gone);
  trim = ev_trim_due();
  pthread_mutex_unlock(&E.mu);
  ev_stream_free(s);
  if (trim)
    malloc_trim(0); /* closed streams' memory: back to the system */
}

size_t gw_sse_count(void) {
  size_t n;

  pthread_mutex_lock(&E.mu);
  n = E.n_streams;
  pthread_mutex_unlock(&E.mu);
  return n;
}

void gw_sse_shutdown(double grace) {

  pthread_mutex_lock(&E.mu);
  E.stopping = 1;
  /* A suspended connection left at MHD_stop_daemon is fatal: resume every
   * stream; ev_read then sends what is queued and ends it. */
  for (struct gw_sse *s = E.streams; s; s = s->next)
    ev_wake(s);
  gw_drain_wait(&E.gone, &E.mu, &E.n_streams, grace);
  pthread_mutex_unlock(&E.mu);
}

void gw_sse_close(void) {
  pthread_mutex_lock(&E.mu);
  if (E.ring)
    ev_ring_clear();
  free(E.ring);
  E.ring = NULL;
  free(E.index);
  E.index = NULL;
  E.index_cap = E.index_n = 0;
  pthread_mutex_unlock(&E.mu);
  gw_buf_fini(&E.frame);
  gw_buf_fini(&E.batch_out);
  gw_buf_fini(&E.frame_out);
}

int gw_sse_open(void) {
  E.ring = calloc(EV_RING, sizeof(*E.ring));
  if (E.ring == NULL) {
    fprintf(stderr, "atriumd: out of memory\n");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------ the follower side */

void gw_sse_begin(uint64_t next) {
  pthread_mutex_lock(&E.mu);
  E.last_seq = E.min_id = next - 1;
  pthread_mutex_unlock(&E.mu);
}

int gw_sse_interest(void) {
  return gw_sse_count() > 0;
}

/* Forgets the ring: a resume from before seq gets a resync. E.mu held. */
static void ev_discontinue(uint64_t seq) {
  ev_ring_clear();
  E.last_seq = E.min_id = seq;
}

int gw_sse_skip(uint64_t seq) {
  int none;

  pthread_mutex_lock(&E.mu);
  none = E.n_streams == 0;
  if (none)
    ev_discontinue(seq);
  pthread_mutex_unlock(&E.mu);
  return none;
}

void gw_sse_publish(uint64_t seq, const char *msg, size_t len,
                    size_t topic_len) {
  gw_buf *f = &E.frame;

  gw_buf_reset(f);
  gw_buf_str(f, "id: ");
  gw_buf_u64(f, seq);
  gw_buf_str(f, "\ndata: ");
  gw_buf_add(f, msg + topic_len + 1, len - topic_len - 1);
  gw_buf_add(f, "\n\n", 2);
  if (f->failed) {
    ev_complain("out of memory");
    return;
  }
  pthread_mutex_lock(&E.mu);
  ev_ring_push(seq, msg, len, topic_len);
  E.last_seq = seq;
  E.publishes++;
  if (E.index_n > 0) {
    uint64_t h = ev_hash(msg, ev_key_len(msg, topic_len));
    for (struct ev_ref *r = E.index[h & (E.index_cap - 1)]; r; r = r->next) {
      struct gw_sse *s = r->s;
      if (r->hash != h || s->mark == E.publishes ||
          s->topic_len[r->t] > topic_len ||
          memcmp(s->topic[r->t], msg, s->topic_len[r->t]) != 0)
        continue;
      s->mark = E.publishes; /* (two of its topics may match) */
      if (s->state == EV_LIVE &&
          (s->start != EV_SNAPSHOT || seq > s->accept_seq))
        ev_append(s, f->data, f->len, 0);
    }
  }
  for (struct gw_sse *s = E.broad; s; s = s->bnext)
    if (s->state == EV_LIVE && ev_match(s, msg, topic_len) &&
        (s->start != EV_SNAPSHOT || seq > s->accept_seq))
      ev_append(s, f->data, f->len, 0);
  pthread_mutex_unlock(&E.mu);
}

void gw_sse_rebase(uint64_t next) {
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

void gw_sse_gap(uint64_t seq) {
  pthread_mutex_lock(&E.mu);
  ev_discontinue(seq);
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
}
