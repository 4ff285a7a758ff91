/*
 * queues.c - /v1/queues: bounded FIFOs of JSON items.
 *
 * An item is kept as the exact text it came as (checked to be one JSON
 * value, white space around it dropped), so big integers and any
 * escaping come back byte for byte. An item a C program put that is not
 * JSON comes back as a JSON string of its bytes.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "park.h"
#include "routes.h"

#define QUEUE_ITEM_DEPTH 512 /* nesting checked on popped items */

int gw_queue_put(struct gw_req *req) {
  static const char *const members[] = {"maxsize", "max_bytes", "max_item",
                                        NULL};
  static const char *const names[] = {"maxsize", "max_bytes", "max_item"};
  uint64_t vals[3] = {0, 0, 0};
  atr_queue_opts o;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
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
  return gw_reply_open(req, rv, &h);
}

int gw_queue_get(struct gw_req *req) {
  atr_handle h;
  int rv = atr_queue_open(gw_srv->store, req->name, 0, NULL, &h);

  if (rv < 0)
    return gw_reply_core(req, rv);
  return gw_reply_object(req, 200, &h, &gw_repr_all);
}

/* First run of a waiting queue route: ?timeout and the handle. GW_NEXT,
 * or GW_DONE after answering. */
static int queue_begin(struct gw_req *req, enum gw_wait_kind kind) {
  atr_handle h;
  double t;
  int rv;

  if (gw_query_timeout(req, 0, &t) != GW_NEXT)
    return GW_DONE;
  rv = atr_queue_open(gw_srv->store, req->name, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  gw_park_begin(req, kind, &h, t);
  return GW_NEXT;
}

/* The answer of a put or a batch: the queue after it, or the error. */
static int queue_put_answer(struct gw_req *req, int rv) {
  if (rv != 0)
    return gw_reply_core(req, rv);
  return gw_reply_object(req, 201, &req->wait.h, &gw_repr_all);
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
    if (queue_begin(req, GW_WAIT_PUT) != GW_NEXT)
      return GW_DONE;
  }
  if (gw_park_run(req, queue_try_put, NULL, ATR_EFULL, &rv) == GW_DONE)
    return GW_DONE; /* parked */
  return queue_put_answer(req, rv);
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
  if (req->runs == 1 && queue_begin(req, GW_WAIT_PUT) != GW_NEXT) {
    answer = GW_DONE;
    goto done;
  }
  if (qb.n == 0) {
    answer = queue_put_answer(req, 0);
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
  if (gw_park_run(req, queue_try_batch, &qb, ATR_EFULL, &rv) == GW_DONE)
    answer = GW_DONE; /* parked */
  else
    answer = queue_put_answer(req, rv);
done:
  free(qb.iov);
  free(elems);
  return answer;
}

static int queue_try_pop(struct gw_req *req, void *arg) {
  atr_items *items = arg;

  return atr_queue_get_batch(&req->wait.h, req->wait.max, 0, items);
}

/* {"items":[...]}: each item as the JSON it came as (or, if a C program
 * put bytes that are not JSON, a string of them). */
static void queue_items_json(gw_buf *b, const atr_items *items) {
  gw_buf_str(b, "{\"items\":[");
  for (size_t k = 0; k < items->count; k++) {
    const char *p = items->data + items->off[k];
    size_t n = items->len[k], s, e;
    if (k)
      gw_buf_add(b, ",", 1);
    if (gw_json_check(p, n, QUEUE_ITEM_DEPTH, &s, &e, NULL, NULL, NULL) ==
        GW_JSON_OK)
      gw_buf_add(b, p + s, e - s);
    else
      gw_json_put_bytes(b, p, n);
  }
  gw_buf_str(b, "]}");
}

int gw_queue_pop(struct gw_req *req) {
  atr_items items;
  gw_buf b;
  int rv;

  if (req->runs == 1) {
    const char *m = gw_req_query(req, "max");
    const char *why = NULL;
    size_t max = 1;
    if (m && gw_query_max_parse(m, &max, &why) != 0)
      return gw_reply_error(req, 400, "invalid_query", "%s", why);
    req->wait.max = max;
    if (queue_begin(req, GW_WAIT_POP) != GW_NEXT)
      return GW_DONE;
  }
  memset(&items, 0, sizeof(items));
  if (gw_park_run(req, queue_try_pop, &items, ATR_EEMPTY, &rv) == GW_DONE) {
    atr_items_free(&items);
    return GW_DONE; /* parked */
  }
  if (rv != 0) {
    atr_items_free(&items);
    return rv == ATR_EEMPTY ? gw_reply_empty(req) : gw_reply_core(req, rv);
  }
  gw_buf_init(&b);
  queue_items_json(&b, &items);
  atr_items_free(&items);
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
  return gw_object_delete(req, ATR_QUEUE);
}
