/*
 * pub.c - the nng publisher (pub.h). Subscribers are counted with
 * nng_pipe_notify: the first one kicks the follower, and with none the
 * events are not even formatted.
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pub.h"

#define PUB_SENDBUF 1024 /* nng messages queued per subscriber */

static struct {
  nng_socket sock;
  int open;
  char *url;                /* what the publisher listens on   */
  const char *busy_default; /* the default address was in use  */
  int pipes;                /* subscribers connected (atomic)  */
} N;

/* Counts the subscribers; the first one wakes the follower. (nng runs
 * REM_POST only for a pipe it ran ADD_PRE for.) */
static void pub_pipe_cb(nng_pipe p, nng_pipe_ev what, void *arg) {
  (void)p;
  (void)arg;
  if (what == NNG_PIPE_EV_ADD_PRE) {
    if (__atomic_fetch_add(&N.pipes, 1, __ATOMIC_SEQ_CST) == 0)
      gw_follow_kick(0);
  } else if (what == NNG_PIPE_EV_REM_POST) {
    __atomic_fetch_sub(&N.pipes, 1, __ATOMIC_SEQ_CST);
  }
}

/* url with its port replaced by port (the host in brackets if it is an
 * IPv6 address), into out. */
static void pub_url_port(char *out, size_t cap, const nng_url *u, int port) {
  int v6 = strchr(u->u_hostname, ':') != NULL;

  snprintf(out, cap, "%s://%s%s%s:%d%s", u->u_scheme, v6 ? "[" : "",
           u->u_hostname, v6 ? "]" : "", port, u->u_path);
}

/* Listens on url; with fallback a busy address is tried again on port 0.
 * 0 or an nng error. */
static int pub_listen(const char *url, int fallback) {
  nng_listener l;
  nng_url *u = NULL;
  char buf[512];
  int rv, port;

  if ((rv = nng_listener_create(&l, N.sock, url)) != 0)
    return rv;
  rv = nng_listener_start(l, 0);
  if (rv == NNG_EADDRINUSE && fallback) {
    nng_listener_close(l);
    if (nng_url_parse(&u, url) != 0)
      return rv;
    pub_url_port(buf, sizeof(buf), u, 0);
    N.busy_default = url; /* said after the ready line */
    nng_url_free(u);
    u = NULL;
    if ((rv = nng_listener_create(&l, N.sock, buf)) != 0)
      return rv;
    rv = nng_listener_start(l, 0);
    url = buf;
  }
  if (rv != 0)
    return rv;
  /* A TCP port 0 was given one: name the real one. */
  if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0 &&
      nng_url_parse(&u, url) == 0) {
    char real[512];
    pub_url_port(real, sizeof(real), u, port);
    nng_url_free(u);
    N.url = strdup(real);
  } else {
    N.url = strdup(url);
  }
  return N.url ? 0 : NNG_ENOMEM;
}

int gw_pub_open(void) {
  const struct gw_config *cfg = &gw_srv->cfg;
  int rv;

  if ((rv = nng_pub0_open(&N.sock)) != 0) {
    fprintf(stderr, "atriumd: cannot open the events socket: %s\n",
            nng_strerror(rv));
    return -1;
  }
  N.open = 1;
  nng_socket_set_int(N.sock, NNG_OPT_SENDBUF, PUB_SENDBUF);
  if ((rv = nng_pipe_notify(N.sock, NNG_PIPE_EV_ADD_PRE, pub_pipe_cb, NULL)) !=
          0 ||
      (rv = nng_pipe_notify(N.sock, NNG_PIPE_EV_REM_POST, pub_pipe_cb, NULL)) !=
          0) {
    fprintf(stderr, "atriumd: cannot watch the events socket: %s\n",
            nng_strerror(rv));
    return -1;
  }
  if ((rv = pub_listen(cfg->events_url, !cfg->events_given)) != 0) {
    fprintf(stderr, "atriumd: cannot listen for events on %s: %s\n",
            cfg->events_url, nng_strerror(rv));
    return -1;
  }
  return 0;
}

const char *gw_pub_url(void) {
  return N.url ? N.url : gw_srv->cfg.events_url;
}

void gw_pub_warn(void) {
  if (N.busy_default != NULL)
    fprintf(stderr,
            "atriumd: warning: %s was in use; events on %s instead (set "
            "--events to choose)\n",
            N.busy_default, gw_pub_url());
}

int gw_pub_interest(void) {
  return __atomic_load_n(&N.pipes, __ATOMIC_RELAXED) > 0;
}

void gw_pub_send(const char *msg, size_t len) {
  if (N.open && gw_pub_interest())
    nng_send(N.sock, (void *)(uintptr_t)msg, len,
             NNG_FLAG_NONBLOCK); /* drops if full */
}

void gw_pub_close(void) {
  if (N.open)
    nng_close(N.sock);
  N.open = 0;
  free(N.url);
  N.url = NULL;
  nng_fini();
}
