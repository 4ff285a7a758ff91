/*
 * buf.c - the growable byte buffer (buf.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void gw_buf_init(gw_buf *b) {
  memset(b, 0, sizeof(*b));
}

void gw_buf_fini(gw_buf *b) {
  free(b->data);
  memset(b, 0, sizeof(*b));
}

static int buf_reserve(gw_buf *b, size_t extra) {
  size_t want, cap;
  char *p;

  if (b->failed)
    return -1;
  if (extra > SIZE_MAX / 2 - b->len) {
    b->failed = 1;
    return -1;
  }
  want = b->len + extra + 1;
  if (want <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < want)
    cap *= 2;
  p = realloc(b->data, cap);
  if (p == NULL) {
    b->failed = 1;
    return -1;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void gw_buf_add(gw_buf *b, const void *p, size_t n) {
  if (n == 0)
    return; /* p may be NULL (an empty buffer's data) */
  if (buf_reserve(b, n) != 0)
    return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void gw_buf_str(gw_buf *b, const char *s) {
  gw_buf_add(b, s, strlen(s));
}

void gw_buf_fmt(gw_buf *b, const char *fmt, ...) {
  va_list ap;
  int n;

  if (buf_reserve(b, 64) != 0)
    return;
  va_start(ap, fmt);
  n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = 1;
    return;
  }
  if ((size_t)n >= b->cap - b->len) {
    if (buf_reserve(b, (size_t)n) != 0)
      return;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

char *gw_buf_take(gw_buf *b, size_t *len) {
  char *p = b->data;

  *len = b->len;
  memset(b, 0, sizeof(*b));
  return p;
}

void gw_buf_reset(gw_buf *b) {
  if (b->failed)
    gw_buf_fini(b);
  b->len = 0;
}

void gw_buf_u64(gw_buf *b, unsigned long long v) {
  char digits[24], *e = digits + sizeof(digits);

  do
    *--e = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  gw_buf_add(b, e, (size_t)(digits + sizeof(digits) - e));
}
