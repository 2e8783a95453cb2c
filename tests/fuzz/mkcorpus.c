/* mkcorpus — writes the valid seed inputs of tests/fuzz/corpus/<target>/
 * with the project's own encoders (protobuf-c, batch_builder, and a real
 * log for the recovery seeds), so the seeds follow the formats when they
 * change.  Run once by `make fuzz-corpus`; the output is checked in.
 * Usage: mkcorpus DIR  (writes DIR/<target>/<name>; DIR must exist). */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/log.h"
#include "broker/logging.h"
#include "broker/uring.h"
#include "proto/batch.h"
#include "proto/broker.pb-c.h"
#include "proto/le.h"
#include "tests/unit/testutil.h"

static const char *out_dir;

static __attribute__((noreturn)) void die(const char *what)
{
	fprintf(stderr, "mkcorpus: %s\n", what);
	exit(1);
}

/* Write DIR/target/name = [prefix byte if >= 0] + p[0..n). */
static void seed(const char *target, const char *name, int prefix, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path);
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	f = fopen(path, "wb");
	if (f == NULL || (prefix >= 0 && fputc(prefix, f) == EOF) ||
	    (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
		die(path);
}

/* A valid batch of `count` records (some with headers, a null key/value). */
static uint8_t *make_batch(int count, size_t *len)
{
	struct batch_builder bb;
	struct batch_kv kv[2] = { { "h1", 2, "v1", 2 }, { "h2", 2, NULL, -1 } };
	uint8_t *buf;

	batch_builder_init(&bb);
	for (int i = 0; i < count; i++) {
		char key[16], val[32];
		int kn = snprintf(key, sizeof(key), "key-%d", i);
		int vn = snprintf(val, sizeof(val), "value %d", i);
		if (batch_builder_add(&bb, 1700000000000LL + i, i == 1 ? NULL : key, i == 1 ? -1 : kn,
				      i == 2 ? NULL : val, i == 2 ? -1 : vn, kv,
				      (uint32_t)(i % 3)) != 0)
			die("batch_builder_add");
	}
	if (batch_builder_finish(&bb, 0, &buf, len) != 0)
		die("batch_builder_finish");
	return buf;
}

/* --- batch ------------------------------------------------------------------- */

static void seeds_batch(void)
{
	size_t n;
	uint8_t *b = make_batch(1, &n);

	seed("batch", "one-record", 0, b, n);
	seed("batch", "one-record-fixcrc", 1, b, n);
	free(b);
	b = make_batch(5, &n);
	seed("batch", "five-records-headers", 0, b, n);
	seed("batch", "five-records-fixcrc", 1, b, n);
	free(b);
}

/* --- requests (frame and request targets) -------------------------------------- */

static size_t pack(Brokerd__Request *m, uint8_t **out)
{
	size_t n = brokerd__request__get_packed_size(m);

	*out = malloc(n ? n : 1);
	if (*out == NULL)
		die("out of memory");
	brokerd__request__pack(m, *out);
	return n;
}

static void seed_req(const char *name, Brokerd__Request *m)
{
	uint8_t *p;
	size_t n = pack(m, &p);
	uint8_t *frame = malloc(n + 4);

	seed("request", name, -1, p, n);
	/* The same request as a frame, with the default limit (mode 0). */
	frame[0] = (uint8_t)(n >> 24);
	frame[1] = (uint8_t)(n >> 16);
	frame[2] = (uint8_t)(n >> 8);
	frame[3] = (uint8_t)n;
	memcpy(frame + 4, p, n);
	seed("frame", name, 0, frame, n + 4);
	free(frame);
	free(p);
}

static void seeds_requests(void)
{
	Brokerd__Request m;
	Brokerd__ApiVersionsRequest av = BROKERD__API_VERSIONS_REQUEST__INIT;
	Brokerd__CreateTopicRequest ct = BROKERD__CREATE_TOPIC_REQUEST__INIT;
	Brokerd__CreateTopicRequest__ConfigsEntry ce[2] = {
		BROKERD__CREATE_TOPIC_REQUEST__CONFIGS_ENTRY__INIT,
		BROKERD__CREATE_TOPIC_REQUEST__CONFIGS_ENTRY__INIT
	};
	Brokerd__CreateTopicRequest__ConfigsEntry *cep[2] = { &ce[0], &ce[1] };
	Brokerd__DeleteTopicRequest dt = BROKERD__DELETE_TOPIC_REQUEST__INIT;
	Brokerd__ListTopicsRequest lt = BROKERD__LIST_TOPICS_REQUEST__INIT;
	Brokerd__DescribeTopicRequest desc = BROKERD__DESCRIBE_TOPIC_REQUEST__INIT;
	Brokerd__AlterTopicConfigRequest al = BROKERD__ALTER_TOPIC_CONFIG_REQUEST__INIT;
	Brokerd__AlterTopicConfigRequest__SetEntry se = BROKERD__ALTER_TOPIC_CONFIG_REQUEST__SET_ENTRY__INIT;
	Brokerd__AlterTopicConfigRequest__SetEntry *sep[1] = { &se };
	char *reset[1] = { (char *)"retention.ms" };
	Brokerd__ProduceRequest pr = BROKERD__PRODUCE_REQUEST__INIT;
	Brokerd__FetchRequest fe = BROKERD__FETCH_REQUEST__INIT;
	Brokerd__ListOffsetsRequest lo = BROKERD__LIST_OFFSETS_REQUEST__INIT;
	Brokerd__CommitOffsetsRequest co = BROKERD__COMMIT_OFFSETS_REQUEST__INIT;
	Brokerd__OffsetCommit oc = BROKERD__OFFSET_COMMIT__INIT;
	Brokerd__OffsetCommit *ocp[1] = { &oc };
	Brokerd__FetchOffsetsRequest fo = BROKERD__FETCH_OFFSETS_REQUEST__INIT;
	Brokerd__TopicPartition tp = BROKERD__TOPIC_PARTITION__INIT;
	Brokerd__TopicPartition *tpp[1] = { &tp };
	Brokerd__ListGroupsRequest lg = BROKERD__LIST_GROUPS_REQUEST__INIT;
	Brokerd__DeleteGroupRequest dg = BROKERD__DELETE_GROUP_REQUEST__INIT;
	Brokerd__BrokerStatusRequest bs = BROKERD__BROKER_STATUS_REQUEST__INIT;
	size_t blen;
	uint8_t *batch = make_batch(3, &blen);

#define REQ(field, CASE, val)                                     \
	do {                                                      \
		brokerd__request__init(&m);                       \
		m.correlation_id = 42;                            \
		m.client_id = (char *)"fuzz";                     \
		m.op_case = BROKERD__REQUEST__OP_##CASE;          \
		m.field = (val);                                  \
	} while (0)

	REQ(api_versions, API_VERSIONS, &av);
	seed_req("api-versions", &m);
	ct.topic = (char *)"orders";
	ct.partitions = 3;
	ce[0].key = (char *)"segment.bytes";
	ce[0].value = (char *)"64KiB";
	ce[1].key = (char *)"flush.mode";
	ce[1].value = (char *)"interval";
	ct.configs = cep;
	ct.n_configs = 2;
	REQ(create_topic, CREATE_TOPIC, &ct);
	seed_req("create-topic", &m);
	dt.topic = (char *)"orders";
	REQ(delete_topic, DELETE_TOPIC, &dt);
	seed_req("delete-topic", &m);
	REQ(list_topics, LIST_TOPICS, &lt);
	seed_req("list-topics", &m);
	desc.topic = (char *)"t";
	REQ(describe_topic, DESCRIBE_TOPIC, &desc);
	seed_req("describe-topic", &m);
	al.topic = (char *)"t";
	se.key = (char *)"retention.bytes";
	se.value = (char *)"1MiB";
	al.set = sep;
	al.n_set = 1;
	al.reset = reset;
	al.n_reset = 1;
	REQ(alter_topic_config, ALTER_TOPIC_CONFIG, &al);
	seed_req("alter-topic-config", &m);
	pr.topic = (char *)"t";
	pr.acks = BROKERD__ACKS__ACKS_ALL;
	pr.records.data = batch;
	pr.records.len = blen;
	REQ(produce, PRODUCE, &pr);
	seed_req("produce-round-robin", &m);
	pr.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
	pr.partition = 1;
	pr.acks = BROKERD__ACKS__ACKS_LEADER;
	seed_req("produce-partition", &m);
	pr.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION_KEY;
	pr.partition_key.data = (uint8_t *)"user-7";
	pr.partition_key.len = 6;
	pr.acks = BROKERD__ACKS__ACKS_NONE;
	seed_req("produce-key-acks-none", &m);
	pr.topic = (char *)"auto-created";
	pr.acks = BROKERD__ACKS__ACKS_ALL;
	seed_req("produce-auto-create", &m);
	fe.topic = (char *)"t";
	fe.partition = 0;
	fe.offset = 0;
	fe.max_bytes = 4096;
	REQ(fetch, FETCH, &fe);
	seed_req("fetch", &m);
	fe.max_wait_ms = 100;
	fe.min_bytes = 1 << 20;
	fe.offset = 3;
	seed_req("fetch-long-poll", &m);
	lo.topic = (char *)"t";
	lo.timestamp = -2;
	REQ(list_offsets, LIST_OFFSETS, &lo);
	seed_req("list-offsets-earliest", &m);
	lo.timestamp = 1700000000001LL;
	seed_req("list-offsets-time", &m);
	oc.topic = (char *)"t";
	oc.partition = 1;
	oc.offset = 2;
	oc.metadata = (char *)"meta";
	co.group = (char *)"g1";
	co.offsets = ocp;
	co.n_offsets = 1;
	REQ(commit_offsets, COMMIT_OFFSETS, &co);
	seed_req("commit-offsets", &m);
	fo.group = (char *)"g1";
	REQ(fetch_offsets, FETCH_OFFSETS, &fo);
	seed_req("fetch-offsets-all", &m);
	tp.topic = (char *)"t";
	tp.partition = 1;
	fo.partitions = tpp;
	fo.n_partitions = 1;
	seed_req("fetch-offsets-one", &m);
	REQ(list_groups, LIST_GROUPS, &lg);
	seed_req("list-groups", &m);
	dg.group = (char *)"g1";
	REQ(delete_group, DELETE_GROUP, &dg);
	seed_req("delete-group", &m);
	REQ(broker_status, BROKER_STATUS, &bs);
	seed_req("broker-status", &m);
	free(batch);
#undef REQ
}

/* --- config -------------------------------------------------------------------- */

static void seeds_config(void)
{
	static const char file[] =
		"# a small config\n"
		"listen = 127.0.0.1:9092\n"
		"admin.listen = off\n"
		"data.dir = /var/lib/brokerd\n"
		"segment.bytes = 64 MiB\n"
		"retention.ms = 7d\n"
		"flush.mode = interval   # trailing comment\n"
		"flush.interval.ms = 1s\n"
		"auto.create.topics = yes\n"
		"log.level = warn\n";
	static const char overrides[] =
		"listen=[::1]:0\n"
		"max.request.bytes=1MiB\n"
		"max.batch.bytes=512k\n"
		"retention.bytes=-1\n"
		"index.interval.bytes=4096\n"
		"idle.timeout.ms=0\n";
	char buf[65536];
	size_t n;
	FILE *f = fopen("broker.conf.example", "rb");

	seed("config", "small-file", 0, file, sizeof(file) - 1);
	seed("config", "overrides", 1, overrides, sizeof(overrides) - 1);
	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		seed("config", "broker-conf-example", 0, buf, n);
	}
}

/* --- recovery -------------------------------------------------------------------- */

struct sec {
	uint8_t buf[4 * 65540];
	size_t len;
};

static void sec_add(struct sec *s, int kind, const char *path)
{
	uint8_t data[65535];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, data, sizeof(data));
	close(fd);
	if (n < 0 || s->len + 3 + (size_t)n > sizeof(s->buf))
		die("recovery seed too large");
	s->buf[s->len] = (uint8_t)kind;
	put_le16(s->buf + s->len + 1, (uint16_t)n);
	memcpy(s->buf + s->len + 3, data, (size_t)n);
	s->len += 3 + (size_t)n;
}

struct app {
	struct log_append a;
	bool done;
};

static void on_app(struct log_append *a, int res)
{
	(void)res;
	((struct app *)a)->done = true;
}

/* A real partition of `nbatches` batches of 3 records (segment.bytes 4096
 * rolls a second segment after a dozen), closed cleanly. */
static void make_log(struct event_base *base, struct log_ctx *ctx, const char *dir, int nbatches)
{
	struct log_config cfg;
	struct log *l;

	log_config_defaults(&cfg);
	cfg.segment_bytes = 4096;
	cfg.index_interval_bytes = 256;
	if (log_open(ctx, dir, &cfg, LOG_OPEN_CREATE, &l) < 0)
		die("log_open");
	for (int i = 0; i < nbatches; i++) {
		struct app p = { .done = false };
		size_t n;
		uint8_t *b = make_batch(3, &n);
		p.a = (struct log_append){ .buf = b, .len = n, .acks = LOG_ACKS_ALL, .cb = on_app };
		if (log_append(l, &p.a) < 0)
			die("log_append");
		while (!p.done)
			event_base_loop(base, EVLOOP_ONCE);
		free(b);
	}
	if (log_close(l) < 0)
		die("log_close");
}

static void seeds_recovery(void)
{
	static struct sec s;
	struct event_base *base = event_base_new();
	struct uring *u;
	struct log_ctx *ctx;
	struct log_ctx_opts opts = { .max_open_segments = 8, .max_batch_bytes = 1u << 20 };
	char *tmp = tu_mkdtemp(), dir[4200], path[4300], second[64] = "";
	DIR *d;
	struct dirent *e;

	if (tmp == NULL || base == NULL || uring_new(base, 64, &u) < 0 ||
	    log_ctx_new(u, &opts, &ctx) < 0)
		die("no io_uring or temp dir");
	snprintf(dir, sizeof(dir), "%s/t-0", tmp);
	make_log(base, ctx, dir, 40);
	d = opendir(dir);
	while (d != NULL && (e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".log") != NULL &&
		    strncmp(e->d_name, "00000000000000000000", 20) != 0)
			snprintf(second, sizeof(second), "%.20s", e->d_name);
	if (d != NULL)
		closedir(d);
	if (second[0] == '\0')
		die("expected a second segment");
	/* One segment, crashed (no checkpoint): the whole .log is scanned. */
	s.len = 0;
	snprintf(path, sizeof(path), "%s/00000000000000000000.log", dir);
	sec_add(&s, 0, path);
	seed("recovery", "one-segment-no-checkpoint", -1, s.buf, s.len);
	snprintf(path, sizeof(path), "%s/00000000000000000000.index", dir);
	sec_add(&s, 1, path);
	snprintf(path, sizeof(path), "%s/00000000000000000000.timeindex", dir);
	sec_add(&s, 2, path);
	seed("recovery", "one-segment-indexes", -1, s.buf, s.len);
	{
		/* The second batch listed as a known corrupt range. */
		static struct sec c;
		size_t n;
		char text[128];
		uint8_t *b = make_batch(3, &n);
		int tn = snprintf(text, sizeof(text), "# ranges\n0 %zu %zu 3 6\n", 16 + n, 16 + 2 * n);

		free(b);
		memcpy(&c, &s, sizeof(c));
		c.buf[c.len] = 7;
		put_le16(c.buf + c.len + 1, (uint16_t)tn);
		memcpy(c.buf + c.len + 3, text, (size_t)tn);
		c.len += 3 + (size_t)tn;
		seed("recovery", "one-segment-corrupt-range", -1, c.buf, c.len);
	}
	/* Two segments with indexes, crashed, then with the checkpoint. */
	for (int k = 0; k < 3; k++) {
		static const char *const ext[] = { "log", "index", "timeindex" };
		snprintf(path, sizeof(path), "%s/%s.%s", dir, second, ext[k]);
		sec_add(&s, 3 + k, path);
	}
	seed("recovery", "two-segments-no-checkpoint", -1, s.buf, s.len);
	snprintf(path, sizeof(path), "%s/checkpoint", dir);
	sec_add(&s, 6, path);
	seed("recovery", "two-segments-clean", -1, s.buf, s.len);
	log_ctx_free(ctx);
	uring_free(u);
	event_base_free(base);
	tu_rmtree(tmp);
	free(tmp);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkcorpus DIR\n");
		return 2;
	}
	out_dir = argv[1];
	log_msg_level = LOGL_WARN;
	seeds_batch();
	seeds_requests();
	seeds_config();
	seeds_recovery();
	return 0;
}
