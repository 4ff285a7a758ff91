/*
 * flags.c - /v1/flags: Python's Event (the word "events" is the change
 * stream's). A wait is parked until the flag is set or its time is up,
 * and answers the flag's state either way.
 */
#include "park.h"
#include "routes.h"

int gw_flag_list(struct gw_req *req) {
  return gw_kind_list(req, ATR_FLAG, "flags");
}

int gw_flag_put(struct gw_req *req) {
  static const char *const members[] = {"set", NULL};
  atr_handle h;
  int rv, set = 0;

  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_bool(req, "set", &set) != GW_NEXT)
    return GW_DONE;
  rv = atr_flag_open(gw_srv->store, req->name, ATR_CREATE, set, &h);
  return gw_reply_open(req, rv, &h);
}

int gw_flag_get(struct gw_req *req) {
  return gw_kind_get(req, ATR_FLAG);
}

int gw_flag_delete(struct gw_req *req) {
  return gw_object_delete(req, ATR_FLAG);
}

int gw_flag_set(struct gw_req *req) {
  return gw_kind_act(req, ATR_FLAG, atr_flag_set);
}

int gw_flag_clear(struct gw_req *req) {
  return gw_kind_act(req, ATR_FLAG, atr_flag_clear);
}

static int flag_try_wait(struct gw_req *req, void *arg) {
  (void)arg;
  return atr_flag_wait(&req->wait.h, 0, NULL);
}

int gw_flag_wait(struct gw_req *req) {
  int rv;

  if (req->runs == 1) {
    atr_handle h;
    double timeout;
    if (gw_query_timeout(req, gw_srv->cfg.max_wait, &timeout) != GW_NEXT)
      return GW_DONE;
    rv = atr_flag_open(gw_srv->store, req->name, 0, 0, &h);
    if (rv < 0)
      return gw_reply_core(req, rv);
    gw_park_begin(req, GW_WAIT_ANY, &h, timeout);
  }
  if (gw_park_run(req, flag_try_wait, NULL, ATR_ETIMEDOUT, &rv) == GW_DONE)
    return GW_DONE; /* parked */
  if (rv != 0 && rv != ATR_ETIMEDOUT)
    return gw_reply_core(req, rv);
  /* Set, or the time is up: the state says which ("set":false). */
  return gw_reply_object(req, 200, &req->wait.h, &gw_repr_all);
}
