/* check_index — the sparse offset and time index of a segment
 * (broker/index.h) in memory and in its file encoding: when idx_add makes
 * entries, the floor lookups at every boundary, where a time search may
 * start, truncation, and the little-endian codec with its sanity checks.
 */
#include "broker/index.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

Suite *index_suite(void); /* called by the runner (tests/unit/runner.c) */

/* An index with offset entries (rel[i], pos[i]) and the time entries idx_add
 * makes for timestamps ts[i], every batch indexed (interval 0). */
static void make(struct seg_index *ix, const uint32_t *rel, const uint32_t *pos,
		 const int64_t *ts, int n)
{
	idx_init(ix);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(idx_add(ix, rel[i], pos[i], ts[i], 0), 0);
	ck_assert_int_eq(ix->noff, n);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* --- idx_add ------------------------------------------------------------------ */

START_TEST(test_add_first_batch_indexed)
{
	struct seg_index ix;

	idx_init(&ix);
	ck_assert_int_eq(ix.noff, 0);
	ck_assert(ix.max_ts == INT64_MIN);
	ck_assert_int_eq(idx_add(&ix, 0, 16, 1000, 4096), 0);
	ck_assert_int_eq(ix.noff, 1);
	ck_assert_int_eq(ix.off[0].rel, 0);
	ck_assert_int_eq(ix.off[0].pos, 16);
	ck_assert_int_eq(ix.ntime, 1);
	ck_assert_int_eq(ix.time[0].ts, 1000);
	ck_assert_int_eq(ix.time[0].rel, 0);
	ck_assert_int_eq(ix.max_ts, 1000);
	ck_assert_int_eq(ix.last_rel, 0);
	idx_fini(&ix);
	ck_assert_int_eq(ix.noff, 0);
	idx_fini(&ix); /* twice is harmless */
}
END_TEST

/* An entry once at least `interval` bytes passed since the previous one. */
START_TEST(test_add_interval)
{
	const uint32_t intervals[] = { 0, 1, 99, 100, 101, 250, 1000, 100000 };

	for (size_t k = 0; k < sizeof(intervals) / sizeof(intervals[0]); k++) {
		uint32_t iv = intervals[k];
		struct seg_index ix;
		uint64_t last = 0, pos = 16;
		uint32_t want = 0;

		idx_init(&ix);
		for (uint32_t i = 0; i < 200; i++, pos += 100) {
			bool due = i == 0 || pos >= last + iv;
			ck_assert_int_eq(idx_add(&ix, 3 * i, pos, 5, iv), 0);
			if (due) {
				ck_assert_int_eq(ix.noff, want + 1);
				ck_assert_int_eq(ix.off[want].rel, 3 * i);
				ck_assert_int_eq(ix.off[want].pos, pos);
				want++;
				last = pos;
			}
			ck_assert_int_eq(ix.noff, want);
			ck_assert_int_eq(ix.last_rel, 3 * i);
		}
		ck_assert_int_gt(want, 0);
		if (iv <= 100)
			ck_assert_int_eq(want, 200);
		idx_fini(&ix);
	}
}
END_TEST

/* Time entries: only at offset entries, only when the largest timestamp
 * grew, carrying the largest timestamp so far. */
START_TEST(test_add_time_entries)
{
	struct seg_index ix;

	idx_init(&ix);
	ck_assert_int_eq(idx_add(&ix, 0, 16, 100, 200), 0);   /* entry, time 100 */
	ck_assert_int_eq(idx_add(&ix, 1, 116, 500, 200), 0);  /* no entry */
	ck_assert_int_eq(ix.noff, 1);
	ck_assert_int_eq(ix.ntime, 1);
	ck_assert_int_eq(ix.max_ts, 500);
	ck_assert_int_eq(idx_add(&ix, 2, 216, 300, 200), 0);  /* entry: max 500 */
	ck_assert_int_eq(ix.noff, 2);
	ck_assert_int_eq(ix.ntime, 2);
	ck_assert_int_eq(ix.time[1].ts, 500);
	ck_assert_int_eq(ix.time[1].rel, 2);
	ck_assert_int_eq(idx_add(&ix, 3, 416, 400, 200), 0);  /* entry, max not grown */
	ck_assert_int_eq(ix.noff, 3);
	ck_assert_int_eq(ix.ntime, 2);
	ck_assert_int_eq(ix.max_ts, 500);
	ck_assert_int_eq(idx_add(&ix, 4, 616, 501, 200), 0);  /* entry, grown */
	ck_assert_int_eq(ix.ntime, 3);
	ck_assert_int_eq(ix.time[2].ts, 501);
	ck_assert_int_eq(ix.time[2].rel, 4);
	idx_fini(&ix);
}
END_TEST

START_TEST(test_seal)
{
	struct seg_index ix;

	idx_init(&ix);
	ck_assert_int_eq(idx_seal(&ix), 0); /* empty: nothing */
	ck_assert_int_eq(ix.ntime, 0);
	ck_assert_int_eq(idx_add(&ix, 0, 16, 100, 1000), 0);
	ck_assert_int_eq(idx_seal(&ix), 0); /* max already recorded */
	ck_assert_int_eq(ix.ntime, 1);
	ck_assert_int_eq(idx_add(&ix, 2, 100, 700, 1000), 0);
	ck_assert_int_eq(idx_add(&ix, 5, 200, 300, 1000), 0);
	ck_assert_int_eq(ix.ntime, 1);
	ck_assert_int_eq(idx_seal(&ix), 0);
	ck_assert_int_eq(ix.ntime, 2);
	ck_assert_int_eq(ix.time[1].ts, 700);
	ck_assert_int_eq(ix.time[1].rel, 5);
	ck_assert_int_eq(idx_seal(&ix), 0); /* idempotent */
	ck_assert_int_eq(ix.ntime, 2);
	idx_fini(&ix);
}
END_TEST

/* --- lookups ---------------------------------------------------------------------- */

START_TEST(test_floor_rel)
{
	const uint32_t rel[] = { 3, 5, 9, 20 }, pos[] = { 16, 100, 200, 300 };
	const int64_t ts[] = { 1, 2, 3, 4 };
	const struct { uint32_t q; int rc; uint32_t rel; } c[] = {
		{ 0, -ENOENT, 0 }, { 2, -ENOENT, 0 }, { 3, 0, 3 }, { 4, 0, 3 },
		{ 5, 0, 5 }, { 8, 0, 5 }, { 9, 0, 9 }, { 19, 0, 9 }, { 20, 0, 20 },
		{ 21, 0, 20 }, { UINT32_MAX, 0, 20 },
	};
	struct seg_index ix;
	struct idx_entry e;

	idx_init(&ix);
	ck_assert_int_eq(idx_floor_rel(&ix, 0, &e), -ENOENT);
	ck_assert_int_eq(idx_floor_rel(&ix, UINT32_MAX, &e), -ENOENT);
	idx_fini(&ix);
	make(&ix, rel, pos, ts, 4);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		e.rel = e.pos = 12345;
		ck_assert_int_eq(idx_floor_rel(&ix, c[i].q, &e), c[i].rc);
		if (c[i].rc == 0) {
			ck_assert_int_eq(e.rel, c[i].rel);
			for (int k = 0; k < 4; k++)
				if (rel[k] == e.rel)
					ck_assert_int_eq(e.pos, pos[k]);
		}
	}
	idx_fini(&ix);
	/* One entry. */
	make(&ix, rel, pos, ts, 1);
	ck_assert_int_eq(idx_floor_rel(&ix, 2, &e), -ENOENT);
	ck_assert_int_eq(idx_floor_rel(&ix, 3, &e), 0);
	ck_assert_int_eq(idx_floor_rel(&ix, 1000, &e), 0);
	ck_assert_int_eq(e.pos, 16);
	idx_fini(&ix);
}
END_TEST

START_TEST(test_floor_pos)
{
	const uint32_t rel[] = { 0, 5, 9, 20 }, pos[] = { 16, 100, 200, 300 };
	const int64_t ts[] = { 1, 2, 3, 4 };
	const struct { uint64_t q; int rc; uint32_t pos; } c[] = {
		{ 0, -ENOENT, 0 }, { 15, -ENOENT, 0 }, { 16, 0, 16 }, { 99, 0, 16 },
		{ 100, 0, 100 }, { 199, 0, 100 }, { 200, 0, 200 }, { 299, 0, 200 },
		{ 300, 0, 300 }, { 301, 0, 300 }, { UINT64_MAX, 0, 300 },
	};
	struct seg_index ix;
	struct idx_entry e;

	idx_init(&ix);
	ck_assert_int_eq(idx_floor_pos(&ix, 1000, &e), -ENOENT);
	make(&ix, rel, pos, ts, 4);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		ck_assert_int_eq(idx_floor_pos(&ix, c[i].q, &e), c[i].rc);
		if (c[i].rc == 0) {
			ck_assert_int_eq(e.pos, c[i].pos);
			for (int k = 0; k < 4; k++)
				if (pos[k] == e.pos)
					ck_assert_int_eq(e.rel, rel[k]);
		}
	}
	idx_fini(&ix);
}
END_TEST

START_TEST(test_time_start)
{
	/* Time entries (100 @ 0), (200 @ 5), (300 @ 9). */
	const uint32_t rel[] = { 0, 5, 9 }, pos[] = { 16, 100, 200 };
	const int64_t ts[] = { 100, 200, 300 };
	const struct { int64_t ts; uint32_t start; } c[] = {
		{ INT64_MIN, 0 }, { 0, 0 }, { 99, 0 }, { 100, 0 }, { 101, 1 }, { 200, 1 },
		{ 201, 6 }, { 300, 6 }, { 301, 10 }, { INT64_MAX, 10 },
	};
	struct seg_index ix;

	idx_init(&ix);
	ck_assert_int_eq(idx_time_start(&ix, 50), 0);
	ck_assert_int_eq(idx_time_start(&ix, INT64_MAX), 0);
	make(&ix, rel, pos, ts, 3);
	ck_assert_int_eq(ix.ntime, 3);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		ck_assert_msg(idx_time_start(&ix, c[i].ts) == c[i].start,
			      "idx_time_start(%lld) = %u, expected %u", (long long)c[i].ts,
			      idx_time_start(&ix, c[i].ts), c[i].start);
	idx_fini(&ix);
}
END_TEST

START_TEST(test_count_below_and_truncate)
{
	/* Time entries only where the timestamp grew: at rel 0, 2 and 6. */
	const uint32_t rel[] = { 0, 2, 4, 6 }, pos[] = { 16, 100, 200, 300 };
	const int64_t ts[] = { 10, 20, 15, 30 };
	struct seg_index ix;
	uint32_t n, m;

	make(&ix, rel, pos, ts, 4);
	ck_assert_int_eq(ix.ntime, 3);
	idx_count_below(&ix, 16, &n, &m);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(m, 0);
	idx_count_below(&ix, 17, &n, &m);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(m, 1);
	idx_count_below(&ix, 200, &n, &m);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(m, 2);
	idx_count_below(&ix, 300, &n, &m);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(m, 2);
	idx_count_below(&ix, 1000, &n, &m);
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(m, 3);
	idx_truncate(&ix, 200);
	ck_assert_int_eq(ix.noff, 2);
	ck_assert_int_eq(ix.ntime, 2);
	ck_assert_int_eq(ix.max_ts, 20);
	/* The next batch recorded gets an entry whatever the interval. */
	ck_assert_int_eq(idx_add(&ix, 4, 200, 25, 100000), 0);
	ck_assert_int_eq(ix.noff, 3);
	ck_assert_int_eq(ix.off[2].pos, 200);
	ck_assert_int_eq(ix.ntime, 3);
	ck_assert_int_eq(ix.time[2].ts, 25);
	idx_truncate(&ix, 0);
	ck_assert_int_eq(ix.noff, 0);
	ck_assert_int_eq(ix.ntime, 0);
	ck_assert(ix.max_ts == INT64_MIN);
	idx_fini(&ix);
}
END_TEST

/* --- file codec ---------------------------------------------------------------------- */

START_TEST(test_encode_layout)
{
	const uint32_t rel[] = { 0x01020304u }, pos[] = { 0x0a0b0c0du };
	const int64_t ts[] = { INT64_C(0x1122334455667788) };
	const uint8_t off_want[8] = { 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a };
	const uint8_t time_want[12] = { 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
					4, 3, 2, 1 };
	uint8_t buf[16];
	struct seg_index ix;

	make(&ix, rel, pos, ts, 1);
	idx_encode_off(&ix, 0, 1, buf);
	ck_assert_mem_eq(buf, off_want, 8);
	idx_encode_time(&ix, 0, 1, buf);
	ck_assert_mem_eq(buf, time_want, 12);
	idx_fini(&ix);
}
END_TEST

START_TEST(test_encode_decode_roundtrip)
{
	struct seg_index a, b;
	uint8_t *off, *tim;
	uint64_t pos = 16;

	idx_init(&a);
	for (uint32_t i = 0; i < 300; i++) {
		ck_assert_int_eq(idx_add(&a, 7 * i, pos, 1000 + (int64_t)(i % 5) * (int64_t)i, 256), 0);
		pos += 90 + i % 17;
	}
	ck_assert_int_gt(a.noff, 50);
	ck_assert_int_gt(a.ntime, 10);
	off = malloc((size_t)a.noff * IDX_ENTRY_SIZE);
	tim = malloc((size_t)a.ntime * TIDX_ENTRY_SIZE);
	ck_assert_ptr_nonnull(off);
	ck_assert_ptr_nonnull(tim);
	idx_encode_off(&a, 0, a.noff, off);
	idx_encode_time(&a, 0, a.ntime, tim);
	/* Whole. */
	idx_init(&b);
	ck_assert_int_eq(idx_decode_off(&b, off, (size_t)a.noff * IDX_ENTRY_SIZE, 16, pos), 0);
	ck_assert_int_eq(idx_decode_time(&b, tim, (size_t)a.ntime * TIDX_ENTRY_SIZE), 0);
	ck_assert_int_eq(b.noff, a.noff);
	ck_assert_int_eq(b.ntime, a.ntime);
	ck_assert_mem_eq(b.off, a.off, a.noff * sizeof(*a.off));
	for (uint32_t i = 0; i < a.ntime; i++) {
		ck_assert_int_eq(b.time[i].ts, a.time[i].ts);
		ck_assert_int_eq(b.time[i].rel, a.time[i].rel);
	}
	ck_assert_int_eq(b.max_ts, a.time[a.ntime - 1].ts);
	idx_fini(&b);
	/* In two parts, the second encoded on its own and appended. */
	idx_init(&b);
	uint32_t h = a.noff / 2, ht = a.ntime / 2;
	uint8_t *part = malloc((size_t)(a.noff - h) * IDX_ENTRY_SIZE + (size_t)(a.ntime - ht) * TIDX_ENTRY_SIZE);
	ck_assert_ptr_nonnull(part);
	ck_assert_int_eq(idx_decode_off(&b, off, (size_t)h * IDX_ENTRY_SIZE, 16, pos), 0);
	idx_encode_off(&a, h, a.noff, part);
	ck_assert_mem_eq(part, off + (size_t)h * IDX_ENTRY_SIZE, (size_t)(a.noff - h) * IDX_ENTRY_SIZE);
	ck_assert_int_eq(idx_decode_off(&b, part, (size_t)(a.noff - h) * IDX_ENTRY_SIZE, 16, pos), 0);
	ck_assert_int_eq(b.noff, a.noff);
	ck_assert_mem_eq(b.off, a.off, a.noff * sizeof(*a.off));
	ck_assert_int_eq(idx_decode_time(&b, tim, (size_t)ht * TIDX_ENTRY_SIZE), 0);
	idx_encode_time(&a, ht, a.ntime, part);
	ck_assert_int_eq(idx_decode_time(&b, part, (size_t)(a.ntime - ht) * TIDX_ENTRY_SIZE), 0);
	ck_assert_int_eq(b.ntime, a.ntime);
	/* The halves must also be monotone against each other. */
	ck_assert_int_eq(idx_decode_off(&b, off, IDX_ENTRY_SIZE, 16, pos), -EUCLEAN);
	free(part);
	free(off);
	free(tim);
	idx_fini(&a);
	idx_fini(&b);
}
END_TEST

static int decode_off(const uint32_t (*e)[2], int n, size_t len, uint64_t first, uint64_t size)
{
	uint8_t buf[128];
	struct seg_index ix;
	int rc;

	for (int i = 0; i < n; i++) {
		put_le(buf + 8 * i, e[i][0], 4);
		put_le(buf + 8 * i + 4, e[i][1], 4);
	}
	idx_init(&ix);
	rc = idx_decode_off(&ix, buf, len, first, size);
	idx_fini(&ix);
	return rc;
}

START_TEST(test_decode_off_rejects)
{
	const uint32_t good[3][2] = { { 0, 16 }, { 4, 200 }, { 9, 400 } };
	const uint32_t rel_eq[2][2] = { { 0, 16 }, { 0, 200 } };
	const uint32_t rel_down[2][2] = { { 5, 16 }, { 4, 200 } };
	const uint32_t pos_eq[2][2] = { { 0, 200 }, { 4, 200 } };
	const uint32_t pos_down[2][2] = { { 0, 300 }, { 4, 200 } };

	ck_assert_int_eq(decode_off(good, 3, 24, 16, 1000), 0);
	ck_assert_int_eq(decode_off(good, 0, 0, 16, 1000), 0);
	/* Sizes that are not whole entries. */
	for (size_t len = 1; len < 24; len++)
		if (len % IDX_ENTRY_SIZE != 0)
			ck_assert_int_eq(decode_off(good, 3, len, 16, 1000), -EUCLEAN);
	ck_assert_int_eq(decode_off(rel_eq, 2, 16, 16, 1000), -EUCLEAN);
	ck_assert_int_eq(decode_off(rel_down, 2, 16, 16, 1000), -EUCLEAN);
	ck_assert_int_eq(decode_off(pos_eq, 2, 16, 16, 1000), -EUCLEAN);
	ck_assert_int_eq(decode_off(pos_down, 2, 16, 16, 1000), -EUCLEAN);
	/* Positions outside [first_pos, size). */
	ck_assert_int_eq(decode_off(good, 3, 24, 17, 1000), -EUCLEAN);
	ck_assert_int_eq(decode_off(good, 3, 24, 16, 400), -EUCLEAN);
	ck_assert_int_eq(decode_off(good, 3, 24, 16, 401), 0);
}
END_TEST

static int decode_time(const int64_t *ts, const uint32_t *rel, int n, size_t len)
{
	uint8_t buf[128];
	struct seg_index ix;
	int rc;

	for (int i = 0; i < n; i++) {
		put_le(buf + 12 * i, (uint64_t)ts[i], 8);
		put_le(buf + 12 * i + 8, rel[i], 4);
	}
	idx_init(&ix);
	rc = idx_decode_time(&ix, buf, len);
	if (rc == 0 && n > 0 && len == (size_t)n * TIDX_ENTRY_SIZE)
		ck_assert_int_eq(ix.max_ts, ts[n - 1]);
	idx_fini(&ix);
	return rc;
}

START_TEST(test_decode_time_rejects)
{
	const int64_t ts[] = { -5, 100, 200 }, ts_eq[] = { 100, 100 }, ts_down[] = { 200, 100 };
	const uint32_t rel[] = { 0, 4, 9 }, rel_down[] = { 5, 4 };

	ck_assert_int_eq(decode_time(ts, rel, 3, 36), 0);
	ck_assert_int_eq(decode_time(ts, rel, 0, 0), 0);
	for (size_t len = 1; len < 36; len++)
		if (len % TIDX_ENTRY_SIZE != 0)
			ck_assert_int_eq(decode_time(ts, rel, 3, len), -EUCLEAN);
	ck_assert_int_eq(decode_time(ts_eq, rel, 2, 24), -EUCLEAN);
	ck_assert_int_eq(decode_time(ts_down, rel, 2, 24), -EUCLEAN);
	ck_assert_int_eq(decode_time(ts, rel_down, 2, 24), -EUCLEAN);
}
END_TEST

Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	TCase *tc;

	tc = tcase_create("add");
	tcase_add_test(tc, test_add_first_batch_indexed);
	tcase_add_test(tc, test_add_interval);
	tcase_add_test(tc, test_add_time_entries);
	tcase_add_test(tc, test_seal);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookup");
	tcase_add_test(tc, test_floor_rel);
	tcase_add_test(tc, test_floor_pos);
	tcase_add_test(tc, test_time_start);
	tcase_add_test(tc, test_count_below_and_truncate);
	suite_add_tcase(s, tc);

	tc = tcase_create("codec");
	tcase_add_test(tc, test_encode_layout);
	tcase_add_test(tc, test_encode_decode_roundtrip);
	tcase_add_test(tc, test_decode_off_rejects);
	tcase_add_test(tc, test_decode_time_rejects);
	suite_add_tcase(s, tc);
	return s;
}
