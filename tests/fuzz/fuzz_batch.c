/* fuzz_batch — libFuzzer target for the record batch parser (proto/batch.c):
 * batch_header_decode, batch_validate, the record iterator and the header
 * decoder, on arbitrary bytes.
 *
 * Byte 0 of the input is a mode; the rest is the batch.  Mode bit 0: patch
 * the length field to the buffer size and recompute the CRC before parsing,
 * so mutations reach the record parser instead of stopping at the CRC.
 *
 * Properties checked besides ASan/UBSan: a batch that validates iterates
 * to exactly record_count records with dense offsets, timestamps as the
 * header promises, pointers inside the buffer and decodable headers; and
 * rebuilding it with batch_builder from those records gives a batch that
 * validates and decodes to the same records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/batch.h"
#include "proto/le.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 1024

static __attribute__((noreturn)) void fail(const char *what, uint32_t i)
{
	fprintf(stderr, "fuzz_batch: %s (record %u)\n", what, i);
	abort();
}

static int inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
	return p >= buf && (size_t)(p - buf) <= len && n <= len - (size_t)(p - buf);
}

static int same(const void *a, int32_t alen, const void *b, int32_t blen)
{
	return alen == blen && (alen <= 0 || memcmp(a, b, (size_t)alen) == 0);
}

/* Walk a validated batch; when `b` is given, add every record to it. */
static void walk(const uint8_t *buf, size_t len, const struct batch_header *h,
		 struct batch_builder *b)
{
	static struct batch_kv kvs[MAX_HEADERS];
	struct batch_iter it;
	struct batch_record rec;
	uint32_t n = 0;

	if (batch_iter_init(&it, buf, len) != 0)
		fail("batch_iter_init rejects a batch batch_validate accepted", 0);
	while (batch_iter_next(&it, &rec) == 1) {
		if (n >= h->record_count)
			fail("more records than record_count", n);
		if (rec.offset != (int64_t)((uint64_t)h->base_offset + n))
			fail("offsets are not dense", n);
		if (rec.timestamp > h->max_timestamp || (n == 0 && rec.timestamp != h->first_timestamp))
			fail("timestamp outside what the header promises", n);
		if ((rec.key_len < -1 || (rec.key_len >= 0 && !inside(rec.key, (size_t)rec.key_len, buf, len))) ||
		    (rec.value_len < -1 ||
		     (rec.value_len >= 0 && !inside(rec.value, (size_t)rec.value_len, buf, len))) ||
		    !inside(rec.headers, rec.headers_len, buf, len))
			fail("record field outside the batch", n);
		for (uint32_t i = 0; i < rec.header_count; i++) {
			struct batch_kv kv;
			if (batch_record_header(&rec, i, &kv) != 0)
				fail("undecodable header in a validated batch", n);
			if (kv.key_len < 0 || !inside(kv.key, (size_t)kv.key_len, buf, len) ||
			    kv.value_len < -1 ||
			    (kv.value_len >= 0 && !inside(kv.value, (size_t)kv.value_len, buf, len)))
				fail("header outside the batch", n);
			if (i < MAX_HEADERS)
				kvs[i] = kv;
		}
		if (b != NULL && rec.header_count <= MAX_HEADERS &&
		    batch_builder_add(b, rec.timestamp, rec.key, rec.key_len, rec.value, rec.value_len,
				      kvs, rec.header_count) != 0)
			fail("batch_builder_add refused a decoded record", n);
		n++;
	}
	if (n != h->record_count)
		fail("fewer records than record_count", n);
}

/* Rebuild the batch and check it decodes to the same records. */
static void roundtrip(const uint8_t *buf, size_t len, const struct batch_header *h)
{
	struct batch_builder b;
	struct batch_header h2;
	struct batch_iter it1, it2;
	struct batch_record r1, r2;
	uint8_t *out;
	size_t outlen;
	uint32_t n = 0;

	batch_builder_init(&b);
	walk(buf, len, h, &b);
	if (batch_builder_count(&b) != h->record_count) {
		batch_builder_fini(&b); /* a record with > MAX_HEADERS headers */
		return;
	}
	if (batch_builder_finish(&b, h->attributes, &out, &outlen) != 0)
		fail("batch_builder_finish failed", 0);
	if (batch_validate(out, outlen, &h2) != 0)
		fail("a rebuilt batch does not validate", 0);
	/* max_timestamp is a bound (validation checks every record is at or
	 * below it), so a rebuilt batch's may be lower. */
	if (h2.record_count != h->record_count || h2.first_timestamp != h->first_timestamp ||
	    h2.max_timestamp > h->max_timestamp || h2.attributes != h->attributes)
		fail("a rebuilt batch has another header", 0);
	batch_iter_init(&it1, buf, len);
	batch_iter_init(&it2, out, outlen);
	while (batch_iter_next(&it1, &r1) == 1) {
		if (batch_iter_next(&it2, &r2) != 1)
			fail("a rebuilt batch has fewer records", n);
		if (r1.timestamp != r2.timestamp || !same(r1.key, r1.key_len, r2.key, r2.key_len) ||
		    !same(r1.value, r1.value_len, r2.value, r2.value_len) ||
		    r1.header_count != r2.header_count)
			fail("a rebuilt record differs", n);
		for (uint32_t i = 0; i < r1.header_count; i++) {
			struct batch_kv a, c;
			batch_record_header(&r1, i, &a);
			if (batch_record_header(&r2, i, &c) != 0 ||
			    !same(a.key, a.key_len, c.key, c.key_len) ||
			    !same(a.value, a.value_len, c.value, c.value_len))
				fail("a rebuilt header differs", n);
		}
		n++;
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct batch_header h;
	uint8_t *buf;
	size_t len;
	int rc;

	if (size < 1)
		return 0;
	len = size - 1;
	/* A private copy of exactly len bytes, so ASan sees any overread. */
	buf = malloc(len ? len : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, len);
	if ((data[0] & 1) && len >= BATCH_HEADER_SIZE) {
		put_le32(buf + BATCH_OFF_LENGTH, (uint32_t)(len - BATCH_LENGTH_END));
		put_le32(buf + BATCH_OFF_CRC,
			 batch_crc32c(0, buf + BATCH_CRC_START, len - BATCH_CRC_START));
	}
	rc = batch_header_decode(buf, len, &h);
	if (rc == 0 && batch_size(&h) < BATCH_HEADER_SIZE)
		fail("header accepted with a length below the header size", 0);
	if (rc == -EAGAIN && len >= BATCH_HEADER_SIZE)
		fail("-EAGAIN on a full header", 0);
	rc = batch_validate(buf, len, &h);
	if (rc == 0) {
		if (batch_size(&h) != len)
			fail("validated a batch that does not fill the buffer", 0);
		roundtrip(buf, len, &h);
	}
	free(buf);
	return 0;
}
