/* check_consumer — libbrokerc's consumer against a real brokerd: reading
 * several partitions, seeks (offset, latest, time), tailing with long
 * polls, commits and resuming (also after a crash of the consumer),
 * auto_offset_reset, out-of-range after retention, corrupt batches (stored
 * ones, and crafted ones from a fake broker), and a broker restart in the
 * middle.  Test data is produced with the harness's blocking client. */
#include <brokerd/client.h>
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/batch.h"
#include "tests/integration/harness.h"

Suite *consumer_suite(void); /* called by the runner */

static struct tb b;

/* Everything the consumer logged, one line per message. */
static char logbuf[1 << 16];
static size_t loglen;

static void log_cb(void *opaque, int level, const char *msg)
{
	(void)opaque;
	if (loglen < sizeof(logbuf))
		loglen += (size_t)snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "%d %s\n",
					   level, msg);
	if (loglen > sizeof(logbuf))
		loglen = sizeof(logbuf);
}

static int logged(const char *needle)
{
	return strstr(logbuf, needle) != NULL;
}

static void setup(void)
{
	memset(&b, 0, sizeof(b));
	loglen = 0;
	logbuf[0] = '\0';
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

/* Produce n records "<prefix>-<first..>" to partition p as one batch. */
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

/* n records in batches of `per`, values "<prefix>-<offset>". */
static void produce_many(int fd, const char *topic, uint32_t p, const char *prefix, int first,
			 int n, int per)
{
	for (int i = 0; i < n; i += per)
		produce(fd, topic, p, prefix, first + i, n - i < per ? n - i : per);
}

static struct bk_consumer *consumer(const char *group, int64_t reset, uint32_t max_bytes)
{
	struct bk_consumer_conf conf;
	struct bk_consumer *c = NULL;
	char addr[64];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
	bk_consumer_conf_init(&conf);
	conf.bootstrap = addr; /* copied */
	conf.group = group;
	conf.auto_offset_reset = reset;
	if (max_bytes)
		conf.fetch_max_bytes = max_bytes;
	conf.request_timeout_ms = 10000;
	conf.log_cb = log_cb;
	ck_assert_int_eq(bk_consumer_new(&conf, &c), 0);
	return c;
}

static int value_is(const struct bk_record *rec, const char *prefix, int64_t i)
{
	char want[1100];
	int n = snprintf(want, sizeof(want), "%s-%lld", prefix, (long long)i);

	return rec->value_len == n && memcmp(rec->value, want, (size_t)n) == 0;
}

/* Poll until partition p's record at offset to - 1 was returned, checking
 * that every record of topic/p comes in order from `from`, valued
 * "<prefix>-<offset>".  Records of other partitions fail the test. */
static void expect_range(struct bk_consumer *c, const char *topic, int32_t p, const char *prefix,
			 int64_t from, int64_t to)
{
	int64_t deadline = tb_now_ms() + 15000, next = from;
	struct bk_record rec;

	while (next < to) {
		int rc = bk_consumer_poll(c, 200, &rec);

		ck_assert_msg(rc >= 0, "poll: %d (%s)", rc, bk_strerror(rc));
		ck_assert_msg(tb_now_ms() < deadline, "stuck at offset %lld of %lld", (long long)next,
			      (long long)to);
		if (rc == 0)
			continue;
		ck_assert_str_eq(rec.topic, topic);
		ck_assert_int_eq(rec.partition, p);
		ck_assert_msg(rec.offset == next, "offset %lld, expected %lld", (long long)rec.offset,
			      (long long)next);
		ck_assert_msg(value_is(&rec, prefix, next), "offset %lld: '%.*s'", (long long)next,
			      rec.value_len, (const char *)rec.value);
		next++;
	}
}

static int64_t position(struct bk_consumer *c, const char *topic, int32_t p)
{
	int64_t off = -100;

	ck_assert_int_eq(bk_consumer_position(c, topic, p, &off), 0);
	return off;
}

static int64_t committed(int fd, const char *group, const char *topic, uint32_t p)
{
	Brokerd__TopicPartition tp = BROKERD__TOPIC_PARTITION__INIT, *tps[1] = { &tp };
	Brokerd__Response *r;
	int64_t off;

	tp.topic = (char *)topic;
	tp.partition = p;
	r = tc_fetch_offsets(fd, group, tps, 1);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch_offsets->n_offsets, 1);
	off = r->fetch_offsets->offsets[0]->offset;
	tc_free(r);
	return off;
}

/* --- reading ----------------------------------------------------------------- */

/* Three partitions from the earliest offset: every value, in order per
 * partition, the partitions interleaved; then nothing more. */
START_TEST(three_partitions_from_earliest)
{
	static const uint32_t sizes[] = { 0, 1 };
	char prefix[3][16];
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "t3", 3, NULL, 0);
	for (int p = 0; p < 3; p++) {
		snprintf(prefix[p], sizeof(prefix[p]), "p%d", p);
		produce_many(fd, "t3", (uint32_t)p, prefix[p], 0, 1000, 250);
	}
	/* default fetches (all of a partition at once), then one batch per
	 * fetch (max_bytes 1: many fetches, prefetch and queueing) */
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct bk_consumer *c = consumer(NULL, BK_OFFSET_LATEST, sizes[s]);
		int64_t next[3] = { 0, 0, 0 }, deadline = tb_now_ms() + 15000;
		int total = 0, first_seen[3] = { -1, -1, -1 }, done_at[3] = { 0, 0, 0 };
		struct bk_record rec;

		for (int p = 0; p < 3; p++)
			ck_assert_int_eq(bk_consumer_assign(c, "t3", p, BK_OFFSET_EARLIEST), 0);
		while (total < 3000) {
			int rc = bk_consumer_poll(c, 200, &rec);

			ck_assert_int_ge(rc, 0);
			ck_assert_msg(tb_now_ms() < deadline, "only %d records", total);
			if (rc == 0)
				continue;
			ck_assert_int_ge(rec.partition, 0);
			ck_assert_int_lt(rec.partition, 3);
			ck_assert_int_eq(rec.offset, next[rec.partition]);
			ck_assert(value_is(&rec, prefix[rec.partition], rec.offset));
			ck_assert_int_eq(rec.key_len, -1);
			ck_assert_ptr_null(rec.key);
			ck_assert_uint_eq(rec.nheaders, 0);
			ck_assert_int_gt(rec.timestamp_ms, 0);
			if (first_seen[rec.partition] < 0)
				first_seen[rec.partition] = total;
			if (++next[rec.partition] == 1000)
				done_at[rec.partition] = total;
			total++;
		}
		/* round-robin by batch: no partition waits for another's end */
		for (int p = 0; p < 3; p++)
			for (int q = 0; q < 3; q++)
				ck_assert_msg(p == q || first_seen[p] < done_at[q],
					      "partition %d started at record %d, after partition "
					      "%d ended at %d", p, first_seen[p], q, done_at[q]);
		ck_assert_int_eq(bk_consumer_poll(c, 100, &rec), 0);
		for (int p = 0; p < 3; p++)
			ck_assert_int_eq(position(c, "t3", p), 1000);
		bk_consumer_close(c);
	}
	close(fd);
}
END_TEST

/* Keys, headers and null values come through as produced. */
START_TEST(keys_headers_nulls)
{
	struct batch_builder bb;
	struct batch_kv h[2] = { { "trace", 5, "abc", 3 }, { "empty", 5, NULL, -1 } };
	struct bk_consumer *c;
	struct bk_record rec;
	Brokerd__Response *r;
	uint8_t *batch;
	size_t len;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "kh", 1, NULL, 0);
	batch_builder_init(&bb);
	ck_assert_int_eq(batch_builder_add(&bb, 1000, "k0", 2, "v0", 2, h, 2), 0);
	ck_assert_int_eq(batch_builder_add(&bb, 1001, "", 0, NULL, -1, NULL, 0), 0);
	ck_assert_int_eq(batch_builder_finish(&bb, 0, &batch, &len), 0);
	r = tc_produce(fd, "kh", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_OK(r);
	tc_free(r);
	free(batch);
	c = consumer(NULL, BK_OFFSET_EARLIEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "kh", 0, 0), 0);
	ck_assert_int_eq(bk_consumer_poll(c, 5000, &rec), 1);
	ck_assert_int_eq(rec.timestamp_ms, 1000);
	ck_assert_int_eq(rec.key_len, 2);
	ck_assert_mem_eq(rec.key, "k0", 2);
	ck_assert_uint_eq(rec.nheaders, 2);
	ck_assert_str_eq(rec.headers[0].key, "trace");
	ck_assert_int_eq(rec.headers[0].value_len, 3);
	ck_assert_mem_eq(rec.headers[0].value, "abc", 3);
	ck_assert_str_eq(rec.headers[1].key, "empty");
	ck_assert_int_eq(rec.headers[1].value_len, -1);
	ck_assert_int_eq(bk_consumer_poll(c, 5000, &rec), 1);
	ck_assert_int_eq(rec.offset, 1);
	ck_assert_int_eq(rec.key_len, 0);
	ck_assert_int_eq(rec.value_len, -1);
	ck_assert_ptr_null(rec.value);
	ck_assert_uint_eq(rec.nheaders, 0);
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* seek to an offset (also inside a batch), to latest (only new records),
 * to a time, and back to the earliest. */
START_TEST(seeks)
{
	int64_t ts0 = tb_wall_ms() - 100000;
	struct bk_consumer *c;
	struct bk_record rec;
	Brokerd__Response *r;
	uint8_t *batch;
	size_t len;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "s", 1, NULL, 0);
	for (int k = 0; k < 2; k++) {
		batch = tc_batch_ts("v", k * 100, 100, ts0 + k * 100, &len);
		r = tc_produce(fd, "s", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
		TC_OK(r);
		tc_free(r);
		free(batch);
	}
	c = consumer(NULL, BK_OFFSET_LATEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "s", 0, 50), 0);
	ck_assert_int_eq(position(c, "s", 0), 50);
	expect_range(c, "s", 0, "v", 50, 60);
	ck_assert_int_eq(bk_consumer_seek(c, "s", 0, 150), 0);
	expect_range(c, "s", 0, "v", 150, 152);
	ck_assert_int_eq(bk_consumer_seek(c, "s", 0, 10), 0);
	expect_range(c, "s", 0, "v", 10, 12);
	ck_assert_int_eq(bk_consumer_seek_time(c, "s", 0, ts0 + 120), 0);
	ck_assert_int_eq(position(c, "s", 0), 120);
	expect_range(c, "s", 0, "v", 120, 121);
	ck_assert_int_eq(bk_consumer_seek_time(c, "s", 0, ts0 + 55), 0);
	expect_range(c, "s", 0, "v", 55, 56);
	/* past every record: the end */
	ck_assert_int_eq(bk_consumer_seek_time(c, "s", 0, ts0 + 1000000), 0);
	ck_assert_int_eq(position(c, "s", 0), 200);
	ck_assert_int_eq(bk_consumer_seek(c, "s", 0, BK_OFFSET_EARLIEST), 0);
	ck_assert_int_eq(position(c, "s", 0), 0);
	expect_range(c, "s", 0, "v", 0, 3);
	ck_assert_int_eq(bk_consumer_seek(c, "s", 0, BK_OFFSET_LATEST), 0);
	ck_assert_int_eq(position(c, "s", 0), 200);
	ck_assert_int_eq(bk_consumer_poll(c, 200, &rec), 0);
	produce(fd, "s", 0, "v", 200, 5);
	expect_range(c, "s", 0, "v", 200, 205);
	ck_assert_int_eq(bk_consumer_poll(c, 100, &rec), 0);
	/* errors */
	ck_assert_int_eq(bk_consumer_seek(c, "s", 1, 0), -ENOENT);
	ck_assert_int_eq(bk_consumer_seek_time(c, "s", 0, -1), -EINVAL);
	ck_assert_int_eq(bk_consumer_seek(c, "s", 0, BK_OFFSET_COMMITTED), -EINVAL);
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* A waiting poll returns a record produced after it started, woken by the
 * long poll rather than at its end; with nothing produced it returns 0
 * after its timeout, and -EINTR when a signal handler runs. */
static void on_alarm(int sig)
{
	(void)sig;
}

START_TEST(tailing)
{
	struct itimerval it = { .it_value = { 0, 300 * 1000 } };
	struct sigaction sa = { .sa_flags = 0 };
	struct bk_consumer_conf conf;
	struct bk_consumer *c = NULL;
	struct bk_record rec;
	char addr[64];
	int64_t t0, dt;
	pid_t pid;
	int fd, st;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "tail", 1, NULL, 0);
	produce(fd, "tail", 0, "old", 0, 3);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
	bk_consumer_conf_init(&conf);
	conf.bootstrap = addr;
	conf.fetch_max_wait_ms = 3000; /* a wake-up, not the end of the wait */
	conf.log_cb = log_cb;
	ck_assert_int_eq(bk_consumer_new(&conf, &c), 0);
	ck_assert_int_eq(bk_consumer_assign(c, "tail", 0, BK_OFFSET_LATEST), 0);
	ck_assert_int_eq(position(c, "tail", 0), 3);
	t0 = tb_now_ms();
	ck_assert_int_eq(bk_consumer_poll(c, 0, &rec), 0);
	ck_assert_int_lt(tb_now_ms() - t0, 100);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int pfd;

		usleep(400 * 1000);
		pfd = tc_connect(b.port);
		produce(pfd, "tail", 0, "new", 3, 1);
		_exit(0);
	}
	t0 = tb_now_ms();
	ck_assert_int_eq(bk_consumer_poll(c, 8000, &rec), 1);
	dt = tb_now_ms() - t0;
	ck_assert_int_eq(rec.offset, 3);
	ck_assert(value_is(&rec, "new", 3));
	ck_assert_msg(dt >= 300 && dt < 2500, "record after %lld ms", (long long)dt);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	for (int i = 0; i < 2; i++) {
		t0 = tb_now_ms();
		ck_assert_int_eq(bk_consumer_poll(c, 300, &rec), 0);
		dt = tb_now_ms() - t0;
		ck_assert_msg(dt >= 295 && dt < 1000, "poll(300) took %lld ms", (long long)dt);
	}
	/* a signal handler interrupts a wait without end */
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	t0 = tb_now_ms();
	ck_assert_int_eq(bk_consumer_poll(c, -1, &rec), -EINTR);
	ck_assert_int_lt(tb_now_ms() - t0, 2000);
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* --- groups ------------------------------------------------------------------- */

static int async_calls, async_err = 1;

static void on_commit(void *opaque, int err)
{
	ck_assert_ptr_eq(opaque, &async_calls);
	async_calls++;
	async_err = err;
}

/* Take n records of partitions 0/1 of topic, checking order; positions
 * afterwards in pos[]. */
static void take(struct bk_consumer *c, const char *topic, int n, int64_t next[2])
{
	struct bk_record rec;
	int64_t deadline = tb_now_ms() + 10000;

	while (n > 0) {
		int rc = bk_consumer_poll(c, 200, &rec);

		ck_assert_int_ge(rc, 0);
		ck_assert(tb_now_ms() < deadline);
		if (rc == 0)
			continue;
		ck_assert_str_eq(rec.topic, topic);
		ck_assert_int_eq(rec.offset, next[rec.partition]);
		ck_assert(value_is(&rec, rec.partition ? "q1" : "q0", rec.offset));
		next[rec.partition]++;
		n--;
	}
}

/* commit, commit_async, and a new consumer of the group resuming exactly
 * after the last commit. */
START_TEST(commit_and_resume)
{
	struct bk_consumer *c;
	int64_t next[2] = { 0, 0 }, at[2];
	struct bk_record rec;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "c", 2, NULL, 0);
	produce_many(fd, "c", 0, "q0", 0, 100, 10);
	produce_many(fd, "c", 1, "q1", 0, 100, 10);

	c = consumer("g1", BK_OFFSET_EARLIEST, 64); /* one batch per fetch */
	ck_assert_int_eq(bk_consumer_assign(c, "c", 0, BK_OFFSET_COMMITTED), 0);
	ck_assert_int_eq(bk_consumer_assign(c, "c", 1, BK_OFFSET_COMMITTED), 0);
	ck_assert(logged("no offset committed by group 'g1'"));
	ck_assert_int_eq(position(c, "c", 0), 0);
	take(c, "c", 47, next);
	ck_assert_int_eq(bk_consumer_commit(c), 0);
	ck_assert_int_eq(committed(fd, "g1", "c", 0), next[0]);
	ck_assert_int_eq(committed(fd, "g1", "c", 1), next[1]);
	ck_assert_int_eq(next[0] + next[1], 47);

	take(c, "c", 31, next);
	at[0] = next[0];
	at[1] = next[1];
	ck_assert_int_eq(bk_consumer_commit_async(c, on_commit, &async_calls), 0);
	ck_assert_int_eq(async_calls, 0); /* runs from a later call */
	for (int64_t deadline = tb_now_ms() + 5000; async_calls == 0;) {
		ck_assert(tb_now_ms() < deadline);
		ck_assert_int_ge(bk_consumer_poll(c, 50, &rec), 0); /* moves on: not committed */
	}
	ck_assert_int_eq(async_calls, 1);
	ck_assert_int_eq(async_err, 0);
	ck_assert_int_eq(committed(fd, "g1", "c", 0), at[0]);
	ck_assert_int_eq(committed(fd, "g1", "c", 1), at[1]);
	/* another async commit finishes in close */
	ck_assert_int_eq(bk_consumer_commit_async(c, on_commit, &async_calls), 0);
	position(c, "c", 0);
	at[0] = position(c, "c", 0);
	at[1] = position(c, "c", 1);
	bk_consumer_close(c);
	ck_assert_int_eq(async_calls, 2);
	ck_assert_int_eq(async_err, 0);

	c = consumer("g1", BK_OFFSET_LATEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "c", 0, BK_OFFSET_COMMITTED), 0);
	ck_assert_int_eq(position(c, "c", 0), at[0]);
	expect_range(c, "c", 0, "q0", at[0], 100);
	ck_assert_int_eq(bk_consumer_assign(c, "c", 1, BK_OFFSET_COMMITTED), 0);
	ck_assert_int_eq(position(c, "c", 1), at[1]);
	expect_range(c, "c", 1, "q1", at[1], 100);
	bk_consumer_close(c);

	/* no group, no commits */
	c = consumer(NULL, BK_OFFSET_LATEST, 0);
	ck_assert_int_eq(bk_consumer_commit(c), -EINVAL);
	ck_assert_int_eq(bk_consumer_commit_async(c, NULL, NULL), -EINVAL);
	ck_assert_int_eq(bk_consumer_assign(c, "c", 0, BK_OFFSET_COMMITTED), -EINVAL);
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* Produce one record "<prefix>-<first>" to topic/p from a child process
 * after delay_ms; returns its pid (status 0: produced). */
static pid_t produce_later(const char *topic, uint32_t p, const char *prefix, int first,
			   int delay_ms)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* no Check assertions here: report through the exit status */
		size_t len;
		uint8_t *batch = tc_batch(prefix, first, 1, &len);
		Brokerd__Response *r;
		int fd;

		usleep((useconds_t)delay_ms * 1000);
		fd = tc_connect(b.port);
		r = tc_produce(fd, topic, p, BROKERD__ACKS__ACKS_ALL, batch, len);
		_exit(r != NULL && r->error == 0 ? 0 : 1);
	}
	return pid;
}

/* Every partition long-polls on its own connection: a record produced to
 * the second of two caught-up partitions is handed out while the first's
 * long poll (10 s) is still pending, not after it; and a seek while a long
 * poll is pending takes effect at once instead of queueing behind it. */
START_TEST(long_polls_independent)
{
	struct bk_consumer_conf conf;
	struct bk_consumer *c = NULL;
	struct bk_record rec;
	char addr[64];
	pid_t pid;
	int fd, st;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "lp", 2, NULL, 0);
	produce_many(fd, "lp", 0, "a", 0, 3, 3);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
	bk_consumer_conf_init(&conf);
	conf.bootstrap = addr;
	conf.fetch_max_wait_ms = 10000;
	conf.request_timeout_ms = 30000;
	conf.log_cb = log_cb;
	ck_assert_int_eq(bk_consumer_new(&conf, &c), 0);
	ck_assert_int_eq(bk_consumer_assign(c, "lp", 0, BK_OFFSET_LATEST), 0);
	ck_assert_int_eq(bk_consumer_assign(c, "lp", 1, BK_OFFSET_LATEST), 0);
	/* both caught up: both long-poll from here on */
	ck_assert_int_eq(bk_consumer_poll(c, 300, &rec), 0);
	pid = produce_later("lp", 1, "b", 0, 200);
	ck_assert_int_eq(bk_consumer_poll(c, 4000, &rec), 1);
	ck_assert_int_eq(rec.partition, 1);
	ck_assert_int_eq(rec.offset, 0);
	ck_assert(value_is(&rec, "b", 0));
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* partition 0's long poll is still pending: the seek does not wait */
	ck_assert_int_eq(bk_consumer_seek(c, "lp", 0, 1), 0);
	ck_assert_int_eq(bk_consumer_poll(c, 4000, &rec), 1);
	ck_assert_int_eq(rec.partition, 0);
	ck_assert_int_eq(rec.offset, 1);
	ck_assert(value_is(&rec, "a", 1));
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* A consumer process that commits and then dies without closing: the next
 * one resumes at the commit, with no gap and nothing before it. */
START_TEST(resume_after_crash)
{
	struct bk_consumer *c;
	int64_t at[2];
	pid_t pid;
	int fd, st;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "c", 2, NULL, 0);
	produce_many(fd, "c", 0, "q0", 0, 100, 10);
	produce_many(fd, "c", 1, "q1", 0, 100, 10);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* no Check assertions here: report through the exit status */
		struct bk_consumer_conf conf;
		struct bk_record rec;
		char addr[64];
		int n = 0;

		snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
		bk_consumer_conf_init(&conf);
		conf.bootstrap = addr;
		conf.group = "gc";
		conf.auto_offset_reset = BK_OFFSET_EARLIEST;
		conf.fetch_max_bytes = 64;
		if (bk_consumer_new(&conf, &c) != 0 ||
		    bk_consumer_assign(c, "c", 0, BK_OFFSET_COMMITTED) != 0 ||
		    bk_consumer_assign(c, "c", 1, BK_OFFSET_COMMITTED) != 0)
			_exit(2);
		while (n < 57) {
			int rc = bk_consumer_poll(c, 1000, &rec);
			if (rc < 0)
				_exit(3);
			n += rc;
			if (n == 37 && rc == 1 && bk_consumer_commit(c) != 0)
				_exit(4);
		}
		_exit(0); /* no close, no commit of the last 20 */
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	at[0] = committed(fd, "gc", "c", 0);
	at[1] = committed(fd, "gc", "c", 1);
	ck_assert_int_eq(at[0] + at[1], 37);

	c = consumer("gc", BK_OFFSET_EARLIEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "c", 0, BK_OFFSET_COMMITTED), 0);
	expect_range(c, "c", 0, "q0", at[0], 100);
	ck_assert_int_eq(bk_consumer_unassign(c, "c", 0), 0);
	ck_assert_int_eq(bk_consumer_assign(c, "c", 1, BK_OFFSET_COMMITTED), 0);
	expect_range(c, "c", 1, "q1", at[1], 100);
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* A consumer process of a group, killed with SIGKILL in the middle of a
 * read (fetches in flight, commits every 7 records): its committed offsets
 * never pass what it had processed, and the next consumer of the group
 * resumes at them with nothing skipped, up to the end. */
START_TEST(resume_after_kill9)
{
	enum { N = 300, KILL_AT = 200 };
	int64_t seen_next[2] = { 0, 0 }, at[2];
	struct bk_consumer *c;
	int fd, pfd[2], st, got = 0;
	pid_t pid;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "k9", 2, NULL, 0);
	produce_many(fd, "k9", 0, "x0", 0, N, 10);
	produce_many(fd, "k9", 1, "x1", 0, N, 10);
	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* no Check assertions here: report through the pipe and the exit status */
		struct bk_consumer_conf conf;
		struct bk_record rec;
		char addr[64];
		int n = 0;

		close(pfd[0]);
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
		bk_consumer_conf_init(&conf);
		conf.bootstrap = addr;
		conf.group = "g9";
		conf.auto_offset_reset = BK_OFFSET_EARLIEST;
		conf.fetch_max_bytes = 256;
		if (bk_consumer_new(&conf, &c) != 0 ||
		    bk_consumer_assign(c, "k9", 0, BK_OFFSET_COMMITTED) != 0 ||
		    bk_consumer_assign(c, "k9", 1, BK_OFFSET_COMMITTED) != 0)
			_exit(2);
		for (int turns = 0; turns < 100000; turns++) {
			int64_t msg[2];
			int rc = bk_consumer_poll(c, 1000, &rec);

			if (rc < 0)
				_exit(3);
			if (rc == 0)
				continue;
			/* processed: report it, then (every 7th) commit */
			msg[0] = rec.partition;
			msg[1] = rec.offset;
			if (write(pfd[1], msg, sizeof(msg)) != sizeof(msg))
				_exit(4);
			if (++n % 7 == 0 && bk_consumer_commit(c) != 0)
				_exit(5);
			usleep(500);
		}
		_exit(6);
	}
	close(pfd[1]);
	while (got < KILL_AT) {
		int64_t msg[2];

		ck_assert_int_eq(read(pfd[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
		ck_assert(msg[0] == 0 || msg[0] == 1);
		ck_assert_int_eq(msg[1], seen_next[msg[0]]); /* in order, no gap */
		seen_next[msg[0]]++;
		got++;
	}
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
	/* what it wrote before dying (after KILL_AT) was processed too */
	for (;;) {
		int64_t msg[2];

		if (read(pfd[0], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			break;
		ck_assert_int_eq(msg[1], seen_next[msg[0]]);
		seen_next[msg[0]]++;
	}
	close(pfd[0]);
	for (int p = 0; p < 2; p++) {
		at[p] = committed(fd, "g9", "k9", (uint32_t)p);
		ck_assert_msg(at[p] <= seen_next[p], "partition %d: committed %lld, processed "
			      "up to %lld", p, (long long)at[p], (long long)seen_next[p]);
	}
	ck_assert_int_ge(at[0] + at[1], KILL_AT - 7);
	c = consumer("g9", BK_OFFSET_EARLIEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "k9", 0, BK_OFFSET_COMMITTED), 0);
	ck_assert_int_eq(position(c, "k9", 0), at[0]);
	expect_range(c, "k9", 0, "x0", at[0], N);
	ck_assert_int_eq(bk_consumer_unassign(c, "k9", 0), 0);
	ck_assert_int_eq(bk_consumer_assign(c, "k9", 1, BK_OFFSET_COMMITTED), 0);
	ck_assert_int_eq(position(c, "k9", 1), at[1]);
	expect_range(c, "k9", 1, "x1", at[1], N);
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* BK_OFFSET_COMMITTED without a commit: auto_offset_reset decides. */
START_TEST(auto_offset_reset)
{
	struct bk_consumer_conf conf;
	struct bk_consumer *c;
	struct bk_record rec;
	int fd;

	bk_consumer_conf_init(&conf);
	ck_assert_int_eq(conf.auto_offset_reset, BK_OFFSET_LATEST);
	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "a", 1, NULL, 0);
	produce(fd, "a", 0, "a", 0, 20);

	c = consumer("ga", BK_OFFSET_LATEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "a", 0, BK_OFFSET_COMMITTED), 0);
	ck_assert_int_eq(position(c, "a", 0), 20);
	ck_assert_int_eq(bk_consumer_poll(c, 200, &rec), 0);
	produce(fd, "a", 0, "a", 20, 3);
	expect_range(c, "a", 0, "a", 20, 23);
	bk_consumer_close(c);

	c = consumer("gb", BK_OFFSET_EARLIEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "a", 0, BK_OFFSET_COMMITTED), 0);
	ck_assert_int_eq(position(c, "a", 0), 0);
	expect_range(c, "a", 0, "a", 0, 23);
	bk_consumer_close(c);
	ck_assert(logged("no offset committed by group 'gb'"));
	close(fd);
}
END_TEST

/* --- resets and failures --------------------------------------------------------- */

static const char *big_prefix(void)
{
	static char buf[1001];

	memset(buf, 'r', 1000);
	buf[1000] = '\0';
	return buf;
}

/* Fill a topic with 4 KiB segments and 8 KiB retention and wait until
 * retention moved the log start.  Returns the log start. */
static int64_t retained(int fd, const char *topic)
{
	static const char *const cfg[] = { "segment.bytes=4096", "retention.bytes=8192" };
	int64_t deadline = tb_now_ms() + 10000, start = 0, prev = -1;

	create(fd, topic, 1, cfg, 2);
	for (int k = 0; k < 20; k++)
		produce(fd, topic, 0, big_prefix(), k * 2, 2);
	while (tb_now_ms() < deadline) {
		Brokerd__Response *r = tc_list_offsets(fd, topic, 0, -2);

		TC_OK(r);
		start = r->list_offsets->offset;
		tc_free(r);
		if (start > 0 && start == prev)
			return start; /* settled */
		prev = start;
		usleep(300 * 1000);
	}
	ck_abort_msg("retention did not move the log start within 10 s");
	return -1;
}

/* A position that retention deleted: the fetch is out of range and the
 * consumer resets to auto_offset_reset, saying so. */
START_TEST(out_of_range_after_retention)
{
	struct bk_consumer *c;
	struct bk_record rec;
	int64_t start;
	int fd;

	tb_set(&b, "retention.check.interval.ms=100");
	tb_start(&b);
	fd = tc_connect(b.port);
	start = retained(fd, "ret");
	ck_assert_int_gt(start, 0);

	c = consumer(NULL, BK_OFFSET_EARLIEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "ret", 0, 0), 0);
	expect_range(c, "ret", 0, big_prefix(), start, 40);
	ck_assert(logged("out of range"));
	ck_assert(logged("resetting to the earliest offset"));
	bk_consumer_close(c);

	c = consumer(NULL, BK_OFFSET_LATEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "ret", 0, 1), 0);
	ck_assert_int_eq(bk_consumer_poll(c, 300, &rec), 0);
	ck_assert_int_eq(position(c, "ret", 0), 40);
	produce(fd, "ret", 0, "x", 40, 1);
	expect_range(c, "ret", 0, "x", 40, 41);
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* The path of the one .log file of partition 0 of topic (into buf). */
static void segment_path(const char *topic, char *buf, size_t len)
{
	char dir[4200];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/data/%s-0", b.dir, topic);
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	buf[0] = '\0';
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n > 4 && strcmp(e->d_name + n - 4, ".log") == 0)
			ck_assert_int_lt(snprintf(buf, len, "%s/%s", dir, e->d_name), (int)len);
	}
	closedir(d);
	ck_assert_msg(buf[0] != '\0', "no segment in %s", dir);
}

/* Produce ok-0..9, bad-10..19, ok-20..29 to partition 0 of topic, stop the
 * broker (SIGTERM, or SIGKILL when `crash`), change a byte of bad-15 in
 * the segment file and start the broker again. */
static void corrupt_on_disk(const char *topic, int crash)
{
	static char data[1 << 16];
	char path[4608], *hit;
	ssize_t n;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, topic, 1, NULL, 0);
	produce(fd, topic, 0, "ok", 0, 10);
	produce(fd, topic, 0, "bad", 10, 10);
	produce(fd, topic, 0, "ok", 20, 10);
	close(fd);
	if (crash)
		tb_kill9(&b);
	else
		ck_assert_int_eq(tb_stop(&b), 0);
	segment_path(topic, path, sizeof(path));
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	n = pread(fd, data, sizeof(data) - 1, 0);
	ck_assert_int_gt(n, 0);
	hit = memmem(data, (size_t)n, "bad-15", 6);
	ck_assert_ptr_nonnull(hit);
	ck_assert_int_eq(pwrite(fd, "B", 1, hit - data), 1);
	close(fd);
	tb_start(&b);
}

/* Read the topic corrupt_on_disk made: poll reports `want` once, at offset
 * 10, the partition stops there, and a seek past the batch goes on. */
static void expect_stopped_at_10(const char *topic, int want, const char *needle)
{
	struct bk_consumer *c = consumer(NULL, BK_OFFSET_LATEST, 0);
	struct bk_record rec;
	int rc;

	ck_assert_int_eq(bk_consumer_assign(c, topic, 0, BK_OFFSET_EARLIEST), 0);
	expect_range(c, topic, 0, "ok", 0, 10);
	rc = bk_consumer_poll(c, 5000, &rec);
	ck_assert_msg(rc == want, "poll: %d, expected %d; log:\n%s", rc, want, logbuf);
	ck_assert_int_eq(position(c, topic, 0), 10);
	ck_assert_msg(logged(needle), "no '%s' in the log:\n%s", needle, logbuf);
	ck_assert_int_eq(bk_consumer_poll(c, 200, &rec), 0); /* stopped, reported once */
	ck_assert_int_eq(position(c, topic, 0), 10);
	ck_assert_int_eq(bk_consumer_seek(c, topic, 0, 20), 0);
	expect_range(c, topic, 0, "ok", 20, 30);
	bk_consumer_close(c);
}

/* A stored batch whose bytes changed on disk after a clean stop: no scan
 * ran, but the broker checks the CRCs of what a read is about to serve
 * (docs/storage.md, Recovery) and refuses it (CORRUPT_DATA); the consumer
 * passes that on.  (The consumer's own CRC check is exercised by the fake
 * broker tests below.) */
START_TEST(corrupt_batch_caught_by_client)
{
	corrupt_on_disk("cor", 0);
	expect_stopped_at_10("cor", BK_ERR(BROKERD__ERROR_CODE__CORRUPT_DATA),
			     "'cor' partition 0 stopped at offset 10: CORRUPT_DATA");
}
END_TEST

/* The same after a crash: the broker's recovery scan finds the batch and
 * refuses to serve it (CORRUPT_DATA); the consumer passes that on. */
START_TEST(corrupt_batch_caught_by_broker)
{
	corrupt_on_disk("cor", 1);
	expect_stopped_at_10("cor", BK_ERR(BROKERD__ERROR_CODE__CORRUPT_DATA),
			     "'cor' partition 0 stopped at offset 10: CORRUPT_DATA");
}
END_TEST

/* --- a fake broker serving crafted fetch answers ---------------------------------- */

/* Listen on a free loopback port; returns the fd, *port set. */
static int listen_any(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Answer one request frame: list_offsets -> 0, a fetch at 0 -> `records`
 * (next offset `next`), any later fetch -> nothing.  Returns 0, or an exit
 * status for the fake broker. */
static int fake_answer(int fd, const uint8_t *frame, size_t flen, const uint8_t *records,
		       size_t len, int64_t next)
{
	Brokerd__Request *q = brokerd__request__unpack(NULL, flen, frame);
	Brokerd__Response r = BROKERD__RESPONSE__INIT;
	Brokerd__ListOffsetsResponse lo = BROKERD__LIST_OFFSETS_RESPONSE__INIT;
	Brokerd__FetchResponse f = BROKERD__FETCH_RESPONSE__INIT;
	uint8_t *out;
	size_t n;

	if (q == NULL)
		return 2;
	r.correlation_id = q->correlation_id;
	if (q->op_case == BROKERD__REQUEST__OP_LIST_OFFSETS) {
		lo.high_watermark = next;
		r.op_case = BROKERD__RESPONSE__OP_LIST_OFFSETS;
		r.list_offsets = &lo;
	} else if (q->op_case == BROKERD__REQUEST__OP_FETCH) {
		f.high_watermark = next;
		f.next_offset = q->fetch->offset;
		if (q->fetch->offset == 0) {
			f.records.data = (uint8_t *)records;
			f.records.len = len;
			f.next_offset = next;
		} else {
			usleep(q->fetch->max_wait_ms * 1000);
		}
		r.op_case = BROKERD__RESPONSE__OP_FETCH;
		r.fetch = &f;
	} else {
		brokerd__request__free_unpacked(q, NULL);
		return 3;
	}
	brokerd__request__free_unpacked(q, NULL);
	n = brokerd__response__get_packed_size(&r);
	out = malloc(n + 4);
	if (out == NULL)
		return 4;
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	brokerd__response__pack(&r, out + 4);
	n = tc_send_raw(fd, out, n + 4) < 0 ? 5 : 0;
	free(out);
	return (int)n;
}

/* Serve the consumer's connections (its control connection and the one of
 * its partition) until every one it opened is closed.  Runs in a child. */
static void fake_broker(int lfd, const uint8_t *records, size_t len, int64_t next)
{
	struct pollfd pfd[5] = { { .fd = lfd, .events = POLLIN } };
	int nfd = 1, open_conns = 0, accepted = 0;

	for (int turn = 0; turn < 100000 && (open_conns > 0 || accepted == 0); turn++) {
		if (poll(pfd, (nfds_t)nfd, 20000) <= 0)
			_exit(6);
		for (int i = nfd - 1; i >= 0; i--) {
			uint8_t *frame;
			size_t flen;
			int rc;

			if (pfd[i].revents == 0)
				continue;
			if (i == 0) {
				int fd = accept(lfd, NULL, NULL);

				if (fd < 0 || nfd == 5)
					_exit(1);
				pfd[nfd++] = (struct pollfd){ .fd = fd, .events = POLLIN };
				open_conns++;
				accepted++;
				continue;
			}
			frame = tc_recv_raw(pfd[i].fd, &flen);
			if (frame == NULL) {
				close(pfd[i].fd);
				pfd[i] = pfd[--nfd];
				open_conns--;
				continue;
			}
			rc = fake_answer(pfd[i].fd, frame, flen, records, len, next);
			free(frame);
			if (rc != 0)
				_exit(rc);
		}
	}
	_exit(0);
}

/* Consume from a fake broker serving `records`: expect records 0..good-1
 * ("ok-<i>"), then -EBADMSG with `why` logged, position `good`. */
static void expect_corrupt(const uint8_t *records, size_t len, int64_t next, int good,
			   const char *why)
{
	struct bk_consumer_conf conf;
	struct bk_consumer *c = NULL;
	struct bk_record rec;
	char addr[64], needle[64];
	int lfd, port, st;
	pid_t pid;

	lfd = listen_any(&port);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		fake_broker(lfd, records, len, next);
	close(lfd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	bk_consumer_conf_init(&conf);
	conf.bootstrap = addr;
	conf.fetch_max_wait_ms = 100;
	conf.log_cb = log_cb;
	ck_assert_int_eq(bk_consumer_new(&conf, &c), 0);
	ck_assert_int_eq(bk_consumer_assign(c, "fake", 0, 0), 0);
	for (int i = 0; i < good; i++) {
		ck_assert_int_eq(bk_consumer_poll(c, 5000, &rec), 1);
		ck_assert_int_eq(rec.offset, i);
		ck_assert(value_is(&rec, "ok", i));
	}
	ck_assert_int_eq(bk_consumer_poll(c, 5000, &rec), -EBADMSG);
	ck_assert_int_eq(position(c, "fake", 0), good);
	snprintf(needle, sizeof(needle), "at offset %d ", good);
	ck_assert_msg(logged(needle) && logged(why), "log:\n%s", logbuf);
	ck_assert_int_eq(bk_consumer_poll(c, 100, &rec), 0);
	bk_consumer_close(c);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fake broker status %d", st);
}

/* Two batches back to back, the second based at `base2` (0..9 and
 * base2..base2+9); returns the bytes (malloc'd). */
static uint8_t *two_batches(int64_t base2, size_t *len, size_t *first_len)
{
	size_t l1, l2;
	uint8_t *b1 = tc_batch("ok", 0, 10, &l1), *b2 = tc_batch("ok", 10, 10, &l2);
	uint8_t *out = malloc(l1 + l2);

	ck_assert_ptr_nonnull(out);
	batch_stamp_offset(b2, base2);
	memcpy(out, b1, l1);
	memcpy(out + l1, b2, l2);
	free(b1);
	free(b2);
	*len = l1 + l2;
	*first_len = l1;
	return out;
}

/* A CRC mismatch, a malformed batch, a gap in the offsets and a truncated
 * batch are each reported, never skipped. */
START_TEST(corrupt_crafted_batches)
{
	size_t len, l1;
	uint8_t *buf;

	buf = two_batches(10, &len, &l1);
	buf[len - 3] ^= 0x20; /* a value byte of the second batch */
	expect_corrupt(buf, len, 20, 10, "CRC-32C mismatch");
	free(buf);

	buf = two_batches(10, &len, &l1);
	buf[l1 + BATCH_OFF_MAGIC] = 7;
	expect_corrupt(buf, len, 20, 10, "malformed batch header");
	free(buf);

	buf = two_batches(15, &len, &l1);
	expect_corrupt(buf, len, 25, 10, "offsets jump from 10 to 15");
	free(buf);

	buf = two_batches(10, &len, &l1);
	expect_corrupt(buf, len - 1, 20, 10, "runs past the end");
	free(buf);
}
END_TEST

/* Pick a free loopback port (bind to 0, read it, release it). */
static int free_port(void)
{
	int port, fd = listen_any(&port);

	close(fd);
	return port;
}

/* The broker dies and comes back on the same port in the middle of a
 * read: the consumer reconnects by itself and goes on without a gap or a
 * duplicate; while the broker is away poll returns 0 after its timeout. */
START_TEST(broker_restart)
{
	char listen[64];
	struct bk_consumer *c;
	struct bk_record rec;
	int64_t next = 0, deadline;
	int fd, zeros = 0;

	snprintf(listen, sizeof(listen), "listen=127.0.0.1:%d", free_port());
	tb_set(&b, listen);
	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "rs", 1, NULL, 0);
	produce_many(fd, "rs", 0, "r", 0, 300, 10);
	close(fd);
	c = consumer(NULL, BK_OFFSET_LATEST, 64);
	ck_assert_int_eq(bk_consumer_assign(c, "rs", 0, BK_OFFSET_EARLIEST), 0);
	expect_range(c, "rs", 0, "r", 0, 95);
	next = 95;
	tb_kill9(&b);
	/* what was fetched already still comes, then nothing */
	deadline = tb_now_ms() + 5000;
	while (zeros < 2) {
		int64_t t0 = tb_now_ms();
		int rc = bk_consumer_poll(c, 200, &rec);

		ck_assert_int_ge(rc, 0);
		ck_assert(tb_now_ms() < deadline);
		if (rc == 0) {
			ck_assert_int_lt(tb_now_ms() - t0, 1000);
			zeros++;
			continue;
		}
		ck_assert_int_eq(rec.offset, next);
		ck_assert(value_is(&rec, "r", next));
		next++;
	}
	ck_assert(logged("lost"));
	tb_start(&b);
	fd = tc_connect(b.port);
	produce_many(fd, "rs", 0, "r", 300, 200, 10);
	expect_range(c, "rs", 0, "r", next, 500);
	ck_assert_int_eq(bk_consumer_poll(c, 100, &rec), 0);
	ck_assert(logged("reconnected"));
	bk_consumer_close(c);
	close(fd);
}
END_TEST

/* Bad arguments and configurations, unknown topics and partitions, a
 * topic deleted while consumed, a broker that is not there. */
START_TEST(errors)
{
	struct bk_consumer_conf conf;
	struct bk_consumer *c = NULL;
	struct bk_record rec;
	Brokerd__Response *r;
	int64_t off, t0;
	int fd, rc;

	bk_consumer_conf_init(&conf);
	ck_assert_int_eq(conf.fetch_max_bytes, 1048576);
	ck_assert_int_eq(conf.fetch_max_wait_ms, 500);
	ck_assert_int_eq(conf.fetch_min_bytes, 1);
	ck_assert_int_eq(conf.request_timeout_ms, 30000);
	ck_assert_int_eq(bk_consumer_new(&conf, &c), -EINVAL); /* no bootstrap */
	conf.bootstrap = "no-port";
	ck_assert_int_eq(bk_consumer_new(&conf, &c), -EINVAL);
	conf.bootstrap = "127.0.0.1:1";
	conf.request_timeout_ms = 500; /* must exceed fetch_max_wait_ms */
	ck_assert_int_eq(bk_consumer_new(&conf, &c), -EINVAL);
	conf.request_timeout_ms = 1000;
	conf.auto_offset_reset = 5;
	ck_assert_int_eq(bk_consumer_new(&conf, &c), -EINVAL);
	conf.auto_offset_reset = BK_OFFSET_LATEST;
	conf.group = "";
	ck_assert_int_eq(bk_consumer_new(&conf, &c), -EINVAL);
	conf.group = NULL;
	bk_consumer_close(NULL);

	/* nobody listening: assign fails within request_timeout_ms */
	conf.fetch_max_wait_ms = 100;
	conf.log_cb = log_cb;
	ck_assert_int_eq(bk_consumer_new(&conf, &c), 0);
	t0 = tb_now_ms();
	ck_assert_int_eq(bk_consumer_assign(c, "x", 0, 0), -ECONNREFUSED);
	ck_assert_int_lt(tb_now_ms() - t0, 3000);
	ck_assert(logged("cannot connect to 127.0.0.1:1"));
	ck_assert_int_eq(bk_consumer_position(c, "x", 0, &off), -ENOENT);
	t0 = tb_now_ms();
	ck_assert_int_eq(bk_consumer_poll(c, 100, &rec), 0); /* nothing assigned */
	ck_assert_int_lt(tb_now_ms() - t0, 1000);
	bk_consumer_close(c);

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "e", 2, NULL, 0);
	produce(fd, "e", 0, "e", 0, 5);
	c = consumer(NULL, BK_OFFSET_EARLIEST, 0);
	ck_assert_int_eq(bk_consumer_assign(c, "missing", 0, 0),
			 BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC));
	ck_assert_int_eq(bk_consumer_assign(c, "e", 2, BK_OFFSET_EARLIEST),
			 BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_PARTITION));
	ck_assert_int_eq(bk_consumer_position(c, "e", 2, &off), -ENOENT);
	ck_assert_int_eq(bk_consumer_assign(c, "e", -1, 0), -EINVAL);
	ck_assert_int_eq(bk_consumer_assign(c, "e", 0, -4), -EINVAL);
	ck_assert_int_eq(bk_consumer_assign(c, "e", 0, BK_OFFSET_EARLIEST), 0);
	ck_assert_int_eq(bk_consumer_assign(c, "e", 0, 3), -EEXIST);
	ck_assert_int_eq(bk_consumer_assign(c, "e", 1, BK_OFFSET_EARLIEST), 0);
	expect_range(c, "e", 0, "e", 0, 5);
	ck_assert_int_eq(bk_consumer_unassign(c, "e", 1), 0);
	ck_assert_int_eq(bk_consumer_unassign(c, "e", 1), -ENOENT);
	/* the topic goes away: reported once, then the partition is quiet */
	r = tc_delete_topic(fd, "e");
	TC_OK(r);
	tc_free(r);
	rc = bk_consumer_poll(c, 5000, &rec);
	ck_assert_int_eq(rc, BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC));
	ck_assert_int_eq(bk_consumer_poll(c, 100, &rec), 0);
	ck_assert_int_eq(position(c, "e", 0), 5);
	bk_consumer_close(c);
	close(fd);
}
END_TEST

Suite *consumer_suite(void)
{
	Suite *s = suite_create("consumer");
	TCase *tc = tcase_create("consumer");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, three_partitions_from_earliest);
	tcase_add_test(tc, keys_headers_nulls);
	tcase_add_test(tc, seeks);
	tcase_add_test(tc, tailing);
	tcase_add_test(tc, long_polls_independent);
	tcase_add_test(tc, commit_and_resume);
	tcase_add_test(tc, resume_after_crash);
	tcase_add_test(tc, resume_after_kill9);
	tcase_add_test(tc, auto_offset_reset);
	tcase_add_test(tc, out_of_range_after_retention);
	tcase_add_test(tc, corrupt_batch_caught_by_client);
	tcase_add_test(tc, corrupt_batch_caught_by_broker);
	tcase_add_test(tc, corrupt_crafted_batches);
	tcase_add_test(tc, broker_restart);
	tcase_add_test(tc, errors);
	suite_add_tcase(s, tc);
	return s;
}
