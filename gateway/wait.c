/*
 * wait.c - requests that wait hold no thread: parked requests and the
 * change-feed follower that wakes them.
 *
 * A waiting request (pop on an empty queue, put on a full one, a value
 * watch) suspends its connection and sits in its object's group, found by
 * the object's incarnation id. One follower thread reads the store's
 * change feed; on an event for an object with a group it resumes the
 * requests the change can satisfy, and its timeout doubles as the timer
 * that answers expired requests. A resumed request runs its handler again.
 *
 * Lost wake-ups: a handler first arms (joins the group), then tries its
 * operation without waiting, then parks. An event that comes between the
 * try and the park marks the armed request "woken", and park says retry.
 * As a second net (a waker that leaves, a coalesced or lost event), the
 * follower re-checks every group with parked requests ten times a second.
 *
 * The follower is also the one reader of the feed for events.c: it hands
 * it every event (after W.mu is let go) and lets it serve new event
 * streams and heartbeats between two events.
 *
 * Interest. The feed matters only while someone listens: a parked
 * request, an SSE stream or an nng subscriber. With none, the follower
 * stops reading the feed and sleeps on a process-local condition until
 * gw_wait_kick says interest appeared; the core's coalescing then keeps
 * writers from publishing at all (an unread mark stays set), so writes
 * cost nothing here. The first kick re-arms the cursor at the feed's end
 * (every change from then on yields an event) before its caller answers
 * its client, so a new stream misses no change made after its answer
 * however late the follower wakes. Waking, the follower reads on from
 * there (or from the end, if nobody kicked), tells events.c (its replay
 * ring is no longer continuous, unless the feed did not move) and
 * re-checks every group.
 *
 * Bursts. At a high event rate a futex wake per write would cost the
 * writers a syscall and the follower a context switch each: after a
 * short sleep the follower first naps briefly (writers see no waiter and
 * do not wake it), then handles what came as one coalesced batch; at a
 * low rate it sleeps on the feed at once.
 *
 * Lock order: W.mu, then E.mu (events.c) or libmicrohttpd's own
 * (suspend/resume take it).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "gw.h"

#define W_BUCKETS 1024
#define W_TICK 0.1      /* seconds between re-checks while requests wait */
#define W_IDLE 1.0      /* follower's wait when nothing is parked         */
#define W_SHORT 200e-6  /* a sleep on the feed this short: a burst      */
#define W_NAP_NS 50000L /* then nap this long before sleeping again    */
#define W_TRIM_AT 1024  /* parked requests released: give memory back  */

enum { W_OFF = 0, W_ARMED, W_SUSPENDED };

struct gw_wgroup {
  struct gw_wgroup *hnext;
  uint64_t id;
  char name[ATR_NAME_MAX + 1];
  struct gw_waiter *head, *tail;
  size_t suspended; /* requests of this group now suspended */
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t drained;
  struct gw_wgroup *buckets[W_BUCKETS];
  atr_store *store;
  pthread_t thread;
  int running;
  int stopping;    /* no more parking; answer everyone          */
  int quit;        /* the follower should end                   */
  uint64_t parked; /* suspended requests                        */
  size_t draining; /* resumed for shutdown, not yet completed   */
  double next_deadline;
  double follower_wake_at;
  pthread_cond_t idle; /* the follower sleeps here without interest */
  int paused;          /* ... and does now                          */
  int kicked;          /* interest may have appeared                */
  atr_cursor cur;      /* the follower's place in the feed           */
  int following;       /* it reads the feed (and owns cur); when not, */
  int rearmed;         /* a kick may have set cur where interest came */
  uint64_t peak;       /* most requests parked since the last trim  */
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .drained = PTHREAD_COND_INITIALIZER};

static struct gw_req *w_req(struct gw_waiter *w) {
  return (struct gw_req *)((char *)w - offsetof(struct gw_req, wait));
}

static struct gw_wgroup **w_slot(uint64_t id) {
  return &W.buckets[(id * 0x9E3779B97F4A7C15ull) >> 54];
}

static struct gw_wgroup *w_group(uint64_t id, const char *name, int create) {
  struct gw_wgroup **slot = w_slot(id), *g;

  for (g = *slot; g; g = g->hnext)
    if (g->id == id)
      return g;
  if (!create)
    return NULL;
  g = calloc(1, sizeof(*g));
  if (g == NULL)
    return NULL;
  g->id = id;
  snprintf(g->name, sizeof(g->name), "%s", name);
  g->hnext = *slot;
  *slot = g;
  return g;
}

static void w_group_drop(struct gw_wgroup *g) {
  struct gw_wgroup **p = w_slot(g->id);

  while (*p != g)
    p = &(*p)->hnext;
  *p = g->hnext;
  free(g);
}

static void w_link(struct gw_wgroup *g, struct gw_waiter *w) {
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
static void w_unlink(struct gw_waiter *w) {
  struct gw_wgroup *g = w->group;

  if (g == NULL)
    return;
  if (w->state == W_SUSPENDED) {
    W.parked--;
    g->suspended--;
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
  w->state = W_OFF;
  if (g->head == NULL)
    w_group_drop(g);
}

/* Wakes w: a suspended request is resumed with reason; an armed one
 * (its handler is running) is told to try again. */
static void w_wake(struct gw_waiter *w, enum gw_wake reason) {
  if (w->state == W_ARMED) {
    w->woken = 1;
    return;
  }
  if (w->state != W_SUSPENDED)
    return;
  w_unlink(w);
  w->wake = reason;
  if (reason == GW_WAKE_SHUTDOWN) {
    w->draining = 1;
    W.draining++;
  }
  gw_http_resume(w_req(w));
}

/* --------------------------------------------------------- handler side */

int gw_wait_arm(struct gw_req *req) {
  struct gw_waiter *w = &req->wait;
  struct gw_wgroup *g;
  int rv = -1;

  pthread_mutex_lock(&W.mu);
  if (W.stopping)
    goto done;
  if (w->state != W_OFF) {
    rv = 0;
    goto done;
  }
  g = w_group(w->h.id, req->name, 1);
  if (g == NULL)
    goto done;
  w->used = 1;
  w->woken = 0;
  w->wake = GW_WAKE_NONE;
  w->state = W_ARMED;
  w_link(g, w);
  rv = 0;
done:
  pthread_mutex_unlock(&W.mu);
  return rv;
}

void gw_wait_disarm(struct gw_req *req) {
  if (!req->wait.used)
    return;
  pthread_mutex_lock(&W.mu);
  w_unlink(&req->wait);
  pthread_mutex_unlock(&W.mu);
}

int gw_wait_park(struct gw_req *req) {
  struct gw_waiter *w = &req->wait;
  int rv, kick = 0;

  pthread_mutex_lock(&W.mu);
  if (w->state != W_ARMED || W.stopping || gw_now() >= w->deadline) {
    w_unlink(w);
    rv = GW_EXPIRED;
  } else if (w->woken) {
    w->woken = 0;
    rv = GW_RETRY;
  } else {
    gw_http_suspend(req);
    w->state = W_SUSPENDED;
    W.parked++;
    w->group->suspended++;
    if (w->deadline < W.next_deadline)
      W.next_deadline = w->deadline;
    if (W.parked > W.peak)
      W.peak = W.parked;
    kick = w->deadline < W.follower_wake_at;
    if (!W.following) {
      W.kicked = 1; /* the follower starts following the feed */
      if (W.paused)
        pthread_cond_signal(&W.idle);
    }
    rv = GW_PARKED;
  }
  pthread_mutex_unlock(&W.mu);
  if (kick)
    atr_feed_wake(W.store); /* the follower sleeps past this deadline */
  return rv;
}

void gw_wait_forget(struct gw_req *req) {
  if (!req->wait.used)
    return;
  pthread_mutex_lock(&W.mu);
  w_unlink(&req->wait);
  if (req->wait.draining) {
    req->wait.draining = 0;
    if (--W.draining == 0)
      pthread_cond_broadcast(&W.drained);
  }
  pthread_mutex_unlock(&W.mu);
}

uint64_t gw_wait_parked(void) {
  uint64_t n;

  pthread_mutex_lock(&W.mu);
  n = W.parked;
  pthread_mutex_unlock(&W.mu);
  return n;
}

int gw_stopping(void) {
  int s;

  pthread_mutex_lock(&W.mu);
  s = W.stopping;
  pthread_mutex_unlock(&W.mu);
  return s;
}

/* ------------------------------------------------------------ follower */

/* Re-reads g's object and wakes whom its state can satisfy. op is the
 * event's (0: a periodic re-check). Called with W.mu held; may free g. */
static void w_group_check(struct gw_wgroup *g, int op) {
  struct gw_waiter *w, *next;
  atr_info info;
  int64_t items;

  if (atr_stat(W.store, g->name, &info) != 0 || info.id != g->id ||
      op == ATR_OP_DELETED) {
    /* Gone (or re-created): everyone answers 404 from the handle. */
    for (w = g->head; w; w = next) {
      next = w->next;
      w_wake(w, GW_WAKE_EVENT);
    }
    return;
  }
  items = (int64_t)info.size;
  for (w = g->head; w; w = next) {
    next = w->next;
    switch (w->kind) {
    case GW_WAIT_WATCH:
      if (info.version > w->version)
        w_wake(w, GW_WAKE_EVENT);
      break;
    case GW_WAIT_POP:
      /* Wake only as many poppers as there are items. */
      if (items > 0) {
        items -= (int64_t)(w->max ? w->max : 1);
        w_wake(w, GW_WAKE_EVENT);
      }
      break;
    case GW_WAIT_PUT:
      if ((info.maxsize == 0 || info.size < info.maxsize) &&
          (info.max_bytes == 0 || info.bytes < info.max_bytes))
        w_wake(w, GW_WAKE_EVENT);
      break;
    default:
      break;
    }
  }
}

static void w_for_each_group(void (*fn)(struct gw_wgroup *g, void *arg),
                             void *arg) {
  for (size_t b = 0; b < W_BUCKETS; b++) {
    struct gw_wgroup *g = W.buckets[b], *next;
    for (; g; g = next) {
      next = g->hnext; /* fn may free g */
      fn(g, arg);
    }
  }
}

static void w_recheck(struct gw_wgroup *g, void *arg) {
  (void)arg;
  if (g->suspended)
    w_group_check(g, 0);
}

static void w_wake_all(struct gw_wgroup *g, void *arg) {
  struct gw_waiter *w, *next;
  enum gw_wake reason = *(enum gw_wake *)arg;

  for (w = g->head; w; w = next) {
    next = w->next;
    w_wake(w, reason);
  }
}

struct w_expiry {
  double now;
  double next;
};

static void w_expire(struct gw_wgroup *g, void *arg) {
  struct w_expiry *e = arg;
  struct gw_waiter *w, *next;

  for (w = g->head; w; w = next) {
    next = w->next;
    if (w->state != W_SUSPENDED)
      continue;
    if (w->deadline <= e->now)
      w_wake(w, GW_WAKE_TIMEOUT);
    else if (w->deadline < e->next)
      e->next = w->deadline;
  }
}

/* After a pause: a request armed meanwhile tries again (an event it
 * missed was not seen), a parked one is checked against the state now. */
static void w_resume_check(struct gw_wgroup *g, void *arg) {
  (void)arg;
  for (struct gw_waiter *w = g->head; w; w = w->next)
    if (w->state == W_ARMED)
      w->woken = 1;
  if (g->suspended)
    w_group_check(g, 0); /* may free g */
}

/* Whether anyone listens: a parked request, an event stream or an nng
 * subscriber. Clears the kick first, so a kick after this is not lost.
 * Without interest the follower stops following, in the same critical
 * section: interest that comes after it finds the follower stopped. */
static int w_interest(double now, double *trim_at) {
  int interest;

  pthread_mutex_lock(&W.mu);
  W.kicked = 0;
  interest = W.parked > 0 || gw_events_interest();
  if (!interest)
    W.following = W.rearmed = 0;
  /* Many parked requests were let go: their connections' memory goes
   * back to the heap as they close, and glibc keeps it; give it back
   * to the system a little later (twice: closes take a while). */
  if (W.peak >= W_TRIM_AT && W.parked < W.peak / 4) {
    W.peak = W.parked;
    trim_at[0] = now + 0.5;
    trim_at[1] = now + 2.0;
  }
  pthread_mutex_unlock(&W.mu);
  for (int i = 0; i < 2; i++)
    if (trim_at[i] > 0 && now >= trim_at[i]) {
      trim_at[i] = 0;
      malloc_trim(0);
    }
  return interest;
}

/* Follows the feed again after a pause: from where the first kick
 * re-armed the cursor, or from the end. 1 if it had paused. */
static int w_resume(void) {
  int paused;

  pthread_mutex_lock(&W.mu);
  paused = !W.following;
  if (paused) {
    if (!W.rearmed)
      atr_feed_resync(&W.cur);
    W.following = 1;
    W.rearmed = 0;
  }
  pthread_mutex_unlock(&W.mu);
  return paused;
}

/* Sleeps without reading the feed until a kick, quit, or W_IDLE. */
static void w_idle(void) {
  struct timespec until;

  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)W_IDLE;
  pthread_mutex_lock(&W.mu);
  W.paused = 1;
  while (!W.kicked && !W.quit)
    if (pthread_cond_timedwait(&W.idle, &W.mu, &until) != 0)
      break;
  W.paused = 0;
  pthread_mutex_unlock(&W.mu);
}

/* The next event, waiting up to wait seconds. *last_sleep: how long the
 * last sleep on the feed took; after a short one (a burst) nap first, so
 * that writers meanwhile find no waiter to wake. */
static int w_next(atr_cursor *cur, atr_event *ev, double wait,
                  double *last_sleep) {
  int rv = atr_feed_next(cur, ev, 0);
  double t0;

  if (rv != ATR_ETIMEDOUT || wait <= 0)
    return rv;
  if (*last_sleep < W_SHORT && wait * 1e9 > (double)W_NAP_NS) {
    struct timespec nap = {0, W_NAP_NS};
    nanosleep(&nap, NULL);
    rv = atr_feed_next(cur, ev, 0);
    if (rv != ATR_ETIMEDOUT)
      return rv;
    wait -= W_NAP_NS * 1e-9;
  }
  t0 = gw_now();
  rv = atr_feed_next(cur, ev, wait);
  *last_sleep = rv == 0 ? gw_now() - t0 : 1;
  return rv;
}

static void *w_follow(void *arg) {
  atr_cursor *cur = &W.cur;
  atr_event ev;
  double last_check = 0, last_sleep = 1, trim_at[2] = {0, 0};
  int rv, complained = 0;

  (void)arg;
  prctl(PR_SET_TIMERSLACK, 1000UL); /* naps of tens of microseconds */
  gw_events_begin(cur->next);
  for (;;) {
    double now = gw_now(), wait, due;

    if (!w_interest(now, trim_at)) {
      int quit;
      w_idle();
      pthread_mutex_lock(&W.mu);
      quit = W.quit;
      pthread_mutex_unlock(&W.mu);
      if (quit)
        break;
      continue;
    }
    if (w_resume()) {
      /* Every change from here on yields an event; what came before,
       * the re-checks read. */
      last_sleep = 1;
      gw_events_rebase(cur->next);
      pthread_mutex_lock(&W.mu);
      w_for_each_group(w_resume_check, NULL);
      pthread_mutex_unlock(&W.mu);
      now = gw_now();
    }
    due = gw_events_tick(now);
    pthread_mutex_lock(&W.mu);
    if (W.quit) {
      pthread_mutex_unlock(&W.mu);
      break;
    }
    if (now >= W.next_deadline) {
      struct w_expiry e = {now, 1e300};
      w_for_each_group(w_expire, &e);
      W.next_deadline = e.next;
    }
    if (W.parked > 0 && now - last_check >= W_TICK) {
      w_for_each_group(w_recheck, NULL);
      last_check = now;
    }
    wait = W.parked > 0 ? W_TICK : W_IDLE;
    if (W.next_deadline - now < wait)
      wait = W.next_deadline - now > 0 ? W.next_deadline - now : 0;
    if (due - now < wait)
      wait = due - now > 0 ? due - now : 0;
    if (W.kicked)
      wait = 0; /* a new stream or a drained one: serve it first */
    W.follower_wake_at = now + wait;
    pthread_mutex_unlock(&W.mu);

    rv = w_next(cur, &ev, wait, &last_sleep);
    pthread_mutex_lock(&W.mu);
    W.follower_wake_at = 0; /* awake: a new deadline needs no kick */
    if (rv == 0) {
      struct gw_wgroup *g = w_group(ev.id, ev.name, 0);
      if (g != NULL)
        w_group_check(g, (int)ev.op);
    } else if (rv == ATR_EGAP) {
      enum gw_wake reason = GW_WAKE_EVENT;
      atr_feed_resync(cur);
      w_for_each_group(w_wake_all, &reason);
    } else if (rv != ATR_ETIMEDOUT && !complained) {
      fprintf(stderr, "atriumd: change feed: %s\n", atr_strerror(rv));
      complained = 1;
    }
    pthread_mutex_unlock(&W.mu);
    if (rv == 0)
      gw_events_publish(&ev);
    else if (rv == ATR_EGAP)
      gw_events_resync(cur->next);
    if (rv != 0 && rv != ATR_ETIMEDOUT && rv != ATR_EGAP) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL); /* no busy loop on a broken feed */
    }
  }
  return NULL;
}

void gw_wait_kick(void) {
  int paused;

  pthread_mutex_lock(&W.mu);
  W.kicked = 1;
  if (!W.following && !W.rearmed) {
    atr_feed_resync(&W.cur); /* see "Interest" above */
    W.rearmed = 1;
  }
  paused = W.paused;
  if (paused)
    pthread_cond_signal(&W.idle);
  pthread_mutex_unlock(&W.mu);
  if (!paused)
    atr_feed_wake(W.store); /* it may sleep on the feed */
}

int gw_wait_start(atr_store *store) {
  pthread_condattr_t attr;

  if (pthread_condattr_init(&attr) != 0 ||
      pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&W.idle, &attr) != 0)
    return -1;
  pthread_condattr_destroy(&attr);
  W.store = store;
  if (atr_feed_open(store, &W.cur) != 0)
    return -1;
  W.following = 1;
  W.next_deadline = 1e300;
  W.follower_wake_at = 0;
  if (pthread_create(&W.thread, NULL, w_follow, NULL) != 0)
    return -1;
  W.running = 1;
  return 0;
}

void gw_wait_shutdown(double grace) {
  enum gw_wake reason = GW_WAKE_SHUTDOWN;
  struct timespec until;
  double end;

  pthread_mutex_lock(&W.mu);
  W.stopping = 1;
  w_for_each_group(w_wake_all, &reason);
  end = grace;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)end;
  until.tv_nsec += (long)((end - (double)(time_t)end) * 1e9);
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  while (W.draining > 0)
    if (pthread_cond_timedwait(&W.drained, &W.mu, &until) != 0)
      break;
  pthread_mutex_unlock(&W.mu);
}

void gw_wait_join(void) {
  if (!W.running)
    return;
  pthread_mutex_lock(&W.mu);
  W.quit = 1;
  pthread_cond_signal(&W.idle);
  pthread_mutex_unlock(&W.mu);
  atr_feed_wake(W.store);
  pthread_join(W.thread, NULL);
  W.running = 0;
}
