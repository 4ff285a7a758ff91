/*
 * sse.h - Server-Sent Events: GET /v1/events streams, the ring of recent
 * events they resume from (Last-Event-ID), and the snapshot or resync
 * batch a stream starts with.
 *
 * Layer 2: includes req.h, follow.h, auth.h, snap.h (see buf.h).
 * The follower's side (events.c) calls the gw_sse_* below, all on the
 * follower thread but the handler, gw_sse_forget and gw_sse_count.
 */
#ifndef ATRIUM_GW_SSE_H
#define ATRIUM_GW_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "req.h"

/* Allocates the ring. 0 or -1 (out of memory, said on stderr). */
int gw_sse_open(void);
/* GET /v1/events (the token or a ticket). */
int gw_sse_stream(struct gw_req *req);
/* Called by the completion callback: frees req's stream, if any. */
void gw_sse_forget(struct gw_req *req);
/* Open streams now (metrics; any thread). */
size_t gw_sse_count(void);

/* The follower's side. begin: the first seq it reads is next. */
void gw_sse_begin(uint64_t next);
/* Whether a stream is open. */
int gw_sse_interest(void);
/* Event seq goes to no stream: returns 1 (and the ring is marked
 * discontinuous: an older Last-Event-ID gets a resync) if none is open,
 * 0 if one is (publish it then). */
int gw_sse_skip(uint64_t seq);
/* Keeps event seq (msg[0..len) is "<topic> <json>", the topic
 * topic_len bytes) in the ring and queues it on every live stream whose
 * topics match. */
void gw_sse_publish(uint64_t seq, const char *msg, size_t len,
                    size_t topic_len);
/* The follower paused and follows from next: if events were missed, the
 * ring is no longer continuous. */
void gw_sse_rebase(uint64_t next);
/* The feed gapped at seq: the ring is emptied, every stream waits for a
 * resync batch (given by the next gw_sse_serve). */
void gw_sse_gap(uint64_t seq);
/* Gives every pending stream its snapshot, replay or resync batch. */
void gw_sse_serve(void);
/* Serves pending streams and heartbeats; returns when it wants to run
 * next (monotonic seconds). */
double gw_sse_tick(double now);

/* Ends every stream (their queued bytes go out first) and waits up to
 * grace seconds for them; close frees the ring (after the follower and
 * the daemon stopped). */
void gw_sse_shutdown(double grace);
void gw_sse_close(void);

#endif /* ATRIUM_GW_SSE_H */
