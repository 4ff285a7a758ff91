/*
 * query.c - the query parameters of the routes, judged from their text.
 *
 * libmicrohttpd splits the query string and unescapes each value; these
 * functions decide what a value means. They take no request and do no
 * I/O, so the fuzz target runs exactly the daemon's code (but for
 * gw_query_timeout, the one that answers). Each returns 0,
 * or -1 with *why set to the message of a 400 invalid_query.
 */
#include "req.h"

int gw_query_timeout_parse(const char *s, double dflt, double max_wait,
                           double *out, const char **why) {
  double t = dflt;

  if (s != NULL && (gw_parse_double(s, &t) != 0 || t < 0)) {
    *why = "timeout must be a number of seconds >= 0";
    return -1;
  }
  if (t > max_wait)
    t = max_wait;
  *out = t;
  return 0;
}

int gw_query_version_parse(const char *s, uint64_t *out, const char **why) {
  int64_t v;

  if (gw_parse_int64(s, &v) != 0 || v < 0) {
    *why = "wait must be a version (an integer >= 0)";
    return -1;
  }
  *out = (uint64_t)v;
  return 0;
}

int gw_query_index_parse(const char *s, int64_t *out, const char **why) {
  if (gw_parse_int64(s, out) != 0) {
    *why = "start and stop must be integers";
    return -1;
  }
  return 0;
}

int gw_query_max_parse(const char *s, size_t *out, const char **why) {
  int64_t v;

  if (gw_parse_int64(s, &v) != 0 || v < 1 || v > GW_POP_MAX) {
    *why = "max must be an integer from 1 to " GW_STR(GW_POP_MAX);
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

int gw_query_timeout(struct gw_req *req, double dflt, double *out) {
  const char *why = NULL;

  if (gw_query_timeout_parse(gw_req_query(req, "timeout"), dflt,
                             gw_srv->cfg.max_wait, out, &why) != 0)
    return gw_reply_error(req, 400, "invalid_query", "%s", why);
  return GW_NEXT;
}
