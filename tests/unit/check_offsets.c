/* check_offsets — the consumer offsets store (broker/offsets.h) on a real
 * event loop, io_uring and internal log: commits visible only once durable,
 * group commit, restarts through the snapshot and through replay, crashes
 * (a forked child that dies right after its commit callback), deletes,
 * sorted listings, compaction, corrupt snapshots, validation; and
 * log_delete_before (broker/log.h), which compaction relies on.
 */
#include "broker/offsets.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/logtest.h"

Suite *offsets_suite(void); /* called by the runner (tests/unit/runner.c) */

#define OT_SEGS_MAX 64

/* The store on the log test harness; t.dir is the store's log directory. */
struct ot {
	struct lt t;
	char *data;             /* the data dir handed to ofs_open */
	bool own_data;          /* data is not t.root (crash tests) */
	struct offsets *o;
	char snap[LT_PATH_MAX];
};

/* A caller's commit or delete with what its callback reported. */
struct op {
	struct ofs_op op;       /* first: the callback casts back */
	int calls;
	int res;
	struct ot *x;
	bool exit_in_cb;        /* crash test: _exit(0) once durable */
};

static void op_done(struct ofs_op *op, int res)
{
	struct op *p = (struct op *)op;

	p->calls++;
	p->res = res;
	if (p->exit_in_cb)
		_exit(0);
}

static void op_init(struct op *p, struct ot *x)
{
	memset(p, 0, sizeof(*p));
	p->op.cb = op_done;
	p->x = x;
	p->res = 1;
}

static void ot_open(struct ot *x)
{
	int rc;

	ck_assert_ptr_null(x->o);
	rc = ofs_open(x->data, x->t.ctx, &x->o);
	ck_assert_msg(rc == 0, "ofs_open: %d (%s)", rc, strerror(-rc));
}

static void ot_close(struct ot *x)
{
	int rc = ofs_close(x->o);

	x->o = NULL;
	ck_assert_msg(rc == 0, "ofs_close: %d (%s)", rc, strerror(-rc));
}

/* Fresh loop, ring and context; the store under `data` (NULL: a fresh
 * temp dir); not opened yet. */
static void ot_init_at(struct ot *x, char *data)
{
	memset(x, 0, sizeof(*x));
	lt_init(&x->t);
	x->data = data != NULL ? data : x->t.root;
	x->own_data = data != NULL;
	snprintf(x->t.dir, sizeof(x->t.dir), "%s/__consumer_offsets", x->data);
	snprintf(x->snap, sizeof(x->snap), "%s/snapshot", x->t.dir);
}

static void ot_init(struct ot *x)
{
	ot_init_at(x, NULL);
	ot_open(x);
}

static void ot_fini(struct ot *x)
{
	if (x->o != NULL)
		ot_close(x);
	lt_settle(&x->t);
	lt_fini(&x->t);
}

static void ot_reopen(struct ot *x)
{
	ot_close(x);
	ot_open(x);
}

/* Wait for one op's callback; it must come exactly once with res. */
static void ot_wait(struct ot *x, struct op *p, int res)
{
	LT_RUN_UNTIL(&x->t, p->calls > 0);
	ck_assert_int_eq(p->calls, 1);
	ck_assert_msg(p->res == res, "callback res %d (%s), expected %d", p->res,
		      strerror(-p->res), res);
}

static int commit_async(struct ot *x, struct op *p, const char *group, const char *topic,
			uint32_t part, int64_t offset, const char *meta)
{
	struct ofs_entry e = { topic, part, offset, meta };

	op_init(p, x);
	return ofs_commit(x->o, group, &e, 1, &p->op);
}

static void commit_sync(struct ot *x, const char *group, const char *topic, uint32_t part,
			int64_t offset, const char *meta)
{
	struct op p;
	int rc = commit_async(x, &p, group, topic, part, offset, meta);

	ck_assert_msg(rc == 0, "ofs_commit: %d (%s)", rc, strerror(-rc));
	ot_wait(x, &p, 0);
}

static void expect_value(const struct ot *x, const char *group, const char *topic, uint32_t part,
			 int64_t offset, const char *meta)
{
	struct ofs_value v;
	int rc = ofs_get(x->o, group, topic, part, &v);

	ck_assert_msg(rc == 0, "ofs_get(%s, %s, %u): %d", group, topic, part, rc);
	ck_assert_msg(v.offset == offset, "ofs_get(%s, %s, %u): offset %" PRId64 ", expected %"
		      PRId64, group, topic, part, v.offset, offset);
	ck_assert_ptr_nonnull(v.metadata);
	ck_assert_str_eq(v.metadata, meta != NULL ? meta : "");
}

static void expect_none(const struct ot *x, const char *group, const char *topic, uint32_t part)
{
	struct ofs_value v;

	ck_assert_int_eq(ofs_get(x->o, group, topic, part, &v), -ENOENT);
}

/* Remove the snapshot so the next open replays the whole log. */
static void drop_snapshot(struct ot *x)
{
	ck_assert_msg(unlink(x->snap) == 0, "unlink %s: %s", x->snap, strerror(errno));
}

/* --- listings ----------------------------------------------------------------- */

#define LIST_MAX 4096

struct list {
	int n;
	char name[LIST_MAX][300];
	size_t count[LIST_MAX];        /* ofs_each_group: partitions */
	uint32_t part[LIST_MAX];       /* ofs_each */
	int64_t offset[LIST_MAX];
};

static struct list list;

static void on_group(const char *group, size_t partitions, void *arg)
{
	struct list *l = arg;

	ck_assert_int_lt(l->n, LIST_MAX);
	snprintf(l->name[l->n], sizeof(l->name[0]), "%s", group);
	l->count[l->n++] = partitions;
}

static void on_offset(const char *topic, uint32_t partition, const struct ofs_value *v, void *arg)
{
	struct list *l = arg;

	ck_assert_int_lt(l->n, LIST_MAX);
	snprintf(l->name[l->n], sizeof(l->name[0]), "%s", topic);
	l->part[l->n] = partition;
	l->offset[l->n++] = v->offset;
}

static void list_groups(const struct ot *x)
{
	memset(&list, 0, sizeof(list));
	ofs_each_group(x->o, on_group, &list);
}

static int list_offsets(const struct ot *x, const char *group)
{
	memset(&list, 0, sizeof(list));
	return ofs_each(x->o, group, on_offset, &list);
}

/* --- basics -------------------------------------------------------------------- */

START_TEST(test_commit_then_get)
{
	struct ot x;
	struct op p;
	struct ofs_value v;
	const struct ofs_entry e[] = {
		{ "orders", 0, 100, "m0" },
		{ "orders", 1, 101, NULL },
		{ "payments", 7, 0, "" },
	};
	struct timespec ts;
	int64_t real0;

	clock_gettime(CLOCK_REALTIME, &ts);
	real0 = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	ot_init(&x);
	op_init(&p, &x);
	ck_assert_int_eq(ofs_commit(x.o, "g1", e, 3, &p.op), 0);
	ot_wait(&x, &p, 0);
	expect_value(&x, "g1", "orders", 0, 100, "m0");
	expect_value(&x, "g1", "orders", 1, 101, NULL);
	expect_value(&x, "g1", "payments", 7, 0, NULL);
	ck_assert_int_eq(ofs_get(x.o, "g1", "orders", 0, &v), 0);
	ck_assert_int_ge(v.commit_time_ms, real0);
	ck_assert_int_le(v.commit_time_ms, real0 + 60000);
	expect_none(&x, "g1", "orders", 2);
	expect_none(&x, "g1", "other", 0);
	expect_none(&x, "g2", "orders", 0);
	/* A later commit replaces the value, metadata included. */
	commit_sync(&x, "g1", "orders", 0, 150, "again");
	expect_value(&x, "g1", "orders", 0, 150, "again");
	commit_sync(&x, "g1", "orders", 0, 160, NULL);
	expect_value(&x, "g1", "orders", 0, 160, NULL);
	/* Offsets may go backwards when the consumer says so (a reset). */
	commit_sync(&x, "g1", "orders", 0, 3, NULL);
	expect_value(&x, "g1", "orders", 0, 3, NULL);
	ot_fini(&x);
}
END_TEST

/* Nothing is visible before the fdatasync that makes it durable: not at
 * ofs_commit, not once the write completed; then before the callback. */
START_TEST(test_not_visible_before_durable)
{
	struct ot x;
	struct op p;
	int from;

	ot_init(&x);
	commit_sync(&x, "g", "t", 0, 5, "old");
	from = x.t.nev;
	ck_assert_int_eq(commit_async(&x, &p, "g", "t", 0, 10, "new"), 0);
	expect_value(&x, "g", "t", 0, 5, "old");
	LT_RUN_UNTIL(&x.t, lt_count(&x.t, from, "log.write") > 0);
	ck_assert_int_eq(p.calls, 0);
	expect_value(&x, "g", "t", 0, 5, "old");
	ot_wait(&x, &p, 0);
	ck_assert_int_ge(lt_count(&x.t, from, "log.fsync"), 1);
	expect_value(&x, "g", "t", 0, 10, "new");
	/* A partition seen for the first time does not exist until then. */
	ck_assert_int_eq(commit_async(&x, &p, "g", "t", 1, 1, NULL), 0);
	expect_none(&x, "g", "t", 1);
	ot_wait(&x, &p, 0);
	expect_value(&x, "g", "t", 1, 1, NULL);
	ot_fini(&x);
}
END_TEST

/* The value is applied before the callback runs. */
static void check_in_cb(struct ofs_op *op, int res)
{
	struct op *p = (struct op *)op;

	p->calls++;
	p->res = res;
	expect_value(p->x, "g", "t", 0, 42, NULL);
}

START_TEST(test_applied_before_callback)
{
	struct ot x;
	struct op p;
	struct ofs_entry e = { "t", 0, 42, NULL };

	ot_init(&x);
	op_init(&p, &x);
	p.op.cb = check_in_cb;
	ck_assert_int_eq(ofs_commit(x.o, "g", &e, 1, &p.op), 0);
	ot_wait(&x, &p, 0);
	ot_fini(&x);
}
END_TEST

#define NCONC 1000

/* Many commits in one loop turn: all complete, all visible, and they share
 * a handful of fdatasyncs (group commit) instead of one each. */
START_TEST(test_concurrent_commits)
{
	struct ot x;
	struct op *ops = calloc(NCONC, sizeof(*ops));
	char group[32];
	int from, nsync;

	ck_assert_ptr_nonnull(ops);
	ot_init(&x);
	from = x.t.nev;
	for (int i = 0; i < NCONC; i++) {
		snprintf(group, sizeof(group), "group-%d", i % 37);
		ck_assert_int_eq(commit_async(&x, &ops[i], group, "topic", (uint32_t)(i / 37),
					      1000 + i, NULL), 0);
	}
	for (int i = 0; i < NCONC; i++)
		ot_wait(&x, &ops[i], 0);
	nsync = lt_count(&x.t, from, "log.fsync");
	ck_assert_msg(nsync >= 1 && nsync <= 10, "%d commits took %d fdatasyncs", NCONC, nsync);
	for (int i = 0; i < NCONC; i++) {
		snprintf(group, sizeof(group), "group-%d", i % 37);
		expect_value(&x, group, "topic", (uint32_t)(i / 37), 1000 + i, NULL);
	}
	/* Many commits of one key in one turn: the last one wins. */
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(commit_async(&x, &ops[i], "same", "t", 0, i, NULL), 0);
	for (int i = 0; i < 100; i++)
		ot_wait(&x, &ops[i], 0);
	expect_value(&x, "same", "t", 0, 99, NULL);
	list_groups(&x);
	ck_assert_int_eq(list.n, 38);
	ot_reopen(&x);
	expect_value(&x, "same", "t", 0, 99, NULL);
	for (int i = 0; i < NCONC; i++) {
		snprintf(group, sizeof(group), "group-%d", i % 37);
		expect_value(&x, group, "topic", (uint32_t)(i / 37), 1000 + i, NULL);
	}
	ot_fini(&x);
	free(ops);
}
END_TEST

/* A failed append is never applied; the store then refuses writes. */
START_TEST(test_failed_commit_not_applied)
{
	struct ot x;
	struct op p;

	ot_init(&x);
	commit_sync(&x, "g", "t", 0, 5, NULL);
	lt_inject(&x.t, "log.fsync", 0, 1, -EIO);
	ck_assert_int_eq(commit_async(&x, &p, "g", "t", 0, 10, NULL), 0);
	LT_RUN_UNTIL(&x.t, p.calls > 0);
	ck_assert_int_eq(p.calls, 1);
	ck_assert_int_lt(p.res, 0);
	expect_value(&x, "g", "t", 0, 5, NULL);
	ck_assert_int_eq(commit_async(&x, &p, "g", "t", 0, 11, NULL), -EROFS);
	ck_assert_int_eq(ofs_delete_group(x.o, "g", &p.op), -EROFS);
	ck_assert_int_eq(ofs_delete_topic(x.o, "t"), -EROFS);
	lt_settle(&x.t);
	ck_assert_int_eq(p.calls, 0);
	expect_value(&x, "g", "t", 0, 5, NULL);
	ck_assert_int_lt(ofs_close(x.o), 0); /* the log failed */
	x.o = NULL;
	ot_fini(&x);
}
END_TEST

START_TEST(test_validation)
{
	struct ot x;
	struct op p;
	char group[OFS_GROUP_MAX + 2], meta[OFS_METADATA_MAX + 2];
	struct ofs_entry e[2] = { { "t", 0, 1, NULL }, { "t", 1, 1, NULL } };

	ot_init(&x);
	op_init(&p, &x);
	memset(group, 'g', sizeof(group));
	group[OFS_GROUP_MAX + 1] = '\0';
	memset(meta, 'm', sizeof(meta));
	meta[OFS_METADATA_MAX + 1] = '\0';
	ck_assert_int_eq(ofs_commit(x.o, "", e, 1, &p.op), -EINVAL);
	ck_assert_int_eq(ofs_commit(x.o, NULL, e, 1, &p.op), -EINVAL);
	ck_assert_int_eq(ofs_commit(x.o, group, e, 1, &p.op), -EINVAL); /* 256 bytes */
	ck_assert_int_eq(ofs_commit(x.o, "g", e, 0, &p.op), -EINVAL);
	ck_assert_int_eq(ofs_commit(x.o, "g", NULL, 1, &p.op), -EINVAL);
	e[1].topic = "";
	ck_assert_int_eq(ofs_commit(x.o, "g", e, 2, &p.op), -EINVAL);
	e[1].topic = NULL;
	ck_assert_int_eq(ofs_commit(x.o, "g", e, 2, &p.op), -EINVAL);
	e[1].topic = "t";
	e[1].offset = -1;
	ck_assert_int_eq(ofs_commit(x.o, "g", e, 2, &p.op), -EINVAL);
	e[1].offset = 1;
	e[1].metadata = meta; /* 1025 bytes */
	ck_assert_int_eq(ofs_commit(x.o, "g", e, 2, &p.op), -EINVAL);
	ck_assert_int_eq(ofs_delete_group(x.o, "", &p.op), -EINVAL);
	ck_assert_int_eq(ofs_delete_group(x.o, group, &p.op), -EINVAL);
	ck_assert_int_eq(ofs_delete_group(x.o, "nobody", &p.op), -ENOENT);
	ck_assert_int_eq(ofs_delete_topic(x.o, ""), -EINVAL);
	ck_assert_int_eq(ofs_each(x.o, "nobody", on_offset, &list), -ENOENT);
	lt_settle(&x.t);
	ck_assert_int_eq(p.calls, 0);
	ck_assert_int_eq(lt_count(&x.t, 0, "log.write"), 0);
	/* The limits themselves are fine. */
	group[OFS_GROUP_MAX] = '\0';
	meta[OFS_METADATA_MAX] = '\0';
	commit_sync(&x, group, "t", 0, 0, meta);
	expect_value(&x, group, "t", 0, 0, meta);
	ot_reopen(&x);
	expect_value(&x, group, "t", 0, 0, meta);
	ot_fini(&x);
}
END_TEST

/* --- durability ------------------------------------------------------------------- */

static void fill_some(struct ot *x, int n)
{
	char group[32], meta[32];

	for (int i = 0; i < n; i++) {
		snprintf(group, sizeof(group), "g%d", i % 7);
		snprintf(meta, sizeof(meta), "meta-%d", i);
		commit_sync(x, group, i % 2 ? "odd" : "even", (uint32_t)i, 10 * i, meta);
	}
}

/* What fill_some committed, entries [from, n). */
static void check_some(const struct ot *x, int from, int n)
{
	char group[32], meta[32];

	for (int i = from; i < n; i++) {
		snprintf(group, sizeof(group), "g%d", i % 7);
		snprintf(meta, sizeof(meta), "meta-%d", i);
		expect_value(x, group, i % 2 ? "odd" : "even", (uint32_t)i, 10 * i, meta);
	}
}

START_TEST(test_restart)
{
	struct ot x;

	char tmp[LT_PATH_MAX + 8];

	ot_init(&x);
	fill_some(&x, 50);
	ot_close(&x);
	ck_assert(lt_exists(x.snap));
	/* A snapshot.tmp left by a crash is removed, never read. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", x.snap);
	lt_write_file(tmp, "garbage", 7);
	ot_open(&x);
	ck_assert(!lt_exists(tmp));
	check_some(&x, 0, 50);
	/* More commits after a restart, then through replay alone. */
	commit_sync(&x, "g0", "even", 0, 7777, "late");
	ot_reopen(&x);
	expect_value(&x, "g0", "even", 0, 7777, "late");
	ot_close(&x);
	drop_snapshot(&x);
	ot_open(&x);
	expect_value(&x, "g0", "even", 0, 7777, "late");
	check_some(&x, 1, 50);
	ot_fini(&x);
}
END_TEST

/* Commit 5 then 10: after any restart it is 10, never 5. */
START_TEST(test_never_backwards)
{
	struct ot x;
	struct op a, b;

	ot_init(&x);
	commit_sync(&x, "g", "t", 0, 5, NULL);
	commit_sync(&x, "g", "t", 0, 10, NULL);
	/* And both in one turn (one write). */
	ck_assert_int_eq(commit_async(&x, &a, "g", "t", 1, 5, NULL), 0);
	ck_assert_int_eq(commit_async(&x, &b, "g", "t", 1, 10, NULL), 0);
	ot_wait(&x, &a, 0);
	ot_wait(&x, &b, 0);
	ot_reopen(&x);
	expect_value(&x, "g", "t", 0, 10, NULL);
	expect_value(&x, "g", "t", 1, 10, NULL);
	ot_close(&x);
	drop_snapshot(&x);
	ot_open(&x);
	expect_value(&x, "g", "t", 0, 10, NULL);
	expect_value(&x, "g", "t", 1, 10, NULL);
	ot_fini(&x);
}
END_TEST

/* A crash: a child commits, and dies with _exit(0) inside the callback of
 * its last commit (no ofs_close, no log_close, no snapshot).  Everything
 * acknowledged is there at the next open, in the right order. */
START_TEST(test_crash_after_commit)
{
	char *data = tu_mkdtemp();
	pid_t pid;
	int status;

	ck_assert_ptr_nonnull(data);
	pid = fork(); /* before any ring exists: the child gets its own */
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct ot x;
		struct op p, q;
		ot_init_at(&x, data);
		ot_open(&x);
		fill_some(&x, 30);
		commit_sync(&x, "g", "t", 0, 5, NULL);
		commit_sync(&x, "gone", "t", 0, 1, NULL);
		op_init(&p, &x);
		ck_assert_int_eq(ofs_delete_group(x.o, "gone", &p.op), 0);
		ot_wait(&x, &p, 0);
		ck_assert_int_eq(commit_async(&x, &q, "g", "t", 0, 10, "last"), 0);
		q.exit_in_cb = true;
		rmdir(x.t.root); /* the child's own temp dir, unused */
		LT_RUN_UNTIL(&x.t, false);
		_exit(3); /* not reached */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	struct ot x;
	ot_init_at(&x, data);
	ck_assert(!lt_exists(x.snap));
	ot_open(&x);
	check_some(&x, 0, 30);
	expect_value(&x, "g", "t", 0, 10, "last");
	expect_none(&x, "gone", "t", 0);
	ot_reopen(&x);
	expect_value(&x, "g", "t", 0, 10, "last");
	ot_fini(&x);
	tu_rmtree(data);
	free(data);
}
END_TEST

/* --- deletes ----------------------------------------------------------------------- */

START_TEST(test_delete_group)
{
	struct ot x;
	struct op p;

	ot_init(&x);
	for (uint32_t i = 0; i < 3; i++) {
		commit_sync(&x, "a", "t1", i, i, NULL);
		commit_sync(&x, "a", "t2", i, i, NULL);
		commit_sync(&x, "b", "t1", i, 100 + i, NULL);
	}
	op_init(&p, &x);
	ck_assert_int_eq(ofs_delete_group(x.o, "a", &p.op), 0);
	expect_value(&x, "a", "t1", 0, 0, NULL); /* not durable yet */
	ot_wait(&x, &p, 0);
	for (uint32_t i = 0; i < 3; i++) {
		expect_none(&x, "a", "t1", i);
		expect_none(&x, "a", "t2", i);
		expect_value(&x, "b", "t1", i, 100 + i, NULL);
	}
	ck_assert_int_eq(list_offsets(&x, "a"), -ENOENT);
	list_groups(&x);
	ck_assert_int_eq(list.n, 1);
	ck_assert_str_eq(list.name[0], "b");
	ck_assert_int_eq(ofs_delete_group(x.o, "a", &p.op), -ENOENT);
	/* Gone after a restart through the snapshot, and through replay. */
	ot_reopen(&x);
	expect_none(&x, "a", "t1", 0);
	expect_value(&x, "b", "t1", 2, 102, NULL);
	ot_close(&x);
	drop_snapshot(&x);
	ot_open(&x);
	expect_none(&x, "a", "t1", 0);
	expect_none(&x, "a", "t2", 2);
	expect_value(&x, "b", "t1", 2, 102, NULL);
	/* The group can come back. */
	commit_sync(&x, "a", "t1", 0, 9, NULL);
	expect_value(&x, "a", "t1", 0, 9, NULL);
	ot_fini(&x);
}
END_TEST

#define BIG_PARTS 3000

/* A group too big for one delete batch: several batches, one callback. */
START_TEST(test_delete_big_group)
{
	struct ot x;
	struct op p;
	struct ofs_entry *e = calloc(BIG_PARTS, sizeof(*e));
	char topic[200];
	int from;

	ck_assert_ptr_nonnull(e);
	memset(topic, 'x', sizeof(topic) - 1);
	topic[sizeof(topic) - 1] = '\0';
	ot_init(&x);
	for (int i = 0; i < BIG_PARTS; i++)
		e[i] = (struct ofs_entry){ topic, (uint32_t)i, i, NULL };
	op_init(&p, &x);
	ck_assert_int_eq(ofs_commit(x.o, "big", e, BIG_PARTS, &p.op), 0);
	ot_wait(&x, &p, 0);
	commit_sync(&x, "small", topic, 0, 1, NULL);
	from = x.t.nev;
	op_init(&p, &x);
	ck_assert_int_eq(ofs_delete_group(x.o, "big", &p.op), 0);
	ot_wait(&x, &p, 0);
	lt_settle(&x.t);
	ck_assert_int_ge(lt_count(&x.t, from, "log.write"), 1);
	for (int i = 0; i < BIG_PARTS; i++)
		expect_none(&x, "big", topic, (uint32_t)i);
	expect_value(&x, "small", topic, 0, 1, NULL);
	ot_close(&x);
	drop_snapshot(&x);
	ot_open(&x);
	for (int i = 0; i < BIG_PARTS; i++)
		expect_none(&x, "big", topic, (uint32_t)i);
	list_groups(&x);
	ck_assert_int_eq(list.n, 1);
	ot_fini(&x);
	free(e);
}
END_TEST

START_TEST(test_delete_topic)
{
	struct ot x;

	ot_init(&x);
	for (uint32_t i = 0; i < 4; i++) {
		commit_sync(&x, "g1", "doomed", i, i, NULL);
		commit_sync(&x, "g2", "doomed", i, i, NULL);
		commit_sync(&x, "g3", "doomed", i, i, NULL);
		commit_sync(&x, "g1", "kept", i, 10 + i, NULL);
		commit_sync(&x, "g2", "doomed-not", i, 20 + i, NULL);
	}
	ck_assert_int_eq(ofs_delete_topic(x.o, "doomed"), 0);
	expect_none(&x, "g1", "doomed", 0); /* gone at once, durable later */
	expect_value(&x, "g1", "kept", 0, 10, NULL);
	lt_settle(&x.t);
	for (uint32_t i = 0; i < 4; i++) {
		expect_none(&x, "g1", "doomed", i);
		expect_none(&x, "g2", "doomed", i);
		expect_none(&x, "g3", "doomed", i);
		expect_value(&x, "g1", "kept", i, 10 + i, NULL);
		expect_value(&x, "g2", "doomed-not", i, 20 + i, NULL);
	}
	list_groups(&x); /* g3 had nothing else */
	ck_assert_int_eq(list.n, 2);
	ck_assert_str_eq(list.name[0], "g1");
	ck_assert_str_eq(list.name[1], "g2");
	ck_assert_int_eq(ofs_delete_topic(x.o, "never-existed"), 0);
	ot_close(&x);
	drop_snapshot(&x);
	ot_open(&x);
	expect_none(&x, "g3", "doomed", 3);
	expect_value(&x, "g1", "kept", 3, 13, NULL);
	list_groups(&x);
	ck_assert_int_eq(list.n, 2);
	ot_fini(&x);
}
END_TEST

/* --- listings ----------------------------------------------------------------------- */

static void check_sorted_listing(const struct ot *x)
{
	static const char *const groups[] = { "a", "aa", "ab", "b", "zz" };
	static const char *const topics[] = { "a", "m", "m2", "z" };
	static const uint32_t parts[] = { 1, 2, 3, 5, 10, 100 };

	list_groups(x);
	ck_assert_int_eq(list.n, 5);
	for (int i = 0; i < 5; i++) {
		ck_assert_str_eq(list.name[i], groups[i]);
		ck_assert_int_eq(list.count[i], i == 0 ? 24 : 1);
	}
	ck_assert_int_eq(list_offsets(x, "a"), 0);
	ck_assert_int_eq(list.n, 24);
	for (int i = 0; i < 24; i++) {
		ck_assert_str_eq(list.name[i], topics[i / 6]);
		ck_assert_int_eq(list.part[i], parts[i % 6]);
		ck_assert_int_eq(list.offset[i], 1000 * (i / 6) + parts[i % 6]);
	}
}

START_TEST(test_listings_sorted)
{
	static const char *const topics[] = { "z", "m", "a", "m2" };
	static const int ti[] = { 3, 1, 0, 2 }; /* sorted position */
	static const uint32_t parts[] = { 10, 1, 100, 3, 5, 2 };
	struct ot x;

	ot_init(&x);
	commit_sync(&x, "zz", "t", 0, 0, NULL);
	commit_sync(&x, "b", "t", 0, 0, NULL);
	for (int k = 0; k < 4; k++)
		for (int i = 0; i < 6; i++)
			commit_sync(&x, "a", topics[k], parts[i], 1000 * ti[k] + parts[i], NULL);
	commit_sync(&x, "ab", "t", 0, 0, NULL);
	commit_sync(&x, "aa", "t", 0, 0, NULL);
	check_sorted_listing(&x);
	ot_reopen(&x);
	check_sorted_listing(&x);
	ot_fini(&x);
}
END_TEST

#define MANY_GROUPS 3000

/* Thousands of groups (the hash table grows and is listed in order), then
 * half of them deleted (entries move within the table). */
START_TEST(test_many_groups)
{
	struct ot x;
	struct op *ops = calloc(MANY_GROUPS, sizeof(*ops));
	char g[32];

	ck_assert_ptr_nonnull(ops);
	ot_init(&x);
	for (int i = 0; i < MANY_GROUPS; i++) {
		snprintf(g, sizeof(g), "grp%05d", (i * 7919) % MANY_GROUPS);
		ck_assert_int_eq(commit_async(&x, &ops[i], g, "t", 0, i, NULL), 0);
	}
	for (int i = 0; i < MANY_GROUPS; i++)
		ot_wait(&x, &ops[i], 0);
	list_groups(&x);
	ck_assert_int_eq(list.n, MANY_GROUPS);
	for (int i = 0; i < MANY_GROUPS; i++) {
		snprintf(g, sizeof(g), "grp%05d", i);
		ck_assert_str_eq(list.name[i], g);
	}
	for (int i = 0; i < MANY_GROUPS; i += 2) {
		snprintf(g, sizeof(g), "grp%05d", i);
		op_init(&ops[i], &x);
		ck_assert_int_eq(ofs_delete_group(x.o, g, &ops[i].op), 0);
	}
	for (int i = 0; i < MANY_GROUPS; i += 2)
		ot_wait(&x, &ops[i], 0);
	for (int i = 0; i < MANY_GROUPS; i++) {
		struct ofs_value v;
		snprintf(g, sizeof(g), "grp%05d", (i * 7919) % MANY_GROUPS);
		if ((i * 7919) % MANY_GROUPS % 2 == 0)
			ck_assert_int_eq(ofs_get(x.o, g, "t", 0, &v), -ENOENT);
		else
			expect_value(&x, g, "t", 0, i, NULL);
	}
	ot_reopen(&x);
	list_groups(&x);
	ck_assert_int_eq(list.n, MANY_GROUPS / 2);
	for (int i = 0; i < MANY_GROUPS / 2; i++) {
		snprintf(g, sizeof(g), "grp%05d", 2 * i + 1);
		ck_assert_str_eq(list.name[i], g);
	}
	ot_fini(&x);
	free(ops);
}
END_TEST

/* --- compaction ------------------------------------------------------------------------ */

#define CP_PARTS  800
#define CP_ROUNDS 45   /* ~850 KB per round, 16 MiB segments: 3 segments */

static void cp_meta(char *buf, int round)
{
	memset(buf, 'a' + round % 26, OFS_METADATA_MAX);
	buf[OFS_METADATA_MAX] = '\0';
	buf[0] = (char)('A' + round % 26);
}

/* Commit CP_ROUNDS rounds of CP_PARTS big entries, 8 rounds at a time. */
static void cp_fill(struct ot *x, int first, int rounds)
{
	static char meta[CP_ROUNDS * 2][OFS_METADATA_MAX + 1];
	struct ofs_entry *e = calloc((size_t)rounds * CP_PARTS, sizeof(*e));
	struct op *ops = calloc((size_t)rounds, sizeof(*ops));

	ck_assert(e != NULL && ops != NULL);
	for (int r = 0; r < rounds; r++) {
		int round = first + r;
		cp_meta(meta[round], round);
		for (int i = 0; i < CP_PARTS; i++)
			e[r * CP_PARTS + i] = (struct ofs_entry){ "topic", (uint32_t)i,
								  (int64_t)round * 10000 + i, meta[round] };
	}
	for (int r = 0; r < rounds; r += 8) {
		int n = rounds - r < 8 ? rounds - r : 8;
		for (int k = r; k < r + n; k++) {
			op_init(&ops[k], x);
			ck_assert_int_eq(ofs_commit(x->o, "big", e + k * CP_PARTS, CP_PARTS, &ops[k].op), 0);
		}
		for (int k = r; k < r + n; k++)
			ot_wait(x, &ops[k], 0);
	}
	free(e);
	free(ops);
}

static void cp_check(const struct ot *x, int round)
{
	char meta[OFS_METADATA_MAX + 1];

	cp_meta(meta, round);
	for (int i = 0; i < CP_PARTS; i++)
		expect_value(x, "big", "topic", (uint32_t)i, (int64_t)round * 10000 + i, meta);
	expect_value(x, "small", "t", 0, 1, "s");
}

START_TEST(test_compact)
{
	struct ot x;
	int64_t bases[OT_SEGS_MAX];
	int nsegs;

	ot_init(&x);
	commit_sync(&x, "small", "t", 0, 1, "s");
	cp_fill(&x, 0, CP_ROUNDS);
	nsegs = lt_seg_bases(&x.t, bases, OT_SEGS_MAX);
	ck_assert_int_ge(nsegs, 3);
	ck_assert(!lt_exists(x.snap));
	ck_assert_int_eq(ofs_compact(x.o), 0);
	lt_settle(&x.t);
	ck_assert(lt_exists(x.snap));
	ck_assert_int_eq(lt_seg_bases(&x.t, bases, OT_SEGS_MAX), 1);
	ck_assert_int_gt(bases[0], 0);
	cp_check(&x, CP_ROUNDS - 1);
	/* Nothing more to do: no new snapshot, nothing deleted. */
	ck_assert_int_eq(ofs_compact(x.o), 0);
	ck_assert_int_eq(uring_inflight(x.t.u), 0);
	/* Reopen (the final snapshot of ofs_close replaces compaction's). */
	commit_sync(&x, "small", "t", 1, 2, NULL);
	ot_reopen(&x);
	cp_check(&x, CP_ROUNDS - 1);
	expect_value(&x, "small", "t", 1, 2, NULL);
	ck_assert_int_eq(lt_seg_bases(&x.t, bases, OT_SEGS_MAX), 1);
	/* Roll again and compact again: the new snapshot replaces the old. */
	cp_fill(&x, CP_ROUNDS, 20);
	ck_assert_int_ge(lt_seg_bases(&x.t, bases, OT_SEGS_MAX), 2);
	ck_assert_int_eq(ofs_compact(x.o), 0);
	lt_settle(&x.t);
	ck_assert_int_eq(lt_seg_bases(&x.t, bases, OT_SEGS_MAX), 1);
	cp_check(&x, CP_ROUNDS + 19);
	ot_reopen(&x);
	cp_check(&x, CP_ROUNDS + 19);
	expect_value(&x, "small", "t", 1, 2, NULL);
	ot_fini(&x);
}
END_TEST

/* Commits in flight when compaction starts, and commits made while the
 * snapshot is written: none is in the snapshot, all are in the log past
 * the covered offset, and all survive a reopen from compaction's snapshot
 * (as after a crash: not the one ofs_close writes). */
START_TEST(test_compact_while_committing)
{
	struct ot x;
	struct op p[50];
	int64_t bases[OT_SEGS_MAX];
	char snapcopy[LT_PATH_MAX + 8];
	char cmd[3 * LT_PATH_MAX];

	ot_init(&x);
	commit_sync(&x, "small", "t", 0, 1, "s");
	cp_fill(&x, 0, CP_ROUNDS);
	for (int i = 0; i < 25; i++)
		ck_assert_int_eq(commit_async(&x, &p[i], "during", "t", (uint32_t)i, i, NULL), 0);
	ck_assert_int_eq(ofs_compact(x.o), 0);
	for (int i = 25; i < 50; i++)
		ck_assert_int_eq(commit_async(&x, &p[i], "during", "t", (uint32_t)i, i, NULL), 0);
	for (int i = 0; i < 50; i++)
		ot_wait(&x, &p[i], 0);
	lt_settle(&x.t);
	ck_assert_int_eq(lt_seg_bases(&x.t, bases, OT_SEGS_MAX), 1);
	/* Keep the compaction's snapshot, not the one ofs_close writes. */
	snprintf(snapcopy, sizeof(snapcopy), "%s.keep", x.snap);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", x.snap, snapcopy);
	ck_assert_int_eq(system(cmd), 0);
	ot_close(&x);
	ck_assert_int_eq(rename(snapcopy, x.snap), 0);
	ot_open(&x);
	cp_check(&x, CP_ROUNDS - 1);
	for (int i = 0; i < 50; i++)
		expect_value(&x, "during", "t", (uint32_t)i, i, NULL);
	ot_fini(&x);
}
END_TEST

/* ofs_close while the snapshot is being written waits for it. */
START_TEST(test_close_during_compaction)
{
	struct ot x;
	int64_t bases[OT_SEGS_MAX];

	ot_init(&x);
	commit_sync(&x, "small", "t", 0, 1, "s");
	cp_fill(&x, 0, CP_ROUNDS);
	ck_assert_int_eq(ofs_compact(x.o), 0);
	ck_assert_int_gt(uring_inflight(x.t.u), 0);
	ot_close(&x);
	lt_settle(&x.t);
	ck_assert_int_eq(lt_seg_bases(&x.t, bases, OT_SEGS_MAX), 1);
	ot_open(&x);
	cp_check(&x, CP_ROUNDS - 1);
	ot_fini(&x);
}
END_TEST

START_TEST(test_compact_single_segment)
{
	struct ot x;

	ot_init(&x);
	fill_some(&x, 10);
	ck_assert_int_eq(ofs_compact(x.o), 0);
	lt_settle(&x.t);
	ck_assert(!lt_exists(x.snap));
	ot_fini(&x);
}
END_TEST

/* A failing step of the snapshot deletes nothing; the store goes on. */
START_TEST(test_compact_failure)
{
	static const char *const steps[] = {
		"ofs.snapshot.write", "ofs.snapshot.fsync", "ofs.snapshot.rename",
		"ofs.snapshot.dirsync",
	};
	struct ot x;
	int64_t bases[OT_SEGS_MAX];
	int nsegs;

	ot_init(&x);
	commit_sync(&x, "small", "t", 0, 1, "s");
	cp_fill(&x, 0, CP_ROUNDS);
	nsegs = lt_seg_bases(&x.t, bases, OT_SEGS_MAX);
	lt_inject(&x.t, steps[_i], 0, 1, -EIO);
	ck_assert_int_eq(ofs_compact(x.o), 0);
	lt_settle(&x.t);
	ck_assert_int_eq(x.t.fail_left, 0);
	ck_assert_int_eq(lt_seg_bases(&x.t, bases, OT_SEGS_MAX), nsegs);
	commit_sync(&x, "small", "t", 1, 2, NULL);
	cp_check(&x, CP_ROUNDS - 1);
	ot_close(&x);
	ot_open(&x);
	cp_check(&x, CP_ROUNDS - 1);
	expect_value(&x, "small", "t", 1, 2, NULL);
	/* And the next compaction works. */
	cp_fill(&x, CP_ROUNDS, 20);
	ck_assert_int_eq(ofs_compact(x.o), 0);
	lt_settle(&x.t);
	ck_assert_int_eq(lt_seg_bases(&x.t, bases, OT_SEGS_MAX), 1);
	ot_reopen(&x);
	cp_check(&x, CP_ROUNDS + 19);
	ot_fini(&x);
}
END_TEST

/* --- corruption -------------------------------------------------------------------------- */

/* Run ofs_open with stderr captured; returns its rc and the lines. */
static int open_captured(struct ot *x, char *out, size_t cap)
{
	char path[LT_PATH_MAX + 16];
	int saved, fd, rc, level = log_msg_level;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stderr.txt", x->t.root);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	log_msg_level = LOGL_ERROR;
	rc = ofs_open(x->data, x->t.ctx, &x->o);
	log_msg_level = level;
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, cap - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return rc;
}

/* Damage the snapshot in several ways: open fails, naming the file. */
START_TEST(test_corrupt_snapshot)
{
	struct ot x;
	char msg[4096];
	int64_t size;
	int rc;

	ot_init(&x);
	fill_some(&x, 20);
	ot_close(&x);
	size = lt_file_size(x.snap);
	ck_assert_int_gt(size, 40);
	switch (_i) {
	case 0: lt_flip(x.snap, 0, 0x01); break;                   /* magic */
	case 1: lt_flip(x.snap, 8, 0x01); break;                   /* covered offset */
	case 2: lt_flip(x.snap, (uint64_t)size / 2, 0x20); break;  /* an entry */
	case 3: lt_flip(x.snap, (uint64_t)size - 1, 0x80); break;  /* the CRC */
	case 4: ck_assert_int_eq(truncate(x.snap, size - 5), 0); break;
	case 5: ck_assert_int_eq(truncate(x.snap, 3), 0); break;
	}
	rc = open_captured(&x, msg, sizeof(msg));
	ck_assert_int_eq(rc, -EUCLEAN);
	ck_assert_ptr_null(x.o);
	ck_assert_msg(strstr(msg, x.snap) != NULL && strstr(msg, "corrupt") != NULL,
		      "message does not name the corrupt file: %s", msg);
	ot_fini(&x);
}
END_TEST

/* Segments deleted by compaction but the snapshot gone: the log no longer
 * holds every commit, and open says so instead of serving a partial table. */
START_TEST(test_snapshot_missing_after_compaction)
{
	struct ot x;
	char msg[4096];

	ot_init(&x);
	commit_sync(&x, "small", "t", 0, 1, "s");
	cp_fill(&x, 0, CP_ROUNDS);
	ck_assert_int_eq(ofs_compact(x.o), 0);
	lt_settle(&x.t);
	ot_close(&x);
	drop_snapshot(&x);
	ck_assert_int_eq(open_captured(&x, msg, sizeof(msg)), -EUCLEAN);
	ck_assert_msg(strstr(msg, "no snapshot") != NULL, "%s", msg);
	ot_fini(&x);
}
END_TEST

/* A damaged batch in the offsets log fails the open (CRC checked on replay). */
START_TEST(test_corrupt_log)
{
	struct ot x;
	char msg[4096], path[LT_PATH_MAX];
	uint64_t pos[8];

	ot_init(&x);
	fill_some(&x, 5);
	ot_close(&x);
	drop_snapshot(&x);
	lt_seg_path(&x.t, path, 0, ".log");
	ck_assert_int_eq(lt_batches(path, pos, NULL, 8), 5);
	lt_flip(path, pos[2] + BATCH_HEADER_SIZE + 3, 0x04);
	ck_assert_int_lt(open_captured(&x, msg, sizeof(msg)), 0);
	ck_assert_ptr_null(x.o);
	ck_assert_msg(strstr(msg, "__consumer_offsets") != NULL, "%s", msg);
	ot_fini(&x);
}
END_TEST

/* --- log_delete_before --------------------------------------------------------------------- */

START_TEST(test_log_delete_before)
{
	struct lt t;
	int64_t bases[OT_SEGS_MAX], end;
	struct log_slice sl;
	int n;

	lt_init(&t);
	t.cfg.segment_bytes = 4096;
	lt_open(&t);
	for (int i = 0; i < 60; i++)
		lt_append_sync(&t, 5, 1600000000000LL + i);
	end = log_end_offset(t.log);
	n = lt_seg_bases(&t, bases, OT_SEGS_MAX);
	ck_assert_int_ge(n, 4);
	/* Segment 0 holds offsets up to bases[1] - 1. */
	ck_assert_int_eq(log_delete_before(t.log, bases[1] - 1), 0);
	ck_assert_int_eq(log_start_offset(t.log), 0);
	ck_assert_int_eq(log_delete_before(t.log, bases[1]), 1);
	ck_assert_int_eq(log_start_offset(t.log), bases[1]);
	ck_assert_int_eq(log_delete_before(t.log, bases[2] + 1), 1);
	ck_assert_int_eq(log_start_offset(t.log), bases[2]);
	ck_assert_int_eq(log_read(t.log, bases[2] - 1, 4096, &sl), -ERANGE);
	/* Past the end: never the active segment. */
	ck_assert_int_eq(log_delete_before(t.log, end + 1000), n - 3);
	ck_assert_int_eq(log_segment_count(t.log), 1);
	ck_assert_int_eq(log_start_offset(t.log), bases[n - 1]);
	lt_settle(&t);
	ck_assert_int_eq(lt_seg_bases(&t, bases, OT_SEGS_MAX), 1);
	lt_read_range(&t, log_start_offset(t.log), end, 1 << 20);
	lt_close(&t);
	lt_open(&t);
	ck_assert_int_eq(log_start_offset(t.log), bases[0]);
	ck_assert_int_eq(log_end_offset(t.log), end);
	lt_append_sync(&t, 1, 1600000000000LL);
	lt_fini(&t);
}
END_TEST

Suite *offsets_suite(void)
{
	Suite *s = suite_create("offsets");
	TCase *tc;

	tc = tcase_create("commit");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_commit_then_get);
	tcase_add_test(tc, test_not_visible_before_durable);
	tcase_add_test(tc, test_applied_before_callback);
	tcase_add_test(tc, test_concurrent_commits);
	tcase_add_test(tc, test_failed_commit_not_applied);
	tcase_add_test(tc, test_validation);
	suite_add_tcase(s, tc);

	tc = tcase_create("durability");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_never_backwards);
	tcase_add_test(tc, test_crash_after_commit);
	suite_add_tcase(s, tc);

	tc = tcase_create("delete");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_delete_group);
	tcase_add_test(tc, test_delete_big_group);
	tcase_add_test(tc, test_delete_topic);
	suite_add_tcase(s, tc);

	tc = tcase_create("list");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_listings_sorted);
	tcase_add_test(tc, test_many_groups);
	suite_add_tcase(s, tc);

	tc = tcase_create("compact");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_compact);
	tcase_add_test(tc, test_compact_while_committing);
	tcase_add_test(tc, test_close_during_compaction);
	tcase_add_test(tc, test_compact_single_segment);
	tcase_add_loop_test(tc, test_compact_failure, 0, 4);
	tcase_add_test(tc, test_log_delete_before);
	suite_add_tcase(s, tc);

	tc = tcase_create("corrupt");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_corrupt_snapshot, 0, 6);
	tcase_add_test(tc, test_snapshot_missing_after_compaction);
	tcase_add_test(tc, test_corrupt_log);
	suite_add_tcase(s, tc);
	return s;
}
