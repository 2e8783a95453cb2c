/* check_admin — the admin HTTP port.  /metrics text is parsed back line by
 * line (families contiguous with one HELP and one TYPE each, label escaping,
 * cumulative histograms in seconds); per-partition and per-group series come
 * from a real topic registry and offsets store on the log test harness;
 * /healthz, 404 and 405 go over a loopback socket on port 0 while the event
 * loop runs (a nonblocking client interleaved with EVLOOP_NONBLOCK turns). */
#include "broker/admin.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/hist.h"
#include "broker/logging.h"
#include "broker/offsets.h"
#include "broker/topic.h"
#include "tests/unit/logtest.h"

Suite *admin_suite(void); /* called by the runner (tests/unit/runner.c) */

#define MX_NAME_MAX     128
#define MX_LABELS_MAX   1024
#define MX_LINE_MAX     4096
#define MX_SAMPLES_MAX  4096
#define MX_FAMILIES_MAX 64
#define HTTP_WAIT_MS    10000

static const char *const op_names[MET_OP_COUNT] = {
	"api_versions", "create_topic", "delete_topic", "list_topics",
	"describe_topic", "alter_topic_config", "produce", "fetch",
	"list_offsets", "commit_offsets", "fetch_offsets", "list_groups",
	"delete_group", "broker_status",
};

/* --- a parser of the text exposition format 0.0.4 -------------------------- */

struct mx_sample {
	char name[MX_NAME_MAX];
	char labels[MX_LABELS_MAX]; /* unescaped "k=v,k=v", in text order */
	double value;
};

struct mx_family {
	char name[MX_NAME_MAX];
	char type[16];
	int nhelp, ntype, nsamples;
};

struct mx {
	struct mx_sample *s;
	int ns;
	struct mx_family f[MX_FAMILIES_MAX];
	int nf;
	int cur;                    /* family of the latest HELP/TYPE line */
};

static int mx_family_find(const struct mx *x, const char *name)
{
	for (int i = 0; i < x->nf; i++)
		if (strcmp(x->f[i].name, name) == 0)
			return i;
	return -1;
}

static bool is_name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c == ':' || (!first && c >= '0' && c <= '9');
}

/* Copy the metric name at *p into name; advances *p past it. */
static void mx_name(const char **p, char *name, const char *line)
{
	size_t n = 0;

	ck_assert_msg(is_name_char(**p, true), "bad metric name in: %s", line);
	while (is_name_char(**p, false)) {
		ck_assert_uint_lt(n, MX_NAME_MAX - 1);
		name[n++] = *(*p)++;
	}
	name[n] = '\0';
}

static void mx_comment(struct mx *x, const char *line)
{
	char name[MX_NAME_MAX];
	const char *p = line + 7;
	bool help = strncmp(line, "# HELP ", 7) == 0;
	int f;

	ck_assert_msg(help || strncmp(line, "# TYPE ", 7) == 0, "bad comment: %s", line);
	mx_name(&p, name, line);
	ck_assert_msg(*p == ' ' && p[1] != '\0', "nothing after the name: %s", line);
	p++;
	f = mx_family_find(x, name);
	if (f < 0) {
		ck_assert_int_lt(x->nf, MX_FAMILIES_MAX);
		f = x->nf++;
		snprintf(x->f[f].name, sizeof(x->f[f].name), "%s", name);
	} else {
		ck_assert_msg(f == x->cur, "family %s declared in two places", name);
	}
	x->cur = f;
	if (help) {
		ck_assert_msg(++x->f[f].nhelp == 1, "two HELP lines for %s", name);
		ck_assert_msg(x->f[f].nsamples == 0, "HELP of %s after its samples", name);
		return;
	}
	ck_assert_msg(++x->f[f].ntype == 1, "two TYPE lines for %s", name);
	ck_assert_msg(x->f[f].nsamples == 0, "TYPE of %s after its samples", name);
	ck_assert_msg(strcmp(p, "counter") == 0 || strcmp(p, "gauge") == 0 ||
		      strcmp(p, "histogram") == 0, "type %s of %s", p, name);
	snprintf(x->f[f].type, sizeof(x->f[f].type), "%s", p);
}

/* Parse {k="v",...} at *p into s->labels, undoing the escapes. */
static void mx_labels(const char **p, struct mx_sample *s, const char *line)
{
	size_t n = 0;

#define PUT(c)                                                  \
	do {                                                    \
		ck_assert_uint_lt(n, MX_LABELS_MAX - 1);        \
		s->labels[n++] = (c);                           \
	} while (0)
	(*p)++;
	while (**p != '}') {
		if (n > 0)
			PUT(',');
		ck_assert_msg(is_name_char(**p, true) && **p != ':', "label name: %s", line);
		while (is_name_char(**p, false))
			PUT(*(*p)++);
		ck_assert_msg((*p)[0] == '=' && (*p)[1] == '"', "label syntax: %s", line);
		PUT('=');
		*p += 2;
		for (; **p != '"'; (*p)++) {
			ck_assert_msg(**p != '\0', "unterminated label value: %s", line);
			if (**p != '\\') {
				PUT(**p);
				continue;
			}
			(*p)++;
			ck_assert_msg(**p == '\\' || **p == '"' || **p == 'n',
				      "bad escape in: %s", line);
			PUT(**p == 'n' ? '\n' : **p);
		}
		(*p)++;
		ck_assert_msg(**p == ',' || **p == '}', "after a label: %s", line);
		if (**p == ',')
			(*p)++;
	}
	(*p)++;
	s->labels[n] = '\0';
#undef PUT
}

static bool ends_with(const char *s, const char *base, const char *suffix)
{
	size_t n = strlen(base);

	return strncmp(s, base, n) == 0 && strcmp(s + n, suffix) == 0;
}

static void mx_sample_line(struct mx *x, const char *line)
{
	const char *p = line;
	struct mx_sample *s;
	struct mx_family *f;
	char *end;

	ck_assert_int_lt(x->ns, MX_SAMPLES_MAX);
	s = &x->s[x->ns++];
	mx_name(&p, s->name, line);
	s->labels[0] = '\0';
	if (*p == '{')
		mx_labels(&p, s, line);
	ck_assert_msg(*p == ' ' && p[1] != '\0' && p[1] != ' ', "value: %s", line);
	s->value = strtod(p + 1, &end);
	ck_assert_msg(*end == '\0', "junk after the value (or timestamp): %s", line);

	/* The sample must belong to the family declared last: families are
	 * contiguous and every sample has a TYPE. */
	ck_assert_msg(x->cur >= 0, "sample before any TYPE: %s", line);
	f = &x->f[x->cur];
	ck_assert_msg(f->ntype == 1, "sample of %s without TYPE", f->name);
	if (strcmp(f->type, "histogram") == 0)
		ck_assert_msg(ends_with(s->name, f->name, "_bucket") ||
			      ends_with(s->name, f->name, "_sum") ||
			      ends_with(s->name, f->name, "_count"),
			      "%s inside histogram %s", s->name, f->name);
	else
		ck_assert_msg(strcmp(s->name, f->name) == 0,
			      "%s inside family %s", s->name, f->name);
	f->nsamples++;
	for (int i = 0; i < x->ns - 1; i++)
		ck_assert_msg(strcmp(x->s[i].name, s->name) != 0 ||
			      strcmp(x->s[i].labels, s->labels) != 0,
			      "duplicate series: %s", line);
}

/* Parse the whole body; every line must be well-formed. */
static void mx_parse(struct mx *x, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	char line[MX_LINE_MAX];

	memset(x, 0, sizeof(*x));
	x->cur = -1;
	x->s = calloc(MX_SAMPLES_MAX, sizeof(*x->s));
	ck_assert_ptr_nonnull(x->s);
	ck_assert_msg(len > 0 && text[len - 1] == '\n', "body must end with a newline");
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(eol - p);

		ck_assert_uint_lt(n, sizeof(line));
		ck_assert_uint_gt(n, 0);
		memcpy(line, p, n);
		line[n] = '\0';
		ck_assert_msg(strlen(line) == n, "NUL inside a line");
		p = eol + 1;
		if (line[0] == '#')
			mx_comment(x, line);
		else
			mx_sample_line(x, line);
	}
	for (int i = 0; i < x->nf; i++)
		ck_assert_msg(x->f[i].nhelp == 1 && x->f[i].ntype == 1,
			      "family %s lacks HELP or TYPE", x->f[i].name);
}

static void mx_free(struct mx *x)
{
	free(x->s);
	x->s = NULL;
}

static const struct mx_sample *mx_find(const struct mx *x, const char *name,
				       const char *labels)
{
	for (int i = 0; i < x->ns; i++)
		if (strcmp(x->s[i].name, name) == 0 && strcmp(x->s[i].labels, labels) == 0)
			return &x->s[i];
	return NULL;
}

static double mx_value(const struct mx *x, const char *name, const char *labels)
{
	const struct mx_sample *s = mx_find(x, name, labels);

	ck_assert_msg(s != NULL, "no sample %s{%s}", name, labels);
	return s->value;
}

static void mx_expect_family(const struct mx *x, const char *name, const char *type)
{
	int f = mx_family_find(x, name);

	ck_assert_msg(f >= 0, "family %s missing", name);
	ck_assert_str_eq(x->f[f].type, type);
}

static void mx_expect_no_family(const struct mx *x, const char *name)
{
	ck_assert_msg(mx_family_find(x, name) < 0, "family %s present", name);
}

/* Render b into a fresh buffer and parse it. */
static void render(struct broker *b, struct mx *x)
{
	struct evbuffer *out = evbuffer_new();
	size_t len;

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(admin_render_metrics(b, out), 0);
	len = evbuffer_get_length(out);
	mx_parse(x, (const char *)evbuffer_pullup(out, -1), len);
	evbuffer_free(out);
}

/* The histogram `base` matches h: bounds in seconds, cumulative monotone
 * buckets, +Inf == _count, _sum in seconds. */
static void check_hist(const struct mx *x, const char *base, const struct hist *h)
{
	char name[MX_NAME_MAX];
	double prev_le = -1, prev_v = -1;
	uint64_t cum = 0;
	int nb = 0;

	mx_expect_family(x, base, "histogram");
	snprintf(name, sizeof(name), "%s_bucket", base);
	for (int i = 0; i < x->ns; i++) {
		const struct mx_sample *s = &x->s[i];
		double le;

		if (strcmp(s->name, name) != 0)
			continue;
		ck_assert_msg(strncmp(s->labels, "le=", 3) == 0 && strchr(s->labels, ',') == NULL,
			      "bucket labels %s", s->labels);
		le = strtod(s->labels + 3, NULL);
		ck_assert_msg(le > prev_le, "%s: le %s not increasing", base, s->labels);
		ck_assert_msg(s->value >= prev_v, "%s: buckets not cumulative", base);
		if (nb < HIST_BUCKETS - 1) {
			double want = (double)hist_bounds_us[nb] / 1e6;
			ck_assert_msg(fabs(le - want) <= want * 1e-12, "%s: le %s, want %g",
				      base, s->labels, want);
			cum += h->counts[nb];
			ck_assert_msg(s->value == (double)cum, "%s: bucket %s = %g, want %llu",
				      base, s->labels, s->value, (unsigned long long)cum);
		} else {
			ck_assert_str_eq(s->labels, "le=+Inf");
		}
		prev_le = le;
		prev_v = s->value;
		nb++;
	}
	ck_assert_int_eq(nb, HIST_BUCKETS);
	ck_assert(isinf(prev_le));
	snprintf(name, sizeof(name), "%s_count", base);
	ck_assert(mx_value(x, name, "") == prev_v);
	ck_assert(mx_value(x, name, "") == (double)h->count);
	snprintf(name, sizeof(name), "%s_sum", base);
	ck_assert(fabs(mx_value(x, name, "") - (double)h->sum_us / 1e6) < 1e-9);
}

/* A broker with no storage: admin on 127.0.0.1:0 of `base`. */
static void broker_init(struct broker *b, struct event_base *base)
{
	memset(b, 0, sizeof(*b));
	config_defaults(&b->cfg);
	snprintf(b->cfg.admin_listen, sizeof(b->cfg.admin_listen), "127.0.0.1:0");
	b->cfg.admin_enabled = true;
	b->base = base;
	b->start_wall_ms = broker_wall_ms();
	b->lockfd = -1;
}

static void quiet(void)
{
	if (getenv("LOGTEST_VERBOSE") == NULL)
		log_msg_level = LOGL_ERROR + 1;
}

/* --- rendering without storage ---------------------------------------------- */

START_TEST(test_render_counters)
{
	struct broker b;
	struct mx x;
	char lab[64];

	quiet();
	broker_init(&b, NULL);
	b.start_wall_ms -= 5000;
	for (int i = 0; i < MET_OP_COUNT; i++) {
		b.met.requests[i] = 1000 + (uint64_t)i;
		b.met.errors[i] = (uint64_t)i;
		b.met.bytes_in[i] = 100000 + (uint64_t)i;
		b.met.bytes_out[i] = 200000 + (uint64_t)i;
	}
	b.met.records_in = 123456789;
	b.met.conns_open = 7;
	b.met.conns_accepted = 70;
	b.met.conns_rejected = 3;
	b.met.bad_frames = 2;
	render(&b, &x);

	mx_expect_family(&x, "brokerd_requests_total", "counter");
	mx_expect_family(&x, "brokerd_request_errors_total", "counter");
	mx_expect_family(&x, "brokerd_request_bytes_total", "counter");
	mx_expect_family(&x, "brokerd_response_bytes_total", "counter");
	for (int i = 0; i < MET_OP_COUNT; i++) {
		snprintf(lab, sizeof(lab), "op=%s", op_names[i]);
		ck_assert(mx_value(&x, "brokerd_requests_total", lab) == 1000 + i);
		ck_assert(mx_value(&x, "brokerd_request_errors_total", lab) == i);
		ck_assert(mx_value(&x, "brokerd_request_bytes_total", lab) == 100000 + i);
		ck_assert(mx_value(&x, "brokerd_response_bytes_total", lab) == 200000 + i);
	}
	ck_assert_int_eq(x.f[mx_family_find(&x, "brokerd_requests_total")].nsamples,
			 MET_OP_COUNT);
	mx_expect_family(&x, "brokerd_records_produced_total", "counter");
	ck_assert(mx_value(&x, "brokerd_records_produced_total", "") == 123456789);
	mx_expect_family(&x, "brokerd_connections", "gauge");
	ck_assert(mx_value(&x, "brokerd_connections", "") == 7);
	mx_expect_family(&x, "brokerd_connections_accepted_total", "counter");
	ck_assert(mx_value(&x, "brokerd_connections_accepted_total", "") == 70);
	mx_expect_family(&x, "brokerd_connections_rejected_total", "counter");
	ck_assert(mx_value(&x, "brokerd_connections_rejected_total", "") == 3);
	mx_expect_family(&x, "brokerd_bad_frames_total", "counter");
	ck_assert(mx_value(&x, "brokerd_bad_frames_total", "") == 2);
	mx_expect_family(&x, "brokerd_uptime_seconds", "gauge");
	double up = mx_value(&x, "brokerd_uptime_seconds", "");
	ck_assert_msg(up >= 5.0 && up < 120.0, "uptime %g", up);
	mx_expect_family(&x, "brokerd_build_info", "gauge");
	ck_assert(mx_value(&x, "brokerd_build_info", "version=" BROKERD_VERSION) == 1);

	/* No registries: no partition or group families at all. */
	mx_expect_no_family(&x, "brokerd_partition_high_watermark");
	mx_expect_no_family(&x, "brokerd_group_lag");
	mx_expect_no_family(&x, "brokerd_group_committed_offset");
	mx_free(&x);
}
END_TEST

START_TEST(test_render_histograms)
{
	static const uint64_t samples[] = {
		0, 1, 25, 26, 50, 999, 1000, 1001, 123456, 2500000,
		9999999, 10000000, 10000001, 3600000000ULL,
	};
	struct broker b;
	struct mx x;

	quiet();
	broker_init(&b, NULL);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		hist_add(&b.met.produce_us, samples[i]);
		hist_add(&b.met.fsync_us, samples[i] * 3 + 7);
	}
	for (int i = 0; i < 1000; i++)
		hist_add(&b.met.fetch_us, (uint64_t)i * 997 % 20000000);
	render(&b, &x);
	check_hist(&x, "brokerd_produce_latency_seconds", &b.met.produce_us);
	check_hist(&x, "brokerd_fetch_latency_seconds", &b.met.fetch_us);
	check_hist(&x, "brokerd_fsync_latency_seconds", &b.met.fsync_us);
	/* The bounds are inclusive and printed as plain decimals. */
	ck_assert(mx_value(&x, "brokerd_produce_latency_seconds_bucket", "le=0.000025") == 3);
	ck_assert(mx_value(&x, "brokerd_produce_latency_seconds_bucket", "le=2.5") == 10);
	ck_assert(mx_value(&x, "brokerd_produce_latency_seconds_bucket", "le=10") == 12);
	ck_assert(mx_value(&x, "brokerd_produce_latency_seconds_bucket", "le=+Inf") == 14);
	mx_free(&x);
}
END_TEST

START_TEST(test_render_empty)
{
	struct broker b;
	struct hist zero;
	struct mx x;

	quiet();
	broker_init(&b, NULL);
	memset(&zero, 0, sizeof(zero));
	render(&b, &x);
	check_hist(&x, "brokerd_produce_latency_seconds", &zero);
	check_hist(&x, "brokerd_fetch_latency_seconds", &zero);
	check_hist(&x, "brokerd_fsync_latency_seconds", &zero);
	ck_assert(mx_value(&x, "brokerd_requests_total", "op=produce") == 0);
	ck_assert(mx_value(&x, "brokerd_connections", "") == 0);
	mx_free(&x);
}
END_TEST

/* --- rendering with a topic registry and offsets ------------------------------ */

struct commit_wait {
	struct ofs_op op;
	int calls, res;
};

static void commit_done(struct ofs_op *op, int res)
{
	struct commit_wait *w = op->arg;

	w->calls++;
	w->res = res;
}

static void commit(struct lt *t, struct offsets *o, const char *group,
		   const char *topic, uint32_t partition, int64_t offset)
{
	struct ofs_entry e = { .topic = topic, .partition = partition, .offset = offset };
	struct commit_wait w = { .op = { .cb = commit_done } };

	w.op.arg = &w;
	ck_assert_int_eq(ofs_commit(o, group, &e, 1, &w.op), 0);
	LT_RUN_UNTIL(t, w.calls > 0);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_int_eq(w.res, 0);
}

static struct topic *create_topic(struct topic_reg *r, const char *name, int n)
{
	struct topic *tp = NULL;
	char err[256] = "";
	int rc = topic_create(r, name, n, NULL, NULL, 0, err, sizeof(err), &tp);

	ck_assert_msg(rc == 0, "topic_create %s: %d %s", name, rc, err);
	return tp;
}

/* Append nrec records to partition p of tp through the harness. */
static void produce(struct lt *t, struct topic *tp, int p, int nrec)
{
	t->log = topic_log(tp, p);
	lt_append_sync(t, nrec, 1700000000000LL);
	t->log = NULL;
}

START_TEST(test_render_partitions_and_groups)
{
	static const char odd_group[] = "we\"ird\\group\nname";
	struct lt t;
	struct broker b;
	struct topic_reg *reg = NULL;
	struct offsets *ofs = NULL;
	struct topic *orders, *logs;
	struct mx x;
	char lab[256];

	lt_init(&t);
	broker_init(&b, t.base);
	ck_assert_int_eq(topic_reg_open(t.root, t.ctx, &t.cfg, &reg), 0);
	ck_assert_int_eq(ofs_open(t.root, t.ctx, &ofs), 0);
	orders = create_topic(reg, "orders", 2);
	logs = create_topic(reg, "logs", 1);
	produce(&t, orders, 1, 5);
	produce(&t, orders, 1, 3);
	produce(&t, logs, 0, 2);
	commit(&t, ofs, "billing", "orders", 1, 6);
	commit(&t, ofs, "billing", "orders", 0, 0);
	commit(&t, ofs, "billing", "ghost", 0, 4);   /* no such topic */
	commit(&t, ofs, "billing", "logs", 3, 1);    /* no such partition */
	commit(&t, ofs, odd_group, "logs", 0, 1);
	commit(&t, ofs, "ahead", "logs", 0, 50);     /* past the hw */
	b.topics = reg;
	b.offsets = ofs;
	render(&b, &x);

	mx_expect_family(&x, "brokerd_partition_log_start_offset", "gauge");
	mx_expect_family(&x, "brokerd_partition_high_watermark", "gauge");
	mx_expect_family(&x, "brokerd_partition_log_end_offset", "gauge");
	mx_expect_family(&x, "brokerd_partition_size_bytes", "gauge");
	mx_expect_family(&x, "brokerd_partition_segments", "gauge");
	mx_expect_family(&x, "brokerd_partition_read_only", "gauge");
	ck_assert_int_eq(x.f[mx_family_find(&x, "brokerd_partition_high_watermark")].nsamples, 3);
	ck_assert(mx_value(&x, "brokerd_partition_high_watermark", "topic=orders,partition=1") == 8);
	ck_assert(mx_value(&x, "brokerd_partition_log_end_offset", "topic=orders,partition=1") == 8);
	ck_assert(mx_value(&x, "brokerd_partition_log_start_offset", "topic=orders,partition=1") == 0);
	ck_assert(mx_value(&x, "brokerd_partition_high_watermark", "topic=orders,partition=0") == 0);
	ck_assert(mx_value(&x, "brokerd_partition_high_watermark", "topic=logs,partition=0") == 2);
	ck_assert(mx_value(&x, "brokerd_partition_size_bytes", "topic=orders,partition=1") ==
		  (double)log_size_bytes(topic_log(orders, 1)));
	ck_assert(mx_value(&x, "brokerd_partition_size_bytes", "topic=orders,partition=1") > 0);
	ck_assert(mx_value(&x, "brokerd_partition_segments", "topic=orders,partition=1") ==
		  log_segment_count(topic_log(orders, 1)));
	ck_assert(mx_value(&x, "brokerd_partition_read_only", "topic=orders,partition=1") == 0);

	mx_expect_family(&x, "brokerd_group_committed_offset", "gauge");
	mx_expect_family(&x, "brokerd_group_lag", "gauge");
	ck_assert(mx_value(&x, "brokerd_group_committed_offset",
			   "group=billing,topic=orders,partition=1") == 6);
	ck_assert(mx_value(&x, "brokerd_group_lag", "group=billing,topic=orders,partition=1") == 2);
	ck_assert(mx_value(&x, "brokerd_group_lag", "group=billing,topic=orders,partition=0") == 0);
	ck_assert(mx_value(&x, "brokerd_group_committed_offset",
			   "group=billing,topic=ghost,partition=0") == 4);
	ck_assert_ptr_null(mx_find(&x, "brokerd_group_lag", "group=billing,topic=ghost,partition=0"));
	ck_assert_ptr_null(mx_find(&x, "brokerd_group_lag", "group=billing,topic=logs,partition=3"));
	ck_assert(mx_value(&x, "brokerd_group_lag", "group=ahead,topic=logs,partition=0") == 0);
	/* The parser undid the escapes: the label is the group name again. */
	snprintf(lab, sizeof(lab), "group=%s,topic=logs,partition=0", odd_group);
	ck_assert(mx_value(&x, "brokerd_group_lag", lab) == 1);
	ck_assert(mx_value(&x, "brokerd_group_committed_offset", lab) == 1);
	mx_free(&x);

	/* Offsets without topics: committed offsets only, no lag. */
	b.topics = NULL;
	render(&b, &x);
	mx_expect_no_family(&x, "brokerd_partition_high_watermark");
	mx_expect_no_family(&x, "brokerd_group_lag");
	ck_assert(mx_value(&x, "brokerd_group_committed_offset",
			   "group=billing,topic=orders,partition=1") == 6);
	mx_free(&x);

	ck_assert_int_eq(ofs_close(ofs), 0);
	ck_assert_int_eq(topic_reg_close(reg), 0);
	lt_fini(&t);
}
END_TEST

/* --- HTTP over loopback ---------------------------------------------------------- */

struct http_resp {
	char *raw;
	size_t len;
	int status;
	const char *body;
	size_t body_len;
};

static void http_resp_free(struct http_resp *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

/* Send `req` to 127.0.0.1:port and read until the server closes, turning
 * the loop of `base` (which serves the admin port) in between. */
static void http_do(struct event_base *base, int port, const char *req,
		    struct http_resp *r)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	size_t sent = 0, n = strlen(req), cap = 1 << 16;
	int64_t t0 = lt_now_ms();
	bool eof = false;
	const char *hend;

	memset(r, 0, sizeof(*r));
	ck_assert_int_ge(fd, 0);
	ck_assert(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 || errno == EINPROGRESS);
	r->raw = malloc(cap + 1);
	ck_assert_ptr_nonnull(r->raw);
	while (!eof) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN | (sent < n ? POLLOUT : 0) };

		ck_assert_msg(lt_now_ms() - t0 < HTTP_WAIT_MS, "no response to: %s", req);
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (poll(&pfd, 1, 1) <= 0)
			continue;
		if (sent < n && (pfd.revents & POLLOUT)) {
			ssize_t w = send(fd, req + sent, n - sent, MSG_NOSIGNAL);
			ck_assert_msg(w > 0 || errno == EAGAIN, "send: %s", strerror(errno));
			sent += w > 0 ? (size_t)w : 0;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (r->len == cap) {
				cap *= 2;
				r->raw = realloc(r->raw, cap + 1);
				ck_assert_ptr_nonnull(r->raw);
			}
			ssize_t got = recv(fd, r->raw + r->len, cap - r->len, 0);
			ck_assert_msg(got >= 0 || errno == EAGAIN, "recv: %s", strerror(errno));
			if (got == 0)
				eof = true;
			r->len += got > 0 ? (size_t)got : 0;
		}
	}
	close(fd);
	r->raw[r->len] = '\0';
	ck_assert_msg(sscanf(r->raw, "HTTP/1.%*d %d ", &r->status) == 1, "status line: %s", r->raw);
	hend = strstr(r->raw, "\r\n\r\n");
	ck_assert_ptr_nonnull(hend);
	r->body = hend + 4;
	r->body_len = r->len - (size_t)(r->body - r->raw);
}

/* The value of header `name` (first occurrence), or NULL; into val. */
static const char *http_header(const struct http_resp *r, const char *name,
			       char *val, size_t vlen)
{
	size_t nlen = strlen(name);
	const char *p = strstr(r->raw, "\r\n");

	while (p != NULL && p + 2 < r->body) {
		const char *line = p + 2, *eol = strstr(line, "\r\n");

		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (*v == ' ')
				v++;
			snprintf(val, vlen, "%.*s", (int)(eol - v), v);
			return val;
		}
		p = eol;
	}
	return NULL;
}

/* Content-Length must be present and match the body (GET). */
static void expect_length_matches(const struct http_resp *r)
{
	char v[64];

	ck_assert_ptr_nonnull(http_header(r, "Content-Length", v, sizeof(v)));
	ck_assert_uint_eq(strtoull(v, NULL, 10), r->body_len);
}

static void expect_reply(const struct http_resp *r, int status, const char *type,
			 const char *body)
{
	char v[128];

	ck_assert_int_eq(r->status, status);
	ck_assert_ptr_nonnull(http_header(r, "Content-Type", v, sizeof(v)));
	ck_assert_str_eq(v, type);
	if (body != NULL) {
		ck_assert_uint_eq(r->body_len, strlen(body));
		ck_assert(memcmp(r->body, body, r->body_len) == 0);
	}
}

#define TEXT "text/plain; charset=utf-8"
#define PROM "text/plain; version=0.0.4; charset=utf-8"

struct http_fx {
	struct event_base *base;
	struct broker b;
	struct admin *a;
	int port;
};

static void http_fx_init(struct http_fx *fx)
{
	quiet();
	fx->base = event_base_new();
	ck_assert_ptr_nonnull(fx->base);
	broker_init(&fx->b, fx->base);
	ck_assert_int_eq(admin_new(&fx->b, &fx->a), 0);
	ck_assert_ptr_nonnull(fx->a);
	fx->port = admin_port(fx->a);
	ck_assert_int_gt(fx->port, 0);
}

static void http_fx_fini(struct http_fx *fx)
{
	admin_free(fx->a);
	event_base_free(fx->base);
}

static void get(struct http_fx *fx, const char *method, const char *path,
		struct http_resp *r)
{
	char req[512];

	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
		 method, path);
	http_do(fx->base, fx->port, req, r);
}

START_TEST(test_http_healthz)
{
	struct http_fx fx;
	struct http_resp r;

	http_fx_init(&fx);
	get(&fx, "GET", "/healthz", &r);
	expect_reply(&r, 200, TEXT, "ok\n");
	expect_length_matches(&r);
	http_resp_free(&r);

	get(&fx, "HEAD", "/healthz", &r);
	expect_reply(&r, 200, TEXT, "");
	http_resp_free(&r);

	fx.b.stopping = true;
	get(&fx, "GET", "/healthz", &r);
	expect_reply(&r, 503, TEXT, "shutting down\n");
	http_resp_free(&r);
	get(&fx, "HEAD", "/healthz", &r);
	expect_reply(&r, 503, TEXT, "");
	http_resp_free(&r);
	http_fx_fini(&fx);
}
END_TEST

START_TEST(test_http_metrics)
{
	struct http_fx fx;
	struct http_resp r;
	struct mx x;
	char v[64];

	http_fx_init(&fx);
	fx.b.met.requests[16 - MET_OP_FIRST] = 42;
	hist_add(&fx.b.met.produce_us, 777);
	get(&fx, "GET", "/metrics", &r);
	expect_reply(&r, 200, PROM, NULL);
	expect_length_matches(&r);
	mx_parse(&x, r.body, r.body_len);
	ck_assert(mx_value(&x, "brokerd_requests_total", "op=produce") == 42);
	check_hist(&x, "brokerd_produce_latency_seconds", &fx.b.met.produce_us);
	mx_free(&x);
	http_resp_free(&r);

	/* A query string does not change the resource. */
	get(&fx, "GET", "/metrics?name%5B%5D=x", &r);
	expect_reply(&r, 200, PROM, NULL);
	http_resp_free(&r);

	/* HEAD: the headers of a GET, no body. */
	get(&fx, "HEAD", "/metrics", &r);
	expect_reply(&r, 200, PROM, "");
	ck_assert_ptr_nonnull(http_header(&r, "Content-Length", v, sizeof(v)));
	ck_assert_int_gt(atoi(v), 1000);
	http_resp_free(&r);

	/* Still 200 while stopping: scrapes see the shutdown. */
	fx.b.stopping = true;
	get(&fx, "GET", "/metrics", &r);
	expect_reply(&r, 200, PROM, NULL);
	http_resp_free(&r);
	http_fx_fini(&fx);
}
END_TEST

START_TEST(test_http_not_found)
{
	static const char *const paths[] = {
		"/", "/metric", "/metrics/", "/healthz/x", "/HEALTHZ", "/metricsx",
	};
	struct http_fx fx;
	struct http_resp r;

	http_fx_init(&fx);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		get(&fx, "GET", paths[i], &r);
		expect_reply(&r, 404, TEXT, "not found\n");
		http_resp_free(&r);
	}
	get(&fx, "POST", "/nope", &r);
	ck_assert_int_eq(r.status, 404);
	http_resp_free(&r);
	http_fx_fini(&fx);
}
END_TEST

START_TEST(test_http_method_not_allowed)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
	struct http_fx fx;
	struct http_resp r;
	char v[64];

	http_fx_init(&fx);
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		get(&fx, methods[i], "/metrics", &r);
		expect_reply(&r, 405, TEXT, "method not allowed\n");
		ck_assert_ptr_nonnull(http_header(&r, "Allow", v, sizeof(v)));
		ck_assert_str_eq(v, "GET, HEAD");
		http_resp_free(&r);
		get(&fx, methods[i], "/healthz", &r);
		ck_assert_int_eq(r.status, 405);
		http_resp_free(&r);
	}
	http_fx_fini(&fx);
}
END_TEST

/* A read-only partition turns /healthz to 503 naming it, and shows in
 * /metrics as brokerd_partition_read_only 1. */
START_TEST(test_http_read_only_partition)
{
	struct lt t;
	struct broker b;
	struct admin *a = NULL;
	struct topic_reg *reg = NULL;
	struct topic *orders;
	struct lt_app *p;
	struct http_resp r;
	struct mx x;
	char want[256];

	lt_init(&t);
	broker_init(&b, t.base);
	ck_assert_int_eq(topic_reg_open(t.root, t.ctx, &t.cfg, &reg), 0);
	orders = create_topic(reg, "orders", 4);
	b.topics = reg;
	ck_assert_int_eq(admin_new(&b, &a), 0);

	http_do(t.base, admin_port(a), "GET /healthz HTTP/1.0\r\n\r\n", &r);
	expect_reply(&r, 200, TEXT, "ok\n");
	http_resp_free(&r);

	lt_settle(&t);
	t.log = topic_log(orders, 3);
	lt_inject(&t, "log.fsync", 0, 1, -EIO);
	p = lt_append(&t, 2, 1700000000000LL, LOG_ACKS_ALL);
	LT_RUN_UNTIL(&t, p->calls > 0);
	ck_assert_int_lt(p->res, 0);
	ck_assert_int_ne(log_error(t.log), 0);
	t.log = NULL;

	http_do(t.base, admin_port(a), "GET /healthz HTTP/1.0\r\n\r\n", &r);
	snprintf(want, sizeof(want), "partition orders-3 is read-only: %s\n", strerror(EIO));
	expect_reply(&r, 503, TEXT, want);
	http_resp_free(&r);

	http_do(t.base, admin_port(a), "GET /metrics HTTP/1.0\r\n\r\n", &r);
	expect_reply(&r, 200, PROM, NULL);
	mx_parse(&x, r.body, r.body_len);
	ck_assert(mx_value(&x, "brokerd_partition_read_only", "topic=orders,partition=3") == 1);
	ck_assert(mx_value(&x, "brokerd_partition_read_only", "topic=orders,partition=2") == 0);
	mx_free(&x);
	http_resp_free(&r);

	admin_free(a);
	(void)topic_reg_close(reg); /* the failed log reports its error */
	lt_fini(&t);
}
END_TEST

/* --- binding ------------------------------------------------------------------------ */

START_TEST(test_bind_in_use)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	struct event_base *base;
	struct broker b;
	struct admin *a = (struct admin *)&b; /* must be reset to NULL */
	int fd;

	quiet();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	broker_init(&b, base);
	snprintf(b.cfg.admin_listen, sizeof(b.cfg.admin_listen), "127.0.0.1:%d",
		 ntohs(sin.sin_port));
	ck_assert_int_eq(admin_new(&b, &a), -EADDRINUSE);
	ck_assert_ptr_null(a);
	close(fd);
	event_base_free(base);
}
END_TEST

START_TEST(test_off_and_bad_address)
{
	struct event_base *base;
	struct broker b;
	struct admin *a = (struct admin *)&b;

	quiet();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	broker_init(&b, base);
	b.cfg.admin_enabled = false;
	snprintf(b.cfg.admin_listen, sizeof(b.cfg.admin_listen), "off");
	ck_assert_int_eq(admin_new(&b, &a), 0);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(admin_port(a), -1);
	admin_free(NULL);

	b.cfg.admin_enabled = true;
	snprintf(b.cfg.admin_listen, sizeof(b.cfg.admin_listen), "no-such-host:1");
	ck_assert_int_eq(admin_new(&b, &a), -EINVAL);
	ck_assert_ptr_null(a);
	event_base_free(base);
}
END_TEST

/* Two admins on port 0 get distinct ports; both serve. */
START_TEST(test_two_admins)
{
	struct http_fx fx;
	struct broker b2;
	struct admin *a2 = NULL;
	struct http_resp r;

	http_fx_init(&fx);
	broker_init(&b2, fx.base);
	b2.stopping = true;
	ck_assert_int_eq(admin_new(&b2, &a2), 0);
	ck_assert_int_ne(admin_port(a2), fx.port);
	get(&fx, "GET", "/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	http_resp_free(&r);
	http_do(fx.base, admin_port(a2), "GET /healthz HTTP/1.0\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 503);
	http_resp_free(&r);
	admin_free(a2);
	http_fx_fini(&fx);
}
END_TEST

Suite *admin_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *tc;

	tc = tcase_create("render");
	tcase_add_test(tc, test_render_counters);
	tcase_add_test(tc, test_render_histograms);
	tcase_add_test(tc, test_render_empty);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_render_partitions_and_groups);
	suite_add_tcase(s, tc);

	tc = tcase_create("http");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_http_healthz);
	tcase_add_test(tc, test_http_metrics);
	tcase_add_test(tc, test_http_not_found);
	tcase_add_test(tc, test_http_method_not_allowed);
	tcase_add_test(tc, test_http_read_only_partition);
	tcase_add_test(tc, test_two_admins);
	suite_add_tcase(s, tc);

	tc = tcase_create("bind");
	tcase_add_test(tc, test_bind_in_use);
	tcase_add_test(tc, test_off_and_bad_address);
	suite_add_tcase(s, tc);
	return s;
}
