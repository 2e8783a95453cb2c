/* check_ioerr — a real brokerd whose io_uring completion path fails one data
 * write or one fdatasync with EIO (BROKERD_FAILPOINTS "log.write=..." /
 * "log.fsync=..."): the produce it carried is never acknowledged, the
 * partition goes read-only with an error naming it and the cause on every
 * later produce, /healthz reports it, what was durable before stays
 * readable, other partitions keep working, no later fsync acknowledges
 * the data written before the failure (fsyncgate), and a restart brings
 * the partition back. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"

Suite *ioerr_suite(void);

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

/* The admin port brokerd logged at start-up (the last start). */
static int admin_port(void)
{
	FILE *f = fopen(b.log, "r");
	char line[1024];
	int port = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "admin: serving /healthz");
		if (p != NULL && (p = strstr(p, "(port ")) != NULL)
			port = atoi(p + 6);
	}
	fclose(f);
	ck_assert_int_gt(port, 0);
	return port;
}

/* GET /healthz: returns the HTTP status, the body into body. */
static int healthz(char *body, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)admin_port()) };
	const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
	char buf[4096];
	size_t n = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	tc_set_timeout(fd, 5000);
	ck_assert_int_eq(tc_send_raw(fd, req, sizeof(req) - 1), 0);
	for (int i = 0; i < 100 && n < sizeof(buf) - 1; i++) {
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = '\0';
	ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", &status), 1);
	const char *sep = strstr(buf, "\r\n\r\n");
	snprintf(body, cap, "%s", sep != NULL ? sep + 4 : "");
	return status;
}

static Brokerd__Response *produce(int fd, uint32_t part, int first, int n)
{
	size_t len;
	uint8_t *batch = tc_batch("v", first, n, &len);
	Brokerd__Response *r = tc_produce(fd, "t", part, BROKERD__ACKS__ACKS_ALL, batch, len);

	free(batch);
	return r;
}

/* Partition part holds "v-0" .. "v-<n-1>" at offsets 0..n-1 (at least);
 * returns its high watermark. */
static int64_t expect_prefix(int fd, uint32_t part, int n)
{
	Brokerd__Response *r = tc_fetch(fd, "t", part, 0, 1 << 20, 0, 0);
	char **v, want[32];
	int64_t last, hw;
	int k;

	TC_OK(r);
	hw = r->fetch->high_watermark;
	k = tc_values(r->fetch, 0, &v, &last);
	ck_assert_int_ge(k, n);
	ck_assert_int_eq(k, hw);
	for (int i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "v-%d", i);
		ck_assert_str_eq(v[i], want);
	}
	tc_free_values(v, k);
	tc_free(r);
	return hw;
}

static const char *const points[] = { "log.fsync", "log.write" };

START_TEST(test_io_error_read_only)
{
	char spec[128], body[1024];
	Brokerd__Response *r;
	int fd;

	/* The 4th data write/fsync fails, once (the 3 produces before use
	 * one each). */
	snprintf(spec, sizeof(spec), "%s=error(EIO)@4*1", points[_i]);
	setenv("BROKERD_FAILPOINTS", spec, 1);
	tb_set(&b, "admin.listen=127.0.0.1:0");
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic(fd, "t", 2);
	TC_OK(r);
	tc_free(r);
	ck_assert_int_eq(healthz(body, sizeof(body)), 200);
	for (int i = 0; i < 3; i++) {
		r = produce(fd, 0, 3 * i, 3);
		TC_OK(r);
		ck_assert_int_eq(r->produce->base_offset, 3 * i);
		tc_free(r);
	}
	/* The failing one: an error, never an acknowledgement. */
	r = produce(fd, 0, 9, 3);
	TC_ERR(r, BROKERD__ERROR_CODE__STORAGE_ERROR);
	ck_assert_msg(strstr(r->error_message, "'t' partition 0") != NULL &&
		      strstr(r->error_message, "Input/output error") != NULL,
		      "unclear error: %s", r->error_message);
	tc_free(r);
	/* Read-only from now on, saying why, on every produce. */
	for (int i = 0; i < 2; i++) {
		r = produce(fd, 0, 9, 3);
		TC_ERR(r, BROKERD__ERROR_CODE__STORAGE_ERROR);
		ck_assert_msg(strstr(r->error_message, "'t' partition 0") != NULL &&
			      strstr(r->error_message, "read-only") != NULL &&
			      strstr(r->error_message, "Input/output error") != NULL,
			      "unclear error: %s", r->error_message);
		tc_free(r);
	}
	ck_assert_int_eq(healthz(body, sizeof(body)), 503);
	ck_assert_msg(strstr(body, "partition t-0 is read-only") != NULL &&
		      strstr(body, "Input/output error") != NULL, "healthz body: %s", body);
	/* The other partition works, and its fsyncs succeed ... */
	for (int i = 0; i < 3; i++) {
		r = produce(fd, 1, 3 * i, 3);
		TC_OK(r);
		ck_assert_int_eq(r->produce->base_offset, 3 * i);
		tc_free(r);
	}
	expect_prefix(fd, 1, 9);
	/* ... yet nothing after the failure ever becomes visible in t-0:
	 * no later fsync acknowledges what was written before it. */
	usleep(300 * 1000);
	ck_assert_int_eq(expect_prefix(fd, 0, 9), 9);
	close(fd);

	/* A restart (failpoint off) brings the partition back. */
	unsetenv("BROKERD_FAILPOINTS");
	tb_stop(&b);
	tb_start(&b);
	fd = tc_connect(b.port);
	ck_assert_int_eq(healthz(body, sizeof(body)), 200);
	/* The refused batch may have reached the file (it was written): whole
	 * or not at all, never in part. */
	int64_t hw = expect_prefix(fd, 0, 9);
	ck_assert_msg(hw == 9 || hw == 12, "high watermark %" PRId64, hw);
	r = produce(fd, 0, (int)hw, 3);
	TC_OK(r);
	ck_assert_int_eq(r->produce->base_offset, hw);
	tc_free(r);
	expect_prefix(fd, 0, (int)hw + 3);
	expect_prefix(fd, 1, 9);
	close(fd);
}
END_TEST

Suite *ioerr_suite(void)
{
	Suite *s = suite_create("ioerr");
	TCase *tc = tcase_create("eio");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_io_error_read_only, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}
