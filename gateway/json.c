/*
 * json.c - the gateway's JSON codec; the only file that includes cJSON.
 *
 * cJSON alone is not exact enough for atrium: it keeps numbers as doubles
 * (an int64 beyond 2^53 loses digits), prints them with "%1.15g" (which
 * does not read back), passes invalid UTF-8 through and accepts some
 * non-JSON ("01", "1."). So every body first goes through a strict
 * scanner of our own, which checks the grammar, UTF-8 and the nesting
 * depth, and notes where each value's text lies. cJSON then builds the
 * tree, and each node is tied to its text by its position in document
 * order (cJSON builds nodes in exactly that pre-order): numbers are read
 * from their own text (json_num.c), never from cJSON's double. Output is
 * printed by json_out.c.
 */
#include <cjson/cJSON.h>

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ---------------------------------------------------------------- scanner */

/* What the scanner notes: every value's span, or only the elements of a
 * top-level array. */
enum { SCAN_NONE, SCAN_ALL, SCAN_ELEMS };

struct scan {
  const unsigned char *p;
  size_t len, pos;
  unsigned max_depth;
  int record;
  size_t *spans; /* pairs start, end */
  size_t n, cap;
  int nul_key; /* a member name holds a \u0000 */
  const char *why;
  int err;
};

static int scan_fail(struct scan *s, int err, const char *why) {
  if (s->err == 0) {
    s->err = err;
    s->why = why;
  }
  return -1;
}

static void scan_ws(struct scan *s) {
  while (s->pos < s->len) {
    unsigned char c = s->p[s->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    s->pos++;
  }
}

static int scan_hex4(struct scan *s, unsigned *out) {
  unsigned v = 0;

  if (s->len - s->pos < 4)
    return scan_fail(s, GW_JSON_ESYNTAX, "bad \\u escape");
  for (int i = 0; i < 4; i++) {
    unsigned char c = s->p[s->pos++];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return scan_fail(s, GW_JSON_ESYNTAX, "bad \\u escape");
  }
  *out = v;
  return 0;
}

size_t gw_json_utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  unsigned char lo = 0x80, hi = 0xBF;
  size_t k;

  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    k = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    k = 3;
    if (c == 0xE0)
      lo = 0xA0;
    if (c == 0xED)
      hi = 0x9F; /* no UTF-16 surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    k = 4;
    if (c == 0xF0)
      lo = 0x90;
    if (c == 0xF4)
      hi = 0x8F;
  } else
    return 0;
  if (n < k)
    return 0;
  if (p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < k; i++)
    if (p[i] < 0x80 || p[i] > 0xBF)
      return 0;
  return k;
}

static int scan_string(struct scan *s, int is_key) {
  s->pos++; /* the opening quote */
  while (s->pos < s->len) {
    unsigned char c = s->p[s->pos];
    if (c == '"') {
      s->pos++;
      return 0;
    }
    if (c < 0x20)
      return scan_fail(s, GW_JSON_ESYNTAX, "control character in a string");
    if (c == '\\') {
      unsigned u, u2;
      s->pos++;
      if (s->pos >= s->len)
        break;
      c = s->p[s->pos++];
      if (c == 'u') {
        if (scan_hex4(s, &u) != 0)
          return -1;
        if (u == 0 && is_key)
          s->nul_key = 1;
        if (u >= 0xDC00 && u <= 0xDFFF)
          return scan_fail(s, GW_JSON_ESYNTAX, "lone UTF-16 surrogate");
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (s->len - s->pos < 2 || s->p[s->pos] != '\\' ||
              s->p[s->pos + 1] != 'u')
            return scan_fail(s, GW_JSON_ESYNTAX, "lone UTF-16 surrogate");
          s->pos += 2;
          if (scan_hex4(s, &u2) != 0)
            return -1;
          if (u2 < 0xDC00 || u2 > 0xDFFF)
            return scan_fail(s, GW_JSON_ESYNTAX, "lone UTF-16 surrogate");
        }
      } else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0')
        return scan_fail(s, GW_JSON_ESYNTAX, "bad escape in a string");
      continue;
    }
    if (c >= 0x80) {
      size_t k = gw_json_utf8_len(s->p + s->pos, s->len - s->pos);
      if (k == 0)
        return scan_fail(s, GW_JSON_ESYNTAX, "invalid UTF-8");
      s->pos += k;
      continue;
    }
    s->pos++;
  }
  return scan_fail(s, GW_JSON_ESYNTAX, "unterminated string");
}

static int is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

static int scan_number(struct scan *s) {
  const unsigned char *p = s->p;

  if (s->pos < s->len && p[s->pos] == '-')
    s->pos++;
  if (s->pos >= s->len || !is_digit(p[s->pos]))
    return scan_fail(s, GW_JSON_ESYNTAX, "bad number");
  if (p[s->pos] == '0')
    s->pos++;
  else
    while (s->pos < s->len && is_digit(p[s->pos]))
      s->pos++;
  if (s->pos < s->len && p[s->pos] == '.') {
    s->pos++;
    if (s->pos >= s->len || !is_digit(p[s->pos]))
      return scan_fail(s, GW_JSON_ESYNTAX, "bad number");
    while (s->pos < s->len && is_digit(p[s->pos]))
      s->pos++;
  }
  if (s->pos < s->len && (p[s->pos] == 'e' || p[s->pos] == 'E')) {
    s->pos++;
    if (s->pos < s->len && (p[s->pos] == '+' || p[s->pos] == '-'))
      s->pos++;
    if (s->pos >= s->len || !is_digit(p[s->pos]))
      return scan_fail(s, GW_JSON_ESYNTAX, "bad number");
    while (s->pos < s->len && is_digit(p[s->pos]))
      s->pos++;
  }
  return 0;
}

static int scan_word(struct scan *s, const char *word) {
  size_t n = strlen(word);

  if (s->len - s->pos < n || memcmp(s->p + s->pos, word, n) != 0)
    return scan_fail(s, GW_JSON_ESYNTAX, "unexpected character");
  s->pos += n;
  return 0;
}

static int scan_value(struct scan *s, unsigned depth);

static int scan_note(struct scan *s, unsigned depth, size_t *slot) {
  if (s->record == SCAN_NONE || (s->record == SCAN_ELEMS && depth != 1)) {
    *slot = SIZE_MAX;
    return 0;
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    size_t *p = realloc(s->spans, cap * 2 * sizeof(*p));
    if (p == NULL)
      return scan_fail(s, GW_JSON_ENOMEM, "out of memory");
    s->spans = p;
    s->cap = cap;
  }
  *slot = s->n++;
  s->spans[2 * *slot] = s->pos;
  return 0;
}

static int scan_container(struct scan *s, unsigned depth, int is_object) {
  unsigned char close = is_object ? '}' : ']';

  if (depth >= s->max_depth)
    return scan_fail(s, GW_JSON_EDEPTH, "nested too deep");
  s->pos++;
  scan_ws(s);
  if (s->pos < s->len && s->p[s->pos] == close) {
    s->pos++;
    return 0;
  }
  for (;;) {
    if (is_object) {
      if (s->pos >= s->len || s->p[s->pos] != '"')
        return scan_fail(s, GW_JSON_ESYNTAX, "expected a member name");
      if (scan_string(s, 1) != 0)
        return -1;
      scan_ws(s);
      if (s->pos >= s->len || s->p[s->pos] != ':')
        return scan_fail(s, GW_JSON_ESYNTAX, "expected ':'");
      s->pos++;
      scan_ws(s);
    }
    if (scan_value(s, depth + 1) != 0)
      return -1;
    scan_ws(s);
    if (s->pos >= s->len)
      return scan_fail(s, GW_JSON_ESYNTAX, "unexpected end");
    if (s->p[s->pos] == close) {
      s->pos++;
      return 0;
    }
    if (s->p[s->pos] != ',')
      return scan_fail(s, GW_JSON_ESYNTAX, "expected ',' or a closing bracket");
    s->pos++;
    scan_ws(s);
  }
}

/* Scans one value at s->pos (no leading white space). depth counts the
 * containers around it. */
static int scan_value(struct scan *s, unsigned depth) {
  size_t slot;
  int rv;

  if (s->pos >= s->len)
    return scan_fail(s, GW_JSON_ESYNTAX, "unexpected end");
  if (scan_note(s, depth, &slot) != 0)
    return -1;
  switch (s->p[s->pos]) {
  case '{':
    rv = scan_container(s, depth, 1);
    break;
  case '[':
    rv = scan_container(s, depth, 0);
    break;
  case '"':
    rv = scan_string(s, 0);
    break;
  case 't':
    rv = scan_word(s, "true");
    break;
  case 'f':
    rv = scan_word(s, "false");
    break;
  case 'n':
    rv = scan_word(s, "null");
    break;
  default:
    rv = scan_number(s);
    break;
  }
  if (rv == 0 && slot != SIZE_MAX)
    s->spans[2 * slot + 1] = s->pos;
  return rv;
}

static int scan_run(struct scan *s, size_t *start, size_t *end) {
  scan_ws(s);
  *start = s->pos;
  if (s->pos >= s->len)
    return scan_fail(s, GW_JSON_ESYNTAX, "empty body");
  if (scan_value(s, 0) != 0)
    return -1;
  *end = s->pos;
  scan_ws(s);
  if (s->pos != s->len)
    return scan_fail(s, GW_JSON_ESYNTAX, "trailing characters after the value");
  return 0;
}

int gw_json_check(const char *text, size_t len, unsigned max_depth,
                  size_t *start, size_t *end, size_t **elems, size_t *n_elems,
                  const char **why) {
  struct scan s;

  memset(&s, 0, sizeof(s));
  s.p = (const unsigned char *)text;
  s.len = len;
  s.max_depth = max_depth;
  s.record = elems ? SCAN_ELEMS : SCAN_NONE;
  if (scan_run(&s, start, end) != 0)
    goto fail;
  if (elems) {
    if (text[*start] != '[') {
      scan_fail(&s, GW_JSON_EVALUE, "expected a JSON array");
      goto fail;
    }
    *elems = s.spans;
    *n_elems = s.n;
  }
  return GW_JSON_OK;
fail:
  free(s.spans);
  if (why)
    *why = s.why;
  return s.err;
}

/* ---------------------------------------------------------------- the tree */

struct gw_json {
  cJSON *root;
  const char *text;
  size_t *spans;
  size_t n;
};

/* Ties every node to its span: the k-th node in pre-order is the k-th
 * value the scanner met. valueint is otherwise unused by us. */
static int tie_nodes(cJSON *node, size_t *k, size_t n) {
  for (; node != NULL; node = node->next) {
    if (*k >= n || *k > INT32_MAX)
      return -1;
    node->valueint = (int)(*k)++;
    if (node->child != NULL && tie_nodes(node->child, k, n) != 0)
      return -1;
  }
  return 0;
}

int gw_json_parse(const char *text, size_t len, unsigned max_depth,
                  gw_json **out, const char **why) {
  struct scan s;
  gw_json *doc = NULL;
  const char *parse_end = NULL;
  size_t start, end, k = 0;
  int rv;

  *out = NULL;
  memset(&s, 0, sizeof(s));
  s.p = (const unsigned char *)text;
  s.len = len;
  s.max_depth = max_depth;
  s.record = SCAN_ALL;
  if (scan_run(&s, &start, &end) != 0) {
    rv = s.err;
    goto fail;
  }
  /* cJSON's member names end at a U+0000, so {"type\u0000x":...} would
   * read as "type": refuse what would be misread. (Bodies that are parsed
   * have fixed member names; queue items are only checked, and keep any
   * name.) */
  if (s.nul_key) {
    s.why = "a member name holds \\u0000";
    rv = GW_JSON_ESYNTAX;
    goto fail;
  }
  doc = calloc(1, sizeof(*doc));
  if (doc == NULL) {
    s.why = "out of memory";
    rv = GW_JSON_ENOMEM;
    goto fail;
  }
  doc->text = text;
  doc->spans = s.spans;
  doc->n = s.n;
  s.spans = NULL;
  doc->root = cJSON_ParseWithLengthOpts(text, len, &parse_end, 0);
  if (doc->root == NULL) {
    /* Valid JSON that cJSON refuses: numbers over 63 characters. */
    s.why = "value not supported (a number too long?)";
    rv = GW_JSON_ESYNTAX;
    goto fail;
  }
  /* cJSON_ParseWithLength would accept trailing garbage: only white
   * space may follow (the scanner checked it too). */
  for (const char *p = parse_end; p < text + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      s.why = "trailing characters after the value";
      rv = GW_JSON_ESYNTAX;
      goto fail;
    }
  if (tie_nodes(doc->root, &k, doc->n) != 0 || k != doc->n) {
    s.why = "value not supported";
    rv = GW_JSON_ESYNTAX;
    goto fail;
  }
  *out = doc;
  return GW_JSON_OK;
fail:
  free(s.spans);
  gw_json_free(doc);
  if (why)
    *why = s.why;
  return rv;
}

void gw_json_free(gw_json *doc) {
  if (doc == NULL)
    return;
  cJSON_Delete(doc->root);
  free(doc->spans);
  free(doc);
}

const gw_jnode *gw_json_root(const gw_json *doc) {
  return (const gw_jnode *)doc->root;
}

gw_jtype gw_json_type(const gw_jnode *node) {
  const cJSON *j = (const cJSON *)node;

  switch (j->type & 0xFF) {
  case cJSON_False:
    return GW_JFALSE;
  case cJSON_True:
    return GW_JTRUE;
  case cJSON_Number:
    return GW_JNUMBER;
  case cJSON_String:
    return GW_JSTRING;
  case cJSON_Array:
    return GW_JARRAY;
  case cJSON_Object:
    return GW_JOBJECT;
  default:
    return GW_JNULL;
  }
}

const gw_jnode *gw_json_get(const gw_jnode *obj, const char *key) {
  const cJSON *j = (const cJSON *)obj;

  if (j == NULL || !cJSON_IsObject(j))
    return NULL;
  return (const gw_jnode *)cJSON_GetObjectItemCaseSensitive(j, key);
}

const gw_jnode *gw_json_child(const gw_jnode *node) {
  return (const gw_jnode *)((const cJSON *)node)->child;
}

const gw_jnode *gw_json_next(const gw_jnode *node) {
  return (const gw_jnode *)((const cJSON *)node)->next;
}

const char *gw_json_key(const gw_jnode *node) {
  return ((const cJSON *)node)->string;
}

size_t gw_json_count(const gw_jnode *node) {
  size_t n = 0;

  for (const cJSON *c = ((const cJSON *)node)->child; c; c = c->next)
    n++;
  return n;
}

static void node_span(const gw_json *doc, const gw_jnode *node, const char **p,
                      size_t *len);

/* Whether the raw string text p[0..n) (quotes included) escapes U+0000. */
static int span_has_nul(const char *p, size_t n) {
  for (size_t i = 1; i + 1 < n; i++) {
    if (p[i] != '\\')
      continue;
    if (p[i + 1] == 'u' && n - i >= 6 && memcmp(p + i + 2, "0000", 4) == 0)
      return 1;
    i++; /* the escaped character */
  }
  return 0;
}

const char *gw_json_string(const gw_json *doc, const gw_jnode *node) {
  const cJSON *j = (const cJSON *)node;
  const char *p;
  size_t n;

  if (!cJSON_IsString(j))
    return NULL;
  /* cJSON's copy would end at the U+0000: "i\u0000x" is not "i". */
  node_span(doc, node, &p, &n);
  return span_has_nul(p, n) ? NULL : j->valuestring;
}

/* The text of node: [*p, *p + *len). */
static void node_span(const gw_json *doc, const gw_jnode *node, const char **p,
                      size_t *len) {
  size_t k = (size_t)((const cJSON *)node)->valueint;

  *p = doc->text + doc->spans[2 * k];
  *len = doc->spans[2 * k + 1] - doc->spans[2 * k];
}

const char *gw_json_text(const gw_json *doc, const gw_jnode *node,
                         size_t *len) {
  const char *p;

  node_span(doc, node, &p, len);
  return p;
}
