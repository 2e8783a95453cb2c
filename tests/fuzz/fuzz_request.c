/* fuzz_request — libFuzzer target for every request handler
 * (broker/request.c): the input is one protobuf Request envelope, decoded
 * as server.c decodes a frame and handed to req_handle() on a real broker
 * state (event loop, io_uring, log context, topic registry, offsets store)
 * in a temporary data directory, so each operation's decoding and
 * validation runs for real: produce batch validation and appends, fetch,
 * topic create/delete/alter/describe, list offsets, group commits...
 *
 * This target plays the server: it links every broker module except
 * server.c and defines srv_req_done()/srv_req_close_after() itself, so it
 * knows when a request is answered and can check the answer.
 *
 * Bounds: topics beyond FUZZ_MAX_TOPICS are deleted between inputs; a
 * create asking for more than FUZZ_MAX_PARTS partitions (but within the
 * broker's limit) gets FUZZ_MAX_PARTS; a waiting fetch is woken at once;
 * a request not answered within FUZZ_REQ_SECONDS aborts (a hang is a bug).
 * The data directory is removed at exit.
 *
 * Properties checked besides ASan/UBSan/LeakSanitizer: every request is
 * answered exactly once; every answer but a fetch's (sendfile'd) is one
 * frame that decodes as a Response with the request's correlation id;
 * only acks=none produce answers nothing. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/log.h"
#include "broker/logging.h"
#include "broker/offsets.h"
#include "broker/request.h"
#include "broker/server.h"
#include "broker/topic.h"
#include "broker/uring.h"
#include "proto/batch.h"
#include "proto/le.h"
#include "tests/unit/testutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_TOPICS   8
#define FUZZ_MAX_PARTS    4
#define FUZZ_REQ_SECONDS  10
#define FUZZ_SEED_TOPIC   "t"

static struct broker b = { .lockfd = -1 };
static char *data_dir;
static struct event *tick;
static struct req *cur;  /* the request in flight */
static bool cur_done;
static int answers;      /* srv_req_done calls for cur */

static __attribute__((noreturn)) void die(const char *what)
{
	fprintf(stderr, "fuzz_request: %s\n", what);
	abort();
}

/* --- the server's side -------------------------------------------------------- */

/* Check r's answer: one frame holding a Response for r's correlation id
 * (fetch answers carry a file segment and are skipped). */
static void check_answer(struct req *r)
{
	size_t n = evbuffer_get_length(r->out);
	Brokerd__Response *resp;
	uint8_t *p;
	uint32_t len;

	if (n == 0) {
		if (!(r->op == BROKERD__REQUEST__OP_PRODUCE &&
		      r->msg->produce->acks == BROKERD__ACKS__ACKS_NONE))
			die("a request was answered with nothing");
		return;
	}
	if (r->op == BROKERD__REQUEST__OP_FETCH)
		return;
	p = evbuffer_pullup(r->out, -1);
	if (n < 4 || p == NULL)
		die("an answer shorter than a frame prefix");
	len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if ((size_t)len + 4 != n)
		die("an answer whose frame length is not its size");
	resp = brokerd__response__unpack(NULL, len, p + 4);
	if (resp == NULL)
		die("an answer that does not decode as a Response");
	if (resp->correlation_id != r->corr)
		die("an answer with another correlation id");
	brokerd__response__free_unpacked(resp, NULL);
}

void srv_req_done(struct req *r)
{
	if (r != cur || cur_done)
		die("srv_req_done for a request not in flight");
	answers++;
	check_answer(r);
	cur_done = true;
	req_free(r);
}

void srv_req_close_after(struct req *r)
{
	(void)r;
}

/* --- the broker --------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void teardown(void)
{
	ofs_close(b.offsets);
	topic_reg_close(b.topics);
	log_ctx_free(b.ctx);
	uring_free(b.u);
	if (tick != NULL)
		event_free(tick);
	event_base_free(b.base);
	tu_rmtree(data_dir);
	free(data_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct timeval tv = { 0, 50 * 1000 };
	char err[512];
	struct topic *t;
	struct log_ctx_opts opts;

	(void)argc;
	(void)argv;
	/* quiet (quiet: every input logs a failure); FUZZ_LOG=1 shows the broker's log */
	log_msg_level = getenv("FUZZ_LOG") != NULL ? LOGL_DEBUG : LOGL_ERROR + 1;
	data_dir = tu_mkdtemp();
	if (data_dir == NULL)
		die("cannot create a temporary data directory");
	config_defaults(&b.cfg);
	if (config_set(&b.cfg, "data.dir", data_dir, err, sizeof(err)) < 0 ||
	    config_set(&b.cfg, "auto.create.topics", "true", err, sizeof(err)) < 0 ||
	    config_set(&b.cfg, "default.partitions", "2", err, sizeof(err)) < 0 ||
	    config_set(&b.cfg, "io.uring.entries", "256", err, sizeof(err)) < 0 ||
	    config_set(&b.cfg, "max.open.segments", "64", err, sizeof(err)) < 0)
		die(err);
	b.start_wall_ms = broker_wall_ms();
	b.base = event_base_new();
	if (b.base == NULL || uring_new(b.base, (unsigned)b.cfg.io_uring_entries, &b.u) < 0)
		die("no event base or io_uring");
	opts = (struct log_ctx_opts){
		.max_open_segments = (int)b.cfg.max_open_segments,
		.max_batch_bytes = (uint32_t)b.cfg.max_batch_bytes,
		.fsync_hist = &b.met.fsync_us,
	};
	if (log_ctx_new(b.u, &opts, &b.ctx) < 0 ||
	    topic_reg_open(b.cfg.data_dir, b.ctx, &b.cfg.topic_defaults, &b.topics) < 0 ||
	    ofs_open(b.cfg.data_dir, b.ctx, &b.offsets) < 0)
		die("cannot open the broker state");
	if (topic_create(b.topics, FUZZ_SEED_TOPIC, 2, NULL, NULL, 0, err, sizeof(err), &t) < 0)
		die(err);
	/* EVLOOP_ONCE returns at least this often, so waits stay bounded. */
	tick = event_new(b.base, -1, EV_PERSIST, on_tick, NULL);
	if (tick == NULL || event_add(tick, &tv) < 0)
		die("no tick timer");
	atexit(teardown);
	return 0;
}

/* Keep the registry small: delete every topic but the seed topic once
 * there are too many. */
static void prune_topics(void)
{
	size_t i = 0;

	if (topic_reg_count(b.topics) < FUZZ_MAX_TOPICS)
		return;
	while (i < topic_reg_count(b.topics)) {
		struct topic *t = topic_reg_at(b.topics, i);
		if (strcmp(topic_name(t), FUZZ_SEED_TOPIC) == 0) {
			i++;
			continue;
		}
		ofs_delete_topic(b.offsets, topic_name(t));
		if (topic_delete(b.topics, t) < 0 && topic_find(b.topics, topic_name(t)) == t)
			die("cannot delete a topic between inputs");
	}
}

/* Bounds and a convenience, applied to the decoded request. */
static void adjust(Brokerd__Request *m)
{
	if (m->op_case == BROKERD__REQUEST__OP_CREATE_TOPIC &&
	    m->create_topic->partitions > FUZZ_MAX_PARTS &&
	    m->create_topic->partitions <= TOPIC_PARTITIONS_MAX)
		m->create_topic->partitions = FUZZ_MAX_PARTS;
	/* Mutations rarely keep a CRC right: fix it (unless the correlation
	 * id is odd), so appends and the record checks behind it are reached. */
	if (m->op_case == BROKERD__REQUEST__OP_PRODUCE && !(m->correlation_id & 1) &&
	    m->produce->records.len >= BATCH_HEADER_SIZE) {
		uint8_t *p = m->produce->records.data;
		size_t n = m->produce->records.len;
		put_le32(p + BATCH_OFF_LENGTH, (uint32_t)(n - BATCH_LENGTH_END));
		put_le32(p + BATCH_OFF_CRC, batch_crc32c(0, p + BATCH_CRC_START, n - BATCH_CRC_START));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Brokerd__Request *m = brokerd__request__unpack(NULL, size, data);
	struct req *r;
	time_t deadline;

	if (m == NULL)
		return 0; /* server.c answers INVALID_REQUEST and closes */
	prune_topics();
	adjust(m);
	r = req_new(&b, NULL, size + 4);
	if (r == NULL)
		die("out of memory");
	r->msg = m;
	r->corr = m->correlation_id;
	cur = r;
	cur_done = false;
	answers = 0;
	req_handle(r);
	deadline = time(NULL) + FUZZ_REQ_SECONDS;
	while (!cur_done) {
		if (time(NULL) > deadline)
			die("a request was not answered in time");
		if (r->op == BROKERD__REQUEST__OP_FETCH && r->waiter.armed)
			req_wake(r); /* as at shutdown: answer with what there is */
		else
			event_base_loop(b.base, EVLOOP_ONCE);
	}
	if (answers != 1)
		die("a request was answered more than once");
	/* Let deferred work of this input (writes, fsyncs) finish. */
	event_base_loop(b.base, EVLOOP_NONBLOCK);
	cur = NULL;
	return 0;
}
