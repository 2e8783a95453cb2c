/* check_log — the partition log (broker/log.h) driven through its public
 * API on a real event loop and io_uring: append/read round trips, offsets
 * across restarts and crashes, index and time lookups, rolling, retention,
 * crash recovery of torn and corrupt files, durability ordering, group
 * commit, I/O error injection, index rebuilds and the fd cache bound.
 */
#include "broker/log.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/logtest.h"

Suite *log_suite(void); /* called by the runner (tests/unit/runner.c) */

#define SEG_SMALL   4096
#define MAX_BATCHES 2048
#define MAX_SEGS    256
#define TS0         INT64_C(1600000000000)

/* Every batch of the log as found in the files: segment, position, size. */
struct tab {
	int n, nsegs;
	int64_t seg_base[MAX_SEGS];
	int64_t base[MAX_BATCHES];
	uint64_t pos[MAX_BATCHES];
	uint64_t size[MAX_BATCHES];
	int seg[MAX_BATCHES];      /* index into seg_base */
};

static struct tab tab;

/* Fill `tab` from the segment files (walking batch headers). */
/* Size of the batch at `pos` of a .log file, from its length field. */
static uint64_t batch_len(const char *path, uint64_t pos)
{
	uint8_t h[BATCH_LENGTH_END];
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, h, sizeof(h), (off_t)pos), (ssize_t)sizeof(h));
	close(fd);
	return BATCH_LENGTH_END + ((uint64_t)h[8] | (uint64_t)h[9] << 8 | (uint64_t)h[10] << 16 |
				   (uint64_t)h[11] << 24);
}

static void tab_build(const struct lt *t)
{
	memset(&tab, 0, sizeof(tab));
	tab.nsegs = lt_seg_bases(t, tab.seg_base, MAX_SEGS);
	for (int s = 0; s < tab.nsegs; s++) {
		char path[LT_PATH_MAX];
		int k;

		lt_seg_path(t, path, tab.seg_base[s], ".log");
		k = lt_batches(path, tab.pos + tab.n, tab.base + tab.n, MAX_BATCHES - tab.n);
		ck_assert_int_le(tab.n + k, MAX_BATCHES);
		for (int i = tab.n; i < tab.n + k; i++) {
			/* The last batch ends where its length says: zero-ahead may
			 * leave zeros after it. */
			uint64_t end = i + 1 < tab.n + k ? tab.pos[i + 1] : tab.pos[i] + batch_len(path, tab.pos[i]);
			tab.size[i] = end - tab.pos[i];
			tab.seg[i] = s;
		}
		tab.n += k;
	}
}

/* Index of the batch holding offset `off` in `tab` (off below the end). */
static int tab_find(int64_t off)
{
	int i = 0;

	while (i + 1 < tab.n && tab.base[i + 1] <= off)
		i++;
	return i;
}

/* Append n batches of 1..4 records; batch i has timestamps ts0 + 100 i + j.
 * Waits for the acks every `per_turn` batches. */
static void fill(struct lt *t, int n, int per_turn, int64_t ts0)
{
	for (int i = 0; i < n; i++) {
		lt_append(t, 1 + i % 4, ts0 + 100 * i, LOG_ACKS_ALL);
		if ((i + 1) % per_turn == 0)
			lt_wait_ok(t);
	}
	lt_wait_ok(t);
}

/* The offset range [from, to) is served exactly: one slice per segment
 * when unbounded, every record checked. */
static void expect_readable(struct lt *t, int64_t from, int64_t to)
{
	lt_read_range(t, from, to, UINT64_MAX);
	lt_read_range(t, from, to, 1);
}

static void expect_read_err(struct lt *t, int64_t off, int err)
{
	struct log_slice sl;
	int rc = log_read(t->log, off, UINT64_MAX, &sl);

	ck_assert_msg(rc == err, "log_read(%" PRId64 ") = %d, expected %d", off, rc, err);
	log_slice_release(&sl);
}

static void expect_empty_read(struct lt *t, int64_t off)
{
	struct log_slice sl;
	int rc = log_read(t->log, off, UINT64_MAX, &sl);

	ck_assert_msg(rc == 0, "log_read(%" PRId64 ") = %d", off, rc);
	ck_assert_int_eq(sl.len, 0);
	log_slice_release(&sl);
}

static int64_t offset_for_time(struct lt *t, int64_t ts)
{
	int64_t off = -42;
	int rc = log_offset_for_time(t->log, ts, &off);

	ck_assert_msg(rc == 0, "log_offset_for_time(%" PRId64 ") = %d", ts, rc);
	return off;
}

/* --- append and read ------------------------------------------------------ */

START_TEST(test_roundtrip_segments)
{
	struct lt t;
	int64_t want = 0;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 80, 7, TS0);
	for (int i = 0; i < t.napps; i++) {
		ck_assert_int_eq(t.apps[i]->a.base_offset, want);
		want += t.apps[i]->nrec;
	}
	ck_assert_int_eq(log_end_offset(t.log), want);
	ck_assert_int_eq(log_high_watermark(t.log), want);
	ck_assert_int_eq(log_durable_offset(t.log), want);
	ck_assert_int_ge(log_segment_count(t.log), 4);
	/* Unbounded: one slice per segment, every record as written. */
	ck_assert_int_eq(lt_read_range(&t, 0, want, UINT64_MAX), log_segment_count(t.log));
	/* One batch at a time. */
	ck_assert_int_eq(lt_read_range(&t, 0, want, 0), 80);
	lt_fini(&t);
}
END_TEST

/* Slices hold whole batches, at least one, no more than max_bytes when more
 * than one, and as many as fit before the end of the segment. */
START_TEST(test_read_max_bytes)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 60, 10, TS0);
	tab_build(&t);
	ck_assert_int_eq(tab.n, 60);
	for (int i = 0; i < tab.n; i++) {
		uint64_t two = i + 1 < tab.n ? tab.size[i] + tab.size[i + 1] : tab.size[i];
		const uint64_t maxes[] = { 0, 1, tab.size[i] - 1, tab.size[i], two - 1, two,
					   two + 1, 700, 1500, 3000 };

		for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
			struct log_slice sl;
			size_t sizes[64];
			uint64_t len = 0;
			int nb, last;

			ck_assert_int_eq(log_read(t.log, tab.base[i], maxes[m], &sl), 0);
			ck_assert_int_eq(sl.first_offset, tab.base[i]);
			ck_assert_int_eq(sl.pos, tab.pos[i]);
			nb = lt_check_slice(&sl, sizes, 64);
			for (int k = 0; k < nb; k++) {
				ck_assert_int_eq(sizes[k], tab.size[i + k]);
				ck_assert_int_eq(tab.seg[i + k], tab.seg[i]);
				len += sizes[k];
			}
			ck_assert_int_eq(len, sl.len);
			if (nb > 1)
				ck_assert_msg(sl.len <= maxes[m], "%" PRIu64 " bytes > max %" PRIu64,
					      sl.len, maxes[m]);
			last = i + nb - 1;
			if (last + 1 < tab.n && tab.seg[last + 1] == tab.seg[i])
				ck_assert_msg(sl.len + tab.size[last + 1] > maxes[m],
					      "slice of %" PRIu64 " bytes stops short of max %" PRIu64,
					      sl.len, maxes[m]);
			log_slice_release(&sl);
		}
	}
	lt_fini(&t);
}
END_TEST

/* Rejected appends: no offset used, no callback. */
START_TEST(test_append_rejects_bad_batches)
{
	struct lt t;
	struct lt_app *p;

	lt_init(&t);
	t.opts.max_batch_bytes = 4096;
	log_ctx_free(t.ctx);
	ck_assert_int_eq(log_ctx_new(t.u, &t.opts, &t.ctx), 0);
	lt_open(&t);
	p = lt_app_new(&t, 2, TS0, LOG_ACKS_ALL);
	p->a.buf[p->a.len - 1] ^= 0x01; /* CRC mismatch */
	ck_assert_int_eq(lt_try_append(&t, p), -EBADMSG);
	p = lt_app_new(&t, 2, TS0, LOG_ACKS_ALL);
	p->a.len--; /* one byte short */
	ck_assert_int_eq(lt_try_append(&t, p), -EINVAL);
	p = lt_app_new(&t, 120, TS0, LOG_ACKS_ALL); /* > 4096 bytes */
	ck_assert_int_gt(p->a.len, 4096);
	ck_assert_int_eq(lt_try_append(&t, p), -EMSGSIZE);
	ck_assert_int_eq(log_end_offset(t.log), 0);
	lt_append_sync(&t, 3, TS0);
	ck_assert_int_eq(log_end_offset(t.log), 3);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(t.apps[i]->calls, 0);
	expect_readable(&t, 0, 3);
	lt_fini(&t);
}
END_TEST

/* A buffer shorter than a batch header is a bad batch (-EINVAL, as log.h
 * lists), not a request to try again. */
START_TEST(test_append_rejects_short_buffer)
{
	struct lt t;
	struct lt_app *p;

	lt_init(&t);
	lt_open(&t);
	for (size_t len = 0; len < BATCH_HEADER_SIZE; len += 11) {
		p = lt_app_new(&t, 1, TS0, LOG_ACKS_ALL);
		p->a.len = len;
		ck_assert_msg(lt_try_append(&t, p) == -EINVAL, "len %zu: %d", len, log_append(t.log, &p->a));
	}
	ck_assert_int_eq(log_end_offset(t.log), 0);
	lt_fini(&t);
}
END_TEST

/* --- offsets across restarts ---------------------------------------------------- */

START_TEST(test_offsets_dense_across_restart)
{
	struct lt t;
	int64_t end = 0;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	for (int round = 0; round < 4; round++) {
		ck_assert_int_eq(log_end_offset(t.log), end);
		ck_assert_int_eq(log_high_watermark(t.log), end);
		fill(&t, 15, 5, TS0 + round * 10000);
		ck_assert_int_eq(t.apps[t.napps - 15]->a.base_offset, end);
		end = log_end_offset(t.log);
		lt_close(&t);
		lt_open(&t);
	}
	ck_assert_int_eq(log_end_offset(t.log), end);
	ck_assert_int_eq(log_start_offset(t.log), 0);
	expect_readable(&t, 0, end);
	lt_fini(&t);
}
END_TEST

START_TEST(test_offsets_dense_across_crash)
{
	struct lt t;
	int64_t end = 0;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	for (int round = 0; round < 4; round++) {
		ck_assert_int_eq(log_end_offset(t.log), end);
		ck_assert_int_eq(log_high_watermark(t.log), end);
		fill(&t, 15, 5, TS0 + round * 10000);
		ck_assert_int_eq(t.apps[t.napps - 15]->a.base_offset, end);
		end = log_end_offset(t.log);
		lt_crash(&t);
		lt_open(&t);
	}
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	lt_fini(&t);
}
END_TEST

/* Appends still pending (never submitted) at a crash are cancelled, and
 * their offsets are assigned again after the restart. */
START_TEST(test_crash_cancels_pending)
{
	struct lt t;
	struct lt_app *p, *q;
	int64_t end;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 5, 5, TS0);
	end = log_end_offset(t.log);
	p = lt_append(&t, 2, TS0, LOG_ACKS_ALL);
	q = lt_append(&t, 2, TS0, LOG_ACKS_LEADER);
	lt_crash(&t);
	ck_assert_int_eq(p->calls, 1);
	ck_assert_int_eq(p->res, -ECANCELED);
	ck_assert_int_eq(q->calls, 1);
	ck_assert_int_eq(q->res, -ECANCELED);
	p->accepted = q->accepted = false;
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	p = lt_append_sync(&t, 3, TS0);
	ck_assert_int_eq(p->a.base_offset, end);
	expect_readable(&t, 0, end + 3);
	lt_fini(&t);
}
END_TEST

/* --- index lookups ------------------------------------------------------------- */

/* Every offset, every segment boundary, and the edges of the range. */
static void check_lookups(struct lt *t)
{
	int64_t end = log_end_offset(t->log);

	tab_build(t);
	ck_assert_int_eq(log_high_watermark(t->log), end);
	for (int64_t off = 0; off < end; off++) {
		int i = tab_find(off);
		struct log_slice sl;
		int rc = log_read(t->log, off, 1, &sl);

		ck_assert_msg(rc == 0, "log_read(%" PRId64 ") = %d", off, rc);
		ck_assert_int_eq(sl.first_offset, tab.base[i]);
		ck_assert_int_eq(sl.pos, tab.pos[i]);
		ck_assert_int_eq(sl.len, tab.size[i]);
		ck_assert_int_eq(lt_check_slice(&sl, NULL, 0), 1);
		log_slice_release(&sl);
		/* Unbounded: to the end of the segment. */
		rc = log_read(t->log, off, UINT64_MAX, &sl);
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(sl.first_offset, tab.base[i]);
		if (tab.seg[i] + 1 < tab.nsegs)
			ck_assert_int_eq(sl.next_offset, tab.seg_base[tab.seg[i] + 1]);
		else
			ck_assert_int_eq(sl.next_offset, end);
		lt_check_slice(&sl, NULL, 0);
		log_slice_release(&sl);
	}
	for (int s = 1; s < tab.nsegs; s++) {
		struct log_slice sl;
		int64_t b = tab.seg_base[s];

		ck_assert_int_eq(log_read(t->log, b, 0, &sl), 0);
		ck_assert_int_eq(sl.first_offset, b);
		ck_assert_int_eq(sl.pos, 16);
		log_slice_release(&sl);
		ck_assert_int_eq(log_read(t->log, b - 1, UINT64_MAX, &sl), 0);
		ck_assert_int_le(sl.first_offset, b - 1);
		ck_assert_int_eq(sl.next_offset, b);
		log_slice_release(&sl);
	}
	expect_empty_read(t, end);
	expect_read_err(t, end + 1, -ERANGE);
	expect_read_err(t, INT64_MAX, -ERANGE);
	expect_read_err(t, log_start_offset(t->log) - 1, -ERANGE);
	expect_read_err(t, INT64_MIN, -ERANGE);
}

static void lookup_setup(struct lt *t)
{
	lt_init(t);
	t->cfg.segment_bytes = SEG_SMALL;
	t->cfg.index_interval_bytes = 512;
	lt_open(t);
	fill(t, 200, 16, TS0);
	ck_assert_int_ge(log_segment_count(t->log), 8);
}

START_TEST(test_lookup_every_offset)
{
	struct lt t;

	lookup_setup(&t);
	check_lookups(&t);
	lt_fini(&t);
}
END_TEST

START_TEST(test_lookup_every_offset_after_restart)
{
	struct lt t;

	lookup_setup(&t);
	lt_close(&t);
	lt_open(&t);
	check_lookups(&t);
	lt_fini(&t);
}
END_TEST

START_TEST(test_lookup_every_offset_after_crash)
{
	struct lt t;

	lookup_setup(&t);
	lt_crash(&t);
	lt_open(&t);
	check_lookups(&t);
	lt_fini(&t);
}
END_TEST

/* A sparse index (one entry per 64 KiB) still finds every offset. */
START_TEST(test_lookup_sparse_index)
{
	struct lt t;

	lt_init(&t);
	t.cfg.index_interval_bytes = 1 << 16;
	lt_open(&t);
	fill(&t, 100, 20, TS0);
	check_lookups(&t);
	lt_fini(&t);
}
END_TEST

/* --- time lookups ---------------------------------------------------------------- */

/* fill() timestamps: batch i, record j at TS0 + 100 i + j. */
static void check_time_lookups(struct lt *t)
{
	int64_t end = log_end_offset(t->log);

	for (int i = 0; i < t->napps; i++) {
		const struct lt_app *p = t->apps[i];
		int64_t next = i + 1 < t->napps ? t->apps[i + 1]->expect : end;

		for (int j = 0; j < p->nrec; j++)
			ck_assert_int_eq(offset_for_time(t, p->ts + j), p->expect + j);
		/* Between two batches: the first record of the next one. */
		ck_assert_int_eq(offset_for_time(t, p->ts + 50), next);
	}
	ck_assert_int_eq(offset_for_time(t, 0), log_start_offset(t->log));
	ck_assert_int_eq(offset_for_time(t, INT64_MIN), log_start_offset(t->log));
	ck_assert_int_eq(offset_for_time(t, t->apps[t->napps - 1]->ts + 99), end);
	ck_assert_int_eq(offset_for_time(t, INT64_MAX), end);
}

START_TEST(test_time_lookup)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	t.cfg.index_interval_bytes = 512;
	lt_open(&t);
	fill(&t, 120, 10, TS0);
	ck_assert_int_ge(log_segment_count(t.log), 4);
	check_time_lookups(&t);
	lt_fini(&t);
}
END_TEST

START_TEST(test_time_lookup_after_restart)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	t.cfg.index_interval_bytes = 512;
	lt_open(&t);
	fill(&t, 120, 10, TS0);
	lt_close(&t);
	lt_open(&t);
	check_time_lookups(&t);
	lt_crash(&t);
	lt_open(&t);
	check_time_lookups(&t);
	lt_fini(&t);
}
END_TEST

/* Timestamps out of order: the first record in offset order whose
 * timestamp is >= the target. */
START_TEST(test_time_lookup_unordered)
{
	struct lt t;

	lt_init(&t);
	lt_open(&t);
	lt_append(&t, 1, 100, LOG_ACKS_ALL);  /* offset 0 */
	lt_append(&t, 1, 300, LOG_ACKS_ALL);  /* offset 1 */
	lt_append(&t, 1, 200, LOG_ACKS_ALL);  /* offset 2 */
	lt_append(&t, 1, 150, LOG_ACKS_ALL);  /* offset 3 */
	lt_wait_ok(&t);
	ck_assert_int_eq(offset_for_time(&t, 50), 0);
	ck_assert_int_eq(offset_for_time(&t, 100), 0);
	ck_assert_int_eq(offset_for_time(&t, 101), 1);
	ck_assert_int_eq(offset_for_time(&t, 150), 1);
	ck_assert_int_eq(offset_for_time(&t, 300), 1);
	ck_assert_int_eq(offset_for_time(&t, 301), 4);
	/* Equal timestamps: the first of them. */
	lt_append(&t, 1, 400, LOG_ACKS_ALL);  /* offset 4 */
	lt_append(&t, 1, 400, LOG_ACKS_ALL);  /* offset 5 */
	lt_append(&t, 1, 400, LOG_ACKS_ALL);  /* offset 6 */
	lt_wait_ok(&t);
	ck_assert_int_eq(offset_for_time(&t, 301), 4);
	ck_assert_int_eq(offset_for_time(&t, 400), 4);
	ck_assert_int_eq(offset_for_time(&t, 401), 7);
	lt_fini(&t);
}
END_TEST

/* --- rolling ---------------------------------------------------------------------- */

START_TEST(test_roll_by_size)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 100, 10, TS0);
	tab_build(&t);
	ck_assert_int_eq(tab.nsegs, log_segment_count(t.log));
	ck_assert_int_ge(tab.nsegs, 5);
	for (int s = 0; s < tab.nsegs; s++) {
		char path[LT_PATH_MAX];
		int64_t size;

		lt_seg_path(&t, path, tab.seg_base[s], ".log");
		size = lt_file_size(path);
		ck_assert_int_le(size, SEG_SMALL);
		if (s + 1 < tab.nsegs) {
			/* Rolled because the next batch would not fit. */
			int first_next = 0;
			while (tab.seg[first_next] != s + 1)
				first_next++;
			ck_assert_int_gt(size + (int64_t)tab.size[first_next], SEG_SMALL);
			ck_assert_int_eq(tab.base[first_next], tab.seg_base[s + 1]);
		}
	}
	lt_fini(&t);
}
END_TEST

/* A batch larger than segment_bytes is accepted: it gets a segment alone. */
START_TEST(test_roll_oversized_batch)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = 256;
	lt_open(&t);
	lt_append_sync(&t, 20, TS0);
	ck_assert_int_eq(log_segment_count(t.log), 1);
	lt_append_sync(&t, 20, TS0);
	ck_assert_int_eq(log_segment_count(t.log), 2);
	lt_append_sync(&t, 1, TS0);
	ck_assert_int_eq(log_segment_count(t.log), 3);
	expect_readable(&t, 0, 41);
	lt_fini(&t);
}
END_TEST

START_TEST(test_roll_by_time)
{
	struct lt t;
	struct lt_app *p;
	int64_t bases[8];

	lt_init(&t);
	t.cfg.segment_ms = 1000;
	lt_open(&t);
	lt_append_sync(&t, 2, TS0);
	t.mono += 999;
	lt_append_sync(&t, 2, TS0);
	ck_assert_int_eq(log_segment_count(t.log), 1);
	t.mono += 1;
	/* Time alone rolls nothing; the next append does. */
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(log_segment_count(t.log), 1);
	p = lt_append_sync(&t, 2, TS0);
	ck_assert_int_eq(log_segment_count(t.log), 2);
	ck_assert_int_eq(lt_seg_bases(&t, bases, 8), 2);
	ck_assert_int_eq(bases[1], p->a.base_offset);
	/* The new segment's age counts from its creation. */
	t.mono += 999;
	lt_append_sync(&t, 1, TS0);
	ck_assert_int_eq(log_segment_count(t.log), 2);
	t.mono += 1;
	lt_append_sync(&t, 1, TS0);
	ck_assert_int_eq(log_segment_count(t.log), 3);
	expect_readable(&t, 0, log_end_offset(t.log));
	lt_fini(&t);
}
END_TEST

/* --- retention -------------------------------------------------------------------- */

/* Largest record timestamp of segment s (from the app table). */
static int64_t seg_max_ts(const struct lt *t, int s)
{
	int64_t lo = tab.seg_base[s], hi = s + 1 < tab.nsegs ? tab.seg_base[s + 1] : INT64_MAX;
	int64_t m = INT64_MIN;

	for (int i = 0; i < t->napps; i++) {
		const struct lt_app *p = t->apps[i];
		if (p->expect >= lo && p->expect < hi && p->ts + p->nrec - 1 > m)
			m = p->ts + p->nrec - 1;
	}
	return m;
}

static void expect_seg_files(const struct lt *t, int64_t base, bool present)
{
	const char *ext[] = { ".log", ".index", ".timeindex" };

	for (int i = 0; i < 3; i++) {
		char path[LT_PATH_MAX];
		lt_seg_path(t, path, base, ext[i]);
		if (i == 0 || !present) /* index files of the active one may not exist */
			ck_assert_msg(lt_exists(path) == present, "%s %s", path,
				      present ? "missing" : "not deleted");
	}
}

/* Advance (or move back) real time by setting the retention clock to ms:
 * the wall and monotonic clocks move together, as they do without a step. */
static void set_retention_now(struct lt *t, int64_t ms)
{
	int64_t d = ms - log_ctx_retention_ms(t->ctx);

	t->wall += d;
	t->mono += d;
	ck_assert_int_eq(log_ctx_retention_ms(t->ctx), ms);
}

START_TEST(test_retention_by_time)
{
	struct lt t;
	int64_t end;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	t.cfg.retention_ms = 10000;
	lt_open(&t);
	fill(&t, 100, 10, TS0);
	end = log_end_offset(t.log);
	tab_build(&t);
	ck_assert_int_ge(tab.nsegs, 4);
	/* Newest record of segment 0 exactly retention_ms old: kept. */
	set_retention_now(&t, seg_max_ts(&t, 0) + 10000);
	ck_assert_int_eq(log_retention_run(t.log), 0);
	ck_assert_int_eq(log_start_offset(t.log), 0);
	/* One ms older: segment 0 goes, segment 1 (newer records) stays. */
	set_retention_now(&t, log_ctx_retention_ms(t.ctx) + 1);
	ck_assert_int_lt(t.wall - seg_max_ts(&t, 1), 10000 + 1);
	ck_assert_int_eq(log_retention_run(t.log), 1);
	ck_assert_int_eq(log_start_offset(t.log), tab.seg_base[1]);
	ck_assert_int_eq(log_segment_count(t.log), tab.nsegs - 1);
	lt_settle(&t);
	expect_seg_files(&t, 0, false);
	expect_read_err(&t, tab.seg_base[1] - 1, -ERANGE);
	expect_read_err(&t, 0, -ERANGE);
	expect_readable(&t, tab.seg_base[1], end);
	ck_assert_int_eq(offset_for_time(&t, 0), tab.seg_base[1]);
	/* Everything old: all but the active segment go. */
	set_retention_now(&t, TS0 + (INT64_C(1) << 40));
	ck_assert_int_eq(log_retention_run(t.log), tab.nsegs - 2);
	ck_assert_int_eq(log_segment_count(t.log), 1);
	ck_assert_int_eq(log_start_offset(t.log), tab.seg_base[tab.nsegs - 1]);
	ck_assert_int_eq(log_end_offset(t.log), end);
	lt_settle(&t);
	for (int s = 0; s < tab.nsegs - 1; s++)
		expect_seg_files(&t, tab.seg_base[s], false);
	expect_seg_files(&t, tab.seg_base[tab.nsegs - 1], true);
	expect_read_err(&t, tab.seg_base[tab.nsegs - 1] - 1, -ERANGE);
	expect_readable(&t, tab.seg_base[tab.nsegs - 1], end);
	ck_assert_int_eq(log_retention_run(t.log), 0);
	/* And it all holds after a restart. */
	lt_close(&t);
	lt_open(&t);
	ck_assert_int_eq(log_start_offset(t.log), tab.seg_base[tab.nsegs - 1]);
	ck_assert_int_eq(log_end_offset(t.log), end);
	lt_append_sync(&t, 1, TS0);
	lt_fini(&t);
}
END_TEST

/* Time retention follows the retention clock (wall at start + monotonic
 * elapsed): a wall-clock step forward expires nothing, a step back does not
 * stop segments from expiring as monotonic time passes. */
START_TEST(test_retention_clock_ignores_wall_steps)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	t.cfg.retention_ms = 10000;
	lt_open(&t);
	fill(&t, 100, 10, t.wall);
	tab_build(&t);
	ck_assert_int_ge(tab.nsegs, 4);
	/* +30 days on the wall clock only: nothing expires. */
	t.wall += INT64_C(30) * 24 * 3600 * 1000;
	ck_assert_int_eq(log_retention_run(t.log), 0);
	ck_assert_int_eq(log_start_offset(t.log), 0);
	/* Back by a day (from where it was): still nothing... */
	t.wall -= INT64_C(31) * 24 * 3600 * 1000;
	ck_assert_int_eq(log_retention_run(t.log), 0);
	/* ...until retention.ms of monotonic time has passed since the newest
	 * record of segment 0: then it goes, wall clock notwithstanding. */
	t.mono += seg_max_ts(&t, 0) + 10000 - log_ctx_retention_ms(t.ctx);
	ck_assert_int_eq(log_retention_run(t.log), 0);
	t.mono += 1;
	ck_assert_int_eq(log_retention_run(t.log), 1);
	ck_assert_int_eq(log_start_offset(t.log), tab.seg_base[1]);
	lt_fini(&t);
}
END_TEST

START_TEST(test_retention_by_size)
{
	struct lt t;
	int64_t sizes[MAX_SEGS], total = 0, end;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 100, 10, TS0);
	end = log_end_offset(t.log);
	tab_build(&t);
	ck_assert_int_ge(tab.nsegs, 4);
	for (int s = 0; s < tab.nsegs; s++) {
		char path[LT_PATH_MAX];
		lt_seg_path(&t, path, tab.seg_base[s], ".log");
		sizes[s] = lt_file_size(path);
		total += sizes[s];
	}
	ck_assert_int_eq(log_size_bytes(t.log), total);
	/* Deleting segments 0 and 1 leaves the log just over the limit;
	 * deleting segment 2 as well would take it below: it stays. */
	t.cfg.retention_bytes = total - sizes[0] - sizes[1] - 10;
	log_set_config(t.log, &t.cfg);
	ck_assert_int_eq(log_retention_run(t.log), 2);
	ck_assert_int_eq(log_start_offset(t.log), tab.seg_base[2]);
	ck_assert_int_eq(log_size_bytes(t.log), total - sizes[0] - sizes[1]);
	ck_assert_int_eq(log_retention_run(t.log), 0);
	lt_settle(&t);
	expect_seg_files(&t, tab.seg_base[0], false);
	expect_seg_files(&t, tab.seg_base[1], false);
	expect_read_err(&t, tab.seg_base[2] - 1, -ERANGE);
	expect_readable(&t, tab.seg_base[2], end);
	/* Zero bytes: never the active segment. */
	t.cfg.retention_bytes = 0;
	log_set_config(t.log, &t.cfg);
	ck_assert_int_eq(log_retention_run(t.log), tab.nsegs - 3);
	ck_assert_int_eq(log_segment_count(t.log), 1);
	ck_assert_int_eq(log_ctx_open_segments(t.ctx), 0);
	ck_assert_int_eq(log_start_offset(t.log), tab.seg_base[tab.nsegs - 1]);
	expect_readable(&t, tab.seg_base[tab.nsegs - 1], end);
	lt_append_sync(&t, 2, TS0);
	expect_readable(&t, tab.seg_base[tab.nsegs - 1], end + 2);
	lt_fini(&t);
}
END_TEST

/* A reader holding a slice keeps its segment readable across retention. */
START_TEST(test_retention_keeps_held_slice)
{
	struct lt t;
	struct log_slice sl;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 40, 10, TS0);
	tab_build(&t);
	ck_assert_int_eq(log_read(t.log, 0, UINT64_MAX, &sl), 0);
	t.cfg.retention_bytes = 0;
	log_set_config(t.log, &t.cfg);
	ck_assert_int_eq(log_retention_run(t.log), tab.nsegs - 1);
	lt_settle(&t);
	expect_seg_files(&t, 0, false);
	lt_check_slice(&sl, NULL, 0);
	ck_assert_int_eq(sl.next_offset, tab.seg_base[1]);
	log_slice_release(&sl);
	ck_assert_int_eq(log_ctx_open_segments(t.ctx), 0);
	expect_read_err(&t, 0, -ERANGE);
	lt_fini(&t);
}
END_TEST

/* --- crash recovery ---------------------------------------------------------------- */

/* A log whose active segment ends with a few batches, the last of 4
 * records; crashed after everything was written.  Returns the last
 * segment's base; tab describes the files. */
static int64_t torn_setup(struct lt *t)
{
	lt_init(t);
	t->cfg.segment_bytes = SEG_SMALL;
	lt_open(t);
	fill(t, 30, 5, TS0);
	lt_append_sync(t, 4, TS0 + 5000);
	lt_crash(t);
	tab_build(t);
	ck_assert_int_ge(tab.nsegs, 2);
	ck_assert_int_ge(tab.n, 2);
	ck_assert_int_eq(tab.seg[tab.n - 2], tab.nsegs - 1); /* two batches in the active one */
	return tab.seg_base[tab.nsegs - 1];
}

/* After the open: the last batch is gone, the rest intact, appending goes
 * on at its offset, and the file was cut back to its start. */
static void expect_torn_tail_cut(struct lt *t, int64_t seg_base)
{
	char path[LT_PATH_MAX];
	int64_t cut = tab.base[tab.n - 1];
	struct lt_app *p;

	lt_seg_path(t, path, seg_base, ".log");
	ck_assert_int_eq(log_end_offset(t->log), cut);
	ck_assert_int_eq(log_high_watermark(t->log), cut);
	ck_assert_int_eq(lt_file_size(path), (int64_t)tab.pos[tab.n - 1]);
	expect_readable(t, 0, cut);
	expect_empty_read(t, cut);
	expect_read_err(t, cut + 1, -ERANGE);
	ck_assert_str_eq(log_corruption(t->log), "");
	p = lt_append_sync(t, 2, TS0);
	ck_assert_int_eq(p->a.base_offset, cut);
	expect_readable(t, 0, cut + 2);
}

START_TEST(test_recover_truncated_tail)
{
	/* Cut points relative to the start of the last batch; negative:
	 * relative to its end. */
	const int64_t cuts[] = { 1, 8, 12, 16, 20, 55, 56, 57, 70, -1, -2 };
	const int i = _i;
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t seg_base = torn_setup(&t), at;

	at = cuts[i] > 0 ? (int64_t)tab.pos[tab.n - 1] + cuts[i]
			 : (int64_t)(tab.pos[tab.n - 1] + tab.size[tab.n - 1]) + cuts[i];
	lt_seg_path(&t, path, seg_base, ".log");
	ck_assert_int_eq(truncate(path, at), 0);
	lt_open(&t);
	expect_torn_tail_cut(&t, seg_base);
	lt_fini(&t);
}
END_TEST

START_TEST(test_recover_flipped_last_batch)
{
	/* Bytes of the last batch: base offset, length, crc, magic, count,
	 * timestamps, first record, middle, last byte. */
	const int64_t at[] = { 3, 9, 13, 16, 20, 25, 33, 56, 60, -30, -1 };
	const int i = _i;
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t seg_base = torn_setup(&t);
	uint64_t p = at[i] >= 0 ? tab.pos[tab.n - 1] + (uint64_t)at[i]
				: tab.pos[tab.n - 1] + tab.size[tab.n - 1] - (uint64_t)-at[i];

	lt_seg_path(&t, path, seg_base, ".log");
	lt_flip(path, p, 0x10);
	lt_open(&t);
	expect_torn_tail_cut(&t, seg_base);
	lt_fini(&t);
}
END_TEST

/* A copy of every file of the partition directory, so one crashed state
 * can be recovered many times over. */
#define DC_MAX 32
struct dir_copy {
	int n;
	char name[DC_MAX][64];
	uint8_t *data[DC_MAX];
	size_t len[DC_MAX];
};

static void dir_save(const struct lt *t, struct dir_copy *c)
{
	DIR *d = opendir(t->dir);
	struct dirent *de;

	memset(c, 0, sizeof(*c));
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char path[LT_PATH_MAX + 256];
		int64_t size;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		ck_assert_int_lt(c->n, DC_MAX);
		ck_assert_int_lt(strlen(de->d_name), sizeof(c->name[0]));
		snprintf(path, sizeof(path), "%s/%s", t->dir, de->d_name);
		size = lt_file_size(path);
		ck_assert_int_ge(size, 0);
		strcpy(c->name[c->n], de->d_name);
		c->data[c->n] = malloc(size ? (size_t)size : 1);
		c->len[c->n] = (size_t)size;
		fd = open(path, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pread(fd, c->data[c->n], (size_t)size, 0), size);
		close(fd);
		c->n++;
	}
	closedir(d);
}

/* Put the directory back exactly as saved (files made since are removed). */
static void dir_restore(const struct lt *t, const struct dir_copy *c)
{
	DIR *d = opendir(t->dir);
	struct dirent *de;
	char path[LT_PATH_MAX + 256];

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", t->dir, de->d_name);
		ck_assert_int_eq(unlink(path), 0);
	}
	closedir(d);
	for (int i = 0; i < c->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", t->dir, c->name[i]);
		lt_write_file(path, c->data[i], c->len[i]);
	}
}

static void dir_copy_free(struct dir_copy *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->data[i]);
	c->n = 0;
}

/* Scenario "torn last batch", exhaustively: the active segment cut at every
 * byte inside its last batch (and right at its start).  Each time the open
 * cuts back to the previous batch, everything before reads back intact, and
 * the next append gets exactly the offset the torn batch had. */
START_TEST(test_recover_torn_every_byte)
{
	struct lt t;
	struct dir_copy c;
	char path[LT_PATH_MAX];
	int64_t seg_base = torn_setup(&t), cut = tab.base[tab.n - 1];
	uint64_t from = tab.pos[tab.n - 1], to = from + tab.size[tab.n - 1];

	lt_seg_path(&t, path, seg_base, ".log");
	dir_save(&t, &c);
	t.cfg.flush_mode = LOG_FLUSH_OS; /* appends need no fdatasync: ~250 rounds */
	for (uint64_t at = from; at < to; at++) {
		struct lt_app *p;

		dir_restore(&t, &c);
		ck_assert_int_eq(truncate(path, (off_t)at), 0);
		lt_open(&t);
		ck_assert_msg(log_end_offset(t.log) == cut, "cut at %" PRIu64 ": end %" PRId64
			      ", expected %" PRId64, at, log_end_offset(t.log), cut);
		ck_assert_msg(lt_file_size(path) == (int64_t)from, "cut at %" PRIu64
			      ": file is %" PRId64 " bytes, expected %" PRIu64, at,
			      lt_file_size(path), from);
		ck_assert_str_eq(log_corruption(t.log), "");
		expect_readable(&t, 0, cut);
		expect_empty_read(&t, cut);
		p = lt_append(&t, 2, TS0, LOG_ACKS_ALL);
		lt_wait_ok(&t);
		ck_assert_int_eq(p->a.base_offset, cut);
		lt_read_range(&t, cut, cut + 2, UINT64_MAX);
		lt_crash(&t);
	}
	dir_copy_free(&c);
	lt_fini(&t);
}
END_TEST

/* Zeros or garbage after the last valid batch of the active segment (a
 * crash in the middle of a zero-ahead write or of an append whose length
 * reached the file but whose bytes did not): cut off, nothing else lost,
 * appends go on at the next offset. */
START_TEST(test_recover_trailing_junk)
{
	const int i = _i;
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t seg_base = torn_setup(&t);
	int64_t end = tab.base[tab.n - 1] + 4; /* the last batch has 4 records */
	uint64_t data_end = tab.pos[tab.n - 1] + tab.size[tab.n - 1];
	size_t len = 0, last_len = tab.size[tab.n - 1];
	uint8_t *junk = calloc(1, 300000), *last = malloc(last_len);
	uint32_t x = 12345;
	int fd;

	ck_assert_ptr_nonnull(junk);
	lt_seg_path(&t, path, seg_base, ".log");
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, last, last_len, (off_t)tab.pos[tab.n - 1]), (ssize_t)last_len);
	switch (i) {
	case 0: len = 1; break;                     /* zeros */
	case 1: len = BATCH_HEADER_SIZE; break;
	case 2: len = 300000; break;                /* past a zero-ahead chunk */
	case 3: len = 1; junk[0] = 0xff; break;     /* garbage */
	case 4: len = 4096; memset(junk, 0x5a, len); break;
	case 5:
		len = 10000;
		for (size_t k = 0; k < len; k++) {
			x = x * 1103515245u + 12345u;
			junk[k] = (uint8_t)(x >> 16);
		}
		break;
	case 6: /* the last batch again: valid CRC, but its offsets repeat */
		len = last_len;
		memcpy(junk, last, len);
		break;
	case 7: /* the next batch as it would be, with one bit of its body lost */
		len = last_len;
		memcpy(junk, last, len);
		batch_stamp_offset(junk, end);
		junk[len - 3] ^= 0x08;
		break;
	case 8: /* a batch header that looks right, then nothing */
		len = 4096;
		memcpy(junk, last, BATCH_HEADER_SIZE);
		batch_stamp_offset(junk, end);
		break;
	}
	ck_assert_int_eq(ftruncate(fd, (off_t)data_end), 0); /* drop zero-ahead */
	ck_assert_int_eq(pwrite(fd, junk, len, (off_t)data_end), (ssize_t)len);
	close(fd);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	ck_assert_int_eq(lt_file_size(path), (int64_t)data_end);
	ck_assert_str_eq(log_corruption(t.log), "");
	expect_readable(&t, 0, end);
	ck_assert_int_eq(lt_append_sync(&t, 3, TS0)->a.base_offset, end);
	expect_readable(&t, 0, end + 3);
	lt_close(&t);
	lt_open(&t);
	expect_readable(&t, 0, end + 3);
	free(junk);
	free(last);
	lt_fini(&t);
}
END_TEST

/* A checkpoint taken mid-segment: the scan starts there and still cuts a
 * torn tail past it. */
START_TEST(test_recover_after_checkpoint)
{
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t seg_base;
	int since;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	t.cfg.index_interval_bytes = 256;
	lt_open(&t);
	fill(&t, 25, 5, TS0);
	since = t.nev;
	log_checkpoint(t.log);
	lt_settle(&t);
	ck_assert_int_eq(lt_count(&t, since, "log.checkpoint.write"), 1);
	fill(&t, 10, 5, TS0 + 100000);
	lt_append_sync(&t, 4, TS0 + 200000);
	lt_crash(&t);
	tab_build(&t);
	seg_base = tab.seg_base[tab.nsegs - 1];
	ck_assert_int_eq(tab.seg[tab.n - 2], tab.nsegs - 1);
	lt_seg_path(&t, path, seg_base, ".log");
	ck_assert_int_eq(truncate(path, (off_t)(tab.pos[tab.n - 1] + 30)), 0);
	lt_open(&t);
	expect_torn_tail_cut(&t, seg_base);
	check_lookups(&t);
	lt_fini(&t);
}
END_TEST

/* A corrupt batch followed by valid ones (unclean shutdown): the open
 * succeeds, the batch is refused with -EUCLEAN and named, the batches
 * around it are served, and nothing is truncated. */
START_TEST(test_recover_corrupt_middle)
{
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t seg_base, size, end, bad_base, bad_next;
	int k;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 12, 4, TS0);
	end = log_end_offset(t.log);
	lt_crash(&t);
	tab_build(&t);
	ck_assert_int_eq(tab.nsegs, 1);
	seg_base = tab.seg_base[0];
	k = 6;
	bad_base = tab.base[k];
	bad_next = tab.base[k + 1];
	lt_seg_path(&t, path, seg_base, ".log");
	size = (int64_t)(tab.pos[tab.n - 1] + tab.size[tab.n - 1]); /* data; zeros may follow */
	lt_flip(path, tab.pos[k] + 70, 0x04); /* inside the first record */
	lt_open(&t);
	ck_assert_int_eq(lt_file_size(path), size);
	ck_assert_int_eq(log_end_offset(t.log), end);
	ck_assert_int_eq(log_high_watermark(t.log), end);
	for (int64_t off = bad_base; off < bad_next; off++)
		expect_read_err(&t, off, -EUCLEAN);
	/* Before it: served up to the corrupt batch, never into it. */
	expect_readable(&t, 0, bad_base);
	/* After it: served. */
	expect_readable(&t, bad_next, end);
	/* Appending goes on after the last valid batch. */
	ck_assert_int_eq(lt_append_sync(&t, 2, TS0)->a.base_offset, end);
	expect_readable(&t, bad_next, end + 2);
	expect_read_err(&t, bad_base, -EUCLEAN);
	ck_assert_int_eq((int64_t)log_size_bytes(t.log), size + (int64_t)t.apps[t.napps - 1]->a.len);
	lt_fini(&t);
}
END_TEST

/* log_corruption() names the file and the position of the corrupt batch
 * that a read of any of its offsets met. */
START_TEST(test_corruption_named)
{
	struct lt t;
	char path[LT_PATH_MAX], want[LT_PATH_MAX + 64];
	const int k = 6;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 12, 4, TS0);
	lt_crash(&t);
	tab_build(&t);
	lt_seg_path(&t, path, tab.seg_base[0], ".log");
	lt_flip(path, tab.pos[k] + 70, 0x04);
	lt_open(&t);
	ck_assert_str_eq(log_corruption(t.log), "");
	for (int64_t off = tab.base[k]; off < tab.base[k + 1]; off++) {
		expect_read_err(&t, off, -EUCLEAN);
		ck_assert_msg(strstr(log_corruption(t.log), path) != NULL,
			      "corruption: \"%s\"", log_corruption(t.log));
		snprintf(want, sizeof(want), "position %" PRIu64, tab.pos[k]);
		ck_assert_msg(strstr(log_corruption(t.log), want) != NULL,
			      "read of %" PRId64 ": corruption \"%s\" lacks \"%s\"", off,
			      log_corruption(t.log), want);
	}
	lt_fini(&t);
}
END_TEST

/* Bit rot found by no scan: after a clean shutdown nothing is scanned, and
 * a sealed segment is never scanned at all.  A read checks the CRCs of
 * what it is about to serve (once per range), so a flipped bit in a
 * sealed segment, in the last batch of a sealed segment, or in a batch of
 * the active segment followed by valid ones is refused with -EUCLEAN and
 * named, never served, never truncated, and remembered across restarts;
 * everything around it is served. */
START_TEST(test_read_verifies_crc)
{
	const int i = _i;
	struct lt t;
	char path[LT_PATH_MAX], want[64];
	int64_t end, size, bad_base, bad_next;
	int k = 0;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 60, 10, TS0);
	end = log_end_offset(t.log);
	lt_close(&t);
	tab_build(&t);
	ck_assert_int_ge(tab.nsegs, 3);
	if (i == 0) { /* a middle batch of the first (sealed) segment */
		k = 3;
	} else if (i == 1) { /* the last batch of the first segment */
		while (tab.seg[k + 1] == 0)
			k++;
	} else { /* a batch of the active segment with two valid ones after it */
		k = tab.n - 3;
		ck_assert_int_eq(tab.seg[k], tab.nsegs - 1);
	}
	bad_base = tab.base[k];
	bad_next = k + 1 < tab.n ? tab.base[k + 1] : end;
	lt_seg_path(&t, path, tab.seg_base[tab.seg[k]], ".log");
	size = lt_file_size(path);
	lt_flip(path, tab.pos[k] + tab.size[k] - 2, 0x20); /* inside the last record */
	lt_open(&t);
	ck_assert_str_eq(log_corruption(t.log), "");
	/* Unbounded reads from the start stop right before the bad batch. */
	expect_readable(&t, 0, bad_base);
	for (int64_t off = bad_base; off < bad_next; off++) {
		expect_read_err(&t, off, -EUCLEAN);
		ck_assert_msg(strstr(log_corruption(t.log), path) != NULL, "\"%s\" lacks %s",
			      log_corruption(t.log), path);
		snprintf(want, sizeof(want), "position %" PRIu64, tab.pos[k]);
		ck_assert_msg(strstr(log_corruption(t.log), want) != NULL, "\"%s\" lacks \"%s\"",
			      log_corruption(t.log), want);
	}
	expect_readable(&t, bad_next, end);
	ck_assert_int_eq(lt_file_size(path), size);
	ck_assert_int_eq(log_end_offset(t.log), end);
	ck_assert_int_eq(lt_append_sync(&t, 2, TS0)->a.base_offset, end);
	lt_close(&t);
	/* Remembered by the clean restart, which scans nothing. */
	lt_open(&t);
	expect_read_err(&t, bad_base, -EUCLEAN);
	expect_readable(&t, 0, bad_base);
	expect_readable(&t, bad_next, end + 2);
	ck_assert_int_eq(lt_file_size(path), size + (i == 2 ? (int64_t)t.apps[t.napps - 1]->a.len : 0));
	lt_fini(&t);
}
END_TEST

/* A corrupt batch found by a recovery scan is still refused after a later
 * clean shutdown and restart (which does not scan again). */
START_TEST(test_corruption_remembered_after_clean_restart)
{
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t end;
	int k = 5;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 12, 4, TS0);
	end = log_end_offset(t.log);
	lt_crash(&t);
	tab_build(&t);
	lt_seg_path(&t, path, tab.seg_base[0], ".log");
	lt_flip(path, tab.pos[k] + 70, 0x04);
	lt_open(&t);
	expect_read_err(&t, tab.base[k], -EUCLEAN);
	lt_close(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_read_err(&t, tab.base[k], -EUCLEAN);
	expect_readable(&t, tab.base[k + 1], end);
	lt_fini(&t);
}
END_TEST

/* Garbage between two batches, the batch after it carrying on at the
 * expected offset: a corrupt range that hides no offset.  Reads skip it,
 * also after a clean restart, which loads the range from the `corrupt`
 * file instead of scanning (found by tests/fuzz recovery: the range was
 * dropped on load and its bytes served inside a slice). */
START_TEST(test_corruption_hiding_no_offset_remembered)
{
	struct lt t;
	char path[LT_PATH_MAX];
	uint8_t garbage[40];
	uint8_t *buf;
	int64_t end, size;
	int fd, k = 5;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 12, 4, TS0);
	end = log_end_offset(t.log);
	lt_crash(&t);
	tab_build(&t);
	lt_seg_path(&t, path, tab.seg_base[0], ".log");
	size = (int64_t)(tab.pos[tab.n - 1] + tab.size[tab.n - 1]);
	buf = malloc((size_t)size);
	ck_assert_ptr_nonnull(buf);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, (size_t)size, 0), size);
	memset(garbage, 0xa5, sizeof(garbage));
	ck_assert_int_eq(pwrite(fd, garbage, sizeof(garbage), (off_t)tab.pos[k]), sizeof(garbage));
	ck_assert_int_eq(pwrite(fd, buf + tab.pos[k], (size_t)size - tab.pos[k],
				(off_t)tab.pos[k] + (off_t)sizeof(garbage)),
			 size - (int64_t)tab.pos[k]);
	ck_assert_int_eq(ftruncate(fd, size + (off_t)sizeof(garbage)), 0);
	close(fd);
	free(buf);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	lt_close(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	lt_fini(&t);
}
END_TEST

/* A recovery scan that drops one known corrupt range (past its start) and
 * finds another saves the new list although its length is the same, so a
 * clean restart refuses the new range and serves the old one (found by
 * tests/fuzz recovery: the `corrupt` file was rewritten only when the
 * number of ranges changed). */
START_TEST(test_corruption_list_saved_when_replaced)
{
	struct lt t;
	char path[LT_PATH_MAX], text[128];
	int64_t end;
	int stale = 3, real = 7;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 12, 4, TS0);
	end = log_end_offset(t.log);
	lt_crash(&t);
	tab_build(&t);
	/* A stale record naming a batch that is fine, and a real corruption. */
	snprintf(path, sizeof(path), "%s/corrupt", t.dir);
	snprintf(text, sizeof(text), "%" PRId64 " %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64 "\n",
		 tab.seg_base[0], tab.pos[stale], tab.pos[stale + 1], tab.base[stale],
		 tab.base[stale + 1]);
	lt_write_file(path, text, strlen(text));
	lt_seg_path(&t, path, tab.seg_base[0], ".log");
	lt_flip(path, tab.pos[real] + 70, 0x04);
	lt_open(&t);
	expect_read_err(&t, tab.base[real], -EUCLEAN);
	expect_readable(&t, 0, tab.base[real]);
	lt_close(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_read_err(&t, tab.base[real], -EUCLEAN);
	expect_readable(&t, 0, tab.base[real]);
	expect_readable(&t, tab.base[real + 1], end);
	lt_fini(&t);
}
END_TEST

/* Lines of the partition's `corrupt` file that record a range. */
static int corrupt_lines(const struct lt *t)
{
	char path[LT_PATH_MAX], line[256];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/corrupt", t->dir);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += line[0] != '#';
	fclose(f);
	return n;
}

/* Reads find two corrupt batches of a sealed segment after a clean restart
 * (which scans nothing), the later one first.  Each is recorded once: the
 * ranges stay sorted by position, so a slice from before both stops at the
 * first instead of running into it and finding it again (the `corrupt`
 * file grew by a duplicate line at every such read). */
START_TEST(test_corruption_found_out_of_order)
{
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t end;
	int k1 = 3, k2 = 8;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 60, 10, TS0);
	end = log_end_offset(t.log);
	lt_close(&t);
	tab_build(&t);
	ck_assert_int_eq(tab.seg[k2 + 1], 0); /* both in the sealed first segment */
	lt_seg_path(&t, path, tab.seg_base[0], ".log");
	lt_flip(path, tab.pos[k1] + tab.size[k1] - 2, 0x20);
	lt_flip(path, tab.pos[k2] + tab.size[k2] - 2, 0x20);
	lt_open(&t);
	expect_read_err(&t, tab.base[k2], -EUCLEAN);
	for (int pass = 0; pass < 3; pass++) {
		lt_read_range(&t, 0, tab.base[k1], UINT64_MAX);
		expect_read_err(&t, tab.base[k1], -EUCLEAN);
		lt_read_range(&t, tab.base[k1 - 1], tab.base[k1], UINT64_MAX);
		lt_read_range(&t, tab.base[k1 + 1], tab.base[k2], UINT64_MAX);
		expect_read_err(&t, tab.base[k2], -EUCLEAN);
		expect_readable(&t, tab.base[k2 + 1], end);
	}
	ck_assert_int_eq(corrupt_lines(&t), 2);
	lt_fini(&t);
}
END_TEST

/* A crash just after a roll, before anything reached the new segment: it
 * is an empty file.  The open keeps the offsets and appending goes on. */
START_TEST(test_crash_right_after_roll)
{
	struct lt t;
	struct lt_app *p = NULL;
	char path[LT_PATH_MAX];
	int64_t end;

	lt_init(&t);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	while (log_segment_count(t.log) < 2)
		lt_append_sync(&t, 3, TS0);
	for (;;) { /* the append that rolls stays pending */
		p = lt_append(&t, 3, TS0, LOG_ACKS_ALL);
		if (log_segment_count(t.log) == 3)
			break;
		lt_wait_ok(&t);
	}
	lt_crash(&t);
	ck_assert_int_eq(p->calls, 1);
	ck_assert_int_eq(p->res, -ECANCELED);
	p->accepted = false;
	end = p->a.base_offset;
	lt_seg_path(&t, path, end, ".log");
	ck_assert_int_le(lt_file_size(path), 16);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	p = lt_append_sync(&t, 2, TS0);
	ck_assert_int_eq(p->a.base_offset, end);
	expect_readable(&t, 0, end + 2);
	lt_fini(&t);
}
END_TEST

/* A crash after a roll that lost the unwritten tail of the old segment
 * while the new segment's (empty) file exists: offsets stay dense, with
 * no hole between the old segment's last batch and the new base. */
START_TEST(test_crash_after_roll_no_hole)
{
	struct lt t;
	struct lt_app *first = NULL;
	int64_t end;

	lt_init(&t);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	while (log_segment_count(t.log) < 2)
		lt_append_sync(&t, 3, TS0);
	while (log_segment_count(t.log) < 3) { /* pending in segment 1, then a roll */
		struct lt_app *p = lt_append(&t, 3, TS0, LOG_ACKS_ALL);
		if (first == NULL)
			first = p;
	}
	ck_assert_int_ne(t.apps[t.napps - 1]->a.base_offset, first->a.base_offset);
	lt_crash(&t);
	for (int i = 0; i < t.napps; i++) {
		if (t.apps[i]->res == -ECANCELED)
			t.apps[i]->accepted = false;
	}
	end = first->a.base_offset; /* nothing from `first` on was written */
	lt_open(&t);
	expect_readable(&t, 0, log_end_offset(t.log));
	ck_assert_int_eq(log_end_offset(t.log), end);
	ck_assert_int_eq(lt_append_sync(&t, 2, TS0)->a.base_offset, end);
	expect_readable(&t, 0, end + 2);
	lt_fini(&t);
}
END_TEST

/* A crash in the loop turn that rolled twice: two new segment files exist,
 * neither written (no header).  The open succeeds, offsets stay dense. */
START_TEST(test_crash_after_two_rolls)
{
	struct lt t;
	struct lt_app *first = NULL;
	int64_t end;

	lt_init(&t);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	lt_append_sync(&t, 3, TS0);
	end = log_end_offset(t.log);
	while (log_segment_count(t.log) < 3) {
		struct lt_app *p = lt_append(&t, 12, TS0, LOG_ACKS_ALL);
		if (first == NULL)
			first = p;
	}
	ck_assert_int_eq(first->a.base_offset, end);
	lt_crash(&t);
	for (int i = 1; i < t.napps; i++) {
		ck_assert_int_eq(t.apps[i]->res, -ECANCELED);
		t.apps[i]->accepted = false;
	}
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	ck_assert_int_eq(lt_append_sync(&t, 2, TS0)->a.base_offset, end);
	expect_readable(&t, 0, end + 2);
	lt_fini(&t);
}
END_TEST

/* Crash with writes and fsyncs in flight: every append gets exactly one
 * callback, and what was acknowledged survives. */
START_TEST(test_crash_with_io_in_flight)
{
	struct lt t;
	int64_t acked = 0;

	lt_init(&t);
	t.cfg.segment_bytes = 2048;
	lt_open(&t);
	for (int i = 0; i < 30; i++)
		lt_append(&t, 1 + i % 3, TS0, i % 2 ? LOG_ACKS_ALL : LOG_ACKS_LEADER);
	event_base_loop(t.base, EVLOOP_NONBLOCK); /* submit the writes */
	lt_crash(&t);
	for (int i = 0; i < t.napps; i++) {
		struct lt_app *p = t.apps[i];
		ck_assert_int_eq(p->calls, 1);
		ck_assert_msg(p->res == 0 || p->res == -ECANCELED, "res %d", p->res);
		if (p->res == 0 && p->a.acks == LOG_ACKS_ALL)
			acked = p->a.base_offset + p->nrec;
		p->accepted = false;
	}
	lt_open(&t);
	ck_assert_int_ge(log_end_offset(t.log), acked);
	expect_readable(&t, 0, log_end_offset(t.log));
	lt_append_sync(&t, 1, TS0);
	lt_fini(&t);
}
END_TEST

/* The active segment cut back to its file header, or into it. */
START_TEST(test_recover_active_header_only)
{
	const off_t sizes[] = { 16, 7, 0 };
	const int i = _i;
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t base;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 40, 10, TS0);
	lt_crash(&t);
	tab_build(&t);
	ck_assert_int_ge(tab.nsegs, 2);
	base = tab.seg_base[tab.nsegs - 1];
	lt_seg_path(&t, path, base, ".log");
	ck_assert_int_eq(truncate(path, sizes[i]), 0);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), base);
	expect_readable(&t, 0, base);
	ck_assert_int_eq(lt_append_sync(&t, 2, TS0)->a.base_offset, base);
	expect_readable(&t, 0, base + 2);
	lt_fini(&t);
}
END_TEST

/* Without a usable checkpoint file the open scans everything. */
START_TEST(test_recover_without_checkpoint)
{
	const int i = _i;
	struct lt t;
	char path[LT_PATH_MAX];
	uint8_t junk[8192];
	int64_t end;

	memset(junk, 0x5a, sizeof(junk));
	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 40, 10, TS0);
	end = log_end_offset(t.log);
	if (i == 0)
		lt_close(&t);
	else
		lt_crash(&t);
	snprintf(path, sizeof(path), "%s/checkpoint", t.dir);
	ck_assert(lt_exists(path));
	if (i < 2)
		lt_write_file(path, junk, sizeof(junk));
	else
		ck_assert_int_eq(unlink(path), 0);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	check_lookups(&t);
	ck_assert_int_eq(lt_append_sync(&t, 2, TS0)->a.base_offset, end);
	lt_fini(&t);
}
END_TEST

/* A bad last batch in a sealed segment (found by a full scan) is not a torn
 * tail: nothing is cut, its offsets are refused, later segments served. */
START_TEST(test_recover_sealed_segment_bad_tail)
{
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t end, size;
	int last0;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 70, 10, TS0);
	end = log_end_offset(t.log);
	lt_crash(&t);
	tab_build(&t);
	ck_assert_int_ge(tab.nsegs, 3);
	for (last0 = 0; tab.seg[last0 + 1] == 0; last0++)
		;
	lt_seg_path(&t, path, tab.seg_base[0], ".log");
	size = lt_file_size(path);
	lt_flip(path, tab.pos[last0] + 12, 0xff);
	lt_open(&t);
	ck_assert_int_eq(lt_file_size(path), size);
	ck_assert_int_eq(log_end_offset(t.log), end);
	ck_assert_int_eq(log_segment_count(t.log), tab.nsegs);
	expect_readable(&t, 0, tab.base[last0]);
	for (int64_t off = tab.base[last0]; off < tab.seg_base[1]; off++)
		expect_read_err(&t, off, -EUCLEAN);
	expect_readable(&t, tab.seg_base[1], end);
	lt_fini(&t);
}
END_TEST

/* A log of 3+ small segments, crashed, with `tab` built from its files. */
static void crash_with_segments(struct lt *t)
{
	lt_init(t);
	t->cfg.segment_bytes = SEG_SMALL;
	lt_open(t);
	fill(t, 70, 10, TS0);
	lt_crash(t);
	tab_build(t);
	ck_assert_int_ge(tab.nsegs, 3);
}

/* Rename the last segment's .log to `base`, cut to 1 byte (shorter than a
 * header), and remove its index files. */
static void rename_last_segment(struct lt *t, int64_t base)
{
	char from[LT_PATH_MAX], to[LT_PATH_MAX];
	int64_t last = tab.seg_base[tab.nsegs - 1];

	lt_seg_path(t, from, last, ".log");
	lt_seg_path(t, to, base, ".log");
	ck_assert_int_eq(rename(from, to), 0);
	ck_assert_int_eq(truncate(to, 1), 0);
	for (int k = 0; k < 2; k++) {
		lt_seg_path(t, from, last, k ? ".timeindex" : ".index");
		unlink(from);
	}
}

/* The last segment's name puts its base inside the sealed segment before
 * it (and its file is too short for a header): the batches from the one
 * that holds that base on are refused, not served as offsets that the
 * next segment starts again.  Found by fuzz_recovery. */
START_TEST(test_recover_next_base_inside_sealed)
{
	struct lt t;
	int64_t base;
	int j, prev;

	crash_with_segments(&t);
	prev = tab.nsegs - 2;
	for (j = tab.n - 1; tab.seg[j] != prev; j--)
		;
	/* Not the segment's last batch (some lie after it), and of 2+ records,
	 * so that the new base falls inside it. */
	do
		j--;
	while (tab.base[j + 1] - tab.base[j] < 2);
	ck_assert_int_eq(tab.seg[j], prev);
	base = tab.base[j] + 1;
	rename_last_segment(&t, base);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), base);
	expect_readable(&t, 0, tab.base[j]);
	expect_read_err(&t, tab.base[j], -EUCLEAN);
	ck_assert_int_eq(lt_append_sync(&t, 2, TS0)->a.base_offset, base);
	lt_fini(&t);
}
END_TEST

/* A sealed segment whose batches stop short of the next segment's base
 * (the last segment renamed past the end): the offsets between are lost.
 * A read of them is refused, also after a clean restart; it is neither
 * served as a gap nor skipped.  Found by fuzz_recovery. */
START_TEST(test_recover_gap_before_next_segment)
{
	struct lt t;
	int64_t end, base;

	crash_with_segments(&t);
	end = tab.seg_base[tab.nsegs - 1]; /* where the sealed segment ends */
	base = end + 50;
	rename_last_segment(&t, base);
	for (int k = 0; k < 2; k++) {
		lt_open(&t);
		ck_assert_int_eq(log_end_offset(t.log), base);
		expect_readable(&t, 0, end);
		expect_read_err(&t, end, -EUCLEAN);
		expect_read_err(&t, base - 1, -EUCLEAN);
		ck_assert_ptr_nonnull(strstr(log_corruption(t.log), "offsets"));
		lt_close(&t); /* clean: the next open reads the range from `corrupt` */
	}
	lt_open(&t);
	ck_assert_int_eq(lt_append_sync(&t, 2, TS0)->a.base_offset, base);
	expect_readable(&t, base, base + 2);
	lt_fini(&t);
}
END_TEST

/* A clean open trusts the active segment's .timeindex when its entry count
 * matches the checkpoint.  One whose last entry points past the last
 * offset entry is dropped from memory at the next checkpoint, which then
 * writes the file again whole (it once sized that write by a negative
 * count: 48 GB).  Found by fuzz_recovery. */
START_TEST(test_timeindex_past_index_rewritten)
{
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t end, size;
	uint8_t rel[4] = { 0xff, 0xff, 0xff, 0x00 };
	int fd;

	lt_init(&t);
	t.cfg.index_interval_bytes = 512;
	lt_open(&t);
	fill(&t, 40, 8, TS0);
	end = log_end_offset(t.log);
	lt_close(&t);
	lt_seg_path(&t, path, 0, ".timeindex");
	size = lt_file_size(path);
	ck_assert_int_ge(size, 16 + 2 * 12); /* a header, 2+ entries */
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, rel, sizeof(rel), size - 4), 4);
	close(fd);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	lt_close(&t);
	ck_assert_int_lt(lt_file_size(path), size);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	ck_assert_int_eq(offset_for_time(&t, TS0 + 100 * 39), end - 4);
	lt_fini(&t);
}
END_TEST

/* Clean shutdown: the next open trusts the checkpoint and scans nothing,
 * so a batch that a scan would reject (bad CRC of the last batch, which a
 * scan would cut as a torn tail) is neither cut nor noticed. */
START_TEST(test_clean_open_skips_scan)
{
	struct lt t;
	char path[LT_PATH_MAX];
	int64_t end, size;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 10, 5, TS0);
	end = log_end_offset(t.log);
	lt_close(&t);
	tab_build(&t);
	lt_seg_path(&t, path, tab.seg_base[0], ".log");
	size = lt_file_size(path);
	lt_flip(path, tab.pos[tab.n - 1] + 12, 0xff); /* crc */
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	ck_assert_int_eq(lt_file_size(path), size);
	ck_assert_str_eq(log_corruption(t.log), "");
	lt_fini(&t);
}
END_TEST

/* The contrast: the same damage after a crash is found by the scan. */
START_TEST(test_unclean_open_scans)
{
	struct lt t;
	char path[LT_PATH_MAX];

	lt_init(&t);
	lt_open(&t);
	fill(&t, 10, 5, TS0);
	lt_crash(&t);
	tab_build(&t);
	lt_seg_path(&t, path, tab.seg_base[0], ".log");
	lt_flip(path, tab.pos[tab.n - 1] + 12, 0xff);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), tab.base[tab.n - 1]);
	ck_assert_int_eq(lt_file_size(path), (int64_t)tab.pos[tab.n - 1]);
	lt_fini(&t);
}
END_TEST

/* --- durability ------------------------------------------------------------------- */

static int find_event(const struct lt *t, int from, const char *what)
{
	for (int i = from; i < t->nev && i < LT_MAX_EVENTS; i++)
		if (strcmp(t->ev[i].what, what) == 0)
			return i;
	return -1;
}

/* acks=all under flush always: write, then fdatasync, then the callback;
 * hw and the durable offset move only with the fsync. */
START_TEST(test_acks_all_after_fsync)
{
	struct lt t;

	lt_init(&t);
	lt_open(&t);
	for (int round = 0; round < 3; round++) {
		int64_t before = log_end_offset(t.log);
		int since = t.nev, w, f, c;
		struct lt_app *p = lt_append(&t, 3, TS0, LOG_ACKS_ALL);

		ck_assert_int_eq(log_high_watermark(t.log), before);
		ck_assert_int_eq(log_durable_offset(t.log), before);
		lt_wait_ok(&t);
		w = find_event(&t, since, "log.write");
		f = find_event(&t, since, "log.fsync");
		c = find_event(&t, since, "append.cb");
		ck_assert_int_ge(w, 0);
		ck_assert_msg(f > w, "no fsync after the write (write %d, fsync %d)", w, f);
		ck_assert_msg(c > f, "callback (%d) before the fsync (%d) completed", c, f);
		ck_assert_int_eq(t.ev[w].res, (int)p->a.len);
		ck_assert_int_eq(t.ev[f].res, 0);
		/* Nothing visible or durable before the fsync completed. */
		for (int e = since; e <= f; e++) {
			ck_assert_int_eq(t.ev[e].hw, before);
			ck_assert_int_eq(t.ev[e].durable, before);
		}
		ck_assert_int_eq(t.ev[c].hw, before + 3);
		ck_assert_int_eq(t.ev[c].durable, before + 3);
	}
	lt_fini(&t);
}
END_TEST

/* flush.mode=os: acks=all completes after the write, with no fsync. */
START_TEST(test_flush_os_acks_after_write)
{
	struct lt t;
	int since, w, c;

	lt_init(&t);
	t.cfg.flush_mode = LOG_FLUSH_OS;
	lt_open(&t);
	since = t.nev;
	lt_append(&t, 3, TS0, LOG_ACKS_ALL);
	lt_append(&t, 2, TS0, LOG_ACKS_ALL);
	lt_wait_ok(&t);
	w = find_event(&t, since, "log.write");
	c = find_event(&t, since, "append.cb");
	ck_assert_int_ge(w, 0);
	ck_assert_int_gt(c, w);
	ck_assert_int_eq(t.ev[c].hw, 5);
	lt_settle(&t);
	ck_assert_int_eq(lt_count(&t, since, "log.fsync"), 0);
	ck_assert_int_eq(log_high_watermark(t.log), 5);
	ck_assert_int_eq(log_durable_offset(t.log), 0);
	expect_readable(&t, 0, 5);
	lt_fini(&t);
}
END_TEST

/* 64 acks=all appends in one loop turn share one write and one fsync. */
START_TEST(test_group_commit)
{
	struct lt t;
	int since;

	lt_init(&t);
	lt_open(&t);
	since = t.nev;
	for (int i = 0; i < 64; i++)
		lt_append(&t, 1 + i % 3, TS0 + i, LOG_ACKS_ALL);
	lt_wait_ok(&t);
	ck_assert_int_le(lt_count(&t, since, "log.fsync"), 4);
	ck_assert_int_ge(lt_count(&t, since, "log.fsync"), 1);
	ck_assert_int_le(lt_count(&t, since, "log.write"), 4);
	for (int i = 1; i < 64; i++) /* callbacks in offset order */
		ck_assert_int_gt(t.apps[i]->seq, t.apps[i - 1]->seq);
	ck_assert_int_eq(log_durable_offset(t.log), log_end_offset(t.log));
	expect_readable(&t, 0, log_end_offset(t.log));
	lt_fini(&t);
}
END_TEST

/* Until its write (and here its fsync) completed, an append is invisible:
 * not readable, not found by time. */
START_TEST(test_unacked_not_visible)
{
	struct lt t;
	struct lt_app *p;

	lt_init(&t);
	lt_open(&t);
	ck_assert_int_eq(offset_for_time(&t, 0), 0); /* empty log: the end */
	expect_empty_read(&t, 0);
	lt_append_sync(&t, 2, 100);
	p = lt_append(&t, 3, 500, LOG_ACKS_ALL);
	ck_assert_int_eq(log_end_offset(t.log), 5);
	ck_assert_int_eq(log_high_watermark(t.log), 2);
	expect_empty_read(&t, 2);
	expect_read_err(&t, 3, -ERANGE);
	expect_read_err(&t, 4, -ERANGE);
	ck_assert_int_eq(offset_for_time(&t, 500), 2);
	ck_assert_int_eq(offset_for_time(&t, 1000), 2);
	lt_wait_ok(&t);
	ck_assert_int_eq(p->a.base_offset, 2);
	ck_assert_int_eq(offset_for_time(&t, 500), 2);
	ck_assert_int_eq(offset_for_time(&t, 501), 3);
	ck_assert_int_eq(offset_for_time(&t, 1000), 5);
	expect_readable(&t, 0, 5);
	lt_fini(&t);
}
END_TEST

static void on_hw(struct log *l, void *arg)
{
	struct lt *t = arg;

	lt_record(t, "hw", (int)log_high_watermark(l));
}

/* The hw callback fires when the high watermark advances, with the new
 * value already in place, before the append is acknowledged. */
START_TEST(test_hw_callback)
{
	struct lt t;
	int since, h, c;

	lt_init(&t);
	lt_open(&t);
	log_set_hw_cb(t.log, on_hw, &t);
	since = t.nev;
	lt_append_sync(&t, 4, TS0);
	h = find_event(&t, since, "hw");
	c = find_event(&t, since, "append.cb");
	ck_assert_int_ge(h, 0);
	ck_assert_int_eq(t.ev[h].res, 4);
	ck_assert_int_gt(c, h);
	since = t.nev;
	lt_settle(&t);
	ck_assert_int_eq(lt_count(&t, since, "hw"), 0); /* nothing moved */
	lt_append_sync(&t, 1, TS0);
	ck_assert_int_eq(lt_count(&t, since, "hw"), 1);
	ck_assert_int_eq(t.ev[find_event(&t, since, "hw")].res, 5);
	lt_fini(&t);
}
END_TEST

/* acks=leader completes once written: no fsync is waited for. */
START_TEST(test_acks_leader_after_write)
{
	struct lt t;
	int since, w, c;

	lt_init(&t);
	lt_open(&t);
	since = t.nev;
	lt_append(&t, 2, TS0, LOG_ACKS_LEADER);
	lt_wait_ok(&t);
	w = find_event(&t, since, "log.write");
	c = find_event(&t, since, "append.cb");
	ck_assert_int_ge(w, 0);
	ck_assert_int_gt(c, w);
	/* flush.mode=always still syncs (linked behind the write), but the
	 * append did not wait for it */
	ck_assert(lt_count(&t, since, "log.fsync") == 0 ||
		  find_event(&t, since, "log.fsync") > c);
	lt_fini(&t);
}
END_TEST

/* flush.mode=interval: acks=all completes after the write; an fdatasync
 * follows within flush.interval.ms and moves the durable offset. */
START_TEST(test_flush_interval_timer)
{
	struct lt t;
	int since;

	lt_init(&t);
	t.cfg.flush_mode = LOG_FLUSH_INTERVAL;
	t.cfg.flush_interval_ms = 20;
	t.cfg.flush_bytes = -1;
	lt_open(&t);
	since = t.nev;
	lt_append(&t, 2, TS0, LOG_ACKS_ALL);
	lt_wait_ok(&t);
	ck_assert_int_eq(log_high_watermark(t.log), 2);
	LT_RUN_UNTIL(&t, log_durable_offset(t.log) == 2);
	ck_assert_int_ge(lt_count(&t, since, "log.fsync"), 1);
	expect_readable(&t, 0, 2);
	lt_fini(&t);
}
END_TEST

/* flush.mode=interval with flush.bytes: an fdatasync as soon as that many
 * bytes are unsynced, not before. */
START_TEST(test_flush_bytes)
{
	struct lt t;
	int since;
	size_t bytes = 0;

	lt_init(&t);
	t.cfg.flush_mode = LOG_FLUSH_INTERVAL;
	t.cfg.flush_interval_ms = 24 * 3600 * 1000;
	t.cfg.flush_bytes = 2000;
	lt_open(&t);
	since = t.nev;
	while (bytes + 300 < 2000) {
		bytes += lt_append(&t, 2, TS0, LOG_ACKS_LEADER)->a.len;
		lt_wait_ok(&t);
	}
	lt_settle(&t);
	ck_assert_int_eq(lt_count(&t, since, "log.fsync"), 0);
	ck_assert_int_eq(log_durable_offset(t.log), 0);
	while (bytes < 2000) {
		bytes += lt_append(&t, 2, TS0, LOG_ACKS_LEADER)->a.len;
		lt_wait_ok(&t);
	}
	LT_RUN_UNTIL(&t, log_durable_offset(t.log) == log_end_offset(t.log));
	ck_assert_int_eq(lt_count(&t, since, "log.fsync"), 1);
	lt_fini(&t);
}
END_TEST

/* After an I/O error: the waiting appends fail, the log is read-only, what
 * was durable before stays readable, nothing after it is served. */
static void io_error_case(const char *what)
{
	struct lt t;
	struct lt_app *b, *c, *d;
	int64_t durable;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 5, 5, TS0);
	durable = log_end_offset(t.log);
	lt_inject(&t, what, 0, 1, -EIO);
	b = lt_append(&t, 2, TS0, LOG_ACKS_ALL);
	c = lt_append(&t, 3, TS0, LOG_ACKS_ALL);
	LT_RUN_UNTIL(&t, b->calls > 0 && c->calls > 0);
	ck_assert_int_eq(t.fail_left, 0);
	ck_assert_int_lt(b->res, 0);
	ck_assert_int_lt(c->res, 0);
	ck_assert_int_lt(log_error(t.log), 0);
	d = lt_app_new(&t, 1, TS0, LOG_ACKS_ALL);
	ck_assert_int_eq(lt_try_append(&t, d), -EROFS);
	lt_settle(&t);
	ck_assert_int_eq(b->calls, 1);
	ck_assert_int_eq(c->calls, 1);
	ck_assert_int_eq(d->calls, 0);
	ck_assert_int_eq(log_high_watermark(t.log), durable);
	ck_assert_int_eq(log_durable_offset(t.log), durable);
	expect_readable(&t, 0, durable);
	expect_empty_read(&t, durable);
	ck_assert_int_lt(log_close(t.log), 0);
	t.log = NULL;
	lt_fini(&t);
}

START_TEST(test_fsync_error)
{
	io_error_case("log.fsync");
}
END_TEST

START_TEST(test_write_error)
{
	io_error_case("log.write");
}
END_TEST

/* A write error while a second write (into the next segment) is in
 * flight: every append still gets exactly one callback. */
START_TEST(test_write_error_two_writes)
{
	struct lt t;
	int since;

	lt_init(&t);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	lt_append_sync(&t, 1, TS0);
	since = t.nev;
	lt_inject(&t, "log.write", 0, 1, -EIO);
	for (int i = 0; i < 12; i++)
		lt_append(&t, 3, TS0, LOG_ACKS_ALL);
	ck_assert_int_ge(log_segment_count(t.log), 2);
	LT_RUN_UNTIL(&t, lt_all_called(&t));
	lt_settle(&t);
	ck_assert_int_ge(lt_count(&t, since, "log.write"), 2);
	for (int i = 1; i < t.napps; i++) {
		ck_assert_int_eq(t.apps[i]->calls, 1);
		ck_assert_int_lt(t.apps[i]->res, 0);
	}
	ck_assert_int_lt(log_error(t.log), 0);
	ck_assert_int_eq(log_high_watermark(t.log), 1);
	expect_readable(&t, 0, 1);
	lt_fini(&t);
}
END_TEST

/* --- index files ------------------------------------------------------------------ */

static void index_setup(struct lt *t)
{
	lt_init(t);
	t->cfg.segment_bytes = SEG_SMALL;
	t->cfg.index_interval_bytes = 300;
	lt_open(t);
	fill(t, 120, 10, TS0);
	ck_assert_int_ge(log_segment_count(t->log), 5);
	lt_close(t);
	tab_build(t);
}

START_TEST(test_index_files_missing)
{
	struct lt t;
	char path[LT_PATH_MAX];

	index_setup(&t);
	for (int s = 0; s < tab.nsegs; s += 2) {
		lt_seg_path(&t, path, tab.seg_base[s], ".index");
		ck_assert_int_eq(unlink(path), 0);
		lt_seg_path(&t, path, tab.seg_base[s], ".timeindex");
		ck_assert_int_eq(unlink(path), 0);
	}
	lt_seg_path(&t, path, tab.seg_base[1], ".timeindex");
	ck_assert_int_eq(unlink(path), 0);
	lt_open(&t);
	check_lookups(&t);
	check_time_lookups(&t);
	/* Rebuilt and saved again. */
	lt_seg_path(&t, path, tab.seg_base[0], ".index");
	ck_assert(lt_exists(path));
	lt_fini(&t);
}
END_TEST

START_TEST(test_index_files_garbage)
{
	struct lt t;
	char path[LT_PATH_MAX];
	uint8_t junk[1000];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (uint8_t)(x >> 16);
	}
	index_setup(&t);
	ck_assert_int_ge(tab.nsegs, 5);
	/* 0: random bytes; 1: a valid header, random entries; 2: short
	 * header; 3: a valid header and an odd tail; both files each time. */
	for (int s = 0; s < 4; s++) {
		const char *ext[2] = { ".index", ".timeindex" };
		for (int e = 0; e < 2; e++) {
			uint8_t buf[1000];
			size_t len = sizeof(buf);
			int fd;

			lt_seg_path(&t, path, tab.seg_base[s], ext[e]);
			memcpy(buf, junk, sizeof(buf));
			if (s == 1 || s == 3) {
				fd = open(path, O_RDONLY);
				ck_assert_int_ge(fd, 0);
				ck_assert_int_eq(pread(fd, buf, 16, 0), 16);
				close(fd);
			}
			if (s == 2)
				len = 7;
			if (s == 3) {
				len = (size_t)lt_file_size(path) + 5;
				ck_assert_int_le(len, sizeof(buf));
				fd = open(path, O_RDONLY);
				ck_assert_int_eq(pread(fd, buf, len - 5, 0), (ssize_t)len - 5);
				close(fd);
			}
			lt_write_file(path, buf, len);
		}
	}
	lt_open(&t);
	check_lookups(&t);
	check_time_lookups(&t);
	lt_fini(&t);
}
END_TEST

/* An index that passes the structural checks (header, increasing entries
 * inside the file) but points between batches must not break reads. */
START_TEST(test_index_entries_point_mid_batch)
{
	struct lt t;
	char path[LT_PATH_MAX];
	uint8_t buf[16 + 8 * 8];
	int fd;

	index_setup(&t);
	lt_seg_path(&t, path, tab.seg_base[0], ".index");
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, 16, 0), 16);
	close(fd);
	for (int i = 0; i < 8; i++) { /* rel 2i, pos 16 + 1 + 300 i */
		uint32_t rel = (uint32_t)(2 * i), pos = (uint32_t)(17 + 300 * i);
		for (int b = 0; b < 4; b++) {
			buf[16 + 8 * i + b] = (uint8_t)(rel >> (8 * b));
			buf[16 + 8 * i + 4 + b] = (uint8_t)(pos >> (8 * b));
		}
	}
	lt_write_file(path, buf, sizeof(buf));
	lt_open(&t);
	check_lookups(&t);
	lt_fini(&t);
}
END_TEST

/* The same for the active segment, whose index a clean open loads. */
START_TEST(test_active_index_points_mid_batch)
{
	struct lt t;
	char path[LT_PATH_MAX];
	uint8_t buf[4096];
	int64_t len;
	int fd;

	lt_init(&t);
	t.cfg.index_interval_bytes = 300;
	lt_open(&t);
	fill(&t, 40, 10, TS0);
	lt_close(&t);
	lt_seg_path(&t, path, 0, ".index");
	len = lt_file_size(path);
	ck_assert_int_gt(len, 16 + 3 * 8);
	ck_assert_int_le(len, (int64_t)sizeof(buf));
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	for (int64_t e = 1; 16 + 8 * e < len; e++) { /* every entry but the first, pos + 1 */
		uint8_t *p = buf + 16 + 8 * e + 4;
		uint32_t pos = (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24) + 1;
		for (int b = 0; b < 4; b++)
			p[b] = (uint8_t)(pos >> (8 * b));
	}
	lt_write_file(path, buf, (size_t)len);
	lt_open(&t);
	check_lookups(&t);
	lt_fini(&t);
}
END_TEST

/* --- fd cache ---------------------------------------------------------------------- */

static void expect_fd_bound(struct lt *t)
{
	ck_assert_int_le(log_ctx_open_segments(t->ctx), t->opts.max_open_segments + 1);
	/* Cross-check against the process: cached sealed + the active one. */
	ck_assert_int_le(lt_open_log_fds(t), t->opts.max_open_segments + 2);
}

START_TEST(test_fd_cache_bound)
{
	struct lt t;
	int64_t end;

	lt_init_opts(&t, 2);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	fill(&t, 100, 10, TS0);
	lt_settle(&t);
	end = log_end_offset(t.log);
	ck_assert_int_ge(log_segment_count(t.log), 10);
	expect_fd_bound(&t);
	for (int pass = 0; pass < 2; pass++) {
		int64_t off = 0;
		while (off < end) {
			struct log_slice sl;
			ck_assert_int_eq(log_read(t.log, off, UINT64_MAX, &sl), 0);
			lt_check_slice(&sl, NULL, 0);
			expect_fd_bound(&t);
			off = sl.next_offset;
			log_slice_release(&sl);
			expect_fd_bound(&t);
		}
		check_time_lookups(&t);
		expect_fd_bound(&t);
		lt_close(&t);
		ck_assert_int_eq(log_ctx_open_segments(t.ctx), 0);
		lt_open(&t);
	}
	lt_fini(&t);
}
END_TEST

/* log_destroy removes the directory and everything in it. */
START_TEST(test_destroy)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = SEG_SMALL;
	lt_open(&t);
	fill(&t, 30, 10, TS0);
	ck_assert_int_eq(log_destroy(t.log), 0);
	t.log = NULL;
	ck_assert(!lt_exists(t.dir));
	lt_open(&t); /* CREATE: a fresh, empty log */
	ck_assert_int_eq(log_end_offset(t.log), 0);
	ck_assert_int_eq(log_segment_count(t.log), 1);
	lt_fini(&t);
}
END_TEST

/* Two logs share one context: the bound holds for both together, and
 * closing one leaves the other's cached segments intact. */
START_TEST(test_fd_cache_two_logs)
{
	struct lt t;
	struct log *logs[2];
	char dirs[2][LT_DIR_MAX + 8]; /* room for root + "/p1" */
	int64_t ends[2];

	lt_init_opts(&t, 2);
	t.cfg.segment_bytes = 1024;
	snprintf(dirs[0], sizeof(dirs[0]), "%s", t.dir);
	snprintf(dirs[1], sizeof(dirs[1]), "%s/p1", t.root);
	for (int k = 0; k < 2; k++) {
		ck_assert_uint_lt(strlen(dirs[k]), sizeof(t.dir));
		memcpy(t.dir, dirs[k], strlen(dirs[k]) + 1);
		lt_open(&t);
		fill(&t, 40, 10, TS0);
		ck_assert_int_ge(log_segment_count(t.log), 5);
		ends[k] = log_end_offset(t.log);
		logs[k] = t.log;
		t.log = NULL;
	}
	lt_settle(&t);
	ck_assert_int_le(log_ctx_open_segments(t.ctx), 3);
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < 2; k++) {
			t.log = logs[k];
			lt_read_range(&t, 0, ends[k], UINT64_MAX);
			ck_assert_int_le(log_ctx_open_segments(t.ctx), 3);
		}
	}
	t.log = logs[0];
	lt_close(&t);
	ck_assert_int_le(log_ctx_open_segments(t.ctx), 2);
	t.log = logs[1];
	lt_read_range(&t, 0, ends[1], UINT64_MAX);
	ck_assert_int_le(log_ctx_open_segments(t.ctx), 3);
	lt_close(&t);
	ck_assert_int_eq(log_ctx_open_segments(t.ctx), 0);
	lt_fini(&t);
}
END_TEST


/* --- zero-ahead ------------------------------------------------------------ */

static int64_t seg_file_size(const struct lt *t, int64_t base)
{
	char path[LT_PATH_MAX];

	lt_seg_path(t, path, base, ".log");
	return lt_file_size(path);
}

/* An idle flush.mode=always log extends its active segment with zeros;
 * reads never see them and a clean close cuts them off. */
START_TEST(test_zero_ahead_close)
{
	struct lt t;
	int64_t end, logical;

	lt_init(&t);
	t.cfg.segment_bytes = 16 << 20; /* room for zero-ahead */
	lt_open(&t);
	fill(&t, 20, 5, TS0);
	lt_settle(&t);
	logical = (int64_t)log_size_bytes(t.log);
	ck_assert_int_ge(seg_file_size(&t, 0), logical + (128 << 10));
	end = log_end_offset(t.log);
	expect_readable(&t, 0, end);
	lt_close(&t);
	ck_assert_int_eq(seg_file_size(&t, 0), logical);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	fill(&t, 5, 5, TS0 + 10000);
	expect_readable(&t, 0, log_end_offset(t.log));
	lt_fini(&t);
}
END_TEST

/* A crash leaves the zeros as a torn tail: recovery cuts exactly them and
 * appends go on at the right offset. */
START_TEST(test_zero_ahead_crash)
{
	struct lt t;
	int64_t end, logical;

	lt_init(&t);
	t.cfg.segment_bytes = 16 << 20; /* room for zero-ahead */
	lt_open(&t);
	fill(&t, 20, 5, TS0);
	lt_settle(&t);
	logical = (int64_t)log_size_bytes(t.log);
	end = log_end_offset(t.log);
	ck_assert_int_gt(seg_file_size(&t, 0), logical);
	lt_crash(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	ck_assert_int_eq(seg_file_size(&t, 0), logical);
	lt_append_sync(&t, 3, TS0 + 5000);
	ck_assert_int_eq(log_end_offset(t.log), end + 3);
	expect_readable(&t, 0, end + 3);
	lt_fini(&t);
}
END_TEST

/* A segment rolled with zeros past its data (segment.ms) is cut back to its
 * last batch before it is sealed: after a crash it is neither corrupt nor
 * short. */
START_TEST(test_zero_ahead_roll)
{
	struct lt t;
	int64_t bases[4], end, logical;
	char path[LT_PATH_MAX];
	uint8_t tail[64], zero[64] = { 0 };
	int fd;

	lt_init(&t);
	t.cfg.segment_bytes = 16 << 20; /* room for zero-ahead */
	t.cfg.segment_ms = 1000;
	lt_open(&t);
	fill(&t, 20, 5, TS0);
	lt_settle(&t);
	logical = (int64_t)log_size_bytes(t.log);
	ck_assert_int_gt(seg_file_size(&t, 0), logical); /* zeros past the data */
	t.mono += 1000;
	lt_append_sync(&t, 2, TS0 + 5000); /* rolls */
	lt_settle(&t);
	ck_assert_int_eq(lt_seg_bases(&t, bases, 4), 2);
	ck_assert_int_eq(seg_file_size(&t, bases[0]), logical);
	lt_seg_path(&t, path, bases[0], ".log");
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, tail, sizeof(tail), logical - 64), 64);
	close(fd);
	ck_assert_msg(memcmp(tail, zero, sizeof(tail)) != 0, "sealed segment ends in zeros");
	end = log_end_offset(t.log);
	lt_crash(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	lt_fini(&t);
}
END_TEST

/* Appends that reach into a zero-ahead write still in flight wait for it:
 * the zeros never land on data (acks=leader answers at the write, so the
 * next append comes while the zeros the write triggered are in flight). */
START_TEST(test_zero_ahead_waits)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = 64 << 20; /* room for zero-ahead */
	lt_open(&t);
	for (int i = 0; i < 40; i++) {
		lt_append(&t, 3000, TS0 + i, LOG_ACKS_LEADER);
		lt_wait_ok(&t);
	}
	lt_settle(&t);
	expect_readable(&t, 0, log_end_offset(t.log));
	lt_fini(&t);
}
END_TEST

/* flush.mode=os never zero-fills: there is no fdatasync to make cheaper. */
START_TEST(test_zero_ahead_not_for_os)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = 16 << 20; /* room for zero-ahead */
	t.cfg.flush_mode = LOG_FLUSH_OS;
	lt_open(&t);
	fill(&t, 20, 5, TS0);
	lt_settle(&t);
	ck_assert_int_eq(seg_file_size(&t, 0), (int64_t)log_size_bytes(t.log));
	lt_fini(&t);
}
END_TEST

/* --- disk full ----------------------------------------------------------------- */

/* A script for the completions of one op: the i-th completion of `what`
 * since armed gets script[i] (NF_PASS: unchanged; > 0: a short count of at
 * most that many bytes; < 0: that error), then the recorder runs. */
#define NF_PASS INT_MIN
struct nf_script {
	struct lt *t;
	const char *what;
	int script[8];
	int n, seen;
};

static int nf_filter(struct uring_op *op, int res, void *arg)
{
	struct nf_script *sc = arg;

	if (op->what != NULL && strcmp(op->what, sc->what) == 0 && sc->seen < sc->n) {
		int v = sc->script[sc->seen++];
		if (v < 0 && v != NF_PASS)
			res = v;
		else if (v > 0 && res > v)
			res = v;
	}
	return lt_filter(op, res, sc->t);
}

/* Callbacks of apps[from..] all came, exactly once, with res 0. */
static void expect_apps_ok(const struct lt *t, int from)
{
	for (int i = from; i < t->napps; i++)
		ck_assert_msg(t->apps[i]->calls == 1 && t->apps[i]->res == 0,
			      "append %d at %" PRId64 ": %d callbacks, res %d", i,
			      t->apps[i]->expect, t->apps[i]->calls, t->apps[i]->res);
}

/* After a refused write the log is whole and writable: not failed, end
 * offset and high watermark at `end`, one file per segment it names,
 * everything below readable; a new append lands at `end` and reads back. */
static void expect_cut_and_resume(struct lt *t, int64_t end)
{
	int64_t bases[MAX_SEGS];
	int n = lt_seg_bases(t, bases, MAX_SEGS);

	ck_assert_int_eq(log_error(t->log), 0);
	ck_assert_int_eq(log_end_offset(t->log), end);
	ck_assert_int_eq(log_high_watermark(t->log), end);
	ck_assert_int_eq(n, log_segment_count(t->log));
	if (end > 0)
		expect_readable(t, 0, end);
	expect_empty_read(t, end);
	int first = t->napps;
	struct lt_app *d = lt_append(t, 2, TS0 + 9000, LOG_ACKS_ALL);
	LT_RUN_UNTIL(t, d->calls > 0);
	expect_apps_ok(t, first);
	ck_assert_int_eq(d->a.base_offset, end);
	expect_readable(t, 0, end + 2);
}

/* The .log of the active segment holds exactly its batches: no partial or
 * refused batch and no zeros after the last one. */
static void expect_file_ends_at_last_batch(const struct lt *t)
{
	int64_t bases[MAX_SEGS];
	int n = lt_seg_bases(t, bases, MAX_SEGS);
	char path[LT_PATH_MAX];

	tab_build(t);
	lt_seg_path(t, path, bases[n - 1], ".log");
	int64_t size = lt_file_size(path);
	if (tab.n == 0 || tab.seg[tab.n - 1] != n - 1) {
		ck_assert_msg(size == 0 || size == 16, "empty active segment has %" PRId64
			      " bytes", size);
		return;
	}
	ck_assert_int_eq(size, (int64_t)(tab.pos[tab.n - 1] + tab.size[tab.n - 1]));
}

/* ENOSPC on a write: the appends of that write fail with -ENOSPC, the log
 * is cut back to the last complete batch (on disk too: a crash right after
 * must not bring the refused batches back), it is not failed, and the next
 * append writes at the same offset. */
START_TEST(test_nospace_write)
{
	struct lt t;
	struct lt_app *b, *c, *d;
	int64_t end;

	lt_init(&t);
	t.cfg.segment_bytes = 16 << 20; /* zero-ahead runs: the cut removes it too */
	lt_open(&t);
	fill(&t, 5, 5, TS0);
	lt_settle(&t);
	end = log_end_offset(t.log);
	lt_inject(&t, "log.write", 0, 1, -ENOSPC);
	b = lt_append(&t, 2, TS0, LOG_ACKS_ALL);
	c = lt_append(&t, 3, TS0, LOG_ACKS_LEADER);
	LT_RUN_UNTIL(&t, b->calls > 0 && c->calls > 0);
	ck_assert_int_eq(b->res, -ENOSPC);
	ck_assert_int_eq(c->res, -ENOSPC);
	ck_assert_int_eq(log_error(t.log), 0);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_file_ends_at_last_batch(&t);
	expect_cut_and_resume(&t, end);
	/* Nothing refused comes back after a crash; nothing acked is lost. */
	lt_crash(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end + 2);
	expect_readable(&t, 0, end + 2);
	d = lt_append(&t, 1, TS0, LOG_ACKS_ALL);
	LT_RUN_UNTIL(&t, d->calls > 0);
	ck_assert_int_eq(d->res, 0);
	ck_assert_int_eq(d->a.base_offset, end + 2);
	lt_close(&t);
	lt_open(&t);
	expect_readable(&t, 0, end + 3);
	ck_assert_int_eq(b->calls + c->calls, 2);
	lt_fini(&t);
}
END_TEST

/* Disk full as the kernel reports it: a short write, then ENOSPC for the
 * rest.  The partial batch (all of it reached the file here) is cut off:
 * after a crash recovery must not find it whole and serve it. */
START_TEST(test_nospace_short_write)
{
	struct lt t;
	struct nf_script sc = { .what = "log.write", .script = { 100, -ENOSPC }, .n = 2 };
	struct lt_app *b;
	int64_t end;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 3, 3, TS0);
	lt_settle(&t);
	end = log_end_offset(t.log);
	sc.t = &t;
	uring_set_filter(t.u, nf_filter, &sc);
	b = lt_append(&t, 4, TS0, LOG_ACKS_ALL);
	LT_RUN_UNTIL(&t, b->calls > 0);
	ck_assert_int_eq(sc.seen, 2); /* the rest was resubmitted, and refused */
	ck_assert_int_eq(b->res, -ENOSPC);
	ck_assert_int_eq(log_error(t.log), 0);
	lt_settle(&t);
	expect_file_ends_at_last_batch(&t);
	lt_crash(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_cut_and_resume(&t, end);
	lt_fini(&t);
}
END_TEST

/* EDQUOT is the same as ENOSPC. */
START_TEST(test_nospace_quota)
{
	struct lt t;
	struct lt_app *b;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 2, 2, TS0);
	lt_inject(&t, "log.write", 0, 1, -EDQUOT);
	b = lt_append(&t, 2, TS0, LOG_ACKS_ALL);
	LT_RUN_UNTIL(&t, b->calls > 0);
	ck_assert_int_eq(b->res, -EDQUOT);
	expect_cut_and_resume(&t, b->a.base_offset);
	lt_fini(&t);
}
END_TEST

/* Several writes in flight, one refused: the appends before it complete,
 * it and every later one fail (those written after it too: a gap would
 * follow them), offsets stay dense, and nothing is delivered twice. */
START_TEST(test_nospace_later_writes_fail)
{
	struct lt t;
	int k;
	int64_t end = 0;

	lt_init(&t);
	t.cfg.flush_mode = LOG_FLUSH_OS; /* no zero-ahead: writes overlap freely */
	lt_open(&t);
	lt_inject(&t, "log.write", 1, 1, -ENOSPC);
	for (int i = 0; i < 6; i++) {
		struct lt_app *a = lt_app_new(&t, 1 + i % 3, TS0 + i, LOG_ACKS_LEADER);
		int rc = lt_try_append(&t, a);

		/* While a cut is pending (the refusal was seen, a write is still
		 * in flight) log_append refuses at once, as documented: count
		 * that as the append's one failure. */
		ck_assert_msg(rc == 0 || rc == -ENOSPC, "log_append: %d", rc);
		if (rc == -ENOSPC) {
			a->res = rc;
			a->calls = 1;
		}
		event_base_loop(t.base, EVLOOP_NONBLOCK); /* one write per turn */
	}
	LT_RUN_UNTIL(&t, lt_all_called(&t));
	ck_assert_int_eq(t.fail_left, 0);
	for (k = 0; k < t.napps && t.apps[k]->res == 0; k++)
		end = t.apps[k]->a.base_offset + t.apps[k]->nrec;
	ck_assert_int_lt(k, 6); /* completions may come in any order */
	for (int i = 0; i < t.napps; i++) {
		ck_assert_int_eq(t.apps[i]->calls, 1);
		if (i <= k || t.apps[i]->res != 0) {
			ck_assert_msg(i < k || t.apps[i]->res == -ENOSPC, "append %d after the "
				      "refused write: res %d", i, t.apps[i]->res);
			continue;
		}
		/* Started only once the cut was done (the machine was slow
		 * enough): then it continues densely from the cut. */
		ck_assert_int_eq(t.apps[i]->a.base_offset, end);
		end += t.apps[i]->nrec;
	}
	lt_settle(&t);
	expect_file_ends_at_last_batch(&t);
	expect_cut_and_resume(&t, end);
	lt_close(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end + 2);
	expect_readable(&t, 0, end + 2);
	lt_fini(&t);
}
END_TEST

/* The first write into a rolled segment (its header with it) is refused:
 * the segment stays, empty, and its next write carries the header again. */
START_TEST(test_nospace_new_segment)
{
	struct lt t;
	struct lt_app *b;
	int64_t end;

	lt_init(&t);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	while (log_segment_count(t.log) < 2)
		lt_append_sync(&t, 3, TS0);
	lt_settle(&t);
	/* Fill up to the next roll, then make the rolling append fail. */
	int nsegs = log_segment_count(t.log);
	end = log_end_offset(t.log);
	for (;;) {
		b = lt_app_new(&t, 3, TS0, LOG_ACKS_ALL);
		lt_inject(&t, "log.write", 0, 1, -ENOSPC);
		ck_assert_int_eq(lt_try_append(&t, b), 0);
		if (log_segment_count(t.log) > nsegs)
			break;
		lt_inject(&t, NULL, 0, 0, 0);
		LT_RUN_UNTIL(&t, b->calls > 0);
		ck_assert_int_eq(b->res, 0);
		end = log_end_offset(t.log);
	}
	LT_RUN_UNTIL(&t, b->calls > 0);
	ck_assert_int_eq(b->res, -ENOSPC);
	ck_assert_int_eq(log_segment_count(t.log), nsegs + 1);
	ck_assert_int_eq(log_end_offset(t.log), end);
	lt_settle(&t);
	expect_file_ends_at_last_batch(&t);
	expect_cut_and_resume(&t, end);
	lt_crash(&t);
	lt_open(&t);
	expect_readable(&t, 0, end + 2);
	lt_fini(&t);
}
END_TEST

/* A refused write in one segment while appends rolled into new segments:
 * those segments go (files too), the old one is active again, and later
 * appends roll anew at the right offsets. */
START_TEST(test_nospace_rolled_segments_removed)
{
	struct lt t;
	int64_t bases[MAX_SEGS];

	lt_init(&t);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	lt_append_sync(&t, 1, TS0);
	/* Every write refused: completions come in any order across files. */
	lt_inject(&t, "log.write", 0, 1000, -ENOSPC);
	for (int i = 0; i < 12; i++)
		lt_append(&t, 3, TS0, LOG_ACKS_ALL);
	ck_assert_int_ge(log_segment_count(t.log), 3);
	LT_RUN_UNTIL(&t, lt_all_called(&t));
	lt_settle(&t);
	for (int i = 1; i < t.napps; i++) {
		ck_assert_int_eq(t.apps[i]->calls, 1);
		ck_assert_int_eq(t.apps[i]->res, -ENOSPC);
	}
	ck_assert_int_eq(log_segment_count(t.log), 1);
	ck_assert_int_eq(lt_seg_bases(&t, bases, MAX_SEGS), 1);
	expect_file_ends_at_last_batch(&t);
	lt_inject(&t, NULL, 0, 0, 0); /* space freed */
	expect_cut_and_resume(&t, 1);
	int first = t.napps;
	for (int i = 0; i < 12; i++)
		lt_append(&t, 3, TS0, LOG_ACKS_ALL);
	LT_RUN_UNTIL(&t, lt_all_called(&t));
	expect_apps_ok(&t, first);
	ck_assert_int_ge(log_segment_count(t.log), 3);
	expect_readable(&t, 0, log_end_offset(t.log));
	int64_t end = log_end_offset(t.log);
	lt_close(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	lt_fini(&t);
}
END_TEST

/* Zero-ahead that finds no room just stops: appends go on. */
START_TEST(test_nospace_zero_ahead)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = 16 << 20; /* room for zero-ahead */
	lt_open(&t);
	lt_inject(&t, "log.zero", 0, 1000, -ENOSPC);
	fill(&t, 10, 2, TS0);
	lt_settle(&t);
	ck_assert_int_ge(lt_count(&t, 0, "log.zero"), 1);
	ck_assert_int_eq(log_error(t.log), 0);
	fill(&t, 10, 2, TS0 + 5000);
	expect_readable(&t, 0, log_end_offset(t.log));
	lt_fini(&t);
}
END_TEST

/* A seal whose index files find no room is retried (after ~1 s): the log
 * is not failed, and the acks=all appends in the new segment, which wait
 * for the seal's directory fsync, complete once it went through. */
START_TEST(test_nospace_seal_index)
{
	struct lt t;

	lt_init(&t);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	lt_append_sync(&t, 3, TS0);
	lt_inject(&t, "log.index.write", 0, 1, -ENOSPC);
	while (log_segment_count(t.log) < 2)
		lt_append_sync(&t, 3, TS0);
	ck_assert_int_eq(t.fail_left, 0);
	ck_assert_int_eq(log_error(t.log), 0);
	ck_assert_int_ge(lt_count(&t, 0, "log.index.write"), 2); /* retried */
	int64_t end = log_end_offset(t.log);
	ck_assert_int_eq(log_durable_offset(t.log), end);
	lt_close(&t);
	lt_open(&t);
	expect_readable(&t, 0, end);
	lt_fini(&t);
}
END_TEST

/* Completions of `what` with res >= 0 recorded at or after index `from`. */
static int ok_count(const struct lt *t, int from, const char *what)
{
	int n = 0;

	for (int i = from; i < t->nev && i < LT_MAX_EVENTS; i++)
		n += strcmp(t->ev[i].what, what) == 0 && t->ev[i].res >= 0;
	return n;
}

/* Rolled segments whose seal waits for room for their index files are
 * read meanwhile, with a one-fd cache.  Released, they must not enter the
 * fd cache, which closes what it evicts: only sealed segments whose seal
 * completed are evictable (the retried seal found its fd closed, and the
 * log failed). */
START_TEST(test_nospace_seal_waiting_not_evicted)
{
	struct lt t;
	int64_t end;
	int n;

	lt_init_opts(&t, 1);
	t.cfg.segment_bytes = 1024;
	lt_open(&t);
	lt_append_sync(&t, 3, TS0);
	lt_inject(&t, "log.index.write", 0, 1000000, -ENOSPC); /* until cleared */
	/* acks=leader: what follows a waiting seal is not durable yet */
	while (log_segment_count(t.log) < 3) {
		struct lt_app *p = lt_append(&t, 3, TS0, LOG_ACKS_LEADER);
		LT_RUN_UNTIL(&t, p->calls > 0);
		ck_assert_int_eq(p->res, 0);
	}
	end = log_end_offset(t.log);
	ck_assert_int_gt(log_high_watermark(t.log), 0); /* the first segment */
	expect_readable(&t, 0, log_high_watermark(t.log));
	ck_assert_int_eq(ok_count(&t, 0, "log.index.write"), 0); /* the seal waits */
	t.fail_left = 0; /* room again */
	n = t.nev;
	LT_RUN_UNTIL(&t, ok_count(&t, n, "log.index.write") >= 4 || log_error(t.log) != 0);
	lt_settle(&t);
	ck_assert_int_eq(log_error(t.log), 0);
	ck_assert_int_eq(log_high_watermark(t.log), end);
	expect_readable(&t, 0, end);
	lt_close(&t);
	lt_open(&t);
	expect_readable(&t, 0, end);
	lt_fini(&t);
}
END_TEST
/* A checkpoint that finds no room is skipped, not fatal; the next works. */
START_TEST(test_nospace_checkpoint)
{
	struct lt t;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 3, 3, TS0);
	lt_inject(&t, "log.checkpoint.write", 0, 1, -ENOSPC);
	log_checkpoint(t.log);
	lt_settle(&t);
	ck_assert_int_eq(t.fail_left, 0);
	ck_assert_int_eq(log_error(t.log), 0);
	fill(&t, 3, 3, TS0);
	int64_t end = log_end_offset(t.log);
	lt_close(&t);
	lt_open(&t);
	ck_assert_int_eq(log_end_offset(t.log), end);
	expect_readable(&t, 0, end);
	lt_fini(&t);
}
END_TEST

/* ENOSPC from an fdatasync is not a refused write: the page cache may
 * have dropped data it had accepted, so the log fails for good and no
 * later fsync acknowledges anything written before (fsyncgate). */
START_TEST(test_nospace_fsync_is_fatal)
{
	struct lt t;
	struct lt_app *b, *d;
	int64_t durable;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 3, 3, TS0);
	durable = log_end_offset(t.log);
	lt_inject(&t, "log.fsync", 0, 1, -ENOSPC);
	b = lt_append(&t, 2, TS0, LOG_ACKS_ALL);
	LT_RUN_UNTIL(&t, b->calls > 0);
	ck_assert_int_eq(b->res, -ENOSPC);
	ck_assert_int_eq(log_error(t.log), -ENOSPC);
	d = lt_app_new(&t, 1, TS0, LOG_ACKS_ALL);
	ck_assert_int_eq(lt_try_append(&t, d), -EROFS);
	lt_settle(&t);
	ck_assert_int_eq(log_durable_offset(t.log), durable);
	ck_assert_int_eq(log_high_watermark(t.log), durable);
	ck_assert_int_eq(b->calls, 1);
	expect_readable(&t, 0, durable);
	lt_fini(&t);
}
END_TEST

/* Reads after a cut: the batches written after it are served whole.  The
 * known-good stretch of the segment (not checked again by reads) had grown
 * over the refused append and must shrink with the cut, or a read checks
 * the new batches from a stale position and offset: a false corrupt range
 * and a slice ending mid-batch. */
START_TEST(test_nospace_reads_after_cut)
{
	struct lt t;
	struct lt_app *b;
	int64_t end;

	lt_init(&t);
	lt_open(&t);
	fill(&t, 3, 3, TS0);
	lt_settle(&t);
	end = log_end_offset(t.log);
	lt_inject(&t, "log.write", 0, 1, -ENOSPC);
	b = lt_append(&t, 4, TS0, LOG_ACKS_ALL);
	LT_RUN_UNTIL(&t, b->calls > 0);
	ck_assert_int_eq(b->res, -ENOSPC);
	for (int i = 0; i < 6; i++) {
		struct lt_app *p = lt_append(&t, 1, TS0 + i, LOG_ACKS_ALL);
		LT_RUN_UNTIL(&t, p->calls > 0);
		ck_assert_int_eq(p->res, 0);
	}
	expect_readable(&t, 0, end + 6);
	ck_assert_str_eq(log_corruption(t.log), "");
	lt_close(&t);
	lt_open(&t);
	expect_readable(&t, 0, end + 6);
	lt_fini(&t);
}
END_TEST

Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc;

	tc = tcase_create("append");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roundtrip_segments);
	tcase_add_test(tc, test_read_max_bytes);
	tcase_add_test(tc, test_append_rejects_bad_batches);
	tcase_add_test(tc, test_append_rejects_short_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("offsets");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_offsets_dense_across_restart);
	tcase_add_test(tc, test_offsets_dense_across_crash);
	tcase_add_test(tc, test_crash_cancels_pending);
	tcase_add_test(tc, test_crash_with_io_in_flight);
	tcase_add_test(tc, test_destroy);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookup");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_lookup_every_offset);
	tcase_add_test(tc, test_lookup_every_offset_after_restart);
	tcase_add_test(tc, test_lookup_every_offset_after_crash);
	tcase_add_test(tc, test_lookup_sparse_index);
	tcase_add_test(tc, test_time_lookup);
	tcase_add_test(tc, test_time_lookup_after_restart);
	tcase_add_test(tc, test_time_lookup_unordered);
	suite_add_tcase(s, tc);

	tc = tcase_create("roll");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roll_by_size);
	tcase_add_test(tc, test_roll_oversized_batch);
	tcase_add_test(tc, test_roll_by_time);
	suite_add_tcase(s, tc);

	tc = tcase_create("retention");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_retention_by_time);
	tcase_add_test(tc, test_retention_clock_ignores_wall_steps);
	tcase_add_test(tc, test_retention_by_size);
	tcase_add_test(tc, test_retention_keeps_held_slice);
	suite_add_tcase(s, tc);

	tc = tcase_create("recovery");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_recover_truncated_tail, 0, 11);
	tcase_add_loop_test(tc, test_recover_flipped_last_batch, 0, 11);
	tcase_add_test(tc, test_recover_torn_every_byte);
	tcase_add_loop_test(tc, test_recover_trailing_junk, 0, 9);
	tcase_add_test(tc, test_recover_after_checkpoint);
	tcase_add_test(tc, test_crash_right_after_roll);
	tcase_add_test(tc, test_crash_after_roll_no_hole);
	tcase_add_test(tc, test_crash_after_two_rolls);
	tcase_add_loop_test(tc, test_recover_active_header_only, 0, 3);
	tcase_add_loop_test(tc, test_recover_without_checkpoint, 0, 3);
	tcase_add_test(tc, test_recover_sealed_segment_bad_tail);
	tcase_add_test(tc, test_recover_next_base_inside_sealed);
	tcase_add_test(tc, test_recover_gap_before_next_segment);
	tcase_add_test(tc, test_recover_corrupt_middle);
	tcase_add_test(tc, test_corruption_named);
	tcase_add_test(tc, test_corruption_remembered_after_clean_restart);
	tcase_add_loop_test(tc, test_read_verifies_crc, 0, 3);
	tcase_add_test(tc, test_corruption_hiding_no_offset_remembered);
	tcase_add_test(tc, test_corruption_list_saved_when_replaced);
	tcase_add_test(tc, test_corruption_found_out_of_order);
	tcase_add_test(tc, test_clean_open_skips_scan);
	tcase_add_test(tc, test_timeindex_past_index_rewritten);
	tcase_add_test(tc, test_unclean_open_scans);
	suite_add_tcase(s, tc);

	tc = tcase_create("durability");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_acks_all_after_fsync);
	tcase_add_test(tc, test_flush_os_acks_after_write);
	tcase_add_test(tc, test_group_commit);
	tcase_add_test(tc, test_unacked_not_visible);
	tcase_add_test(tc, test_hw_callback);
	tcase_add_test(tc, test_acks_leader_after_write);
	tcase_add_test(tc, test_flush_interval_timer);
	tcase_add_test(tc, test_flush_bytes);
	tcase_add_test(tc, test_fsync_error);
	tcase_add_test(tc, test_write_error);
	tcase_add_test(tc, test_write_error_two_writes);
	suite_add_tcase(s, tc);

	tc = tcase_create("zero-ahead");
	tcase_add_test(tc, test_zero_ahead_close);
	tcase_add_test(tc, test_zero_ahead_crash);
	tcase_add_test(tc, test_zero_ahead_roll);
	tcase_add_test(tc, test_zero_ahead_waits);
	tcase_add_test(tc, test_zero_ahead_not_for_os);
	suite_add_tcase(s, tc);

	tc = tcase_create("disk-full");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_nospace_write);
	tcase_add_test(tc, test_nospace_short_write);
	tcase_add_test(tc, test_nospace_quota);
	tcase_add_test(tc, test_nospace_later_writes_fail);
	tcase_add_test(tc, test_nospace_new_segment);
	tcase_add_test(tc, test_nospace_rolled_segments_removed);
	tcase_add_test(tc, test_nospace_zero_ahead);
	tcase_add_test(tc, test_nospace_seal_index);
	tcase_add_test(tc, test_nospace_seal_waiting_not_evicted);
	tcase_add_test(tc, test_nospace_checkpoint);
	tcase_add_test(tc, test_nospace_fsync_is_fatal);
	tcase_add_test(tc, test_nospace_reads_after_cut);
	suite_add_tcase(s, tc);

	tc = tcase_create("index");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_index_files_missing);
	tcase_add_test(tc, test_index_files_garbage);
	tcase_add_test(tc, test_index_entries_point_mid_batch);
	tcase_add_test(tc, test_active_index_points_mid_batch);
	suite_add_tcase(s, tc);

	tc = tcase_create("cache");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fd_cache_bound);
	tcase_add_test(tc, test_fd_cache_two_logs);
	suite_add_tcase(s, tc);
	return s;
}
