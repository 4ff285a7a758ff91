/*
 * json_out.c - the JSON codec's printing (json.h): strings escaped,
 * arbitrary bytes as a string, every type code's scalar exactly (floats
 * by the core's shortest round-trip printer).
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ------------------------------------------------------------------ output */

void gw_json_put_string(gw_buf *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0;

  gw_buf_add(b, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[6];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    gw_buf_add(b, s + run, i - run);
    run = i + 1;
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      gw_buf_add(b, esc, 2);
    } else {
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      gw_buf_add(b, esc, 6);
    }
  }
  gw_buf_add(b, s + run, len - run);
  gw_buf_add(b, "\"", 1);
}

void gw_json_put_bytes(gw_buf *b, const char *p, size_t len) {
  const unsigned char *u = (const unsigned char *)p;
  size_t i = 0, run = 0;

  gw_buf_add(b, "\"", 1);
  while (i < len) {
    size_t k = gw_json_utf8_len(u + i, len - i);
    if (k == 1 && u[i] >= 0x20 && u[i] != '"' && u[i] != '\\') {
      i++;
      continue;
    }
    if (k > 1) {
      i += k;
      continue;
    }
    /* Flush the clean run, then this byte escaped or replaced. */
    gw_buf_add(b, p + run, i - run);
    if (k == 0) {
      gw_buf_str(b, "\\ufffd");
    } else {
      size_t mark = b->len;
      gw_json_put_string(b, p + i, 1);
      if (!b->failed) { /* keep the escape, drop the quotes around it */
        memmove(b->data + mark, b->data + mark + 1, b->len - mark - 2);
        b->len -= 2;
        b->data[b->len] = '\0';
      }
    }
    i++;
    run = i;
  }
  gw_buf_add(b, p + run, len - run);
  gw_buf_add(b, "\"", 1);
}

void gw_json_put_scalar(gw_buf *b, char type, atr_scalar v) {
  char text[64];

  if (type == '?') {
    gw_buf_str(b, v.i ? "true" : "false");
    return;
  }
  if (type == 'c') {
    unsigned char c = (unsigned char)v.u;
    char u8[2];
    if (c < 0x80) {
      u8[0] = (char)c;
      gw_json_put_string(b, u8, 1);
    } else { /* U+0080..U+00FF as UTF-8 */
      u8[0] = (char)(0xC0 | (c >> 6));
      u8[1] = (char)(0x80 | (c & 0x3F));
      gw_json_put_string(b, u8, 2);
    }
    return;
  }
  switch (atr_type_class(type)) {
  case ATR_TINT:
    gw_buf_fmt(b, "%" PRId64, v.i);
    return;
  case ATR_TUINT:
    gw_buf_fmt(b, "%" PRIu64, v.u);
    return;
  default: /* f, d */
    if (!isfinite(v.f)) {
      gw_buf_str(b, "null");
      return;
    }
    atr_float_format(type, v.f, text, sizeof text);
    gw_buf_str(b, text);
    return;
  }
}

void gw_json_put_item(gw_buf *b, const char *p, size_t len,
                      unsigned max_depth) {
  size_t s, e;

  if (gw_json_check(p, len, max_depth, &s, &e, NULL, NULL, NULL) == GW_JSON_OK)
    gw_buf_add(b, p + s, e - s);
  else
    gw_json_put_bytes(b, p, len);
}
