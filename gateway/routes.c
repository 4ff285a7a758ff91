/*
 * routes.c - the route table and the checks every route shares.
 *
 * The checks run once, in this order, before any handler: Host and
 * Origin without a token (403), token (401), path (404), method (405
 * with Allow), object name on the raw path (400 bad_name), Content-Length
 * (400 when two differ, 413), a %00 in the query (400), content type
 * (415: nothing that changes state takes a CORS-simple type, even without
 * a body), body present and JSON (400), the Atrium-Fence header (400).
 * Handlers then only do their own work (routes.h).
 *
 * Fencing: a write route's handler given Atrium-Fence runs whole inside
 * atr_lock_fenced, so whatever it writes is applied only while that lock
 * holds that fence, at that instant (no release, expiry or break can come
 * between the check and the write); else 412 stale_fence and nothing ran.
 * A handler that parks runs so again on every wake. The handler takes
 * other objects' locks under the fence lock's record lock, never the
 * other way round.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "routes.h"
#include "sse.h"

#define BODY (GW_R_BODY | GW_R_PARSE)
#define NEED (GW_R_BODY | GW_R_PARSE | GW_R_NEED)
#define NAMED GW_R_NAME
#define FENCE GW_R_FENCE

static const struct gw_route gw_routes[] = {
    {GW_GET, "/healthz", gw_healthz, GW_R_OPEN, "healthz"},
    {GW_GET, "/openapi.json", gw_openapi, GW_R_OPEN, "openapi"},
    /* The dashboard's files hold no data: no token (the page asks for it). */
    {GW_GET, "/", gw_web_index, GW_R_OPEN, "web_index"},
    {GW_GET, "/web/{name}", gw_web_file, GW_R_OPEN | GW_R_NAME, "web_file"},
    {GW_GET, "/metrics", gw_metrics, 0, "metrics"},
    {GW_GET, "/v1/objects", gw_objects_list, 0, "objects_list"},
    {GW_GET, "/v1/store", gw_store_info, 0, "store_info"},
    {GW_GET, "/v1/values", gw_value_list, 0, "values_list"},
    {GW_PUT, "/v1/values/{name}", gw_value_put, NAMED | NEED | FENCE,
     "value_put"},
    {GW_GET, "/v1/values/{name}", gw_value_get, NAMED, "value_get"},
    {GW_DELETE, "/v1/values/{name}", gw_value_delete, NAMED | FENCE,
     "value_delete"},
    {GW_POST, "/v1/values/{name}/add", gw_value_add, NAMED | BODY | FENCE,
     "value_add"},
    {GW_PUT, "/v1/arrays/{name}", gw_array_put, NAMED | NEED | FENCE,
     "array_put"},
    {GW_GET, "/v1/arrays/{name}", gw_array_get, NAMED, "array_get"},
    {GW_PATCH, "/v1/arrays/{name}", gw_array_patch, NAMED | NEED | FENCE,
     "array_patch"},
    {GW_DELETE, "/v1/arrays/{name}", gw_array_delete, NAMED | FENCE,
     "array_delete"},
    {GW_POST, "/v1/arrays/{name}/add", gw_array_add, NAMED | NEED | FENCE,
     "array_add"},
    {GW_PUT, "/v1/queues/{name}", gw_queue_put, NAMED | BODY | FENCE,
     "queue_put"},
    {GW_GET, "/v1/queues/{name}", gw_queue_get, NAMED, "queue_get"},
    {GW_DELETE, "/v1/queues/{name}", gw_queue_delete, NAMED | FENCE,
     "queue_delete"},
    /* Items are kept as their own text: checked, never parsed to a tree. */
    {GW_POST, "/v1/queues/{name}/items", gw_queue_push,
     NAMED | GW_R_BODY | GW_R_NEED | FENCE, "queue_push"},
    {GW_DELETE, "/v1/queues/{name}/items", gw_queue_clear, NAMED | FENCE,
     "queue_clear"},
    {GW_POST, "/v1/queues/{name}/batch", gw_queue_batch,
     NAMED | GW_R_BODY | GW_R_NEED | FENCE, "queue_batch"},
    {GW_POST, "/v1/queues/{name}/pop", gw_queue_pop, NAMED | FENCE,
     "queue_pop"},
    {GW_POST, "/v1/queues/{name}/ack", gw_queue_ack, NAMED | NEED | FENCE,
     "queue_ack"},
    {GW_POST, "/v1/queues/{name}/nack", gw_queue_nack, NAMED | NEED | FENCE,
     "queue_nack"},
    {GW_POST, "/v1/queues/{name}/touch", gw_queue_touch, NAMED | NEED | FENCE,
     "queue_touch"},
    {GW_POST, "/v1/queues/{name}/done", gw_queue_done, NAMED | BODY | FENCE,
     "queue_done"},
    {GW_POST, "/v1/queues/{name}/join", gw_queue_join, NAMED, "queue_join"},
    /* The synchronisation kinds. A lock's or condition's own routes take
     * no fence (they are the lock's business); the others' writes do. */
    {GW_GET, "/v1/locks", gw_lock_list, 0, "locks_list"},
    {GW_PUT, "/v1/locks/{name}", gw_lock_put, NAMED | BODY, "lock_put"},
    {GW_GET, "/v1/locks/{name}", gw_lock_get, NAMED, "lock_get"},
    {GW_DELETE, "/v1/locks/{name}", gw_lock_delete, NAMED, "lock_delete"},
    {GW_POST, "/v1/locks/{name}/acquire", gw_lock_acquire, NAMED | BODY,
     "lock_acquire"},
    {GW_POST, "/v1/locks/{name}/release", gw_lock_release, NAMED | NEED,
     "lock_release"},
    {GW_POST, "/v1/locks/{name}/renew", gw_lock_renew, NAMED | NEED,
     "lock_renew"},
    {GW_POST, "/v1/locks/{name}/break", gw_lock_break, NAMED, "lock_break"},
    {GW_GET, "/v1/semaphores", gw_sem_list, 0, "semaphores_list"},
    {GW_PUT, "/v1/semaphores/{name}", gw_sem_put, NAMED | BODY,
     "semaphore_put"},
    {GW_GET, "/v1/semaphores/{name}", gw_sem_get, NAMED, "semaphore_get"},
    {GW_DELETE, "/v1/semaphores/{name}", gw_sem_delete, NAMED | FENCE,
     "semaphore_delete"},
    {GW_POST, "/v1/semaphores/{name}/acquire", gw_sem_acquire, NAMED,
     "semaphore_acquire"},
    {GW_POST, "/v1/semaphores/{name}/release", gw_sem_release,
     NAMED | BODY | FENCE, "semaphore_release"},
    {GW_GET, "/v1/flags", gw_flag_list, 0, "flags_list"},
    {GW_PUT, "/v1/flags/{name}", gw_flag_put, NAMED | BODY, "flag_put"},
    {GW_GET, "/v1/flags/{name}", gw_flag_get, NAMED, "flag_get"},
    {GW_DELETE, "/v1/flags/{name}", gw_flag_delete, NAMED | FENCE,
     "flag_delete"},
    {GW_POST, "/v1/flags/{name}/set", gw_flag_set, NAMED | FENCE, "flag_set"},
    {GW_POST, "/v1/flags/{name}/clear", gw_flag_clear, NAMED | FENCE,
     "flag_clear"},
    {GW_POST, "/v1/flags/{name}/wait", gw_flag_wait, NAMED, "flag_wait"},
    {GW_GET, "/v1/barriers", gw_barrier_list, 0, "barriers_list"},
    {GW_PUT, "/v1/barriers/{name}", gw_barrier_put, NAMED | BODY,
     "barrier_put"},
    {GW_GET, "/v1/barriers/{name}", gw_barrier_get, NAMED, "barrier_get"},
    {GW_DELETE, "/v1/barriers/{name}", gw_barrier_delete, NAMED | FENCE,
     "barrier_delete"},
    {GW_POST, "/v1/barriers/{name}/wait", gw_barrier_wait, NAMED,
     "barrier_wait"},
    {GW_POST, "/v1/barriers/{name}/abort", gw_barrier_abort, NAMED | FENCE,
     "barrier_abort"},
    {GW_POST, "/v1/barriers/{name}/reset", gw_barrier_reset, NAMED | FENCE,
     "barrier_reset"},
    {GW_GET, "/v1/conditions", gw_cond_list, 0, "conditions_list"},
    {GW_PUT, "/v1/conditions/{name}", gw_cond_put, NAMED | BODY,
     "condition_put"},
    {GW_GET, "/v1/conditions/{name}", gw_cond_get, NAMED, "condition_get"},
    {GW_DELETE, "/v1/conditions/{name}", gw_cond_delete, NAMED,
     "condition_delete"},
    {GW_POST, "/v1/conditions/{name}/wait", gw_cond_wait, NAMED | NEED,
     "condition_wait"},
    {GW_POST, "/v1/conditions/{name}/notify", gw_cond_notify, NAMED | NEED,
     "condition_notify"},
    {GW_GET, "/v1/dicts", gw_dict_list, 0, "dicts_list"},
    {GW_PUT, "/v1/dicts/{name}", gw_dict_put, NAMED | BODY | FENCE, "dict_put"},
    {GW_GET, "/v1/dicts/{name}", gw_dict_get, NAMED, "dict_get"},
    {GW_PATCH, "/v1/dicts/{name}", gw_dict_patch, NAMED | NEED | FENCE,
     "dict_patch"},
    {GW_DELETE, "/v1/dicts/{name}", gw_dict_delete, NAMED | FENCE,
     "dict_delete"},
    /* A key's value is kept as its own text: checked, never parsed. */
    {GW_GET, "/v1/dicts/{name}/keys/{key}", gw_dict_key_get, NAMED,
     "dict_key_get"},
    {GW_PUT, "/v1/dicts/{name}/keys/{key}", gw_dict_key_put,
     NAMED | GW_R_BODY | GW_R_NEED | FENCE, "dict_key_put"},
    {GW_DELETE, "/v1/dicts/{name}/keys/{key}", gw_dict_key_delete,
     NAMED | FENCE, "dict_key_delete"},
    /* Open: a browser's EventSource cannot send the token, so the handler
     * takes it or a single-use ticket from the route below. */
    {GW_GET, "/v1/events", gw_sse_stream, GW_R_OPEN, "events"},
    {GW_POST, "/v1/events/tickets", gw_auth_ticket, 0, "events_ticket"},
};

#define N_ROUTES (sizeof(gw_routes) / sizeof(gw_routes[0]))

size_t gw_route_count(void) {
  return N_ROUTES;
}

const struct gw_route *gw_route_at(size_t i) {
  return &gw_routes[i];
}

size_t gw_route_index(const struct gw_route *r) {
  return r ? (size_t)(r - gw_routes) : N_ROUTES;
}

/* Matches path[0..len) against pattern; a "{name}" segment takes any run
 * of characters up to the next '/' (it is checked later, so that a bad
 * name is a 400 and not a 404). A pattern holds one at most, and may end
 * in a "{key}" segment (a dict's key, still %-escaped: one segment). */
static int route_match(const char *pattern, const char *path, size_t len,
                       const char **name, size_t *name_len, const char **key,
                       size_t *key_len) {
  const char *brace, *suffix, *slash, *kb;
  size_t plen, slen, end;

  if (len < 2 || pattern[1] != path[1]) /* a cheap first test */
    return pattern[1] == '\0' && len == 1 && path[0] == '/';
  brace = strchr(pattern, '{');
  plen = brace ? (size_t)(brace - pattern) : strlen(pattern);
  if (len < plen || memcmp(pattern, path, plen) != 0)
    return 0;
  if (brace == NULL)
    return len == plen;
  slash = memchr(path + plen, '/', len - plen);
  end = slash ? (size_t)(slash - path) : len;
  *name = path + plen;
  *name_len = end - plen;
  suffix = brace + 6; /* after "{name}" */
  if ((kb = strstr(suffix, "{key}")) != NULL) {
    slen = (size_t)(kb - suffix);
    if (len - end < slen || memcmp(path + end, suffix, slen) != 0 ||
        memchr(path + end + slen, '/', len - end - slen) != NULL)
      return 0;
    *key = path + end + slen;
    *key_len = len - end - slen;
    return 1;
  }
  slen = strlen(suffix);
  return len - end == slen && memcmp(path + end, suffix, slen) == 0;
}

int gw_route_match(unsigned method, const char *path, size_t len,
                   struct gw_match *m) {
  const char *name = NULL, *key = NULL;
  size_t name_len = 0, key_len = 0;
  unsigned want = method == GW_HEAD ? GW_GET : method;

  memset(m, 0, sizeof(*m));
  for (size_t i = 0; i < N_ROUTES; i++) {
    const char *n = NULL, *k = NULL;
    size_t nl = 0, kl = 0;
    if (!route_match(gw_routes[i].pattern, path, len, &n, &nl, &k, &kl))
      continue;
    m->allow |= gw_routes[i].method;
    if (gw_routes[i].flags & GW_R_OPEN)
      m->open = 1;
    if (gw_routes[i].method == want && m->route == NULL) {
      m->route = &gw_routes[i];
      name = n;
      name_len = nl;
      key = k;
      key_len = kl;
    }
  }
  if (m->allow & GW_GET)
    m->allow |= GW_HEAD;
  if (m->allow == 0)
    return GW_ROUTE_ENOPATH;
  if (m->route == NULL)
    return GW_ROUTE_EMETHOD;
  if (m->route->flags & GW_R_NAME) {
    /* The raw path: MHD would have turned %00 or %2F into bytes. */
    if (memchr(name, '%', name_len) != NULL)
      return GW_ROUTE_EESCAPE;
    if (name_len > ATR_NAME_MAX || atr_name_check(name, name_len) != 0)
      return GW_ROUTE_ENAME;
    memcpy(m->name, name, name_len);
    m->name[name_len] = '\0';
  }
  /* A dict's key: decoded from the raw path (%2F is a slash in it). */
  if (key != NULL && (gw_pct_decode(key, key_len, 0, m->key, sizeof(m->key),
                                    &m->key_len) != 0 ||
                      atr_dict_key_check(m->key, m->key_len) != 0))
    return GW_ROUTE_EKEY;
  return GW_ROUTE_OK;
}

/* What libmicrohttpd would answer in HTML had the request been larger:
 * the target's and the headers' sizes (414, 431), and Content-Length
 * headers that disagree (400). */
static int route_shape(struct gw_req *req) {
  struct gw_req_heads h;

  if (strlen(req->uri) > GW_URI_MAX)
    return gw_reply_error(req, 414, "uri_too_long",
                          "the request target is longer than %d bytes",
                          GW_URI_MAX);
  gw_req_heads(req, &h);
  if (h.bytes > GW_HEADERS_MAX)
    return gw_reply_error(req, 431, "headers_too_large",
                          "the headers are larger than %d bytes",
                          GW_HEADERS_MAX);
  if (h.clen_differ)
    return gw_reply_error(req, 400, "invalid_header",
                          "two different Content-Length headers");
  req->clen = h.clen;
  return GW_NEXT;
}

int gw_route_find(struct gw_req *req, const char *path, size_t len) {
  struct gw_match m;
  char methods[128];
  int rv = gw_route_match(req->method, path, len, &m);

  req->allow = m.allow;
  if (route_shape(req) != GW_NEXT || gw_auth_site(req) != GW_NEXT)
    return GW_DONE;
  /* A CORS preflight carries no token: answer it before the token check. */
  if (req->method == GW_OPTIONS && gw_srv->cfg.n_origins > 0 && m.allow != 0) {
    req->allow |= GW_OPTIONS;
    return gw_reply_empty(req);
  }
  if (!m.open && !gw_auth_ok(req))
    return gw_reply_error(req, 401, "unauthorized",
                          "this route needs an Authorization: Bearer token");
  switch (rv) {
  case GW_ROUTE_OK:
    break;
  case GW_ROUTE_ENOPATH:
    return gw_reply_error(req, 404, "not_found", "no such route");
  case GW_ROUTE_EMETHOD:
    gw_methods_str(m.allow, methods, sizeof(methods));
    return gw_reply_error(req, 405, "method_not_allowed", "this path takes %s",
                          methods);
  case GW_ROUTE_EESCAPE:
    req->route = m.route;
    return gw_reply_error(
        req, 400, "bad_name",
        "object names need no %%-escapes and may not hold them");
  case GW_ROUTE_EKEY:
    req->route = m.route;
    return gw_reply_error(req, 400, "bad_key", GW_KEY_RULE);
  default:
    req->route = m.route;
    return gw_reply_error(req, 400, "bad_name",
                          "names are 1-64 bytes of A-Z a-z 0-9 _ . -");
  }
  req->route = m.route;
  memcpy(req->name, m.name, sizeof(req->name));
  memcpy(req->key, m.key, m.key_len);
  req->key_len = m.key_len;
  return GW_NEXT;
}

/* "application/json", any case, maybe with parameters. */
static int route_is_json(const char *ctype) {
  size_t n = strlen("application/json");

  if (ctype == NULL)
    return 0;
  while (*ctype == ' ')
    ctype++;
  if (strncasecmp(ctype, "application/json", n) != 0)
    return 0;
  return ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ';
}

int gw_route_precheck(struct gw_req *req) {
  const char *ctype = gw_req_header(req, "Content-Type");
  const char *query = strchr(req->uri, '?');

  if (req->clen > gw_srv->cfg.max_body)
    return gw_reply_error(req, 413, "body_too_large",
                          "the body is larger than %zu bytes",
                          gw_srv->cfg.max_body);
  /* MHD unescapes a value up to its first %00 and no further. */
  if (query != NULL && strstr(query, "%00") != NULL)
    return gw_reply_error(req, 400, "invalid_query",
                          "a query may not hold %%00");
  /* A web page can send a form or text/plain without asking first (a
   * CORS-simple request): nothing that changes state takes one. */
  if (ctype != NULL &&
      (req->method & (GW_PUT | GW_POST | GW_PATCH | GW_DELETE)) != 0 &&
      !route_is_json(ctype))
    return gw_reply_error(req, 415, "unsupported_media_type",
                          "a body must be application/json");
  return GW_NEXT;
}

static int route_call(void *arg) {
  struct gw_req *req = arg;

  return req->route->handler(req);
}

/* The handler inside atr_lock_fenced (see "Fencing" above). */
static int route_run_fenced(struct gw_req *req) {
  int rv = atr_lock_fenced(gw_srv->store, req->fence_lock, req->fence,
                           route_call, req);

  if (rv >= 0)
    return GW_DONE; /* the handler ran and answered */
  if (rv == ATR_ESTALE || rv == ATR_ENOENT || rv == ATR_EKIND)
    return gw_reply_error(req, 412, "stale_fence",
                          "the lock %s is not held under fence %llu now",
                          req->fence_lock, (unsigned long long)req->fence);
  return gw_reply_core(req, rv);
}

int gw_route_run(struct gw_req *req) {
  const struct gw_route *r = req->route;

  if (req->runs == 0) {
    if (req->body_too_big)
      return gw_reply_error(req, 413, "body_too_large",
                            "the body is larger than %zu bytes",
                            gw_srv->cfg.max_body);
    if (r->flags & GW_R_BODY) {
      if (req->body_len > 0 &&
          !route_is_json(gw_req_header(req, "Content-Type")))
        return gw_reply_error(req, 415, "unsupported_media_type",
                              "a body must be application/json");
      if (req->body_len == 0 && (r->flags & GW_R_NEED))
        return gw_reply_error(req, 400, "invalid_body",
                              "this route needs a JSON body");
      if (req->body_len > 0 && (r->flags & GW_R_PARSE)) {
        const char *why = NULL;
        int rv = gw_json_parse(req->body, req->body_len, gw_srv->cfg.max_depth,
                               &req->doc, &why);
        if (rv != GW_JSON_OK)
          return gw_reply_json_error(req, rv, "body", why);
      }
    }
    if (r->flags & GW_R_FENCE) {
      const char *f = gw_req_header(req, "Atrium-Fence");
      const char *why = NULL;
      if (f != NULL) {
        if (gw_fence_parse(f, req->fence_lock, &req->fence, &why) != 0)
          return gw_reply_error(req, 400, "invalid_header", "%s", why);
        req->fenced = 1;
      }
    }
  }
  /* A run that met a busy lock and left the request unanswered is run
   * again as it was (http.c): counting it would make a waiting route
   * skip its first run's work (the barrier place, the open handle) and
   * wait on nothing. */
  if (req->run_again)
    req->run_again = 0;
  else
    req->runs++;
  if (req->fenced)
    return route_run_fenced(req);
  return r->handler(req);
}
