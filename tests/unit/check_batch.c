/* check_batch — unit tests of the record batch codec (proto/batch.h).
 * Batches under test are copied into exactly-sized heap buffers, so that
 * AddressSanitizer catches any read past the end.  Hand-crafted batches are
 * written here independently of the codec (own LE and varint writers) and
 * their CRC fixed up, so that only the structural checks can reject them. */
#include "proto/batch.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *batch_suite(void); /* called by the runner (tests/unit/runner.c) */

/* --- helpers ------------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Heap copy of exactly len bytes (malloc(0) avoided). */
static uint8_t *dup_exact(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(p);
	if (len)
		memcpy(p, src, len);
	return p;
}

static void fix_crc(uint8_t *buf, size_t len)
{
	put_le(buf + BATCH_OFF_CRC,
	       batch_crc32c(0, buf + BATCH_CRC_START, len - BATCH_CRC_START), 4);
}

/* Rewrite the length field to match len, then the CRC. */
static void fix_len_crc(uint8_t *buf, size_t len)
{
	put_le(buf + BATCH_OFF_LENGTH, len - BATCH_LENGTH_END, 4);
	fix_crc(buf, len);
}

static int validate_copy(const uint8_t *buf, size_t len)
{
	uint8_t *copy = dup_exact(buf, len);
	int ret = batch_validate(copy, len, NULL);

	free(copy);
	return ret;
}

/* Raw zig-zag varint writer for crafting records. */
static size_t put_sv(uint8_t *p, int64_t x)
{
	uint64_t v = x < 0 ? ((uint64_t)-(x + 1) << 1) | 1 : (uint64_t)x << 1;
	size_t n = 0;

	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

/* Write a batch header for `count` records followed by the `rlen` raw record
 * bytes into out; fix length and CRC.  Returns the total size. */
static size_t craft(uint8_t *out, const uint8_t *recs, size_t rlen,
		    uint32_t count, int64_t first_ts, int64_t max_ts)
{
	memset(out, 0, BATCH_HEADER_SIZE);
	put_le(out + BATCH_OFF_BASE_OFFSET, 0, 8);
	out[BATCH_OFF_MAGIC] = BATCH_MAGIC;
	put_le(out + BATCH_OFF_RECORD_COUNT, count, 4);
	put_le(out + BATCH_OFF_FIRST_TS, (uint64_t)first_ts, 8);
	put_le(out + BATCH_OFF_MAX_TS, (uint64_t)max_ts, 8);
	put_le(out + 40, UINT64_MAX, 8);
	put_le(out + 48, UINT32_MAX, 4);
	put_le(out + 52, UINT16_MAX, 2);
	if (rlen)
		memcpy(out + BATCH_HEADER_SIZE, recs, rlen);
	fix_len_crc(out, BATCH_HEADER_SIZE + rlen);
	return BATCH_HEADER_SIZE + rlen;
}

/* Encode a record body's fields (no length prefix) with key "k", value "v"
 * and no headers; returns its size. */
static size_t simple_body(uint8_t *p, int64_t ts_delta, int32_t index)
{
	size_t n = 0;

	p[n++] = 0;
	n += put_sv(p + n, ts_delta);
	n += put_sv(p + n, index);
	n += put_sv(p + n, 1);
	p[n++] = 'k';
	n += put_sv(p + n, 1);
	p[n++] = 'v';
	n += put_sv(p + n, 0);
	return n;
}

/* A whole record (length prefix + simple_body). */
static size_t simple_record(uint8_t *p, int64_t ts_delta, int32_t index)
{
	uint8_t body[64];
	size_t blen = simple_body(body, ts_delta, index);
	size_t n = put_sv(p, (int64_t)blen);

	memcpy(p + n, body, blen);
	return n + blen;
}

/* A small finished batch: three records with keys, values and headers. */
static uint8_t *small_batch(size_t *len)
{
	struct batch_builder b;
	struct batch_kv hdr[2] = {
		{ "h1", 2, "x", 1 },
		{ "h2", 2, NULL, -1 },
	};
	uint8_t *out = NULL;

	batch_builder_init(&b);
	ck_assert_int_eq(batch_builder_add(&b, 1000, "a", 1, "one", 3, hdr, 2), 0);
	ck_assert_int_eq(batch_builder_add(&b, 990, NULL, -1, "", 0, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_add(&b, 1005, "c", 1, NULL, -1, hdr, 1), 0);
	ck_assert_int_eq(batch_builder_finish(&b, 0, &out, len), 0);
	batch_builder_fini(&b);
	return out;
}

/* --- CRC ---------------------------------------------------------------- */

START_TEST(test_crc_known_vector)
{
	ck_assert_uint_eq(batch_crc32c(0, "123456789", 9), 0xe3069283u);
	ck_assert_uint_eq(batch_crc32c(0, "", 0), 0);
}
END_TEST

START_TEST(test_crc_chaining)
{
	uint8_t buf[300];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 37 + 11);
	uint32_t whole = batch_crc32c(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut++) {
		uint32_t c = batch_crc32c(0, buf, cut);
		c = batch_crc32c(c, buf + cut, sizeof(buf) - cut);
		ck_assert_uint_eq(c, whole);
	}
}
END_TEST

/* --- builder and iterator ------------------------------------------------ */

START_TEST(test_golden_encoding)
{
	static const uint8_t rec[] = {
		0x10,            /* length 8 */
		0x00,            /* attributes */
		0x00,            /* timestamp delta 0 */
		0x00,            /* offset delta 0 */
		0x02, 'k',       /* key length 1 */
		0x02, 'v',       /* value length 1 */
		0x00,            /* header count 0 */
	};
	uint8_t want[BATCH_HEADER_SIZE + sizeof(rec)];
	struct batch_builder b;
	uint8_t *out = NULL;
	size_t len = 0;

	craft(want, rec, sizeof(rec), 1, 1000, 1000);
	batch_builder_init(&b);
	ck_assert_int_eq(batch_builder_add(&b, 1000, "k", 1, "v", 1, NULL, 0), 0);
	ck_assert_uint_eq(batch_builder_size(&b), sizeof(want));
	ck_assert_int_eq(batch_builder_finish(&b, 0, &out, &len), 0);
	ck_assert_uint_eq(len, sizeof(want));
	ck_assert_mem_eq(out, want, sizeof(want));
	free(out);
	batch_builder_fini(&b);
}
END_TEST

START_TEST(test_roundtrip_fields)
{
	size_t len;
	uint8_t *buf = small_batch(&len);
	struct batch_iter it;
	struct batch_record r;
	struct batch_kv kv;

	ck_assert_int_eq(batch_iter_init(&it, buf, len), 0);
	ck_assert_uint_eq(it.h.magic, BATCH_MAGIC);
	ck_assert_uint_eq(it.h.record_count, 3);
	ck_assert_uint_eq(it.h.attributes, 0);
	ck_assert_int_eq(it.h.first_timestamp, 1000);
	ck_assert_int_eq(it.h.max_timestamp, 1005);
	ck_assert_int_eq(it.h.producer_id, -1);
	ck_assert_int_eq(it.h.base_sequence, -1);
	ck_assert_int_eq(it.h.producer_epoch, -1);
	ck_assert_uint_eq(batch_size(&it.h), len);

	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.offset, 0);
	ck_assert_int_eq(r.timestamp, 1000);
	ck_assert_int_eq(r.key_len, 1);
	ck_assert_mem_eq(r.key, "a", 1);
	ck_assert_int_eq(r.value_len, 3);
	ck_assert_mem_eq(r.value, "one", 3);
	ck_assert_uint_eq(r.header_count, 2);
	ck_assert_int_eq(batch_record_header(&r, 0, &kv), 0);
	ck_assert_int_eq(kv.key_len, 2);
	ck_assert_mem_eq(kv.key, "h1", 2);
	ck_assert_int_eq(kv.value_len, 1);
	ck_assert_mem_eq(kv.value, "x", 1);
	ck_assert_int_eq(batch_record_header(&r, 1, &kv), 0);
	ck_assert_mem_eq(kv.key, "h2", 2);
	ck_assert_int_eq(kv.value_len, -1);
	ck_assert_ptr_null(kv.value);
	ck_assert_int_eq(batch_record_header(&r, 2, &kv), -EINVAL);

	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.offset, 1);
	ck_assert_int_eq(r.timestamp, 990); /* negative delta */
	ck_assert_int_eq(r.key_len, -1);
	ck_assert_ptr_null(r.key);
	ck_assert_int_eq(r.value_len, 0);
	ck_assert_ptr_nonnull(r.value);
	ck_assert_uint_eq(r.header_count, 0);
	ck_assert_int_eq(batch_record_header(&r, 0, &kv), -EINVAL);

	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.offset, 2);
	ck_assert_int_eq(r.timestamp, 1005);
	ck_assert_mem_eq(r.key, "c", 1);
	ck_assert_int_eq(r.value_len, -1);
	ck_assert_ptr_null(r.value);
	ck_assert_uint_eq(r.header_count, 1);

	ck_assert_int_eq(batch_iter_next(&it, &r), 0);
	ck_assert_int_eq(batch_iter_next(&it, &r), 0);
	free(buf);
}
END_TEST

START_TEST(test_roundtrip_extreme_timestamps)
{
	struct batch_builder b;
	struct batch_iter it;
	struct batch_record r;
	uint8_t *buf = NULL;
	size_t len;

	batch_builder_init(&b);
	ck_assert_int_eq(batch_builder_add(&b, 0, "k", 1, "v", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_add(&b, INT64_MAX, "k", 1, "v", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_add(&b, INT64_MIN + 1, "k", 1, "v", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_finish(&b, BATCH_TS_LOG_APPEND, &buf, &len), 0);
	ck_assert_int_eq(batch_iter_init(&it, buf, len), 0);
	ck_assert_uint_eq(it.h.attributes, BATCH_TS_LOG_APPEND);
	ck_assert_int_eq(it.h.max_timestamp, INT64_MAX);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.timestamp, 0);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.timestamp, INT64_MAX);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.timestamp, INT64_MIN + 1);
	free(buf);
	batch_builder_fini(&b);
}
END_TEST

START_TEST(test_roundtrip_many_records)
{
	enum { N = 10000 };
	struct batch_builder b;
	struct batch_iter it;
	struct batch_record r;
	uint8_t *buf = NULL;
	size_t len;
	char key[32], val[32];

	batch_builder_init(&b);
	for (int i = 0; i < N; i++) {
		int kl = snprintf(key, sizeof(key), "key-%d", i);
		int vl = snprintf(val, sizeof(val), "value-%d", i * 7);
		ck_assert_int_eq(batch_builder_add(&b, 5000 + (i % 100) - 50,
						   key, kl, val, vl, NULL, 0), 0);
	}
	ck_assert_uint_eq(batch_builder_count(&b), N);
	size_t predicted = batch_builder_size(&b);
	ck_assert_int_eq(batch_builder_finish(&b, 0, &buf, &len), 0);
	ck_assert_uint_eq(len, predicted);
	ck_assert_int_eq(batch_iter_init(&it, buf, len), 0);
	for (int i = 0; i < N; i++) {
		int kl = snprintf(key, sizeof(key), "key-%d", i);
		int vl = snprintf(val, sizeof(val), "value-%d", i * 7);
		ck_assert_int_eq(batch_iter_next(&it, &r), 1);
		ck_assert_int_eq(r.offset, i);
		ck_assert_int_eq(r.timestamp, 5000 + (i % 100) - 50);
		ck_assert_int_eq(r.key_len, kl);
		ck_assert_mem_eq(r.key, key, (size_t)kl);
		ck_assert_int_eq(r.value_len, vl);
		ck_assert_mem_eq(r.value, val, (size_t)vl);
	}
	ck_assert_int_eq(batch_iter_next(&it, &r), 0);
	free(buf);
}
END_TEST

START_TEST(test_roundtrip_large_value)
{
	const size_t big = 1 << 20;
	uint8_t *val = malloc(big);
	struct batch_builder b;
	struct batch_iter it;
	struct batch_record r;
	uint8_t *buf = NULL;
	size_t len;

	ck_assert_ptr_nonnull(val);
	for (size_t i = 0; i < big; i++)
		val[i] = (uint8_t)(i * 131 + (i >> 8));
	batch_builder_init(&b);
	ck_assert_int_eq(batch_builder_add(&b, 1, "a", 1, "x", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_add(&b, 2, "big", 3, val, (int32_t)big, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_add(&b, 3, NULL, -1, "y", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_finish(&b, 0, &buf, &len), 0);
	ck_assert_int_eq(batch_iter_init(&it, buf, len), 0);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.value_len, (int32_t)big);
	ck_assert_int_eq(memcmp(r.value, val, big), 0);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_mem_eq(r.value, "y", 1);
	ck_assert_int_eq(batch_iter_next(&it, &r), 0);
	free(buf);
	free(val);
}
END_TEST

START_TEST(test_stamp_offset)
{
	size_t len;
	uint8_t *buf = small_batch(&len);
	struct batch_iter it;
	struct batch_record r;
	const int64_t base = 0x123456789abLL;

	batch_stamp_offset(buf, base);
	ck_assert_int_eq(batch_iter_init(&it, buf, len), 0); /* CRC still ok */
	ck_assert_int_eq(it.h.base_offset, base);
	ck_assert_int_eq(batch_last_offset(&it.h), base + 2);
	for (int64_t i = 0; i < 3; i++) {
		ck_assert_int_eq(batch_iter_next(&it, &r), 1);
		ck_assert_int_eq(r.offset, base + i);
	}
	ck_assert_uint_eq(get_le(buf, 8), (uint64_t)base);
	free(buf);
}
END_TEST

/* base_offset is outside the CRC: a damaged one near INT64_MAX wraps the
 * batch's offsets (no signed overflow: UBSan fails this test otherwise).
 * Found by fuzz_batch. */
START_TEST(test_base_offset_wraps)
{
	size_t len;
	uint8_t *buf = small_batch(&len);
	struct batch_iter it;
	struct batch_record r;

	batch_stamp_offset(buf, INT64_MAX);
	ck_assert_int_eq(batch_iter_init(&it, buf, len), 0);
	ck_assert_int_eq(batch_last_offset(&it.h), INT64_MIN + 1);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.offset, INT64_MAX);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.offset, INT64_MIN);
	free(buf);
}
END_TEST

START_TEST(test_builder_finish_empty)
{
	struct batch_builder b;
	uint8_t *out = NULL;
	size_t len = 0;

	batch_builder_init(&b);
	ck_assert_int_eq(batch_builder_finish(&b, 0, &out, &len), -EINVAL);
	ck_assert_ptr_null(out);
	batch_builder_fini(&b);
}
END_TEST

START_TEST(test_builder_reuse)
{
	struct batch_builder b;
	struct batch_iter it;
	struct batch_record r;
	uint8_t *a = NULL, *c = NULL;
	size_t alen, clen;

	batch_builder_init(&b);
	ck_assert_int_eq(batch_builder_add(&b, 10, "a", 1, "1", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_add(&b, 20, "b", 1, "2", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_finish(&b, 0, &a, &alen), 0);
	ck_assert_uint_eq(batch_builder_count(&b), 0);
	ck_assert_ptr_null(b.buf);
	ck_assert_uint_eq(batch_builder_size(&b), BATCH_HEADER_SIZE);
	ck_assert_int_eq(batch_builder_finish(&b, 0, &c, &clen), -EINVAL);

	ck_assert_int_eq(batch_builder_add(&b, 5, "z", 1, "9", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_finish(&b, 0, &c, &clen), 0);
	ck_assert_ptr_ne(a, c);
	ck_assert_int_eq(batch_iter_init(&it, c, clen), 0);
	ck_assert_uint_eq(it.h.record_count, 1);
	ck_assert_int_eq(it.h.first_timestamp, 5);
	ck_assert_int_eq(it.h.max_timestamp, 5);
	ck_assert_int_eq(batch_iter_next(&it, &r), 1);
	ck_assert_int_eq(r.offset, 0);
	ck_assert_mem_eq(r.key, "z", 1);
	ck_assert_int_eq(batch_iter_next(&it, &r), 0);
	/* The first batch is intact. */
	ck_assert_int_eq(batch_validate(a, alen, NULL), 0);
	free(a);
	free(c);
	batch_builder_fini(&b);
	batch_builder_fini(&b); /* fini twice is harmless */
}
END_TEST

START_TEST(test_builder_rejects_bad_args)
{
	struct batch_builder b;
	struct batch_kv null_key = { NULL, -1, "v", 1 };
	struct batch_kv bad_val = { "k", 1, "v", -2 };
	uint8_t *out = NULL;
	size_t len;

	batch_builder_init(&b);
	ck_assert_int_eq(batch_builder_add(&b, 0, "k", -2, "v", 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(batch_builder_add(&b, 0, "k", 1, "v", -5, NULL, 0), -EINVAL);
	ck_assert_int_eq(batch_builder_add(&b, 0, NULL, 3, "v", 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(batch_builder_add(&b, 0, "k", 1, "v", 1, &null_key, 1), -EINVAL);
	ck_assert_int_eq(batch_builder_add(&b, 0, "k", 1, "v", 1, &bad_val, 1), -EINVAL);
	ck_assert_int_eq(batch_builder_add(&b, 0, "k", 1, "v", 1, NULL, 1), -EINVAL);
	ck_assert_uint_eq(batch_builder_count(&b), 0);
	/* A timestamp delta that overflows int64 is refused. */
	ck_assert_int_eq(batch_builder_add(&b, INT64_MAX, "k", 1, "v", 1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_add(&b, -2, "k", 1, "v", 1, NULL, 0), -EINVAL);
	ck_assert_uint_eq(batch_builder_count(&b), 1);
	/* Attributes that would make an invalid batch. */
	ck_assert_int_eq(batch_builder_finish(&b, 1, &out, &len), -EINVAL);
	ck_assert_int_eq(batch_builder_finish(&b, 0x10, &out, &len), -EINVAL);
	ck_assert_int_eq(batch_builder_finish(&b, 0, &out, &len), 0);
	ck_assert_int_eq(batch_validate(out, len, NULL), 0);
	free(out);
	batch_builder_fini(&b);
}
END_TEST

START_TEST(test_iter_failed_init_yields_nothing)
{
	size_t len;
	uint8_t *buf = small_batch(&len);
	struct batch_iter it;
	struct batch_record r;

	buf[len - 1] ^= 1;
	ck_assert_int_eq(batch_iter_init(&it, buf, len), -EBADMSG);
	ck_assert_int_eq(batch_iter_next(&it, &r), 0);
	free(buf);
}
END_TEST

/* --- corruption ---------------------------------------------------------- */

START_TEST(test_bitflip_detected)
{
	size_t len;
	uint8_t *buf = small_batch(&len);

	for (size_t pos = BATCH_OFF_LENGTH; pos < len; pos++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[pos] ^= (uint8_t)(1u << bit);
			int ret = validate_copy(buf, len);
			ck_assert_msg(ret < 0, "flip byte %zu bit %d accepted",
				      pos, bit);
			buf[pos] ^= (uint8_t)(1u << bit);
		}
	}
	ck_assert_int_eq(validate_copy(buf, len), 0);
	free(buf);
}
END_TEST

START_TEST(test_bitflip_base_offset_ignored)
{
	size_t len;
	uint8_t *buf = small_batch(&len);

	for (int pos = 0; pos < 8; pos++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[pos] ^= (uint8_t)(1u << bit);
			ck_assert_int_eq(validate_copy(buf, len), 0);
			buf[pos] ^= (uint8_t)(1u << bit);
		}
	}
	free(buf);
}
END_TEST

START_TEST(test_crc_mismatch)
{
	size_t len;
	uint8_t *buf = small_batch(&len);

	buf[BATCH_OFF_CRC] ^= 0x80;
	ck_assert_int_eq(validate_copy(buf, len), -EBADMSG);
	buf[BATCH_OFF_CRC] ^= 0x80;
	buf[BATCH_HEADER_SIZE + 3] ^= 0x04;
	ck_assert_int_eq(validate_copy(buf, len), -EBADMSG);
	free(buf);
}
END_TEST

START_TEST(test_truncation_every_length)
{
	size_t len;
	uint8_t *buf = small_batch(&len);
	struct batch_header h;

	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = dup_exact(buf, n);
		struct batch_iter it;
		struct batch_record r;
		int ret = batch_validate(copy, n, NULL);

		ck_assert_msg(ret == -EAGAIN || ret == -EINVAL,
			      "length %zu: %d", n, ret);
		ck_assert_int_ne(batch_iter_init(&it, copy, n), 0);
		ck_assert_int_eq(batch_iter_next(&it, &r), 0);
		if (n < BATCH_HEADER_SIZE)
			ck_assert_int_eq(batch_header_decode(copy, n, &h), -EAGAIN);
		free(copy);
	}
	/* Truncated but with length and CRC fixed to match: structural. */
	for (size_t n = BATCH_HEADER_SIZE; n < len; n++) {
		uint8_t *copy = dup_exact(buf, n);

		fix_len_crc(copy, n);
		ck_assert_int_eq(batch_validate(copy, n, NULL), -EINVAL);
		free(copy);
	}
	free(buf);
}
END_TEST

START_TEST(test_trailing_garbage)
{
	size_t len;
	uint8_t *buf = small_batch(&len);
	uint8_t *big = malloc(len + 5);

	ck_assert_ptr_nonnull(big);
	memcpy(big, buf, len);
	memset(big + len, 0, 5);
	ck_assert_int_eq(validate_copy(big, len + 1), -EINVAL);
	ck_assert_int_eq(validate_copy(big, len + 5), -EINVAL);
	/* Even with length and CRC covering the extra bytes. */
	fix_len_crc(big, len + 5);
	ck_assert_int_eq(validate_copy(big, len + 5), -EINVAL);
	free(big);
	free(buf);
}
END_TEST

START_TEST(test_bad_magic)
{
	size_t len;
	uint8_t *buf = small_batch(&len);
	struct batch_header h;

	buf[BATCH_OFF_MAGIC] = 2;
	fix_crc(buf, len);
	ck_assert_int_eq(batch_header_decode(buf, len, &h), -EPROTONOSUPPORT);
	ck_assert_int_eq(validate_copy(buf, len), -EPROTONOSUPPORT);
	buf[BATCH_OFF_MAGIC] = 0;
	fix_crc(buf, len);
	ck_assert_int_eq(validate_copy(buf, len), -EPROTONOSUPPORT);
	free(buf);
}
END_TEST

START_TEST(test_bad_codec)
{
	size_t len;
	uint8_t *buf = small_batch(&len);

	for (unsigned codec = 1; codec <= BATCH_CODEC_MASK; codec++) {
		put_le(buf + BATCH_OFF_ATTRIBUTES, codec, 2);
		fix_crc(buf, len);
		ck_assert_int_eq(validate_copy(buf, len), -EPROTONOSUPPORT);
	}
	free(buf);
}
END_TEST

START_TEST(test_reserved_fields)
{
	size_t len;
	uint8_t *buf = small_batch(&len);
	struct batch_header h;

	put_le(buf + BATCH_OFF_ATTRIBUTES, BATCH_TS_LOG_APPEND, 2);
	fix_crc(buf, len);
	ck_assert_int_eq(validate_copy(buf, len), 0);
	for (int bit = 4; bit < 16; bit++) {
		put_le(buf + BATCH_OFF_ATTRIBUTES, 1u << bit, 2);
		fix_crc(buf, len);
		ck_assert_int_eq(batch_header_decode(buf, len, &h), -EINVAL);
		ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
	}
	put_le(buf + BATCH_OFF_ATTRIBUTES, 0, 2);
	buf[17] = 1;
	fix_crc(buf, len);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
	buf[17] = 0;
	buf[55] = 1;
	fix_crc(buf, len);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
	free(buf);
}
END_TEST

START_TEST(test_header_short_length_field)
{
	uint8_t hdr[BATCH_HEADER_SIZE];
	struct batch_header h;

	craft(hdr, NULL, 0, 1, 0, 0); /* header only, length 44 */
	ck_assert_int_eq(batch_header_decode(hdr, sizeof(hdr), &h), 0);
	put_le(hdr + BATCH_OFF_LENGTH, BATCH_HEADER_SIZE - BATCH_LENGTH_END - 1, 4);
	ck_assert_int_eq(batch_header_decode(hdr, sizeof(hdr), &h), -EINVAL);
}
END_TEST

START_TEST(test_record_count_mismatch)
{
	uint8_t recs[64], buf[256];
	struct batch_header h;
	size_t n = 0, len;

	n += simple_record(recs + n, 0, 0);
	n += simple_record(recs + n, 1, 1);
	len = craft(buf, recs, n, 2, 100, 101);
	ck_assert_int_eq(validate_copy(buf, len), 0);
	len = craft(buf, recs, n, 3, 100, 101);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
	len = craft(buf, recs, n, 1, 100, 101);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
	len = craft(buf, recs, n, 0, 100, 101);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
	/* Zero records and nothing after the header: still invalid. */
	len = craft(buf, NULL, 0, 0, 100, 100);
	ck_assert_int_eq(batch_header_decode(buf, len, &h), -EINVAL);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
}
END_TEST

START_TEST(test_overlong_varint)
{
	uint8_t rec[64], buf[256];
	size_t n, len;
	/* Key length 1 as a 6-byte varint (overlong for 32 bits). */
	static const uint8_t key6[] = { 0x82, 0x80, 0x80, 0x80, 0x80, 0x00 };
	/* Key length 1 as a legal (non-minimal) 5-byte varint. */
	static const uint8_t key5[] = { 0x82, 0x80, 0x80, 0x80, 0x00 };
	/* 5th byte with bits beyond 32. */
	static const uint8_t key5big[] = { 0x82, 0x80, 0x80, 0x80, 0x10 };

	const uint8_t *keys[] = { key6, key5, key5big };
	const size_t klen[] = { sizeof(key6), sizeof(key5), sizeof(key5big) };
	const int want[] = { -EINVAL, 0, -EINVAL };

	for (int t = 0; t < 3; t++) {
		uint8_t body[32];
		size_t b = 0;

		body[b++] = 0;
		b += put_sv(body + b, 0);
		b += put_sv(body + b, 0);
		memcpy(body + b, keys[t], klen[t]);
		b += klen[t];
		body[b++] = 'k';
		b += put_sv(body + b, -1);
		b += put_sv(body + b, 0);
		n = put_sv(rec, (int64_t)b);
		memcpy(rec + n, body, b);
		n += b;
		len = craft(buf, rec, n, 1, 7, 7);
		ck_assert_msg(validate_copy(buf, len) == want[t], "case %d", t);
	}

	/* 64-bit timestamp delta: 11 bytes is overlong, 10 with a big last
	 * byte is out of range. */
	static const uint8_t ts11[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
					0x80, 0x80, 0x80, 0x80, 0x00 };
	static const uint8_t ts10big[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
					   0x80, 0x80, 0x80, 0x02 };
	static const uint8_t ts10ok[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
					  0x80, 0x80, 0x80, 0x00 };
	const uint8_t *tss[] = { ts11, ts10big, ts10ok };
	const size_t tslen[] = { sizeof(ts11), sizeof(ts10big), sizeof(ts10ok) };
	const int twant[] = { -EINVAL, -EINVAL, 0 };

	for (int t = 0; t < 3; t++) {
		uint8_t body[32];
		size_t b = 0;

		body[b++] = 0;
		memcpy(body + b, tss[t], tslen[t]);
		b += tslen[t];
		b += put_sv(body + b, 0);
		b += put_sv(body + b, -1);
		b += put_sv(body + b, -1);
		b += put_sv(body + b, 0);
		n = put_sv(rec, (int64_t)b);
		memcpy(rec + n, body, b);
		n += b;
		len = craft(buf, rec, n, 1, 7, 7);
		ck_assert_msg(validate_copy(buf, len) == twant[t], "ts case %d", t);
	}
}
END_TEST

START_TEST(test_truncated_varint)
{
	uint8_t rec[32], buf[128];
	size_t len;

	/* The record ends inside the header-count varint: the record's own
	 * length stops it, though the batch's bytes continue. */
	size_t b = 0;
	uint8_t body[32];

	body[b++] = 0;
	b += put_sv(body + b, 0);
	b += put_sv(body + b, 0);
	b += put_sv(body + b, -1);
	b += put_sv(body + b, -1);
	body[b++] = 0x80; /* continuation, then the record ends */
	size_t n = put_sv(rec, (int64_t)b);
	memcpy(rec + n, body, b);
	n += b;
	rec[n++] = 0x00; /* a byte after the record that would complete it */
	len = craft(buf, rec, n, 1, 0, 0);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);

	/* The batch ends inside the record-length varint. */
	uint8_t one[1] = { 0x80 };
	len = craft(buf, one, 1, 1, 0, 0);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
}
END_TEST

START_TEST(test_offset_delta_not_index)
{
	uint8_t recs[64], buf[256];
	size_t n, len;

	n = simple_record(recs, 0, 0);
	n += simple_record(recs + n, 0, 2);
	len = craft(buf, recs, n, 2, 0, 0);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);

	n = simple_record(recs, 0, 1);
	len = craft(buf, recs, n, 1, 0, 0);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);

	n = simple_record(recs, 0, -1);
	len = craft(buf, recs, n, 1, 0, 0);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
}
END_TEST

START_TEST(test_timestamp_bounds)
{
	uint8_t recs[64], buf[256];
	size_t n, len;

	/* Record above max_timestamp. */
	n = simple_record(recs, 0, 0);
	n += simple_record(recs + n, 6, 1);
	len = craft(buf, recs, n, 2, 100, 105);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
	len = craft(buf, recs, n, 2, 100, 106);
	ck_assert_int_eq(validate_copy(buf, len), 0);

	/* First record not at first_timestamp. */
	n = simple_record(recs, 1, 0);
	len = craft(buf, recs, n, 1, 100, 200);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);

	/* first_timestamp + delta overflows. */
	n = simple_record(recs, 0, 0);
	n += simple_record(recs + n, INT64_MAX, 1);
	len = craft(buf, recs, n, 2, 100, INT64_MAX);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);
}
END_TEST

START_TEST(test_record_structure)
{
	uint8_t rec[64], body[64], buf[256];
	size_t b, n, len;

	/* Record attributes not zero. */
	b = simple_body(body, 0, 0);
	body[0] = 1;
	n = put_sv(rec, (int64_t)b);
	memcpy(rec + n, body, b);
	len = craft(buf, rec, n + b, 1, 0, 0);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);

	/* Record length one more than its fields (slack byte inside). */
	b = simple_body(body, 0, 0);
	body[b++] = 0;
	n = put_sv(rec, (int64_t)b);
	memcpy(rec + n, body, b);
	len = craft(buf, rec, n + b, 1, 0, 0);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);

	/* Record length one less than its fields. */
	b = simple_body(body, 0, 0);
	n = put_sv(rec, (int64_t)b - 1);
	memcpy(rec + n, body, b);
	len = craft(buf, rec, n + b, 1, 0, 0);
	ck_assert_int_eq(validate_copy(buf, len), -EINVAL);

	/* Negative record length, key length -2, header with null key, a
	 * header count with too few headers. */
	static const uint8_t neg[] = { 0x03, 0, 0, 0, 1, 1, 0 };
	static const uint8_t key_m2[] = { 0x0c, 0, 0, 0, 3, 1, 0 };
	static const uint8_t hdr_null_key[] = { 0x10, 0, 0, 0, 1, 1, 2, 1, 0 };
	static const uint8_t hdr_short[] = { 0x10, 0, 0, 0, 1, 1, 4, 0, 1 };
	static const uint8_t hdr_ok[] = { 0x10, 0, 0, 0, 1, 1, 2, 0, 1 };
	static const uint8_t hdr_neg_count[] = { 0x0c, 0, 0, 0, 1, 1, 1 };
	const uint8_t *cases[] = { neg, key_m2, hdr_null_key, hdr_short,
				   hdr_ok, hdr_neg_count };
	const size_t sizes[] = { sizeof(neg), sizeof(key_m2),
				 sizeof(hdr_null_key), sizeof(hdr_short),
				 sizeof(hdr_ok), sizeof(hdr_neg_count) };
	const int want[] = { -EINVAL, -EINVAL, -EINVAL, -EINVAL, 0, -EINVAL };

	for (int t = 0; t < 6; t++) {
		len = craft(buf, cases[t], sizes[t], 1, 0, 0);
		ck_assert_msg(validate_copy(buf, len) == want[t], "case %d", t);
	}
}
END_TEST

/* --- random robustness ---------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: fixed seed, reproducible everywhere. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Reference varint reader, written plainly: returns 0 or -1. */
static int ref_varint(const uint8_t *buf, size_t end, size_t *pos, int bits,
		      int64_t *out)
{
	uint64_t v = 0;
	int maxb = bits == 32 ? 5 : 10;

	for (int i = 0;; i++) {
		if (i == maxb || *pos >= end)
			return -1;
		uint8_t c = buf[(*pos)++];
		if (i * 7 + 7 > bits && (c >> (bits - i * 7)) != 0)
			return -1; /* bits beyond the type, or continuation */
		v |= (uint64_t)(c & 0x7f) << (i * 7);
		if (!(c & 0x80))
			break;
	}
	*out = (v & 1) ? -(int64_t)(v >> 1) - 1 : (int64_t)(v >> 1);
	return 0;
}

static int ref_bytes(const uint8_t *buf, size_t end, size_t *pos,
		     int allow_null)
{
	int64_t n;

	if (ref_varint(buf, end, pos, 32, &n) < 0)
		return -1;
	if (n == -1 && allow_null)
		return 0;
	if (n < 0 || (uint64_t)n > end - *pos)
		return -1;
	*pos += (size_t)n;
	return 0;
}

/* Independent reference check of the structure (header fields, records);
 * the CRC is checked separately.  Returns 1 when valid. */
static int ref_valid(const uint8_t *buf, size_t len)
{
	if (len < BATCH_HEADER_SIZE || get_le(buf + 8, 4) != len - 12 ||
	    buf[16] != 1 || buf[17] != 0 || get_le(buf + 18, 2) > 8 ||
	    get_le(buf + 54, 2) != 0)
		return 0;
	uint64_t count = get_le(buf + 20, 4);
	int64_t first = (int64_t)get_le(buf + 24, 8);
	int64_t max = (int64_t)get_le(buf + 32, 8);
	size_t pos = BATCH_HEADER_SIZE;

	if (count == 0)
		return 0;
	for (uint64_t i = 0; i < count; i++) {
		int64_t rlen, tsd, od, hc, ts;

		if (ref_varint(buf, len, &pos, 32, &rlen) < 0 || rlen < 0 ||
		    (uint64_t)rlen > len - pos)
			return 0;
		size_t rend = pos + (size_t)rlen;
		if (pos >= rend || buf[pos++] != 0)
			return 0;
		if (ref_varint(buf, rend, &pos, 64, &tsd) < 0 ||
		    ref_varint(buf, rend, &pos, 32, &od) < 0 ||
		    od != (int64_t)i ||
		    ref_bytes(buf, rend, &pos, 1) < 0 ||
		    ref_bytes(buf, rend, &pos, 1) < 0 ||
		    ref_varint(buf, rend, &pos, 32, &hc) < 0 || hc < 0)
			return 0;
		for (int64_t j = 0; j < hc; j++)
			if (ref_bytes(buf, rend, &pos, 0) < 0 ||
			    ref_bytes(buf, rend, &pos, 1) < 0)
				return 0;
		if (pos != rend)
			return 0;
		if (__builtin_add_overflow(first, tsd, &ts) || ts > max ||
		    (i == 0 && ts != first))
			return 0;
	}
	return pos == len;
}

/* Run the codec on one buffer (exact-size copy): validate, compare with the
 * reference, and when accepted iterate everything.  Returns the verdict. */
static int check_one(const uint8_t *src, size_t len)
{
	uint8_t *buf = dup_exact(src, len);
	struct batch_iter it;
	struct batch_record r;
	struct batch_kv kv;
	int ret = batch_validate(buf, len, NULL);
	int crc_ok = len >= BATCH_HEADER_SIZE &&
		     batch_crc32c(0, buf + 16, len - 16) == get_le(buf + 12, 4);

	ck_assert_msg(ret == 0 || ret == -EAGAIN || ret == -EINVAL ||
		      ret == -EBADMSG || ret == -EPROTONOSUPPORT,
		      "unexpected %d", ret);
	ck_assert_int_eq(ret == 0, ref_valid(buf, len) && crc_ok);
	ck_assert_int_eq(batch_iter_init(&it, buf, len), ret);
	uint32_t n = 0;
	while (batch_iter_next(&it, &r)) {
		ck_assert_int_eq(r.offset, (int64_t)(get_le(buf, 8) + n));
		for (uint32_t j = 0; j < r.header_count; j++)
			ck_assert_int_eq(batch_record_header(&r, j, &kv), 0);
		n++;
	}
	ck_assert_uint_eq(n, ret == 0 ? it.h.record_count : 0);
	free(buf);
	return ret;
}

START_TEST(test_random_robustness)
{
	enum { ITER = 20000, MAXLEN = 300 };
	uint8_t buf[MAXLEN + 64];
	uint8_t *seeds[4];
	size_t seed_len[4];
	int accepted = 0;

	rng_state = 0x9e3779b97f4a7c15ULL;
	/* Valid seed batches of different shapes, all <= MAXLEN bytes. */
	for (int s = 0; s < 4; s++) {
		struct batch_builder b;
		struct batch_kv hdr[2] = { { "hk", 2, "hv", 2 },
					   { "", 0, NULL, -1 } };

		batch_builder_init(&b);
		for (int i = 0; i <= s * 2; i++)
			ck_assert_int_eq(batch_builder_add(&b, 50 - i * 3 + s,
				i % 3 ? "key" : NULL, i % 3 ? 3 : -1,
				"value", i % 4 == 1 ? -1 : 5,
				hdr, (uint32_t)(i % 3)), 0);
		ck_assert_int_eq(batch_builder_finish(&b, 0, &seeds[s],
						      &seed_len[s]), 0);
		ck_assert_uint_le(seed_len[s], MAXLEN);
	}

	for (int iter = 0; iter < ITER; iter++) {
		size_t len;
		int kind = (int)(rng() % 4);

		if (kind == 0) {
			/* Pure noise. */
			len = rng() % (MAXLEN + 1);
			for (size_t i = 0; i < len; i++)
				buf[i] = (uint8_t)rng();
		} else {
			/* A valid batch, mutated, with length and CRC fixed
			 * so the structural checks are reached. */
			int s = (int)(rng() % 4);
			int muts = 1 + (int)(rng() % 4);

			len = seed_len[s];
			memcpy(buf, seeds[s], len);
			for (int m = 0; m < muts; m++) {
				size_t pos = BATCH_HEADER_SIZE +
					     rng() % (len - BATCH_HEADER_SIZE);
				switch (rng() % 5) {
				case 0: /* flip a bit */
					buf[pos] ^= (uint8_t)(1u << (rng() % 8));
					break;
				case 1: /* random byte */
					buf[pos] = (uint8_t)rng();
					break;
				case 2: /* small varint-ish value */
					buf[pos] = (uint8_t)(rng() % 8);
					break;
				case 3: /* truncate */
					if (pos > BATCH_HEADER_SIZE)
						len = pos;
					break;
				default: /* insert a byte */
					if (len < MAXLEN) {
						memmove(buf + pos + 1, buf + pos,
							len - pos);
						buf[pos] = (uint8_t)rng();
						len++;
					}
					break;
				}
			}
			if (kind == 3) /* sometimes the header too */
				buf[20 + rng() % 36] ^= (uint8_t)(1u << (rng() % 8));
			if (rng() % 8 != 0)
				fix_len_crc(buf, len);
		}
		accepted += check_one(buf, len) == 0;
	}
	/* The mutations must not be so destructive that nothing passes. */
	ck_assert_int_gt(accepted, 0);
	for (int s = 0; s < 4; s++)
		free(seeds[s]);
}
END_TEST

Suite *batch_suite(void)
{
	Suite *s = suite_create("batch");
	TCase *tc;

	tc = tcase_create("crc");
	tcase_add_test(tc, test_crc_known_vector);
	tcase_add_test(tc, test_crc_chaining);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, test_golden_encoding);
	tcase_add_test(tc, test_roundtrip_fields);
	tcase_add_test(tc, test_roundtrip_extreme_timestamps);
	tcase_add_test(tc, test_roundtrip_many_records);
	tcase_add_test(tc, test_roundtrip_large_value);
	tcase_add_test(tc, test_stamp_offset);
	tcase_add_test(tc, test_base_offset_wraps);
	tcase_add_test(tc, test_builder_finish_empty);
	tcase_add_test(tc, test_builder_reuse);
	tcase_add_test(tc, test_builder_rejects_bad_args);
	tcase_add_test(tc, test_iter_failed_init_yields_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("validate");
	tcase_add_test(tc, test_bitflip_detected);
	tcase_add_test(tc, test_bitflip_base_offset_ignored);
	tcase_add_test(tc, test_crc_mismatch);
	tcase_add_test(tc, test_truncation_every_length);
	tcase_add_test(tc, test_trailing_garbage);
	tcase_add_test(tc, test_bad_magic);
	tcase_add_test(tc, test_bad_codec);
	tcase_add_test(tc, test_reserved_fields);
	tcase_add_test(tc, test_header_short_length_field);
	tcase_add_test(tc, test_record_count_mismatch);
	tcase_add_test(tc, test_overlong_varint);
	tcase_add_test(tc, test_truncated_varint);
	tcase_add_test(tc, test_offset_delta_not_index);
	tcase_add_test(tc, test_timestamp_bounds);
	tcase_add_test(tc, test_record_structure);
	suite_add_tcase(s, tc);

	tc = tcase_create("robustness");
	tcase_add_test(tc, test_random_robustness);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
