/* check_topic — the topic registry (broker/topic.h) on a real event loop,
 * io_uring and data directory: create/find/list, name and argument checks
 * that leave nothing behind, topics.meta persistence and its corruption,
 * delete without resurrection, orphan and missing partition directories,
 * adoption of a data directory from before metadata, alter, and long-poll
 * waiters woken by appends and by delete.
 */
#include "broker/topic.h"

#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/config.h"
#include "proto/meta.pb-c.h"
#include "tests/unit/logtest.h"

Suite *topic_suite(void); /* called by the runner (tests/unit/runner.c) */

#define TS0 INT64_C(1600000000000)

static struct lt T;            /* loop, ring, log context, data dir T.root */
static struct topic_reg *R;
static char err[1024];

/* --- harness ------------------------------------------------------------------ */

static void setup(void)
{
	lt_init(&T);
	R = NULL;
	err[0] = '\0';
}

static void teardown(void)
{
	if (R != NULL)
		topic_reg_close(R);
	R = NULL;
	lt_fini(&T);
}

static int reg_try_open(void)
{
	ck_assert_ptr_null(R);
	return topic_reg_open(T.root, T.ctx, &T.cfg, &R);
}

static void reg_open(void)
{
	int rc = reg_try_open();

	ck_assert_msg(rc == 0, "topic_reg_open: %d (%s)", rc, strerror(-rc));
	ck_assert_ptr_nonnull(R);
}

static void reg_close(void)
{
	ck_assert_int_eq(topic_reg_close(R), 0);
	R = NULL;
}

static void reg_reopen(void)
{
	reg_close();
	reg_open();
}

static struct topic *create_cfg(const char *name, int partitions, const char *const *keys,
				const char *const *values, size_t n)
{
	struct topic *t = NULL;
	int rc = topic_create(R, name, partitions, keys, values, n, err, sizeof(err), &t);

	ck_assert_msg(rc == 0, "topic_create(%s): %d (%s): %s", name, rc, strerror(-rc), err);
	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_eq(topic_find(R, name), t);
	return t;
}

static struct topic *create(const char *name, int partitions)
{
	return create_cfg(name, partitions, NULL, NULL, 0);
}

/* T.root/rel in a static buffer (two in rotation). */
static const char *at(const char *rel)
{
	static char buf[2][LT_PATH_MAX + 300];
	static int k;

	k ^= 1;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", T.root, rel);
	return buf[k];
}

static bool exists(const char *rel)
{
	return lt_exists(at(rel));
}

static bool is_dir(const char *rel)
{
	struct stat st;

	return lstat(at(rel), &st) == 0 && S_ISDIR(st.st_mode);
}

static void mkdir_rel(const char *rel)
{
	ck_assert_int_eq(mkdir(at(rel), 0755), 0);
}

static void write_rel(const char *rel, const void *buf, size_t len)
{
	lt_write_file(at(rel), buf, len);
}

/* The whole file; *len its size.  Returns it owned. */
static uint8_t *read_rel(const char *rel, size_t *len)
{
	int64_t size = lt_file_size(at(rel));
	uint8_t *buf;
	int fd;

	ck_assert_int_ge(size, 0);
	buf = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(buf);
	fd = open(at(rel), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, (size_t)size), size);
	close(fd);
	*len = (size_t)size;
	return buf;
}

/* Entries of the data dir other than "." and "..". */
static int count_entries(void)
{
	DIR *d = opendir(T.root);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Append nrec records to partition p of t and run the loop until the
 * append completed. */
static void append_wait(struct topic *t, int p, int nrec, enum log_acks acks)
{
	struct log *log = topic_log(t, p);
	struct lt_app *a = lt_app_new_at(&T, log_end_offset(log), nrec, TS0, acks);
	int rc = log_append(log, &a->a);

	ck_assert_msg(rc == 0, "log_append: %d (%s)", rc, strerror(-rc));
	a->accepted = true;
	LT_RUN_UNTIL(&T, a->calls == 1);
	ck_assert_int_eq(a->res, 0);
}

/* Every topic-level key of a topic as topic_config_each reports it. */
struct cfg_seen {
	int n;
	char key[32][64];
	char value[32][64];
	bool is_default[32];
};

static void cfg_seen_fn(const char *key, const char *value, bool is_default, void *arg)
{
	struct cfg_seen *s = arg;

	ck_assert_int_lt(s->n, 32);
	snprintf(s->key[s->n], sizeof(s->key[0]), "%s", key);
	snprintf(s->value[s->n], sizeof(s->value[0]), "%s", value);
	s->is_default[s->n] = is_default;
	s->n++;
}

/* Check key's reported value and flag; returns the number of keys not at
 * their default. */
static int cfg_expect(const struct topic *t, const char *key, const char *value,
		      bool is_default)
{
	struct cfg_seen s = { 0 };
	int overridden = 0;
	bool found = false;

	topic_config_each(t, cfg_seen_fn, &s);
	ck_assert_int_gt(s.n, 5);
	for (int i = 0; i < s.n; i++) {
		if (!s.is_default[i])
			overridden++;
		if (strcmp(s.key[i], key) != 0)
			continue;
		found = true;
		ck_assert_str_eq(s.value[i], value);
		ck_assert_msg(s.is_default[i] == is_default, "%s: is_default %d", key,
			      s.is_default[i]);
	}
	ck_assert_msg(found, "config key %s not reported", key);
	return overridden;
}

/* Every partition's log runs with the topic's effective config. */
static void expect_logs_cfg(const struct topic *t)
{
	for (int p = 0; p < topic_partitions(t); p++)
		ck_assert_int_eq(memcmp(log_config(topic_log(t, p)), topic_config(t),
					sizeof(struct log_config)), 0);
}

/* Write topics.meta with header fields as given around `payload`. */
static void write_meta_raw(uint32_t magic, uint32_t version, const uint8_t *payload,
			   size_t len)
{
	uint8_t *buf = malloc(16 + len + 1);
	uint32_t h[4] = { htole32(magic), htole32(version), htole32((uint32_t)len),
			  htole32(batch_crc32c(0, payload, len)) };

	ck_assert_ptr_nonnull(buf);
	memcpy(buf, h, 16);
	memcpy(buf + 16, payload, len);
	write_rel("topics.meta", buf, 16 + len);
	free(buf);
}

/* Write a well-formed topics.meta (good header and CRC) holding one topic. */
static void write_meta_one(const char *name, uint64_t id, uint32_t partitions,
			   const char *key, const char *value)
{
	Brokerd__Meta__Topics m = BROKERD__META__TOPICS__INIT;
	Brokerd__Meta__Topic mt = BROKERD__META__TOPIC__INIT, *pmt = &mt;
	Brokerd__Meta__TopicOverride mo = BROKERD__META__TOPIC_OVERRIDE__INIT, *pmo = &mo;
	uint8_t buf[4096];
	size_t len;

	mt.name = (char *)name;
	mt.id = id;
	mt.partitions = partitions;
	if (key != NULL) {
		mo.key = (char *)key;
		mo.value = (char *)value;
		mt.n_overrides = 1;
		mt.overrides = &pmo;
	}
	m.next_id = id + 1;
	m.n_topics = 1;
	m.topics = &pmt;
	len = brokerd__meta__topics__get_packed_size(&m);
	ck_assert_int_le(len, sizeof(buf));
	brokerd__meta__topics__pack(&m, buf);
	write_meta_raw(0x4d544b42u, 1, buf, len);
}

static int64_t wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- create, find, list ---------------------------------------------------------- */

START_TEST(test_create_find_list)
{
	struct topic *a, *b, *c;
	int64_t t0, t1;

	setup();
	reg_open();
	ck_assert_int_eq(topic_reg_count(R), 0);
	ck_assert(exists("topics.meta")); /* a fresh data dir gets an empty list */
	t0 = wall_now_ms();
	b = create("bravo", 3);
	c = create("charlie.x-y_z", 1);
	a = create("Alpha", 2);
	t1 = wall_now_ms();
	ck_assert_int_eq(topic_reg_count(R), 3);
	/* Name order (bytewise: upper case first), whatever the creation order. */
	ck_assert_ptr_eq(topic_reg_at(R, 0), a);
	ck_assert_ptr_eq(topic_reg_at(R, 1), b);
	ck_assert_ptr_eq(topic_reg_at(R, 2), c);
	ck_assert_str_eq(topic_name(a), "Alpha");
	ck_assert_ptr_eq(topic_find(R, "bravo"), b);
	ck_assert_ptr_null(topic_find(R, "brav"));
	ck_assert_ptr_null(topic_find(R, "bravo0"));
	ck_assert_ptr_null(topic_find(R, "alpha"));
	ck_assert_int_eq(topic_partitions(a), 2);
	ck_assert_int_eq(topic_partitions(b), 3);
	ck_assert_int_eq(topic_partitions(c), 1);
	/* Distinct ids in creation order; creation time from the wall clock. */
	ck_assert_uint_gt(topic_id(b), 0);
	ck_assert_uint_gt(topic_id(c), topic_id(b));
	ck_assert_uint_gt(topic_id(a), topic_id(c));
	ck_assert_int_ge(topic_created_ms(a), t0);
	ck_assert_int_le(topic_created_ms(a), t1);
	/* One log per partition, in <data>/<name>-<n>. */
	for (int p = 0; p < 3; p++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "bravo-%d", p);
		ck_assert(is_dir(rel));
		ck_assert_ptr_nonnull(topic_log(b, p));
		ck_assert_str_eq(log_dir(topic_log(b, p)), at(rel));
		ck_assert_int_eq(log_end_offset(topic_log(b, p)), 0);
	}
	ck_assert(!exists("bravo-3"));
	ck_assert(is_dir("charlie.x-y_z-0"));
	ck_assert(!exists("charlie.x-y_z-1"));
	/* Round robin over the partitions. */
	for (int i = 0; i < 7; i++)
		ck_assert_int_eq(topic_next_partition(b), i % 3);
	ck_assert_int_eq(topic_next_partition(c), 0);
	ck_assert_int_eq(topic_next_partition(c), 0);
	/* No overrides: the broker defaults. */
	ck_assert_int_eq(memcmp(topic_config(a), &T.cfg, sizeof(T.cfg)), 0);
	expect_logs_cfg(a);
	teardown();
}
END_TEST

START_TEST(test_create_with_overrides)
{
	const char *keys[] = { "segment.bytes", "retention.ms", "flush.mode" };
	const char *vals[] = { "1MiB", "1h", "os" };
	struct topic *t;

	setup();
	reg_open();
	t = create_cfg("ovr", 2, keys, vals, 3);
	ck_assert_int_eq(topic_config(t)->segment_bytes, 1 << 20);
	ck_assert_int_eq(topic_config(t)->retention_ms, 3600000);
	ck_assert_int_eq(topic_config(t)->flush_mode, LOG_FLUSH_OS);
	ck_assert_int_eq(topic_config(t)->retention_bytes, T.cfg.retention_bytes);
	ck_assert_int_eq(topic_config(t)->index_interval_bytes, T.cfg.index_interval_bytes);
	expect_logs_cfg(t);
	/* Values rendered as config_topic_set reads them back; only the three
	 * overridden keys are not defaults. */
	ck_assert_int_eq(cfg_expect(t, "segment.bytes", "1048576", false), 3);
	cfg_expect(t, "retention.ms", "3600000", false);
	cfg_expect(t, "flush.mode", "os", false);
	cfg_expect(t, "retention.bytes", "-1", true);
	cfg_expect(t, "index.interval.bytes", "4096", true);
	/* A key given twice: the later value wins. */
	{
		const char *k2[] = { "retention.ms", "retention.ms" };
		const char *v2[] = { "1000", "2000" };
		struct topic *u = create_cfg("twice", 1, k2, v2, 2);
		ck_assert_int_eq(topic_config(u)->retention_ms, 2000);
		ck_assert_int_eq(cfg_expect(u, "retention.ms", "2000", false), 1);
	}
	teardown();
}
END_TEST

/* --- argument checks leave nothing behind ------------------------------------------ */

START_TEST(test_name_check)
{
	static const struct {
		const char *name;
		size_t len;   /* 0: strlen */
		const char *msg;
	} bad[] = {
		{ "", 0, "empty" },
		{ ".", 0, "not allowed" },
		{ "..", 0, "not allowed" },
		{ "../x", 0, "invalid character '/'" },
		{ "a/b", 0, "invalid character '/'" },
		{ "a\0b", 3, "NUL byte" },
		{ "\0", 1, "NUL byte" },
		{ "a b", 0, "invalid character" },
		{ "a:b", 0, "invalid character ':'" },
		{ "caf\xc3\xa9", 0, "invalid character" },
		{ "\xff", 0, "invalid character" },
		{ "x*", 0, "invalid character '*'" },
	};
	char name[400];

	setup();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].name);
		err[0] = '\0';
		ck_assert_int_eq(topic_name_check(bad[i].name, len, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, bad[i].msg) != NULL, "name %zu: \"%s\" lacks \"%s\"",
			      i, err, bad[i].msg);
	}
	memset(name, 'a', sizeof(name));
	ck_assert_int_eq(topic_name_check(name, 249, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(topic_name_check(name, 250, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	ck_assert_int_eq(topic_name_check(name, 300, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	ck_assert_int_eq(topic_name_check(name, 300, NULL, 0), -EINVAL);
	static const char *const good[] = { "a", "A-z_0.9", "...", ".a", "-", "_", "a..b" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(topic_name_check(good[i], strlen(good[i]), err, sizeof(err)) == 0,
			      "%s rejected: %s", good[i], err);

	/* topic_create refuses them the same way and creates nothing. */
	reg_open();
	int before = count_entries();
	static const char *const bad_create[] = { "", ".", "..", "../x", "caf\xc3\xa9", "a b" };
	for (size_t i = 0; i < sizeof(bad_create) / sizeof(bad_create[0]); i++) {
		struct topic *t = NULL;
		ck_assert_int_eq(topic_create(R, bad_create[i], 1, NULL, NULL, 0, err,
					      sizeof(err), &t), -EINVAL);
		ck_assert_ptr_null(t);
	}
	name[250] = '\0';
	ck_assert_int_eq(topic_create(R, name, 1, NULL, NULL, 0, err, sizeof(err),
				      &(struct topic *){ NULL }), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	ck_assert_int_eq(topic_reg_count(R), 0);
	ck_assert_int_eq(count_entries(), before);
	ck_assert(!exists("x-0"));
	ck_assert(!exists("../x-0"));
	name[249] = '\0';
	create(name, 1); /* the longest name works, directory and all */
	teardown();
}
END_TEST

START_TEST(test_partition_count_range)
{
	const int bad[] = { 0, -1, TOPIC_PARTITIONS_MAX + 1, INT32_MIN };
	size_t mlen;
	uint8_t *meta;

	setup();
	reg_open();
	meta = read_rel("topics.meta", &mlen);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct topic *t = NULL;
		ck_assert_int_eq(topic_create(R, "p", bad[i], NULL, NULL, 0, err, sizeof(err), &t),
				 -ERANGE);
		ck_assert_ptr_nonnull(strstr(err, "partition count"));
		ck_assert_ptr_null(t);
	}
	ck_assert_int_eq(topic_reg_count(R), 0);
	ck_assert(!exists("p-0"));
	{
		size_t len;
		uint8_t *now = read_rel("topics.meta", &len);
		ck_assert(len == mlen && memcmp(now, meta, len) == 0);
		free(now);
	}
	free(meta);
	ck_assert_int_eq(topic_partitions(create("p", 16)), 16);
	teardown();
}
END_TEST

/* Unknown keys and bad values: -ENOENT / -EDOM with "key: reason", and no
 * directory, no change to topics.meta, no topic. */
START_TEST(test_bad_config_creates_nothing)
{
	static const struct {
		const char *keys[2], *vals[2];
		size_t n;
		int rc;
		const char *msg;
	} cases[] = {
		{ { "no.such.key" }, { "1" }, 1, -ENOENT, "no.such.key" },
		{ { "listen" }, { "127.0.0.1:1" }, 1, -ENOENT, "listen" },
		{ { "segment.bytes" }, { "12" }, 1, -EDOM, "segment.bytes: " },
		{ { "flush.mode" }, { "sometimes" }, 1, -EDOM, "flush.mode: " },
		{ { "retention.ms", "retention.bytes" }, { "1h", "lots" }, 2, -EDOM,
		  "retention.bytes: " },
		{ { "retention.ms", "bogus" }, { "1h", "1" }, 2, -ENOENT, "bogus" },
	};
	size_t mlen;
	uint8_t *meta;

	setup();
	reg_open();
	create("keep", 1);
	meta = read_rel("topics.meta", &mlen);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct topic *t = NULL;
		size_t len;
		uint8_t *now;
		int rc = topic_create(R, "c", 2, cases[i].keys, cases[i].vals, cases[i].n, err,
				      sizeof(err), &t);

		ck_assert_msg(rc == cases[i].rc, "case %zu: rc %d", i, rc);
		ck_assert_msg(strstr(err, cases[i].msg) != NULL, "case %zu: \"%s\"", i, err);
		ck_assert_ptr_null(t);
		ck_assert_ptr_null(topic_find(R, "c"));
		ck_assert_int_eq(topic_reg_count(R), 1);
		ck_assert(!exists("c-0"));
		ck_assert(!exists("c-1"));
		now = read_rel("topics.meta", &len);
		ck_assert(len == mlen && memcmp(now, meta, len) == 0);
		free(now);
	}
	free(meta);
	/* The id sequence did not move either. */
	{
		uint64_t k = topic_id(topic_find(R, "keep"));
		ck_assert_uint_eq(topic_id(create("c", 2)), k + 1);
	}
	teardown();
}
END_TEST

START_TEST(test_duplicate)
{
	struct topic *t, *u = NULL;
	uint64_t id;

	setup();
	reg_open();
	t = create("dup", 2);
	id = topic_id(t);
	ck_assert_int_eq(topic_create(R, "dup", 5, NULL, NULL, 0, err, sizeof(err), &u), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "already exists"));
	ck_assert_ptr_null(u);
	ck_assert_int_eq(topic_reg_count(R), 1);
	ck_assert_ptr_eq(topic_find(R, "dup"), t);
	ck_assert_int_eq(topic_partitions(t), 2);
	ck_assert_uint_eq(topic_id(t), id);
	ck_assert(!exists("dup-2"));
	reg_reopen();
	ck_assert_int_eq(topic_partitions(topic_find(R, "dup")), 2);
	teardown();
}
END_TEST

/* --- persistence --------------------------------------------------------------------- */

START_TEST(test_persist_reopen)
{
	const char *keys[] = { "retention.ms", "segment.bytes" };
	const char *vals[] = { "1h", "65536" };
	struct {
		char name[16];
		uint64_t id;
		int64_t created;
		int parts;
	} want[3];
	struct topic *t;

	setup();
	reg_open();
	t = create_cfg("orders", 3, keys, vals, 2);
	append_wait(t, 1, 5, LOG_ACKS_ALL);
	create("audit", 1);
	create("zeta", 2);
	for (size_t i = 0; i < 3; i++) {
		t = topic_reg_at(R, i);
		snprintf(want[i].name, sizeof(want[i].name), "%s", topic_name(t));
		want[i].id = topic_id(t);
		want[i].created = topic_created_ms(t);
		want[i].parts = topic_partitions(t);
	}
	reg_reopen();
	ck_assert_int_eq(topic_reg_count(R), 3);
	for (size_t i = 0; i < 3; i++) {
		t = topic_reg_at(R, i);
		ck_assert_str_eq(topic_name(t), want[i].name);
		ck_assert_uint_eq(topic_id(t), want[i].id);
		ck_assert_int_eq(topic_created_ms(t), want[i].created);
		ck_assert_int_eq(topic_partitions(t), want[i].parts);
		expect_logs_cfg(t);
	}
	t = topic_find(R, "orders");
	ck_assert_int_eq(topic_config(t)->retention_ms, 3600000);
	ck_assert_int_eq(topic_config(t)->segment_bytes, 65536);
	ck_assert_int_eq(cfg_expect(t, "retention.ms", "3600000", false), 2);
	cfg_expect(t, "segment.bytes", "65536", false);
	ck_assert_int_eq(cfg_expect(topic_find(R, "zeta"), "retention.ms", "-1", true), 0);
	ck_assert_int_eq(log_end_offset(topic_log(t, 1)), 5);
	ck_assert_int_eq(log_end_offset(topic_log(t, 0)), 0);
	/* Ids keep growing after a restart. */
	ck_assert_uint_gt(topic_id(create("new", 1)), want[2].id);
	teardown();
}
END_TEST

START_TEST(test_delete_reopen)
{
	struct topic *t;

	setup();
	reg_open();
	create("a", 1);
	t = create("gone", 3);
	create("z", 1);
	ck_assert_int_eq(topic_delete(R, t), 0);
	ck_assert_ptr_null(topic_find(R, "gone"));
	ck_assert_int_eq(topic_reg_count(R), 2);
	ck_assert_str_eq(topic_name(topic_reg_at(R, 0)), "a");
	ck_assert_str_eq(topic_name(topic_reg_at(R, 1)), "z");
	for (int p = 0; p < 3; p++) {
		char rel[32];
		snprintf(rel, sizeof(rel), "gone-%d", p);
		ck_assert(!exists(rel));
	}
	reg_reopen();
	ck_assert_ptr_null(topic_find(R, "gone"));
	ck_assert_int_eq(topic_reg_count(R), 2);
	ck_assert(!exists("gone-0"));
	teardown();
}
END_TEST

/* Ids are never reused, even after the topic holding the largest one is
 * deleted and the registry restarted. */
START_TEST(test_ids_not_reused)
{
	uint64_t a, b;

	setup();
	reg_open();
	a = topic_id(create("a", 1));
	b = topic_id(create("b", 1));
	ck_assert_uint_gt(b, a);
	ck_assert_int_eq(topic_delete(R, topic_find(R, "b")), 0);
	reg_reopen();
	ck_assert_uint_gt(topic_id(create("c", 1)), b);
	teardown();
}
END_TEST

/* Delete and create again under the same name: a new id and empty logs,
 * also after a restart. */
START_TEST(test_recreate_no_resurrection)
{
	struct topic *t;
	uint64_t old;

	setup();
	reg_open();
	t = create("t", 2);
	old = topic_id(t);
	append_wait(t, 0, 10, LOG_ACKS_ALL);
	append_wait(t, 1, 3, LOG_ACKS_ALL);
	ck_assert_int_eq(log_end_offset(topic_log(t, 0)), 10);
	ck_assert_int_eq(topic_delete(R, t), 0);
	t = create("t", 2);
	ck_assert_uint_ne(topic_id(t), old);
	for (int p = 0; p < 2; p++) {
		ck_assert_int_eq(log_end_offset(topic_log(t, p)), 0);
		ck_assert_int_eq(log_start_offset(topic_log(t, p)), 0);
	}
	old = topic_id(t);
	reg_reopen();
	t = topic_find(R, "t");
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(topic_id(t), old);
	for (int p = 0; p < 2; p++)
		ck_assert_int_eq(log_end_offset(topic_log(t, p)), 0);
	teardown();
}
END_TEST

/* --- orphans, missing partitions, failed partitions ------------------------------------ */

START_TEST(test_orphans_removed_at_open)
{
	setup();
	reg_open();
	create("a", 2);
	create("a-1", 1); /* dir a-1-0: a topic whose name ends in -<digits> */
	reg_close();
	/* Orphans: partitions of no listed topic. */
	mkdir_rel("ghost-0");
	write_rel("ghost-0/00000000000000000000.log", "junk", 4);
	mkdir_rel("a-2");
	mkdir_rel("a-01");
	mkdir_rel("a-1-1");
	/* Not ours: left alone. */
	mkdir_rel("__consumer_offsets");
	write_rel("__consumer_offsets/snapshot", "x", 1);
	write_rel(".lock", "", 0);
	mkdir_rel("notes");
	mkdir_rel("x-y");
	mkdir_rel("bad name-0");
	write_rel("file-0", "f", 1);
	ck_assert_int_eq(symlink("notes", at("link-0")), 0);
	reg_open();
	ck_assert(!exists("ghost-0"));
	ck_assert(!exists("a-2"));
	ck_assert(!exists("a-01"));
	ck_assert(!exists("a-1-1"));
	ck_assert(is_dir("a-0"));
	ck_assert(is_dir("a-1"));
	ck_assert(is_dir("a-1-0"));
	ck_assert(exists("__consumer_offsets/snapshot"));
	ck_assert(exists(".lock"));
	ck_assert(is_dir("notes"));
	ck_assert(is_dir("x-y"));
	ck_assert(is_dir("bad name-0"));
	ck_assert(exists("file-0"));
	ck_assert(exists("link-0"));
	ck_assert(exists("topics.meta"));
	ck_assert_int_eq(topic_reg_count(R), 2);
	teardown();
}
END_TEST

/* A leftover directory with the name of a new topic's partition (a crash
 * during a delete) is emptied before the create reuses the name. */
START_TEST(test_orphan_removed_before_create)
{
	struct topic *t;

	setup();
	reg_open();
	mkdir_rel("t-0");
	write_rel("t-0/stale", "old data", 8);
	t = create("t", 1);
	ck_assert(!exists("t-0/stale"));
	ck_assert_int_eq(log_end_offset(topic_log(t, 0)), 0);
	teardown();
}
END_TEST

START_TEST(test_missing_partition_recreated)
{
	struct topic *t;

	setup();
	reg_open();
	t = create("m", 2);
	append_wait(t, 0, 4, LOG_ACKS_ALL);
	append_wait(t, 1, 6, LOG_ACKS_ALL);
	reg_close();
	tu_rmtree(at("m-1"));
	ck_assert(!exists("m-1"));
	reg_open();
	t = topic_find(R, "m");
	ck_assert_ptr_nonnull(t);
	ck_assert(is_dir("m-1"));
	ck_assert_int_eq(log_end_offset(topic_log(t, 1)), 0);
	ck_assert_int_eq(log_end_offset(topic_log(t, 0)), 4);
	teardown();
}
END_TEST

/* A partition that cannot be opened fails the start, and a failed start
 * deletes nothing (not even orphans). */
START_TEST(test_partition_open_failure_fails_open)
{
	setup();
	reg_open();
	create("ok", 1);
	create("bad", 2);
	reg_close();
	tu_rmtree(at("bad-1"));
	write_rel("bad-1", "not a directory", 15);
	mkdir_rel("ghost-0");
	ck_assert_int_eq(reg_try_open(), -ENOTDIR);
	ck_assert_ptr_null(R);
	ck_assert(is_dir("ok-0"));
	ck_assert(is_dir("bad-0"));
	ck_assert(is_dir("ghost-0"));
	ck_assert(exists("bad-1"));
	unlink(at("bad-1"));
	reg_open();
	ck_assert(!exists("ghost-0"));
	ck_assert_int_eq(topic_reg_count(R), 2);
	teardown();
}
END_TEST

/* topic_create failing at its second partition destroys the first and
 * leaves registry, ids and topics.meta as they were. */
START_TEST(test_create_failure_cleans_up)
{
	struct topic *t = NULL;
	size_t mlen, len;
	uint8_t *meta, *now;
	uint64_t next;
	int rc;

	setup();
	reg_open();
	next = topic_id(create("first", 1)) + 1;
	meta = read_rel("topics.meta", &mlen);
	write_rel("t-1", "a file where partition 1 goes", 29);
	rc = topic_create(R, "t", 3, NULL, NULL, 0, err, sizeof(err), &t);
	ck_assert_int_eq(rc, -ENOTDIR);
	ck_assert_ptr_nonnull(strstr(err, "t-1"));
	ck_assert_ptr_null(t);
	ck_assert_ptr_null(topic_find(R, "t"));
	ck_assert_int_eq(topic_reg_count(R), 1);
	ck_assert(!exists("t-0"));
	ck_assert(!exists("t-2"));
	ck_assert(exists("t-1"));
	now = read_rel("topics.meta", &len);
	ck_assert(len == mlen && memcmp(now, meta, len) == 0);
	free(now);
	free(meta);
	unlink(at("t-1"));
	ck_assert_uint_eq(topic_id(create("t", 3)), next);
	teardown();
}
END_TEST

/* When topics.meta cannot be written, create, delete and alter fail with
 * -errno and change nothing. */
START_TEST(test_meta_write_failure)
{
	const char *k[] = { "retention.ms" };
	const char *v[] = { "5000" };
	struct topic *a, *t = NULL;

	setup();
	reg_open();
	a = create("a", 2);
	mkdir_rel("topics.meta.tmp"); /* the temp file cannot be created */
	ck_assert_int_eq(topic_create(R, "x", 2, NULL, NULL, 0, err, sizeof(err), &t), -EISDIR);
	ck_assert_ptr_nonnull(strstr(err, "topics.meta"));
	ck_assert_ptr_null(topic_find(R, "x"));
	ck_assert(!exists("x-0"));
	ck_assert(!exists("x-1"));
	ck_assert_int_eq(topic_delete(R, a), -EISDIR);
	ck_assert_ptr_eq(topic_find(R, "a"), a);
	ck_assert(is_dir("a-0"));
	ck_assert_int_eq(topic_alter(R, a, k, v, 1, NULL, 0, err, sizeof(err)), -EISDIR);
	ck_assert_int_eq(topic_config(a)->retention_ms, T.cfg.retention_ms);
	expect_logs_cfg(a);
	append_wait(a, 1, 2, LOG_ACKS_ALL); /* still a working topic */
	ck_assert_int_eq(rmdir(at("topics.meta.tmp")), 0);
	ck_assert_int_eq(topic_alter(R, a, k, v, 1, NULL, 0, err, sizeof(err)), 0);
	create("x", 2);
	ck_assert_int_eq(topic_delete(R, a), 0);
	reg_reopen();
	ck_assert_ptr_null(topic_find(R, "a"));
	ck_assert_ptr_nonnull(topic_find(R, "x"));
	teardown();
}
END_TEST

/* --- data directories from before metadata ------------------------------------------- */

static void make_legacy_log(const char *rel, int nrec)
{
	struct log *log;
	struct lt_app *a;

	ck_assert_int_eq(log_open(T.ctx, at(rel), &T.cfg, LOG_OPEN_CREATE, &log), 0);
	if (nrec > 0) {
		a = lt_app_new_at(&T, 0, nrec, TS0, LOG_ACKS_ALL);
		ck_assert_int_eq(log_append(log, &a->a), 0);
		a->accepted = true;
		LT_RUN_UNTIL(&T, a->calls == 1);
		ck_assert_int_eq(a->res, 0);
	}
	ck_assert_int_eq(log_close(log), 0);
}

START_TEST(test_legacy_adoption)
{
	struct topic *t;
	uint64_t id_old;

	setup();
	make_legacy_log("old-0", 3);
	make_legacy_log("old-1", 7);
	make_legacy_log("x-y-0", 1);
	make_legacy_log("gap-0", 2);
	make_legacy_log("gap-2", 2);
	mkdir_rel("__consumer_offsets");
	ck_assert(!exists("topics.meta"));
	reg_open();
	ck_assert(exists("topics.meta"));
	ck_assert_int_eq(topic_reg_count(R), 3);
	t = topic_find(R, "old");
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(topic_partitions(t), 2);
	ck_assert_int_eq(log_end_offset(topic_log(t, 0)), 3);
	ck_assert_int_eq(log_end_offset(topic_log(t, 1)), 7);
	ck_assert_int_eq(memcmp(topic_config(t), &T.cfg, sizeof(T.cfg)), 0);
	id_old = topic_id(t);
	t = topic_find(R, "x-y");
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(topic_partitions(t), 1);
	ck_assert_int_eq(log_end_offset(topic_log(t, 0)), 1);
	t = topic_find(R, "gap"); /* the missing middle partition is created */
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(topic_partitions(t), 3);
	ck_assert(is_dir("gap-1"));
	ck_assert_int_eq(log_end_offset(topic_log(t, 2)), 2);
	ck_assert(is_dir("__consumer_offsets"));
	/* From now on the metadata rules: the same topics and ids. */
	reg_reopen();
	ck_assert_int_eq(topic_reg_count(R), 3);
	ck_assert_uint_eq(topic_id(topic_find(R, "old")), id_old);
	ck_assert_int_eq(log_end_offset(topic_log(topic_find(R, "old"), 1)), 7);
	teardown();
}
END_TEST

/* A directory this broker would not have written ("t-01") is not adopted
 * (nor deleted): the start fails naming it. */
START_TEST(test_legacy_refuses_odd_directory)
{
	setup();
	make_legacy_log("t-0", 1);
	mkdir_rel("t-01");
	ck_assert_int_eq(reg_try_open(), -EINVAL);
	ck_assert(is_dir("t-01"));
	ck_assert(is_dir("t-0"));
	ck_assert(!exists("topics.meta"));
	teardown();
}
END_TEST

/* --- a damaged topics.meta --------------------------------------------------------------- */

START_TEST(test_corrupt_meta_fails_open)
{
	size_t len;
	uint8_t *good, *bad;

	setup();
	reg_open();
	create("one", 2);
	create("two", 1);
	reg_close();
	good = read_rel("topics.meta", &len);
	ck_assert_int_gt(len, 20);
	bad = malloc(len + 1);
	ck_assert_ptr_nonnull(bad);

	/* A flipped payload byte: the CRC. */
	for (size_t pos = 16; pos < len; pos += (len - 16) / 5 + 1) {
		memcpy(bad, good, len);
		bad[pos] ^= 0x10;
		write_rel("topics.meta", bad, len);
		ck_assert_int_eq(reg_try_open(), -EBADMSG);
		ck_assert_ptr_null(R);
	}
	/* Magic, length and CRC fields. */
	for (size_t pos = 0; pos < 16; pos++) {
		if (pos >= 4 && pos < 8)
			continue; /* version: below */
		memcpy(bad, good, len);
		bad[pos] ^= 0x01;
		write_rel("topics.meta", bad, len);
		ck_assert_msg(reg_try_open() == -EBADMSG, "header byte %zu", pos);
	}
	memcpy(bad, good, len);
	bad[4] = 2;
	write_rel("topics.meta", bad, len);
	ck_assert_int_eq(reg_try_open(), -EPROTONOSUPPORT);
	/* Truncated, too short for a header, extended, empty. */
	write_rel("topics.meta", good, len - 1);
	ck_assert_int_eq(reg_try_open(), -EBADMSG);
	write_rel("topics.meta", good, 5);
	ck_assert_int_eq(reg_try_open(), -EBADMSG);
	memcpy(bad, good, len);
	bad[len] = 0;
	write_rel("topics.meta", bad, len + 1);
	ck_assert_int_eq(reg_try_open(), -EBADMSG);
	write_rel("topics.meta", "", 0);
	ck_assert_int_eq(reg_try_open(), -EBADMSG);
	/* A good CRC over bytes that are no protobuf. */
	write_meta_raw(0x4d544b42u, 1, (const uint8_t *)"\xff\xff\xff", 3);
	ck_assert_int_eq(reg_try_open(), -EBADMSG);
	/* Nothing was removed by the failed starts. */
	ck_assert(is_dir("one-0"));
	ck_assert(is_dir("one-1"));
	ck_assert(is_dir("two-0"));
	write_rel("topics.meta", good, len);
	reg_open();
	ck_assert_int_eq(topic_reg_count(R), 2);
	free(bad);
	free(good);
	teardown();
}
END_TEST

/* Well-formed files whose contents break the rules topic_create enforces. */
START_TEST(test_invalid_meta_contents_fail_open)
{
	setup();
	mkdir_rel("t-0");
	write_meta_one("../t", 1, 1, NULL, NULL);
	ck_assert_int_eq(reg_try_open(), -EINVAL);
	write_meta_one("t", 1, 0, NULL, NULL);
	ck_assert_int_eq(reg_try_open(), -EINVAL);
	write_meta_one("t", 1, TOPIC_PARTITIONS_MAX + 1, NULL, NULL);
	ck_assert_int_eq(reg_try_open(), -EINVAL);
	write_meta_one("t", 0, 1, NULL, NULL);
	ck_assert_int_eq(reg_try_open(), -EINVAL);
	write_meta_one("t", 1, 1, "no.such.key", "1");
	ck_assert_int_eq(reg_try_open(), -EINVAL);
	write_meta_one("t", 1, 1, "segment.bytes", "1");
	ck_assert_int_eq(reg_try_open(), -EINVAL);
	ck_assert(is_dir("t-0"));
	write_meta_one("t", 7, 1, "segment.bytes", "8192");
	reg_open();
	ck_assert_uint_eq(topic_id(topic_find(R, "t")), 7);
	ck_assert_int_eq(topic_config(topic_find(R, "t"))->segment_bytes, 8192);
	ck_assert_uint_eq(topic_id(create("u", 1)), 8);
	teardown();
}
END_TEST

/* A crash before the rename leaves topics.meta.tmp: ignored and removed;
 * topics.meta (the previous state) rules. */
START_TEST(test_stale_tmp_ignored)
{
	setup();
	reg_open();
	create("kept", 1);
	reg_close();
	write_rel("topics.meta.tmp", "garbage that is no metadata", 27);
	reg_open();
	ck_assert(!exists("topics.meta.tmp"));
	ck_assert_int_eq(topic_reg_count(R), 1);
	ck_assert_ptr_nonnull(topic_find(R, "kept"));
	teardown();
}
END_TEST

/* --- alter --------------------------------------------------------------------------------- */

START_TEST(test_alter_persists)
{
	const char *k0[] = { "segment.bytes" };
	const char *v0[] = { "1MiB" };
	const char *k1[] = { "retention.ms", "flush.mode" };
	const char *v1[] = { "2h", "os" };
	const char *r2[] = { "segment.bytes", "retention.bytes" };
	const char *k2[] = { "index.interval.bytes" };
	const char *v2[] = { "8192" };
	struct topic *t;

	setup();
	reg_open();
	t = create_cfg("al", 2, k0, v0, 1);
	ck_assert_int_eq(topic_alter(R, t, k1, v1, 2, NULL, 0, err, sizeof(err)), 0);
	ck_assert_int_eq(topic_config(t)->retention_ms, 2 * 3600000);
	ck_assert_int_eq(topic_config(t)->flush_mode, LOG_FLUSH_OS);
	ck_assert_int_eq(topic_config(t)->segment_bytes, 1 << 20);
	expect_logs_cfg(t);
	ck_assert_int_eq(cfg_expect(t, "flush.mode", "os", false), 3);
	reg_reopen();
	t = topic_find(R, "al");
	ck_assert_int_eq(topic_config(t)->retention_ms, 2 * 3600000);
	ck_assert_int_eq(topic_config(t)->flush_mode, LOG_FLUSH_OS);
	ck_assert_int_eq(topic_config(t)->segment_bytes, 1 << 20);
	expect_logs_cfg(t);
	/* Reset one override (and one that was never set), set another. */
	ck_assert_int_eq(topic_alter(R, t, k2, v2, 1, r2, 2, err, sizeof(err)), 0);
	ck_assert_int_eq(topic_config(t)->segment_bytes, T.cfg.segment_bytes);
	ck_assert_int_eq(topic_config(t)->index_interval_bytes, 8192);
	expect_logs_cfg(t);
	ck_assert_int_eq(cfg_expect(t, "segment.bytes", "1048576", true), 3);
	cfg_expect(t, "index.interval.bytes", "8192", false);
	reg_reopen();
	t = topic_find(R, "al");
	ck_assert_int_eq(topic_config(t)->segment_bytes, T.cfg.segment_bytes);
	ck_assert_int_eq(topic_config(t)->index_interval_bytes, 8192);
	ck_assert_int_eq(topic_config(t)->retention_ms, 2 * 3600000);
	ck_assert_int_eq(cfg_expect(t, "segment.bytes", "1048576", true), 3);
	expect_logs_cfg(t);
	/* A key both reset and set ends up set. */
	ck_assert_int_eq(topic_alter(R, t, k2, (const char *[]){ "16384" }, 1, k2, 1, err,
				     sizeof(err)), 0);
	ck_assert_int_eq(topic_config(t)->index_interval_bytes, 16384);
	teardown();
}
END_TEST

START_TEST(test_alter_all_or_nothing)
{
	const char *k[] = { "retention.ms", "segment.bytes" };
	const char *v[] = { "5h", "1" };
	const char *k0[] = { "retention.bytes" };
	const char *v0[] = { "1000000" };
	struct log_config before;
	struct topic *t;
	size_t mlen, len;
	uint8_t *meta, *now;

	setup();
	reg_open();
	t = create_cfg("aon", 2, k0, v0, 1);
	before = *topic_config(t);
	meta = read_rel("topics.meta", &mlen);
	/* A bad value after a good one: nothing applied. */
	ck_assert_int_eq(topic_alter(R, t, k, v, 2, NULL, 0, err, sizeof(err)), -EDOM);
	ck_assert_ptr_nonnull(strstr(err, "segment.bytes: "));
	/* Unknown or broker-only keys, set or reset. */
	ck_assert_int_eq(topic_alter(R, t, (const char *[]){ "nope" }, (const char *[]){ "1" }, 1,
				     NULL, 0, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "nope"));
	ck_assert_int_eq(topic_alter(R, t, NULL, NULL, 0, (const char *[]){ "nope" }, 1, err,
				     sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "nope"));
	ck_assert_int_eq(topic_alter(R, t, k, (const char *[]){ "1h", "8192" }, 2,
				     (const char *[]){ "retention.bytes", "max.connections" }, 2,
				     err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "max.connections"));
	ck_assert_int_eq(memcmp(topic_config(t), &before, sizeof(before)), 0);
	expect_logs_cfg(t);
	ck_assert_int_eq(cfg_expect(t, "retention.bytes", "1000000", false), 1);
	now = read_rel("topics.meta", &len);
	ck_assert(len == mlen && memcmp(now, meta, len) == 0);
	free(now);
	free(meta);
	reg_reopen();
	ck_assert_int_eq(memcmp(topic_config(topic_find(R, "aon")), &before, sizeof(before)), 0);
	teardown();
}
END_TEST

/* --- waiters ------------------------------------------------------------------------------ */

struct tw {
	struct topic_waiter w;  /* first: the callback casts back */
	struct topic *t;
	int p;
	int calls;
	int reason;
	int rearm;              /* re-arm this many more times from the callback */
	int64_t hw;             /* of the partition when woken */
	bool found;             /* the topic was still in the registry */
	struct tw *unwait;      /* disarm this one from the callback */
};

static void tw_wake(struct topic_waiter *w, int reason)
{
	struct tw *x = (struct tw *)w;

	ck_assert(!w->armed);
	x->calls++;
	x->reason = reason;
	x->found = topic_find(R, topic_name(x->t)) != NULL;
	if (reason == 0)
		x->hw = log_high_watermark(topic_log(x->t, x->p));
	if (x->unwait != NULL)
		topic_unwait(&x->unwait->w);
	if (x->rearm > 0) {
		x->rearm--;
		topic_wait(x->t, x->p, w);
	}
}

static void tw_arm(struct tw *x, struct topic *t, int p)
{
	x->t = t;
	x->p = p;
	x->w.wake = tw_wake;
	topic_wait(t, p, &x->w);
	ck_assert(x->w.armed);
}

START_TEST(test_waiters_woken_by_append)
{
	struct tw a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };
	struct topic *t;

	setup();
	reg_open();
	t = create("w", 2);
	tw_arm(&a, t, 0);
	a.rearm = 1;
	tw_arm(&b, t, 1);
	tw_arm(&c, t, 0);
	topic_unwait(&c.w);
	ck_assert(!c.w.armed);
	topic_unwait(&c.w); /* no-op */
	topic_wait(t, 0, &a.w); /* already armed: no-op */
	/* d is woken before e (armed earlier) and disarms e: e is not called. */
	tw_arm(&d, t, 0);
	tw_arm(&e, t, 0);
	d.unwait = &e;

	append_wait(t, 0, 3, LOG_ACKS_LEADER);
	LT_RUN_UNTIL(&T, a.calls == 1 && d.calls == 1);
	ck_assert_int_eq(a.reason, 0);
	ck_assert_int_eq(a.hw, 3);
	ck_assert(a.w.armed); /* re-armed by its callback, not woken again */
	ck_assert_int_eq(b.calls, 0);
	ck_assert(b.w.armed);
	ck_assert_int_eq(c.calls, 0);
	ck_assert(!d.w.armed);
	ck_assert_int_eq(e.calls, 0);
	ck_assert(!e.w.armed);

	append_wait(t, 0, 2, LOG_ACKS_LEADER);
	LT_RUN_UNTIL(&T, a.calls == 2);
	ck_assert_int_eq(a.hw, 5);
	ck_assert(!a.w.armed);
	ck_assert_int_eq(d.calls, 1);

	append_wait(t, 1, 1, LOG_ACKS_LEADER);
	LT_RUN_UNTIL(&T, b.calls == 1);
	ck_assert_int_eq(b.reason, 0);
	ck_assert(!b.w.armed);
	lt_settle(&T);
	ck_assert_int_eq(a.calls, 2);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(e.calls, 0);
	teardown();
}
END_TEST

START_TEST(test_waiters_woken_by_delete)
{
	struct tw a = { 0 }, b = { 0 }, c = { 0 }, other = { 0 };
	struct topic *t, *u;

	setup();
	reg_open();
	t = create("del", 3);
	u = create("stay", 1);
	tw_arm(&a, t, 0);
	tw_arm(&b, t, 2);
	tw_arm(&c, t, 0);
	tw_arm(&other, u, 0);
	ck_assert_int_eq(topic_delete(R, t), 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(a.reason, -ENOENT);
	ck_assert_int_eq(b.reason, -ENOENT);
	ck_assert_int_eq(c.reason, -ENOENT);
	ck_assert(!a.found); /* gone from the registry when told */
	ck_assert(!a.w.armed && !b.w.armed && !c.w.armed);
	topic_unwait(&a.w); /* no-op on a disarmed waiter */
	ck_assert_int_eq(other.calls, 0);
	ck_assert(other.w.armed);
	/* The other topic still wakes its waiter. */
	append_wait(u, 0, 1, LOG_ACKS_LEADER);
	LT_RUN_UNTIL(&T, other.calls == 1);
	ck_assert_int_eq(other.reason, 0);
	teardown();
}
END_TEST

/* A waiter still armed at shutdown is disarmed, not called. */
START_TEST(test_waiters_disarmed_at_close)
{
	struct tw a = { 0 };

	setup();
	reg_open();
	tw_arm(&a, create("c", 1), 0);
	reg_close();
	ck_assert(!a.w.armed);
	ck_assert_int_eq(a.calls, 0);
	topic_unwait(&a.w);
	teardown();
}
END_TEST

Suite *topic_suite(void)
{
	Suite *s = suite_create("topic");
	TCase *tc;

	tc = tcase_create("registry");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_find_list);
	tcase_add_test(tc, test_create_with_overrides);
	tcase_add_test(tc, test_name_check);
	tcase_add_test(tc, test_partition_count_range);
	tcase_add_test(tc, test_bad_config_creates_nothing);
	tcase_add_test(tc, test_duplicate);
	tcase_add_test(tc, test_create_failure_cleans_up);
	suite_add_tcase(s, tc);

	tc = tcase_create("persistence");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_persist_reopen);
	tcase_add_test(tc, test_delete_reopen);
	tcase_add_test(tc, test_ids_not_reused);
	tcase_add_test(tc, test_recreate_no_resurrection);
	tcase_add_test(tc, test_meta_write_failure);
	tcase_add_test(tc, test_stale_tmp_ignored);
	tcase_add_test(tc, test_corrupt_meta_fails_open);
	tcase_add_test(tc, test_invalid_meta_contents_fail_open);
	suite_add_tcase(s, tc);

	tc = tcase_create("directories");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_orphans_removed_at_open);
	tcase_add_test(tc, test_orphan_removed_before_create);
	tcase_add_test(tc, test_missing_partition_recreated);
	tcase_add_test(tc, test_partition_open_failure_fails_open);
	tcase_add_test(tc, test_legacy_adoption);
	tcase_add_test(tc, test_legacy_refuses_odd_directory);
	suite_add_tcase(s, tc);

	tc = tcase_create("alter");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_alter_persists);
	tcase_add_test(tc, test_alter_all_or_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("waiters");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_waiters_woken_by_append);
	tcase_add_test(tc, test_waiters_woken_by_delete);
	tcase_add_test(tc, test_waiters_disarmed_at_close);
	suite_add_tcase(s, tc);
	return s;
}
