/*
 * main.c - atriumd: configuration (flags and ATRIUM_* environment), start,
 * signals, orderly stop.
 */
#include <nng/nng.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "events.h"
#include "follow.h"
#include "http.h"
#include "lease.h"
#include "park.h"
#include "pub.h"
#include "routes.h"
#include "sse.h"

struct gw_server *gw_srv;

/* Who the change-feed follower hands events to, in this order. */
static const struct gw_follow_sub *const gw_subs[] = {
    &gw_lease_sub, &gw_park_sub, &gw_events_sub};

static const char gw_usage[] =
    "usage: atriumd [options]\n"
    "  --store PATH        store file (ATRIUM_STORE, default " ATR_DEFAULT_PATH
    ")\n"
    "  --store-size SIZE   size when creating it, e.g. 64M "
    "(ATRIUM_STORE_SIZE)\n"
    "  --max-objects N     object limit when creating it (ATRIUM_MAX_OBJECTS,\n"
    "                      default one per 4 KiB of the size)\n"
    "  --store-mode MODE   its file mode when creating it: 0600 (default),\n"
    "                      0660 to share it with the group "
    "(ATRIUM_STORE_MODE)\n"
    "  --listen HOST:PORT  HTTP address (ATRIUM_LISTEN, default "
    "127.0.0.1:7450)\n"
    "  --events URL        nng events URL (ATRIUM_EVENTS, default "
    "tcp://127.0.0.1:7451)\n"
    "  --token-file FILE   require Authorization: Bearer <its content>\n"
    "                      (ATRIUM_TOKEN_FILE)\n"
    "  --insecure          allow a non-loopback events URL "
    "(ATRIUM_INSECURE=1;\n"
    "                      booleans: 1/0 true/false yes/no on/off)\n"
    "  --max-wait SECONDS  cap of every timeout (ATRIUM_MAX_WAIT, default "
    "300)\n"
    "  --max-lease SECONDS cap of every lock and permit ttl "
    "(ATRIUM_MAX_LEASE,\n"
    "                      default 3600)\n"
    "  --max-body BYTES    request body limit (ATRIUM_MAX_BODY, default 1M)\n"
    "  --max-conns N       connection limit (ATRIUM_MAX_CONNS, default: what\n"
    "                      the open-file limit allows, at most 65536)\n"
    "  --threads N         HTTP worker threads (ATRIUM_THREADS, default: "
    "CPUs)\n"
    "  --max-depth N       JSON nesting limit (ATRIUM_MAX_DEPTH, default 64)\n"
    "  --allow-host LIST   Host names served without a token besides the\n"
    "                      listening address, localhost and loopback ones,\n"
    "                      comma separated, or * (ATRIUM_ALLOW_HOST)\n"
    "  --cors-origin LIST  origins allowed by CORS, comma separated, or *\n"
    "                      (ATRIUM_CORS_ORIGIN; default: CORS off)\n"
    "  --sse-heartbeat SECONDS  comment line on idle event streams\n"
    "                      (ATRIUM_SSE_HEARTBEAT, default 15)\n"
    "  --sse-buffer BYTES  queued per event stream before its events are\n"
    "                      dropped for a resync (ATRIUM_SSE_BUFFER, default "
    "1M)\n"
    "  --sse-memory BYTES  queued on all event streams together; past it the\n"
    "                      streams with the most queued are dropped for a\n"
    "                      resync (ATRIUM_SSE_MEMORY, default 32M)\n"
    "  --busy-wait SECONDS how long a request waits for an object whose lock\n"
    "                      a live process keeps (stopped, paused) before it\n"
    "                      answers 503 busy (ATRIUM_BUSY_WAIT, default 1)\n"
    "  --metrics-objects MODE  whose gauges /metrics gives: auto (default:\n"
    "                      every object's while the store holds at most\n"
    "                      --metrics-max, else those of --metrics-prefixes),\n"
    "                      all, or prefixes (ATRIUM_METRICS_OBJECTS)\n"
    "  --metrics-max N     auto's bound (ATRIUM_METRICS_MAX, default 10000)\n"
    "  --metrics-prefixes LIST  name prefixes, comma separated, whose\n"
    "                      objects' gauges a large store's /metrics gives\n"
    "                      (ATRIUM_METRICS_PREFIXES; default none)\n"
    "  --help              this text\n"
    "A non-loopback --listen needs --token-file.\n";

/* ------------------------------------------------------- the start walk */

/* What outlives the gateway is found by one walk of the store: leases
 * whose deadlines it must watch, dicts whose keys it names. At a million
 * objects the walk takes seconds (its first touch of every record), so
 * it runs beside the daemon, which serves from the start: a lease that
 * ran out meanwhile ends when the walk reaches it (or whoever looks). */
static struct {
  pthread_t thread;
  int running;
  atomic_int stop;
} gw_walk;

static int gw_walk_one(const atr_info *info, void *arg) {
  (void)arg;
  if (atomic_load_explicit(&gw_walk.stop, memory_order_relaxed))
    return 1;
  gw_lease_seen(gw_srv->store, info);
  gw_events_seen(info);
  return 0;
}

static void *gw_walk_run(void *arg) {
  (void)arg;
  atr_set_lock_patience(0); /* (it reads lock-free; never waits) */
  atr_list(gw_srv->store, gw_walk_one, NULL);
  return NULL;
}

static void gw_walk_stop(void) {
  if (!gw_walk.running)
    return;
  atomic_store(&gw_walk.stop, 1);
  pthread_join(gw_walk.thread, NULL);
  gw_walk.running = 0;
}

/* ------------------------------------------------------------ parsing */

static int parse_size(const char *s, size_t *out) {
  char *end;
  unsigned long long v;
  unsigned shift = 0;

  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0)
    return -1;
  switch (*end) {
  case 'k':
  case 'K':
    shift = 10;
    end++;
    break;
  case 'm':
  case 'M':
    shift = 20;
    end++;
    break;
  case 'g':
  case 'G':
    shift = 30;
    end++;
    break;
  default:
    break;
  }
  if (shift && (*end == 'i' || *end == 'I'))
    end++;
  if (*end == 'b' || *end == 'B')
    end++;
  if (*end != '\0' || v > (SIZE_MAX >> shift))
    return -1;
  *out = (size_t)(v << shift);
  return 0;
}

/* A boolean setting, read strictly: anything else is an error, so that
 * ATRIUM_INSECURE=false can never turn insecure mode on. */
static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; s != NULL && i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
      *out = strcasecmp(s, yes[i]) == 0;
      return 0;
    }
  }
  return -1;
}

/* A store file mode in octal: read and write for the owner, and nothing
 * but read and write for group and others (no execute, no set-id). */
static int parse_mode(const char *s, unsigned *out) {
  char *end;
  unsigned long v;
  if (s == NULL || *s < '0' || *s > '7')
    return -1;
  errno = 0;
  v = strtoul(s, &end, 8);
  if (errno != 0 || *end != '\0' || (v & ~0666ul) != 0 || (v & 0600) != 0600)
    return -1;
  *out = (unsigned)v;
  return 0;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out) {
  int64_t v;

  if (gw_parse_int64(s, &v) != 0 || v < lo || v > hi)
    return -1;
  *out = (unsigned)v;
  return 0;
}

/* "HOST:PORT" or "[V6]:PORT". */
static int parse_listen(const char *s, struct gw_config *cfg) {
  const char *colon;
  size_t hlen;

  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || close[1] != ':')
      return -1;
    hlen = (size_t)(close - s - 1);
    s++;
    colon = close + 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL)
      return -1;
    hlen = (size_t)(colon - s);
  }
  if (hlen == 0 || hlen >= sizeof(cfg->listen_host))
    return -1;
  memcpy(cfg->listen_host, s, hlen);
  cfg->listen_host[hlen] = '\0';
  return parse_uint(colon + 1, 0, 65535, &cfg->listen_port);
}

/* A comma separated list into list[*n] (at most GW_MAX_ORIGINS); with
 * brackets, those round an IPv6 address are dropped. */
static int parse_list(char *text, const char **list, size_t *n, int brackets) {
  char *save = NULL;

  for (char *o = strtok_r(text, ", ", &save); o;
       o = strtok_r(NULL, ", ", &save)) {
    size_t len = strlen(o);
    if (*n == GW_MAX_ORIGINS)
      return -1;
    if (brackets && o[0] == '[' && len > 2 && o[len - 1] == ']') {
      o[len - 1] = '\0';
      o++;
    }
    list[(*n)++] = o;
  }
  return 0;
}

/* --metrics-prefixes: name prefixes, comma separated (a later setting
 * replaces an earlier one). One that another covers is dropped, so no
 * object is walked, or its gauges given, twice. */
static int parse_prefixes(char *text, struct gw_config *cfg) {
  const char *list[GW_MAX_PREFIXES];
  size_t n = 0;

  if (parse_list(text, list, &n, 0) != 0)
    return -1;
  cfg->n_metrics_prefixes = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(list[i]), j;
    if (len > ATR_NAME_MAX || atr_name_check(list[i], len) != 0)
      return -1;
    for (j = 0; j < n; j++) {
      size_t lj = strlen(list[j]);
      /* covered by a shorter one, or by an equal one listed first */
      if (j != i && lj <= len && memcmp(list[j], list[i], lj) == 0 &&
          (lj < len || j < i))
        break;
    }
    if (j == n)
      cfg->metrics_prefixes[cfg->n_metrics_prefixes++] = list[i];
  }
  return 0;
}

static int host_is_loopback(const char *host) {
  struct addrinfo hints, *res = NULL, *ai;
  int all = 1;

  if (host[0] == '\0')
    return 0;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, NULL, &hints, &res) != 0)
    return 0;
  for (ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      const struct sockaddr_in *a = (const void *)ai->ai_addr;
      if ((ntohl(a->sin_addr.s_addr) >> 24) != 127)
        all = 0;
    } else if (ai->ai_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const void *)ai->ai_addr;
      if (!IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
        all = 0;
    } else
      all = 0;
  }
  freeaddrinfo(res);
  return all;
}

/* Checks the nng URL; the publisher itself is not opened yet. */
static int check_events(const struct gw_config *cfg) {
  nng_url *url = NULL;
  int rv = -1;

  if (nng_url_parse(&url, cfg->events_url) != 0) {
    fprintf(stderr, "atriumd: bad --events URL %s\n", cfg->events_url);
    return -1;
  }
  if (strcmp(url->u_scheme, "ipc") == 0 ||
      strcmp(url->u_scheme, "inproc") == 0 ||
      strcmp(url->u_scheme, "abstract") == 0) {
    rv = 0;
  } else if (strncmp(url->u_scheme, "tcp", 3) == 0 ||
             strncmp(url->u_scheme, "ws", 2) == 0) {
    if (!cfg->insecure && !host_is_loopback(url->u_hostname))
      fprintf(stderr,
              "atriumd: refusing events on %s: nng has no authentication; "
              "use a loopback address or --insecure\n",
              cfg->events_url);
    else
      rv = 0;
  } else {
    fprintf(stderr, "atriumd: unsupported --events scheme %s\n", url->u_scheme);
  }
  nng_url_free(url);
  return rv;
}

enum {
  OPT_STORE = 256,
  OPT_STORE_SIZE,
  OPT_STORE_MODE,
  OPT_MAX_OBJECTS,
  OPT_LISTEN,
  OPT_EVENTS,
  OPT_TOKEN_FILE,
  OPT_INSECURE,
  OPT_MAX_WAIT,
  OPT_MAX_LEASE,
  OPT_MAX_BODY,
  OPT_MAX_CONNS,
  OPT_THREADS,
  OPT_MAX_DEPTH,
  OPT_CORS,
  OPT_ALLOW_HOST,
  OPT_SSE_HEARTBEAT,
  OPT_SSE_BUFFER,
  OPT_SSE_MEMORY,
  OPT_BUSY_WAIT,
  OPT_METRICS_OBJECTS,
  OPT_METRICS_MAX,
  OPT_METRICS_PREFIXES,
  OPT_HELP,
};

static const struct {
  int opt;
  const char *env;
} gw_env[] = {
    {OPT_STORE, "ATRIUM_STORE"},
    {OPT_STORE_SIZE, "ATRIUM_STORE_SIZE"},
    {OPT_STORE_MODE, "ATRIUM_STORE_MODE"},
    {OPT_MAX_OBJECTS, "ATRIUM_MAX_OBJECTS"},
    {OPT_LISTEN, "ATRIUM_LISTEN"},
    {OPT_EVENTS, "ATRIUM_EVENTS"},
    {OPT_TOKEN_FILE, "ATRIUM_TOKEN_FILE"},
    {OPT_INSECURE, "ATRIUM_INSECURE"},
    {OPT_MAX_WAIT, "ATRIUM_MAX_WAIT"},
    {OPT_MAX_LEASE, "ATRIUM_MAX_LEASE"},
    {OPT_MAX_BODY, "ATRIUM_MAX_BODY"},
    {OPT_MAX_CONNS, "ATRIUM_MAX_CONNS"},
    {OPT_THREADS, "ATRIUM_THREADS"},
    {OPT_MAX_DEPTH, "ATRIUM_MAX_DEPTH"},
    {OPT_CORS, "ATRIUM_CORS_ORIGIN"},
    {OPT_ALLOW_HOST, "ATRIUM_ALLOW_HOST"},
    {OPT_SSE_HEARTBEAT, "ATRIUM_SSE_HEARTBEAT"},
    {OPT_SSE_BUFFER, "ATRIUM_SSE_BUFFER"},
    {OPT_SSE_MEMORY, "ATRIUM_SSE_MEMORY"},
    {OPT_BUSY_WAIT, "ATRIUM_BUSY_WAIT"},
    {OPT_METRICS_OBJECTS, "ATRIUM_METRICS_OBJECTS"},
    {OPT_METRICS_MAX, "ATRIUM_METRICS_MAX"},
    {OPT_METRICS_PREFIXES, "ATRIUM_METRICS_PREFIXES"},
};

/* Applies one setting; arg belongs to argv or the environment. */
static int apply(struct gw_config *cfg, int opt, char *arg) {
  double d;

  switch (opt) {
  case OPT_STORE:
    if (arg[0] == '\0')
      return -1;
    cfg->store_path = arg;
    return 0;
  case OPT_STORE_SIZE:
    return parse_size(arg, &cfg->store_size);
  case OPT_STORE_MODE:
    return parse_mode(arg, &cfg->store_mode);
  case OPT_MAX_OBJECTS: /* what fits the size is checked at the open */
    return parse_uint(arg, 1, 1u << 30, &cfg->max_objects);
  case OPT_LISTEN:
    return parse_listen(arg, cfg);
  case OPT_EVENTS:
    cfg->events_url = arg;
    cfg->events_given = 1;
    return 0;
  case OPT_TOKEN_FILE:
    cfg->token_file = arg;
    return 0;
  case OPT_INSECURE:
    if (arg == NULL) { /* the flag itself */
      cfg->insecure = 1;
      return 0;
    }
    return parse_bool(arg, &cfg->insecure);
  case OPT_MAX_WAIT:
    if (gw_parse_double(arg, &d) != 0 || d < 0 || d > 86400)
      return -1;
    cfg->max_wait = d;
    return 0;
  case OPT_MAX_LEASE:
    /* Above 0 (a lease of 0 s would be over when given), at most the
     * core's longest lease. */
    if (gw_parse_double(arg, &d) != 0 || !(d > 0) || d > ATR_LEASE_MAX)
      return -1;
    cfg->max_lease = d;
    return 0;
  case OPT_MAX_BODY:
    return parse_size(arg, &cfg->max_body) != 0 || cfg->max_body == 0 ? -1 : 0;
  case OPT_MAX_CONNS:
    return parse_uint(arg, 1, 1000000, &cfg->max_conns);
  case OPT_THREADS:
    return parse_uint(arg, 1, 1024, &cfg->threads);
  case OPT_MAX_DEPTH:
    return parse_uint(arg, 1, 512, &cfg->max_depth);
  case OPT_CORS:
    return parse_list(arg, cfg->origins, &cfg->n_origins, 0);
  case OPT_ALLOW_HOST:
    return parse_list(arg, cfg->allow_hosts, &cfg->n_allow_hosts, 1);
  case OPT_SSE_HEARTBEAT:
    if (gw_parse_double(arg, &d) != 0 || d < 0.01 || d > 86400)
      return -1;
    cfg->sse_heartbeat = d;
    return 0;
  case OPT_SSE_BUFFER:
    if (parse_size(arg, &cfg->sse_buffer) != 0 || cfg->sse_buffer < 1024)
      return -1;
    return 0;
  case OPT_SSE_MEMORY:
    if (parse_size(arg, &cfg->sse_memory) != 0 || cfg->sse_memory < 4096)
      return -1;
    return 0;
  case OPT_BUSY_WAIT:
    if (gw_parse_double(arg, &d) != 0 || d < 0 || d > 3600)
      return -1;
    cfg->busy_wait = d;
    return 0;
  case OPT_METRICS_OBJECTS:
    if (strcmp(arg, "auto") == 0)
      cfg->metrics_objects = GW_METRICS_AUTO;
    else if (strcmp(arg, "all") == 0)
      cfg->metrics_objects = GW_METRICS_ALL;
    else if (strcmp(arg, "prefixes") == 0)
      cfg->metrics_objects = GW_METRICS_PREFIXES;
    else
      return -1;
    return 0;
  case OPT_METRICS_MAX: {
    int64_t v;
    if (gw_parse_int64(arg, &v) != 0 || v < 0)
      return -1;
    cfg->metrics_max = (uint64_t)v;
    return 0;
  }
  case OPT_METRICS_PREFIXES:
    return parse_prefixes(arg, cfg);
  default:
    return -1;
  }
}

static int configure(struct gw_config *cfg, int argc, char **argv) {
  static const struct option opts[] = {
      {"store", required_argument, NULL, OPT_STORE},
      {"store-size", required_argument, NULL, OPT_STORE_SIZE},
      {"store-mode", required_argument, NULL, OPT_STORE_MODE},
      {"max-objects", required_argument, NULL, OPT_MAX_OBJECTS},
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"events", required_argument, NULL, OPT_EVENTS},
      {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
      {"insecure", no_argument, NULL, OPT_INSECURE},
      {"max-wait", required_argument, NULL, OPT_MAX_WAIT},
      {"max-lease", required_argument, NULL, OPT_MAX_LEASE},
      {"max-body", required_argument, NULL, OPT_MAX_BODY},
      {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"max-depth", required_argument, NULL, OPT_MAX_DEPTH},
      {"cors-origin", required_argument, NULL, OPT_CORS},
      {"allow-host", required_argument, NULL, OPT_ALLOW_HOST},
      {"sse-heartbeat", required_argument, NULL, OPT_SSE_HEARTBEAT},
      {"sse-buffer", required_argument, NULL, OPT_SSE_BUFFER},
      {"sse-memory", required_argument, NULL, OPT_SSE_MEMORY},
      {"busy-wait", required_argument, NULL, OPT_BUSY_WAIT},
      {"metrics-objects", required_argument, NULL, OPT_METRICS_OBJECTS},
      {"metrics-max", required_argument, NULL, OPT_METRICS_MAX},
      {"metrics-prefixes", required_argument, NULL, OPT_METRICS_PREFIXES},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0}};
  int opt;
  long n;

  cfg->store_path = ATR_DEFAULT_PATH;
  parse_listen("127.0.0.1:7450", cfg);
  cfg->events_url = "tcp://127.0.0.1:7451";
  cfg->max_wait = 300;
  cfg->max_lease = 3600;
  cfg->max_body = (size_t)1 << 20;
  cfg->max_depth = 64;
  cfg->sse_heartbeat = 15;
  cfg->sse_buffer = (size_t)1 << 20;
  cfg->sse_memory = (size_t)32 << 20;
  cfg->busy_wait = 1.0;
  cfg->metrics_objects = GW_METRICS_AUTO;
  cfg->metrics_max = 10000;
  n = sysconf(_SC_NPROCESSORS_ONLN);
  cfg->threads = n > 0 ? (unsigned)n : 1;

  /* The environment first, so flags win. */
  for (size_t i = 0; i < sizeof(gw_env) / sizeof(gw_env[0]); i++) {
    char *v = getenv(gw_env[i].env);
    if (v == NULL)
      continue;
    if (apply(cfg, gw_env[i].opt, v) != 0) {
      fprintf(stderr, "atriumd: bad %s=%s\n", gw_env[i].env, v);
      return 2;
    }
  }
  while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (opt == OPT_HELP) {
      fputs(gw_usage, stdout);
      return 1;
    }
    if (opt == '?' || opt == ':') {
      fputs(gw_usage, stderr);
      return 2;
    }
    if (apply(cfg, opt, optarg) != 0) {
      for (size_t i = 0; opts[i].name; i++)
        if (opts[i].val == opt)
          fprintf(stderr, "atriumd: bad --%s %s\n", opts[i].name,
                  optarg ? optarg : "");
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "atriumd: unexpected argument %s\n", argv[optind]);
    return 2;
  }
  return 0;
}

/* ------------------------------------------------------------ start */

/* Raises the open-file limit to its hard limit and sizes the connection
 * limit from it (a waiting client holds one descriptor). */
static void raise_nofile(struct gw_config *cfg) {
  struct rlimit rl;
  rlim_t room;

  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    rl.rlim_cur = 1024;
  room = rl.rlim_cur > 128 ? rl.rlim_cur - 64 : 64;
  /* (and one for each HTTP daemon, one per 128 connections: http.c) */
  room -= room / 129;
  if (cfg->max_conns == 0)
    cfg->max_conns = room > 65536 ? 65536 : (unsigned)room;
  else if (cfg->max_conns > room)
    fprintf(stderr,
            "atriumd: warning: --max-conns %u is above what the open-file "
            "limit allows (%llu)\n",
            cfg->max_conns, (unsigned long long)room);
}

/* Binds and listens; fills the real port (for port 0) into cfg. */
static int open_listener(struct gw_config *cfg, int *out) {
  struct addrinfo hints, *res = NULL;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char port[8];
  int fd = -1, one = 1, rv;

  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(port, sizeof(port), "%u", cfg->listen_port);
  if ((rv = getaddrinfo(cfg->listen_host, port, &hints, &res)) != 0) {
    fprintf(stderr, "atriumd: cannot resolve %s: %s\n", cfg->listen_host,
            gai_strerror(rv));
    goto fail;
  }
  fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    goto fail_errno;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
    goto fail_errno;
  cfg->listen_port =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  freeaddrinfo(res);
  *out = fd;
  return 0;
fail_errno:
  fprintf(stderr, "atriumd: cannot listen on %s:%u: %s\n", cfg->listen_host,
          cfg->listen_port, strerror(errno));
fail:
  if (fd >= 0)
    close(fd);
  if (res)
    freeaddrinfo(res);
  return -1;
}

int main(int argc, char **argv) {
  static struct gw_server srv;
  struct gw_config *cfg = &srv.cfg;
  atr_store_opts so;
  sigset_t sigs;
  int listen_fd = -1, sig, rv, status = 1;

  gw_srv = &srv;
  rv = configure(cfg, argc, argv);
  if (rv != 0)
    return rv == 1 ? 0 : 2;
  if (!host_is_loopback(cfg->listen_host) && cfg->token_file == NULL) {
    fprintf(stderr,
            "atriumd: refusing to listen on %s without --token-file "
            "(anyone who can reach it could change the store)\n",
            cfg->listen_host);
    return 2;
  }
  if (gw_error_check() != 0 || check_events(cfg) != 0 || gw_auth_load(cfg) != 0)
    return 2;
  raise_nofile(cfg);

  /* Signals are taken by sigwait below; every thread inherits the mask. */
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  atr_store_opts_init(&so);
  if (cfg->store_size)
    so.size = cfg->store_size;
  if (cfg->store_mode)
    so.mode = cfg->store_mode;
  so.max_objects = cfg->max_objects;
  rv = atr_store_open(cfg->store_path, &so, &srv.store);
  if (rv == ATR_EINVAL && cfg->max_objects > atr_store_fits(so.size)) {
    fprintf(stderr,
            "atriumd: cannot create store %s: --max-objects %u does not fit "
            "a store of %zu bytes (it holds at most %u; each object takes "
            "about 700 bytes of tables: raise --store-size)\n",
            cfg->store_path, cfg->max_objects, so.size,
            (unsigned)atr_store_fits(so.size));
    goto done;
  }
  if (rv != 0) {
    fprintf(stderr, "atriumd: cannot open store %s: %s\n", cfg->store_path,
            atr_strerror(rv));
    goto done;
  }
  if (gw_metrics_init() != 0) {
    fprintf(stderr, "atriumd: out of memory\n");
    goto done;
  }
  if (open_listener(cfg, &listen_fd) != 0)
    goto done;
  if (gw_events_open() != 0)
    goto done;
  /* States count the HTTP waiters parked here beside the store's. */
  gw_repr_set_waiting(gw_park_waiting);
  if (gw_follow_start(srv.store, gw_subs,
                      sizeof(gw_subs) / sizeof(gw_subs[0])) != 0) {
    fprintf(stderr, "atriumd: cannot start the change-feed follower\n");
    goto done;
  }
  if (gw_http_start(listen_fd) != 0) {
    fprintf(stderr, "atriumd: cannot start the HTTP daemon\n");
    goto done;
  }
  fprintf(stderr, "atriumd: listening on http://%s%s%s:%u, events on %s\n",
          strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
          strchr(cfg->listen_host, ':') ? "]" : "", cfg->listen_port,
          gw_pub_url());
  gw_pub_warn();
  fflush(stderr);
  /* Leases and dicts outlive the gateway (see "the start walk"). */
  gw_walk.running =
      pthread_create(&gw_walk.thread, NULL, gw_walk_run, NULL) == 0;
  if (!gw_walk.running)
    gw_walk_run(NULL);

  do {
    if (sigwait(&sigs, &sig) != 0)
      sig = SIGTERM;
  } while (sig != SIGTERM && sig != SIGINT);

  /* Stop taking connections, answer every waiting request as if its time
   * had come, let those answers go out, then stop. */
  gw_http_refuse();
  gw_walk_stop();
  gw_sse_shutdown(1.0);
  gw_park_shutdown(2.0);
  gw_follow_stop();
  gw_http_stop();
  status = 0;
done:
  gw_walk_stop();
  gw_park_shutdown(0);
  gw_follow_stop();
  gw_sse_shutdown(0);
  gw_http_stop();
  gw_events_close();
  if (listen_fd >= 0)
    close(listen_fd);
  gw_metrics_fini();
  atr_store_close(srv.store);
  free(cfg->token);
  return status;
}
