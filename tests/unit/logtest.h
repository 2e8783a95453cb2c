/* logtest — the harness of the log unit tests: a fresh data dir, an event
 * loop with its io_uring, an injected clock, self-describing record batches
 * (a record's key and value derive from its offset, so any slice can be
 * checked without remembering what was written), bounded loop runners, and
 * a completion recorder on the ring that can also inject errors.
 */
#ifndef BROKER_TESTS_LOGTEST_H
#define BROKER_TESTS_LOGTEST_H

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/log.h"
#include "broker/logging.h"
#include "broker/uring.h"
#include "proto/batch.h"
#include "tests/unit/testutil.h"

#define LT_MAX_TURNS   10000  /* loop turns any wait may take */
#define LT_MAX_WAIT_MS 20000  /* and real time */
#define LT_MAX_EVENTS  8192
#define LT_DIR_MAX     1024
#define LT_PATH_MAX    (LT_DIR_MAX + 64)

/* One completion seen by the ring filter, or one append callback. */
struct lt_event {
	const char *what;      /* uring op name, or "append.cb" */
	int res;               /* after injection */
	int64_t hw, durable;   /* of the log when it happened */
};

struct lt_app;

struct lt {
	char *root;            /* tu_mkdtemp */
	char dir[LT_DIR_MAX];  /* root/p0: the partition directory */
	struct event_base *base;
	struct event *tick;    /* keeps EVLOOP_ONCE from sleeping forever */
	struct uring *u;
	struct log_ctx *ctx;
	struct log_ctx_opts opts;
	struct log *log;
	struct log_config cfg;
	int64_t wall, mono;    /* the injected clock */
	/* recorder and fault injection */
	struct lt_event ev[LT_MAX_EVENTS];
	int nev;
	const char *fail_what; /* inject into completions of this op ... */
	int fail_skip;         /* ... after letting this many through ... */
	int fail_left;         /* ... this many times ... */
	int fail_res;          /* ... with this result */
	/* every append made, freed at lt_fini */
	struct lt_app **apps;
	int napps, cap_apps;
};

/* An append with its batch; the batch describes offsets from `expect`. */
struct lt_app {
	struct log_append a;
	struct lt *t;
	int64_t expect;        /* base offset the batch was built for */
	int nrec;
	int64_t ts;            /* record i has timestamp ts + i */
	bool accepted;         /* log_append returned 0: a callback is due */
	int calls;             /* callbacks so far (must end at exactly 1) */
	int res;
	int seq;               /* event index of the (last) callback */
};

static inline int64_t lt_wall(void *arg)
{
	return ((struct lt *)arg)->wall;
}

static inline int64_t lt_mono(void *arg)
{
	return ((struct lt *)arg)->mono;
}

static inline int64_t lt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void lt_record(struct lt *t, const char *what, int res)
{
	if (t->nev < LT_MAX_EVENTS) {
		struct lt_event *e = &t->ev[t->nev];
		e->what = what;
		e->res = res;
		e->hw = t->log != NULL ? log_high_watermark(t->log) : -1;
		e->durable = t->log != NULL ? log_durable_offset(t->log) : -1;
	}
	t->nev++;
}

static inline int lt_filter(struct uring_op *op, int res, void *arg)
{
	struct lt *t = arg;

	if (t->fail_what != NULL && t->fail_left > 0 && op->what != NULL &&
	    strcmp(op->what, t->fail_what) == 0) {
		if (t->fail_skip > 0) {
			t->fail_skip--;
		} else {
			t->fail_left--;
			res = t->fail_res;
		}
	}
	lt_record(t, op->what != NULL ? op->what : "?", res);
	return res;
}

/* Fail the next `n` completions of `what` (after `skip` good ones) with res. */
static inline void lt_inject(struct lt *t, const char *what, int skip, int n, int res)
{
	t->fail_what = what;
	t->fail_skip = skip;
	t->fail_left = n;
	t->fail_res = res;
}

/* Events named `what` recorded at or after index `from`. */
static inline int lt_count(const struct lt *t, int from, const char *what)
{
	int n = 0;

	for (int i = from; i < t->nev && i < LT_MAX_EVENTS; i++)
		if (strcmp(t->ev[i].what, what) == 0)
			n++;
	return n;
}

static inline void lt_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until `cond` holds; fails the test after LT_MAX_TURNS turns
 * or LT_MAX_WAIT_MS of real time. */
#define LT_RUN_UNTIL(t, cond)                                                   \
	do {                                                                    \
		int64_t lt_t0_ = lt_now_ms();                                   \
		for (int lt_n_ = 0; !(cond); lt_n_++) {                         \
			ck_assert_msg(lt_n_ < LT_MAX_TURNS &&                   \
				      lt_now_ms() - lt_t0_ < LT_MAX_WAIT_MS,    \
				      "event loop: `%s` still false after %d turns", \
				      #cond, lt_n_);                            \
			event_base_loop((t)->base, EVLOOP_ONCE);                \
		}                                                               \
	} while (0)

/* Run the loop until no io_uring operation is in flight or queued. */
static inline void lt_settle(struct lt *t)
{
	for (int i = 0; i < 3; i++) {
		LT_RUN_UNTIL(t, uring_inflight(t->u) == 0);
		event_base_loop(t->base, EVLOOP_NONBLOCK);
	}
	LT_RUN_UNTIL(t, uring_inflight(t->u) == 0);
}

/* Fresh loop, ring, context (bound `max_open` fds) and data dir; the log
 * config gets test-friendly defaults (nothing rolls or expires by itself). */
static inline void lt_init_opts(struct lt *t, int max_open)
{
	struct timeval tv = { 0, 10000 };

	memset(t, 0, sizeof(*t));
	if (getenv("LOGTEST_VERBOSE") == NULL)
		log_msg_level = LOGL_ERROR + 1;
	t->root = tu_mkdtemp();
	ck_assert_ptr_nonnull(t->root);
	snprintf(t->dir, sizeof(t->dir), "%s/p0", t->root);
	t->base = event_base_new();
	ck_assert_ptr_nonnull(t->base);
	t->tick = event_new(t->base, -1, EV_PERSIST, lt_tick, NULL);
	ck_assert_ptr_nonnull(t->tick);
	ck_assert_int_eq(event_add(t->tick, &tv), 0);
	ck_assert_int_eq(uring_new(t->base, 256, &t->u), 0);
	uring_set_filter(t->u, lt_filter, t);
	t->wall = 1700000000000LL;
	t->mono = 1000000;
	t->opts.max_open_segments = max_open;
	t->opts.max_batch_bytes = 1u << 20;
	t->opts.clock = (struct log_clock){ lt_wall, lt_mono, t };
	ck_assert_int_eq(log_ctx_new(t->u, &t->opts, &t->ctx), 0);
	log_config_defaults(&t->cfg);
	t->cfg.segment_bytes = 1 << 20;
	t->cfg.segment_ms = INT64_C(1) << 40;
	t->cfg.retention_ms = -1;
	t->cfg.retention_bytes = -1;
	t->cfg.flush_mode = LOG_FLUSH_ALWAYS;
	t->cfg.index_interval_bytes = 4096;
}

static inline void lt_init(struct lt *t)
{
	lt_init_opts(t, 8);
}

static inline void lt_open(struct lt *t)
{
	ck_assert_ptr_null(t->log);
	int rc = log_open(t->ctx, t->dir, &t->cfg, LOG_OPEN_CREATE, &t->log);
	ck_assert_msg(rc == 0, "log_open: %d (%s)", rc, strerror(-rc));
}

static inline void lt_close(struct lt *t)
{
	int rc = log_close(t->log);

	t->log = NULL;
	ck_assert_msg(rc == 0, "log_close: %d (%s)", rc, strerror(-rc));
}

/* Simulated crash: no final flush or checkpoint. */
static inline void lt_crash(struct lt *t)
{
	log_abandon(t->log);
	t->log = NULL;
}

static inline void lt_fini(struct lt *t)
{
	if (t->log != NULL)
		lt_crash(t);
	log_ctx_free(t->ctx);
	uring_free(t->u);
	event_free(t->tick);
	event_base_free(t->base);
	for (int i = 0; i < t->napps; i++) {
		free(t->apps[i]->a.buf);
		free(t->apps[i]);
	}
	free(t->apps);
	tu_rmtree(t->root);
	free(t->root);
}

/* --- self-describing batches ------------------------------------------- */

static inline int lt_key(char *buf, size_t cap, int64_t off)
{
	return snprintf(buf, cap, "key-%" PRId64, off);
}

/* Value of the record at `off`: a prefix naming it, then filler whose length
 * varies with the offset (0..40 bytes). */
static inline int lt_value(char *buf, size_t cap, int64_t off)
{
	int n = snprintf(buf, cap, "value-%" PRId64 "-", off);
	int fill = (int)(off * 7 % 41);

	for (int i = 0; i < fill && (size_t)(n + 1) < cap; i++)
		buf[n++] = (char)('a' + (off + i) % 26);
	buf[n] = '\0';
	return n;
}

static inline void lt_app_done(struct log_append *a, int res)
{
	struct lt_app *p = a->arg;

	p->calls++;
	p->res = res;
	p->seq = p->t->nev;
	lt_record(p->t, "append.cb", res);
}

/* Build (not append) a batch of nrec records for base offset `expect`. */
static inline struct lt_app *lt_app_new_at(struct lt *t, int64_t expect, int nrec, int64_t ts,
					   enum log_acks acks)
{
	struct lt_app *p = calloc(1, sizeof(*p));
	struct batch_builder b;
	char key[64], val[128];

	ck_assert_ptr_nonnull(p);
	batch_builder_init(&b);
	for (int i = 0; i < nrec; i++) {
		int kl = lt_key(key, sizeof(key), expect + i);
		int vl = lt_value(val, sizeof(val), expect + i);
		ck_assert_int_eq(batch_builder_add(&b, ts + i, key, kl, val, vl, NULL, 0), 0);
	}
	ck_assert_int_eq(batch_builder_finish(&b, 0, &p->a.buf, &p->a.len), 0);
	p->a.acks = acks;
	p->a.cb = lt_app_done;
	p->a.arg = p;
	p->t = t;
	p->expect = expect;
	p->nrec = nrec;
	p->ts = ts;
	p->res = 1; /* not called yet */
	if (t->napps == t->cap_apps) {
		t->cap_apps = t->cap_apps ? 2 * t->cap_apps : 64;
		t->apps = realloc(t->apps, (size_t)t->cap_apps * sizeof(*t->apps));
		ck_assert_ptr_nonnull(t->apps);
	}
	t->apps[t->napps++] = p;
	return p;
}

/* A batch for the current end of the log (append it before any other). */
static inline struct lt_app *lt_app_new(struct lt *t, int nrec, int64_t ts, enum log_acks acks)
{
	return lt_app_new_at(t, log_end_offset(t->log), nrec, ts, acks);
}

/* log_append, remembering whether a callback is due.  Returns its rc. */
static inline int lt_try_append(struct lt *t, struct lt_app *p)
{
	int rc = log_append(t->log, &p->a);

	p->accepted = rc == 0;
	return rc;
}

/* Append nrec records (returns at once: the write goes out at the end of
 * the loop turn); checks the offset assigned. */
static inline struct lt_app *lt_append(struct lt *t, int nrec, int64_t ts, enum log_acks acks)
{
	struct lt_app *p = lt_app_new(t, nrec, ts, acks);
	int rc = lt_try_append(t, p);

	ck_assert_msg(rc == 0, "log_append: %d (%s)", rc, strerror(-rc));
	ck_assert_int_eq(p->a.base_offset, p->expect);
	ck_assert_int_eq(log_end_offset(t->log), p->expect + nrec);
	return p;
}

/* Every append made so far has had its callback. */
static inline bool lt_all_called(const struct lt *t)
{
	for (int i = 0; i < t->napps; i++)
		if (t->apps[i]->accepted && t->apps[i]->calls == 0)
			return false;
	return true;
}

/* Wait for every callback; each must come exactly once with res 0. */
static inline void lt_wait_ok(struct lt *t)
{
	LT_RUN_UNTIL(t, lt_all_called(t));
	for (int i = 0; i < t->napps; i++) {
		const struct lt_app *p = t->apps[i];
		if (!p->accepted)
			continue;
		ck_assert_msg(p->calls == 1 && p->res == 0,
			      "append at %" PRId64 ": %d callbacks, res %d", p->expect,
			      p->calls, p->res);
	}
}

/* Append one batch with acks=all and wait until it is durable. */
static inline struct lt_app *lt_append_sync(struct lt *t, int nrec, int64_t ts)
{
	struct lt_app *p = lt_append(t, nrec, ts, LOG_ACKS_ALL);

	lt_wait_ok(t);
	return p;
}

/* --- checking what is read ----------------------------------------------- */

/* Read the slice's bytes and check them: whole valid batches, dense offsets
 * from first_offset to next_offset, every record's key and value those of
 * its offset.  Returns the number of batches; fills sizes[] (if not NULL,
 * up to nsizes) with the size of each. */
static inline int lt_check_slice(const struct log_slice *sl, size_t *sizes, int nsizes)
{
	uint8_t *buf = malloc(sl->len ? sl->len : 1);
	uint64_t p = 0;
	int64_t off = sl->first_offset;
	int nb = 0;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_gt(sl->len, 0);
	ck_assert_int_ge(sl->fd, 0);
	ck_assert_int_eq(pread(sl->fd, buf, sl->len, (off_t)sl->pos), (ssize_t)sl->len);
	while (p < sl->len) {
		struct batch_header h;
		struct batch_iter it;
		struct batch_record r;
		char key[64], val[128];

		ck_assert_msg(sl->len - p >= BATCH_HEADER_SIZE, "slice ends inside a batch header");
		ck_assert_int_eq(batch_header_decode(buf + p, BATCH_HEADER_SIZE, &h), 0);
		ck_assert_msg(batch_size(&h) <= sl->len - p, "slice ends inside a batch");
		ck_assert_int_eq(batch_iter_init(&it, buf + p, batch_size(&h)), 0);
		ck_assert_msg(h.base_offset == off, "batch base %" PRId64 ", expected %" PRId64,
			      h.base_offset, off);
		while (batch_iter_next(&it, &r) == 1) {
			int kl = lt_key(key, sizeof(key), off);
			int vl = lt_value(val, sizeof(val), off);
			ck_assert_int_eq(r.offset, off);
			ck_assert_int_eq(r.key_len, kl);
			ck_assert_int_eq(r.value_len, vl);
			ck_assert_msg(memcmp(r.key, key, (size_t)kl) == 0 &&
				      memcmp(r.value, val, (size_t)vl) == 0,
				      "record %" PRId64 " has the wrong key or value", off);
			off++;
		}
		ck_assert_int_eq(off, batch_last_offset(&h) + 1);
		if (sizes != NULL && nb < nsizes)
			sizes[nb] = batch_size(&h);
		nb++;
		p += batch_size(&h);
	}
	ck_assert_int_eq(off, sl->next_offset);
	free(buf);
	return nb;
}

/* Read [from, to) slice by slice with max_bytes, checking every record.
 * Returns the number of slices. */
static inline int lt_read_range(struct lt *t, int64_t from, int64_t to, uint64_t max_bytes)
{
	int64_t off = from;
	int n = 0;

	while (off < to) {
		struct log_slice sl;
		int rc = log_read(t->log, off, max_bytes, &sl);
		ck_assert_msg(rc == 0, "log_read(%" PRId64 "): %d (%s)", off, rc, strerror(-rc));
		ck_assert_msg(sl.len > 0, "log_read(%" PRId64 ") returned nothing below %" PRId64,
			      off, to);
		ck_assert_int_le(sl.first_offset, off);
		ck_assert_int_gt(sl.next_offset, off);
		lt_check_slice(&sl, NULL, 0);
		log_slice_release(&sl);
		off = sl.next_offset;
		n++;
	}
	ck_assert_int_eq(off, to);
	return n;
}

/* --- files ------------------------------------------------------------------ */

static inline void lt_seg_path(const struct lt *t, char *out, int64_t base, const char *ext)
{
	snprintf(out, LT_PATH_MAX, "%s/%020" PRId64 "%s", t->dir, base, ext);
}

static inline int64_t lt_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static inline bool lt_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* XOR the byte at pos with mask. */
static inline void lt_flip(const char *path, uint64_t pos, uint8_t mask)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, (off_t)pos), 1);
	c ^= mask;
	ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)pos), 1);
	close(fd);
}

static inline void lt_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* Base offsets of the segments in the directory, sorted.  Returns the count. */
static inline int lt_seg_bases(const struct lt *t, int64_t *bases, int max)
{
	DIR *d = opendir(t->dir);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l != 24 || strcmp(de->d_name + 20, ".log") != 0)
			continue;
		ck_assert_int_lt(n, max);
		bases[n++] = strtoll(de->d_name, NULL, 10);
	}
	closedir(d);
	for (int i = 1; i < n; i++) /* insertion sort */
		for (int j = i; j > 0 && bases[j - 1] > bases[j]; j--) {
			int64_t x = bases[j];
			bases[j] = bases[j - 1];
			bases[j - 1] = x;
		}
	return n;
}

/* Walk the batch headers of a .log file (by their length fields only):
 * fills pos[] and base[] (either may be NULL) for up to max batches and
 * returns how many there are. */
static inline int lt_batches(const char *path, uint64_t *pos, int64_t *base, int max)
{
	int fd = open(path, O_RDONLY);
	uint8_t hdr[BATCH_HEADER_SIZE];
	uint64_t p = 16;
	int n = 0;

	ck_assert_int_ge(fd, 0);
	while (pread(fd, hdr, sizeof(hdr), (off_t)p) == (ssize_t)sizeof(hdr)) {
		struct batch_header h;
		if (batch_header_decode(hdr, sizeof(hdr), &h) < 0)
			break;
		if (n < max) {
			if (pos != NULL)
				pos[n] = p;
			if (base != NULL)
				base[n] = h.base_offset;
		}
		n++;
		p += batch_size(&h);
	}
	close(fd);
	return n;
}

/* Open fds of this process that name a .log file of the test's dir. */
static inline int lt_open_log_fds(const struct lt *t)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	size_t dl = strlen(t->dir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char link[300], target[LT_PATH_MAX];
		ssize_t l;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		l = readlink(link, target, sizeof(target) - 1);
		if (l <= 0)
			continue;
		target[l] = '\0';
		if (strncmp(target, t->dir, dl) == 0 && l > 4 && strcmp(target + l - 4, ".log") == 0)
			n++;
	}
	closedir(d);
	return n;
}

#endif
