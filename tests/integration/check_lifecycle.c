/* check_lifecycle — a topic's life under load, against a real brokerd (run
 * under ASan by make check): delete a topic while clients produce to it,
 * long-poll it, commit offsets on it and read a big zero-copy fetch from it
 * slowly, then recreate it under the same name, several cycles; and
 * retention deleting the segment a slow reader's fetch is being sent from.
 * Each in-flight request must be answered (success or UNKNOWN_TOPIC), the
 * new topic must start empty with no committed offsets (also after a
 * restart, when the offsets log is replayed), and the broker must neither
 * crash nor report a memory error. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* A connection whose receive buffer is tiny, so a big fetch response stays
 * stuck in the broker's output (the zero-copy file segment still queued)
 * until the test reads it. */
static int slow_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
		      strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Pipelining: requests packed back to back into one buffer, sent with one
 * write, so the broker reads (and dispatches) them in the same loop turn. */
struct pipe_buf {
	uint8_t *p;
	size_t len, cap;
	int n; /* requests packed */
};

static void pb_add(struct pipe_buf *pb, Brokerd__Request *req)
{
	size_t n = brokerd__request__get_packed_size(req);

	if (pb->len + n + 4 > pb->cap) {
		pb->cap = (pb->len + n + 4) * 2;
		pb->p = realloc(pb->p, pb->cap);
		ck_assert_ptr_nonnull(pb->p);
	}
	pb->p[pb->len++] = (uint8_t)(n >> 24);
	pb->p[pb->len++] = (uint8_t)(n >> 16);
	pb->p[pb->len++] = (uint8_t)(n >> 8);
	pb->p[pb->len++] = (uint8_t)n;
	pb->len += brokerd__request__pack(req, pb->p + pb->len);
	pb->n++;
}

static void pb_produce(struct pipe_buf *pb, uint64_t corr, const char *topic, uint32_t p,
		       const uint8_t *batch, size_t len)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ProduceRequest q = BROKERD__PRODUCE_REQUEST__INIT;

	q.topic = (char *)topic;
	q.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
	q.partition = p;
	q.acks = BROKERD__ACKS__ACKS_ALL;
	q.records.data = (uint8_t *)batch;
	q.records.len = len;
	req.correlation_id = corr;
	req.op_case = BROKERD__REQUEST__OP_PRODUCE;
	req.produce = &q;
	pb_add(pb, &req);
}

static void pb_commit(struct pipe_buf *pb, uint64_t corr, const char *group, const char *topic,
		      uint32_t p, int64_t offset)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CommitOffsetsRequest q = BROKERD__COMMIT_OFFSETS_REQUEST__INIT;
	Brokerd__OffsetCommit c = BROKERD__OFFSET_COMMIT__INIT, *pc = &c;

	c.topic = (char *)topic;
	c.partition = p;
	c.offset = offset;
	c.metadata = (char *)"";
	q.group = (char *)group;
	q.offsets = &pc;
	q.n_offsets = 1;
	req.correlation_id = corr;
	req.op_case = BROKERD__REQUEST__OP_COMMIT_OFFSETS;
	req.commit_offsets = &q;
	pb_add(pb, &req);
}

static void pb_delete(struct pipe_buf *pb, uint64_t corr, const char *topic)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__DeleteTopicRequest q = BROKERD__DELETE_TOPIC_REQUEST__INIT;

	q.topic = (char *)topic;
	req.correlation_id = corr;
	req.op_case = BROKERD__REQUEST__OP_DELETE_TOPIC;
	req.delete_topic = &q;
	pb_add(pb, &req);
}

static void pb_fetch(struct pipe_buf *pb, uint64_t corr, const char *topic, uint32_t p,
		     int64_t offset, uint32_t max_wait_ms, uint32_t min_bytes)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__FetchRequest q = BROKERD__FETCH_REQUEST__INIT;

	q.topic = (char *)topic;
	q.partition = p;
	q.offset = offset;
	q.max_bytes = 1 << 20;
	q.max_wait_ms = max_wait_ms;
	q.min_bytes = min_bytes;
	req.correlation_id = corr;
	req.op_case = BROKERD__REQUEST__OP_FETCH;
	req.fetch = &q;
	pb_add(pb, &req);
}

static void pb_send(int fd, struct pipe_buf *pb)
{
	ck_assert_int_eq(tc_send_raw(fd, pb->p, pb->len), 0);
	free(pb->p);
	memset(pb, 0, sizeof(*pb));
}

static const char *big_prefix(int cycle)
{
	static char buf[1001];

	memset(buf, 'a' + cycle % 26, 1000);
	buf[1000] = '\0';
	return buf;
}

static void create(int fd, const char *topic, uint32_t parts, const char *const *kv, size_t n)
{
	Brokerd__Response *r = tc_create_topic_cfg(fd, topic, parts, kv, n);

	TC_OK(r);
	tc_free(r);
}

/* Produce n records "<prefix>-<first..>" to partition p, acks=all. */
static void produce(int fd, const char *topic, uint32_t p, const char *prefix, int first, int n)
{
	size_t len;
	uint8_t *batch = tc_batch(prefix, first, n, &len);
	Brokerd__Response *r = tc_produce(fd, topic, p, BROKERD__ACKS__ACKS_ALL, batch, len);

	free(batch);
	TC_OK(r);
	ck_assert_int_eq(r->produce->base_offset, first);
	tc_free(r);
}

static void commit1(int fd, const char *group, const char *topic, uint32_t p, int64_t offset)
{
	Brokerd__OffsetCommit c = BROKERD__OFFSET_COMMIT__INIT, *pc = &c;
	Brokerd__Response *r;

	c.topic = (char *)topic;
	c.partition = p;
	c.offset = offset;
	c.metadata = (char *)"";
	r = tc_commit(fd, group, &pc, 1);
	TC_OK(r);
	tc_free(r);
}

/* The committed offset of group/topic/p (-1: none). */
static int64_t committed(int fd, const char *group, const char *topic, uint32_t p)
{
	Brokerd__TopicPartition tp = BROKERD__TOPIC_PARTITION__INIT, *ptp = &tp;
	Brokerd__Response *r;
	int64_t off;

	tp.topic = (char *)topic;
	tp.partition = p;
	r = tc_fetch_offsets(fd, group, &ptp, 1);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch_offsets->n_offsets, 1);
	off = r->fetch_offsets->offsets[0]->offset;
	tc_free(r);
	return off;
}

static int64_t list_offset(int fd, const char *topic, uint32_t p, int64_t which)
{
	Brokerd__Response *r = tc_list_offsets(fd, topic, p, which);
	int64_t off;

	TC_OK(r);
	off = r->list_offsets->offset;
	tc_free(r);
	return off;
}

/* The topic exists, is empty from offset 0 on every partition and has no
 * committed offsets; a produce lands at offset 0 and reads back as itself. */
static void expect_fresh(int fd, const char *topic, uint32_t parts, const char *group, int cycle)
{
	char prefix[32], want[64];

	for (uint32_t p = 0; p < parts; p++) {
		Brokerd__Response *r;
		char **v;
		int64_t last;
		int n;

		ck_assert_int_eq(list_offset(fd, topic, p, -2), 0);
		ck_assert_int_eq(list_offset(fd, topic, p, -1), 0);
		ck_assert_msg(committed(fd, group, topic, p) == -1,
			      "cycle %d: %s/%u has a committed offset %lld of the deleted topic",
			      cycle, topic, p, (long long)committed(fd, group, topic, p));
		r = tc_fetch(fd, topic, p, 0, 1 << 20, 0, 0);
		TC_OK(r);
		ck_assert_int_eq(r->fetch->high_watermark, 0);
		ck_assert_int_eq(r->fetch->log_start_offset, 0);
		ck_assert_uint_eq(r->fetch->records.len, 0);
		tc_free(r);
		snprintf(prefix, sizeof(prefix), "new%d", cycle);
		produce(fd, topic, p, prefix, 0, 1);
		r = tc_fetch(fd, topic, p, 0, 1 << 20, 0, 0);
		TC_OK(r);
		ck_assert_int_eq(r->fetch->high_watermark, 1);
		n = tc_values(r->fetch, 0, &v, &last);
		ck_assert_int_eq(n, 1);
		snprintf(want, sizeof(want), "%s-0", prefix);
		ck_assert_str_eq(v[0], want);
		tc_free_values(v, n);
		tc_free(r);
	}
}

/* Read every answer owed on fd: `n` of them, each OK or UNKNOWN_TOPIC.
 * Counts the UNKNOWN_TOPIC ones into *gone. */
static void drain(int fd, int n, const char *who, int *gone)
{
	for (int i = 0; i < n; i++) {
		Brokerd__Response *r = tc_recv(fd);

		ck_assert_msg(r != NULL, "%s: answer %d of %d never came", who, i + 1, n);
		ck_assert_msg(r->error == BROKERD__ERROR_CODE__OK ||
				      r->error == BROKERD__ERROR_CODE__UNKNOWN_TOPIC,
			      "%s: answer %d: error %d: %s", who, i + 1, (int)r->error,
			      r->error_message);
		if (r->error == BROKERD__ERROR_CODE__UNKNOWN_TOPIC) {
			ck_assert_str_ne(r->error_message, "");
			(*gone)++;
		}
		tc_free(r);
	}
}

#define CYCLES     3
#define PRODUCERS  3
#define PIPELINED  16
#define BIG_BATCHES 24 /* of 64 records of ~1 KiB: ~1.5 MiB in partition 1 */

START_TEST(delete_recreate_under_load)
{
	const char *topic = "lc", *group = "g";
	int admin, slow, lp[2], prod[PRODUCERS], racer;
	int gone_total = 0;
	uint64_t corr = 1;

	tb_start(&b);
	admin = tc_connect(b.port);
	create(admin, topic, 2, NULL, 0);
	for (int cycle = 0; cycle < CYCLES; cycle++) {
		struct pipe_buf pb = { 0 };
		size_t blen;
		uint8_t *small = tc_batch("p", 0, 4, &blen);
		Brokerd__Response *r;
		int gone = 0, nval;
		char **v, want[1100];
		int64_t last, hw0;

		/* Data in both partitions and a committed offset. */
		produce(admin, topic, 0, "old", 0, 10);
		hw0 = 10;
		for (int k = 0; k < BIG_BATCHES; k++)
			produce(admin, topic, 1, big_prefix(cycle), k * 64, 64);
		commit1(admin, group, topic, 0, 5);
		ck_assert_int_eq(committed(admin, group, topic, 0), 5);

		/* A big fetch read slowly: its zero-copy file segment stays
		 * queued in the broker's output across the delete. */
		slow = slow_connect(b.port);
		ck_assert_int_eq(tc_send_fetch(slow, 7, topic, 1, 0, 4 << 20, 0, 0), 0);
		/* Long polls waiting past the high watermark. */
		for (int i = 0; i < 2; i++) {
			lp[i] = tc_connect(b.port);
			ck_assert_int_eq(tc_send_fetch(lp[i], 1, topic, (uint32_t)i,
						       i == 0 ? hw0 : BIG_BATCHES * 64, 1 << 20,
						       30000, 1 << 20),
					 0);
		}
		/* Producers with pipelined acks=all produces. */
		for (int i = 0; i < PRODUCERS; i++) {
			prod[i] = tc_connect(b.port);
			for (int k = 0; k < PIPELINED; k++)
				pb_produce(&pb, corr++, topic, (uint32_t)(k % 2), small, blen);
			pb_send(prod[i], &pb);
		}
		/* One connection whose produces, commit, delete and fetch are
		 * read in one loop turn: appends and a commit still in flight
		 * when the delete runs, and requests after it. */
		racer = tc_connect(b.port);
		for (int k = 0; k < 4; k++)
			pb_produce(&pb, corr++, topic, 0, small, blen);
		pb_commit(&pb, corr++, group, topic, 1, 3);
		pb_delete(&pb, corr++, topic);
		pb_produce(&pb, corr++, topic, 0, small, blen);
		pb_commit(&pb, corr++, group, topic, 0, 9);
		pb_fetch(&pb, corr++, topic, 0, 0, 0, 0);
		pb_send(racer, &pb);
		free(small);

		/* Every request is answered: OK or UNKNOWN_TOPIC. */
		drain(racer, 9, "racer", &gone);
		for (int i = 0; i < PRODUCERS; i++)
			drain(prod[i], PIPELINED, "producer", &gone);
		for (int i = 0; i < 2; i++) {
			r = tc_recv(lp[i]);
			ck_assert_msg(r != NULL, "long poll %d never answered", i);
			TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
			tc_free(r);
			close(lp[i]);
		}
		for (int i = 0; i < PRODUCERS; i++)
			close(prod[i]);
		close(racer);
		ck_assert_int_ge(gone, 3); /* at least the three after the delete */
		gone_total += gone;

		/* The slow reader gets the old bytes, whole. */
		r = tc_recv(slow);
		ck_assert_msg(r != NULL, "the slow fetch never completed");
		TC_OK(r);
		nval = tc_values(r->fetch, 0, &v, &last);
		ck_assert_int_gt(nval, 0);
		ck_assert_int_eq(last, nval - 1);
		for (int i = 0; i < nval; i += 97) {
			snprintf(want, sizeof(want), "%s-%d", big_prefix(cycle), i);
			ck_assert_str_eq(v[i], want);
		}
		tc_free_values(v, nval);
		tc_free(r);
		close(slow);

		/* Gone, then recreated empty under the same name. */
		r = tc_describe_topic(admin, topic);
		TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
		tc_free(r);
		ck_assert_int_eq(committed(admin, group, topic, 0), -1);
		ck_assert_int_eq(committed(admin, group, topic, 1), -1);
		create(admin, topic, 2, NULL, 0);
		expect_fresh(admin, topic, 2, group, cycle);
		/* Back to the state a cycle starts from: delete the probe. */
		r = tc_delete_topic(admin, topic);
		TC_OK(r);
		tc_free(r);
		create(admin, topic, 2, NULL, 0);
	}
	ck_assert_int_ge(gone_total, 3 * CYCLES);
	/* The offsets log replayed at start-up resurrects nothing either:
	 * killed, so no shutdown snapshot hides what the log says. */
	close(admin);
	ck_assert(!tb_log_contains(&b, "AddressSanitizer"));
	tb_kill9(&b);
	tb_start(&b);
	admin = tc_connect(b.port);
	expect_fresh(admin, topic, 2, group, CYCLES);
	close(admin);
	ck_assert_int_eq(tb_stop(&b), 0);
	ck_assert(!tb_log_contains(&b, "AddressSanitizer"));
	ck_assert(!tb_log_contains(&b, "runtime error"));
}
END_TEST

/* Retention deletes the segment a slow reader's fetch is being sent from:
 * the read completes with the old bytes (the slice holds the file), the
 * next fetch of that offset answers OFFSET_OUT_OF_RANGE naming the new log
 * start. */
START_TEST(retention_under_slow_reader)
{
	static const char *const cfg[] = { "segment.bytes=12MiB" };
	static const char *const shrink[] = { "retention.bytes=1MiB" };
	const char *topic = "rs";
	Brokerd__Response *r;
	int admin, slow, nval;
	int64_t deadline, start = 0, last;
	char **v, want[1100], needle[64];

	tb_set(&b, "retention.check.interval.ms=100");
	tb_start(&b);
	admin = tc_connect(b.port);
	create(admin, topic, 1, cfg, 1);
	/* ~14 MiB: segment 0 (12 MiB, more than the kernel buffers of a
	 * loopback connection hold, so the fetch's file segment stays queued
	 * in the broker) is sealed, ~2 MiB follow in segment 1. */
	for (int k = 0; k < 56; k++)
		produce(admin, topic, 0, big_prefix(0), k * 256, 256);
	r = tc_describe_topic(admin, topic);
	TC_OK(r);
	ck_assert_int_eq(r->describe_topic->topic->partitions[0]->segment_count, 2);
	tc_free(r);

	/* The whole of segment 0, read slowly. */
	slow = slow_connect(b.port);
	ck_assert_int_eq(tc_send_fetch(slow, 7, topic, 0, 0, 16 << 20, 0, 0), 0);
	/* Give the broker time to queue the slice (bounded; no speed claim:
	 * if it had not, the read below still must work). */
	tc_readable(slow, 200);

	/* Retention now wants segment 0 gone. */
	r = tc_alter_topic(admin, topic, shrink, 1, NULL, 0);
	TC_OK(r);
	tc_free(r);
	deadline = tb_now_ms() + 10000;
	while (tb_now_ms() < deadline && (start = list_offset(admin, topic, 0, -2)) == 0)
		usleep(50000);
	ck_assert_msg(start > 0, "retention did not advance the log start within 10 s");
	ck_assert(tb_log_contains(&b, "retention deleted segment 00000000000000000000"));

	/* The slow read completes, with the old bytes. */
	r = tc_recv(slow);
	ck_assert_msg(r != NULL, "the slow fetch never completed");
	TC_OK(r);
	nval = tc_values(r->fetch, 0, &v, &last);
	ck_assert_int_gt(nval, 0);
	ck_assert_int_eq(last, nval - 1);
	ck_assert_int_le(nval, start); /* the slice ends with segment 0 */
	for (int i = 0; i < nval; i++) {
		snprintf(want, sizeof(want), "%s-%d", big_prefix(0), i);
		ck_assert_str_eq(v[i], want);
	}
	tc_free_values(v, nval);
	tc_free(r);

	/* The next fetch of offset 0 names the new log start. */
	r = tc_fetch(slow, topic, 0, 0, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE);
	start = list_offset(admin, topic, 0, -2);
	snprintf(needle, sizeof(needle), "log start %lld", (long long)start);
	ck_assert_msg(strstr(r->error_message, needle) != NULL, "'%s' does not say '%s'",
		      r->error_message, needle);
	tc_free(r);
	/* And from there on the data is intact. */
	r = tc_fetch(admin, topic, 0, start, 1 << 20, 0, 0);
	TC_OK(r);
	nval = tc_values(r->fetch, start, &v, &last);
	ck_assert_int_gt(nval, 0);
	snprintf(want, sizeof(want), "%s-%lld", big_prefix(0), (long long)start);
	ck_assert_str_eq(v[0], want);
	tc_free_values(v, nval);
	tc_free(r);
	close(slow);
	close(admin);
	ck_assert_int_eq(tb_stop(&b), 0);
	ck_assert(!tb_log_contains(&b, "AddressSanitizer"));
}
END_TEST

Suite *lifecycle_suite(void);
Suite *lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, delete_recreate_under_load);
	tcase_add_test(tc, retention_under_slow_reader);
	suite_add_tcase(s, tc);
	return s;
}
