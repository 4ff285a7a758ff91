/*
 * http.h - the libmicrohttpd daemon: the top of the gateway's layers.
 *
 * Layer 5: includes req.h; http.c includes routes.h, park.h, sse.h (see
 * buf.h for the layers).
 */
#ifndef ATRIUM_GW_HTTP_H
#define ATRIUM_GW_HTTP_H

#include "req.h"

/* Starts the daemon on a bound, listening socket (stop closes it). 0 or
 * -1. */
int gw_http_start(int listen_fd);
/* Closes every new connection from now on (shutdown). */
void gw_http_refuse(void);
void gw_http_stop(void);

#endif /* ATRIUM_GW_HTTP_H */
