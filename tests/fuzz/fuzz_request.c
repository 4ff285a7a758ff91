/*
 * fuzz_request.c - libFuzzer target over the gateway's request decoding:
 * route matching of a raw request target, its query parameters, and a
 * JSON body through the codec and its conversions to every type code.
 *
 * The body is also read as a Host header's value (gw_auth_split and
 * gw_auth_host_allowed: a split authority rebuilt and split again is the
 * same host and port).
 *
 * An input is the start of a request as it comes off the wire:
 *   first line: METHOD SP TARGET   e.g. PUT /v1/values/x?timeout=1.5
 *   the rest:   the body           e.g. {"type":"q","value":-1}
 * (a line without a space is all target). Every input goes through all
 * three decoders, the daemon's own functions (gw_route_match, the query
 * parsers of query.c, json.c); the checks below are what must hold for
 * any input: a route rebuilt from its pattern and name is the path, a
 * parsed number printed and parsed again is the same number, the scanner
 * and the tree agree, values stay inside their types.
 *
 * Built and run by make fuzz (five minutes) and tests/fuzz/test_fuzz.sh
 * (twenty seconds, in make check); seeds in tests/fuzz/corpus.
 */
#include <microhttpd.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "json.h"
#include "req.h"
#include "routes.h"

/* main.c (not linked here) owns the daemon's server: here, one with the
 * default listening address and one --allow-host, which the Host checks
 * read. */
struct gw_server *gw_srv;
static struct gw_server fuzz_srv = {.cfg = {.listen_host = "127.0.0.1",
                                            .listen_port = 7450,
                                            .allow_hosts = {"atrium.example"},
                                            .n_allow_hosts = 1}};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_DEPTH 64         /* the daemon's default --max-depth      */
#define FUZZ_ITEM_DEPTH 512   /* what a popped item is checked with    */
#define FUZZ_MAX_NODES 256    /* nodes converted per input (speed)     */
#define FUZZ_MAX_WAIT 300.0   /* the daemon's default --max-wait       */
#define FUZZ_MAX_LEASE 3600.0 /* the daemon's default --max-lease */

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const char fuzz_types[] = "bBhHiIlLqQfd?c";

/* ------------------------------------------------------------------ routes */

static const unsigned fuzz_methods[] = {GW_GET,     GW_PUT,    GW_POST,
                                        GW_PATCH,   GW_DELETE, GW_HEAD,
                                        GW_OPTIONS, GW_OTHER};

/* The route's pattern with {name} replaced by name equals path. */
static int fuzz_rebuilds(const char *pattern, const char *name,
                         const char *path, size_t len) {
  size_t i = 0, n = strlen(name);

  while (*pattern) {
    if (strncmp(pattern, "{name}", 6) == 0) {
      if (len - i < n || memcmp(path + i, name, n) != 0)
        return 0;
      i += n;
      pattern += 6;
      continue;
    }
    if (i >= len || path[i] != *pattern)
      return 0;
    i++;
    pattern++;
  }
  return i == len;
}

static void fuzz_route(const char *target) {
  /* As http.c: the path is the raw target up to its '?'. */
  size_t len = strcspn(target, "?");
  unsigned allow = 0;

  for (size_t k = 0; k < sizeof(fuzz_methods) / sizeof(fuzz_methods[0]); k++) {
    unsigned method = fuzz_methods[k];
    unsigned want = method == GW_HEAD ? GW_GET : method;
    struct gw_match m;
    int rv = gw_route_match(method, target, len, &m);

    /* Which methods a path takes does not depend on the method asked. */
    if (k == 0)
      allow = m.allow;
    FUZZ_CHECK(m.allow == allow);
    FUZZ_CHECK(!(m.allow & (GW_OPTIONS | GW_OTHER)));
    FUZZ_CHECK(!(m.allow & GW_GET) == !(m.allow & GW_HEAD));
    switch (rv) {
    case GW_ROUTE_ENOPATH:
      FUZZ_CHECK(m.allow == 0 && m.route == NULL && !m.open);
      break;
    case GW_ROUTE_EMETHOD:
      FUZZ_CHECK(m.allow != 0 && m.route == NULL && !(m.allow & want));
      break;
    case GW_ROUTE_OK:
    case GW_ROUTE_EESCAPE:
    case GW_ROUTE_ENAME:
    case GW_ROUTE_EKEY:
      FUZZ_CHECK(m.route != NULL && m.route->method == want);
      FUZZ_CHECK(m.route == gw_route_at(gw_route_index(m.route)));
      FUZZ_CHECK(m.allow & method);
      if (rv != GW_ROUTE_OK) {
        FUZZ_CHECK(m.route->flags & GW_R_NAME);
        FUZZ_CHECK(rv != GW_ROUTE_EESCAPE || memchr(target, '%', len));
        FUZZ_CHECK(rv != GW_ROUTE_EKEY || strstr(m.route->pattern, "{key}"));
        break;
      }
      if (strstr(m.route->pattern, "{key}") != NULL) {
        /* A dict's key, decoded: valid whatever the escapes were. */
        FUZZ_CHECK(atr_dict_key_check(m.key, m.key_len) == 0);
        break;
      }
      if (m.route->flags & GW_R_NAME) {
        size_t n = strlen(m.name);
        FUZZ_CHECK(n >= 1 && n <= ATR_NAME_MAX);
        FUZZ_CHECK(atr_name_check(m.name, n) == 0);
        FUZZ_CHECK(strchr(m.name, '%') == NULL && strchr(m.name, '/') == NULL);
      } else {
        FUZZ_CHECK(m.name[0] == '\0');
      }
      FUZZ_CHECK(fuzz_rebuilds(m.route->pattern, m.name, target, len));
      break;
    default:
      FUZZ_CHECK(!"gw_route_match: unknown result");
    }
  }
}

/* ------------------------------------------------------------------ query */

static void fuzz_slice(int64_t start, int64_t stop) {
  static const uint64_t lengths[] = {0, 1, 2, 7, 1000, (uint64_t)INT64_MAX};

  for (size_t k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++) {
    __int128 n = (__int128)lengths[k], a = start, b = stop;
    uint64_t lo, hi;

    /* Python's slice.indices() for a step of 1. */
    if (a < 0)
      a = a + n < 0 ? 0 : a + n;
    if (a > n)
      a = n;
    if (b < 0)
      b = b + n < 0 ? 0 : b + n;
    if (b > n)
      b = n;
    if (b < a)
      b = a;
    atr_slice(start, stop, lengths[k], &lo, &hi);
    FUZZ_CHECK((__int128)lo == a && (__int128)hi == b);
  }
}

/* One query value (unescaped, as libmicrohttpd gives it; NULL for a key
 * without '=') through every parameter's parser: the key decides nothing
 * about how a value is read. */
static void fuzz_query_value(const char *s) {
  const char *why = NULL;
  char text[64];
  double t;
  uint64_t version, version2;
  int64_t index, index2;
  size_t max;

  if (gw_query_timeout_parse(s, 5.0, FUZZ_MAX_WAIT, &t, &why) == 0) {
    FUZZ_CHECK(t >= 0 && t <= FUZZ_MAX_WAIT);
    if (s == NULL)
      FUZZ_CHECK(t == 5.0);
  } else {
    FUZZ_CHECK(s != NULL && why != NULL);
  }
  if (s == NULL)
    return;
  why = NULL;
  if (gw_query_version_parse(s, &version, &why) == 0) {
    snprintf(text, sizeof(text), "%" PRIu64, version);
    FUZZ_CHECK(gw_query_version_parse(text, &version2, &why) == 0);
    FUZZ_CHECK(version2 == version && version <= (uint64_t)INT64_MAX);
  } else {
    FUZZ_CHECK(why != NULL);
  }
  why = NULL;
  if (gw_query_index_parse(s, &index, &why) == 0) {
    snprintf(text, sizeof(text), "%" PRId64, index);
    FUZZ_CHECK(gw_query_index_parse(text, &index2, &why) == 0);
    FUZZ_CHECK(index2 == index);
    fuzz_slice(index, INT64_MAX);
    fuzz_slice(0, index);
    fuzz_slice(index, -(index / 2) - 1);
  } else {
    FUZZ_CHECK(why != NULL);
  }
  why = NULL;
  if (gw_query_max_parse(s, &max, &why) == 0)
    FUZZ_CHECK(max >= 1 && max <= GW_POP_MAX);
  else
    FUZZ_CHECK(why != NULL);
  why = NULL;
  if (gw_query_ttl_parse(s, FUZZ_MAX_LEASE, &t, &why) == 0)
    FUZZ_CHECK(t > 0 && t <= FUZZ_MAX_LEASE);
  else
    FUZZ_CHECK(why != NULL);
  /* As a listing's ?prefix=, ?after= and ?limit=. */
  {
    struct gw_page page;
    why = NULL;
    if (gw_query_page_parse(s, NULL, NULL, &page, &why) == 0)
      FUZZ_CHECK(strlen(page.prefix) <= ATR_NAME_MAX && !page.has_after &&
                 page.limit == GW_LIST_DEFAULT &&
                 (page.prefix[0] == '\0' ||
                  atr_name_check(page.prefix, strlen(page.prefix)) == 0));
    else
      FUZZ_CHECK(why != NULL);
    why = NULL;
    if (gw_query_page_parse(NULL, s, NULL, &page, &why) == 0)
      FUZZ_CHECK(page.has_after &&
                 atr_name_check(page.after, strlen(page.after)) == 0);
    else
      FUZZ_CHECK(why != NULL);
    why = NULL;
    if (gw_query_page_parse(NULL, NULL, s, &page, &why) == 0)
      FUZZ_CHECK(page.limit >= 1 && page.limit <= GW_LIST_MAX);
    else
      FUZZ_CHECK(why != NULL);
  }
  /* The same text as an Atrium-Fence header. */
  why = NULL;
  {
    char lock[ATR_NAME_MAX + 1];
    uint64_t fence;
    if (gw_fence_parse(s, lock, &fence, &why) == 0)
      FUZZ_CHECK(fence >= 1 && fence <= (uint64_t)INT64_MAX &&
                 atr_name_check(lock, strlen(lock)) == 0);
    else
      FUZZ_CHECK(why != NULL);
  }
}

static void fuzz_query(const char *target) {
  const char *q = strchr(target, '?');
  char *copy, *save = NULL;

  if (q == NULL)
    return;
  copy = strdup(q + 1);
  if (copy == NULL)
    return;
  /* As libmicrohttpd: pairs split at '&', key and value at the first
   * '=', each unescaped. */
  for (char *arg = strtok_r(copy, "&", &save); arg;
       arg = strtok_r(NULL, "&", &save)) {
    char *value = strchr(arg, '=');
    if (value != NULL) {
      *value++ = '\0';
      MHD_http_unescape(value);
    }
    MHD_http_unescape(arg);
    fuzz_query_value(value);
  }
  free(copy);
}

/* ------------------------------------------------------------------- JSON */

static int fuzz_is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parses b's text (which the gateway printed) as one JSON document. */
static gw_json *fuzz_reparse(const gw_buf *b) {
  gw_json *doc = NULL;
  const char *why = NULL;

  FUZZ_CHECK(!b->failed);
  FUZZ_CHECK(gw_json_parse(b->data, b->len, FUZZ_DEPTH, &doc, &why) ==
             GW_JSON_OK);
  return doc;
}

/* Significant digits of a number printed with %g: those of the
 * mantissa without the zeros before and after them. */
static int fuzz_digits(const char *text) {
  int n = 0, zeros = 0;

  for (const char *p = text; *p && *p != 'e' && *p != 'E'; p++) {
    if (*p < '0' || *p > '9')
      continue;
    if (*p == '0') {
      zeros += n > 0; /* counted only if a digit follows */
      continue;
    }
    n += zeros + 1;
    zeros = 0;
  }
  return n ? n : 1;
}

/* v of type printed, then read back as type: the same value. */
static void fuzz_scalar_round_trip(char type, atr_scalar v) {
  gw_buf b;
  gw_json *doc;
  atr_scalar back;

  gw_buf_init(&b);
  gw_json_put_scalar(&b, type, v);
  doc = fuzz_reparse(&b);
  FUZZ_CHECK(gw_json_scalar(doc, gw_json_root(doc), type, &back) == 0);
  switch (atr_type_class(type)) {
  case ATR_TFLOAT:
    FUZZ_CHECK(memcmp(&back.f, &v.f, sizeof(v.f)) == 0); /* same bits */
    /* The shortest text that reads back: one digit fewer does not. */
    {
      int digits = fuzz_digits(b.data);
      char shorter[64];
      if (digits > 1) {
        snprintf(shorter, sizeof(shorter), "%.*g", digits - 1, v.f);
        if (type == 'f')
          FUZZ_CHECK(strtof(shorter, NULL) != (float)v.f);
        else
          FUZZ_CHECK(strtod(shorter, NULL) != v.f);
      }
    }
    break;
  case ATR_TINT:
    FUZZ_CHECK(back.i == v.i);
    break;
  default:
    FUZZ_CHECK(back.u == v.u);
    break;
  }
  gw_json_free(doc);
  gw_buf_fini(&b);
}

/* The range of an integer type code, from the public header's size and
 * class of it: [lo, hi] when signed, [0, uhi] when not. */
static void fuzz_int_range(char type, int64_t *lo, int64_t *hi, uint64_t *uhi,
                           int *is_signed) {
  unsigned bits = 8 * (unsigned)atr_type_size(type);

  *is_signed = atr_type_class(type) == ATR_TINT;
  *hi = bits >= 64 ? INT64_MAX : (int64_t)((UINT64_C(1) << (bits - 1)) - 1);
  *lo = -*hi - 1;
  *uhi = bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

/* The one character (code point <= U+00FF, not U+0000) that the decoded
 * string s is, or -1. */
static int fuzz_one_latin1(const char *s) {
  const unsigned char *u = (const unsigned char *)s;

  if (u[0] != 0 && u[0] < 0x80 && u[1] == 0)
    return u[0];
  if ((u[0] == 0xC2 || u[0] == 0xC3) && (u[1] & 0xC0) == 0x80 && u[2] == 0)
    return ((u[0] & 0x1F) << 6) | (u[1] & 0x3F);
  return -1;
}

/* A number's text as the client sent it, NUL-terminated (the caller
 * frees it), or NULL when out of memory. */
static char *fuzz_node_text(const gw_json *doc, const gw_jnode *node) {
  size_t n;
  const char *p = gw_json_text(doc, node, &n);
  char *copy = malloc(n + 1);

  if (copy != NULL) {
    memcpy(copy, p, n);
    copy[n] = '\0';
  }
  return copy;
}

/* gw_json_int64 / gw_json_uint64 (results ri, ru) against the C library
 * reading the same text. */
static void fuzz_number_oracle(const char *text, int ri, int64_t i64, int ru,
                               uint64_t u64) {
  long long ll;
  unsigned long long ull;
  int neg = text[0] == '-';

  if (strpbrk(text, ".eE") != NULL) {
    FUZZ_CHECK(ri == GW_JSON_EVALUE && ru == GW_JSON_EVALUE);
    return;
  }
  errno = 0;
  ll = strtoll(text, NULL, 10);
  if (errno == ERANGE)
    FUZZ_CHECK(ri == GW_JSON_ERANGE);
  else
    FUZZ_CHECK(ri == 0 && i64 == ll);
  errno = 0;
  ull = strtoull(text, NULL, 10); /* reads "-5" as 2^64 - 5 */
  if (errno == ERANGE || (neg && ull != 0))
    FUZZ_CHECK(ru == GW_JSON_ERANGE);
  else
    FUZZ_CHECK(ru == 0 && u64 == ull);
}

/* An integer printed as C prints it reads back exactly: with
 * gw_json_int64 (is_signed; bits is the int64's two's complement) or
 * gw_json_uint64. */
static void fuzz_int_round_trip(int is_signed, uint64_t bits) {
  gw_buf b;
  gw_json *back;
  int64_t i;
  uint64_t u;

  gw_buf_init(&b);
  if (is_signed)
    gw_buf_fmt(&b, "%" PRId64, (int64_t)bits);
  else
    gw_buf_fmt(&b, "%" PRIu64, bits);
  back = fuzz_reparse(&b);
  if (is_signed)
    FUZZ_CHECK(gw_json_int64(back, gw_json_root(back), &i) == 0 &&
               i == (int64_t)bits);
  else
    FUZZ_CHECK(gw_json_uint64(back, gw_json_root(back), &u) == 0 && u == bits);
  gw_json_free(back);
  gw_buf_fini(&b);
}

static void fuzz_node(const gw_json *doc, const gw_jnode *node) {
  gw_jtype jt = gw_json_type(node);
  int64_t i64 = 0;
  uint64_t u64 = 0;
  int ri = gw_json_int64(doc, node, &i64);
  int ru = gw_json_uint64(doc, node, &u64);
  atr_scalar v;

  char *text = NULL;

  FUZZ_CHECK(ri == 0 || ri == GW_JSON_EVALUE || ri == GW_JSON_ERANGE);
  FUZZ_CHECK(ru == 0 || ru == GW_JSON_EVALUE || ru == GW_JSON_ERANGE);
  if (jt != GW_JNUMBER)
    FUZZ_CHECK(ri == GW_JSON_EVALUE && ru == GW_JSON_EVALUE);
  else if ((text = fuzz_node_text(doc, node)) != NULL)
    fuzz_number_oracle(text, ri, i64, ru, u64);
  /* int64 and uint64 agree where both can hold the number. */
  if (ri == 0 && i64 >= 0)
    FUZZ_CHECK(ru == 0 && u64 == (uint64_t)i64);
  if (ru == 0 && u64 <= (uint64_t)INT64_MAX)
    FUZZ_CHECK(ri == 0 && (uint64_t)i64 == u64);
  if (ri == GW_JSON_EVALUE || ru == GW_JSON_EVALUE)
    FUZZ_CHECK(ri == ru); /* a fraction is one for both */

  for (const char *t = fuzz_types; *t; t++) {
    char type = *t;
    int rv = gw_json_scalar(doc, node, type, &v);
    FUZZ_CHECK(rv == 0 || rv == GW_JSON_EVALUE || rv == GW_JSON_ERANGE ||
               rv == GW_JSON_ENOMEM);
    if (rv == GW_JSON_ENOMEM)
      continue;
    switch (type) {
    case 'f':
    case 'd':
      FUZZ_CHECK((rv == GW_JSON_EVALUE) == (jt != GW_JNUMBER));
      if (text != NULL) {
        /* The C library's correctly rounded reading of the same text. */
        double want =
            type == 'f' ? (double)strtof(text, NULL) : strtod(text, NULL);
        if (rv == 0)
          FUZZ_CHECK(memcmp(&want, &v.f, sizeof(want)) == 0);
        else
          FUZZ_CHECK(rv == GW_JSON_ERANGE && !isfinite(want));
      }
      if (rv != 0)
        break;
      FUZZ_CHECK(isfinite(v.f));
      if (type == 'f')
        FUZZ_CHECK((double)(float)v.f == v.f);
      /* An integer reads as the double nearest to it, as C converts. */
      if (ri == 0 && type == 'd')
        FUZZ_CHECK(v.f == (double)i64);
      if (ru == 0 && type == 'd')
        FUZZ_CHECK(v.f == (double)u64);
      break;
    case '?':
      FUZZ_CHECK((rv == 0) == (jt == GW_JTRUE || jt == GW_JFALSE));
      if (rv == 0)
        FUZZ_CHECK(v.i == (jt == GW_JTRUE));
      else
        FUZZ_CHECK(rv == GW_JSON_EVALUE);
      break;
    case 'c': {
      const char *s = gw_json_string(doc, node);
      FUZZ_CHECK(jt == GW_JSTRING || rv == GW_JSON_EVALUE);
      if (rv == 0) {
        FUZZ_CHECK(v.u <= 0xFF);
        /* What cJSON decoded says the same (U+0000 is no C string). */
        if (v.u == 0)
          FUZZ_CHECK(s == NULL);
        else
          FUZZ_CHECK(fuzz_one_latin1(s) == (int)v.u);
      } else if (s != NULL && fuzz_one_latin1(s) >= 0) {
        /* A one-character string of U+0001..U+00FF is a 'c'. */
        FUZZ_CHECK(!"a one-character string refused as 'c'");
      }
      break;
    }
    default: {
      int64_t lo, hi;
      uint64_t uhi;
      int is_signed;
      fuzz_int_range(type, &lo, &hi, &uhi, &is_signed);
      if (is_signed) {
        if (ri == 0 && i64 >= lo && i64 <= hi)
          FUZZ_CHECK(rv == 0 && v.i == i64);
        else if (ri == 0)
          FUZZ_CHECK(rv == GW_JSON_ERANGE);
        else
          FUZZ_CHECK(rv == ri);
      } else {
        if (ru == 0 && u64 <= uhi)
          FUZZ_CHECK(rv == 0 && v.u == u64);
        else if (ru == 0)
          FUZZ_CHECK(rv == GW_JSON_ERANGE);
        else
          FUZZ_CHECK(rv == ru);
      }
      break;
    }
    }
    if (rv == 0)
      fuzz_scalar_round_trip(type, v);
  }
  FUZZ_CHECK(gw_json_scalar(doc, node, 'x', &v) == GW_JSON_EVALUE);

  /* Exact integers print and read back. */
  if (ri == 0)
    fuzz_int_round_trip(1, (uint64_t)i64);
  if (ru == 0)
    fuzz_int_round_trip(0, u64);

  free(text);

  /* A decoded string printed and parsed again is the same string. */
  if (jt == GW_JSTRING) {
    const char *s = gw_json_string(doc, node);
    size_t n;
    const char *raw = gw_json_text(doc, node, &n);
    gw_buf b;
    gw_json *back;
    const char *again;
    if (s == NULL) { /* only for a U+0000 inside */
      FUZZ_CHECK(memmem(raw, n, "\\u0000", 6) != NULL);
      return;
    }
    gw_buf_init(&b);
    gw_json_put_string(&b, s, strlen(s));
    back = fuzz_reparse(&b);
    again = gw_json_string(back, gw_json_root(back));
    FUZZ_CHECK(again != NULL && strcmp(again, s) == 0);
    gw_json_free(back);
    gw_buf_fini(&b);
  } else {
    FUZZ_CHECK(gw_json_string(doc, node) == NULL);
  }
}

/* Walks the tree in pre-order, checking each container's members. */
static void fuzz_walk(const gw_json *doc, const gw_jnode *node, size_t *seen) {
  gw_jtype jt = gw_json_type(node);
  size_t count = 0;

  if ((*seen)++ < FUZZ_MAX_NODES)
    fuzz_node(doc, node);
  if (jt != GW_JARRAY && jt != GW_JOBJECT) {
    FUZZ_CHECK(gw_json_child(node) == NULL);
    return;
  }
  for (const gw_jnode *c = gw_json_child(node); c; c = gw_json_next(c)) {
    const char *key = gw_json_key(c);
    count++;
    if (jt == GW_JOBJECT) {
      const gw_jnode *found;
      FUZZ_CHECK(key != NULL);
      /* The first member of that name, which may be an earlier one. */
      found = gw_json_get(node, key);
      FUZZ_CHECK(found != NULL && strcmp(gw_json_key(found), key) == 0);
    }
    fuzz_walk(doc, c, seen);
  }
  FUZZ_CHECK(gw_json_count(node) == count);
}

static void fuzz_body(const char *body, size_t len) {
  size_t start = 0, end = 0, s2, e2, *elems = NULL, n_elems = 0;
  const char *why_check = NULL, *why_parse = NULL;
  gw_json *doc = NULL;
  int rc, rp;

  rc = gw_json_check(body, len, FUZZ_DEPTH, &start, &end, NULL, NULL,
                     &why_check);
  rp = gw_json_parse(body, len, FUZZ_DEPTH, &doc, &why_parse);
  /* The scanner alone (queue items) and the tree (every other body) take
   * the same documents, but that the tree refuses a member name with a
   * U+0000 in it. */
  FUZZ_CHECK(rc == rp || rp == GW_JSON_ENOMEM ||
             (rc == GW_JSON_OK && rp == GW_JSON_ESYNTAX &&
              memmem(body, len, "\\u0000", 6) != NULL));
  if (rc != GW_JSON_OK) {
    FUZZ_CHECK(rc == GW_JSON_ESYNTAX || rc == GW_JSON_EDEPTH);
    FUZZ_CHECK(why_check != NULL && doc == NULL);
    return;
  }
  if (rp != GW_JSON_OK)
    return;
  FUZZ_CHECK(start < end && end <= len);
  for (size_t i = 0; i < len; i++)
    if (i < start || i >= end)
      FUZZ_CHECK(fuzz_is_ws(body[i]));
  /* A queue keeps body[start..end); a pop checks it again, deeper. */
  FUZZ_CHECK(gw_json_check(body + start, end - start, FUZZ_ITEM_DEPTH, &s2, &e2,
                           NULL, NULL, NULL) == GW_JSON_OK);
  FUZZ_CHECK(s2 == 0 && e2 == end - start);

  /* A batch: the elements of an array, each one JSON value. */
  rc = gw_json_check(body, len, FUZZ_DEPTH, &s2, &e2, &elems, &n_elems, NULL);
  if (gw_json_type(gw_json_root(doc)) == GW_JARRAY) {
    FUZZ_CHECK(rc == GW_JSON_OK);
    FUZZ_CHECK(n_elems == gw_json_count(gw_json_root(doc)));
    for (size_t k = 0; k < n_elems; k++) {
      size_t a = elems[2 * k], b = elems[2 * k + 1], s3, e3;
      FUZZ_CHECK(start < a && a < b && b < end);
      FUZZ_CHECK(gw_json_check(body + a, b - a, FUZZ_DEPTH, &s3, &e3, NULL,
                               NULL, NULL) == GW_JSON_OK);
      FUZZ_CHECK(s3 == 0 && e3 == b - a);
    }
    free(elems);
  } else {
    FUZZ_CHECK(rc == GW_JSON_EVALUE);
  }

  {
    size_t seen = 0;
    fuzz_walk(doc, gw_json_root(doc), &seen);
  }
  gw_json_free(doc);
}

/* Any bytes (a C program's queue item) become a JSON string that parses;
 * valid UTF-8 without U+0000 comes back unchanged. */
static void fuzz_bytes(const char *p, size_t len) {
  gw_buf b;
  gw_json *doc;
  const char *s;

  gw_buf_init(&b);
  gw_json_put_bytes(&b, p, len);
  doc = fuzz_reparse(&b);
  FUZZ_CHECK(gw_json_type(gw_json_root(doc)) == GW_JSTRING);
  s = gw_json_string(doc, gw_json_root(doc));
  FUZZ_CHECK((s == NULL) == (memchr(p, '\0', len) != NULL));
  if (s != NULL) {
    int ascii = 1;
    for (size_t i = 0; i < len; i++)
      if ((unsigned char)p[i] >= 0x80)
        ascii = 0;
    /* Only bytes of invalid UTF-8 may change (to U+FFFD). */
    FUZZ_CHECK(!ascii || (strlen(s) == len && memcmp(s, p, len) == 0));
  }
  gw_json_free(doc);
  gw_buf_fini(&b);
}

/* ------------------------------------------------------------------- entry */

/* Once: the error table answers every core code (as atriumd checks at
 * its start). */
/* ------------------------------------------------------------------ Host */

/* An authority split, rebuilt ("[host]" when it must be) and split
 * again gives the same host and port; judging it reads nothing outside.
 * (A host with a NUL is left out of the rebuilding: MHD's headers are C
 * strings.) */
static void fuzz_host(const char *s, size_t n) {
  const char *host, *host2;
  size_t hlen, hlen2, len;
  long port, port2;
  char again[600];
  int bracket;

  if (gw_auth_split(s, n, &host, &hlen, &port) != 0)
    return;
  FUZZ_CHECK(hlen > 0 && host >= s && host + hlen <= s + n);
  FUZZ_CHECK(port >= -1 && port <= 65535);
  (void)gw_auth_host_allowed(host, hlen);
  if (hlen > 256 || memchr(host, '\0', hlen) != NULL)
    return;
  /* A host with a colon or a leading '[' came in brackets, and so holds
   * no ']'. */
  bracket = memchr(host, ':', hlen) != NULL || host[0] == '[';
  len = (size_t)snprintf(again, sizeof(again), bracket ? "[%.*s]" : "%.*s",
                         (int)hlen, host);
  if (port >= 0)
    len += (size_t)snprintf(again + len, sizeof(again) - len, ":%ld", port);
  FUZZ_CHECK(gw_auth_split(again, len, &host2, &hlen2, &port2) == 0);
  FUZZ_CHECK(hlen2 == hlen && memcmp(host, host2, hlen) == 0 && port2 == port);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  gw_srv = &fuzz_srv;
  FUZZ_CHECK(gw_error_check() == 0);
  for (int code = -1; code > -ATR__LAST; code--)
    FUZZ_CHECK(gw_error_lookup(code)->status >= 400);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  const char *nl = memchr(text, '\n', size);
  size_t line_len = nl ? (size_t)(nl - text) : size;
  const char *body = nl ? nl + 1 : text + size;
  size_t body_len = size - (size_t)(body - text);
  const char *sp;
  char *target;

  /* The request line: "METHOD TARGET", or just a target. libmicrohttpd
   * hands the target over as a C string, so a NUL ends it. */
  if (line_len > 0 && text[line_len - 1] == '\r')
    line_len--;
  sp = memchr(text, ' ', line_len);
  if (sp != NULL) {
    line_len -= (size_t)(sp + 1 - text);
    text = sp + 1;
  }
  target = malloc(line_len + 1);
  if (target == NULL)
    return 0;
  memcpy(target, text, line_len);
  target[line_len] = '\0';
  fuzz_route(target);
  fuzz_query(target);
  free(target);

  fuzz_body(body, body_len);
  fuzz_bytes(body, body_len);
  fuzz_host(body, body_len);
  return 0;
}
