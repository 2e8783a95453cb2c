/* check_faults — the real brokerd against damaged files and crashes at
 * named failpoints: bit flips are refused with CORRUPT_DATA naming the file
 * and position while everything else is served, `brokerd --verify` names
 * each bad batch, clobbered index files are rebuilt with every read and
 * time lookup right, and a crash at any step of a roll, topic create,
 * delete, alter or offset commit leaves the old or the new state, never a
 * mix, with acknowledged data and committed offsets intact. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

Suite *faults_suite(void);

static struct tb b;

static void setup(void)
{
	memset(&b, 0, sizeof(b));
}

static void teardown(void)
{
	unsetenv("BROKERD_FAILPOINTS");
	tb_cleanup(&b);
}

/* --- helpers --------------------------------------------------------------- */

/* Produce n batches of `per` records "<topic>-<i>" to partition p; returns
 * the records acknowledged. */
static int64_t produce(int fd, const char *topic, uint32_t p, int n, int per, int64_t first,
		       int64_t ts0)
{
	for (int i = 0; i < n; i++) {
		char prefix[64];
		size_t len;
		uint8_t *batch;
		Brokerd__Response *r;

		snprintf(prefix, sizeof(prefix), "%s-%u", topic, p);
		batch = tc_batch_ts(prefix, (int)(first + (int64_t)i * per), per,
				    ts0 + (first + (int64_t)i * per) * 10, &len);
		r = tc_produce(fd, topic, p, BROKERD__ACKS__ACKS_ALL, batch, len);
		TC_OK(r);
		ck_assert_int_eq(r->produce->base_offset, first + (int64_t)i * per);
		tc_free(r);
		free(batch);
	}
	return first + (int64_t)n * per;
}

/* Fetch [from, to) of partition p and check every value ("<topic>-<p>-<o>"). */
static void expect_values(int fd, const char *topic, uint32_t p, int64_t from, int64_t to)
{
	int64_t at = from;

	for (int guard = 0; at < to && guard < 100000; guard++) {
		Brokerd__Response *r = tc_fetch(fd, topic, p, at, 64 << 10, 0, 0);
		char **v, want[96];
		int64_t last;
		int n;

		TC_OK(r);
		n = tc_values(r->fetch, at, &v, &last);
		ck_assert_msg(n > 0, "%s-%u: nothing at offset %lld (to %lld)", topic, p,
			      (long long)at, (long long)to);
		for (int i = 0; i < n && at + i < to; i++) {
			snprintf(want, sizeof(want), "%s-%u-%lld", topic, p, (long long)(at + i));
			ck_assert_msg(strcmp(v[i], want) == 0, "offset %lld: '%s', expected '%s'",
				      (long long)(at + i), v[i], want);
		}
		tc_free_values(v, n);
		tc_free(r);
		at += n;
	}
	ck_assert_int_ge(at, to);
}

static void part_dir(char *out, size_t cap, const char *topic, uint32_t p)
{
	snprintf(out, cap, "%s/data/%s-%u", b.dir, topic, p);
}

/* Segment bases of a partition directory, sorted; returns the count. */
static int seg_bases(const char *dir, long long *bases, int max)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == 24 && strcmp(de->d_name + 20, ".log") == 0 && n < max)
			bases[n++] = strtoll(de->d_name, NULL, 10);
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && bases[j - 1] > bases[j]; j--) {
			long long x = bases[j];
			bases[j] = bases[j - 1];
			bases[j - 1] = x;
		}
	return n;
}

/* Position, size and base offset of batch k of a .log file (walking the
 * length fields); returns 0, or -1 if there are not that many. */
static int batch_at(const char *path, int k, long long *pos, long long *size, long long *base)
{
	int fd = open(path, O_RDONLY);
	unsigned char h[12];
	long long p = 16;

	ck_assert_int_ge(fd, 0);
	for (int i = 0; pread(fd, h, sizeof(h), p) == (ssize_t)sizeof(h); i++) {
		long long len = 12 + ((long long)h[8] | (long long)h[9] << 8 |
				      (long long)h[10] << 16 | (long long)h[11] << 24);
		long long b0 = 0;
		for (int j = 7; j >= 0; j--)
			b0 = b0 << 8 | h[j];
		if (len <= 12 || len > (1 << 20))
			break;
		if (i == k) {
			*pos = p;
			*size = len;
			*base = b0;
			close(fd);
			return 0;
		}
		p += len;
	}
	close(fd);
	return -1;
}

static void flip(const char *path, long long pos)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, pos), 1);
	c ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &c, 1, pos), 1);
	close(fd);
}

/* Run `brokerd --verify <dir>`: returns its exit status, output in out. */
static int run_verify(char *out, size_t cap)
{
	char cmd[2048], dir[1024];
	size_t n = 0;
	FILE *f;
	int st;

	snprintf(dir, sizeof(dir), "%s/data", b.dir);
	snprintf(cmd, sizeof(cmd), "'%s' --verify '%s' 2>&1", BROKERD_PATH, dir);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (n + 1 < cap && fgets(out + n, (int)(cap - n), f) != NULL)
		n += strlen(out + n);
	out[n] = '\0';
	st = pclose(f);
	ck_assert_msg(WIFEXITED(st), "brokerd --verify did not exit: %d", st);
	return WEXITSTATUS(st);
}

/* --- scenario 3: bit flips ---------------------------------------------------- */

START_TEST(test_bitflip_refused_and_verified)
{
	static const char *const kv[] = { "segment.bytes=4096" };
	char dir[1024], path[1200], out[16384], want[256];
	long long bases[64], pos[2], size, base[2], next[2];
	int fd, nseg, rc;
	Brokerd__Response *r;
	int64_t end0, end1;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic_cfg(fd, "bits", 2, kv, 1);
	TC_OK(r);
	tc_free(r);
	end0 = produce(fd, "bits", 0, 100, 3, 0, 1700000000000LL);
	end1 = produce(fd, "bits", 1, 10, 3, 0, 1700000000000LL);
	/* A running broker's directory is refused. */
	rc = run_verify(out, sizeof(out));
	ck_assert_int_eq(rc, 2);
	ck_assert_msg(strstr(out, "lock") != NULL, "%s", out);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	rc = run_verify(out, sizeof(out));
	ck_assert_msg(rc == 0, "clean directory: exit %d\n%s", rc, out);

	/* One flip in a sealed segment, one in the active segment with valid
	 * batches after it. */
	part_dir(dir, sizeof(dir), "bits", 0);
	nseg = seg_bases(dir, bases, 64);
	ck_assert_int_ge(nseg, 3);
	for (int i = 0; i < 2; i++) {
		long long sb = i == 0 ? bases[0] : bases[nseg - 1];
		long long ps, nb, nx;
		snprintf(path, sizeof(path), "%s/%020lld.log", dir, sb);
		ck_assert_int_eq(batch_at(path, 1, &pos[i], &size, &base[i]), 0);
		ck_assert_int_eq(batch_at(path, 2, &ps, &nb, &nx), 0); /* valid ones follow */
		next[i] = nx;
		flip(path, pos[i] + size - 2);
	}
	rc = run_verify(out, sizeof(out));
	ck_assert_msg(rc == 1, "exit %d\n%s", rc, out);
	for (int i = 0; i < 2; i++) {
		snprintf(want, sizeof(want), "%020lld.log position %lld: offsets %lld..%lld",
			 i == 0 ? bases[0] : bases[nseg - 1], pos[i], base[i], next[i] - 1);
		ck_assert_msg(strstr(out, want) != NULL, "--verify lacks \"%s\":\n%s", want, out);
	}

	tb_start(&b);
	fd = tc_connect(b.port);
	for (int i = 0; i < 2; i++) {
		r = tc_fetch(fd, "bits", 0, base[i], 64 << 10, 0, 0);
		TC_ERR(r, BROKERD__ERROR_CODE__CORRUPT_DATA);
		snprintf(want, sizeof(want), "%020lld.log at position %lld",
			 i == 0 ? bases[0] : bases[nseg - 1], pos[i]);
		ck_assert_msg(strstr(r->error_message, want) != NULL, "\"%s\" lacks \"%s\"",
			      r->error_message, want);
		tc_free(r);
	}
	/* Before, between and after the bad batches: served. */
	expect_values(fd, "bits", 0, 0, base[0]);
	expect_values(fd, "bits", 0, next[0], base[1]);
	expect_values(fd, "bits", 0, next[1], end0);
	expect_values(fd, "bits", 1, 0, end1);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	/* Nothing was cut: --verify still finds both. */
	rc = run_verify(out, sizeof(out));
	ck_assert_msg(rc == 1, "exit %d\n%s", rc, out);
	ck_assert_msg(strstr(out, "2 corrupt ranges") != NULL, "%s", out);
}
END_TEST

/* --- scenario 4: index files clobbered -------------------------------------- */

START_TEST(test_index_files_clobbered)
{
	static const char *const kv[] = { "segment.bytes=4096", "index.interval.bytes=256" };
	const int64_t ts0 = 1700000000000LL;
	char dir[1024], path[1400];
	int fd, nidx = 0;
	int64_t end;
	Brokerd__Response *r;
	DIR *d;
	struct dirent *de;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic_cfg(fd, "idx", 1, kv, 2);
	TC_OK(r);
	tc_free(r);
	end = produce(fd, "idx", 0, 150, 2, 0, ts0);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	part_dir(dir, sizeof(dir), "idx", 0);
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (!(l > 6 && strcmp(de->d_name + l - 6, ".index") == 0) &&
		    !(l > 10 && strcmp(de->d_name + l - 10, ".timeindex") == 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (nidx++ % 2 == 0) {
			ck_assert_int_eq(unlink(path), 0);
		} else {
			int f = open(path, O_WRONLY | O_TRUNC);
			char junk[700];
			memset(junk, 0xa5, sizeof(junk));
			ck_assert_int_ge(f, 0);
			ck_assert_int_eq(write(f, junk, sizeof(junk)), (ssize_t)sizeof(junk));
			close(f);
		}
	}
	closedir(d);
	ck_assert_int_ge(nidx, 6);
	tb_start(&b);
	fd = tc_connect(b.port);
	/* Every offset, one fetch each. */
	for (int64_t o = 0; o < end; o++) {
		char **v, want[64];
		int64_t last;
		int n;
		r = tc_fetch(fd, "idx", 0, o, 1, 0, 0);
		TC_OK(r);
		n = tc_values(r->fetch, o, &v, &last);
		ck_assert_msg(n >= 1, "nothing at offset %lld", (long long)o);
		snprintf(want, sizeof(want), "idx-0-%lld", (long long)o);
		ck_assert_str_eq(v[0], want);
		tc_free_values(v, n);
		tc_free(r);
	}
	/* Every record's timestamp finds it; past the end finds the end. */
	for (int64_t o = 0; o < end; o++) { /* batches of 2: ts0 + 10 base + i */
		r = tc_list_offsets(fd, "idx", 0, ts0 + (o - o % 2) * 10 + o % 2);
		TC_OK(r);
		ck_assert_msg(r->list_offsets->offset == o, "time of %lld -> %lld", (long long)o,
			      (long long)r->list_offsets->offset);
		tc_free(r);
	}
	r = tc_list_offsets(fd, "idx", 0, ts0 + end * 10 + 1);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, end);
	tc_free(r);
	close(fd);
}
END_TEST

/* --- scenario 5: crash at each failpoint ---------------------------------- */

enum op { OP_ROLL, OP_CREATE, OP_DELETE, OP_ALTER, OP_COMMIT, OP_COMMIT_STOP };

static const struct crash_case {
	const char *point;
	enum op op;
} crash_cases[] = {
	{ "log.roll.create=crash", OP_ROLL },
	{ "log.roll.seal=crash", OP_ROLL },
	{ "log.seal.fsync=crash", OP_ROLL },
	{ "log.index.write=crash", OP_ROLL },
	{ "log.roll.sealed=crash", OP_ROLL },
	{ "topic.create.partition=crash@2", OP_CREATE },
	{ "topic.meta.write=crash", OP_CREATE },
	{ "topic.meta.rename=crash", OP_CREATE },
	{ "topic.meta.dirsync=crash", OP_CREATE },
	{ "topic.meta.rename=crash", OP_DELETE },
	{ "topic.meta.dirsync=crash", OP_DELETE },
	{ "topic.delete.partition=crash@2", OP_DELETE },
	{ "log.destroy.unlink=crash@2", OP_DELETE },
	{ "topic.meta.rename=crash", OP_ALTER },
	{ "topic.meta.dirsync=crash", OP_ALTER },
	{ "ofs.commit.append=crash", OP_COMMIT },
	{ "ofs.commit.durable=crash", OP_COMMIT },
	{ "log.fsync=crash", OP_COMMIT },
	{ "ofs.snapshot.sync.rename=crash", OP_COMMIT_STOP },
	{ "ofs.snapshot.sync.dirsync=crash", OP_COMMIT_STOP },
};

/* Send req and wait for an answer; NULL if the broker died meanwhile. */
static Brokerd__Response *try_call(int fd, Brokerd__Request *req)
{
	static uint64_t corr = 5000;

	req->correlation_id = ++corr;
	if (tc_send(fd, req) < 0)
		return NULL;
	return tc_recv(fd);
}

static Brokerd__Response *try_commit(int fd, int64_t offset)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CommitOffsetsRequest q = BROKERD__COMMIT_OFFSETS_REQUEST__INIT;
	Brokerd__OffsetCommit c = BROKERD__OFFSET_COMMIT__INIT, *pc = &c;

	c.topic = (char *)"keep";
	c.partition = 0;
	c.offset = offset;
	q.group = (char *)"g";
	q.offsets = &pc;
	q.n_offsets = 1;
	req.op_case = BROKERD__REQUEST__OP_COMMIT_OFFSETS;
	req.commit_offsets = &q;
	return try_call(fd, &req);
}

static int64_t committed(int fd)
{
	Brokerd__TopicPartition tp = BROKERD__TOPIC_PARTITION__INIT, *ptp = &tp;
	Brokerd__Response *r;
	int64_t off;

	tp.topic = (char *)"keep";
	tp.partition = 0;
	r = tc_fetch_offsets(fd, "g", &ptp, 1);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch_offsets->n_offsets, 1);
	off = r->fetch_offsets->offsets[0]->offset;
	tc_free(r);
	return off;
}

/* Partition count of topic `name`, or 0 if it is not listed. */
static uint32_t topic_parts(int fd, const char *name)
{
	Brokerd__Response *r = tc_list_topics(fd);
	uint32_t n = 0;

	TC_OK(r);
	for (size_t i = 0; i < r->list_topics->n_topics; i++)
		if (strcmp(r->list_topics->topics[i]->name, name) == 0)
			n = r->list_topics->topics[i]->partition_count;
	tc_free(r);
	return n;
}

static const char *retention_of(int fd, const char *topic, char *buf, size_t cap)
{
	Brokerd__Response *r = tc_describe_topic(fd, topic);
	const Brokerd__ConfigEntry *e;

	TC_OK(r);
	e = tc_config(r->describe_topic->topic->configs, r->describe_topic->topic->n_configs,
		      "retention.ms");
	ck_assert_ptr_nonnull(e);
	snprintf(buf, cap, "%s", e->value);
	tc_free(r);
	return buf;
}

START_TEST(test_crash_at_failpoint)
{
	static const char *const small[] = { "segment.bytes=4096" };
	const struct crash_case *cc = &crash_cases[_i];
	char old_ret[64], now_ret[64];
	int64_t keep_end, old_commit = 7, roll_acked = 0;
	uint32_t n;
	int fd, st;
	Brokerd__Response *r;
	Brokerd__Request req = BROKERD__REQUEST__INIT;

	/* The state before: topics keep (with data) and old, a commit. */
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic_cfg(fd, "keep", 1, small, 1);
	TC_OK(r);
	tc_free(r);
	r = tc_create_topic(fd, "old", 3);
	TC_OK(r);
	tc_free(r);
	keep_end = produce(fd, "keep", 0, 5, 2, 0, 1700000000000LL);
	produce(fd, "old", 1, 3, 2, 0, 1700000000000LL);
	r = try_commit(fd, old_commit);
	ck_assert_ptr_nonnull(r);
	TC_OK(r);
	tc_free(r);
	retention_of(fd, "keep", old_ret, sizeof(old_ret));
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);

	/* Armed: perform the operation; the broker must die in it. */
	setenv("BROKERD_FAILPOINTS", cc->point, 1);
	tb_start(&b);
	unsetenv("BROKERD_FAILPOINTS");
	fd = tc_connect(b.port);
	switch (cc->op) {
	case OP_ROLL: /* produce until the broker dies in a roll */
		for (int i = 0; i < 200; i++) {
			size_t len;
			uint8_t *batch = tc_batch("keep-0", (int)keep_end, 2, &len);
			if (tc_send_produce(fd, (uint64_t)(9000 + i), "keep", 0,
					    BROKERD__ACKS__ACKS_ALL, batch, len) < 0) {
				free(batch);
				break;
			}
			free(batch);
			r = tc_recv(fd);
			if (r == NULL)
				break;
			TC_OK(r);
			tc_free(r);
			keep_end += 2;
		}
		roll_acked = keep_end;
		break;
	case OP_CREATE: {
		Brokerd__CreateTopicRequest q = BROKERD__CREATE_TOPIC_REQUEST__INIT;
		q.topic = (char *)"fresh";
		q.partitions = 3;
		req.op_case = BROKERD__REQUEST__OP_CREATE_TOPIC;
		req.create_topic = &q;
		r = try_call(fd, &req);
		ck_assert_msg(r == NULL, "create answered");
		break;
	}
	case OP_DELETE: {
		Brokerd__DeleteTopicRequest q = BROKERD__DELETE_TOPIC_REQUEST__INIT;
		q.topic = (char *)"old";
		req.op_case = BROKERD__REQUEST__OP_DELETE_TOPIC;
		req.delete_topic = &q;
		r = try_call(fd, &req);
		ck_assert_msg(r == NULL, "delete answered");
		break;
	}
	case OP_ALTER: {
		Brokerd__AlterTopicConfigRequest q = BROKERD__ALTER_TOPIC_CONFIG_REQUEST__INIT;
		Brokerd__AlterTopicConfigRequest__SetEntry se, *pse = &se;
		brokerd__alter_topic_config_request__set_entry__init(&se);
		se.key = (char *)"retention.ms";
		se.value = (char *)"123456";
		q.topic = (char *)"keep";
		q.set = &pse;
		q.n_set = 1;
		req.op_case = BROKERD__REQUEST__OP_ALTER_TOPIC_CONFIG;
		req.alter_topic_config = &q;
		r = try_call(fd, &req);
		ck_assert_msg(r == NULL, "alter answered");
		break;
	}
	case OP_COMMIT:
		r = try_commit(fd, 42);
		ck_assert_msg(r == NULL, "commit answered");
		break;
	case OP_COMMIT_STOP:
		r = try_commit(fd, 42);
		ck_assert_ptr_nonnull(r);
		TC_OK(r);
		tc_free(r);
		old_commit = 42; /* acknowledged: must survive */
		close(fd);
		fd = -1;
		ck_assert_int_eq(kill(b.pid, SIGTERM), 0);
		break;
	}
	if (fd >= 0)
		close(fd);
	st = tb_wait_exit(&b);
	ck_assert_msg(st == -1, "%s: brokerd exited with %d instead of dying", cc->point, st);
	ck_assert(tb_log_contains(&b, "failpoint"));

	/* Restart unarmed: ready within the harness bound, old or new state. */
	tb_start(&b);
	fd = tc_connect(b.port);
	switch (cc->op) {
	case OP_ROLL: {
		Brokerd__Response *h = tc_list_offsets(fd, "keep", 0, -1);
		TC_OK(h);
		ck_assert_int_ge(h->list_offsets->high_watermark, roll_acked);
		ck_assert_int_le(h->list_offsets->high_watermark, roll_acked + 2);
		keep_end = h->list_offsets->high_watermark;
		tc_free(h);
		break;
	}
	case OP_CREATE:
		n = topic_parts(fd, "fresh");
		ck_assert_msg(n == 0 || n == 3, "%s: fresh has %u partitions", cc->point, n);
		if (n == 0) {
			r = tc_create_topic(fd, "fresh", 3);
			TC_OK(r);
			tc_free(r);
		}
		for (uint32_t p = 0; p < 3; p++) {
			r = tc_fetch(fd, "fresh", p, 0, 1024, 0, 0);
			TC_OK(r);
			ck_assert_int_eq(r->fetch->high_watermark, 0);
			tc_free(r);
		}
		produce(fd, "fresh", 2, 2, 1, 0, 1700000000000LL);
		expect_values(fd, "fresh", 2, 0, 2);
		break;
	case OP_DELETE:
		n = topic_parts(fd, "old");
		ck_assert_msg(n == 0 || n == 3, "%s: old has %u partitions", cc->point, n);
		if (n == 3) { /* not deleted: whole */
			expect_values(fd, "old", 1, 0, 6);
		} else { /* deleted: a new one starts empty */
			r = tc_create_topic(fd, "old", 3);
			TC_OK(r);
			tc_free(r);
			for (uint32_t p = 0; p < 3; p++) {
				r = tc_fetch(fd, "old", p, 0, 1024, 0, 0);
				TC_OK(r);
				ck_assert_int_eq(r->fetch->high_watermark, 0);
				tc_free(r);
			}
		}
		break;
	case OP_ALTER:
		retention_of(fd, "keep", now_ret, sizeof(now_ret));
		ck_assert_msg(strcmp(now_ret, old_ret) == 0 || strcmp(now_ret, "123456") == 0,
			      "%s: retention.ms is %s", cc->point, now_ret);
		break;
	case OP_COMMIT:
	case OP_COMMIT_STOP: {
		int64_t c = committed(fd);
		ck_assert_msg(c == old_commit || c == 42, "%s: committed %lld (was %lld)",
			      cc->point, (long long)c, (long long)old_commit);
		break;
	}
	}
	/* Acknowledged data intact everywhere, and appends go on. */
	expect_values(fd, "keep", 0, 0, keep_end);
	ck_assert_int_eq(produce(fd, "keep", 0, 1, 2, keep_end, 1700000000000LL), keep_end + 2);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
}
END_TEST

Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("faults");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_bitflip_refused_and_verified);
	tcase_add_test(tc, test_index_files_clobbered);
	tcase_add_loop_test(tc, test_crash_at_failpoint, 0,
			    (int)(sizeof(crash_cases) / sizeof(crash_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}
