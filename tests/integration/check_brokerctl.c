/* check_brokerctl — every brokerctl subcommand against a real brokerd:
 * output, --json and exit status (0 ok, 1 refused, 2 usage, 3 unreachable). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"

#ifndef BROKERCTL_PATH
#define BROKERCTL_PATH "build/san/brokerctl"
#endif

Suite *brokerctl_suite(void); /* called by the runner */

static struct tb b;
static char out[65536];

static void setup(void)
{
	memset(&b, 0, sizeof(b));
	tb_start(&b);
}

static void teardown(void)
{
	tb_cleanup(&b);
}

/* Run "brokerctl --broker 127.0.0.1:PORT ARGS" (stderr included in out);
 * returns its exit status. */
static int ctl(const char *args)
{
	char cmd[1024];
	size_t n;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "%s --broker 127.0.0.1:%d %s 2>&1", BROKERCTL_PATH, b.port, args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	st = pclose(p);
	ck_assert_msg(WIFEXITED(st), "brokerctl %s did not exit", args);
	return WEXITSTATUS(st);
}

#define HAS(s) ck_assert_msg(strstr(out, (s)) != NULL, "missing \"%s\" in:\n%s", (s), out)

START_TEST(topics)
{
	ck_assert_int_eq(ctl("topic create orders --partitions 3 --config retention.ms=3600000"), 0);
	HAS("created topic 'orders' with 3 partitions");
	ck_assert_int_eq(ctl("topic list"), 0);
	HAS("orders");
	ck_assert_int_eq(ctl("--json topic list"), 0);
	HAS("{\"name\":\"orders\",\"partitions\":3");
	ck_assert_int_eq(ctl("topic describe orders"), 0);
	HAS("retention.ms");
	HAS("3600000");
	HAS("topic");
	ck_assert_int_eq(ctl("topic alter orders --set segment.bytes=1048576 --reset retention.ms"), 0);
	ck_assert_int_eq(ctl("--json topic describe orders"), 0);
	HAS("\"segment.bytes\":\"1048576\"");
	ck_assert_int_eq(ctl("topic create orders"), 1);
	HAS("already exists");
	ck_assert_int_eq(ctl("topic delete orders"), 0);
	ck_assert_int_eq(ctl("topic describe orders"), 1);
	HAS("topic 'orders' does not exist");
	ck_assert_int_eq(ctl("topic alter x --set nope=1"), 1);
}
END_TEST

START_TEST(offsets_and_groups)
{
	int fd = tc_connect(b.port);
	Brokerd__Response *r = tc_create_topic(fd, "t", 2);
	size_t len;
	uint8_t *batch = tc_batch("v", 0, 10, &len);

	tc_free(r);
	r = tc_produce(fd, "t", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	tc_free(r);
	free(batch);
	ck_assert_int_eq(ctl("offsets commit g t 0 4 --metadata note"), 0);
	ck_assert_int_eq(ctl("offsets get g"), 0);
	HAS("note");
	ck_assert_int_eq(ctl("--json offsets get g t"), 0);
	HAS("\"offset\":4,\"high_watermark\":10,\"lag\":6");
	ck_assert_int_eq(ctl("offsets reset g t --to latest"), 0);
	ck_assert_int_eq(ctl("--json groups describe g"), 0);
	HAS("\"partition\":0,\"offset\":10");
	ck_assert_int_eq(ctl("offsets reset g t --to earliest"), 0);
	ck_assert_int_eq(ctl("--json groups list"), 0);
	HAS("{\"group\":\"g\",\"partitions\":2,\"lag\":10}");
	ck_assert_int_eq(ctl("groups delete g"), 0);
	ck_assert_int_eq(ctl("groups delete g"), 1);
	HAS("UNKNOWN_GROUP");
	ck_assert_int_eq(ctl("offsets commit g nope 0 1"), 1);
	HAS("topic 'nope' does not exist");
	close(fd);
}
END_TEST

START_TEST(status_usage_unreachable)
{
	char cmd[256];

	ck_assert_int_eq(ctl("status"), 0);
	HAS("brokerd 0.2.0");
	ck_assert_int_eq(ctl("--json status"), 0);
	HAS("\"topics\":0");
	ck_assert_int_eq(ctl("topic create"), 2);
	ck_assert_int_eq(ctl("frobnicate"), 2);
	HAS("unknown command");
	ck_assert_int_eq(ctl("topic create t --partitions zero"), 2);
	ck_assert_int_eq(ctl("topic create --help"), 0);
	HAS("usage: brokerctl");
	tb_kill9(&b);
	ck_assert_int_eq(ctl("status"), 3);
	HAS("cannot reach the broker");
	snprintf(cmd, sizeof(cmd), "%s --broker nonsense status >/dev/null 2>&1", BROKERCTL_PATH);
	ck_assert_int_eq(WEXITSTATUS(system(cmd)), 3);
}
END_TEST

START_TEST(produce_lines)
{
	int fd = tc_connect(b.port);
	Brokerd__Response *r = tc_create_topic(fd, "lines", 1);
	char cmd[1024];
	char **v;
	int64_t last;
	int n, st;

	tc_free(r);
	snprintf(cmd, sizeof(cmd),
		 "printf 'k1:one\\nk2:two\\nthree\\n' | %s --broker 127.0.0.1:%d produce lines "
		 "--key-separator : --header src=ctl >/dev/null 2>&1",
		 BROKERCTL_PATH, b.port);
	st = system(cmd);
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	r = tc_fetch(fd, "lines", 0, 0, 1 << 20, 0, 0);
	TC_OK(r);
	n = tc_values(r->fetch, 0, &v, &last);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(v[0], "one");
	ck_assert_str_eq(v[1], "two");
	ck_assert_str_eq(v[2], "three");
	tc_free_values(v, n);
	tc_free(r);
	snprintf(cmd, sizeof(cmd), "echo x | %s --broker 127.0.0.1:%d produce missing 2>&1",
		 BROKERCTL_PATH, b.port);
	{
		FILE *p = popen(cmd, "r");
		size_t got = fread(out, 1, sizeof(out) - 1, p);
		out[got] = '\0';
		st = pclose(p);
	}
	ck_assert_int_eq(WEXITSTATUS(st), 1);
	HAS("records to 'missing' failed: UNKNOWN_TOPIC");
	close(fd);
}
END_TEST

START_TEST(consume_formats_and_group)
{
	char args[256];
	int fd = tc_connect(b.port);
	Brokerd__Response *r = tc_create_topic(fd, "c", 1);
	size_t len;
	uint8_t *batch = tc_batch("val", 0, 5, &len);

	tc_free(r);
	r = tc_produce(fd, "c", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	TC_OK(r);
	tc_free(r);
	free(batch);
	ck_assert_int_eq(ctl("consume c"), 0);
	ck_assert_str_eq(out, "val-0\nval-1\nval-2\nval-3\nval-4\n");
	ck_assert_int_eq(ctl("consume c --from 3 --format full"), 0);
	HAS("0\t3\t");
	HAS("val-3");
	ck_assert_ptr_null(strstr(out, "val-2"));
	ck_assert_int_eq(ctl("consume c --from latest"), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(ctl("consume c --format json --max 1"), 0);
	HAS("{\"partition\":0,\"offset\":0,");
	HAS("\"value\":\"val-0\"");
	/* a group resumes where it stopped */
	ck_assert_int_eq(ctl("consume c --group g --max 2"), 0);
	ck_assert_str_eq(out, "val-0\nval-1\n");
	ck_assert_int_eq(ctl("consume c --group g"), 0);
	ck_assert_str_eq(out, "val-2\nval-3\nval-4\n");
	snprintf(args, sizeof(args), "consume c --partition 7");
	ck_assert_int_eq(ctl(args), 1);
	HAS("has no partition 7");
	ck_assert_int_eq(ctl("consume nope"), 1);
	close(fd);
}
END_TEST

Suite *brokerctl_suite(void)
{
	Suite *s = suite_create("brokerctl");
	TCase *tc = tcase_create("commands");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, topics);
	tcase_add_test(tc, offsets_and_groups);
	tcase_add_test(tc, status_usage_unreachable);
	tcase_add_test(tc, produce_lines);
	tcase_add_test(tc, consume_formats_and_group);
	suite_add_tcase(s, tc);
	return s;
}
