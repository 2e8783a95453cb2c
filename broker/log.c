/* log — see log.h.  The write pipeline of one partition:
 *
 *   log_append ─► pending ──(end of loop turn: one pwritev per run of
 *   batches, up to LOG_WRITE_DEPTH writes in flight)──► inflight
 *   ──(contiguous prefix of completed writes)──► written ──► callbacks for
 *   acks none/leader, or ► waiting ──(one fdatasync for all)──► durable.
 *
 * Invariants:
 *  1. Appends sit in pending, inflight and waiting in offset order.
 *  2. `written` advances only over the contiguous prefix of completed
 *     writes; an fdatasync covers what was written when it was submitted.
 *  3. Data in a new segment counts as durable only after the directory that
 *     names it is fsynced (the seal chain of the previous segment does it);
 *     a sealed segment is durable to its end once its seal chain completed.
 *  4. Any failed write or fsync puts the log in the failed state for good:
 *     after an fsync error the page cache can no longer be trusted, so
 *     retrying would acknowledge data that may be gone (fsyncgate).  The
 *     one exception is a write refused for lack of space (ENOSPC, EDQUOT:
 *     the kernel took none of the bytes it refused, so nothing is lost):
 *     the log is cut back to its written end and its later appends fail
 *     with that error (see nospace_cut); fsync errors stay fatal.
 *  5. Every io_uring operation of a log is counted in ops; the log is not
 *     freed while ops > 0.
 *
 * Recovery checkpoint file `checkpoint`: two slots, at 0 and 4096, written
 * alternately (the one with the higher seq and a good CRC wins), 64 bytes:
 *   off size field
 *     0   4  magic          "BKCP"
 *     4   2  version        1
 *     6   2  flags          bit 0: clean shutdown
 *     8   8  seq            u64, +1 per checkpoint
 *    16   8  segment base   i64 segment holding the checkpoint
 *    24   8  position       u64 bytes of that .log known valid and durable
 *    32   8  next offset    i64 offset after the last batch below position
 *    40   8  max timestamp  i64 of the segment up to position
 *    48   4  index entries  u32 in <base>.index covering [0, position)
 *    52   4  time entries   u32 in <base>.timeindex likewise
 *    56   4  reserved       0
 *    60   4  crc            CRC-32C of bytes [0, 60)
 * Segments before the checkpoint's are sealed with complete index files.
 */
#include "broker/log.h"

#include <assert.h>
#include <dirent.h>
#include <endian.h>
#include <event2/event.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "broker/failpoint.h"
#include "broker/hist.h"
#include "broker/logging.h"
#include "broker/segment.h"
#include "broker/uring.h"
#include "proto/batch.h"
#include "proto/le.h"

#define LOG_WRITE_DEPTH   8          /* positional writes in flight per log */
#define LOG_WRITE_MAX_IOV 1024
#define LOG_WRITE_MAX     (8u << 20) /* bytes per write */
/* Zero-ahead: while a flush.mode=always|interval log is idle, the active
 * segment is extended with zeros in chunks of LOG_ZERO_CHUNK once fewer
 * than LOG_ZERO_LOW bytes of zeros are left past its end.  Appends then
 * overwrite allocated blocks of a file whose size does not change, and an
 * fdatasync need not write the inode: ~120 instead of ~200 us per commit
 * on this disk (docs/storage.md).  The zeros past the end are cut off when
 * the segment is sealed or the log closed, and a crash leaves them as a
 * torn tail that recovery cuts. */
#define LOG_ZERO_CHUNK    (256u << 10)
#define LOG_ZERO_LOW      (128u << 10)
/* After a seal found no room for its index files, try again this often. */
#define LOG_SPACE_RETRY_MS 1000
#define CKPT_NAME         "checkpoint"
#define CKPT_MAGIC        0x50434b42u /* "BKCP" */
#define CKPT_SLOT_SIZE    64
#define CKPT_SLOT_STRIDE  4096
#define CKPT_CLEAN        1u
#define CHAIN_MAX_OPS     8

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

_Static_assert(CKPT_SLOT_SIZE == 64, "checkpoint slot is 64 bytes");

struct log_ctx {
	struct uring *u;
	struct log_ctx_opts opts;
	TAILQ_HEAD(seg_lru_head, segment) lru; /* sealed, open, unreferenced; MRU first */
	int nopen;
	int64_t ret_wall0;     /* the retention clock: wall at creation ... */
	int64_t ret_mono0;     /* ... plus monotonic time elapsed since */
};

struct cursor {
	struct segment *seg;
	uint64_t pos;
	int64_t off;
};

struct log_write {
	struct uring_op op;
	struct log *log;
	struct segment *seg;
	uint64_t pos;         /* where iov[first] goes */
	uint64_t end_pos;
	int64_t end_offset;
	bool done;
	bool failed;          /* refused for lack of space (nospace_cut) */
	int64_t max_ts;       /* largest batch timestamp in the write */
	uint32_t last_rel;    /* relative offset of its last batch */
	uint64_t bytes;
	int first, niov;
	TAILQ_ENTRY(log_write) link;
	uint8_t hdr[SEG_HEADER_SIZE];
	struct iovec iov[];
};

struct log_chain;
struct chain_op {
	struct uring_op op;
	struct log_chain *ch;
};

/* A linked sequence of io_uring operations (seal or checkpoint). */
struct log_chain {
	struct log *log;
	struct segment *seg;
	struct chain_op ops[CHAIN_MAX_OPS];
	struct io_uring_sqe *last;
	int nops, ndone, err;
	const char *failed_what;
	int fds[3];
	uint8_t *bufs[3];
	void (*done)(struct log_chain *ch);
	/* checkpoint target */
	struct cursor at;
	uint32_t noff, ntime;
	uint16_t flags;
	uint8_t slot[CKPT_SLOT_SIZE];
};

struct log_sync {
	struct uring_op op;
	struct log *log;
	struct cursor at;
	int64_t t0_us;          /* submission time, for the latency histogram */
	bool linked;            /* chained after a write: cancelled if it fails */
	bool skipped;           /* failpoint log.fsync.submit=skip: a nop ran */
	bool dropped;           /* covers bytes a disk-full cut took back */
};

struct log_unlink {
	struct uring_op op;
	struct log *log;
	char name[SEG_NAME_MAX];
};

struct log {
	struct log_ctx *ctx;
	char *dir;
	int dirfd;
	struct log_config cfg;
	struct segment **segs; /* by base offset; the last one is active */
	int nsegs, cap;
	int64_t end;
	struct cursor written, durable, hw;
	uint64_t unsynced_bytes;
	TAILQ_HEAD(log_append_q, log_append) pending, inflight, waiting;
	TAILQ_HEAD(, log_write) writes;
	int nwrites;
	int ops;               /* io_uring operations in flight */
	struct uring_defer flush_defer;
	struct log_sync sync;
	bool sync_inflight;
	bool sync_due;         /* flush.interval.ms elapsed: sync what is written */
	struct event *interval_ev;
	bool seal_inflight;
	/* zero-ahead of the active segment (see LOG_ZERO_CHUNK) */
	struct uring_op zero_op;
	struct segment *zero_seg;  /* segment of the zero write in flight */
	uint64_t zero_from, zero_to; /* its range; zero_seg NULL: none */
	uint64_t file_end;         /* active segment: end of everything written
	                              or being written (data or zeros) */
	bool zero_failed;          /* a zero write failed: none more this segment */
	/* disk full (see nospace_cut) */
	int nospace;               /* -ENOSPC/-EDQUOT while cutting back, else 0 */
	bool nospace_warned;       /* logged; cleared by the next good write */
	int64_t wr_max_ts;         /* written.seg's largest timestamp and last */
	uint32_t wr_last_rel;      /* batch up to the written cursor */
	struct event *retry_ev;    /* retries a seal the disk had no room for */
	bool seal_waiting;         /* a seal found no room: wait for retry_ev */
	int ckpt_err;              /* result of the last checkpoint chain */
	bool ckpt_inflight;
	uint64_t ckpt_seq;
	int64_t ckpt_off;      /* offset of the last completed checkpoint */
	int error;
	struct cursor hint;    /* end of the last slice read: where tailing
	                          consumers come back */
	void (*hw_cb)(struct log *, void *);
	void *hw_arg;
	char corruption[320];
	LIST_ENTRY(log) all;   /* every open log, for the power-loss hook */
};

/* Every open log of the process (one reactor thread), so that a failpoint
 * powerloss action can cut their files (log_powerloss). */
static LIST_HEAD(, log) all_logs = LIST_HEAD_INITIALIZER(all_logs);

static int64_t sys_wall_ms(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sys_mono_ms(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(const struct log *l)
{
	return l->ctx->opts.clock.wall_ms(l->ctx->opts.clock.arg);
}

static int64_t mono_ms(const struct log *l)
{
	return l->ctx->opts.clock.mono_ms(l->ctx->opts.clock.arg);
}

/* Real monotonic µs, for latency figures only (never for decisions). */
static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void log_config_defaults(struct log_config *cfg)
{
	cfg->segment_bytes = 1LL << 30;
	cfg->segment_ms = 7LL * 24 * 3600 * 1000;
	cfg->retention_ms = 7LL * 24 * 3600 * 1000;
	cfg->retention_bytes = -1;
	cfg->flush_mode = LOG_FLUSH_ALWAYS;
	cfg->flush_interval_ms = 1000;
	cfg->flush_bytes = -1;
	cfg->index_interval_bytes = 4096;
	cfg->timestamp_after_max_ms = 3600 * 1000;
}

/* --- context and fd cache ------------------------------------------------ */

int log_ctx_new(struct uring *u, const struct log_ctx_opts *opts, struct log_ctx **out)
{
	struct log_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return -ENOMEM;
	ctx->u = u;
	ctx->opts = *opts;
	if (ctx->opts.max_open_segments < 1)
		ctx->opts.max_open_segments = 1;
	if (ctx->opts.max_batch_bytes < BATCH_HEADER_SIZE)
		ctx->opts.max_batch_bytes = 8u << 20;
	if (ctx->opts.clock.wall_ms == NULL)
		ctx->opts.clock.wall_ms = sys_wall_ms;
	if (ctx->opts.clock.mono_ms == NULL)
		ctx->opts.clock.mono_ms = sys_mono_ms;
	ctx->ret_wall0 = ctx->opts.clock.wall_ms(ctx->opts.clock.arg);
	ctx->ret_mono0 = ctx->opts.clock.mono_ms(ctx->opts.clock.arg);
	TAILQ_INIT(&ctx->lru);
	*out = ctx;
	return 0;
}

void log_ctx_free(struct log_ctx *ctx)
{
	free(ctx);
}

int64_t log_ctx_retention_ms(const struct log_ctx *ctx)
{
	return ctx->ret_wall0 + ctx->opts.clock.mono_ms(ctx->opts.clock.arg) - ctx->ret_mono0;
}

int log_ctx_open_segments(const struct log_ctx *ctx)
{
	return ctx->nopen;
}

struct uring *log_ctx_uring(const struct log_ctx *ctx)
{
	return ctx->u;
}

static void lru_remove(struct log_ctx *ctx, struct segment *s)
{
	if (s->in_lru) {
		TAILQ_REMOVE(&ctx->lru, s, lru);
		s->in_lru = false;
	}
}

/* Close a cached segment's fd and drop its index (both come back on the
 * next read). */
static void seg_evict(struct log_ctx *ctx, struct segment *s)
{
	lru_remove(ctx, s);
	close(s->fd);
	s->fd = -1;
	ctx->nopen--;
	idx_fini(&s->idx);
	s->index_ready = false;
}

static void lru_trim(struct log_ctx *ctx)
{
	struct segment *s;

	while (ctx->nopen > ctx->opts.max_open_segments &&
	       (s = TAILQ_LAST(&ctx->lru, seg_lru_head)) != NULL)
		seg_evict(ctx, s);
}

/* A sealed segment whose seal completed and that nobody reads becomes
 * evictable.  Not before: its seal chain still needs the fd (and the
 * seal may wait a while, for room for its index files), and a disk-full
 * cut may make it the active segment again. */
static void seg_park(struct log_ctx *ctx, struct segment *s)
{
	if (!s->seal_done || s->fd < 0 || s->refs > 0 || s->in_lru)
		return;
	TAILQ_INSERT_HEAD(&ctx->lru, s, lru);
	s->in_lru = true;
	lru_trim(ctx);
}

/* --- small helpers --------------------------------------------------------- */

static int open_seg_file(struct log *l, int64_t base, const char *ext, int flags)
{
	char name[SEG_NAME_MAX];
	int fd;

	seg_name(name, base, ext);
	fd = openat(l->dirfd, name, flags | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

static int find_seg(const struct log *l, int64_t offset)
{
	int lo = 0, hi = l->nsegs;

	while (lo < hi) { /* first segment with base > offset */
		int mid = lo + (hi - lo) / 2;
		if (l->segs[mid]->base <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

static struct segment *active(const struct log *l)
{
	return l->segs[l->nsegs - 1];
}

static int push_seg(struct log *l, struct segment *s)
{
	if (l->nsegs == l->cap) {
		int ncap = l->cap ? l->cap * 2 : 8;
		struct segment **n = realloc(l->segs, (size_t)ncap * sizeof(*n));
		if (n == NULL)
			return -ENOMEM;
		l->segs = n;
		l->cap = ncap;
	}
	l->segs[l->nsegs++] = s;
	return 0;
}

/* A write refused for lack of space: nothing of it was taken. */
static bool space_err(int err)
{
	return err == -ENOSPC || err == -EDQUOT;
}

static bool flush_always(const struct log *l)
{
	return l->cfg.flush_mode == LOG_FLUSH_ALWAYS;
}

static void set_hw(struct log *l)
{
	struct cursor c = flush_always(l) ? l->durable : l->written;

	if (c.off <= l->hw.off)
		return;
	l->hw = c;
	if (l->hw_cb != NULL)
		l->hw_cb(l, l->hw_arg);
}

/* Put the log into the failed state (once) and fail every append that is
 * not still owned by an in-flight write. */
static void log_fail(struct log *l, int err, const char *what)
{
	struct log_append *a;

	if (l->error == 0) {
		l->error = err < 0 ? err : -EIO;
		log_msg_errno(LOGL_ERROR, err, "%s: %s failed; partition is now read-only",
			      l->dir, what);
	}
	while ((a = TAILQ_FIRST(&l->waiting)) != NULL) {
		TAILQ_REMOVE(&l->waiting, a, link);
		a->cb(a, l->error);
	}
	while ((a = TAILQ_FIRST(&l->pending)) != NULL) {
		TAILQ_REMOVE(&l->pending, a, link);
		a->cb(a, l->error);
	}
}

static struct io_uring_sqe *log_sqe(struct log *l, struct uring_op *op, uring_cb cb,
				    const char *what)
{
	struct io_uring_sqe *sqe;

	op->cb = cb;
	op->what = what;
	sqe = uring_sqe(l->ctx->u, op);
	if (sqe != NULL)
		l->ops++;
	return sqe;
}

/* --- durability -------------------------------------------------------------- */

static void ack_waiting(struct log *l)
{
	struct log_append *a;

	while ((a = TAILQ_FIRST(&l->waiting)) != NULL && a->end_offset <= l->durable.off) {
		TAILQ_REMOVE(&l->waiting, a, link);
		a->cb(a, 0);
	}
}

/* Recompute the durable cursor from the per-segment sync state (inv. 3). */
static void advance_durable(struct log *l)
{
	int i = find_seg(l, l->durable.off);

	for (i = i < 0 ? 0 : i; i < l->nsegs; i++) {
		struct segment *s = l->segs[i];
		if (!s->created_durable)
			break;
		if (s->synced_off > l->durable.off)
			l->durable = (struct cursor){ s, s->synced_pos, s->synced_off };
		if (!s->seal_done)
			break;
	}
	set_hw(l);
	ack_waiting(l);
}

static void maybe_sync(struct log *l);
static void maybe_seal(struct log *l);
static void maybe_zero(struct log *l);
static void nospace_cut(struct log *l);
static void seg_drop(struct log_ctx *ctx, struct segment *s);

static void on_sync(struct uring_op *op, int res)
{
	struct log_sync *ls = container_of(op, struct log_sync, op);
	struct log *l = ls->log;

	l->ops--;
	l->sync_inflight = false;
	if (res == -ECANCELED && ls->linked) {
		/* Its write failed or was short: on_write handles that, and
		 * the rest is synced once written. */
		maybe_sync(l);
		return;
	}
	if (l->ctx->opts.fsync_hist != NULL)
		hist_add(l->ctx->opts.fsync_hist, (uint64_t)(mono_us() - ls->t0_us));
	if (res < 0) {
		log_fail(l, res, "fdatasync");
		return;
	}
	if (ls->dropped) {
		/* Linked behind a write that was refused for lack of space (a
		 * real refusal cancels it): what it covered was cut, and the
		 * offsets may be written again since, after it started. */
		maybe_sync(l);
		return;
	}
	/* Power-loss simulation: this fsync really ran, so what was written
	 * when it was submitted (ls->at) survives a power cut. */
	if (!ls->skipped && ls->at.pos > ls->at.seg->pl_synced)
		ls->at.seg->pl_synced = ls->at.pos;
	/* A failed log never advances; and a sync covers only what this loop
	 * saw written (a linked sync's write completes first). */
	if (l->error != 0)
		return;
	if (ls->at.off > l->written.off) {
		maybe_sync(l);
		return;
	}
	if (ls->at.off > ls->at.seg->synced_off) {
		ls->at.seg->synced_off = ls->at.off;
		ls->at.seg->synced_pos = ls->at.pos;
	}
	advance_durable(l);
	maybe_sync(l);
	maybe_zero(l);
}

/* Prepare the group-commit fdatasync of fd in sqe.  Test builds may arm
 * "log.fsync.submit=skip": a nop takes its place and reports success (a
 * disk that lies about flushing), which the crash tests use to show that
 * their power-loss simulation and checker do see lost writes.  Returns true
 * when the fsync was skipped. */
static bool prep_data_sync(struct io_uring_sqe *sqe, int fd)
{
	if (fp_hit("log.fsync.submit", NULL) == FP_SKIP) {
		io_uring_prep_nop(sqe);
		return true;
	}
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	return false;
}

/* Submit one fdatasync covering everything written, if anyone needs it. */
static void maybe_sync(struct log *l)
{
	struct segment *s = l->written.seg;
	bool need;

	if (l->error != 0 || l->sync_inflight || s->synced_off >= l->written.off)
		return;
	switch (l->cfg.flush_mode) {
	case LOG_FLUSH_ALWAYS:
		need = true; /* readers only see what is durable */
		break;
	case LOG_FLUSH_INTERVAL:
		need = l->sync_due || (l->cfg.flush_bytes > 0 &&
				       l->unsynced_bytes >= (uint64_t)l->cfg.flush_bytes);
		break;
	default:
		need = l->sync_due;
	}
	if (!need)
		return;
	struct io_uring_sqe *sqe = log_sqe(l, &l->sync.op, on_sync, "log.fsync");
	if (sqe == NULL)
		return; /* retried on the next completion */
	l->sync.skipped = prep_data_sync(sqe, s->fd);
	l->sync.log = l;
	l->sync.at = l->written;
	l->sync.t0_us = mono_us();
	l->sync.linked = false;
	l->sync.dropped = false;
	l->sync_inflight = true;
	l->sync_due = false;
	l->unsynced_bytes = 0;
}

static void on_interval(evutil_socket_t fd, short what, void *arg)
{
	struct log *l = arg;

	(void)fd;
	(void)what;
	l->sync_due = true;
	maybe_sync(l);
}

/* flush.mode=interval: make sure a sync is due within flush.interval.ms of
 * the first unsynced write. */
static void arm_interval(struct log *l)
{
	if (l->cfg.flush_mode != LOG_FLUSH_INTERVAL || l->interval_ev == NULL ||
	    evtimer_pending(l->interval_ev, NULL))
		return;
	struct timeval tv = { (time_t)(l->cfg.flush_interval_ms / 1000),
			      (suseconds_t)(l->cfg.flush_interval_ms % 1000) * 1000 };
	evtimer_add(l->interval_ev, &tv);
}

/* --- chains (seal, checkpoint) ------------------------------------------------ */

static void chain_free(struct log_chain *ch)
{
	for (int i = 0; i < 3; i++) {
		if (ch->fds[i] >= 0)
			close(ch->fds[i]);
		free(ch->bufs[i]);
	}
	free(ch);
}

static struct log_chain *chain_new(struct log *l, struct segment *s)
{
	struct log_chain *ch;

	/* Room for the whole chain in the SQ, so no flush splits it. */
	if (uring_reserve(l->ctx->u, CHAIN_MAX_OPS) < 0)
		return NULL;
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		return NULL;
	ch->log = l;
	ch->seg = s;
	for (int i = 0; i < 3; i++)
		ch->fds[i] = -1;
	return ch;
}

static void on_chain_op(struct uring_op *op, int res)
{
	struct chain_op *co = container_of(op, struct chain_op, op);
	struct log_chain *ch = co->ch;

	ch->log->ops--;
	/* A failure cancels the rest of the chain: keep the first real error,
	 * even if a cancellation was reported before it. */
	if (res < 0 && (ch->err == 0 || ch->err == -ECANCELED)) {
		ch->err = res;
		if (res != -ECANCELED)
			ch->failed_what = op->what;
	}
	if (++ch->ndone == ch->nops)
		ch->done(ch);
}

static struct io_uring_sqe *chain_sqe(struct log_chain *ch, const char *what)
{
	struct chain_op *co = &ch->ops[ch->nops];
	struct io_uring_sqe *sqe = log_sqe(ch->log, &co->op, on_chain_op, what);

	if (sqe == NULL)
		return NULL;
	co->ch = ch;
	ch->nops++;
	sqe->flags |= IOSQE_IO_LINK;
	ch->last = sqe;
	return sqe;
}

/* Close the chain: its last op must not link into whatever comes next. */
static void chain_end(struct log_chain *ch)
{
	if (ch->last != NULL)
		ch->last->flags &= (uint8_t)~IOSQE_IO_LINK;
}

/* Write index entries [from, n) of both indexes to their files (creating
 * them with a header when from == 0) and fsync both: four linked ops.
 * A file said to hold more entries than are kept (from > n: entries of a
 * damaged file that the log dropped) is written again whole.
 * Returns the last sqe or NULL (-> *err). */
static struct io_uring_sqe *chain_index(struct log_chain *ch, struct segment *s, bool sealed,
					uint32_t from_off, uint32_t noff,
					uint32_t from_time, uint32_t ntime, int *err)
{
	struct log *l = ch->log;
	struct io_uring_sqe *sqe = NULL;
	const struct {
		const char *ext;
		uint32_t magic, from, to;
		size_t esz;
	} f[2] = {
		{ ".index", SEG_MAGIC_INDEX, from_off, noff, IDX_ENTRY_SIZE },
		{ ".timeindex", SEG_MAGIC_TIMEINDEX, from_time, ntime, TIDX_ENTRY_SIZE },
	};

	for (int i = 0; i < 2; i++) {
		uint32_t from = f[i].from <= f[i].to ? f[i].from : 0;
		int flags = O_WRONLY | O_CREAT | (from == 0 ? O_TRUNC : 0);
		int fd = open_seg_file(l, s->base, f[i].ext, flags);
		if (fd < 0) {
			*err = fd;
			return NULL;
		}
		ch->fds[i] = fd;
		size_t hdr = from == 0 ? SEG_HEADER_SIZE : 0;
		size_t len = hdr + (size_t)(f[i].to - from) * f[i].esz;
		uint8_t *buf = malloc(len ? len : 1);
		if (buf == NULL) {
			*err = -ENOMEM;
			return NULL;
		}
		ch->bufs[i] = buf;
		if (hdr)
			seg_header_encode(buf, f[i].magic, s->base);
		if (hdr && sealed && i == 0)
			seg_header_set_flags(buf, SEG_FLAG_SEALED);
		if (i == 0)
			idx_encode_off(&s->idx, from, f[i].to, buf + hdr);
		else
			idx_encode_time(&s->idx, from, f[i].to, buf + hdr);
		uint64_t at = hdr ? 0 : SEG_HEADER_SIZE + (uint64_t)from * f[i].esz;
		sqe = chain_sqe(ch, "log.index.write");
		if (sqe == NULL)
			goto busy;
		io_uring_prep_write(sqe, fd, buf, (unsigned)len, at);
		sqe = chain_sqe(ch, "log.index.fsync");
		if (sqe == NULL)
			goto busy;
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	}
	return sqe;
busy:
	*err = -EBUSY;
	return NULL;
}

static void on_seal_retry(evutil_socket_t fd, short what, void *arg)
{
	struct log *l = arg;

	(void)fd;
	(void)what;
	l->seal_waiting = false;
	maybe_seal(l);
}

/* Hold seals back for LOG_SPACE_RETRY_MS, then try again. */
static void seal_wait(struct log *l)
{
	struct timeval tv = { LOG_SPACE_RETRY_MS / 1000, (LOG_SPACE_RETRY_MS % 1000) * 1000 };

	l->seal_waiting = true;
	if (l->retry_ev == NULL || evtimer_add(l->retry_ev, &tv) < 0)
		l->seal_waiting = false; /* then the next completion retries */
}

static void on_seal_done(struct log_chain *ch)
{
	struct log *l = ch->log;
	struct segment *s = ch->seg;

	l->seal_inflight = false;
	if (ch->err == 0)
		fp_hit("log.roll.sealed", NULL); /* seal durable, memory not updated */
	if (space_err(ch->err) && ch->failed_what != NULL &&
	    strcmp(ch->failed_what, "log.index.write") == 0) {
		/* The .log is synced; only its index files found no room.
		 * They are rewritten whole by the retry. */
		log_msg_errno(LOGL_WARN, ch->err, "%s: seal of segment %020" PRId64 " deferred: "
			      "no room for its index files; retrying every %d ms", l->dir,
			      s->base, LOG_SPACE_RETRY_MS);
		chain_free(ch);
		seal_wait(l);
		return;
	}
	if (ch->err != 0) {
		log_fail(l, ch->err, ch->failed_what ? ch->failed_what : "segment seal");
		chain_free(ch);
		return;
	}
	s->seal_done = true;
	s->synced_off = s->next_offset;
	s->synced_pos = s->size;
	s->idx_saved = s->idx.noff;
	s->tidx_saved = s->idx.ntime;
	int i = find_seg(l, s->base);
	if (i + 1 < l->nsegs)
		l->segs[i + 1]->created_durable = true;
	chain_free(ch);
	seg_park(l->ctx, s);
	advance_durable(l);
	maybe_seal(l);
	maybe_sync(l);
}

/* Seal the oldest sealed-but-unsynced segment once every write to it has
 * completed: fdatasync it, write and fsync both index files, then fsync the
 * directory (which also makes the next segment's file name durable). */
static void maybe_seal(struct log *l)
{
	struct segment *s = NULL;
	struct io_uring_sqe *sqe;
	int err = 0;

	if (l->error != 0 || l->seal_inflight || l->ckpt_inflight || l->seal_waiting)
		return;
	for (int i = 0; i < l->nsegs - 1; i++) {
		if (!l->segs[i]->seal_done) {
			s = l->segs[i];
			break;
		}
	}
	if (s == NULL || l->written.off < s->next_offset || l->zero_seg == s)
		return;
	/* Cut the zero-ahead tail; the seal's fdatasync makes the new size
	 * durable before the index says "sealed".  A metadata-only call, the
	 * one synchronous file operation after start-up (liburing 2.3 has no
	 * ftruncate op). */
	if (s->zero_tail) {
		if (ftruncate(s->fd, (off_t)s->size) < 0) {
			log_fail(l, -errno, "segment truncate");
			return;
		}
		s->zero_tail = false;
	}
	fp_hit("log.roll.seal", NULL); /* old segment written whole, seal not begun */
	struct log_chain *ch = chain_new(l, s);
	if (ch == NULL) {
		log_fail(l, -ENOMEM, "segment seal");
		return;
	}
	ch->done = on_seal_done;
	sqe = chain_sqe(ch, "log.seal.fsync");
	if (sqe == NULL)
		goto busy;
	io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
	if (chain_index(ch, s, true, 0, s->idx.noff, 0, s->idx.ntime, &err) == NULL)
		goto fail;
	sqe = chain_sqe(ch, "log.dir.fsync");
	if (sqe == NULL)
		goto busy;
	io_uring_prep_fsync(sqe, l->dirfd, 0);
	chain_end(ch);
	l->seal_inflight = true;
	/* Power-loss simulation: the chain's later steps (the .index saying
	 * "sealed") reach the disk only after this fdatasync ran, and the
	 * simulation cannot tell whether the kernel ran it before the cut:
	 * keep the data, an outcome a power cut allows either way. */
	s->pl_synced = s->size;
	return;
busy:
	err = -EBUSY;
fail:
	if (ch->nops > 0) {
		/* Some ops are queued: let them finish into a failed chain. */
		ch->err = err;
		ch->failed_what = "segment seal";
		chain_end(ch);
		l->seal_inflight = true;
		return;
	}
	chain_free(ch);
	log_fail(l, err, "segment seal");
}

/* --- writes ------------------------------------------------------------------- */

static void on_write(struct uring_op *op, int res);

/* Source of zero-ahead writes: never written, so it stays the kernel's
 * shared zero page and costs no memory. */
static uint8_t zeros[LOG_ZERO_CHUNK];

static void maybe_seal(struct log *l);

static void on_zero(struct uring_op *op, int res)
{
	struct log *l = container_of(op, struct log, zero_op);

	l->ops--;
	if (res != (int)(l->zero_to - l->zero_from)) {
		/* Nothing depends on the zeros: note how far the file may now
		 * reach and stop zeroing this segment (the appends will meet any
		 * real disk trouble themselves). */
		if (res > 0 && l->zero_seg == active(l))
			l->file_end = l->zero_from + (uint64_t)res;
		l->zero_seg->zero_tail = true;
		l->zero_failed = true;
		log_msg_errno(LOGL_DEBUG, res < 0 ? res : -EIO, "%s: zero-ahead stopped", l->dir);
	}
	l->zero_seg = NULL;
	maybe_seal(l); /* a rolled segment waits for its zeros */
	if (l->nospace != 0)
		nospace_cut(l); /* it waited for the zeros too */
	else if (!TAILQ_EMPTY(&l->pending))
		uring_defer(l->ctx->u, &l->flush_defer);
}

/* Extend the active segment with zeros while the log is idle (see
 * LOG_ZERO_CHUNK).  Only past every byte written or being written, and
 * start_write holds back appends that would overlap the range in flight. */
static void maybe_zero(struct log *l)
{
	struct segment *s = active(l);
	struct io_uring_sqe *sqe;

	if (l->error != 0 || l->zero_seg != NULL || l->zero_failed || l->nwrites > 0 ||
	    !TAILQ_EMPTY(&l->pending) || l->cfg.flush_mode == LOG_FLUSH_OS || s->hdr_pending ||
	    l->file_end - s->size >= LOG_ZERO_LOW ||
	    l->file_end + LOG_ZERO_CHUNK > (uint64_t)l->cfg.segment_bytes)
		return;
	sqe = log_sqe(l, &l->zero_op, on_zero, "log.zero");
	if (sqe == NULL)
		return;
	io_uring_prep_write(sqe, s->fd, zeros, LOG_ZERO_CHUNK, l->file_end);
	l->zero_seg = s;
	l->zero_from = l->file_end;
	l->zero_to = l->file_end + LOG_ZERO_CHUNK;
	l->file_end = l->zero_to;
	s->zero_tail = true;
}

static void on_sync(struct uring_op *op, int res);

/* With flush.mode=always and nothing else in flight, the write's
 * fdatasync is linked behind it in the same submission: the kernel starts
 * it the moment the write completes, without a trip back through the loop
 * (the latency of a lone acks=all produce).  Only then: an fdatasync linked
 * to one write is not ordered after other writes in flight. */
static bool link_sync(const struct log *l, const struct log_write *w)
{
	return flush_always(l) && l->nwrites == 0 && !l->sync_inflight && w->first == 0 &&
	       uring_reserve(l->ctx->u, 2) == 0;
}

static int submit_write_sqe(struct log *l, struct log_write *w)
{
	bool link = link_sync(l, w);
	struct io_uring_sqe *sqe = log_sqe(l, &w->op, on_write, "log.write");

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_writev(sqe, w->seg->fd, &w->iov[w->first],
			     (unsigned)(w->niov - w->first), w->pos);
	if (!link)
		return 0;
	sqe->flags |= IOSQE_IO_LINK;
	sqe = log_sqe(l, &l->sync.op, on_sync, "log.fsync");
	if (sqe == NULL) /* cannot happen after uring_reserve(2) */
		return 0;
	bool skipped = prep_data_sync(sqe, w->seg->fd);
	l->sync = (struct log_sync){ .op = l->sync.op, .log = l,
				     .at = { w->seg, w->end_pos, w->end_offset },
				     .t0_us = mono_us(), .linked = true, .skipped = skipped };
	l->sync_inflight = true;
	l->sync_due = false;
	return 0;
}

/* Move a run of pending appends (same segment, bounded) into one write. */
static int start_write(struct log *l)
{
	struct log_append *a = TAILQ_FIRST(&l->pending);
	struct segment *s = a->seg;
	struct log_write *w;
	int n = 0;
	size_t bytes = 0;

	for (struct log_append *x = a; x != NULL && x->seg == s && n < LOG_WRITE_MAX_IOV - 1 &&
	     (n == 0 || bytes + x->len <= LOG_WRITE_MAX); x = TAILQ_NEXT(x, link)) {
		n++;
		bytes += x->len;
	}
	/* Never race a zero-ahead write over the same bytes: wait for it. */
	if (l->zero_seg == s && a->pos + bytes > l->zero_from)
		return -EBUSY;
	w = calloc(1, sizeof(*w) + (size_t)(n + 1) * sizeof(struct iovec));
	if (w == NULL)
		return -ENOMEM;
	w->log = l;
	w->seg = s;
	w->pos = a->pos;
	if (s->hdr_pending) {
		/* The first write into a new segment carries its file header. */
		seg_header_encode(w->hdr, SEG_MAGIC_LOG, s->base);
		w->iov[w->niov++] = (struct iovec){ w->hdr, SEG_HEADER_SIZE };
		w->pos = 0;
	}
	for (int i = 0; i < n; i++) {
		struct log_append *x = TAILQ_FIRST(&l->pending);
		w->iov[w->niov++] = (struct iovec){ x->buf, x->len };
		w->end_pos = x->pos + x->len;
		w->end_offset = x->end_offset;
		w->bytes += x->len;
		w->last_rel = (uint32_t)(x->base_offset - s->base);
		if (i == 0 || x->max_ts > w->max_ts)
			w->max_ts = x->max_ts;
		TAILQ_REMOVE(&l->pending, x, link);
		TAILQ_INSERT_TAIL(&l->inflight, x, link);
	}
	if (submit_write_sqe(l, w) < 0) {
		/* Give the appends back to pending: retried on a completion. */
		for (int i = 0; i < n; i++) {
			struct log_append *x = TAILQ_LAST(&l->inflight, log_append_q);
			TAILQ_REMOVE(&l->inflight, x, link);
			TAILQ_INSERT_HEAD(&l->pending, x, link);
		}
		free(w);
		return -EBUSY;
	}
	s->hdr_pending = false;
	TAILQ_INSERT_TAIL(&l->writes, w, link);
	l->nwrites++;
	if (s == active(l) && w->end_pos > l->file_end)
		l->file_end = w->end_pos;
	return 0;
}

static void flush_pending(struct log *l)
{
	while (l->error == 0 && l->nospace == 0 && !TAILQ_EMPTY(&l->pending) && l->nwrites < LOG_WRITE_DEPTH) {
		int rc = start_write(l);
		if (rc == -ENOMEM) {
			log_fail(l, rc, "write");
			return;
		}
		if (rc < 0)
			return;
	}
}

static void on_flush_defer(struct uring_defer *d)
{
	flush_pending(container_of(d, struct log, flush_defer));
}

/* Complete the appends the written prefix now covers. */
static void advance_written(struct log *l)
{
	struct log_write *w;
	struct log_append *a;

	while ((w = TAILQ_FIRST(&l->writes)) != NULL && w->done && !w->failed) {
		TAILQ_REMOVE(&l->writes, w, link);
		l->nwrites--;
		l->unsynced_bytes += w->bytes;
		if (w->seg != l->written.seg || w->max_ts > l->wr_max_ts)
			l->wr_max_ts = w->max_ts;
		l->wr_last_rel = w->last_rel;
		l->written = (struct cursor){ w->seg, w->end_pos, w->end_offset };
		free(w);
	}
	set_hw(l);
	while ((a = TAILQ_FIRST(&l->inflight)) != NULL && a->end_offset <= l->written.off) {
		TAILQ_REMOVE(&l->inflight, a, link);
		if (a->acks == LOG_ACKS_ALL && flush_always(l))
			TAILQ_INSERT_TAIL(&l->waiting, a, link);
		else
			a->cb(a, 0);
	}
}

/* --- disk full ------------------------------------------------------------------ */

/* Unlink a segment file the log no longer names (error path; a file left
 * behind is dropped at the next start as the tail of an interrupted roll). */
static void unlink_seg_file(struct log *l, int64_t base, const char *ext)
{
	char name[SEG_NAME_MAX];

	seg_name(name, base, ext);
	if (unlinkat(l->dirfd, name, 0) < 0 && errno != ENOENT)
		log_msg_errno(LOGL_WARN, -errno, "%s: cannot remove %s", l->dir, name);
}

/* A write was refused for lack of space (l->nospace).  Once no write and
 * no zero-ahead write of the log is in flight, cut the log back to its
 * written end, so that no partial or later batch stays in the files:
 *  1. the segment holding the written end (or the empty segment that
 *     starts there) becomes the active one again, truncated to it; later
 *     segments (rolled meanwhile) are closed and unlinked;
 *  2. its in-memory index loses the entries of the cut batches;
 *  3. the end offset returns to the written end, so offsets stay dense;
 *  4. every append not yet written fails with the space error, in offset
 *     order; appends below the cut complete as usual.
 * The next append writes again, so writes resume by themselves once space
 * is freed.  Synchronous ftruncate/unlink: error path only. */
static void nospace_cut(struct log *l)
{
	struct log_append_q failed = TAILQ_HEAD_INITIALIZER(failed);
	struct cursor c = l->written;
	struct log_write *w;
	struct log_append *a;
	struct segment *s;
	int err = l->nospace, k, keep, nfailed = 0;

	if (err == 0 || l->error != 0 || l->zero_seg != NULL)
		return;
	TAILQ_FOREACH(w, &l->writes, link)
		if (!w->done)
			return;
	k = find_seg(l, c.off);
	while (k > 0 && l->segs[k] != c.seg)
		k--;
	assert(k >= 0 && l->segs[k] == c.seg);
	/* At the very end of its segment: the next one (if any) starts there. */
	keep = c.off == c.seg->next_offset && k + 1 < l->nsegs ? k + 1 : k;
	while (l->nsegs - 1 > keep) {
		s = l->segs[--l->nsegs];
		unlink_seg_file(l, s->base, ".log");
		unlink_seg_file(l, s->base, ".index");
		unlink_seg_file(l, s->base, ".timeindex");
		if (s->refs > 0)
			s->deleted = true; /* cannot happen: nobody reads past hw */
		else
			seg_drop(l->ctx, s);
	}
	s = l->segs[keep];
	if (s->sealed) { /* rolled, but its seal never started (it waits for
			    the writes that failed) */
		s->sealed = false;
		l->ctx->nopen--;
	}
	uint64_t pos = keep == k ? c.pos : 0;
	if (ftruncate(s->fd, (off_t)pos) < 0) {
		log_fail(l, -errno, "truncate after a failed write");
		return;
	}
	if (l->sync_inflight && l->sync.at.off > c.off)
		l->sync.dropped = true;
	s->zero_tail = false;
	s->size = keep == k ? c.pos : SEG_HEADER_SIZE;
	s->next_offset = keep == k ? c.off : s->base;
	s->hdr_pending = keep != k || pos < SEG_HEADER_SIZE;
	if (s->ok_end > s->size) { /* appends had grown it over the cut batches */
		s->ok_end = s->size;
		s->ok_end_off = s->next_offset;
		if (s->ok_pos > s->ok_end)
			s->ok_pos = s->ok_end;
	}
	idx_truncate(&s->idx, s->size);
	if (s->idx.noff > 0) {
		s->idx.max_ts = l->wr_max_ts;
		s->idx.last_rel = l->wr_last_rel;
	}
	l->end = s->next_offset;
	l->file_end = s->hdr_pending ? 0 : s->size;
	while ((w = TAILQ_FIRST(&l->writes)) != NULL) {
		TAILQ_REMOVE(&l->writes, w, link);
		free(w);
	}
	l->nwrites = 0;
	TAILQ_CONCAT(&failed, &l->inflight, link);
	TAILQ_CONCAT(&failed, &l->pending, link);
	l->nospace = 0;
	TAILQ_FOREACH(a, &failed, link)
		nfailed++;
	if (!l->nospace_warned)
		log_msg_errno(LOGL_WARN, err, "%s: write refused; %d append(s) failed, log cut "
			      "back to offset %" PRId64 "; appends fail until space is freed",
			      l->dir, nfailed, l->end);
	l->nospace_warned = true;
	while ((a = TAILQ_FIRST(&failed)) != NULL) {
		TAILQ_REMOVE(&failed, a, link);
		a->cb(a, err);
	}
	if (l->error != 0)
		return;
	maybe_seal(l);
	maybe_sync(l);
	if (!TAILQ_EMPTY(&l->pending))
		uring_defer(l->ctx->u, &l->flush_defer);
}

static void on_write(struct uring_op *op, int res)
{
	struct log_write *w = container_of(op, struct log_write, op);
	struct log *l = w->log;

	l->ops--;
	if (res > 0 && l->error == 0) {
		/* Short write: skip what went out and resubmit the rest. */
		size_t left = (size_t)res;
		while (w->first < w->niov && left >= w->iov[w->first].iov_len) {
			left -= w->iov[w->first].iov_len;
			w->pos += w->iov[w->first].iov_len;
			w->first++;
		}
		if (w->first < w->niov) {
			w->iov[w->first].iov_base = (uint8_t *)w->iov[w->first].iov_base + left;
			w->iov[w->first].iov_len -= left;
			w->pos += left;
			if (submit_write_sqe(l, w) == 0)
				return;
			res = -EBUSY;
		}
	} else if (res == 0 && w->first < w->niov) {
		res = -EIO; /* no progress on a regular file: treat as an error */
	}
	if (space_err(res) && l->error == 0) {
		/* Nothing of the refused bytes was taken: cut back, no failure. */
		w->done = w->failed = true;
		if (l->nospace == 0)
			l->nospace = res;
		nospace_cut(l);
		return;
	}
	if (res < 0 || l->error != 0) {
		struct log_append *a;
		struct log_write *x;
		log_fail(l, res < 0 ? res : l->error, "write");
		/* The appends of failed writes are failed once no write still
		 * uses their buffers. */
		w->done = true;
		while ((x = TAILQ_FIRST(&l->writes)) != NULL && x->done) {
			TAILQ_REMOVE(&l->writes, x, link);
			l->nwrites--;
			free(x);
		}
		if (l->nwrites == 0) {
			while ((a = TAILQ_FIRST(&l->inflight)) != NULL) {
				TAILQ_REMOVE(&l->inflight, a, link);
				a->cb(a, l->error);
			}
		}
		return;
	}
	/* start_write never lets a write race a zero-ahead write */
	assert(l->zero_seg != w->seg || w->end_pos <= l->zero_from);
	w->done = true;
	if (l->nospace_warned && l->nospace == 0) {
		l->nospace_warned = false;
		log_msg(LOGL_INFO, "%s: writes succeed again", l->dir);
	}
	advance_written(l);
	maybe_seal(l);
	arm_interval(l);
	maybe_sync(l);
	if (l->nospace != 0)
		nospace_cut(l);
	else if (!TAILQ_EMPTY(&l->pending))
		uring_defer(l->ctx->u, &l->flush_defer);
	else
		maybe_zero(l);
}

/* --- appending ------------------------------------------------------------------ */

/* Start a new active segment at the log end.  The file is created now (a
 * few microseconds); its header goes out with the first write, and the
 * directory fsync that makes its name durable is part of the old segment's
 * seal chain. */
static int roll(struct log *l)
{
	struct segment *old = active(l), *s;
	int rc;

	s = seg_new(l->end);
	if (s == NULL)
		return -ENOMEM;
	rc = open_seg_file(l, s->base, ".log", O_RDWR | O_CREAT | O_TRUNC);
	if (rc < 0) {
		seg_free(s);
		log_msg_errno(LOGL_ERROR, rc, "%s: cannot create segment %020" PRId64 ".log",
			      l->dir, l->end);
		return rc;
	}
	s->fd = rc;
	fp_hit("log.roll.create", NULL); /* new .log exists, empty; old not sealed */
	s->hdr_pending = true;
	s->created_mono = mono_ms(l);
	s->index_ready = true;
	s->synced_off = s->base;
	s->synced_pos = 0;
	rc = push_seg(l, s);
	if (rc < 0 || idx_seal(&old->idx) < 0) {
		l->nsegs -= rc < 0 ? 0 : 1;
		seg_free(s);
		return -ENOMEM;
	}
	old->sealed = true;
	l->ctx->nopen++; /* its fd now counts against the cache bound */
	l->file_end = 0;
	l->zero_failed = false;
	maybe_seal(l);
	return 0;
}

static bool roll_due(const struct log *l, const struct segment *s, size_t len,
		     const struct batch_header *h)
{
	if (s->next_offset == s->base)
		return false; /* never roll an empty segment */
	if (s->size + len > (uint64_t)l->cfg.segment_bytes)
		return true;
	if (mono_ms(l) - s->created_mono >= l->cfg.segment_ms)
		return true;
	/* Index entries hold 32-bit relative offsets and positions. */
	return l->end + (int64_t)h->record_count - s->base > (int64_t)UINT32_MAX ||
	       s->size + len > UINT32_MAX;
}

int log_append(struct log *l, struct log_append *a)
{
	struct batch_header h;
	struct segment *s;
	int rc;

	if (l->error != 0)
		return -EROFS;
	if (l->nospace != 0)
		return l->nospace; /* cutting back after a refused write */
	if (a->len > l->ctx->opts.max_batch_bytes)
		return -EMSGSIZE;
	rc = batch_validate(a->buf, a->len, &h);
	if (rc < 0) /* a batch shorter than its length field is malformed */
		return rc == -EAGAIN ? -EINVAL : rc;
	if (roll_due(l, active(l), a->len, &h)) {
		rc = roll(l);
		if (rc < 0)
			return rc;
	}
	s = active(l);
	rc = idx_add(&s->idx, (uint32_t)(l->end - s->base), s->size, h.max_timestamp,
		     (uint32_t)l->cfg.index_interval_bytes);
	if (rc < 0)
		return rc;
	batch_stamp_offset(a->buf, l->end);
	a->base_offset = l->end;
	a->end_offset = l->end + (int64_t)h.record_count;
	a->max_ts = h.max_timestamp;
	a->append_time = wall_ms(l);
	a->seg = s;
	a->pos = s->size;
	l->end = a->end_offset;
	s->size += a->len;
	s->next_offset = l->end;
	if (s->ok_end == a->pos) { /* validated above: no read checks it again */
		s->ok_end = s->size;
		s->ok_end_off = l->end;
	}
	TAILQ_INSERT_TAIL(&l->pending, a, link);
	uring_defer(l->ctx->u, &l->flush_defer);
	return 0;
}

/* --- corrupt ranges ------------------------------------------------------------ */

/* Known corrupt ranges are kept in the text file `corrupt` ("<segment base>
 * <pos> <end> <offset> <end offset>" per line), so a clean restart, which
 * scans nothing, still refuses to serve them.  Rewritten atomically (temp
 * file, fdatasync, rename, directory fsync) whenever a new range is found. */
#define BAD_NAME "corrupt"

static int bad_count(const struct log *l)
{
	int n = 0;

	for (int i = 0; i < l->nsegs; i++)
		n += l->segs[i]->nbad;
	return n;
}

static int bad_save(struct log *l)
{
	int fd = openat(l->dirfd, BAD_NAME ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	FILE *f;
	int rc = 0;

	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return -ENOMEM;
	}
	fprintf(f, "# brokerd corrupt ranges v1: base pos end offset end_offset\n");
	for (int i = 0; i < l->nsegs; i++) {
		const struct segment *s = l->segs[i];
		for (int b = 0; b < s->nbad; b++)
			fprintf(f, "%" PRId64 " %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64 "\n",
				s->base, s->bad[b].pos, s->bad[b].end, s->bad[b].off,
				s->bad[b].off_end);
	}
	if (fflush(f) != 0 || fdatasync(fd) < 0)
		rc = -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	if (rc == 0 && renameat(l->dirfd, BAD_NAME ".tmp", l->dirfd, BAD_NAME) < 0)
		rc = -errno;
	if (rc == 0 && fsync(l->dirfd) < 0)
		rc = -errno;
	if (rc < 0)
		log_msg_errno(LOGL_ERROR, rc, "%s: cannot record corrupt ranges", l->dir);
	return rc;
}

/* Attach the recorded ranges to their segments (ranges of segments that no
 * longer exist, or that do not fit the file, are dropped). */
static int bad_load(struct log *l)
{
	int fd = openat(l->dirfd, BAD_NAME, O_RDONLY | O_CLOEXEC);
	char line[256];
	FILE *f;
	int rc = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		int64_t base, off, off_end;
		uint64_t pos, end;
		if (line[0] == '#' ||
		    sscanf(line, "%" SCNd64 " %" SCNu64 " %" SCNu64 " %" SCNd64 " %" SCNd64,
			   &base, &pos, &end, &off, &off_end) != 5)
			continue;
		int i = find_seg(l, base);
		/* off == off_end is a range that hides no offset (the batch
		 * after it carries on at the same offset): its bytes must
		 * still never be served.  An empty range only ends a segment. */
		if (i < 0 || l->segs[i]->base != base || pos > end || end > l->segs[i]->size ||
		    (pos == end && end != l->segs[i]->size) || off > off_end)
			continue;
		rc = seg_add_bad(l->segs[i], pos, end, off, off_end);
	}
	fclose(f);
	return rc;
}

/* --- reading ------------------------------------------------------------------- */

/* Take a reference on a segment, opening its file and index if needed. */
static int seg_acquire(struct log *l, struct segment *s)
{
	int rc;

	if (s->fd < 0) {
		rc = open_seg_file(l, s->base, ".log", O_RDONLY);
		if (rc < 0)
			return rc;
		s->fd = rc;
		l->ctx->nopen++;
	}
	lru_remove(l->ctx, s);
	s->refs++;
	if (s->index_ready)
		return 0;
	/* Loading may rebuild the index and find corrupt ranges to record. */
	int nbad = s->nbad;
	rc = seg_load_index(s, l->dirfd, l->ctx->opts.max_batch_bytes,
			    (uint32_t)l->cfg.index_interval_bytes);
	if (rc < 0) {
		s->refs--;
		seg_park(l->ctx, s);
		return rc;
	}
	if (s->nbad != nbad)
		bad_save(l);
	return 0;
}

/* Free a segment that left its log (fds of sealed segments are counted). */
static void seg_drop(struct log_ctx *ctx, struct segment *s)
{
	lru_remove(ctx, s);
	if (s->fd >= 0 && s->sealed)
		ctx->nopen--;
	seg_free(s);
}

static void seg_release(struct log_ctx *ctx, struct segment *s)
{
	if (--s->refs > 0)
		return;
	if (s->deleted)
		seg_drop(ctx, s);
	else
		seg_park(ctx, s);
}

void log_slice_release(struct log_slice *sl)
{
	if (sl->seg != NULL)
		seg_release(sl->ctx, sl->seg);
	sl->seg = NULL;
}

static void note_corruption(struct log *l, const struct segment *s, uint64_t pos)
{
	const struct seg_bad *b = seg_bad_at(s, pos);
	char name[SEG_NAME_MAX];

	if (b == NULL)
		b = seg_bad_after(s, pos);
	seg_name(name, s->base, ".log");
	if (b != NULL)
		snprintf(l->corruption, sizeof(l->corruption),
			 "corrupt record batch in %s/%s at position %" PRIu64
			 " (offsets %" PRId64 "..%" PRId64 ")",
			 l->dir, name, b->pos, b->off, b->off_end - 1);
	else
		snprintf(l->corruption, sizeof(l->corruption),
			 "corrupt record batch in %s/%s near position %" PRIu64, l->dir, name, pos);
}

/* Check the CRCs of the slice [pos, *end) where no earlier check covers it:
 * after a clean restart nothing was scanned, and bit rot in a sealed
 * segment is found by no scan at all.  A bad batch inside the slice cuts
 * it short; a bad batch at its start answers -EUCLEAN.  Either way the
 * range is recorded (and saved) so it is never served.  Returns 0 or
 * -errno. */
static int verify_slice(struct log *l, struct segment *s, uint64_t limit, uint64_t pos,
			int64_t base, uint64_t *end, int64_t *next)
{
	int64_t off_limit = s == l->hw.seg ? l->hw.off : s->next_offset;
	uint64_t bad_pos = 0;
	int rc = seg_verify(s, pos, *end, base, limit, off_limit, l->ctx->opts.max_batch_bytes,
			    &bad_pos);

	if (rc <= 0)
		return rc;
	bad_save(l);
	note_corruption(l, s, bad_pos);
	log_msg(LOGL_ERROR, "%s (found by a read; never served)", l->corruption);
	l->hint.seg = NULL;
	if (bad_pos == pos)
		return -EUCLEAN;
	*end = bad_pos;
	*next = seg_bad_at(s, bad_pos)->off;
	return 0;
}

/* Locate and bound the slice in s.  Returns 0 or -errno. */
static int slice_in(struct log *l, struct segment *s, int64_t offset, uint64_t max_bytes,
		    uint64_t limit, uint64_t *pos, uint64_t *end, int64_t *base, int64_t *next)
{
	int rc;

	if (l->hint.seg == s && l->hint.off == offset && s->nbad == 0) {
		*pos = l->hint.pos;
		*base = offset;
	} else {
		rc = seg_locate(s, offset, limit, pos, base);
		if (rc < 0)
			return rc;
	}
	if (limit - *pos <= max_bytes && s->nbad == 0) {
		*end = limit;
		*next = s == l->hw.seg ? l->hw.off : s->next_offset;
		return 0;
	}
	return seg_bound(s, *pos, max_bytes, limit, end, next);
}

int log_read(struct log *l, int64_t offset, uint64_t max_bytes, struct log_slice *out)
{
	struct segment *s;
	uint64_t pos = 0, end = 0, limit;
	int64_t base = offset, next = offset;
	int rc;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->ctx = l->ctx;
	if (offset < log_start_offset(l) || offset > l->hw.off)
		return -ERANGE;
	out->first_offset = out->next_offset = offset;
	if (offset == l->hw.off)
		return 0;
	s = l->segs[find_seg(l, offset)];
	rc = seg_acquire(l, s);
	if (rc < 0)
		return rc;
	limit = s == l->hw.seg ? l->hw.pos : s->size;
	rc = slice_in(l, s, offset, max_bytes, limit, &pos, &end, &base, &next);
	if (rc == -EUCLEAN && s->sealed && seg_bad_at(s, pos) == NULL) {
		/* A bad header where the index pointed, not a known corrupt
		 * range: the index is wrong.  Rebuild it from the log, once. */
		log_msg(LOGL_WARN, "%s: index of segment %020" PRId64
			" points into the middle of a batch: rebuilding", l->dir, s->base);
		l->hint.seg = NULL;
		int nbad = s->nbad;
		rc = seg_rebuild_index(s, l->dirfd, l->ctx->opts.max_batch_bytes,
				       (uint32_t)l->cfg.index_interval_bytes);
		if (rc == 0 && s->nbad != nbad)
			bad_save(l);
		if (rc == 0)
			rc = slice_in(l, s, offset, max_bytes, limit, &pos, &end, &base, &next);
	}
	if (rc == 0)
		rc = verify_slice(l, s, limit, pos, base, &end, &next);
	if (rc < 0) {
		if (rc == -EUCLEAN)
			note_corruption(l, s, pos);
		seg_release(l->ctx, s);
		return rc;
	}
	out->seg = s;
	out->fd = s->fd;
	out->pos = pos;
	out->len = end - pos;
	out->first_offset = base;
	out->next_offset = next;
	l->hint = (struct cursor){ s, end, next };
	return 0;
}

/* Exact offset of the first record with timestamp >= ts inside the batch at
 * pos (whose max timestamp is >= ts). */
static int record_for_time(struct log *l, struct segment *s, uint64_t pos, int64_t ts,
			   int64_t *offset)
{
	uint8_t hdr[BATCH_HEADER_SIZE];
	struct batch_header h;
	struct batch_iter it;
	struct batch_record r;
	uint8_t *buf;
	int rc;

	if (pread(s->fd, hdr, sizeof(hdr), (off_t)pos) != (ssize_t)sizeof(hdr) ||
	    batch_header_decode(hdr, sizeof(hdr), &h) < 0 ||
	    batch_size(&h) > l->ctx->opts.max_batch_bytes)
		return -EUCLEAN;
	buf = malloc(batch_size(&h));
	if (buf == NULL)
		return -ENOMEM;
	rc = -EUCLEAN;
	if (pread(s->fd, buf, batch_size(&h), (off_t)pos) == (ssize_t)batch_size(&h) &&
	    batch_iter_init(&it, buf, batch_size(&h)) == 0) {
		*offset = batch_last_offset(&h);
		while (batch_iter_next(&it, &r) == 1) {
			if (r.timestamp >= ts) {
				*offset = r.offset;
				break;
			}
		}
		rc = 0;
	}
	free(buf);
	return rc;
}

int log_offset_for_time(struct log *l, int64_t ts, int64_t *offset)
{
	*offset = l->hw.off;
	for (int i = 0; i < l->nsegs; i++) {
		struct segment *s = l->segs[i];
		struct idx_entry e;
		uint64_t pos = SEG_HEADER_SIZE, limit;
		int64_t base;
		int rc;

		if (s->base >= l->hw.off)
			break;
		rc = seg_acquire(l, s);
		if (rc < 0)
			return rc;
		if (s->idx.max_ts < ts) {
			seg_release(l->ctx, s);
			continue;
		}
		limit = s == l->hw.seg ? l->hw.pos : s->size;
		if (idx_floor_rel(&s->idx, idx_time_start(&s->idx, ts), &e) == 0)
			pos = e.pos;
		rc = seg_find_time(s, pos, limit, ts, &pos, &base);
		if (rc == 0)
			rc = record_for_time(l, s, pos, ts, offset);
		seg_release(l->ctx, s);
		if (rc != -ENOENT)
			return rc;
	}
	return 0;
}

const char *log_corruption(const struct log *l)
{
	return l->corruption;
}

/* --- state ----------------------------------------------------------------------- */

int64_t log_start_offset(const struct log *l)
{
	return l->segs[0]->base;
}

int64_t log_end_offset(const struct log *l)
{
	return l->end;
}

int64_t log_high_watermark(const struct log *l)
{
	return l->hw.off;
}

int64_t log_durable_offset(const struct log *l)
{
	return l->durable.off;
}

uint64_t log_size_bytes(const struct log *l)
{
	uint64_t n = 0;

	for (int i = 0; i < l->nsegs; i++)
		n += l->segs[i]->size;
	return n;
}

int log_segment_count(const struct log *l)
{
	return l->nsegs;
}

const char *log_dir(const struct log *l)
{
	return l->dir;
}

int log_error(const struct log *l)
{
	return l->error;
}

void log_set_hw_cb(struct log *l, void (*cb)(struct log *, void *), void *arg)
{
	l->hw_cb = cb;
	l->hw_arg = arg;
}

void log_set_config(struct log *l, const struct log_config *cfg)
{
	l->cfg = *cfg;
	set_hw(l);
	maybe_sync(l);
}

const struct log_config *log_config(const struct log *l)
{
	return &l->cfg;
}

/* --- checkpoints ---------------------------------------------------------------- */

struct ckpt {
	uint64_t seq;
	uint16_t flags;
	int64_t base;
	uint64_t pos;
	int64_t next;
	int64_t max_ts;
	uint32_t noff, ntime;
};

static void ckpt_encode(uint8_t out[CKPT_SLOT_SIZE], const struct ckpt *c)
{
	memset(out, 0, CKPT_SLOT_SIZE);
	put_le32(out, CKPT_MAGIC);
	out[4] = 1; /* version, u16 LE */
	out[6] = (uint8_t)c->flags;
	put_le64(out + 8, c->seq);
	put_le64(out + 16, (uint64_t)c->base);
	put_le64(out + 24, c->pos);
	put_le64(out + 32, (uint64_t)c->next);
	put_le64(out + 40, (uint64_t)c->max_ts);
	put_le32(out + 48, c->noff);
	put_le32(out + 52, c->ntime);
	put_le32(out + 60, batch_crc32c(0, out, 60));
}

static int ckpt_decode(const uint8_t *in, struct ckpt *c)
{
	if (get_le32(in) != CKPT_MAGIC || in[4] != 1 || in[5] != 0 ||
	    get_le32(in + 60) != batch_crc32c(0, in, 60))
		return -EUCLEAN;
	c->flags = (uint16_t)(in[6] | in[7] << 8);
	c->seq = get_le64(in + 8);
	c->base = (int64_t)get_le64(in + 16);
	c->pos = get_le64(in + 24);
	c->next = (int64_t)get_le64(in + 32);
	c->max_ts = (int64_t)get_le64(in + 40);
	c->noff = get_le32(in + 48);
	c->ntime = get_le32(in + 52);
	return 0;
}

/* The newest valid slot of the checkpoint file.  0, -ENOENT or -errno. */
static int ckpt_read(int dirfd, struct ckpt *c)
{
	uint8_t buf[CKPT_SLOT_SIZE];
	struct ckpt t;
	int fd, found = 0;

	fd = openat(dirfd, CKPT_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	for (int i = 0; i < 2; i++) {
		if (pread(fd, buf, sizeof(buf), (off_t)i * CKPT_SLOT_STRIDE) != (ssize_t)sizeof(buf) ||
		    ckpt_decode(buf, &t) < 0)
			continue;
		if (!found || t.seq > c->seq)
			*c = t;
		found = 1;
	}
	close(fd);
	return found ? 0 : -ENOENT;
}

static void ckpt_fill(struct log *l, struct ckpt *c, struct cursor at, uint32_t noff,
		      uint32_t ntime, uint16_t flags)
{
	c->seq = l->ckpt_seq;
	c->flags = flags;
	c->base = at.seg->base;
	c->pos = at.pos;
	c->next = at.off;
	c->max_ts = at.seg->idx.max_ts;
	c->noff = noff;
	c->ntime = ntime;
}

static void on_ckpt_done(struct log_chain *ch)
{
	struct log *l = ch->log;
	struct segment *s = ch->seg;

	l->ckpt_inflight = false;
	l->ckpt_err = ch->err;
	if (space_err(ch->err) && ch->failed_what != NULL &&
	    (strcmp(ch->failed_what, "log.index.write") == 0 ||
	     strcmp(ch->failed_what, "log.checkpoint.write") == 0)) {
		/* Nothing was lost: the previous checkpoint still holds, and
		 * the next one rewrites the same entries and slot. */
		log_msg_errno(LOGL_WARN, ch->err, "%s: checkpoint skipped (%s)", l->dir,
			      ch->failed_what);
		chain_free(ch);
		maybe_seal(l);
		return;
	}
	if (ch->err != 0) {
		log_fail(l, ch->err, ch->failed_what ? ch->failed_what : "checkpoint");
		chain_free(ch);
		return;
	}
	s->idx_saved = ch->noff;
	s->tidx_saved = ch->ntime;
	l->ckpt_off = ch->at.off;
	l->ckpt_seq++;
	if (ch->at.off > s->synced_off) {
		s->synced_off = ch->at.off;
		s->synced_pos = ch->at.pos;
	}
	chain_free(ch);
	advance_durable(l);
	maybe_seal(l);
	maybe_sync(l);
}

/* Checkpoint what is written: fdatasync the segment, append the new index
 * entries and fsync them, fsync the directory, then write and fsync the
 * checkpoint slot.  Returns 0 when started or nothing to do, -EAGAIN when
 * it cannot run yet, or -errno. */
static int ckpt_start(struct log *l, uint16_t flags)
{
	struct segment *s = l->written.seg;
	struct io_uring_sqe *sqe;
	struct ckpt c;
	int err = 0;

	if (l->error != 0)
		return l->error;
	if (l->ckpt_inflight || l->seal_inflight || !s->created_durable)
		return -EAGAIN;
	for (int i = 0; i < l->nsegs && l->segs[i] != s; i++)
		if (!l->segs[i]->seal_done)
			return -EAGAIN;
	if (flags == 0 && l->written.off == l->ckpt_off)
		return 0;
	struct log_chain *ch = chain_new(l, s);
	if (ch == NULL)
		return -ENOMEM;
	ch->done = on_ckpt_done;
	ch->at = l->written;
	idx_count_below(&s->idx, ch->at.pos, &ch->noff, &ch->ntime);
	ckpt_fill(l, &c, ch->at, ch->noff, ch->ntime, flags);
	ckpt_encode(ch->slot, &c);
	ch->fds[2] = openat(l->dirfd, CKPT_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (ch->fds[2] < 0) {
		err = -errno;
		chain_free(ch);
		return err;
	}
	sqe = chain_sqe(ch, "log.checkpoint.fsync");
	if (sqe != NULL) {
		io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
		sqe = chain_index(ch, s, false, s->idx_saved, ch->noff, s->tidx_saved, ch->ntime, &err);
	}
	if (sqe != NULL && (sqe = chain_sqe(ch, "log.dir.fsync")) != NULL)
		io_uring_prep_fsync(sqe, l->dirfd, 0);
	if (sqe != NULL && (sqe = chain_sqe(ch, "log.checkpoint.write")) != NULL)
		io_uring_prep_write(sqe, ch->fds[2], ch->slot, CKPT_SLOT_SIZE,
				    (c.seq & 1) * CKPT_SLOT_STRIDE);
	if (sqe != NULL && (sqe = chain_sqe(ch, "log.checkpoint.fsync")) != NULL)
		io_uring_prep_fsync(sqe, ch->fds[2], IORING_FSYNC_DATASYNC);
	l->ckpt_inflight = ch->nops > 0;
	if (sqe == NULL) {
		if (ch->nops == 0) {
			chain_free(ch);
			return err ? err : -EBUSY;
		}
		/* Ops already queued complete into a failed chain. */
		ch->err = err ? err : -EBUSY;
		ch->failed_what = "checkpoint";
		chain_end(ch);
		return ch->err;
	}
	chain_end(ch);
	/* Power-loss simulation: as for the seal chain, the checkpoint slot
	 * claiming at.pos follows this fdatasync; keep what it covers. */
	if (ch->at.pos > s->pl_synced)
		s->pl_synced = ch->at.pos;
	return 0;
}

void log_checkpoint(struct log *l)
{
	int rc = ckpt_start(l, 0);

	if (rc < 0 && rc != -EAGAIN && rc != l->error)
		log_msg_errno(LOGL_WARN, rc, "%s: checkpoint not started", l->dir);
}

/* --- retention --------------------------------------------------------------- */

static void on_unlink(struct uring_op *op, int res)
{
	struct log_unlink *u = container_of(op, struct log_unlink, op);

	u->log->ops--;
	if (res < 0 && res != -ENOENT)
		log_msg_errno(LOGL_WARN, res, "%s: cannot delete %s", u->log->dir, u->name);
	free(u);
}

static void unlink_async(struct log *l, int64_t base, const char *ext)
{
	struct log_unlink *u = calloc(1, sizeof(*u));
	struct io_uring_sqe *sqe;

	if (u == NULL)
		goto sync;
	u->log = l;
	seg_name(u->name, base, ext);
	sqe = log_sqe(l, &u->op, on_unlink, "log.unlink");
	if (sqe == NULL) {
		free(u);
		goto sync;
	}
	io_uring_prep_unlinkat(sqe, l->dirfd, u->name, 0);
	return;
sync: {
	char name[SEG_NAME_MAX];
	seg_name(name, base, ext);
	unlinkat(l->dirfd, name, 0);
}
}

/* Move a cursor off a segment that is going away onto the next one. */
static void cursor_forward(struct cursor *c, const struct segment *gone, struct segment *next)
{
	if (c->seg == gone)
		*c = (struct cursor){ next, SEG_HEADER_SIZE, next->base };
}

/* Drop the oldest segment from the log and unlink its files; `why` names
 * the caller in the log line. */
static void delete_oldest(struct log *l, const char *why)
{
	struct segment *s = l->segs[0];

	memmove(l->segs, l->segs + 1, (size_t)(l->nsegs - 1) * sizeof(*l->segs));
	l->nsegs--;
	cursor_forward(&l->written, s, l->segs[0]);
	cursor_forward(&l->durable, s, l->segs[0]);
	cursor_forward(&l->hw, s, l->segs[0]);
	if (l->hint.seg == s)
		l->hint.seg = NULL;
	unlink_async(l, s->base, ".log");
	unlink_async(l, s->base, ".index");
	unlink_async(l, s->base, ".timeindex");
	log_msg(LOGL_INFO, "%s: %s deleted segment %020" PRId64 " (%" PRIu64
		" bytes); log start offset is now %" PRId64, l->dir, why, s->base, s->size,
		l->segs[0]->base);
	s->deleted = true;
	if (s->refs == 0)
		seg_drop(l->ctx, s);
}

/* The oldest segment may go: it is not the active one, its seal completed
 * and no checkpoint or fsync is using it. */
static bool oldest_deletable(const struct log *l)
{
	const struct segment *s = l->segs[0];

	return l->nsegs > 1 && s->seal_done && !l->ckpt_inflight &&
	       !(l->sync_inflight && l->sync.at.seg == s);
}

int log_retention_run(struct log *l)
{
	int n = 0;

	while (oldest_deletable(l)) {
		struct segment *s = l->segs[0];
		bool expired = false;

		if (l->cfg.retention_bytes >= 0 &&
		    log_size_bytes(l) - s->size >= (uint64_t)l->cfg.retention_bytes) {
			expired = true;
		} else if (l->cfg.retention_ms >= 0) {
			if (seg_acquire(l, s) < 0)
				break;
			int64_t max_ts = s->idx.max_ts;
			seg_release(l->ctx, s);
			/* The retention clock, not the wall clock: a wall-clock
			 * step while running neither mass-expires segments
			 * (forward) nor freezes retention (backward). */
			expired = max_ts != INT64_MIN &&
				  log_ctx_retention_ms(l->ctx) - max_ts > l->cfg.retention_ms;
		}
		if (!expired)
			break;
		delete_oldest(l, "retention");
		n++;
	}
	return n;
}

int log_delete_before(struct log *l, int64_t offset)
{
	int n = 0;

	/* segs[1]->base is the offset after the last one segs[0] holds. */
	while (oldest_deletable(l) && l->segs[1]->base <= offset) {
		delete_oldest(l, "log_delete_before");
		n++;
	}
	return n;
}

/* --- opening and recovery ----------------------------------------------------- */

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct segment *x = *(struct segment *const *)a, *y = *(struct segment *const *)b;

	return x->base < y->base ? -1 : x->base > y->base;
}

/* List the .log files; delete index files left without their .log (a
 * retention delete interrupted by a crash). */
static int list_segments(struct log *l)
{
	int fd = dup(l->dirfd);
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (fd < 0)
		return -errno; /* EMFILE: named as such, not as fdopendir's EBADF */
	d = fdopendir(fd);
	if (d == NULL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		int64_t base;
		if (seg_parse_name(de->d_name, &base) == 0) {
			struct segment *s = seg_new(base);
			if (s == NULL || push_seg(l, s) < 0) {
				seg_free(s);
				rc = -ENOMEM;
				break;
			}
		}
	}
	if (rc == 0 && l->nsegs > 0)
		qsort(l->segs, (size_t)l->nsegs, sizeof(*l->segs), cmp_seg);
	rewinddir(d);
	while (rc == 0 && (de = readdir(d)) != NULL) {
		const char *dot = strchr(de->d_name, '.');
		char logname[SEG_NAME_MAX];
		if (dot == NULL || (strcmp(dot, ".index") != 0 && strcmp(dot, ".timeindex") != 0) ||
		    dot - de->d_name != 20)
			continue;
		snprintf(logname, sizeof(logname), "%.20s.log", de->d_name);
		if (faccessat(l->dirfd, logname, F_OK, 0) != 0) {
			log_msg(LOGL_INFO, "%s: removing orphan %s", l->dir, de->d_name);
			unlinkat(l->dirfd, de->d_name, 0);
		}
	}
	closedir(d);
	return rc;
}

static int create_first_segment(struct log *l)
{
	uint8_t hdr[SEG_HEADER_SIZE];
	struct segment *s = seg_new(0);
	int rc;

	if (s == NULL)
		return -ENOMEM;
	rc = open_seg_file(l, 0, ".log", O_RDWR | O_CREAT | O_TRUNC);
	if (rc < 0) {
		seg_free(s);
		return rc;
	}
	s->fd = rc;
	seg_header_encode(hdr, SEG_MAGIC_LOG, 0);
	rc = 0;
	if (pwrite(s->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		rc = -EIO;
	else if (fdatasync(s->fd) < 0 || fsync(l->dirfd) < 0)
		rc = -errno;
	if (rc == 0)
		rc = push_seg(l, s);
	if (rc < 0)
		seg_free(s);
	return rc;
}

/* Write a checkpoint synchronously (end of recovery). */
static int ckpt_write_sync(struct log *l, struct cursor at, uint16_t flags)
{
	uint8_t slot[CKPT_SLOT_SIZE];
	uint32_t noff, ntime;
	struct ckpt c;
	int fd, rc = 0;

	idx_count_below(&at.seg->idx, at.pos, &noff, &ntime);
	ckpt_fill(l, &c, at, noff, ntime, flags);
	ckpt_encode(slot, &c);
	fd = openat(l->dirfd, CKPT_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (pwrite(fd, slot, sizeof(slot), (off_t)((c.seq & 1) * CKPT_SLOT_STRIDE)) !=
	    (ssize_t)sizeof(slot))
		rc = -EIO;
	else if (fdatasync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0) {
		l->ckpt_seq++;
		l->ckpt_off = at.off;
	}
	return rc;
}

/* Delete segments [i, n): they lie past the real end of the log.  Appends
 * complete only over the contiguous written prefix, and data in a segment is
 * durable only after the previous one was sealed, so nothing in them was
 * ever acknowledged. */
static int drop_tail(struct log *l, int i)
{
	static const char *const ext[] = { ".log", ".index", ".timeindex" };

	for (int j = l->nsegs - 1; j >= i; j--) {
		struct segment *s = l->segs[j];
		log_msg(LOGL_WARN, "%s: dropping segment %020" PRId64
			".log past the end of the log (interrupted roll, %" PRIu64 " bytes)",
			l->dir, s->base, s->size);
		for (int e = 0; e < 3; e++) {
			char name[SEG_NAME_MAX];
			seg_name(name, s->base, ext[e]);
			if (unlinkat(l->dirfd, name, 0) < 0 && errno != ENOENT)
				return -errno;
		}
		seg_free(s);
	}
	l->nsegs = i;
	/* The new last segment is appended to again. */
	struct segment *last = active(l);
	int fd = open_seg_file(l, last->base, ".log", O_RDWR);
	if (fd < 0)
		return fd;
	if (last->fd >= 0)
		close(last->fd);
	last->fd = fd;
	return fsync(l->dirfd) < 0 ? -errno : 0;
}

/* Open every segment's .log, learn its size and check its file header. */
static int open_files(struct log *l)
{
	for (int i = 0; i < l->nsegs; i++) {
		struct segment *s = l->segs[i];
		uint8_t hdr[SEG_HEADER_SIZE];
		struct stat st;
		bool last = i == l->nsegs - 1;
		int fd = open_seg_file(l, s->base, ".log", last ? O_RDWR : O_RDONLY);

		if (fd < 0)
			return fd;
		s->fd = fd;
		if (fstat(fd, &st) < 0)
			return -errno;
		s->size = (uint64_t)st.st_size;
		if (!last)
			s->next_offset = l->segs[i + 1]->base;
		if (s->size < SEG_HEADER_SIZE && last) {
			/* Created but the header never reached the disk: start it again. */
			seg_header_encode(hdr, SEG_MAGIC_LOG, s->base);
			if (ftruncate(fd, 0) < 0 || pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
				return -EIO;
			s->size = SEG_HEADER_SIZE;
			continue;
		}
		if (s->size < SEG_HEADER_SIZE && i > 0) {
			/* Created by a roll whose first write never completed. */
			return drop_tail(l, i);
		}
		if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
		    seg_header_check(hdr, SEG_MAGIC_LOG, s->base) < 0) {
			log_msg(LOGL_ERROR, "%s: segment %020" PRId64 ".log has a bad file header",
				l->dir, s->base);
			return -EUCLEAN;
		}
	}
	return 0;
}

/* Scan segments [k, n) from (pos, off) in segment k; truncate a torn tail
 * of the last one; record corruption in the others and save their index. */
static int recover_from(struct log *l, int k, uint64_t pos, int64_t off)
{
	uint32_t max_batch = l->ctx->opts.max_batch_bytes;
	uint32_t interval = (uint32_t)l->cfg.index_interval_bytes;
	char name[SEG_NAME_MAX];
	int rc;

	for (int i = k; i < l->nsegs; i++) {
		struct segment *s = l->segs[i];
		bool last = i == l->nsegs - 1;
		int64_t want_next = s->next_offset;
		struct seg_scan_result r;

		if (i > k) {
			idx_fini(&s->idx);
			pos = SEG_HEADER_SIZE;
			off = s->base;
		}
		/* The scan finds again whatever lies past pos. */
		while (s->nbad > 0 && s->bad[s->nbad - 1].pos >= pos)
			s->nbad--;
		seg_name(name, s->base, ".log");
		rc = seg_scan(s, pos, off, max_batch, interval, &r);
		if (rc < 0)
			return rc;
		for (int b = 0; b < s->nbad; b++)
			log_msg(LOGL_ERROR, "%s: corrupt record batch in %s at position %" PRIu64
				", followed by valid batches: offsets %" PRId64 "..%" PRId64
				" will not be served", l->dir, name, s->bad[b].pos, s->bad[b].off,
				s->bad[b].off_end - 1);
		if (!last && (r.torn_bytes > 0 || s->next_offset != want_next) &&
		    !seg_index_sealed(s, l->dirfd)) {
			/* This segment ends before the next one begins: a roll was
			 * interrupted and what follows was never acknowledged. */
			rc = drop_tail(l, i + 1);
			if (rc < 0)
				return rc;
			last = true;
		}
		if (r.torn_bytes > 0 && last) {
			if (seg_all_zero(s->fd, r.torn_pos, r.torn_bytes))
				log_msg(LOGL_INFO, "%s: cutting %" PRIu64 " bytes of zero-ahead "
					"from %s at position %" PRIu64, l->dir, r.torn_bytes, name,
					r.torn_pos);
			else
				log_msg(LOGL_WARN, "%s: truncating torn tail of %s: %" PRIu64
					" bytes cut at position %" PRIu64 " (offset %" PRId64 ")",
					l->dir, name, r.torn_bytes, r.torn_pos, s->next_offset);
			if (ftruncate(s->fd, (off_t)r.torn_pos) < 0)
				return -errno;
		} else if (r.torn_bytes > 0) {
			/* A segment whose batches already reach the next one's
			 * base hides no offset with its bad tail; the range must
			 * not run backwards (the `corrupt` file drops those). */
			int64_t hide_end = want_next > s->next_offset ? want_next : s->next_offset;

			log_msg(LOGL_ERROR, "%s: corrupt record batch in %s at position %" PRIu64
				": offsets %" PRId64 "..%" PRId64 " will not be served",
				l->dir, name, r.torn_pos, s->next_offset, hide_end - 1);
			rc = seg_add_bad(s, r.torn_pos, r.file_size, s->next_offset, hide_end);
			if (rc < 0)
				return rc;
		}
		if (last) {
			if (fdatasync(s->fd) < 0)
				return -errno;
			break;
		}
		if (s->next_offset != want_next && r.torn_bytes == 0)
			log_msg(LOGL_ERROR, "%s: %s ends at offset %" PRId64
				" but the next segment starts at %" PRId64 "%s", l->dir, name,
				s->next_offset, want_next, s->next_offset < want_next ?
				": the offsets between are lost and will not be served" : "");
		if (s->next_offset < want_next && r.torn_bytes == 0) {
			/* A read of the lost offsets is refused, not skipped: an
			 * empty corrupt range at the end of the segment. */
			rc = seg_add_bad(s, s->size, s->size, s->next_offset, want_next);
			if (rc < 0)
				return rc;
		}
		if (s->next_offset > want_next && r.torn_bytes == 0) {
			/* Its batches run into the next segment's offsets: serve
			 * none of them twice, nor a batch that straddles its base. */
			uint64_t at;
			int64_t from;

			rc = seg_locate(s, want_next, s->size, &at, &from);
			if (rc == 0)
				rc = seg_add_bad(s, at, s->size, from, want_next);
			if (rc < 0 && rc != -EUCLEAN && rc != -ENOENT)
				return rc;
		}
		s->size = r.torn_bytes > 0 ? r.file_size : s->size;
		s->next_offset = want_next;
		if (idx_seal(&s->idx) < 0)
			return -ENOMEM;
		s->index_ready = true;
		rc = seg_write_index(s, l->dirfd);
		if (rc < 0)
			return rc;
	}
	return fsync(l->dirfd) < 0 ? -errno : 0;
}

static int recover(struct log *l)
{
	struct segment *last = active(l);
	struct ckpt c = { 0 };
	bool have = ckpt_read(l->dirfd, &c) == 0;
	int rc, k = 0;

	rc = open_files(l);
	if (rc == 0)
		rc = bad_load(l);
	if (rc < 0)
		return rc;
	int nbad = bad_count(l);
	if (have)
		l->ckpt_seq = c.seq + 1;
	if (have && (c.flags & CKPT_CLEAN) && c.base == last->base && c.pos == last->size &&
	    seg_read_index(last, l->dirfd, c.pos) == 0 && last->idx.noff == c.noff &&
	    last->idx.ntime == c.ntime) {
		last->next_offset = c.next;
		last->idx.max_ts = c.max_ts;
		last->idx.last_rel = last->idx.noff ? last->idx.off[last->idx.noff - 1].rel : 0;
		l->ckpt_off = c.next;
		return 0; /* clean: nothing to scan */
	}
	uint64_t pos = SEG_HEADER_SIZE;
	int64_t off = l->segs[0]->base;
	if (have) {
		int i = find_seg(l, c.base);
		if (i >= 0 && l->segs[i]->base == c.base && c.pos >= SEG_HEADER_SIZE &&
		    c.pos <= l->segs[i]->size &&
		    seg_read_index(l->segs[i], l->dirfd, c.pos) == 0) {
			k = i;
			pos = c.pos;
			off = c.next;
			l->segs[i]->idx.max_ts = c.max_ts;
		}
	}
	log_msg(LOGL_INFO, "%s: unclean shutdown, scanning from segment %020" PRId64
		" position %" PRIu64, l->dir, l->segs[k]->base, pos);
	rc = recover_from(l, k, pos, off);
	if (rc < 0)
		return rc;
	/* The scan drops the known ranges past its start and records what it
	 * finds: the list may have changed at the same length. */
	if (nbad > 0 || bad_count(l) > 0) {
		rc = bad_save(l);
		if (rc < 0)
			return rc;
	}
	last = active(l);
	return ckpt_write_sync(l, (struct cursor){ last, last->size, last->next_offset }, 0);
}

static void log_free(struct log *l)
{
	if (l == NULL)
		return;
	if (l->all.le_prev != NULL)
		LIST_REMOVE(l, all);
	uring_defer_cancel(l->ctx->u, &l->flush_defer);
	if (l->interval_ev != NULL)
		event_free(l->interval_ev);
	if (l->retry_ev != NULL)
		event_free(l->retry_ev);
	for (int i = 0; i < l->nsegs; i++) {
		struct segment *s = l->segs[i];
		if (s->refs > 0)
			s->deleted = true; /* freed by the last slice release */
		else
			seg_drop(l->ctx, s);
	}
	free(l->segs);
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l->dir);
	free(l);
}

/* Failpoint powerloss hook: cut every open log's unsealed segment files
 * back to what a really executed fsync covered (pl_synced), as a power cut
 * drops what only the page cache held; a segment whose directory entry is
 * not yet durable loses everything.  Sealed segments were synced whole.
 * Each cut is logged as "powerloss: cut <path> to <n> bytes": writes that
 * io_uring workers are still carrying out can land after the cut (before
 * the process is gone), so the crash tests apply the cuts again once the
 * process has exited.  The process is SIGKILLed right after. */
static void log_powerloss(void *arg)
{
	struct log *l;

	(void)arg;
	LIST_FOREACH(l, &all_logs, all) {
		for (int i = 0; i < l->nsegs; i++) {
			struct segment *s = l->segs[i];
			uint64_t keep = s->created_durable ? s->pl_synced : 0;
			char name[SEG_NAME_MAX];
			struct stat st;

			if (s->fd < 0 || s->seal_done || fstat(s->fd, &st) < 0)
				continue;
			seg_name(name, s->base, ".log");
			log_msg(LOGL_WARN, "powerloss: cut %s/%s to %" PRIu64 " bytes (was %" PRIu64 ")",
				l->dir, name, keep, (uint64_t)st.st_size);
			if ((uint64_t)st.st_size > keep && ftruncate(s->fd, (off_t)keep) < 0)
				log_msg_errno(LOGL_ERROR, -errno, "powerloss: cannot cut %s/%s",
					      l->dir, name);
		}
	}
}

static int remove_dir(int dirfd, const char *dir);

int log_open(struct log_ctx *ctx, const char *dir, const struct log_config *cfg, int flags,
	     struct log **out)
{
	struct log *l = calloc(1, sizeof(*l));
	bool created = false;
	int rc;

	if (l == NULL)
		return -ENOMEM;
	l->ctx = ctx;
	l->cfg = *cfg;
	l->dirfd = -1;
	l->dir = strdup(dir);
	TAILQ_INIT(&l->pending);
	TAILQ_INIT(&l->inflight);
	TAILQ_INIT(&l->waiting);
	TAILQ_INIT(&l->writes);
	l->flush_defer.fn = on_flush_defer;
	l->interval_ev = evtimer_new(uring_base(ctx->u), on_interval, l);
	l->retry_ev = evtimer_new(uring_base(ctx->u), on_seal_retry, l);
	if (l->dir == NULL || l->interval_ev == NULL || l->retry_ev == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((flags & LOG_OPEN_CREATE) && mkdir(dir, 0755) == 0)
		created = true;
	l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0) {
		rc = -errno;
		goto fail;
	}
	if (created) {
		char *parent = strdup(dir), *slash;
		if (parent != NULL && (slash = strrchr(parent, '/')) != NULL) {
			*slash = '\0';
			fsync_path(*parent ? parent : "/");
		} else if (parent != NULL) {
			fsync_path(".");
		}
		free(parent);
	}
	rc = list_segments(l);
	if (rc < 0)
		goto fail;
	if (l->nsegs == 0) {
		rc = create_first_segment(l);
		if (rc == 0)
			rc = ckpt_write_sync(l, (struct cursor){ l->segs[0], SEG_HEADER_SIZE, 0 }, 0);
	} else {
		rc = recover(l);
	}
	if (rc < 0)
		goto fail;
	for (int i = 0; i < l->nsegs; i++) {
		struct segment *s = l->segs[i];
		s->created_durable = true;
		s->synced_off = s->next_offset;
		s->synced_pos = s->size;
		s->pl_synced = s->size; /* recovered (or clean): all fsynced */
		if (i < l->nsegs - 1) {
			s->sealed = s->seal_done = true;
			close(s->fd); /* reopened on the first read */
			s->fd = -1;
		}
	}
	struct segment *s = active(l);
	s->index_ready = true;
	s->created_mono = mono_ms(l);
	if (s->ok_end != s->size) { /* appends extend the known-good range */
		s->ok_pos = s->ok_end = s->size;
		s->ok_end_off = s->next_offset;
	}
	l->end = s->next_offset;
	l->file_end = s->size;
	l->written = l->durable = l->hw = (struct cursor){ s, s->size, l->end };
	l->wr_max_ts = s->idx.max_ts;
	l->wr_last_rel = s->idx.last_rel;
	if (fp_armed)
		fp_on_powerloss(log_powerloss, NULL);
	LIST_INSERT_HEAD(&all_logs, l, all);
	*out = l;
	return 0;
fail:
	log_msg_errno(LOGL_ERROR, rc, "cannot open partition log %s", dir);
	for (int i = 0; l->segs != NULL && i < l->nsegs; i++) {
		if (l->segs[i]->fd >= 0) {
			close(l->segs[i]->fd);
			l->segs[i]->fd = -1;
		}
	}
	if (created && l->dirfd >= 0) {
		/* Leave no half-made partition behind (e.g. out of descriptors
		 * midway): it would be an orphan until the next start. */
		remove_dir(l->dirfd, dir);
		l->dirfd = -1;
	} else if (created) {
		rmdir(dir);
	}
	log_free(l);
	return rc;
}

/* --- closing ------------------------------------------------------------------- */

static bool busy(const struct log *l)
{
	return l->ops > 0 || !TAILQ_EMPTY(&l->pending) || !TAILQ_EMPTY(&l->inflight);
}

/* Run the ring until nothing of this log is in flight and no append waits.
 * Returns 0, -EDEADLK when work is queued that nothing in flight will ever
 * complete, or -errno from the ring. */
static int drain(struct log *l)
{
	for (;;) {
		if (!busy(l) && (l->error != 0 || TAILQ_EMPTY(&l->waiting)))
			return 0;
		if (uring_inflight(l->ctx->u) == 0) {
			l->sync_due = true;
			flush_pending(l);
			maybe_seal(l);
			maybe_sync(l);
			if (uring_inflight(l->ctx->u) == 0)
				return -EDEADLK;
		}
		int rc = uring_wait(l->ctx->u);
		if (rc < 0)
			return rc;
	}
}

int log_close(struct log *l)
{
	int rc;

	if (l == NULL)
		return 0;
	l->seal_waiting = false; /* one last try of a seal that found no room */
	rc = drain(l);
	/* Seal whatever rolled, then the clean checkpoint. */
	while (rc == 0 && l->error == 0) {
		maybe_seal(l);
		if (!l->seal_inflight)
			break;
		rc = drain(l);
	}
	if (rc == 0 && l->error == 0 && active(l)->zero_tail) {
		if (ftruncate(active(l)->fd, (off_t)active(l)->size) < 0)
			rc = -errno;
		active(l)->zero_tail = false;
	}
	if (rc == 0 && l->error == 0) {
		rc = ckpt_start(l, CKPT_CLEAN);
		if (rc == 0)
			rc = drain(l);
		if (rc == 0)
			rc = l->ckpt_err;
	}
	if (rc == 0)
		rc = l->error;
	if (rc < 0)
		log_msg_errno(LOGL_ERROR, rc, "%s: closed without a clean checkpoint", l->dir);
	log_abandon(l);
	return rc;
}

/* Cancel what has not started, wait for what has, fail the waiters. */
static void log_drain(struct log *l)
{
	struct log_append *a;

	while ((a = TAILQ_FIRST(&l->pending)) != NULL) {
		TAILQ_REMOVE(&l->pending, a, link);
		a->cb(a, -ECANCELED);
	}
	while (l->ops > 0 && uring_wait(l->ctx->u) == 0)
		;
	while ((a = TAILQ_FIRST(&l->waiting)) != NULL) {
		TAILQ_REMOVE(&l->waiting, a, link);
		a->cb(a, -ECANCELED);
	}
}

void log_abandon(struct log *l)
{
	if (l == NULL)
		return;
	log_drain(l);
	log_free(l);
}

/* Remove every file of partition directory `dir`, then the directory, and
 * make that durable.  Takes ownership of dirfd (an fd of `dir`): no new
 * descriptor is needed, so this works when the process is out of them. */
static int remove_dir(int dirfd, const char *dir)
{
	struct dirent *de;
	DIR *d = fdopendir(dirfd);
	int rc = 0;

	if (d == NULL) {
		rc = -errno;
		close(dirfd);
		return rc;
	}
	rewinddir(d); /* list_segments may have left the position at the end */
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd, de->d_name, 0) < 0 && rc == 0)
			rc = -errno;
		fp_hit("log.destroy.unlink", NULL); /* a directory half emptied */
	}
	closedir(d);
	if (rc == 0 && rmdir(dir) < 0)
		rc = -errno;
	if (rc == 0) {
		char *parent = strdup(dir), *slash;

		if (parent == NULL)
			return -ENOMEM;
		slash = strrchr(parent, '/');
		if (slash != NULL)
			*slash = '\0';
		fsync_path(slash == NULL ? "." : *parent ? parent : "/");
		free(parent);
	}
	return rc;
}

int log_destroy(struct log *l)
{
	char *dir = strdup(l->dir);
	int dirfd, rc;

	log_drain(l);
	dirfd = l->dirfd;
	l->dirfd = -1; /* remove_dir owns it now */
	log_free(l);
	if (dir == NULL) {
		close(dirfd);
		return -ENOMEM;
	}
	rc = remove_dir(dirfd, dir);
	free(dir);
	return rc;
}
