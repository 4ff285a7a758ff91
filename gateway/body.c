/*
 * body.c - reading a request: the conditional headers and the JSON body's
 * members, each check answering 400 itself (req.h's convention).
 */
#include <string.h>

#include "req.h"

int gw_cond_parse(struct gw_req *req, struct gw_cond *c) {
  const char *im = gw_req_header(req, "If-Match");
  const char *inm = gw_req_header(req, "If-None-Match");

  memset(c, 0, sizeof(*c));
  if (inm != NULL) {
    while (*inm == ' ')
      inm++;
    if (strcmp(inm, "*") != 0) {
      return gw_reply_error(req, 400, "invalid_header",
                            "If-None-Match takes only *");
    }
    c->if_none_match_any = 1;
  }
  if (im != NULL) {
    size_t n;
    char digits[24];
    int64_t v;
    while (*im == ' ')
      im++;
    n = strlen(im);
    while (n > 0 && im[n - 1] == ' ')
      n--;
    if (n == 1 && im[0] == '*') {
      c->if_match = 1;
    } else if (n < 3 || n - 2 >= sizeof(digits) || im[0] != '"' ||
               im[n - 1] != '"')
      goto bad;
    else {
      memcpy(digits, im + 1, n - 2);
      digits[n - 2] = '\0';
      if (gw_parse_int64(digits, &v) != 0 || v < 0)
        goto bad;
      c->if_match = 2;
      c->version = (uint64_t)v;
    }
  }
  /* RFC 9110 13.2.2: If-Match first, then If-None-Match. One needs the
   * object to exist, the other needs it absent: together they never both
   * hold. Nor does If-Match: "0" (versions start at 1). A 412 is
   * answered before anything is opened, so it changes nothing. */
  if ((c->if_match && c->if_none_match_any) ||
      (c->if_match == 2 && c->version == 0))
    return gw_reply_error(req, 412, "precondition_failed",
                          "the precondition does not hold");
  return GW_NEXT;
bad:
  return gw_reply_error(req, 400, "invalid_header",
                        "If-Match takes * or one \"<version>\"");
}

const gw_jnode *gw_body_get(struct gw_req *req, const char *key) {
  if (req->doc == NULL)
    return NULL;
  return gw_json_get(gw_json_root(req->doc), key);
}

int gw_body_members(struct gw_req *req, const char *const *allowed) {
  const gw_jnode *root;

  if (req->doc == NULL)
    return GW_NEXT;
  root = gw_json_root(req->doc);
  if (gw_json_type(root) != GW_JOBJECT)
    return gw_reply_error(req, 400, "invalid_body",
                          "the body must be a JSON object");
  for (const gw_jnode *m = gw_json_child(root); m; m = gw_json_next(m)) {
    const char *key = gw_json_key(m);
    size_t i;
    for (i = 0; allowed[i]; i++)
      if (key && strcmp(key, allowed[i]) == 0)
        break;
    if (allowed[i] == NULL)
      return gw_reply_error(req, 400, "invalid_body",
                            "unknown member \"%.64s\"", key ? key : "");
    /* A repeated member would be ambiguous. */
    for (const gw_jnode *o = gw_json_child(root); o != m; o = gw_json_next(o))
      if (strcmp(gw_json_key(o), key) == 0)
        return gw_reply_error(req, 400, "invalid_body",
                              "member \"%.64s\" repeated", key);
  }
  return GW_NEXT;
}

int gw_body_type(struct gw_req *req, char *type) {
  const gw_jnode *t = gw_body_get(req, "type");
  const char *s = t ? gw_json_string(req->doc, t) : NULL;

  if (t == NULL)
    return gw_reply_error(req, 400, "invalid_type", "\"type\" is required");
  if (s == NULL || strlen(s) != 1 || atr_type_size(s[0]) == 0)
    return gw_reply_error(
        req, 400, "invalid_type",
        "\"type\" must be one of b B h H i I l L q Q f d ? c");
  *type = s[0];
  return GW_NEXT;
}

int gw_body_scalar(struct gw_req *req, const gw_jnode *node, char type,
                   const char *what, atr_scalar *out) {
  int rv = gw_json_scalar(req->doc, node, type, out);

  if (rv == 0)
    return GW_NEXT;
  if (rv == GW_JSON_EVALUE)
    return gw_reply_error(req, 400, "invalid_value",
                          "%s is not a valid '%c' value", what, type);
  if (rv == GW_JSON_ERANGE)
    return gw_reply_error(req, 400, "out_of_range", "%s does not fit type '%c'",
                          what, type);
  return gw_reply_json_error(req, rv, what, NULL);
}

int gw_body_delta(struct gw_req *req, char type, const char *what,
                  atr_scalar *delta) {
  const gw_jnode *given = gw_body_get(req, "delta");

  if (type == '?' || type == 'c')
    return gw_reply_error(req, 409, "type_mismatch",
                          "%s of type '%c' cannot be added to", what, type);
  if (atr_type_class(type) == ATR_TFLOAT) {
    delta->f = 1.0;
    return given ? gw_body_scalar(req, given, 'd', "delta", delta) : GW_NEXT;
  }
  delta->i = 1;
  return given ? gw_body_scalar(req, given, 'q', "delta", delta) : GW_NEXT;
}

int gw_body_bool(struct gw_req *req, const char *key, int *out) {
  const gw_jnode *j = gw_body_get(req, key);
  gw_jtype t = j ? gw_json_type(j) : GW_JNULL;

  if (j == NULL)
    return GW_NEXT;
  if (t != GW_JTRUE && t != GW_JFALSE)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"%s\" must be true or false", key);
  *out = t == GW_JTRUE;
  return GW_NEXT;
}

int gw_body_token(struct gw_req *req, int required, uint64_t *token) {
  const gw_jnode *t = gw_body_get(req, "token");
  const char *s = t ? gw_json_string(req->doc, t) : NULL;
  uint64_t v = 0;

  *token = 0;
  if (t == NULL) {
    if (!required)
      return GW_NEXT;
    return gw_reply_error(req, 400, "invalid_body", "\"token\" is required");
  }
  /* A token is a secret handed out, not a syntax: anything that is not
   * one the gateway could have given holds nothing. */
  if (s == NULL || strlen(s) != 16)
    goto not_held;
  for (int i = 0; i < 16; i++) {
    char c = s[i];
    if (c >= '0' && c <= '9')
      v = v << 4 | (uint64_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v = v << 4 | (uint64_t)(c - 'a' + 10);
    else
      goto not_held;
  }
  if (v == 0)
    goto not_held;
  *token = v;
  return GW_NEXT;
not_held:
  return gw_reply_core(req, ATR_ENOTHELD);
}

void gw_token_put(gw_buf *b, uint64_t token) {
  static const char hex[] = "0123456789abcdef";
  char text[16];

  for (int i = 15; i >= 0; i--, token >>= 4)
    text[i] = hex[token & 15];
  gw_buf_str(b, "\"token\":\"");
  gw_buf_add(b, text, 16);
  gw_buf_add(b, "\"", 1);
}
