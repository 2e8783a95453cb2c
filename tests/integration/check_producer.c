/* check_producer — libbrokerc's batching producer against a real brokerd:
 * delivery, partitioning, batching, errors, limits, close, and surviving a
 * broker restart without losing or reordering an acknowledged record.
 * Every wait is bounded. */
#include <arpa/inet.h>
#include <brokerd/client.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/batch.h"
#include "proto/partition.h"
#include "tests/integration/harness.h"

Suite *producer_suite(void); /* called by the runner */

static struct tb b;

static void setup(void)
{
	memset(&b, 0, sizeof(b));
}

static void teardown(void)
{
	tb_cleanup(&b);
}

/* --- helpers ------------------------------------------------------------------ */

/* One record's delivery, as its callback saw it. */
struct dl {
	atomic_int calls;
	int err;
	int32_t partition;
	int64_t offset;
};

static atomic_int delivered;

static void on_delivery(void *opaque, int err, const char *topic, int32_t partition,
			int64_t offset)
{
	struct dl *d = opaque;

	ck_assert_ptr_nonnull(topic);
	d->err = err;
	d->partition = partition;
	d->offset = offset;
	atomic_fetch_add(&d->calls, 1);
	atomic_fetch_add(&delivered, 1);
}

/* Wait (bounded) until `delivered` reaches n. */
static void wait_delivered(int n, int ms)
{
	int64_t deadline = tb_now_ms() + ms;

	while (atomic_load(&delivered) < n && tb_now_ms() < deadline)
		usleep(1000);
	ck_assert_int_eq(atomic_load(&delivered), n);
}

/* Log lines, kept for assertions. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];

static void on_log(void *opaque, int level, const char *msg)
{
	size_t n;

	(void)opaque;
	(void)level;
	pthread_mutex_lock(&log_lock);
	n = strlen(log_text);
	if (n + strlen(msg) + 2 < sizeof(log_text)) {
		strcat(log_text, msg);
		strcat(log_text, "\n");
	}
	pthread_mutex_unlock(&log_lock);
}

static int logged(const char *needle)
{
	int found;

	pthread_mutex_lock(&log_lock);
	found = strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_lock);
	return found;
}

static void conf_for(struct bk_producer_conf *c, char *addr, size_t len, int port)
{
	snprintf(addr, len, "127.0.0.1:%d", port);
	bk_producer_conf_init(c);
	c->bootstrap = addr;
	c->log_cb = on_log;
}

/* A loopback port nobody listens on (bound, then released). */
static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, port;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void create(int fd, const char *topic, uint32_t parts)
{
	Brokerd__Response *r = tc_create_topic(fd, topic, parts);

	TC_OK(r);
	tc_free(r);
}

static struct bk_record rec_kv(const char *topic, const char *key, const char *value)
{
	struct bk_record r = { .topic = topic, .partition = -1, .key = key,
			       .key_len = key != NULL ? (int32_t)strlen(key) : -1,
			       .value = value, .value_len = (int32_t)strlen(value) };
	return r;
}

/* Every record of one partition, from offset 0 to the high watermark:
 * values (malloc'd strings, *n of them; the offset is the index) and the
 * number of batches they came in. */
static char **read_partition(int fd, const char *topic, uint32_t part, int *n, int *batches)
{
	char **all = NULL;
	int64_t off = 0, hw = -1;

	*n = 0;
	*batches = 0;
	for (int rounds = 0; rounds < 100000 && off != hw; rounds++) {
		Brokerd__Response *r = tc_fetch(fd, topic, part, off, 1 << 20, 0, 0);
		const uint8_t *p;
		size_t left;
		char **v;
		int64_t last;
		int k;

		TC_OK(r);
		hw = r->fetch->high_watermark;
		for (p = r->fetch->records.data, left = r->fetch->records.len; left > 0;) {
			struct batch_header h;

			ck_assert_int_eq(batch_header_decode(p, left, &h), 0);
			if (h.base_offset >= off)
				(*batches)++;
			p += batch_size(&h);
			left -= batch_size(&h);
		}
		k = tc_values(r->fetch, off, &v, &last);
		all = realloc(all, (size_t)(*n + k + 1) * sizeof(*all));
		ck_assert_ptr_nonnull(all);
		for (int i = 0; i < k; i++)
			all[(*n)++] = v[i];
		free(v);
		if (k > 0)
			off = last + 1;
		tc_free(r);
		ck_assert_int_eq(off, *n);
	}
	ck_assert_int_eq(off, hw);
	return all;
}

static int value_index(const char *v)
{
	const char *dash = strrchr(v, '-');

	ck_assert_ptr_nonnull(dash);
	return atoi(dash + 1);
}

/* --- tests ---------------------------------------------------------------------- */

/* 10,000 records by key to 4 partitions: every callback succeeds once, each
 * key's partition is Kafka's, and per partition the offsets are dense and
 * in send order; the log holds exactly the values sent. */
START_TEST(async_by_key)
{
	enum { N = 10000, P = 4 };
	static struct dl d[N];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	int64_t next[P] = { 0 }, t0;
	char addr[64], key[32], val[32];
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "keys", P);
	conf_for(&conf, addr, sizeof(addr), b.port);
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	t0 = tb_now_ms();
	for (int i = 0; i < N; i++) {
		struct bk_record r;

		snprintf(key, sizeof(key), "key-%d", i % 257);
		snprintf(val, sizeof(val), "v-%d", i);
		r = rec_kv("keys", key, val);
		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	ck_assert_int_eq(bk_producer_flush(p, 20000), 0);
	fprintf(stderr, "producer: %d records in %lld ms\n", N, (long long)(tb_now_ms() - t0));
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "key-%d", i % 257);
		ck_assert_int_eq(atomic_load(&d[i].calls), 1);
		ck_assert_msg(d[i].err == 0, "record %d: %s", i, bk_strerror(d[i].err));
		ck_assert_int_eq(d[i].partition, part_for_key(key, strlen(key), P));
		ck_assert_int_eq(d[i].offset, next[d[i].partition]++);
	}
	for (uint32_t part = 0; part < P; part++) {
		int n, batches;
		char **v = read_partition(fd, "keys", part, &n, &batches);

		ck_assert_int_eq(n, next[part]);
		for (int i = 0; i < N; i++)
			if (d[i].partition == (int32_t)part)
				ck_assert_int_eq(value_index(v[d[i].offset]), i);
		tc_free_values(v, n);
	}
	bk_producer_close(p);
	close(fd);
}
END_TEST

struct thread_arg {
	struct bk_producer *p;
	int id, n;
	struct dl *d;
};

static void *send_thread(void *arg)
{
	struct thread_arg *a = arg;
	char key[16], val[32];

	snprintf(key, sizeof(key), "thread-%d", a->id);
	for (int i = 0; i < a->n; i++) {
		struct bk_record r;

		snprintf(val, sizeof(val), "t%d-%d", a->id, i);
		r = rec_kv("mt", key, val);
		if (bk_producer_send(a->p, &r, on_delivery, &a->d[i]) != 0)
			return (void *)1;
	}
	return NULL;
}

/* Four threads share one producer; each thread's records keep their order. */
START_TEST(threads)
{
	enum { T = 4, N = 2000 };
	static struct dl d[T][N];
	struct thread_arg a[T];
	pthread_t th[T];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64];
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "mt", 3);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.linger_ms = 1;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	for (int t = 0; t < T; t++) {
		a[t] = (struct thread_arg){ .p = p, .id = t, .n = N, .d = d[t] };
		ck_assert_int_eq(pthread_create(&th[t], NULL, send_thread, &a[t]), 0);
	}
	for (int t = 0; t < T; t++) {
		void *rv;

		pthread_join(th[t], &rv);
		ck_assert_ptr_null(rv);
	}
	ck_assert_int_eq(bk_producer_flush(p, 20000), 0);
	for (int t = 0; t < T; t++)
		for (int i = 0; i < N; i++) {
			ck_assert_int_eq(atomic_load(&d[t][i].calls), 1);
			ck_assert_int_eq(d[t][i].err, 0);
			ck_assert_int_eq(d[t][i].partition, d[t][0].partition);
			if (i > 0)
				ck_assert_int_gt(d[t][i].offset, d[t][i - 1].offset);
		}
	bk_producer_close(p);
	close(fd);
}
END_TEST

/* Records sent within linger_ms travel together: one batch, delivered no
 * sooner than the linger; flush does not wait for it. */
START_TEST(linger_batching)
{
	enum { N = 200 };
	static struct dl d[2 * N];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64], val[32], **v;
	int64_t t0, took;
	int fd, n, batches;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "linger", 1);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.linger_ms = 800;
	conf.batch_size = 1 << 20;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	t0 = tb_now_ms();
	for (int i = 0; i < N; i++) {
		struct bk_record r;

		snprintf(val, sizeof(val), "l-%d", i);
		r = rec_kv("linger", NULL, val);
		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	wait_delivered(N, 10000);
	took = tb_now_ms() - t0;
	ck_assert_msg(took >= 750, "delivered after %lld ms, before linger_ms", (long long)took);
	v = read_partition(fd, "linger", 0, &n, &batches);
	ck_assert_int_eq(n, N);
	ck_assert_int_eq(batches, 1);
	tc_free_values(v, n);
	/* flush sends at once, whatever linger_ms says */
	conf.linger_ms = 60000;
	bk_producer_close(p);
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	for (int i = N; i < 2 * N; i++) {
		struct bk_record r;

		snprintf(val, sizeof(val), "l-%d", i);
		r = rec_kv("linger", NULL, val);
		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	t0 = tb_now_ms();
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	ck_assert_int_lt(tb_now_ms() - t0, 5000);
	ck_assert_int_eq(atomic_load(&delivered), 2 * N);
	for (int i = 0; i < 2 * N; i++)
		ck_assert_int_eq(d[i].offset, i);
	v = read_partition(fd, "linger", 0, &n, &batches);
	ck_assert_int_eq(n, 2 * N);
	ck_assert_int_eq(batches, 2);
	tc_free_values(v, n);
	bk_producer_close(p);
	close(fd);
}
END_TEST

/* send_sync: explicit partitions, keys, round-robin, headers, timestamps. */
START_TEST(send_sync)
{
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	struct bk_header hdr[2] = { { "trace", "abc", 3 }, { "none", NULL, -1 } };
	struct bk_record r;
	char addr[64];
	int32_t part;
	int64_t off, t0;
	int fd, seen[3] = { 0 };

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "sync", 3);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.linger_ms = 5000; /* send_sync does not wait for it */
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	t0 = tb_now_ms();
	r = rec_kv("sync", NULL, "explicit");
	r.partition = 2;
	r.headers = hdr;
	r.nheaders = 2;
	r.timestamp_ms = 1234567;
	ck_assert_int_eq(bk_producer_send_sync(p, &r, &part, &off), 0);
	ck_assert_int_eq(part, 2);
	ck_assert_int_eq(off, 0);
	ck_assert_int_eq(bk_producer_send_sync(p, &r, &part, &off), 0);
	ck_assert_int_eq(off, 1);
	ck_assert_int_lt(tb_now_ms() - t0, 3000);
	r = rec_kv("sync", "user-42", "by key");
	ck_assert_int_eq(bk_producer_send_sync(p, &r, &part, NULL), 0);
	ck_assert_int_eq(part, part_for_key("user-42", 7, 3));
	/* keyless records spread over the partitions */
	for (int i = 0; i < 6; i++) {
		r = rec_kv("sync", NULL, "rr");
		ck_assert_int_eq(bk_producer_send_sync(p, &r, &part, NULL), 0);
		ck_assert(part >= 0 && part < 3);
		seen[part]++;
	}
	ck_assert(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
	/* an explicit partition the topic lacks */
	r = rec_kv("sync", NULL, "nowhere");
	r.partition = 7;
	ck_assert_int_eq(bk_producer_send_sync(p, &r, NULL, NULL),
			 BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_PARTITION));
	bk_producer_close(p);
	/* headers and timestamp as stored */
	{
		Brokerd__Response *f = tc_fetch(fd, "sync", 2, 0, 1 << 20, 0, 0);
		struct batch_iter it;
		struct batch_record br;
		struct batch_kv kv;
		struct batch_header h;

		TC_OK(f);
		ck_assert_int_eq(batch_header_decode(f->fetch->records.data, f->fetch->records.len,
						     &h), 0);
		ck_assert_int_eq(batch_iter_init(&it, f->fetch->records.data, batch_size(&h)), 0);
		ck_assert_int_eq(batch_iter_next(&it, &br), 1);
		ck_assert_int_eq(br.timestamp, 1234567);
		ck_assert_int_eq(br.key_len, -1);
		ck_assert_uint_eq(br.header_count, 2);
		ck_assert_int_eq(batch_record_header(&br, 0, &kv), 0);
		ck_assert_int_eq(kv.key_len, 5);
		ck_assert_int_eq(memcmp(kv.key, "trace", 5), 0);
		ck_assert_int_eq(kv.value_len, 3);
		ck_assert_int_eq(batch_record_header(&br, 1, &kv), 0);
		ck_assert_int_eq(kv.value_len, -1);
		tc_free(f);
	}
	close(fd);
}
END_TEST

/* A topic the broker does not have: UNKNOWN_TOPIC through the callback and
 * from send_sync; the producer stays usable. */
START_TEST(unknown_topic)
{
	static struct dl d[20];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	struct bk_record r;
	char addr[64];
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "known", 1);
	conf_for(&conf, addr, sizeof(addr), b.port);
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	for (int i = 0; i < 20; i++) {
		r = rec_kv(i % 2 ? "missing" : "known", i % 4 ? "k" : NULL, "x");
		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(atomic_load(&d[i].calls), 1);
		ck_assert_int_eq(d[i].err, i % 2 ? BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC) : 0);
	}
	r = rec_kv("missing", NULL, "y");
	ck_assert_int_eq(bk_producer_send_sync(p, &r, NULL, NULL),
			 BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC));
	ck_assert_ptr_nonnull(strstr(bk_strerror(BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC)),
				     "UNKNOWN_TOPIC"));
	/* created meanwhile: the next send finds it */
	create(fd, "missing", 2);
	r = rec_kv("missing", "k", "z");
	ck_assert_int_eq(bk_producer_send_sync(p, &r, NULL, NULL), 0);
	bk_producer_close(p);
	close(fd);
}
END_TEST

/* With auto.create.topics the first produce creates the topic. */
START_TEST(auto_create)
{
	static struct dl d[100];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	struct bk_record r;
	char addr[64];
	int32_t part;
	int64_t off;

	tb_set(&b, "auto.create.topics=true");
	tb_set(&b, "default.partitions=3");
	tb_start(&b);
	conf_for(&conf, addr, sizeof(addr), b.port);
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	for (int i = 0; i < 100; i++) {
		r = rec_kv("fresh", "same-key", "v");
		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	for (int i = 0; i < 100; i++) {
		ck_assert_msg(d[i].err == 0, "record %d: %s", i, bk_strerror(d[i].err));
		ck_assert_int_eq(d[i].partition, part_for_key("same-key", 8, 3));
		ck_assert_int_eq(d[i].offset, i);
	}
	r = rec_kv("fresh", "same-key", "v");
	ck_assert_int_eq(bk_producer_send_sync(p, &r, &part, &off), 0);
	ck_assert_int_eq(off, 100);
	bk_producer_close(p);
}
END_TEST

/* A record that cannot fit the broker's max.batch.bytes is refused at once. */
START_TEST(message_too_large)
{
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	struct bk_record r;
	char addr[64], *big = calloc(1, 9u << 20);
	int fd;

	ck_assert_ptr_nonnull(big);
	tb_set(&b, "max.batch.bytes=65536");
	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "big", 1);
	conf_for(&conf, addr, sizeof(addr), b.port);
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	/* before the producer learnt the limit: the 8 MiB default */
	r = (struct bk_record){ .topic = "big", .partition = -1, .key_len = -1,
				.value = big, .value_len = 9 << 20 };
	ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), -EMSGSIZE);
	r.value_len = 100;
	ck_assert_int_eq(bk_producer_send_sync(p, &r, NULL, NULL), 0);
	/* now the broker's 64 KiB */
	r.value_len = 70000;
	ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), -EMSGSIZE);
	r.value_len = 60000;
	ck_assert_int_eq(bk_producer_send_sync(p, &r, NULL, NULL), 0);
	/* several that fit alone are split into batches that fit */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), 0);
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	bk_producer_close(p);
	free(big);
	close(fd);
}
END_TEST

/* buffer_memory bounds what waits: with max_block_ms 0 -ENOBUFS at once, and the waiting records fail
 * once delivery_timeout_ms passes without a broker. */
START_TEST(buffer_full)
{
	static struct dl d[200];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64], val[1000];
	int accepted = 0, rc = 0;

	memset(val, 'x', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	conf_for(&conf, addr, sizeof(addr), free_port());
	conf.buffer_memory = 65536;
	conf.delivery_timeout_ms = 600;
	conf.max_block_ms = 0; /* fail at once */
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	for (int i = 0; i < 200; i++) {
		struct bk_record r = rec_kv("t", NULL, val);

		rc = bk_producer_send(p, &r, on_delivery, &d[i]);
		if (rc != 0)
			break;
		accepted++;
	}
	ck_assert_int_eq(rc, -ENOBUFS);
	ck_assert_msg(accepted >= 50 && accepted <= 66, "accepted %d", accepted);
	ck_assert_int_eq(bk_err_retriable(rc), 1);
	/* a record larger than the whole buffer can never fit */
	{
		char *huge = calloc(1, 70000);
		struct bk_record r = { .topic = "t", .partition = -1, .key_len = -1,
				       .value = huge, .value_len = 70000 };

		ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), -EMSGSIZE);
		free(huge);
	}
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	for (int i = 0; i < accepted; i++) {
		ck_assert_int_eq(atomic_load(&d[i].calls), 1);
		ck_assert_int_eq(d[i].err, -ETIMEDOUT);
		ck_assert_int_eq(d[i].offset, -1);
	}
	/* the space is back */
	{
		struct bk_record r = rec_kv("t", NULL, val);

		ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), 0);
	}
	bk_producer_close(p);
	ck_assert(logged("cannot connect to"));
}
END_TEST

/* Resume a SIGSTOPped broker after a delay (a thread: no Check calls). */
struct resume_arg {
	pid_t pid;
	int delay_ms;
};

static void *resume_later(void *arg)
{
	const struct resume_arg *a = arg;

	usleep((useconds_t)a->delay_ms * 1000);
	kill(a->pid, SIGCONT);
	return NULL;
}

/* A full buffer_memory makes send wait up to max_block_ms: against a
 * paused broker it returns -ENOBUFS after about that long; when the broker
 * resumes, the deliveries free room and a waiting send gets it (0, before
 * its max_block_ms). */
START_TEST(buffer_full_blocks)
{
	enum { MAXN = 200 };
	static struct dl d[MAXN + 2];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	struct resume_arg ra;
	pthread_t th;
	char addr[64], val[1000];
	int accepted = 0, rc = 0, fd;
	int64_t t0, took = 0;

	memset(val, 'x', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "bl", 1);
	close(fd);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.buffer_memory = 65536;
	conf.max_block_ms = 1000;
	conf.acks = BK_ACKS_LEADER;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	{
		struct bk_record r = rec_kv("bl", NULL, "first");

		ck_assert_int_eq(bk_producer_send_sync(p, &r, NULL, NULL), 0);
	}
	atomic_store(&delivered, 0);
	ck_assert_int_eq(kill(b.pid, SIGSTOP), 0);
	for (int i = 0; i < MAXN; i++) {
		struct bk_record r = rec_kv("bl", NULL, val);

		t0 = tb_now_ms();
		rc = bk_producer_send(p, &r, on_delivery, &d[i]);
		took = tb_now_ms() - t0;
		if (rc != 0)
			break;
		accepted++;
	}
	ck_assert_int_eq(rc, -ENOBUFS);
	ck_assert_msg(accepted >= 50 && accepted <= 66, "accepted %d", accepted);
	ck_assert_msg(took >= 900, "the full buffer failed after %lld ms, not ~1000",
		      (long long)took);
	/* the broker comes back while a send waits for room */
	ra = (struct resume_arg){ .pid = b.pid, .delay_ms = 300 };
	ck_assert_int_eq(pthread_create(&th, NULL, resume_later, &ra), 0);
	{
		struct bk_record r = rec_kv("bl", NULL, val);

		t0 = tb_now_ms();
		rc = bk_producer_send(p, &r, on_delivery, &d[accepted]);
		took = tb_now_ms() - t0;
	}
	pthread_join(th, NULL);
	ck_assert_msg(rc == 0, "send after the broker resumed: %s", bk_strerror(rc));
	ck_assert_msg(took >= 200, "send returned after %lld ms: it did not wait",
		      (long long)took);
	accepted++;
	ck_assert_int_eq(bk_producer_flush(p, 20000), 0);
	for (int i = 0; i < accepted; i++) {
		ck_assert_int_eq(atomic_load(&d[i].calls), 1);
		ck_assert_int_eq(d[i].err, 0);
		ck_assert_int_eq(d[i].offset, i + 1);
	}
	bk_producer_close(p);
}
END_TEST

/* conf.dr_cb reports every record sent without a callback of its own,
 * with the producer's conf.opaque and the record's msg_opaque; a record
 * with its own callback (or sent with send_sync) is reported there only. */
struct dr_seen {
	atomic_int calls;
	void *opaque;
	int err;
	int64_t offset;
};

static int dr_marker;
static atomic_int dr_calls;

static void on_dr(void *opaque, void *msg_opaque, int err, const char *topic,
		  int32_t partition, int64_t offset)
{
	struct dr_seen *d = msg_opaque;

	ck_assert_str_eq(topic, "dr");
	ck_assert_int_eq(partition, 0);
	d->opaque = opaque;
	d->err = err;
	d->offset = offset;
	atomic_fetch_add(&d->calls, 1);
	atomic_fetch_add(&dr_calls, 1);
}

START_TEST(delivery_report_opaques)
{
	enum { N = 50 };
	static struct dr_seen seen[N];
	static struct dl own;
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64], val[32];
	int64_t off = -1;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "dr", 1);
	close(fd);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.dr_cb = on_dr;
	conf.opaque = &dr_marker;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	atomic_store(&dr_calls, 0);
	for (int i = 0; i < N; i++) {
		struct bk_record r;

		snprintf(val, sizeof(val), "v-%d", i);
		r = rec_kv("dr", NULL, val);
		r.partition = 0;
		if (i == N / 2)
			ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &own), 0);
		else
			ck_assert_int_eq(bk_producer_send(p, &r, NULL, &seen[i]), 0);
	}
	{
		struct bk_record r = rec_kv("dr", NULL, "sync");

		r.partition = 0;
		ck_assert_int_eq(bk_producer_send_sync(p, &r, NULL, &off), 0);
		ck_assert_int_eq(off, N);
	}
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	ck_assert_int_eq(atomic_load(&dr_calls), N - 1);
	ck_assert_int_eq(atomic_load(&own.calls), 1);
	ck_assert_int_eq(own.err, 0);
	ck_assert_int_eq(own.offset, N / 2);
	for (int i = 0; i < N; i++) {
		if (i == N / 2) {
			ck_assert_int_eq(atomic_load(&seen[i].calls), 0);
			continue;
		}
		ck_assert_int_eq(atomic_load(&seen[i].calls), 1);
		ck_assert_ptr_eq(seen[i].opaque, &dr_marker);
		ck_assert_int_eq(seen[i].err, 0);
		ck_assert_int_eq(seen[i].offset, i);
	}
	bk_producer_close(p);
}
END_TEST

/* flush gives up after its timeout; close fails what is left with -ESHUTDOWN
 * or the delivery timeout, each callback once. */
START_TEST(flush_timeout)
{
	static struct dl d[10];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64];
	int64_t t0, took;

	conf_for(&conf, addr, sizeof(addr), free_port());
	conf.delivery_timeout_ms = 1500;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	for (int i = 0; i < 10; i++) {
		struct bk_record r = rec_kv("t", "k", "v");

		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	t0 = tb_now_ms();
	ck_assert_int_eq(bk_producer_flush(p, 200), -ETIMEDOUT);
	took = tb_now_ms() - t0;
	ck_assert_msg(took >= 150 && took < 1400, "flush took %lld ms", (long long)took);
	ck_assert_int_eq(atomic_load(&delivered), 0);
	t0 = tb_now_ms();
	bk_producer_close(p);
	took = tb_now_ms() - t0;
	ck_assert_msg(took < 3000, "close took %lld ms", (long long)took);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(atomic_load(&d[i].calls), 1);
		ck_assert(d[i].err == -ETIMEDOUT || d[i].err == -ESHUTDOWN);
	}
}
END_TEST

/* Keyless records fill a batch of one partition, then of the next: under
 * a steady stream every partition gets its share. */
START_TEST(keyless_spread)
{
	enum { N = 20000, P = 4 };
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64], val[100];
	int fd, count[P] = { 0 };

	memset(val, 'k', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "spread", P);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.batch_size = 16384;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	for (int i = 0; i < N; i++) {
		struct bk_record r = rec_kv("spread", NULL, val);

		ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), 0);
	}
	ck_assert_int_eq(bk_producer_flush(p, 20000), 0);
	bk_producer_close(p);
	for (uint32_t part = 0; part < P; part++) {
		Brokerd__Response *r = tc_list_offsets(fd, "spread", part, -1);

		TC_OK(r);
		count[part] = (int)r->list_offsets->offset;
		tc_free(r);
		ck_assert_msg(count[part] >= N / P / 3, "partition %u got %d of %d records", part,
			      count[part], N);
	}
	ck_assert_int_eq(count[0] + count[1] + count[2] + count[3], N);
	close(fd);
}
END_TEST

/* close delivers what is still lingering. */
START_TEST(close_delivers)
{
	enum { N = 1000 };
	static struct dl d[N];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64], val[32];
	int fd, total = 0;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "closing", 2);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.linger_ms = 60000;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	for (int i = 0; i < N; i++) {
		struct bk_record r;

		snprintf(val, sizeof(val), "c-%d", i);
		r = rec_kv("closing", NULL, val);
		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	bk_producer_close(p);
	ck_assert_int_eq(atomic_load(&delivered), N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(d[i].err, 0);
	for (uint32_t part = 0; part < 2; part++) {
		int n, batches;
		char **v = read_partition(fd, "closing", part, &n, &batches);

		total += n;
		tc_free_values(v, n);
	}
	ck_assert_int_eq(total, N);
	close(fd);
}
END_TEST

/* acks none: callbacks once written (offset -1); the records arrive. */
START_TEST(acks_none)
{
	enum { N = 2000 };
	static struct dl d[N];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64], val[32];
	int fd, n = 0, batches;
	int64_t deadline;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "none", 2);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.acks = BK_ACKS_NONE;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	for (int i = 0; i < N; i++) {
		struct bk_record r;

		snprintf(val, sizeof(val), "n-%d", i);
		r = rec_kv("none", val, val);
		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(d[i].err, 0);
		ck_assert_int_eq(d[i].offset, -1);
		ck_assert(d[i].partition == 0 || d[i].partition == 1);
	}
	/* the broker may still be appending */
	deadline = tb_now_ms() + 10000;
	do {
		n = 0;
		for (uint32_t part = 0; part < 2; part++) {
			int k;
			char **v = read_partition(fd, "none", part, &k, &batches);

			n += k;
			tc_free_values(v, k);
		}
	} while (n < N && tb_now_ms() < deadline && usleep(10000) == 0);
	ck_assert_int_eq(n, N);
	bk_producer_close(p);
	close(fd);
}
END_TEST

/* A callback may send (it runs without the producer's lock); flush or
 * send_sync from a callback would wait for itself and refuse. */
static struct bk_producer *chain_p;
static atomic_int chain_left, chain_deadlk;

static void chain_cb(void *opaque, int err, const char *topic, int32_t partition, int64_t offset)
{
	struct bk_record r = rec_kv("chain", NULL, "again");

	(void)opaque;
	(void)topic;
	(void)partition;
	(void)offset;
	ck_assert_int_eq(err, 0);
	if (bk_producer_flush(chain_p, 1000) == -EDEADLK &&
	    bk_producer_send_sync(chain_p, &r, NULL, NULL) == -EDEADLK)
		atomic_fetch_add(&chain_deadlk, 1);
	if (atomic_fetch_sub(&chain_left, 1) > 1)
		ck_assert_int_eq(bk_producer_send(chain_p, &r, chain_cb, NULL), 0);
}

START_TEST(callback_sends)
{
	struct bk_producer_conf conf;
	struct bk_record r = rec_kv("chain", NULL, "first");
	char addr[64];
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "chain", 1);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.linger_ms = 0;
	ck_assert_int_eq(bk_producer_new(&conf, &chain_p), 0);
	atomic_store(&chain_left, 50);
	ck_assert_int_eq(bk_producer_send(chain_p, &r, chain_cb, NULL), 0);
	for (int64_t deadline = tb_now_ms() + 10000;
	     atomic_load(&chain_left) > 0 && tb_now_ms() < deadline;)
		usleep(1000);
	ck_assert_int_eq(atomic_load(&chain_left), 0);
	ck_assert_int_eq(bk_producer_flush(chain_p, 10000), 0);
	ck_assert_int_eq(atomic_load(&chain_deadlk), 50);
	bk_producer_close(chain_p);
	close(fd);
}
END_TEST

/* A broker that accepts but never answers: request_timeout_ms drops the
 * connection, and the records fail once delivery_timeout_ms passed. */
START_TEST(request_timeout)
{
	static struct dl d[5];
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64];
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int64_t t0;

	ck_assert_int_ge(lfd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 16), 0); /* the kernel completes connects */
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	conf_for(&conf, addr, sizeof(addr), ntohs(sa.sin_port));
	conf.request_timeout_ms = 300;
	conf.delivery_timeout_ms = 1200;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	t0 = tb_now_ms();
	for (int i = 0; i < 5; i++) {
		struct bk_record r = rec_kv("t", "k", "v");

		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
	}
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	ck_assert_int_ge(tb_now_ms() - t0, 1100);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(d[i].err, -ETIMEDOUT);
	ck_assert(logged("no answer from"));
	bk_producer_close(p);
	close(lfd);
}
END_TEST

/* A fake broker's side of one connection: the next request on fd. */
static Brokerd__Request *fake_read(int fd)
{
	size_t len;
	uint8_t *buf = tc_recv_raw(fd, &len);
	Brokerd__Request *q;

	ck_assert_ptr_nonnull(buf);
	q = brokerd__request__unpack(NULL, len, buf);
	free(buf);
	ck_assert_ptr_nonnull(q);
	return q;
}

/* Answer request q on fd with resp (framed, q's correlation id); frees q. */
static void fake_answer(int fd, Brokerd__Request *q, Brokerd__Response *resp)
{
	size_t n;
	uint8_t *buf;

	resp->correlation_id = q->correlation_id;
	n = brokerd__response__get_packed_size(resp);
	buf = malloc(n + 4);
	ck_assert_ptr_nonnull(buf);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	brokerd__response__pack(resp, buf + 4);
	ck_assert_int_eq(tc_send_raw(fd, buf, n + 4), 0);
	free(buf);
	brokerd__request__free_unpacked(q, NULL);
}

static int64_t cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The probe of a topic the broker said it lacks, waiting to be retried
 * while the broker is unreachable, waits for the reconnect: the I/O thread
 * does not spin meanwhile.  It fails at delivery_timeout_ms. */
START_TEST(probe_waits_while_down)
{
	static struct dl d;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	Brokerd__ApiVersionsResponse av = BROKERD__API_VERSIONS_RESPONSE__INIT;
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	struct bk_record r = rec_kv("t", "k", "v");
	Brokerd__Request *q;
	char addr[64];
	int lfd = socket(AF_INET, SOCK_STREAM, 0), cfd;
	int64_t cpu;

	ck_assert_int_ge(lfd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 16), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	conf_for(&conf, addr, sizeof(addr), ntohs(sa.sin_port));
	conf.delivery_timeout_ms = 2500;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d), 0);
	cfd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(cfd, 0);
	tc_set_timeout(cfd, 5000);
	q = fake_read(cfd);
	ck_assert_int_eq(q->op_case, BROKERD__REQUEST__OP_API_VERSIONS);
	av.broker_version = (char *)"fake";
	resp.op_case = BROKERD__RESPONSE__OP_API_VERSIONS;
	resp.api_versions = &av;
	fake_answer(cfd, q, &resp);
	q = fake_read(cfd);
	ck_assert_int_eq(q->op_case, BROKERD__REQUEST__OP_DESCRIBE_TOPIC);
	resp = (Brokerd__Response)BROKERD__RESPONSE__INIT;
	resp.error = BROKERD__ERROR_CODE__UNKNOWN_TOPIC;
	resp.error_message = (char *)"no such topic";
	fake_answer(cfd, q, &resp);
	q = fake_read(cfd); /* the probe: the broker goes away instead */
	ck_assert_int_eq(q->op_case, BROKERD__REQUEST__OP_PRODUCE);
	ck_assert_uint_gt(q->produce->records.len, BATCH_HEADER_SIZE);
	brokerd__request__free_unpacked(q, NULL);
	close(cfd);
	close(lfd);
	usleep(200 * 1000); /* past the probe's retry backoff */
	cpu = cpu_ms();
	usleep(1000 * 1000);
	cpu = cpu_ms() - cpu;
	ck_assert_msg(cpu < 300, "%lld ms of CPU in 1 s while waiting to reconnect",
		      (long long)cpu);
	bk_producer_close(p);
	ck_assert_int_eq(atomic_load(&d.calls), 1);
	ck_assert_int_eq(d.err, -ETIMEDOUT);
}
END_TEST

/* max.connections refuses the producer (TOO_MANY_CONNECTIONS, retriable):
 * it keeps trying and delivers once a slot frees. */
START_TEST(too_many_connections)
{
	static struct dl d[10];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	Brokerd__Response *r;
	char addr[64];
	int fd;

	tb_set(&b, "max.connections=1");
	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "busy", 1);
	r = tc_api_versions(fd); /* the slot is taken */
	tc_free(r);
	conf_for(&conf, addr, sizeof(addr), b.port);
	conf.retry_backoff_ms = 20;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	for (int i = 0; i < 10; i++) {
		struct bk_record rec = rec_kv("busy", NULL, "v");

		ck_assert_int_eq(bk_producer_send(p, &rec, on_delivery, &d[i]), 0);
	}
	ck_assert_int_eq(bk_producer_flush(p, 300), -ETIMEDOUT);
	ck_assert(logged("TOO_MANY_CONNECTIONS"));
	close(fd);
	ck_assert_int_eq(bk_producer_flush(p, 10000), 0);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(d[i].err, 0);
		ck_assert_int_eq(d[i].offset, i);
	}
	bk_producer_close(p);
}
END_TEST

/* Bad configurations and records; error helpers. */
START_TEST(bad_input)
{
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	struct bk_record r = rec_kv("t", NULL, "v");

	bk_producer_conf_init(&conf);
	ck_assert_int_eq(conf.acks, BK_ACKS_ALL);
	ck_assert_uint_eq(conf.batch_size, 65536);
	ck_assert_int_eq(conf.linger_ms, 5);
	ck_assert_int_eq(conf.max_in_flight, 5);
	ck_assert_int_eq(conf.delivery_timeout_ms, 120000);
	ck_assert_uint_eq(conf.buffer_memory, 33554432);
	ck_assert_int_eq(bk_producer_new(&conf, &p), -EINVAL); /* no bootstrap */
	conf.bootstrap = "no-port";
	ck_assert_int_eq(bk_producer_new(&conf, &p), -EINVAL);
	conf.bootstrap = "127.0.0.1:1";
	conf.max_in_flight = 0;
	ck_assert_int_eq(bk_producer_new(&conf, &p), -EINVAL);
	conf.max_in_flight = 5;
	conf.acks = 7;
	ck_assert_int_eq(bk_producer_new(&conf, &p), -EINVAL);
	conf.acks = BK_ACKS_LEADER;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	ck_assert_int_eq(bk_producer_send(p, NULL, NULL, NULL), -EINVAL);
	r.topic = "";
	ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), -EINVAL);
	r.topic = "t";
	r.key_len = -2;
	ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), -EINVAL);
	r.key_len = 3; /* key NULL */
	ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), -EINVAL);
	r.key_len = -1;
	r.partition = -2;
	ck_assert_int_eq(bk_producer_send(p, &r, NULL, NULL), -EINVAL);
	ck_assert_int_eq(bk_producer_flush(p, 0), 0); /* nothing queued */
	bk_producer_close(p);
	bk_producer_close(NULL);
	/* errors */
	ck_assert_int_eq(bk_err_code(BK_ERR(BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE)), 16);
	ck_assert_int_eq(bk_err_code(-ECONNRESET), 0);
	ck_assert_int_eq(bk_err_retriable(BK_ERR(BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE)), 1);
	ck_assert_int_eq(bk_err_retriable(BK_ERR(BROKERD__ERROR_CODE__BROKER_SHUTTING_DOWN)), 1);
	ck_assert_int_eq(bk_err_retriable(BK_ERR(BROKERD__ERROR_CODE__CORRUPT_RECORD_BATCH)), 1);
	ck_assert_int_eq(bk_err_retriable(BK_ERR(BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS)), 1);
	ck_assert_int_eq(bk_err_retriable(BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC)), 0);
	ck_assert_int_eq(bk_err_retriable(BK_ERR(BROKERD__ERROR_CODE__MESSAGE_TOO_LARGE)), 0);
	ck_assert_int_eq(bk_err_retriable(-ECONNREFUSED), 1);
	ck_assert_int_eq(bk_err_retriable(-ETIMEDOUT), 1);
	ck_assert_int_eq(bk_err_retriable(-EINVAL), 0);
	ck_assert_int_eq(bk_err_retriable(0), 0);
	ck_assert_str_eq(bk_strerror(BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC)),
			 "UNKNOWN_TOPIC: the topic does not exist");
	ck_assert_ptr_nonnull(strstr(bk_strerror(BK_ERR(999)), "unknown"));
	ck_assert_ptr_nonnull(strstr(bk_strerror(-ENOBUFS), "buffer_memory"));
	ck_assert_str_eq(bk_error_name(BROKERD__ERROR_CODE__MESSAGE_TOO_LARGE), "MESSAGE_TOO_LARGE");
}
END_TEST

/* A broker restart in the middle of a run (same port, same data): every
 * acknowledged record is in the log at its acknowledged offset, each
 * partition's records in send order; a duplicate only where a batch was
 * retried after the connection loss. */
static void restart_run(int kill9)
{
	enum { N = 6000, P = 4 };
	static struct dl d[N];
	static char seen[N];
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	char addr[64], kv[32], val[32];
	int port = free_port(), fd, dups = 0;
	char setting[64];

	snprintf(setting, sizeof(setting), "listen=127.0.0.1:%d", port);
	tb_set(&b, setting);
	tb_start(&b);
	ck_assert_int_eq(b.port, port);
	fd = tc_connect(b.port);
	create(fd, "restart", P);
	close(fd);
	conf_for(&conf, addr, sizeof(addr), port);
	conf.linger_ms = 2;
	conf.retry_backoff_ms = 20;
	ck_assert_int_eq(bk_producer_new(&conf, &p), 0);
	atomic_store(&delivered, 0);
	for (int i = 0; i < N; i++) {
		struct bk_record r;

		snprintf(kv, sizeof(kv), "k%d", i % 31);
		snprintf(val, sizeof(val), "r-%d", i);
		r = rec_kv("restart", kv, val);
		ck_assert_int_eq(bk_producer_send(p, &r, on_delivery, &d[i]), 0);
		/* paced, except for a burst just before the broker goes away,
		 * so that batches are in flight then */
		if (i % 50 == 0 && (i < N / 3 - 1500 || i > N / 3))
			usleep(1000);
		if (i == N / 3) {
			if (kill9)
				tb_kill9(&b);
			else
				ck_assert_int_eq(tb_stop(&b), 0);
		}
		if (i == N / 2) {
			tb_start(&b);
			ck_assert_int_eq(b.port, port);
		}
	}
	ck_assert_int_eq(bk_producer_flush(p, 60000), 0);
	bk_producer_close(p);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(atomic_load(&d[i].calls), 1);
		ck_assert_msg(d[i].err == 0, "record %d: %s", i, bk_strerror(d[i].err));
	}
	fd = tc_connect(b.port);
	for (uint32_t part = 0; part < P; part++) {
		int n, batches, high = -1;
		char **v = read_partition(fd, "restart", part, &n, &batches);

		/* acknowledged where the broker said */
		for (int i = 0; i < N; i++)
			if (d[i].partition == (int32_t)part) {
				ck_assert_int_lt(d[i].offset, n);
				ck_assert_int_eq(value_index(v[d[i].offset]), i);
			}
		/* in send order: a step back only to repeat a retried stretch,
		 * never to a record not seen before */
		memset(seen, 0, sizeof(seen));
		for (int k = 0; k < n; k++) {
			int x = value_index(v[k]);

			ck_assert(x >= 0 && x < N);
			if (x <= high) {
				ck_assert_msg(seen[x], "record %d first stored after record %d", x, high);
				dups++;
			}
			if (x > high)
				high = x;
			seen[x] = 1;
		}
		tc_free_values(v, n);
	}
	fprintf(stderr, "producer restart%s: %d duplicates\n", kill9 ? " (kill -9)" : "", dups);
	ck_assert(logged("lost the connection") || logged("closed the connection"));
	ck_assert(logged("reconnected to"));
	close(fd);
}

START_TEST(broker_restart)
{
	restart_run(0);
}
END_TEST

START_TEST(broker_kill9)
{
	restart_run(1);
}
END_TEST

Suite *producer_suite(void)
{
	Suite *s = suite_create("producer");
	TCase *tc = tcase_create("producer");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, async_by_key);
	tcase_add_test(tc, threads);
	tcase_add_test(tc, linger_batching);
	tcase_add_test(tc, send_sync);
	tcase_add_test(tc, unknown_topic);
	tcase_add_test(tc, auto_create);
	tcase_add_test(tc, message_too_large);
	tcase_add_test(tc, buffer_full);
	tcase_add_test(tc, buffer_full_blocks);
	tcase_add_test(tc, delivery_report_opaques);
	tcase_add_test(tc, flush_timeout);
	tcase_add_test(tc, keyless_spread);
	tcase_add_test(tc, close_delivers);
	tcase_add_test(tc, acks_none);
	tcase_add_test(tc, callback_sends);
	tcase_add_test(tc, request_timeout);
	tcase_add_test(tc, probe_waits_while_down);
	tcase_add_test(tc, too_many_connections);
	tcase_add_test(tc, bad_input);
	tcase_add_test(tc, broker_restart);
	tcase_add_test(tc, broker_kill9);
	suite_add_tcase(s, tc);
	return s;
}
