/*
 * auth.c - who may ask: the bearer token (read once at start) and the
 * tickets, both compared in constant time by one function; without a
 * token, the Host and Origin a request names (DNS rebinding and
 * cross-site requests from a browser).
 */
#include <arpa/inet.h>
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
  size_t n;

  if (token == NULL)
    return 1;
  h = gw_req_header(req, "Authorization");
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
    return 0;
  h += 7;
  while (auth_is_space(*h))
    h++;
  n = strlen(h);
  while (n > 0 && auth_is_space(h[n - 1])) /* optional white space */
    n--;
  return auth_equal(h, n, token, strlen(token));
}

/* 1 if t is a live ticket; use: it is then used up. */
static int auth_ticket_find(const char *t, int use) {
  double now = gw_now();
  int ok = 0;

  if (strlen(t) != AUTH_TICKET_LEN)
    return 0;
  pthread_mutex_lock(&A.mu);
  for (size_t i = 0; i < AUTH_TICKETS; i++) {
    struct auth_ticket *k = &A.tickets[i];
    if (k->expires > now &&
        auth_equal(k->id, AUTH_TICKET_LEN, t, AUTH_TICKET_LEN) && !ok) {
      if (use)
        k->expires = 0;
      ok = 1;
    }
  }
  pthread_mutex_unlock(&A.mu);
  return ok;
}

int gw_auth_ok_or_ticket(struct gw_req *req, int use) {
  const char *ticket;

  if (gw_auth_ok(req))
    return 1;
  ticket = gw_req_query(req, "ticket");
  return ticket != NULL && auth_ticket_find(ticket, use);
}

/* ------------------------------------------------------- Host and Origin */

int gw_auth_split(const char *s, size_t n, const char **host, size_t *hlen,
                  long *port) {
  const char *end = s + n, *p;

  if (n > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (close == NULL)
      return -1;
    *host = s + 1;
    *hlen = (size_t)(close - s - 1);
    p = close + 1;
    if (p < end && *p != ':')
      return -1;
  } else {
    p = memchr(s, ':', n);
    if (p == NULL)
      p = end;
    *host = s;
    *hlen = (size_t)(p - s);
  }
  *port = -1;
  if (p < end && p + 1 < end) { /* ":" then digits; "host:" has none */
    long v = 0;
    for (p++; p < end; p++) {
      if (*p < '0' || *p > '9' || v > 65535)
        return -1;
      v = v * 10 + (*p - '0');
    }
    if (v > 65535)
      return -1;
    *port = v;
  }
  return *hlen > 0 ? 0 : -1;
}

int gw_auth_host_allowed(const char *host, size_t len) {
  const struct gw_config *cfg = &gw_srv->cfg;
  unsigned char a[16];
  char h[256];

  if (len == 0 || len >= sizeof(h) || memchr(host, '\0', len) != NULL)
    return 0;
  memcpy(h, host, len);
  h[len] = '\0';
  if (strcasecmp(h, "localhost") == 0 || strcasecmp(h, cfg->listen_host) == 0)
    return 1;
  for (size_t i = 0; i < cfg->n_allow_hosts; i++)
    if (strcmp(cfg->allow_hosts[i], "*") == 0 ||
        strcasecmp(cfg->allow_hosts[i], h) == 0)
      return 1;
  if (inet_pton(AF_INET, h, a) == 1)
    return a[0] == 127;
  if (inet_pton(AF_INET6, h, a) == 1) {
    static const unsigned char v4mapped[12] = {[10] = 0xff, [11] = 0xff};
    struct in6_addr v6;
    memcpy(&v6, a, sizeof(v6));
    return IN6_IS_ADDR_LOOPBACK(&v6) ||
           (memcmp(a, v4mapped, sizeof(v4mapped)) == 0 && a[12] == 127);
  }
  return 0;
}

/* 1 if origin is the gateway's own: http or https, an allowed host, the
 * listening port (a missing one is the scheme's default). */
static int auth_origin_own(const char *origin) {
  const char *rest, *host;
  size_t hlen;
  long port, dflt;

  if (strncasecmp(origin, "http://", 7) == 0) {
    rest = origin + 7;
    dflt = 80;
  } else if (strncasecmp(origin, "https://", 8) == 0) {
    rest = origin + 8;
    dflt = 443;
  } else
    return 0;
  if (gw_auth_split(rest, strlen(rest), &host, &hlen, &port) != 0)
    return 0;
  return gw_auth_host_allowed(host, hlen) &&
         (port < 0 ? dflt : port) == (long)gw_srv->cfg.listen_port;
}

int gw_auth_site(struct gw_req *req) {
  const char *host, *origin, *h;
  size_t hlen;
  long port;

  if (gw_srv->cfg.token != NULL)
    return GW_NEXT;
  host = gw_req_header(req, "Host"); /* HTTP/1.0 may leave it out */
  if (host != NULL &&
      (gw_auth_split(host, strlen(host), &h, &hlen, &port) != 0 ||
       !gw_auth_host_allowed(h, hlen)))
    return gw_reply_error(req, 403, "forbidden_host",
                          "without a token, the Host must name this gateway "
                          "(its address, localhost, a loopback address or "
                          "one given with --allow-host)");
  origin = gw_req_header(req, "Origin");
  if (origin != NULL && !auth_origin_own(origin) && !gw_cors_allowed(origin))
    return gw_reply_error(req, 403, "forbidden_origin",
                          "without a token, a request from a web page must "
                          "come from this gateway's own origin or one given "
                          "with --cors-origin");
  return GW_NEXT;
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
