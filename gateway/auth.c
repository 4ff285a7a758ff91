/*
 * auth.c - the bearer token: read once at start, compared in constant time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw.h"

#define GW_TOKEN_MAX 4096

static int auth_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

int gw_auth_load(struct gw_config *cfg) {
  char *text = NULL;
  FILE *f = NULL;
  size_t n, lo = 0, hi;

  if (cfg->token_file == NULL)
    return 0;
  f = fopen(cfg->token_file, "r");
  if (f == NULL) {
    fprintf(stderr, "atriumd: cannot read token file %s: %s\n", cfg->token_file,
            strerror(errno));
    goto fail;
  }
  text = malloc(GW_TOKEN_MAX + 1);
  if (text == NULL) {
    fprintf(stderr, "atriumd: out of memory\n");
    goto fail;
  }
  n = fread(text, 1, GW_TOKEN_MAX + 1, f);
  if (n > GW_TOKEN_MAX) {
    fprintf(stderr, "atriumd: token file %s is too long\n", cfg->token_file);
    goto fail;
  }
  hi = n;
  while (lo < hi && auth_is_space(text[lo]))
    lo++;
  while (hi > lo && auth_is_space(text[hi - 1]))
    hi--;
  if (hi == lo) {
    fprintf(stderr, "atriumd: token file %s is empty\n", cfg->token_file);
    goto fail;
  }
  for (size_t i = lo; i < hi; i++)
    if ((unsigned char)text[i] < 0x21 || (unsigned char)text[i] > 0x7e) {
      fprintf(stderr, "atriumd: the token must be printable ASCII\n");
      goto fail;
    }
  memmove(text, text + lo, hi - lo);
  text[hi - lo] = '\0';
  fclose(f);
  cfg->token = text;
  return 0;
fail:
  free(text);
  if (f)
    fclose(f);
  return -1;
}

/* Compares in time that depends only on the lengths, never on where the
 * strings differ. */
static int auth_equal(const char *a, size_t alen, const char *b, size_t blen) {
  unsigned char diff = alen != blen;

  for (size_t i = 0; i < alen; i++)
    diff |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
  return diff == 0;
}

int gw_auth_ok(struct gw_req *req) {
  const char *token = gw_srv->cfg.token;
  const char *h;

  if (token == NULL)
    return 1;
  h = gw_req_header(req, "Authorization");
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
    return 0;
  h += 7;
  while (*h == ' ')
    h++;
  return auth_equal(h, strlen(h), token, strlen(token));
}
