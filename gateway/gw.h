/*
 * gw.h - atriumd internals shared by the gateway's files.
 *
 * Roles: main.c (config, start, signals), http.c (libmicrohttpd glue),
 * routes.c (route table and the checks every route shares), json.c (the
 * JSON codec, the only file that includes cJSON), values.c, arrays.c,
 * queues.c, objects.c (handlers per object kind), wait.c (parked requests
 * and the change-feed follower), errors.c (core error -> HTTP), auth.c,
 * metrics.c. The gateway uses only the core's public header.
 */
#ifndef ATRIUM_GW_H
#define ATRIUM_GW_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "atrium.h"

struct MHD_Connection;
struct MHD_Daemon;
struct MHD_Response;
struct gw_sse;

/* ----------------------------------------------------------------- config */

#define GW_MAX_ORIGINS 16

struct gw_config {
  const char *store_path;
  size_t store_size;     /* 0: the core's default                    */
  char listen_host[256]; /* as given, without brackets               */
  unsigned listen_port;
  const char *events_url;
  int events_given;     /* --events or ATRIUM_EVENTS was set        */
  double sse_heartbeat; /* seconds between SSE comment lines        */
  size_t sse_buffer;    /* bytes queued per SSE stream at most      */
  const char *token_file;
  int insecure;
  double max_wait; /* seconds, caps every timeout              */
  size_t max_body; /* bytes                                    */
  unsigned max_conns;
  unsigned threads;
  unsigned max_depth; /* JSON nesting                             */
  const char *origins[GW_MAX_ORIGINS];
  size_t n_origins;
  char *token; /* owned; NULL: no auth                     */
};

struct gw_server {
  struct gw_config cfg;
  atr_store *store;
  struct MHD_Daemon *daemon;
};

/* The one server of this process (set by main before the daemon starts). */
extern struct gw_server *gw_srv;

/* -------------------------------------------------------------- out buffer */

/* A growable byte buffer. An allocation failure sets failed and turns
 * later appends into no-ops, so callers check once at the end. */
typedef struct gw_buf {
  char *data;
  size_t len, cap;
  int failed;
} gw_buf;

void gw_buf_init(gw_buf *b);
void gw_buf_fini(gw_buf *b);
void gw_buf_add(gw_buf *b, const void *p, size_t n);
void gw_buf_str(gw_buf *b, const char *s);
void gw_buf_fmt(gw_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (who frees them); the buffer is empty. */
char *gw_buf_take(gw_buf *b, size_t *len);

/* ------------------------------------------------------------------- JSON */

/* Results of the JSON codec; see gw_error_json for their HTTP meaning. */
enum {
  GW_JSON_OK = 0,
  GW_JSON_ESYNTAX = -1, /* not JSON, bad UTF-8, trailing garbage         */
  GW_JSON_EDEPTH = -2,  /* nested deeper than allowed                    */
  GW_JSON_EVALUE = -3,  /* wrong JSON kind for the type, or a fraction   */
  GW_JSON_ERANGE = -4,  /* a number outside the type                     */
  GW_JSON_ENOMEM = -5,
};

typedef enum gw_jtype {
  GW_JNULL,
  GW_JFALSE,
  GW_JTRUE,
  GW_JNUMBER,
  GW_JSTRING,
  GW_JARRAY,
  GW_JOBJECT,
} gw_jtype;

typedef struct gw_json gw_json;   /* a parsed document       */
typedef struct gw_jnode gw_jnode; /* one value inside it     */

/*
 * Parses text[0..len) as exactly one JSON value (white space around it
 * allowed), strictly (RFC 8259, valid UTF-8, nesting <= max_depth). Every
 * number keeps its own text, so conversions below are exact. On success
 * *out owns the document (gw_json_free). Returns GW_JSON_OK, ESYNTAX,
 * EDEPTH or ENOMEM; *why (may be NULL) gets a static reason.
 */
int gw_json_parse(const char *text, size_t len, unsigned max_depth,
                  gw_json **out, const char **why);
void gw_json_free(gw_json *doc);

/*
 * Checks text[0..len) is one JSON value without building a tree, and
 * gives its span without the surrounding white space. With elems (may be
 * NULL) the value must be an array and elems gets the spans of its
 * elements: (*elems)[2k] is the start, [2k+1] the end of element k;
 * *n_elems their count; the caller frees *elems.
 */
int gw_json_check(const char *text, size_t len, unsigned max_depth,
                  size_t *start, size_t *end, size_t **elems, size_t *n_elems,
                  const char **why);

const gw_jnode *gw_json_root(const gw_json *doc);
gw_jtype gw_json_type(const gw_jnode *node);
/* The member called key of an object (NULL if none or not an object). */
const gw_jnode *gw_json_get(const gw_jnode *obj, const char *key);
/* The first child of an array or object, the next sibling (NULL at end). */
const gw_jnode *gw_json_child(const gw_jnode *node);
const gw_jnode *gw_json_next(const gw_jnode *node);
/* The key of an object member; NULL for array elements. */
const char *gw_json_key(const gw_jnode *node);
size_t gw_json_count(const gw_jnode *node);
/* A string's text, decoded and NUL-terminated; NULL if node is not a
 * string, or holds U+0000 (which a C string cannot). */
const char *gw_json_string(const gw_json *doc, const gw_jnode *node);

/* The text of node in the parsed document (not NUL-terminated: *len
 * bytes), as the client sent it. */
const char *gw_json_text(const gw_json *doc, const gw_jnode *node, size_t *len);
/* node as an atr_scalar of type code type: 0, EVALUE or ERANGE. */
int gw_json_scalar(const gw_json *doc, const gw_jnode *node, char type,
                   atr_scalar *out);
/* node as an exact int64: 0, EVALUE (not an integer) or ERANGE. */
int gw_json_int64(const gw_json *doc, const gw_jnode *node, int64_t *out);
/* node as an exact uint64: 0, EVALUE or ERANGE. */
int gw_json_uint64(const gw_json *doc, const gw_jnode *node, uint64_t *out);

/* Parses a whole string as a JSON-style integer / finite number (for query
 * parameters). Return 0 or GW_JSON_EVALUE / GW_JSON_ERANGE. */
int gw_parse_int64(const char *s, int64_t *out);
int gw_parse_double(const char *s, double *out);

/* Appends v, of type code type, as JSON (exact; shortest round trip). */
void gw_json_put_scalar(gw_buf *b, char type, atr_scalar v);
/* Appends arbitrary bytes as a JSON string: UTF-8 kept, any invalid byte
 * becomes U+FFFD. */
void gw_json_put_bytes(gw_buf *b, const char *p, size_t len);
/* Appends s[0..len) (valid UTF-8) as a JSON string, escaped. */
void gw_json_put_string(gw_buf *b, const char *s, size_t len);

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

struct gw_req;
typedef int (*gw_handler)(struct gw_req *req);

/* Route flags: the checks routes.c runs before the handler. */
enum {
  GW_R_BODY = 1 << 0,  /* takes a JSON body (415 for another type)   */
  GW_R_NAME = 1 << 1,  /* the path holds an object name              */
  GW_R_OPEN = 1 << 2,  /* no token needed (/healthz)                 */
  GW_R_PARSE = 1 << 3, /* parse the body into req->doc before        */
  GW_R_NEED = 1 << 4,  /* the body may not be empty                  */
};

struct gw_route {
  unsigned method;     /* one of gw_method                            */
  const char *pattern; /* "/v1/values/{name}/add"                     */
  gw_handler handler;
  unsigned flags;
  const char *id; /* the route's label in /metrics               */
};

/* Parking state of a request (wait.c). */
enum gw_wait_kind { GW_WAIT_NONE, GW_WAIT_POP, GW_WAIT_PUT, GW_WAIT_WATCH };
enum gw_wake {
  GW_WAKE_NONE,
  GW_WAKE_EVENT,    /* something changed: try again                     */
  GW_WAKE_TIMEOUT,  /* the deadline passed                              */
  GW_WAKE_SHUTDOWN, /* the daemon is stopping: answer as if timed out   */
};

struct gw_waiter {
  struct gw_waiter *prev, *next; /* in its group's list                */
  struct gw_wgroup *group;
  enum gw_wait_kind kind;
  int state;         /* wait.c's: idle, armed, suspended              */
  int woken;         /* an event came while armed                     */
  int used;          /* ever put on a list (for the completion check) */
  int draining;      /* resumed for shutdown, not yet completed       */
  int may_wait;      /* the request asked to wait (timeout > 0)       */
  enum gw_wake wake; /* why it was resumed                            */
  uint64_t version;  /* WATCH: answer once the version passes this    */
  size_t max;        /* POP: items wanted                             */
  double deadline;   /* monotonic seconds                             */
  atr_handle h;      /* the incarnation waited on                     */
};

struct gw_req {
  struct MHD_Connection *conn;
  const struct gw_route *route;
  char *uri;                   /* the raw request target           */
  char name[ATR_NAME_MAX + 1]; /* the {name} segment               */
  unsigned method;
  unsigned allow; /* methods of the path (405, CORS)   */
  int phase;      /* http.c's                         */
  int runs;       /* times the handler ran            */
  char *body;
  size_t body_len, body_cap;
  int body_too_big;
  gw_json *doc;                /* parsed body (GW_R_PARSE)          */
  size_t item_start, item_end; /* a queue item's span in the body   */
  unsigned status;             /* answered status, for metrics      */
  double t_start;
  struct gw_waiter wait;
  struct gw_sse *sse; /* an event stream (events.c); freed on completion */
};

/* A request header or query argument (NULL if absent). */
const char *gw_req_header(struct gw_req *req, const char *name);
const char *gw_req_query(struct gw_req *req, const char *name);

/*
 * Answers req with status and body[0..len) (owned by the call, freed
 * with free(); may be NULL with len 0), content type application/json
 * unless ctype is given, and an ETag of version when version != 0.
 * Returns the MHD result for the access handler.
 */
int gw_reply(struct gw_req *req, unsigned status, char *body, size_t len,
             const char *ctype, uint64_t version);
/* Answers the JSON in b (taken) or 500 if b failed. */
int gw_reply_buf(struct gw_req *req, unsigned status, gw_buf *b,
                 uint64_t version);
/* Answers {"error":{"code":code,"message":msg}} with status. */
int gw_reply_error(struct gw_req *req, unsigned status, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Answers the HTTP meaning of core error rv (errors.c's table). */
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
/* Extra response headers for the next reply (Allow). */
int gw_reply_allow(struct gw_req *req, unsigned methods);

/* The daemon (http.c): start on a bound, listening socket (stop closes
 * it); refuse closes every new connection from then on; suspend/resume a
 * request's connection. */
int gw_http_start(int listen_fd);
void gw_http_refuse(void);
void gw_http_stop(void);
void gw_http_suspend(struct gw_req *req);
void gw_http_resume(struct gw_req *req);

/* Monotonic seconds. */
double gw_now(void);

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

/* The value of ?timeout= capped by --max-wait; dflt when absent. 0 or
 * -1 (after answering 400). */
int gw_query_timeout(struct gw_req *req, double dflt, double *out);

/* ----------------------------------------------------------------- errors */

struct gw_errmap {
  int code;         /* ATR_E*                      */
  unsigned status;  /* HTTP status                 */
  const char *name; /* the JSON error code         */
};
const struct gw_errmap *gw_error_lookup(int code);

/* ------------------------------------------------------------------ routes */

/* What gw_route_match finds for a method and a raw path. */
struct gw_match {
  const struct gw_route *route; /* for the method; NULL: none        */
  unsigned allow;               /* methods of the path (HEAD if GET) */
  int open;                     /* a route of the path needs no token */
  char name[ATR_NAME_MAX + 1];  /* the {name} segment (GW_ROUTE_OK)  */
};
/* Results of gw_route_match, each an answer of gw_route_find. */
enum {
  GW_ROUTE_OK = 0,
  GW_ROUTE_ENOPATH = -1, /* no route has this path: 404             */
  GW_ROUTE_EMETHOD = -2, /* the path takes other methods: 405       */
  GW_ROUTE_EESCAPE = -3, /* a %-escape in the name: 400 bad_name    */
  GW_ROUTE_ENAME = -4,   /* not a valid object name: 400 bad_name   */
};
/* Matches method (one gw_method bit; HEAD routes as GET) and the raw
 * request target path[0..len) (before any '?', not unescaped) against
 * the route table; fills *m. Pure (no I/O, no allocation): the daemon
 * and the fuzz target call it. */
int gw_route_match(unsigned method, const char *path, size_t len,
                   struct gw_match *m);
/* Finds the route for method and raw path; fills req->route and
 * req->name, or answers the request (404, 405, 400 bad_name) and returns
 * -1. Returns 0 when routed. */
int gw_route_find(struct gw_req *req, const char *path, size_t path_len);
/* The checks before the body arrives: auth, 413 by Content-Length, 415.
 * 0 to go on, -1 when it answered. */
int gw_route_precheck(struct gw_req *req);
/* Runs the checks that need the body, then the handler. */
int gw_route_run(struct gw_req *req);
/* Number of routes and their labels, for metrics. */
size_t gw_route_count(void);
const struct gw_route *gw_route_at(size_t i);
size_t gw_route_index(const struct gw_route *r);
/* The methods of a mask as "GET, PUT". */
void gw_methods_str(unsigned methods, char *out, size_t cap);

/* ---------------------------------------------------------------- handlers */

int gw_value_put(struct gw_req *req);
int gw_value_get(struct gw_req *req);
int gw_value_add(struct gw_req *req);
int gw_value_delete(struct gw_req *req);
int gw_value_list(struct gw_req *req);

int gw_array_put(struct gw_req *req);
int gw_array_get(struct gw_req *req);
int gw_array_patch(struct gw_req *req);
int gw_array_add(struct gw_req *req);
int gw_array_delete(struct gw_req *req);

int gw_queue_put(struct gw_req *req);
int gw_queue_get(struct gw_req *req);
int gw_queue_push(struct gw_req *req);
int gw_queue_batch(struct gw_req *req);
int gw_queue_pop(struct gw_req *req);
int gw_queue_clear(struct gw_req *req);
int gw_queue_delete(struct gw_req *req);

int gw_objects_list(struct gw_req *req);
int gw_store_info(struct gw_req *req);
int gw_healthz(struct gw_req *req);
int gw_openapi(struct gw_req *req);
int gw_metrics(struct gw_req *req);
int gw_web_index(struct gw_req *req);
int gw_web_file(struct gw_req *req);

/* Writes a value's GET representation into b. */
void gw_value_repr(gw_buf *b, const char *name, char type, atr_scalar v,
                   uint64_t version);

/* The conditional headers of a request. */
struct gw_cond {
  int if_match;          /* 0 none, 1 "*", 2 a version           */
  uint64_t version;      /* If-Match: "<version>"                */
  int if_none_match_any; /* If-None-Match: *                     */
};
/* Reads If-Match / If-None-Match; 0, or -1 after answering 400. */
int gw_cond_parse(struct gw_req *req, struct gw_cond *c);

/* Checks the body is an object whose members are all in allowed (a NULL
 * ended list); 0, or -1 after answering 400 invalid_body. An absent body
 * passes. */
int gw_body_members(struct gw_req *req, const char *const *allowed);
/* The body's member key (NULL if no body or no such member). */
const gw_jnode *gw_body_get(struct gw_req *req, const char *key);
/* A "type" member: a one-character string holding a type code. 0, or -1
 * after answering 400 invalid_type. */
int gw_body_type(struct gw_req *req, char *type);
/* Reads node as type, answering 400 on failure (what names it). */
int gw_body_scalar(struct gw_req *req, const gw_jnode *node, char type,
                   const char *what, atr_scalar *out);

/* -------------------------------------------------------------------- wait */

/* Results of gw_wait_park. */
enum { GW_PARKED = 0, GW_RETRY = 1, GW_EXPIRED = 2 };

/* Starts / stops the follower thread. gw_wait_stop answers every parked
 * request (GW_WAKE_SHUTDOWN) and waits up to grace seconds for them. */
int gw_wait_start(atr_store *store);
void gw_wait_shutdown(double grace);
void gw_wait_join(void);
/*
 * The waiting protocol of a handler: arm (the request is on its object's
 * list, so an event from now on is not missed), try the operation without
 * waiting, then either disarm (done) or park: GW_PARKED (suspended; return
 * MHD_YES without answering), GW_RETRY (a change came meanwhile: try
 * again) or GW_EXPIRED (deadline passed or shutting down: answer now).
 */
int gw_wait_arm(struct gw_req *req); /* -1: cannot wait, answer now */
void gw_wait_disarm(struct gw_req *req);
int gw_wait_park(struct gw_req *req);
/* Called by the completion callback: the request leaves every list. */
void gw_wait_forget(struct gw_req *req);
/* 1 if the client of a resumed request has closed its side. */
int gw_client_gone(struct gw_req *req);
/* Says interest in the change feed may have appeared (a new event stream
 * or nng subscriber, a stream to serve): the follower wakes, from a pause
 * or from the feed. */
void gw_wait_kick(void);
/* Parked requests now (metrics). */
uint64_t gw_wait_parked(void);
/* Whether the daemon is stopping. */
int gw_stopping(void);

/* ------------------------------------------------------------------ events */

/*
 * The change events (events.c): an nng pub socket and SSE streams. Open
 * binds the publisher on cfg.events_url (a busy default address falls
 * back to a free port with a warning; a busy address that was asked for
 * fails); 0 or -1 with a message on stderr. gw_events_url is what it
 * listens on (the real port, when 0 was asked). Shutdown ends every SSE
 * stream (their queued bytes go out first) and waits up to grace seconds
 * for them; close frees everything (after the follower and MHD stopped).
 */
int gw_events_open(atr_store *store);
const char *gw_events_url(void);
/* Prints the warnings of gw_events_open (after the ready line, which
 * starters wait for as the first line). */
void gw_events_warn(void);
void gw_events_shutdown(double grace);
void gw_events_close(void);
/* The follower thread's side, in feed order: begin with the cursor's first
 * seq; publish one event; resync after ATR_EGAP (next: the cursor's seq
 * after atr_feed_resync); tick serves new streams and heartbeats and
 * returns when it wants to run next (monotonic seconds). */
void gw_events_begin(uint64_t next);
/* Whether anyone takes events: an SSE stream or an nng subscriber. */
int gw_events_interest(void);
/* The follower paused and resynced at next: if events were missed, the
 * replay ring is no longer continuous (older resumes get a resync). */
void gw_events_rebase(uint64_t next);
void gw_events_publish(const atr_event *ev);
void gw_events_resync(uint64_t next);
double gw_events_tick(double now);
/* GET /v1/events (the token or a ticket), POST /v1/events/tickets. */
int gw_events_stream(struct gw_req *req);
int gw_events_ticket(struct gw_req *req);
/* Called by the completion callback: frees req's stream, if any. */
void gw_events_forget(struct gw_req *req);
/* Open SSE streams now (metrics). */
size_t gw_events_streams(void);

/* -------------------------------------------------------------------- auth */

/* Reads the token file (content with surrounding white space stripped).
 * 0 or -1 with a message on stderr. */
int gw_auth_load(struct gw_config *cfg);
/* 1 if req may pass (no token set, or a matching Bearer token). */
int gw_auth_ok(struct gw_req *req);

/* ----------------------------------------------------------------- metrics */

int gw_metrics_init(void);
void gw_metrics_fini(void);
void gw_metrics_count(const struct gw_route *route, unsigned status,
                      double seconds);

/* The OpenAPI document (generated from gateway/openapi.json). */
extern const unsigned char gw_openapi_json[];
extern const size_t gw_openapi_json_len;

/* The dashboard: every file of web/ (generated by the Makefile), ended by
 * an entry whose name is NULL. */
struct gw_web_file {
  const char *name;          /* "app.js"                              */
  const unsigned char *data; /* the bytes, then a NUL (not in len)    */
  size_t len;
  const char *etag; /* "\"<cksum>\""                          */
};
extern const struct gw_web_file gw_web_files[];

#endif /* ATRIUM_GW_H */
