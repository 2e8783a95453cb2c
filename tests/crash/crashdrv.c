/* crashdrv — the client side of the crash tests (tests/crash/crash.py).
 *
 *   crashdrv create  -b ADDR -t TOPIC -P PARTS [-c key=value]...
 *   crashdrv produce -b ADDR -t TOPIC -P PARTS -n PRODUCERS -r RUN -o PREFIX
 *                    [-s SECONDS] [-k RECORDS_PER_BATCH] [-v VALUE_BYTES]
 *   crashdrv dump    -b ADDR -t TOPIC -P PARTS -o FILE
 *
 * produce: N threads, each with its own connection (the blocking layer of
 * libbrokerc, bk_conn_call), write batches of unique values
 * "r<run>.p<producer>.s<seq>|<padding>" with acks=all; producer p sends its
 * batch j to partition (p + j) % PARTS.  One request at a time per thread,
 * so every attempt has exactly one outcome, appended to PREFIX.p<p>:
 *   ok   <run> <p> <seq0> <n> <partition> <base_offset>   acknowledged
 *   fail <run> <p> <seq0> <n> <partition> <error>         refused: not stored
 *   unk  <run> <p> <seq0> <n> <partition> <error>         connection lost or
 *                                                         timed out: unknown
 * After "unk" the thread reconnects and sends the same values again (so a
 * duplicate of a value with an unknown attempt is explained); after "fail"
 * it moves on to new values (a failed value must never become visible).
 * The batching producer (bk_producer) retries inside the library, which
 * would hide exactly the outcomes the checker needs.
 * Runs until SIGTERM/SIGINT or SECONDS; exit 0.
 *
 * dump: reads every partition from its log start to its high watermark
 * (bk_admin_list_offset, then a bk_consumer) and writes to FILE:
 *   R <partition> <start> <hw>
 *   D <partition> <offset> <value without padding>
 *   E <partition> <offset> <error>   the partition stopped there (read error)
 * Exit 0, 2 when the broker cannot be reached or the dump timed out. */
#include <brokerd/client.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/batch.h"

#define MAX_PRODUCERS 64
#define MAX_PARTS     256
#define MAX_CONFIGS   16

static struct {
	const char *broker, *topic, *prefix;
	int parts, producers, run, seconds, per_batch, value_bytes;
	const char *configs[MAX_CONFIGS];
	int nconfigs;
} opt = { .parts = 1, .producers = 4, .seconds = 3600, .per_batch = 4, .value_bytes = 64 };

static atomic_int stop;

static void on_stop(int sig)
{
	(void)sig;
	atomic_store(&stop, 1);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void die(const char *fmt, const char *arg, int rc)
	__attribute__((noreturn, format(printf, 1, 0)));
static void die(const char *fmt, const char *arg, int rc)
{
	fprintf(stderr, "crashdrv: ");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	fprintf(stderr, fmt, arg);
#pragma GCC diagnostic pop
	if (rc != 0)
		fprintf(stderr, ": %s", bk_strerror(rc));
	fputc('\n', stderr);
	exit(2);
}

/* An admin handle on opt.broker, or exit 2. */
static struct bk_admin *admin_open(void)
{
	struct bk_admin_conf conf;
	struct bk_admin *a = NULL;
	int rc;

	bk_admin_conf_init(&conf);
	conf.bootstrap = opt.broker;
	conf.client_id = "crashdrv";
	rc = bk_admin_new(&conf, &a);
	if (rc < 0)
		die("cannot reach %s", opt.broker, rc);
	return a;
}

/* --- create ------------------------------------------------------------------ */

static int cmd_create(void)
{
	struct bk_config configs[MAX_CONFIGS];
	char kv[MAX_CONFIGS][256];
	struct bk_admin *a;
	int rc;

	for (int i = 0; i < opt.nconfigs; i++) {
		char *eq;

		snprintf(kv[i], sizeof(kv[i]), "%s", opt.configs[i]);
		eq = strchr(kv[i], '=');
		if (eq == NULL)
			die("bad config '%s' (want key=value)", opt.configs[i], 0);
		*eq = '\0';
		configs[i] = (struct bk_config){ kv[i], eq + 1, 0 };
	}
	a = admin_open();
	rc = bk_admin_create_topic(a, opt.topic, opt.parts, configs, (size_t)opt.nconfigs, NULL);
	if (rc < 0 && rc != BK_ERR(BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS)) {
		if (bk_err_code(rc) == 0)
			die("create topic %s", opt.topic, rc);
		die("create topic: %s", bk_admin_errmsg(a), 0);
	}
	bk_admin_close(a);
	return 0;
}

/* --- produce ------------------------------------------------------------------- */

struct producer {
	pthread_t thread;
	int id;
	FILE *out;
	long ok, fail, unk;
};

/* One produce attempt of `batch` to `part`.  Returns 0 (acknowledged,
 * *base set), a positive wire error code (refused), or -errno (transport:
 * the outcome is unknown; the connection is closed). */
static int produce_once(struct bk_conn **c, int part, uint8_t *batch, size_t len, int64_t *base)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ProduceRequest pr = BROKERD__PRODUCE_REQUEST__INIT;
	Brokerd__Response *resp = NULL;
	int rc;

	pr.topic = (char *)opt.topic;
	pr.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
	pr.partition = (uint32_t)part;
	pr.acks = BROKERD__ACKS__ACKS_ALL;
	pr.records.data = batch;
	pr.records.len = len;
	req.op_case = BROKERD__REQUEST__OP_PRODUCE;
	req.produce = &pr;
	req.client_id = (char *)"crashdrv";
	rc = bk_conn_call(*c, &req, &resp);
	if (rc < 0) {
		bk_conn_close(*c);
		*c = NULL;
		return rc;
	}
	if (resp->error != BROKERD__ERROR_CODE__OK) {
		rc = (int)resp->error;
		bk_response_free(resp);
		return rc;
	}
	*base = resp->produce != NULL ? resp->produce->base_offset : -1;
	bk_response_free(resp);
	return 0;
}

static int build_batch(int id, long long seq0, uint8_t **out, size_t *len)
{
	struct batch_builder b;
	char v[4096];
	int rc = 0;

	batch_builder_init(&b);
	for (int i = 0; i < opt.per_batch && rc == 0; i++) {
		int n = snprintf(v, sizeof(v), "r%d.p%d.s%lld|", opt.run, id, seq0 + i);

		while (n < opt.value_bytes && n < (int)sizeof(v))
			v[n++] = 'x';
		rc = batch_builder_add(&b, 0, NULL, -1, v, n, NULL, 0);
	}
	if (rc == 0)
		rc = batch_builder_finish(&b, 0, out, len);
	batch_builder_fini(&b);
	return rc;
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	struct bk_conn *c = NULL;
	int64_t deadline = now_ms() + (int64_t)opt.seconds * 1000;
	long long seq = 0;

	for (long j = 0; !atomic_load(&stop) && now_ms() < deadline; j++) {
		int part = (int)((p->id + j) % opt.parts);
		uint8_t *batch;
		size_t len;
		int rc = build_batch(p->id, seq, &batch, &len);

		if (rc < 0) {
			fprintf(stderr, "crashdrv: batch: %s\n", bk_strerror(rc));
			exit(2);
		}
		/* Until the attempt has a definitive outcome (or we stop). */
		while (!atomic_load(&stop) && now_ms() < deadline) {
			int64_t base = -1;

			if (c == NULL && bk_conn_open(opt.broker, 5000, &c) < 0) {
				c = NULL;
				sleep_ms(20); /* nothing sent: no outcome */
				continue;
			}
			rc = produce_once(&c, part, batch, len, &base);
			if (rc == 0) {
				fprintf(p->out, "ok %d %d %lld %d %d %" PRId64 "\n", opt.run, p->id,
					seq, opt.per_batch, part, base);
				p->ok++;
				break;
			}
			if (rc > 0) {
				fprintf(p->out, "fail %d %d %lld %d %d %s\n", opt.run, p->id, seq,
					opt.per_batch, part, bk_error_name(rc));
				p->fail++;
				if (rc == BROKERD__ERROR_CODE__BROKER_SHUTTING_DOWN)
					sleep_ms(20);
				break;
			}
			fprintf(p->out, "unk %d %d %lld %d %d %d\n", opt.run, p->id, seq,
				opt.per_batch, part, -rc);
			p->unk++;
			sleep_ms(10);
		}
		free(batch);
		fflush(p->out);
		seq += opt.per_batch;
	}
	bk_conn_close(c);
	return NULL;
}

static int cmd_produce(void)
{
	struct producer ps[MAX_PRODUCERS];
	long ok = 0, fail = 0, unk = 0;
	struct sigaction sa = { .sa_handler = on_stop };

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (opt.producers < 1 || opt.producers > MAX_PRODUCERS || opt.prefix == NULL)
		die("produce: need -o PREFIX and 1..64 producers%s", "", 0);
	for (int i = 0; i < opt.producers; i++) {
		char path[4096];

		memset(&ps[i], 0, sizeof(ps[i]));
		ps[i].id = i;
		snprintf(path, sizeof(path), "%s.p%d", opt.prefix, i);
		ps[i].out = fopen(path, "a");
		if (ps[i].out == NULL)
			die("cannot open %s", path, -errno);
		if (pthread_create(&ps[i].thread, NULL, producer_main, &ps[i]) != 0)
			die("pthread_create%s", "", 0);
	}
	for (int i = 0; i < opt.producers; i++) {
		pthread_join(ps[i].thread, NULL);
		fclose(ps[i].out);
		ok += ps[i].ok;
		fail += ps[i].fail;
		unk += ps[i].unk;
	}
	printf("produce: run %d: %ld ok, %ld failed, %ld unknown attempts\n", opt.run, ok, fail, unk);
	return 0;
}

/* --- dump ---------------------------------------------------------------------- */

static int cmd_dump(void)
{
	int64_t start[MAX_PARTS], hw[MAX_PARTS], next[MAX_PARTS];
	bool done[MAX_PARTS];
	struct bk_consumer_conf conf;
	struct bk_consumer *cons = NULL;
	struct bk_admin *a;
	int64_t deadline = now_ms() + 120000;
	int left = 0, rc;
	FILE *out;

	if (opt.prefix == NULL || opt.parts > MAX_PARTS)
		die("dump: need -o FILE and at most 256 partitions%s", "", 0);
	out = fopen(opt.prefix, "w");
	if (out == NULL)
		die("cannot open %s", opt.prefix, -errno);
	a = admin_open();
	for (int p = 0; p < opt.parts; p++) {
		struct bk_listed_offset lo;

		rc = bk_admin_list_offset(a, opt.topic, p, BK_OFFSET_LATEST, &lo);
		if (rc < 0)
			die("list offsets of %s", opt.topic, rc);
		start[p] = lo.log_start_offset;
		hw[p] = lo.high_watermark;
		fprintf(out, "R %d %" PRId64 " %" PRId64 "\n", p, start[p], hw[p]);
		next[p] = start[p];
		done[p] = start[p] >= hw[p];
		left += !done[p];
	}
	bk_admin_close(a);
	bk_consumer_conf_init(&conf);
	conf.bootstrap = opt.broker;
	conf.client_id = "crashdrv-dump";
	conf.fetch_max_wait_ms = 100;
	rc = bk_consumer_new(&conf, &cons);
	if (rc < 0)
		die("consumer%s", "", rc);
	for (int p = 0; p < opt.parts; p++)
		if (!done[p] && (rc = bk_consumer_assign(cons, opt.topic, p, start[p])) < 0)
			die("assign %s", opt.topic, rc);
	int64_t moved[MAX_PARTS];
	char lasterr[128] = "no progress";

	for (int p = 0; p < opt.parts; p++)
		moved[p] = now_ms();
	while (left > 0) {
		struct bk_record r;
		int64_t t = now_ms();

		if (t > deadline)
			die("dump of %s timed out", opt.topic, 0);
		/* A read error stops a partition at its position (returned
		 * once, without naming the partition): a partition that has
		 * not moved for 5 s is reported stuck where it stands. */
		for (int p = 0; p < opt.parts; p++) {
			if (!done[p] && t - moved[p] > 5000) {
				fprintf(out, "E %d %" PRId64 " %s\n", p, next[p], lasterr);
				done[p] = true;
				left--;
			}
		}
		rc = bk_consumer_poll(cons, 200, &r);
		if (rc == 0 || rc == -EINTR)
			continue;
		if (rc < 0) {
			snprintf(lasterr, sizeof(lasterr), "%s", bk_strerror(rc));
			continue;
		}
		if (r.partition < 0 || r.partition >= opt.parts || done[r.partition])
			continue;
		if (r.offset >= hw[r.partition])
			continue; /* written after the dump started */
		const char *bar = r.value_len > 0 ? memchr(r.value, '|', (size_t)r.value_len) : NULL;
		int vlen = bar != NULL ? (int)(bar - (const char *)r.value) : r.value_len;
		fprintf(out, "D %d %" PRId64 " %.*s\n", r.partition, r.offset, vlen < 0 ? 0 : vlen,
			(const char *)r.value);
		next[r.partition] = r.offset + 1;
		moved[r.partition] = t;
		if (next[r.partition] >= hw[r.partition]) {
			done[r.partition] = true;
			left--;
		}
	}
	bk_consumer_close(cons);
	if (fclose(out) != 0)
		die("write %s", opt.prefix, -errno);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	int ch;

	setvbuf(stdout, NULL, _IOLBF, 0);
	optind = 2;
	while ((ch = getopt(argc, argv, "b:t:P:n:r:o:s:k:v:c:")) != -1) {
		switch (ch) {
		case 'b': opt.broker = optarg; break;
		case 't': opt.topic = optarg; break;
		case 'P': opt.parts = atoi(optarg); break;
		case 'n': opt.producers = atoi(optarg); break;
		case 'r': opt.run = atoi(optarg); break;
		case 'o': opt.prefix = optarg; break;
		case 's': opt.seconds = atoi(optarg); break;
		case 'k': opt.per_batch = atoi(optarg); break;
		case 'v': opt.value_bytes = atoi(optarg); break;
		case 'c':
			if (opt.nconfigs == MAX_CONFIGS)
				die("too many -c%s", "", 0);
			opt.configs[opt.nconfigs++] = optarg;
			break;
		default:
			die("usage: crashdrv create|produce|dump -b ADDR -t TOPIC ...%s", "", 0);
		}
	}
	if (opt.broker == NULL || opt.topic == NULL || opt.parts < 1 || opt.per_batch < 1)
		die("need -b ADDR -t TOPIC, -P >= 1, -k >= 1%s", "", 0);
	if (strcmp(cmd, "create") == 0)
		return cmd_create();
	if (strcmp(cmd, "produce") == 0)
		return cmd_produce();
	if (strcmp(cmd, "dump") == 0)
		return cmd_dump();
	die("unknown command '%s' (create, produce, dump)", cmd, 0);
}
