/*
 * auth.h - the bearer token and the single-use tickets that stand in for
 * it where a client cannot send a header (a browser's EventSource); the
 * Host and Origin checks that keep web pages out without a token.
 *
 * Layer 2: includes req.h (see buf.h for the layers).
 */
#ifndef ATRIUM_GW_AUTH_H
#define ATRIUM_GW_AUTH_H

#include "req.h"

/* Reads the token file (content with surrounding white space stripped).
 * 0 or -1 with a message on stderr. */
int gw_auth_load(struct gw_config *cfg);
/* 1 if req may pass: no token set, or a matching Bearer token. */
int gw_auth_ok(struct gw_req *req);
/* 1 if req may pass by its token or by a live ?ticket= (used up then
 * if use; a caller that still has checks to make asks first with use 0,
 * so that a request it refuses does not burn the ticket). */
int gw_auth_ok_or_ticket(struct gw_req *req, int use);
/* Without a token, judges the request's Host and Origin: GW_NEXT, or
 * GW_DONE after 403 forbidden_host (a Host naming neither the listening
 * address, localhost, a loopback address nor one of --allow-host; any
 * port) or 403 forbidden_origin (an Origin that is neither the gateway's
 * own - http or https, an allowed host, the listening port - nor one
 * --cors-origin allows). With a token, GW_NEXT. */
int gw_auth_site(struct gw_req *req);
/* Splits an authority s[0..n), "host[:port]" or "[v6][:port]", into its
 * host part (brackets removed, never empty) and port (-1 if none, else
 * 0..65535). 0, or -1 if malformed. */
int gw_auth_split(const char *s, size_t n, const char **host, size_t *hlen,
                  long *port);
/* 1 if host[0..len) (a Host's host part, no brackets) is allowed
 * without a token. */
int gw_auth_host_allowed(const char *host, size_t len);
/* POST /v1/events/tickets: a new ticket, good once within 30 seconds. */
int gw_auth_ticket(struct gw_req *req);

#endif /* ATRIUM_GW_AUTH_H */
