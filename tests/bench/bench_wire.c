/* bench_wire — network load generator for brokerd, speaking the wire
 * protocol (4-byte big-endian length + protobuf Request/Response) directly
 * over non-blocking sockets with the generated protobuf-c codec.  Modes:
 * produce, consume, latency, e2e, create; each prints one key=value summary
 * line.  Every loop is bounded by a count and by time (a watchdog grace past
 * --seconds turns a stuck broker into exit 1, never a hang).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "proto/batch.h"
#include "proto/broker.pb-c.h"
#include "tools/lathist.h"

#define WB_GRACE_NS       (30ull * 1000000000ull) /* past --seconds */
#define WB_FRAME_MAX      (1u << 30)              /* sanity bound on a response */
#define WB_HEAD_MAX       512                     /* envelope bytes before records */
#define WB_BODY_MIN       512                     /* chunks this big are not copied */
#define WB_MAX_CONNS      4096
#define WB_MAX_THREADS    64
#define WB_IOV            64
#define WB_TOPIC_CFG_MAX  8

/* --- options ------------------------------------------------------------- */

enum wb_mode { WB_PRODUCE, WB_CONSUME, WB_LATENCY, WB_PING, WB_E2E, WB_CREATE };

struct opts {
	enum wb_mode mode;
	const char *host;
	const char *port;
	const char *topic;
	uint32_t partitions;
	int conns;
	int threads;
	int depth;
	uint32_t batch_records;  /* 0: fill batch_bytes */
	size_t batch_bytes;
	int32_t record_size;
	Brokerd__Acks acks;
	double seconds;
	uint64_t max_records;    /* 0: no cap */
	double rate;
	uint32_t max_bytes;
	uint32_t max_wait_ms;
	uint32_t topics;
	bool create;
	const char *cfg_key[WB_TOPIC_CFG_MAX];
	const char *cfg_val[WB_TOPIC_CFG_MAX];
	int ncfg;
};

static struct opts opt;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static atomic_flag dying = ATOMIC_FLAG_INIT;

/* Print the reason and exit 1.  Called from any thread: the first caller
 * reports and exits, later ones wait for the exit. */
static void die(const char *fmt, ...)
{
	va_list ap;

	if (atomic_flag_test_and_set(&dying))
		for (;;)
			pause();
	fputs("bench_wire: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

static void h_print(const struct hist *h)
{
	printf(" p50_us=%.1f p95_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f",
	       h_pct_us(h, 0.50), h_pct_us(h, 0.95), h_pct_us(h, 0.99),
	       h_pct_us(h, 0.999), h_pct_us(h, 1.0));
}

/* --- arena allocator for unpacking ---------------------------------------- *
 * A fetch response carries megabytes; protobuf-c copies its bytes fields, so
 * unpack into a reused arena instead of a fresh malloc (mmap) per response.
 * Reset after each free_unpacked; grows to the largest message seen. */

struct arena {
	ProtobufCAllocator a;
	uint8_t *buf;
	size_t cap, used, want;
};

static void *ar_alloc(void *data, size_t n)
{
	struct arena *ar = data;

	n = (n + 15) & ~(size_t)15;
	if (ar->used + n <= ar->cap) {
		void *p = ar->buf + ar->used;
		ar->used += n;
		return p;
	}
	if (ar->used + n > ar->want)
		ar->want = ar->used + n;
	return malloc(n);
}

static void ar_free(void *data, void *p)
{
	struct arena *ar = data;

	if ((uint8_t *)p >= ar->buf && (uint8_t *)p < ar->buf + ar->cap)
		return;
	free(p);
}

static void ar_init(struct arena *ar)
{
	memset(ar, 0, sizeof(*ar));
	ar->a.alloc = ar_alloc;
	ar->a.free = ar_free;
	ar->a.allocator_data = ar;
}

static void ar_reset(struct arena *ar)
{
	ar->used = 0;
	if (ar->want > ar->cap) {
		free(ar->buf);
		ar->cap = ar->want + ar->want / 4;
		ar->buf = malloc(ar->cap);
		if (ar->buf == NULL)
			die("out of memory");
		ar->want = 0;
	}
}

static void ar_fini(struct arena *ar)
{
	free(ar->buf);
	ar->buf = NULL;
	ar->cap = 0;
}

/* --- error reporting -------------------------------------------------------- */

static const char *errname(Brokerd__ErrorCode e)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&brokerd__error_code__descriptor, (int)e);

	return v != NULL ? v->name : "?";
}

/* Exit 1 naming the broker's error, unless it is `ok_also`. */
static void check_resp(const Brokerd__Response *r, const char *what, int ok_also)
{
	if (r->error == BROKERD__ERROR_CODE__OK || (int)r->error == ok_also)
		return;
	die("%s: broker error %s (%d): %s", what, errname(r->error), (int)r->error,
	    r->error_message != NULL ? r->error_message : "");
}

/* --- framing: encode a request as head bytes + one borrowed body ----------- *
 * pack_to_buffer hands a bytes field's data to append() by pointer, so the
 * record batch of a produce is sent straight from the template (writev),
 * never copied into a send buffer.  Anything after a big chunk (not the case
 * for ProduceRequest, whose records field is the last one packed) falls back
 * to a full copy. */

struct frame {
	uint8_t head[WB_HEAD_MAX];
	size_t head_len;
	const uint8_t *body;   /* borrowed, or == own */
	size_t body_len;
	uint8_t *own;          /* fallback: whole frame after the head, owned */
	size_t sent;           /* bytes of head + body written */
	uint64_t t0_ns;
	uint64_t corr;
	uint32_t records;      /* produce: records carried */
	bool need_ack;         /* produce acks=none: false */
	bool acked;
	/* fetch */
	struct cpart *part;
	int64_t offset;
	uint32_t epoch;
};

struct iobuf {
	ProtobufCBuffer base;
	struct frame *f;
	bool overflow;
};

static void iob_append(ProtobufCBuffer *pb, size_t len, const uint8_t *data)
{
	struct iobuf *ib = (struct iobuf *)pb;
	struct frame *f = ib->f;

	if (len == 0)
		return;
	if (f->body == NULL && len >= WB_BODY_MIN) {
		f->body = data;
		f->body_len = len;
		return;
	}
	if (f->body != NULL || f->head_len + len > WB_HEAD_MAX) {
		ib->overflow = true;
		return;
	}
	memcpy(f->head + f->head_len, data, len);
	f->head_len += len;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Encode `req` into *f (head, borrowed body).  The body stays borrowed from
 * req's bytes field: it must outlive the frame's sending. */
static void frame_encode(struct frame *f, const Brokerd__Request *req)
{
	struct iobuf ib = { .base = { .append = iob_append }, .f = f, .overflow = false };
	size_t n = brokerd__request__get_packed_size(req);

	if (n > WB_FRAME_MAX)
		die("request of %zu bytes too large", n);
	free(f->own);
	f->own = NULL;
	f->body = NULL;
	f->body_len = 0;
	f->sent = 0;
	put_be32(f->head, (uint32_t)n);
	f->head_len = 4;
	brokerd__request__pack_to_buffer(req, &ib.base);
	if (ib.overflow) {
		f->own = malloc(n);
		if (f->own == NULL)
			die("out of memory");
		brokerd__request__pack(req, f->own);
		f->head_len = 4;
		f->body = f->own;
		f->body_len = n;
	}
}

static size_t frame_len(const struct frame *f)
{
	return f->head_len + f->body_len;
}

/* --- sockets ------------------------------------------------------------------ */

static int fcntl_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int sock_connect(void)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	int fd = -1, one = 1, rc;

	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(opt.host, opt.port, &hints, &res);
	if (rc != 0)
		die("%s:%s: %s", opt.host, opt.port, gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		die("cannot connect to %s:%s: %s", opt.host, opt.port, strerror(errno));
	freeaddrinfo(res);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (fcntl_nonblock(fd) < 0)
		die("fcntl: %s", strerror(errno));
	return fd;
}

/* --- a connection: a ring of frames in flight and a receive buffer --------- *
 * Frames [acked, issued) are in flight in request order; [sendpos, issued)
 * are not completely written.  cap bounds issued - acked.  Responses match
 * the oldest frame that needs an ack (responses come in request order). */

struct conn {
	int fd;
	struct frame *ring;
	uint32_t cap;
	uint64_t done, sendpos, ackpos, issued;
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint64_t next_corr;
	uint32_t ev_mask;
	struct arena ar;
	/* produce */
	uint32_t partition;
	uint32_t window;       /* requests in flight (the fence may add one) */
	bool fenced;
	/* consume */
	struct cpart **parts;
	int nparts;
};

static void conn_init(struct conn *c, uint32_t cap)
{
	memset(c, 0, sizeof(*c));
	c->fd = sock_connect();
	c->cap = cap;
	c->ring = xcalloc(cap, sizeof(*c->ring));
	c->rcap = 1 << 16;
	c->rbuf = malloc(c->rcap);
	if (c->rbuf == NULL)
		die("out of memory");
	ar_init(&c->ar);
}

static void conn_fini(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	for (uint32_t i = 0; c->ring != NULL && i < c->cap; i++)
		free(c->ring[i].own);
	free(c->ring);
	free(c->rbuf);
	free(c->parts);
	ar_fini(&c->ar);
}

static struct frame *conn_slot(struct conn *c, uint64_t i)
{
	return &c->ring[i % c->cap];
}

/* Write what the socket takes.  Returns 0 or -errno (EAGAIN is 0). */
static int conn_flush(struct conn *c)
{
	while (c->sendpos < c->issued) {
		struct iovec iov[WB_IOV];
		int n = 0;
		ssize_t w;

		for (uint64_t i = c->sendpos; i < c->issued && n < WB_IOV - 1; i++) {
			struct frame *f = conn_slot(c, i);
			if (f->sent < f->head_len) {
				iov[n].iov_base = f->head + f->sent;
				iov[n++].iov_len = f->head_len - f->sent;
				if (f->body_len > 0) {
					iov[n].iov_base = (void *)f->body;
					iov[n++].iov_len = f->body_len;
				}
			} else {
				iov[n].iov_base = (void *)(f->body + (f->sent - f->head_len));
				iov[n++].iov_len = frame_len(f) - f->sent;
			}
		}
		w = writev(c->fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		while (w > 0) {
			struct frame *f = conn_slot(c, c->sendpos);
			size_t left = frame_len(f) - f->sent;
			size_t k = (size_t)w < left ? (size_t)w : left;
			f->sent += k;
			w -= (ssize_t)k;
			if (f->sent == frame_len(f))
				c->sendpos++;
		}
	}
	return 0;
}

/* One read() into the receive buffer: up to the end of the frame being
 * received when that is far (so a big response lands whole and little is
 * left to move), else 64 KiB.  Returns bytes read, 0 when nothing is there
 * (EAGAIN), -EPIPE at EOF, or -errno. */
static ssize_t conn_read(struct conn *c)
{
	size_t want = 1 << 16;
	ssize_t r;

	if (c->rlen >= 4) {
		size_t fend = 4 + (size_t)get_be32(c->rbuf);
		if (fend > c->rlen && fend - c->rlen > want)
			want = fend - c->rlen;
	}
	if (c->rcap - c->rlen < want) {
		size_t ncap = c->rlen + want + (1 << 16);
		uint8_t *nb = realloc(c->rbuf, ncap);
		if (nb == NULL)
			die("out of memory");
		c->rbuf = nb;
		c->rcap = ncap;
	}
	do
		r = read(c->fd, c->rbuf + c->rlen, want);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (r == 0)
		return -EPIPE;
	c->rlen += (size_t)r;
	return r;
}

/* Next complete frame in the receive buffer, unpacked into the arena.
 * Returns 1 with *out (free with resp_free), 0 if incomplete. */
static int conn_next(struct conn *c, size_t *pos, Brokerd__Response **out)
{
	uint32_t n;

	if (c->rlen - *pos < 4)
		return 0;
	n = get_be32(c->rbuf + *pos);
	if (n > WB_FRAME_MAX)
		die("response frame of %" PRIu32 " bytes: lost framing", n);
	if (c->rlen - *pos < 4 + (size_t)n)
		return 0;
	*out = brokerd__response__unpack(&c->ar.a, n, c->rbuf + *pos + 4);
	if (*out == NULL)
		die("cannot decode a response frame of %" PRIu32 " bytes", n);
	*pos += 4 + n;
	return 1;
}

static void resp_free(struct conn *c, Brokerd__Response *r)
{
	brokerd__response__free_unpacked(r, &c->ar.a);
	ar_reset(&c->ar);
}

/* Drop the consumed prefix [0, pos) of the receive buffer. */
static void conn_consumed(struct conn *c, size_t pos)
{
	if (pos == 0)
		return;
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
}

/* Wait until fd is readable/writable or deadline (ns, monotonic). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { fd, events, 0 };
	uint64_t now = now_ns();
	struct timespec ts;
	int r;

	if (now >= deadline)
		return -ETIMEDOUT;
	ts.tv_sec = (time_t)((deadline - now) / 1000000000u);
	ts.tv_nsec = (long)((deadline - now) % 1000000000u);
	r = ppoll(&p, 1, &ts, NULL);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Write every issued frame, waiting for the socket as needed, by deadline. */
static void conn_send_all(struct conn *c, uint64_t deadline, const char *what)
{
	for (;;) {
		int rc = conn_flush(c);

		if (rc < 0)
			die("%s: send: %s", what, strerror(-rc));
		if (c->sendpos == c->issued)
			return;
		if (wait_fd(c->fd, POLLOUT, deadline) == -ETIMEDOUT)
			die("%s: timed out sending", what);
	}
}

/* Blocking call on a connection with nothing else in flight: send `req`,
 * wait for its response until deadline.  Returns the response (resp_free). */
static Brokerd__Response *conn_call(struct conn *c, Brokerd__Request *req, uint64_t deadline,
				    const char *what)
{
	struct frame *f = conn_slot(c, c->issued);
	Brokerd__Response *r = NULL;
	size_t pos = 0;

	req->correlation_id = ++c->next_corr;
	frame_encode(f, req);
	c->issued++;
	conn_send_all(c, deadline, what);
	/* Wait, then read: the answer is never there right after the send, so a
	 * read first would be one more system call per request. */
	while (conn_next(c, &pos, &r) != 1) {
		ssize_t n;

		if (wait_fd(c->fd, POLLIN, deadline) == -ETIMEDOUT)
			die("%s: no response within the time limit", what);
		n = conn_read(c);
		if (n < 0)
			die("%s: receive: %s", what,
			    n == -EPIPE ? "connection closed by the broker" : strerror((int)-n));
	}
	conn_consumed(c, pos);
	c->done = c->ackpos = c->issued;
	if (r->correlation_id != req->correlation_id)
		die("%s: correlation id %" PRIu64 ", expected %" PRIu64, what,
		    r->correlation_id, req->correlation_id);
	return r;
}

/* --- record batches -------------------------------------------------------- */

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Cheap non-repeating bytes (nothing compresses or dedups them). */
static void fill_value(uint8_t *buf, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
}

/* Build a batch of `n` records of opt.record_size bytes (n = 0: as many as
 * keep the batch within opt.batch_bytes, at least one).  *stamp (may be NULL)
 * is written into the first 8 bytes of every value.  Returns the batch,
 * owned (free()). */
static uint8_t *build_batch(uint32_t n, const uint64_t *stamp, size_t *len, uint32_t *count)
{
	struct batch_builder bb;
	size_t vs = opt.record_size > 0 ? (size_t)opt.record_size : 1;
	uint8_t *value = malloc(vs), *out = NULL;
	int64_t ts = wall_ms();
	int rc = 0;

	if (value == NULL)
		die("out of memory");
	batch_builder_init(&bb);
	for (uint32_t i = 0; n == 0 || i < n; i++) {
		fill_value(value, vs, i);
		if (stamp != NULL && vs >= sizeof(*stamp))
			memcpy(value, stamp, sizeof(*stamp));
		if (n == 0 && i > 0 &&
		    batch_builder_size(&bb) + vs + 16 > opt.batch_bytes)
			break;
		rc = batch_builder_add(&bb, ts, NULL, -1, value, opt.record_size, NULL, 0);
		if (rc < 0)
			die("batch_builder_add: %s", strerror(-rc));
	}
	*count = batch_builder_count(&bb);
	rc = batch_builder_finish(&bb, 0, &out, len);
	if (rc < 0)
		die("batch_builder_finish: %s", strerror(-rc));
	batch_builder_fini(&bb);
	free(value);
	return out;
}

/* --- admin: create topics --------------------------------------------------- */

/* Create `name` with opt.partitions and the --topic-config entries.  An
 * existing topic is fine (as it is: its configs are not compared). */
static void create_topic(struct conn *c, const char *name, uint64_t deadline)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CreateTopicRequest ct = BROKERD__CREATE_TOPIC_REQUEST__INIT;
	Brokerd__CreateTopicRequest__ConfigsEntry ents[WB_TOPIC_CFG_MAX];
	Brokerd__CreateTopicRequest__ConfigsEntry *pents[WB_TOPIC_CFG_MAX];
	Brokerd__Response *r;

	ct.topic = (char *)name;
	ct.partitions = opt.partitions;
	for (int i = 0; i < opt.ncfg; i++) {
		Brokerd__CreateTopicRequest__ConfigsEntry e =
			BROKERD__CREATE_TOPIC_REQUEST__CONFIGS_ENTRY__INIT;
		e.key = (char *)opt.cfg_key[i];
		e.value = (char *)opt.cfg_val[i];
		ents[i] = e;
		pents[i] = &ents[i];
	}
	ct.n_configs = (size_t)opt.ncfg;
	ct.configs = pents;
	req.client_id = (char *)"bench_wire";
	req.op_case = BROKERD__REQUEST__OP_CREATE_TOPIC;
	req.create_topic = &ct;
	r = conn_call(c, &req, deadline, "create_topic");
	check_resp(r, "create_topic", BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS);
	resp_free(c, r);
}

/* High watermark of a partition. */
static int64_t list_offset(struct conn *c, const char *topic, uint32_t p, int64_t ts,
			   uint64_t deadline)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListOffsetsRequest lo = BROKERD__LIST_OFFSETS_REQUEST__INIT;
	Brokerd__Response *r;
	int64_t off;

	lo.topic = (char *)topic;
	lo.partition = p;
	lo.timestamp = ts;
	req.op_case = BROKERD__REQUEST__OP_LIST_OFFSETS;
	req.list_offsets = &lo;
	r = conn_call(c, &req, deadline, "list_offsets");
	check_resp(r, "list_offsets", -1);
	if (r->op_case != BROKERD__RESPONSE__OP_LIST_OFFSETS)
		die("list_offsets: response without a body");
	off = r->list_offsets->offset;
	resp_free(c, r);
	return off;
}

static int run_create(void)
{
	struct conn c;
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(opt.seconds * 1e9) + WB_GRACE_NS;
	char name[256];

	conn_init(&c, 1);
	for (uint32_t i = 0; i < opt.topics; i++) {
		if (opt.topics == 1)
			snprintf(name, sizeof(name), "%s", opt.topic);
		else
			snprintf(name, sizeof(name), "%s-%" PRIu32, opt.topic, i);
		create_topic(&c, name, deadline);
		if (now_ns() > deadline)
			die("create: time budget spent after %" PRIu32 " topics", i + 1);
	}
	printf("bench=wire mode=create topics=%" PRIu32 " partitions_per_topic=%" PRIu32
	       " partitions=%" PRIu64 " seconds=%.3f\n", opt.topics, opt.partitions,
	       (uint64_t)opt.topics * opt.partitions, (double)(now_ns() - t0) / 1e9);
	conn_fini(&c);
	return 0;
}

/* --- throughput modes: produce and consume ------------------------------------ */

/* A partition a consumer reads (owned by one connection). */
struct cpart {
	uint32_t partition;
	int64_t end;        /* done once expected >= end */
	int64_t expected;   /* next offset to count */
	int64_t next_issue; /* offset of the next fetch */
	int64_t per_fetch;  /* predicted records per response */
	uint32_t inflight;
	uint32_t epoch;     /* bumped when a prediction left a gap */
};

struct bench;

struct wthread {
	pthread_t tid;
	struct bench *b;
	int id;
	int ep;
	struct conn *conns;
	int nconns;
	struct hist h;
	uint64_t reqs, records, value_bytes, wire_bytes;
	uint64_t wasted, empty;
	uint64_t t_last_ns;
};

struct bench {
	uint8_t *tmpl;          /* produce: the batch every request carries */
	size_t tmpl_len;
	uint32_t tmpl_records;
	uint64_t t_start_ns, t_deadline_ns;
	atomic_uint_fast64_t budget; /* records left to issue (produce) */
	atomic_bool stop;
	struct wthread *th;
	struct cpart *parts;
};

static void conn_want_out(struct wthread *t, struct conn *c, bool out)
{
	uint32_t mask = EPOLLIN | (out ? EPOLLOUT : 0);
	struct epoll_event ev = { .events = mask, .data.ptr = c };

	if (mask == c->ev_mask)
		return;
	if (epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->ev_mask = mask;
}

/* Reserve `n` records of the global budget. */
static bool take_budget(struct bench *b, uint64_t n)
{
	uint_fast64_t left = atomic_load(&b->budget);

	while (left >= n)
		if (atomic_compare_exchange_weak(&b->budget, &left, left - n))
			return true;
	return false;
}

/* Queue one produce of the template batch to c's partition with `acks`
 * (an acks=none frame needs no answer). */
static void produce_issue(struct bench *b, struct conn *c, Brokerd__Acks acks, uint64_t now)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ProduceRequest pr = BROKERD__PRODUCE_REQUEST__INIT;
	struct frame *f;

	pr.topic = (char *)opt.topic;
	pr.partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
	pr.partition = c->partition;
	pr.acks = acks;
	pr.records.data = b->tmpl;
	pr.records.len = b->tmpl_len;
	req.correlation_id = ++c->next_corr;
	req.op_case = BROKERD__REQUEST__OP_PRODUCE;
	req.produce = &pr;
	f = conn_slot(c, c->issued);
	frame_encode(f, &req);
	f->t0_ns = now;
	f->corr = req.correlation_id;
	f->records = b->tmpl_records;
	f->need_ack = acks != BROKERD__ACKS__ACKS_NONE;
	f->acked = false;
	c->issued++;
}

/* Issue produce requests until the connection's window is full or a budget
 * is spent.  The last request of a connection under acks=none asks for
 * acks=leader: its answer means every earlier append is in the log. */
static void produce_fill(struct wthread *t, struct conn *c, uint64_t now)
{
	struct bench *b = t->b;

	while (c->issued - c->done < c->window && !atomic_load(&b->stop)) {
		if (now >= b->t_deadline_ns || !take_budget(b, b->tmpl_records)) {
			atomic_store(&b->stop, true);
			break;
		}
		produce_issue(b, c, opt.acks, now);
	}
}

/* Under acks=none, one acks=leader fence per connection once stopped. */
static void produce_fence(struct wthread *t, struct conn *c, uint64_t now)
{
	if (c->issued - c->done >= c->cap)
		return;
	produce_issue(t->b, c, BROKERD__ACKS__ACKS_LEADER, now);
	c->fenced = true;
}

/* Retire frames at the head that are complete. */
static void produce_retire(struct wthread *t, struct conn *c, uint64_t now)
{
	while (c->done < c->sendpos) {
		struct frame *f = conn_slot(c, c->done);
		if (f->need_ack && !f->acked)
			break;
		if (!f->need_ack) {
			t->records += f->records;
			t->wire_bytes += frame_len(f);
			t->value_bytes += (uint64_t)f->records * (uint64_t)opt.record_size;
			t->reqs++;
			t->t_last_ns = now;
		}
		c->done++;
	}
}

static void produce_on_resp(struct wthread *t, struct conn *c, Brokerd__Response *r,
			    uint64_t now)
{
	struct frame *f;

	while (c->ackpos < c->issued && !conn_slot(c, c->ackpos)->need_ack)
		c->ackpos++;
	if (c->ackpos >= c->issued)
		die("produce: a response with no request in flight (corr %" PRIu64 ")",
		    r->correlation_id);
	f = conn_slot(c, c->ackpos);
	check_resp(r, "produce", -1);
	if (r->correlation_id != f->corr)
		die("produce: correlation id %" PRIu64 ", expected %" PRIu64,
		    r->correlation_id, f->corr);
	if (r->op_case != BROKERD__RESPONSE__OP_PRODUCE)
		die("produce: response without a produce body");
	f->acked = true;
	c->ackpos++;
	h_add(&t->h, now - f->t0_ns);
	t->records += f->records;
	t->wire_bytes += frame_len(f);
	t->value_bytes += (uint64_t)f->records * (uint64_t)opt.record_size;
	t->reqs++;
	t->t_last_ns = now;
}

/* Issue fetches: up to opt.depth in flight per partition, at predicted
 * offsets (the previous fetch's offset + the records a fetch returned). */
static void consume_fill(struct wthread *t, struct conn *c, uint64_t now)
{
	struct bench *b = t->b;

	for (int i = 0; i < c->nparts; i++) {
		struct cpart *p = c->parts[i];
		while (p->inflight < (uint32_t)opt.depth && p->next_issue < p->end &&
		       c->issued - c->done < c->cap && !atomic_load(&b->stop)) {
			Brokerd__Request req = BROKERD__REQUEST__INIT;
			Brokerd__FetchRequest fr = BROKERD__FETCH_REQUEST__INIT;
			struct frame *f;

			if (now >= b->t_deadline_ns) {
				atomic_store(&b->stop, true);
				break;
			}
			fr.topic = (char *)opt.topic;
			fr.partition = p->partition;
			fr.offset = p->next_issue;
			fr.max_bytes = opt.max_bytes;
			fr.max_wait_ms = 0;
			fr.min_bytes = 0;
			req.correlation_id = ++c->next_corr;
			req.op_case = BROKERD__REQUEST__OP_FETCH;
			req.fetch = &fr;
			f = conn_slot(c, c->issued);
			frame_encode(f, &req);
			f->t0_ns = now;
			f->corr = req.correlation_id;
			f->part = p;
			f->offset = p->next_issue;
			f->epoch = p->epoch;
			f->need_ack = true;
			f->acked = false;
			c->issued++;
			p->inflight++;
			p->next_issue += p->per_fetch;
		}
	}
}

/* Count and verify the records of one fetch response for partition p,
 * requested at `offset`.  Every batch is CRC-checked and walked record by
 * record (batch_iter); offsets must continue exactly at p->expected. */
static void consume_records(struct wthread *t, struct cpart *p, int64_t offset,
			    uint32_t epoch, const Brokerd__FetchResponse *fr)
{
	const uint8_t *pos = fr->records.data, *end = pos + fr->records.len;
	int64_t first = -1;

	if (offset > p->expected) {
		/* A speculative fetch past a short response: a gap.  Refetch from
		 * `expected`; the other fetches of this epoch are discarded too. */
		t->wasted++;
		if (epoch == p->epoch) {
			p->epoch++;
			p->next_issue = p->expected;
		}
		return;
	}
	while (end - pos >= BATCH_HEADER_SIZE) {
		struct batch_header h;
		struct batch_iter it;
		struct batch_record rec;
		size_t sz;
		int rc = batch_header_decode(pos, (size_t)(end - pos), &h);

		if (rc < 0)
			die("consume: partition %" PRIu32 ": bad batch header at offset %" PRId64
			    ": %s", p->partition, p->expected, strerror(-rc));
		sz = batch_size(&h);
		if (sz > (size_t)(end - pos))
			break; /* a trailing partial batch: not consumed */
		if (first < 0)
			first = h.base_offset;
		if (batch_last_offset(&h) >= p->expected) {
			rc = batch_iter_init(&it, pos, sz);
			if (rc < 0)
				die("consume: partition %" PRIu32 ": batch at %" PRId64
				    " fails validation: %s", p->partition, h.base_offset,
				    rc == -EBADMSG ? "CRC mismatch" : strerror(-rc));
			while (batch_iter_next(&it, &rec) == 1) {
				if (rec.offset < p->expected)
					continue;
				if (rec.offset != p->expected)
					die("consume: partition %" PRIu32 ": record offset %" PRId64
					    ", expected %" PRId64, p->partition, rec.offset,
					    p->expected);
				p->expected++;
				t->records++;
				if (rec.value_len > 0)
					t->value_bytes += (uint64_t)rec.value_len;
			}
		}
		t->wire_bytes += sz;
		pos += sz;
	}
	if (first < 0) {
		t->empty++;
		return;
	}
	/* Learn how many records a fetch of max_bytes returns. */
	if (fr->next_offset > offset)
		p->per_fetch = fr->next_offset - offset;
	if (p->next_issue < p->expected)
		p->next_issue = p->expected;
}

static void consume_on_resp(struct wthread *t, struct conn *c, Brokerd__Response *r,
			    uint64_t now)
{
	struct frame *f;

	if (c->ackpos >= c->issued)
		die("fetch: a response with no request in flight");
	f = conn_slot(c, c->ackpos);
	check_resp(r, "fetch", -1);
	if (r->correlation_id != f->corr)
		die("fetch: correlation id %" PRIu64 ", expected %" PRIu64, r->correlation_id,
		    f->corr);
	if (r->op_case != BROKERD__RESPONSE__OP_FETCH)
		die("fetch: response without a fetch body");
	f->acked = true;
	c->ackpos++;
	c->done++;
	f->part->inflight--;
	h_add(&t->h, now - f->t0_ns);
	consume_records(t, f->part, f->offset, f->epoch, r->fetch);
	t->reqs++;
	t->t_last_ns = now;
}

static bool conn_idle(const struct conn *c)
{
	return c->done == c->issued;
}

static void *thread_main(void *arg)
{
	struct wthread *t = arg;
	struct bench *b = t->b;
	struct epoll_event evs[64];
	uint64_t now = now_ns();
	bool producing = opt.mode == WB_PRODUCE;

	for (int i = 0; i < t->nconns; i++) {
		struct conn *c = &t->conns[i];
		if (producing)
			produce_fill(t, c, now);
		else
			consume_fill(t, c, now);
		int rc = conn_flush(c);
		if (rc < 0)
			die("send: %s", strerror(-rc));
		conn_want_out(t, c, c->sendpos < c->issued);
	}
	for (;;) {
		bool all_idle = true;
		int n = epoll_wait(t->ep, evs, 64, 50);

		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		now = now_ns();
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			size_t pos = 0;
			Brokerd__Response *r;
			ssize_t rd;

			if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;
			do {
				rd = conn_read(c);
				if (rd < 0)
					die("receive: %s", rd == -EPIPE ?
					    "connection closed by the broker" : strerror((int)-rd));
				pos = 0;
				while (conn_next(c, &pos, &r) == 1) {
					now = now_ns();
					if (producing)
						produce_on_resp(t, c, r, now);
					else
						consume_on_resp(t, c, r, now);
					resp_free(c, r);
				}
				conn_consumed(c, pos);
			} while (rd > 0);
		}
		for (int i = 0; i < t->nconns; i++) {
			struct conn *c = &t->conns[i];
			int rc;

			if (producing) {
				/* Under acks=none a frame retires once written and no
				 * response will wake us: refill until the socket is full
				 * (then EPOLLOUT wakes us), bounded per pass. */
				for (int pass = 0; pass < 64; pass++) {
					uint64_t before = c->done;
					produce_retire(t, c, now);
					produce_fill(t, c, now);
					if (opt.acks == BROKERD__ACKS__ACKS_NONE && !c->fenced &&
					    atomic_load(&b->stop))
						produce_fence(t, c, now);
					rc = conn_flush(c);
					if (rc < 0)
						die("send: %s", strerror(-rc));
					produce_retire(t, c, now);
					if (c->done == before || c->sendpos < c->issued)
						break;
					now = now_ns();
				}
			} else {
				consume_fill(t, c, now);
				rc = conn_flush(c);
				if (rc < 0)
					die("send: %s", strerror(-rc));
			}
			conn_want_out(t, c, c->sendpos < c->issued);
			if (!conn_idle(c) ||
			    (producing && opt.acks == BROKERD__ACKS__ACKS_NONE && !c->fenced))
				all_idle = false;
		}
		if (!producing && !atomic_load(&b->stop)) {
			/* Done when every partition of this thread is read to its end. */
			bool more = false;
			for (int i = 0; i < t->nconns && !more; i++)
				for (int j = 0; j < t->conns[i].nparts; j++)
					if (t->conns[i].parts[j]->expected < t->conns[i].parts[j]->end)
						more = true;
			if (!more)
				break;
		}
		if (atomic_load(&b->stop) && all_idle)
			break;
		if (now > b->t_deadline_ns)
			atomic_store(&b->stop, true);
		if (now > b->t_deadline_ns + WB_GRACE_NS)
			die("HANG: requests still unanswered %llu s after the time budget",
			    WB_GRACE_NS / 1000000000ull);
	}
	return NULL;
}

static int run_throughput(void)
{
	struct bench b = { 0 };
	struct hist h = { { 0 }, 0, 0 };
	uint64_t reqs = 0, records = 0, vbytes = 0, wbytes = 0, wasted = 0, empty = 0;
	uint64_t t_last = 0, setup_deadline;
	struct conn admin;
	double secs;
	bool producing = opt.mode == WB_PRODUCE;
	int nconns = opt.conns;

	setup_deadline = now_ns() + 30ull * 1000000000u;
	conn_init(&admin, 1);
	if (opt.create)
		create_topic(&admin, opt.topic, setup_deadline);
	if (producing) {
		b.tmpl = build_batch(opt.batch_records, NULL, &b.tmpl_len, &b.tmpl_records);
		atomic_init(&b.budget, opt.max_records ? opt.max_records : UINT64_MAX);
	} else {
		atomic_init(&b.budget, 0);
		b.parts = xcalloc(opt.partitions, sizeof(*b.parts));
		for (uint32_t p = 0; p < opt.partitions; p++) {
			struct cpart *cp = &b.parts[p];
			cp->partition = p;
			cp->expected = list_offset(&admin, opt.topic, p, -2, setup_deadline);
			cp->end = list_offset(&admin, opt.topic, p, -1, setup_deadline);
			if (opt.max_records && cp->end - cp->expected >
			    (int64_t)(opt.max_records / opt.partitions))
				cp->end = cp->expected + (int64_t)(opt.max_records / opt.partitions);
			cp->next_issue = cp->expected;
			/* First guess; corrected by the first response. */
			cp->per_fetch = opt.max_bytes / ((uint32_t)opt.record_size + 8u);
			if (cp->per_fetch < 1)
				cp->per_fetch = 1;
		}
		if (nconns > (int)opt.partitions)
			nconns = (int)opt.partitions;
	}
	conn_fini(&admin);
	atomic_init(&b.stop, false);
	if (opt.threads > nconns)
		opt.threads = nconns;

	b.th = xcalloc((size_t)opt.threads, sizeof(*b.th));
	for (int i = 0; i < opt.threads; i++) {
		struct wthread *t = &b.th[i];
		t->b = &b;
		t->id = i;
		t->nconns = nconns / opt.threads + (i < nconns % opt.threads);
		t->conns = xcalloc((size_t)t->nconns, sizeof(*t->conns));
		t->ep = epoll_create1(EPOLL_CLOEXEC);
		if (t->ep < 0)
			die("epoll_create1: %s", strerror(errno));
	}
	/* Connection k (round-robin over threads) produces to partition k % P;
	 * consumer connection k reads partitions k, k + nconns, ... */
	for (int k = 0; k < nconns; k++) {
		struct wthread *t = &b.th[k % opt.threads];
		struct conn *c = &t->conns[k / opt.threads];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		uint32_t cap = (uint32_t)opt.depth + 1;

		if (!producing) {
			c->nparts = 0;
			cap = (uint32_t)opt.depth * ((opt.partitions + (uint32_t)nconns - 1) /
						   (uint32_t)nconns);
		}
		conn_init(c, cap);
		c->window = (uint32_t)opt.depth;
		c->partition = (uint32_t)k % opt.partitions;
		if (!producing) {
			c->parts = xcalloc(opt.partitions, sizeof(*c->parts));
			for (uint32_t p = (uint32_t)k; p < opt.partitions; p += (uint32_t)nconns)
				c->parts[c->nparts++] = &b.parts[p];
		}
		c->ev_mask = EPOLLIN;
		if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
	}

	b.t_start_ns = now_ns();
	b.t_deadline_ns = b.t_start_ns + (uint64_t)(opt.seconds * 1e9);
	for (int i = 0; i < opt.threads; i++)
		if (pthread_create(&b.th[i].tid, NULL, thread_main, &b.th[i]) != 0)
			die("pthread_create failed");
	for (int i = 0; i < opt.threads; i++) {
		struct wthread *t = &b.th[i];
		pthread_join(t->tid, NULL);
		h_merge(&h, &t->h);
		reqs += t->reqs;
		records += t->records;
		vbytes += t->value_bytes;
		wbytes += t->wire_bytes;
		wasted += t->wasted;
		empty += t->empty;
		if (t->t_last_ns > t_last)
			t_last = t->t_last_ns;
	}
	secs = t_last > b.t_start_ns ? (double)(t_last - b.t_start_ns) / 1e9 : 1e-9;
	if (producing) {
		printf("bench=wire mode=produce size=%" PRId32 " batch_records=%" PRIu32
		       " batch_bytes=%zu conns=%d threads=%d depth=%d partitions=%" PRIu32
		       " acks=%s requests=%" PRIu64 " records=%" PRIu64 " seconds=%.3f"
		       " records_per_s=%.0f MB_per_s=%.1f wire_MB_per_s=%.1f requests_per_s=%.0f",
		       opt.record_size, b.tmpl_records, b.tmpl_len, nconns, opt.threads,
		       opt.depth, opt.partitions,
		       opt.acks == BROKERD__ACKS__ACKS_ALL ? "all" :
		       opt.acks == BROKERD__ACKS__ACKS_LEADER ? "leader" : "none",
		       reqs, records, secs, (double)records / secs, (double)vbytes / secs / 1e6,
		       (double)wbytes / secs / 1e6, (double)reqs / secs);
	} else {
		int64_t behind = 0;
		for (uint32_t p = 0; p < opt.partitions; p++)
			behind += b.parts[p].end - b.parts[p].expected;
		if (behind > 0)
			fprintf(stderr, "bench_wire: consume: time budget spent with %" PRId64
				" records unread\n", behind);
		printf("bench=wire mode=consume size=%.0f conns=%d threads=%d depth=%d"
		       " partitions=%" PRIu32 " max_bytes=%" PRIu32 " fetches=%" PRIu64
		       " wasted_fetches=%" PRIu64 " empty_fetches=%" PRIu64 " records=%" PRIu64
		       " unread=%" PRId64 " seconds=%.3f records_per_s=%.0f MB_per_s=%.1f"
		       " wire_MB_per_s=%.1f",
		       records ? (double)vbytes / (double)records : 0.0, nconns, opt.threads,
		       opt.depth, opt.partitions, opt.max_bytes, reqs, wasted, empty, records, behind, secs,
		       (double)records / secs, (double)vbytes / secs / 1e6,
		       (double)wbytes / secs / 1e6);
	}
	h_print(&h);
	printf("\n");
	fflush(stdout);
	for (int i = 0; i < opt.threads; i++) {
		for (int k = 0; k < b.th[i].nconns; k++)
			conn_fini(&b.th[i].conns[k]);
		free(b.th[i].conns);
		close(b.th[i].ep);
	}
	free(b.th);
	free(b.parts);
	free(b.tmpl);
	return 0;
}

/* --- latency: one record per produce, one in flight, at a fixed rate --------- *
 * ping: the same schedule with ListOffsets (latest) instead of a produce: the
 * broker's request round trip without the log, as Redis's PING is for XADD. */

/* Sleep until `t` (monotonic ns); at once if it has passed.  A sleep to a
 * past time is not free: on this VM clock_nanosleep still arms a timer and
 * costs ~35 us, which a run behind its schedule would add to every request
 * (the peer's client sleeps only when ahead, too). */
static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };

	if (now_ns() >= t)
		return;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint64_t rate_count(void)
{
	uint64_t n = (uint64_t)(opt.rate * opt.seconds);

	if (opt.max_records && opt.max_records < n)
		n = opt.max_records;
	return n ? n : 1;
}

/* Make *req a produce of one batch (borrowed) to `partition` of --topic. */
static void produce_req(Brokerd__Request *req, Brokerd__ProduceRequest *pr, uint32_t partition,
			uint8_t *batch, size_t blen)
{
	pr->topic = (char *)opt.topic;
	pr->partitioner_case = BROKERD__PRODUCE_REQUEST__PARTITIONER_PARTITION;
	pr->partition = partition;
	pr->acks = opt.acks;
	pr->records.data = batch;
	pr->records.len = blen;
	req->op_case = BROKERD__REQUEST__OP_PRODUCE;
	req->produce = pr;
}

/* A fixed-rate producer on c: record i goes out at t0 + i * period, with at
 * most `window` requests unacknowledged (5: a Kafka producer's
 * max.in.flight.requests.per.connection), so a send never waits for a slow
 * ack while the window has room.  Sends stop once `stop` has passed; every
 * ack must be in by `deadline`.  The acks are read by a second thread that
 * blocks in poll without a near timeout: on this VM a timer armed a few
 * hundred us ahead (for the next send) adds ~30 us to the wake-up that an
 * ack brings, which a one-thread loop would count into every sample.
 * issued and acked hand frames between the two threads (release/acquire):
 * the sender fills slot i only once i - acked < window.  When it has sent
 * all it will, it says so through the `wake` pipe. */
struct rate_prod {
	uint64_t n, t0, stop, deadline;
	uint32_t window;
	uint32_t partitions; /* record i goes to partition i % partitions */
	bool stamp;     /* e2e: the value carries CLOCK_MONOTONIC ns of the send */
	struct hist *h; /* ack latency from the scheduled send time, or NULL */
	struct conn *c;
	_Atomic uint64_t issued, acked;
	atomic_bool sent_all;
	int wake[2];
	pthread_mutex_t mu;
	pthread_cond_t room;
};

static void *rate_receiver(void *arg)
{
	struct rate_prod *rp = arg;
	struct conn *c = rp->c;
	uint64_t acked = atomic_load(&rp->acked);

	for (;;) {
		uint64_t issued = atomic_load_explicit(&rp->issued, memory_order_acquire);
		bool all = atomic_load_explicit(&rp->sent_all, memory_order_acquire);
		uint64_t now = now_ns();
		struct pollfd pfd[2] = { { c->fd, POLLIN, 0 }, { rp->wake[0], POLLIN, 0 } };
		struct timespec ts;
		Brokerd__Response *r;
		size_t pos = 0;
		ssize_t rd;

		if (all && acked == atomic_load(&rp->issued))
			break;
		if (now > rp->deadline)
			die("produce: %" PRIu64 " of %" PRIu64 " acks missing at the deadline",
			    issued - acked, issued);
		ts.tv_sec = (time_t)((rp->deadline - now) / 1000000000u);
		ts.tv_nsec = (long)((rp->deadline - now) % 1000000000u);
		if (ppoll(pfd, all ? 1 : 2, &ts, NULL) < 0 && errno != EINTR)
			die("ppoll: %s", strerror(errno));
		if (pfd[0].revents == 0)
			continue;
		rd = conn_read(c);
		if (rd < 0)
			die("produce: receive: %s", rd == -EPIPE ?
			    "connection closed by the broker" : strerror((int)-rd));
		now = now_ns();
		while (conn_next(c, &pos, &r) == 1) {
			struct frame *f = conn_slot(c, acked);

			if (acked == atomic_load_explicit(&rp->issued, memory_order_acquire))
				die("produce: a response to no request (correlation id %" PRIu64 ")",
				    r->correlation_id);
			check_resp(r, "produce", -1);
			if (r->correlation_id != f->corr)
				die("produce: correlation id %" PRIu64 ", expected %" PRIu64,
				    r->correlation_id, f->corr);
			resp_free(c, r);
			if (rp->h != NULL)
				h_add(rp->h, now - f->t0_ns);
			acked++;
		}
		conn_consumed(c, pos);
		pthread_mutex_lock(&rp->mu);
		atomic_store_explicit(&rp->acked, acked, memory_order_release);
		pthread_cond_signal(&rp->room);
		pthread_mutex_unlock(&rp->mu);
	}
	return NULL;
}

static uint64_t rate_produce(struct rate_prod *rp)
{
	struct conn *c = rp->c;
	uint64_t period = (uint64_t)(1e9 / opt.rate), i;
	size_t blen;
	uint32_t cnt;
	uint8_t *tmpl = rp->stamp ? NULL : build_batch(1, NULL, &blen, &cnt);
	pthread_t tid;

	atomic_init(&rp->issued, c->issued);
	atomic_init(&rp->acked, c->issued);
	atomic_init(&rp->sent_all, false);
	pthread_mutex_init(&rp->mu, NULL);
	pthread_cond_init(&rp->room, NULL);
	if (pipe2(rp->wake, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	if (pthread_create(&tid, NULL, rate_receiver, rp) != 0)
		die("pthread_create failed");
	for (i = 0; i < rp->n; i++) {
		Brokerd__Request req = BROKERD__REQUEST__INIT;
		Brokerd__ProduceRequest pr = BROKERD__PRODUCE_REQUEST__INIT;
		struct frame *f = conn_slot(c, c->issued);
		uint64_t sched = rp->t0 + i * period, stamp;
		uint8_t *batch;

		pthread_mutex_lock(&rp->mu);
		while (c->issued - atomic_load_explicit(&rp->acked, memory_order_acquire) >=
		       rp->window)
			pthread_cond_wait(&rp->room, &rp->mu);
		pthread_mutex_unlock(&rp->mu);
		sleep_until(sched);
		if (now_ns() > rp->stop)
			break;
		stamp = now_ns();
		batch = rp->stamp ? build_batch(1, &stamp, &blen, &cnt) : tmpl;
		produce_req(&req, &pr, (uint32_t)(i % rp->partitions), batch, blen);
		req.correlation_id = ++c->next_corr;
		frame_encode(f, &req);
		if (batch != tmpl) {
			if (f->own == NULL && f->body == batch)
				f->own = batch; /* the frame borrows it: freed with the frame */
			else
				free(batch);
		}
		f->corr = req.correlation_id;
		f->t0_ns = sched;
		c->issued++;
		atomic_store_explicit(&rp->issued, c->issued, memory_order_release);
		conn_send_all(c, rp->deadline, "produce");
	}
	atomic_store_explicit(&rp->sent_all, true, memory_order_release);
	if (write(rp->wake[1], "", 1) != 1)
		die("pipe write: %s", strerror(errno));
	pthread_join(tid, NULL);
	close(rp->wake[0]);
	close(rp->wake[1]);
	c->done = c->ackpos = c->issued;
	pthread_mutex_destroy(&rp->mu);
	pthread_cond_destroy(&rp->room);
	free(tmpl);
	return i;
}

static int run_latency(void)
{
	struct conn c;
	struct hist *h = xcalloc(1, sizeof(*h));
	uint64_t n = rate_count(), i = 0, t0, t_end, period = (uint64_t)(1e9 / opt.rate);
	uint64_t deadline;
	uint32_t window = opt.mode == WB_PING ? 1 : (uint32_t)opt.depth;
	uint8_t *batch;
	size_t blen;
	uint32_t cnt;

	prctl(PR_SET_TIMERSLACK, 1UL); /* 50 us default slack would add to every sample */
	conn_init(&c, window);
	if (opt.create)
		create_topic(&c, opt.topic, now_ns() + 30ull * 1000000000u);
	batch = build_batch(1, NULL, &blen, &cnt);
	t0 = now_ns() + 1000000; /* first send 1 ms from now */
	deadline = t0 + (uint64_t)(opt.seconds * 1e9) + WB_GRACE_NS;
	if (window > 1) {
		struct rate_prod rp = { .n = n, .t0 = t0, .stop = deadline - WB_GRACE_NS,
					.deadline = deadline, .window = window,
					.partitions = opt.partitions, .h = h, .c = &c };
		i = rate_produce(&rp);
	}
	/* One in flight: send at the schedule, then wait for the answer (as the
	 * peer's synchronous hiredis client does). */
	for (; window == 1 && i < n; i++) {
		Brokerd__Request req = BROKERD__REQUEST__INIT;
		Brokerd__ProduceRequest pr = BROKERD__PRODUCE_REQUEST__INIT;
		Brokerd__ListOffsetsRequest lo = BROKERD__LIST_OFFSETS_REQUEST__INIT;
		Brokerd__Response *r;
		uint64_t sched = t0 + i * period, now;
		const char *what = opt.mode == WB_PING ? "list_offsets" : "produce";

		sleep_until(sched);
		if (opt.mode == WB_PING) {
			lo.topic = (char *)opt.topic;
			lo.partition = (uint32_t)(i % opt.partitions);
			lo.timestamp = -1;
			req.op_case = BROKERD__REQUEST__OP_LIST_OFFSETS;
			req.list_offsets = &lo;
		} else {
			produce_req(&req, &pr, (uint32_t)(i % opt.partitions), batch, blen);
		}
		r = conn_call(&c, &req, deadline, what);
		now = now_ns();
		check_resp(r, what, -1);
		resp_free(&c, r);
		/* From the scheduled send time: a stall shows in the samples after it. */
		h_add(h, now - sched);
		if (now > deadline - WB_GRACE_NS) {
			i++;
			break;
		}
	}
	t_end = now_ns();
	if (opt.mode == WB_PING)
		printf("bench=wire mode=ping target_rate=%.0f requests=%" PRIu64
		       " achieved_rate=%.0f", opt.rate, i, (double)i / ((double)(t_end - t0) / 1e9));
	else
		printf("bench=wire mode=latency size=%" PRId32 " acks=%s depth=%" PRIu32
		       " target_rate=%.0f records=%" PRIu64 " achieved_rate=%.0f", opt.record_size,
		       opt.acks == BROKERD__ACKS__ACKS_ALL ? "all" : "leader", window, opt.rate, i,
		       (double)i / ((double)(t_end - t0) / 1e9));
	h_print(h);
	printf("\n");
	fflush(stdout);
	free(batch);
	free(h);
	conn_fini(&c);
	return 0;
}

/* --- e2e: fixed-rate producer, long-polling consumer --------------------------- */

struct e2e {
	uint64_t n;           /* records to produce */
	uint64_t t0, deadline;
	struct hist h;
	uint64_t received;
};

/* The e2e producer: every record, at the schedule, acks read whenever they
 * arrive (a slow ack must not delay the next send). */
static void *e2e_producer(void *arg)
{
	struct e2e *e = arg;
	struct conn c;
	struct rate_prod rp = { .n = e->n, .t0 = e->t0, .stop = e->deadline,
				.deadline = e->deadline, .window = 1024, .partitions = 1,
				.stamp = true, .c = &c }; /* the consumer reads partition 0 */

	prctl(PR_SET_TIMERSLACK, 1UL);
	conn_init(&c, rp.window);
	rate_produce(&rp);
	conn_fini(&c);
	return NULL;
}

static int run_e2e(void)
{
	struct e2e *e = xcalloc(1, sizeof(*e));
	struct conn c;
	pthread_t ptid;
	int64_t offset;
	uint64_t fetches = 0, t_start;

	prctl(PR_SET_TIMERSLACK, 1UL);
	if (opt.record_size < 8)
		die("e2e needs --record-size >= 8 (the value carries the send time)");
	e->n = rate_count();
	conn_init(&c, 1);
	if (opt.create)
		create_topic(&c, opt.topic, now_ns() + 30ull * 1000000000u);
	offset = list_offset(&c, opt.topic, 0, -1, now_ns() + 30ull * 1000000000u);
	t_start = now_ns();
	e->t0 = t_start + 20000000; /* the first fetch is parked by then */
	e->deadline = e->t0 + (uint64_t)(opt.seconds * 1e9) + WB_GRACE_NS;
	if (pthread_create(&ptid, NULL, e2e_producer, e) != 0)
		die("pthread_create failed");
	while (e->received < e->n) {
		Brokerd__Request req = BROKERD__REQUEST__INIT;
		Brokerd__FetchRequest fr = BROKERD__FETCH_REQUEST__INIT;
		Brokerd__Response *r;
		uint64_t now;
		const uint8_t *pos, *end;

		if (now_ns() > e->deadline)
			die("e2e: consumer: %" PRIu64 " of %" PRIu64 " records received at the deadline",
			    e->received, e->n);
		fr.topic = (char *)opt.topic;
		fr.partition = 0;
		fr.offset = offset;
		fr.max_bytes = opt.max_bytes;
		fr.max_wait_ms = opt.max_wait_ms;
		fr.min_bytes = 1;
		req.op_case = BROKERD__REQUEST__OP_FETCH;
		req.fetch = &fr;
		r = conn_call(&c, &req, e->deadline, "e2e fetch");
		now = now_ns();
		check_resp(r, "e2e fetch", -1);
		if (r->op_case != BROKERD__RESPONSE__OP_FETCH)
			die("e2e fetch: response without a fetch body");
		fetches++;
		pos = r->fetch->records.data;
		end = pos + r->fetch->records.len;
		while (end - pos >= BATCH_HEADER_SIZE) {
			struct batch_header h;
			struct batch_iter it;
			struct batch_record rec;
			size_t sz;
			int rc = batch_header_decode(pos, (size_t)(end - pos), &h);

			if (rc < 0)
				die("e2e: bad batch header: %s", strerror(-rc));
			sz = batch_size(&h);
			if (sz > (size_t)(end - pos))
				break;
			rc = batch_iter_init(&it, pos, sz);
			if (rc < 0)
				die("e2e: batch at %" PRId64 " fails validation: %s", h.base_offset,
				    strerror(-rc));
			while (batch_iter_next(&it, &rec) == 1) {
				uint64_t stamp;
				if (rec.offset < offset)
					continue;
				if (rec.offset != offset)
					die("e2e: record offset %" PRId64 ", expected %" PRId64,
					    rec.offset, offset);
				if (rec.value_len < 8)
					die("e2e: record %" PRId64 " carries no send time", rec.offset);
				memcpy(&stamp, rec.value, sizeof(stamp));
				h_add(&e->h, now > stamp ? now - stamp : 0);
				offset++;
				e->received++;
			}
			pos += sz;
		}
		if (r->fetch->next_offset > offset)
			offset = r->fetch->next_offset;
		resp_free(&c, r);
	}
	pthread_join(ptid, NULL);
	{
		double secs = (double)(now_ns() - e->t0) / 1e9;
		printf("bench=wire mode=e2e size=%" PRId32 " acks=%s target_rate=%.0f records=%" PRIu64
		       " fetches=%" PRIu64 " achieved_rate=%.0f",
		       opt.record_size, opt.acks == BROKERD__ACKS__ACKS_ALL ? "all" :
		       opt.acks == BROKERD__ACKS__ACKS_LEADER ? "leader" : "none",
		       opt.rate, e->received, fetches, (double)e->received / secs);
		h_print(&e->h);
		printf("\n");
		fflush(stdout);
	}
	conn_fini(&c);
	free(e);
	return 0;
}

/* --- command line ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
"usage: bench_wire produce|consume|latency|ping|e2e|create [options]\n"
"Load generator for brokerd over its wire protocol.  Prints one line\n"
"  bench=wire mode=MODE ... records_per_s=... MB_per_s=... p50_us=... p95_us=...\n"
"  p99_us=... p999_us=... max_us=...\n"
"(MB = 10^6 bytes of record values; wire_MB counts whole batches; latency\n"
"percentiles from a log-linear histogram, ~1.6 %% resolution).\n"
"\n"
"modes:\n"
"  produce   --conns connections over --threads threads, each with up to\n"
"            --depth produce requests in flight, each one batch (--batch-records\n"
"            or --batch-bytes of --record-size values) to partition conn %% P;\n"
"            latency = request written to its ack\n"
"  consume   read every partition from its start to the high watermark seen at\n"
"            start (fetch max_wait 0, --max-bytes, --depth fetches in flight per\n"
"            partition at predicted offsets); every batch CRC-checked and walked;\n"
"            latency = fetch round trip\n"
"  latency   one record per produce, one in flight, at --rate/s; latency from\n"
"            the scheduled send time (no coordinated omission)\n"
"  ping      as latency, with ListOffsets (latest) instead of a produce: the\n"
"            broker's request round trip without the log\n"
"  e2e       a producer at --rate/s (one record per request, acks read\n"
"            asynchronously) stamps CLOCK_MONOTONIC ns in the value; a consumer\n"
"            long-polls partition 0 from the latest offset (--max-wait-ms,\n"
"            min_bytes 1); latency = receive time - stamp\n"
"  create    create --topics topics (TOPIC-0..) of --partitions partitions\n"
"\n"
"options (defaults):\n"
"  --host H              broker address (127.0.0.1)\n"
"  --port P              broker port (9092)\n"
"  --topic T             topic, or name prefix in create mode (bench)\n"
"  --partitions P        partitions (1)\n"
"  --create              create the topic first (an existing one is fine)\n"
"  --topic-config K=V    a topic config for --create / create (repeatable)\n"
"  --conns N             produce/consume connections (50 / 1)\n"
"  --threads T           client threads (2)\n"
"  --depth D             requests in flight per connection (produce 4) or\n"
"                        per partition (consume 2)\n"
"  --batch-records B     records per produce batch (0: fill --batch-bytes)\n"
"  --batch-bytes N       target batch size when --batch-records is 0 (64k)\n"
"  --record-size S       value bytes per record, null key (100)\n"
"  --acks A              all | leader | none (all; none: not for latency)\n"
"  --seconds S           time budget (10); then in-flight requests finish\n"
"  --max-records N       cap on records produced / consumed / sent (0: none)\n"
"  --rate R              latency/e2e: records per second (2000)\n"
"  --max-bytes N         fetch max_bytes (4m)\n"
"  --max-wait-ms N       e2e: fetch max_wait_ms (500)\n"
"  --topics N            create: number of topics (1)\n"
"  -h, --help            this text\n"
"Sizes take k/m/g (binary).  Exit 0; 1 on a broker error response (its\n"
"error_message is printed), a lost connection or a hang; 2 on bad usage.\n");
}

static int parse_size(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end != '\0' || v > (unsigned long long)INT64_MAX / mul ||
	    (int64_t)(v * mul) < min || (int64_t)(v * mul) > max)
		return -EINVAL;
	*out = (int64_t)(v * mul);
	return 0;
}

static int parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "topic", required_argument, NULL, 't' },
		{ "partitions", required_argument, NULL, 'P' },
		{ "create", no_argument, NULL, 'C' },
		{ "topic-config", required_argument, NULL, 'c' },
		{ "conns", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 'T' },
		{ "depth", required_argument, NULL, 'D' },
		{ "batch-records", required_argument, NULL, 'B' },
		{ "batch-bytes", required_argument, NULL, 'b' },
		{ "record-size", required_argument, NULL, 'S' },
		{ "acks", required_argument, NULL, 'a' },
		{ "seconds", required_argument, NULL, 's' },
		{ "max-records", required_argument, NULL, 'm' },
		{ "rate", required_argument, NULL, 'r' },
		{ "max-bytes", required_argument, NULL, 'x' },
		{ "max-wait-ms", required_argument, NULL, 'w' },
		{ "topics", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, li = -1;
	int64_t v;
	char *end;
	bool conns_set = false, depth_set = false;

	opt.host = "127.0.0.1";
	opt.port = "9092";
	opt.topic = "bench";
	opt.partitions = 1;
	opt.conns = 50;
	opt.threads = 2;
	opt.depth = 4;
	opt.batch_records = 0;
	opt.batch_bytes = 64 << 10;
	opt.record_size = 100;
	opt.acks = BROKERD__ACKS__ACKS_ALL;
	opt.seconds = 10;
	opt.rate = 2000;
	opt.max_bytes = 4 << 20;
	opt.max_wait_ms = 500;
	opt.topics = 1;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		exit(0);
	}
	if (argc < 2) {
		usage(stderr);
		return -EINVAL;
	}
	if (strcmp(argv[1], "produce") == 0)
		opt.mode = WB_PRODUCE;
	else if (strcmp(argv[1], "consume") == 0)
		opt.mode = WB_CONSUME;
	else if (strcmp(argv[1], "latency") == 0)
		opt.mode = WB_LATENCY;
	else if (strcmp(argv[1], "ping") == 0)
		opt.mode = WB_PING;
	else if (strcmp(argv[1], "e2e") == 0)
		opt.mode = WB_E2E;
	else if (strcmp(argv[1], "create") == 0)
		opt.mode = WB_CREATE;
	else {
		fprintf(stderr, "bench_wire: unknown mode '%s' (see --help)\n", argv[1]);
		return -EINVAL;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", lopts, &li)) != -1) {
		switch (c) {
		case 'H':
			opt.host = optarg;
			break;
		case 'p':
			opt.port = optarg;
			break;
		case 't':
			if (*optarg == '\0')
				goto bad;
			opt.topic = optarg;
			break;
		case 'P':
			if (parse_size(optarg, 1, 100000, &v) < 0)
				goto bad;
			opt.partitions = (uint32_t)v;
			break;
		case 'C':
			opt.create = true;
			break;
		case 'c': {
			char *eq = strchr(optarg, '=');
			if (eq == NULL || eq == optarg || opt.ncfg == WB_TOPIC_CFG_MAX)
				goto bad;
			*eq = '\0';
			opt.cfg_key[opt.ncfg] = optarg;
			opt.cfg_val[opt.ncfg++] = eq + 1;
			break;
		}
		case 'n':
			if (parse_size(optarg, 1, WB_MAX_CONNS, &v) < 0)
				goto bad;
			opt.conns = (int)v;
			conns_set = true;
			break;
		case 'T':
			if (parse_size(optarg, 1, WB_MAX_THREADS, &v) < 0)
				goto bad;
			opt.threads = (int)v;
			break;
		case 'D':
			if (parse_size(optarg, 1, 4096, &v) < 0)
				goto bad;
			opt.depth = (int)v;
			depth_set = true;
			break;
		case 'B':
			if (parse_size(optarg, 0, 1 << 24, &v) < 0)
				goto bad;
			opt.batch_records = (uint32_t)v;
			break;
		case 'b':
			if (parse_size(optarg, BATCH_HEADER_SIZE, 1 << 30, &v) < 0)
				goto bad;
			opt.batch_bytes = (size_t)v;
			break;
		case 'S':
			if (parse_size(optarg, 0, 1 << 26, &v) < 0)
				goto bad;
			opt.record_size = (int32_t)v;
			break;
		case 'a':
			if (strcmp(optarg, "all") == 0)
				opt.acks = BROKERD__ACKS__ACKS_ALL;
			else if (strcmp(optarg, "leader") == 0)
				opt.acks = BROKERD__ACKS__ACKS_LEADER;
			else if (strcmp(optarg, "none") == 0)
				opt.acks = BROKERD__ACKS__ACKS_NONE;
			else
				goto bad;
			break;
		case 's':
			errno = 0;
			opt.seconds = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || !(opt.seconds > 0) || opt.seconds > 86400)
				goto bad;
			break;
		case 'm':
			if (parse_size(optarg, 0, INT64_MAX, &v) < 0)
				goto bad;
			opt.max_records = (uint64_t)v;
			break;
		case 'r':
			errno = 0;
			opt.rate = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || !(opt.rate >= 1) || opt.rate > 1e7)
				goto bad;
			break;
		case 'x':
			if (parse_size(optarg, 1, UINT32_MAX, &v) < 0)
				goto bad;
			opt.max_bytes = (uint32_t)v;
			break;
		case 'w':
			if (parse_size(optarg, 0, 3600000, &v) < 0)
				goto bad;
			opt.max_wait_ms = (uint32_t)v;
			break;
		case 'N':
			if (parse_size(optarg, 1, 1000000, &v) < 0)
				goto bad;
			opt.topics = (uint32_t)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "bench_wire: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (opt.mode == WB_LATENCY && !depth_set)
		opt.depth = 1;
	if (opt.mode == WB_CONSUME) {
		if (!conns_set)
			opt.conns = 1;
		if (!depth_set)
			opt.depth = 2;
	}
	if ((opt.mode == WB_LATENCY || opt.mode == WB_E2E) &&
	    opt.acks == BROKERD__ACKS__ACKS_NONE) {
		fprintf(stderr, "bench_wire: %s needs acks all or leader\n", argv[1]);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "bench_wire: bad value '%s' for --%s (see --help)\n", optarg,
		li >= 0 ? lopts[li].name : "?");
	return -EINVAL;
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	switch (opt.mode) {
	case WB_PRODUCE:
	case WB_CONSUME:
		return run_throughput();
	case WB_LATENCY:
	case WB_PING:
		return run_latency();
	case WB_E2E:
		return run_e2e();
	case WB_CREATE:
		return run_create();
	}
	return 2;
}
