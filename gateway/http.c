/*
 * http.c - the libmicrohttpd daemon (http.h): its callbacks carry a
 * request through the route table.
 *
 * A request's life: MHD gives us its raw request target first (the URI
 * log callback, before MHD unescapes it): that callback allocates the
 * per-request state, which MHD hands back on every later call. The first
 * access-handler call routes and runs the checks that need no body; the
 * next calls bring the body in chunks (capped); the last one runs the
 * handler. A handler that waits suspends the connection (park.c); when it
 * is resumed the handler runs again. The completion callback counts the
 * request in the metrics and frees its state - the only place it is freed.
 */
#include <microhttpd.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "lease.h"
#include "park.h"
#include "routes.h"
#include "sse.h"

#define HTTP_POOL (16 * 1024) /* bytes of MHD memory per connection */

enum { PHASE_NEW, PHASE_BODY, PHASE_RUN };

/* ---------------------------------------------------------------- callbacks */

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
  if (req == NULL)
    return;
  *con_cls = NULL;
  gw_park_forget(req);
  /* What the answer handed out (a lease, a permit, a place) goes back
   * if the answer did not reach its client. */
  if (req->grant.kind != GW_GRANT_NONE &&
      toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
    gw_grant_undo(req);
  gw_sse_forget(req);
  gw_metrics_count(req->route, req->status, gw_now() - req->t_start);
  gw_json_free(req->doc);
  free(req->body);
  free(req->uri);
  free(req);
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn,
                                       const char *url, const char *method,
                                       const char *version,
                                       const char *upload_data,
                                       size_t *upload_data_size,
                                       void **con_cls) {
  struct gw_req *req = *con_cls;

  (void)cls;
  (void)url;
  (void)version;
  if (req == NULL)
    return MHD_NO; /* out of memory in http_on_uri */
  /* No MHD thread ever waits for a store lock: one held by a stopped
   * process answers ATR_ELOCKED at once, and the request is parked (a
   * thread-local store; MHD gives no hook when it starts its threads). */
  atr_set_lock_patience(0);
  req->conn = conn;
  if (req->answered) {
    /* Answered early: drop the rest of the body. */
    *upload_data_size = 0;
    return req->close ? MHD_NO : MHD_YES;
  }
  switch (req->phase) {
  case PHASE_NEW:
    req->method = gw_method_of(method);
    if (gw_route_find(req, req->uri, strcspn(req->uri, "?")) == GW_NEXT &&
        gw_route_precheck(req) == GW_NEXT)
      req->phase = PHASE_BODY;
    break;
  case PHASE_BODY:
    if (*upload_data_size != 0) {
      if (gw_req_body_add(req, upload_data, *upload_data_size) != 0)
        return MHD_NO;
      *upload_data_size = 0;
      return MHD_YES;
    }
    req->phase = PHASE_RUN;
    /* fall through */
  default:
    /* Resumed for a client that left (or that left meanwhile): nothing
     * runs, so a pop takes nothing and a put adds nothing. */
    if (req->runs > 0 && req->wait.wake != GW_WAKE_NONE &&
        (req->wait.wake == GW_WAKE_GONE || gw_client_gone(req)))
      return MHD_NO;
    gw_route_run(req);
    if (req->lock_wait && !req->answered) {
      req->lock_wait = 0;
      /* The run changed nothing (gw_reply_core): the next one is this
       * one again, with the same req->runs. */
      req->run_again = 1;
      gw_park_locked(req); /* runs again when the lock may be free */
    }
    break;
  }
  return req->close ? MHD_NO : MHD_YES;
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
 * its reader, say): that is the normal end of a connection. It writes
 * one per malformed request, so a client could flood the log: at most
 * HTTP_LOG_BURST lines per HTTP_LOG_WINDOW seconds, and then one line
 * that counts the ones left out. */
#define HTTP_LOG_BURST 10
#define HTTP_LOG_WINDOW 10.0

static struct {
  pthread_mutex_t mu;
  double window_start;
  unsigned lines, dropped;
} http_log_rate = {.mu = PTHREAD_MUTEX_INITIALIZER};

__attribute__((format(printf, 2, 0))) static void
http_log(void *cls, const char *fmt, va_list ap) {
  double now = gw_now();
  unsigned dropped = 0;
  int print;

  (void)cls;
  if (strncmp(fmt, "Failed to send", 14) == 0)
    return;
  pthread_mutex_lock(&http_log_rate.mu);
  if (now - http_log_rate.window_start >= HTTP_LOG_WINDOW) {
    dropped = http_log_rate.dropped;
    http_log_rate.window_start = now;
    http_log_rate.lines = 0;
    http_log_rate.dropped = 0;
  }
  print = http_log_rate.lines < HTTP_LOG_BURST;
  if (print)
    http_log_rate.lines++;
  else
    http_log_rate.dropped++;
  pthread_mutex_unlock(&http_log_rate.mu);
  if (dropped > 0)
    fprintf(stderr, "atriumd: http: %u more messages left out\n", dropped);
  if (!print)
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
