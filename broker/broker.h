/* broker — the composition root: the state one brokerd process shares
 * between its modules (server, request handlers, admin HTTP, metrics).
 * Owned and wired by main.c; every other module borrows it. */
#ifndef BROKER_BROKER_H
#define BROKER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/config.h"
#include "broker/hist.h"

#define BROKERD_VERSION "0.2.0"

/* Operation keys are the field numbers of Request.op in proto/broker.proto
 * (10..23); counters are indexed by key - MET_OP_FIRST. */
#define MET_OP_FIRST 10
#define MET_OP_COUNT 14

struct metrics {
	uint64_t requests[MET_OP_COUNT];
	uint64_t errors[MET_OP_COUNT];
	uint64_t bytes_in[MET_OP_COUNT];   /* request frames, with the prefix */
	uint64_t bytes_out[MET_OP_COUNT];  /* response frames, with the prefix */
	struct hist produce_us;            /* frame received -> response queued */
	struct hist fetch_us;              /* idem, long-poll wait included */
	struct hist fsync_us;              /* every data fdatasync of every log */
	uint64_t records_in;               /* records appended by produce */
	uint64_t conns_accepted;
	uint64_t conns_rejected;           /* over max.connections or EMFILE */
	uint64_t conns_open;               /* gauge */
	uint64_t bad_frames;               /* oversized or undecodable frames */
};

struct event_base;
struct uring;
struct log_ctx;
struct topic_reg;
struct offsets;
struct server;
struct admin;

struct broker {
	struct config cfg;
	struct event_base *base;
	struct uring *u;
	struct log_ctx *ctx;
	struct topic_reg *topics;
	struct offsets *offsets;
	struct server *srv;
	struct admin *admin;
	struct metrics met;
	int64_t start_wall_ms;
	int lockfd;
	bool stopping;             /* SIGTERM seen: no new requests */
};

/* Milliseconds: wall clock (timestamps) and monotonic (intervals). */
int64_t broker_wall_ms(void);
int64_t broker_mono_us(void);

/* calloc that aborts with a message on out-of-memory: the daemon's one
 * place to give up (STYLE: only the daemon may). */
void *xcalloc(size_t n, size_t size);
void *xstrdup(const char *s);

#endif
