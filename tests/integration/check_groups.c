/* check_groups — consumer offsets end to end against a real brokerd:
 * commit and fetch with metadata, fetch of every partition of a group,
 * list_groups with lag, delete_group, all-or-nothing commits, topic
 * deletion forgetting offsets, and committed offsets surviving a graceful
 * restart and a kill -9 right after the commit was answered. */
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
	tb_start(&b);
}

static void teardown(void)
{
	tb_cleanup(&b);
}

/* Topic `topic` with `parts` partitions; partition p holds 10 * (p + 1)
 * records, so its high watermark is 10 * (p + 1). */
static void make_topic(int fd, const char *topic, uint32_t parts)
{
	Brokerd__Response *r = tc_create_topic(fd, topic, parts);

	TC_OK(r);
	tc_free(r);
	for (uint32_t p = 0; p < parts; p++) {
		size_t len;
		uint8_t *batch = tc_batch("rec", 0, 10 * (int)(p + 1), &len);
		r = tc_produce(fd, topic, p, BROKERD__ACKS__ACKS_ALL, batch, len);
		free(batch);
		TC_OK(r);
		tc_free(r);
	}
}

/* A commit of up to 8 entries built in place. */
struct commit {
	Brokerd__OffsetCommit c[8];
	Brokerd__OffsetCommit *pc[8];
	size_t n;
};

static void add(struct commit *cm, const char *topic, uint32_t p, int64_t offset,
		const char *metadata)
{
	Brokerd__OffsetCommit *c = &cm->c[cm->n];

	ck_assert_uint_lt(cm->n, 8);
	brokerd__offset_commit__init(c);
	c->topic = (char *)topic;
	c->partition = p;
	c->offset = offset;
	c->metadata = (char *)metadata;
	cm->pc[cm->n++] = c;
}

static Brokerd__Response *commit(int fd, const char *group, struct commit *cm)
{
	return tc_commit(fd, group, cm->pc, cm->n);
}

static void commit_ok(int fd, const char *group, struct commit *cm)
{
	Brokerd__Response *r = commit(fd, group, cm);

	TC_OK(r);
	ck_assert_int_eq(r->op_case, BROKERD__RESPONSE__OP_COMMIT_OFFSETS);
	tc_free(r);
}

/* The committed offset of one partition (fetch_offsets with that partition
 * named); fails the test on an error.  Caller frees *r. */
static const Brokerd__CommittedOffset *fetch1(int fd, const char *group, const char *topic,
					      uint32_t p, Brokerd__Response **r)
{
	Brokerd__TopicPartition tp = BROKERD__TOPIC_PARTITION__INIT, *ptp = &tp;

	tp.topic = (char *)topic;
	tp.partition = p;
	*r = tc_fetch_offsets(fd, group, &ptp, 1);
	TC_OK(*r);
	ck_assert_uint_eq((*r)->fetch_offsets->n_offsets, 1);
	ck_assert_str_eq((*r)->fetch_offsets->offsets[0]->topic, topic);
	ck_assert_uint_eq((*r)->fetch_offsets->offsets[0]->partition, p);
	return (*r)->fetch_offsets->offsets[0];
}

/* Assert partition p of topic has committed offset `offset` and metadata
 * `md` (offset -1: nothing committed). */
static void expect_committed(int fd, const char *group, const char *topic, uint32_t p,
			     int64_t offset, const char *md)
{
	Brokerd__Response *r;
	const Brokerd__CommittedOffset *co = fetch1(fd, group, topic, p, &r);

	ck_assert_msg(co->offset == offset, "%s %s/%u: committed %lld, expected %lld", group,
		      topic, p, (long long)co->offset, (long long)offset);
	if (md != NULL)
		ck_assert_str_eq(co->metadata, md);
	tc_free(r);
}

START_TEST(commit_and_fetch)
{
	int fd = tc_connect(b.port);
	struct commit cm = { .n = 0 };
	Brokerd__Response *r;
	Brokerd__TopicPartition tps[3], *ptps[3];
	const Brokerd__FetchOffsetsResponse *f;
	int64_t wall = tb_wall_ms();
	char md[1025];

	make_topic(fd, "t", 4);
	make_topic(fd, "u", 1);
	add(&cm, "t", 0, 5, "meta-0");
	add(&cm, "t", 1, 7, "");
	add(&cm, "u", 0, 10, "{\"host\":\"c1\"}");
	commit_ok(fd, "g1", &cm);

	/* Named partitions, one never committed. */
	for (int i = 0; i < 3; i++) {
		brokerd__topic_partition__init(&tps[i]);
		tps[i].topic = (char *)"t";
		tps[i].partition = (uint32_t)i;
		ptps[i] = &tps[i];
	}
	r = tc_fetch_offsets(fd, "g1", ptps, 3);
	TC_OK(r);
	f = r->fetch_offsets;
	ck_assert_uint_eq(f->n_offsets, 3);
	ck_assert_str_eq(f->offsets[0]->topic, "t");
	ck_assert_uint_eq(f->offsets[0]->partition, 0);
	ck_assert_int_eq(f->offsets[0]->offset, 5);
	ck_assert_str_eq(f->offsets[0]->metadata, "meta-0");
	ck_assert_int_ge(f->offsets[0]->commit_time_ms, wall - 60000);
	ck_assert_int_le(f->offsets[0]->commit_time_ms, wall + 60000);
	ck_assert_int_eq(f->offsets[0]->high_watermark, 10);
	ck_assert_int_eq(f->offsets[0]->lag, 5);
	ck_assert_int_eq(f->offsets[1]->offset, 7);
	ck_assert_str_eq(f->offsets[1]->metadata, "");
	ck_assert_int_eq(f->offsets[1]->high_watermark, 20);
	ck_assert_int_eq(f->offsets[1]->lag, 13);
	ck_assert_uint_eq(f->offsets[2]->partition, 2);
	ck_assert_int_eq(f->offsets[2]->offset, -1);
	ck_assert_int_eq(f->offsets[2]->high_watermark, 30);
	ck_assert_int_eq(f->offsets[2]->lag, -1);
	tc_free(r);

	/* Every committed partition of the group, in (topic, partition) order. */
	r = tc_fetch_offsets(fd, "g1", NULL, 0);
	TC_OK(r);
	f = r->fetch_offsets;
	ck_assert_uint_eq(f->n_offsets, 3);
	ck_assert_str_eq(f->offsets[0]->topic, "t");
	ck_assert_uint_eq(f->offsets[0]->partition, 0);
	ck_assert_str_eq(f->offsets[1]->topic, "t");
	ck_assert_uint_eq(f->offsets[1]->partition, 1);
	ck_assert_str_eq(f->offsets[2]->topic, "u");
	ck_assert_int_eq(f->offsets[2]->offset, 10);
	ck_assert_str_eq(f->offsets[2]->metadata, "{\"host\":\"c1\"}");
	ck_assert_int_eq(f->offsets[2]->lag, 0);
	tc_free(r);

	/* A later commit replaces offset and metadata; others stay. */
	cm.n = 0;
	add(&cm, "t", 0, 9, "meta-1");
	commit_ok(fd, "g1", &cm);
	expect_committed(fd, "g1", "t", 0, 9, "meta-1");
	expect_committed(fd, "g1", "t", 1, 7, "");
	/* Metadata of exactly 1 KiB is fine; one byte more is refused. */
	memset(md, 'm', 1024);
	md[1024] = '\0';
	cm.n = 0;
	add(&cm, "t", 3, 1, md);
	commit_ok(fd, "g1", &cm);
	expect_committed(fd, "g1", "t", 3, 1, md);
	/* Another group is separate; an unknown group has no offsets. */
	expect_committed(fd, "g2", "t", 0, -1, "");
	r = tc_fetch_offsets(fd, "g2", NULL, 0);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch_offsets->n_offsets, 0);
	tc_free(r);
	close(fd);
}
END_TEST

START_TEST(commit_validation)
{
	int fd = tc_connect(b.port);
	struct commit cm = { .n = 0 };
	Brokerd__Response *r;
	char md[1026], group[257];

	make_topic(fd, "t", 2);
	add(&cm, "t", 0, 3, "first");
	commit_ok(fd, "g", &cm);

	/* All or nothing: one unknown topic, nothing of the commit lands. */
	cm.n = 0;
	add(&cm, "t", 0, 8, "second");
	add(&cm, "t", 1, 4, "second");
	add(&cm, "nosuch", 0, 1, "");
	r = commit(fd, "g", &cm);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	ck_assert_ptr_nonnull(strstr(r->error_message, "nosuch"));
	tc_free(r);
	expect_committed(fd, "g", "t", 0, 3, "first");
	expect_committed(fd, "g", "t", 1, -1, NULL);
	/* The same for an unknown partition, a negative offset, metadata
	 * over 1 KiB. */
	cm.n = 0;
	add(&cm, "t", 1, 4, "");
	add(&cm, "t", 2, 4, "");
	r = commit(fd, "g", &cm);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_PARTITION);
	tc_free(r);
	cm.n = 0;
	add(&cm, "t", 1, 4, "");
	add(&cm, "t", 0, -5, "");
	r = commit(fd, "g", &cm);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_REQUEST);
	tc_free(r);
	memset(md, 'x', 1025);
	md[1025] = '\0';
	cm.n = 0;
	add(&cm, "t", 1, 4, "");
	add(&cm, "t", 0, 4, md);
	r = commit(fd, "g", &cm);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_REQUEST);
	tc_free(r);
	expect_committed(fd, "g", "t", 0, 3, "first");
	expect_committed(fd, "g", "t", 1, -1, NULL);
	/* Group ids: empty and over 255 bytes are refused. */
	cm.n = 0;
	add(&cm, "t", 1, 4, "");
	r = commit(fd, "", &cm);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_GROUP);
	tc_free(r);
	memset(group, 'g', 256);
	group[256] = '\0';
	r = commit(fd, group, &cm);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_GROUP);
	tc_free(r);
	r = tc_fetch_offsets(fd, "", NULL, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_GROUP);
	tc_free(r);
	group[255] = '\0';
	commit_ok(fd, group, &cm);
	expect_committed(fd, group, "t", 1, 4, "");
	/* A commit with no offsets is a bad request. */
	cm.n = 0;
	r = commit(fd, "g", &cm);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_REQUEST);
	tc_free(r);
	close(fd);
}
END_TEST

/* The summary of group in a list_groups answer, or NULL. */
static const Brokerd__GroupSummary *group_in(const Brokerd__Response *r, const char *group)
{
	for (size_t i = 0; i < r->list_groups->n_groups; i++)
		if (strcmp(r->list_groups->groups[i]->group, group) == 0)
			return r->list_groups->groups[i];
	return NULL;
}

START_TEST(list_and_delete_groups)
{
	int fd = tc_connect(b.port);
	struct commit cm = { .n = 0 };
	const Brokerd__GroupSummary *g;
	Brokerd__Response *r;
	size_t len;
	uint8_t *batch;

	make_topic(fd, "t", 3); /* high watermarks 10, 20, 30 */
	r = tc_list_groups(fd);
	TC_OK(r);
	ck_assert_uint_eq(r->list_groups->n_groups, 0);
	tc_free(r);
	add(&cm, "t", 0, 4, "");  /* lag 6 */
	add(&cm, "t", 2, 30, ""); /* lag 0 */
	commit_ok(fd, "readers", &cm);
	cm.n = 0;
	add(&cm, "t", 1, 0, ""); /* lag 20 */
	commit_ok(fd, "archive", &cm);

	r = tc_list_groups(fd);
	TC_OK(r);
	ck_assert_uint_eq(r->list_groups->n_groups, 2);
	g = group_in(r, "readers");
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->partitions, 2);
	ck_assert_int_eq(g->lag, 6);
	g = group_in(r, "archive");
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->partitions, 1);
	ck_assert_int_eq(g->lag, 20);
	tc_free(r);

	/* Lag follows new records. */
	batch = tc_batch("more", 0, 5, &len);
	r = tc_produce(fd, "t", 2, BROKERD__ACKS__ACKS_ALL, batch, len);
	free(batch);
	TC_OK(r);
	tc_free(r);
	r = tc_list_groups(fd);
	TC_OK(r);
	g = group_in(r, "readers");
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(g->lag, 11);
	tc_free(r);

	/* Delete one group: gone from list and fetch; twice is an error. */
	r = tc_delete_group(fd, "readers");
	TC_OK(r);
	ck_assert_int_eq(r->op_case, BROKERD__RESPONSE__OP_DELETE_GROUP);
	tc_free(r);
	r = tc_list_groups(fd);
	TC_OK(r);
	ck_assert_uint_eq(r->list_groups->n_groups, 1);
	ck_assert_ptr_null(group_in(r, "readers"));
	ck_assert_ptr_nonnull(group_in(r, "archive"));
	tc_free(r);
	r = tc_fetch_offsets(fd, "readers", NULL, 0);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch_offsets->n_offsets, 0);
	tc_free(r);
	expect_committed(fd, "readers", "t", 0, -1, NULL);
	r = tc_delete_group(fd, "readers");
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_GROUP);
	ck_assert_ptr_nonnull(strstr(r->error_message, "readers"));
	tc_free(r);
	r = tc_delete_group(fd, "never");
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_GROUP);
	tc_free(r);
	r = tc_delete_group(fd, "");
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_GROUP);
	tc_free(r);
	expect_committed(fd, "archive", "t", 1, 0, NULL);
	/* A deleted group can commit again from scratch. */
	cm.n = 0;
	add(&cm, "t", 1, 2, "again");
	commit_ok(fd, "readers", &cm);
	expect_committed(fd, "readers", "t", 0, -1, NULL);
	expect_committed(fd, "readers", "t", 1, 2, "again");

	/* The deletion is durable. */
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_list_groups(fd);
	TC_OK(r);
	ck_assert_uint_eq(r->list_groups->n_groups, 2);
	g = group_in(r, "readers");
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->partitions, 1);
	tc_free(r);
	expect_committed(fd, "readers", "t", 0, -1, NULL);
	close(fd);
}
END_TEST

/* Number of offsets group has committed (fetch of all partitions). */
static size_t n_committed(int fd, const char *group)
{
	Brokerd__Response *r = tc_fetch_offsets(fd, group, NULL, 0);
	size_t n;

	TC_OK(r);
	n = r->fetch_offsets->n_offsets;
	tc_free(r);
	return n;
}

START_TEST(topic_delete_forgets_offsets)
{
	int fd = tc_connect(b.port);
	struct commit cm = { .n = 0 };
	Brokerd__Response *r;
	int64_t deadline;

	make_topic(fd, "keep", 1);
	make_topic(fd, "drop", 2);
	add(&cm, "keep", 0, 1, "k");
	add(&cm, "drop", 0, 2, "d");
	add(&cm, "drop", 1, 3, "d");
	commit_ok(fd, "g", &cm);
	r = tc_delete_topic(fd, "drop");
	TC_OK(r);
	tc_free(r);
	/* (That they are gone at once is topic_delete_offsets_gone_at_once.) */
	deadline = tb_now_ms() + 5000;
	while (n_committed(fd, "g") != 1 && tb_now_ms() < deadline)
		usleep(10000);
	r = tc_fetch_offsets(fd, "g", NULL, 0);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch_offsets->n_offsets, 1);
	ck_assert_str_eq(r->fetch_offsets->offsets[0]->topic, "keep");
	tc_free(r);
	/* A topic re-created under the name starts without offsets, also
	 * after a restart. */
	make_topic(fd, "drop", 2);
	expect_committed(fd, "g", "drop", 0, -1, NULL);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	tb_start(&b);
	fd = tc_connect(b.port);
	expect_committed(fd, "g", "drop", 0, -1, NULL);
	expect_committed(fd, "g", "drop", 1, -1, NULL);
	expect_committed(fd, "g", "keep", 0, 1, "k");
	close(fd);
}
END_TEST

/* delete_topic forgets the topic's offsets at once, not when their
 * tombstones become durable: a client that deletes and re-creates a topic
 * and then asks for its group's offsets must not get the old topic's
 * offsets for the new, empty topic.  The three requests are pipelined, so
 * the broker handles them in one read. */
START_TEST(topic_delete_offsets_gone_at_once)
{
	int fd = tc_connect(b.port);
	struct commit cm = { .n = 0 };
	Brokerd__Request del = BROKERD__REQUEST__INIT, crt = BROKERD__REQUEST__INIT,
			 fo = BROKERD__REQUEST__INIT;
	Brokerd__DeleteTopicRequest dq = BROKERD__DELETE_TOPIC_REQUEST__INIT;
	Brokerd__CreateTopicRequest cq = BROKERD__CREATE_TOPIC_REQUEST__INIT;
	Brokerd__FetchOffsetsRequest fq = BROKERD__FETCH_OFFSETS_REQUEST__INIT;
	Brokerd__Response *r;

	make_topic(fd, "drop", 1);
	add(&cm, "drop", 0, 7, "old");
	commit_ok(fd, "g", &cm);
	dq.topic = cq.topic = (char *)"drop";
	cq.partitions = 1;
	fq.group = (char *)"g";
	del.correlation_id = 1;
	del.op_case = BROKERD__REQUEST__OP_DELETE_TOPIC;
	del.delete_topic = &dq;
	crt.correlation_id = 2;
	crt.op_case = BROKERD__REQUEST__OP_CREATE_TOPIC;
	crt.create_topic = &cq;
	fo.correlation_id = 3;
	fo.op_case = BROKERD__REQUEST__OP_FETCH_OFFSETS;
	fo.fetch_offsets = &fq;
	ck_assert_int_eq(tc_send(fd, &del), 0);
	ck_assert_int_eq(tc_send(fd, &crt), 0);
	ck_assert_int_eq(tc_send(fd, &fo), 0);
	for (uint64_t c = 1; c <= 2; c++) {
		r = tc_recv(fd);
		ck_assert_ptr_nonnull(r);
		ck_assert_uint_eq(r->correlation_id, c);
		TC_OK(r);
		tc_free(r);
	}
	r = tc_recv(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->correlation_id, 3);
	TC_OK(r);
	for (size_t i = 0; i < r->fetch_offsets->n_offsets; i++) {
		const Brokerd__CommittedOffset *co = r->fetch_offsets->offsets[i];
		ck_assert_msg(strcmp(co->topic, "drop") != 0,
			      "after delete_topic answered OK, group g still has drop/%u = %lld "
			      "('%s', high watermark %lld) on the re-created topic",
			      co->partition, (long long)co->offset, co->metadata,
			      (long long)co->high_watermark);
	}
	tc_free(r);
	close(fd);
}
END_TEST


/* A topic that vanished while the broker was down, as when a delete's
 * tombstones never became durable (simulated by removing its files and
 * letting start-up adopt the rest): its offsets are forgotten at start-up,
 * before anyone can re-create the topic. */
START_TEST(offsets_of_vanished_topic_purged_at_start)
{
	int fd = tc_connect(b.port);
	struct commit cm = { .n = 0 };
	Brokerd__Response *r;
	char cmd[4200];

	make_topic(fd, "keep", 1);
	make_topic(fd, "gone", 1);
	add(&cm, "keep", 0, 1, "k");
	add(&cm, "gone", 0, 2, "g");
	commit_ok(fd, "g", &cm);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/data/topics.meta' '%s/data/gone-0'", b.dir, b.dir);
	ck_assert_int_eq(system(cmd), 0);
	tb_start(&b);
	ck_assert(tb_log_contains(&b, "forgetting the committed offsets of deleted topic 'gone'"));
	fd = tc_connect(b.port);
	r = tc_fetch_offsets(fd, "g", NULL, 0);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch_offsets->n_offsets, 1);
	ck_assert_str_eq(r->fetch_offsets->offsets[0]->topic, "keep");
	tc_free(r);
	make_topic(fd, "gone", 1);
	expect_committed(fd, "g", "gone", 0, -1, NULL);
	close(fd);
}
END_TEST

/* Fetch every offset of group (all partitions) as "topic/p=offset:md"
 * lines, with commit times, for comparing before and after a restart. */
static char *snapshot(int fd, const char *group)
{
	Brokerd__Response *r = tc_fetch_offsets(fd, group, NULL, 0);
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);

	ck_assert_ptr_nonnull(f);
	TC_OK(r);
	for (size_t i = 0; i < r->fetch_offsets->n_offsets; i++) {
		const Brokerd__CommittedOffset *co = r->fetch_offsets->offsets[i];
		fprintf(f, "%s/%u=%lld:%s@%lld\n", co->topic, co->partition, (long long)co->offset,
			co->metadata, (long long)co->commit_time_ms);
	}
	fclose(f);
	tc_free(r);
	return s;
}

START_TEST(offsets_survive_restart_and_kill9)
{
	static const char *const groups[] = { "ga", "gb", "gc" };
	char *before[3];
	int fd = tc_connect(b.port);

	make_topic(fd, "t", 4);
	for (int round = 0; round < 4; round++) {
		/* Several commits per group, the last one answered just before
		 * the stop; every one must be there afterwards. */
		for (int g = 0; g < 3; g++) {
			for (int k = 0; k < 3; k++) {
				struct commit cm = { .n = 0 };
				char md[64];

				snprintf(md, sizeof(md), "round %d commit %d", round, k);
				for (uint32_t p = 0; p < 4; p++)
					if ((p + (uint32_t)k + (uint32_t)g) % 3 != 0)
						add(&cm, "t", p, round * 100 + k * 10 + (int)p + g, md);
				commit_ok(fd, groups[g], &cm);
			}
		}
		for (int g = 0; g < 3; g++) {
			before[g] = snapshot(fd, groups[g]);
			ck_assert_uint_gt(strlen(before[g]), 0);
		}
		/* The last commit goes out, and the broker dies right after its
		 * answer (odd rounds) or stops gracefully (even rounds). */
		{
			struct commit cm = { .n = 0 };
			char md[64];

			snprintf(md, sizeof(md), "last of round %d", round);
			add(&cm, "t", 3, 1000 + round, md);
			commit_ok(fd, "glast", &cm);
			if (round % 2 == 1)
				tb_kill9(&b);
			else
				ck_assert_int_eq(tb_stop(&b), 0);
			close(fd);
		}
		tb_start(&b);
		fd = tc_connect(b.port);
		for (int g = 0; g < 3; g++) {
			char *after = snapshot(fd, groups[g]);
			ck_assert_msg(strcmp(before[g], after) == 0,
				      "round %d group %s:\nbefore:\n%safter:\n%s", round, groups[g],
				      before[g], after);
			free(after);
			free(before[g]);
		}
		{
			char md[64];

			snprintf(md, sizeof(md), "last of round %d", round);
			expect_committed(fd, "glast", "t", 3, 1000 + round, md);
		}
	}
	close(fd);
}
END_TEST

Suite *groups_suite(void);
Suite *groups_suite(void)
{
	Suite *s = suite_create("groups");
	TCase *tc = tcase_create("offsets");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, commit_and_fetch);
	tcase_add_test(tc, commit_validation);
	tcase_add_test(tc, list_and_delete_groups);
	tcase_add_test(tc, topic_delete_forgets_offsets);
	tcase_add_test(tc, topic_delete_offsets_gone_at_once);
	tcase_add_test(tc, offsets_survive_restart_and_kill9);
	tcase_add_test(tc, offsets_of_vanished_topic_purged_at_start);
	suite_add_tcase(s, tc);
	return s;
}
