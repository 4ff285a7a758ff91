/*
 * auth.h - the bearer token and the single-use tickets that stand in for
 * it where a client cannot send a header (a browser's EventSource).
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
/* 1 if req may pass by its token or by a live ?ticket= (used up then). */
int gw_auth_ok_or_ticket(struct gw_req *req);
/* POST /v1/events/tickets: a new ticket, good once within 30 seconds. */
int gw_auth_ticket(struct gw_req *req);

#endif /* ATRIUM_GW_AUTH_H */
