/* check_client — libbrokerc's connection layer against a real brokerd. */
#include <brokerd/client.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/integration/harness.h"

Suite *client_suite(void); /* called by the runner */

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

START_TEST(call_and_broker_errors)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ApiVersionsRequest av = BROKERD__API_VERSIONS_REQUEST__INIT;
	Brokerd__DescribeTopicRequest dt = BROKERD__DESCRIBE_TOPIC_REQUEST__INIT;
	Brokerd__Response *resp = NULL;
	struct bk_conn *c = NULL;
	char addr[64];

	snprintf(addr, sizeof(addr), "localhost:%d", b.port);
	ck_assert_int_eq(bk_conn_open(addr, 5000, &c), 0);
	req.op_case = BROKERD__REQUEST__OP_API_VERSIONS;
	req.api_versions = &av;
	ck_assert_int_eq(bk_conn_call(c, &req, &resp), 0);
	ck_assert_int_eq(resp->error, 0);
	ck_assert_str_eq(resp->api_versions->broker_version, BK_VERSION);
	bk_response_free(resp);
	/* a broker-side failure is a successful call with an error code */
	dt.topic = (char *)"missing";
	req.op_case = BROKERD__REQUEST__OP_DESCRIBE_TOPIC;
	req.describe_topic = &dt;
	ck_assert_int_eq(bk_conn_call(c, &req, &resp), 0);
	ck_assert_str_eq(bk_error_name(resp->error), "UNKNOWN_TOPIC");
	ck_assert_ptr_nonnull(strstr(resp->error_message, "'missing'"));
	bk_response_free(resp);
	/* the broker goes away: a transport error, not a hang */
	tb_kill9(&b);
	ck_assert_int_lt(bk_conn_call(c, &req, &resp), 0);
	bk_conn_close(c);
}
END_TEST

START_TEST(bad_addresses)
{
	struct bk_conn *c = NULL;

	ck_assert_int_eq(bk_conn_open("no-port", 1000, &c), -EINVAL);
	ck_assert_int_eq(bk_conn_open("[::1", 1000, &c), -EINVAL);
	ck_assert_int_eq(bk_conn_open("127.0.0.1:", 1000, &c), -EINVAL);
	ck_assert_int_eq(bk_conn_open("127.0.0.1:1", 1000, &c), -ECONNREFUSED);
	ck_assert_ptr_nonnull(strstr(bk_strerror(-ECONNREFUSED), "brokerd"));
}
END_TEST

Suite *client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("conn");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, call_and_broker_errors);
	tcase_add_test(tc, bad_addresses);
	suite_add_tcase(s, tc);
	return s;
}
