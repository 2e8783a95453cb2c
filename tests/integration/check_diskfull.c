/* check_diskfull — a real brokerd whose data directory is a small real
 * filesystem (as root: a 32 MiB ext4 image on a loop device, else a 16 MiB
 * tmpfs) filled up by produce: the producer gets the retriable
 * NOT_ENOUGH_SPACE naming the problem, the partition is not failed and
 * serves everything acknowledged, other operations keep working; once
 * space is freed produce succeeds again with dense offsets; after a kill -9
 * and a restart exactly the acknowledged records are there.
 * Without root (no mount possible) the test says so and is skipped.
 * The mount is made and removed by an unchecked fixture (in the runner's
 * process), so it is cleaned up even when the test fails. */
#include <check.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "brokerd/client.h"
#include "proto/batch.h"
#include "tests/integration/harness.h"
#include "tests/unit/testutil.h"

Suite *diskfull_suite(void);

#define DF_VALUE   4000  /* bytes per record value */
#define DF_PER     16    /* records per produce: ~64 KiB */
#define DF_MAXREC  20000

static char *df_root;          /* temp dir: data/ is the mount point */
static char df_mnt[4200];
static char df_img[4200];
static const char *df_fs;      /* "ext4 on a loop device" / "tmpfs" */
static char df_skip[256];      /* why the test cannot run, or "" */

static int df_sh(const char *fmt, const char *a, const char *b2)
{
	char cmd[9000];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(cmd, sizeof(cmd), fmt, a, b2);
#pragma GCC diagnostic pop
	return system(cmd);
}

static void df_mount(void)
{
	df_skip[0] = '\0';
	df_fs = NULL;
	if (geteuid() != 0) {
		snprintf(df_skip, sizeof(df_skip), "not root: cannot mount a small filesystem");
		return;
	}
	df_root = tu_mkdtemp();
	if (df_root == NULL) {
		snprintf(df_skip, sizeof(df_skip), "cannot make a temp dir");
		return;
	}
	snprintf(df_mnt, sizeof(df_mnt), "%s/data", df_root);
	snprintf(df_img, sizeof(df_img), "%s.img", df_root);
	mkdir(df_mnt, 0755);
	if (df_sh("truncate -s 32M '%s' && mkfs.ext4 -q -F -m 0 '%s' >/dev/null 2>&1", df_img,
		  df_img) == 0 &&
	    df_sh("mount -o loop '%s' '%s' 2>/dev/null", df_img, df_mnt) == 0) {
		df_fs = "ext4 (32 MiB) on a loop device";
		return;
	}
	unlink(df_img);
	if (df_sh("mount -t tmpfs -o size=16m tmpfs '%s' 2>/dev/null%s", df_mnt, "") == 0) {
		df_fs = "tmpfs (16 MiB)";
		return;
	}
	snprintf(df_skip, sizeof(df_skip), "neither a loop-mounted ext4 image nor a tmpfs "
		 "could be mounted");
}

/* Kill a broker a failed test left running on the mount, unmount, remove. */
static void df_unmount(void)
{
	char path[4300];
	FILE *f;
	int pid = 0;

	if (df_root == NULL)
		return;
	snprintf(path, sizeof(path), "%s/broker.pid", df_root);
	if ((f = fopen(path, "r")) != NULL) {
		if (fscanf(f, "%d", &pid) == 1 && pid > 0 && kill(pid, SIGKILL) == 0)
			for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
				usleep(10000);
		fclose(f);
	}
	if (df_fs != NULL) {
		int rc = -1;
		for (int i = 0; i < 50 && rc != 0; i++) {
			rc = df_sh("umount '%s' 2>/dev/null%s", df_mnt, "");
			if (rc != 0)
				usleep(100000);
		}
		if (rc != 0 && df_sh("umount -l '%s'%s", df_mnt, "") != 0)
			fprintf(stderr, "check_diskfull: could not unmount %s\n", df_mnt);
	}
	unlink(df_img);
	snprintf(path, sizeof(path), "%s.log", df_root);
	if (getenv("TB_KEEP") == NULL)
		unlink(path);
	tu_rmtree(df_root);
	free(df_root);
	df_root = NULL;
	df_fs = NULL;
}

static struct tb b;

static void df_start(void)
{
	char path[4300];
	FILE *f;

	tb_start(&b);
	snprintf(path, sizeof(path), "%s/broker.pid", df_root);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%d\n", (int)b.pid);
	fclose(f);
}

/* A batch of DF_PER records for offsets first..: value "k-<offset>-" then
 * filler up to DF_VALUE bytes. */
static uint8_t *df_batch(int64_t first, size_t *len)
{
	static char val[DF_VALUE];
	struct batch_builder bb;
	uint8_t *buf;

	batch_builder_init(&bb);
	for (int i = 0; i < DF_PER; i++) {
		int n = snprintf(val, sizeof(val), "k-%" PRId64 "-", first + i);
		memset(val + n, 'a' + (int)((first + i) % 26), sizeof(val) - (size_t)n);
		ck_assert_int_eq(batch_builder_add(&bb, tb_wall_ms(), NULL, 0, val, sizeof(val),
						   NULL, 0), 0);
	}
	ck_assert_int_eq(batch_builder_finish(&bb, 0, &buf, len), 0);
	return buf;
}

/* Produce one batch at `next` (acks=all); returns the response. */
static Brokerd__Response *df_produce(int fd, const char *topic, int64_t next)
{
	size_t len;
	uint8_t *batch = df_batch(next, &len);
	Brokerd__Response *r = tc_produce(fd, topic, 0, BROKERD__ACKS__ACKS_ALL, batch, len);

	free(batch);
	return r;
}

/* Fetch the whole partition and check it holds exactly offsets [0, n),
 * each with its own value. */
static void df_expect_exactly(int fd, const char *topic, int64_t n)
{
	int64_t off = 0, hw = -1;

	for (int guard = 0; guard < 100000 && (hw < 0 || off < hw); guard++) {
		Brokerd__Response *r = tc_fetch(fd, topic, 0, off, 1 << 20, 0, 0);
		char **v, want[64];
		int64_t last;

		TC_OK(r);
		hw = r->fetch->high_watermark;
		ck_assert_msg(hw == n, "high watermark %" PRId64 ", acknowledged %" PRId64, hw, n);
		if (off >= hw) {
			tc_free(r);
			break;
		}
		int k = tc_values(r->fetch, off, &v, &last);
		ck_assert_int_gt(k, 0);
		for (int i = 0; i < k; i++) {
			int wl = snprintf(want, sizeof(want), "k-%" PRId64 "-", off + i);
			ck_assert_msg(strncmp(v[i], want, (size_t)wl) == 0 &&
				      strlen(v[i]) == DF_VALUE,
				      "offset %" PRId64 ": wrong record", off + i);
		}
		ck_assert_int_eq(last, off + k - 1);
		off += k;
		tc_free_values(v, k);
		tc_free(r);
	}
	ck_assert_int_eq(off, n);
}

/* Leave about `left` bytes free on the mount with a filler file. */
static void df_fill_to(const char *path, uint64_t left)
{
	struct statvfs vfs;
	static char chunk[1 << 16];
	int fd;

	ck_assert_int_eq(statvfs(df_mnt, &vfs), 0);
	uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail <= left)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	memset(chunk, 'f', sizeof(chunk));
	for (uint64_t done = 0; done + sizeof(chunk) <= avail - left;) {
		ssize_t w = write(fd, chunk, sizeof(chunk));
		if (w <= 0)
			break;
		done += (uint64_t)w;
	}
	fsync(fd);
	close(fd);
}

START_TEST(test_disk_full_produce)
{
	char filler[4300];
	int64_t acked = 0;
	int fd, nfull = 0;
	Brokerd__Response *r;

	if (df_skip[0] != '\0') {
		fprintf(stderr, "check_diskfull: SKIPPED test_disk_full_produce: %s\n", df_skip);
		return;
	}
	fprintf(stderr, "check_diskfull: data directory on %s\n", df_fs);
	memset(&b, 0, sizeof(b));
	b.dir = strdup(df_root);
	ck_assert_int_ge(asprintf(&b.log, "%s.log", df_root), 0);
	tb_set(&b, "retention.check.interval.ms=200");
	df_start();
	fd = tc_connect(b.port);
	/* Segments larger than the disk: the space runs out in one segment. */
	const char *kv[] = { "segment.bytes=256MiB" };
	r = tc_create_topic_cfg(fd, "keep", 1, kv, 1);
	TC_OK(r);
	tc_free(r);
	r = tc_create_topic(fd, "other", 1);
	TC_OK(r);
	tc_free(r);
	snprintf(filler, sizeof(filler), "%s/filler", df_mnt);
	df_fill_to(filler, 3u << 20);

	/* Fill the rest with produce until the broker refuses. */
	for (int i = 0; i < 1000 && nfull == 0; i++) {
		r = df_produce(fd, "keep", acked);
		if (r->error == BROKERD__ERROR_CODE__OK) {
			ck_assert_int_eq(r->produce->base_offset, acked); /* dense */
			acked += DF_PER;
		} else {
			TC_ERR(r, BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE);
			ck_assert_msg(strstr(r->error_message, "No space left on device") != NULL,
				      "message does not name the problem: %s", r->error_message);
			ck_assert_msg(strstr(r->error_message, "'keep' partition 0") != NULL,
				      "message does not name the partition: %s", r->error_message);
			ck_assert(bk_err_retriable(BK_ERR(r->error)));
			nfull++;
		}
		tc_free(r);
	}
	ck_assert_msg(nfull == 1, "the disk never filled up");
	ck_assert_int_gt(acked, 0);
	/* Still full: each produce is refused the same way, never STORAGE_ERROR. */
	for (int i = 0; i < 3; i++) {
		r = df_produce(fd, "keep", acked);
		TC_ERR(r, BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE);
		tc_free(r);
	}
	/* Reads and other operations go on. */
	df_expect_exactly(fd, "keep", acked);
	r = tc_list_topics(fd);
	TC_OK(r);
	tc_free(r);
	r = tc_describe_topic(fd, "keep");
	TC_OK(r);
	tc_free(r);
	r = tc_create_topic(fd, "late", 1); /* may or may not find room; never fatal */
	ck_assert_msg(r->error == BROKERD__ERROR_CODE__OK || r->error_message[0] != '\0',
		      "create failed without a message");
	tc_free(r);
	r = tc_api_versions(fd);
	TC_OK(r);
	tc_free(r);
	ck_assert(tb_log_contains(&b, "write refused"));

	/* Space freed: produce succeeds again, offsets dense. */
	ck_assert_int_eq(unlink(filler), 0);
	r = df_produce(fd, "keep", acked);
	TC_OK(r);
	ck_assert_int_eq(r->produce->base_offset, acked);
	acked += DF_PER;
	tc_free(r);
	r = df_produce(fd, "keep", acked);
	TC_OK(r);
	acked += DF_PER;
	tc_free(r);
	r = tc_delete_topic(fd, "other");
	TC_OK(r);
	tc_free(r);
	df_expect_exactly(fd, "keep", acked);
	close(fd);

	/* Crash and restart: exactly what was acknowledged. */
	tb_kill9(&b);
	df_start();
	fd = tc_connect(b.port);
	df_expect_exactly(fd, "keep", acked);
	r = df_produce(fd, "keep", acked);
	TC_OK(r);
	ck_assert_int_eq(r->produce->base_offset, acked);
	acked += DF_PER;
	tc_free(r);

	/* Full again, this time by a topic of small segments; the operator
	 * frees space with retention (retention.bytes lowered at run time):
	 * retention deletes its old segments and produce resumes, no restart. */
	const char *small[] = { "segment.bytes=1MiB" };
	const char *shrink[] = { "retention.bytes=1MiB" };
	int64_t bulk = 0, start = 0, t0;
	bool resumed = false;

	r = tc_create_topic_cfg(fd, "bulk", 1, small, 1);
	TC_OK(r);
	tc_free(r);
	nfull = 0;
	for (int i = 0; i < 1000 && nfull == 0; i++) {
		r = df_produce(fd, "bulk", bulk);
		if (r->error == BROKERD__ERROR_CODE__OK)
			bulk += DF_PER;
		else
			nfull++;
		ck_assert_int_eq(r->error == BROKERD__ERROR_CODE__OK ||
				 r->error == BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE, 1);
		tc_free(r);
	}
	ck_assert_msg(nfull == 1, "the disk never filled up again");
	r = tc_alter_topic(fd, "bulk", shrink, 1, NULL, 0);
	TC_OK(r);
	tc_free(r);
	for (t0 = tb_now_ms(); tb_now_ms() - t0 < 20000; usleep(100 * 1000)) {
		r = df_produce(fd, "bulk", bulk);
		if (r->error == BROKERD__ERROR_CODE__OK) {
			ck_assert_int_eq(r->produce->base_offset, bulk); /* dense */
			bulk += DF_PER;
			resumed = true;
			tc_free(r);
			break;
		}
		TC_ERR(r, BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE);
		tc_free(r);
	}
	r = tc_describe_topic(fd, "bulk");
	TC_OK(r);
	start = r->describe_topic->topic->partitions[0]->log_start_offset;
	tc_free(r);
	ck_assert_msg(start > 0, "retention deleted nothing (log start %lld)", (long long)start);
	ck_assert_msg(resumed, "produce did not resume after retention freed space");
	df_expect_exactly(fd, "keep", acked);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	free(b.dir);
	free(b.log);
	memset(&b, 0, sizeof(b));
}
END_TEST

Suite *diskfull_suite(void)
{
	Suite *s = suite_create("diskfull");
	TCase *tc = tcase_create("fill");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, df_mount, df_unmount);
	tcase_add_test(tc, test_disk_full_produce);
	suite_add_tcase(s, tc);
	return s;
}
