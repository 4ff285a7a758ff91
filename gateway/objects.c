/*
 * objects.c - what every kind shares: the store and object listings,
 * /healthz, /openapi.json, and the helpers handlers use to read bodies
 * and conditional headers.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"

/* ----------------------------------------------------------------- helpers */

int gw_cond_parse(struct gw_req *req, struct gw_cond *c) {
  const char *im = gw_req_header(req, "If-Match");
  const char *inm = gw_req_header(req, "If-None-Match");

  memset(c, 0, sizeof(*c));
  if (inm != NULL) {
    while (*inm == ' ')
      inm++;
    if (strcmp(inm, "*") != 0) {
      gw_reply_error(req, 400, "invalid_header", "If-None-Match takes only *");
      return -1;
    }
    c->if_none_match_any = 1;
  }
  if (im != NULL) {
    size_t n;
    char digits[24];
    int64_t v;
    while (*im == ' ')
      im++;
    n = strlen(im);
    while (n > 0 && im[n - 1] == ' ')
      n--;
    if (n == 1 && im[0] == '*') {
      c->if_match = 1;
      return 0;
    }
    if (n < 3 || n - 2 >= sizeof(digits) || im[0] != '"' || im[n - 1] != '"')
      goto bad;
    memcpy(digits, im + 1, n - 2);
    digits[n - 2] = '\0';
    if (gw_parse_int64(digits, &v) != 0 || v < 0)
      goto bad;
    c->if_match = 2;
    c->version = (uint64_t)v;
  }
  return 0;
bad:
  gw_reply_error(req, 400, "invalid_header",
                 "If-Match takes * or one \"<version>\"");
  return -1;
}

const gw_jnode *gw_body_get(struct gw_req *req, const char *key) {
  if (req->doc == NULL)
    return NULL;
  return gw_json_get(gw_json_root(req->doc), key);
}

int gw_body_members(struct gw_req *req, const char *const *allowed) {
  const gw_jnode *root;

  if (req->doc == NULL)
    return 0;
  root = gw_json_root(req->doc);
  if (gw_json_type(root) != GW_JOBJECT) {
    gw_reply_error(req, 400, "invalid_body", "the body must be a JSON object");
    return -1;
  }
  for (const gw_jnode *m = gw_json_child(root); m; m = gw_json_next(m)) {
    const char *key = gw_json_key(m);
    size_t i;
    for (i = 0; allowed[i]; i++)
      if (key && strcmp(key, allowed[i]) == 0)
        break;
    if (allowed[i] == NULL) {
      gw_reply_error(req, 400, "invalid_body", "unknown member \"%.64s\"",
                     key ? key : "");
      return -1;
    }
    /* A repeated member would be ambiguous. */
    for (const gw_jnode *o = gw_json_child(root); o != m; o = gw_json_next(o))
      if (strcmp(gw_json_key(o), key) == 0) {
        gw_reply_error(req, 400, "invalid_body", "member \"%.64s\" repeated",
                       key);
        return -1;
      }
  }
  return 0;
}

int gw_body_type(struct gw_req *req, char *type) {
  const gw_jnode *t = gw_body_get(req, "type");
  const char *s = t ? gw_json_string(req->doc, t) : NULL;

  if (t == NULL) {
    gw_reply_error(req, 400, "invalid_type", "\"type\" is required");
    return -1;
  }
  if (s == NULL || strlen(s) != 1 || atr_type_size(s[0]) == 0) {
    gw_reply_error(req, 400, "invalid_type",
                   "\"type\" must be one of b B h H i I l L q Q f d ? c");
    return -1;
  }
  *type = s[0];
  return 0;
}

int gw_body_scalar(struct gw_req *req, const gw_jnode *node, char type,
                   const char *what, atr_scalar *out) {
  int rv = gw_json_scalar(req->doc, node, type, out);

  if (rv == 0)
    return 0;
  if (rv == GW_JSON_EVALUE)
    gw_reply_error(req, 400, "invalid_value", "%s is not a valid '%c' value",
                   what, type);
  else if (rv == GW_JSON_ERANGE)
    gw_reply_error(req, 400, "out_of_range", "%s does not fit type '%c'", what,
                   type);
  else
    gw_reply_json_error(req, rv, what, NULL);
  return -1;
}

/* --------------------------------------------------------------- listings */

struct obj_list {
  atr_info *items;
  size_t n, cap;
  atr_kind only;
};

static int obj_collect(const atr_info *info, void *arg) {
  struct obj_list *l = arg;

  if (l->only != ATR_ANY && info->kind != l->only)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    atr_info *p = realloc(l->items, cap * sizeof(*p));
    if (p == NULL)
      return ATR_ENOMEM;
    l->items = p;
    l->cap = cap;
  }
  l->items[l->n++] = *info;
  return 0;
}

static int obj_by_name(const void *a, const void *b) {
  return strcmp(((const atr_info *)a)->name, ((const atr_info *)b)->name);
}

/* Every object of kind (ATR_ANY: all), sorted by name. */
static int obj_list(atr_kind kind, struct obj_list *l) {
  int rv;

  memset(l, 0, sizeof(*l));
  l->only = kind;
  rv = atr_list(gw_srv->store, obj_collect, l);
  if (rv != 0) {
    free(l->items);
    l->items = NULL;
    return rv;
  }
  if (l->n > 1)
    qsort(l->items, l->n, sizeof(*l->items), obj_by_name);
  return 0;
}

static void obj_type(gw_buf *b, char type) {
  char t[2] = {type, 0};

  gw_json_put_string(b, t, 1);
}

int gw_objects_list(struct gw_req *req) {
  struct obj_list l;
  gw_buf b;
  int rv;

  if ((rv = obj_list(ATR_ANY, &l)) != 0)
    return gw_reply_core(req, rv);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"objects\":[");
  for (size_t i = 0; i < l.n; i++) {
    const atr_info *o = &l.items[i];
    gw_buf_str(&b, i ? ",{\"name\":" : "{\"name\":");
    gw_json_put_string(&b, o->name, strlen(o->name));
    gw_buf_fmt(&b, ",\"kind\":\"%s\"", atr_kind_name(o->kind));
    if (o->kind == ATR_VALUE || o->kind == ATR_ARRAY) {
      gw_buf_str(&b, ",\"type\":");
      obj_type(&b, o->type);
    }
    if (o->kind == ATR_ARRAY)
      gw_buf_fmt(&b, ",\"length\":%llu", (unsigned long long)o->length);
    if (o->kind == ATR_QUEUE)
      gw_buf_fmt(&b, ",\"size\":%llu,\"maxsize\":%llu",
                 (unsigned long long)o->size, (unsigned long long)o->maxsize);
    gw_buf_fmt(&b, ",\"version\":%llu}", (unsigned long long)o->version);
  }
  gw_buf_str(&b, "]}");
  free(l.items);
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_value_list(struct gw_req *req) {
  struct obj_list l;
  gw_buf b;
  int rv, first = 1;

  if ((rv = obj_list(ATR_VALUE, &l)) != 0)
    return gw_reply_core(req, rv);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"values\":[");
  for (size_t i = 0; i < l.n; i++) {
    atr_handle h;
    atr_scalar v;
    uint64_t ver;
    if (atr_value_open(gw_srv->store, l.items[i].name, 0, 0, NULL, &h) < 0 ||
        atr_value_get(&h, &v, &ver) != 0)
      continue; /* deleted meanwhile */
    if (!first)
      gw_buf_add(&b, ",", 1);
    first = 0;
    gw_value_repr(&b, l.items[i].name, h.type, v, ver);
  }
  gw_buf_str(&b, "]}");
  free(l.items);
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_store_info(struct gw_req *req) {
  atr_store_stats st;
  gw_buf b;
  int rv;

  if ((rv = atr_store_stats_get(gw_srv->store, &st)) != 0)
    return gw_reply_core(req, rv);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"path\":");
  gw_json_put_string(&b, gw_srv->cfg.store_path,
                     strlen(gw_srv->cfg.store_path));
  gw_buf_fmt(
      &b,
      ",\"capacity\":%llu,\"used\":%llu,\"free\":%llu,"
      "\"objects\":%llu,\"max_objects\":%llu}",
      (unsigned long long)st.capacity, (unsigned long long)st.used,
      (unsigned long long)(st.capacity > st.used ? st.capacity - st.used : 0),
      (unsigned long long)st.objects, (unsigned long long)st.max_objects);
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_healthz(struct gw_req *req) {
  gw_buf b;

  gw_buf_init(&b);
  gw_buf_str(&b, "{\"status\":\"ok\"}");
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_openapi(struct gw_req *req) {
  char *body = malloc(gw_openapi_json_len ? gw_openapi_json_len : 1);

  if (body == NULL)
    return gw_reply_error(req, 500, "out_of_memory", "out of memory");
  memcpy(body, gw_openapi_json, gw_openapi_json_len);
  return gw_reply(req, 200, body, gw_openapi_json_len, NULL, 0);
}
