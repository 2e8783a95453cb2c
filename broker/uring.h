/* uring — the reactor's one io_uring, married to its libevent loop.
 * Completions wake the loop through an eventfd (a hint: every wake-up drains
 * the whole completion queue).  Submission is deferred to the end of the
 * loop turn, so everything prepared while handling one batch of socket
 * events goes to the kernel in a single io_uring_enter.
 *
 * Invariants:
 *  1. Every SQE's user_data is a struct uring_op embedded in its owner; the
 *     op (and any buffer it names) stays alive until its callback has run.
 *  2. Callbacks run on the loop thread, never from inside uring_sqe().
 */
#ifndef BROKER_URING_H
#define BROKER_URING_H

#include <liburing.h>
#include <stdbool.h>
#include <sys/queue.h>

struct event_base;
struct uring;
struct uring_op;

/* res: the CQE's result, >= 0 or -errno (the io_uring convention). */
typedef void (*uring_cb)(struct uring_op *op, int res);

struct uring_op {
	uring_cb cb;
	const char *what; /* "log.write", "log.fsync", ...: names the
	                     operation in errors and for fault injection */
};

/* Work to run at the end of the current loop turn, just before submission
 * (e.g. coalescing every append of the turn into one write).  Caller
 * storage; queued at most once at a time. */
struct uring_defer {
	void (*fn)(struct uring_defer *d);
	bool queued;
	TAILQ_ENTRY(uring_defer) link;
};

/* Set up a ring with `entries` submission slots, wired into `base`.
 * Returns 0 and *out owned, or -errno; when io_uring itself is unavailable
 * (seccomp, kernel.io_uring_disabled) a log line names the cause and fix. */
int uring_new(struct event_base *base, unsigned entries, struct uring **out);

/* Free the ring.  Operations still in flight are abandoned: their callbacks
 * never run (only at shutdown, after uring_drain). */
void uring_free(struct uring *u);

/* A fresh SQE whose user_data is `op`, submitted at the end of the turn.
 * If the submission queue is full it is flushed first.  Returns NULL only
 * when the kernel refuses more work right now (then nothing was queued). */
struct io_uring_sqe *uring_sqe(struct uring *u, struct uring_op *op);

/* Make room for n more SQEs (submitting what is queued if needed), so a
 * linked chain of up to n operations is never split.  Returns 0 or -errno. */
int uring_reserve(struct uring *u, unsigned n);

/* Queue d->fn to run at the end of this loop turn (no-op if queued). */
void uring_defer(struct uring *u, struct uring_defer *d);

/* Take d off the end-of-turn queue (before freeing its owner). */
void uring_defer_cancel(struct uring *u, struct uring_defer *d);

/* The event base the ring is wired into. */
struct event_base *uring_base(const struct uring *u);

/* Submit now what is queued.  Returns the number submitted or -errno. */
int uring_submit(struct uring *u);

/* Blocking: run deferred work, submit, wait for at least one completion and
 * dispatch every completion there is.  For start-up and shutdown paths only.
 * Returns 0 or -errno. */
int uring_wait(struct uring *u);

/* Operations submitted or queued whose completion has not been dispatched. */
unsigned uring_inflight(const struct uring *u);

/* Test seam: while set, every completion passes through fn, which may
 * replace its result (fault injection in the completion path). */
void uring_set_filter(struct uring *u, int (*fn)(struct uring_op *op, int res, void *arg),
		      void *arg);

#endif
