/*
 * park.c - parked requests (park.h).
 *
 * A waiting request (pop on an empty queue, put on a full one, a value
 * watch) suspends its connection and sits in its object's group, found by
 * the object's incarnation id; the group keeps the handle its first
 * waiter opened. The follower hands us every event: for an object with a
 * group we read its state by that handle (atr_handle_stat: no name
 * lookup, no queue lock) and resume the requests the change can satisfy.
 * The follower's tick doubles as the timer that answers expired
 * requests. A resumed request runs its handler again.
 *
 * Lost wake-ups: gw_park_run first arms (joins the group), then tries
 * the operation without waiting, then parks. An event that comes between
 * the try and the park marks the armed request "woken", and it tries
 * again. As a second net (a waker that leaves, a coalesced or lost
 * event), groups with parked requests are re-checked ten times a second
 * (P_TICK).
 *
 * Holders (GW_WAIT_HOLD: a lock, a semaphore's permits, a barrier's
 * places). A lease's end is published (lease.h) and wakes its waiters as
 * any event does; a process that dies holding something publishes
 * nothing (the kernel gives it back), so while a process holds what a
 * parked request waits for, the re-check retries that request, at most
 * every P_HOLD_TICK (50 ms: the longest a waiter over HTTP lags behind a dead
 * holder). The same re-check lets go of parked holders' requests whose
 * client has left (a suspended connection does not notice), so that a
 * client that left is never granted anything and holds no connection.
 *
 * Busy locks. MHD's threads never wait for a store lock (patience 0,
 * http.c): a request whose operation meets one held by a live process
 * (ATR_ELOCKED: stopped, paused, hung) is parked too, "locked": in its
 * object's group when it has one (any event of the object retries it),
 * else in the group of id 0, and the follower's timer retries it after
 * a gap that grows from P_RETRY_FIRST to P_RETRY_MAX. Past --busy-wait
 * it answers 503 busy (gw_req_lock_patient). Retries run the try
 * function again (gw_park_run) or, for a route that does not wait, the
 * whole handler (gw_park_locked: it changed nothing, see req.h).
 *
 * Clients that leave. A suspended connection is not watched by
 * libmicrohttpd, so the socket of every parked request is in an epoll
 * set of ours (P.gone_ep) for EPOLLRDHUP (the client's FIN) while it is
 * parked; every P_GONE_POLL seconds the follower asks it which ones
 * closed, peeks to be sure (a FIN reads as 0 bytes, unless requests the
 * client pipelined come first) and resumes those whose client has gone,
 * to be closed without trying anything (a pop takes nothing, a put adds
 * nothing); a resumed request checks once more before it tries. Peeking
 * at every parked socket instead cost 10,000 recv calls each time with
 * 10,000 parked, and slowed every other request (see ARCHITECTURE.md).
 *
 * Many parked requests. Groups are found in a hash table that grows
 * with them; every suspended request is in one timer heap by its due
 * time (its deadline, or its retry when it met a lock), so a deadline
 * costs O(log n) and no walk. The periodic re-check and the peeks at
 * parked sockets go round the groups P_SWEEP at a time, so a tick costs
 * the same with ten thousand groups as with two hundred (each group is
 * then looked at less often: the re-check is a second net, and a
 * client that left is let go within a few seconds).
 *
 * Lock order: P.mu, then libmicrohttpd's own (suspend/resume take it);
 * the follower's lock only after P.mu is let go (gw_follow_kick). No
 * store lock is ever waited for: the follower reads state lock-free.
 */
#include <malloc.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "park.h"

#define P_BUCKETS_MIN 1024 /* the group table's first size (grows)  */
#define P_SWEEP 256        /* groups re-checked or peeked per tick */
#define P_TICK 0.1         /* seconds between re-checks while requests wait */
#define P_HOLD_TICK 0.05   /* the same while GW_WAIT_HOLD requests do */
#define P_TRIM_AT 1024     /* parked requests released: give memory back  */
#define P_NEVER 1e300
#define P_RETRY_FIRST 0.002 /* first retry of a request that met a lock  */
#define P_RETRY_MAX 0.05    /* the longest gap between two such retries */
#define P_GONE_POLL 0.5     /* seconds between looks at parked sockets  */
#define P_GONE_BATCH 256    /* closed sockets taken from P.gone_ep at once */

enum { P_OFF = 0, P_ARMED, P_SUSPENDED };
enum { P_PARKED, P_RETRY, P_EXPIRED };

struct gw_wgroup {
  struct gw_wgroup *hnext;
  struct gw_wgroup *aprev, *anext; /* P.all */
  atr_handle h;                    /* the object: its first waiter's handle */
  struct gw_waiter *head, *tail;
  size_t suspended; /* requests of this group now suspended */
  size_t waiting;   /* of them, those not parked on a busy lock */
  /* Set by a check that found only watches (GW_WAIT_WATCH, no busy
   * lock): none can be satisfied while the version stays seen_version,
   * so a re-check that finds it unchanged looks at no waiter (with
   * 10,000 watches on one value, the 10 Hz re-check walked them all).
   * A waiter of another sort joining clears it. */
  int only_watches;
  uint64_t seen_version;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t drained;
  struct gw_wgroup **buckets; /* n_buckets, a power of two */
  size_t n_buckets, n_groups;
  struct gw_wgroup *all;          /* every group                     */
  struct gw_wgroup *sweep, *gone; /* where the next sweeps start     */
  int gone_ep;             /* parked sockets, for EPOLLRDHUP (-1: none)  */
  uint64_t unwatched;      /* parked requests not in it (peeked instead) */
  struct gw_waiter **heap; /* suspended requests by due time */
  size_t heap_n, heap_cap;
  int stopping;         /* no more parking; answer everyone          */
  uint64_t parked;      /* suspended requests                        */
  uint64_t hold_parked; /* of which GW_WAIT_HOLD                 */
  size_t draining;      /* resumed for shutdown, not yet completed   */
  double next_deadline;
  double last_check; /* the last periodic re-check             */
  double last_gone;  /* the last peek at parked clients         */
  uint64_t peak;     /* most requests parked since the last trim  */
  double trim_at[2]; /* when to give memory back (0: not)        */
} P = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .drained = PTHREAD_COND_INITIALIZER,
       .gone_ep = -1,
       .next_deadline = P_NEVER};

/* Seconds between re-checks now. P.mu held. */
static double p_tick_every(void) {
  return P.hold_parked > 0 ? P_HOLD_TICK : P_TICK;
}

static struct gw_req *p_req(struct gw_waiter *w) {
  return (struct gw_req *)((char *)w - offsetof(struct gw_req, wait));
}

static size_t p_bucket(uint64_t id, size_t n) {
  return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (n - 1);
}

static struct gw_wgroup *p_group(uint64_t id) {
  struct gw_wgroup *g = NULL;

  if (P.n_buckets > 0)
    for (g = P.buckets[p_bucket(id, P.n_buckets)]; g; g = g->hnext)
      if (g->h.id == id)
        return g;
  return g;
}

/* Doubles the table (or makes it); 0, or -1 out of memory. P.mu held. */
static int p_buckets_grow(void) {
  size_t n = P.n_buckets ? P.n_buckets * 2 : P_BUCKETS_MIN;
  struct gw_wgroup **t = calloc(n, sizeof(*t));

  if (t == NULL)
    return -1;
  for (struct gw_wgroup *g = P.all; g; g = g->anext) {
    size_t b = p_bucket(g->h.id, n);
    g->hnext = t[b];
    t[b] = g;
  }
  free(P.buckets);
  P.buckets = t;
  P.n_buckets = n;
  return 0;
}

static struct gw_wgroup *p_group_new(const atr_handle *h) {
  struct gw_wgroup *g;
  size_t b;

  if (P.n_groups >= P.n_buckets * 2 && p_buckets_grow() != 0 &&
      P.n_buckets == 0)
    return NULL; /* (a full table only makes chains longer) */
  g = calloc(1, sizeof(*g));
  if (g == NULL)
    return NULL;
  g->h = *h;
  b = p_bucket(h->id, P.n_buckets);
  g->hnext = P.buckets[b];
  P.buckets[b] = g;
  g->anext = P.all;
  if (P.all)
    P.all->aprev = g;
  P.all = g;
  P.n_groups++;
  return g;
}

static void p_group_drop(struct gw_wgroup *g) {
  struct gw_wgroup **p = &P.buckets[p_bucket(g->h.id, P.n_buckets)];

  while (*p != g)
    p = &(*p)->hnext;
  *p = g->hnext;
  if (g->aprev)
    g->aprev->anext = g->anext;
  else
    P.all = g->anext;
  if (g->anext)
    g->anext->aprev = g->aprev;
  if (P.sweep == g)
    P.sweep = g->anext;
  if (P.gone == g)
    P.gone = g->anext;
  P.n_groups--;
  free(g);
}

/* ------------------------------------------------------------ timers */

/* When a suspended request is due: its retry when it met a lock, else
 * its deadline. */
static double p_due(const struct gw_waiter *w) {
  return w->locked ? w->retry_at : w->deadline;
}

static void p_heap_set(size_t i, struct gw_waiter *w) {
  P.heap[i] = w;
  w->heap_at = i + 1;
}

static void p_heap_up(size_t i) {
  struct gw_waiter *w = P.heap[i];

  while (i > 0 && p_due(P.heap[(i - 1) / 2]) > p_due(w)) {
    p_heap_set(i, P.heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  p_heap_set(i, w);
}

static void p_heap_down(size_t i) {
  struct gw_waiter *w = P.heap[i];

  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= P.heap_n)
      break;
    if (c + 1 < P.heap_n && p_due(P.heap[c + 1]) < p_due(P.heap[c]))
      c++;
    if (p_due(P.heap[c]) >= p_due(w))
      break;
    p_heap_set(i, P.heap[c]);
    i = c;
  }
  p_heap_set(i, w);
}

/* Adds a request about to be suspended: 0, or -1 out of memory. */
static int p_heap_push(struct gw_waiter *w) {
  if (P.heap_n == P.heap_cap) {
    size_t cap = P.heap_cap ? P.heap_cap * 2 : 256;
    struct gw_waiter **h = realloc(P.heap, cap * sizeof(*h));
    if (h == NULL)
      return -1;
    P.heap = h;
    P.heap_cap = cap;
  }
  p_heap_set(P.heap_n++, w);
  p_heap_up(P.heap_n - 1);
  return 0;
}

static void p_heap_del(struct gw_waiter *w) {
  size_t i = w->heap_at - 1;
  struct gw_waiter *last;

  if (w->heap_at == 0)
    return;
  w->heap_at = 0;
  last = P.heap[--P.heap_n];
  if (i == P.heap_n)
    return;
  p_heap_set(i, last);
  p_heap_up(i);
  p_heap_down(last->heap_at - 1);
}

/* The earliest due of the suspended requests. P.mu held. */
static double p_next_due(void) {
  return P.heap_n > 0 ? p_due(P.heap[0]) : P_NEVER;
}

/* Watches the socket of a request being suspended for its client's FIN
 * (else it is peeked at by the sweep: P.unwatched). P.mu held. */
static void p_watch(struct gw_waiter *w) {
  struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = w};
  int fd = gw_req_socket(p_req(w));

  if (P.gone_ep < 0)
    P.gone_ep = epoll_create1(EPOLL_CLOEXEC);
  if (fd >= 0 && P.gone_ep >= 0 &&
      epoll_ctl(P.gone_ep, EPOLL_CTL_ADD, fd, &ev) == 0)
    w->sock = fd + 1;
  else
    P.unwatched++;
}

/* The request is no longer suspended (its socket stays open until
 * then: a suspended connection is never closed by MHD). P.mu held. */
static void p_unwatch(struct gw_waiter *w) {
  if (w->sock == 0) {
    P.unwatched--;
    return;
  }
  epoll_ctl(P.gone_ep, EPOLL_CTL_DEL, w->sock - 1, NULL);
  w->sock = 0;
}

static void p_link(struct gw_wgroup *g, struct gw_waiter *w) {
  /* (A watch that joins needs no check: it tried after it joined, so a
   * version past its own would have answered it.) */
  if (w->kind != GW_WAIT_WATCH || w->locked)
    g->only_watches = 0;
  w->group = g;
  w->next = NULL;
  w->prev = g->tail;
  if (g->tail)
    g->tail->next = w;
  else
    g->head = w;
  g->tail = w;
}

/* Takes w off its group (freeing an empty group); w->state becomes off. */
static void p_unlink(struct gw_waiter *w) {
  struct gw_wgroup *g = w->group;

  if (g == NULL)
    return;
  if (w->state == P_SUSPENDED) {
    P.parked--;
    if (w->kind == GW_WAIT_HOLD)
      P.hold_parked--;
    g->suspended--;
    if (!w->locked)
      g->waiting--;
    p_heap_del(w);
    p_unwatch(w);
  }
  if (w->prev)
    w->prev->next = w->next;
  else
    g->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    g->tail = w->prev;
  w->prev = w->next = NULL;
  w->group = NULL;
  w->state = P_OFF;
  w->locked = 0;
  if (g->head == NULL)
    p_group_drop(g);
}

/* Wakes w: a suspended request is resumed with reason; an armed one
 * (its handler is running) is told to try again. */
static void p_wake(struct gw_waiter *w, enum gw_wake reason) {
  if (w->state == P_ARMED) {
    w->woken = 1;
    return;
  }
  if (w->state != P_SUSPENDED)
    return;
  p_unlink(w);
  w->wake = reason;
  if (reason == GW_WAKE_SHUTDOWN) {
    w->draining = 1;
    P.draining++;
  }
  gw_req_resume(p_req(w));
}

/* --------------------------------------------------------- handler side */

void gw_park_begin(struct gw_req *req, enum gw_wait_kind kind,
                   const atr_handle *h, double timeout) {
  struct gw_waiter *w = &req->wait;

  w->kind = kind;
  w->h = *h;
  w->wake = GW_WAKE_NONE; /* (a route may wait twice: a condition) */
  w->may_wait = timeout > 0;
  w->deadline = gw_now() + timeout;
}

/* Puts req on its object's list: an event from now on is not missed.
 * 0, or -1 when it cannot wait (stopping, out of memory). */
static int p_arm(struct gw_req *req) {
  struct gw_waiter *w = &req->wait;
  struct gw_wgroup *g;
  int rv = -1;

  pthread_mutex_lock(&P.mu);
  if (P.stopping)
    goto done;
  if (w->state != P_OFF) {
    rv = 0;
    goto done;
  }
  g = p_group(w->h.id);
  if (g == NULL && (g = p_group_new(&w->h)) == NULL)
    goto done;
  w->used = 1;
  w->woken = 0;
  w->wake = GW_WAKE_NONE;
  w->state = P_ARMED;
  p_link(g, w);
  rv = 0;
done:
  pthread_mutex_unlock(&P.mu);
  return rv;
}

static void p_disarm(struct gw_req *req) {
  if (!req->wait.used)
    return;
  pthread_mutex_lock(&P.mu);
  p_unlink(&req->wait);
  pthread_mutex_unlock(&P.mu);
}

/* Parks an armed request: P_PARKED (suspended), P_RETRY (a change came
 * meanwhile) or P_EXPIRED (deadline passed or stopping: answer now). */
static int p_park(struct gw_req *req) {
  struct gw_waiter *w = &req->wait;
  double deadline = w->deadline;
  int rv;

  pthread_mutex_lock(&P.mu);
  if (w->state != P_ARMED || P.stopping || gw_now() >= w->deadline) {
    p_unlink(w);
    rv = P_EXPIRED;
  } else if (w->woken) {
    w->woken = 0;
    rv = P_RETRY;
  } else if (p_heap_push(w) != 0) {
    p_unlink(w); /* out of memory: no timer, so no wait */
    rv = P_EXPIRED;
  } else {
    gw_req_suspend(req);
    w->state = P_SUSPENDED;
    p_watch(w);
    P.parked++;
    if (w->kind == GW_WAIT_HOLD)
      P.hold_parked++;
    w->group->suspended++;
    w->group->waiting++;
    P.next_deadline = p_next_due();
    /* The follower re-checks parked requests every p_tick_every(): a
     * re-check that resumed every one of them let it sleep longer
     * meanwhile. */
    if (P.last_check + p_tick_every() < deadline)
      deadline = P.last_check + p_tick_every();
    if (P.parked > P.peak)
      P.peak = P.parked;
    rv = P_PARKED;
  }
  pthread_mutex_unlock(&P.mu);
  /* (req may be resumed and gone by now: deadline is a copy.) */
  if (rv == P_PARKED)
    gw_follow_kick(deadline); /* it follows the feed, and wakes by then */
  return rv;
}

/* Parks a request whose try met a lock held by a live process: P_PARKED,
 * P_RETRY (a change came meanwhile) or P_EXPIRED (stopping). */
static int p_park_locked(struct gw_req *req) {
  struct gw_waiter *w = &req->wait;
  struct gw_wgroup *g = NULL;
  double now = gw_now(), retry_at = 0;
  int rv;

  pthread_mutex_lock(&P.mu);
  if (P.stopping) {
    p_unlink(w);
    rv = P_EXPIRED;
  } else if (w->state == P_ARMED && w->woken) {
    w->woken = 0;
    rv = P_RETRY;
  } else if (w->state == P_OFF && (g = p_group(w->h.id)) == NULL &&
             (g = p_group_new(&w->h)) == NULL) {
    rv = P_EXPIRED; /* out of memory: answer busy now */
  } else {
    if (w->state == P_OFF) {
      w->used = 1;
      p_link(g, w);
    }
    w->retry_gap = w->retry_gap <= 0                ? P_RETRY_FIRST
                   : w->retry_gap * 2 > P_RETRY_MAX ? P_RETRY_MAX
                                                    : w->retry_gap * 2;
    w->group->only_watches = 0; /* (it is a waiter on a busy lock now) */
    retry_at = now + w->retry_gap;
    if (retry_at > w->lock_deadline)
      retry_at = w->lock_deadline; /* the last try comes at the bound */
    w->retry_at = retry_at;
    w->locked = 1;
    w->woken = 0;
    w->wake = GW_WAKE_NONE;
    if (p_heap_push(w) != 0) {
      p_unlink(w); /* out of memory: busy now */
      rv = P_EXPIRED;
    } else {
      gw_req_suspend(req);
      w->state = P_SUSPENDED;
      p_watch(w);
      P.parked++;
      w->group->suspended++;
      P.next_deadline = p_next_due();
      if (P.parked > P.peak)
        P.peak = P.parked;
      rv = P_PARKED;
    }
  }
  pthread_mutex_unlock(&P.mu);
  /* (req may be resumed and gone by now: retry_at is a copy.) */
  if (rv == P_PARKED)
    gw_follow_kick(retry_at);
  return rv;
}

int gw_park_locked(struct gw_req *req) {
  if (p_park_locked(req) == P_PARKED)
    return GW_DONE;
  /* Stopping (or out of memory): busy now. */
  req->wait.lock_deadline = -1;
  return gw_reply_core(req, ATR_ELOCKED);
}

int gw_park_run(struct gw_req *req, gw_park_try try_op, void *arg, int busy,
                int *rv) {
  struct gw_waiter *w = &req->wait;
  int final =
      !w->may_wait || w->wake == GW_WAKE_TIMEOUT || w->wake == GW_WAKE_SHUTDOWN;

  for (;;) {
    int p;
    if (!final && p_arm(req) != 0)
      final = 1;
    *rv = try_op(req, arg);
    if (*rv == ATR_ELOCKED) {
      if (!gw_req_lock_patient(req)) {
        p_disarm(req);
        return GW_NEXT; /* the caller answers 503 busy */
      }
      p = p_park_locked(req);
      if (p == P_PARKED)
        return GW_DONE;
      if (p == P_RETRY)
        continue;
      w->lock_deadline = -1; /* stopping: busy now */
      p_disarm(req);
      return GW_NEXT;
    }
    w->lock_deadline = 0; /* a later lock gets a bound of its own */
    w->retry_gap = 0;
    if (*rv != busy || final) {
      p_disarm(req);
      return GW_NEXT;
    }
    p = p_park(req);
    if (p == P_PARKED)
      return GW_DONE;
    if (p == P_EXPIRED)
      final = 1;
  }
}

void gw_park_forget(struct gw_req *req) {
  if (!req->wait.used)
    return;
  pthread_mutex_lock(&P.mu);
  p_unlink(&req->wait);
  if (req->wait.draining) {
    req->wait.draining = 0;
    if (--P.draining == 0)
      pthread_cond_broadcast(&P.drained);
  }
  pthread_mutex_unlock(&P.mu);
}

uint64_t gw_park_waiting(uint64_t id) {
  uint64_t n = 0;

  pthread_mutex_lock(&P.mu);
  struct gw_wgroup *g = p_group(id);
  if (g != NULL)
    n = g->waiting;
  pthread_mutex_unlock(&P.mu);
  return n;
}

uint64_t gw_park_count(void) {
  uint64_t n;

  pthread_mutex_lock(&P.mu);
  n = P.parked;
  pthread_mutex_unlock(&P.mu);
  return n;
}

/* ------------------------------------------------------------ follower */

/* Whether a GW_WAIT_HOLD request should try again at a re-check: unless
 * a lease that has not run out holds what it waits for (its end is
 * published), a process may hold it, or have died holding it (the word
 * the kernel marked looks free, and nothing was published). */
static int p_hold_retry(const atr_info *info) {
  switch (info->kind) {
  case ATR_LOCK:
    return info->count == 0 || !info->lease || info->expires_in <= 0;
  case ATR_SEMAPHORE:
    return info->count > 0 || info->leased > 0;
  case ATR_BARRIER:
    return info->n_waiting > 0 && !info->broken;
  default:
    return 0;
  }
}

/* Re-reads g's object by its handle and wakes whom its state can
 * satisfy. op is the event's (0: a re-check). P.mu held; may free g. */
static void p_group_check(struct gw_wgroup *g, int op) {
  struct gw_waiter *w, *next;
  atr_info info;
  int64_t items;

  if (g->h.id == 0)
    return; /* requests that met a lock with no object: the timer's */
  if (op == ATR_OP_DELETED || atr_handle_stat(&g->h, &info) != 0) {
    /* Gone: everyone answers 404 from the handle. */
    for (w = g->head; w; w = next) {
      next = w->next;
      p_wake(w, GW_WAKE_EVENT);
    }
    return;
  }
  if (op == 0 && g->only_watches && info.version == g->seen_version)
    return;
  g->only_watches = 1;
  for (w = g->head; w && g->only_watches; w = w->next)
    if (w->kind != GW_WAIT_WATCH || w->locked)
      g->only_watches = 0;
  g->seen_version = info.version; /* (set now: the walk may free g) */
  items = (int64_t)info.size;
  for (w = g->head; w; w = next) {
    next = w->next;
    if (w->locked) {
      /* The lock may be free now; a re-check leaves it to the timer. */
      if (op != 0)
        p_wake(w, GW_WAKE_EVENT);
      continue;
    }
    switch (w->kind) {
    case GW_WAIT_WATCH:
      if (info.version > w->version)
        p_wake(w, GW_WAKE_EVENT);
      break;
    case GW_WAIT_POP:
      /* Wake only as many poppers as there are items. */
      if (items > 0) {
        items -= (int64_t)(w->max ? w->max : 1);
        p_wake(w, GW_WAKE_EVENT);
      }
      break;
    case GW_WAIT_PUT:
      if ((info.maxsize == 0 || info.size < info.maxsize) &&
          (info.max_bytes == 0 || info.bytes < info.max_bytes))
        p_wake(w, GW_WAKE_EVENT);
      break;
    case GW_WAIT_HOLD:
      if (op != 0 || p_hold_retry(&info) ||
          (w->state == P_SUSPENDED && gw_client_gone(p_req(w))))
        p_wake(w, GW_WAKE_EVENT);
      break;
    default: /* GW_WAIT_ANY: its try function decides */
      p_wake(w, GW_WAKE_EVENT);
      break;
    }
  }
}

static void p_for_each_group(void (*fn)(struct gw_wgroup *g, void *arg),
                             void *arg) {
  for (struct gw_wgroup *g = P.all, *next; g; g = next) {
    next = g->anext; /* fn may free g (and only g) */
    fn(g, arg);
  }
}

/* Runs fn on the next P_SWEEP groups from *cur round the list (each at
 * most once), leaving *cur where the next sweep starts. */
static void p_sweep(struct gw_wgroup **cur,
                    void (*fn)(struct gw_wgroup *g, void *arg), void *arg) {
  size_t n = P.n_groups < P_SWEEP ? P.n_groups : P_SWEEP;

  for (size_t i = 0; i < n && P.all != NULL; i++) {
    struct gw_wgroup *g = *cur ? *cur : P.all;
    *cur = g->anext; /* before fn, which may free g */
    fn(g, arg);
  }
}

static void p_recheck(struct gw_wgroup *g, void *arg) {
  (void)arg;
  if (g->suspended)
    p_group_check(g, 0);
}

/* Resumes the parked requests of g whose client has gone. */
static void p_release_gone(struct gw_wgroup *g, void *arg) {
  struct gw_waiter *w, *next;

  (void)arg;
  for (w = g->head; w; w = next) {
    next = w->next; /* p_wake may free g with its last waiter */
    if (w->state == P_SUSPENDED && gw_client_gone(p_req(w)))
      p_wake(w, GW_WAKE_GONE);
  }
}

/* Resumes the parked requests whose socket P.gone_ep says was closed by
 * its client (and a peek confirms). P.mu held. */
static void p_release_closed(void) {
  struct epoll_event ev[P_GONE_BATCH];
  int n;

  if (P.gone_ep < 0)
    return;
  /* (Bounded: what is left comes at the next look.) */
  for (int round = 0; round < 16; round++) {
    n = epoll_wait(P.gone_ep, ev, P_GONE_BATCH, 0);
    for (int i = 0; i < n; i++) {
      struct gw_waiter *w = ev[i].data.ptr; /* (watched: suspended) */
      if (gw_client_gone(p_req(w)))
        p_wake(w, GW_WAKE_GONE);
    }
    if (n < P_GONE_BATCH)
      break;
  }
}

static void p_wake_all(struct gw_wgroup *g, void *arg) {
  struct gw_waiter *w, *next;
  enum gw_wake reason = *(enum gw_wake *)arg;

  for (w = g->head; w; w = next) {
    next = w->next;
    p_wake(w, reason);
  }
}

/* Wakes the suspended requests that are due by now: from the heap's
 * top, so the cost is theirs alone. P.mu held. */
static void p_expire(double now) {
  while (P.heap_n > 0 && p_due(P.heap[0]) <= now) {
    struct gw_waiter *w = P.heap[0];
    /* A request parked on a lock is due to try again at retry_at; its
     * own deadline is judged when it has the lock. */
    p_wake(w, w->locked ? GW_WAKE_EVENT : GW_WAKE_TIMEOUT); /* leaves it */
    if (w->heap_at != 0)
      p_heap_del(w); /* (only suspended requests are in it) */
  }
}

/* After a pause: a request armed meanwhile tries again (an event it
 * missed was not seen), a parked one is checked against the state now. */
static void p_resume_check(struct gw_wgroup *g, void *arg) {
  (void)arg;
  for (struct gw_waiter *w = g->head; w; w = w->next)
    if (w->state == P_ARMED)
      w->woken = 1;
  if (g->suspended)
    p_group_check(g, 0); /* may free g */
}

static int p_interest(double now) {
  int interest;

  pthread_mutex_lock(&P.mu);
  interest = P.parked > 0;
  /* Many parked requests were let go: their connections' memory goes
   * back to the heap as they close, and glibc keeps it; give it back
   * to the system a little later (twice: closes take a while). */
  if (P.peak >= P_TRIM_AT && P.parked < P.peak / 4) {
    P.peak = P.parked;
    P.trim_at[0] = now + 0.5;
    P.trim_at[1] = now + 2.0;
  }
  pthread_mutex_unlock(&P.mu);
  for (int i = 0; i < 2; i++)
    if (P.trim_at[i] > 0 && now >= P.trim_at[i]) {
      P.trim_at[i] = 0; /* (the follower's alone) */
      malloc_trim(0);
    }
  return interest;
}

static void p_begin(uint64_t next) {
  (void)next;
}

static void p_rebase(uint64_t next) {
  (void)next;
  pthread_mutex_lock(&P.mu);
  p_for_each_group(p_resume_check, NULL);
  pthread_mutex_unlock(&P.mu);
}

static double p_tick(double now) {
  double due;

  pthread_mutex_lock(&P.mu);
  if (now >= P.next_deadline)
    p_expire(now);
  if (P.parked > 0 && now - P.last_check >= p_tick_every()) {
    p_sweep(&P.sweep, p_recheck, NULL);
    P.last_check = now;
  }
  if (P.parked > 0 && now - P.last_gone >= P_GONE_POLL) {
    p_release_closed();
    if (P.unwatched > 0)
      p_sweep(&P.gone, p_release_gone, NULL);
    P.last_gone = now;
  }
  P.next_deadline = p_next_due();
  due = P.next_deadline;
  if (P.parked > 0 && P.last_check + p_tick_every() < due)
    due = P.last_check + p_tick_every();
  pthread_mutex_unlock(&P.mu);
  return due;
}

static void p_event(const atr_event *ev) {
  struct gw_wgroup *g;

  pthread_mutex_lock(&P.mu);
  if ((g = p_group(ev->id)) != NULL)
    p_group_check(g, (int)ev->op);
  pthread_mutex_unlock(&P.mu);
}

static void p_gap(uint64_t next) {
  enum gw_wake reason = GW_WAKE_EVENT;

  (void)next;
  pthread_mutex_lock(&P.mu);
  p_for_each_group(p_wake_all, &reason);
  pthread_mutex_unlock(&P.mu);
}

const struct gw_follow_sub gw_park_sub = {p_interest, p_begin, p_rebase,
                                          p_tick,     p_event, p_gap};

void gw_park_shutdown(double grace) {
  enum gw_wake reason = GW_WAKE_SHUTDOWN;

  pthread_mutex_lock(&P.mu);
  P.stopping = 1;
  p_for_each_group(p_wake_all, &reason);
  gw_drain_wait(&P.drained, &P.mu, &P.draining, grace);
  pthread_mutex_unlock(&P.mu);
}
