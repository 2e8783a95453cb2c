/* request — one decoded request and its handling: dispatch on the
 * operation, the topic / produce / fetch / offsets handlers, and the one
 * place that maps -errno to the wire ErrorCode.  Handlers answer
 * synchronously or from completions (an append, a durable offsets commit,
 * a long-poll wake-up or timeout), then call srv_req_done().
 */
#ifndef BROKER_REQUEST_H
#define BROKER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "broker/log.h"
#include "broker/offsets.h"
#include "broker/topic.h"
#include "proto/broker.pb-c.h"

struct broker;
struct conn;
struct evbuffer;
struct event;

struct req {
	struct broker *b;
	struct conn *conn;         /* NULL once the connection is gone */
	TAILQ_ENTRY(req) link;     /* in the connection's queue */
	Brokerd__Request *msg;     /* owned; NULL for framing errors */
	struct evbuffer *out;      /* owned: the response frame */
	uint64_t corr;
	int op;                    /* Request.op key, 0 if none */
	size_t bytes_in;           /* frame size, with the prefix */
	int64_t t0_us;             /* when the frame was complete */
	bool done;
	/* operation state */
	struct log_append app;     /* produce */
	uint32_t partition;
	struct topic *topic;       /* fetch: waited on while armed */
	struct log *log;
	struct topic_waiter waiter;
	struct event *timer;       /* fetch: max_wait_ms */
	struct ofs_op ofs;         /* commit_offsets, delete_group */
	struct ofs_entry *entries;
};

/* Allocate a request for connection c (borrowed).  Returns NULL on ENOMEM. */
struct req *req_new(struct broker *b, struct conn *c, size_t bytes_in);
/* Free r and everything it owns.  r must not be waiting or in flight. */
void req_free(struct req *r);

/* Handle r (r->msg decoded).  Ends, possibly later, in srv_req_done(r). */
void req_handle(struct req *r);

/* Answer r with an error (no operation body) and finish it. */
void req_fail(struct req *r, Brokerd__ErrorCode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The connection is closing: a waiting fetch stops waiting and is freed;
 * an append or commit in flight frees r when it completes.  Returns true
 * if r was freed now. */
bool req_abandon(struct req *r);

/* A waiting fetch answers now with what it has (shutdown). */
void req_wake(struct req *r);

/* The wire code for -errno `err` (handlers map the ambiguous ones, e.g.
 * -ENOENT, themselves). */
Brokerd__ErrorCode req_errcode(int err);

#endif
