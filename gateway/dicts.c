/*
 * dicts.c - /v1/dicts: Manager().dict() for every process.
 *
 * Keys come %-decoded from the raw request line (routes.c for the path's
 * {key}; here for ?keys= and ?after=), never from libmicrohttpd's
 * unescaped copy, which ends at a %00. A value is kept as the JSON text
 * the client sent (checked, never parsed to a tree, so its numbers stay
 * exact, as queue items), and comes back as that text.
 *
 * A key's watch (GET .../keys/{key}?wait=<version>&timeout=) parks on the
 * dict (any of its events wakes it) and answers once the key's version
 * has passed wait (or, for wait > 0, once the key is gone), or at the
 * timeout with the key as it is.
 */
#include <stdlib.h>
#include <string.h>

#include "park.h"
#include "repr.h"
#include "routes.h"

#define DICT_PAGE_DEFAULT 100
#define DICT_PAGE_MAX 10000

static int dict_bad_key(struct gw_req *req) {
  return gw_reply_error(req, 400, "bad_key", GW_KEY_RULE);
}

static int dict_412(struct gw_req *req, int rv) {
  return gw_reply_error(req, 412, "precondition_failed",
                        rv == ATR_EEXIST ? "the key exists"
                                         : "the key's version does not match");
}

/* Appends {"key":..,"value":..,"version":..} of item k. */
static void dict_key_json(gw_buf *b, const atr_dict_items *it, size_t k) {
  const atr_dict_item *x = &it->item[k];

  gw_buf_str(b, "{\"key\":");
  gw_json_put_string(b, it->data + x->key_off, x->key_len);
  gw_buf_str(b, ",\"value\":");
  gw_json_put_item(b, it->data + x->value_off, x->value_len,
                   gw_srv->cfg.max_depth);
  gw_buf_str(b, ",\"version\":");
  gw_buf_u64(b, x->version);
  gw_buf_add(b, "}", 1);
}

static int dict_key_answer(struct gw_req *req, unsigned status,
                           const atr_dict_items *it, size_t k) {
  gw_buf b;

  gw_buf_init(&b);
  dict_key_json(&b, it, k);
  return gw_reply_buf(req, status, &b, it->item[k].version);
}

static int dict_open(struct gw_req *req, atr_handle *h) {
  int rv = atr_dict_open(gw_srv->store, req->name, 0, h);

  return rv < 0 ? gw_reply_core(req, rv) : GW_NEXT;
}

int gw_dict_list(struct gw_req *req) {
  return gw_kind_list(req, ATR_DICT, "dicts");
}

/* ------------------------------------------------------ the whole dict */

/* The ops of a body's "set" object (values as their text) and "delete"
 * array (key strings), checked: GW_NEXT, or GW_DONE after a 400. *ops
 * is the caller's to free. */
static int dict_body_ops(struct gw_req *req, const gw_jnode *set,
                         const gw_jnode *del, atr_dict_op **ops, size_t *n) {
  size_t cap = (set ? gw_json_count(set) : 0) + (del ? gw_json_count(del) : 0);

  *n = 0;
  *ops = NULL;
  if (set != NULL && gw_json_type(set) != GW_JOBJECT)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"set\" (or \"items\") must be an object");
  if (del != NULL && gw_json_type(del) != GW_JARRAY)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"delete\" must be an array of keys");
  if (cap == 0)
    return GW_NEXT;
  if ((*ops = calloc(cap, sizeof(**ops))) == NULL)
    return gw_reply_core(req, ATR_ENOMEM);
  for (const gw_jnode *c = set ? gw_json_child(set) : NULL; c;
       c = gw_json_next(c)) {
    atr_dict_op *op = &(*ops)[(*n)++];
    op->key = gw_json_key(c);
    op->key_len = strlen(op->key);
    op->value = gw_json_text(req->doc, c, &op->value_len);
    if (atr_dict_key_check(op->key, op->key_len) != 0)
      return dict_bad_key(req);
  }
  for (const gw_jnode *c = del ? gw_json_child(del) : NULL; c;
       c = gw_json_next(c)) {
    atr_dict_op *op = &(*ops)[(*n)++];
    op->key = gw_json_string(req->doc, c);
    op->del = 1;
    if (gw_json_type(c) != GW_JSTRING)
      return gw_reply_error(req, 400, "invalid_body",
                            "\"delete\" must be an array of keys");
    if (op->key == NULL) /* a \u0000 */
      return dict_bad_key(req);
    op->key_len = strlen(op->key);
    if (atr_dict_key_check(op->key, op->key_len) != 0)
      return dict_bad_key(req);
  }
  return GW_NEXT;
}

/* A commit's error: a key named twice is the body's fault. */
static int dict_update_error(struct gw_req *req, int rv) {
  if (rv == ATR_EINVAL)
    return gw_reply_error(req, 400, "invalid_body",
                          "a key is named twice in one change");
  if (rv == ATR_EKEY)
    return dict_bad_key(req);
  return gw_reply_core(req, rv);
}

int gw_dict_put(struct gw_req *req) {
  static const char *const members[] = {"items", NULL};
  atr_dict_op *ops = NULL;
  size_t n = 0;
  atr_handle h;
  int rv, created;

  if (gw_body_members(req, members) != GW_NEXT ||
      dict_body_ops(req, gw_body_get(req, "items"), NULL, &ops, &n) !=
          GW_NEXT) {
    free(ops);
    return GW_DONE;
  }
  rv = atr_dict_open(gw_srv->store, req->name, ATR_CREATE, &h);
  created = rv == ATR_CREATED;
  if (rv >= 0 && n > 0) {
    req->changed = created;
    rv = atr_dict_update(&h, ops, n, NULL);
  }
  free(ops);
  if (rv < 0)
    return dict_update_error(req, rv);
  return gw_reply_object(req, created ? 201 : 200, &h, &gw_repr_all);
}

int gw_dict_patch(struct gw_req *req) {
  static const char *const members[] = {"set", "delete", NULL};
  atr_dict_op *ops = NULL;
  size_t n = 0;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT ||
      dict_body_ops(req, gw_body_get(req, "set"), gw_body_get(req, "delete"),
                    &ops, &n) != GW_NEXT ||
      dict_open(req, &h) != GW_NEXT) {
    free(ops);
    return GW_DONE;
  }
  rv = atr_dict_update(&h, ops, n, NULL);
  free(ops);
  if (rv < 0)
    return dict_update_error(req, rv);
  return gw_reply_object(req, 200, &h, &gw_repr_all);
}

int gw_dict_delete(struct gw_req *req) {
  return gw_object_delete(req, ATR_DICT);
}

/* ?keys=a,b: each key %-decoded from the raw query. GW_NEXT with the
 * keys in *keys (pointing into *buf; both the caller's to free), or
 * GW_DONE after a 400. */
static int dict_query_keys(struct gw_req *req, const char *raw, size_t len,
                           struct iovec **keys, size_t *n, char **buf) {
  size_t cap = 1;

  for (size_t i = 0; i < len; i++)
    cap += raw[i] == ',';
  *n = 0;
  *keys = calloc(cap, sizeof(**keys));
  *buf = malloc(len + 1);
  if (*keys == NULL || *buf == NULL)
    return gw_reply_core(req, ATR_ENOMEM);
  for (size_t at = 0, out = 0; at <= len;) {
    const char *comma = memchr(raw + at, ',', len - at);
    size_t end = comma ? (size_t)(comma - raw) : len, kl;
    if (gw_pct_decode(raw + at, end - at, 1, *buf + out, len + 1 - out, &kl) !=
            0 ||
        atr_dict_key_check(*buf + out, kl) != 0)
      return dict_bad_key(req);
    (*keys)[(*n)++] = (struct iovec){*buf + out, kl};
    out += kl;
    at = end + 1;
  }
  return GW_NEXT;
}

/* The dict and its items: all of them, those of ?keys=, or a page of
 * ?after=&limit= with "next" (its last key) when more follow. */
int gw_dict_get(struct gw_req *req) {
  atr_dict_items it = {0};
  struct iovec *keys = NULL;
  char *kbuf = NULL, after[ATR_DICT_KEY_MAX];
  size_t n = 0, alen = 0, klen, araw_len, limit = 0;
  const char *kraw = gw_query_raw(req->uri, "keys", &klen);
  const char *araw = gw_query_raw(req->uri, "after", &araw_len);
  const char *lim = gw_req_query(req, "limit");
  uint64_t version = 0, len = 0;
  int more = 0, rv, answer = GW_DONE;
  atr_handle h;
  gw_buf b;

  if (lim != NULL) {
    int64_t l;
    if (gw_parse_int64(lim, &l) != 0 || l < 1 || l > DICT_PAGE_MAX)
      return gw_reply_error(
          req, 400, "invalid_query",
          "limit must be an integer 1.." GW_STR(DICT_PAGE_MAX));
    limit = (size_t)l;
  }
  if (araw != NULL &&
      (gw_pct_decode(araw, araw_len, 1, after, sizeof(after), &alen) != 0 ||
       (alen > 0 && atr_dict_key_check(after, alen) != 0)))
    return dict_bad_key(req);
  if (kraw != NULL && (araw != NULL || lim != NULL))
    return gw_reply_error(req, 400, "invalid_query",
                          "?keys= does not page: no ?after= or ?limit=");
  if (kraw != NULL &&
      dict_query_keys(req, kraw, klen, &keys, &n, &kbuf) != GW_NEXT)
    goto out;
  if (dict_open(req, &h) != GW_NEXT)
    goto out;
  if (kraw != NULL)
    rv = atr_dict_read(&h, keys, n, &it, &version);
  else
    rv = atr_dict_page(&h, araw ? after : NULL, alen,
                       araw || lim ? (limit ? limit : DICT_PAGE_DEFAULT) : 0,
                       &it, &more, &version);
  if (rv == 0)
    rv = atr_dict_len(&h, &len, NULL);
  if (rv != 0) {
    answer = gw_reply_core(req, rv);
    goto out;
  }
  gw_buf_init(&b);
  gw_buf_add(&b, "{", 1);
  gw_repr_head(&b, ATR_DICT, req->name);
  gw_buf_str(&b, ",\"len\":");
  gw_buf_u64(&b, len);
  gw_buf_str(&b, ",\"version\":");
  gw_buf_u64(&b, version);
  gw_buf_str(&b, ",\"items\":{");
  for (size_t k = 0; k < it.count; k++) {
    const atr_dict_item *x = &it.item[k];
    if (k)
      gw_buf_add(&b, ",", 1);
    gw_json_put_string(&b, it.data + x->key_off, x->key_len);
    gw_buf_add(&b, ":", 1);
    gw_json_put_item(&b, it.data + x->value_off, x->value_len,
                     gw_srv->cfg.max_depth);
  }
  gw_buf_add(&b, "}", 1);
  if (more && it.count > 0) {
    const atr_dict_item *x = &it.item[it.count - 1];
    gw_buf_str(&b, ",\"next\":");
    gw_json_put_string(&b, it.data + x->key_off, x->key_len);
  }
  gw_buf_add(&b, "}", 1);
  answer = gw_reply_buf(req, 200, &b, version);
out:
  atr_dict_items_free(&it);
  free(keys);
  free(kbuf);
  return answer;
}

/* ------------------------------------------------------------- one key */

/* A watch's try: the key into the items, or 1 (wait) while its version
 * has not passed wait (for wait > 0, a key gone has passed it). */
static int dict_try_key(struct gw_req *req, void *arg) {
  atr_dict_items *it = arg;
  struct iovec k = {req->key, req->key_len};
  int rv;

  it->count = it->data_len = 0;
  if ((rv = atr_dict_read(&req->wait.h, &k, 1, it, NULL)) != 0)
    return rv;
  if (it->count == 0)
    return req->wait.version > 0 ? 0 : 1;
  return it->item[0].version <= req->wait.version ? 1 : 0;
}

int gw_dict_key_get(struct gw_req *req) {
  const char *wait = gw_req_query(req, "wait");
  atr_dict_items it = {0};
  int rv, answer;

  if (wait == NULL) {
    /* A plain read, on every run (one after a busy lock too): no watch
     * to park. */
    struct iovec k = {req->key, req->key_len};
    atr_handle h;
    if (dict_open(req, &h) != GW_NEXT)
      return GW_DONE;
    rv = atr_dict_read(&h, &k, 1, &it, NULL);
  } else {
    if (req->runs == 1) {
      const char *why = NULL;
      atr_handle h;
      double t = 0;
      if (gw_query_version_parse(wait, &req->wait.version, &why) != 0)
        return gw_reply_error(req, 400, "invalid_query", "%s", why);
      if (gw_query_timeout(req, gw_srv->cfg.max_wait, &t) != GW_NEXT ||
          dict_open(req, &h) != GW_NEXT)
        return GW_DONE;
      gw_park_begin(req, GW_WAIT_ANY, &h, t);
    }
    if (gw_park_run(req, dict_try_key, &it, 1, &rv) == GW_DONE) {
      atr_dict_items_free(&it);
      return GW_DONE; /* parked */
    }
  }
  if (rv < 0)
    answer = gw_reply_core(req, rv);
  else if (it.count == 0)
    answer = gw_reply_core(req, ATR_ENOKEY);
  else
    answer = dict_key_answer(req, 200, &it, 0);
  atr_dict_items_free(&it);
  return answer;
}

/* The expect of a key's write from If-Match / If-None-Match: 0 (none),
 * a version, ATR_DICT_ABSENT; If-Match: * is the key's version now. */
static int dict_expect(struct gw_req *req, const atr_handle *h,
                       uint64_t *expect) {
  struct gw_cond c;
  int rv;

  if (gw_cond_parse(req, &c) != GW_NEXT)
    return GW_DONE;
  *expect = 0;
  if (c.if_none_match_any)
    *expect = ATR_DICT_ABSENT;
  else if (c.if_match == 2)
    *expect = c.version;
  else if (c.if_match == 1) {
    rv = atr_dict_get(h, req->key, req->key_len, NULL, 0, NULL, expect);
    if (rv == ATR_ENOKEY)
      return dict_412(req, ATR_EVERSION);
    if (rv != 0 && rv != ATR_ETOOBIG)
      return gw_reply_core(req, rv);
  }
  return GW_NEXT;
}

int gw_dict_key_put(struct gw_req *req) {
  size_t start, end;
  const char *why = NULL;
  uint64_t expect, version;
  atr_handle h;
  gw_buf b;
  int rv;

  rv = gw_json_check(req->body, req->body_len, gw_srv->cfg.max_depth, &start,
                     &end, NULL, NULL, &why);
  if (rv != GW_JSON_OK)
    return gw_reply_json_error(req, rv, "value", why);
  if (dict_open(req, &h) != GW_NEXT || dict_expect(req, &h, &expect) != GW_NEXT)
    return GW_DONE;
  rv = atr_dict_set(&h, req->key, req->key_len, req->body + start, end - start,
                    expect, &version);
  if (rv == ATR_EVERSION || rv == ATR_EEXIST)
    return dict_412(req, rv);
  if (rv < 0)
    return gw_reply_core(req, rv);
  /* The answer is what was written: key, this text, its version. */
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"key\":");
  gw_json_put_string(&b, req->key, req->key_len);
  gw_buf_str(&b, ",\"value\":");
  gw_buf_add(&b, req->body + start, end - start);
  gw_buf_str(&b, ",\"version\":");
  gw_buf_u64(&b, version);
  gw_buf_add(&b, "}", 1);
  return gw_reply_buf(req, rv == ATR_CREATED ? 201 : 200, &b, version);
}

int gw_dict_key_delete(struct gw_req *req) {
  atr_dict_items old = {0};
  uint64_t expect;
  atr_handle h;
  int rv, answer;

  if (dict_open(req, &h) != GW_NEXT || dict_expect(req, &h, &expect) != GW_NEXT)
    return GW_DONE;
  if (expect == ATR_DICT_ABSENT)
    return gw_reply_error(req, 400, "invalid_header",
                          "If-None-Match: * does not apply to a delete");
  rv = atr_dict_pop(&h, req->key, req->key_len, expect, &old);
  if (rv == ATR_EVERSION)
    answer = dict_412(req, rv);
  else if (rv < 0)
    answer = gw_reply_core(req, rv);
  else
    answer = dict_key_answer(req, 200, &old, 0);
  atr_dict_items_free(&old);
  return answer;
}
