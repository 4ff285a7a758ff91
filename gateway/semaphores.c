/*
 * semaphores.c - /v1/semaphores: Semaphore and BoundedSemaphore. Without
 * ?ttl an acquire takes a plain permit (anyone may release one, as in
 * Python); with it, a leased permit named by a token, given back when
 * the lease runs out.
 */
#include "lease.h"
#include "park.h"
#include "routes.h"

#define SEM_MAX 2147483647u /* the core's largest value and bound */

int gw_sem_list(struct gw_req *req) {
  return gw_kind_list(req, ATR_SEMAPHORE, "semaphores");
}

int gw_sem_put(struct gw_req *req) {
  static const char *const members[] = {"value", "bound", NULL};
  const gw_jnode *jv = gw_body_get(req, "value");
  const gw_jnode *jb = gw_body_get(req, "bound");
  uint64_t value = 1, bound = 0;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  if (jv != NULL &&
      (gw_json_uint64(req->doc, jv, &value) != 0 || value > SEM_MAX))
    return gw_reply_error(req, 400, "invalid_body",
                          "\"value\" must be an integer from 0 to %u", SEM_MAX);
  if (jb != NULL && gw_json_type(jb) != GW_JNULL &&
      (gw_json_uint64(req->doc, jb, &bound) != 0 || bound == 0 ||
       bound > SEM_MAX))
    return gw_reply_error(req, 400, "invalid_body",
                          "\"bound\" must be an integer from 1 to %u (or null)",
                          SEM_MAX);
  if (bound != 0 && value > bound)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"value\" may not be above \"bound\"");
  rv = atr_sem_open(gw_srv->store, req->name, ATR_CREATE, value, bound, &h);
  return gw_reply_open(req, rv, &h);
}

int gw_sem_get(struct gw_req *req) {
  return gw_kind_get(req, ATR_SEMAPHORE);
}

int gw_sem_delete(struct gw_req *req) {
  return gw_object_delete(req, ATR_SEMAPHORE);
}

struct sem_try {
  double ttl; /* 0: a plain permit */
  atr_grant g;
};

static int sem_try_acquire(struct gw_req *req, void *arg) {
  struct sem_try *t = arg;

  if (t->ttl > 0)
    return atr_sem_lease(&req->wait.h, t->ttl, 0, &t->g);
  return atr_sem_acquire(&req->wait.h, 0, &t->g.count);
}

int gw_sem_acquire(struct gw_req *req) {
  struct sem_try t = {0, {0, 0, 0, 0}};
  gw_buf b;
  int rv;

  if (gw_query_ttl(req, "ttl", 0, &t.ttl) != GW_NEXT)
    return GW_DONE;
  if (gw_acquire_run(req, ATR_SEMAPHORE, sem_try_acquire, &t, &rv) != GW_NEXT)
    return GW_DONE;
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"value\":");
  gw_buf_u64(&b, t.g.count);
  if (t.ttl > 0) {
    gw_lease_note(&req->wait.h, t.g.token, t.g.ttl > 0 ? t.g.ttl : t.ttl);
    gw_grant_keep(req, GW_GRANT_SEM_LEASE, &req->wait.h, t.g.token, 1);
    gw_buf_add(&b, ",", 1);
    gw_token_put(&b, t.g.token);
    gw_buf_str(&b, ",\"ttl\":");
    gw_json_put_scalar(&b, 'd',
                       (atr_scalar){.f = t.g.ttl > 0 ? t.g.ttl : t.ttl});
  } else {
    gw_grant_keep(req, GW_GRANT_SEM_PERMIT, &req->wait.h, 0, 1);
  }
  gw_buf_str(&b, rv == ATR_ABANDONED ? ",\"abandoned\":true}" : "}");
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_sem_release(struct gw_req *req) {
  static const char *const members[] = {"token", NULL};
  uint64_t token;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_token(req, 0, &token) != GW_NEXT)
    return GW_DONE;
  rv = atr_sem_open(gw_srv->store, req->name, 0, 0, 0, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  rv = token ? atr_sem_unlease(&h, token, NULL) : atr_sem_release(&h, 1, NULL);
  if (rv != 0)
    return gw_reply_core(req, rv);
  if (token)
    gw_lease_forget(&h, token);
  return gw_reply_object(req, 200, &h, &gw_repr_all);
}
