/*
 * query.c - the query parameters of the routes, judged from their text.
 *
 * libmicrohttpd splits the query string and unescapes each value; these
 * functions decide what a value means. They take no request and do no
 * I/O, so the fuzz target runs exactly the daemon's code (but for
 * gw_query_timeout, the one that answers). Each returns 0,
 * or -1 with *why set to the message of a 400 invalid_query.
 */
#include <string.h>

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

int gw_query_page_parse(const char *prefix, const char *after,
                        const char *limit, struct gw_page *page,
                        const char **why) {
  size_t n;
  int64_t v;

  memset(page, 0, sizeof(*page));
  page->limit = GW_LIST_DEFAULT;
  if (prefix != NULL && (n = strlen(prefix)) > 0) {
    /* A prefix of a name is a name, but for being empty. */
    if (n > ATR_NAME_MAX || atr_name_check(prefix, n) != 0) {
      *why = "prefix must be at most " GW_STR(
          ATR_NAME_MAX) " bytes of A-Z a-z 0-9 _ . -";
      return -1;
    }
    memcpy(page->prefix, prefix, n + 1);
  }
  if (after != NULL) {
    n = strlen(after);
    if (n == 0 || n > ATR_NAME_MAX || atr_name_check(after, n) != 0) {
      *why = "after must be an object name (the \"next\" of a page)";
      return -1;
    }
    memcpy(page->after, after, n + 1);
    page->has_after = 1;
  }
  if (limit != NULL) {
    if (gw_parse_int64(limit, &v) != 0 || v < 1 || v > GW_LIST_MAX) {
      *why = "limit must be an integer from 1 to " GW_STR(GW_LIST_MAX);
      return -1;
    }
    page->limit = (size_t)v;
  }
  return 0;
}

int gw_query_ttl_parse(const char *s, double max_lease, double *out,
                       const char **why) {
  double t;

  if (s == NULL || gw_parse_double(s, &t) != 0 || !(t > 0)) {
    *why = "must be a number of seconds > 0";
    return -1;
  }
  *out = t > max_lease ? max_lease : t;
  return 0;
}

int gw_fence_parse(const char *s, char *lock, uint64_t *fence,
                   const char **why) {
  const char *eq = s ? strchr(s, '=') : NULL;
  const char *a, *b;
  char digits[24];
  int64_t v;
  size_t n;

  *why = "Atrium-Fence takes <lock>=<fence>";
  if (eq == NULL)
    return -1;
  for (a = s; *a == ' ' || *a == '\t'; a++)
    ;
  for (b = eq; b > a && (b[-1] == ' ' || b[-1] == '\t'); b--)
    ;
  n = (size_t)(b - a);
  if (n == 0 || n > ATR_NAME_MAX || atr_name_check(a, n) != 0)
    return -1;
  memcpy(lock, a, n);
  lock[n] = '\0';
  for (a = eq + 1; *a == ' ' || *a == '\t'; a++)
    ;
  for (b = a + strlen(a); b > a && (b[-1] == ' ' || b[-1] == '\t'); b--)
    ;
  n = (size_t)(b - a);
  if (n == 0 || n >= sizeof(digits) || strspn(a, "0123456789") < n)
    return -1;
  memcpy(digits, a, n);
  digits[n] = '\0';
  /* Fences are versions: they start at 1 and stay below 2^63. */
  if (gw_parse_int64(digits, &v) != 0 || v < 1)
    return -1;
  *fence = (uint64_t)v;
  return 0;
}

int gw_query_ttl(struct gw_req *req, const char *what, int required,
                 double *out) {
  const char *s = gw_req_query(req, what);
  const char *why = NULL;

  *out = 0;
  if (s == NULL && !required)
    return GW_NEXT;
  if (s == NULL)
    return gw_reply_error(req, 400, "invalid_query",
                          "%s (seconds > 0) is required", what);
  if (gw_query_ttl_parse(s, gw_srv->cfg.max_lease, out, &why) != 0)
    return gw_reply_error(req, 400, "invalid_query", "%s %s", what, why);
  return GW_NEXT;
}

int gw_query_timeout(struct gw_req *req, double dflt, double *out) {
  const char *why = NULL;

  if (gw_query_timeout_parse(gw_req_query(req, "timeout"), dflt,
                             gw_srv->cfg.max_wait, out, &why) != 0)
    return gw_reply_error(req, 400, "invalid_query", "%s", why);
  return GW_NEXT;
}

static int pct_hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int gw_pct_decode(const char *p, size_t n, int plus_space, char *out,
                  size_t cap, size_t *len) {
  size_t o = 0;

  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '%') {
      int hi, lo;
      if (n - i < 3 || (hi = pct_hex(p[i + 1])) < 0 ||
          (lo = pct_hex(p[i + 2])) < 0)
        return -1;
      c = (char)(hi << 4 | lo);
      i += 2;
    } else if (c == '+' && plus_space) {
      c = ' ';
    }
    if (o == cap)
      return -1;
    out[o++] = c;
  }
  *len = o;
  return 0;
}

const char *gw_query_raw(const char *uri, const char *name, size_t *len) {
  const char *q = strchr(uri, '?');
  size_t nl = strlen(name);

  while (q != NULL) {
    const char *p = q + 1, *end = strchr(p, '&');
    size_t pl = end ? (size_t)(end - p) : strlen(p);
    if (pl >= nl && memcmp(p, name, nl) == 0 && (pl == nl || p[nl] == '=')) {
      *len = pl == nl ? 0 : pl - nl - 1;
      return pl == nl ? p + nl : p + nl + 1;
    }
    q = end;
  }
  return NULL;
}
