/* check_wire — brokerd end to end over its wire protocol: handshake,
 * topics, produce and fetch, long poll, offsets, restarts. */
#include <check.h>
#include <stdio.h>
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

START_TEST(api_versions_handshake)
{
	int fd = tc_connect(b.port);
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ApiVersionsRequest q = BROKERD__API_VERSIONS_REQUEST__INIT;
	Brokerd__Response *r;
	int found = 0;

	req.op_case = BROKERD__REQUEST__OP_API_VERSIONS;
	req.api_versions = &q;
	req.client_id = (char *)"check";
	r = tc_call(fd, &req);
	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__OK);
	ck_assert_int_eq(r->op_case, BROKERD__RESPONSE__OP_API_VERSIONS);
	for (size_t i = 0; i < r->api_versions->n_apis; i++)
		if (r->api_versions->apis[i]->key == BROKERD__REQUEST__OP_PRODUCE &&
		    strcmp(r->api_versions->apis[i]->name, "produce") == 0)
			found = 1;
	ck_assert(found);
	ck_assert_uint_gt(r->api_versions->max_request_bytes, 0);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

START_TEST(produce_fetch_round_trip)
{
	int fd = tc_connect(b.port);
	Brokerd__Response *r = tc_create_topic(fd, "orders", 4);
	size_t len;
	uint8_t *batch;
	char **v;
	int64_t last;
	int n;

	ck_assert_int_eq(r->error, BROKERD__ERROR_CODE__OK);
	ck_assert_uint_eq(r->create_topic->topic->partition_count, 4);
	brokerd__response__free_unpacked(r, NULL);
	for (uint32_t p = 0; p < 4; p++) {
		for (int k = 0; k < 3; k++) {
			batch = tc_batch("v", k * 10, 10, &len);
			r = tc_produce(fd, "orders", p, BROKERD__ACKS__ACKS_ALL, batch, len);
			free(batch);
			ck_assert_msg(r->error == 0, "%s", r->error_message);
			ck_assert_int_eq(r->produce->base_offset, k * 10);
			ck_assert_uint_eq(r->produce->partition, p);
			brokerd__response__free_unpacked(r, NULL);
		}
	}
	for (uint32_t p = 0; p < 4; p++) {
		r = tc_fetch(fd, "orders", p, 5, 1 << 20, 0, 0);
		ck_assert_msg(r->error == 0, "%s", r->error_message);
		ck_assert_int_eq(r->fetch->high_watermark, 30);
		n = tc_values(r->fetch, 5, &v, &last);
		ck_assert_int_eq(n, 25);
		ck_assert_str_eq(v[0], "v-5");
		ck_assert_str_eq(v[24], "v-29");
		ck_assert_int_eq(last, 29);
		ck_assert_int_eq(r->fetch->next_offset, 30);
		tc_free_values(v, n);
		brokerd__response__free_unpacked(r, NULL);
	}
	close(fd);
}
END_TEST


/* A protobuf library that shares nothing with our C code decodes the
 * zero-copy fetch response to the same bytes. */
START_TEST(fetch_decodes_in_python)
{
	int fd = tc_connect(b.port);
	Brokerd__Response *r = tc_create_topic(fd, "py", 1);
	char cmd[512], line[65536], *hex;
	size_t len;
	uint8_t *batch;
	FILE *p;
	int err;
	long long hw, next;

	brokerd__response__free_unpacked(r, NULL);
	for (int k = 0; k < 3; k++) {
		batch = tc_batch("python", k * 5, 5, &len);
		r = tc_produce(fd, "py", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
		free(batch);
		ck_assert_int_eq(r->error, 0);
		brokerd__response__free_unpacked(r, NULL);
	}
	r = tc_fetch(fd, "py", 0, 0, 1 << 20, 0, 0);
	ck_assert_int_eq(r->error, 0);
	/* Debian's python3-protobuf belongs to the system interpreter. */
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/decode_fetch.py %s %d py 0 0", TESTS_INTEGRATION_DIR,
		 PROTO_DIR, b.port);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), p));
	ck_assert_int_eq(pclose(p), 0);
	hex = malloc(r->fetch->records.len * 2 + 1);
	for (size_t i = 0; i < r->fetch->records.len; i++)
		sprintf(hex + 2 * i, "%02x", r->fetch->records.data[i]);
	ck_assert_int_eq(sscanf(line, "%d %lld %lld", &err, &hw, &next), 3);
	ck_assert_int_eq(err, 0);
	ck_assert_int_eq(hw, 15);
	ck_assert_int_eq(next, 15);
	ck_assert_uint_gt(r->fetch->records.len, 0);
	ck_assert_ptr_nonnull(strstr(line, hex));
	free(hex);
	brokerd__response__free_unpacked(r, NULL);
	close(fd);
}
END_TEST

Suite *wire_suite(void);
Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("basic");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, api_versions_handshake);
	tcase_add_test(tc, produce_fetch_round_trip);
	tcase_add_test(tc, fetch_decodes_in_python);
	suite_add_tcase(s, tc);
	return s;
}
