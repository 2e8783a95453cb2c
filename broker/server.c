/* server — listener, connections, framing, ordering and backpressure (see
 * server.h).  Each connection is a libevent bufferevent on the reactor; a
 * frame is a 4-byte big-endian length then a protobuf Request.  The length
 * is checked against max.request.bytes before anything is allocated, a
 * frame above CONN_INPUT_FREE is received only under a grant from the
 * shared max.pending.request.bytes budget, and a started frame must be
 * complete within request.timeout.ms. */
#include "broker/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/logging.h"
#include "broker/request.h"
#include "broker/uring.h"

/* Socket reads and writes move up to this much per call (libevent's
 * default of 16 KiB costs a syscall per 16 KiB of a 1 MiB batch). */
#define CONN_IO_CHUNK (256u << 10)
/* After EMFILE/ENFILE on accept, stop accepting for this long instead of
 * spinning on a listener that stays readable. */
#define ACCEPT_BACKOFF_MS 100
/* Connections refused per EMFILE through the reserve descriptor. */
#define ACCEPT_REFUSE_MAX 256
/* Deepest message nesting the string check follows (ours is 3). */
#define WIRE_DEPTH_MAX 8

struct conn {
	struct server *srv;
	struct bufferevent *bev;
	TAILQ_HEAD(, req) reqs;    /* arrival order */
	unsigned nreqs;
	size_t inflight_bytes;
	bool paused;               /* reading off for backpressure */
	bool closing;              /* close once the output is written */
	bool dead;                 /* unlinked; freed by the reaper */
	int64_t answered_us;       /* last answer queued (broker_mono_us) */
	struct evbuffer *stage;    /* answers of this turn, written at its end;
	                              non-empty only while the output is empty */
	struct uring_defer stage_defer;
	size_t grant;              /* budget held for the frame at the head */
	size_t want;               /* > 0: on srv->waiters for a frame this big */
	struct event *frame_timer; /* request.timeout.ms of a started frame */
	char peer[64];
	LIST_ENTRY(conn) link;
	TAILQ_ENTRY(conn) wait_link;
};

struct server {
	struct broker *b;
	struct evconnlistener *lis;
	struct event *backoff;
	struct event *reaper;      /* frees dead connections after the turn */
	LIST_HEAD(, conn) conns;
	LIST_HEAD(, conn) dead;
	TAILQ_HEAD(, conn) waiters; /* want a grant, first come first served */
	size_t pending;             /* budget granted, bytes */
	size_t pending_max;         /* max.pending.request.bytes, >= one frame */
	unsigned nconns;
	int reserve_fd;             /* spare descriptor, spent to refuse on EMFILE */
	bool shutting_down;
	void (*done)(void *arg);
	void *done_arg;
};

static void conn_read(struct bufferevent *bev, void *arg);
static void conn_write(struct bufferevent *bev, void *arg);
static void conn_event(struct bufferevent *bev, short what, void *arg);

/* --- lifecycle ------------------------------------------------------------ */

static void srv_check_done(struct server *s)
{
	if (s->shutting_down && s->done != NULL && LIST_EMPTY(&s->conns)) {
		void (*done)(void *) = s->done;
		s->done = NULL;
		done(s->done_arg);
	}
}

/* --- the receive budget and the frame deadline (invariants 4, 5) ---------- */

static void conn_timer_stop(struct conn *c)
{
	evtimer_del(c->frame_timer);
}

/* Arm the deadline of the frame being received, unless it runs already;
 * `fresh` restarts a running one. */
static void conn_timer_start(struct conn *c, bool fresh)
{
	int64_t ms = c->srv->b->cfg.request_timeout_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (ms <= 0 || (!fresh && evtimer_pending(c->frame_timer, NULL)))
		return;
	evtimer_add(c->frame_timer, &tv);
}

/* Invariant 5: the deadline runs while part of a frame waits in the input,
 * unless the connection is closing or paused by invariant 2 (the broker's
 * doing) without holding a grant (a paused grant holder still pins the
 * shared budget, e.g. a client that stopped reading its answers).  `fresh`
 * restarts it: a new frame began. */
static void conn_timer_update(struct conn *c, bool fresh)
{
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 && !c->closing &&
	    (!c->paused || c->grant > 0))
		conn_timer_start(c, fresh);
	else
		conn_timer_stop(c);
}

/* Grant the budget to waiters in arrival order while it lasts.  A waiter
 * holds at most CONN_INPUT_FREE bytes; once granted it may read its whole
 * frame.  The frame's deadline keeps running from the frame's start: were
 * it restarted at the grant, clients declaring huge frames could pass the
 * budget on to one another forever and starve everyone behind them. */
static void srv_grant_waiters(struct server *s)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&s->waiters)) != NULL && s->pending + c->want <= s->pending_max) {
		TAILQ_REMOVE(&s->waiters, c, wait_link);
		c->grant = c->want;
		c->want = 0;
		s->pending += c->grant;
		bufferevent_setwatermark(c->bev, EV_READ, c->grant, c->grant);
		conn_timer_update(c, false);
	}
}

/* Give back c's grant or its place in the queue. */
static void conn_release(struct conn *c)
{
	struct server *s = c->srv;

	if (c->want > 0) {
		TAILQ_REMOVE(&s->waiters, c, wait_link);
		c->want = 0;
	}
	if (c->grant > 0) {
		s->pending -= c->grant;
		c->grant = 0;
		srv_grant_waiters(s);
	}
}

/* Unlink c now (no more callbacks reach it) and free it after the turn.
 * Requests in flight are orphaned and free themselves on completion. */
static void conn_close(struct conn *c)
{
	struct server *s = c->srv;
	struct req *r;

	if (c->dead)
		return;
	c->dead = true;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, r, link);
		r->conn = NULL;
		req_abandon(r);
	}
	conn_timer_stop(c);
	conn_release(c);
	uring_defer_cancel(s->b->u, &c->stage_defer);
	LIST_REMOVE(c, link);
	LIST_INSERT_HEAD(&s->dead, c, link);
	s->nconns--;
	s->b->met.conns_open = s->nconns;
	event_active(s->reaper, EV_TIMEOUT, 0);
	log_msg(LOGL_DEBUG, "connection %s closed", c->peer);
	srv_check_done(s);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct conn *c;

	(void)fd;
	(void)what;
	while ((c = LIST_FIRST(&s->dead)) != NULL) {
		LIST_REMOVE(c, link);
		bufferevent_free(c->bev);
		event_free(c->frame_timer);
		evbuffer_free(c->stage);
		free(c);
	}
}

/* Reading is on only while every bound of invariant 2 holds. */
static void conn_update_read(struct conn *c)
{
	struct broker *b = c->srv->b;
	size_t cap = (size_t)b->cfg.max_request_bytes;
	bool pause;

	if (cap < CONN_INFLIGHT_BYTES)
		cap = CONN_INFLIGHT_BYTES;
	pause = c->closing || c->srv->shutting_down || c->nreqs >= CONN_MAX_INFLIGHT ||
		c->inflight_bytes >= cap ||
		evbuffer_get_length(bufferevent_get_output(c->bev)) +
				evbuffer_get_length(c->stage) >= CONN_OUT_HIGH;
	if (pause && !c->paused) {
		bufferevent_disable(c->bev, EV_READ);
		c->paused = true;
		conn_timer_update(c, false);
	} else if (!pause && c->paused) {
		c->paused = false;
		bufferevent_enable(c->bev, EV_READ);
		/* Frames may already wait in the input buffer. */
		conn_read(c->bev, c);
	}
}

/* Write every finished request at the head of the queue.  While the
 * bufferevent has nothing queued, answers are staged and written at the end
 * of the turn, together and straight to the socket (conn_stage_flush):
 * handing them to the bufferevent would cost two epoll_ctl calls (arm, then
 * disarm EPOLLOUT) and a trip through epoll_wait per answer. */
static void conn_flush(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	bool answered = false;
	struct req *r;

	while ((r = TAILQ_FIRST(&c->reqs)) != NULL && r->done) {
		TAILQ_REMOVE(&c->reqs, r, link);
		c->nreqs--;
		c->inflight_bytes -= r->bytes_in;
		if (r->out != NULL && evbuffer_get_length(out) > 0) {
			evbuffer_add_buffer(out, r->out);
		} else if (r->out != NULL) {
			evbuffer_add_buffer(c->stage, r->out);
			uring_defer(c->srv->b->u, &c->stage_defer);
		}
		req_free(r);
		answered = true;
	}
	if (answered)
		c->answered_us = broker_mono_us();
	if ((c->closing || c->srv->shutting_down) && TAILQ_EMPTY(&c->reqs) &&
	    evbuffer_get_length(out) == 0 && evbuffer_get_length(c->stage) == 0) {
		conn_close(c);
		return;
	}
	conn_update_read(c);
}

/* End of the turn: write the staged answers; what the socket does not take
 * now, and any error, is the bufferevent's. */
static void conn_stage_flush(struct uring_defer *d)
{
	struct conn *c = (struct conn *)((char *)d - offsetof(struct conn, stage_defer));

	evbuffer_write_atmost(c->stage, bufferevent_getfd(c->bev), CONN_IO_CHUNK);
	evbuffer_add_buffer(bufferevent_get_output(c->bev), c->stage);
	conn_flush(c); /* closing once all is written; reading again */
}

void srv_req_done(struct req *r)
{
	struct conn *c = r->conn;

	r->done = true;
	if (c == NULL) {
		req_free(r);
		return;
	}
	conn_flush(c);
}

void srv_req_close_after(struct req *r)
{
	if (r->conn != NULL)
		r->conn->closing = true;
}

/* --- framing --------------------------------------------------------------- */

int srv_frame_check(const uint8_t *buf, size_t have, int64_t max_request_bytes, uint32_t *len)
{
	if (have < 4)
		return 0;
	*len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if ((uint64_t)*len > (uint64_t)max_request_bytes)
		return -EMSGSIZE;
	return have - 4 >= *len ? 1 : 0;
}

/* Queue a request that already failed framing: answered in order, then the
 * connection closes. */
static void conn_reject(struct conn *c, Brokerd__ErrorCode code,
			const char *msg)
{
	struct req *r = req_new(c->srv->b, c, 0);

	c->srv->b->met.bad_frames++;
	log_msg(LOGL_WARN, "connection %s: %s; closing", c->peer, msg);
	c->closing = true;
	if (r == NULL) {
		conn_close(c);
		return;
	}
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	c->nreqs++;
	req_fail(r, code, "%s", msg);
}

/* Read one varint at p[*i] (at most 10 bytes).  Returns false if it does
 * not end inside len. */
static bool wire_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
	*v = 0;
	for (unsigned sh = 0; sh < 70 && *i < len; sh += 7) {
		uint8_t byte = p[(*i)++];
		if (sh < 64)
			*v |= (uint64_t)(byte & 0x7f) << sh;
		if (!(byte & 0x80))
			return true;
	}
	return false;
}

/* The first string field of message d (encoded in p[0..len)) holding a NUL
 * byte, searching nested messages too, or NULL.  protobuf-c decodes a
 * string to a C string, so "a\0../x" would silently become the topic
 * "a": such a field is refused instead.  *owner gets the field's message,
 * *at the NUL's index.  The frame decoded already, so a malformation here
 * cannot happen; it just ends the scan. */
static const ProtobufCFieldDescriptor *wire_nul_string(const ProtobufCMessageDescriptor *d,
						       const uint8_t *p, size_t len, int depth,
						       const ProtobufCMessageDescriptor **owner,
						       size_t *at)
{
	size_t i = 0;

	while (i < len) {
		const ProtobufCFieldDescriptor *f, *bad;
		const uint8_t *z;
		uint64_t tag, n;

		if (!wire_varint(p, len, &i, &tag))
			return NULL;
		switch (tag & 7) {
		case 0:
			if (!wire_varint(p, len, &i, &n))
				return NULL;
			break;
		case 1:
		case 5:
			n = (tag & 7) == 1 ? 8 : 4;
			if (len - i < n)
				return NULL;
			i += n;
			break;
		case 2:
			if (!wire_varint(p, len, &i, &n) || n > len - i)
				return NULL;
			f = tag >> 3 <= UINT32_MAX
				    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
				    : NULL;
			if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
			    (z = memchr(p + i, '\0', n)) != NULL) {
				*owner = d;
				*at = (size_t)(z - (p + i));
				return f;
			}
			if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < WIRE_DEPTH_MAX &&
			    (bad = wire_nul_string(f->descriptor, p + i, n, depth + 1, owner, at)) != NULL)
				return bad;
			i += n;
			break;
		default:
			return NULL;
		}
	}
	return NULL;
}

/* Fail r because its string field f of message owner holds a NUL byte at
 * index at: topic and group names with their own codes. */
static void req_refuse_nul(struct req *r, const ProtobufCFieldDescriptor *f,
			   const ProtobufCMessageDescriptor *owner, size_t at)
{
	r->op = (int)r->msg->op_case; /* acks=none stays unanswered */
	if (strcmp(f->name, "topic") == 0)
		req_fail(r, BROKERD__ERROR_CODE__INVALID_TOPIC_NAME,
			 "topic name contains a NUL byte at byte %zu (%s.topic)", at,
			 owner->short_name);
	else if (strcmp(f->name, "group") == 0)
		req_fail(r, BROKERD__ERROR_CODE__INVALID_GROUP,
			 "group id contains a NUL byte at byte %zu (%s.group)", at, owner->short_name);
	else
		req_fail(r, BROKERD__ERROR_CODE__INVALID_REQUEST,
			 "string field %s.%s contains a NUL byte at byte %zu", owner->short_name,
			 f->name, at);
}

/* A frame that started arriving did not complete within request.timeout.ms
 * (a slow-loris client, or a stalled one): free what it sent, give back its
 * grant, answer why and close. */
static void on_frame_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t have = evbuffer_get_length(in);
	char msg[200];

	(void)fd;
	(void)what;
	snprintf(msg, sizeof(msg),
		 "request frame incomplete after %lld ms (request.timeout.ms); %zu bytes of it received",
		 (long long)c->srv->b->cfg.request_timeout_ms, have);
	evbuffer_drain(in, have);
	conn_release(c);
	conn_reject(c, BROKERD__ERROR_CODE__INVALID_REQUEST, msg);
}

/* Decode every complete frame in the input; then bound what the input may
 * hold until the next callback (invariant 4) and keep the deadline of a
 * frame left incomplete (invariant 5). */
static void conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct server *s = c->srv;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct broker *b = s->b;
	bool consumed = false;

	while (!c->paused && !c->closing && !c->dead) {
		uint8_t pfx[4];
		uint32_t len;
		size_t have = evbuffer_get_length(in), need, at = 0;
		const ProtobufCMessageDescriptor *owner = NULL;
		const ProtobufCFieldDescriptor *nul;
		struct req *r;
		uint8_t *frame;
		int rc;

		if (have < 4)
			break;
		evbuffer_copyout(in, pfx, 4);
		rc = srv_frame_check(pfx, have, b->cfg.max_request_bytes, &len);
		if (rc == -EMSGSIZE) {
			char msg[160];
			snprintf(msg, sizeof(msg),
				 "request frame of %u bytes exceeds max.request.bytes (%lld)",
				 len, (long long)b->cfg.max_request_bytes);
			conn_reject(c, BROKERD__ERROR_CODE__FRAME_TOO_LARGE, msg);
			break;
		}
		need = 4 + (size_t)len;
		if (need > CONN_INPUT_FREE && c->grant == 0) {
			if (c->want == 0) {
				c->want = need;
				TAILQ_INSERT_TAIL(&s->waiters, c, wait_link);
				srv_grant_waiters(s);
			}
			if (c->want > 0) {
				/* Hold no more than CONN_INPUT_FREE until granted. */
				bufferevent_setwatermark(bev, EV_READ, 0, CONN_INPUT_FREE);
				break;
			}
		}
		if (have < need) {
			/* Let the buffer fill up to exactly this frame. */
			bufferevent_setwatermark(bev, EV_READ, need,
						 c->grant > 0 ? need : CONN_INPUT_FREE);
			break;
		}
		bufferevent_setwatermark(bev, EV_READ, 0, CONN_INPUT_FREE);
		consumed = true;
		r = req_new(b, c, need);
		if (r == NULL) {
			conn_close(c);
			return;
		}
		frame = evbuffer_pullup(in, (ev_ssize_t)need);
		r->msg = frame == NULL ? NULL
				       : brokerd__request__unpack(NULL, len, frame + 4);
		nul = r->msg == NULL ? NULL
				     : wire_nul_string(&brokerd__request__descriptor, frame + 4, len,
						       0, &owner, &at);
		evbuffer_drain(in, need);
		conn_release(c); /* the frame's grant, if it needed one */
		TAILQ_INSERT_TAIL(&c->reqs, r, link);
		c->nreqs++;
		c->inflight_bytes += r->bytes_in;
		if (r->msg == NULL) {
			b->met.bad_frames++;
			log_msg(LOGL_WARN, "connection %s: undecodable request envelope (%u bytes); closing",
				c->peer, len);
			c->closing = true;
			req_fail(r, BROKERD__ERROR_CODE__INVALID_REQUEST,
				 "request is not a valid protobuf Request message");
			break;
		}
		r->corr = r->msg->correlation_id;
		if (nul != NULL)
			req_refuse_nul(r, nul, owner, at);
		else
			req_handle(r);
		if (c->dead)
			return;
		conn_update_read(c);
	}
	if (!c->dead)
		conn_timer_update(c, consumed);
}

static void conn_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	conn_flush(c);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		/* Idle means nothing pending either way, answers included,
		 * and no answer for the whole timeout either (one may have
		 * been written in this very turn). */
		if (TAILQ_EMPTY(&c->reqs) && evbuffer_get_length(c->stage) == 0 &&
		    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
		    broker_mono_us() - c->answered_us >= c->srv->b->cfg.idle_timeout_ms * 1000) {
			log_msg(LOGL_INFO, "connection %s idle for %lld ms; closing", c->peer,
				(long long)c->srv->b->cfg.idle_timeout_ms);
			conn_close(c);
		} else {
			bufferevent_enable(c->bev, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
		}
		return;
	}
	if (what & BEV_EVENT_ERROR)
		log_msg(LOGL_DEBUG, "connection %s: %s", c->peer,
			evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_close(c);
}

/* --- accepting ---------------------------------------------------------------- */

static void peer_name(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "unknown");
	}
}

/* Tell a client over the limit why (msg), best effort, and close. */
static void refuse(struct server *s, evutil_socket_t fd, const char *msg)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	uint8_t buf[160];
	size_t n;

	resp.error = BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS;
	resp.error_message = (char *)msg;
	n = brokerd__response__pack(&resp, buf + 4);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	(void)!send(fd, buf, n + 4, MSG_DONTWAIT | MSG_NOSIGNAL);
	evutil_closesocket(fd);
	s->b->met.conns_rejected++;
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct server *s = arg;
	struct broker *b = s->b;
	struct conn *c;
	int one = 1;

	(void)lis;
	(void)salen;
	if (s->nconns >= (unsigned)b->cfg.max_connections) {
		log_msg(LOGL_WARN, "refusing a connection: max.connections (%lld) reached",
			(long long)b->cfg.max_connections);
		refuse(s, fd, "too many connections (max.connections reached)");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->frame_timer = evtimer_new(b->base, on_frame_timeout, c);
	c->stage = evbuffer_new();
	c->bev = c->frame_timer == NULL || c->stage == NULL
			 ? NULL
			 : bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		if (c->frame_timer != NULL)
			event_free(c->frame_timer);
		if (c->stage != NULL)
			evbuffer_free(c->stage);
		free(c);
		return;
	}
	c->stage_defer.fn = conn_stage_flush;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->srv = s;
	c->answered_us = INT64_MIN / 2; /* never */
	TAILQ_INIT(&c->reqs);
	peer_name(sa, c->peer, sizeof(c->peer));
	bufferevent_set_max_single_read(c->bev, CONN_IO_CHUNK);
	bufferevent_set_max_single_write(c->bev, CONN_IO_CHUNK);
	bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_OUT_HIGH / 2, 0);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_INPUT_FREE);
	if (b->cfg.idle_timeout_ms > 0) {
		struct timeval tv = { (time_t)(b->cfg.idle_timeout_ms / 1000),
				      (suseconds_t)(b->cfg.idle_timeout_ms % 1000) * 1000 };
		bufferevent_set_timeouts(c->bev, &tv, NULL);
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	LIST_INSERT_HEAD(&s->conns, c, link);
	s->nconns++;
	b->met.conns_accepted++;
	b->met.conns_open = s->nconns;
	log_msg(LOGL_DEBUG, "connection %s accepted", c->peer);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	if (!s->shutting_down)
		evconnlistener_enable(s->lis);
}

static void on_accept_error(struct evconnlistener *lis, void *arg)
{
	struct server *s = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, ACCEPT_BACKOFF_MS * 1000 };
	int refused = 0;

	/* Out of descriptors: spend the reserve one to accept each waiting
	 * client and tell it why, instead of leaving it hanging in the
	 * backlog; then take the reserve back. */
	if ((err == EMFILE || err == ENFILE) && s->reserve_fd >= 0) {
		close(s->reserve_fd);
		for (; refused < ACCEPT_REFUSE_MAX; refused++) {
			int fd = accept4(evconnlistener_get_fd(lis), NULL, NULL,
					 SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0)
				break;
			refuse(s, fd, "too many open files in the broker (RLIMIT_NOFILE); try later");
		}
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	log_msg_errno(LOGL_WARN, err, "accept failed; refused %d connection(s), pausing accepts for %d ms",
		      refused, ACCEPT_BACKOFF_MS);
	if (refused == 0)
		s->b->met.conns_rejected++;
	evconnlistener_disable(lis);
	evtimer_add(s->backoff, &tv);
}

int srv_new(struct broker *b, struct server **out)
{
	struct server *s = calloc(1, sizeof(*s));
	struct sockaddr_storage ss;
	socklen_t sslen;
	int rc;

	if (s == NULL)
		return -ENOMEM;
	s->b = b;
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	LIST_INIT(&s->conns);
	LIST_INIT(&s->dead);
	TAILQ_INIT(&s->waiters);
	/* A frame of max.request.bytes must always fit, or it never arrives. */
	s->pending_max = (size_t)b->cfg.max_pending_request_bytes;
	if (s->pending_max < 4 + (size_t)b->cfg.max_request_bytes)
		s->pending_max = 4 + (size_t)b->cfg.max_request_bytes;
	s->backoff = evtimer_new(b->base, on_backoff, s);
	s->reaper = event_new(b->base, -1, 0, on_reap, s);
	if (s->backoff == NULL || s->reaper == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = config_addr_resolve(b->cfg.listen, &ss, &sslen);
	if (rc < 0)
		goto fail;
	s->lis = evconnlistener_new_bind(b->base, on_accept, s,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						 LEV_OPT_CLOSE_ON_EXEC,
					 1024, (struct sockaddr *)&ss, (int)sslen);
	if (s->lis == NULL) {
		rc = -errno;
		if (rc == 0)
			rc = -EADDRNOTAVAIL;
		log_msg_errno(LOGL_ERROR, rc, "cannot listen on %s", b->cfg.listen);
		goto fail;
	}
	evconnlistener_set_error_cb(s->lis, on_accept_error);
	*out = s;
	return 0;
fail:
	srv_free(s);
	return rc;
}

int srv_port(const struct server *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void srv_shutdown(struct server *s, void (*done)(void *arg), void *arg)
{
	struct conn *c, *tmp;

	s->shutting_down = true;
	s->done = done;
	s->done_arg = arg;
	if (s->lis != NULL)
		evconnlistener_disable(s->lis);
	/* Waking answers a fetch, which may flush and close its connection:
	 * restart the scan after each one. */
	for (bool woke = true; woke;) {
		woke = false;
		LIST_FOREACH(c, &s->conns, link) {
			struct req *r;
			TAILQ_FOREACH(r, &c->reqs, link)
				if (!r->done && r->waiter.armed) {
					req_wake(r);
					woke = true;
					break;
				}
			if (woke)
				break;
		}
	}
	/* Each flush closes its connection once answered and written. */
	for (c = LIST_FIRST(&s->conns); c != NULL; c = tmp) {
		tmp = LIST_NEXT(c, link);
		conn_flush(c);
	}
	srv_check_done(s);
}

void srv_free(struct server *s)
{
	struct conn *c;

	if (s == NULL)
		return;
	while ((c = LIST_FIRST(&s->conns)) != NULL)
		conn_close(c);
	on_reap(-1, 0, s);
	if (s->lis != NULL)
		evconnlistener_free(s->lis);
	if (s->backoff != NULL)
		event_free(s->backoff);
	if (s->reaper != NULL)
		event_free(s->reaper);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	free(s);
}
