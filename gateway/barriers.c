/*
 * barriers.c - /v1/barriers: Python's Barrier. An HTTP waiter takes a
 * place in the round as a lease (atr_barrier_arrive) that lasts as long
 * as its timeout, and is parked until the round passes or breaks; a
 * waiter whose time runs out, or whose client leaves, gives its place up,
 * which breaks the barrier for all (as a timed-out wait does in Python).
 */
#include "lease.h"
#include "park.h"
#include "routes.h"

/* A place's lease outlives the wait by this much: the request gives it
 * up itself at its deadline; the lease ends it only if the gateway is
 * gone by then. */
#define BARRIER_GRACE 1.0

int gw_barrier_list(struct gw_req *req) {
  return gw_kind_list(req, ATR_BARRIER, "barriers");
}

int gw_barrier_put(struct gw_req *req) {
  static const char *const members[] = {"parties", NULL};
  const gw_jnode *j = gw_body_get(req, "parties");
  uint64_t parties;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  if (j == NULL)
    return gw_reply_error(req, 400, "invalid_body", "\"parties\" is required");
  if (gw_json_uint64(req->doc, j, &parties) != 0 || parties < 1 ||
      parties > 1024)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"parties\" must be an integer from 1 to 1024");
  rv = atr_barrier_open(gw_srv->store, req->name, ATR_CREATE, parties, &h);
  return gw_reply_open(req, rv, &h);
}

int gw_barrier_get(struct gw_req *req) {
  return gw_kind_get(req, ATR_BARRIER);
}

int gw_barrier_delete(struct gw_req *req) {
  return gw_object_delete(req, ATR_BARRIER);
}

struct barrier_pass {
  uint64_t index, generation;
};

static int barrier_try_poll(struct gw_req *req, void *arg) {
  struct barrier_pass *p = arg;

  return atr_barrier_poll(&req->wait.h, req->grant.token, &p->index,
                          &p->generation);
}

int gw_barrier_wait(struct gw_req *req) {
  struct barrier_pass p = {0, 0};
  gw_buf b;
  int rv;

  if (req->runs == 1) {
    atr_handle h;
    uint64_t ticket;
    double timeout;
    if (gw_query_timeout(req, gw_srv->cfg.max_wait, &timeout) != GW_NEXT)
      return GW_DONE;
    rv = atr_barrier_open(gw_srv->store, req->name, 0, 0, &h);
    if (rv < 0)
      return gw_reply_core(req, rv);
    if ((rv = atr_barrier_arrive(&h, timeout + BARRIER_GRACE, &ticket)) != 0)
      return gw_reply_core(req, rv);
    /* The place is the request's from now on: given up unless the
     * answer that the round passed is delivered. */
    gw_grant_keep(req, GW_GRANT_BARRIER, &h, ticket, 1);
    gw_lease_note(&h, ticket, timeout + BARRIER_GRACE);
    gw_park_begin(req, GW_WAIT_HOLD, &h, timeout);
  } else if (gw_client_gone(req)) {
    /* A waiter left: it breaks the round (the completion gives the
     * place up). */
    return gw_req_drop(req);
  }
  if (gw_park_run(req, barrier_try_poll, &p, ATR_ETIMEDOUT, &rv) == GW_DONE)
    return GW_DONE; /* parked */
  if (rv != 0) {
    /* Timed out (which breaks it for all), broken, or the place gone
     * (its lease ran out, which broke it: ATR_ENOTHELD). */
    gw_grant_undo(req);
    if (rv == ATR_ETIMEDOUT || rv == ATR_EBROKEN || rv == ATR_ENOTHELD)
      return gw_reply_error(req, 409, "broken",
                            rv == ATR_ETIMEDOUT
                                ? "the wait timed out: the barrier is broken"
                                : "the barrier is broken");
    return gw_reply_core(req, rv);
  }
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"index\":");
  gw_buf_u64(&b, p.index);
  gw_buf_str(&b, ",\"generation\":");
  gw_buf_u64(&b, p.generation);
  gw_buf_add(&b, "}", 1);
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_barrier_abort(struct gw_req *req) {
  return gw_kind_act(req, ATR_BARRIER, atr_barrier_abort);
}

int gw_barrier_reset(struct gw_req *req) {
  return gw_kind_act(req, ATR_BARRIER, atr_barrier_reset);
}
