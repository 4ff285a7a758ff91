/*
 * auth.c - the bearer token (read once at start) and the tickets, both
 * compared in constant time by one function.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "auth.h"

#define GW_TOKEN_MAX 4096
#define AUTH_TICKETS 256   /* tickets outstanding at once             */
#define AUTH_TICKET_TTL 30 /* seconds a ticket lives                  */
#define AUTH_TICKET_LEN 32 /* hex digits (128 random bits)            */

struct auth_ticket {
  char id[AUTH_TICKET_LEN];
  double expires; /* 0: free */
};

static struct {
  pthread_mutex_t mu;
  struct auth_ticket tickets[AUTH_TICKETS];
} A = {.mu = PTHREAD_MUTEX_INITIALIZER};

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

/* 1 if t is a live ticket (which is then used up). */
static int auth_ticket_take(const char *t) {
  double now = gw_now();
  int ok = 0;

  if (strlen(t) != AUTH_TICKET_LEN)
    return 0;
  pthread_mutex_lock(&A.mu);
  for (size_t i = 0; i < AUTH_TICKETS; i++) {
    struct auth_ticket *k = &A.tickets[i];
    if (k->expires > now &&
        auth_equal(k->id, AUTH_TICKET_LEN, t, AUTH_TICKET_LEN) && !ok) {
      k->expires = 0;
      ok = 1;
    }
  }
  pthread_mutex_unlock(&A.mu);
  return ok;
}

int gw_auth_ok_or_ticket(struct gw_req *req) {
  const char *ticket;

  if (gw_auth_ok(req))
    return 1;
  ticket = gw_req_query(req, "ticket");
  return ticket != NULL && auth_ticket_take(ticket);
}

int gw_auth_ticket(struct gw_req *req) {
  static const char hex[] = "0123456789abcdef";
  unsigned char rnd[AUTH_TICKET_LEN / 2];
  char id[AUTH_TICKET_LEN + 1];
  struct auth_ticket *slot = NULL;
  double now = gw_now();
  gw_buf b;

  if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
    return gw_reply_error(req, 500, "internal_error", "no random bytes");
  for (size_t i = 0; i < sizeof(rnd); i++) {
    id[2 * i] = hex[rnd[i] >> 4];
    id[2 * i + 1] = hex[rnd[i] & 15];
  }
  id[AUTH_TICKET_LEN] = '\0';
  pthread_mutex_lock(&A.mu);
  /* A free or expired slot, else the one that expires first. */
  for (size_t i = 0; i < AUTH_TICKETS; i++) {
    struct auth_ticket *k = &A.tickets[i];
    if (k->expires <= now) {
      slot = k;
      break;
    }
    if (slot == NULL || k->expires < slot->expires)
      slot = k;
  }
  memcpy(slot->id, id, AUTH_TICKET_LEN);
  slot->expires = now + AUTH_TICKET_TTL;
  pthread_mutex_unlock(&A.mu);
  gw_buf_init(&b);
  gw_buf_fmt(&b, "{\"ticket\":\"%s\",\"expires_in\":%d}", id, AUTH_TICKET_TTL);
  return gw_reply_buf(req, 201, &b, 0);
}
