/* harness — start a real brokerd and talk to it (see harness.h). */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/batch.h"
#include "tests/unit/testutil.h"

#ifndef BROKERD_PATH
#define BROKERD_PATH "build/san/brokerd"
#endif

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tb_set(struct tb *b, const char *kv)
{
	ck_assert_int_lt(b->nextra, 8);
	snprintf(b->extra[b->nextra++], sizeof(b->extra[0]), "%s", kv);
}

/* The port from the "ready: listening on ... (port N)" line, or 0. */
static int ready_port(const char *log, off_t from)
{
	FILE *f = fopen(log, "r");
	char line[1024];
	int port = 0;

	if (f == NULL)
		return 0;
	fseeko(f, from, SEEK_SET);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = strstr(line, "ready: listening on ");
		if (p != NULL && (p = strstr(p, "(port ")) != NULL)
			port = atoi(p + 6);
	}
	fclose(f);
	return port;
}

void tb_start(struct tb *b)
{
	const char *bin = getenv("BROKERD") ? getenv("BROKERD") : BROKERD_PATH;
	char dirarg[4200];
	char *argv[32];
	int argc = 0, fd;
	off_t from;
	int64_t deadline;

	if (b->dir == NULL) {
		b->dir = tu_mkdtemp();
		ck_assert_ptr_nonnull(b->dir);
		ck_assert_int_ge(asprintf(&b->log, "%s.log", b->dir), 0);
	}
	fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	from = lseek(fd, 0, SEEK_END);
	snprintf(dirarg, sizeof(dirarg), "%s/data", b->dir);
	argv[argc++] = (char *)bin;
	argv[argc++] = (char *)"--listen";
	argv[argc++] = (char *)"127.0.0.1:0";
	argv[argc++] = (char *)"--data-dir";
	argv[argc++] = dirarg;
	argv[argc++] = (char *)"-o";
	argv[argc++] = (char *)"admin.listen=off";
	for (int i = 0; i < b->nextra; i++) {
		argv[argc++] = (char *)"-o";
		argv[argc++] = b->extra[i];
	}
	argv[argc] = NULL;
	b->pid = fork();
	ck_assert_int_ge(b->pid, 0);
	if (b->pid == 0) {
		dup2(fd, 2);
		dup2(fd, 1);
		execv(bin, argv);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	close(fd);
	deadline = now_ms() + 20000;
	b->port = 0;
	while (now_ms() < deadline) {
		int st;
		b->port = ready_port(b->log, from);
		if (b->port > 0)
			return;
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			b->pid = 0;
			ck_abort_msg("brokerd exited during start-up (status %d); see %s", st, b->log);
		}
		usleep(10000);
	}
	ck_abort_msg("brokerd not ready within 20 s; see %s", b->log);
}

static int wait_exit(struct tb *b)
{
	int st = 0;
	int64_t deadline = now_ms() + 30000;

	while (now_ms() < deadline) {
		pid_t p = waitpid(b->pid, &st, WNOHANG);
		if (p == b->pid) {
			b->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		usleep(5000);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &st, 0);
	b->pid = 0;
	ck_abort_msg("brokerd did not exit within 30 s of SIGTERM");
	return -1;
}

int tb_stop(struct tb *b)
{
	if (b->pid <= 0)
		return 0;
	kill(b->pid, SIGTERM);
	return wait_exit(b);
}

void tb_kill9(struct tb *b)
{
	int st;

	if (b->pid <= 0)
		return;
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &st, 0);
	b->pid = 0;
}

void tb_cleanup(struct tb *b)
{
	tb_kill9(b);
	if (b->dir != NULL) {
		tu_rmtree(b->dir);
		unlink(b->log);
	}
	free(b->dir);
	free(b->log);
	b->dir = b->log = NULL;
}

int tb_log_contains(const struct tb *b, const char *needle)
{
	FILE *f = fopen(b->log, "r");
	char line[2048];
	int found = 0;

	if (f == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* --- client ------------------------------------------------------------------- */

int tc_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
		      strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int tc_send_raw(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tc_send(int fd, Brokerd__Request *req)
{
	size_t n = brokerd__request__get_packed_size(req);
	uint8_t *buf = malloc(n + 4);
	int rc;

	ck_assert_ptr_nonnull(buf);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	brokerd__request__pack(req, buf + 4);
	rc = tc_send_raw(fd, buf, n + 4);
	free(buf);
	return rc;
}

static int recv_all(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

uint8_t *tc_recv_raw(int fd, size_t *len)
{
	uint8_t pfx[4], *buf;
	uint32_t n;

	if (recv_all(fd, pfx, 4) < 0)
		return NULL;
	n = (uint32_t)pfx[0] << 24 | (uint32_t)pfx[1] << 16 | (uint32_t)pfx[2] << 8 | pfx[3];
	if (n > (256u << 20))
		return NULL;
	buf = malloc(n ? n : 1);
	if (buf == NULL || recv_all(fd, buf, n) < 0) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

Brokerd__Response *tc_recv(int fd)
{
	size_t len;
	uint8_t *buf = tc_recv_raw(fd, &len);
	Brokerd__Response *resp;

	if (buf == NULL)
		return NULL;
	resp = brokerd__response__unpack(NULL, len, buf);
	free(buf);
	return resp;
}

int tc_closed(int fd)
{
	char buf[4096];
	int64_t deadline = now_ms() + 5000;

	while (now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
	}
	return 0;
}

Brokerd__Response *tc_call(int fd, Brokerd__Request *req)
{
	static uint64_t corr = 1000;
	Brokerd__Response *resp;

	if (req->correlation_id == 0)
		req->correlation_id = ++corr;
	ck_assert_int_eq(tc_send(fd, req), 0);
	resp = tc_recv(fd);
	ck_assert_msg(resp != NULL, "no response to request %llu",
		      (unsigned long long)req->correlation_id);
	ck_assert_uint_eq(resp->correlation_id, req->correlation_id);
	return resp;
}

Brokerd__Response *tc_create_topic(int fd, const char *topic, uint32_t partitions)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CreateTopicRequest q = BROKERD__CREATE_TOPIC_REQUEST__INIT;

	q.topic = (char *)topic;
	q.partitions = partitions;
	req.op_case = BROKERD__REQUEST__OP_CREATE_TOPIC;
	req.create_topic = &q;
	return tc_call(fd, &req);
}

uint8_t *tc_batch(const char *prefix, int first, int n, size_t *len)
{
	struct batch_builder bb;
	uint8_t *out = NULL;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	batch_builder_init(&bb);
	for (int i = 0; i < n; i++) {
		char v[256];
		int vl = snprintf(v, sizeof(v), "%s-%d", prefix, first + i);
		ck_assert_int_eq(batch_builder_add(&bb, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
						   NULL, -1, v, vl, NULL, 0), 0);
	}
	ck_assert_int_eq(batch_builder_finish(&bb, 0, &out, len), 0);
	return out;
}

Brokerd__Response *tc_produce(int fd, const char *topic, uint32_t partition, Brokerd__Acks acks,
			      const uint8_t *batch, size_t len)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ProduceRequest q = BROKERD__PRODUCE_REQUEST__INIT;

	q.topic = (char *)topic;
	q.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
	q.partition = partition;
	q.acks = acks;
	q.records.data = (uint8_t *)batch;
	q.records.len = len;
	req.op_case = BROKERD__REQUEST__OP_PRODUCE;
	req.produce = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_fetch(int fd, const char *topic, uint32_t partition, int64_t offset,
			    uint32_t max_bytes, uint32_t max_wait_ms, uint32_t min_bytes)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__FetchRequest q = BROKERD__FETCH_REQUEST__INIT;

	q.topic = (char *)topic;
	q.partition = partition;
	q.offset = offset;
	q.max_bytes = max_bytes;
	q.max_wait_ms = max_wait_ms;
	q.min_bytes = min_bytes;
	req.op_case = BROKERD__REQUEST__OP_FETCH;
	req.fetch = &q;
	return tc_call(fd, &req);
}

int tc_values(const Brokerd__FetchResponse *f, int64_t from, char ***values, int64_t *last)
{
	const uint8_t *p = f->records.data;
	size_t left = f->records.len;
	char **v = NULL;
	int n = 0;

	*last = -1;
	while (left > 0) {
		struct batch_header h;
		struct batch_iter it;
		struct batch_record rec;

		ck_assert_int_eq(batch_header_decode(p, left, &h), 0);
		ck_assert_uint_le(batch_size(&h), left);
		ck_assert_int_eq(batch_iter_init(&it, p, batch_size(&h)), 0);
		while (batch_iter_next(&it, &rec) == 1) {
			if (rec.offset < from)
				continue;
			v = realloc(v, (size_t)(n + 1) * sizeof(*v));
			ck_assert_ptr_nonnull(v);
			v[n] = strndup((const char *)rec.value, (size_t)rec.value_len);
			n++;
			*last = rec.offset;
		}
		p += batch_size(&h);
		left -= batch_size(&h);
	}
	*values = v;
	return n;
}

void tc_free_values(char **values, int n)
{
	for (int i = 0; i < n; i++)
		free(values[i]);
	free(values);
}
