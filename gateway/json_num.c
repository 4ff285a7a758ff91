/*
 * json_num.c - the JSON codec's exact reading of numbers (json.h): a
 * node's own text as an int64, a uint64 or any type code's scalar, and
 * the numbers of query parameters. Never through a double where an
 * integer is meant.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* --------------------------------------------------------- exact numbers */

/* Parses the integer text p[0..n) (JSON grammar, already checked): its
 * magnitude and sign. EVALUE for a fraction or exponent, ERANGE past 64
 * bits. */
static int int_text(const char *p, size_t n, uint64_t *mag, int *neg) {
  uint64_t v = 0;
  size_t i = 0;

  *neg = 0;
  if (i < n && p[i] == '-') {
    *neg = 1;
    i++;
  }
  if (i == n)
    return GW_JSON_EVALUE;
  /* A fraction or an exponent is the wrong kind of number, however big:
   * look at every character before judging the range. */
  for (size_t k = i; k < n; k++)
    if (p[k] < '0' || p[k] > '9')
      return GW_JSON_EVALUE;
  for (; i < n; i++) {
    unsigned d = (unsigned)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return GW_JSON_ERANGE;
    v = v * 10 + d;
  }
  *mag = v;
  return 0;
}

static int to_int64(uint64_t mag, int neg, int64_t *out) {
  if (neg) {
    if (mag > (uint64_t)INT64_MAX + 1)
      return GW_JSON_ERANGE;
    *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
  } else {
    if (mag > (uint64_t)INT64_MAX)
      return GW_JSON_ERANGE;
    *out = (int64_t)mag;
  }
  return 0;
}

/* A number node's integer magnitude and sign: 0, EVALUE or ERANGE. */
static int node_int(const gw_json *doc, const gw_jnode *node, uint64_t *mag,
                    int *neg) {
  const char *p;
  size_t n;

  if (gw_json_type(node) != GW_JNUMBER)
    return GW_JSON_EVALUE;
  p = gw_json_text(doc, node, &n);
  return int_text(p, n, mag, neg);
}

int gw_json_int64(const gw_json *doc, const gw_jnode *node, int64_t *out) {
  uint64_t mag;
  int neg, rv;

  if ((rv = node_int(doc, node, &mag, &neg)) != 0)
    return rv;
  return to_int64(mag, neg, out);
}

int gw_json_uint64(const gw_json *doc, const gw_jnode *node, uint64_t *out) {
  uint64_t mag;
  int neg, rv;

  if ((rv = node_int(doc, node, &mag, &neg)) != 0)
    return rv;
  if (neg && mag != 0)
    return GW_JSON_ERANGE;
  *out = mag;
  return 0;
}

/* A finite double (or, with as_float, float) from the number's own text.
 * A float is read with strtof, never through a double: rounding twice
 * can land on the other neighbour (1.00000005960464477539062500001 is
 * just above the midpoint between 1 and the next float, but its nearest
 * double is the midpoint itself, which then rounds to even, down to 1). */
static int json_double(const gw_json *doc, const gw_jnode *node, int as_float,
                       double *out) {
  const char *p;
  size_t n;
  char small[128];
  char *copy = small, *end;
  double d;
  int rv;

  if (gw_json_type(node) != GW_JNUMBER)
    return GW_JSON_EVALUE;
  p = gw_json_text(doc, node, &n);
  if (n >= sizeof(small)) {
    copy = malloc(n + 1);
    if (copy == NULL)
      return GW_JSON_ENOMEM;
  }
  memcpy(copy, p, n);
  copy[n] = '\0';
  d = as_float ? (double)strtof(copy, &end) : strtod(copy, &end);
  rv = (end == copy + n && isfinite(d)) ? 0 : GW_JSON_ERANGE;
  if (copy != small)
    free(copy);
  if (rv == 0)
    *out = d;
  return rv;
}

/* Decodes one \u escape or UTF-8 character of a string's raw text;
 * returns its length or 0. */
static size_t string_char(const char *p, size_t n, unsigned *cp) {
  const unsigned char *u = (const unsigned char *)p;
  size_t k;

  if (n == 0)
    return 0;
  if (u[0] == '\\') {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *e;
    if (n < 2)
      return 0;
    if (u[1] == 'u') {
      unsigned v = 0;
      if (n < 6)
        return 0;
      for (int i = 2; i < 6; i++) {
        unsigned char c = u[i];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
      }
      if (v >= 0xD800 && v <= 0xDFFF) {
        *cp = 0x10000; /* any astral character: never one byte */
        return n >= 12 ? 12 : 0;
      }
      *cp = v;
      return 6;
    }
    e = strchr(from, u[1]);
    if (e == NULL)
      return 0;
    *cp = (unsigned char)to[e - from];
    return 2;
  }
  k = gw_json_utf8_len(u, n);
  if (k == 1)
    *cp = u[0];
  else if (k == 2)
    *cp = ((unsigned)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
  else
    *cp = 0x10000; /* three or four bytes: above U+00FF */
  return k;
}

/* A bool: true or false. */
static int json_bool(const gw_jnode *node, atr_scalar *out) {
  if (gw_json_type(node) == GW_JTRUE)
    out->i = 1;
  else if (gw_json_type(node) == GW_JFALSE)
    out->i = 0;
  else
    return GW_JSON_EVALUE;
  return 0;
}

/* A 'c': a one-character string of U+0000..U+00FF. */
static int json_char(const gw_json *doc, const gw_jnode *node,
                     atr_scalar *out) {
  const char *p;
  size_t n, k;
  unsigned cp;

  if (gw_json_type(node) != GW_JSTRING)
    return GW_JSON_EVALUE;
  p = gw_json_text(doc, node, &n);
  p++; /* the quotes */
  n -= 2;
  k = string_char(p, n, &cp);
  if (k == 0 || k != n)
    return GW_JSON_EVALUE; /* empty, or more than one character */
  if (cp > 0xFF)
    return GW_JSON_ERANGE;
  out->u = cp;
  return 0;
}

int gw_json_scalar(const gw_json *doc, const gw_jnode *node, char type,
                   atr_scalar *out) {
  unsigned bits = 8 * (unsigned)atr_type_size(type);
  int64_t i, hi;
  uint64_t u;
  double d;
  int rv;

  if (type == '?')
    return json_bool(node, out);
  if (type == 'c')
    return json_char(doc, node, out);
  switch (atr_type_class(type)) {
  case ATR_TINT: /* -2^(bits-1) .. 2^(bits-1) - 1 */
    hi = bits >= 64 ? INT64_MAX : (int64_t)((UINT64_C(1) << (bits - 1)) - 1);
    if ((rv = gw_json_int64(doc, node, &i)) != 0)
      return rv;
    if (i < -hi - 1 || i > hi)
      return GW_JSON_ERANGE;
    out->i = i;
    return 0;
  case ATR_TUINT: /* 0 .. 2^bits - 1 */
    if ((rv = gw_json_uint64(doc, node, &u)) != 0)
      return rv;
    if (bits < 64 && u > (UINT64_C(1) << bits) - 1)
      return GW_JSON_ERANGE;
    out->u = u;
    return 0;
  case ATR_TFLOAT:
    if ((rv = json_double(doc, node, type == 'f', &d)) != 0)
      return rv;
    out->f = d;
    return 0;
  default:
    return GW_JSON_EVALUE;
  }
}

int gw_parse_int64(const char *s, int64_t *out) {
  uint64_t mag;
  int neg, rv;

  if (s == NULL || *s == '\0')
    return GW_JSON_EVALUE;
  if ((rv = int_text(s, strlen(s), &mag, &neg)) != 0)
    return rv;
  return to_int64(mag, neg, out);
}

int gw_parse_double(const char *s, double *out) {
  char *end;
  double d;

  if (s == NULL || *s == '\0' || strspn(s, "0123456789.eE+-") != strlen(s))
    return GW_JSON_EVALUE;
  errno = 0;
  d = strtod(s, &end);
  if (*end != '\0' || end == s)
    return GW_JSON_EVALUE;
  if (!isfinite(d))
    return GW_JSON_ERANGE;
  *out = d;
  return 0;
}
