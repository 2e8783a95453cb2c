/* admin — see admin.h.  A plain evhttp server in the broker's reactor; each
 * response is built whole from the state of that moment (no cache, no
 * background work), so a scrape costs one walk of the registries.
 * Invariants:
 *  1. Nothing here changes broker state; handlers only read it.
 *  2. Each metric family is one contiguous group (HELP, TYPE, then every
 *     sample), as the exposition format requires: per-partition and
 *     per-group families walk the registries once per family.
 */
#include "broker/admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/log.h"
#include "broker/logging.h"
#include "broker/offsets.h"
#include "broker/topic.h"

#define ADMIN_BACKLOG     64
#define ADMIN_TIMEOUT_S   30    /* idle or slow admin connections are closed */
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY    4096  /* GET and HEAD carry no body */
#define ADMIN_REASON_MAX  (TOPIC_NAME_MAX + 128)
#define ADMIN_ALL_METHODS                                                  \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | \
	 EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |           \
	 EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

#define ADMIN_METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define ADMIN_TEXT_TYPE    "text/plain; charset=utf-8"

struct admin {
	struct broker *b;
	struct evhttp *http;   /* owns the listener and its fd */
	int port;
};

/* Operation names, indexed by key - MET_OP_FIRST (Request.op field numbers
 * in proto/broker.proto). */
static const char *const admin_op_names[] = {
	"api_versions", "create_topic", "delete_topic", "list_topics",
	"describe_topic", "alter_topic_config", "produce", "fetch",
	"list_offsets", "commit_offsets", "fetch_offsets", "list_groups",
	"delete_group", "broker_status",
};
_Static_assert(sizeof(admin_op_names) / sizeof(admin_op_names[0]) == MET_OP_COUNT,
	       "one name per operation key");

/* --- the text being rendered ---------------------------------------------- */

/* err is sticky, so rendering code writes without checking each call. */
struct mw {
	struct evbuffer *out;
	int err;               /* 0 or -ENOMEM */
};

static void mw_put(struct mw *w, const char *s, size_t n)
{
	if (w->err == 0 && evbuffer_add(w->out, s, n) < 0)
		w->err = -ENOMEM;
}

static void mw_printf(struct mw *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mw_printf(struct mw *w, const char *fmt, ...)
{
	va_list ap;

	if (w->err != 0)
		return;
	va_start(ap, fmt);
	if (evbuffer_add_vprintf(w->out, fmt, ap) < 0)
		w->err = -ENOMEM;
	va_end(ap);
}

/* A label value, escaped as the format wants: \\, \" and \n. */
static void mw_label(struct mw *w, const char *v)
{
	const char *run = v;

	for (; *v != '\0'; v++) {
		const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" :
				  *v == '\n' ? "\\n" : NULL;
		if (esc == NULL)
			continue;
		mw_put(w, run, (size_t)(v - run));
		mw_put(w, esc, 2);
		run = v + 1;
	}
	mw_put(w, run, (size_t)(v - run));
}

static void mw_family(struct mw *w, const char *name, const char *type,
		      const char *help)
{
	mw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* us microseconds as exact decimal seconds without trailing zeros:
 * 25 -> "0.000025", 2500000 -> "2.5", 10000000 -> "10". */
static void fmt_seconds(char *buf, size_t len, uint64_t us)
{
	uint64_t frac = us % 1000000;
	int digits = 6;

	if (frac == 0) {
		snprintf(buf, len, "%" PRIu64, us / 1000000);
		return;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64, us / 1000000, digits, frac);
}

/* --- families -------------------------------------------------------------- */

static void render_per_op(struct mw *w, const char *name, const char *help,
			  const uint64_t v[MET_OP_COUNT])
{
	mw_family(w, name, "counter", help);
	for (int i = 0; i < MET_OP_COUNT; i++)
		mw_printf(w, "%s{op=\"%s\"} %" PRIu64 "\n", name,
			  admin_op_names[i], v[i]);
}

/* A classic histogram: cumulative buckets with bounds in seconds. */
static void render_hist(struct mw *w, const char *name, const char *help,
			const struct hist *h)
{
	char num[32];
	uint64_t cum = 0;

	mw_family(w, name, "histogram", help);
	for (int i = 0; i < HIST_BUCKETS - 1; i++) {
		cum += h->counts[i];
		fmt_seconds(num, sizeof(num), hist_bounds_us[i]);
		mw_printf(w, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, num, cum);
	}
	cum += h->counts[HIST_BUCKETS - 1];
	mw_printf(w, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
	fmt_seconds(num, sizeof(num), h->sum_us);
	mw_printf(w, "%s_sum %s\n%s_count %" PRIu64 "\n", name, num, name, h->count);
}

static void render_scalar(struct mw *w, const char *name, const char *type,
			  const char *help, uint64_t v)
{
	mw_family(w, name, type, help);
	mw_printf(w, "%s %" PRIu64 "\n", name, v);
}

enum part_metric {
	PM_START,
	PM_HW,
	PM_END,
	PM_SIZE,
	PM_SEGMENTS,
	PM_READ_ONLY,
	PM_COUNT,
};

static const struct {
	const char *name, *help;
} part_families[PM_COUNT] = {
	[PM_START] = { "brokerd_partition_log_start_offset",
		       "First offset still stored (advances with retention)." },
	[PM_HW] = { "brokerd_partition_high_watermark",
		    "Offset below which records are visible to consumers." },
	[PM_END] = { "brokerd_partition_log_end_offset",
		     "Next offset to assign (appended, maybe not yet durable)." },
	[PM_SIZE] = { "brokerd_partition_size_bytes",
		      "Bytes of every segment file of the partition." },
	[PM_SEGMENTS] = { "brokerd_partition_segments",
			  "Segment files of the partition." },
	[PM_READ_ONLY] = { "brokerd_partition_read_only",
			   "1 when a write or fsync failed and the partition refuses appends." },
};

static int64_t part_value(const struct log *l, enum part_metric m)
{
	switch (m) {
	case PM_START:
		return log_start_offset(l);
	case PM_HW:
		return log_high_watermark(l);
	case PM_END:
		return log_end_offset(l);
	case PM_SIZE:
		return (int64_t)log_size_bytes(l);
	case PM_SEGMENTS:
		return log_segment_count(l);
	case PM_READ_ONLY:
		return log_error(l) != 0;
	case PM_COUNT:
		break;
	}
	return 0;
}

static void render_partitions(struct mw *w, const struct topic_reg *r)
{
	size_t n = topic_reg_count(r);

	for (int m = 0; m < PM_COUNT; m++) {
		const char *name = part_families[m].name;

		mw_family(w, name, "gauge", part_families[m].help);
		for (size_t i = 0; i < n; i++) {
			const struct topic *t = topic_reg_at(r, i);

			for (int p = 0; p < topic_partitions(t); p++) {
				mw_printf(w, "%s{topic=\"", name);
				mw_label(w, topic_name(t));
				mw_printf(w, "\",partition=\"%d\"} %" PRId64 "\n", p,
					  part_value(topic_log(t, p), m));
			}
		}
	}
}

/* State of one walk over every committed offset of every group. */
struct group_walk {
	struct mw *w;
	const struct broker *b;
	const char *group;     /* borrowed from the store for one group */
	bool lag;              /* brokerd_group_lag, else the committed offset */
};

static void render_group_offset(const char *topic, uint32_t partition,
				const struct ofs_value *v, void *arg)
{
	struct group_walk *gw = arg;
	const char *name = "brokerd_group_committed_offset";
	int64_t value = v->offset;

	if (gw->lag) {
		const struct topic *t = gw->b->topics != NULL ?
			topic_find(gw->b->topics, topic) : NULL;

		/* Offsets of a topic or partition that no longer exists have
		 * no lag to speak of. */
		if (t == NULL || partition >= (uint32_t)topic_partitions(t))
			return;
		name = "brokerd_group_lag";
		value = log_high_watermark(topic_log(t, (int)partition)) - v->offset;
		if (value < 0)   /* committed past the high watermark */
			value = 0;
	}
	mw_printf(gw->w, "%s{group=\"", name);
	mw_label(gw->w, gw->group);
	mw_put(gw->w, "\",topic=\"", 9);
	mw_label(gw->w, topic);
	mw_printf(gw->w, "\",partition=\"%" PRIu32 "\"} %" PRId64 "\n", partition,
		  value);
}

static void render_group(const char *group, size_t partitions, void *arg)
{
	struct group_walk *gw = arg;

	(void)partitions;
	gw->group = group;
	/* -ENOENT (no offsets left) renders nothing, which is right. */
	(void)ofs_each(gw->b->offsets, group, render_group_offset, gw);
}

static void render_groups(struct mw *w, const struct broker *b)
{
	struct group_walk gw = { .w = w, .b = b };

	mw_family(w, "brokerd_group_committed_offset", "gauge",
		  "Offset committed by a consumer group (next record to consume).");
	ofs_each_group(b->offsets, render_group, &gw);
	if (b->topics == NULL)
		return;
	gw.lag = true;
	mw_family(w, "brokerd_group_lag", "gauge",
		  "High watermark minus the committed offset (0 when past it).");
	ofs_each_group(b->offsets, render_group, &gw);
}

int admin_render_metrics(struct broker *b, struct evbuffer *out)
{
	struct mw w = { .out = out };
	const struct metrics *m = &b->met;
	int64_t up_ms = broker_wall_ms() - b->start_wall_ms;
	char num[32];

	mw_family(&w, "brokerd_build_info", "gauge",
		  "Always 1; the version label names the running build.");
	mw_printf(&w, "brokerd_build_info{version=\"");
	mw_label(&w, BROKERD_VERSION);
	mw_printf(&w, "\"} 1\n");
	mw_family(&w, "brokerd_uptime_seconds", "gauge",
		  "Seconds since the broker started.");
	fmt_seconds(num, sizeof(num), up_ms > 0 ? (uint64_t)up_ms * 1000 : 0);
	mw_printf(&w, "brokerd_uptime_seconds %s\n", num);

	render_per_op(&w, "brokerd_requests_total",
		      "Requests received, by operation.", m->requests);
	render_per_op(&w, "brokerd_request_errors_total",
		      "Requests answered with an error code, by operation.",
		      m->errors);
	render_per_op(&w, "brokerd_request_bytes_total",
		      "Bytes of request frames (with the length prefix), by operation.",
		      m->bytes_in);
	render_per_op(&w, "brokerd_response_bytes_total",
		      "Bytes of response frames (with the length prefix), by operation.",
		      m->bytes_out);

	render_hist(&w, "brokerd_produce_latency_seconds",
		    "Produce requests: frame received to response queued.",
		    &m->produce_us);
	render_hist(&w, "brokerd_fetch_latency_seconds",
		    "Fetch requests: frame received to response queued, long-poll wait included.",
		    &m->fetch_us);
	render_hist(&w, "brokerd_fsync_latency_seconds",
		    "Every data fdatasync of every partition log.", &m->fsync_us);

	render_scalar(&w, "brokerd_records_produced_total", "counter",
		      "Records appended by produce requests.", m->records_in);
	render_scalar(&w, "brokerd_connections", "gauge",
		      "Client connections open now.", m->conns_open);
	render_scalar(&w, "brokerd_connections_accepted_total", "counter",
		      "Client connections accepted.", m->conns_accepted);
	render_scalar(&w, "brokerd_connections_rejected_total", "counter",
		      "Client connections refused (max.connections or out of fds).",
		      m->conns_rejected);
	render_scalar(&w, "brokerd_bad_frames_total", "counter",
		      "Request frames oversized or undecodable.", m->bad_frames);

	if (b->topics != NULL)
		render_partitions(&w, b->topics);
	if (b->offsets != NULL)
		render_groups(&w, b);
	return w.err;
}

/* --- HTTP ------------------------------------------------------------------ */

/* Why the broker should not receive traffic, into buf; false when healthy. */
static bool admin_unhealthy(const struct broker *b, char *buf, size_t len)
{
	if (b->stopping) {
		snprintf(buf, len, "shutting down");
		return true;
	}
	if (b->topics == NULL)
		return false;
	for (size_t i = 0; i < topic_reg_count(b->topics); i++) {
		const struct topic *t = topic_reg_at(b->topics, i);

		for (int p = 0; p < topic_partitions(t); p++) {
			int err = log_error(topic_log(t, p));

			if (err == 0)
				continue;
			snprintf(buf, len, "partition %s-%d is read-only: %s",
				 topic_name(t), p, strerror(err < 0 ? -err : err));
			return true;
		}
	}
	return false;
}

/* Send the request's output buffer (the body, already added) with `code`.
 * evhttp 2.1 would send a body after HEAD too: there the body is dropped
 * and only its length announced, as a GET would have it. */
static void admin_reply(struct evhttp_request *req, int code, const char *reason,
			const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *body = evhttp_request_get_output_buffer(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char len[24];

		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(h, "Content-Length", len);
		(void)evbuffer_drain(body, evbuffer_get_length(body));
	}
	evhttp_send_reply(req, code, reason, NULL);
}

static void admin_handle(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	struct evbuffer *body = evhttp_request_get_output_buffer(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool metrics = path != NULL && strcmp(path, "/metrics") == 0;
	bool health = path != NULL && strcmp(path, "/healthz") == 0;
	char reason[ADMIN_REASON_MAX];

	/* Write failures of these small bodies only shorten the body; the
	 * status line still says what happened. */
	if (!metrics && !health) {
		(void)evbuffer_add_printf(body, "not found\n");
		admin_reply(req, HTTP_NOTFOUND, "Not Found", ADMIN_TEXT_TYPE);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  "GET, HEAD");
		(void)evbuffer_add_printf(body, "method not allowed\n");
		admin_reply(req, HTTP_BADMETHOD, "Method Not Allowed", ADMIN_TEXT_TYPE);
		return;
	}
	if (metrics) {
		/* HEAD renders too: its Content-Length must match GET's. */
		if (admin_render_metrics(a->b, body) < 0) {
			(void)evbuffer_drain(body, evbuffer_get_length(body));
			log_msg(LOGL_WARN, "admin: out of memory rendering /metrics");
			admin_reply(req, HTTP_INTERNAL, "Internal Server Error",
				    ADMIN_TEXT_TYPE);
			return;
		}
		admin_reply(req, HTTP_OK, "OK", ADMIN_METRICS_TYPE);
		return;
	}
	if (admin_unhealthy(a->b, reason, sizeof(reason))) {
		(void)evbuffer_add_printf(body, "%s\n", reason);
		admin_reply(req, HTTP_SERVUNAVAIL, "Service Unavailable", ADMIN_TEXT_TYPE);
		return;
	}
	(void)evbuffer_add(body, "ok\n", 3);
	admin_reply(req, HTTP_OK, "OK", ADMIN_TEXT_TYPE);
}

/* A listening socket on *ss (nonblocking, close-on-exec, SO_REUSEADDR so a
 * restart does not wait out TIME_WAIT); *ss gets the address bound.
 * Returns the fd (owned) or -errno. */
static int admin_listen(struct sockaddr_storage *ss, socklen_t *len)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)ss, *len) < 0 ||
	    listen(fd, ADMIN_BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)ss, len) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int admin_new(struct broker *b, struct admin **out)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct admin *a = NULL;
	int fd = -1, rc;

	*out = NULL;
	if (!b->cfg.admin_enabled) {
		log_msg(LOGL_INFO, "admin: admin.listen = off: no admin port");
		return 0;
	}
	rc = config_addr_resolve(b->cfg.admin_listen, &ss, &len);
	if (rc < 0)
		goto fail;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	a->b = b;
	a->http = evhttp_new(b->base);
	if (a->http == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
	evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
	/* Every method reaches admin_handle, which answers 405; evhttp
	 * itself would answer a disallowed one with 501. */
	evhttp_set_allowed_methods(a->http, ADMIN_ALL_METHODS);
	evhttp_set_gencb(a->http, admin_handle, a);

	fd = admin_listen(&ss, &len);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	a->port = ntohs(ss.ss_family == AF_INET6 ?
			((struct sockaddr_in6 *)&ss)->sin6_port :
			((struct sockaddr_in *)&ss)->sin_port);
	if (evhttp_accept_socket_with_handle(a->http, fd) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	/* fd belongs to the evhttp listener now (closed by evhttp_free). */
	log_msg(LOGL_INFO, "admin: serving /healthz and /metrics on %s (port %d)",
		b->cfg.admin_listen, a->port);
	*out = a;
	return 0;

fail:
	log_msg_errno(LOGL_ERROR, rc, "admin: cannot listen on %s", b->cfg.admin_listen);
	if (fd >= 0)
		close(fd);
	if (a != NULL && a->http != NULL)
		evhttp_free(a->http);
	free(a);
	return rc;
}

void admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	evhttp_free(a->http);
	free(a);
}

int admin_port(const struct admin *a)
{
	return a != NULL ? a->port : -1;
}
