/*
 * metrics.c - /metrics in Prometheus text format: requests by route and
 * status, a latency histogram per route, store usage, parked requests,
 * every value as a gauge labelled by its name, and the state of every
 * lock, semaphore, flag, barrier, queue and dict as gauges labelled the
 * same way - every object's while the store holds at most --metrics-max,
 * else those of --metrics-prefixes (m_objects).
 *
 * Counters are relaxed atomics in one table allocated at start: counting
 * a request takes no lock.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "park.h"
#include "routes.h"

#define M_STATUS_MIN 100
#define M_STATUS_N 500 /* 100..599 */

static const double m_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                  5,      10,    30,     60,    300};
#define M_BUCKETS (sizeof(m_bounds) / sizeof(m_bounds[0]) + 1)

struct m_route {
  atomic_uint_fast64_t status[M_STATUS_N];
  atomic_uint_fast64_t bucket[M_BUCKETS];
  atomic_uint_fast64_t sum_us;
};

static struct m_route *m_routes; /* gw_route_count() + 1 (unrouted) */

int gw_metrics_init(void) {
  size_t n = gw_route_count() + 1;

  m_routes = calloc(n, sizeof(*m_routes));
  if (m_routes == NULL)
    return -1;
  for (size_t r = 0; r < n; r++) {
    for (size_t i = 0; i < M_STATUS_N; i++)
      atomic_init(&m_routes[r].status[i], 0);
    for (size_t i = 0; i < M_BUCKETS; i++)
      atomic_init(&m_routes[r].bucket[i], 0);
    atomic_init(&m_routes[r].sum_us, 0);
  }
  return 0;
}

void gw_metrics_fini(void) {
  free(m_routes);
  m_routes = NULL;
}

void gw_metrics_count(const struct gw_route *route, unsigned status,
                      double seconds) {
  struct m_route *m;
  size_t b = 0;

  if (m_routes == NULL || status < M_STATUS_MIN ||
      status >= M_STATUS_MIN + M_STATUS_N)
    return; /* never answered (client left) */
  m = &m_routes[gw_route_index(route)];
  atomic_fetch_add_explicit(&m->status[status - M_STATUS_MIN], 1,
                            memory_order_relaxed);
  while (b < M_BUCKETS - 1 && seconds > m_bounds[b])
    b++;
  atomic_fetch_add_explicit(&m->bucket[b], 1, memory_order_relaxed);
  if (seconds < 0)
    seconds = 0;
  atomic_fetch_add_explicit(&m->sum_us, (uint_fast64_t)(seconds * 1e6),
                            memory_order_relaxed);
}

static const char *m_label(size_t r) {
  return r < gw_route_count() ? gw_route_at(r)->id : "unrouted";
}

static void m_requests(gw_buf *b) {
  size_t n = gw_route_count() + 1;

  gw_buf_str(b, "# HELP atrium_http_requests_total HTTP requests answered, "
                "by route and status.\n"
                "# TYPE atrium_http_requests_total counter\n");
  for (size_t r = 0; r < n; r++)
    for (size_t s = 0; s < M_STATUS_N; s++) {
      uint_fast64_t c =
          atomic_load_explicit(&m_routes[r].status[s], memory_order_relaxed);
      if (c)
        gw_buf_fmt(b,
                   "atrium_http_requests_total{route=\"%s\",status=\"%zu\"} "
                   "%llu\n",
                   m_label(r), s + M_STATUS_MIN, (unsigned long long)c);
    }
  gw_buf_str(b, "# HELP atrium_http_request_duration_seconds Time from "
                "request to answer (waiting included).\n"
                "# TYPE atrium_http_request_duration_seconds histogram\n");
  for (size_t r = 0; r < n; r++) {
    uint_fast64_t cum = 0;
    for (size_t i = 0; i < M_BUCKETS; i++)
      cum += atomic_load_explicit(&m_routes[r].bucket[i], memory_order_relaxed);
    if (cum == 0)
      continue;
    cum = 0;
    for (size_t i = 0; i < M_BUCKETS; i++) {
      cum += atomic_load_explicit(&m_routes[r].bucket[i], memory_order_relaxed);
      if (i < M_BUCKETS - 1)
        gw_buf_fmt(b,
                   "atrium_http_request_duration_seconds_bucket{route=\"%s\","
                   "le=\"%g\"} %llu\n",
                   m_label(r), m_bounds[i], (unsigned long long)cum);
      else
        gw_buf_fmt(b,
                   "atrium_http_request_duration_seconds_bucket{route=\"%s\","
                   "le=\"+Inf\"} %llu\n",
                   m_label(r), (unsigned long long)cum);
    }
    gw_buf_fmt(b,
               "atrium_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
               "atrium_http_request_duration_seconds_count{route=\"%s\"} "
               "%llu\n",
               m_label(r),
               (double)atomic_load_explicit(&m_routes[r].sum_us,
                                            memory_order_relaxed) /
                   1e6,
               m_label(r), (unsigned long long)cum);
  }
}

/* The synchronisation kinds' gauges: one family per member shown, each
 * gathered in its own buffer during one walk of the store (a family's
 * samples must come together). */
enum {
  M_VALUE,
  M_LOCK_HELD,
  M_LOCK_FENCE,
  M_LOCK_WAITERS,
  M_SEM_VALUE,
  M_SEM_BOUND,
  M_SEM_WAITERS,
  M_FLAG_SET,
  M_BARRIER_WAITING,
  M_BARRIER_BROKEN,
  M_QUEUE_LEASED,
  M_QUEUE_UNFINISHED,
  M_QUEUE_DEAD_LETTERED,
  M_QUEUE_DROPPED,
  M_DICT_LEN,
  M_N_SYNC
};

static const struct {
  const char *name, *help;
} m_sync_families[M_N_SYNC] = {
    [M_VALUE] = {"atrium_value", "Every value in the store (or those of "
                                 "--metrics-prefixes: see "
                                 "atrium_metrics_objects_all)."},
    [M_LOCK_HELD] = {"atrium_lock_held", "1 while the lock is held."},
    [M_LOCK_FENCE] = {"atrium_lock_fence",
                      "The fence of the lock's last acquisition."},
    [M_LOCK_WAITERS] = {"atrium_lock_waiters", "Waiting for the lock."},
    [M_SEM_VALUE] = {"atrium_semaphore_value", "Free permits."},
    [M_SEM_BOUND] = {"atrium_semaphore_bound",
                     "The semaphore's bound (0: none)."},
    [M_SEM_WAITERS] = {"atrium_semaphore_waiters", "Waiting for a permit."},
    [M_FLAG_SET] = {"atrium_flag_set", "1 while the flag is set."},
    [M_BARRIER_WAITING] = {"atrium_barrier_waiting",
                           "Arrived at the barrier in this round."},
    [M_BARRIER_BROKEN] = {"atrium_barrier_broken",
                          "1 while the barrier is broken."},
    [M_QUEUE_LEASED] = {"atrium_queue_leased",
                        "Items out under a lease (and nacked ones waiting "
                        "out their delay)."},
    [M_QUEUE_UNFINISHED] = {"atrium_queue_unfinished",
                            "Items put and not yet done."},
    [M_QUEUE_DEAD_LETTERED] = {"atrium_queue_dead_lettered",
                               "Items moved to the dead-letter queue."},
    [M_QUEUE_DROPPED] = {"atrium_queue_dropped",
                         "Dead letters dropped (the dead-letter queue was "
                         "missing or full)."},
    [M_DICT_LEN] = {"atrium_dict_len", "Keys in the dict."},
};

static void m_sample(gw_buf *fam, int f, const char *name, uint64_t v) {
  gw_buf_fmt(&fam[f], "%s{name=\"%s\"} %llu\n", m_sync_families[f].name, name,
             (unsigned long long)v);
}

/* A value's sample: "atrium_value{name,type} <value>". */
static void m_value(gw_buf *fam, const atr_info *info) {
  atr_handle h;
  atr_scalar v;
  uint64_t ver;

  if (atr_value_open(gw_srv->store, info->name, 0, 0, NULL, &h) < 0 ||
      h.id != info->id || atr_value_get(&h, &v, &ver) != 0)
    return; /* deleted meanwhile */
  /* Names hold no character that needs escaping in a label. */
  gw_buf_fmt(fam, "atrium_value{name=\"%s\",type=\"%c\"} ", info->name, h.type);
  /* Prometheus reads a float64: a float's exact value is its double
   * (0.1f is 0.10000000149011612, which "0.1" would not be). */
  if (atr_type_class(h.type) == ATR_TFLOAT)
    gw_json_put_scalar(fam, 'd', v);
  else if (h.type == '?')
    gw_buf_str(fam, v.i ? "1" : "0");
  else
    gw_json_put_scalar(fam, h.type == 'c' ? 'Q' : h.type, v);
  gw_buf_add(fam, "\n", 1);
}

struct m_walk {
  gw_buf fam[M_N_SYNC];
  uint64_t exported;
  char last[ATR_NAME_MAX + 1]; /* the last name of a page */
};

static int m_object(const atr_info *i, void *arg) {
  struct m_walk *w = arg;
  gw_buf *fam = w->fam;

  memcpy(w->last, i->name, sizeof(w->last));
  w->exported++;
  switch (i->kind) {
  case ATR_VALUE:
    m_value(&fam[M_VALUE], i);
    break;
  case ATR_LOCK:
    m_sample(fam, M_LOCK_HELD, i->name, i->count > 0);
    m_sample(fam, M_LOCK_FENCE, i->name, i->fence);
    m_sample(fam, M_LOCK_WAITERS, i->name, i->waiters);
    break;
  case ATR_SEMAPHORE:
    m_sample(fam, M_SEM_VALUE, i->name, i->count);
    m_sample(fam, M_SEM_BOUND, i->name, i->bound);
    m_sample(fam, M_SEM_WAITERS, i->name, i->waiters);
    break;
  case ATR_FLAG:
    m_sample(fam, M_FLAG_SET, i->name, i->set);
    break;
  case ATR_BARRIER:
    m_sample(fam, M_BARRIER_WAITING, i->name, i->n_waiting);
    m_sample(fam, M_BARRIER_BROKEN, i->name, i->broken);
    break;
  case ATR_QUEUE:
    m_sample(fam, M_QUEUE_LEASED, i->name, i->leased);
    m_sample(fam, M_QUEUE_UNFINISHED, i->name, i->unfinished);
    m_sample(fam, M_QUEUE_DEAD_LETTERED, i->name, i->dead_lettered);
    m_sample(fam, M_QUEUE_DROPPED, i->name, i->dropped);
    break;
  case ATR_DICT:
    m_sample(fam, M_DICT_LEN, i->name, i->size);
    break;
  default:
    break;
  }
  return 0;
}

/* The objects of one prefix, a page at a time: the core reads names
 * only, and only the matching objects are described and printed. */
static void m_walk_prefix(struct m_walk *w, const char *prefix) {
  int more = 1;

  w->last[0] = '\0';
  while (more) {
    more = 0;
    if (atr_list_page(gw_srv->store, prefix, ATR_ANY,
                      w->last[0] ? w->last : NULL, GW_LIST_MAX, m_object, w,
                      &more) != 0)
      return;
  }
}

/*
 * The per-object gauges. Every object's while the store holds at most
 * --metrics-max objects (or always, with --metrics-objects all); past it
 * (or with --metrics-objects prefixes) those whose names start with one
 * of --metrics-prefixes, so a scrape of a store of a million objects
 * costs what those hold. Either way the walk takes no object's lock
 * (atr_list, atr_list_page, atr_value_get read descriptions lock-free),
 * so no add, set, put or pop ever waits for a scrape; a page of
 * atr_list_page holds the store lock a bounded number of steps at a
 * time, which a create or delete may wait for.
 */
static void m_objects(gw_buf *b, uint64_t objects) {
  const struct gw_config *cfg = &gw_srv->cfg;
  struct m_walk w;
  int all =
      cfg->metrics_objects == GW_METRICS_ALL ||
      (cfg->metrics_objects == GW_METRICS_AUTO && objects <= cfg->metrics_max);

  memset(&w, 0, sizeof(w));
  for (int f = 0; f < M_N_SYNC; f++)
    gw_buf_init(&w.fam[f]);
  if (all)
    atr_list(gw_srv->store, m_object, &w);
  else
    for (size_t i = 0; i < cfg->n_metrics_prefixes; i++)
      m_walk_prefix(&w, cfg->metrics_prefixes[i]);
  gw_buf_fmt(b,
             "# HELP atrium_metrics_objects_all 1 when this scrape has "
             "every object's gauges; 0 when only those whose names start "
             "with one of --metrics-prefixes (more than --metrics-max "
             "objects, or --metrics-objects prefixes).\n"
             "# TYPE atrium_metrics_objects_all gauge\n"
             "atrium_metrics_objects_all %d\n",
             all);
  for (int f = 0; f < M_N_SYNC; f++) {
    gw_buf_fmt(b, "# HELP %s %s\n# TYPE %s gauge\n", m_sync_families[f].name,
               m_sync_families[f].help, m_sync_families[f].name);
    if (w.fam[f].failed)
      b->failed = 1;
    else
      gw_buf_add(b, w.fam[f].data, w.fam[f].len);
    gw_buf_fini(&w.fam[f]);
  }
  gw_buf_fmt(b,
             "# HELP atrium_metrics_objects_exported Objects whose gauges "
             "this scrape holds.\n"
             "# TYPE atrium_metrics_objects_exported gauge\n"
             "atrium_metrics_objects_exported %llu\n"
             "# HELP atrium_leases Lease deadlines the gateway watches.\n"
             "# TYPE atrium_leases gauge\n"
             "atrium_leases %llu\n",
             (unsigned long long)w.exported,
             (unsigned long long)gw_lease_count());
}

int gw_metrics(struct gw_req *req) {
  atr_store_stats st;
  uint64_t objects = UINT64_MAX;
  gw_buf b;
  char *body;
  size_t len;

  gw_buf_init(&b);
  m_requests(&b);
  if (atr_store_stats_get(gw_srv->store, &st) == 0) {
    objects = st.objects;
    gw_buf_fmt(&b,
               "# HELP atrium_store_capacity_bytes Size of the store file.\n"
               "# TYPE atrium_store_capacity_bytes gauge\n"
               "atrium_store_capacity_bytes %llu\n"
               "# HELP atrium_store_used_bytes Bytes in use in the store.\n"
               "# TYPE atrium_store_used_bytes gauge\n"
               "atrium_store_used_bytes %llu\n"
               "# HELP atrium_store_objects Live objects.\n"
               "# TYPE atrium_store_objects gauge\n"
               "atrium_store_objects %llu\n"
               "# HELP atrium_store_max_objects The object limit.\n"
               "# TYPE atrium_store_max_objects gauge\n"
               "atrium_store_max_objects %llu\n",
               (unsigned long long)st.capacity, (unsigned long long)st.used,
               (unsigned long long)st.objects,
               (unsigned long long)st.max_objects);
  }
  gw_buf_fmt(&b,
             "# HELP atrium_parked_requests Requests waiting without a "
             "thread.\n"
             "# TYPE atrium_parked_requests gauge\n"
             "atrium_parked_requests %llu\n",
             (unsigned long long)gw_park_count());
  m_objects(&b, objects);
  if (b.failed) {
    gw_buf_fini(&b);
    return gw_reply_core(req, ATR_ENOMEM);
  }
  body = gw_buf_take(&b, &len);
  return gw_reply(req, 200, body, len,
                  "text/plain; version=0.0.4; charset=utf-8", 0);
}
