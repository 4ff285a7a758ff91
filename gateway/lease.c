/*
 * lease.c - lease deadlines and grants (lease.h).
 *
 * The deadlines are a plain array: leases out at once are few (each is a
 * client holding something), and a grant given back soon is removed from
 * the end, where it was added (an acquire-release loop costs two short
 * critical sections and no allocation once the array has grown). The
 * follower's tick runs those due: atr_sync_expire on each object, then a
 * lock still leased (renewed elsewhere, or re-entered) is noted again at
 * its new deadline.
 *
 * Lock order: L.mu is a leaf; the core and the follower are called
 * without it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"

#define L_NEVER 1e300
#define L_SLACK                                                                \
  0.002            /* past a deadline before we expire: the core ends          \
                      a lease at now >= deadline, on the same clock */
#define L_BATCH 64 /* deadlines run per pass of the tick */

struct l_entry {
  atr_handle h;
  uint64_t token;
  double due;
};

static struct {
  pthread_mutex_t mu;
  struct l_entry *e;
  size_t n, cap;
  double next; /* the earliest due, or later (a forgotten one) */
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .next = L_NEVER};

/* The entry of (id, token), searched from the end; n if none. L.mu held. */
static size_t l_find(uint64_t id, uint64_t token) {
  for (size_t i = L.n; i-- > 0;)
    if (L.e[i].h.id == id && L.e[i].token == token)
      return i;
  return L.n;
}

void gw_lease_note(const atr_handle *h, uint64_t token, double ttl) {
  double due = gw_now() + ttl + L_SLACK;
  size_t i;
  int kick = 0;

  pthread_mutex_lock(&L.mu);
  i = l_find(h->id, token);
  if (i == L.n) {
    if (L.n == L.cap) {
      size_t cap = L.cap ? L.cap * 2 : 64;
      struct l_entry *p = realloc(L.e, cap * sizeof(*p));
      if (p == NULL) {
        /* The lease still ends (whoever next looks ends it); only its
         * event may come late. */
        pthread_mutex_unlock(&L.mu);
        return;
      }
      L.e = p;
      L.cap = cap;
    }
    L.n++;
  }
  L.e[i].h = *h;
  L.e[i].token = token;
  L.e[i].due = due;
  if (due < L.next) {
    L.next = due;
    kick = 1;
  }
  pthread_mutex_unlock(&L.mu);
  if (kick)
    gw_follow_kick(due);
}

void gw_lease_note_min(const atr_handle *h, double ttl) {
  double due = gw_now() + ttl + L_SLACK;
  size_t i;

  pthread_mutex_lock(&L.mu);
  i = l_find(h->id, 0);
  if (i < L.n && L.e[i].due <= due) {
    pthread_mutex_unlock(&L.mu);
    return; /* an earlier look is due anyway (it notes the next one) */
  }
  pthread_mutex_unlock(&L.mu);
  gw_lease_note(h, 0, ttl);
}

void gw_lease_forget(const atr_handle *h, uint64_t token) {
  size_t i;

  pthread_mutex_lock(&L.mu);
  i = l_find(h->id, token);
  if (i < L.n)
    L.e[i] = L.e[--L.n];
  pthread_mutex_unlock(&L.mu);
}

uint64_t gw_lease_count(void) {
  uint64_t n;

  pthread_mutex_lock(&L.mu);
  n = L.n;
  pthread_mutex_unlock(&L.mu);
  return n;
}

void gw_lease_seen(atr_store *store, const atr_info *info) {
  atr_handle h;

  if (info->kind == ATR_QUEUE && info->leased > 0 && info->expires_in >= 0) {
    if (atr_queue_open(store, info->name, 0, NULL, &h) < 0 || h.id != info->id)
      return; /* gone meanwhile */
    gw_lease_note_min(&h, info->expires_in);
    return;
  }
  if (info->kind != ATR_LOCK || !info->lease || info->count == 0)
    return;
  if (atr_lock_open(store, info->name, 0, 0, &h) < 0 || h.id != info->id)
    return; /* gone meanwhile */
  gw_lease_note(&h, 0, info->expires_in > 0 ? info->expires_in : 0);
}

/* After its deadline: a lock still leased was renewed or re-entered
 * (maybe by another gateway): note its new deadline. */
static void l_after(const struct l_entry *e) {
  atr_info info;

  if (e->h.kind == ATR_QUEUE) { /* its next lease's end, if any */
    if (atr_handle_stat(&e->h, &info) == 0 && info.leased > 0 &&
        info.expires_in >= 0)
      gw_lease_note_min(&e->h, info.expires_in);
    return;
  }
  if (e->h.kind != ATR_LOCK || atr_handle_stat(&e->h, &info) != 0)
    return;
  if (info.count > 0 && info.lease && info.expires_in > 0)
    gw_lease_note(&e->h, e->token, info.expires_in);
}

/* ---------------------------------------------------------- follower */

static int l_interest(double now) {
  int n;

  (void)now;
  pthread_mutex_lock(&L.mu);
  n = L.n > 0;
  pthread_mutex_unlock(&L.mu);
  return n;
}

static void l_nothing(uint64_t next) {
  (void)next;
}

static double l_tick(double now) {
  struct l_entry due[L_BATCH];
  size_t n;
  double next;

  do {
    n = 0;
    pthread_mutex_lock(&L.mu);
    if (now >= L.next) {
      next = L_NEVER;
      for (size_t i = 0; i < L.n;) {
        if (L.e[i].due <= now && n < L_BATCH) {
          due[n++] = L.e[i];
          L.e[i] = L.e[--L.n];
          continue;
        }
        if (L.e[i].due < next)
          next = L.e[i].due;
        i++;
      }
      L.next = next;
    }
    pthread_mutex_unlock(&L.mu);
    for (size_t i = 0; i < n; i++) {
      atr_sync_expire(&due[i].h);
      l_after(&due[i]);
    }
  } while (n == L_BATCH);
  pthread_mutex_lock(&L.mu);
  next = L.next;
  pthread_mutex_unlock(&L.mu);
  return next;
}

static void l_event(const atr_event *ev) {
  (void)ev;
}

const struct gw_follow_sub gw_lease_sub = {l_interest, l_nothing, l_nothing,
                                           l_tick,     l_event,   l_nothing};

/* ------------------------------------------------------------- grants */

void gw_grant_keep(struct gw_req *req, enum gw_grant_kind kind,
                   const atr_handle *h, uint64_t token, uint64_t count) {
  req->grant.kind = kind;
  req->grant.h = *h;
  req->grant.token = token;
  req->grant.count = count;
}

void gw_grant_undo(struct gw_req *req) {
  struct gw_grant *g = &req->grant;

  if (g->kind == GW_GRANT_NONE)
    return;
  /* Giving back cannot be parked (the request is over) and must not be
   * lost to a moment's contention for the object's lock (a lease would
   * stay held for its whole ttl): wait for it briefly, as no answer is
   * waiting on this thread, then go back to never waiting. */
  atr_set_lock_patience(0.2);
  switch (g->kind) {
  case GW_GRANT_LOCK:
    for (uint64_t i = 0; i < g->count; i++)
      if (atr_lock_unlease(&g->h, g->token) != 0)
        break;
    /* (Its deadline stays noted: a re-entered lease is still held at
     * the levels below, and a spent one's deadline does nothing.) */
    break;
  case GW_GRANT_SEM_LEASE:
    atr_sem_unlease(&g->h, g->token, NULL);
    gw_lease_forget(&g->h, g->token);
    break;
  case GW_GRANT_SEM_PERMIT:
    atr_sem_release(&g->h, 1, NULL);
    break;
  case GW_GRANT_BARRIER:
    atr_barrier_leave(&g->h, g->token);
    gw_lease_forget(&g->h, g->token);
    break;
  default:
    break;
  }
  atr_set_lock_patience(0);
  g->kind = GW_GRANT_NONE;
}
