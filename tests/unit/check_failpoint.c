/* check_failpoint — the BROKERD_FAILPOINTS syntax and its firing window. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "broker/failpoint.h"

Suite *failpoint_suite(void); /* called by the runner (tests/unit/runner.c) */

static char err[200];

START_TEST(test_unarmed)
{
	ck_assert_int_eq(fp_arm(NULL, err, sizeof(err)), 0);
	ck_assert(!fp_armed);
	ck_assert_int_eq(fp_hit("log.fsync", NULL), FP_NONE);
	ck_assert_int_eq(fp_arm("", err, sizeof(err)), 0);
	ck_assert(!fp_armed);
}
END_TEST

START_TEST(test_error_every_hit)
{
	ck_assert_int_eq(fp_arm("log.write=error(ENOSPC)", err, sizeof(err)), 0);
	ck_assert(fp_armed);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(fp_error("log.write"), -ENOSPC);
	ck_assert_int_eq(fp_error("log.fsync"), 0);
	fp_disarm();
	ck_assert_int_eq(fp_error("log.write"), 0);
}
END_TEST

/* "@3*2": hits 3 and 4 fire, 1, 2 and 5 do not. */
START_TEST(test_window)
{
	int fired[6] = { 0 };

	ck_assert_int_eq(fp_arm("a=error(EIO)@3*2,b=skip", err, sizeof(err)), 0);
	for (int i = 1; i <= 5; i++)
		fired[i] = fp_error("a") == -EIO;
	ck_assert(!fired[1] && !fired[2] && fired[3] && fired[4] && !fired[5]);
	ck_assert_int_eq(fp_hit("b", NULL), FP_SKIP);
	ck_assert_int_eq(fp_hit("b", NULL), FP_SKIP);
	fp_disarm();
}
END_TEST

START_TEST(test_bad_specs)
{
	static const char *bad[] = {
		"x", "=crash", "x=", "x=boom", "x=error(EWHAT)", "x=error(EIO",
		"x=crash@0", "x=crash@", "x=skip*0", "x=skip junk", "x=crash@2*",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(fp_arm(bad[i], err, sizeof(err)) == -EINVAL, "accepted '%s'", bad[i]);
		ck_assert(!fp_armed);
		ck_assert_ptr_nonnull(strstr(err, "bad entry"));
	}
}
END_TEST

/* A crash action kills the process (Check's fork mode sees the signal). */
START_TEST(test_crash)
{
	ck_assert_int_eq(fp_arm("seg.roll=crash@2", err, sizeof(err)), 0);
	ck_assert_int_eq(fp_hit("seg.roll", NULL), FP_NONE);
	fp_hit("seg.roll", NULL);
	ck_abort_msg("not reached");
}
END_TEST

/* A powerloss action runs the registered hooks first (this one exits 3,
 * which only a hook run before the SIGKILL can make the test see). */
static void exit3(void *arg)
{
	(void)arg;
	_exit(3);
}

START_TEST(test_powerloss_runs_hooks)
{
	ck_assert_int_eq(fp_on_powerloss(exit3, NULL), 0);
	ck_assert_int_eq(fp_on_powerloss(exit3, NULL), 0); /* same pair: once */
	ck_assert_int_eq(fp_arm("log.write=powerloss@2", err, sizeof(err)), 0);
	ck_assert_int_eq(fp_hit("log.write", NULL), FP_NONE);
	fp_hit("log.write", NULL);
	ck_abort_msg("not reached");
}
END_TEST

/* Without hooks (or once they are removed) powerloss is a crash. */
START_TEST(test_powerloss_kills)
{
	ck_assert_int_eq(fp_on_powerloss(exit3, NULL), 0);
	fp_off_powerloss(exit3, NULL);
	ck_assert_int_eq(fp_arm("log.write=powerloss", err, sizeof(err)), 0);
	fp_hit("log.write", NULL);
	ck_abort_msg("not reached");
}
END_TEST

Suite *failpoint_suite(void)
{
	Suite *s = suite_create("failpoint");
	TCase *tc = tcase_create("arm");

	tcase_add_test(tc, test_unarmed);
	tcase_add_test(tc, test_error_every_hit);
	tcase_add_test(tc, test_window);
	tcase_add_test(tc, test_bad_specs);
	tcase_add_test_raise_signal(tc, test_crash, SIGKILL);
	tcase_add_exit_test(tc, test_powerloss_runs_hooks, 3);
	tcase_add_test_raise_signal(tc, test_powerloss_kills, SIGKILL);
	suite_add_tcase(s, tc);
	return s;
}
