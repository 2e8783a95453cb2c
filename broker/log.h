/* log — one partition: a directory of segments, appended through io_uring
 * with group commit, read as (fd, position, length) slices for sendfile,
 * trimmed by retention, recovered after a crash.  Single-threaded: every
 * call happens on the reactor thread that owns the log_ctx.
 *
 * Offsets (all int64, monotone):
 *   start <= durable <= high watermark <= written <= end
 *   start   first offset still stored (advances with retention)
 *   durable every offset below it is fsynced, with the files that hold it
 *   hw      what readers see: durable for flush.mode=always, written else
 *   written every offset below it has been written (page cache)
 *   end     next offset to assign; offsets are assigned at log_append
 */
#ifndef BROKER_LOG_H
#define BROKER_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct uring;
struct segment;
struct log_ctx;
struct log;
struct hist;

enum log_flush_mode {
	LOG_FLUSH_ALWAYS = 0,  /* fdatasync before acks=all is answered */
	LOG_FLUSH_INTERVAL,    /* fdatasync every flush_interval_ms / flush_bytes */
	LOG_FLUSH_OS,          /* leave write-back to the kernel */
};

/* Per-topic settings; may change at run time (log_set_config). */
struct log_config {
	int64_t segment_bytes;        /* roll when the next batch would pass it */
	int64_t segment_ms;           /* roll a segment older than this */
	int64_t retention_ms;         /* -1: keep forever */
	int64_t retention_bytes;      /* -1: no size limit */
	enum log_flush_mode flush_mode;
	int64_t flush_interval_ms;    /* LOG_FLUSH_INTERVAL */
	int64_t flush_bytes;          /* LOG_FLUSH_INTERVAL: also sync after this
	                                 many unsynced bytes; -1 off */
	int32_t index_interval_bytes; /* bytes between sparse index entries */
	int64_t timestamp_after_max_ms; /* produce: largest record timestamp
	                                   ahead of the broker clock; -1 off.
	                                   Checked by request.c, not here. */
};

/* Defaults: 1 GiB / 7 days segments, 7 days retention, flush always. */
void log_config_defaults(struct log_config *cfg);

/* Clock seam: wall time (append timestamps; read once more at context
 * creation as the base of the retention clock) and monotonic time
 * (segment age, intervals, retention clock), both in ms.  Tests inject
 * their own. */
struct log_clock {
	int64_t (*wall_ms)(void *arg);
	int64_t (*mono_ms)(void *arg);
	void *arg;
};

struct log_ctx_opts {
	int max_open_segments;     /* bound on cached sealed-segment fds */
	uint32_t max_batch_bytes;  /* largest batch accepted or scanned */
	struct log_clock clock;    /* NULL members: the system clocks */
	struct hist *fsync_hist;   /* optional: every data fdatasync's latency */
};

/* Create the state shared by every log of one reactor.  Borrows `u`, which
 * must outlive the context.  Returns 0 and *out owned, or -ENOMEM. */
int log_ctx_new(struct uring *u, const struct log_ctx_opts *opts,
		struct log_ctx **out);
void log_ctx_free(struct log_ctx *ctx);

/* The retention clock, ms since the epoch: the wall clock read when the
 * context was created plus the monotonic time elapsed since.  Time
 * retention measures record age with it, so a wall-clock step while the
 * broker runs (NTP, an operator) does not move it; a restart re-reads the
 * wall clock.  See docs/storage.md, "The retention clock". */
int64_t log_ctx_retention_ms(const struct log_ctx *ctx);

/* Sealed segments currently holding an open fd (for tests and metrics). */
int log_ctx_open_segments(const struct log_ctx *ctx);

/* The ring the context submits to (borrowed), for modules that keep their
 * own files beside a log (the consumer offsets snapshot). */
struct uring *log_ctx_uring(const struct log_ctx *ctx);

/* --- opening ------------------------------------------------------------- */

enum {
	LOG_OPEN_CREATE = 1 << 0, /* create the directory if it does not exist */
};

/* Open (and if needed recover) the partition stored in directory `dir`.
 * Start-up/admin path: blocks on file I/O.  After a clean close nothing is
 * scanned; after a crash the segments past the recovery checkpoint are
 * scanned, a torn tail truncated (logged), corruption recorded.
 * Returns 0 and *out owned, -ENOENT (no directory and no CREATE), or
 * another -errno naming why the files cannot be used (logged). */
int log_open(struct log_ctx *ctx, const char *dir, const struct log_config *cfg,
	     int flags, struct log **out);

/* Flush everything in flight, fsync, write the clean checkpoint and free the
 * log.  Blocks until done (shutdown path).  Pending appends complete first.
 * Returns 0 or the -errno of the first failure (the log is freed anyway). */
int log_close(struct log *log);

/* Free the log without the final flush (after a failure, or in tests that
 * simulate a crash).  In-flight operations are abandoned safely. */
void log_abandon(struct log *log);

/* Close the log and delete its directory and every file in it (topic
 * deletion).  Blocks.  Returns 0 or -errno. */
int log_destroy(struct log *log);

void log_set_config(struct log *log, const struct log_config *cfg);
const struct log_config *log_config(const struct log *log);

/* --- appending ----------------------------------------------------------- */

enum log_acks {
	LOG_ACKS_NONE = 0,    /* completes once written (nobody waits) */
	LOG_ACKS_LEADER,      /* completes once written */
	LOG_ACKS_ALL,         /* completes once durable under the flush policy */
};

struct log_append;
/* Called exactly once per accepted append, in offset order per log:
 * res 0 = done at the requested level, or -errno (the batch may or may not
 * be on disk; it is not visible to readers). */
typedef void (*log_append_cb)(struct log_append *a, int res);

/* One append; caller storage, embedded in the caller's request. */
struct log_append {
	uint8_t *buf;           /* a complete record batch; borrowed until cb */
	size_t len;
	enum log_acks acks;
	log_append_cb cb;
	void *arg;
	/* out: set by log_append */
	int64_t base_offset;
	int64_t append_time;    /* wall clock ms when accepted */
	/* private */
	int64_t end_offset;
	int64_t max_ts;
	struct segment *seg;
	uint64_t pos;
	TAILQ_ENTRY(log_append) link;
};

/* Validate the batch (CRC and structure), stamp its base offset into buf,
 * and queue it; the write is submitted at the end of the loop turn together
 * with every other batch appended to this log in the same turn.
 * Returns 0 (a->cb will be called), or without calling cb: -EINVAL /
 * -EBADMSG / -EPROTONOSUPPORT (bad batch), -EMSGSIZE (over
 * max_batch_bytes), -EROFS (the log failed earlier; see log_error),
 * -ENOSPC / -EDQUOT (a write was just refused for lack of space and the
 * log is being cut back; retriable), or -errno from creating a segment.
 * An accepted append's callback gets -ENOSPC / -EDQUOT when its write was
 * refused for lack of space: it is then not in the log at all. */
int log_append(struct log *log, struct log_append *a);

/* --- reading ------------------------------------------------------------- */

/* A run of whole batches in one segment file.  Holds a reference on the
 * segment (retention cannot close or unlink it) until log_slice_release. */
struct log_slice {
	struct log_ctx *ctx;
	struct segment *seg;
	int fd;              /* borrowed from the segment; valid until release */
	uint64_t pos;
	uint64_t len;        /* 0: nothing to read at this offset yet */
	int64_t first_offset;
	int64_t next_offset; /* offset after the last batch in the slice */
};

/* Read whole batches starting with the one that holds `offset`, up to
 * max_bytes (the first batch is returned even if larger), stopping at the
 * high watermark and at the end of the segment.  Reads of offset == hw give
 * len 0.  Returns 0, -ERANGE (offset < start or > hw), -EUCLEAN (the range
 * is corrupt: see log_corruption), or -errno from the file. */
int log_read(struct log *log, int64_t offset, uint64_t max_bytes,
	     struct log_slice *out);
void log_slice_release(struct log_slice *s);

/* Offset of the first record whose timestamp is >= ts, or the end offset if
 * there is none.  Returns 0 or -errno. */
int log_offset_for_time(struct log *log, int64_t ts, int64_t *offset);

/* Describe the last corruption a read met ("file at position P, offsets
 * A..B: reason"); empty if none. */
const char *log_corruption(const struct log *log);

/* --- state ----------------------------------------------------------------- */

int64_t log_start_offset(const struct log *log);
int64_t log_end_offset(const struct log *log);
int64_t log_high_watermark(const struct log *log);
int64_t log_durable_offset(const struct log *log);
uint64_t log_size_bytes(const struct log *log);
int log_segment_count(const struct log *log);
const char *log_dir(const struct log *log);

/* 0, or the -errno that put the log into read-only failed state. */
int log_error(const struct log *log);

/* Called when the high watermark advances (long-poll fetches wake on it). */
void log_set_hw_cb(struct log *log, void (*cb)(struct log *, void *), void *arg);

/* --- maintenance ----------------------------------------------------------- */

/* Delete the segments that retention expires: oldest first, never the
 * active one; by age (newest record timestamp older than retention.ms by
 * the retention clock, log_ctx_retention_ms) and by size
 * (while the log minus the oldest segment is still at least
 * retention.bytes, the rule Kafka uses).
 * Unlinks asynchronously; readers holding a slice keep their segment.
 * Returns the number of segments deleted. */
int log_retention_run(struct log *log);

/* Delete the oldest segments while every offset they hold is below `offset`
 * (whole sealed segments, never the active one), as retention does and
 * under the same conditions.  For a log whose content up to `offset` is
 * kept elsewhere (the consumer offsets snapshot).  The log start offset
 * stays <= offset.  Returns the number of segments deleted. */
int log_delete_before(struct log *log, int64_t offset);

/* Start a recovery checkpoint (async): fsync data and index, then record
 * how far the log is known valid so the next start-up after a crash only
 * scans past it.  No-op when one is in flight or nothing changed. */
void log_checkpoint(struct log *log);

#endif
