/*
 * json.h - the JSON codec: strict parsing with every number kept as its
 * own text and a check-only scanner for queue items (json.c, the only
 * file that includes cJSON), exact reading of numbers (json_num.c),
 * exact printing of scalars and strings (json_out.c).
 *
 * Layer 0: includes only buf.h (see buf.h for the layers). Pure: no
 * request, no I/O, so the daemon and the fuzz target run the same code.
 */
#ifndef ATRIUM_GW_JSON_H
#define ATRIUM_GW_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "atrium.h"
#include "buf.h"

/* Results of the JSON codec; gw_reply_json_error gives their HTTP meaning. */
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

/* Length of the valid UTF-8 sequence at p[0..n) (n >= 1), or 0 if it is
 * not one. */
size_t gw_json_utf8_len(const unsigned char *p, size_t n);

/* Appends v, of type code type, as JSON (exact; shortest round trip). */
void gw_json_put_scalar(gw_buf *b, char type, atr_scalar v);
/* Appends arbitrary bytes as a JSON string: UTF-8 kept, any invalid byte
 * becomes U+FFFD. */
void gw_json_put_bytes(gw_buf *b, const char *p, size_t len);
/* Appends a stored item (a queue item, a dict value) p[0..len): as the
 * JSON it is, or, for bytes a C program stored that are not JSON (or
 * nest deeper than max_depth), as a string of them. */
void gw_json_put_item(gw_buf *b, const char *p, size_t len, unsigned max_depth);
/* Appends s[0..len) (valid UTF-8) as a JSON string, escaped. */
void gw_json_put_string(gw_buf *b, const char *s, size_t len);

#endif /* ATRIUM_GW_JSON_H */
