/* check_hostile — bad frames and bad requests: each gets its error (or a
 * close) and the broker keeps serving every other client.  Bad topic and
 * group names at every entry point that takes one; slow-loris frames; many
 * clients declaring huge frames and sending part of them (broker memory
 * measured from /proc/<pid>/status). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
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
	tb_start(&b);
}

static void teardown(void)
{
	tb_cleanup(&b);
}

/* The broker still answers a fresh client. */
static void assert_serving(void)
{
	int fd = tc_connect(b.port);
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListTopicsRequest q = BROKERD__LIST_TOPICS_REQUEST__INIT;
	Brokerd__Response *r;

	req.op_case = BROKERD__REQUEST__OP_LIST_TOPICS;
	req.list_topics = &q;
	r = tc_call(fd, &req);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__OK);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}

/* Send raw bytes; expect an error response with `code`, then a close. */
static void expect_error_then_close(const void *buf, size_t len, Brokerd__ErrorCode code)
{
	int fd = tc_connect(b.port);
	Brokerd__Response *r;

	ck_assert_int_eq(tc_send_raw(fd, buf, len), 0);
	r = tc_recv(fd);
	ck_assert_msg(r != NULL, "no error response");
	ck_assert_int_eq(r->error, code);
	ck_assert_str_ne(r->error_message, "");
	brokerd__response__free_unpacked(r, NULL);
	ck_assert(tc_closed(fd));
	close(fd);
}

START_TEST(length_4gib)
{
	static const uint8_t f[] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__FRAME_TOO_LARGE);
	assert_serving();
}
END_TEST

START_TEST(length_max_plus_one)
{
	uint32_t n = 16u * 1024 * 1024 + 1; /* max.request.bytes default + 1 */
	uint8_t f[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__FRAME_TOO_LARGE);
	assert_serving();
}
END_TEST

START_TEST(garbage_bytes)
{
	uint8_t f[4 + 64];

	f[0] = f[1] = f[2] = 0;
	f[3] = 64;
	for (int i = 0; i < 64; i++)
		f[4 + i] = (uint8_t)(0xff - i * 7);
	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__INVALID_REQUEST);
	assert_serving();
}
END_TEST

START_TEST(truncated_varint)
{
	/* field 1 (varint) whose value never ends */
	static const uint8_t f[] = { 0, 0, 0, 3, 0x08, 0xff, 0xff };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__INVALID_REQUEST);
	assert_serving();
}
END_TEST

START_TEST(overlong_varint)
{
	/* field 1 (varint) over 11 bytes: a varint has at most 10 */
	static const uint8_t f[] = { 0, 0, 0, 12, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
				     0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__INVALID_REQUEST);
	assert_serving();
}
END_TEST

START_TEST(wrong_field_type)
{
	/* field 1 correlation_id (varint) sent as length-delimited */
	static const uint8_t f[] = { 0, 0, 0, 4, 0x0a, 0x02, 'h', 'i' };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__INVALID_REQUEST);
	assert_serving();
}
END_TEST

START_TEST(truncated_frame_then_close)
{
	static const uint8_t f[] = { 0, 0, 0, 100, 0x08, 0x01 };
	int fd = tc_connect(b.port);

	ck_assert_int_eq(tc_send_raw(fd, f, sizeof(f)), 0);
	close(fd);
	assert_serving();
}
END_TEST

START_TEST(unknown_operation_keeps_connection)
{
	/* correlation_id 9, then field 99 (an operation from the future) */
	static const uint8_t f[] = { 0, 0, 0, 5, 0x08, 0x09, 0x9a, 0x06, 0x00 };
	int fd = tc_connect(b.port);
	Brokerd__Response *r;

	ck_assert_int_eq(tc_send_raw(fd, f, sizeof(f)), 0);
	r = tc_recv(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNKNOWN_OPERATION);
	ck_assert_uint_eq(r->correlation_id, 9);
	brokerd__response__free_unpacked(r, NULL);
	/* same connection still works */
	r = tc_create_topic(fd, "after", 1);
	ck_assert_int_eq(r->error, 0);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

START_TEST(unsupported_version)
{
	int fd = tc_connect(b.port);
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListTopicsRequest q = BROKERD__LIST_TOPICS_REQUEST__INIT;
	Brokerd__Response *r;

	req.version = 99;
	req.op_case = BROKERD__REQUEST__OP_LIST_TOPICS;
	req.list_topics = &q;
	r = tc_call(fd, &req);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNSUPPORTED_VERSION);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

START_TEST(bad_produce_requests)
{
	int fd = tc_connect(b.port);
	Brokerd__Response *r = tc_create_topic(fd, "t", 2);
	size_t len;
	uint8_t *batch = tc_batch("x", 0, 3, &len);

	brokerd__response__free_unpacked(r, NULL);
	r = tc_produce(fd, "nope", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	ck_assert_ptr_nonnull(strstr(r->error_message, "'nope'"));
	brokerd__response__free_unpacked(r, NULL);
	r = tc_produce(fd, "t", 2, BROKERD__ACKS__ACKS_ALL, batch, len);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNKNOWN_PARTITION);
	brokerd__response__free_unpacked(r, NULL);
	batch[len - 1] ^= 0x40; /* CRC mismatch */
	r = tc_produce(fd, "t", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__CORRUPT_RECORD_BATCH);
	brokerd__response__free_unpacked(r, NULL);
	r = tc_produce(fd, "t", 0, BROKERD__ACKS__ACKS_ALL, batch, 20); /* truncated */
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__INVALID_RECORD_BATCH);
	brokerd__response__free_unpacked(r, NULL);
	r = tc_produce(fd, "t", 0, (Brokerd__Acks)7, batch, len);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__INVALID_REQUEST);
	brokerd__response__free_unpacked(r, NULL);
	free(batch);
	/* nothing became visible */
	r = tc_fetch(fd, "t", 0, 0, 1 << 20, 0, 0);
	ck_assert_int_eq(r->error, 0);
	ck_assert_int_eq(r->fetch->high_watermark, 0);
	ck_assert_uint_eq(r->fetch->records.len, 0);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

START_TEST(bad_topic_names)
{
	static const char *bad[] = { "", ".", "..", "../x", "a/b", "sp ace", "caf\xc3\xa9", "\xff" };
	int fd = tc_connect(b.port);
	char longname[301];
	Brokerd__Response *r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = tc_create_topic(fd, bad[i], 1);
		ck_assert_msg(r->error == BROKERD__ERROR_CODE__INVALID_TOPIC_NAME,
			      "name #%zu: error %d", i, r->error);
		brokerd__response__free_unpacked(r, NULL);
	}
	memset(longname, 'a', 300);
	longname[300] = '\0';
	r = tc_create_topic(fd, longname, 1);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__INVALID_TOPIC_NAME);
	brokerd__response__free_unpacked(r, NULL);
	ck_assert_int_eq(access("..", F_OK), 0);
	close(fd);
}
END_TEST

/* acks=none is never answered, not even when refused: the next answer on
 * the connection is the next request's. */
START_TEST(acks_none_refused_silently)
{
	int fd = tc_connect(b.port);
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ProduceRequest q = BROKERD__PRODUCE_REQUEST__INIT;
	Brokerd__ListTopicsRequest lt = BROKERD__LIST_TOPICS_REQUEST__INIT;
	Brokerd__Response *r;
	size_t len;
	uint8_t *batch = tc_batch("n", 0, 2, &len);

	q.topic = (char *)"missing";
	q.acks = BROKERD__ACKS__ACKS_NONE;
	q.records.data = batch;
	q.records.len = len;
	req.correlation_id = 50;
	req.op_case = BROKERD__REQUEST__OP_PRODUCE;
	req.produce = &q;
	ck_assert_int_eq(tc_send(fd, &req), 0);
	free(batch);
	brokerd__request__init(&req);
	req.correlation_id = 51;
	req.op_case = BROKERD__REQUEST__OP_LIST_TOPICS;
	req.list_topics = &lt;
	ck_assert_int_eq(tc_send(fd, &req), 0);
	r = tc_recv(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->correlation_id, 51);
	ck_assert_int_eq(r->error, 0);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

/* --- names at every entry point ------------------------------------------- */

struct name {
	const char *s;
	size_t len; /* bytes, NULs included */
};
#define NM(lit) { lit, sizeof(lit) - 1 }

enum { EP_CREATE, EP_PRODUCE, EP_FETCH, EP_DESCRIBE, EP_DELETE, EP_ALTER, EP_LIST_OFFSETS,
       EP_COMMIT, EP_FETCH_OFFSETS, EP_TOPIC_COUNT };
static const char *const ep_names[] = { "create", "produce", "fetch", "describe", "delete",
					"alter", "list_offsets", "commit_offsets",
					"fetch_offsets" };
enum { GP_COMMIT, GP_FETCH_OFFSETS, GP_DELETE, GP_COUNT };
static const char *const gp_names[] = { "commit_offsets", "fetch_offsets", "delete_group" };

/* Send req with every 0x1d byte inside the string `mark` (as packed)
 * turned into a NUL, which protobuf-c could not have encoded from a C
 * string; return the answer. */
static Brokerd__Response *call_patched(int fd, Brokerd__Request *req, const char *mark)
{
	size_t n, mlen = strlen(mark);
	uint8_t *buf, *p;
	Brokerd__Response *r;

	req->correlation_id = 77;
	n = brokerd__request__get_packed_size(req);
	buf = malloc(n + 4);
	ck_assert_ptr_nonnull(buf);
	brokerd__request__pack(req, buf + 4);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	if (mlen > 0) {
		for (p = buf + 4; (p = memmem(p, n + 4 - (size_t)(p - buf), mark, mlen)) != NULL;
		     p += mlen)
			for (size_t i = 0; i < mlen; i++)
				if (p[i] == 0x1d)
					p[i] = 0;
	}
	ck_assert_int_eq(tc_send_raw(fd, buf, n + 4), 0);
	free(buf);
	r = tc_recv(fd);
	ck_assert_msg(r != NULL, "no answer (connection closed?)");
	ck_assert_uint_eq(r->correlation_id, 77);
	return r;
}

/* nm as a C string with each NUL replaced by 0x1d (the caller frees). */
static char *marked(const struct name *nm)
{
	char *m = malloc(nm->len + 1);

	ck_assert_ptr_nonnull(m);
	memcpy(m, nm->s, nm->len);
	m[nm->len] = '\0';
	for (size_t i = 0; i < nm->len; i++)
		if (m[i] == '\0')
			m[i] = 0x1d;
	return m;
}

/* Ask entry point ep about topic nm (group "g", partition 0). */
static Brokerd__Response *topic_call(int fd, int ep, const struct name *nm)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CreateTopicRequest ct = BROKERD__CREATE_TOPIC_REQUEST__INIT;
	Brokerd__ProduceRequest pr = BROKERD__PRODUCE_REQUEST__INIT;
	Brokerd__FetchRequest fe = BROKERD__FETCH_REQUEST__INIT;
	Brokerd__DescribeTopicRequest de = BROKERD__DESCRIBE_TOPIC_REQUEST__INIT;
	Brokerd__DeleteTopicRequest dl = BROKERD__DELETE_TOPIC_REQUEST__INIT;
	Brokerd__AlterTopicConfigRequest al = BROKERD__ALTER_TOPIC_CONFIG_REQUEST__INIT;
	Brokerd__AlterTopicConfigRequest__SetEntry set = BROKERD__ALTER_TOPIC_CONFIG_REQUEST__SET_ENTRY__INIT;
	Brokerd__AlterTopicConfigRequest__SetEntry *setp = &set;
	Brokerd__ListOffsetsRequest lo = BROKERD__LIST_OFFSETS_REQUEST__INIT;
	Brokerd__CommitOffsetsRequest co = BROKERD__COMMIT_OFFSETS_REQUEST__INIT;
	Brokerd__OffsetCommit oc = BROKERD__OFFSET_COMMIT__INIT, *ocp = &oc;
	Brokerd__FetchOffsetsRequest fo = BROKERD__FETCH_OFFSETS_REQUEST__INIT;
	Brokerd__TopicPartition tp = BROKERD__TOPIC_PARTITION__INIT, *tpp = &tp;
	char *m = marked(nm);
	size_t blen;
	uint8_t *batch = tc_batch("h", 0, 1, &blen);
	Brokerd__Response *r;

	switch (ep) {
	case EP_CREATE:
		ct.topic = m;
		ct.partitions = 1;
		req.op_case = BROKERD__REQUEST__OP_CREATE_TOPIC;
		req.create_topic = &ct;
		break;
	case EP_PRODUCE:
		pr.topic = m;
		pr.acks = BROKERD__ACKS__ACKS_ALL;
		pr.records.data = batch;
		pr.records.len = blen;
		req.op_case = BROKERD__REQUEST__OP_PRODUCE;
		req.produce = &pr;
		break;
	case EP_FETCH:
		fe.topic = m;
		fe.max_bytes = 1024;
		req.op_case = BROKERD__REQUEST__OP_FETCH;
		req.fetch = &fe;
		break;
	case EP_DESCRIBE:
		de.topic = m;
		req.op_case = BROKERD__REQUEST__OP_DESCRIBE_TOPIC;
		req.describe_topic = &de;
		break;
	case EP_DELETE:
		dl.topic = m;
		req.op_case = BROKERD__REQUEST__OP_DELETE_TOPIC;
		req.delete_topic = &dl;
		break;
	case EP_ALTER:
		al.topic = m;
		set.key = (char *)"retention.ms";
		set.value = (char *)"1h";
		al.set = &setp;
		al.n_set = 1;
		req.op_case = BROKERD__REQUEST__OP_ALTER_TOPIC_CONFIG;
		req.alter_topic_config = &al;
		break;
	case EP_LIST_OFFSETS:
		lo.topic = m;
		lo.timestamp = -1;
		req.op_case = BROKERD__REQUEST__OP_LIST_OFFSETS;
		req.list_offsets = &lo;
		break;
	case EP_COMMIT:
		co.group = (char *)"g";
		oc.topic = m;
		oc.offset = 0;
		oc.metadata = (char *)"";
		co.offsets = &ocp;
		co.n_offsets = 1;
		req.op_case = BROKERD__REQUEST__OP_COMMIT_OFFSETS;
		req.commit_offsets = &co;
		break;
	case EP_FETCH_OFFSETS:
		fo.group = (char *)"g";
		tp.topic = m;
		fo.partitions = &tpp;
		fo.n_partitions = 1;
		req.op_case = BROKERD__REQUEST__OP_FETCH_OFFSETS;
		req.fetch_offsets = &fo;
		break;
	default:
		ck_abort();
	}
	r = call_patched(fd, &req, m);
	free(m);
	free(batch);
	return r;
}

/* Ask entry point ep about group nm (topic "good" partition 0). */
static Brokerd__Response *group_call(int fd, int ep, const struct name *nm)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CommitOffsetsRequest co = BROKERD__COMMIT_OFFSETS_REQUEST__INIT;
	Brokerd__OffsetCommit oc = BROKERD__OFFSET_COMMIT__INIT, *ocp = &oc;
	Brokerd__FetchOffsetsRequest fo = BROKERD__FETCH_OFFSETS_REQUEST__INIT;
	Brokerd__DeleteGroupRequest dg = BROKERD__DELETE_GROUP_REQUEST__INIT;
	char *m = marked(nm);
	Brokerd__Response *r;

	switch (ep) {
	case GP_COMMIT:
		co.group = m;
		oc.topic = (char *)"good";
		oc.offset = 1;
		oc.metadata = (char *)"";
		co.offsets = &ocp;
		co.n_offsets = 1;
		req.op_case = BROKERD__REQUEST__OP_COMMIT_OFFSETS;
		req.commit_offsets = &co;
		break;
	case GP_FETCH_OFFSETS:
		fo.group = m;
		req.op_case = BROKERD__REQUEST__OP_FETCH_OFFSETS;
		req.fetch_offsets = &fo;
		break;
	case GP_DELETE:
		dg.group = m;
		req.op_case = BROKERD__REQUEST__OP_DELETE_GROUP;
		req.delete_group = &dg;
		break;
	default:
		ck_abort();
	}
	r = call_patched(fd, &req, m);
	free(m);
	return r;
}

/* An error message is printable ASCII: it never echoes the bad bytes (it
 * is a protobuf string and must stay valid UTF-8 for every client). */
static void assert_printable(const char *msg)
{
	for (const char *p = msg; *p != '\0'; p++)
		ck_assert_msg(*p >= 0x20 && *p < 0x7f, "unprintable byte 0x%02x in \"%s\"",
			      (unsigned char)*p, msg);
}

/* Fail unless every entry of dir is in allowed (NULL-terminated). */
static void assert_dir_only(const char *dir, const char *const *allowed)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	ck_assert_msg(d != NULL, "opendir %s", dir);
	while ((e = readdir(d)) != NULL) {
		bool ok = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
		for (const char *const *a = allowed; !ok && *a != NULL; a++)
			ok = strcmp(e->d_name, *a) == 0;
		ck_assert_msg(ok, "stray entry \"%s\" in %s", e->d_name, dir);
	}
	closedir(d);
}

static const struct name bad_topics[] = {
	NM("../x"), NM(".."), NM("."), NM("/"), NM("a/b"), NM("x\0../../evil"), NM("\0"),
	NM("ab\0"), NM("\xff\xfe"), NM("caf\xc3"), NM("caf\xc3\xa9"), NM("a\x01z"), NM("tab\there"),
	NM("new\nline"), NM("del\x7f"), NM("sp ace"), NM(""), { NULL, 300 },
};

/* Every bad topic name at every entry point that takes one (produce with
 * auto.create.topics=true): INVALID_TOPIC_NAME with a printable message
 * naming the problem, nothing created on disk, the connection still
 * usable. */
START_TEST(topic_names_every_entry_point)
{
	static const char *const top[] = { "data", NULL };
	static const char *const data[] = { ".lock", "topics.meta", "__consumer_offsets",
					    "good-0", NULL };
	char longname[301], path[4200];
	int fd;
	Brokerd__Response *r;

	tb_set(&b, "auto.create.topics=true");
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic(fd, "good", 1);
	TC_OK(r);
	tc_free(r);
	memset(longname, 'a', 300);
	longname[300] = '\0';
	for (size_t i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++) {
		struct name nm = bad_topics[i];

		if (nm.s == NULL)
			nm.s = longname;
		for (int ep = 0; ep < EP_TOPIC_COUNT; ep++) {
			r = topic_call(fd, ep, &nm);
			ck_assert_msg(r->error == BROKERD__ERROR_CODE__INVALID_TOPIC_NAME &&
					      r->error_message[0] != '\0',
				      "name #%zu at %s: error %d: %s", i, ep_names[ep], r->error,
				      r->error_message);
			ck_assert_msg(strstr(r->error_message, "topic name") != NULL,
				      "name #%zu at %s: message does not name the problem: %s", i,
				      ep_names[ep], r->error_message);
			assert_printable(r->error_message);
			tc_free(r);
		}
	}
	r = tc_list_topics(fd);
	TC_OK(r);
	ck_assert_uint_eq(r->list_topics->n_topics, 1);
	ck_assert_str_eq(r->list_topics->topics[0]->name, "good");
	tc_free(r);
	close(fd);
	assert_serving();
	assert_dir_only(b.dir, top);
	snprintf(path, sizeof(path), "%s/data", b.dir);
	assert_dir_only(path, data);
}
END_TEST

static const struct name bad_groups[] = {
	NM(""), NM("g\0h"), NM("\0"), NM("\xff"), NM("\xc0\xaf"), NM("\xed\xa0\x80"),
	NM("\xf4\x90\x80\x80"), NM("caf\xc3"), NM("a\nb"), NM("\x1b[31mred"), NM("del\x7f"),
	{ NULL, 256 },
};

/* Group ids are stored: every entry point refuses an empty, over-long,
 * NUL-holding, non-UTF-8 or control-character id with INVALID_GROUP; a
 * UTF-8 id is fine; nothing bad was stored. */
START_TEST(group_names_every_entry_point)
{
	char longname[257];
	int fd;
	Brokerd__Response *r;
	Brokerd__OffsetCommit oc = BROKERD__OFFSET_COMMIT__INIT, *ocp = &oc;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic(fd, "good", 1);
	TC_OK(r);
	tc_free(r);
	memset(longname, 'g', 256);
	longname[256] = '\0';
	for (size_t i = 0; i < sizeof(bad_groups) / sizeof(bad_groups[0]); i++) {
		struct name nm = bad_groups[i];

		if (nm.s == NULL)
			nm.s = longname;
		for (int ep = 0; ep < GP_COUNT; ep++) {
			r = group_call(fd, ep, &nm);
			ck_assert_msg(r->error == BROKERD__ERROR_CODE__INVALID_GROUP &&
					      r->error_message[0] != '\0',
				      "group #%zu at %s: error %d: %s", i, gp_names[ep], r->error,
				      r->error_message);
			ck_assert_msg(strstr(r->error_message, "group id") != NULL,
				      "group #%zu at %s: message does not name the problem: %s", i,
				      gp_names[ep], r->error_message);
			assert_printable(r->error_message);
			tc_free(r);
		}
	}
	oc.topic = (char *)"good";
	oc.offset = 0;
	oc.metadata = (char *)"";
	r = tc_commit(fd, "caf\xc3\xa9-\xe2\x82\xac", &ocp, 1);
	TC_OK(r);
	tc_free(r);
	r = tc_list_groups(fd);
	TC_OK(r);
	ck_assert_uint_eq(r->list_groups->n_groups, 1);
	ck_assert_str_eq(r->list_groups->groups[0]->group, "caf\xc3\xa9-\xe2\x82\xac");
	tc_free(r);
	close(fd);
}
END_TEST

/* --- slow clients and memory ------------------------------------------------- */

static void setup_manual(void)
{
	memset(&b, 0, sizeof(b));
}

/* Small ASan quarantine for the broker (RSS then tracks live memory). */
static void small_quarantine(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char buf[512];

	snprintf(buf, sizeof(buf), "%s%squarantine_size_mb=4", old ? old : "", old ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
}

/* A slow-loris client trickling one byte per second into a frame is closed
 * after request.timeout.ms, told why, and logged; a client idle between
 * frames for longer than that is not; a frame sent in two parts within the
 * timeout is served. */
START_TEST(slowloris_closed)
{
	static const uint8_t hdr[] = { 0, 0, 0, 100, 0x08 };
	int slow, idle, split;
	int64_t t0;
	int sent = 0, closed = 0;
	Brokerd__Response *r;
	uint8_t byte = 0x01;

	tb_set(&b, "request.timeout.ms=1500");
	tb_start(&b);
	idle = tc_connect(b.port);
	r = tc_api_versions(idle);
	TC_OK(r);
	tc_free(r);
	slow = tc_connect(b.port);
	ck_assert_int_eq(tc_send_raw(slow, hdr, sizeof(hdr)), 0);
	t0 = tb_now_ms();
	/* 1 byte/s; the frame needs 99 more, so only a timeout ends this */
	while (sent < 10 && !closed) {
		if (tc_readable(slow, 1000)) {
			closed = 1;
			break;
		}
		if (tc_send_raw(slow, &byte, 1) < 0) {
			closed = 1;
			break;
		}
		sent++;
	}
	ck_assert_msg(closed, "slow-loris connection still open after %d bytes, %lld ms", sent,
		      (long long)(tb_now_ms() - t0));
	r = tc_recv(slow);
	ck_assert_msg(r != NULL, "no answer before the close");
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__INVALID_REQUEST);
	ck_assert_ptr_nonnull(strstr(r->error_message, "request.timeout.ms"));
	tc_free(r);
	ck_assert(tc_closed(slow));
	close(slow);
	printf("slowloris: closed after %d trickled bytes, %lld ms\n", sent,
	       (long long)(tb_now_ms() - t0));
	ck_assert(tb_log_contains(&b, "request frame incomplete after 1500 ms"));
	/* idle (no partial frame) longer than request.timeout.ms: still served */
	r = tc_api_versions(idle);
	TC_OK(r);
	tc_free(r);
	/* a frame in two parts, 500 ms apart: served */
	{
		Brokerd__Request req = BROKERD__REQUEST__INIT;
		Brokerd__ListTopicsRequest q = BROKERD__LIST_TOPICS_REQUEST__INIT;
		uint8_t buf[64];
		size_t n;

		req.correlation_id = 5;
		req.op_case = BROKERD__REQUEST__OP_LIST_TOPICS;
		req.list_topics = &q;
		n = brokerd__request__pack(&req, buf + 4);
		buf[0] = buf[1] = buf[2] = 0;
		buf[3] = (uint8_t)n;
		split = tc_connect(b.port);
		ck_assert_int_eq(tc_send_raw(split, buf, 3), 0);
		usleep(500 * 1000);
		ck_assert_int_eq(tc_send_raw(split, buf + 3, n + 1), 0);
		r = tc_recv(split);
		ck_assert_ptr_nonnull(r);
		TC_OK(r);
		ck_assert_uint_eq(r->correlation_id, 5);
		tc_free(r);
		close(split);
	}
	close(idle);
}
END_TEST

/* Send up to `want` bytes of buf on non-blocking fd; returns how many
 * went (the broker may not be reading). */
static size_t send_some(int fd, const uint8_t *buf, size_t want)
{
	size_t done = 0;

	while (done < want) {
		ssize_t n = send(fd, buf + done, want - done, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done;
}

/* 200 clients each declare a max-sized frame (16 MiB) and send 1 MiB of
 * it.  Received whole that would be 200 MiB; with a 32 MiB receive budget
 * the broker holds at most 32 MiB + 200 x 64 KiB, and its peak RSS grows
 * by less than 64 MiB.  Other clients keep being served at once; a
 * client's genuine 1 MiB produce waits for the budget and completes once
 * the hostile frames time out. */
START_TEST(partial_huge_frames_bounded)
{
	enum { N = 200, PART = 1 << 20, BOUND_KIB = 64 << 10 };
	static int fds[N];
	static size_t sent[N];
	uint8_t *junk = malloc(PART);
	uint32_t len = 16u << 20; /* max.request.bytes */
	long rss0, hwm, rss1;
	size_t total = 0, blen;
	int adm, big;
	int64_t deadline;
	uint8_t *batch;
	Brokerd__Response *r;

	ck_assert_ptr_nonnull(junk);
	memset(junk, 0x5a, PART);
	junk[0] = (uint8_t)(len >> 24);
	junk[1] = (uint8_t)(len >> 16);
	junk[2] = (uint8_t)(len >> 8);
	junk[3] = (uint8_t)len;
	small_quarantine();
	tb_set(&b, "max.pending.request.bytes=32MiB");
	tb_set(&b, "request.timeout.ms=4000");
	tb_start(&b);
	adm = tc_connect(b.port);
	r = tc_create_topic(adm, "t", 1);
	TC_OK(r);
	tc_free(r);
	rss0 = tb_status_kib(&b, "VmRSS");
	tb_reset_peak(&b);
	for (int i = 0; i < N; i++)
		fds[i] = tc_connect(b.port);
	/* round-robin until each sent its part or nothing moves for 500 ms */
	deadline = tb_now_ms() + 500;
	while (tb_now_ms() < deadline) {
		bool moved = false;
		for (int i = 0; i < N; i++) {
			size_t n = sent[i] < PART ? send_some(fds[i], junk + sent[i],
							      PART - sent[i] < 65536 ? PART - sent[i] : 65536)
						  : 0;
			sent[i] += n;
			total += n;
			moved = moved || n > 0;
		}
		if (moved)
			deadline = tb_now_ms() + 500;
		else
			usleep(10000);
	}
	/* every other client is unaffected */
	batch = tc_batch("ok", 0, 5, &blen);
	for (int i = 0; i < 20; i++) {
		r = tc_produce(adm, "t", 0, BROKERD__ACKS__ACKS_ALL, batch, blen);
		TC_OK(r);
		tc_free(r);
	}
	free(batch);
	assert_serving();
	hwm = tb_status_kib(&b, "VmHWM");
	rss1 = tb_status_kib(&b, "VmRSS");
	printf("partial frames: %d clients sent %zu MiB of declared 16 MiB frames; broker RSS "
	       "%ld KiB before, %ld KiB now, peak %ld KiB (growth %ld KiB, bound %d KiB)\n",
	       N, total >> 20, rss0, rss1, hwm, hwm - rss0, BOUND_KIB);
	fflush(stdout);
	ck_assert_msg(total >= (size_t)N * 256 * 1024, "the clients got only %zu bytes out", total);
	ck_assert_msg(hwm - rss0 < BOUND_KIB, "broker RSS grew by %ld KiB (bound %d KiB)",
		      hwm - rss0, BOUND_KIB);
	/* a genuine frame above 64 KiB waits its turn, then is served */
	batch = tc_batch("big", 0, 16384, &blen);
	ck_assert_uint_gt(blen, 64 * 1024);
	big = tc_connect(b.port);
	tc_set_timeout(big, 20000);
	r = tc_produce(big, "t", 0, BROKERD__ACKS__ACKS_ALL, batch, blen);
	TC_OK(r);
	tc_free(r);
	free(batch);
	close(big);
	ck_assert(tb_log_contains(&b, "request frame incomplete after 4000 ms"));
	for (int i = 0; i < N; i++)
		close(fds[i]);
	close(adm);
	free(junk);
	assert_serving();
}
END_TEST

/* The whole hostile barrage, many times over: the broker's peak RSS
 * stays flat (every rejection frees what it took). */
START_TEST(barrage_memory_flat)
{
	static const uint8_t f4g[] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
	static const uint8_t fmax1[] = { 0x01, 0x00, 0x00, 0x01 };
	static const uint8_t fvar[] = { 0, 0, 0, 3, 0x08, 0xff, 0xff };
	static const uint8_t flong[] = { 0, 0, 0, 12, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
					 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	static const uint8_t ftype[] = { 0, 0, 0, 4, 0x0a, 0x02, 'h', 'i' };
	static const uint8_t fop[] = { 0, 0, 0, 5, 0x08, 0x09, 0x9a, 0x06, 0x00 };
	static const uint8_t ftrunc[] = { 0, 0, 0, 100, 0x08, 0x01 };
	static const struct name nul = NM("x\0../y");
	enum { ROUNDS = 60, BOUND_KIB = 16 << 10 };
	uint8_t garbage[4 + 64];
	long rss0, hwm;
	Brokerd__Response *r;

	garbage[0] = garbage[1] = garbage[2] = 0;
	garbage[3] = 64;
	for (int i = 0; i < 64; i++)
		garbage[4 + i] = (uint8_t)(0xff - i * 7);
	small_quarantine();
	tb_start(&b);
	assert_serving();
	rss0 = tb_status_kib(&b, "VmRSS");
	tb_reset_peak(&b);
	for (int round = 0; round < ROUNDS; round++) {
		int fd;

		expect_error_then_close(f4g, sizeof(f4g), BROKERD__ERROR_CODE__FRAME_TOO_LARGE);
		expect_error_then_close(fmax1, sizeof(fmax1), BROKERD__ERROR_CODE__FRAME_TOO_LARGE);
		expect_error_then_close(garbage, sizeof(garbage), BROKERD__ERROR_CODE__INVALID_REQUEST);
		expect_error_then_close(fvar, sizeof(fvar), BROKERD__ERROR_CODE__INVALID_REQUEST);
		expect_error_then_close(flong, sizeof(flong), BROKERD__ERROR_CODE__INVALID_REQUEST);
		expect_error_then_close(ftype, sizeof(ftype), BROKERD__ERROR_CODE__INVALID_REQUEST);
		fd = tc_connect(b.port);
		ck_assert_int_eq(tc_send_raw(fd, ftrunc, sizeof(ftrunc)), 0);
		close(fd);
		fd = tc_connect(b.port);
		ck_assert_int_eq(tc_send_raw(fd, fop, sizeof(fop)), 0);
		r = tc_recv(fd);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNKNOWN_OPERATION);
		tc_free(r);
		for (int ep = 0; ep < EP_TOPIC_COUNT; ep++) {
			r = topic_call(fd, ep, &nul);
			ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__INVALID_TOPIC_NAME);
			tc_free(r);
		}
		close(fd);
	}
	assert_serving();
	hwm = tb_status_kib(&b, "VmHWM");
	printf("barrage: %d rounds of every hostile frame; broker RSS %ld KiB before, peak %ld KiB "
	       "(growth %ld KiB, bound %d KiB)\n", ROUNDS, rss0, hwm, hwm - rss0, BOUND_KIB);
	ck_assert_msg(hwm - rss0 < BOUND_KIB, "broker RSS grew by %ld KiB over the barrage",
		      hwm - rss0);
}
END_TEST

Suite *hostile_suite(void);
Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("frames");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, length_4gib);
	tcase_add_test(tc, length_max_plus_one);
	tcase_add_test(tc, garbage_bytes);
	tcase_add_test(tc, truncated_varint);
	tcase_add_test(tc, overlong_varint);
	tcase_add_test(tc, wrong_field_type);
	tcase_add_test(tc, truncated_frame_then_close);
	tcase_add_test(tc, unknown_operation_keeps_connection);
	tcase_add_test(tc, unsupported_version);
	tcase_add_test(tc, bad_produce_requests);
	tcase_add_test(tc, bad_topic_names);
	tcase_add_test(tc, acks_none_refused_silently);
	suite_add_tcase(s, tc);
	/* each starts its own broker (settings of its own) */
	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup_manual, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, topic_names_every_entry_point);
	tcase_add_test(tc, group_names_every_entry_point);
	tcase_add_test(tc, slowloris_closed);
	tcase_add_test(tc, partial_huge_frames_bounded);
	tcase_add_test(tc, barrage_memory_flat);
	suite_add_tcase(s, tc);
	return s;
}
