/* server — the TCP side of brokerd: the listener, one connection per
 * client, framing, pipelining and backpressure.  Requests are decoded here
 * and handed to the request module; responses go back in request order.
 *
 * Invariants:
 *  1. Responses leave a connection in the order its requests arrived: a
 *     finished request waits for every earlier one.
 *  2. Per connection, at most max.request.bytes + 4 bytes of unparsed input,
 *     CONN_MAX_INFLIGHT requests holding at most max(max.request.bytes,
 *     CONN_INFLIGHT_BYTES) of frames, and CONN_OUT_HIGH bytes of queued
 *     output are held; past any of them the connection is not read until
 *     it drains (a slow consumer or a producer outrunning the disk is
 *     throttled by TCP, not by broker memory).
 *  3. A connection closed while requests are in flight is unlinked at once;
 *     its requests finish on their own (an append cannot be recalled) and
 *     free themselves.
 *  4. A connection's input holds at most CONN_INPUT_FREE bytes, except the
 *     one frame it holds a grant for: a frame above CONN_INPUT_FREE is read
 *     only once max.pending.request.bytes has room for all of it (granted
 *     first come, first served; given back when the frame is decoded or the
 *     connection closes).  So incomplete frames of all connections together
 *     hold at most max.pending.request.bytes + connections x CONN_INPUT_FREE,
 *     however many clients declare huge frames and send part of them.
 *  5. A frame that started arriving is complete within request.timeout.ms
 *     (waiting for its grant included; not counted while the connection is
 *     paused by invariant 2 and holds no grant), else its bytes are freed
 *     and the connection
 *     is answered why and closed; a connection with no partial frame is
 *     governed by idle.timeout.ms alone.
 */
#ifndef BROKER_SERVER_H
#define BROKER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#define CONN_MAX_INFLIGHT   1024
#define CONN_INFLIGHT_BYTES (8u << 20)
#define CONN_OUT_HIGH       (8u << 20)
#define CONN_INPUT_FREE     (64u << 10)

struct broker;
struct server;
struct req;

/* Listen on b->cfg.listen.  Borrows b.  Returns 0 and *out owned, or
 * -errno (logged with the address). */
int srv_new(struct broker *b, struct server **out);

/* Close every connection and the listener.  NULL is a no-op. */
void srv_free(struct server *s);

/* The bound port (useful with port 0). */
int srv_port(const struct server *s);

/* Stop accepting and stop reading requests; complete waiting fetches now;
 * call done(arg) once every accepted request is answered and its response
 * written (or the connection is gone). */
void srv_shutdown(struct server *s, void (*done)(void *arg), void *arg);

/* Framing, without side effects (the fuzz seam of conn_read): `buf` holds
 * the first `have` bytes buffered on a connection.  Returns 1 when a whole
 * frame of 4 + *len bytes is there, 0 when more bytes are needed (*len set
 * once the 4-byte big-endian prefix is there), -EMSGSIZE when *len exceeds
 * max_request_bytes (the frame is refused before anything is allocated). */
int srv_frame_check(const uint8_t *buf, size_t have, int64_t max_request_bytes, uint32_t *len);

/* Called by the request module when r's response is complete (or, for
 * acks=none, when r needs none): flushes every finished request at the
 * head of r's connection.  Frees r if its connection is gone. */
void srv_req_done(struct req *r);

/* Ask to close r's connection once r's response is written (after a
 * framing or envelope error). */
void srv_req_close_after(struct req *r);

#endif
