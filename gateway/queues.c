/*
 * queues.c - /v1/queues: bounded FIFOs of JSON items.
 *
 * An item is kept as the exact text it came as (checked to be one JSON
 * value, white space around it dropped), so big integers and any
 * escaping come back byte for byte. An item a C program put that is not
 * JSON comes back as a JSON string of its bytes.
 */
#include <microhttpd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "gw.h"

#define QUEUE_ITEM_DEPTH 512 /* nesting checked on popped items */

static int queue_answer(struct gw_req *req, unsigned status) {
  atr_info info;
  gw_buf b;
  int rv;

  if ((rv = atr_stat(gw_srv->store, req->name, &info)) != 0)
    return gw_reply_core(req, rv);
  if (info.kind != ATR_QUEUE)
    return gw_reply_core(req, ATR_EKIND);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"name\":");
  gw_json_put_string(&b, req->name, strlen(req->name));
  gw_buf_fmt(&b,
             ",\"size\":%llu,\"maxsize\":%llu,\"bytes\":%llu,"
             "\"max_bytes\":%llu,\"max_item\":%llu,\"version\":%llu}",
             (unsigned long long)info.size, (unsigned long long)info.maxsize,
             (unsigned long long)info.bytes, (unsigned long long)info.max_bytes,
             (unsigned long long)info.max_item,
             (unsigned long long)info.version);
  return gw_reply_buf(req, status, &b, info.version);
}

int gw_queue_put(struct gw_req *req) {
  static const char *const members[] = {"maxsize", "max_bytes", "max_item",
                                        NULL};
  static const char *const names[] = {"maxsize", "max_bytes", "max_item"};
  uint64_t vals[3] = {0, 0, 0};
  atr_queue_opts o;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != 0)
    return MHD_YES;
  for (int i = 0; i < 3; i++) {
    const gw_jnode *n = gw_body_get(req, names[i]);
    if (n && gw_json_uint64(req->doc, n, &vals[i]) != 0)
      return gw_reply_error(req, 400, "invalid_body",
                            "\"%s\" must be an integer >= 0", names[i]);
  }
  atr_queue_opts_init(&o);
  o.maxsize = vals[0];
  /* Without a byte bound the ring grows within the store as needed, so
   * maxsize alone bounds the queue, as in Python; 0 means no bound but
   * the store's space. */
  o.max_bytes = vals[1];
  o.max_item = vals[2]; /* 0: the core's default */
  rv = atr_queue_open(gw_srv->store, req->name, ATR_CREATE, &o, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  return queue_answer(req, rv == ATR_CREATED ? 201 : 200);
}

int gw_queue_get(struct gw_req *req) {
  return queue_answer(req, 200);
}

/* First run of a waiting queue route: ?timeout and the handle. 0, or -1
 * after answering. */
static int queue_begin(struct gw_req *req, enum gw_wait_kind kind) {
  struct gw_waiter *w = &req->wait;
  double t;
  int rv;

  if (gw_query_timeout(req, 0, &t) != 0)
    return -1;
  rv = atr_queue_open(gw_srv->store, req->name, 0, NULL, &w->h);
  if (rv < 0) {
    gw_reply_core(req, rv);
    return -1;
  }
  w->kind = kind;
  w->may_wait = t > 0;
  w->deadline = gw_now() + t;
  return 0;
}

/* Runs try_op until it is done, the request parks, or time is up. */
static int queue_loop(struct gw_req *req,
                      int (*try_op)(struct gw_req *req, void *arg), void *arg,
                      int busy, int *rv) {
  struct gw_waiter *w = &req->wait;
  int final =
      !w->may_wait || w->wake == GW_WAKE_TIMEOUT || w->wake == GW_WAKE_SHUTDOWN;

  for (;;) {
    int p;
    if (!final && gw_wait_arm(req) != 0)
      final = 1;
    *rv = try_op(req, arg);
    if (*rv != busy || final) {
      gw_wait_disarm(req);
      return 0;
    }
    p = gw_wait_park(req);
    if (p == GW_PARKED)
      return 1;
    if (p == GW_EXPIRED)
      final = 1;
  }
}

static int queue_try_put(struct gw_req *req, void *arg) {
  (void)arg;
  return atr_queue_put(&req->wait.h, req->body + req->item_start,
                       req->item_end - req->item_start, 0);
}

int gw_queue_push(struct gw_req *req) {
  int rv;

  if (req->runs == 1) {
    const char *why = NULL;
    rv = gw_json_check(req->body, req->body_len, gw_srv->cfg.max_depth,
                       &req->item_start, &req->item_end, NULL, NULL, &why);
    if (rv != GW_JSON_OK)
      return gw_reply_json_error(req, rv, "item", why);
    if (queue_begin(req, GW_WAIT_PUT) != 0)
      return MHD_YES;
  }
  if (queue_loop(req, queue_try_put, NULL, ATR_EFULL, &rv))
    return MHD_YES; /* parked */
  if (rv != 0)
    return gw_reply_core(req, rv);
  return queue_answer(req, 201);
}

struct queue_batch {
  struct iovec *iov;
  size_t n;
};

static int queue_try_batch(struct gw_req *req, void *arg) {
  struct queue_batch *qb = arg;

  return atr_queue_put_batch(&req->wait.h, qb->iov, qb->n, 0);
}

int gw_queue_batch(struct gw_req *req) {
  struct queue_batch qb = {NULL, 0};
  size_t start, end, *elems = NULL;
  const char *why = NULL;
  int rv, answer;

  /* Checked again on every run: cheap, and keeps no copy of the spans. */
  rv = gw_json_check(req->body, req->body_len, gw_srv->cfg.max_depth, &start,
                     &end, &elems, &qb.n, &why);
  if (rv == GW_JSON_EVALUE)
    return gw_reply_error(req, 400, "invalid_body",
                          "the body must be a JSON array of items");
  if (rv != GW_JSON_OK)
    return gw_reply_json_error(req, rv, "batch", why);
  if (req->runs == 1 && queue_begin(req, GW_WAIT_PUT) != 0) {
    answer = MHD_YES;
    goto done;
  }
  if (qb.n == 0) {
    answer = queue_answer(req, 201);
    goto done;
  }
  qb.iov = calloc(qb.n, sizeof(*qb.iov));
  if (qb.iov == NULL) {
    answer = gw_reply_core(req, ATR_ENOMEM);
    goto done;
  }
  for (size_t k = 0; k < qb.n; k++) {
    qb.iov[k].iov_base = req->body + elems[2 * k];
    qb.iov[k].iov_len = elems[2 * k + 1] - elems[2 * k];
  }
  if (queue_loop(req, queue_try_batch, &qb, ATR_EFULL, &rv))
    answer = MHD_YES; /* parked */
  else if (rv != 0)
    answer = gw_reply_core(req, rv);
  else
    answer = queue_answer(req, 201);
done:
  free(qb.iov);
  free(elems);
  return answer;
}

struct queue_pop {
  atr_items items;
};

static int queue_try_pop(struct gw_req *req, void *arg) {
  struct queue_pop *qp = arg;

  return atr_queue_get_batch(&req->wait.h, req->wait.max, 0, &qp->items);
}

int gw_queue_pop(struct gw_req *req) {
  struct queue_pop qp;
  gw_buf b;
  int rv;

  if (req->runs == 1) {
    const char *m = gw_req_query(req, "max");
    const char *why = NULL;
    size_t max = 1;
    if (m && gw_query_max_parse(m, &max, &why) != 0)
      return gw_reply_error(req, 400, "invalid_query", "%s", why);
    req->wait.max = max;
    if (queue_begin(req, GW_WAIT_POP) != 0)
      return MHD_YES;
  } else if (gw_client_gone(req)) {
    return MHD_NO; /* resumed for a client that left: take nothing */
  }
  memset(&qp, 0, sizeof(qp));
  if (queue_loop(req, queue_try_pop, &qp, ATR_EEMPTY, &rv)) {
    atr_items_free(&qp.items);
    return MHD_YES; /* parked */
  }
  if (rv == ATR_EEMPTY) {
    atr_items_free(&qp.items);
    return gw_reply_empty(req);
  }
  if (rv != 0) {
    atr_items_free(&qp.items);
    return gw_reply_core(req, rv);
  }
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"items\":[");
  for (size_t k = 0; k < qp.items.count; k++) {
    const char *p = qp.items.data + qp.items.off[k];
    size_t n = qp.items.len[k], s, e;
    if (k)
      gw_buf_add(&b, ",", 1);
    if (gw_json_check(p, n, QUEUE_ITEM_DEPTH, &s, &e, NULL, NULL, NULL) ==
        GW_JSON_OK)
      gw_buf_add(&b, p + s, e - s);
    else
      gw_json_put_bytes(&b, p, n);
  }
  gw_buf_str(&b, "]}");
  atr_items_free(&qp.items);
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_queue_clear(struct gw_req *req) {
  atr_handle h;
  int rv;

  rv = atr_queue_open(gw_srv->store, req->name, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if ((rv = atr_queue_clear(&h)) != 0)
    return gw_reply_core(req, rv);
  return gw_reply_empty(req);
}

int gw_queue_delete(struct gw_req *req) {
  int rv = atr_delete(gw_srv->store, req->name, ATR_QUEUE);

  if (rv != 0)
    return gw_reply_core(req, rv);
  return gw_reply_empty(req);
}
