/*
 * http.c - the libmicrohttpd daemons and the loops that drive them
 * (http.h): their callbacks carry a request through the route table.
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

#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
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

/* Set at shutdown: new connections are accepted and closed at once, so
 * that a client is refused rather than left in the listen backlog. */
static _Atomic int http_refusing;

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

/* ------------------------------------------------------------ the loops */

/*
 * Why many daemons and loops of our own, rather than MHD's thread pool:
 * libmicrohttpd 0.9.75 resumes a connection by walking its daemon's whole
 * list of suspended connections (resume_suspended_connections: every
 * MHD_resume_connection sets a flag, and the daemon's next turn walks the
 * list from its tail looking for the flagged ones). Every parked request
 * and every idle SSE stream is such a connection, so with a pool of two
 * workers a wake among 10,000 parked requests walked 5,000 of them, one
 * cache and TLB miss each: 134 us on a quiet machine, where the whole
 * wake took 174 us without them. So the connections are spread over many
 * daemons in MHD's external mode (HTTP_CONNS_PER_DAEMON each at the
 * connection limit), and each of --threads loops drives its share of them
 * from one epoll set over their epoll descriptors: a resume walks only
 * its own daemon's few, and an idle daemon costs nothing. The loops also
 * accept: a new connection goes to one of the accepting loop's daemons.
 */
#define HTTP_CONNS_PER_DAEMON 128 /* connections per daemon at the limit */
#define HTTP_FILL 128 /* a new connection's daemon: the next with fewer */
#define HTTP_DAEMONS_MAX 4096 /* (a bound on descriptors)           */
#define HTTP_SWEEP 1.0    /* seconds between runs of every daemon: timeouts */
#define HTTP_EVENTS 64    /* epoll events per wait                          */
#define HTTP_TAG_STOP 0   /* epoll tags: the stop eventfd */
#define HTTP_TAG_LISTEN 1 /* the listen socket */
#define HTTP_TAG_WAKE 2   /* the loop's wake eventfd */
#define HTTP_TAG_DAEMON 3 /* daemon i's epoll set: HTTP_TAG_DAEMON + i */

struct http_loop {
  pthread_t thread;
  int running;
  int ep;          /* epoll: stop, listen, its daemons' epoll sets */
  size_t first, n; /* its daemons: H.d[first, first + n) */
  size_t next;     /* where the search for a new connection's daemon starts */
  size_t *pending; /* daemons to run again at once (n of room) */
  size_t n_pending;
  double next_sweep; /* when every daemon runs (timeouts) */
  /* Resumes from other threads: the daemons to run (n of room, each
   * once), and an eventfd written when the list stops being empty. */
  pthread_mutex_t mu;
  size_t *woken, n_woken;
  int wake_fd;
};

struct http_daemon_at {
  const struct MHD_Daemon *d;
  size_t i;
};

static struct {
  struct MHD_Daemon **d;
  unsigned *conns_of;             /* per daemon: its connections (its loop's) */
  unsigned char *is_pending;      /* per daemon: in its loop's pending list */
  unsigned char *is_woken;        /* per daemon: in its loop's woken list */
  struct http_daemon_at *by_addr; /* every daemon, by address */
  size_t n_d;
  struct http_loop *loops;
  size_t n_loops;
  int listen_fd;
  int stop_fd;            /* an eventfd, readable once stopping */
  _Atomic unsigned conns; /* open connections, every daemon's */
  /* At the connection limit no loop watches the listen socket: new
   * clients wait in its backlog until a connection closes (as MHD's own
   * limit does), rather than being refused. */
  pthread_mutex_t listen_mu;
  int listen_paused;
} H = {.listen_fd = -1, .stop_fd = -1, .listen_mu = PTHREAD_MUTEX_INITIALIZER};

/* Watches the listen socket in every loop (events EPOLLIN), or in none
 * (0). H.listen_mu held. */
static void http_listen_watch(uint32_t events) {
  for (size_t k = 0; k < H.n_loops; k++) {
    struct epoll_event ev = {.events = events, .data.u64 = HTTP_TAG_LISTEN};
    if (H.loops[k].n > 0)
      epoll_ctl(H.loops[k].ep, EPOLL_CTL_MOD, H.listen_fd, &ev);
  }
  H.listen_paused = events == 0;
}

/* cls: the daemon's count in H.conns_of (only its loop runs it, and
 * after the loops stop, gw_http_stop). */
static void http_on_connection(void *cls, struct MHD_Connection *conn,
                               void **socket_context,
                               enum MHD_ConnectionNotificationCode toe) {
  unsigned *conns_of = cls;

  (void)conn;
  (void)socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    (*conns_of)++;
    atomic_fetch_add(&H.conns, 1);
    return;
  }
  (*conns_of)--;
  if (atomic_fetch_sub(&H.conns, 1) <= gw_srv->cfg.max_conns) {
    pthread_mutex_lock(&H.listen_mu);
    if (H.listen_paused && atomic_load(&H.conns) < gw_srv->cfg.max_conns)
      http_listen_watch(EPOLLIN);
    pthread_mutex_unlock(&H.listen_mu);
  }
}

/* Runs daemon i once; notes it pending when MHD says it has work left
 * that no descriptor will announce (data it read but did not handle). */
static void http_run(struct http_loop *l, size_t i) {
  MHD_UNSIGNED_LONG_LONG ms;

  MHD_run(H.d[i]);
  if (MHD_get_timeout(H.d[i], &ms) != MHD_YES)
    return;
  if (ms == 0 && !H.is_pending[i]) {
    H.is_pending[i] = 1;
    l->pending[l->n_pending++] = i;
  } else if (ms > 0 && gw_now() + (double)ms / 1000 < l->next_sweep) {
    /* MHD wants a turn sooner than the sweep: the sweep comes sooner. */
    l->next_sweep = gw_now() + (double)ms / 1000;
  }
}

/* Takes one new connection (one per turn: both loops wait on the listen
 * socket, so connections alternate between them) and gives it to the
 * next of this loop's daemons. */
static void http_accept(struct http_loop *l) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof(addr);
  size_t i;
  int fd;

  if (atomic_load(&H.conns) >= gw_srv->cfg.max_conns) {
    pthread_mutex_lock(&H.listen_mu);
    if (atomic_load(&H.conns) >= gw_srv->cfg.max_conns)
      http_listen_watch(0);
    pthread_mutex_unlock(&H.listen_mu);
    return;
  }
  fd = accept4(H.listen_fd, (struct sockaddr *)&addr, &len,
               SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return; /* another loop took it, or the client left */
  if (atomic_load_explicit(&http_refusing, memory_order_relaxed)) {
    close(fd);
    return;
  }
  /* The next daemon with fewer than HTTP_FILL connections (the one after
   * the cursor if all have that many): daemons fill one after another,
   * so busy connections share a daemon and its turns (one epoll_wait of
   * MHD's serves them all; spread one or a few per daemon, each request
   * cost a system call more), and a resume walks at most 128. */
  for (size_t k = 0; k < l->n; k++) {
    if (H.conns_of[l->first + l->next] < HTTP_FILL)
      break;
    l->next = (l->next + 1) % l->n;
  }
  i = l->first + l->next;
  if (H.conns_of[i] >= HTTP_FILL)
    l->next = (l->next + 1) % l->n;
  /* MHD owns (and closes) the socket from here, refused or not. */
  if (MHD_add_connection(H.d[i], fd, (struct sockaddr *)&addr, len) == MHD_YES)
    http_run(l, i); /* it may have its request already */
}

static int http_daemon_cmp(const void *a, const void *b) {
  const struct MHD_Daemon *x = ((const struct http_daemon_at *)a)->d;
  const struct MHD_Daemon *y = ((const struct http_daemon_at *)b)->d;

  return (x > y) - (x < y);
}

/* A connection of daemon was resumed (by the follower, a stream's
 * writer, any thread): the daemon's loop runs it next. */
static void http_resumed(struct MHD_Daemon *daemon) {
  struct http_daemon_at key, *at;
  struct http_loop *l;
  int first;

  key.d = daemon;
  at = bsearch(&key, H.by_addr, H.n_d, sizeof(*at), http_daemon_cmp);
  if (at == NULL)
    return;
  l = &H.loops[at->i / (H.n_d / H.n_loops)];
  pthread_mutex_lock(&l->mu);
  first = l->n_woken == 0;
  if (!H.is_woken[at->i]) {
    H.is_woken[at->i] = 1;
    l->woken[l->n_woken++] = at->i;
  }
  pthread_mutex_unlock(&l->mu);
  if (first) {
    uint64_t one = 1;
    if (write(l->wake_fd, &one, sizeof(one)) < 0)
      perror("atriumd: waking an HTTP loop");
  }
}

/* Runs the daemons http_resumed named. */
static void http_run_woken(struct http_loop *l) {
  uint64_t n;
  size_t todo[HTTP_EVENTS], k = 0;

  /* Cleared before the list is taken: a resume after this read either
   * finds its daemon in the list taken below or writes again. */
  if (read(l->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
    perror("atriumd: reading an HTTP loop's wake descriptor");
  for (;;) {
    pthread_mutex_lock(&l->mu);
    k = 0;
    while (l->n_woken > 0 && k < HTTP_EVENTS) {
      size_t i = l->woken[--l->n_woken];
      H.is_woken[i] = 0;
      todo[k++] = i;
    }
    pthread_mutex_unlock(&l->mu);
    if (k == 0)
      return;
    while (k > 0)
      http_run(l, todo[--k]);
  }
}

static void *http_loop_run(void *arg) {
  struct http_loop *l = arg;
  struct epoll_event ev[HTTP_EVENTS];

  for (;;) {
    double now = gw_now();
    int timeout = l->n_pending > 0 ? 0
                  : now >= l->next_sweep
                      ? 0
                      : (int)((l->next_sweep - now) * 1000) + 1;
    int n = epoll_wait(l->ep, ev, HTTP_EVENTS, timeout);

    for (int k = 0; k < n; k++) {
      uint64_t tag = ev[k].data.u64;
      if (tag == HTTP_TAG_STOP)
        return NULL;
      if (tag == HTTP_TAG_LISTEN)
        http_accept(l);
      else if (tag == HTTP_TAG_WAKE)
        http_run_woken(l);
      else
        http_run(l, (size_t)(tag - HTTP_TAG_DAEMON));
    }
    /* Work MHD left: run those daemons again before waiting. */
    for (size_t k = l->n_pending; k-- > 0;) {
      size_t i = l->pending[k];
      l->pending[k] = l->pending[--l->n_pending];
      H.is_pending[i] = 0;
      http_run(l, i);
    }
    /* Idle timeouts (--max-wait + 60 s): a second late at most. */
    now = gw_now();
    if (now >= l->next_sweep) {
      l->next_sweep = now + HTTP_SWEEP;
      for (size_t i = l->first; i < l->first + l->n; i++)
        http_run(l, i);
    }
  }
}

static int http_epoll_add(int ep, int fd, uint64_t tag) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};

  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* How many daemons: HTTP_CONNS_PER_DAEMON connections each at the limit,
 * as many per loop. */
static size_t http_daemons(unsigned threads, unsigned max_conns) {
  size_t n = (max_conns + HTTP_CONNS_PER_DAEMON - 1) / HTTP_CONNS_PER_DAEMON;

  if (n > HTTP_DAEMONS_MAX)
    n = HTTP_DAEMONS_MAX;
  if (n < threads)
    n = threads;
  return (n + threads - 1) / threads * threads;
}

static struct MHD_Daemon *http_daemon_new(unsigned *conns_of) {
  const struct gw_config *cfg = &gw_srv->cfg;
  unsigned idle = (unsigned)cfg->max_wait + 60;

  return MHD_start_daemon(
      MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME |
          MHD_USE_ERROR_LOG,
      0, NULL, NULL, http_on_request, NULL,
      /* first, or MHD's own logger prints what comes before it */
      MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,
      /* (the total is held by http_accept) */
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_conns,
      /* MHD clears a connection's pool after every request: a smaller
       * one costs less (headers fit; bodies come in chunks). */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_POOL,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0u, MHD_OPTION_CONNECTION_TIMEOUT,
      idle, MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, NULL,
      MHD_OPTION_NOTIFY_COMPLETED, http_on_done, NULL,
      MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, conns_of,
      MHD_OPTION_END);
}

int gw_http_start(int listen_fd) {
  unsigned threads = gw_srv->cfg.threads;
  size_t per_loop;

  H.listen_fd = listen_fd;
  H.n_d = http_daemons(threads, gw_srv->cfg.max_conns);
  H.n_loops = threads;
  per_loop = H.n_d / H.n_loops;
  H.d = calloc(H.n_d, sizeof(*H.d));
  H.conns_of = calloc(H.n_d, sizeof(*H.conns_of));
  H.is_pending = calloc(H.n_d, 1);
  H.is_woken = calloc(H.n_d, 1);
  H.by_addr = calloc(H.n_d, sizeof(*H.by_addr));
  H.loops = calloc(H.n_loops, sizeof(*H.loops));
  H.stop_fd = eventfd(0, EFD_CLOEXEC);
  if (H.d == NULL || H.conns_of == NULL || H.is_pending == NULL ||
      H.is_woken == NULL || H.by_addr == NULL || H.loops == NULL ||
      H.stop_fd < 0)
    return -1;
  for (size_t i = 0; i < H.n_d; i++) {
    const union MHD_DaemonInfo *info;
    struct http_loop *l = &H.loops[i / per_loop];
    if ((H.d[i] = http_daemon_new(&H.conns_of[i])) == NULL)
      return -1;
    if (l->n == 0) {
      pthread_mutex_init(&l->mu, NULL);
      l->ep = epoll_create1(EPOLL_CLOEXEC);
      l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      l->first = i;
      l->pending = calloc(per_loop, sizeof(*l->pending));
      l->woken = calloc(per_loop, sizeof(*l->woken));
      l->n = 1; /* (from here on stop frees what this made) */
      if (l->ep < 0 || l->wake_fd < 0 || l->pending == NULL ||
          l->woken == NULL ||
          http_epoll_add(l->ep, H.stop_fd, HTTP_TAG_STOP) != 0 ||
          http_epoll_add(l->ep, listen_fd, HTTP_TAG_LISTEN) != 0 ||
          http_epoll_add(l->ep, l->wake_fd, HTTP_TAG_WAKE) != 0)
        return -1;
    } else {
      l->n++;
    }
    info = MHD_get_daemon_info(H.d[i], MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL ||
        http_epoll_add(l->ep, info->epoll_fd, HTTP_TAG_DAEMON + i) != 0)
      return -1;
    H.by_addr[i].d = H.d[i];
    H.by_addr[i].i = i;
  }
  qsort(H.by_addr, H.n_d, sizeof(*H.by_addr), http_daemon_cmp);
  gw_req_on_resume(http_resumed);
  for (size_t k = 0; k < H.n_loops; k++) {
    H.loops[k].running = pthread_create(&H.loops[k].thread, NULL, http_loop_run,
                                        &H.loops[k]) == 0;
    if (!H.loops[k].running)
      return -1;
  }
  return 0;
}

void gw_http_refuse(void) {
  atomic_store(&http_refusing, 1);
}

void gw_http_stop(void) {
  uint64_t one = 1;

  if (H.stop_fd >= 0 && write(H.stop_fd, &one, sizeof(one)) < 0)
    perror("atriumd: stopping the HTTP loops");
  for (size_t k = 0; k < H.n_loops; k++)
    if (H.loops[k].running)
      pthread_join(H.loops[k].thread, NULL);
  /* Every loop has stopped: the daemons are ours to stop (this closes
   * their connections, whose completion callbacks run here). */
  for (size_t i = 0; i < H.n_d; i++)
    if (H.d[i] != NULL)
      MHD_stop_daemon(H.d[i]);
  for (size_t k = 0; k < H.n_loops; k++) {
    struct http_loop *l = &H.loops[k];
    if (l->n == 0)
      continue;
    if (l->ep >= 0)
      close(l->ep);
    if (l->wake_fd >= 0)
      close(l->wake_fd);
    free(l->pending);
    free(l->woken);
    pthread_mutex_destroy(&l->mu);
  }
  if (H.stop_fd >= 0)
    close(H.stop_fd);
  free(H.d);
  free(H.conns_of);
  free(H.is_pending);
  free(H.is_woken);
  free(H.by_addr);
  free(H.loops);
  H.d = NULL;
  H.conns_of = NULL;
  H.is_pending = H.is_woken = NULL;
  H.by_addr = NULL;
  H.loops = NULL;
  H.n_d = H.n_loops = 0;
  H.stop_fd = H.listen_fd = -1;
}
