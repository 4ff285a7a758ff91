/*
 * follow.c - the change-feed follower (follow.h).
 *
 * Interest. The feed matters only while someone listens: a parked
 * request, an SSE stream or an nng subscriber (each subscriber says). With
 * none, the follower stops reading the feed and sleeps on a process-local
 * condition until gw_follow_kick says interest appeared; the core's
 * coalescing then keeps writers from publishing at all (an unread mark
 * stays set), so writes cost nothing here. The first kick re-arms the
 * cursor at the feed's end (every change from then on yields an event)
 * before its caller answers its client, so a new stream misses no change
 * made after its answer however late the follower wakes. Waking, the
 * follower reads on from there (or from the end, if nobody kicked) and
 * tells the subscribers (rebase): events' replay ring is no longer
 * continuous, parked requests are re-checked.
 *
 * A kick between the interest check and the decision to stop following
 * is not lost: the check clears F.kicked first, and the follower stops
 * only if no kick came meanwhile (a kick after that finds it stopped and
 * re-arms the cursor itself).
 *
 * Bursts. At a high event rate a futex wake per write would cost the
 * writers a syscall and the follower a context switch each: after a
 * short sleep the follower first naps briefly (writers see no waiter and
 * do not wake it), then handles what came as one coalesced batch; at a
 * low rate it sleeps on the feed at once.
 *
 * Lock order: F.mu is a leaf (nothing is taken under it but the core's
 * feed calls); subscribers are called without it.
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <time.h>

#include "follow.h"

#define F_IDLE 1.0      /* the longest sleep, on the feed or paused     */
#define F_SHORT 200e-6  /* a sleep on the feed this short: a burst      */
#define F_NAP_NS 50000L /* then nap this long before sleeping again     */
#define F_MAX_SUBS 4
#define F_NEVER 1e300

static struct {
  pthread_mutex_t mu;
  pthread_cond_t idle; /* the follower sleeps here without interest */
  atr_store *store;
  const struct gw_follow_sub *subs[F_MAX_SUBS];
  size_t n_subs;
  pthread_t thread;
  int running;
  int quit;       /* the follower should end                   */
  int paused;     /* it sleeps on idle                         */
  int kicked;     /* interest may have appeared, or run now    */
  atr_cursor cur; /* the follower's place in the feed           */
  int following;  /* it reads the feed (and owns cur); when not, */
  int rearmed;    /* a kick may have set cur where interest came */
  double wake_at; /* when its sleep on the feed ends (0: awake) */
  double due;     /* the earliest due kicked while it was awake  */
} F = {.mu = PTHREAD_MUTEX_INITIALIZER, .due = F_NEVER};

static double f_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Whether anyone listens; without interest the follower stops following
 * (see "Interest" above). */
static int f_interest(double now) {
  int interest = 0;

  pthread_mutex_lock(&F.mu);
  F.kicked = 0;
  pthread_mutex_unlock(&F.mu);
  for (size_t i = 0; i < F.n_subs; i++)
    interest |= F.subs[i]->interest(now); /* each may have timers to run */
  pthread_mutex_lock(&F.mu);
  if (!interest) {
    if (F.kicked)
      interest = 1; /* a kick came meanwhile: one more round */
    else
      F.following = F.rearmed = 0;
  }
  pthread_mutex_unlock(&F.mu);
  return interest;
}

/* Follows the feed again after a pause: from where the first kick
 * re-armed the cursor, or from the end. 1 if it had paused. */
static int f_resume(void) {
  int paused;

  pthread_mutex_lock(&F.mu);
  paused = !F.following;
  if (paused) {
    if (!F.rearmed)
      atr_feed_resync(&F.cur);
    F.following = 1;
    F.rearmed = 0;
  }
  pthread_mutex_unlock(&F.mu);
  return paused;
}

/* Sleeps without reading the feed until a kick, quit, or F_IDLE. 1 to
 * quit. */
static int f_idle(void) {
  struct timespec until;
  int quit;

  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)F_IDLE;
  pthread_mutex_lock(&F.mu);
  F.paused = 1;
  while (!F.kicked && !F.quit)
    if (pthread_cond_timedwait(&F.idle, &F.mu, &until) != 0)
      break;
  F.paused = 0;
  quit = F.quit;
  pthread_mutex_unlock(&F.mu);
  return quit;
}

/* The next event, waiting up to wait seconds. *last_sleep: how long the
 * last sleep on the feed took; after a short one (a burst) nap first, so
 * that writers meanwhile find no waiter to wake. */
static int f_next(atr_cursor *cur, atr_event *ev, double wait,
                  double *last_sleep) {
  int rv = atr_feed_next(cur, ev, 0);
  double t0;

  if (rv != ATR_ETIMEDOUT || wait <= 0)
    return rv;
  if (*last_sleep < F_SHORT && wait * 1e9 > (double)F_NAP_NS) {
    struct timespec nap = {0, F_NAP_NS};
    nanosleep(&nap, NULL);
    rv = atr_feed_next(cur, ev, 0);
    if (rv != ATR_ETIMEDOUT)
      return rv;
    wait -= F_NAP_NS * 1e-9;
  }
  t0 = f_now();
  rv = atr_feed_next(cur, ev, wait);
  *last_sleep = rv == 0 ? f_now() - t0 : 1;
  return rv;
}

static void *f_loop(void *arg) {
  atr_cursor *cur = &F.cur;
  atr_event ev;
  double last_sleep = 1;
  int rv, complained = 0;

  (void)arg;
  prctl(PR_SET_TIMERSLACK, 1000UL); /* naps of tens of microseconds */
  /* It reads state lock-free; where a read would need a lock (an array
   * whose writer stopped mid-copy) it must not wait for it: the event
   * then carries no state. */
  atr_set_lock_patience(0);
  for (size_t i = 0; i < F.n_subs; i++)
    F.subs[i]->begin(cur->next);
  for (;;) {
    double now = f_now(), wait, due;

    if (!f_interest(now)) {
      if (f_idle())
        break;
      continue;
    }
    if (f_resume()) {
      /* Every change from here on yields an event; what came before,
       * the subscribers read again. */
      last_sleep = 1;
      for (size_t i = 0; i < F.n_subs; i++)
        F.subs[i]->rebase(cur->next);
      now = f_now();
    }
    due = now + F_IDLE;
    for (size_t i = 0; i < F.n_subs; i++) {
      double d = F.subs[i]->tick(now);
      if (d < due)
        due = d;
    }
    pthread_mutex_lock(&F.mu);
    if (F.quit) {
      pthread_mutex_unlock(&F.mu);
      break;
    }
    /* A kick while it was awake (a subscriber's timer set after its
     * tick ran) counts too. */
    if (F.due < due)
      due = F.due;
    F.due = F_NEVER;
    wait = due - now > 0 ? due - now : 0;
    if (F.kicked)
      wait = 0; /* a new stream or a drained one: serve it first */
    F.wake_at = now + wait;
    pthread_mutex_unlock(&F.mu);

    rv = f_next(cur, &ev, wait, &last_sleep);
    pthread_mutex_lock(&F.mu);
    F.wake_at = 0; /* awake: a new deadline needs no wake */
    if (rv == ATR_EGAP)
      atr_feed_resync(cur);
    pthread_mutex_unlock(&F.mu);
    if (rv == 0) {
      for (size_t i = 0; i < F.n_subs; i++)
        F.subs[i]->event(&ev);
    } else if (rv == ATR_EGAP) {
      for (size_t i = 0; i < F.n_subs; i++)
        F.subs[i]->gap(cur->next);
    } else if (rv != ATR_ETIMEDOUT) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      if (!complained)
        fprintf(stderr, "atriumd: change feed: %s\n", atr_strerror(rv));
      complained = 1;
      nanosleep(&ts, NULL); /* no busy loop on a broken feed */
    }
  }
  return NULL;
}

void gw_follow_kick(double due) {
  int wake_feed;

  pthread_mutex_lock(&F.mu);
  if (due <= 0)
    F.kicked = 1;
  if (!F.following) {
    F.kicked = 1; /* it starts following the feed */
    if (!F.rearmed) {
      atr_feed_resync(&F.cur); /* see "Interest" above */
      F.rearmed = 1;
    }
    if (F.paused)
      pthread_cond_signal(&F.idle);
  }
  wake_feed = !F.paused && (due <= 0 || (F.wake_at > 0 && due < F.wake_at));
  if (!F.paused && F.wake_at == 0 && due > 0 && due < F.due)
    F.due = due; /* awake: it sleeps no later than this */
  pthread_mutex_unlock(&F.mu);
  if (wake_feed && F.store != NULL)
    atr_feed_wake(F.store); /* it sleeps on the feed past due */
}

int gw_follow_start(atr_store *store, const struct gw_follow_sub *const *subs,
                    size_t n) {
  pthread_condattr_t attr;

  if (n > F_MAX_SUBS)
    return -1;
  for (size_t i = 0; i < n; i++)
    F.subs[i] = subs[i];
  F.n_subs = n;
  if (pthread_condattr_init(&attr) != 0 ||
      pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&F.idle, &attr) != 0)
    return -1;
  pthread_condattr_destroy(&attr);
  if (atr_feed_open(store, &F.cur) != 0)
    return -1;
  F.following = 1;
  F.wake_at = 0;
  F.store = store;
  if (pthread_create(&F.thread, NULL, f_loop, NULL) != 0)
    return -1;
  F.running = 1;
  return 0;
}

void gw_follow_stop(void) {
  if (!F.running)
    return;
  pthread_mutex_lock(&F.mu);
  F.quit = 1;
  pthread_cond_signal(&F.idle);
  pthread_mutex_unlock(&F.mu);
  atr_feed_wake(F.store);
  pthread_join(F.thread, NULL);
  F.running = 0;
}
