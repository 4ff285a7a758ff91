/*
 * buf.h - a growable byte buffer.
 *
 * Layer 0 (the bottom): includes nothing of the gateway. The gateway's
 * layers, bottom up; a file includes gateway headers of its own layer and
 * below only, and no header includes its way round to itself
 * (tests/gateway/test_layers.py checks both):
 *   0  buf.h json.h repr.h snap.h  bytes; the JSON codec (json.c,
 *                                  json_num.c, json_out.c); objects as
 *                                  JSON; events as JSON and snapshots
 *   1  req.h follow.h              requests and answers (req.c, body.c,
 *                                  errors.c, query.c); the feed follower
 *   2  auth.h park.h pub.h sse.h   token and tickets; parked requests;
 *      lease.h                     the nng publisher; event streams;
 *                                  lease deadlines and grants
 *   3  events.h                    the follower's events subscriber
 *   4  routes.h                    the route table and its handlers
 *                                  (values.c arrays.c queues.c objects.c
 *                                  locks.c semaphores.c flags.c
 *                                  barriers.c conditions.c metrics.c
 *                                  web.c): the one loop, the
 *                                  table naming the handlers and their
 *                                  files including the table's header
 *   5  http.h                      the libmicrohttpd daemon
 *   main.c on top.
 */
#ifndef ATRIUM_GW_BUF_H
#define ATRIUM_GW_BUF_H

#include <stddef.h>

/* A growable byte buffer, always NUL-terminated past len once it holds
 * anything. An allocation failure sets failed and turns later appends
 * into no-ops, so callers check once at the end. */
typedef struct gw_buf {
  char *data;
  size_t len, cap;
  int failed;
} gw_buf;

void gw_buf_init(gw_buf *b);
/* Frees the bytes; the buffer is empty (and usable) again. */
void gw_buf_fini(gw_buf *b);
/* Empties the buffer but keeps its memory (a failed one is freed). */
void gw_buf_reset(gw_buf *b);
void gw_buf_add(gw_buf *b, const void *p, size_t n);
void gw_buf_str(gw_buf *b, const char *s);
void gw_buf_fmt(gw_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends v in decimal (the hot path's numbers, without printf). */
void gw_buf_u64(gw_buf *b, unsigned long long v);
/* Hands the bytes to the caller (who frees them); the buffer is empty. */
char *gw_buf_take(gw_buf *b, size_t *len);

#endif /* ATRIUM_GW_BUF_H */
