/* check_broker_bench — the broker-bench load generator against a real
 * brokerd: a produce+consume run counts every record once, consume-only
 * runs stop at the high watermarks or at --messages, --duration caps a
 * paced run, and the exit status (0 ok, 1 failed run, 2 usage, 3 broker
 * unreachable or setup refused). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"

#ifndef BROKER_BENCH_PATH
#define BROKER_BENCH_PATH "build/san/broker-bench"
#endif

Suite *broker_bench_suite(void); /* called by the runner */

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

/* Run "broker-bench --broker 127.0.0.1:PORT ARGS" (stderr included in
 * out); returns its exit status. */
static int bench(const char *args)
{
	char cmd[1024];
	size_t n;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "%s --broker 127.0.0.1:%d %s 2>&1", BROKER_BENCH_PATH, b.port,
		 args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	st = pclose(p);
	ck_assert_msg(WIFEXITED(st), "broker-bench %s did not exit", args);
	return WEXITSTATUS(st);
}

#define HAS(s) ck_assert_msg(strstr(out, (s)) != NULL, "missing \"%s\" in:\n%s", (s), out)

/* The value of " key=" in the machine-readable line, or -1. */
static long long kv(const char *key)
{
	char pat[64];
	const char *line = strstr(out, "broker-bench result="), *at;

	ck_assert_msg(line != NULL, "no result line in:\n%s", out);
	snprintf(pat, sizeof(pat), " %s=", key);
	at = strstr(line, pat);
	return at != NULL ? atoll(at + strlen(pat)) : -1;
}

START_TEST(produce_and_consume)
{
	ck_assert_int_eq(bench("--create --partitions 2 --messages 20000 --producers 2 "
			       "--consumers 2 --duration 60"), 0);
	HAS("broker-bench result=ok ");
	HAS("consumed 20000 records");
	HAS("0 missing, 0 duplicates, 0 errors");
	HAS("produce latency:");
	HAS("end-to-end latency:");
	ck_assert_int_eq(kv("partitions"), 2);
	ck_assert_int_eq(kv("produced"), 20000);
	ck_assert_int_eq(kv("produce_errors"), 0);
	ck_assert_int_eq(kv("consumed"), 20000);
	ck_assert_int_eq(kv("missing"), 0);
	ck_assert_int_eq(kv("duplicates"), 0);
	ck_assert_int_eq(kv("foreign"), 0);
	ck_assert_int_ge(kv("e2e_max_us"), kv("e2e_p50_us"));

	/* consume only: everything up to the high watermarks, from earliest */
	ck_assert_int_eq(bench("--producers 0 --consumers 2 -q"), 0);
	ck_assert_int_eq(kv("consumed"), 20000);
	ck_assert_ptr_null(strstr(out, "e2e_p50_us"));
	/* exactly --messages, over both consumers */
	ck_assert_int_eq(bench("--producers 0 --consumers 2 --messages 5000 -q"), 0);
	ck_assert_int_eq(kv("consumed"), 5000);
	/* a second run on the same topic reads only its own records (latest) */
	ck_assert_int_eq(bench("--messages 3000 --producers 1 --consumers 1 --acks leader -q"), 0);
	ck_assert_int_eq(kv("consumed"), 3000);
	ck_assert_int_eq(kv("foreign"), 0);
}
END_TEST

START_TEST(rate_and_duration)
{
	/* 200/s for 1 s of a 100000-record budget: --duration ends it, the
	 * consumers still get every acknowledged record. */
	ck_assert_int_eq(bench("--create --topic paced --messages 100000 --rate 200 "
			       "--duration 1 --producers 2 --consumers 1 --linger-ms 0 -q"), 0);
	HAS("(stopped by --duration)");
	ck_assert_int_ge(kv("produced"), 150);
	ck_assert_int_le(kv("produced"), 202);
	ck_assert_int_eq(kv("consumed"), kv("produced"));
	ck_assert_int_eq(kv("missing"), 0);
}
END_TEST

START_TEST(usage_and_unreachable)
{
	char cmd[512];

	ck_assert_int_eq(bench("--help"), 0);
	HAS("usage: broker-bench");
	HAS("--messages N");
	ck_assert_int_eq(bench("--bogus"), 2);
	ck_assert_int_eq(bench("--acks maybe"), 2);
	HAS("--acks must be all, leader or none");
	ck_assert_int_eq(bench("--size 8"), 2);
	ck_assert_int_eq(bench("--producers 0 --consumers 0"), 2);
	ck_assert_int_eq(bench("--from yesterday --consumers 1"), 2);
	ck_assert_int_eq(bench("extra"), 2);
	/* no topic, no --create: refused before anything runs */
	ck_assert_int_eq(bench("--topic absent --messages 10"), 3);
	HAS("use --create");
	tb_kill9(&b);
	ck_assert_int_eq(bench("--messages 10"), 3);
	HAS("cannot reach the broker");
	snprintf(cmd, sizeof(cmd), "%s --broker nonsense >/dev/null 2>&1", BROKER_BENCH_PATH);
	ck_assert_int_eq(WEXITSTATUS(system(cmd)), 3);
}
END_TEST

Suite *broker_bench_suite(void)
{
	Suite *s = suite_create("broker_bench");
	TCase *tc = tcase_create("runs");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, produce_and_consume);
	tcase_add_test(tc, rate_and_duration);
	tcase_add_test(tc, usage_and_unreachable);
	suite_add_tcase(s, tc);
	return s;
}
