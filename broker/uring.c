/* uring — see uring.h.  The ring is created without SQPOLL or DEFER_TASKRUN:
 * completions must post (and signal the eventfd) while the thread sleeps in
 * epoll_wait, which DEFER_TASKRUN would hold back until the next enter. */
#include "broker/uring.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/failpoint.h"
#include "broker/logging.h"

#define URING_REAP_BATCH 64

struct uring {
	struct io_uring ring;
	struct event_base *base;
	struct event *efd_ev;   /* persistent read on the eventfd */
	struct event *turn_ev;  /* activated once per turn: deferred work + submit */
	int efd;
	bool turn_scheduled;
	unsigned inflight;
	TAILQ_HEAD(, uring_defer) defers;
	int (*filter)(struct uring_op *op, int res, void *arg);
	void *filter_arg;
};

static void uring_reap(struct uring *u)
{
	struct {
		struct uring_op *op;
		int res;
	} done[URING_REAP_BATCH];

	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		io_uring_for_each_cqe(&u->ring, head, cqe) {
			done[n].op = io_uring_cqe_get_data(cqe);
			done[n].res = cqe->res;
			if (++n == URING_REAP_BATCH)
				break;
		}
		if (n == 0)
			return;
		/* Free the CQ slots before callbacks, which may queue more work. */
		io_uring_cq_advance(&u->ring, n);
		u->inflight -= n;
		for (unsigned i = 0; i < n; i++) {
			int res = done[i].res;
			int fperr = 0;

			if (u->filter != NULL)
				res = u->filter(done[i].op, res, u->filter_arg);
			/* Fault injection in the completion path: the operation
			 * was done, but its caller sees the injected error. */
			if (fp_hit(done[i].op->what, &fperr) == FP_ERROR)
				res = fperr;
			done[i].op->cb(done[i].op, res);
		}
	}
}

static void uring_run_defers(struct uring *u)
{
	struct uring_defer *d;

	while ((d = TAILQ_FIRST(&u->defers)) != NULL) {
		TAILQ_REMOVE(&u->defers, d, link);
		d->queued = false;
		d->fn(d);
	}
}

static void on_turn_end(evutil_socket_t fd, short what, void *arg)
{
	struct uring *u = arg;

	(void)fd;
	(void)what;
	u->turn_scheduled = false;
	uring_run_defers(u);
	int rc = uring_submit(u);
	if (rc < 0 && rc != -EBUSY && rc != -EAGAIN)
		log_msg_errno(LOGL_ERROR, rc, "io_uring submit failed");
	/* A buffered write punted to an io-wq worker often completes before
	 * io_uring_enter returns (the worker, woken on this CPU, preempts us):
	 * dispatch it now rather than after a trip through epoll_wait and the
	 * eventfd.  The eventfd stays set; its next wake-up finds nothing. */
	if (io_uring_cq_ready(&u->ring) > 0)
		uring_reap(u);
}

static void schedule_turn(struct uring *u)
{
	if (u->turn_scheduled)
		return;
	u->turn_scheduled = true;
	/* Appended to the tail of the active queue: runs after every callback
	 * already activated in this turn. */
	event_active(u->turn_ev, EV_TIMEOUT, 0);
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	struct uring *u = arg;
	uint64_t v;

	(void)what;
	/* One read resets the counter (not EFD_SEMAPHORE); a failure
	 * (EAGAIN) is harmless: the ring is the truth. */
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_msg_errno(LOGL_WARN, -errno, "io_uring eventfd read");
	uring_reap(u);
}

int uring_new(struct event_base *base, unsigned entries, struct uring **out)
{
	struct uring *u = calloc(1, sizeof(*u));
	int rc;

	if (u == NULL)
		return -ENOMEM;
	u->base = base;
	u->efd = -1;
	TAILQ_INIT(&u->defers);
	rc = io_uring_queue_init(entries, &u->ring, 0);
	if (rc < 0) {
		log_msg_errno(LOGL_ERROR, rc,
			      "io_uring is not available (io_uring_setup failed); "
			      "brokerd writes its log through io_uring: set the sysctl "
			      "kernel.io_uring_disabled=0 and, in a container, use a "
			      "seccomp profile that allows io_uring_setup/io_uring_enter");
		free(u);
		return rc;
	}
	u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->efd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = io_uring_register_eventfd(&u->ring, u->efd);
	if (rc < 0)
		goto fail;
	u->efd_ev = event_new(base, u->efd, EV_READ | EV_PERSIST, on_eventfd, u);
	u->turn_ev = event_new(base, -1, 0, on_turn_end, u);
	if (u->efd_ev == NULL || u->turn_ev == NULL || event_add(u->efd_ev, NULL) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = u;
	return 0;
fail:
	log_msg_errno(LOGL_ERROR, rc, "cannot wire io_uring into the event loop");
	uring_free(u);
	return rc;
}

void uring_free(struct uring *u)
{
	if (u == NULL)
		return;
	if (u->efd_ev != NULL)
		event_free(u->efd_ev);
	if (u->turn_ev != NULL)
		event_free(u->turn_ev);
	io_uring_queue_exit(&u->ring);
	if (u->efd >= 0)
		close(u->efd);
	free(u);
}

struct io_uring_sqe *uring_sqe(struct uring *u, struct uring_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (sqe == NULL) {
		if (uring_submit(u) < 0)
			return NULL;
		sqe = io_uring_get_sqe(&u->ring);
		if (sqe == NULL)
			return NULL;
	}
	io_uring_sqe_set_data(sqe, op);
	u->inflight++;
	schedule_turn(u);
	return sqe;
}

int uring_reserve(struct uring *u, unsigned n)
{
	if (io_uring_sq_space_left(&u->ring) >= n)
		return 0;
	int rc = uring_submit(u);
	if (rc < 0)
		return rc;
	return io_uring_sq_space_left(&u->ring) >= n ? 0 : -EBUSY;
}

void uring_defer(struct uring *u, struct uring_defer *d)
{
	if (d->queued)
		return;
	d->queued = true;
	TAILQ_INSERT_TAIL(&u->defers, d, link);
	schedule_turn(u);
}

void uring_defer_cancel(struct uring *u, struct uring_defer *d)
{
	if (!d->queued)
		return;
	TAILQ_REMOVE(&u->defers, d, link);
	d->queued = false;
}

struct event_base *uring_base(const struct uring *u)
{
	return u->base;
}

int uring_submit(struct uring *u)
{
	if (io_uring_sq_ready(&u->ring) == 0)
		return 0;
	return io_uring_submit(&u->ring);
}

int uring_wait(struct uring *u)
{
	struct io_uring_cqe *cqe;
	int rc;

	uring_run_defers(u);
	rc = uring_submit(u);
	if (rc < 0)
		return rc;
	if (u->inflight == 0)
		return 0;
	do
		rc = io_uring_wait_cqe(&u->ring, &cqe);
	while (rc == -EINTR);
	if (rc < 0)
		return rc;
	uring_reap(u);
	return 0;
}

unsigned uring_inflight(const struct uring *u)
{
	return u->inflight;
}

void uring_set_filter(struct uring *u, int (*fn)(struct uring_op *op, int res, void *arg),
		      void *arg)
{
	u->filter = fn;
	u->filter_arg = arg;
}
