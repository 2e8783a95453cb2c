/* request — dispatch and handlers of every operation (see request.h).
 *
 * Response messages borrow strings from the broker's state and take
 * everything else from a per-response arena freed right after packing.
 * Fetch responses are not packed whole: the header is, and the records
 * field is appended as a length prefix plus the segment file range
 * (sendfile), which is byte-for-byte what a protobuf encoder would emit.
 */
#include "broker/request.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "broker/broker.h"
#include "broker/logging.h"
#include "broker/server.h"
#include "proto/batch.h"
#include "proto/partition.h"
#include "proto/varint.h"

#define FETCH_DEFAULT_MAX_BYTES (1u << 20)
#define FETCH_MAX_BYTES         (64u << 20)
#define PROTO_MAX_VERSION       1

/* --- arena: response-building allocations, freed together ------------------ */

struct arena {
	void **p;
	size_t n, cap;
};

static void *ar_alloc(struct arena *a, size_t n, size_t size)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		void **np = xcalloc(cap, sizeof(*np));
		if (a->n)
			memcpy(np, a->p, a->n * sizeof(*np));
		free(a->p);
		a->p = np;
		a->cap = cap;
	}
	return a->p[a->n++] = xcalloc(n, size);
}

static char *ar_strdup(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(ar_alloc(a, 1, n), s, n);
}

static void ar_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->p[i]);
	free(a->p);
}

/* --- requests ------------------------------------------------------------------ */

struct req *req_new(struct broker *b, struct conn *c, size_t bytes_in)
{
	struct req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->out = evbuffer_new();
	if (r->out == NULL) {
		free(r);
		return NULL;
	}
	/* File segments added to it stay sendfile'able once moved to the socket. */
	evbuffer_set_flags(r->out, EVBUFFER_FLAG_DRAINS_TO_FD);
	r->b = b;
	r->conn = c;
	r->bytes_in = bytes_in;
	r->t0_us = broker_mono_us();
	return r;
}

void req_free(struct req *r)
{
	if (r == NULL)
		return;
	if (r->timer != NULL)
		event_free(r->timer);
	topic_unwait(&r->waiter);
	if (r->msg != NULL)
		brokerd__request__free_unpacked(r->msg, NULL);
	if (r->out != NULL)
		evbuffer_free(r->out);
	free(r->entries);
	free(r);
}

static int op_index(int op)
{
	return op >= MET_OP_FIRST && op < MET_OP_FIRST + MET_OP_COUNT ? op - MET_OP_FIRST : -1;
}

/* Append resp (correlation id filled in) as one frame to r->out. */
static void put_frame(struct req *r, Brokerd__Response *resp)
{
	size_t n;
	struct evbuffer_iovec v;
	uint8_t *p;

	resp->correlation_id = r->corr;
	n = brokerd__response__get_packed_size(resp);
	if (evbuffer_reserve_space(r->out, (ev_ssize_t)(n + 4), &v, 1) < 1) {
		fprintf(stderr, "brokerd: out of memory for a %zu-byte response\n", n);
		abort();
	}
	p = v.iov_base;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	brokerd__response__pack(resp, p + 4);
	v.iov_len = n + 4;
	evbuffer_commit_space(r->out, &v, 1);
}

/* Count the response, then hand r back to its connection. */
static void finish(struct req *r, bool error)
{
	struct metrics *m = &r->b->met;
	int i = op_index(r->op);
	uint64_t us = (uint64_t)(broker_mono_us() - r->t0_us);

	if (i >= 0) {
		m->requests[i]++;
		m->bytes_in[i] += r->bytes_in;
		m->bytes_out[i] += evbuffer_get_length(r->out);
		if (error)
			m->errors[i]++;
	}
	if (r->op == BROKERD__REQUEST__OP_PRODUCE)
		hist_add(&m->produce_us, us);
	else if (r->op == BROKERD__REQUEST__OP_FETCH)
		hist_add(&m->fetch_us, us);
	srv_req_done(r);
}

static void respond(struct req *r, Brokerd__Response *resp)
{
	put_frame(r, resp);
	finish(r, false);
}

void req_fail(struct req *r, Brokerd__ErrorCode code, const char *fmt, ...)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	resp.error = code;
	resp.error_message = msg;
	log_msg(LOGL_DEBUG, "request %llu (op %d) failed: %s", (unsigned long long)r->corr,
		r->op, msg);
	/* acks=none is never answered, not even with an error (metrics count it) */
	if (!(r->op == BROKERD__REQUEST__OP_PRODUCE && r->msg->produce->acks == BROKERD__ACKS__ACKS_NONE))
		put_frame(r, &resp);
	finish(r, true);
}

Brokerd__ErrorCode req_errcode(int err)
{
	switch (err) {
	case 0:
		return BROKERD__ERROR_CODE__OK;
	case -EINVAL:
		return BROKERD__ERROR_CODE__INVALID_REQUEST;
	case -EBADMSG:
		return BROKERD__ERROR_CODE__CORRUPT_RECORD_BATCH;
	case -EPROTONOSUPPORT:
		return BROKERD__ERROR_CODE__INVALID_RECORD_BATCH;
	case -EMSGSIZE:
		return BROKERD__ERROR_CODE__MESSAGE_TOO_LARGE;
	case -ENOSPC:
	case -EDQUOT:
		return BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE;
	case -EROFS:
	case -EIO:
		return BROKERD__ERROR_CODE__STORAGE_ERROR;
	case -EUCLEAN:
		return BROKERD__ERROR_CODE__CORRUPT_DATA;
	case -ERANGE:
		return BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE;
	case -EEXIST:
		return BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS;
	case -ECANCELED:
		return BROKERD__ERROR_CODE__BROKER_SHUTTING_DOWN;
	default:
		return BROKERD__ERROR_CODE__UNKNOWN_SERVER_ERROR;
	}
}

/* --- topics ------------------------------------------------------------------------- */

/* Whether `name` is a valid topic name; if not, r failed with
 * INVALID_TOPIC_NAME naming the problem.  Every entry point that takes a
 * topic name checks it before it can reach a file name or a log line, so
 * the answer never echoes its bytes (a protobuf string must stay valid
 * UTF-8).  A registered name passed this check when it was created, so a
 * lookup checks only a name it does not find.  A NUL inside is refused by
 * the server. */
static bool check_topic_name(struct req *r, const char *name)
{
	char err[256];

	if (topic_name_check(name, strlen(name), err, sizeof(err)) == 0)
		return true;
	req_fail(r, BROKERD__ERROR_CODE__INVALID_TOPIC_NAME, "invalid topic name: %s", err);
	return false;
}

/* The topic named `name`, or NULL after failing r with INVALID_TOPIC_NAME
 * or UNKNOWN_TOPIC. */
static struct topic *need_topic(struct req *r, const char *name)
{
	struct topic *t = topic_find(r->b->topics, name);

	if (t == NULL && check_topic_name(r, name))
		req_fail(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC, "topic '%s' does not exist", name);
	return t;
}

/* The log of t's partition p, or NULL after failing r. */
static struct log *need_partition(struct req *r, struct topic *t, uint32_t p)
{
	if (p >= (uint32_t)topic_partitions(t)) {
		req_fail(r, BROKERD__ERROR_CODE__UNKNOWN_PARTITION,
			 "topic '%s' has no partition %u (it has %d)", topic_name(t), p,
			 topic_partitions(t));
		return NULL;
	}
	return topic_log(t, (int)p);
}

struct cfg_fill {
	struct arena *ar;
	Brokerd__ConfigEntry **v;
	size_t n;
};

static void fill_config(const char *key, const char *value, bool is_default, void *arg)
{
	struct cfg_fill *f = arg;
	Brokerd__ConfigEntry *e = ar_alloc(f->ar, 1, sizeof(*e));

	brokerd__config_entry__init(e);
	e->name = ar_strdup(f->ar, key);
	e->value = ar_strdup(f->ar, value);
	e->is_default = is_default;
	if (f->v != NULL)
		f->v[f->n] = e;
	f->n++;
}

static void count_config(const char *key, const char *value, bool is_default, void *arg)
{
	(void)key;
	(void)value;
	(void)is_default;
	(*(size_t *)arg)++;
}

static Brokerd__ConfigEntry **describe_configs(struct arena *ar, const struct topic *t, size_t *n)
{
	struct cfg_fill f = { .ar = ar };
	size_t count = 0;

	topic_config_each(t, count_config, &count);
	f.v = ar_alloc(ar, count ? count : 1, sizeof(*f.v));
	topic_config_each(t, fill_config, &f);
	*n = f.n;
	return f.v;
}

static void fill_partition(struct arena *ar, Brokerd__PartitionInfo *pi, struct log *l, int p)
{
	int err = log_error(l);

	brokerd__partition_info__init(pi);
	pi->partition = (uint32_t)p;
	pi->log_start_offset = log_start_offset(l);
	pi->high_watermark = log_high_watermark(l);
	pi->log_end_offset = log_end_offset(l);
	pi->size_bytes = log_size_bytes(l);
	pi->segment_count = (uint32_t)log_segment_count(l);
	if (err != 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "partition is read-only after a storage error: %s",
			 strerror(-err));
		pi->error = req_errcode(err);
		pi->error_message = ar_strdup(ar, msg);
	}
}

static Brokerd__TopicDescription *describe(struct arena *ar, const struct topic *t)
{
	Brokerd__TopicDescription *d = ar_alloc(ar, 1, sizeof(*d));
	int n = topic_partitions(t);

	brokerd__topic_description__init(d);
	d->name = (char *)topic_name(t);
	d->topic_id = topic_id(t);
	d->created_ms = topic_created_ms(t);
	d->partition_count = (uint32_t)n;
	d->configs = describe_configs(ar, t, &d->n_configs);
	d->partitions = ar_alloc(ar, (size_t)n, sizeof(*d->partitions));
	d->n_partitions = (size_t)n;
	for (int p = 0; p < n; p++) {
		d->partitions[p] = ar_alloc(ar, 1, sizeof(**d->partitions));
		fill_partition(ar, d->partitions[p], topic_log(t, p), p);
	}
	return d;
}

/* Map a topic-module error with its message to the wire. */
static void fail_topic(struct req *r, int rc, const char *what, const char *err)
{
	Brokerd__ErrorCode code;

	switch (rc) {
	case -EINVAL:
		code = BROKERD__ERROR_CODE__INVALID_TOPIC_NAME;
		break;
	case -EEXIST:
		code = BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS;
		break;
	case -ERANGE:
		code = BROKERD__ERROR_CODE__INVALID_PARTITIONS;
		break;
	case -ENOENT:
	case -EDOM:
		code = BROKERD__ERROR_CODE__INVALID_CONFIG;
		break;
	default:
		code = req_errcode(rc);
		break;
	}
	if (err[0] != '\0')
		req_fail(r, code, "%s: %s", what, err);
	else
		req_fail(r, code, "%s: %s", what, strerror(-rc));
}

static void op_create_topic(struct req *r, Brokerd__CreateTopicRequest *q)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__CreateTopicResponse body = BROKERD__CREATE_TOPIC_RESPONSE__INIT;
	struct arena ar = { 0 };
	const char **keys, **values;
	char err[256] = "", what[320];
	int64_t parts = q->partitions ? (int64_t)q->partitions : r->b->cfg.default_partitions;
	struct topic *t;
	int rc;

	if (!check_topic_name(r, q->topic))
		return;
	keys = ar_alloc(&ar, q->n_configs + 1, sizeof(*keys));
	values = ar_alloc(&ar, q->n_configs + 1, sizeof(*values));
	for (size_t i = 0; i < q->n_configs; i++) {
		keys[i] = q->configs[i]->key;
		values[i] = q->configs[i]->value;
	}
	if (parts > TOPIC_PARTITIONS_MAX) {
		ar_free(&ar);
		req_fail(r, BROKERD__ERROR_CODE__INVALID_PARTITIONS,
			 "cannot create topic '%s': %lld partitions requested, at most %d",
			 q->topic, (long long)parts, TOPIC_PARTITIONS_MAX);
		return;
	}
	rc = topic_create(r->b->topics, q->topic, (int)parts, keys, values, q->n_configs, err,
			  sizeof(err), &t);
	if (rc < 0) {
		ar_free(&ar);
		snprintf(what, sizeof(what), "cannot create topic '%.249s'", q->topic);
		fail_topic(r, rc, what, err);
		return;
	}
	log_msg(LOGL_INFO, "created topic '%s' with %d partitions", q->topic, (int)parts);
	body.topic = describe(&ar, t);
	resp.op_case = BROKERD__RESPONSE__OP_CREATE_TOPIC;
	resp.create_topic = &body;
	respond(r, &resp);
	ar_free(&ar);
}

static void op_delete_topic(struct req *r, Brokerd__DeleteTopicRequest *q)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__DeleteTopicResponse body = BROKERD__DELETE_TOPIC_RESPONSE__INIT;
	struct topic *t = need_topic(r, q->topic);
	int rc;

	if (t == NULL)
		return;
	rc = topic_delete(r->b->topics, t);
	if (rc < 0 && topic_find(r->b->topics, q->topic) != NULL) {
		req_fail(r, req_errcode(rc), "cannot delete topic '%s': %s", q->topic,
			 strerror(-rc));
		return;
	}
	if (rc < 0)
		log_msg_errno(LOGL_WARN, rc, "topic '%s' deleted; removing its files failed",
			      q->topic);
	ofs_delete_topic(r->b->offsets, q->topic);
	log_msg(LOGL_INFO, "deleted topic '%s'", q->topic);
	resp.op_case = BROKERD__RESPONSE__OP_DELETE_TOPIC;
	resp.delete_topic = &body;
	respond(r, &resp);
}

static void op_list_topics(struct req *r)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__ListTopicsResponse body = BROKERD__LIST_TOPICS_RESPONSE__INIT;
	struct arena ar = { 0 };
	size_t n = topic_reg_count(r->b->topics);

	body.topics = ar_alloc(&ar, n ? n : 1, sizeof(*body.topics));
	body.n_topics = n;
	for (size_t i = 0; i < n; i++) {
		struct topic *t = topic_reg_at(r->b->topics, i);
		Brokerd__TopicSummary *s = ar_alloc(&ar, 1, sizeof(*s));
		brokerd__topic_summary__init(s);
		s->name = (char *)topic_name(t);
		s->partition_count = (uint32_t)topic_partitions(t);
		for (int p = 0; p < topic_partitions(t); p++)
			s->size_bytes += log_size_bytes(topic_log(t, p));
		body.topics[i] = s;
	}
	resp.op_case = BROKERD__RESPONSE__OP_LIST_TOPICS;
	resp.list_topics = &body;
	respond(r, &resp);
	ar_free(&ar);
}

static void op_describe_topic(struct req *r, Brokerd__DescribeTopicRequest *q)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__DescribeTopicResponse body = BROKERD__DESCRIBE_TOPIC_RESPONSE__INIT;
	struct topic *t = need_topic(r, q->topic);
	struct arena ar = { 0 };

	if (t == NULL)
		return;
	body.topic = describe(&ar, t);
	resp.op_case = BROKERD__RESPONSE__OP_DESCRIBE_TOPIC;
	resp.describe_topic = &body;
	respond(r, &resp);
	ar_free(&ar);
}

static void op_alter_topic_config(struct req *r, Brokerd__AlterTopicConfigRequest *q)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__AlterTopicConfigResponse body = BROKERD__ALTER_TOPIC_CONFIG_RESPONSE__INIT;
	struct topic *t = need_topic(r, q->topic);
	struct arena ar = { 0 };
	const char **keys, **values;
	char err[256] = "", what[320];
	int rc;

	if (t == NULL)
		return;
	keys = ar_alloc(&ar, q->n_set + 1, sizeof(*keys));
	values = ar_alloc(&ar, q->n_set + 1, sizeof(*values));
	for (size_t i = 0; i < q->n_set; i++) {
		keys[i] = q->set[i]->key;
		values[i] = q->set[i]->value;
	}
	rc = topic_alter(r->b->topics, t, keys, values, q->n_set, (const char *const *)q->reset,
			 q->n_reset, err, sizeof(err));
	if (rc < 0) {
		ar_free(&ar);
		snprintf(what, sizeof(what), "cannot alter topic '%.249s'", q->topic);
		fail_topic(r, rc, what, err);
		return;
	}
	log_msg(LOGL_INFO, "altered the configuration of topic '%s'", q->topic);
	body.configs = describe_configs(&ar, t, &body.n_configs);
	resp.op_case = BROKERD__RESPONSE__OP_ALTER_TOPIC_CONFIG;
	resp.alter_topic_config = &body;
	respond(r, &resp);
	ar_free(&ar);
}

/* --- produce ---------------------------------------------------------------------------- */

static void on_appended(struct log_append *a, int res)
{
	struct req *r = a->arg;
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__ProduceResponse body = BROKERD__PRODUCE_RESPONSE__INIT;
	Brokerd__ProduceRequest *q = r->msg->produce;
	struct log *l = r->log;

	r->log = NULL;
	if (res < 0) {
		const char *why = res == -ECANCELED
					  ? "the topic was deleted or the broker is shutting down"
					  : strerror(-res);
		req_fail(r, res == -ECANCELED && !r->b->stopping ? BROKERD__ERROR_CODE__UNKNOWN_TOPIC
								: req_errcode(res),
			 "produce to '%s' partition %u failed: %s", q->topic, r->partition, why);
		return;
	}
	r->b->met.records_in += (uint64_t)(a->end_offset - a->base_offset);
	if (q->acks == BROKERD__ACKS__ACKS_NONE) {
		finish(r, false);
		return;
	}
	body.partition = r->partition;
	body.base_offset = a->base_offset;
	body.log_append_time_ms = a->append_time;
	body.log_start_offset = log_start_offset(l);
	resp.op_case = BROKERD__RESPONSE__OP_PRODUCE;
	resp.produce = &body;
	respond(r, &resp);
}

/* The topic to produce to, created on first use when auto.create.topics. */
static struct topic *produce_topic(struct req *r, const char *name)
{
	struct topic *t;
	char err[256] = "", what[320];
	int rc;

	t = topic_find(r->b->topics, name);
	if (t != NULL || !r->b->cfg.auto_create_topics)
		return t != NULL ? t : need_topic(r, name);
	if (!check_topic_name(r, name))
		return NULL;
	rc = topic_create(r->b->topics, name, (int)r->b->cfg.default_partitions, NULL, NULL, 0,
			  err, sizeof(err), &t);
	if (rc < 0) {
		snprintf(what, sizeof(what), "cannot auto-create topic '%.249s'", name);
		fail_topic(r, rc, what, err);
		return NULL;
	}
	log_msg(LOGL_INFO, "auto-created topic '%s' with %lld partitions", name,
		(long long)r->b->cfg.default_partitions);
	return t;
}

/* The batch's largest timestamp is at most message.timestamp.after.max.ms
 * ahead of the broker clock: the later of the wall clock and the retention
 * clock, so a wall-clock step of the broker in either direction does not
 * turn producers with a correct clock away.  Returns true if it is (or the
 * header does not decode: log_append then names what is wrong); else r is
 * answered INVALID_RECORD_BATCH naming the timestamp and the bound. */
static bool produce_ts_ok(struct req *r, const struct topic *t, Brokerd__ProduceRequest *q,
			  uint32_t p)
{
	int64_t bound = topic_config(t)->timestamp_after_max_ms;
	int64_t now = broker_wall_ms(), ret = log_ctx_retention_ms(r->b->ctx);
	struct batch_header h;

	if (bound < 0 || batch_header_decode(q->records.data, q->records.len, &h) < 0)
		return true;
	if (ret > now)
		now = ret;
	if (h.max_timestamp <= now || h.max_timestamp - now <= bound)
		return true;
	req_fail(r, BROKERD__ERROR_CODE__INVALID_RECORD_BATCH,
		 "produce to '%s' partition %u rejected: record timestamp %lld is %lld ms ahead "
		 "of the broker clock %lld, more than message.timestamp.after.max.ms = %lld",
		 q->topic, p, (long long)h.max_timestamp, (long long)(h.max_timestamp - now),
		 (long long)now, (long long)bound);
	return false;
}

static void op_produce(struct req *r, Brokerd__ProduceRequest *q)
{
	struct topic *t;
	struct log *l;
	uint32_t p;
	int rc;

	if (q->acks != BROKERD__ACKS__ACKS_ALL && q->acks != BROKERD__ACKS__ACKS_LEADER &&
	    q->acks != BROKERD__ACKS__ACKS_NONE) {
		req_fail(r, BROKERD__ERROR_CODE__INVALID_REQUEST, "unknown acks value %d", (int)q->acks);
		return;
	}
	if (q->records.len == 0) {
		req_fail(r, BROKERD__ERROR_CODE__INVALID_RECORD_BATCH, "produce request has no records");
		return;
	}
	t = produce_topic(r, q->topic);
	if (t == NULL)
		return;
	switch (q->partitioner_case) {
	case BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION:
		p = q->partition;
		break;
	case BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION_KEY:
		p = part_for_key(q->partition_key.data, q->partition_key.len,
				 (uint32_t)topic_partitions(t));
		break;
	default:
		p = (uint32_t)topic_next_partition(t);
		break;
	}
	l = need_partition(r, t, p);
	if (l == NULL || !produce_ts_ok(r, t, q, p))
		return;
	r->partition = p;
	r->app = (struct log_append){
		.buf = q->records.data,
		.len = q->records.len,
		.acks = q->acks == BROKERD__ACKS__ACKS_ALL      ? LOG_ACKS_ALL
			: q->acks == BROKERD__ACKS__ACKS_LEADER ? LOG_ACKS_LEADER
								: LOG_ACKS_NONE,
		.cb = on_appended,
		.arg = r,
	};
	rc = log_append(l, &r->app);
	if (rc < 0) {
		const char *why = rc == -EBADMSG	 ? "CRC-32C mismatch"
				  : rc == -EMSGSIZE	 ? "batch larger than max.batch.bytes"
				  : rc == -EROFS	 ? "partition is read-only after a storage error"
				  : rc == -EPROTONOSUPPORT ? "unsupported batch format or codec"
				  : rc == -EINVAL	 ? "malformed record batch"
							 : strerror(-rc);
		/* A read-only partition names the error that made it so. */
		const char *cause = rc == -EROFS && log_error(l) < 0 ? strerror(-log_error(l)) : NULL;
		req_fail(r, rc == -EINVAL ? BROKERD__ERROR_CODE__INVALID_RECORD_BATCH : req_errcode(rc),
			 "produce to '%s' partition %u rejected: %s%s%s%s (%zu bytes)", q->topic, p,
			 why, cause ? " (" : "", cause ? cause : "", cause ? ")" : "",
			 q->records.len);
		return;
	}
	r->log = l;
}

/* --- fetch ---------------------------------------------------------------------------------- */

static void on_segment_unused(struct evbuffer_file_segment const *seg, int flags, void *arg)
{
	struct log_slice *s = arg;

	(void)seg;
	(void)flags;
	log_slice_release(s);
	free(s);
}

/* Answer r with the slice's batches: the envelope and FetchResponse header
 * are packed, the records field is a tag and length, then the file range.
 * Takes the slice (released when the bytes have been sent). */
static void respond_fetch(struct req *r, struct log *l, const struct log_slice *slice)
{
	Brokerd__Response env = BROKERD__RESPONSE__INIT;
	Brokerd__FetchResponse body = BROKERD__FETCH_RESPONSE__INIT;
	uint8_t tag_rec = (15 << 3) | 2;
	uint64_t tag_fetch = (BROKERD__RESPONSE__OP_FETCH << 3) | 2;
	uint8_t hdr[64];
	size_t henv, hbody, nbody, frame, h = 0;
	uint8_t *buf;

	body.partition = r->partition;
	body.high_watermark = log_high_watermark(l);
	body.log_start_offset = log_start_offset(l);
	body.next_offset = slice->len ? slice->next_offset : r->msg->fetch->offset;
	env.correlation_id = r->corr;
	henv = brokerd__response__get_packed_size(&env);
	hbody = brokerd__fetch_response__get_packed_size(&body);
	nbody = hbody + (slice->len ? 1 + varint_size(slice->len) + slice->len : 0);
	frame = henv + varint_size(tag_fetch) + varint_size(nbody) + nbody;
	buf = xcalloc(1, 4 + henv + 32 + hbody);
	buf[0] = (uint8_t)(frame >> 24);
	buf[1] = (uint8_t)(frame >> 16);
	buf[2] = (uint8_t)(frame >> 8);
	buf[3] = (uint8_t)frame;
	h = 4 + brokerd__response__pack(&env, buf + 4);
	h += varint_put(buf + h, tag_fetch);
	h += varint_put(buf + h, nbody);
	h += brokerd__fetch_response__pack(&body, buf + h);
	evbuffer_add(r->out, buf, h);
	free(buf);
	if (slice->len) {
		struct log_slice *held = xcalloc(1, sizeof(*held));
		struct evbuffer_file_segment *seg;

		*held = *slice;
		hdr[0] = tag_rec;
		evbuffer_add(r->out, hdr, 1 + varint_put(hdr + 1, slice->len));
		seg = evbuffer_file_segment_new(slice->fd, (ev_off_t)slice->pos,
						(ev_off_t)slice->len, EVBUF_FS_DISABLE_LOCKING);
		if (seg == NULL || evbuffer_add_file_segment(r->out, seg, 0,
							     (ev_off_t)slice->len) < 0) {
			fprintf(stderr, "brokerd: cannot queue a file segment for a fetch\n");
			abort();
		}
		evbuffer_file_segment_add_cleanup_cb(seg, on_segment_unused, held);
		evbuffer_file_segment_free(seg);
	}
	finish(r, false);
}

static void fetch_stop_waiting(struct req *r)
{
	topic_unwait(&r->waiter);
	if (r->timer != NULL)
		evtimer_del(r->timer);
}

/* Answer the fetch if it has enough (or `final`).  Returns true if r was
 * answered, and then r may already be freed. */
static bool fetch_try(struct req *r, bool final)
{
	Brokerd__FetchRequest *q = r->msg->fetch;
	uint64_t max = q->max_bytes ? q->max_bytes : FETCH_DEFAULT_MAX_BYTES;
	uint64_t min = q->min_bytes ? q->min_bytes : 1;
	struct log_slice s;
	int rc;

	if (max > FETCH_MAX_BYTES)
		max = FETCH_MAX_BYTES;
	rc = log_read(r->log, q->offset, max, &s);
	if (rc == 0 && s.len < min && !final && q->max_wait_ms > 0) {
		log_slice_release(&s);
		return false;
	}
	/* Answering may free r: stop waiting first. */
	fetch_stop_waiting(r);
	if (rc == -ERANGE) {
		req_fail(r, BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE,
			 "offset %lld is out of range for '%s' partition %u (log start %lld, high watermark %lld)",
			 (long long)q->offset, q->topic, r->partition,
			 (long long)log_start_offset(r->log), (long long)log_high_watermark(r->log));
		return true;
	}
	if (rc == -EUCLEAN) {
		req_fail(r, BROKERD__ERROR_CODE__CORRUPT_DATA, "'%s' partition %u: %s", q->topic,
			 r->partition, log_corruption(r->log));
		return true;
	}
	if (rc < 0) {
		req_fail(r, req_errcode(rc), "fetch from '%s' partition %u failed: %s", q->topic,
			 r->partition, strerror(-rc));
		return true;
	}
	respond_fetch(r, r->log, &s);
	return true;
}

static void on_fetch_wake(struct topic_waiter *w, int reason)
{
	struct req *r = (struct req *)((char *)w - offsetof(struct req, waiter));

	if (reason < 0) {
		fetch_stop_waiting(r);
		req_fail(r, BROKERD__ERROR_CODE__UNKNOWN_TOPIC,
			 "topic '%s' was deleted while fetching", r->msg->fetch->topic);
		return;
	}
	if (!fetch_try(r, false))
		topic_wait(r->topic, (int)r->partition, &r->waiter);
}

static void on_fetch_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct req *r = arg;

	(void)fd;
	(void)what;
	fetch_try(r, true);
}

void req_wake(struct req *r)
{
	if (r->op == BROKERD__REQUEST__OP_FETCH && r->waiter.armed)
		fetch_try(r, true);
}

static void op_fetch(struct req *r, Brokerd__FetchRequest *q)
{
	struct topic *t = need_topic(r, q->topic);
	struct timeval tv;
	struct log *l;

	if (t == NULL || (l = need_partition(r, t, q->partition)) == NULL)
		return; /* r is answered (and may be freed) */
	r->log = l;
	r->partition = q->partition;
	if (fetch_try(r, false))
		return;
	r->topic = t;
	r->waiter.wake = on_fetch_wake;
	r->timer = evtimer_new(r->b->base, on_fetch_timeout, r);
	if (r->timer == NULL) {
		fetch_try(r, true);
		return;
	}
	tv.tv_sec = q->max_wait_ms / 1000;
	tv.tv_usec = (suseconds_t)(q->max_wait_ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
	topic_wait(t, (int)q->partition, &r->waiter);
}

static void op_list_offsets(struct req *r, Brokerd__ListOffsetsRequest *q)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__ListOffsetsResponse body = BROKERD__LIST_OFFSETS_RESPONSE__INIT;
	struct topic *t = need_topic(r, q->topic);
	struct log *l;
	int rc;

	if (t == NULL || (l = need_partition(r, t, q->partition)) == NULL)
		return;
	if (q->timestamp == -2) {
		body.offset = log_start_offset(l);
	} else if (q->timestamp == -1) {
		body.offset = log_high_watermark(l);
	} else if (q->timestamp >= 0) {
		rc = log_offset_for_time(l, q->timestamp, &body.offset);
		if (rc < 0) {
			req_fail(r, req_errcode(rc), "cannot look up time %lld in '%s' partition %u: %s",
				 (long long)q->timestamp, q->topic, q->partition, strerror(-rc));
			return;
		}
		if (body.offset > log_high_watermark(l))
			body.offset = log_high_watermark(l);
	} else {
		req_fail(r, BROKERD__ERROR_CODE__INVALID_REQUEST,
			 "timestamp %lld: use -2 (earliest), -1 (latest) or a time in ms >= 0",
			 (long long)q->timestamp);
		return;
	}
	body.log_start_offset = log_start_offset(l);
	body.high_watermark = log_high_watermark(l);
	resp.op_case = BROKERD__RESPONSE__OP_LIST_OFFSETS;
	resp.list_offsets = &body;
	respond(r, &resp);
}

/* --- consumer offsets ---------------------------------------------------------------------- */

/* Index of the first byte of s[0..n) that is not part of well-formed
 * UTF-8 (no overlong forms, surrogates or code points above U+10FFFF), or
 * n if there is none. */
static size_t utf8_bad_at(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], len, cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, cp = c & 0x07, min = 0x10000;
		else
			return i;
		if (n - i < len)
			return i;
		for (unsigned k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += len;
	}
	return n;
}

/* Group ids are stored (offsets log, snapshot) and shown (list_groups,
 * logs): 1..OFS_GROUP_MAX bytes of UTF-8 without control characters.  A
 * NUL inside is refused by the server.  The answer never echoes the id. */
static bool check_group(struct req *r, const char *group)
{
	const unsigned char *g = (const unsigned char *)group;
	size_t n = strlen(group), bad;

	if (n == 0 || n > OFS_GROUP_MAX) {
		req_fail(r, BROKERD__ERROR_CODE__INVALID_GROUP,
			 "group id must be 1 to %d bytes, got %zu", OFS_GROUP_MAX, n);
		return false;
	}
	bad = utf8_bad_at(g, n);
	if (bad < n) {
		req_fail(r, BROKERD__ERROR_CODE__INVALID_GROUP,
			 "group id is not valid UTF-8 (byte 0x%02x at byte %zu)", g[bad], bad);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (g[i] < 0x20 || g[i] == 0x7f) {
			req_fail(r, BROKERD__ERROR_CODE__INVALID_GROUP,
				 "group id contains a control character (byte 0x%02x) at byte %zu",
				 g[i], i);
			return false;
		}
	return true;
}

static void on_offsets_done(struct ofs_op *op, int res)
{
	struct req *r = op->arg;
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__CommitOffsetsResponse commit = BROKERD__COMMIT_OFFSETS_RESPONSE__INIT;
	Brokerd__DeleteGroupResponse del = BROKERD__DELETE_GROUP_RESPONSE__INIT;

	if (res < 0) {
		req_fail(r, req_errcode(res), "offsets store write failed: %s", strerror(-res));
		return;
	}
	if (r->op == BROKERD__REQUEST__OP_COMMIT_OFFSETS) {
		resp.op_case = BROKERD__RESPONSE__OP_COMMIT_OFFSETS;
		resp.commit_offsets = &commit;
	} else {
		resp.op_case = BROKERD__RESPONSE__OP_DELETE_GROUP;
		resp.delete_group = &del;
	}
	respond(r, &resp);
}

static void op_commit_offsets(struct req *r, Brokerd__CommitOffsetsRequest *q)
{
	int rc;

	if (!check_group(r, q->group))
		return;
	if (q->n_offsets == 0) {
		req_fail(r, BROKERD__ERROR_CODE__INVALID_REQUEST, "commit with no offsets");
		return;
	}
	r->entries = xcalloc(q->n_offsets, sizeof(*r->entries));
	for (size_t i = 0; i < q->n_offsets; i++) {
		Brokerd__OffsetCommit *c = q->offsets[i];
		struct topic *t = need_topic(r, c->topic);
		if (t == NULL || need_partition(r, t, c->partition) == NULL)
			return;
		if (c->offset < 0) {
			req_fail(r, BROKERD__ERROR_CODE__INVALID_REQUEST,
				 "offset %lld for '%s' partition %u is negative", (long long)c->offset,
				 c->topic, c->partition);
			return;
		}
		if (strlen(c->metadata) > OFS_METADATA_MAX) {
			req_fail(r, BROKERD__ERROR_CODE__INVALID_REQUEST,
				 "metadata for '%s' partition %u is longer than %d bytes", c->topic,
				 c->partition, OFS_METADATA_MAX);
			return;
		}
		r->entries[i] = (struct ofs_entry){ c->topic, c->partition, c->offset, c->metadata };
	}
	r->ofs.cb = on_offsets_done;
	r->ofs.arg = r;
	rc = ofs_commit(r->b->offsets, q->group, r->entries, q->n_offsets, &r->ofs);
	if (rc < 0)
		req_fail(r, req_errcode(rc), "cannot commit offsets of group '%s': %s", q->group,
			 strerror(-rc));
}

/* Lag of a committed offset, or -1 when the partition is gone. */
static int64_t hw_of(struct broker *b, const char *topic, uint32_t p)
{
	struct topic *t = topic_find(b->topics, topic);

	if (t == NULL || p >= (uint32_t)topic_partitions(t))
		return -1;
	return log_high_watermark(topic_log(t, (int)p));
}

static void fill_committed(struct broker *b, Brokerd__CommittedOffset *co, const char *topic,
			   uint32_t p, const struct ofs_value *v)
{
	brokerd__committed_offset__init(co);
	co->topic = (char *)topic;
	co->partition = p;
	co->offset = v != NULL ? v->offset : -1;
	co->metadata = v != NULL && v->metadata != NULL ? (char *)v->metadata : (char *)"";
	co->commit_time_ms = v != NULL ? v->commit_time_ms : 0;
	co->high_watermark = hw_of(b, topic, p);
	co->lag = co->high_watermark >= 0 && co->offset >= 0 ? co->high_watermark - co->offset : -1;
	if (co->lag < -1)
		co->lag = 0;
}

struct committed_fill {
	struct broker *b;
	struct arena *ar;
	Brokerd__CommittedOffset **v;
	size_t n, cap;
};

static void collect_committed(const char *topic, uint32_t p, const struct ofs_value *v, void *arg)
{
	struct committed_fill *f = arg;
	Brokerd__CommittedOffset *co;

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		Brokerd__CommittedOffset **nv = ar_alloc(f->ar, cap, sizeof(*nv));
		if (f->n)
			memcpy(nv, f->v, f->n * sizeof(*nv));
		f->v = nv;
		f->cap = cap;
	}
	co = ar_alloc(f->ar, 1, sizeof(*co));
	fill_committed(f->b, co, topic, p, v);
	f->v[f->n++] = co;
}

static void op_fetch_offsets(struct req *r, Brokerd__FetchOffsetsRequest *q)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__FetchOffsetsResponse body = BROKERD__FETCH_OFFSETS_RESPONSE__INIT;
	struct arena ar = { 0 };
	struct committed_fill f = { .b = r->b, .ar = &ar };

	if (!check_group(r, q->group))
		return;
	if (q->n_partitions == 0) {
		ofs_each(r->b->offsets, q->group, collect_committed, &f);
	} else {
		for (size_t i = 0; i < q->n_partitions; i++) {
			struct ofs_value v;
			const Brokerd__TopicPartition *tp = q->partitions[i];
			int rc;

			if (!check_topic_name(r, tp->topic)) {
				ar_free(&ar);
				return;
			}
			rc = ofs_get(r->b->offsets, q->group, tp->topic, tp->partition, &v);
			collect_committed(tp->topic, tp->partition, rc == 0 ? &v : NULL, &f);
		}
	}
	body.offsets = f.v;
	body.n_offsets = f.n;
	resp.op_case = BROKERD__RESPONSE__OP_FETCH_OFFSETS;
	resp.fetch_offsets = &body;
	respond(r, &resp);
	ar_free(&ar);
}

struct group_fill {
	struct broker *b;
	struct arena *ar;
	Brokerd__GroupSummary **v;
	size_t n, cap;
};

static void collect_group(const char *group, size_t partitions, void *arg)
{
	struct group_fill *f = arg;
	Brokerd__GroupSummary *g;
	struct committed_fill cf = { .b = f->b, .ar = f->ar };

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		Brokerd__GroupSummary **nv = ar_alloc(f->ar, cap, sizeof(*nv));
		if (f->n)
			memcpy(nv, f->v, f->n * sizeof(*nv));
		f->v = nv;
		f->cap = cap;
	}
	g = ar_alloc(f->ar, 1, sizeof(*g));
	brokerd__group_summary__init(g);
	g->group = ar_strdup(f->ar, group);
	g->partitions = (uint32_t)partitions;
	ofs_each(f->b->offsets, group, collect_committed, &cf);
	for (size_t i = 0; i < cf.n; i++)
		if (cf.v[i]->lag > 0)
			g->lag += cf.v[i]->lag;
	f->v[f->n++] = g;
}

static void op_list_groups(struct req *r)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__ListGroupsResponse body = BROKERD__LIST_GROUPS_RESPONSE__INIT;
	struct arena ar = { 0 };
	struct group_fill f = { .b = r->b, .ar = &ar };

	ofs_each_group(r->b->offsets, collect_group, &f);
	body.groups = f.v;
	body.n_groups = f.n;
	resp.op_case = BROKERD__RESPONSE__OP_LIST_GROUPS;
	resp.list_groups = &body;
	respond(r, &resp);
	ar_free(&ar);
}

static void op_delete_group(struct req *r, Brokerd__DeleteGroupRequest *q)
{
	int rc;

	if (!check_group(r, q->group))
		return;
	r->ofs.cb = on_offsets_done;
	r->ofs.arg = r;
	rc = ofs_delete_group(r->b->offsets, q->group, &r->ofs);
	if (rc == -ENOENT)
		req_fail(r, BROKERD__ERROR_CODE__UNKNOWN_GROUP, "group '%s' has no committed offsets",
			 q->group);
	else if (rc < 0)
		req_fail(r, req_errcode(rc), "cannot delete group '%s': %s", q->group, strerror(-rc));
}

/* --- broker ------------------------------------------------------------------------------------- */

static const struct {
	int key;
	const char *name;
} ops[] = {
	{ BROKERD__REQUEST__OP_API_VERSIONS, "api_versions" },
	{ BROKERD__REQUEST__OP_CREATE_TOPIC, "create_topic" },
	{ BROKERD__REQUEST__OP_DELETE_TOPIC, "delete_topic" },
	{ BROKERD__REQUEST__OP_LIST_TOPICS, "list_topics" },
	{ BROKERD__REQUEST__OP_DESCRIBE_TOPIC, "describe_topic" },
	{ BROKERD__REQUEST__OP_ALTER_TOPIC_CONFIG, "alter_topic_config" },
	{ BROKERD__REQUEST__OP_PRODUCE, "produce" },
	{ BROKERD__REQUEST__OP_FETCH, "fetch" },
	{ BROKERD__REQUEST__OP_LIST_OFFSETS, "list_offsets" },
	{ BROKERD__REQUEST__OP_COMMIT_OFFSETS, "commit_offsets" },
	{ BROKERD__REQUEST__OP_FETCH_OFFSETS, "fetch_offsets" },
	{ BROKERD__REQUEST__OP_LIST_GROUPS, "list_groups" },
	{ BROKERD__REQUEST__OP_DELETE_GROUP, "delete_group" },
	{ BROKERD__REQUEST__OP_BROKER_STATUS, "broker_status" },
};

static void op_api_versions(struct req *r)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__ApiVersionsResponse body = BROKERD__API_VERSIONS_RESPONSE__INIT;
	Brokerd__ApiVersion v[sizeof(ops) / sizeof(ops[0])];
	Brokerd__ApiVersion *pv[sizeof(ops) / sizeof(ops[0])];

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		brokerd__api_version__init(&v[i]);
		v[i].key = (uint32_t)ops[i].key;
		v[i].name = (char *)ops[i].name;
		v[i].min_version = 1;
		v[i].max_version = PROTO_MAX_VERSION;
		pv[i] = &v[i];
	}
	body.broker_version = (char *)BROKERD_VERSION;
	body.apis = pv;
	body.n_apis = sizeof(ops) / sizeof(ops[0]);
	body.max_request_bytes = (uint64_t)r->b->cfg.max_request_bytes;
	body.max_batch_bytes = (uint64_t)r->b->cfg.max_batch_bytes;
	resp.op_case = BROKERD__RESPONSE__OP_API_VERSIONS;
	resp.api_versions = &body;
	respond(r, &resp);
}

static void op_broker_status(struct req *r)
{
	Brokerd__Response resp = BROKERD__RESPONSE__INIT;
	Brokerd__BrokerStatusResponse body = BROKERD__BROKER_STATUS_RESPONSE__INIT;
	struct broker *b = r->b;
	size_t n = topic_reg_count(b->topics);
	struct statvfs sv;

	body.broker_version = (char *)BROKERD_VERSION;
	body.uptime_ms = broker_wall_ms() - b->start_wall_ms;
	body.topic_count = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		struct topic *t = topic_reg_at(b->topics, i);
		body.partition_count += (uint32_t)topic_partitions(t);
		for (int p = 0; p < topic_partitions(t); p++)
			body.data_bytes += log_size_bytes(topic_log(t, p));
	}
	if (statvfs(b->cfg.data_dir, &sv) == 0) {
		body.disk_free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
		body.disk_total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
	}
	body.connections = (uint32_t)b->met.conns_open;
	body.data_dir = b->cfg.data_dir;
	resp.op_case = BROKERD__RESPONSE__OP_BROKER_STATUS;
	resp.broker_status = &body;
	respond(r, &resp);
}

void req_handle(struct req *r)
{
	Brokerd__Request *m = r->msg;

	r->op = (int)m->op_case;
	if (m->version > PROTO_MAX_VERSION) {
		req_fail(r, BROKERD__ERROR_CODE__UNSUPPORTED_VERSION,
			 "request version %u is not supported (this broker speaks 1 to %d)",
			 m->version, PROTO_MAX_VERSION);
		return;
	}
	if (r->b->stopping) {
		req_fail(r, BROKERD__ERROR_CODE__BROKER_SHUTTING_DOWN, "the broker is shutting down");
		return;
	}
	switch (m->op_case) {
	case BROKERD__REQUEST__OP_API_VERSIONS:
		op_api_versions(r);
		break;
	case BROKERD__REQUEST__OP_CREATE_TOPIC:
		op_create_topic(r, m->create_topic);
		break;
	case BROKERD__REQUEST__OP_DELETE_TOPIC:
		op_delete_topic(r, m->delete_topic);
		break;
	case BROKERD__REQUEST__OP_LIST_TOPICS:
		op_list_topics(r);
		break;
	case BROKERD__REQUEST__OP_DESCRIBE_TOPIC:
		op_describe_topic(r, m->describe_topic);
		break;
	case BROKERD__REQUEST__OP_ALTER_TOPIC_CONFIG:
		op_alter_topic_config(r, m->alter_topic_config);
		break;
	case BROKERD__REQUEST__OP_PRODUCE:
		op_produce(r, m->produce);
		break;
	case BROKERD__REQUEST__OP_FETCH:
		op_fetch(r, m->fetch);
		break;
	case BROKERD__REQUEST__OP_LIST_OFFSETS:
		op_list_offsets(r, m->list_offsets);
		break;
	case BROKERD__REQUEST__OP_COMMIT_OFFSETS:
		op_commit_offsets(r, m->commit_offsets);
		break;
	case BROKERD__REQUEST__OP_FETCH_OFFSETS:
		op_fetch_offsets(r, m->fetch_offsets);
		break;
	case BROKERD__REQUEST__OP_LIST_GROUPS:
		op_list_groups(r);
		break;
	case BROKERD__REQUEST__OP_DELETE_GROUP:
		op_delete_group(r, m->delete_group);
		break;
	case BROKERD__REQUEST__OP_BROKER_STATUS:
		op_broker_status(r);
		break;
	default:
		req_fail(r, BROKERD__ERROR_CODE__UNKNOWN_OPERATION,
			 "request %llu names no operation this broker knows (see api_versions)",
			 (unsigned long long)r->corr);
		break;
	}
}

bool req_abandon(struct req *r)
{
	if (r->done) {
		req_free(r);
		return true;
	}
	if (r->op == BROKERD__REQUEST__OP_FETCH && r->waiter.armed) {
		fetch_stop_waiting(r);
		req_free(r);
		return true;
	}
	return false; /* an append or commit in flight frees r on completion */
}
