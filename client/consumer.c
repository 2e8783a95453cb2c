/* consumer — libbrokerc's consumer (see brokerd/client.h): non-blocking
 * connections driven by poll(2) from inside the API calls, no thread: one
 * "control" connection for list_offsets, fetch_offsets and commits, and one
 * per assigned partition for its fetches, so that a partition's long poll
 * never holds back another partition's answer (the broker answers a
 * connection's requests in order).  A fetch response is received into one
 * buffer and kept whole; its records are handed out in place, each batch
 * CRC-checked first.
 *
 * Invariants:
 *  1. Responses come in request order per connection: the head of a
 *     connection's pending FIFO is the request its next frame answers.
 *  2. A partition has at most one fetch of its current epoch in flight,
 *     asked at `fetch_at`, the next_offset of the last response queued: the
 *     queue covers [position, fetch_at) without a gap.
 *  3. `position` moves only by handing out a record, a seek or a reset;
 *     each seek or reset bumps `epoch`, and an answer to a request sent
 *     under an older epoch is dropped.
 *  4. Memory a handed-out record points into is freed at the next poll or
 *     at close only: retired buffers and unassigned partitions wait in lists.
 */
#include "brokerd/client.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/batch.h"
#include "client/addr.h"

#define CONS_STAGE_SIZE     (64u << 10) /* socket reads; larger frame tails go direct */
#define CONS_MAX_FRAME      (1u << 30)  /* as bk_conn_call */
#define CONS_MAX_QUEUED     2           /* fetched responses kept per partition */
#define CONS_BACKOFF_MIN_MS 50          /* reconnect delays: 0, 50, 100, ... 1000 */
#define CONS_BACKOFF_MAX_MS 1000
#define CONS_RETRY_MS       200         /* after a retriable broker error */
#define CONS_MAX_ADDRS      8
#define CONS_PUMP_EVERY     1024        /* records between network turns, */
#define CONS_PUMP_BATCH     64          /* or at a batch boundary after these */
#define CONS_GROUP_MAX      255

/* What a partition's position is still to be resolved from. */
enum res_kind {
	RES_NONE,
	RES_VERIFY,    /* position known: only check that the partition exists */
	RES_EARLIEST,
	RES_LATEST,
	RES_COMMITTED, /* the group's offset, else auto_offset_reset */
	RES_TIME,      /* the first record with a timestamp >= res_ts */
};

enum part_state {
	PS_RESOLVE,    /* needs a list_offsets / fetch_offsets (res) */
	PS_RESOLVING,  /* one is in flight */
	PS_FETCH,      /* position known: fetching and handing out records */
	PS_STOPPED,    /* an error stopped it (err) until the next seek */
};

/* One fetch response frame, kept whole while its records are handed out. */
struct fbuf {
	struct fbuf *next;
	const uint8_t *pos;  /* next batch not yet started */
	const uint8_t *end;  /* end of the records field */
	int64_t expect;      /* every offset below it was seen: the next batch
	                        must start at or before it */
	int64_t next_offset; /* the response's next_offset */
	size_t len;          /* bytes of data */
	uint8_t data[];
};

struct pend;

/* One connection to the broker and its requests in flight. */
struct cconn {
	struct part *owner;     /* NULL: the control connection */
	int fd;
	bool connecting, lost;
	int64_t conn_start, connect_at;
	int backoff;
	int last_err;           /* last transport error */
	struct sockaddr_storage addrs[CONS_MAX_ADDRS];
	socklen_t alens[CONS_MAX_ADDRS];
	int naddr, addr_i;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	uint8_t hdr[4];
	size_t hdr_got;
	struct fbuf *rx;        /* frame being received */
	size_t rx_got;
	struct pend *ph, *pt;
};

struct part {
	char *topic;            /* owned */
	int32_t partition;
	enum part_state state;
	enum res_kind res;
	int64_t res_ts;
	bool res_reset;         /* resolving after OFFSET_OUT_OF_RANGE: log it */
	int64_t position;       /* next offset to hand out */
	int64_t fetch_at;       /* offset of the next fetch */
	uint32_t epoch;
	bool fetching;          /* a fetch of this epoch is in flight */
	int64_t retry_at;       /* no request before (retriable error) */
	int err;                /* why it stopped */
	bool report;            /* err is still to be returned by poll */
	int defer;              /* a fetch failed with this wire code: act on it
	                           once the records fetched before are out */
	int64_t defer_at;       /* the offset of that fetch */
	char *defer_msg;        /* the broker's message (owned, may be NULL) */
	struct fbuf *qhead, *qtail;
	int nqueued;
	struct batch_iter it;   /* over a batch of qhead */
	bool in_batch;
	bool yielded;           /* a record of the current batch was handed out */
	struct cconn conn;      /* its fetches; closed when it is unassigned */
	struct part *next_dead;
};

enum pend_kind { PK_FETCH, PK_LIST_OFFSETS, PK_FETCH_OFFSETS, PK_COMMIT };

/* A request on the wire, awaiting its response. */
struct pend {
	struct pend *next;
	uint64_t corr;
	enum pend_kind kind;
	struct part *p;       /* NULL once unassigned */
	uint32_t epoch;       /* p->epoch when sent */
	int64_t at;           /* fetch offset */
	int64_t sent_ms;
	uint32_t wait_ms;     /* fetch long-poll time */
	struct commit *cm;    /* NULL once given up */
};

struct commit {
	struct commit *next;
	Brokerd__OffsetCommit *ents; /* topics owned */
	Brokerd__OffsetCommit **ptrs;
	size_t n;
	void (*cb)(void *opaque, int err);
	void *opaque;
	int64_t deadline;
	int64_t retry_at;
	bool sync, sent, done;
	int result;
};

struct bk_consumer {
	struct bk_consumer_conf conf; /* strings point at the copies below */
	char *bootstrap, *client_id, *group;
	char host[256], port[32];

	struct part **parts;
	int nparts, cap_parts;
	struct pollfd *pfds;          /* cap_parts + 1 each: for pump */
	struct cconn **pconns;
	int rr;                       /* partition served last */
	int nreport;                  /* partitions with report set */
	struct part *dead;            /* unassigned, freed at the next poll */
	struct fbuf *retired;         /* consumed, freed at the next poll */
	unsigned since_pump;          /* records handed out since the last pump */
	bool batch_end;               /* a batch was finished since then */
	bool retired_new;             /* a buffer was used up since then */

	struct cconn ctl;             /* resolves and commits */
	uint8_t *stage;               /* socket reads of every connection */
	uint64_t next_corr;

	struct commit *commits;       /* not yet answered, in order */
	struct commit *done_h, *done_t; /* answered async commits: callbacks due */

	struct bk_header *hdrs;       /* headers of the record handed out last */
	size_t hdrs_cap;
	char *hkeys;
	size_t hkeys_cap;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4)))
static void cons_log(struct bk_consumer *c, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (c->conf.log_cb == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->conf.log_cb(c->conf.log_opaque, level, msg);
}

static const char *reset_name(const struct bk_consumer *c)
{
	return c->conf.auto_offset_reset == BK_OFFSET_EARLIEST ? "earliest" : "latest";
}

static enum res_kind reset_kind(const struct bk_consumer *c)
{
	return c->conf.auto_offset_reset == BK_OFFSET_EARLIEST ? RES_EARLIEST : RES_LATEST;
}

/* Broker errors worth the same request again later (docs/protocol.md). */
static bool code_retriable(int code)
{
	return code == BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE ||
	       code == BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS ||
	       code == BROKERD__ERROR_CODE__BROKER_SHUTTING_DOWN;
}

/* --- partitions ----------------------------------------------------------- */

static int part_index(const struct bk_consumer *c, const char *topic, int32_t partition)
{
	for (int i = 0; i < c->nparts; i++)
		if (c->parts[i]->partition == partition && strcmp(c->parts[i]->topic, topic) == 0)
			return i;
	return -1;
}

static void report_set(struct bk_consumer *c, struct part *p, int err)
{
	p->err = err;
	if (!p->report)
		c->nreport++;
	p->report = true;
}

static void report_clear(struct bk_consumer *c, struct part *p)
{
	if (p->report)
		c->nreport--;
	p->report = false;
}

/* Move the front buffer to the retired list (freed at the next poll). */
static void retire_front(struct bk_consumer *c, struct part *p)
{
	struct fbuf *fb = p->qhead;

	p->qhead = fb->next;
	if (p->qhead == NULL)
		p->qtail = NULL;
	p->nqueued--;
	fb->next = c->retired;
	c->retired = fb;
	c->retired_new = true;
}

static void retire_all(struct bk_consumer *c, struct part *p)
{
	while (p->qhead != NULL)
		retire_front(c, p);
	p->in_batch = false;
	p->yielded = false;
}

static void defer_clear(struct part *p)
{
	p->defer = 0;
	free(p->defer_msg);
	p->defer_msg = NULL;
}

static void conn_shut(struct cconn *k);
static void conn_fini(struct cconn *k);

/* Forget everything fetched or asked for: answers in flight are dropped.
 * A long poll in flight would hold back the next fetch on p's connection
 * until it expires: that connection is closed and opened anew instead. */
static void part_forget(struct bk_consumer *c, struct part *p)
{
	if (p->fetching && c->conf.fetch_max_wait_ms > 0) {
		conn_shut(&p->conn);
		p->conn.connect_at = 0;
	}
	retire_all(c, p);
	defer_clear(p);
	p->epoch++;
	p->fetching = false;
	p->retry_at = 0;
	report_clear(c, p);
	p->err = 0;
}

/* Resolve the position anew (seek, auto_offset_reset). */
static void part_resolve(struct bk_consumer *c, struct part *p, enum res_kind res, int64_t ts)
{
	part_forget(c, p);
	p->state = PS_RESOLVE;
	p->res = res;
	p->res_ts = ts;
	p->res_reset = false;
}

/* Fetch from `offset` on (seek to an explicit offset). */
static void part_set(struct bk_consumer *c, struct part *p, int64_t offset)
{
	part_forget(c, p);
	p->state = PS_FETCH;
	p->res = RES_NONE;
	p->position = p->fetch_at = offset;
}

/* Stop at the current position with err (not reported: the caller does). */
static void part_stop(struct bk_consumer *c, struct part *p, int err)
{
	retire_all(c, p);
	p->epoch++;
	p->fetching = false;
	p->state = PS_STOPPED;
	p->err = err;
}

static void part_free(struct part *p)
{
	while (p->qhead != NULL) {
		struct fbuf *fb = p->qhead;
		p->qhead = fb->next;
		free(fb);
	}
	conn_fini(&p->conn);
	free(p->defer_msg);
	free(p->topic);
	free(p);
}

/* Remove parts[i]: its requests in flight are dropped (its connection is
 * closed), and it waits in the dead list until the next poll (a record may
 * still point at its topic). */
static void part_remove(struct bk_consumer *c, int i)
{
	struct part *p = c->parts[i];

	for (struct pend *pd = c->ctl.ph; pd != NULL; pd = pd->next)
		if (pd->p == p)
			pd->p = NULL;
	conn_shut(&p->conn);
	report_clear(c, p);
	retire_all(c, p);
	memmove(&c->parts[i], &c->parts[i + 1], (size_t)(c->nparts - i - 1) * sizeof(*c->parts));
	c->nparts--;
	if (c->rr >= c->nparts)
		c->rr = 0;
	p->next_dead = c->dead;
	c->dead = p;
}

/* Free what records handed out before this call could point into. */
static void release(struct bk_consumer *c)
{
	while (c->retired != NULL) {
		struct fbuf *fb = c->retired;
		c->retired = fb->next;
		free(fb);
	}
	while (c->dead != NULL) {
		struct part *p = c->dead;
		c->dead = p->next_dead;
		part_free(p);
	}
}

/* --- commits -------------------------------------------------------------- */

static void commit_free(struct commit *cm)
{
	if (cm == NULL)
		return;
	for (size_t i = 0; i < cm->n; i++)
		free(cm->ents[i].topic);
	free(cm->ents);
	free(cm->ptrs);
	free(cm);
}

/* Unlink cm from the unanswered list and from requests in flight. */
static void commit_unlink(struct bk_consumer *c, struct commit *cm)
{
	for (struct commit **pp = &c->commits; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cm) {
			*pp = cm->next;
			break;
		}
	}
	cm->next = NULL;
	for (struct pend *pd = c->ctl.ph; pd != NULL; pd = pd->next)
		if (pd->cm == cm)
			pd->cm = NULL;
}

/* cm has its outcome: a sync waiter sees `done`, an async callback is
 * queued for the next safe point (run_done). */
static void commit_finish(struct bk_consumer *c, struct commit *cm, int result)
{
	commit_unlink(c, cm);
	cm->done = true;
	cm->result = result;
	if (cm->sync)
		return;
	if (c->done_t != NULL)
		c->done_t->next = cm;
	else
		c->done_h = cm;
	c->done_t = cm;
}

static void run_done(struct bk_consumer *c)
{
	while (c->done_h != NULL) {
		struct commit *cm = c->done_h;
		c->done_h = cm->next;
		if (c->done_h == NULL)
			c->done_t = NULL;
		if (cm->cb != NULL)
			cm->cb(cm->opaque, cm->result);
		commit_free(cm);
	}
}

/* A snapshot of every known position.  Returns 0 with *out (NULL when there
 * is nothing to commit), or -ENOMEM. */
static int commit_new(struct bk_consumer *c, bool sync, struct commit **out)
{
	struct commit *cm;
	size_t n = 0;

	*out = NULL;
	cm = calloc(1, sizeof(*cm));
	if (cm == NULL)
		return -ENOMEM;
	cm->ents = calloc((size_t)c->nparts + 1, sizeof(*cm->ents));
	cm->ptrs = calloc((size_t)c->nparts + 1, sizeof(*cm->ptrs));
	if (cm->ents == NULL || cm->ptrs == NULL)
		goto fail;
	for (int i = 0; i < c->nparts; i++) {
		struct part *p = c->parts[i];
		int code = bk_err_code(p->err);

		/* A partition that is gone would fail the whole commit. */
		if (p->state == PS_RESOLVE || p->state == PS_RESOLVING ||
		    (p->state == PS_STOPPED && (code == BROKERD__ERROR_CODE__UNKNOWN_TOPIC ||
						code == BROKERD__ERROR_CODE__UNKNOWN_PARTITION)))
			continue;
		brokerd__offset_commit__init(&cm->ents[n]);
		cm->ents[n].topic = strdup(p->topic);
		if (cm->ents[n].topic == NULL)
			goto fail;
		cm->ents[n].partition = (uint32_t)p->partition;
		cm->ents[n].offset = p->position;
		cm->ents[n].metadata = (char *)"";
		cm->ptrs[n] = &cm->ents[n];
		cm->n = ++n;
	}
	if (n == 0) {
		commit_free(cm);
		return 0;
	}
	cm->sync = sync;
	cm->deadline = now_ms() + c->conf.request_timeout_ms;
	*out = cm;
	return 0;
fail:
	commit_free(cm);
	return -ENOMEM;
}

static void commit_append(struct bk_consumer *c, struct commit *cm)
{
	struct commit **pp = &c->commits;

	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = cm;
}

/* --- connection ------------------------------------------------------------ */

static void conn_init(struct cconn *k, struct part *owner)
{
	memset(k, 0, sizeof(*k));
	k->owner = owner;
	k->fd = -1;
}

static bool conn_ready(const struct cconn *k)
{
	return k->fd >= 0 && !k->connecting;
}

/* Whether k should be connected: the control connection while a position
 * is resolved or a commit waits, a partition's while it fetches. */
static bool wants_conn(const struct bk_consumer *c, const struct cconn *k)
{
	if (k->owner != NULL)
		return k->owner->state == PS_FETCH;
	if (c->commits != NULL)
		return true;
	for (int i = 0; i < c->nparts; i++)
		if (c->parts[i]->state == PS_RESOLVE || c->parts[i]->state == PS_RESOLVING)
			return true;
	return false;
}

/* " (fetches of 'topic' partition n)" for a partition's connection. */
static const char *conn_what(const struct cconn *k, char *buf, size_t size)
{
	if (k->owner == NULL)
		return "";
	snprintf(buf, size, " (fetches of '%s' partition %d)", k->owner->topic,
		 k->owner->partition);
	return buf;
}

static int64_t next_backoff(struct cconn *k)
{
	int delay = k->backoff;

	k->backoff = k->backoff == 0 ? CONS_BACKOFF_MIN_MS
		     : k->backoff * 2 > CONS_BACKOFF_MAX_MS ? CONS_BACKOFF_MAX_MS : k->backoff * 2;
	return delay;
}

/* Undo what sending pd did: its partition or commit will ask again. */
static void pend_undo(struct pend *pd)
{
	struct part *p = pd->p;

	if (pd->kind == PK_COMMIT) {
		if (pd->cm != NULL)
			pd->cm->sent = false;
		return;
	}
	if (p == NULL || pd->epoch != p->epoch)
		return;
	if (pd->kind == PK_FETCH)
		p->fetching = false;
	else if (p->state == PS_RESOLVING)
		p->state = PS_RESOLVE;
}

/* Close k and drop everything in flight on it (each request is undone, so
 * it will be asked again); k may be connected again later. */
static void conn_shut(struct cconn *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->connecting = false;
	k->out_off = k->out_len = 0;
	k->hdr_got = 0;
	free(k->rx);
	k->rx = NULL;
	while (k->ph != NULL) {
		struct pend *pd = k->ph;
		k->ph = pd->next;
		pend_undo(pd);
		free(pd);
	}
	k->pt = NULL;
}

/* Free what k holds (the consumer or its partition goes away). */
static void conn_fini(struct cconn *k)
{
	conn_shut(k);
	free(k->out);
	k->out = NULL;
	k->out_cap = 0;
}

/* Drop the connection and everything in flight on it; reconnect later. */
static void conn_reset(struct bk_consumer *c, struct cconn *k, int err, int64_t now)
{
	char what[300];
	int64_t delay;

	conn_shut(k);
	k->last_err = err;
	delay = next_backoff(k);
	k->connect_at = now + delay;
	k->lost = true;
	cons_log(c, 2, "connection to %s%s lost: %s; reconnecting in %lld ms", c->bootstrap,
		 conn_what(k, what, sizeof(what)), bk_strerror(err), (long long)delay);
}

static void conn_up(struct bk_consumer *c, struct cconn *k)
{
	char what[300];
	int one = 1;

	setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	k->connecting = false;
	if (k->lost)
		cons_log(c, 1, "reconnected to %s%s", c->bootstrap, conn_what(k, what, sizeof(what)));
	else
		cons_log(c, 0, "connected to %s%s", c->bootstrap, conn_what(k, what, sizeof(what)));
	k->lost = false;
}

static void conn_failed(struct bk_consumer *c, struct cconn *k, int64_t now)
{
	char what[300];
	int64_t delay = next_backoff(k);

	if (delay == 0)
		delay = next_backoff(k);
	k->connect_at = now + delay;
	k->lost = true;
	cons_log(c, 2, "cannot connect to %s%s: %s; retrying in %lld ms", c->bootstrap,
		 conn_what(k, what, sizeof(what)), bk_strerror(k->last_err), (long long)delay);
}

/* Connect to the addresses from addr_i on, until one connects or is in
 * progress; after the last, back off. */
static void conn_try(struct bk_consumer *c, struct cconn *k, int64_t now)
{
	while (k->addr_i < k->naddr) {
		const struct sockaddr_storage *sa = &k->addrs[k->addr_i];
		int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			k->last_err = -errno;
			k->addr_i++;
			continue;
		}
		if (connect(fd, (const struct sockaddr *)sa, k->alens[k->addr_i]) == 0) {
			k->fd = fd;
			conn_up(c, k);
			return;
		}
		if (errno == EINPROGRESS) {
			k->fd = fd;
			k->connecting = true;
			k->conn_start = now;
			return;
		}
		k->last_err = -errno;
		close(fd);
		k->addr_i++;
	}
	conn_failed(c, k, now);
}

/* Resolve the bootstrap address (blocking getaddrinfo) and connect. */
static void conn_start(struct bk_consumer *c, struct cconn *k, int64_t now)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = getaddrinfo(c->host, c->port, &hints, &res);

	k->naddr = k->addr_i = 0;
	if (rc != 0) {
		k->last_err = rc == EAI_MEMORY ? -ENOMEM : rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
		conn_failed(c, k, now);
		return;
	}
	for (struct addrinfo *ai = res; ai != NULL && k->naddr < CONS_MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(k->addrs[0]))
			continue;
		memcpy(&k->addrs[k->naddr], ai->ai_addr, ai->ai_addrlen);
		k->alens[k->naddr++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	conn_try(c, k, now);
}

/* The socket of a connect in progress became writable (or failed). */
static void conn_finish(struct bk_consumer *c, struct cconn *k, int64_t now)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0) {
		conn_up(c, k);
		return;
	}
	close(k->fd);
	k->fd = -1;
	k->connecting = false;
	k->last_err = -err;
	k->addr_i++;
	conn_try(c, k, now);
}

/* Reserve n more bytes at the end of k's output buffer. */
static int out_reserve(struct cconn *k, size_t n)
{
	if (k->out_off > 0 && k->out_off == k->out_len)
		k->out_off = k->out_len = 0;
	if (k->out_len + n <= k->out_cap)
		return 0;
	if (k->out_off > 0) {
		memmove(k->out, k->out + k->out_off, k->out_len - k->out_off);
		k->out_len -= k->out_off;
		k->out_off = 0;
	}
	if (k->out_len + n > k->out_cap) {
		size_t cap = k->out_cap ? k->out_cap : 4096;
		uint8_t *p;

		while (cap < k->out_len + n)
			cap *= 2;
		p = realloc(k->out, cap);
		if (p == NULL)
			return -ENOMEM;
		k->out = p;
		k->out_cap = cap;
	}
	return 0;
}

/* Frame req into k's output buffer and append pd (taken) to k's pending
 * FIFO.  Returns 0, or -ENOMEM / -EMSGSIZE with pd freed. */
static int send_req(struct bk_consumer *c, struct cconn *k, Brokerd__Request *req,
		    struct pend *pd, int64_t now)
{
	size_t n;
	uint8_t *p;

	req->correlation_id = c->next_corr++;
	req->client_id = c->client_id;
	n = brokerd__request__get_packed_size(req);
	if (n > UINT32_MAX) {
		free(pd);
		return -EMSGSIZE;
	}
	if (out_reserve(k, n + 4) < 0) {
		free(pd);
		return -ENOMEM;
	}
	p = k->out + k->out_len;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	brokerd__request__pack(req, p + 4);
	k->out_len += n + 4;
	pd->corr = req->correlation_id;
	pd->sent_ms = now;
	pd->next = NULL;
	if (k->pt != NULL)
		k->pt->next = pd;
	else
		k->ph = pd;
	k->pt = pd;
	return 0;
}

static void flush_out(struct bk_consumer *c, struct cconn *k, int64_t now)
{
	while (k->fd >= 0 && !k->connecting && k->out_off < k->out_len) {
		ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);

		if (n > 0) {
			k->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_reset(c, k, n < 0 ? -errno : -EPIPE, now);
		return;
	}
}

static void flush_all(struct bk_consumer *c, int64_t now)
{
	flush_out(c, &c->ctl, now);
	for (int i = 0; i < c->nparts; i++)
		flush_out(c, &c->parts[i]->conn, now);
}

/* --- requests ---------------------------------------------------------------- */

static struct pend *pend_new(enum pend_kind kind, struct part *p)
{
	struct pend *pd = calloc(1, sizeof(*pd));

	if (pd != NULL) {
		pd->kind = kind;
		pd->p = p;
		pd->epoch = p != NULL ? p->epoch : 0;
	}
	return pd;
}

/* The next fetch of p, on its own connection.  It always may long-poll:
 * the broker answers at once when there is data, and nothing else waits
 * behind it on that connection. */
static int send_fetch(struct bk_consumer *c, struct part *p, int64_t now)
{
	uint32_t wait_ms = c->conf.fetch_max_wait_ms;
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__FetchRequest q = BROKERD__FETCH_REQUEST__INIT;
	struct pend *pd = pend_new(PK_FETCH, p);
	int rc;

	if (pd == NULL)
		return -ENOMEM;
	q.topic = p->topic;
	q.partition = (uint32_t)p->partition;
	q.offset = p->fetch_at;
	q.max_bytes = c->conf.fetch_max_bytes;
	q.max_wait_ms = wait_ms;
	q.min_bytes = c->conf.fetch_min_bytes;
	req.op_case = BROKERD__REQUEST__OP_FETCH;
	req.fetch = &q;
	pd->at = p->fetch_at;
	pd->wait_ms = wait_ms;
	rc = send_req(c, &p->conn, &req, pd, now);
	if (rc == 0)
		p->fetching = true;
	return rc;
}

/* A list_offsets or (for RES_COMMITTED) fetch_offsets for p's position. */
static int send_resolve(struct bk_consumer *c, struct part *p, int64_t now)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListOffsetsRequest lo = BROKERD__LIST_OFFSETS_REQUEST__INIT;
	Brokerd__FetchOffsetsRequest fo = BROKERD__FETCH_OFFSETS_REQUEST__INIT;
	Brokerd__TopicPartition tp = BROKERD__TOPIC_PARTITION__INIT, *tps[1] = { &tp };
	struct pend *pd;
	int rc;

	pd = pend_new(p->res == RES_COMMITTED ? PK_FETCH_OFFSETS : PK_LIST_OFFSETS, p);
	if (pd == NULL)
		return -ENOMEM;
	if (p->res == RES_COMMITTED) {
		tp.topic = p->topic;
		tp.partition = (uint32_t)p->partition;
		fo.group = c->group;
		fo.partitions = tps;
		fo.n_partitions = 1;
		req.op_case = BROKERD__REQUEST__OP_FETCH_OFFSETS;
		req.fetch_offsets = &fo;
	} else {
		lo.topic = p->topic;
		lo.partition = (uint32_t)p->partition;
		lo.timestamp = p->res == RES_TIME ? p->res_ts
			       : p->res == RES_LATEST ? -1 : -2; /* VERIFY: any will do */
		req.op_case = BROKERD__REQUEST__OP_LIST_OFFSETS;
		req.list_offsets = &lo;
	}
	rc = send_req(c, &c->ctl, &req, pd, now);
	if (rc == 0)
		p->state = PS_RESOLVING;
	return rc;
}

static int send_commit(struct bk_consumer *c, struct commit *cm, int64_t now)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CommitOffsetsRequest q = BROKERD__COMMIT_OFFSETS_REQUEST__INIT;
	struct pend *pd = pend_new(PK_COMMIT, NULL);
	int rc;

	if (pd == NULL)
		return -ENOMEM;
	pd->cm = cm;
	q.group = c->group;
	q.offsets = cm->ptrs;
	q.n_offsets = cm->n;
	req.op_case = BROKERD__REQUEST__OP_COMMIT_OFFSETS;
	req.commit_offsets = &q;
	rc = send_req(c, &c->ctl, &req, pd, now);
	if (rc == 0)
		cm->sent = true;
	return rc;
}

static bool can_fetch(const struct part *p, int64_t now)
{
	return p->state == PS_FETCH && !p->fetching && p->nqueued < CONS_MAX_QUEUED &&
	       now >= p->retry_at && p->defer == 0;
}

/* Put every request that is due on the wire: commits and resolves on the
 * control connection, each partition's next fetch on its own (as soon as
 * its previous answer arrived and while it has fewer than CONS_MAX_QUEUED
 * answers buffered: prefetch).  Returns 0 or -ENOMEM. */
static int schedule(struct bk_consumer *c, int64_t now)
{
	int rc;

	if (conn_ready(&c->ctl)) {
		for (struct commit *cm = c->commits; cm != NULL; cm = cm->next)
			if (!cm->sent && now >= cm->retry_at && (rc = send_commit(c, cm, now)) < 0)
				return rc;
		for (int i = 0; i < c->nparts; i++) {
			struct part *p = c->parts[i];

			if (p->state == PS_RESOLVE && now >= p->retry_at &&
			    (rc = send_resolve(c, p, now)) < 0)
				return rc;
		}
	}
	for (int i = 0; i < c->nparts; i++) {
		struct part *p = c->parts[i];

		if (conn_ready(&p->conn) && can_fetch(p, now) && (rc = send_fetch(c, p, now)) < 0)
			return rc;
	}
	return 0;
}

/* --- responses ---------------------------------------------------------------- */

/* A FetchResponse envelope decoded in place: records point into the frame. */
struct fetch_view {
	uint64_t corr;
	uint64_t error;
	const uint8_t *msg;
	size_t msg_len;
	bool has_body;
	int64_t next_offset;
	const uint8_t *records;
	size_t records_len;
};

static int pb_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (p == end)
			return -EPROTO;
		r |= (uint64_t)(*p & 0x7f) << shift;
		if (!(*p++ & 0x80)) {
			*pp = p;
			*v = r;
			return 0;
		}
	}
	return -EPROTO;
}

/* Read the value of a field of wire type wt: a varint into *v, or a
 * length-delimited slice into *s / *slen; other types are skipped. */
static int pb_field(const uint8_t **pp, const uint8_t *end, unsigned wt, uint64_t *v,
		    const uint8_t **s, size_t *slen)
{
	uint64_t n;

	switch (wt) {
	case 0:
		return pb_varint(pp, end, v);
	case 1:
	case 5:
		n = wt == 1 ? 8 : 4;
		break;
	case 2:
		if (pb_varint(pp, end, &n) < 0)
			return -EPROTO;
		*s = *pp;
		*slen = (size_t)n;
		break;
	default:
		return -EPROTO;
	}
	if (n > (uint64_t)(end - *pp))
		return -EPROTO;
	*pp += n;
	return 0;
}

/* Decode a Response frame answering a fetch without copying the records
 * (the broker writes them last, straight from the log; any protobuf
 * encoder's output decodes the same).  Returns 0 or -EPROTO. */
static int parse_fetch(const uint8_t *buf, size_t len, struct fetch_view *v)
{
	const uint8_t *p = buf, *end = buf + len, *body = NULL, *s = NULL;
	size_t body_len = 0, slen = 0;
	uint64_t tag, x = 0;

	memset(v, 0, sizeof(*v));
	while (p < end) {
		if (pb_varint(&p, end, &tag) < 0 || pb_field(&p, end, tag & 7, &x, &s, &slen) < 0)
			return -EPROTO;
		switch (tag) {
		case 1 << 3 | 0:
			v->corr = x;
			break;
		case 2 << 3 | 0:
			v->error = x;
			break;
		case 3 << 3 | 2:
			v->msg = s;
			v->msg_len = slen;
			break;
		case BROKERD__RESPONSE__OP_FETCH << 3 | 2:
			body = s;
			body_len = slen;
			v->has_body = true;
			break;
		default:
			if ((tag >> 3) <= 3 || (tag >> 3) == BROKERD__RESPONSE__OP_FETCH)
				return -EPROTO; /* a known field with the wrong wire type */
		}
	}
	if (body == NULL)
		return 0;
	p = body;
	end = body + body_len;
	while (p < end) {
		if (pb_varint(&p, end, &tag) < 0 || pb_field(&p, end, tag & 7, &x, &s, &slen) < 0)
			return -EPROTO;
		switch (tag) {
		case 4 << 3 | 0:
			v->next_offset = (int64_t)x;
			break;
		case 15 << 3 | 2:
			v->records = s;
			v->records_len = slen;
			break;
		default:
			break;
		}
	}
	return 0;
}

/* Act on the failed fetch of p once nothing fetched before it is left:
 * out of range resets to auto_offset_reset (returns 0), anything else
 * stops the partition (returns the error). */
static int defer_apply(struct bk_consumer *c, struct part *p)
{
	const char *msg = p->defer_msg ? p->defer_msg : "";
	int code = p->defer, err = 0;

	if (code == BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE) {
		cons_log(c, 2, "'%s' partition %d: fetch at offset %lld: %s; resetting to the %s "
			 "offset", p->topic, p->partition, (long long)p->defer_at, msg,
			 reset_name(c));
		part_resolve(c, p, reset_kind(c), 0);
		p->res_reset = true;
	} else {
		cons_log(c, 3, "'%s' partition %d stopped at offset %lld: %s: %s", p->topic,
			 p->partition, (long long)p->position, bk_error_name(code), msg);
		err = BK_ERR(code);
		part_stop(c, p, err);
	}
	defer_clear(p);
	return err;
}

/* A fetch answered with an error: retry later, or act on it (now, or once
 * the records queued before it have been handed out). */
static void on_fetch_error(struct bk_consumer *c, struct part *p, const struct fetch_view *v,
			   int64_t at, int64_t now)
{
	int code = v->error > INT_MAX ? INT_MAX : (int)v->error;
	int msg_len = v->msg_len > 300 ? 300 : (int)v->msg_len;
	const char *msg = (const char *)v->msg;
	int err;

	if (code_retriable(code)) {
		cons_log(c, 2, "'%s' partition %d: fetch at offset %lld: %s: %.*s; retrying",
			 p->topic, p->partition, (long long)at, bk_error_name(code), msg_len, msg);
		p->retry_at = now + CONS_RETRY_MS;
		return;
	}
	defer_clear(p);
	p->defer = code;
	p->defer_at = at;
	p->defer_msg = strndup(msg ? msg : "", (size_t)msg_len);
	if (p->qhead == NULL && !p->in_batch) {
		err = defer_apply(c, p);
		if (err < 0)
			report_set(c, p, err);
	}
}

/* Answer to a fetch on k: queue its records.  Takes fb.  Returns 0 or
 * -EPROTO. */
static int on_fetch(struct bk_consumer *c, struct cconn *k, struct pend *pd, struct fbuf *fb,
		    int64_t now)
{
	struct part *p = pd->p;
	struct fetch_view v;

	if (parse_fetch(fb->data, fb->len, &v) < 0 || (v.corr != pd->corr && v.corr != 0) ||
	    (v.error == 0 && !v.has_body)) {
		free(fb);
		return -EPROTO;
	}
	if (p == NULL || pd->epoch != p->epoch) {
		free(fb); /* asked before a seek or reset */
		return 0;
	}
	p->fetching = false;
	if (v.error != 0) {
		on_fetch_error(c, p, &v, pd->at, now); /* the message is in fb */
		free(fb);
		return 0;
	}
	k->backoff = 0;
	if (v.next_offset > p->fetch_at)
		p->fetch_at = v.next_offset;
	if (v.records_len == 0) {
		free(fb);
		return 0;
	}
	fb->pos = v.records;
	fb->end = v.records + v.records_len;
	fb->expect = pd->at;
	fb->next_offset = v.next_offset;
	fb->next = NULL;
	if (p->qtail != NULL)
		p->qtail->next = fb;
	else
		p->qhead = fb;
	p->qtail = fb;
	p->nqueued++;
	return 0;
}

/* A list_offsets or fetch_offsets failed with a broker error. */
static void on_resolve_error(struct bk_consumer *c, struct part *p, const Brokerd__Response *r,
			     int64_t now)
{
	if (code_retriable(r->error)) {
		cons_log(c, 2, "'%s' partition %d: %s: %s; retrying", p->topic, p->partition,
			 bk_error_name(r->error), r->error_message);
		p->state = PS_RESOLVE;
		p->retry_at = now + CONS_RETRY_MS;
		return;
	}
	cons_log(c, 3, "'%s' partition %d: %s: %s", p->topic, p->partition, bk_error_name(r->error),
		 r->error_message);
	part_stop(c, p, BK_ERR(r->error));
	report_set(c, p, BK_ERR(r->error));
}

static void resolved(struct bk_consumer *c, struct part *p, int64_t offset)
{
	if (p->res != RES_VERIFY)
		p->position = p->fetch_at = offset;
	if (p->res_reset)
		cons_log(c, 1, "'%s' partition %d: reset to offset %lld", p->topic, p->partition,
			 (long long)p->position);
	p->state = PS_FETCH;
	p->res = RES_NONE;
	p->res_reset = false;
}

/* Answer to anything but a fetch (on the control connection).  Takes fb.
 * Returns 0 or -EPROTO. */
static int on_other(struct bk_consumer *c, struct pend *pd, struct fbuf *fb, int64_t now)
{
	Brokerd__Response *r = brokerd__response__unpack(NULL, fb->len, fb->data);
	struct part *p = pd->p;
	int rc = 0;

	free(fb);
	if (r == NULL || (r->correlation_id != pd->corr && r->correlation_id != 0)) {
		rc = -EPROTO;
		goto out;
	}
	if (r->error == 0 &&
	    ((pd->kind == PK_LIST_OFFSETS && r->op_case != BROKERD__RESPONSE__OP_LIST_OFFSETS) ||
	     (pd->kind == PK_FETCH_OFFSETS && r->op_case != BROKERD__RESPONSE__OP_FETCH_OFFSETS) ||
	     (pd->kind == PK_COMMIT && r->op_case != BROKERD__RESPONSE__OP_COMMIT_OFFSETS))) {
		rc = -EPROTO;
		goto out;
	}
	if (r->error == 0)
		c->ctl.backoff = 0;
	if (pd->kind == PK_COMMIT) {
		struct commit *cm = pd->cm;

		if (cm == NULL) {
			/* given up on */
		} else if (r->error != 0 && code_retriable(r->error) && now < cm->deadline) {
			cons_log(c, 2, "commit for group '%s': %s: %s; retrying", c->group,
				 bk_error_name(r->error), r->error_message);
			cm->sent = false;
			cm->retry_at = now + CONS_RETRY_MS;
		} else {
			if (r->error != 0)
				cons_log(c, 3, "commit for group '%s' failed: %s: %s", c->group,
					 bk_error_name(r->error), r->error_message);
			commit_finish(c, cm, r->error != 0 ? BK_ERR(r->error) : 0);
		}
		goto out;
	}
	if (p == NULL || pd->epoch != p->epoch || p->state != PS_RESOLVING)
		goto out; /* asked before a seek or an unassign */
	if (r->error != 0) {
		on_resolve_error(c, p, r, now);
	} else if (pd->kind == PK_LIST_OFFSETS) {
		resolved(c, p, r->list_offsets->offset);
	} else {
		const Brokerd__FetchOffsetsResponse *f = r->fetch_offsets;
		const Brokerd__CommittedOffset *e = NULL;

		for (size_t i = 0; f != NULL && i < f->n_offsets; i++)
			if ((int32_t)f->offsets[i]->partition == p->partition &&
			    strcmp(f->offsets[i]->topic, p->topic) == 0)
				e = f->offsets[i];
		if (e != NULL && e->offset >= 0 && e->high_watermark >= 0) {
			cons_log(c, 0, "'%s' partition %d: group '%s' committed offset %lld", p->topic,
				 p->partition, c->group, (long long)e->offset);
			resolved(c, p, e->offset);
		} else {
			/* Nothing committed (or the partition is gone: list_offsets
			 * then says which). */
			cons_log(c, 1, "'%s' partition %d: no offset committed by group '%s': "
				 "starting at the %s offset", p->topic, p->partition, c->group,
				 reset_name(c));
			p->res = reset_kind(c);
			p->state = PS_RESOLVE;
		}
	}
out:
	if (rc < 0)
		pend_undo(pd);
	if (r != NULL)
		brokerd__response__free_unpacked(r, NULL);
	return rc;
}

/* A whole frame arrived on k: hand it to the request at the head of k's
 * FIFO. */
static void on_frame(struct bk_consumer *c, struct cconn *k, struct fbuf *fb, int64_t now)
{
	struct pend *pd = k->ph;
	int rc;

	if (pd == NULL) {
		free(fb);
		conn_reset(c, k, -EPROTO, now);
		return;
	}
	k->ph = pd->next;
	if (k->ph == NULL)
		k->pt = NULL;
	if (pd->kind == PK_FETCH) {
		rc = on_fetch(c, k, pd, fb, now);
		if (rc < 0)
			pend_undo(pd);
	} else {
		rc = on_other(c, pd, fb, now);
	}
	free(pd);
	if (rc < 0)
		conn_reset(c, k, rc, now);
}

/* Start receiving a frame of len bytes (the prefix just read). */
static int rx_begin(struct cconn *k, uint32_t len)
{
	if (len > CONS_MAX_FRAME)
		return -EMSGSIZE;
	k->rx = malloc(sizeof(*k->rx) + len);
	if (k->rx == NULL)
		return -ENOMEM;
	k->rx->len = len;
	k->rx_got = 0;
	return 0;
}

static void rx_check(struct bk_consumer *c, struct cconn *k, int64_t now)
{
	if (k->rx != NULL && k->rx_got == k->rx->len) {
		struct fbuf *fb = k->rx;
		k->rx = NULL;
		on_frame(c, k, fb, now);
	}
}

/* Split n bytes read into the stage buffer into frames of k. */
static void stage_consume(struct bk_consumer *c, struct cconn *k, size_t n, int64_t now)
{
	const uint8_t *p = c->stage, *end = c->stage + n;
	int rc;

	while (k->fd >= 0 && (p < end || (k->rx != NULL && k->rx_got == k->rx->len))) {
		size_t m;

		if (k->rx == NULL) {
			m = 4 - k->hdr_got < (size_t)(end - p) ? 4 - k->hdr_got : (size_t)(end - p);
			memcpy(k->hdr + k->hdr_got, p, m);
			k->hdr_got += m;
			p += m;
			if (k->hdr_got < 4)
				return;
			k->hdr_got = 0;
			rc = rx_begin(k, (uint32_t)k->hdr[0] << 24 | (uint32_t)k->hdr[1] << 16 |
					 (uint32_t)k->hdr[2] << 8 | k->hdr[3]);
			if (rc < 0) {
				conn_reset(c, k, rc, now);
				return;
			}
		}
		m = k->rx->len - k->rx_got;
		if (m > (size_t)(end - p))
			m = (size_t)(end - p);
		memcpy(k->rx->data + k->rx_got, p, m);
		k->rx_got += m;
		p += m;
		rx_check(c, k, now);
	}
}

/* Read everything k's socket has. */
static void read_in(struct bk_consumer *c, struct cconn *k, int64_t now)
{
	while (k->fd >= 0) {
		ssize_t n;

		if (k->rx != NULL && k->rx->len - k->rx_got >= CONS_STAGE_SIZE) {
			/* a large frame: straight into its buffer */
			n = recv(k->fd, k->rx->data + k->rx_got, k->rx->len - k->rx_got, 0);
			if (n > 0) {
				k->rx_got += (size_t)n;
				rx_check(c, k, now);
				continue;
			}
		} else {
			n = recv(k->fd, c->stage, CONS_STAGE_SIZE, 0);
			if (n > 0) {
				stage_consume(c, k, (size_t)n, now);
				continue;
			}
		}
		if (n == 0) {
			conn_reset(c, k, -ECONNRESET, now);
		} else if (errno == EINTR) {
			continue;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_reset(c, k, -errno, now);
		}
		return;
	}
}

/* --- the loop -------------------------------------------------------------------- */

/* k's timers: connect when due; give up on a connect or on a request (past
 * its long-poll time) that takes longer than request_timeout_ms. */
static void conn_timers(struct bk_consumer *c, struct cconn *k, int64_t now)
{
	int64_t limit = c->conf.request_timeout_ms;

	if (k->fd < 0 && wants_conn(c, k) && now >= k->connect_at) {
		conn_start(c, k, now);
	} else if (k->connecting && now - k->conn_start >= limit) {
		close(k->fd);
		k->fd = -1;
		k->connecting = false;
		k->last_err = -ETIMEDOUT;
		k->addr_i++;
		conn_try(c, k, now);
	} else if (conn_ready(k) && k->ph != NULL &&
		   now >= k->ph->sent_ms + k->ph->wait_ms + limit) {
		conn_reset(c, k, -ETIMEDOUT, now);
	}
}

/* The control connection's error to report for a call that timed out. */
static int ctl_err(const struct bk_consumer *c)
{
	return c->ctl.fd < 0 && c->ctl.last_err ? c->ctl.last_err : -ETIMEDOUT;
}

/* Every connection's timers; fail async commits past their deadline. */
static void timers(struct bk_consumer *c, int64_t now)
{
	conn_timers(c, &c->ctl, now);
	for (int i = 0; i < c->nparts; i++)
		conn_timers(c, &c->parts[i]->conn, now);
	for (struct commit *cm = c->commits, *next; cm != NULL; cm = next) {
		next = cm->next;
		if (!cm->sync && now >= cm->deadline)
			commit_finish(c, cm, ctl_err(c));
	}
}

/* The earliest timer of k, or t if that is earlier. */
static int64_t conn_next_timer(const struct bk_consumer *c, const struct cconn *k, int64_t t)
{
	int64_t limit = c->conf.request_timeout_ms;

	if (k->fd < 0) {
		if (wants_conn(c, k) && k->connect_at < t)
			t = k->connect_at;
	} else if (k->connecting) {
		if (k->conn_start + limit < t)
			t = k->conn_start + limit;
	} else if (k->ph != NULL && k->ph->sent_ms + k->ph->wait_ms + limit < t) {
		t = k->ph->sent_ms + k->ph->wait_ms + limit;
	}
	return t;
}

/* Milliseconds poll(2) may sleep: until `until` or the next timer. */
static int poll_timeout(const struct bk_consumer *c, int64_t until, int64_t now)
{
	int64_t t = conn_next_timer(c, &c->ctl, until);

	for (int i = 0; i < c->nparts; i++) {
		t = conn_next_timer(c, &c->parts[i]->conn, t);
		if (c->parts[i]->retry_at > now && c->parts[i]->retry_at < t)
			t = c->parts[i]->retry_at;
	}
	for (const struct commit *cm = c->commits; cm != NULL; cm = cm->next) {
		if (!cm->sync && cm->deadline < t)
			t = cm->deadline;
		if (!cm->sent && cm->retry_at > now && cm->retry_at < t)
			t = cm->retry_at;
	}
	t -= now;
	return t <= 0 ? 0 : t > INT_MAX ? INT_MAX : (int)t;
}

/* Add k to the poll set when it has a socket. */
static void poll_add(struct bk_consumer *c, struct cconn *k, int *n)
{
	if (k->fd < 0)
		return;
	c->pfds[*n].fd = k->fd;
	c->pfds[*n].events = POLLIN;
	if (k->connecting || k->out_off < k->out_len)
		c->pfds[*n].events |= POLLOUT;
	c->pfds[*n].revents = 0;
	c->pconns[*n] = k;
	(*n)++;
}

/* One turn: send what is due, wait (until `until` at most) for any socket
 * or a timer, read and dispatch what arrived, send what that made due (the
 * next fetch of a partition leaves before the application gets the records
 * that just arrived: prefetch).  Returns 0, -EINTR when a signal handler
 * ran, or -ENOMEM / another poll(2) failure. */
static int pump(struct bk_consumer *c, int64_t until)
{
	int64_t now = now_ms();
	int rc, n, nfd = 0;

	c->since_pump = 0;
	c->batch_end = false;
	c->retired_new = false;
	timers(c, now);
	rc = schedule(c, now);
	if (rc < 0)
		return rc;
	flush_all(c, now);
	poll_add(c, &c->ctl, &nfd);
	for (int i = 0; i < c->nparts; i++)
		poll_add(c, &c->parts[i]->conn, &nfd);
	if (nfd == 0) {
		n = poll_timeout(c, until, now);
		if (n > 0 && poll(NULL, 0, n) < 0 && errno == EINTR)
			return -EINTR;
		return 0;
	}
	n = poll(c->pfds, (nfds_t)nfd, poll_timeout(c, until, now));
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	now = now_ms();
	for (int i = 0; i < nfd; i++) {
		struct cconn *k = c->pconns[i];
		short ev = c->pfds[i].revents;

		if (ev == 0 || k->fd != c->pfds[i].fd)
			continue;
		if (k->connecting) {
			conn_finish(c, k, now);
			continue;
		}
		if (ev & (POLLIN | POLLERR | POLLHUP))
			read_in(c, k, now);
		if (ev & POLLOUT)
			flush_out(c, k, now);
	}
	rc = schedule(c, now);
	if (rc < 0)
		return rc;
	flush_all(c, now);
	return 0;
}

/* Run the loop until p's position is resolved or request_timeout_ms
 * passes.  Returns 0, the broker's refusal, or a transport error. */
static int wait_resolved(struct bk_consumer *c, struct part *p)
{
	int64_t deadline = now_ms() + c->conf.request_timeout_ms;

	while (p->state == PS_RESOLVE || p->state == PS_RESOLVING) {
		int rc;

		if (now_ms() >= deadline)
			return ctl_err(c);
		rc = pump(c, deadline);
		if (rc < 0 && rc != -EINTR)
			return rc;
	}
	if (p->state == PS_STOPPED) {
		report_clear(c, p);
		return p->err;
	}
	return 0;
}

/* --- records ------------------------------------------------------------------------ */

/* Stop p at a batch that fails its checks, saying where. */
static int corrupt(struct bk_consumer *c, struct part *p, const struct batch_header *h,
		   const char *why)
{
	if (h != NULL)
		cons_log(c, 3, "corrupt record batch in '%s' partition %d at offset %lld (batch "
			 "base offset %lld, %u records): %s; the partition is stopped", p->topic,
			 p->partition, (long long)p->position, (long long)h->base_offset,
			 h->record_count, why);
	else
		cons_log(c, 3, "corrupt record batch in '%s' partition %d at offset %lld: %s; "
			 "the partition is stopped", p->topic, p->partition, (long long)p->position,
			 why);
	part_stop(c, p, -EBADMSG);
	return -EBADMSG;
}

/* Start the next batch of p holding records at or after its position.
 * Returns 1, 0 when none is queued, or -EBADMSG (p stopped). */
static int batch_start(struct bk_consumer *c, struct part *p)
{
	struct fbuf *fb;
	struct batch_header h;
	char why[128];

	while ((fb = p->qhead) != NULL) {
		size_t avail = (size_t)(fb->end - fb->pos), size;
		int rc;

		if (avail == 0) {
			if (fb->expect < fb->next_offset) {
				snprintf(why, sizeof(why), "the fetch answer ends before offset %lld "
					 "but gives %lld as the next", (long long)fb->expect,
					 (long long)fb->next_offset);
				return corrupt(c, p, NULL, why);
			}
			retire_front(c, p);
			continue;
		}
		rc = batch_header_decode(fb->pos, avail, &h);
		if (rc < 0)
			return corrupt(c, p, NULL, rc == -EAGAIN ? "truncated batch header"
					     : "malformed batch header");
		size = batch_size(&h);
		if (size > avail)
			return corrupt(c, p, &h, "the batch runs past the end of the fetch answer");
		if (h.base_offset > fb->expect) {
			snprintf(why, sizeof(why), "offsets jump from %lld to %lld",
				 (long long)fb->expect, (long long)h.base_offset);
			return corrupt(c, p, &h, why);
		}
		if (batch_last_offset(&h) >= p->position) {
			rc = batch_iter_init(&p->it, fb->pos, size);
			if (rc < 0)
				return corrupt(c, p, &h, rc == -EBADMSG ? "CRC-32C mismatch"
						     : "malformed records");
			p->in_batch = true;
			p->yielded = false;
		}
		fb->pos += size;
		if (batch_last_offset(&h) + 1 > fb->expect)
			fb->expect = batch_last_offset(&h) + 1;
		if (p->in_batch)
			return 1;
	}
	return 0;
}

/* Fill rec from r.  Header keys are copied to make them NUL-terminated.
 * Returns 0 or -ENOMEM. */
static int fill_record(struct bk_consumer *c, const struct part *p, const struct batch_record *r,
		       struct bk_record *rec)
{
	if (r->header_count > 0) {
		size_t keys = r->headers_len + r->header_count;
		char *k;

		if (r->header_count > c->hdrs_cap) {
			struct bk_header *h = realloc(c->hdrs, r->header_count * sizeof(*h));
			if (h == NULL)
				return -ENOMEM;
			c->hdrs = h;
			c->hdrs_cap = r->header_count;
		}
		if (keys > c->hkeys_cap) {
			k = realloc(c->hkeys, keys);
			if (k == NULL)
				return -ENOMEM;
			c->hkeys = k;
			c->hkeys_cap = keys;
		}
		struct batch_header_iter hi;

		k = c->hkeys;
		batch_header_iter_init(&hi, r);
		for (uint32_t i = 0; i < r->header_count; i++) {
			struct batch_kv kv;

			if (batch_header_iter_next(&hi, &kv) != 1)
				return -EBADMSG; /* cannot happen: the batch was validated */
			if (kv.key_len > 0)
				memcpy(k, kv.key, (size_t)kv.key_len);
			k[kv.key_len] = '\0';
			c->hdrs[i].key = k;
			c->hdrs[i].value = kv.value;
			c->hdrs[i].value_len = kv.value_len;
			k += kv.key_len + 1;
		}
	}
	rec->topic = p->topic;
	rec->partition = p->partition;
	rec->offset = r->offset;
	rec->timestamp_ms = r->timestamp;
	rec->key = r->key;
	rec->key_len = r->key_len;
	rec->value = r->value;
	rec->value_len = r->value_len;
	rec->headers = r->header_count > 0 ? c->hdrs : NULL;
	rec->nheaders = r->header_count;
	return 0;
}

/* The next record of p.  Returns 1, 0 when p has none fetched or has just
 * finished a batch (so that the other partitions get a turn), or an error. */
static int part_next(struct bk_consumer *c, struct part *p, struct bk_record *rec)
{
	struct batch_record r;
	int rc;

	for (;;) {
		if (p->in_batch) {
			for (;;) {
				struct batch_iter save = p->it;

				if (batch_iter_next(&p->it, &r) != 1)
					break;
				if (r.offset < p->position)
					continue;
				rc = fill_record(c, p, &r, rec);
				if (rc < 0) {
					p->it = save;
					return rc;
				}
				p->position = r.offset + 1;
				p->yielded = true;
				return 1;
			}
			p->in_batch = false;
			c->batch_end = true;
			if (p->yielded) {
				p->yielded = false;
				return 0;
			}
		}
		rc = batch_start(c, p);
		if (rc == 0 && p->defer != 0)
			return defer_apply(c, p);
		if (rc <= 0)
			return rc;
	}
}

/* The next record of any partition, round-robin by batch. */
static int next_record(struct bk_consumer *c, struct bk_record *rec)
{
	int n = c->nparts;

	for (int k = 0; k <= n && n > 0; k++) {
		int i = (c->rr + k) % n;
		struct part *p = c->parts[i];
		int rc;

		if (p->state != PS_FETCH)
			continue;
		rc = part_next(c, p, rec);
		if (rc != 0) {
			c->rr = i;
			return rc;
		}
	}
	return 0;
}

/* An error a partition stopped with, returned once. */
static int take_report(struct bk_consumer *c)
{
	if (c->nreport == 0)
		return 0;
	for (int i = 0; i < c->nparts; i++) {
		if (c->parts[i]->report) {
			report_clear(c, c->parts[i]);
			return c->parts[i]->err;
		}
	}
	return 0;
}

/* --- public API ------------------------------------------------------------------------ */

void bk_consumer_conf_init(struct bk_consumer_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->auto_offset_reset = BK_OFFSET_LATEST;
	conf->fetch_max_bytes = 1048576;
	conf->fetch_max_wait_ms = 500;
	conf->fetch_min_bytes = 1;
	conf->request_timeout_ms = 30000;
}

int bk_consumer_new(const struct bk_consumer_conf *conf, struct bk_consumer **out)
{
	struct bk_consumer *c;
	const char *port;

	if (conf == NULL || out == NULL || conf->bootstrap == NULL ||
	    (conf->auto_offset_reset != BK_OFFSET_EARLIEST &&
	     conf->auto_offset_reset != BK_OFFSET_LATEST) ||
	    conf->fetch_max_wait_ms > INT_MAX || conf->request_timeout_ms <= 0 ||
	    (uint32_t)conf->request_timeout_ms <= conf->fetch_max_wait_ms ||
	    (conf->group != NULL && (conf->group[0] == '\0' || strlen(conf->group) > CONS_GROUP_MAX)))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	conn_init(&c->ctl, NULL);
	c->next_corr = 1;
	c->conf = *conf;
	if (addr_split(conf->bootstrap, c->host, sizeof(c->host), &port) < 0 ||
	    strlen(port) >= sizeof(c->port)) {
		free(c);
		return -EINVAL;
	}
	memcpy(c->port, port, strlen(port) + 1);
	c->bootstrap = strdup(conf->bootstrap);
	c->client_id = strdup(conf->client_id && conf->client_id[0] ? conf->client_id : "libbrokerc");
	c->group = conf->group ? strdup(conf->group) : NULL;
	c->stage = malloc(CONS_STAGE_SIZE);
	c->pfds = calloc(1, sizeof(*c->pfds));
	c->pconns = calloc(1, sizeof(*c->pconns));
	if (c->bootstrap == NULL || c->client_id == NULL || c->stage == NULL ||
	    c->pfds == NULL || c->pconns == NULL ||
	    (conf->group != NULL && c->group == NULL)) {
		bk_consumer_close(c);
		return -ENOMEM;
	}
	c->conf.bootstrap = c->bootstrap;
	c->conf.client_id = c->client_id;
	c->conf.group = c->group;
	*out = c;
	return 0;
}

int bk_consumer_assign(struct bk_consumer *c, const char *topic, int32_t partition,
		       int64_t offset)
{
	struct part *p, **parts;
	int rc;

	if (c == NULL || topic == NULL || topic[0] == '\0' || partition < 0 ||
	    offset < BK_OFFSET_COMMITTED || (offset == BK_OFFSET_COMMITTED && c->group == NULL))
		return -EINVAL;
	if (part_index(c, topic, partition) >= 0)
		return -EEXIST;
	if (c->nparts == c->cap_parts) {
		int cap = c->cap_parts ? c->cap_parts * 2 : 8;
		struct pollfd *pfds;
		struct cconn **pconns;

		/* every partition's connection and the control one */
		pfds = realloc(c->pfds, (size_t)(cap + 1) * sizeof(*pfds));
		if (pfds == NULL)
			return -ENOMEM;
		c->pfds = pfds;
		pconns = realloc(c->pconns, (size_t)(cap + 1) * sizeof(*pconns));
		if (pconns == NULL)
			return -ENOMEM;
		c->pconns = pconns;
		parts = realloc(c->parts, (size_t)cap * sizeof(*parts));
		if (parts == NULL)
			return -ENOMEM;
		c->parts = parts;
		c->cap_parts = cap;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL || (p->topic = strdup(topic)) == NULL) {
		free(p);
		return -ENOMEM;
	}
	conn_init(&p->conn, p);
	p->partition = partition;
	p->state = PS_RESOLVE;
	if (offset >= 0) {
		p->res = RES_VERIFY;
		p->position = p->fetch_at = offset;
	} else {
		p->res = offset == BK_OFFSET_EARLIEST ? RES_EARLIEST
			 : offset == BK_OFFSET_LATEST ? RES_LATEST : RES_COMMITTED;
	}
	c->parts[c->nparts++] = p;
	rc = wait_resolved(c, p);
	if (rc < 0) {
		int i = part_index(c, topic, partition);

		if (i >= 0)
			part_remove(c, i);
	}
	return rc;
}

int bk_consumer_unassign(struct bk_consumer *c, const char *topic, int32_t partition)
{
	int i;

	if (c == NULL || topic == NULL)
		return -EINVAL;
	i = part_index(c, topic, partition);
	if (i < 0)
		return -ENOENT;
	part_remove(c, i);
	return 0;
}

int bk_consumer_seek(struct bk_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
	struct part *p;
	int i;

	if (c == NULL || topic == NULL || offset < BK_OFFSET_COMMITTED ||
	    (offset == BK_OFFSET_COMMITTED && c->group == NULL))
		return -EINVAL;
	i = part_index(c, topic, partition);
	if (i < 0)
		return -ENOENT;
	p = c->parts[i];
	if (offset >= 0) {
		part_set(c, p, offset);
		return 0;
	}
	part_resolve(c, p, offset == BK_OFFSET_EARLIEST ? RES_EARLIEST
			   : offset == BK_OFFSET_LATEST ? RES_LATEST : RES_COMMITTED, 0);
	return wait_resolved(c, p);
}

int bk_consumer_seek_time(struct bk_consumer *c, const char *topic, int32_t partition,
			  int64_t ts_ms)
{
	struct part *p;
	int i;

	if (c == NULL || topic == NULL || ts_ms < 0)
		return -EINVAL;
	i = part_index(c, topic, partition);
	if (i < 0)
		return -ENOENT;
	p = c->parts[i];
	part_resolve(c, p, RES_TIME, ts_ms);
	return wait_resolved(c, p);
}

int bk_consumer_poll(struct bk_consumer *c, int timeout_ms, struct bk_record *rec)
{
	int64_t deadline = 0, now;
	bool waited = false;
	int rc;

	if (c == NULL || rec == NULL)
		return -EINVAL;
	release(c);
	run_done(c);
	for (;;) {
		rc = take_report(c);
		if (rc < 0)
			return rc;
		rc = next_record(c, rec);
		if (rc > 0 && (c->retired_new || ++c->since_pump >= CONS_PUMP_EVERY ||
			       (c->batch_end && c->since_pump >= CONS_PUMP_BATCH))) {
			/* A buffer was used up, or records went by: read what
			 * arrived meanwhile (other partitions' answers join the
			 * round-robin) and send the fetches that are due,
			 * without waiting. */
			(void)pump(c, 0);
		}
		if (rc != 0)
			return rc;
		/* Nothing at hand: the clock only matters from here on. */
		now = now_ms();
		if (!waited)
			deadline = timeout_ms < 0 ? INT64_MAX : now + timeout_ms;
		else if (now >= deadline)
			return 0;
		rc = pump(c, deadline);
		if (rc < 0)
			return rc;
		waited = true;
		run_done(c);
	}
}

int bk_consumer_position(struct bk_consumer *c, const char *topic, int32_t partition,
			 int64_t *offset)
{
	struct part *p;
	int i;

	if (c == NULL || topic == NULL || offset == NULL)
		return -EINVAL;
	i = part_index(c, topic, partition);
	if (i < 0)
		return -ENOENT;
	p = c->parts[i];
	if (p->state == PS_RESOLVE || p->state == PS_RESOLVING)
		return -EAGAIN;
	*offset = p->position;
	return 0;
}

int bk_consumer_commit(struct bk_consumer *c)
{
	struct commit *cm;
	int rc;

	if (c == NULL || c->group == NULL)
		return -EINVAL;
	run_done(c);
	rc = commit_new(c, true, &cm);
	if (rc < 0 || cm == NULL)
		return rc;
	commit_append(c, cm);
	while (!cm->done) {
		if (now_ms() >= cm->deadline) {
			rc = ctl_err(c);
			break;
		}
		rc = pump(c, cm->deadline);
		if (rc < 0 && rc != -EINTR)
			break;
	}
	if (cm->done)
		rc = cm->result;
	else
		commit_unlink(c, cm);
	commit_free(cm);
	run_done(c);
	return rc;
}

int bk_consumer_commit_async(struct bk_consumer *c, void (*cb)(void *opaque, int err),
			     void *opaque)
{
	struct commit *cm;
	int rc;

	if (c == NULL || c->group == NULL)
		return -EINVAL;
	rc = commit_new(c, false, &cm);
	if (rc < 0)
		return rc;
	if (cm == NULL) {
		/* Nothing to commit: done at once, reported like any other. */
		cm = calloc(1, sizeof(*cm));
		if (cm == NULL)
			return -ENOMEM;
		cm->cb = cb;
		cm->opaque = opaque;
		commit_finish(c, cm, 0);
		return 0;
	}
	cm->cb = cb;
	cm->opaque = opaque;
	commit_append(c, cm);
	/* On the wire now: the response is read by a later call. */
	rc = pump(c, 0);
	return rc < 0 && rc != -EINTR ? rc : 0;
}

void bk_consumer_close(struct bk_consumer *c)
{
	if (c == NULL)
		return;
	/* Nothing more is fetched; async commits finish (each bounded by its
	 * deadline) and their callbacks run. */
	while (c->nparts > 0)
		part_remove(c, c->nparts - 1);
	while (c->commits != NULL) {
		int64_t until = INT64_MAX;

		for (struct commit *cm = c->commits; cm != NULL; cm = cm->next)
			if (cm->deadline < until)
				until = cm->deadline;
		int rc = pump(c, until);

		if (rc < 0 && rc != -EINTR)
			while (c->commits != NULL)
				commit_finish(c, c->commits, rc);
	}
	run_done(c);
	release(c);
	conn_fini(&c->ctl);
	free(c->parts);
	free(c->pfds);
	free(c->pconns);
	free(c->stage);
	free(c->hdrs);
	free(c->hkeys);
	free(c->bootstrap);
	free(c->client_id);
	free(c->group);
	free(c);
}
