/* check_topics — topic administration end to end against a real brokerd:
 * create with overrides, describe (partitions, offsets, sizes, segments,
 * configs with is_default), alter set/reset applied at run time and kept
 * across a restart, list, delete and re-create, every admin error, and
 * auto.create.topics off and on. */
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

/* Every topic-level key of broker.conf.example, with its default as the
 * broker renders it (plain integers for sizes and durations). */
static const struct {
	const char *key, *def;
} topic_keys[] = {
	{ "segment.bytes", "1073741824" }, { "segment.ms", "604800000" },
	{ "index.interval.bytes", "4096" }, { "flush.mode", "always" },
	{ "flush.interval.ms", "1000" },   { "flush.bytes", "-1" },
	{ "retention.ms", "604800000" },   { "retention.bytes", "-1" },
	{ "message.timestamp.after.max.ms", "3600000" },
};
#define NKEYS (sizeof(topic_keys) / sizeof(topic_keys[0]))

/* Assert that key has value and is (or is not) a default in configs. */
static void expect_cfg(Brokerd__ConfigEntry *const *configs, size_t n, const char *key,
		       const char *value, int is_default)
{
	const Brokerd__ConfigEntry *e = tc_config(configs, n, key);

	ck_assert_msg(e != NULL, "config %s missing", key);
	ck_assert_msg(strcmp(e->value, value) == 0, "config %s = '%s', expected '%s'", key,
		      e->value, value);
	ck_assert_msg(e->is_default == (is_default != 0), "config %s: is_default %d, expected %d",
		      key, e->is_default, is_default);
}

/* Exactly the topic-level keys, each once: defaults unless overridden in
 * the NULL-terminated "key=value" list ovr. */
static void expect_all_cfgs(Brokerd__ConfigEntry *const *configs, size_t n,
			    const char *const *ovr)
{
	ck_assert_uint_eq(n, NKEYS);
	for (size_t i = 0; i < NKEYS; i++) {
		const char *value = topic_keys[i].def;
		int is_default = 1;
		size_t kl = strlen(topic_keys[i].key);

		for (size_t j = 0; ovr != NULL && ovr[j] != NULL; j++) {
			if (strncmp(ovr[j], topic_keys[i].key, kl) == 0 && ovr[j][kl] == '=') {
				value = ovr[j] + kl + 1;
				is_default = 0;
			}
		}
		expect_cfg(configs, n, topic_keys[i].key, value, is_default);
	}
}

static Brokerd__TopicDescription *describe_ok(int fd, const char *topic, Brokerd__Response **r)
{
	*r = tc_describe_topic(fd, topic);
	TC_OK(*r);
	ck_assert_int_eq((*r)->op_case, BROKERD__RESPONSE__OP_DESCRIBE_TOPIC);
	ck_assert_str_eq((*r)->describe_topic->topic->name, topic);
	return (*r)->describe_topic->topic;
}

/* Produce n records "<prefix>-<first..>" to partition p; assert the offset. */
static void produce(int fd, const char *topic, uint32_t p, const char *prefix, int first, int n,
		    int64_t expect_base)
{
	size_t len;
	uint8_t *batch = tc_batch(prefix, first, n, &len);
	Brokerd__Response *r = tc_produce(fd, topic, p, BROKERD__ACKS__ACKS_ALL, batch, len);

	free(batch);
	TC_OK(r);
	ck_assert_int_eq(r->produce->partition, p);
	if (expect_base >= 0)
		ck_assert_int_eq(r->produce->base_offset, expect_base);
	tc_free(r);
}

/* A prefix of about 1 KiB, so a few records fill a 4 KiB segment. */
static const char *big_prefix(void)
{
	static char buf[1001];

	memset(buf, 'x', 1000);
	buf[1000] = '\0';
	return buf;
}

START_TEST(create_describe_list)
{
	static const char *const ovr[] = { "retention.ms=3600000", "segment.bytes=1048576",
					   "flush.mode=os", NULL };
	/* Sizes and durations may be given with units; describe shows bytes. */
	static const char *const given[] = { "retention.ms=1h", "segment.bytes=1MiB",
					     "flush.mode=os" };
	static const char *const small_cfg[] = { "segment.bytes=4096" };
	int fd, found = 0;
	int64_t wall = tb_wall_ms();
	uint64_t sum = 0, size0;
	Brokerd__Response *r, *r2;
	Brokerd__TopicDescription *d;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic_cfg(fd, "orders", 6, given, 3);
	TC_OK(r);
	ck_assert_int_eq(r->op_case, BROKERD__RESPONSE__OP_CREATE_TOPIC);
	d = r->create_topic->topic;
	ck_assert_str_eq(d->name, "orders");
	ck_assert_uint_eq(d->partition_count, 6);
	ck_assert_uint_ne(d->topic_id, 0);
	ck_assert_int_ge(d->created_ms, wall - 60000);
	ck_assert_int_le(d->created_ms, wall + 60000);
	expect_all_cfgs(d->configs, d->n_configs, ovr);
	ck_assert_uint_eq(d->n_partitions, 6);
	for (uint32_t p = 0; p < 6; p++) {
		const Brokerd__PartitionInfo *pi = d->partitions[p];
		ck_assert_uint_eq(pi->partition, p);
		ck_assert_int_eq(pi->log_start_offset, 0);
		ck_assert_int_eq(pi->high_watermark, 0);
		ck_assert_int_eq(pi->log_end_offset, 0);
		ck_assert_uint_eq(pi->segment_count, 1);
		ck_assert_int_eq(pi->error, BROKERD__ERROR_CODE__OK);
	}
	size0 = d->partitions[2]->size_bytes;
	tc_free(r);

	/* Describe agrees with create, and follows produces on partition 2. */
	for (int k = 0; k < 3; k++)
		produce(fd, "orders", 2, "v", k * 10, 10, k * 10);
	d = describe_ok(fd, "orders", &r);
	ck_assert_uint_eq(d->partition_count, 6);
	expect_all_cfgs(d->configs, d->n_configs, ovr);
	for (uint32_t p = 0; p < 6; p++) {
		const Brokerd__PartitionInfo *pi = d->partitions[p];
		int64_t want = p == 2 ? 30 : 0;
		ck_assert_uint_eq(pi->partition, p);
		ck_assert_int_eq(pi->log_start_offset, 0);
		ck_assert_int_eq(pi->high_watermark, want);
		ck_assert_int_eq(pi->log_end_offset, want);
		ck_assert_uint_eq(pi->segment_count, 1);
		if (p != 2)
			ck_assert_uint_eq(pi->size_bytes, size0);
		sum += pi->size_bytes;
	}
	/* 30 records of at least 3 bytes each plus 3 batch headers. */
	ck_assert_uint_ge(d->partitions[2]->size_bytes, size0 + 3 * 56 + 30 * 3);

	/* list_topics names it with the same partition count and bytes. */
	r2 = tc_list_topics(fd);
	TC_OK(r2);
	for (size_t i = 0; i < r2->list_topics->n_topics; i++) {
		const Brokerd__TopicSummary *s = r2->list_topics->topics[i];
		if (strcmp(s->name, "orders") == 0) {
			found++;
			ck_assert_uint_eq(s->partition_count, 6);
			ck_assert_uint_eq(s->size_bytes, sum);
		}
	}
	ck_assert_int_eq(found, 1);
	tc_free(r2);
	tc_free(r);

	/* Segment count and size on a topic whose segments roll at 4 KiB. */
	r = tc_create_topic_cfg(fd, "small", 1, small_cfg, 1);
	TC_OK(r);
	expect_cfg(r->create_topic->topic->configs, r->create_topic->topic->n_configs,
		   "segment.bytes", "4096", 0);
	tc_free(r);
	for (int k = 0; k < 12; k++)
		produce(fd, "small", 0, big_prefix(), k * 2, 2, k * 2);
	d = describe_ok(fd, "small", &r);
	ck_assert_int_eq(d->partitions[0]->high_watermark, 24);
	ck_assert_uint_ge(d->partitions[0]->segment_count, 6);
	ck_assert_uint_ge(d->partitions[0]->size_bytes, 24 * 1000);
	tc_free(r);

	/* Two topics listed now, in name order. */
	r = tc_list_topics(fd);
	TC_OK(r);
	ck_assert_uint_eq(r->list_topics->n_topics, 2);
	ck_assert_str_eq(r->list_topics->topics[0]->name, "orders");
	ck_assert_str_eq(r->list_topics->topics[1]->name, "small");
	ck_assert_uint_eq(r->list_topics->topics[1]->partition_count, 1);
	tc_free(r);
	close(fd);
}
END_TEST

START_TEST(alter_applies_and_persists)
{
	static const char *const create[] = { "retention.ms=3600000" };
	static const char *const set[] = { "retention.bytes=1MiB", "segment.bytes=4096" };
	static const char *const reset[] = { "retention.ms" };
	static const char *const after[] = { "retention.bytes=1048576", "segment.bytes=4096",
					     NULL };
	static const char *const bad_set[] = { "retention.bytes=2MiB", "no.such.key=1" };
	static const char *const bad_value[] = { "retention.bytes=2MiB", "segment.ms=0" };
	static const char *const bad_reset[] = { "retention.nope" };
	static const char *const ok_set[] = { "flush.mode=interval" };
	Brokerd__Response *r;
	Brokerd__TopicDescription *d;
	uint64_t id;
	uint32_t segs;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic_cfg(fd, "alt", 2, create, 1);
	TC_OK(r);
	id = r->create_topic->topic->topic_id;
	tc_free(r);
	/* Default segment.bytes (1 GiB): two 2 KB batches stay in one segment. */
	produce(fd, "alt", 0, big_prefix(), 0, 2, 0);
	produce(fd, "alt", 0, big_prefix(), 2, 2, 2);
	d = describe_ok(fd, "alt", &r);
	ck_assert_uint_eq(d->partitions[0]->segment_count, 1);
	tc_free(r);

	r = tc_alter_topic(fd, "alt", set, 2, reset, 1);
	TC_OK(r);
	ck_assert_int_eq(r->op_case, BROKERD__RESPONSE__OP_ALTER_TOPIC_CONFIG);
	expect_all_cfgs(r->alter_topic_config->configs, r->alter_topic_config->n_configs, after);
	tc_free(r);
	d = describe_ok(fd, "alt", &r);
	expect_all_cfgs(d->configs, d->n_configs, after);
	tc_free(r);

	/* Applied at run time: the 4 KiB segment size rolls segments now. */
	for (int k = 2; k < 8; k++)
		produce(fd, "alt", 0, big_prefix(), k * 2, 2, k * 2);
	d = describe_ok(fd, "alt", &r);
	segs = d->partitions[0]->segment_count;
	ck_assert_uint_ge(segs, 4);
	tc_free(r);

	/* All or nothing: a bad key or a bad value changes nothing, and the
	 * message names the key. */
	r = tc_alter_topic(fd, "alt", bad_set, 2, NULL, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_CONFIG);
	ck_assert_ptr_nonnull(strstr(r->error_message, "no.such.key"));
	tc_free(r);
	r = tc_alter_topic(fd, "alt", bad_value, 2, NULL, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_CONFIG);
	ck_assert_ptr_nonnull(strstr(r->error_message, "segment.ms"));
	tc_free(r);
	r = tc_alter_topic(fd, "alt", ok_set, 1, bad_reset, 1);
	TC_ERR(r, BROKERD__ERROR_CODE__INVALID_CONFIG);
	ck_assert_ptr_nonnull(strstr(r->error_message, "retention.nope"));
	tc_free(r);
	d = describe_ok(fd, "alt", &r);
	expect_all_cfgs(d->configs, d->n_configs, after);
	tc_free(r);
	r = tc_alter_topic(fd, "missing", ok_set, 1, NULL, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	ck_assert_ptr_nonnull(strstr(r->error_message, "missing"));
	tc_free(r);
	close(fd);

	/* A graceful restart keeps the overrides, the id and the data. */
	ck_assert_int_eq(tb_stop(&b), 0);
	tb_start(&b);
	fd = tc_connect(b.port);
	d = describe_ok(fd, "alt", &r);
	ck_assert_uint_eq(d->topic_id, id);
	ck_assert_uint_eq(d->partition_count, 2);
	expect_all_cfgs(d->configs, d->n_configs, after);
	ck_assert_int_eq(d->partitions[0]->high_watermark, 16);
	ck_assert_uint_eq(d->partitions[0]->segment_count, segs);
	tc_free(r);
	/* ... and still applies them: more segments roll at 4 KiB. */
	for (int k = 8; k < 12; k++)
		produce(fd, "alt", 0, big_prefix(), k * 2, 2, k * 2);
	d = describe_ok(fd, "alt", &r);
	ck_assert_uint_ge(d->partitions[0]->segment_count, segs + 2);
	tc_free(r);

	/* Reset everything back to the broker defaults; survives a crash. */
	{
		static const char *const all[] = { "retention.bytes", "segment.bytes" };
		r = tc_alter_topic(fd, "alt", NULL, 0, all, 2);
		TC_OK(r);
		expect_all_cfgs(r->alter_topic_config->configs, r->alter_topic_config->n_configs,
				NULL);
		tc_free(r);
	}
	close(fd);
	tb_kill9(&b);
	tb_start(&b);
	fd = tc_connect(b.port);
	d = describe_ok(fd, "alt", &r);
	expect_all_cfgs(d->configs, d->n_configs, NULL);
	ck_assert_int_eq(d->partitions[0]->high_watermark, 24);
	tc_free(r);
	close(fd);
}
END_TEST

/* 1 if list_topics names topic. */
static int listed(int fd, const char *topic)
{
	Brokerd__Response *r = tc_list_topics(fd);
	int found = 0;

	TC_OK(r);
	for (size_t i = 0; i < r->list_topics->n_topics; i++)
		found += strcmp(r->list_topics->topics[i]->name, topic) == 0;
	tc_free(r);
	return found;
}

START_TEST(delete_and_recreate)
{
	Brokerd__Response *r;
	Brokerd__TopicDescription *d;
	uint64_t id1, id2;
	size_t len;
	uint8_t *batch;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic(fd, "gone", 3);
	TC_OK(r);
	id1 = r->create_topic->topic->topic_id;
	tc_free(r);
	for (uint32_t p = 0; p < 3; p++)
		produce(fd, "gone", p, "old", 0, 5, 0);
	ck_assert_int_eq(listed(fd, "gone"), 1);

	r = tc_delete_topic(fd, "gone");
	TC_OK(r);
	ck_assert_int_eq(r->op_case, BROKERD__RESPONSE__OP_DELETE_TOPIC);
	tc_free(r);
	r = tc_describe_topic(fd, "gone");
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	ck_assert_ptr_nonnull(strstr(r->error_message, "gone"));
	tc_free(r);
	ck_assert_int_eq(listed(fd, "gone"), 0);
	r = tc_delete_topic(fd, "gone");
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	tc_free(r);
	r = tc_fetch(fd, "gone", 0, 0, 1 << 20, 0, 0);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	tc_free(r);
	batch = tc_batch("new", 0, 1, &len);
	r = tc_produce(fd, "gone", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	tc_free(r);

	/* Same name again: empty, new id, the new partition count. */
	r = tc_create_topic(fd, "gone", 2);
	TC_OK(r);
	d = r->create_topic->topic;
	id2 = d->topic_id;
	ck_assert_uint_ne(id2, id1);
	ck_assert_uint_eq(d->partition_count, 2);
	for (uint32_t p = 0; p < 2; p++) {
		ck_assert_int_eq(d->partitions[p]->high_watermark, 0);
		ck_assert_int_eq(d->partitions[p]->log_end_offset, 0);
	}
	tc_free(r);
	r = tc_fetch(fd, "gone", 0, 0, 1 << 20, 0, 0);
	TC_OK(r);
	ck_assert_int_eq(r->fetch->high_watermark, 0);
	ck_assert_uint_eq(r->fetch->records.len, 0);
	tc_free(r);
	/* (A fetch of the missing partition is check_fetch's
	 * fetch_unknown_partition.) */
	r = tc_produce(fd, "gone", 2, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_PARTITION);
	tc_free(r);
	r = tc_produce(fd, "gone", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_OK(r);
	ck_assert_int_eq(r->produce->base_offset, 0);
	tc_free(r);
	free(batch);
	close(fd);

	/* After a restart: still the new topic; delete, restart, re-create:
	 * ids are never reused. */
	ck_assert_int_eq(tb_stop(&b), 0);
	tb_start(&b);
	fd = tc_connect(b.port);
	d = describe_ok(fd, "gone", &r);
	ck_assert_uint_eq(d->topic_id, id2);
	ck_assert_uint_eq(d->partition_count, 2);
	ck_assert_int_eq(d->partitions[0]->high_watermark, 1);
	tc_free(r);
	r = tc_delete_topic(fd, "gone");
	TC_OK(r);
	tc_free(r);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_describe_topic(fd, "gone");
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	tc_free(r);
	r = tc_create_topic(fd, "gone", 1);
	TC_OK(r);
	ck_assert_uint_ne(r->create_topic->topic->topic_id, id1);
	ck_assert_uint_ne(r->create_topic->topic->topic_id, id2);
	ck_assert_int_eq(r->create_topic->topic->partitions[0]->high_watermark, 0);
	tc_free(r);
	close(fd);
}
END_TEST

/* Create fails with code and a message containing `names`; nothing made. */
static void create_fails(int fd, const char *topic, uint32_t parts, const char *const *kv,
			 size_t n, Brokerd__ErrorCode code, const char *names)
{
	Brokerd__Response *r = tc_create_topic_cfg(fd, topic, parts, kv, n);

	TC_ERR(r, code);
	ck_assert_msg(strstr(r->error_message, names) != NULL, "message '%s' does not name '%s'",
		      r->error_message, names);
	tc_free(r);
	if (topic[0] != '\0' && strchr(topic, '/') == NULL && strcmp(topic, "..") != 0 &&
	    code != BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS) {
		r = tc_describe_topic(fd, topic);
		TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
		tc_free(r);
	}
}

START_TEST(create_errors)
{
	static const char *const unknown_key[] = { "retention.ms=1000", "retention.foo=1" };
	static const char *const bad_size[] = { "segment.bytes=12" };
	static const char *const bad_enum[] = { "flush.mode=sometimes" };
	static const char *const bad_dur[] = { "retention.ms=soon" };
	static const char *const broker_only[] = { "max.connections=5" };
	static const char *const good[] = { "retention.bytes=-1" };
	Brokerd__Response *r;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic(fd, "dup", 2);
	TC_OK(r);
	tc_free(r);
	create_fails(fd, "dup", 2, NULL, 0, BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS, "dup");
	create_fails(fd, "dup", 5, good, 1, BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS, "dup");
	/* The existing topic is untouched. */
	r = tc_describe_topic(fd, "dup");
	TC_OK(r);
	ck_assert_uint_eq(r->describe_topic->topic->partition_count, 2);
	tc_free(r);

	create_fails(fd, "c1", 1, unknown_key, 2, BROKERD__ERROR_CODE__INVALID_CONFIG,
		     "retention.foo");
	create_fails(fd, "c2", 1, bad_size, 1, BROKERD__ERROR_CODE__INVALID_CONFIG,
		     "segment.bytes");
	create_fails(fd, "c3", 1, bad_enum, 1, BROKERD__ERROR_CODE__INVALID_CONFIG, "flush.mode");
	create_fails(fd, "c4", 1, bad_dur, 1, BROKERD__ERROR_CODE__INVALID_CONFIG, "retention.ms");
	create_fails(fd, "c5", 1, broker_only, 1, BROKERD__ERROR_CODE__INVALID_CONFIG,
		     "max.connections");
	create_fails(fd, "p1", 10001, NULL, 0, BROKERD__ERROR_CODE__INVALID_PARTITIONS, "10001");
	create_fails(fd, "p2", UINT32_MAX, NULL, 0, BROKERD__ERROR_CODE__INVALID_PARTITIONS, "p2");
	create_fails(fd, "bad/name", 1, NULL, 0, BROKERD__ERROR_CODE__INVALID_TOPIC_NAME, "");
	create_fails(fd, "..", 1, NULL, 0, BROKERD__ERROR_CODE__INVALID_TOPIC_NAME, "");
	create_fails(fd, "", 1, NULL, 0, BROKERD__ERROR_CODE__INVALID_TOPIC_NAME, "");

	/* Only "dup" exists after all that; 0 partitions = default.partitions. */
	r = tc_list_topics(fd);
	TC_OK(r);
	ck_assert_uint_eq(r->list_topics->n_topics, 1);
	ck_assert_str_eq(r->list_topics->topics[0]->name, "dup");
	tc_free(r);
	r = tc_create_topic(fd, "dflt", 0);
	TC_OK(r);
	ck_assert_uint_eq(r->create_topic->topic->partition_count, 1);
	tc_free(r);
	close(fd);
}
END_TEST

START_TEST(auto_create_off_by_default)
{
	Brokerd__Response *r;
	size_t len;
	uint8_t *batch = tc_batch("a", 0, 3, &len);
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_produce(fd, "nosuch", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	ck_assert_ptr_nonnull(strstr(r->error_message, "nosuch"));
	tc_free(r);
	r = tc_produce_key(fd, "nosuch", NULL, 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	tc_free(r);
	r = tc_describe_topic(fd, "nosuch");
	TC_ERR(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	tc_free(r);
	ck_assert_int_eq(listed(fd, "nosuch"), 0);
	free(batch);
	close(fd);
}
END_TEST

START_TEST(auto_create_on)
{
	Brokerd__Response *r;
	Brokerd__TopicDescription *d;
	size_t len;
	uint8_t *batch = tc_batch("auto", 0, 4, &len);
	char **v;
	int64_t last;
	int fd, n;

	tb_set(&b, "auto.create.topics=true");
	tb_set(&b, "default.partitions=3");
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_produce_key(fd, "fresh", NULL, 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_OK(r);
	ck_assert_uint_lt(r->produce->partition, 3);
	ck_assert_int_eq(r->produce->base_offset, 0);
	tc_free(r);
	d = describe_ok(fd, "fresh", &r);
	ck_assert_uint_eq(d->partition_count, 3);
	expect_all_cfgs(d->configs, d->n_configs, NULL);
	tc_free(r);
	/* An explicit partition of a missing topic also creates it. */
	r = tc_produce(fd, "fresh2", 2, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_OK(r);
	ck_assert_uint_eq(r->produce->partition, 2);
	tc_free(r);
	r = tc_fetch(fd, "fresh2", 2, 0, 1 << 20, 0, 0);
	TC_OK(r);
	n = tc_values(r->fetch, 0, &v, &last);
	ck_assert_int_eq(n, 4);
	ck_assert_str_eq(v[3], "auto-3");
	tc_free_values(v, n);
	tc_free(r);
	/* An invalid name is still refused, not created. */
	r = tc_produce(fd, "no/pe", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	ck_assert_int_ne(r->error, BROKERD__ERROR_CODE__OK);
	tc_free(r);
	/* create_topic with partitions 0 also uses default.partitions. */
	r = tc_create_topic(fd, "explicit", 0);
	TC_OK(r);
	ck_assert_uint_eq(r->create_topic->topic->partition_count, 3);
	tc_free(r);
	free(batch);
	close(fd);
}
END_TEST

Suite *topics_suite(void);
Suite *topics_suite(void)
{
	Suite *s = suite_create("topics");
	TCase *tc = tcase_create("admin");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, create_describe_list);
	tcase_add_test(tc, alter_applies_and_persists);
	tcase_add_test(tc, delete_and_recreate);
	tcase_add_test(tc, create_errors);
	tcase_add_test(tc, auto_create_off_by_default);
	tcase_add_test(tc, auto_create_on);
	suite_add_tcase(s, tc);
	return s;
}
