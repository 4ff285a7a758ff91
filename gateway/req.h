/*
 * req.h - requests and answers: the per-request state, the server's
 * configuration, reading a request (headers, query, body, conditional
 * headers), answering it (JSON, errors, the core error table), and the
 * connection calls the layers above need (suspend, resume, client gone).
 *
 * Layer 1: includes buf.h and json.h only (see buf.h for the layers).
 *
 * The return convention of everything that may answer a request - every
 * gw_reply* call, every check helper below, every handler:
 *   GW_NEXT (0)  the request was not answered: go on;
 *   GW_DONE (1)  it is taken care of: answered, parked (it runs again when
 *                resumed) or to be closed (req->close). A handler returns
 *                GW_DONE; a check helper's GW_DONE means "return it".
 * So a handler reads
 *   if (gw_body_members(req, members) != GW_NEXT) return GW_DONE;
 *   ...
 *   if (rv != 0) return gw_reply_core(req, rv);
 *   return gw_reply_buf(req, 200, &b, version);
 * The daemon then tells libmicrohttpd MHD_YES, or MHD_NO when req->close.
 */
#ifndef ATRIUM_GW_REQ_H
#define ATRIUM_GW_REQ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "atrium.h"
#include "buf.h"
#include "json.h"

struct MHD_Connection;
struct MHD_Daemon;
struct MHD_Response;
struct gw_sse;
struct gw_wgroup;

enum { GW_NEXT = 0, GW_DONE = 1 };

/* ----------------------------------------------------------------- config */

#define GW_MAX_ORIGINS 16
#define GW_MAX_PREFIXES GW_MAX_ORIGINS

/* --metrics-objects: whose gauges /metrics gives (metrics.c). */
enum {
  GW_METRICS_AUTO,     /* every object's up to metrics_max, else prefixes */
  GW_METRICS_ALL,      /* every object's, however many                    */
  GW_METRICS_PREFIXES, /* those of metrics_prefixes only                  */
};

struct gw_config {
  const char *store_path;
  size_t store_size;     /* 0: the core's default                    */
  unsigned store_mode;   /* 0: the core's default (0600)             */
  unsigned max_objects;  /* 0: the core's default (one per 4 KiB)    */
  char listen_host[256]; /* as given, without brackets               */
  unsigned listen_port;
  const char *events_url;
  int events_given;     /* --events or ATRIUM_EVENTS was set        */
  double sse_heartbeat; /* seconds between SSE comment lines        */
  size_t sse_buffer;    /* bytes queued per SSE stream at most      */
  size_t sse_memory;    /* bytes queued on all SSE streams at most  */
  double busy_wait;     /* seconds a request waits for an object
                           lock a live process keeps, then 503 busy */
  const char *token_file;
  int insecure;
  double max_wait;  /* seconds, caps every timeout              */
  double max_lease; /* seconds, caps every ttl and lease        */
  size_t max_body;  /* bytes                                    */
  unsigned max_conns;
  unsigned threads;
  unsigned max_depth; /* JSON nesting                             */
  const char *origins[GW_MAX_ORIGINS];
  size_t n_origins;
  const char *allow_hosts[GW_MAX_ORIGINS]; /* --allow-host, no brackets */
  size_t n_allow_hosts;
  char *token;          /* owned; NULL: no auth                     */
  int metrics_objects;  /* GW_METRICS_*                              */
  uint64_t metrics_max; /* auto: every object's gauges up to this    */
  const char *metrics_prefixes[GW_MAX_PREFIXES]; /* none a prefix of
                                                    another          */
  size_t n_metrics_prefixes;
};

struct gw_server {
  struct gw_config cfg;
  atr_store *store;
  struct MHD_Daemon *daemon;
};

/* The one server of this process (set by main before the daemon starts). */
extern struct gw_server *gw_srv;

/* Monotonic seconds. */
double gw_now(void);
/* Waits on cond (mu held) until *count is 0 or grace seconds passed
 * (shutdown's drains). */
void gw_drain_wait(pthread_cond_t *cond, pthread_mutex_t *mu,
                   const size_t *count, double grace);

/* ---------------------------------------------------------------- requests */

enum gw_method {
  GW_GET = 1 << 0,
  GW_PUT = 1 << 1,
  GW_POST = 1 << 2,
  GW_PATCH = 1 << 3,
  GW_DELETE = 1 << 4,
  GW_HEAD = 1 << 5,
  GW_OPTIONS = 1 << 6,
  GW_OTHER = 1 << 7,
};
/* A method's bit (GW_OTHER for one we do not take). */
unsigned gw_method_of(const char *name);
/* The methods of a mask as "GET, PUT". */
void gw_methods_str(unsigned methods, char *out, size_t cap);

struct gw_route;

/* How a request waits (park.h), kept with the request. */
enum gw_wait_kind {
  GW_WAIT_ANY,   /* any change of the object may let it through    */
  GW_WAIT_POP,   /* items to take: as many wake as there are items */
  GW_WAIT_PUT,   /* room to put                                    */
  GW_WAIT_WATCH, /* a version past wait.version                    */
  GW_WAIT_HOLD,  /* a holder to let go (lock, semaphore, barrier):
                    any change, and a periodic retry while a process
                    holds it (a process that dies publishes nothing) */
};
enum gw_wake {
  GW_WAKE_NONE,
  GW_WAKE_EVENT,    /* something changed: try again                     */
  GW_WAKE_TIMEOUT,  /* the deadline passed                              */
  GW_WAKE_SHUTDOWN, /* the daemon is stopping: answer as if timed out   */
  GW_WAKE_GONE,     /* the client closed its side: answer no one        */
};
/* The parking state of a request: park.c's; a handler sets kind,
 * version or max and h through gw_park_begin. */
struct gw_waiter {
  struct gw_waiter *prev, *next; /* in its group's list                */
  struct gw_wgroup *group;
  enum gw_wait_kind kind;
  int state;         /* park.c's: off, armed, suspended                 */
  int woken;         /* an event came while armed                     */
  int used;          /* ever put on a list (for the completion check) */
  int draining;      /* resumed for shutdown, not yet completed       */
  int may_wait;      /* the request asked to wait (timeout > 0)       */
  enum gw_wake wake; /* why it was resumed                            */
  uint64_t version;  /* WATCH: answer once the version passes this    */
  size_t max;        /* POP: items wanted                             */
  double deadline;   /* monotonic seconds                             */
  atr_handle h;      /* the incarnation waited on                     */
  /* A request that found an object's lock held by a live process
   * (ATR_ELOCKED) is parked and tried again (park.c): */
  int locked;           /* parked for a busy lock, until retry_at    */
  double retry_at;      /* when it tries again (or an event first)   */
  double retry_gap;     /* the gap before the next try (grows)       */
  double lock_deadline; /* gives up with 503 busy then (0: not set
                           yet; < 0: at once)                        */
  size_t heap_at;       /* park.c's timer heap: its place + 1 (0: out) */
  int sock;             /* park.c: its socket + 1 while watched for a
                           client that leaves (0: not watched)        */
};

/* What a request was granted (a lock's lease, a permit, a barrier's
 * place), kept so that an answer that is not delivered gives it back
 * (lease.h). kind 0: nothing. */
enum gw_grant_kind {
  GW_GRANT_NONE,
  GW_GRANT_LOCK,       /* count levels of the lease token on h      */
  GW_GRANT_SEM_LEASE,  /* the leased permit token on h             */
  GW_GRANT_SEM_PERMIT, /* a plain permit of h                      */
  GW_GRANT_BARRIER,    /* the place token (a ticket) on h          */
};
struct gw_grant {
  enum gw_grant_kind kind;
  atr_handle h;
  uint64_t token;
  uint64_t count;
};

/* A condition wait's progress, across its runs (conditions.c). */
struct gw_cond_wait {
  int phase;       /* 0 waiting for a notify, 1 re-taking the lock */
  int notified;    /* a notify came                               */
  uint64_t ticket; /* its place in the waiters' line              */
  uint64_t count;  /* the lock's levels to take again             */
  double ttl;      /* the new lease's                             */
  atr_handle lock;
};

struct gw_req {
  struct MHD_Connection *conn;
  const struct gw_route *route;
  char *uri;                      /* the raw request target           */
  char name[ATR_NAME_MAX + 1];    /* the {name} segment               */
  char key[ATR_DICT_KEY_MAX + 1]; /* a dict's {key} segment, decoded */
  size_t key_len;
  unsigned method;
  unsigned allow; /* methods of the path (405, CORS)   */
  int phase;      /* http.c's                         */
  int runs;       /* times the handler ran (a run that met a
                     busy lock unanswered is not counted: see
                     run_again)                        */
  int answered;   /* a response is queued             */
  int close;      /* the connection must close        */
  char *body;     /* NUL-terminated past body_len     */
  size_t body_len, body_cap;
  int body_too_big;
  uint64_t clen;               /* the declared Content-Length (gw_req_heads) */
  gw_json *doc;                /* parsed body (GW_R_PARSE)          */
  size_t item_start, item_end; /* a queue item's span in the body   */
  unsigned status;             /* answered status, for metrics      */
  double t_start;
  struct gw_waiter wait;
  struct gw_sse *sse; /* an event stream (sse.c); freed on completion */
  int lock_wait;      /* gw_reply_core left an ATR_ELOCKED unanswered:
                         the daemon parks the request, runs it again  */
  int run_again;      /* parked for lock_wait: the next run is the
                         same run again (runs stays), so a waiting
                         route's first run (runs == 1: open, arrive,
                         begin) is not skipped                        */
  int changed;        /* the handler changed the store: an ATR_ELOCKED
                         now is answered, never run again             */
  int retry_after;    /* the answer says Retry-After: this (seconds)  */
  /* Atrium-Fence (GW_R_FENCE routes): the handler runs only while that
   * lock holds that fence (routes.c). */
  int fenced;
  uint64_t fence;
  char fence_lock[ATR_NAME_MAX + 1];
  struct gw_grant grant;    /* what the answer hands out (lease.h) */
  struct gw_cond_wait cond; /* a condition wait's progress         */
};

/* 1 if origin is one --cors-origin allows (listed, or "*"). */
int gw_cors_allowed(const char *origin);

/* A request header or query argument (NULL if absent). */
const char *gw_req_header(struct gw_req *req, const char *name);
const char *gw_req_query(struct gw_req *req, const char *name);
/* The request target and header sizes the gateway answers itself
 * (414, 431), below libmicrohttpd's own limits (its answers are HTML). */
#define GW_URI_MAX 4096
#define GW_HEADERS_MAX 8192

/* What the request's headers say as a whole. */
struct gw_req_heads {
  size_t bytes;           /* their size as sent, about                 */
  uint64_t clen;          /* the largest Content-Length (0 if none,
                             UINT64_MAX if too large to read)          */
  int clen_differ;        /* two Content-Length headers differ (a
                             request-smuggling shape)                  */
  const char *clen_first; /* the first one's text                      */
};
void gw_req_heads(struct gw_req *req, struct gw_req_heads *h);
/* Appends data[0..n) to the body (at most --max-body: beyond it the body
 * is marked too big and dropped). 0, or -1 out of memory. */
int gw_req_body_add(struct gw_req *req, const char *data, size_t n);
/* Marks the connection to be closed; GW_DONE. */
int gw_req_drop(struct gw_req *req);
/* Suspends / resumes the request's connection (libmicrohttpd's lock;
 * never call resume with a lock a request thread may want first). */
void gw_req_suspend(struct gw_req *req);
void gw_req_resume(struct gw_req *req);
/* Resumes a suspended connection (a request's or a stream's) and tells
 * whoever drives its daemon (gw_req_on_resume: http.c's loops drive MHD
 * in its external mode, where a resume wakes nothing by itself). */
void gw_conn_resume(struct MHD_Connection *conn);
void gw_req_on_resume(void (*fn)(struct MHD_Daemon *daemon));
/* 1 if the client of a resumed (or suspended) request has closed its
 * side (a FIN: recv MSG_PEEK gives 0) or the connection broke. */
int gw_client_gone(struct gw_req *req);
/* The request's socket, or -1. */
int gw_req_socket(struct gw_req *req);
/* A request met ATR_ELOCKED: 1 if it may wait for the lock (its
 * --busy-wait bound starts with the first call), 0 once the bound is up
 * or when it must answer now (shutdown, a change already made). */
int gw_req_lock_patient(struct gw_req *req);

/* ----------------------------------------------------------------- answers */

/*
 * Answers req with status and body[0..len) (owned by the call, freed
 * with free(); may be NULL with len 0), content type application/json
 * unless ctype is given, and an ETag of version when version != 0.
 * GW_DONE (req->close set if the answer could not be queued).
 */
int gw_reply(struct gw_req *req, unsigned status, char *body, size_t len,
             const char *ctype, uint64_t version);
/* Answers the JSON in b (taken) or 500 if b failed. */
int gw_reply_buf(struct gw_req *req, unsigned status, gw_buf *b,
                 uint64_t version);
/* Answers {"error":{"code":code,"message":msg}} with status. */
int gw_reply_error(struct gw_req *req, unsigned status, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Answers the HTTP meaning of core error rv (the error table below).
 * ATR_ELOCKED, while gw_req_lock_patient says the request may wait, is
 * not answered: req->lock_wait is set and GW_DONE returned, and the
 * daemon parks the request and runs its handler again (http.c); once
 * the bound is up it is 503 busy with Retry-After. */
int gw_reply_core(struct gw_req *req, int rv);
/* Answers the HTTP meaning of a JSON codec error about what. */
int gw_reply_json_error(struct gw_req *req, int rv, const char *what,
                        const char *why);
/* Answers 204 No Content. */
int gw_reply_empty(struct gw_req *req);
/* Answers req with status and the static bytes body[0..len) (not copied,
 * never freed), content type ctype (if not NULL), and the extra headers
 * hdrs: name, value, ..., NULL (hdrs may be NULL). Unlike gw_reply it adds
 * no Cache-Control: hdrs say what may be cached. */
int gw_reply_static(struct gw_req *req, unsigned status, const void *body,
                    size_t len, const char *ctype, const char *const *hdrs);
/* Queues resp (the caller's reference is dropped) with status, adding
 * the CORS headers; for answers built by hand (an event stream). */
int gw_reply_response(struct gw_req *req, unsigned status,
                      struct MHD_Response *resp);

/* ------------------------------------------------------------------ errors */

/* The HTTP meaning of a core error. */
struct gw_errmap {
  unsigned status;  /* HTTP status        */
  const char *name; /* the JSON error code */
};
/* The row of code (0 or ATR_E*; an unknown code gets 500
 * internal_error). The table is indexed by the code (errors.c). */
const struct gw_errmap *gw_error_lookup(int code);
/* Checks every ATR_E* code has a row: 0, or -1 with a message on stderr
 * (main runs it at start). */
int gw_error_check(void);

/* ------------------------------------------------------------ query, body */

/* The query parameters, judged from their text (query.c; pure, so the
 * fuzz target calls them too). Each returns 0, or -1 with *why set to the
 * message of a 400 invalid_query. ?timeout=: seconds >= 0, fractions
 * allowed, capped at max_wait; dflt when s is NULL. ?wait=: a version.
 * ?start= / ?stop=: any int64 (Python slice bounds). ?max=: 1..GW_POP_MAX. */
#define GW_POP_MAX 10000
#define GW_STR_(x) #x
#define GW_STR(x) GW_STR_(x)
int gw_query_timeout_parse(const char *s, double dflt, double max_wait,
                           double *out, const char **why);
int gw_query_version_parse(const char *s, uint64_t *out, const char **why);
int gw_query_index_parse(const char *s, int64_t *out, const char **why);
int gw_query_max_parse(const char *s, size_t *out, const char **why);
/* ?ttl= / ?lease=: seconds > 0, finite, capped at max_lease. */
int gw_query_ttl_parse(const char *s, double max_lease, double *out,
                       const char **why);
/* A page of a listing (GET /v1/objects and the per-kind lists):
 * ?prefix= (0-64 bytes of name characters; empty: every name),
 * ?after= (a name: the page starts after it in bytewise order) and
 * ?limit= (1..GW_LIST_MAX, default GW_LIST_DEFAULT). Any of them may be
 * NULL (absent). */
#define GW_LIST_DEFAULT 1000
#define GW_LIST_MAX 10000
struct gw_page {
  char prefix[ATR_NAME_MAX + 1];
  char after[ATR_NAME_MAX + 1];
  int has_after;
  size_t limit;
};
int gw_query_page_parse(const char *prefix, const char *after,
                        const char *limit, struct gw_page *page,
                        const char **why);
/* Percent-decodes p[0..n) into out (cap bytes; no NUL added), *len its
 * length; with plus_space a '+' is a space (a query's form encoding).
 * 0, or -1 for a bad escape or a result longer than cap. */
int gw_pct_decode(const char *p, size_t n, int plus_space, char *out,
                  size_t cap, size_t *len);
/* The raw (still %-escaped) value of the query parameter name in the
 * request target uri: a pointer into uri and *len, or NULL if absent. */
const char *gw_query_raw(const char *uri, const char *name, size_t *len);
/* What a dict key is, for the bad_key answers. */
#define GW_KEY_RULE "dict keys are 1-256 bytes of UTF-8 without NUL"

/* An Atrium-Fence header "<lock>=<fence>": a lock name (into
 * lock[ATR_NAME_MAX + 1]) and a fence (a decimal integer >= 1); white
 * space around either part is allowed. */
int gw_fence_parse(const char *s, char *lock, uint64_t *fence,
                   const char **why);

/* The value of ?timeout= capped by --max-wait; dflt when absent. GW_NEXT,
 * or GW_DONE after answering 400. */
int gw_query_timeout(struct gw_req *req, double dflt, double *out);
/* The value of ?<what>= (ttl, lease) capped by --max-lease: GW_NEXT (*out
 * 0 when absent and not required), or GW_DONE after answering 400. */
int gw_query_ttl(struct gw_req *req, const char *what, int required,
                 double *out);

/* The conditional headers of a request. */
struct gw_cond {
  int if_match;          /* 0 none, 1 "*", 2 a version           */
  uint64_t version;      /* If-Match: "<version>"                */
  int if_none_match_any; /* If-None-Match: *                     */
};
/* Reads If-Match / If-None-Match: GW_NEXT, or GW_DONE after 400. */
int gw_cond_parse(struct gw_req *req, struct gw_cond *c);

/* Checks the body is an object whose members are all in allowed (a NULL
 * ended list): GW_NEXT, or GW_DONE after 400 invalid_body. An absent
 * body passes. */
int gw_body_members(struct gw_req *req, const char *const *allowed);
/* The body's member key (NULL if no body or no such member). */
const gw_jnode *gw_body_get(struct gw_req *req, const char *key);
/* A "type" member: a one-character string holding a type code. GW_NEXT,
 * or GW_DONE after 400 invalid_type. */
int gw_body_type(struct gw_req *req, char *type);
/* Reads node as type: GW_NEXT, or GW_DONE after 400 (what names it). */
int gw_body_scalar(struct gw_req *req, const gw_jnode *node, char type,
                   const char *what, atr_scalar *out);
/* An add's "delta" for elements of type: 1 when absent, read as a double
 * for float types and as an int64 otherwise; 409 type_mismatch for the
 * types that take no add ('?', 'c'), what naming them. GW_NEXT or
 * GW_DONE. */
int gw_body_delta(struct gw_req *req, char type, const char *what,
                  atr_scalar *delta);
/* The body's boolean member key into *out (left as it is when absent):
 * GW_NEXT, or GW_DONE after 400 invalid_body. */
int gw_body_bool(struct gw_req *req, const char *key, int *out);
/* The body's "token" (16 lowercase hex digits, as the gateway hands them
 * out): GW_NEXT with *token; without a body or the member, GW_NEXT with
 * *token 0 unless required (then 400 invalid_body); any other text is a
 * token that is not held: 409 not_held (GW_DONE). */
int gw_body_token(struct gw_req *req, int required, uint64_t *token);
/* Appends "token":"<16 hex digits>" to b. */
void gw_token_put(gw_buf *b, uint64_t token);
/* A token or receipt as text: 16 lowercase hex digits, not all 0. 0 with
 * *out, or -1 (any other text). */
int gw_hex16_parse(const char *s, uint64_t *out);
/* Appends v as a JSON string of 16 lowercase hex digits. */
void gw_hex16_put(gw_buf *b, uint64_t v);

#endif /* ATRIUM_GW_REQ_H */
