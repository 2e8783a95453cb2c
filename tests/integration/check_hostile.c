/* check_hostile — bad frames and bad requests: each gets its error (or a
 * close) and the broker keeps serving every other client. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

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

/* The broker still answers a fresh client. */
static void assert_serving(void)
{
	int fd = tc_connect(b.port);
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListTopicsRequest q = BROKERD__LIST_TOPICS_REQUEST__INIT;
	Brokerd__Response *r;

	req.op_case = BROKERD__REQUEST__OP_LIST_TOPICS;
	req.list_topics = &q;
	r = tc_call(fd, &req);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__OK);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}

/* Send raw bytes; expect an error response with `code`, then a close. */
static void expect_error_then_close(const void *buf, size_t len, Brokerd__ErrorCode code)
{
	int fd = tc_connect(b.port);
	Brokerd__Response *r;

	ck_assert_int_eq(tc_send_raw(fd, buf, len), 0);
	r = tc_recv(fd);
	ck_assert_msg(r != NULL, "no error response");
	ck_assert_int_eq(r->error, code);
	ck_assert_str_ne(r->error_message, "");
	brokerd__response__free_unpacked(r, NULL);
	ck_assert(tc_closed(fd));
	close(fd);
}

START_TEST(length_4gib)
{
	static const uint8_t f[] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__FRAME_TOO_LARGE);
	assert_serving();
}
END_TEST

START_TEST(length_max_plus_one)
{
	uint32_t n = 16u * 1024 * 1024 + 1; /* max.request.bytes default + 1 */
	uint8_t f[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__FRAME_TOO_LARGE);
	assert_serving();
}
END_TEST

START_TEST(garbage_bytes)
{
	uint8_t f[4 + 64];

	f[0] = f[1] = f[2] = 0;
	f[3] = 64;
	for (int i = 0; i < 64; i++)
		f[4 + i] = (uint8_t)(0xff - i * 7);
	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__INVALID_REQUEST);
	assert_serving();
}
END_TEST

START_TEST(truncated_varint)
{
	/* field 1 (varint) whose value never ends */
	static const uint8_t f[] = { 0, 0, 0, 3, 0x08, 0xff, 0xff };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__INVALID_REQUEST);
	assert_serving();
}
END_TEST

START_TEST(wrong_field_type)
{
	/* field 1 correlation_id (varint) sent as length-delimited */
	static const uint8_t f[] = { 0, 0, 0, 4, 0x0a, 0x02, 'h', 'i' };

	expect_error_then_close(f, sizeof(f), BROKERD__ERROR_CODE__INVALID_REQUEST);
	assert_serving();
}
END_TEST

START_TEST(truncated_frame_then_close)
{
	static const uint8_t f[] = { 0, 0, 0, 100, 0x08, 0x01 };
	int fd = tc_connect(b.port);

	ck_assert_int_eq(tc_send_raw(fd, f, sizeof(f)), 0);
	close(fd);
	assert_serving();
}
END_TEST

START_TEST(unknown_operation_keeps_connection)
{
	/* correlation_id 9, then field 99 (an operation from the future) */
	static const uint8_t f[] = { 0, 0, 0, 5, 0x08, 0x09, 0x9a, 0x06, 0x00 };
	int fd = tc_connect(b.port);
	Brokerd__Response *r;

	ck_assert_int_eq(tc_send_raw(fd, f, sizeof(f)), 0);
	r = tc_recv(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNKNOWN_OPERATION);
	ck_assert_uint_eq(r->correlation_id, 9);
	brokerd__response__free_unpacked(r, NULL);
	/* same connection still works */
	r = tc_create_topic(fd, "after", 1);
	ck_assert_int_eq(r->error, 0);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

START_TEST(unsupported_version)
{
	int fd = tc_connect(b.port);
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListTopicsRequest q = BROKERD__LIST_TOPICS_REQUEST__INIT;
	Brokerd__Response *r;

	req.version = 99;
	req.op_case = BROKERD__REQUEST__OP_LIST_TOPICS;
	req.list_topics = &q;
	r = tc_call(fd, &req);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNSUPPORTED_VERSION);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

START_TEST(bad_produce_requests)
{
	int fd = tc_connect(b.port);
	Brokerd__Response *r = tc_create_topic(fd, "t", 2);
	size_t len;
	uint8_t *batch = tc_batch("x", 0, 3, &len);

	brokerd__response__free_unpacked(r, NULL);
	r = tc_produce(fd, "nope", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNKNOWN_TOPIC);
	ck_assert_ptr_nonnull(strstr(r->error_message, "'nope'"));
	brokerd__response__free_unpacked(r, NULL);
	r = tc_produce(fd, "t", 2, BROKERD__ACKS__ACKS_ALL, batch, len);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__UNKNOWN_PARTITION);
	brokerd__response__free_unpacked(r, NULL);
	batch[len - 1] ^= 0x40; /* CRC mismatch */
	r = tc_produce(fd, "t", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__CORRUPT_RECORD_BATCH);
	brokerd__response__free_unpacked(r, NULL);
	r = tc_produce(fd, "t", 0, BROKERD__ACKS__ACKS_ALL, batch, 20); /* truncated */
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__INVALID_RECORD_BATCH);
	brokerd__response__free_unpacked(r, NULL);
	r = tc_produce(fd, "t", 0, (Brokerd__Acks)7, batch, len);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__INVALID_REQUEST);
	brokerd__response__free_unpacked(r, NULL);
	free(batch);
	/* nothing became visible */
	r = tc_fetch(fd, "t", 0, 0, 1 << 20, 0, 0);
	ck_assert_int_eq(r->error, 0);
	ck_assert_int_eq(r->fetch->high_watermark, 0);
	ck_assert_uint_eq(r->fetch->records.len, 0);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

START_TEST(bad_topic_names)
{
	static const char *bad[] = { "", ".", "..", "../x", "a/b", "sp ace", "caf\xc3\xa9", "\xff" };
	int fd = tc_connect(b.port);
	char longname[301];
	Brokerd__Response *r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = tc_create_topic(fd, bad[i], 1);
		ck_assert_msg(r->error == BROKERD__ERROR_CODE__INVALID_TOPIC_NAME,
			      "name #%zu: error %d", i, r->error);
		brokerd__response__free_unpacked(r, NULL);
	}
	memset(longname, 'a', 300);
	longname[300] = '\0';
	r = tc_create_topic(fd, longname, 1);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__INVALID_TOPIC_NAME);
	brokerd__response__free_unpacked(r, NULL);
	ck_assert_int_eq(access("..", F_OK), 0);
	close(fd);
}
END_TEST

/* acks=none is never answered, not even when refused: the next answer on
 * the connection is the next request's. */
START_TEST(acks_none_refused_silently)
{
	int fd = tc_connect(b.port);
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ProduceRequest q = BROKERD__PRODUCE_REQUEST__INIT;
	Brokerd__ListTopicsRequest lt = BROKERD__LIST_TOPICS_REQUEST__INIT;
	Brokerd__Response *r;
	size_t len;
	uint8_t *batch = tc_batch("n", 0, 2, &len);

	q.topic = (char *)"missing";
	q.acks = BROKERD__ACKS__ACKS_NONE;
	q.records.data = batch;
	q.records.len = len;
	req.correlation_id = 50;
	req.op_case = BROKERD__REQUEST__OP_PRODUCE;
	req.produce = &q;
	ck_assert_int_eq(tc_send(fd, &req), 0);
	free(batch);
	brokerd__request__init(&req);
	req.correlation_id = 51;
	req.op_case = BROKERD__REQUEST__OP_LIST_TOPICS;
	req.list_topics = &lt;
	ck_assert_int_eq(tc_send(fd, &req), 0);
	r = tc_recv(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->correlation_id, 51);
	ck_assert_int_eq(r->error, 0);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

Suite *hostile_suite(void);
Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("frames");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, length_4gib);
	tcase_add_test(tc, length_max_plus_one);
	tcase_add_test(tc, garbage_bytes);
	tcase_add_test(tc, truncated_varint);
	tcase_add_test(tc, wrong_field_type);
	tcase_add_test(tc, truncated_frame_then_close);
	tcase_add_test(tc, unknown_operation_keeps_connection);
	tcase_add_test(tc, unsupported_version);
	tcase_add_test(tc, bad_produce_requests);
	tcase_add_test(tc, bad_topic_names);
	tcase_add_test(tc, acks_none_refused_silently);
	suite_add_tcase(s, tc);
	return s;
}
