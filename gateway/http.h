/*
 * http.h - the libmicrohttpd daemon: the top of the gateway's layers.
 *
 * Layer 5: includes req.h; http.c includes routes.h, park.h, sse.h (see
 * buf.h for the layers).
 */
#ifndef ATRIUM_GW_HTTP_H
#define ATRIUM_GW_HTTP_H

#include "req.h"

/* Starts the daemons and their --threads loops, which accept on a bound,
 * listening socket (the caller's: it closes it after gw_http_stop). 0 or
 * -1 (gw_http_stop then frees what was made). */
int gw_http_start(int listen_fd);
/* Closes every new connection from now on (shutdown). */
void gw_http_refuse(void);
/* Stops the loops, then the daemons (closing every connection). Safe to
 * call twice, and after a failed start. */
void gw_http_stop(void);

#endif /* ATRIUM_GW_HTTP_H */
