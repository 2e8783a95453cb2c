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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* Start brokerd; see tb_start and tb_try_start. */
static int start(struct tb *b, int tolerate_exit)
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
		if (b->nofile > 0) {
			struct rlimit rl = { (rlim_t)b->nofile, (rlim_t)b->nofile };
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
				dprintf(fd, "setrlimit(RLIMIT_NOFILE, %ld): %s\n", b->nofile,
					strerror(errno));
				_exit(126);
			}
		}
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
			return 0;
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			b->pid = 0;
			if (tolerate_exit)
				return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
			ck_abort_msg("brokerd exited during start-up (status %d); see %s", st, b->log);
		}
		usleep(10000);
	}
	ck_abort_msg("brokerd not ready within 20 s; see %s", b->log);
	return -1;
}

void tb_start(struct tb *b)
{
	start(b, 0);
}

int tb_try_start(struct tb *b)
{
	return start(b, 1);
}

/* brokerd is built with ASan+UBSan in `make check`: LeakSanitizer reports
 * what is still allocated at exit, and any sanitizer report goes to the
 * log.  Fail the test on one (a leak only shows when brokerd exits by
 * itself, so tb_cleanup stops it with SIGTERM rather than SIGKILL). */
static void check_sanitizers(const struct tb *b)
{
	static const char *const reports[] = { "ERROR: LeakSanitizer", "ERROR: AddressSanitizer",
					       "runtime error:" };

	for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++)
		if (tb_log_contains(b, reports[i]))
			ck_abort_msg("brokerd: sanitizer report (%s) in %s", reports[i], b->log);
}

static int wait_exit(struct tb *b)
{
	int st = 0;
	int64_t deadline = now_ms() + 30000;

	while (now_ms() < deadline) {
		pid_t p = waitpid(b->pid, &st, WNOHANG);
		if (p == b->pid) {
			b->pid = 0;
			check_sanitizers(b);
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		usleep(5000);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &st, 0);
	b->pid = 0;
	ck_abort_msg("brokerd did not exit within 30 s");
	return -1;
}

int tb_wait_exit(struct tb *b)
{
	if (b->pid <= 0)
		return 0;
	return wait_exit(b);
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
	int64_t deadline = now_ms() + 15000;
	bool gone = false;
	int st;

	/* A graceful stop, so LeakSanitizer runs; SIGKILL if it hangs (a
	 * slow stop is not what this checks). */
	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		while (!gone && now_ms() < deadline) {
			gone = waitpid(b->pid, &st, WNOHANG) == b->pid;
			if (!gone)
				usleep(5000);
		}
		if (!gone)
			tb_kill9(b);
		b->pid = 0;
		if (b->log != NULL)
			check_sanitizers(b);
	}
	/* TB_KEEP=1 keeps the data directory and the log for a post-mortem. */
	if (b->dir != NULL && getenv("TB_KEEP") != NULL) {
		fprintf(stderr, "harness: kept %s and %s\n", b->dir, b->log);
	} else if (b->dir != NULL) {
		tu_rmtree(b->dir);
		unlink(b->log);
	}
	free(b->dir);
	free(b->log);
	b->dir = b->log = NULL;
}

long tb_status_kib(const struct tb *b, const char *name)
{
	char path[64], line[256];
	size_t n = strlen(name);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)b->pid);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	ck_assert_msg(v >= 0, "no %s in %s", name, path);
	return v;
}

void tb_reset_peak(const struct tb *b)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)b->pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "cannot open %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, "5", 1), 1);
	close(fd);
}

int64_t tb_cpu_ms(const struct tb *b)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)b->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "cannot open %s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	/* after "(comm) ": state is field 3; utime and stime are 14 and 15 */
	p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&ut, &st), 2);
	return (int64_t)((ut + st) * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK));
}

void tb_twin(const struct tb *b, struct tb *twin)
{
	memset(twin, 0, sizeof(*twin));
	ck_assert_ptr_nonnull(b->dir);
	twin->dir = strdup(b->dir);
	ck_assert_ptr_nonnull(twin->dir);
	ck_assert_int_ge(asprintf(&twin->log, "%s.twin.log", b->dir), 0);
	memcpy(twin->extra, b->extra, sizeof(twin->extra));
	twin->nextra = b->nextra;
}

void tb_twin_free(struct tb *twin)
{
	tb_kill9(twin);
	if (twin->log != NULL)
		unlink(twin->log);
	free(twin->dir);
	free(twin->log);
	twin->dir = twin->log = NULL;
}

int64_t tb_now_ms(void)
{
	return now_ms();
}

int64_t tb_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

void tc_set_timeout(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (suseconds_t)(ms % 1000) * 1000 };

	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

int tc_readable(int fd, int ms)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		int n;

		if (left < 0)
			left = 0;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 1;
		if (n == 0 || errno != EINTR)
			return 0;
	}
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
		char v[4096];
		int vl = snprintf(v, sizeof(v), "%s-%d", prefix, first + i);

		ck_assert_int_lt(vl, (int)sizeof(v));
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

const Brokerd__ConfigEntry *tc_config(Brokerd__ConfigEntry *const *configs, size_t n,
				      const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(configs[i]->name, key) == 0)
			return configs[i];
	return NULL;
}

void tc_free_values(char **values, int n)
{
	for (int i = 0; i < n; i++)
		free(values[i]);
	free(values);
}

/* --- more requests -------------------------------------------------------------- */

/* Split "key=value" strings into the map entries of a request (arrays owned
 * by the caller, strings malloc'd; see free_kv). */
static void split_kv(const char *const *kv, size_t n, Brokerd__CreateTopicRequest__ConfigsEntry *e,
		     Brokerd__CreateTopicRequest__ConfigsEntry **pe)
{
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '=');

		ck_assert_msg(eq != NULL, "config '%s' is not key=value", kv[i]);
		brokerd__create_topic_request__configs_entry__init(&e[i]);
		e[i].key = strndup(kv[i], (size_t)(eq - kv[i]));
		e[i].value = strdup(eq + 1);
		ck_assert(e[i].key != NULL && e[i].value != NULL);
		pe[i] = &e[i];
	}
}

static void free_kv(Brokerd__CreateTopicRequest__ConfigsEntry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].key);
		free(e[i].value);
	}
}

Brokerd__Response *tc_create_topic_cfg(int fd, const char *topic, uint32_t partitions,
				       const char *const *kv, size_t n)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CreateTopicRequest q = BROKERD__CREATE_TOPIC_REQUEST__INIT;
	Brokerd__CreateTopicRequest__ConfigsEntry e[32], *pe[32];
	Brokerd__Response *r;

	ck_assert_uint_le(n, 32);
	split_kv(kv, n, e, pe);
	q.topic = (char *)topic;
	q.partitions = partitions;
	q.configs = pe;
	q.n_configs = n;
	req.op_case = BROKERD__REQUEST__OP_CREATE_TOPIC;
	req.create_topic = &q;
	r = tc_call(fd, &req);
	free_kv(e, n);
	return r;
}

Brokerd__Response *tc_alter_topic(int fd, const char *topic, const char *const *set_kv,
				  size_t nset, const char *const *reset, size_t nreset)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__AlterTopicConfigRequest q = BROKERD__ALTER_TOPIC_CONFIG_REQUEST__INIT;
	/* Parsed into create-request entries, then copied to set entries. */
	Brokerd__CreateTopicRequest__ConfigsEntry e[32], *pe[32];
	Brokerd__AlterTopicConfigRequest__SetEntry se[32], *pse[32];
	Brokerd__Response *r;

	ck_assert_uint_le(nset, 32);
	split_kv(set_kv, nset, e, pe);
	for (size_t i = 0; i < nset; i++) {
		brokerd__alter_topic_config_request__set_entry__init(&se[i]);
		se[i].key = e[i].key;
		se[i].value = e[i].value;
		pse[i] = &se[i];
	}
	q.topic = (char *)topic;
	q.set = pse;
	q.n_set = nset;
	q.reset = (char **)reset;
	q.n_reset = nreset;
	req.op_case = BROKERD__REQUEST__OP_ALTER_TOPIC_CONFIG;
	req.alter_topic_config = &q;
	r = tc_call(fd, &req);
	free_kv(e, nset);
	return r;
}

Brokerd__Response *tc_delete_topic(int fd, const char *topic)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__DeleteTopicRequest q = BROKERD__DELETE_TOPIC_REQUEST__INIT;

	q.topic = (char *)topic;
	req.op_case = BROKERD__REQUEST__OP_DELETE_TOPIC;
	req.delete_topic = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_describe_topic(int fd, const char *topic)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__DescribeTopicRequest q = BROKERD__DESCRIBE_TOPIC_REQUEST__INIT;

	q.topic = (char *)topic;
	req.op_case = BROKERD__REQUEST__OP_DESCRIBE_TOPIC;
	req.describe_topic = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_list_topics(int fd)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListTopicsRequest q = BROKERD__LIST_TOPICS_REQUEST__INIT;

	req.op_case = BROKERD__REQUEST__OP_LIST_TOPICS;
	req.list_topics = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_api_versions(int fd)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ApiVersionsRequest q = BROKERD__API_VERSIONS_REQUEST__INIT;

	req.op_case = BROKERD__REQUEST__OP_API_VERSIONS;
	req.api_versions = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_broker_status(int fd)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__BrokerStatusRequest q = BROKERD__BROKER_STATUS_REQUEST__INIT;

	req.op_case = BROKERD__REQUEST__OP_BROKER_STATUS;
	req.broker_status = &q;
	return tc_call(fd, &req);
}

uint8_t *tc_batch_ts(const char *prefix, int first, int n, int64_t ts0, size_t *len)
{
	struct batch_builder bb;
	uint8_t *out = NULL;

	batch_builder_init(&bb);
	for (int i = 0; i < n; i++) {
		char v[4096];
		int vl = snprintf(v, sizeof(v), "%s-%d", prefix, first + i);

		ck_assert_int_lt(vl, (int)sizeof(v));
		ck_assert_int_eq(batch_builder_add(&bb, ts0 + i, NULL, -1, v, vl, NULL, 0), 0);
	}
	ck_assert_int_eq(batch_builder_finish(&bb, 0, &out, len), 0);
	return out;
}

Brokerd__Response *tc_produce_key(int fd, const char *topic, const void *key, size_t keylen,
				  Brokerd__Acks acks, const uint8_t *batch, size_t len)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ProduceRequest q = BROKERD__PRODUCE_REQUEST__INIT;

	q.topic = (char *)topic;
	if (key != NULL) {
		q.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION_KEY;
		q.partition_key.data = (uint8_t *)key;
		q.partition_key.len = keylen;
	}
	q.acks = acks;
	q.records.data = (uint8_t *)batch;
	q.records.len = len;
	req.op_case = BROKERD__REQUEST__OP_PRODUCE;
	req.produce = &q;
	return tc_call(fd, &req);
}

int tc_send_produce(int fd, uint64_t corr, const char *topic, uint32_t partition,
		    Brokerd__Acks acks, const uint8_t *batch, size_t len)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ProduceRequest q = BROKERD__PRODUCE_REQUEST__INIT;

	q.topic = (char *)topic;
	q.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
	q.partition = partition;
	q.acks = acks;
	q.records.data = (uint8_t *)batch;
	q.records.len = len;
	req.correlation_id = corr;
	req.op_case = BROKERD__REQUEST__OP_PRODUCE;
	req.produce = &q;
	return tc_send(fd, &req);
}

int tc_send_fetch(int fd, uint64_t corr, const char *topic, uint32_t partition, int64_t offset,
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
	req.correlation_id = corr;
	req.op_case = BROKERD__REQUEST__OP_FETCH;
	req.fetch = &q;
	return tc_send(fd, &req);
}

Brokerd__Response *tc_list_offsets(int fd, const char *topic, uint32_t partition,
				   int64_t timestamp)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListOffsetsRequest q = BROKERD__LIST_OFFSETS_REQUEST__INIT;

	q.topic = (char *)topic;
	q.partition = partition;
	q.timestamp = timestamp;
	req.op_case = BROKERD__REQUEST__OP_LIST_OFFSETS;
	req.list_offsets = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_commit(int fd, const char *group, Brokerd__OffsetCommit **offsets,
			     size_t n)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CommitOffsetsRequest q = BROKERD__COMMIT_OFFSETS_REQUEST__INIT;

	q.group = (char *)group;
	q.offsets = offsets;
	q.n_offsets = n;
	req.op_case = BROKERD__REQUEST__OP_COMMIT_OFFSETS;
	req.commit_offsets = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_fetch_offsets(int fd, const char *group, Brokerd__TopicPartition **tp,
				    size_t n)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__FetchOffsetsRequest q = BROKERD__FETCH_OFFSETS_REQUEST__INIT;

	q.group = (char *)group;
	q.partitions = tp;
	q.n_partitions = n;
	req.op_case = BROKERD__REQUEST__OP_FETCH_OFFSETS;
	req.fetch_offsets = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_list_groups(int fd)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListGroupsRequest q = BROKERD__LIST_GROUPS_REQUEST__INIT;

	req.op_case = BROKERD__REQUEST__OP_LIST_GROUPS;
	req.list_groups = &q;
	return tc_call(fd, &req);
}

Brokerd__Response *tc_delete_group(int fd, const char *group)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__DeleteGroupRequest q = BROKERD__DELETE_GROUP_REQUEST__INIT;

	q.group = (char *)group;
	req.op_case = BROKERD__REQUEST__OP_DELETE_GROUP;
	req.delete_group = &q;
	return tc_call(fd, &req);
}
