/*
 * locks.c - /v1/locks: Lock and RLock for every process; over HTTP a lock
 * is held as a lease (a ttl, renewable, ended by itself), named by a
 * token, and every acquisition gets a fence that only grows.
 *
 * An acquire that waits is parked (park.h) and tries the core with
 * timeout 0 on every wake; the lease is noted (lease.h) so that its end
 * is published on time, and kept as the request's grant so that an
 * answer that is not delivered gives it back.
 */
#include <string.h>

#include "lease.h"
#include "park.h"
#include "routes.h"

int gw_lock_list(struct gw_req *req) {
  return gw_kind_list(req, ATR_LOCK, "locks");
}

int gw_lock_put(struct gw_req *req) {
  static const char *const members[] = {"reentrant", NULL};
  atr_handle h;
  int rv, reentrant = 0;

  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_bool(req, "reentrant", &reentrant) != GW_NEXT)
    return GW_DONE;
  rv = atr_lock_open(gw_srv->store, req->name, ATR_CREATE, reentrant, &h);
  return gw_reply_open(req, rv, &h);
}

int gw_lock_get(struct gw_req *req) {
  return gw_kind_get(req, ATR_LOCK);
}

int gw_lock_delete(struct gw_req *req) {
  return gw_object_delete(req, ATR_LOCK);
}

/* The lock of the request's name into *h: GW_NEXT, or GW_DONE after
 * answering the error. */
static int lock_open(struct gw_req *req, atr_handle *h) {
  int rv = atr_lock_open(gw_srv->store, req->name, 0, 0, h);

  return rv < 0 ? gw_reply_core(req, rv) : GW_NEXT;
}

struct lock_try {
  double ttl;
  uint64_t reenter;
  atr_grant g;
};

static int lock_try_lease(struct gw_req *req, void *arg) {
  struct lock_try *t = arg;

  return atr_lock_lease(&req->wait.h, t->ttl, 0, t->reenter, &t->g);
}

int gw_lock_acquire(struct gw_req *req) {
  static const char *const members[] = {"token", NULL};
  struct lock_try t = {0, 0, {0, 0, 0, 0}};
  gw_buf b;
  int rv;

  /* Read again on every run: cheap, and nothing to keep between runs. */
  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_token(req, 0, &t.reenter) != GW_NEXT ||
      gw_query_ttl(req, "ttl", 1, &t.ttl) != GW_NEXT)
    return GW_DONE;
  if (gw_acquire_run(req, ATR_LOCK, lock_try_lease, &t, &rv) != GW_NEXT)
    return GW_DONE;
  if (t.g.ttl <= 0)
    t.g.ttl = t.ttl;
  gw_lease_note(&req->wait.h, t.g.token, t.g.ttl);
  gw_grant_keep(req, GW_GRANT_LOCK, &req->wait.h, t.g.token, 1);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"name\":");
  gw_json_put_string(&b, req->name, strlen(req->name));
  gw_buf_add(&b, ",", 1);
  gw_token_put(&b, t.g.token);
  gw_buf_fmt(&b, ",\"fence\":%llu,\"ttl\":", (unsigned long long)t.g.fence);
  gw_json_put_scalar(&b, 'd', (atr_scalar){.f = t.g.ttl});
  gw_buf_fmt(&b, ",\"abandoned\":%s}", rv == ATR_ABANDONED ? "true" : "false");
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_lock_release(struct gw_req *req) {
  static const char *const members[] = {"token", NULL};
  uint64_t token;
  atr_handle h;
  atr_info info;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_token(req, 1, &token) != GW_NEXT || lock_open(req, &h) != GW_NEXT)
    return GW_DONE;
  if ((rv = atr_lock_unlease(&h, token)) != 0)
    return gw_reply_core(req, rv);
  /* The deadline stays noted while a reentrant lease holds levels
   * below; a stale note only costs an atr_sync_expire that ends nothing. */
  if (atr_handle_stat(&h, &info) != 0 || info.count == 0 || !info.lease)
    gw_lease_forget(&h, token);
  return gw_reply_object(req, 200, &h, &gw_repr_all);
}

int gw_lock_renew(struct gw_req *req) {
  static const char *const members[] = {"token", NULL};
  uint64_t token;
  atr_handle h;
  atr_grant g;
  double ttl;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_token(req, 1, &token) != GW_NEXT ||
      gw_query_ttl(req, "ttl", 1, &ttl) != GW_NEXT ||
      lock_open(req, &h) != GW_NEXT)
    return GW_DONE;
  if ((rv = atr_lock_renew(&h, token, ttl, &g)) != 0)
    return gw_reply_core(req, rv);
  gw_lease_note(&h, token, g.ttl > 0 ? g.ttl : ttl);
  return gw_reply_object(req, 200, &h, &gw_repr_all);
}

int gw_lock_break(struct gw_req *req) {
  return gw_kind_act(req, ATR_LOCK, atr_lock_break);
}
