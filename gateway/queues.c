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

#include "lease.h"
#include "park.h"
#include "routes.h"

#define QUEUE_ITEM_DEPTH 512 /* nesting checked on popped items */

int gw_queue_put(struct gw_req *req) {
  static const char *const members[] = {"maxsize",     "max_bytes",
                                        "max_item",    "max_deliveries",
                                        "dead_letter", NULL};
  static const char *const names[] = {"maxsize", "max_bytes", "max_item",
                                      "max_deliveries"};
  uint64_t vals[4] = {0, 0, 0, 0};
  const gw_jnode *dl = gw_body_get(req, "dead_letter");
  const char *dead_letter = NULL;
  atr_queue_opts o;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  for (int i = 0; i < 4; i++) {
    const gw_jnode *n = gw_body_get(req, names[i]);
    if (n && gw_json_uint64(req->doc, n, &vals[i]) != 0)
      return gw_reply_error(req, 400, "invalid_body",
                            "\"%s\" must be an integer >= 0", names[i]);
  }
  if (vals[3] > UINT32_MAX)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"max_deliveries\" must be at most %u",
                          (unsigned)UINT32_MAX);
  if (dl != NULL && gw_json_type(dl) != GW_JNULL) {
    dead_letter = gw_json_string(req->doc, dl);
    if (dead_letter == NULL ||
        atr_name_check(dead_letter, strlen(dead_letter)) != 0)
      return gw_reply_error(req, 400, "invalid_body",
                            "\"dead_letter\" must be a queue's name");
    if (strcmp(dead_letter, req->name) == 0)
      return gw_reply_error(req, 400, "invalid_body",
                            "\"dead_letter\" must name another queue");
  }
  atr_queue_opts_init(&o);
  o.maxsize = vals[0];
  /* Without a byte bound the ring grows within the store as needed, so
   * maxsize alone bounds the queue, as in Python; 0 means no bound but
   * the store's space. */
  o.max_bytes = vals[1];
  o.max_item = vals[2]; /* 0: the core's default */
  o.max_deliveries = (uint32_t)vals[3];
  o.dead_letter = dead_letter;
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

/* A pop's take: plain, or under a lease (lease > 0) with the receipts
 * and deliveries of what it took. */
struct queue_take {
  atr_items items;
  double lease;
  uint64_t *receipts;
  uint32_t *deliveries;
};

static int queue_try_pop(struct gw_req *req, void *arg) {
  struct queue_take *qt = arg;

  if (qt->lease > 0)
    return atr_queue_get_leased(&req->wait.h, req->wait.max, qt->lease,
                                ATR_LEASE_DETACHED, 0, &qt->items, qt->receipts,
                                qt->deliveries);
  return atr_queue_get_batch(&req->wait.h, req->wait.max, 0, &qt->items);
}

/* {"items":[...]}: each item as the JSON it came as (or, if a C program
 * put bytes that are not JSON, a string of them). */
static void queue_items_json(gw_buf *b, const struct queue_take *qt) {
  gw_buf_str(b, "{\"items\":[");
  for (size_t k = 0; k < qt->items.count; k++) {
    if (k)
      gw_buf_add(b, ",", 1);
    if (qt->lease > 0) {
      gw_buf_str(b, "{\"receipt\":");
      gw_hex16_put(b, qt->receipts[k]);
      gw_buf_str(b, ",\"item\":");
    }
    gw_json_put_item(b, qt->items.data + qt->items.off[k], qt->items.len[k],
                     QUEUE_ITEM_DEPTH);
    if (qt->lease > 0)
      gw_buf_fmt(b, ",\"deliveries\":%u}", (unsigned)qt->deliveries[k]);
  }
  gw_buf_str(b, "]");
  if (qt->lease > 0)
    gw_buf_fmt(b, ",\"lease\":%.17g", qt->lease);
  gw_buf_str(b, "}");
}

int gw_queue_pop(struct gw_req *req) {
  struct queue_take qt;
  gw_buf b;
  int rv;

  memset(&qt, 0, sizeof(qt));
  /* ?lease= is read again on every run (pure): a parked pop keeps it. */
  if (gw_query_ttl(req, "lease", 0, &qt.lease) != GW_NEXT)
    return GW_DONE;
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
  if (qt.lease > 0) {
    qt.receipts = calloc(req->wait.max, sizeof(*qt.receipts));
    qt.deliveries = calloc(req->wait.max, sizeof(*qt.deliveries));
    if (qt.receipts == NULL || qt.deliveries == NULL) {
      rv = ATR_ENOMEM;
      goto out;
    }
  }
  if (gw_park_run(req, queue_try_pop, &qt, ATR_EEMPTY, &rv) == GW_DONE) {
    rv = GW_DONE; /* parked */
    goto out;
  }
  if (rv == 0 && qt.lease > 0) /* its end comes with an event, on time */
    gw_lease_note_min(&req->wait.h, qt.lease);
out:
  if (rv == GW_DONE)
    ;
  else if (rv == ATR_EEMPTY)
    rv = gw_reply_empty(req);
  else if (rv != 0)
    rv = gw_reply_core(req, rv);
  else {
    gw_buf_init(&b);
    queue_items_json(&b, &qt);
    rv = gw_reply_buf(req, 200, &b, 0);
  }
  atr_items_free(&qt.items);
  free(qt.receipts);
  free(qt.deliveries);
  return rv;
}

/* ------------------------------------------------- leased items, tasks */

enum queue_settle_op { QUEUE_ACK, QUEUE_NACK, QUEUE_TOUCH };

/* ack, nack?delay=, touch?lease=: {"receipts":[...]} -> {"applied",
 * "unknown"}. A receipt is a secret, not a syntax: a string that is no
 * receipt is just unknown (listed as it came); anything but an array of
 * strings is 400. */
static int queue_settle(struct gw_req *req, enum queue_settle_op op) {
  static const char *const members[] = {"receipts", NULL};
  const gw_jnode *list = gw_body_get(req, "receipts"), *e;
  uint64_t *valid = NULL, *unknown = NULL;
  const char **texts = NULL;
  size_t n, nv = 0, nu = 0;
  double secs = 0;
  const char *why = NULL;
  atr_handle h;
  gw_buf b;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  if (op == QUEUE_NACK) {
    if (gw_query_timeout_parse(gw_req_query(req, "delay"), 0,
                               gw_srv->cfg.max_lease, &secs, &why) != 0)
      return gw_reply_error(req, 400, "invalid_query", "delay: %s", why);
  } else if (op == QUEUE_TOUCH &&
             gw_query_ttl(req, "lease", 1, &secs) != GW_NEXT) {
    return GW_DONE;
  }
  if (list == NULL || gw_json_type(list) != GW_JARRAY)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"receipts\" must be an array of receipts");
  if ((n = gw_json_count(list)) > GW_POP_MAX)
    return gw_reply_error(req, 400, "invalid_body",
                          "at most " GW_STR(GW_POP_MAX) " receipts at once");
  for (e = gw_json_child(list); e != NULL; e = gw_json_next(e))
    if (gw_json_type(e) != GW_JSTRING)
      return gw_reply_error(req, 400, "invalid_body",
                            "each receipt must be a string");
  rv = atr_queue_open(gw_srv->store, req->name, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  valid = calloc(n + 1, sizeof(*valid));
  unknown = calloc(n + 1, sizeof(*unknown));
  texts = calloc(n + 1, sizeof(*texts));
  if (valid == NULL || unknown == NULL || texts == NULL) {
    rv = gw_reply_core(req, ATR_ENOMEM);
    goto out;
  }
  /* texts[k]: the receipt as it came; valid: those that parse, in order. */
  size_t k = 0;
  for (e = gw_json_child(list); e != NULL; e = gw_json_next(e), k++) {
    texts[k] = gw_json_string(req->doc, e);
    if (gw_hex16_parse(texts[k], &valid[nv]) == 0)
      nv++;
  }
  switch (op) {
  case QUEUE_ACK:
    rv = atr_queue_ack(&h, valid, nv, unknown, &nu);
    break;
  case QUEUE_NACK:
    rv = atr_queue_nack(&h, valid, nv, secs, unknown, &nu);
    break;
  default:
    rv = atr_queue_touch(&h, valid, nv, secs, unknown, &nu);
    break;
  }
  if (rv != 0) {
    rv = gw_reply_core(req, rv);
    goto out;
  }
  if (nv > nu && (op == QUEUE_TOUCH || (op == QUEUE_NACK && secs > 0)))
    gw_lease_note_min(&h, secs); /* the new end comes with an event */
  gw_buf_init(&b);
  gw_buf_fmt(&b, "{\"applied\":%zu,\"unknown\":[", nv - nu);
  /* The core lists the unknown ones in the order given: walk both. */
  size_t u = 0, first = 1;
  for (k = 0; k < n; k++) {
    uint64_t r;
    if (gw_hex16_parse(texts[k], &r) == 0) {
      if (u >= nu || unknown[u] != r)
        continue; /* applied */
      u++;
    }
    if (!first)
      gw_buf_add(&b, ",", 1);
    first = 0;
    gw_json_put_string(&b, texts[k], strlen(texts[k]));
  }
  gw_buf_str(&b, "]");
  if (op != QUEUE_ACK)
    gw_buf_fmt(&b, ",\"%s\":%.17g", op == QUEUE_NACK ? "delay" : "lease", secs);
  gw_buf_str(&b, "}");
  rv = gw_reply_buf(req, 200, &b, 0);
out:
  free(valid);
  free(unknown);
  free(texts);
  return rv;
}

int gw_queue_ack(struct gw_req *req) {
  return queue_settle(req, QUEUE_ACK);
}

int gw_queue_nack(struct gw_req *req) {
  return queue_settle(req, QUEUE_NACK);
}

int gw_queue_touch(struct gw_req *req) {
  return queue_settle(req, QUEUE_TOUCH);
}

static int queue_unfinished(struct gw_req *req, int status, uint64_t left) {
  gw_buf b;

  gw_buf_init(&b);
  gw_buf_fmt(&b, "{\"unfinished\":%llu}", (unsigned long long)left);
  return gw_reply_buf(req, (unsigned)status, &b, 0);
}

int gw_queue_done(struct gw_req *req) {
  static const char *const members[] = {"n", NULL};
  const gw_jnode *nn = gw_body_get(req, "n");
  uint64_t n = 1, left = 0;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  if (nn != NULL && (gw_json_uint64(req->doc, nn, &n) != 0 || n == 0))
    return gw_reply_error(req, 400, "invalid_body",
                          "\"n\" must be an integer >= 1");
  rv = atr_queue_open(gw_srv->store, req->name, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  rv = atr_queue_done(&h, n, &left);
  if (rv != 0)
    return gw_reply_core(req, rv);
  return queue_unfinished(req, 200, left);
}

static int queue_try_join(struct gw_req *req, void *arg) {
  return atr_queue_join(&req->wait.h, 0, arg);
}

int gw_queue_join(struct gw_req *req) {
  uint64_t left = 0;
  int rv;

  if (req->runs == 1) {
    atr_handle h;
    double timeout;
    if (gw_query_timeout(req, gw_srv->cfg.max_wait, &timeout) != GW_NEXT)
      return GW_DONE;
    rv = atr_queue_open(gw_srv->store, req->name, 0, NULL, &h);
    if (rv < 0)
      return gw_reply_core(req, rv);
    gw_park_begin(req, GW_WAIT_ANY, &h, timeout);
  }
  if (gw_park_run(req, queue_try_join, &left, ATR_ETIMEDOUT, &rv) == GW_DONE)
    return GW_DONE; /* parked */
  if (rv != 0 && rv != ATR_ETIMEDOUT)
    return gw_reply_core(req, rv);
  /* Done, or the time is up: the count says which. */
  return queue_unfinished(req, 200, left);
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
