/*
 * conditions.c - /v1/conditions: Python's Condition, bound to a lock.
 *
 * A wait over HTTP is two parked waits in one request: first for a
 * notify (the lease that held the lock is given up when the wait begins,
 * and the request takes a place in the waiters' line, a lease that lasts
 * as long as its timeout), then for the lock again (as long as
 * --max-wait): the answer carries a new token and a new fence, at the
 * same depth as before. The new lease lasts ?ttl= seconds, or by default
 * what the old one had left when the wait began (at least a second).
 * A client that leaves is never given the lock again.
 */
#include <string.h>

#include "lease.h"
#include "park.h"
#include "routes.h"

/* A place in the line outlives the wait by this much (the request ends
 * it itself; the lease only if the gateway is gone). */
#define COND_GRACE 1.0
#define COND_MIN_TTL 1.0

int gw_cond_list(struct gw_req *req) {
  return gw_kind_list(req, ATR_CONDITION, "conditions");
}

int gw_cond_put(struct gw_req *req) {
  static const char *const members[] = {"lock", NULL};
  const gw_jnode *j = gw_body_get(req, "lock");
  const char *lock = j ? gw_json_string(req->doc, j) : NULL;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  if (j == NULL)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"lock\" (the name of a lock) is required");
  if (lock == NULL || atr_name_check(lock, strlen(lock)) != 0)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"lock\" must be the name of a lock");
  rv = atr_cond_open(gw_srv->store, req->name, ATR_CREATE, lock, &h);
  if (rv == ATR_ENOENT)
    return gw_reply_error(req, 404, "not_found", "there is no lock %s", lock);
  return gw_reply_open(req, rv, &h);
}

int gw_cond_get(struct gw_req *req) {
  return gw_kind_get(req, ATR_CONDITION);
}

int gw_cond_delete(struct gw_req *req) {
  return gw_object_delete(req, ATR_CONDITION);
}

static int cond_try_poll(struct gw_req *req, void *arg) {
  (void)arg;
  return atr_cond_wait_poll(&req->wait.h, req->cond.ticket);
}

static int cond_try_retake(struct gw_req *req, void *arg) {
  return atr_lock_lease(&req->wait.h, req->cond.ttl, 0, 0, arg);
}

/* The first run: gives the lock up and takes a place in the line.
 * GW_NEXT, or GW_DONE after answering. */
static int cond_begin(struct gw_req *req) {
  static const char *const members[] = {"token", NULL};
  struct gw_cond_wait *cw = &req->cond;
  atr_info ci, li;
  uint64_t token;
  double timeout;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_token(req, 1, &token) != GW_NEXT ||
      gw_query_timeout(req, gw_srv->cfg.max_wait, &timeout) != GW_NEXT ||
      gw_query_ttl(req, "ttl", 0, &cw->ttl) != GW_NEXT)
    return GW_DONE;
  rv = atr_cond_open(gw_srv->store, req->name, 0, NULL, &h);
  if (rv >= 0)
    rv = atr_handle_stat(&h, &ci);
  if (rv >= 0)
    rv = atr_lock_open(gw_srv->store, ci.lock, 0, 0, &cw->lock);
  if (rv >= 0)
    rv = atr_handle_stat(&cw->lock, &li);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if (cw->ttl == 0)
    cw->ttl =
        li.lease && li.expires_in > COND_MIN_TTL ? li.expires_in : COND_MIN_TTL;
  rv = atr_cond_wait_begin(&h, token, timeout + COND_GRACE, &cw->ticket,
                           &cw->count);
  if (rv != 0)
    return gw_reply_core(req, rv);
  gw_lease_forget(&cw->lock, token);
  gw_lease_note(&h, cw->ticket, timeout + COND_GRACE);
  gw_park_begin(req, GW_WAIT_ANY, &h, timeout);
  return GW_NEXT;
}

/* Leaves the line (notified or not) and turns to the lock. */
static void cond_turn(struct gw_req *req, int notified) {
  struct gw_cond_wait *cw = &req->cond;

  atr_cond_wait_end(&req->wait.h, cw->ticket);
  gw_lease_forget(&req->wait.h, cw->ticket);
  cw->notified = notified;
  cw->phase = 1;
  gw_park_begin(req, GW_WAIT_HOLD, &cw->lock, gw_srv->cfg.max_wait);
}

int gw_cond_wait(struct gw_req *req) {
  struct gw_cond_wait *cw = &req->cond;
  atr_grant g = {0, 0, 0, 0};
  gw_buf b;
  int rv;

  if (req->runs == 1) {
    if (cond_begin(req) != GW_NEXT)
      return GW_DONE;
  } else if (gw_client_gone(req)) {
    if (cw->phase == 0)
      atr_cond_wait_end(&req->wait.h, cw->ticket);
    return gw_req_drop(req); /* never given the lock again */
  }
  if (cw->phase == 0) {
    if (gw_park_run(req, cond_try_poll, NULL, ATR_ETIMEDOUT, &rv) == GW_DONE)
      return GW_DONE; /* parked */
    if (rv != 0 && rv != ATR_ETIMEDOUT) {
      atr_cond_wait_end(&req->wait.h, cw->ticket);
      return gw_reply_core(req, rv);
    }
    cond_turn(req, rv == 0);
  }
  if (gw_park_run(req, cond_try_retake, &g, ATR_ETIMEDOUT, &rv) == GW_DONE)
    return GW_DONE; /* parked */
  if (rv == ATR_ETIMEDOUT)
    return gw_reply_timeout(req);
  if (rv < 0)
    return gw_reply_core(req, rv);
  /* The same depth as before the wait. */
  for (uint64_t i = 1; i < cw->count; i++) {
    atr_grant again;
    if (atr_lock_lease(&req->wait.h, cw->ttl, 0, g.token, &again) < 0)
      break;
  }
  gw_lease_note(&req->wait.h, g.token, cw->ttl);
  gw_grant_keep(req, GW_GRANT_LOCK, &req->wait.h, g.token,
                cw->count ? cw->count : 1);
  gw_buf_init(&b);
  gw_buf_str(&b, cw->notified ? "{\"notified\":true," : "{\"notified\":false,");
  gw_token_put(&b, g.token);
  gw_buf_fmt(&b, ",\"fence\":%llu}", (unsigned long long)g.fence);
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_cond_notify(struct gw_req *req) {
  static const char *const members[] = {"token", "n", "all", NULL};
  const gw_jnode *jn = gw_body_get(req, "n");
  uint64_t token, n = 1, woken = 0;
  atr_handle h;
  gw_buf b;
  int rv, all = 0;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  if (jn != NULL && gw_json_uint64(req->doc, jn, &n) != 0)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"n\" must be an integer >= 0");
  if (gw_body_bool(req, "all", &all) != GW_NEXT)
    return GW_DONE;
  if (all && jn != NULL)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"all\":true takes no \"n\"");
  if (all)
    n = UINT64_MAX;
  if (gw_body_token(req, 1, &token) != GW_NEXT)
    return GW_DONE;
  rv = atr_cond_open(gw_srv->store, req->name, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if ((rv = atr_cond_notify(&h, token, n, &woken)) != 0)
    return gw_reply_core(req, rv);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"woken\":");
  gw_buf_u64(&b, woken);
  gw_buf_add(&b, "}", 1);
  return gw_reply_buf(req, 200, &b, 0);
}
