/* check_fetch — produce and fetch end to end against a real brokerd: many
 * partitions, pipelined produces, explicit, round-robin and key-hashed
 * (Kafka murmur2) partitioning, long polls (woken by a produce, timing out,
 * waiting for min_bytes), offset ranges, list_offsets, and fetches below the
 * log start after retention. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

static struct tb b;

static void setup(void)
{
	memset(&b, 0, sizeof(b));
}

static void teardown(void)
{
	tb_cleanup(&b);
}

static void create(int fd, const char *topic, uint32_t parts, const char *const *kv, size_t n)
{
	Brokerd__Response *r = tc_create_topic_cfg(fd, topic, parts, kv, n);

	TC_OK(r);
	tc_free(r);
}

/* Produce n records "<prefix>-<first..>" to partition p, acks=all; returns
 * the base offset. */
static int64_t produce(int fd, const char *topic, uint32_t p, const char *prefix, int first, int n)
{
	size_t len;
	uint8_t *batch = tc_batch(prefix, first, n, &len);
	Brokerd__Response *r = tc_produce(fd, topic, p, BROKERD__ACKS__ACKS_ALL, batch, len);
	int64_t base;

	free(batch);
	TC_OK(r);
	ck_assert_uint_eq(r->produce->partition, p);
	base = r->produce->base_offset;
	tc_free(r);
	return base;
}

/* Fetch partition p from `from` to `to` batch by batch (max_bytes 1: one
 * whole batch per answer) and check that record o has value
 * "<prefix>-<o>" for every o in [from, to). */
static void expect_dense(int fd, const char *topic, uint32_t p, const char *prefix, int64_t from,
			 int64_t to)
{
	int64_t at = from;
	char want[512];

	while (at < to) {
		Brokerd__Response *r = tc_fetch(fd, topic, p, at, 1, 0, 0);
		char **v;
		int64_t last;
		int n;

		TC_OK(r);
		ck_assert_int_eq(r->fetch->partition, p);
		ck_assert_int_eq(r->fetch->high_watermark, to);
		n = tc_values(r->fetch, at, &v, &last);
		ck_assert_msg(n > 0, "%s/%u: nothing at offset %lld (hw %lld)", topic, p,
			      (long long)at, (long long)to);
		for (int i = 0; i < n; i++) {
			snprintf(want, sizeof(want), "%s-%lld", prefix, (long long)(at + i));
			ck_assert_msg(strcmp(v[i], want) == 0, "%s/%u offset %lld: '%s', expected '%s'",
				      topic, p, (long long)(at + i), v[i], want);
		}
		ck_assert_int_eq(last, at + n - 1);
		ck_assert_int_eq(r->fetch->next_offset, last + 1);
		at = last + 1;
		tc_free_values(v, n);
		tc_free(r);
	}
	ck_assert_int_eq(at, to);
}

START_TEST(many_partitions_round_trip)
{
	static const char *const topics[] = { "alpha", "beta", "gamma" };
	enum { NT = 3, NP = 16, NB = 4 };
	int fd, fd2;
	uint64_t corr = 1;

	tb_start(&b);
	fd = tc_connect(b.port);
	fd2 = tc_connect(b.port);
	for (int t = 0; t < NT; t++)
		create(fd, topics[t], NP, NULL, 0);
	/* Pipelined: every batch of a topic is sent before any answer is read;
	 * answers come back in request order with their correlation ids.
	 * Batch k of a partition holds k + 1 records, so offsets are uneven. */
	for (int t = 0; t < NT; t++) {
		uint64_t first = corr;
		int64_t next[NP] = { 0 };

		for (int k = 0; k < NB; k++) {
			for (uint32_t p = 0; p < NP; p++) {
				char prefix[64];
				size_t len;
				uint8_t *batch;

				snprintf(prefix, sizeof(prefix), "%s.%u", topics[t], p);
				batch = tc_batch(prefix, (int)next[p], k + 1, &len);
				ck_assert_int_eq(tc_send_produce(fd, corr++, topics[t], p,
								 BROKERD__ACKS__ACKS_ALL, batch, len),
						 0);
				next[p] += k + 1;
				free(batch);
			}
		}
		memset(next, 0, sizeof(next));
		for (uint64_t c = first; c < corr; c++) {
			Brokerd__Response *r = tc_recv(fd);
			uint32_t p = (uint32_t)((c - first) % NP);
			int k = (int)((c - first) / NP);

			ck_assert_msg(r != NULL, "no answer to produce %llu", (unsigned long long)c);
			ck_assert_uint_eq(r->correlation_id, c);
			TC_OK(r);
			ck_assert_uint_eq(r->produce->partition, p);
			ck_assert_int_eq(r->produce->base_offset, next[p]);
			next[p] += k + 1;
			tc_free(r);
		}
	}
	/* Every record of every partition, from another connection. */
	for (int t = 0; t < NT; t++) {
		for (uint32_t p = 0; p < NP; p++) {
			char prefix[64];
			Brokerd__Response *r;
			char **v;
			int64_t last;
			int n;

			snprintf(prefix, sizeof(prefix), "%s.%u", topics[t], p);
			expect_dense(fd2, topics[t], p, prefix, 0, 10);
			/* One fetch for all, from the middle of batch 2 (offsets 1-2):
			 * the first batch starts below the offset. */
			r = tc_fetch(fd2, topics[t], p, 2, 1 << 20, 0, 0);
			TC_OK(r);
			n = tc_values(r->fetch, 2, &v, &last);
			ck_assert_int_eq(n, 8);
			ck_assert_int_eq(last, 9);
			ck_assert_int_eq(r->fetch->next_offset, 10);
			ck_assert_int_eq(r->fetch->log_start_offset, 0);
			tc_free_values(v, n);
			tc_free(r);
		}
	}
	close(fd);
	close(fd2);
}
END_TEST

/* Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), written
 * here independently of proto/partition.c. */
static int32_t kafka_murmur2(const void *key, size_t len)
{
	const unsigned char *data = key;
	const uint32_t m = 0x5bd1e995;
	const int r = 24;
	uint32_t h = 0x9747b28c ^ (uint32_t)len;
	size_t len4 = len / 4;

	for (size_t i = 0; i < len4; i++) {
		size_t i4 = i * 4;
		uint32_t k = (uint32_t)data[i4] + ((uint32_t)data[i4 + 1] << 8) +
			     ((uint32_t)data[i4 + 2] << 16) + ((uint32_t)data[i4 + 3] << 24);
		k *= m;
		k ^= k >> r;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len % 4) {
	case 3:
		h ^= (uint32_t)data[(len & ~(size_t)3) + 2] << 16;
		__attribute__((fallthrough));
	case 2:
		h ^= (uint32_t)data[(len & ~(size_t)3) + 1] << 8;
		__attribute__((fallthrough));
	case 1:
		h ^= data[len & ~(size_t)3];
		h *= m;
		break;
	default:
		break;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return (int32_t)h;
}

/* Kafka's default partitioner: toPositive(murmur2(key)) % n. */
static uint32_t kafka_partition(const char *key, uint32_t n)
{
	return ((uint32_t)kafka_murmur2(key, strlen(key)) & 0x7fffffffu) % n;
}

static uint32_t produce_key(int fd, const char *topic, const char *key)
{
	size_t len;
	uint8_t *batch = tc_batch(key, 0, 1, &len);
	Brokerd__Response *r = tc_produce_key(fd, topic, key, strlen(key), BROKERD__ACKS__ACKS_ALL,
					      batch, len);
	uint32_t p;

	free(batch);
	TC_OK(r);
	p = r->produce->partition;
	tc_free(r);
	return p;
}

START_TEST(round_robin_and_key_hash)
{
	/* A prime partition count, so dropping the sign mask or taking the
	 * modulo of a signed hash would pick other partitions. */
	enum { N = 13, ROUNDS = 3 };
	static const struct {
		const char *key;
		int32_t hash;
	} vectors[] = {
		{ "21", -973932308 },
		{ "foobar", -790332482 },
		{ "a-little-bit-long-string", -985981536 },
	};
	int counts[N] = { 0 };
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "rr", N, NULL, 0);
	create(fd, "keyed", N, NULL, 0);

	/* Round-robin (no partition, no key): every partition in turn. */
	for (int i = 0; i < N * ROUNDS; i++) {
		size_t len;
		uint8_t *batch = tc_batch("rr", i, 1, &len);
		Brokerd__Response *r = tc_produce_key(fd, "rr", NULL, 0, BROKERD__ACKS__ACKS_ALL,
						      batch, len);

		free(batch);
		TC_OK(r);
		ck_assert_uint_lt(r->produce->partition, N);
		counts[r->produce->partition]++;
		tc_free(r);
	}
	for (int p = 0; p < N; p++)
		ck_assert_msg(counts[p] == ROUNDS, "round-robin gave partition %d %d batches", p,
			      counts[p]);

	/* Kafka's own murmur2 test vectors, then the partitions they pick. */
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *k = vectors[i].key;
		uint32_t want = ((uint32_t)vectors[i].hash & 0x7fffffffu) % N;

		ck_assert_int_eq(kafka_murmur2(k, strlen(k)), vectors[i].hash);
		ck_assert_msg(produce_key(fd, "keyed", k) == want, "key '%s': expected partition %u",
			      k, want);
		ck_assert_uint_eq(produce_key(fd, "keyed", k), want);
	}
	/* Worked by hand: (-790332482 as u32 & 0x7fffffff) % 13 = 1357151166 % 13. */
	ck_assert_uint_eq(kafka_partition("foobar", N), 7);
	/* Many keys of every length class: same key, same partition, and
	 * the one Kafka would choose. */
	memset(counts, 0, sizeof(counts));
	for (int i = 0; i < 60; i++) {
		char key[32];
		uint32_t p;

		snprintf(key, sizeof(key), "user-%d%.*s", i, i % 4, "xyz");
		p = produce_key(fd, "keyed", key);
		ck_assert_msg(p == kafka_partition(key, N), "key '%s': partition %u, Kafka says %u",
			      key, p, kafka_partition(key, N));
		ck_assert_uint_eq(produce_key(fd, "keyed", key), p);
		counts[p]++;
	}
	/* An empty key is a key too (murmur2 of zero bytes). */
	{
		size_t len;
		uint8_t *batch = tc_batch("empty", 0, 1, &len);
		Brokerd__Response *r = tc_produce_key(fd, "keyed", "", 0, BROKERD__ACKS__ACKS_ALL,
						      batch, len);
		free(batch);
		TC_OK(r);
		ck_assert_uint_eq(r->produce->partition,
				  ((uint32_t)kafka_murmur2("", 0) & 0x7fffffffu) % N);
		tc_free(r);
	}
	close(fd);
}
END_TEST

START_TEST(long_poll_wakes_on_produce)
{
	int cons, prod;
	int64_t t0, dt;
	Brokerd__Response *r;
	char **v;
	int64_t last;
	int n;

	tb_start(&b);
	cons = tc_connect(b.port);
	prod = tc_connect(b.port);
	create(prod, "lp", 2, NULL, 0);
	produce(prod, "lp", 0, "m", 0, 3);
	/* Consumer at the high watermark (3): waits up to 5 s for 1 byte. */
	tc_set_timeout(cons, 10000);
	ck_assert_int_eq(tc_send_fetch(cons, 77, "lp", 0, 3, 1 << 20, 5000, 1), 0);
	ck_assert_msg(!tc_readable(cons, 300), "long poll answered with nothing to read");
	/* A produce to another partition does not answer it either. */
	produce(prod, "lp", 1, "other", 0, 1);
	ck_assert_msg(!tc_readable(cons, 200), "long poll answered by another partition");
	t0 = tb_now_ms();
	ck_assert_int_eq(produce(prod, "lp", 0, "m", 3, 2), 3);
	r = tc_recv(cons);
	dt = tb_now_ms() - t0;
	ck_assert_msg(r != NULL, "long poll not answered");
	ck_assert_uint_eq(r->correlation_id, 77);
	TC_OK(r);
	ck_assert_msg(dt < 2000, "long poll answered %lld ms after the produce", (long long)dt);
	ck_assert_int_eq(r->fetch->high_watermark, 5);
	n = tc_values(r->fetch, 3, &v, &last);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(v[0], "m-3");
	ck_assert_str_eq(v[1], "m-4");
	ck_assert_int_eq(r->fetch->next_offset, 5);
	tc_free_values(v, n);
	tc_free(r);
	close(cons);
	close(prod);
}
END_TEST

/* Several consumers on one partition all wake on one produce, and a
 * request pipelined behind a long poll is answered after it, in order. */
START_TEST(long_poll_many_waiters)
{
	enum { NC = 3 };
	int cons[NC], prod;
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ApiVersionsRequest av = BROKERD__API_VERSIONS_REQUEST__INIT;
	Brokerd__Response *r;

	tb_start(&b);
	prod = tc_connect(b.port);
	create(prod, "fan", 1, NULL, 0);
	req.correlation_id = 100;
	req.op_case = BROKERD__REQUEST__OP_API_VERSIONS;
	req.api_versions = &av;
	for (int i = 0; i < NC; i++) {
		cons[i] = tc_connect(b.port);
		tc_set_timeout(cons[i], 10000);
		ck_assert_int_eq(tc_send_fetch(cons[i], 1, "fan", 0, 0, 1 << 20, 5000, 1), 0);
		ck_assert_int_eq(tc_send(cons[i], &req), 0);
	}
	/* The api_versions waits behind the long poll. */
	for (int i = 0; i < NC; i++)
		ck_assert_msg(!tc_readable(cons[i], i == 0 ? 300 : 0), "consumer %d answered early",
			      i);
	ck_assert_int_eq(produce(prod, "fan", 0, "f", 0, 2), 0);
	for (int i = 0; i < NC; i++) {
		char **v;
		int64_t last;
		int n;

		r = tc_recv(cons[i]);
		ck_assert_msg(r != NULL, "consumer %d not woken", i);
		ck_assert_uint_eq(r->correlation_id, 1);
		TC_OK(r);
		n = tc_values(r->fetch, 0, &v, &last);
		ck_assert_int_eq(n, 2);
		ck_assert_str_eq(v[1], "f-1");
		tc_free_values(v, n);
		tc_free(r);
		r = tc_recv(cons[i]);
		ck_assert_ptr_nonnull(r);
		ck_assert_uint_eq(r->correlation_id, 100);
		TC_OK(r);
		tc_free(r);
		close(cons[i]);
	}
	close(prod);
}
END_TEST

/* A long poll on a topic that is deleted meanwhile ends at once. */
START_TEST(long_poll_topic_deleted)
{
	int cons, adm;
	int64_t t0;
	Brokerd__Response *r;

	tb_start(&b);
	adm = tc_connect(b.port);
	create(adm, "doomed", 2, NULL, 0);
	cons = tc_connect(b.port);
	tc_set_timeout(cons, 10000);
	ck_assert_int_eq(tc_send_fetch(cons, 4, "doomed", 1, 0, 1 << 20, 5000, 1), 0);
	ck_assert(!tc_readable(cons, 300));
	t0 = tb_now_ms();
	r = tc_delete_topic(adm, "doomed");
	TC_OK(r);
	tc_free(r);
	r = tc_recv(cons);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->correlation_id, 4);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	ck_assert_int_lt(tb_now_ms() - t0, 2000);
	tc_free(r);
	/* The connection and the broker go on; the name can be reused. */
	create(cons, "doomed", 1, NULL, 0);
	close(cons);
	close(adm);
}
END_TEST

START_TEST(acks_levels)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ApiVersionsRequest av = BROKERD__API_VERSIONS_REQUEST__INIT;
	Brokerd__Response *r;
	size_t len;
	uint8_t *batch;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "acks", 1, NULL, 0);
	/* acks=none: no answer at all; the next request's answer is next. */
	batch = tc_batch("n", 0, 3, &len);
	ck_assert_int_eq(tc_send_produce(fd, 50, "acks", 0, BROKERD__ACKS__ACKS_NONE, batch, len),
			 0);
	free(batch);
	req.correlation_id = 51;
	req.op_case = BROKERD__REQUEST__OP_API_VERSIONS;
	req.api_versions = &av;
	ck_assert_int_eq(tc_send(fd, &req), 0);
	r = tc_recv(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->correlation_id, 51);
	TC_OK(r);
	tc_free(r);
	/* acks=leader: answered with the next offset. */
	batch = tc_batch("n", 3, 2, &len);
	r = tc_produce(fd, "acks", 0, BROKERD__ACKS__ACKS_LEADER, batch, len);
	free(batch);
	TC_OK(r);
	ck_assert_int_eq(r->produce->base_offset, 3);
	tc_free(r);
	ck_assert_int_eq(produce(fd, "acks", 0, "n", 5, 1), 5);
	{
		Brokerd__Response *f = tc_fetch(fd, "acks", 0, 0, 1 << 20, 0, 0);
		char **v;
		int64_t last;
		int n;

		TC_OK(f);
		n = tc_values(f->fetch, 0, &v, &last);
		ck_assert_int_eq(n, 6);
		for (int i = 0; i < n; i++) {
			char want[16];
			snprintf(want, sizeof(want), "n-%d", i);
			ck_assert_str_eq(v[i], want);
		}
		tc_free_values(v, n);
		tc_free(f);
	}
	/* An acks value outside the enum is a bad request. */
	batch = tc_batch("x", 0, 1, &len);
	r = tc_produce(fd, "acks", 0, (Brokerd__Acks)7, batch, len);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_REQUEST);
	tc_free(r);
	free(batch);
	close(fd);
}
END_TEST

START_TEST(long_poll_times_out)
{
	int fd;
	int64_t t0, dt;
	Brokerd__Response *r;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "quiet", 1, NULL, 0);
	produce(fd, "quiet", 0, "q", 0, 2);
	/* max_wait_ms 0 answers at once, even with nothing to read. */
	t0 = tb_now_ms();
	r = tc_fetch(fd, "quiet", 0, 2, 1 << 20, 0, 100);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch->records.len, 0);
	ck_assert_int_lt(tb_now_ms() - t0, 2000);
	tc_free(r);
	/* 300 ms with nothing produced: an empty answer after about that. */
	t0 = tb_now_ms();
	r = tc_fetch(fd, "quiet", 0, 2, 1 << 20, 300, 1);
	dt = tb_now_ms() - t0;
	TC_OK(r);
	ck_assert_msg(dt >= 250 && dt < 3000, "300 ms long poll took %lld ms", (long long)dt);
	ck_assert_uint_eq(r->fetch->records.len, 0);
	ck_assert_int_eq(r->fetch->high_watermark, 2);
	ck_assert_int_eq(r->fetch->next_offset, 2);
	tc_free(r);
	/* The connection is still in order afterwards. */
	r = tc_fetch(fd, "quiet", 0, 0, 1 << 20, 300, 1);
	TC_OK(r);
	ck_assert_uint_gt(r->fetch->records.len, 0);
	tc_free(r);
	close(fd);
}
END_TEST

START_TEST(long_poll_min_bytes)
{
	int cons, prod;
	size_t len;
	uint8_t *batch = tc_batch("mb", 0, 4, &len);
	uint32_t min = (uint32_t)(len * 5 / 2); /* two and a half batches */
	Brokerd__Response *r;
	int64_t t0;
	char **v;
	int64_t last;
	int n;

	tb_start(&b);
	cons = tc_connect(b.port);
	prod = tc_connect(b.port);
	create(prod, "mb", 1, NULL, 0);
	tc_set_timeout(cons, 15000);
	ck_assert_int_eq(tc_send_fetch(cons, 5, "mb", 0, 0, 1 << 20, 8000, min), 0);
	ck_assert(!tc_readable(cons, 200));
	/* One batch, then a second: still below min_bytes, so no answer. */
	for (int k = 0; k < 2; k++) {
		r = tc_produce(prod, "mb", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
		TC_OK(r);
		tc_free(r);
		ck_assert_msg(!tc_readable(cons, 400), "answered with %d batch(es) < min_bytes",
			      k + 1);
	}
	/* The third batch passes min_bytes: answered at once with all three. */
	t0 = tb_now_ms();
	r = tc_produce(prod, "mb", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_OK(r);
	tc_free(r);
	r = tc_recv(cons);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->correlation_id, 5);
	TC_OK(r);
	ck_assert_int_lt(tb_now_ms() - t0, 3000);
	ck_assert_uint_ge(r->fetch->records.len, min);
	n = tc_values(r->fetch, 0, &v, &last);
	ck_assert_int_eq(n, 12);
	ck_assert_int_eq(last, 11);
	tc_free_values(v, n);
	tc_free(r);

	/* min_bytes that never arrive: answered at max_wait_ms with what
	 * there is. */
	t0 = tb_now_ms();
	r = tc_fetch(cons, "mb", 0, 8, 1 << 20, 400, 1 << 20);
	TC_OK(r);
	ck_assert_int_ge(tb_now_ms() - t0, 350);
	n = tc_values(r->fetch, 8, &v, &last);
	ck_assert_int_eq(n, 4);
	tc_free_values(v, n);
	tc_free(r);
	free(batch);
	close(cons);
	close(prod);
}
END_TEST

START_TEST(offset_out_of_range)
{
	Brokerd__Response *r;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "range", 2, NULL, 0);
	produce(fd, "range", 0, "r", 0, 10);
	r = tc_fetch(fd, "range", 0, 11, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE);
	ck_assert_msg(strstr(r->error_message, "high watermark 10") != NULL, "%s",
		      r->error_message);
	tc_free(r);
	/* Far above, and with a long poll: answered at once, not after 5 s. */
	r = tc_fetch(fd, "range", 0, 1000000, 1 << 20, 5000, 1);
	TC_ERR(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE);
	tc_free(r);
	r = tc_fetch(fd, "range", 0, -1, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE);
	tc_free(r);
	/* At the high watermark: fine and empty. */
	r = tc_fetch(fd, "range", 0, 10, 1 << 20, 0, 0);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch->records.len, 0);
	ck_assert_int_eq(r->fetch->next_offset, 10);
	tc_free(r);
	/* Empty partition: 0 is fine, 1 is out of range. */
	r = tc_fetch(fd, "range", 1, 1, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE);
	tc_free(r);
	r = tc_fetch(fd, "range", 1, 0, 1 << 20, 0, 0);
	TC_OK(r);
	tc_free(r);
	r = tc_fetch(fd, "norange", 0, 0, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	tc_free(r);
	close(fd);
}
END_TEST

/* A fetch of a partition the topic does not have gets UNKNOWN_PARTITION
 * and leaves the broker serving (the answer once freed the request under
 * the handler's feet). */
START_TEST(fetch_unknown_partition)
{
	Brokerd__Response *r;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "twoparts", 2, NULL, 0);
	r = tc_fetch(fd, "twoparts", 2, 0, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_PARTITION);
	ck_assert_ptr_nonnull(strstr(r->error_message, "twoparts"));
	tc_free(r);
	r = tc_fetch(fd, "twoparts", 1, 0, 1 << 20, 0, 0);
	TC_OK(r);
	tc_free(r);
	close(fd);
}
END_TEST

START_TEST(list_offsets_by_time)
{
	/* Three batches of 10 records, an hour ago plus 1000/2000/3000 ms. */
	int64_t t = tb_wall_ms() - 3600000;
	Brokerd__Response *r;
	int fd;
	static const struct {
		int64_t dt, want;
	} cases[] = {
		{ -1000000, 0 }, { 1000, 0 }, { 1005, 5 }, { 1009, 9 }, { 1010, 10 },
		{ 1500, 10 },    { 2000, 10 }, { 2003, 13 }, { 3009, 29 }, { 3010, 30 },
		{ 99999999, 30 },
	};

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "times", 2, NULL, 0);
	for (int k = 0; k < 3; k++) {
		size_t len;
		uint8_t *batch = tc_batch_ts("t", k * 10, 10, t + (k + 1) * 1000, &len);
		r = tc_produce(fd, "times", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
		free(batch);
		TC_OK(r);
		tc_free(r);
	}
	r = tc_list_offsets(fd, "times", 0, -2);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, 0);
	ck_assert_int_eq(r->list_offsets->log_start_offset, 0);
	ck_assert_int_eq(r->list_offsets->high_watermark, 30);
	tc_free(r);
	r = tc_list_offsets(fd, "times", 0, -1);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, 30);
	tc_free(r);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ts = t + cases[i].dt;

		if (ts < 0)
			ts = 0;
		r = tc_list_offsets(fd, "times", 0, ts);
		TC_OK(r);
		ck_assert_msg(r->list_offsets->offset == cases[i].want,
			      "time +%lld: offset %lld, expected %lld", (long long)cases[i].dt,
			      (long long)r->list_offsets->offset, (long long)cases[i].want);
		tc_free(r);
	}
	/* Empty partition: earliest = latest = 0, any time gives 0. */
	r = tc_list_offsets(fd, "times", 1, -2);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, 0);
	tc_free(r);
	r = tc_list_offsets(fd, "times", 1, t);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, 0);
	tc_free(r);
	r = tc_list_offsets(fd, "times", 0, -3);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_REQUEST);
	tc_free(r);
	r = tc_list_offsets(fd, "times", 5, -1);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_PARTITION);
	tc_free(r);
	r = tc_list_offsets(fd, "nope", 0, -1);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	tc_free(r);
	close(fd);
}
END_TEST

/* A value prefix of about 1 KiB: two records fill half a 4 KiB segment. */
static const char *big_prefix(void)
{
	static char buf[1001];

	memset(buf, 'r', 1000);
	buf[1000] = '\0';
	return buf;
}

/* Produce to a topic with 4 KiB segments and 8 KiB retention until many
 * segments rolled, then wait (bounded) for retention to advance the log
 * start.  Returns the log start offset; *hw the high watermark. */
static int64_t produce_until_retained(int fd, const char *topic, int64_t *hw)
{
	static const char *const cfg[] = { "segment.bytes=4096", "retention.bytes=8192" };
	int64_t deadline, start = 0;
	Brokerd__Response *r;

	create(fd, topic, 1, cfg, 2);
	for (int k = 0; k < 20; k++)
		ck_assert_int_eq(produce(fd, topic, 0, big_prefix(), k * 2, 2), k * 2);
	*hw = 40;
	deadline = tb_now_ms() + 10000;
	while (tb_now_ms() < deadline) {
		r = tc_describe_topic(fd, topic);
		TC_OK(r);
		start = r->describe_topic->topic->partitions[0]->log_start_offset;
		/* Retention keeps at most ~8 KiB plus the active segment. */
		if (start > 0 && r->describe_topic->topic->partitions[0]->segment_count <= 4) {
			ck_assert_uint_le(r->describe_topic->topic->partitions[0]->size_bytes,
					  8192 + 2 * 4096);
			tc_free(r);
			return start;
		}
		tc_free(r);
		usleep(50000);
	}
	ck_abort_msg("retention did not advance the log start within 10 s (start %lld)",
		     (long long)start);
	return -1;
}

START_TEST(fetch_below_log_start)
{
	Brokerd__Response *r;
	int64_t start, hw;
	char want[1100];
	char **v;
	int64_t last;
	int fd, n;

	tb_set(&b, "retention.check.interval.ms=100");
	tb_start(&b);
	fd = tc_connect(b.port);
	start = produce_until_retained(fd, "ret", &hw);
	ck_assert_int_gt(start, 0);
	ck_assert_int_lt(start, hw);

	/* Offset 0 is gone: OFFSET_OUT_OF_RANGE naming the new log start. */
	for (int tries = 0;; tries++) {
		char needle[64];
		Brokerd__Response *e;

		r = tc_fetch(fd, "ret", 0, 0, 1 << 20, 0, 0);
		TC_ERR(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE);
		e = tc_list_offsets(fd, "ret", 0, -2);
		TC_OK(e);
		snprintf(needle, sizeof(needle), "log start %lld",
			 (long long)e->list_offsets->offset);
		if (e->list_offsets->offset == start || tries == 20) {
			ck_assert_msg(strstr(r->error_message, needle) != NULL,
				      "'%s' does not say '%s'", r->error_message, needle);
			tc_free(e);
			tc_free(r);
			break;
		}
		start = e->list_offsets->offset; /* retention moved on: again */
		tc_free(e);
		tc_free(r);
	}
	r = tc_fetch(fd, "ret", 0, start - 1, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE);
	tc_free(r);

	/* From the log start on, everything is there and in order. */
	r = tc_fetch(fd, "ret", 0, start, 1 << 20, 0, 0);
	TC_OK(r);
	ck_assert_int_eq(r->fetch->log_start_offset, start);
	ck_assert_int_eq(r->fetch->high_watermark, hw);
	n = tc_values(r->fetch, start, &v, &last);
	ck_assert_int_gt(n, 0);
	snprintf(want, sizeof(want), "%s-%lld", big_prefix(), (long long)start);
	ck_assert_str_eq(v[0], want);
	tc_free_values(v, n);
	tc_free(r);
	r = tc_list_offsets(fd, "ret", 0, -2);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, start);
	ck_assert_int_eq(r->list_offsets->log_start_offset, start);
	tc_free(r);
	/* Retention survives a restart: the log start stays put. */
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_fetch(fd, "ret", 0, 0, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE);
	tc_free(r);
	r = tc_list_offsets(fd, "ret", 0, -2);
	TC_OK(r);
	ck_assert_int_ge(r->list_offsets->offset, start);
	ck_assert_int_eq(r->list_offsets->high_watermark, hw);
	tc_free(r);
	close(fd);
}
END_TEST

/* ProduceResponse.log_start_offset is the partition's current log start
 * (docs/protocol.md), also once retention has moved it. */
START_TEST(produce_reports_log_start)
{
	Brokerd__Response *r;
	int64_t start, hw;
	size_t len;
	uint8_t *batch;
	int fd;

	tb_set(&b, "retention.check.interval.ms=100");
	tb_start(&b);
	fd = tc_connect(b.port);
	start = produce_until_retained(fd, "ret2", &hw);
	batch = tc_batch("after", 0, 1, &len);
	r = tc_produce(fd, "ret2", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	free(batch);
	TC_OK(r);
	ck_assert_int_eq(r->produce->base_offset, hw);
	ck_assert_msg(r->produce->log_start_offset >= start,
		      "produce answered log_start_offset %lld; the log starts at %lld",
		      (long long)r->produce->log_start_offset, (long long)start);
	tc_free(r);
	close(fd);
}
END_TEST

Suite *fetch_suite(void);
Suite *fetch_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc = tcase_create("fetch");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, many_partitions_round_trip);
	tcase_add_test(tc, round_robin_and_key_hash);
	tcase_add_test(tc, long_poll_wakes_on_produce);
	tcase_add_test(tc, long_poll_many_waiters);
	tcase_add_test(tc, long_poll_topic_deleted);
	tcase_add_test(tc, acks_levels);
	tcase_add_test(tc, long_poll_times_out);
	tcase_add_test(tc, long_poll_min_bytes);
	tcase_add_test(tc, offset_out_of_range);
	tcase_add_test(tc, fetch_unknown_partition);
	tcase_add_test(tc, list_offsets_by_time);
	tcase_add_test(tc, fetch_below_log_start);
	tcase_add_test(tc, produce_reports_log_start);
	suite_add_tcase(s, tc);
	return s;
}
