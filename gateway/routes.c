/*
 * routes.c - the route table and the checks every route shares.
 *
 * The checks run once, in this order, before any handler: Host and
 * Origin without a token (403), token (401), path (404), method (405
 * with Allow), object name on the raw path (400 bad_name), Content-Length
 * (400 when two differ, 413), a %00 in the query (400), content type
 * (415: nothing that changes state takes a CORS-simple type, even without
 * a body), body present and JSON (400). Handlers then only do their own work
 * (routes.h).
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
    {GW_PUT, "/v1/values/{name}", gw_value_put, GW_R_NAME | NEED, "value_put"},
    {GW_GET, "/v1/values/{name}", gw_value_get, GW_R_NAME, "value_get"},
    {GW_DELETE, "/v1/values/{name}", gw_value_delete, GW_R_NAME,
     "value_delete"},
    {GW_POST, "/v1/values/{name}/add", gw_value_add, GW_R_NAME | BODY,
     "value_add"},
    {GW_PUT, "/v1/arrays/{name}", gw_array_put, GW_R_NAME | NEED, "array_put"},
    {GW_GET, "/v1/arrays/{name}", gw_array_get, GW_R_NAME, "array_get"},
    {GW_PATCH, "/v1/arrays/{name}", gw_array_patch, GW_R_NAME | NEED,
     "array_patch"},
    {GW_DELETE, "/v1/arrays/{name}", gw_array_delete, GW_R_NAME,
     "array_delete"},
    {GW_POST, "/v1/arrays/{name}/add", gw_array_add, GW_R_NAME | NEED,
     "array_add"},
    {GW_PUT, "/v1/queues/{name}", gw_queue_put, GW_R_NAME | BODY, "queue_put"},
    {GW_GET, "/v1/queues/{name}", gw_queue_get, GW_R_NAME, "queue_get"},
    {GW_DELETE, "/v1/queues/{name}", gw_queue_delete, GW_R_NAME,
     "queue_delete"},
    /* Items are kept as their own text: checked, never parsed to a tree. */
    {GW_POST, "/v1/queues/{name}/items", gw_queue_push,
     GW_R_NAME | GW_R_BODY | GW_R_NEED, "queue_push"},
    {GW_DELETE, "/v1/queues/{name}/items", gw_queue_clear, GW_R_NAME,
     "queue_clear"},
    {GW_POST, "/v1/queues/{name}/batch", gw_queue_batch,
     GW_R_NAME | GW_R_BODY | GW_R_NEED, "queue_batch"},
    {GW_POST, "/v1/queues/{name}/pop", gw_queue_pop, GW_R_NAME, "queue_pop"},
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
 * name is a 400 and not a 404). A pattern holds one at most. */
static int route_match(const char *pattern, const char *path, size_t len,
                       const char **name, size_t *name_len) {
  const char *brace, *suffix, *slash;
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
  slen = strlen(suffix);
  return len - end == slen && memcmp(path + end, suffix, slen) == 0;
}

int gw_route_match(unsigned method, const char *path, size_t len,
                   struct gw_match *m) {
  const char *name = NULL;
  size_t name_len = 0;
  unsigned want = method == GW_HEAD ? GW_GET : method;

  memset(m, 0, sizeof(*m));
  for (size_t i = 0; i < N_ROUTES; i++) {
    const char *n = NULL;
    size_t nl = 0;
    if (!route_match(gw_routes[i].pattern, path, len, &n, &nl))
      continue;
    m->allow |= gw_routes[i].method;
    if (gw_routes[i].flags & GW_R_OPEN)
      m->open = 1;
    if (gw_routes[i].method == want && m->route == NULL) {
      m->route = &gw_routes[i];
      name = n;
      name_len = nl;
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
  default:
    req->route = m.route;
    return gw_reply_error(req, 400, "bad_name",
                          "names are 1-64 bytes of A-Z a-z 0-9 _ . -");
  }
  req->route = m.route;
  memcpy(req->name, m.name, sizeof(req->name));
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
  }
  req->runs++;
  return r->handler(req);
}
