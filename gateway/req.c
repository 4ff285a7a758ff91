/*
 * req.c - requests and answers (req.h): libmicrohttpd's accessors, the
 * body as it comes, every answer (with its CORS headers), the connection
 * calls of the layers above.
 */
#include <microhttpd.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "req.h"

double gw_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void gw_drain_wait(pthread_cond_t *cond, pthread_mutex_t *mu,
                   const size_t *count, double grace) {
  struct timespec until;

  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)grace;
  until.tv_nsec += (long)((grace - (double)(time_t)grace) * 1e9);
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  while (*count > 0 && grace > 0)
    if (pthread_cond_timedwait(cond, mu, &until) != 0)
      break;
}

/* ----------------------------------------------------------------- methods */

static const struct {
  unsigned bit;
  const char *name;
} req_methods[] = {{GW_GET, "GET"},        {GW_HEAD, "HEAD"},
                   {GW_PUT, "PUT"},        {GW_POST, "POST"},
                   {GW_PATCH, "PATCH"},    {GW_DELETE, "DELETE"},
                   {GW_OPTIONS, "OPTIONS"}};
#define REQ_N_METHODS (sizeof(req_methods) / sizeof(req_methods[0]))

unsigned gw_method_of(const char *name) {
  for (size_t i = 0; i < REQ_N_METHODS; i++)
    if (strcmp(name, req_methods[i].name) == 0)
      return req_methods[i].bit;
  return GW_OTHER;
}

void gw_methods_str(unsigned methods, char *out, size_t cap) {
  size_t len = 0;

  out[0] = '\0';
  for (size_t i = 0; i < REQ_N_METHODS; i++) {
    int n;
    if (!(methods & req_methods[i].bit))
      continue;
    n = snprintf(out + len, cap - len, "%s%s", len ? ", " : "",
                 req_methods[i].name);
    if (n < 0 || (size_t)n >= cap - len)
      return;
    len += (size_t)n;
  }
}

/* ---------------------------------------------------------------- requests */

const char *gw_req_header(struct gw_req *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *gw_req_query(struct gw_req *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* One pass over the headers: their size, and the Content-Length ones
 * (the largest kept, UINT64_MAX for one too large to read; differing
 * ones noted). */
static enum MHD_Result req_head_one(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value) {
  struct gw_req_heads *h = cls;
  uint64_t n = 0;
  const char *p = value ? value : "";

  (void)kind;
  h->bytes += strlen(key) + strlen(p) + 4; /* ": " and CRLF */
  if (strcasecmp(key, "Content-Length") != 0)
    return MHD_YES;
  if (h->clen_first == NULL)
    h->clen_first = p;
  else if (strcmp(h->clen_first, p) != 0)
    h->clen_differ = 1;
  while (*p == ' ' || *p == '\t')
    p++;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (n > (UINT64_MAX - 9) / 10) {
      n = UINT64_MAX;
      break;
    }
    n = n * 10 + (uint64_t)(*p - '0');
  }
  if (n > h->clen)
    h->clen = n;
  return MHD_YES;
}

void gw_req_heads(struct gw_req *req, struct gw_req_heads *h) {
  memset(h, 0, sizeof(*h));
  MHD_get_connection_values(req->conn, MHD_HEADER_KIND, req_head_one, h);
}

int gw_req_body_add(struct gw_req *req, const char *data, size_t n) {
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

int gw_req_drop(struct gw_req *req) {
  req->close = 1;
  return GW_DONE;
}

void gw_req_suspend(struct gw_req *req) {
  MHD_suspend_connection(req->conn);
}

static void (*req_resumed)(struct MHD_Daemon *daemon);

void gw_req_on_resume(void (*fn)(struct MHD_Daemon *daemon)) {
  req_resumed = fn;
}

void gw_conn_resume(struct MHD_Connection *conn) {
  /* The daemon is read first: once resumed, the connection may be run,
   * answered and freed by its loop before this call returns. */
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
  struct MHD_Daemon *daemon = info != NULL ? info->daemon : NULL;

  MHD_resume_connection(conn);
  if (req_resumed != NULL && daemon != NULL)
    req_resumed(daemon);
}

void gw_req_resume(struct gw_req *req) {
  gw_conn_resume(req->conn);
}

int gw_req_socket(struct gw_req *req) {
  const union MHD_ConnectionInfo *info;

  info = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  return info != NULL ? info->connect_fd : -1;
}

int gw_client_gone(struct gw_req *req) {
  int fd = gw_req_socket(req);
  char c;
  ssize_t n;

  if (fd < 0)
    return 0;
  n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0)
    return 1;
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    return 1;
  return 0;
}

int gw_req_lock_patient(struct gw_req *req) {
  struct gw_waiter *w = &req->wait;
  double now;

  if (req->changed || w->wake == GW_WAKE_SHUTDOWN || w->lock_deadline < 0 ||
      gw_srv->cfg.busy_wait <= 0)
    return 0;
  now = gw_now();
  if (w->lock_deadline == 0)
    w->lock_deadline = now + gw_srv->cfg.busy_wait;
  return now < w->lock_deadline;
}

/* ------------------------------------------------------------------ answers */

int gw_cors_allowed(const char *origin) {
  const struct gw_config *cfg = &gw_srv->cfg;

  for (size_t i = 0; origin != NULL && i < cfg->n_origins; i++)
    if (strcmp(cfg->origins[i], "*") == 0 ||
        strcmp(cfg->origins[i], origin) == 0)
      return 1;
  return 0;
}

/* The CORS headers, when the request's Origin is one we were told. */
static void req_cors(struct gw_req *req, struct MHD_Response *resp) {
  const char *origin;

  if (gw_srv->cfg.n_origins == 0)
    return;
  origin = gw_req_header(req, "Origin");
  if (!gw_cors_allowed(origin))
    return;
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
}

int gw_reply(struct gw_req *req, unsigned status, char *body, size_t len,
             const char *ctype, uint64_t version) {
  struct MHD_Response *resp;
  char etag[32];

  resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    free(body);
    return gw_req_drop(req);
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
  if (status == 503 && req->retry_after > 0) {
    char secs[16];
    snprintf(secs, sizeof(secs), "%d", req->retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
  }
  return gw_reply_response(req, status, resp);
}

int gw_reply_buf(struct gw_req *req, unsigned status, gw_buf *b,
                 uint64_t version) {
  static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\","
                            "\"message\":\"out of memory\"}}";
  char *body;
  size_t len;

  if (b->failed) {
    gw_buf_fini(b);
    return gw_reply_static(
        req, 500, oom, sizeof(oom) - 1, "application/json",
        (const char *const[]){"Cache-Control", "no-store", NULL});
  }
  body = gw_buf_take(b, &len);
  return gw_reply(req, status, body, len, NULL, version);
}

int gw_reply_empty(struct gw_req *req) {
  return gw_reply(req, 204, NULL, 0, NULL, 0);
}

int gw_reply_error(struct gw_req *req, unsigned status, const char *code,
                   const char *fmt, ...) {
  char msg[512];
  gw_buf b;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"error\":{\"code\":");
  gw_json_put_string(&b, code, strlen(code));
  gw_buf_str(&b, ",\"message\":");
  gw_json_put_string(&b, msg, strlen(msg));
  gw_buf_str(&b, "}}");
  return gw_reply_buf(req, status, &b, 0);
}

int gw_reply_static(struct gw_req *req, unsigned status, const void *body,
                    size_t len, const char *ctype, const char *const *hdrs) {
  struct MHD_Response *resp;

  /* PERSISTENT: MHD neither copies nor frees the bytes (it never writes
   * them either; the cast only fits its signature). */
  resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
                                         MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return gw_req_drop(req);
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

  req_cors(req, resp);
  rv = MHD_queue_response(req->conn, status, resp);
  MHD_destroy_response(resp);
  req->status = status;
  req->answered = 1;
  if (rv != MHD_YES)
    req->close = 1;
  return GW_DONE;
}
