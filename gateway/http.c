/*
 * http.c - libmicrohttpd glue: the daemon, per-request state, the body,
 * answers.
 *
 * A request's life: MHD gives us its raw request target first (the URI
 * log callback, before MHD unescapes it): that callback allocates the
 * per-request state, which MHD hands back on every later call. The first
 * access-handler call routes and runs the checks that need no body; the
 * next calls bring the body in chunks (capped); the last one runs the
 * handler. A handler that waits suspends the connection (wait.c); when it
 * is resumed the handler runs again. The completion callback counts the
 * request in the metrics and frees its state - the only place it is freed.
 */
#include <microhttpd.h>

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "gw.h"

#define HTTP_POOL (16 * 1024) /* bytes of MHD memory per connection */

enum { PHASE_NEW, PHASE_BODY, PHASE_RUN, PHASE_ANSWERED };

double gw_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *gw_req_header(struct gw_req *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *gw_req_query(struct gw_req *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

int gw_query_timeout(struct gw_req *req, double dflt, double *out) {
  const char *why = NULL;

  if (gw_query_timeout_parse(gw_req_query(req, "timeout"), dflt,
                             gw_srv->cfg.max_wait, out, &why) != 0) {
    gw_reply_error(req, 400, "invalid_query", "%s", why);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ answers */

/* The CORS headers, when the request's Origin is one we were told. */
static void http_cors(struct gw_req *req, struct MHD_Response *resp) {
  const struct gw_config *cfg = &gw_srv->cfg;
  const char *origin;

  if (cfg->n_origins == 0)
    return;
  origin = gw_req_header(req, "Origin");
  if (origin == NULL)
    return;
  for (size_t i = 0; i < cfg->n_origins; i++) {
    if (strcmp(cfg->origins[i], "*") == 0 ||
        strcmp(cfg->origins[i], origin) == 0) {
      MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
      MHD_add_response_header(resp, "Vary", "Origin");
      MHD_add_response_header(resp, "Access-Control-Expose-Headers", "ETag");
      if (req->method == GW_OPTIONS) {
        char methods[128];
        gw_methods_str(req->allow, methods, sizeof(methods));
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", methods);
        MHD_add_response_header(
            resp, "Access-Control-Allow-Headers",
            "Authorization, Content-Type, If-Match, If-None-Match");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
      }
      return;
    }
  }
}

int gw_reply(struct gw_req *req, unsigned status, char *body, size_t len,
             const char *ctype, uint64_t version) {
  struct MHD_Response *resp;
  char etag[32];

  resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    free(body);
    return MHD_NO;
  }
  if (len > 0 || ctype != NULL)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            ctype ? ctype : "application/json");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (version != 0) {
    char *e = etag + sizeof(etag); /* "<version>", printed backwards */
    *--e = '\0';
    *--e = '"';
    do
      *--e = (char)('0' + version % 10);
    while ((version /= 10) != 0);
    *--e = '"';
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, e);
  }
  if (req->allow != 0 && (status == 405 || req->method == GW_OPTIONS)) {
    char methods[128];
    gw_methods_str(req->allow, methods, sizeof(methods));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, methods);
  }
  if (status == 401)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                            "Bearer realm=\"atrium\"");
  return gw_reply_response(req, status, resp);
}

int gw_reply_buf(struct gw_req *req, unsigned status, gw_buf *b,
                 uint64_t version) {
  char *body;
  size_t len;

  if (b->failed) {
    gw_buf_fini(b);
    body = strdup("{\"error\":{\"code\":\"out_of_memory\","
                  "\"message\":\"out of memory\"}}");
    if (body == NULL)
      return MHD_NO;
    return gw_reply(req, 500, body, strlen(body), NULL, 0);
  }
  body = gw_buf_take(b, &len);
  return gw_reply(req, status, body, len, NULL, version);
}

int gw_reply_empty(struct gw_req *req) {
  return gw_reply(req, 204, NULL, 0, NULL, 0);
}

int gw_reply_static(struct gw_req *req, unsigned status, const void *body,
                    size_t len, const char *ctype, const char *const *hdrs) {
  struct MHD_Response *resp;

  /* PERSISTENT: MHD neither copies nor frees the bytes (it never writes
   * them either; the cast only fits its signature). */
  resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
                                         MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  if (ctype != NULL)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL && hdrs[i + 1] != NULL;
       i += 2)
    MHD_add_response_header(resp, hdrs[i], hdrs[i + 1]);
  return gw_reply_response(req, status, resp);
}

int gw_reply_response(struct gw_req *req, unsigned status,
                      struct MHD_Response *resp) {
  enum MHD_Result rv;

  http_cors(req, resp);
  rv = MHD_queue_response(req->conn, status, resp);
  MHD_destroy_response(resp);
  req->status = status;
  req->phase = PHASE_ANSWERED;
  return rv;
}

int gw_client_gone(struct gw_req *req) {
  const union MHD_ConnectionInfo *info;
  char c;
  ssize_t n;

  info = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (info == NULL)
    return 0;
  n = recv(info->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0)
    return 1;
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    return 1;
  return 0;
}

/* ---------------------------------------------------------------- callbacks */

static unsigned http_method(const char *m) {
  static const struct {
    const char *name;
    unsigned bit;
  } methods[] = {{"GET", GW_GET},        {"PUT", GW_PUT},
                 {"POST", GW_POST},      {"PATCH", GW_PATCH},
                 {"DELETE", GW_DELETE},  {"HEAD", GW_HEAD},
                 {"OPTIONS", GW_OPTIONS}};

  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
    if (strcmp(m, methods[i].name) == 0)
      return methods[i].bit;
  return GW_OTHER;
}

/* Gets the raw request target, before MHD unescapes it; its result is the
 * request's state from then on. */
static void *http_on_uri(void *cls, const char *uri,
                         struct MHD_Connection *conn) {
  struct gw_req *req;

  (void)cls;
  req = calloc(1, sizeof(*req));
  if (req == NULL)
    return NULL;
  req->uri = strdup(uri);
  if (req->uri == NULL) {
    free(req);
    return NULL;
  }
  req->conn = conn;
  req->t_start = gw_now();
  return req;
}

static void http_on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  struct gw_req *req = *con_cls;

  (void)cls;
  (void)conn;
  (void)toe;
  if (req == NULL)
    return;
  *con_cls = NULL;
  gw_wait_forget(req);
  gw_events_forget(req);
  gw_metrics_count(req->route, req->status, gw_now() - req->t_start);
  gw_json_free(req->doc);
  free(req->body);
  free(req->uri);
  free(req);
}

static int http_body_add(struct gw_req *req, const char *data, size_t n) {
  size_t cap;
  char *p;

  if (req->body_too_big)
    return 0;
  if (n > gw_srv->cfg.max_body - req->body_len) {
    req->body_too_big = 1;
    return 0;
  }
  if (req->body_len + n + 1 > req->body_cap) {
    cap = req->body_cap ? req->body_cap : 1024;
    while (cap < req->body_len + n + 1)
      cap *= 2;
    p = realloc(req->body, cap);
    if (p == NULL)
      return -1;
    req->body = p;
    req->body_cap = cap;
  }
  memcpy(req->body + req->body_len, data, n);
  req->body_len += n;
  req->body[req->body_len] = '\0'; /* so strtod stops at the end */
  return 0;
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn,
                                       const char *url, const char *method,
                                       const char *version,
                                       const char *upload_data,
                                       size_t *upload_data_size,
                                       void **con_cls) {
  struct gw_req *req = *con_cls;
  size_t path_len;

  (void)cls;
  (void)url;
  (void)version;
  if (req == NULL)
    return MHD_NO; /* out of memory in http_on_uri */
  req->conn = conn;
  switch (req->phase) {
  case PHASE_NEW:
    req->method = http_method(method);
    path_len = strcspn(req->uri, "?");
    if (gw_route_find(req, req->uri, path_len) != 0)
      return req->phase == PHASE_ANSWERED ? MHD_YES : MHD_NO;
    if (gw_route_precheck(req) != 0)
      return req->phase == PHASE_ANSWERED ? MHD_YES : MHD_NO;
    req->phase = PHASE_BODY;
    return MHD_YES;
  case PHASE_BODY:
    if (*upload_data_size != 0) {
      if (http_body_add(req, upload_data, *upload_data_size) != 0)
        return MHD_NO;
      *upload_data_size = 0;
      return MHD_YES;
    }
    req->phase = PHASE_RUN;
    /* fall through */
  case PHASE_RUN:
    return (enum MHD_Result)gw_route_run(req);
  default:
    /* Answered early: drop the rest of the body. */
    *upload_data_size = 0;
    return MHD_YES;
  }
}

/* Set at shutdown: new connections are accepted and closed at once. Not
 * MHD_quiesce_daemon: with epoll worker threads it races a worker that
 * removes the listen socket as well, and one of them aborts the process
 * (an open libmicrohttpd defect). */
static _Atomic int http_refusing;

static enum MHD_Result http_on_accept(void *cls, const struct sockaddr *addr,
                                      socklen_t len) {
  (void)cls;
  (void)addr;
  (void)len;
  return atomic_load_explicit(&http_refusing, memory_order_relaxed) ? MHD_NO
                                                                    : MHD_YES;
}

/* libmicrohttpd's messages, on stderr with our prefix; but for those
 * that say a client went away while we sent (an event stream closed by
 * its reader, say): that is the normal end of a connection. */
__attribute__((format(printf, 2, 0))) static void
http_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  if (strncmp(fmt, "Failed to send", 14) == 0)
    return;
  fputs("atriumd: http: ", stderr);
  vfprintf(stderr, fmt, ap);
}

int gw_http_start(int listen_fd) {
  const struct gw_config *cfg = &gw_srv->cfg;
  unsigned idle = (unsigned)cfg->max_wait + 60;

  gw_srv->daemon = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
          MHD_USE_ERROR_LOG,
      0, http_on_accept, NULL, http_on_request, NULL,
      /* first, or MHD's own logger prints what comes before it */
      MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL, MHD_OPTION_LISTEN_SOCKET,
      listen_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_conns,
      /* MHD clears a connection's pool after every request: a smaller
       * one costs less (headers fit; bodies come in chunks). */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_POOL,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0u, MHD_OPTION_CONNECTION_TIMEOUT,
      idle, MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, NULL,
      MHD_OPTION_NOTIFY_COMPLETED, http_on_done, NULL, MHD_OPTION_END);
  return gw_srv->daemon ? 0 : -1;
}

void gw_http_refuse(void) {
  atomic_store(&http_refusing, 1);
}

void gw_http_stop(void) {
  if (gw_srv->daemon)
    MHD_stop_daemon(gw_srv->daemon);
  gw_srv->daemon = NULL;
}

void gw_http_suspend(struct gw_req *req) {
  MHD_suspend_connection(req->conn);
}

void gw_http_resume(struct gw_req *req) {
  MHD_resume_connection(req->conn);
}
