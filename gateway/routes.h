/*
 * routes.h - the route table and its handlers.
 *
 * Layer 4: includes req.h, repr.h and park.h (and, in the handlers'
 * files, auth.h, sse.h, lease.h; see buf.h for the layers). The table
 * (routes.c) names the handlers and the handlers' files include this
 * header: the one loop of the gateway, as Redis's command table and its
 * commands.
 *
 * Every handler follows req.h's convention: it returns GW_DONE once the
 * request is answered, parked or to be closed. The checks every route
 * shares (token, path, method, name, body size, content type, JSON) have
 * run before it, by the route's flags.
 *
 * Adding a kind of object to the gateway:
 *   1. one handler file (gateway/<kinds>.c) with its handlers, answering
 *      objects with gw_repr_object (repr.h) and waiting with gw_park_run
 *      (park.h) and a try function;
 *   2. its handlers declared below and its rows in routes.c's table (each
 *      row's label is its metrics label);
 *   3. its row in repr.c's kind table (open by name, state by handle);
 *      events (nng and SSE), snapshots, resyncs and /v1/objects then
 *      carry it with nothing more to do, and its routes are counted in
 *      /metrics under their rows' labels;
 *   4. if its waiters need a finer wake-up than "any change" (as pops
 *      wake only as many as there are items), a gw_wait_kind and its case
 *      in park.c's p_group_check;
 *   5. gateway/openapi.json: its paths and its schema.
 */
#ifndef ATRIUM_GW_ROUTES_H
#define ATRIUM_GW_ROUTES_H

#include <stddef.h>

#include "park.h"
#include "repr.h"
#include "req.h"

typedef int (*gw_handler)(struct gw_req *req);

/* Route flags: the checks routes.c runs before the handler. */
enum {
  GW_R_BODY = 1 << 0,  /* takes a JSON body (415 for another type)   */
  GW_R_NAME = 1 << 1,  /* the path holds an object name              */
  GW_R_OPEN = 1 << 2,  /* no token needed (/healthz)                 */
  GW_R_PARSE = 1 << 3, /* parse the body into req->doc before        */
  GW_R_NEED = 1 << 4,  /* the body may not be empty                  */
  GW_R_FENCE = 1 << 5, /* a write that takes Atrium-Fence (routes.c)  */
};

struct gw_route {
  unsigned method;     /* one of gw_method                            */
  const char *pattern; /* "/v1/values/{name}/add"                     */
  gw_handler handler;
  unsigned flags;
  const char *id; /* the route's label in /metrics               */
};

/* What gw_route_match finds for a method and a raw path. */
struct gw_match {
  const struct gw_route *route;   /* for the method; NULL: none        */
  unsigned allow;                 /* methods of the path (HEAD if GET) */
  int open;                       /* a route of the path needs no token */
  char name[ATR_NAME_MAX + 1];    /* the {name} segment (GW_ROUTE_OK)  */
  char key[ATR_DICT_KEY_MAX + 1]; /* the {key} segment, decoded      */
  size_t key_len;
};
/* Results of gw_route_match, each an answer of gw_route_find. */
enum {
  GW_ROUTE_OK = 0,
  GW_ROUTE_ENOPATH = -1, /* no route has this path: 404             */
  GW_ROUTE_EMETHOD = -2, /* the path takes other methods: 405       */
  GW_ROUTE_EESCAPE = -3, /* a %-escape in the name: 400 bad_name    */
  GW_ROUTE_ENAME = -4,   /* not a valid object name: 400 bad_name   */
  GW_ROUTE_EKEY = -5,    /* not a valid dict key: 400 bad_key       */
};
/* Matches method (one gw_method bit; HEAD routes as GET) and the raw
 * request target path[0..len) (before any '?', not unescaped) against
 * the route table; fills *m. Pure (no I/O, no allocation): the daemon
 * and the fuzz target call it. */
int gw_route_match(unsigned method, const char *path, size_t len,
                   struct gw_match *m);
/* Finds the route for the request's method and raw path and checks the
 * token; fills req->route and req->name (GW_NEXT), or answers (404, 405,
 * 400 bad_name, 401, a CORS preflight) and returns GW_DONE. */
int gw_route_find(struct gw_req *req, const char *path, size_t path_len);
/* The checks before the body arrives: 413 by Content-Length. GW_NEXT or
 * GW_DONE. */
int gw_route_precheck(struct gw_req *req);
/* Runs the checks that need the body, then the handler: GW_DONE. */
int gw_route_run(struct gw_req *req);
/* Number of routes and their labels, for metrics. */
size_t gw_route_count(void);
const struct gw_route *gw_route_at(size_t i);
size_t gw_route_index(const struct gw_route *r);

/* ---------------------------------------------------------------- handlers */

/* values.c */
int gw_value_put(struct gw_req *req);
int gw_value_get(struct gw_req *req);
int gw_value_add(struct gw_req *req);
int gw_value_delete(struct gw_req *req);
/* arrays.c */
int gw_array_put(struct gw_req *req);
int gw_array_get(struct gw_req *req);
int gw_array_patch(struct gw_req *req);
int gw_array_add(struct gw_req *req);
int gw_array_delete(struct gw_req *req);
/* queues.c */
int gw_queue_put(struct gw_req *req);
int gw_queue_get(struct gw_req *req);
int gw_queue_push(struct gw_req *req);
int gw_queue_batch(struct gw_req *req);
int gw_queue_pop(struct gw_req *req);
int gw_queue_clear(struct gw_req *req);
int gw_queue_delete(struct gw_req *req);
int gw_queue_ack(struct gw_req *req);
int gw_queue_nack(struct gw_req *req);
int gw_queue_touch(struct gw_req *req);
int gw_queue_done(struct gw_req *req);
int gw_queue_join(struct gw_req *req);
/* locks.c */
int gw_lock_list(struct gw_req *req);
int gw_lock_put(struct gw_req *req);
int gw_lock_get(struct gw_req *req);
int gw_lock_delete(struct gw_req *req);
int gw_lock_acquire(struct gw_req *req);
int gw_lock_release(struct gw_req *req);
int gw_lock_renew(struct gw_req *req);
int gw_lock_break(struct gw_req *req);
/* semaphores.c */
int gw_sem_list(struct gw_req *req);
int gw_sem_put(struct gw_req *req);
int gw_sem_get(struct gw_req *req);
int gw_sem_delete(struct gw_req *req);
int gw_sem_acquire(struct gw_req *req);
int gw_sem_release(struct gw_req *req);
/* flags.c */
int gw_flag_list(struct gw_req *req);
int gw_flag_put(struct gw_req *req);
int gw_flag_get(struct gw_req *req);
int gw_flag_delete(struct gw_req *req);
int gw_flag_set(struct gw_req *req);
int gw_flag_clear(struct gw_req *req);
int gw_flag_wait(struct gw_req *req);
/* barriers.c */
int gw_barrier_list(struct gw_req *req);
int gw_barrier_put(struct gw_req *req);
int gw_barrier_get(struct gw_req *req);
int gw_barrier_delete(struct gw_req *req);
int gw_barrier_wait(struct gw_req *req);
int gw_barrier_abort(struct gw_req *req);
int gw_barrier_reset(struct gw_req *req);
/* conditions.c */
int gw_cond_list(struct gw_req *req);
int gw_cond_put(struct gw_req *req);
int gw_cond_get(struct gw_req *req);
int gw_cond_delete(struct gw_req *req);
int gw_cond_wait(struct gw_req *req);
int gw_cond_notify(struct gw_req *req);
/* dicts.c */
int gw_dict_list(struct gw_req *req);
int gw_dict_put(struct gw_req *req);
int gw_dict_get(struct gw_req *req);
int gw_dict_patch(struct gw_req *req);
int gw_dict_delete(struct gw_req *req);
int gw_dict_key_get(struct gw_req *req);
int gw_dict_key_put(struct gw_req *req);
int gw_dict_key_delete(struct gw_req *req);
/* objects.c: what every kind shares */
int gw_objects_list(struct gw_req *req);
int gw_value_list(struct gw_req *req);
/* {"<what>":[every object of kind, as listings show it]}: 200. */
int gw_kind_list(struct gw_req *req, atr_kind kind, const char *what);
/* GET of the object of the request's name, of kind: 200 or the error. */
int gw_kind_get(struct gw_req *req, atr_kind kind);
/* Acts on the object of the request's name, of kind (a flag's set, a
 * barrier's abort, a lock's break), then answers its state. */
int gw_kind_act(struct gw_req *req, atr_kind kind,
                int (*act)(const atr_handle *h));
/*
 * An acquire of the object of the request's name, of kind: on its first
 * run reads ?timeout= (default 0: try once) and parks as GW_WAIT_HOLD;
 * a resumed run whose client left is dropped, granted nothing. Runs
 * try_op (park.h) until it does not answer ATR_ETIMEDOUT or the time is
 * up. GW_NEXT with *rv >= 0 (got it: the caller answers), or GW_DONE
 * (parked, dropped, or answered: 409 timeout, the core error).
 */
int gw_acquire_run(struct gw_req *req, atr_kind kind, gw_park_try try_op,
                   void *arg, int *rv);
/* An acquire or wait that did not get through by its deadline: 409
 * timeout, as the contract says (not the error table's 503). */
int gw_reply_timeout(struct gw_req *req);
int gw_store_info(struct gw_req *req);
int gw_healthz(struct gw_req *req);
int gw_openapi(struct gw_req *req);
/* Answers the object h is open on, as o says (its JSON from repr.h, its
 * version as the ETag), or the core error reading it. */
int gw_reply_object(struct gw_req *req, unsigned status, const atr_handle *h,
                    const struct gw_repr_opts *o);
/* Answers the result rv of an _open call with ATR_CREATE: the object h
 * is open on, 201 if it was created, 200 if it existed; or the error. */
int gw_reply_open(struct gw_req *req, int rv, const atr_handle *h);
/* Deletes the object of the request's name if it is of kind: 204. */
int gw_object_delete(struct gw_req *req, atr_kind kind);
/* metrics.c */
int gw_metrics(struct gw_req *req);
int gw_metrics_init(void);
void gw_metrics_fini(void);
/* Counts an answered request (route NULL: unrouted). Lock-free. */
void gw_metrics_count(const struct gw_route *route, unsigned status,
                      double seconds);
/* web.c */
int gw_web_index(struct gw_req *req);
int gw_web_file(struct gw_req *req);
/* (sse.c: gw_sse_stream; auth.c: gw_auth_ticket) */

/* The OpenAPI document (generated from gateway/openapi.json). */
extern const unsigned char gw_openapi_json[];
extern const size_t gw_openapi_json_len;

/* The dashboard: every file of web/ (generated by the Makefile), ended by
 * an entry whose name is NULL. */
struct gw_web_file {
  const char *name;          /* "app.js"                              */
  const unsigned char *data; /* the bytes, then a NUL (not in len)    */
  size_t len;
  const char *etag; /* "\"<cksum>\""                          */
};
extern const struct gw_web_file gw_web_files[];

#endif /* ATRIUM_GW_ROUTES_H */
