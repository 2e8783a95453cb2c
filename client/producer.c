/* producer — the batching, asynchronous producer of brokerd/client.h.
 * Application threads copy records, under one mutex, into per-(topic,
 * partition) record batches; one I/O thread per producer owns a single
 * non-blocking connection driven by poll(2), sends ready batches (pipelined,
 * up to max_in_flight), handles retries and reconnects, and runs every
 * delivery callback without holding the mutex.
 *
 * Invariants:
 *  1. At most one batch per partition is in flight.  A batch that failed
 *     retriably goes back to the head of its partition's queue, so a
 *     partition's records reach the log in send order (a batch in flight
 *     when the connection was lost may be stored twice, never reordered).
 *  2. A batch belongs to its partition queue (under the mutex) until the I/O
 *     thread takes it to send; from then on only the I/O thread touches it,
 *     until it goes back to a queue or completes.
 *  3. Every accepted record's callback runs exactly once, on the I/O thread;
 *     only after it returned do its bytes leave queued_bytes and the record
 *     leave `outstanding` (what flush waits for).
 *  4. A record of a topic whose partition count is not known yet (or whose
 *     explicit partition is beyond it) waits, copied, in the topic's
 *     unassigned queue; the I/O thread describes the topic, then moves those
 *     records into partition batches in their queue order.
 *  5. Topics and partitions are freed only with the producer, so the I/O
 *     thread may keep pointers to them and read their names without the lock.
 */
#include "brokerd/client.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "proto/batch.h"
#include "client/addr.h"
#include "proto/partition.h"
#include "proto/varint.h"

#define PROD_DEFAULT_MAX_BATCH (8u << 20) /* the broker's default */
#define PROD_MAX_RESPONSE      (64u << 20)
#define PROD_BACKOFF_MAX_MS    1000
#define PROD_TOPIC_MAX         249
/* Bytes a produce frame adds around its batch: length prefix, envelope,
 * client id, topic (<= 249), partitioner, acks, field tags and lengths. */
#define PROD_FRAME_SLACK       512
#define PROD_IOV_MAX           64
/* Length-delimited protobuf field keys written by hand (see encode). */
#define PROD_TAG_PRODUCE       (((uint64_t)BROKERD__REQUEST__OP_PRODUCE << 3) | 2)
#define PROD_TAG_RECORDS       ((5u << 3) | 2) /* ProduceRequest.records */
#define PROD_LOG_SLOTS         16

/* One record's delivery. */
struct pmsg {
	bk_delivery_cb cb;
	void *opaque;
};

/* A record batch for one partition (or, part == NULL, a probe: see
 * make_probe). */
struct pbatch {
	struct pbatch *next;
	struct ptopic *topic;
	struct ppart *part;
	uint64_t seq;               /* unique, for the sticky partitioner */
	struct batch_builder bb;
	uint8_t *wire;              /* the finished batch, once first sent */
	size_t wire_len;
	struct pmsg *msgs;
	uint32_t n, cap;
	size_t bytes;               /* accounted against buffer_memory */
	int64_t created;            /* monotonic ms its first record was queued */
	int64_t retry_at;
	int backoff;
	int attempts;
	bool closed;                /* takes no more records */
	struct urec *probe_rec;     /* probe: the record, for its partitioner */
	/* completion */
	int err;
	int32_t partition;
	int64_t base_offset;
};

struct ppart {
	struct ptopic *topic;
	int32_t id;
	struct pbatch *head, *tail; /* the tail may still be open */
	bool inflight;
	bool active;                /* linked in the producer's active list */
	struct ppart *aprev, *anext;
};

/* A copied record waiting for its topic's partition count (invariant 4);
 * one allocation holds the struct, the header array and every byte. */
struct urec {
	struct urec *next;
	struct ptopic *topic;
	int32_t partition;
	int64_t ts;
	int64_t queued;
	const uint8_t *key;
	int32_t key_len;
	const uint8_t *value;
	int32_t value_len;
	struct batch_kv *hdrs;
	uint32_t nh;
	size_t bytes;
	bool urgent;
	struct pmsg msg;
	int err;                    /* on completion */
};

struct ptopic {
	struct ptopic *hnext;       /* hash chain */
	struct ptopic *next;        /* every topic */
	char *name;
	int32_t nparts;             /* 0: not known yet */
	int32_t nalloc;             /* partition structs allocated (>= nparts) */
	struct ppart **parts;
	struct urec *ua_head, *ua_tail;
	bool md_want;               /* describe it */
	bool md_inflight;
	int64_t md_at;              /* not before (after a retriable failure) */
	struct pbatch *probe;       /* a probe waiting or in flight */
	bool probe_inflight;
	int32_t sticky;             /* partition of keyless records, -1: none */
	uint64_t sticky_seq;        /* while this batch of it is open */
	uint32_t rr;
};

enum preq_kind { RQ_API, RQ_DESCRIBE, RQ_PRODUCE, RQ_PROBE };

/* A request on the connection: being written (wq), then awaiting its
 * response (aq), then a result for the locked half of the loop. */
struct preq {
	struct preq *next;
	enum preq_kind kind;
	uint64_t corr;
	uint8_t *frame;             /* owned: the frame, or a produce's head */
	size_t hlen;                /* bytes in frame */
	const uint8_t *tail;        /* produce: the batch's wire bytes (borrowed)
	                               follow the head on the socket */
	size_t len, off;            /* of the whole frame, head and tail */
	bool expect_response;
	int64_t sent;
	struct pbatch *batch;       /* produce, probe */
	struct ptopic *topic;       /* describe */
	/* result */
	int err;
	Brokerd__Response *resp;
};

struct preq_list {
	struct preq *head, *tail;
	size_t n;
};

struct batch_list {
	struct pbatch *head, *tail;
};

struct urec_list {
	struct urec *head, *tail;
};

/* The I/O thread's hand-offs between its locked and unlocked halves. */
struct io {
	struct preq_list send;      /* planned requests, to encode */
	struct preq_list results;   /* answered or failed requests */
	struct batch_list done;     /* batches to complete */
	struct urec_list done_u;    /* unassigned records to fail */
	bool want_conn;
	int nlogs, dropped;
	int loglv[PROD_LOG_SLOTS];
	char logs[PROD_LOG_SLOTS][256];
};

enum conn_state { ST_DOWN, ST_CONNECTING, ST_HANDSHAKE, ST_UP };

struct bk_producer {
	struct bk_producer_conf conf;   /* strings point at our copies */
	char *bootstrap, *client_id;
	char host[256];
	const char *port;               /* into bootstrap */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int wake_fd;

	/* --- under lock ----------------------------------------------------- */
	bool wake_pending;
	int64_t io_deadline;            /* the I/O thread looks again by then */
	struct ptopic **tab;
	size_t tab_size, ntopics;
	struct ptopic *topics;
	struct ppart *active_head, *active_tail;
	size_t nactive;
	size_t queued_bytes;
	uint64_t outstanding;
	uint64_t batch_seq;
	int flushing;
	int waiters;
	bool closing, stop;
	size_t max_batch;               /* the broker's, less the frame slack */
	size_t batch_target;            /* min(batch_size, max_batch) */

	/* --- I/O thread only ------------------------------------------------ */
	enum conn_state state;
	int fd;
	struct addrinfo *ai, *ai_cur;
	int64_t conn_t0, reconnect_at;
	int conn_backoff, conn_fails;
	bool was_up;
	uint64_t next_corr;
	int ninflight;                  /* produce requests on the connection */
	struct preq_list wq, aq;
	uint8_t *rbuf;
	size_t rlen, rcap;
};

/* --- small helpers ------------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait on
 * p->cond. */
static struct timespec deadline_in(int ms)
{
	struct timespec dl;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	return dl;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static void preq_push(struct preq_list *l, struct preq *r)
{
	r->next = NULL;
	if (l->tail != NULL)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static struct preq *preq_pop(struct preq_list *l)
{
	struct preq *r = l->head;

	if (r != NULL) {
		l->head = r->next;
		if (l->head == NULL)
			l->tail = NULL;
		l->n--;
		r->next = NULL;
	}
	return r;
}

static void preq_free(struct preq *r)
{
	if (r == NULL)
		return;
	free(r->frame);
	if (r->resp != NULL)
		brokerd__response__free_unpacked(r->resp, NULL);
	free(r);
}

static void batch_push(struct batch_list *l, struct pbatch *b)
{
	b->next = NULL;
	if (l->tail != NULL)
		l->tail->next = b;
	else
		l->head = b;
	l->tail = b;
}

static void urec_push(struct urec_list *l, struct urec *u)
{
	u->next = NULL;
	if (l->tail != NULL)
		l->tail->next = u;
	else
		l->head = u;
	l->tail = u;
}

/* Queue a log line for the log callback (called later, without the lock). */
__attribute__((format(printf, 4, 5)))
static void plog(const struct bk_producer *p, struct io *io, int level, const char *fmt, ...)
{
	va_list ap;

	if (p->conf.log_cb == NULL)
		return;
	if (io->nlogs == PROD_LOG_SLOTS) {
		io->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(io->logs[io->nlogs], sizeof(io->logs[0]), fmt, ap);
	va_end(ap);
	io->loglv[io->nlogs++] = level;
}

static void emit_logs(const struct bk_producer *p, struct io *io)
{
	for (int i = 0; i < io->nlogs; i++)
		p->conf.log_cb(p->conf.log_opaque, io->loglv[i], io->logs[i]);
	if (io->dropped > 0) {
		char msg[96];

		snprintf(msg, sizeof(msg), "producer: %d more log lines dropped", io->dropped);
		p->conf.log_cb(p->conf.log_opaque, 2, msg);
	}
	io->nlogs = io->dropped = 0;
}

static size_t bytes_size(int32_t n)
{
	return svarint_size(n) + (n > 0 ? (size_t)n : 0);
}

/* Encoded record size without its length prefix, timestamp delta and
 * offset delta. */
static size_t rec_core(const struct bk_record *rec)
{
	size_t body = 1 + bytes_size(rec->key_len) + bytes_size(rec->value_len) +
		      svarint_size(rec->nheaders);

	for (uint32_t i = 0; i < rec->nheaders; i++)
		body += bytes_size((int32_t)strlen(rec->headers[i].key)) +
			bytes_size(rec->headers[i].value_len);
	return body;
}

/* --- topics and partitions (under lock) -------------------------------------- */

static size_t name_hash(const char *s)
{
	size_t h = 5381;

	while (*s != '\0')
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static struct ptopic *topic_find(struct bk_producer *p, const char *name)
{
	struct ptopic *t = p->tab[name_hash(name) & (p->tab_size - 1)];

	while (t != NULL && strcmp(t->name, name) != 0)
		t = t->hnext;
	return t;
}

/* The topic named `name`, created (metadata unknown) if new; NULL: ENOMEM. */
static struct ptopic *topic_get(struct bk_producer *p, const char *name)
{
	struct ptopic *t = topic_find(p, name);
	size_t h;

	if (t != NULL)
		return t;
	if (p->ntopics + 1 > p->tab_size) { /* keep the load factor <= 1 */
		size_t nsize = p->tab_size * 2;
		struct ptopic **ntab = calloc(nsize, sizeof(*ntab));

		if (ntab == NULL)
			return NULL;
		for (struct ptopic *x = p->topics; x != NULL; x = x->next) {
			h = name_hash(x->name) & (nsize - 1);
			x->hnext = ntab[h];
			ntab[h] = x;
		}
		free(p->tab);
		p->tab = ntab;
		p->tab_size = nsize;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->name = strdup(name)) == NULL) {
		free(t);
		return NULL;
	}
	t->sticky = -1;
	h = name_hash(name) & (p->tab_size - 1);
	t->hnext = p->tab[h];
	p->tab[h] = t;
	t->next = p->topics;
	p->topics = t;
	p->ntopics++;
	return t;
}

static void part_activate(struct bk_producer *p, struct ppart *pt)
{
	if (pt->active)
		return;
	pt->active = true;
	pt->anext = NULL;
	pt->aprev = p->active_tail;
	if (p->active_tail != NULL)
		p->active_tail->anext = pt;
	else
		p->active_head = pt;
	p->active_tail = pt;
	p->nactive++;
}

static void part_deactivate(struct bk_producer *p, struct ppart *pt)
{
	if (!pt->active)
		return;
	if (pt->aprev != NULL)
		pt->aprev->anext = pt->anext;
	else
		p->active_head = pt->anext;
	if (pt->anext != NULL)
		pt->anext->aprev = pt->aprev;
	else
		p->active_tail = pt->aprev;
	pt->active = false;
	pt->aprev = pt->anext = NULL;
	p->nactive--;
}

static void batch_free(struct pbatch *b)
{
	if (b == NULL)
		return;
	batch_builder_fini(&b->bb);
	free(b->wire);
	free(b->msgs);
	free(b->probe_rec);
	free(b);
}

static struct pbatch *batch_new(struct bk_producer *p, struct ptopic *t, struct ppart *pt,
				int64_t created)
{
	struct pbatch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->topic = t;
	b->part = pt;
	b->seq = ++p->batch_seq;
	batch_builder_init(&b->bb);
	b->created = created;
	b->backoff = p->conf.retry_backoff_ms;
	b->partition = pt != NULL ? pt->id : -1;
	b->base_offset = -1;
	return b;
}

/* Unlink the head batch of pt's queue. */
static struct pbatch *part_pop(struct ppart *pt)
{
	struct pbatch *b = pt->head;

	if (b != NULL) {
		pt->head = b->next;
		if (pt->head == NULL)
			pt->tail = NULL;
		b->next = NULL;
	}
	return b;
}

/* Complete b (taken out of every queue) with err. */
static void batch_fail(struct io *io, struct pbatch *b, int err)
{
	b->err = err;
	b->base_offset = -1;
	batch_push(&io->done, b);
}

static void urec_fail(struct io *io, struct urec *u, int err)
{
	u->err = err;
	urec_push(&io->done_u, u);
}

/* One record as the accumulator adds it; pointers borrowed. */
struct rec_in {
	int64_t ts;
	const void *key;
	int32_t key_len;
	const void *value;
	int32_t value_len;
	const struct batch_kv *hdrs;
	uint32_t nh;
	size_t bytes;
	int64_t queued;
	struct pmsg msg;
	bool urgent;
};

/* Append a copy of r to pt's open batch, opening one when there is none or
 * r would take it past batch_target.  Sets *bout to the batch.  Returns 0,
 * -ENOMEM, or -EINVAL from the batch builder (the record is not queued). */
static int part_append(struct bk_producer *p, struct ppart *pt, const struct rec_in *r,
		       struct pbatch **bout)
{
	struct pbatch *b = pt->tail;
	bool fresh = false;
	int rc;

	if (b != NULL && !b->closed && b->n > 0 &&
	    batch_builder_size(&b->bb) + r->bytes > p->batch_target)
		b->closed = true;
	if (b == NULL || b->closed) {
		b = batch_new(p, pt->topic, pt, r->queued);
		if (b == NULL)
			return -ENOMEM;
		fresh = true;
	}
	if (b->n == b->cap) {
		uint32_t ncap = b->cap != 0 ? b->cap * 2 : 16;
		struct pmsg *m = realloc(b->msgs, ncap * sizeof(*m));

		if (m == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		b->msgs = m;
		b->cap = ncap;
	}
	rc = batch_builder_add(&b->bb, r->ts, r->key, r->key_len, r->value, r->value_len,
			       r->hdrs, r->nh);
	if (rc < 0)
		goto fail;
	if (fresh) {
		if (pt->tail != NULL)
			pt->tail->next = b;
		else
			pt->head = b;
		pt->tail = b;
		part_activate(p, pt);
	}
	b->msgs[b->n++] = r->msg;
	b->bytes += r->bytes;
	if (batch_builder_size(&b->bb) >= p->batch_target || r->urgent)
		b->closed = true;
	*bout = b;
	return 0;
fail:
	if (fresh)
		batch_free(b);
	return rc;
}

/* The partition for a record of t (t->nparts > 0): explicit, by key, or
 * sticky (keyless records fill one partition's batch, then move on). */
static struct ppart *choose_part(struct ptopic *t, int32_t partition, const void *key,
				 int32_t key_len)
{
	struct ppart *pt;

	if (partition >= 0)
		return t->parts[partition];
	if (key_len >= 0)
		return t->parts[part_for_key(key, (size_t)key_len, (uint32_t)t->nparts)];
	if (t->sticky >= 0 && t->sticky < t->nparts) {
		pt = t->parts[t->sticky];
		if (pt->tail != NULL && !pt->tail->closed && pt->tail->seq == t->sticky_seq)
			return pt;
	}
	t->sticky = (int32_t)(t->rr++ % (uint32_t)t->nparts);
	t->sticky_seq = 0;
	return t->parts[t->sticky];
}

/* After a keyless append to pt, just moved to: stick to the batch it went
 * into.  (When a record overflowed the sticky batch into a new one, the
 * sequence no longer matches, and the next keyless record moves on.) */
static void stick(struct ptopic *t, struct ppart *pt, const struct pbatch *b, int32_t partition,
		  int32_t key_len)
{
	if (partition < 0 && key_len < 0 && t->sticky == pt->id && t->sticky_seq == 0)
		t->sticky_seq = b->seq;
}

/* Give t n partitions: allocate new ones; the queued batches of partitions
 * that are gone fail with UNKNOWN_PARTITION.  Returns 0 or -ENOMEM. */
static int topic_set_parts(struct bk_producer *p, struct ptopic *t, int32_t n, struct io *io)
{
	if (n > t->nalloc) {
		struct ppart **np = realloc(t->parts, (size_t)n * sizeof(*np));

		if (np == NULL)
			return -ENOMEM;
		t->parts = np;
		for (int32_t i = t->nalloc; i < n; i++) {
			struct ppart *pt = calloc(1, sizeof(*pt));

			if (pt == NULL)
				return -ENOMEM;
			pt->topic = t;
			pt->id = i;
			t->parts[i] = pt;
			t->nalloc = i + 1;
		}
	}
	for (int32_t i = n; i < t->nparts; i++) {
		struct ppart *pt = t->parts[i];
		struct pbatch *b;

		while ((b = part_pop(pt)) != NULL)
			batch_fail(io, b, BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_PARTITION));
		part_deactivate(p, pt);
	}
	t->nparts = n;
	return 0;
}

/* Move t's unassigned records into partition batches (t->nparts > 0). */
static void distribute(struct bk_producer *p, struct ptopic *t, struct io *io)
{
	struct urec *u;

	while ((u = t->ua_head) != NULL) {
		struct rec_in r = {
			.ts = u->ts, .key = u->key, .key_len = u->key_len,
			.value = u->value, .value_len = u->value_len,
			.hdrs = u->hdrs, .nh = u->nh, .bytes = u->bytes,
			.queued = u->queued, .msg = u->msg, .urgent = u->urgent,
		};
		struct pbatch *b;
		struct ppart *pt;
		int rc;

		t->ua_head = u->next;
		if (t->ua_head == NULL)
			t->ua_tail = NULL;
		if (u->partition >= t->nparts) {
			urec_fail(io, u, BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_PARTITION));
			continue;
		}
		pt = choose_part(t, u->partition, u->key, u->key_len);
		rc = part_append(p, pt, &r, &b);
		if (rc < 0) {
			urec_fail(io, u, rc);
			continue;
		}
		stick(t, pt, b, u->partition, u->key_len);
		free(u);
	}
}

static void fail_unassigned(struct ptopic *t, struct io *io, int err)
{
	struct urec *u;

	while ((u = t->ua_head) != NULL) {
		t->ua_head = u->next;
		urec_fail(io, u, err);
	}
	t->ua_tail = NULL;
}

/* A topic unknown to the broker may still be auto-created by a produce: send
 * the first unassigned record alone, with its own partitioner, and see. */
static void make_probe(struct bk_producer *p, struct ptopic *t, struct io *io)
{
	struct urec *u = t->ua_head;
	struct pbatch *b;
	int rc = -ENOMEM;

	t->ua_head = u->next;
	if (t->ua_head == NULL)
		t->ua_tail = NULL;
	b = batch_new(p, t, NULL, u->queued);
	if (b == NULL)
		goto fail;
	b->msgs = malloc(sizeof(*b->msgs));
	if (b->msgs == NULL)
		goto fail;
	rc = batch_builder_add(&b->bb, u->ts, u->key, u->key_len, u->value, u->value_len,
			       u->hdrs, u->nh);
	if (rc < 0)
		goto fail;
	b->msgs[0] = u->msg;
	b->n = b->cap = 1;
	b->bytes = u->bytes;
	b->closed = true;
	b->partition = u->partition;
	b->probe_rec = u;
	t->probe = b;
	return;
fail:
	batch_free(b);
	urec_fail(io, u, rc);
}

/* --- results (I/O thread, under lock) ------------------------------------------ */

static int resp_err(const struct preq *r, Brokerd__Response__OpCase want)
{
	if (r->resp == NULL)
		return r->err;
	if (r->resp->error != BROKERD__ERROR_CODE__OK)
		return BK_ERR(r->resp->error);
	return r->resp->op_case == want ? 0 : -EPROTO;
}

static int next_backoff(const struct bk_producer *p, int cur)
{
	int cap = p->conf.retry_backoff_ms > PROD_BACKOFF_MAX_MS ? p->conf.retry_backoff_ms
								 : PROD_BACKOFF_MAX_MS;

	return cur >= cap / 2 ? cap : cur * 2;
}

/* Whether b may be tried again after err; if so schedules it. */
static bool batch_retry(struct bk_producer *p, struct pbatch *b, int err, int64_t now)
{
	if (!bk_err_retriable(err) || p->stop ||
	    now + b->backoff >= b->created + p->conf.delivery_timeout_ms)
		return false;
	b->retry_at = now + b->backoff;
	b->backoff = next_backoff(p, b->backoff > 0 ? b->backoff : 1);
	b->attempts++;
	return true;
}

/* b was acknowledged by r: note where it landed, queue its delivery. */
static void batch_acked(struct io *io, struct pbatch *b, const struct preq *r)
{
	b->err = 0;
	if (r->resp != NULL) {
		b->partition = (int32_t)r->resp->produce->partition;
		b->base_offset = r->resp->produce->base_offset;
	}
	batch_push(&io->done, b);
}

static void on_produce(struct bk_producer *p, struct preq *r, int64_t now, struct io *io)
{
	struct pbatch *b = r->batch;
	struct ppart *pt = b->part;
	int err = resp_err(r, BROKERD__RESPONSE__OP_PRODUCE);

	pt->inflight = false;
	if (err == 0) {
		batch_acked(io, b, r);
		return;
	}
	if (batch_retry(p, b, err, now)) {
		plog(p, io, 2, "producer: retrying %u records to %s/%d in %d ms (attempt %d): %s",
		     b->n, b->topic->name, pt->id, (int)(b->retry_at - now), b->attempts + 1,
		     bk_strerror(err));
		b->next = pt->head;
		pt->head = b;
		if (pt->tail == NULL)
			pt->tail = b;
		part_activate(p, pt);
		return;
	}
	if (err == BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC) ||
	    err == BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_PARTITION))
		b->topic->md_want = true;
	batch_fail(io, b, err);
}

static void on_probe(struct bk_producer *p, struct preq *r, int64_t now, struct io *io)
{
	struct pbatch *b = r->batch;
	struct ptopic *t = b->topic;
	int err = resp_err(r, BROKERD__RESPONSE__OP_PRODUCE);

	t->probe_inflight = false;
	if (err == 0) {
		batch_acked(io, b, r);
		t->probe = NULL;
		t->md_want = true; /* it exists now: learn its partitions */
		return;
	}
	if (batch_retry(p, b, err, now))
		return;
	t->probe = NULL;
	batch_fail(io, b, err);
	if (err == BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC))
		fail_unassigned(t, io, err);
	else if (t->ua_head != NULL)
		t->md_want = true;
}

static void on_describe(struct bk_producer *p, struct preq *r, int64_t now, struct io *io)
{
	struct ptopic *t = r->topic;
	int err = resp_err(r, BROKERD__RESPONSE__OP_DESCRIBE_TOPIC);
	int32_t n = 0;

	t->md_inflight = false;
	if (err == 0) {
		const Brokerd__TopicDescription *d = r->resp->describe_topic->topic;

		if (d == NULL || d->partition_count == 0 || d->partition_count > INT32_MAX)
			err = -EPROTO;
		else
			n = (int32_t)d->partition_count;
	}
	if (err == 0) {
		err = topic_set_parts(p, t, n, io);
		if (err == 0) {
			distribute(p, t, io);
			return;
		}
		fail_unassigned(t, io, err);
		return;
	}
	if (err == BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC)) {
		if (t->ua_head != NULL)
			make_probe(p, t, io);
		return;
	}
	if (bk_err_retriable(err) && !p->stop) {
		t->md_want = true;
		t->md_at = now + p->conf.retry_backoff_ms;
		return;
	}
	plog(p, io, 3, "producer: cannot describe topic '%s': %s", t->name, bk_strerror(err));
	fail_unassigned(t, io, err);
}

static void on_api(struct bk_producer *p, struct preq *r)
{
	const Brokerd__ApiVersionsResponse *av;
	size_t mb = PROD_DEFAULT_MAX_BATCH, slack;

	if (resp_err(r, BROKERD__RESPONSE__OP_API_VERSIONS) != 0)
		return;
	av = r->resp->api_versions;
	if (av->max_batch_bytes > 0 && av->max_batch_bytes < SIZE_MAX)
		mb = (size_t)av->max_batch_bytes;
	slack = PROD_FRAME_SLACK + strlen(p->client_id);
	if (av->max_request_bytes > slack + BATCH_HEADER_SIZE &&
	    av->max_request_bytes - slack < mb)
		mb = (size_t)(av->max_request_bytes - slack);
	p->max_batch = mb;
	p->batch_target = p->conf.batch_size < mb ? p->conf.batch_size : mb;
}

static void process_results(struct bk_producer *p, struct io *io, int64_t now)
{
	struct preq *r;

	while ((r = preq_pop(&io->results)) != NULL) {
		switch (r->kind) {
		case RQ_API:
			on_api(p, r);
			break;
		case RQ_DESCRIBE:
			on_describe(p, r, now, io);
			break;
		case RQ_PRODUCE:
			on_produce(p, r, now, io);
			break;
		case RQ_PROBE:
			on_probe(p, r, now, io);
			break;
		}
		preq_free(r);
	}
}

/* --- planning (I/O thread, under lock) ----------------------------------------- */

static struct preq *preq_new(enum preq_kind kind)
{
	struct preq *r = calloc(1, sizeof(*r));

	if (r != NULL)
		r->kind = kind;
	return r;
}

/* Fail what waited too long in t's unassigned queue and its probe; send its
 * describe or probe when due.  Lowers *next to t's next deadline. */
static void plan_topic(struct bk_producer *p, struct ptopic *t, int64_t now, bool up,
		       struct io *io, int64_t *next)
{
	int64_t dto = p->conf.delivery_timeout_ms;
	struct preq *r;

	while (t->ua_head != NULL && t->ua_head->queued + dto <= now) {
		struct urec *u = t->ua_head;

		t->ua_head = u->next;
		if (t->ua_head == NULL)
			t->ua_tail = NULL;
		urec_fail(io, u, -ETIMEDOUT);
	}
	if (t->ua_head != NULL) {
		*next = min64(*next, t->ua_head->queued + dto);
		io->want_conn = true;
	}
	if (t->probe != NULL && !t->probe_inflight) {
		struct pbatch *b = t->probe;

		io->want_conn = true;
		if (b->created + dto <= now) {
			t->probe = NULL;
			batch_fail(io, b, -ETIMEDOUT);
			if (t->ua_head != NULL)
				t->md_want = true;
		} else if (b->retry_at > now) {
			*next = min64(*next, min64(b->retry_at, b->created + dto));
		} else if (up && (r = preq_new(RQ_PROBE)) != NULL) {
			r->batch = b;
			t->probe_inflight = true;
			preq_push(&io->send, r);
		} else {
			/* down: the reconnect wakes us (a past retry_at would spin) */
			*next = min64(*next, b->created + dto);
		}
	}
	if (t->md_want && !t->md_inflight && t->probe == NULL) {
		io->want_conn = true;
		if (up && t->md_at <= now && (r = preq_new(RQ_DESCRIBE)) != NULL) {
			r->topic = t;
			t->md_want = false;
			t->md_inflight = true;
			preq_push(&io->send, r);
		} else if (up) {
			*next = min64(*next, t->md_at > now ? t->md_at : now + 10);
		}
	}
}

/* Decide what to send now: ready batches of partitions with none in flight
 * (full, linger_ms old, or flushing), up to max_in_flight.  Fails batches
 * past delivery_timeout_ms.  Returns when to look again (monotonic ms). */
static int64_t plan(struct bk_producer *p, int64_t now, struct io *io)
{
	int64_t next = INT64_MAX, dto = p->conf.delivery_timeout_ms;
	bool up = p->state == ST_UP;
	bool urgent = p->flushing > 0 || p->closing;
	size_t n = p->nactive;
	struct ppart *pt = p->active_head;

	io->want_conn = false;
	for (struct ptopic *t = p->topics; t != NULL; t = t->next)
		plan_topic(p, t, now, up, io, &next);
	for (size_t i = 0; i < n && pt != NULL; i++) {
		struct ppart *following = pt->anext;
		struct pbatch *b;
		struct preq *r;

		while ((b = pt->head) != NULL && b->created + dto <= now)
			batch_fail(io, part_pop(pt), -ETIMEDOUT);
		if (b == NULL) {
			part_deactivate(p, pt);
			pt = following;
			continue;
		}
		io->want_conn = true;
		next = min64(next, b->created + dto);
		if (pt->inflight) {
			pt = following;
			continue;
		}
		if (!b->closed && !urgent && now < b->created + p->conf.linger_ms) {
			next = min64(next, b->created + p->conf.linger_ms);
		} else if (b->retry_at > now) {
			next = min64(next, b->retry_at);
		} else if (up && p->ninflight < p->conf.max_in_flight &&
			   (r = preq_new(RQ_PRODUCE)) != NULL) {
			part_pop(pt);
			b->closed = true;
			pt->inflight = true;
			p->ninflight++;
			r->batch = b;
			preq_push(&io->send, r);
			/* the others go first next time */
			part_deactivate(p, pt);
			if (pt->head != NULL)
				part_activate(p, pt);
		}
		pt = following;
	}
	if (io->want_conn && p->state == ST_DOWN)
		next = min64(next, p->reconnect_at);
	return next;
}

/* Complete everything still queued with err (closing). */
static void fail_queued(struct bk_producer *p, struct io *io, int err)
{
	struct pbatch *b;

	for (struct ptopic *t = p->topics; t != NULL; t = t->next) {
		fail_unassigned(t, io, err);
		if (t->probe != NULL && !t->probe_inflight)
			batch_fail(io, t->probe, err);
		t->probe = NULL;
		for (int32_t i = 0; i < t->nalloc; i++)
			while ((b = part_pop(t->parts[i])) != NULL)
				batch_fail(io, b, err);
	}
	while (p->active_head != NULL)
		part_deactivate(p, p->active_head);
}

/* --- callbacks (I/O thread, without the lock) ---------------------------------- */

/* Report one record's delivery: to its own callback, else to the
 * producer's dr_cb (with conf.opaque), else to nobody. */
static void deliver(const struct bk_producer *p, const struct pmsg *m, int err,
		    const char *topic, int32_t partition, int64_t offset)
{
	if (m->cb != NULL)
		m->cb(m->opaque, err, topic, partition, offset);
	else if (p->conf.dr_cb != NULL)
		p->conf.dr_cb(p->conf.opaque, m->opaque, err, topic, partition, offset);
}

/* Run the callbacks of everything completed, then release its accounting. */
static void run_done(struct bk_producer *p, struct io *io)
{
	struct pbatch *b;
	struct urec *u;
	size_t bytes = 0;
	uint64_t n = 0;

	if (io->done.head == NULL && io->done_u.head == NULL)
		return;
	while ((b = io->done.head) != NULL) {
		io->done.head = b->next;
		for (uint32_t i = 0; i < b->n; i++)
			deliver(p, &b->msgs[i], b->err, b->topic->name, b->partition,
				b->err == 0 && b->base_offset >= 0 ? b->base_offset + i : -1);
		bytes += b->bytes;
		n += b->n;
		batch_free(b);
	}
	io->done.tail = NULL;
	while ((u = io->done_u.head) != NULL) {
		io->done_u.head = u->next;
		deliver(p, &u->msg, u->err, u->topic->name, u->partition, -1);
		bytes += u->bytes;
		n++;
		free(u);
	}
	io->done_u.tail = NULL;
	pthread_mutex_lock(&p->lock);
	p->queued_bytes -= bytes;
	p->outstanding -= n;
	if (p->waiters > 0)
		pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* --- the connection (I/O thread, without the lock) ---------------------------- */

static int next_conn_backoff(const struct bk_producer *p)
{
	return next_backoff(p, p->conn_backoff > 0 ? p->conn_backoff : 1);
}

/* The connection failed or closed with err: every request on it becomes a
 * result carrying err (the locked half retries or fails its batch), and the
 * next connect waits for the backoff. */
static void conn_down(struct bk_producer *p, struct io *io, int err)
{
	int64_t now = mono_ms();
	size_t batches = 0;
	struct preq *r;

	for (r = p->wq.head; r != NULL; r = r->next)
		batches += r->kind == RQ_PRODUCE || r->kind == RQ_PROBE;
	for (r = p->aq.head; r != NULL; r = r->next)
		batches += r->kind == RQ_PRODUCE || r->kind == RQ_PROBE;
	if (p->state == ST_UP && p->wq.n + p->aq.n == 0 && err == -ECONNRESET) {
		/* e.g. the broker's idle.timeout.ms: reconnect when needed */
		plog(p, io, 1, "producer: the broker closed the connection to %s", p->bootstrap);
		p->reconnect_at = now;
	} else {
		plog(p, io, p->state == ST_UP || p->conn_fails == 0 ? 2 : 0,
		     "producer: %s %s: %s; next attempt in %d ms%s",
		     p->state == ST_UP ? "lost the connection to" : "cannot connect to", p->bootstrap,
		     bk_strerror(err), p->conn_backoff,
		     batches > 0 ? "; the batches in flight will be retried" : "");
		p->reconnect_at = now + p->conn_backoff;
		p->conn_backoff = next_conn_backoff(p);
		p->conn_fails++;
	}
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->rlen = 0;
	if (p->ai != NULL)
		freeaddrinfo(p->ai);
	p->ai = p->ai_cur = NULL;
	while ((r = preq_pop(&p->wq)) != NULL || (r = preq_pop(&p->aq)) != NULL) {
		r->err = err;
		preq_push(&io->results, r);
	}
	p->ninflight = 0;
	p->state = ST_DOWN;
}

/* Frame r (correlation id, client id, body) into r->frame.  A produce's
 * batch is not copied: the frame holds the envelope, the produce field's
 * key and length, the ProduceRequest packed without records, and the
 * records field's key and length; r->tail, the batch itself, follows on
 * the socket.  Protobuf takes fields in any order, and this is the order
 * brokerd__request__pack would write (produce and records come last), as
 * the broker's fetch answers are built.  Returns 0, -ENOMEM, -EMSGSIZE. */
static int encode(struct bk_producer *p, struct preq *r)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ApiVersionsRequest av = BROKERD__API_VERSIONS_REQUEST__INIT;
	Brokerd__DescribeTopicRequest dt = BROKERD__DESCRIBE_TOPIC_REQUEST__INIT;
	Brokerd__ProduceRequest pr = BROKERD__PRODUCE_REQUEST__INIT;
	struct pbatch *b = r->batch;
	size_t n, nprod = 0, tail = 0, h;
	uint8_t *f;
	int rc;

	req.correlation_id = r->corr = p->next_corr++;
	req.client_id = p->client_id;
	r->expect_response = true;
	switch (r->kind) {
	case RQ_API:
		req.op_case = BROKERD__REQUEST__OP_API_VERSIONS;
		req.api_versions = &av;
		break;
	case RQ_DESCRIBE:
		dt.topic = r->topic->name;
		req.op_case = BROKERD__REQUEST__OP_DESCRIBE_TOPIC;
		req.describe_topic = &dt;
		break;
	case RQ_PRODUCE:
	case RQ_PROBE:
		if (b->wire == NULL) {
			rc = batch_builder_finish(&b->bb, 0, &b->wire, &b->wire_len);
			if (rc < 0)
				return rc;
		}
		pr.topic = b->topic->name;
		pr.acks = (Brokerd__Acks)p->conf.acks;
		if (r->kind == RQ_PRODUCE) {
			pr.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
			pr.partition = (uint32_t)b->part->id;
			r->expect_response = p->conf.acks != BK_ACKS_NONE;
		} else {
			const struct urec *u = b->probe_rec;

			if (u->partition >= 0) {
				pr.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
				pr.partition = (uint32_t)u->partition;
			} else if (u->key_len >= 0) {
				pr.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION_KEY;
				pr.partition_key.data = (uint8_t *)u->key;
				pr.partition_key.len = (size_t)u->key_len;
			}
			/* a probe must be answered, to learn whether the topic exists */
			if (pr.acks == BROKERD__ACKS__ACKS_NONE)
				pr.acks = BROKERD__ACKS__ACKS_LEADER;
		}
		tail = b->wire_len;
		nprod = brokerd__produce_request__get_packed_size(&pr) +
			varint_size(PROD_TAG_RECORDS) + varint_size(tail) + tail;
		break;
	}
	n = brokerd__request__get_packed_size(&req);
	if (nprod > 0)
		n += varint_size(PROD_TAG_PRODUCE) + varint_size(nprod) + nprod;
	if (n > UINT32_MAX)
		return -EMSGSIZE;
	f = r->frame = malloc(4 + n - tail);
	if (f == NULL)
		return -ENOMEM;
	f[0] = (uint8_t)(n >> 24);
	f[1] = (uint8_t)(n >> 16);
	f[2] = (uint8_t)(n >> 8);
	f[3] = (uint8_t)n;
	h = 4 + brokerd__request__pack(&req, f + 4);
	if (nprod > 0) {
		h += varint_put(f + h, PROD_TAG_PRODUCE);
		h += varint_put(f + h, nprod);
		h += brokerd__produce_request__pack(&pr, f + h);
		h += varint_put(f + h, PROD_TAG_RECORDS);
		h += varint_put(f + h, tail);
		r->tail = b->wire;
	}
	r->hlen = h;
	r->len = 4 + n;
	r->off = 0;
	r->sent = mono_ms();
	return 0;
}

static void on_connected(struct bk_producer *p, struct io *io)
{
	struct preq *r = preq_new(RQ_API);
	int one = 1, rc = r != NULL ? encode(p, r) : -ENOMEM;

	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	freeaddrinfo(p->ai);
	p->ai = p->ai_cur = NULL;
	p->state = ST_HANDSHAKE;
	if (rc < 0) {
		preq_free(r);
		conn_down(p, io, rc);
		return;
	}
	preq_push(&p->wq, r);
}

/* Start connecting to the next address of the bootstrap (resolved first,
 * blocking, when there is none left to try). */
static void conn_start(struct bk_producer *p, struct io *io)
{
	int rc = -EHOSTUNREACH;

	if (p->ai == NULL) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM };

		rc = getaddrinfo(p->host, p->port, &hints, &p->ai);
		if (rc != 0) {
			p->ai = NULL;
			conn_down(p, io, rc == EAI_MEMORY ? -ENOMEM
					 : rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH);
			return;
		}
		p->ai_cur = p->ai;
		rc = -EHOSTUNREACH;
	}
	while (p->ai_cur != NULL) {
		const struct addrinfo *ai = p->ai_cur;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
				ai->ai_protocol);

		if (fd < 0) {
			rc = -errno;
			p->ai_cur = ai->ai_next;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			p->fd = fd;
			on_connected(p, io);
			return;
		}
		if (errno == EINPROGRESS) {
			p->fd = fd;
			p->state = ST_CONNECTING;
			p->conn_t0 = mono_ms();
			return;
		}
		rc = -errno;
		close(fd);
		p->ai_cur = ai->ai_next;
	}
	conn_down(p, io, rc);
}

/* Non-blocking connect finished (or failed: then try the next address). */
static void conn_finish(struct bk_producer *p, struct io *io)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0) {
		on_connected(p, io);
		return;
	}
	close(p->fd);
	p->fd = -1;
	p->ai_cur = p->ai_cur->ai_next;
	if (p->ai_cur != NULL)
		conn_start(p, io);
	else
		conn_down(p, io, -err);
}

/* Write what the socket takes.  A request fully written moves to the
 * awaiting list, or (acks none) completes. */
static void flush_out(struct bk_producer *p, struct io *io)
{
	while (p->wq.head != NULL) {
		struct iovec iov[PROD_IOV_MAX];
		struct msghdr mh = { .msg_iov = iov };
		struct preq *r;
		ssize_t w;
		size_t left;

		for (r = p->wq.head; r != NULL && mh.msg_iovlen + 2 <= PROD_IOV_MAX; r = r->next) {
			size_t t = r->off > r->hlen ? r->off - r->hlen : 0;

			if (r->off < r->hlen)
				iov[mh.msg_iovlen++] = (struct iovec){ r->frame + r->off,
								       r->hlen - r->off };
			if (r->len > r->hlen)
				iov[mh.msg_iovlen++] = (struct iovec){ (uint8_t *)r->tail + t,
								       r->len - r->hlen - t };
		}
		w = sendmsg(p->fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_down(p, io, -errno);
			return;
		}
		for (left = (size_t)w; left > 0;) {
			r = p->wq.head;
			if (left < r->len - r->off) {
				r->off += left;
				break;
			}
			left -= r->len - r->off;
			preq_pop(&p->wq);
			free(r->frame);
			r->frame = NULL;
			if (r->expect_response) {
				preq_push(&p->aq, r);
			} else {
				p->ninflight--;
				r->err = 0;
				preq_push(&io->results, r);
			}
		}
	}
}

/* Match one response to the oldest request awaiting one.  Takes resp.
 * Returns 0, or -1 when the connection went down. */
static int on_response(struct bk_producer *p, struct io *io, Brokerd__Response *resp)
{
	struct preq *h = p->aq.head;
	int err;

	if (resp->correlation_id == 0 && resp->error != BROKERD__ERROR_CODE__OK) {
		/* TOO_MANY_CONNECTIONS, FRAME_TOO_LARGE ...: then it closes */
		plog(p, io, 3, "producer: the broker closes the connection: %s: %s",
		     bk_error_name(resp->error), resp->error_message);
		err = BK_ERR(resp->error);
		brokerd__response__free_unpacked(resp, NULL);
		conn_down(p, io, err);
		return -1;
	}
	if (h == NULL || resp->correlation_id < h->corr) {
		/* brokerd answers an acks=none produce it rejects at once */
		plog(p, io, 2, "producer: the broker answered request %llu, sent with acks none: %s: %s",
		     (unsigned long long)resp->correlation_id, bk_error_name(resp->error),
		     resp->error_message);
		brokerd__response__free_unpacked(resp, NULL);
		return 0;
	}
	if (resp->correlation_id != h->corr) {
		plog(p, io, 3, "producer: answer to request %llu while %llu is the oldest in flight",
		     (unsigned long long)resp->correlation_id, (unsigned long long)h->corr);
		brokerd__response__free_unpacked(resp, NULL);
		conn_down(p, io, -EPROTO);
		return -1;
	}
	preq_pop(&p->aq);
	h->resp = resp;
	if (h->kind == RQ_PRODUCE)
		p->ninflight--;
	if (h->kind == RQ_API) {
		if (resp->error != BROKERD__ERROR_CODE__OK ||
		    resp->op_case != BROKERD__RESPONSE__OP_API_VERSIONS) {
			err = resp->error != BROKERD__ERROR_CODE__OK ? BK_ERR(resp->error) : -EPROTO;
			preq_free(h);
			conn_down(p, io, err);
			return -1;
		}
		p->state = ST_UP;
		p->conn_fails = 0;
		p->conn_backoff = p->conf.retry_backoff_ms;
		plog(p, io, p->was_up ? 2 : 1, "producer: %s %s (brokerd %s)",
		     p->was_up ? "reconnected to" : "connected to", p->bootstrap,
		     resp->api_versions->broker_version);
		p->was_up = true;
	}
	preq_push(&io->results, h);
	return 0;
}

/* Decode every whole frame in the read buffer.  Returns 0, or -1 when the
 * connection went down. */
static int parse_in(struct bk_producer *p, struct io *io)
{
	size_t pos = 0;

	while (p->rlen - pos >= 4) {
		const uint8_t *f = p->rbuf + pos;
		uint32_t len = (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3];
		Brokerd__Response *resp;

		if (len > PROD_MAX_RESPONSE) {
			conn_down(p, io, -EPROTO);
			return -1;
		}
		if (p->rlen - pos - 4 < len)
			break;
		resp = brokerd__response__unpack(NULL, len, f + 4);
		pos += 4 + (size_t)len;
		if (resp == NULL) {
			conn_down(p, io, -EPROTO);
			return -1;
		}
		if (on_response(p, io, resp) < 0)
			return -1;
	}
	memmove(p->rbuf, p->rbuf + pos, p->rlen - pos);
	p->rlen -= pos;
	return 0;
}

static void read_in(struct bk_producer *p, struct io *io)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n;

		if (p->rcap - p->rlen < 4096) {
			size_t ncap = p->rcap != 0 ? p->rcap * 2 : 65536;
			uint8_t *nb = realloc(p->rbuf, ncap);

			if (nb == NULL) {
				conn_down(p, io, -ENOMEM);
				return;
			}
			p->rbuf = nb;
			p->rcap = ncap;
		}
		n = recv(p->fd, p->rbuf + p->rlen, p->rcap - p->rlen, 0);
		if (n > 0) {
			p->rlen += (size_t)n;
			if (parse_in(p, io) < 0)
				return;
			continue;
		}
		if (n == 0) {
			conn_down(p, io, -ECONNRESET);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			conn_down(p, io, -errno);
		return;
	}
}

/* Connect if needed, send what was planned, wait (poll) until `next` or an
 * event, and handle it. */
static void do_io(struct bk_producer *p, struct io *io, int64_t next)
{
	int64_t now = mono_ms(), rto = p->conf.request_timeout_ms, deadline = next;
	struct pollfd pfd[2] = { { .fd = p->wake_fd, .events = POLLIN }, { .fd = -1 } };
	struct preq *r;
	int n, timeout;

	if (io->want_conn && p->state == ST_DOWN && now >= p->reconnect_at)
		conn_start(p, io);
	while ((r = preq_pop(&io->send)) != NULL) {
		int rc = p->state == ST_UP ? encode(p, r) : -ENOTCONN;

		if (rc < 0) {
			if (r->kind == RQ_PRODUCE)
				p->ninflight--;
			r->err = rc;
			preq_push(&io->results, r);
			continue;
		}
		preq_push(&p->wq, r);
	}
	if (p->fd >= 0 && p->state != ST_CONNECTING && p->wq.head != NULL)
		flush_out(p, io);
	if (p->fd >= 0) {
		pfd[1].fd = p->fd;
		pfd[1].events = p->state == ST_CONNECTING ? POLLOUT
				: p->wq.head != NULL ? POLLIN | POLLOUT : POLLIN;
		if (p->state == ST_CONNECTING)
			deadline = min64(deadline, p->conn_t0 + rto);
		if (p->aq.head != NULL)
			deadline = min64(deadline, p->aq.head->sent + rto);
		if (p->wq.head != NULL)
			deadline = min64(deadline, p->wq.head->sent + rto);
	}
	if (io->results.head != NULL || io->done.head != NULL || io->done_u.head != NULL)
		deadline = now;
	timeout = deadline == INT64_MAX ? -1 : deadline <= now ? 0
		  : deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
	n = poll(pfd, p->fd >= 0 ? 2 : 1, timeout);
	if (n > 0 && (pfd[0].revents & POLLIN)) {
		uint64_t v;

		(void)!read(p->wake_fd, &v, sizeof(v));
	}
	if (n > 0 && p->fd >= 0 && pfd[1].revents != 0) {
		if (p->state == ST_CONNECTING) {
			conn_finish(p, io);
		} else {
			if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
				read_in(p, io);
			if (p->fd >= 0 && (pfd[1].revents & POLLOUT))
				flush_out(p, io);
		}
	}
	now = mono_ms();
	if (p->state == ST_CONNECTING && now >= p->conn_t0 + rto) {
		conn_down(p, io, -ETIMEDOUT);
	} else if (p->fd >= 0 && ((p->aq.head != NULL && now >= p->aq.head->sent + rto) ||
				  (p->wq.head != NULL && now >= p->wq.head->sent + rto))) {
		plog(p, io, 2, "producer: no answer from %s within request_timeout_ms (%d ms)",
		     p->bootstrap, p->conf.request_timeout_ms);
		conn_down(p, io, -ETIMEDOUT);
	}
}

/* The I/O thread: alternates a locked half (results, expiry, planning) and
 * an unlocked half (callbacks, logs, socket). */
static void *io_main(void *arg)
{
	struct bk_producer *p = arg;
	struct io io;
	struct preq *r;

	memset(&io, 0, sizeof(io));
	pthread_mutex_lock(&p->lock);
	for (;;) {
		int64_t now = mono_ms(), next;

		p->wake_pending = false;
		process_results(p, &io, now);
		if (p->stop)
			break;
		next = plan(p, now, &io);
		p->io_deadline = next;
		pthread_mutex_unlock(&p->lock);
		run_done(p, &io);
		emit_logs(p, &io);
		do_io(p, &io, next);
		emit_logs(p, &io);
		pthread_mutex_lock(&p->lock);
	}
	/* closing: whatever is left fails */
	fail_queued(p, &io, -ESHUTDOWN);
	pthread_mutex_unlock(&p->lock);
	while ((r = preq_pop(&p->wq)) != NULL || (r = preq_pop(&p->aq)) != NULL ||
	       (r = preq_pop(&io.send)) != NULL) {
		if (r->kind == RQ_PRODUCE || r->kind == RQ_PROBE)
			batch_fail(&io, r->batch, -ESHUTDOWN);
		preq_free(r);
	}
	run_done(p, &io);
	emit_logs(p, &io);
	return NULL;
}

/* --- the public API ------------------------------------------------------------ */

void bk_producer_conf_init(struct bk_producer_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->acks = BK_ACKS_ALL;
	conf->batch_size = 65536;
	conf->linger_ms = 5;
	conf->max_in_flight = 5;
	conf->retry_backoff_ms = 100;
	conf->delivery_timeout_ms = 120000;
	conf->request_timeout_ms = 30000;
	conf->buffer_memory = 33554432;
	conf->max_block_ms = 60000;
}

static bool in_io_thread(const struct bk_producer *p)
{
	return pthread_equal(pthread_self(), p->thread) != 0;
}

static void topic_free(struct ptopic *t)
{
	struct urec *u;

	while ((u = t->ua_head) != NULL) {
		t->ua_head = u->next;
		free(u);
	}
	batch_free(t->probe);
	for (int32_t i = 0; i < t->nalloc; i++) {
		struct pbatch *b;

		while ((b = part_pop(t->parts[i])) != NULL)
			batch_free(b);
		free(t->parts[i]);
	}
	free(t->parts);
	free(t->name);
	free(t);
}

/* Free p and everything it holds (the I/O thread is not running). */
static void producer_free(struct bk_producer *p)
{
	struct ptopic *t;
	struct preq *r;

	while ((t = p->topics) != NULL) {
		p->topics = t->next;
		topic_free(t);
	}
	while ((r = preq_pop(&p->wq)) != NULL || (r = preq_pop(&p->aq)) != NULL)
		preq_free(r);
	if (p->ai != NULL)
		freeaddrinfo(p->ai);
	if (p->fd >= 0)
		close(p->fd);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	free(p->rbuf);
	free(p->tab);
	free(p->bootstrap);
	free(p->client_id);
	free(p);
}

int bk_producer_new(const struct bk_producer_conf *conf, struct bk_producer **out)
{
	struct bk_producer *p;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if (conf == NULL || out == NULL || conf->bootstrap == NULL ||
	    (conf->acks != BK_ACKS_ALL && conf->acks != BK_ACKS_LEADER &&
	     conf->acks != BK_ACKS_NONE) ||
	    conf->batch_size == 0 || conf->batch_size > INT32_MAX || conf->linger_ms < 0 ||
	    conf->max_in_flight < 1 || conf->retry_backoff_ms < 0 ||
	    conf->delivery_timeout_ms <= 0 || conf->request_timeout_ms <= 0 ||
	    conf->buffer_memory == 0 || conf->max_block_ms < 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->fd = -1;
	p->wake_fd = -1;
	p->conf = *conf;
	p->bootstrap = strdup(conf->bootstrap);
	p->client_id = strdup(conf->client_id != NULL && conf->client_id[0] != '\0'
				      ? conf->client_id : "libbrokerc");
	p->tab_size = 16;
	p->tab = calloc(p->tab_size, sizeof(*p->tab));
	if (p->bootstrap == NULL || p->client_id == NULL || p->tab == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (addr_split(p->bootstrap, p->host, sizeof(p->host), &p->port) < 0) {
		rc = -EINVAL;
		goto fail;
	}
	p->conf.bootstrap = p->bootstrap;
	p->conf.client_id = p->client_id;
	p->max_batch = PROD_DEFAULT_MAX_BATCH;
	p->batch_target = conf->batch_size < p->max_batch ? conf->batch_size : p->max_batch;
	p->io_deadline = INT64_MAX;
	p->state = ST_DOWN;
	p->conn_backoff = conf->retry_backoff_ms;
	p->next_corr = 1;
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = -pthread_mutex_init(&p->lock, NULL);
	if (rc < 0)
		goto fail;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = -pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc < 0) {
		pthread_mutex_destroy(&p->lock);
		goto fail;
	}
	/* The I/O thread takes no signals: they stay with the application. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&p->thread, NULL, io_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	producer_free(p);
	return rc;
}

/* Copy rec (validated) into one allocation, for the unassigned queue. */
static struct urec *urec_new(const struct bk_record *rec, struct ptopic *t, int64_t ts,
			     int64_t now, size_t bytes, bk_delivery_cb cb, void *opaque,
			     bool urgent)
{
	size_t size = sizeof(struct urec) + rec->nheaders * sizeof(struct batch_kv);
	struct urec *u;
	uint8_t *d;

	size += rec->key_len > 0 ? (size_t)rec->key_len : 0;
	size += rec->value_len > 0 ? (size_t)rec->value_len : 0;
	for (uint32_t i = 0; i < rec->nheaders; i++)
		size += strlen(rec->headers[i].key) +
			(rec->headers[i].value_len > 0 ? (size_t)rec->headers[i].value_len : 0);
	u = malloc(size);
	if (u == NULL)
		return NULL;
	memset(u, 0, sizeof(*u));
	u->topic = t;
	u->partition = rec->partition;
	u->ts = ts;
	u->queued = now;
	u->bytes = bytes;
	u->urgent = urgent;
	u->msg = (struct pmsg){ cb, opaque };
	u->hdrs = (struct batch_kv *)(u + 1);
	u->nh = rec->nheaders;
	d = (uint8_t *)(u->hdrs + rec->nheaders);
	u->key_len = rec->key_len;
	if (rec->key_len > 0) {
		memcpy(d, rec->key, (size_t)rec->key_len);
		u->key = d;
		d += rec->key_len;
	}
	u->value_len = rec->value_len;
	if (rec->value_len > 0) {
		memcpy(d, rec->value, (size_t)rec->value_len);
		u->value = d;
		d += rec->value_len;
	}
	for (uint32_t i = 0; i < rec->nheaders; i++) {
		const struct bk_header *h = &rec->headers[i];
		size_t kl = strlen(h->key);

		memcpy(d, h->key, kl);
		u->hdrs[i] = (struct batch_kv){ .key = d, .key_len = (int32_t)kl,
						.value_len = h->value_len };
		d += kl;
		if (h->value_len > 0) {
			memcpy(d, h->value, (size_t)h->value_len);
			u->hdrs[i].value = d;
			d += h->value_len;
		}
	}
	return u;
}

static int check_record(const struct bk_record *rec)
{
	size_t tl;

	if (rec == NULL || rec->topic == NULL)
		return -EINVAL;
	tl = strlen(rec->topic);
	if (tl == 0 || tl > PROD_TOPIC_MAX || rec->partition < -1 || rec->key_len < -1 ||
	    rec->value_len < -1 || (rec->key_len > 0 && rec->key == NULL) ||
	    (rec->value_len > 0 && rec->value == NULL) ||
	    (rec->nheaders > 0 && rec->headers == NULL) || rec->nheaders > INT32_MAX / 2)
		return -EINVAL;
	for (uint32_t i = 0; i < rec->nheaders; i++) {
		const struct bk_header *h = &rec->headers[i];

		if (h->key == NULL || strlen(h->key) > INT32_MAX / 2 || h->value_len < -1 ||
		    (h->value_len > 0 && h->value == NULL))
			return -EINVAL;
	}
	return 0;
}

/* Wake the I/O thread (under lock). */
static void wake_locked(struct bk_producer *p)
{
	uint64_t one = 1;

	if (p->wake_pending)
		return;
	p->wake_pending = true;
	(void)!write(p->wake_fd, &one, sizeof(one));
}

/* Wait (under the lock, at most max_block_ms) until `bytes` more fit in
 * buffer_memory or the producer closes.  Meanwhile every batch goes at
 * once, as during a flush: waiting for linger_ms would only keep the buffer
 * full.  Returns at once from the I/O thread (a delivery callback), which
 * is what frees the space. */
static void wait_for_space(struct bk_producer *p, size_t bytes)
{
	struct timespec dl;

	if (p->conf.max_block_ms <= 0 || p->closing || bytes > p->conf.buffer_memory ||
	    p->queued_bytes + bytes <= p->conf.buffer_memory || in_io_thread(p))
		return;
	dl = deadline_in(p->conf.max_block_ms);
	p->flushing++;
	p->waiters++;
	wake_locked(p);
	while (!p->closing && p->queued_bytes + bytes > p->conf.buffer_memory)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &dl) == ETIMEDOUT)
			break;
	p->waiters--;
	p->flushing--;
}

/* bk_producer_send; urgent: send its batch without waiting for linger_ms. */
static int send_rec(struct bk_producer *p, const struct bk_record *rec, bk_delivery_cb cb,
		    void *opaque, bool urgent)
{
	struct batch_kv kv_stack[16], *kv = kv_stack;
	size_t core, single, bytes;
	int64_t now, ts, due = INT64_MAX;
	struct ptopic *t;
	bool wake = false;
	int rc;

	if (p == NULL)
		return -EINVAL;
	rc = check_record(rec);
	if (rc < 0)
		return rc;
	core = rec_core(rec);
	if (core > INT32_MAX / 2)
		return -EMSGSIZE;
	single = svarint_size((int64_t)core + 2) + core + 2; /* alone: both deltas 0 */
	bytes = svarint_size((int64_t)core + 15) + core + 15; /* anywhere in a batch */
	ts = rec->timestamp_ms != 0 ? rec->timestamp_ms : wall_ms();
	now = mono_ms();
	if (rec->nheaders > 16) {
		kv = malloc(rec->nheaders * sizeof(*kv));
		if (kv == NULL)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < rec->nheaders; i++)
		kv[i] = (struct batch_kv){ .key = rec->headers[i].key,
					   .key_len = (int32_t)strlen(rec->headers[i].key),
					   .value = rec->headers[i].value,
					   .value_len = rec->headers[i].value_len };
	pthread_mutex_lock(&p->lock);
	if (!p->closing && BATCH_HEADER_SIZE + single <= p->max_batch &&
	    p->queued_bytes + bytes > p->conf.buffer_memory) {
		wait_for_space(p, bytes);
		now = mono_ms();
	}
	if (p->closing) {
		rc = -ESHUTDOWN;
	} else if (BATCH_HEADER_SIZE + single > p->max_batch || bytes > p->conf.buffer_memory) {
		rc = -EMSGSIZE;
	} else if (p->queued_bytes + bytes > p->conf.buffer_memory) {
		rc = -ENOBUFS;
	} else if ((t = topic_get(p, rec->topic)) == NULL) {
		rc = -ENOMEM;
	} else if (t->nparts > 0 && rec->partition < t->nparts) {
		struct rec_in r = {
			.ts = ts, .key = rec->key, .key_len = rec->key_len,
			.value = rec->value, .value_len = rec->value_len,
			.hdrs = kv, .nh = rec->nheaders, .bytes = bytes, .queued = now,
			.msg = { cb, opaque }, .urgent = urgent,
		};
		struct ppart *pt = choose_part(t, rec->partition, rec->key, rec->key_len);
		struct pbatch *b;

		rc = part_append(p, pt, &r, &b);
		if (rc == 0) {
			stick(t, pt, b, rec->partition, rec->key_len);
			due = b->closed || p->flushing > 0 ? now : b->created + p->conf.linger_ms;
		}
	} else {
		struct urec *u = urec_new(rec, t, ts, now, bytes, cb, opaque, urgent);

		if (u == NULL) {
			rc = -ENOMEM;
		} else {
			if (t->ua_tail != NULL)
				t->ua_tail->next = u;
			else
				t->ua_head = u;
			t->ua_tail = u;
			if (!t->md_inflight && t->probe == NULL && !t->md_want) {
				t->md_want = true;
				due = now;
			}
		}
	}
	if (rc == 0) {
		p->queued_bytes += bytes;
		p->outstanding++;
		if (!p->wake_pending && due < p->io_deadline) {
			p->wake_pending = true;
			wake = true;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (wake) {
		uint64_t one = 1;

		(void)!write(p->wake_fd, &one, sizeof(one));
	}
	if (kv != kv_stack)
		free(kv);
	return rc;
}

int bk_producer_send(struct bk_producer *p, const struct bk_record *rec, bk_delivery_cb cb,
		     void *msg_opaque)
{
	return send_rec(p, rec, cb, msg_opaque, false);
}

struct sync_wait {
	struct bk_producer *p;
	bool done;
	int err;
	int32_t partition;
	int64_t offset;
};

static void sync_done(void *opaque, int err, const char *topic, int32_t partition,
		      int64_t offset)
{
	struct sync_wait *w = opaque;

	(void)topic;
	pthread_mutex_lock(&w->p->lock);
	w->err = err;
	w->partition = partition;
	w->offset = offset;
	w->done = true;
	pthread_cond_broadcast(&w->p->cond);
	pthread_mutex_unlock(&w->p->lock);
}

int bk_producer_send_sync(struct bk_producer *p, const struct bk_record *rec,
			  int32_t *partition, int64_t *offset)
{
	struct sync_wait w = { .p = p };
	int rc;

	if (p == NULL)
		return -EINVAL;
	if (in_io_thread(p))
		return -EDEADLK;
	rc = send_rec(p, rec, sync_done, &w, true);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&p->lock);
	p->waiters++;
	while (!w.done)
		pthread_cond_wait(&p->cond, &p->lock);
	p->waiters--;
	pthread_mutex_unlock(&p->lock);
	if (w.err == 0) {
		if (partition != NULL)
			*partition = w.partition;
		if (offset != NULL)
			*offset = w.offset;
	}
	return w.err;
}

int bk_producer_flush(struct bk_producer *p, int timeout_ms)
{
	struct timespec dl = deadline_in(timeout_ms > 0 ? timeout_ms : 0);
	int rc = 0;

	if (p == NULL)
		return -EINVAL;
	if (in_io_thread(p))
		return -EDEADLK;
	pthread_mutex_lock(&p->lock);
	p->flushing++;
	p->waiters++;
	wake_locked(p);
	while (p->outstanding > 0 && rc == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&p->cond, &p->lock);
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &dl) == ETIMEDOUT &&
			 p->outstanding > 0)
			rc = -ETIMEDOUT;
	}
	p->waiters--;
	p->flushing--;
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void bk_producer_close(struct bk_producer *p)
{
	if (p == NULL)
		return;
	if (in_io_thread(p)) {
		/* from a delivery callback: the thread cannot join itself.  Refuse
		 * new records and leave the rest to a close from elsewhere. */
		pthread_mutex_lock(&p->lock);
		p->closing = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->closing = true;
	wake_locked(p);
	pthread_cond_broadcast(&p->cond); /* senders waiting for space: -ESHUTDOWN */
	pthread_mutex_unlock(&p->lock);
	bk_producer_flush(p, p->conf.delivery_timeout_ms);
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	p->wake_pending = false;
	wake_locked(p);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	producer_free(p);
}
