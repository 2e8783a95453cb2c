/* bench_log — storage benchmark of one partition log, without the network.
 * K appenders each keep exactly one batch in flight against a log in a fresh
 * directory (K = 1: one write [+ fdatasync] per append; K > 1: group commit)
 * until a byte or a time budget is spent, then one key=value line is printed.
 * Batches are encoded before timing and re-used (encoding is the client's
 * cost); log_open and log_close are not timed.  Bounded in count and time.
 */
#include <errno.h>
#include <event2/event.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/log.h"
#include "broker/logging.h"
#include "broker/uring.h"
#include "proto/batch.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#define BENCH_URING_ENTRIES 4096
#define BENCH_MAX_APPENDERS 65536
#define BENCH_GRACE_S       60 /* after --seconds: in-flight appends must finish */

struct bench;

/* One appender: its own batch buffer, lent to the log while an append is
 * in flight (log_append stamps the base offset into it). */
struct appender {
	struct log_append req;
	struct bench *b;
	uint8_t *buf;
	uint64_t t0_ns;
	bool busy;
};

struct opts {
	const char *parent;
	enum log_flush_mode mode;
	enum log_acks acks;
	size_t batch_bytes;
	int32_t record_size;
	uint64_t total_bytes;
	double seconds;
	int appenders;
	int64_t segment_bytes;
	int64_t flush_interval_ms;
	int64_t flush_bytes;
	bool keep;
};

struct bench {
	struct opts o;
	struct log *log;
	struct appender *ap;
	size_t batch_len;
	uint32_t batch_records;
	uint64_t t_start_ns, t_deadline_ns, t_last_ns;
	bool stop;        /* no new appends */
	int err;          /* first append failure */
	int outstanding;
	uint64_t issued_bytes;
	uint64_t done_batches, done_records, done_bytes;
	uint64_t *lat_ns; /* one sample per completed append */
	size_t nlat, lat_cap;
	bool hung;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: bench_log [options]\n"
"Append pre-built record batches to one partition log (no network) and print\n"
"one line: bench=log mode=... records_per_s=... MB_per_s=... p50_us=... p99_us=...\n"
"(MB = 10^6 bytes of batches as stored; latency = log_append to its callback).\n"
"\n"
"  --dir DIR             parent of the fresh data directory (default $TMPDIR\n"
"                        or /tmp); the data directory is removed at the end\n"
"  --mode M              flush.mode: always | interval | os (default always)\n"
"  --acks A              all | leader (default all)\n"
"  --batch-bytes N       pack records into batches of about N bytes (16k)\n"
"  --record-size N       value bytes per record, null key (default 100)\n"
"  --total-bytes N       stop after appending N bytes (default 1g)\n"
"  --seconds S           ... or after S seconds, whichever first (default 20)\n"
"  --appenders K         concurrent appenders, one append in flight each;\n"
"                        the next is issued from the completion (default 1)\n"
"  --segment-bytes N     segment.bytes (default 1g)\n"
"  --flush-interval-ms N interval mode: the bench's timer calls log_checkpoint\n"
"                        this often (log.c has no interval timer) (1000)\n"
"  --flush-bytes N       interval mode: flush.bytes (default -1: off)\n"
"  --keep                do not remove the data directory\n"
"  -h, --help            this text\n"
"Sizes take a k/m/g suffix (binary).  Exit 0, 1 on a log failure or hang,\n"
"2 on bad usage.\n");
}

/* Parse "123", "16k", "1m", "1g" (binary multiples).  Returns 0 or -EINVAL. */
static int parse_size(const char *s, int64_t min, int64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	if (*s == '-' && strcmp(s, "-1") == 0 && min < 0) {
		*out = -1;
		return 0;
	}
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
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
	    (int64_t)(v * mul) < min)
		return -EINVAL;
	*out = (int64_t)(v * mul);
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "mode", required_argument, NULL, 'm' },
		{ "acks", required_argument, NULL, 'a' },
		{ "batch-bytes", required_argument, NULL, 'b' },
		{ "record-size", required_argument, NULL, 'r' },
		{ "total-bytes", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "appenders", required_argument, NULL, 'k' },
		{ "segment-bytes", required_argument, NULL, 'g' },
		{ "flush-interval-ms", required_argument, NULL, 'i' },
		{ "flush-bytes", required_argument, NULL, 'f' },
		{ "keep", no_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, li = -1;
	int64_t v;
	char *end;

	o->parent = getenv("TMPDIR");
	if (o->parent == NULL || *o->parent == '\0')
		o->parent = "/tmp";
	o->mode = LOG_FLUSH_ALWAYS;
	o->acks = LOG_ACKS_ALL;
	o->batch_bytes = 16384;
	o->record_size = 100;
	o->total_bytes = 1ull << 30;
	o->seconds = 20;
	o->appenders = 1;
	o->segment_bytes = 1ll << 30;
	o->flush_interval_ms = 1000;
	o->flush_bytes = -1;
	o->keep = false;

	while ((c = getopt_long(argc, argv, "h", lopts, &li)) != -1) {
		switch (c) {
		case 'd':
			o->parent = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "always") == 0)
				o->mode = LOG_FLUSH_ALWAYS;
			else if (strcmp(optarg, "interval") == 0)
				o->mode = LOG_FLUSH_INTERVAL;
			else if (strcmp(optarg, "os") == 0)
				o->mode = LOG_FLUSH_OS;
			else
				goto bad;
			break;
		case 'a':
			if (strcmp(optarg, "all") == 0)
				o->acks = LOG_ACKS_ALL;
			else if (strcmp(optarg, "leader") == 0)
				o->acks = LOG_ACKS_LEADER;
			else
				goto bad;
			break;
		case 'b':
			if (parse_size(optarg, BATCH_HEADER_SIZE, &v) < 0 || v > (1ll << 30))
				goto bad;
			o->batch_bytes = (size_t)v;
			break;
		case 'r':
			if (parse_size(optarg, 0, &v) < 0 || v > (1ll << 30))
				goto bad;
			o->record_size = (int32_t)v;
			break;
		case 't':
			if (parse_size(optarg, 1, &v) < 0)
				goto bad;
			o->total_bytes = (uint64_t)v;
			break;
		case 's':
			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || !(o->seconds > 0) || o->seconds > 86400)
				goto bad;
			break;
		case 'k':
			if (parse_size(optarg, 1, &v) < 0 || v > BENCH_MAX_APPENDERS)
				goto bad;
			o->appenders = (int)v;
			break;
		case 'g':
			if (parse_size(optarg, 4096, &v) < 0)
				goto bad;
			o->segment_bytes = v;
			break;
		case 'i':
			if (parse_size(optarg, 1, &v) < 0)
				goto bad;
			o->flush_interval_ms = v;
			break;
		case 'f':
			if (parse_size(optarg, -1, &v) < 0)
				goto bad;
			o->flush_bytes = v;
			break;
		case 'K':
			o->keep = true;
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
		fprintf(stderr, "bench_log: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "bench_log: bad value '%s' for --%s (see --help)\n", optarg,
		li >= 0 ? lopts[li].name : "?");
	return -EINVAL;
}

/* Fill `buf` with cheap non-repeating bytes (the disk sees no zero pages). */
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

/* Build one batch of `n` records (n = 0: as many as fit in batch_bytes, at
 * least one).  Returns 0 with *out owned (free()), *len and *count, or -errno. */
static int build_batch(const struct opts *o, uint32_t n, uint8_t **out, size_t *len,
		       uint32_t *count)
{
	struct batch_builder bb;
	uint8_t *value = malloc(o->record_size > 0 ? (size_t)o->record_size : 1);
	int64_t ts = (int64_t)time(NULL) * 1000;
	int rc = 0;

	if (value == NULL)
		return -ENOMEM;
	batch_builder_init(&bb);
	for (uint32_t i = 0; n == 0 || i < n; i++) {
		fill_value(value, (size_t)o->record_size, i);
		rc = batch_builder_add(&bb, ts, NULL, -1, value, o->record_size, NULL, 0);
		if (rc < 0)
			goto out;
		if (n == 0 && batch_builder_size(&bb) >= o->batch_bytes)
			break;
	}
	*count = batch_builder_count(&bb);
	rc = batch_builder_finish(&bb, 0, out, len);
out:
	batch_builder_fini(&bb);
	free(value);
	return rc;
}

/* The batch every appender sends: the most records whose batch stays within
 * batch_bytes (one record if even that does not fit). */
static int make_template(const struct opts *o, uint8_t **out, size_t *len, uint32_t *count)
{
	int rc = build_batch(o, 0, out, len, count);

	if (rc == 0 && *len > o->batch_bytes && *count > 1) {
		uint32_t n = *count - 1;
		free(*out);
		rc = build_batch(o, n, out, len, count);
	}
	return rc;
}

static void lat_push(struct bench *b, uint64_t ns)
{
	if (b->nlat == b->lat_cap) {
		size_t ncap = b->lat_cap ? b->lat_cap * 2 : 65536;
		uint64_t *n = realloc(b->lat_ns, ncap * sizeof(*n));
		if (n == NULL)
			return; /* drop the sample rather than the run */
		b->lat_ns = n;
		b->lat_cap = ncap;
	}
	b->lat_ns[b->nlat++] = ns;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, c = *(const uint64_t *)y;

	return a < c ? -1 : a > c;
}

/* Nearest-rank percentile of the sorted samples, in us. */
static double lat_pct_us(const struct bench *b, double p)
{
	size_t i;

	if (b->nlat == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)b->nlat);
	if (i >= b->nlat)
		i = b->nlat - 1;
	return (double)b->lat_ns[i] / 1000.0;
}

static void on_appended(struct log_append *a, int res);

/* Issue the appender's next append unless a budget is spent. */
static void issue(struct appender *ap, uint64_t now)
{
	struct bench *b = ap->b;
	int rc;

	if (b->stop || b->err != 0)
		return;
	if (now >= b->t_deadline_ns ||
	    (b->issued_bytes > 0 && b->issued_bytes + b->batch_len > b->o.total_bytes)) {
		b->stop = true;
		return;
	}
	ap->req.buf = ap->buf;
	ap->req.len = b->batch_len;
	ap->req.acks = b->o.acks;
	ap->req.cb = on_appended;
	ap->req.arg = ap;
	ap->t0_ns = now;
	rc = log_append(b->log, &ap->req);
	if (rc < 0) {
		fprintf(stderr, "bench_log: log_append: %s\n", strerror(-rc));
		b->err = rc;
		b->stop = true;
		return;
	}
	ap->busy = true;
	b->outstanding++;
	b->issued_bytes += b->batch_len;
}

static void on_appended(struct log_append *a, int res)
{
	struct appender *ap = container_of(a, struct appender, req);
	struct bench *b = ap->b;
	uint64_t now = now_ns();

	ap->busy = false;
	b->outstanding--;
	b->t_last_ns = now;
	if (res < 0) {
		if (b->err == 0)
			fprintf(stderr, "bench_log: append completed with %s (log_error %d)\n",
				strerror(-res), log_error(b->log));
		b->err = b->err ? b->err : res;
		b->stop = true;
		return;
	}
	lat_push(b, now - ap->t0_ns);
	b->done_batches++;
	b->done_records += b->batch_records;
	b->done_bytes += a->len;
	issue(ap, now);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;

	(void)fd;
	(void)what;
	b->hung = true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "bench_log: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void rmtree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *mode_name(enum log_flush_mode m)
{
	return m == LOG_FLUSH_ALWAYS ? "always" : m == LOG_FLUSH_INTERVAL ? "interval" : "os";
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	struct event_base *base = NULL;
	struct event *ev_watchdog = NULL;
	struct uring *u = NULL;
	struct log_ctx *ctx = NULL;
	struct log_config cfg;
	struct log_ctx_opts copts = { 0 };
	uint8_t *tmpl = NULL;
	char *top = NULL, *dir = NULL;
	int rc, exit_code = 1, segments = 0;
	uint64_t t_close;
	double close_ms = 0;

	if (parse_args(argc, argv, &b.o) < 0)
		return 2;
	log_msg_level = LOGL_WARN;

	/* The batch pool: one buffer per appender, all copies of one batch
	 * (base_offset is outside the CRC, so every copy stays valid). */
	rc = make_template(&b.o, &tmpl, &b.batch_len, &b.batch_records);
	if (rc < 0) {
		fprintf(stderr, "bench_log: cannot build a batch: %s\n", strerror(-rc));
		return 1;
	}
	b.ap = calloc((size_t)b.o.appenders, sizeof(*b.ap));
	if (b.ap == NULL)
		goto oom;
	for (int i = 0; i < b.o.appenders; i++) {
		if (posix_memalign((void **)&b.ap[i].buf, 4096, b.batch_len) != 0)
			goto oom;
		memcpy(b.ap[i].buf, tmpl, b.batch_len);
		b.ap[i].b = &b;
	}

	if (asprintf(&top, "%s/bench_log.XXXXXX", b.o.parent) < 0)
		goto oom;
	if (mkdtemp(top) == NULL) {
		fprintf(stderr, "bench_log: cannot create a directory under %s: %s\n",
			b.o.parent, strerror(errno));
		free(top);
		top = NULL;
		goto out;
	}
	if (asprintf(&dir, "%s/p0", top) < 0)
		goto oom;

	base = event_base_new();
	if (base == NULL)
		goto oom;
	rc = uring_new(base, BENCH_URING_ENTRIES, &u);
	if (rc < 0) {
		fprintf(stderr, "bench_log: uring_new: %s\n", strerror(-rc));
		goto out;
	}
	copts.max_open_segments = 1024;
	copts.max_batch_bytes = b.batch_len > (8u << 20) ? (uint32_t)b.batch_len : 8u << 20;
	rc = log_ctx_new(u, &copts, &ctx);
	if (rc < 0)
		goto oom;
	log_config_defaults(&cfg);
	cfg.flush_mode = b.o.mode;
	cfg.segment_bytes = b.o.segment_bytes;
	cfg.flush_interval_ms = b.o.flush_interval_ms;
	cfg.flush_bytes = b.o.flush_bytes;
	cfg.retention_ms = -1;
	cfg.retention_bytes = -1;
	rc = log_open(ctx, dir, &cfg, LOG_OPEN_CREATE, &b.log);
	if (rc < 0) {
		fprintf(stderr, "bench_log: log_open %s: %s\n", dir, strerror(-rc));
		goto out;
	}

	{
		double w = b.o.seconds + BENCH_GRACE_S;
		struct timeval tv = { (time_t)w, (suseconds_t)((w - (double)(time_t)w) * 1e6) };
		ev_watchdog = evtimer_new(base, on_watchdog, &b);
		if (ev_watchdog == NULL || evtimer_add(ev_watchdog, &tv) < 0)
			goto oom;
	}

	b.t_start_ns = now_ns();
	b.t_last_ns = b.t_start_ns;
	b.t_deadline_ns = b.t_start_ns + (uint64_t)(b.o.seconds * 1e9);
	for (int i = 0; i < b.o.appenders; i++)
		issue(&b.ap[i], b.t_start_ns);
	while (b.outstanding > 0 && !b.hung) {
		if (event_base_loop(base, EVLOOP_ONCE) < 0) {
			fprintf(stderr, "bench_log: event_base_loop failed\n");
			b.err = b.err ? b.err : -EIO;
			break;
		}
	}
	if (b.hung) {
		fprintf(stderr, "bench_log: HANG: %d appends still outstanding %d s after the "
			"time budget (end %" PRId64 " hw %" PRId64 " durable %" PRId64
			" log_error %d, io_uring in flight %u)\n", b.outstanding, BENCH_GRACE_S,
			log_end_offset(b.log), log_high_watermark(b.log),
			log_durable_offset(b.log), log_error(b.log), uring_inflight(u));
		/* Neither log_close nor log_abandon would return: leave the log. */
		if (!b.o.keep)
			rmtree(top);
		return 1;
	}

	segments = log_segment_count(b.log);
	if (b.err == 0 && log_end_offset(b.log) != (int64_t)b.done_records) {
		fprintf(stderr, "bench_log: WRONG COUNT: log end offset %" PRId64
			" but %" PRIu64 " records were acknowledged\n",
			log_end_offset(b.log), b.done_records);
		b.err = -EPROTO;
	}
	t_close = now_ns();
	rc = log_close(b.log);
	b.log = NULL;
	close_ms = (double)(now_ns() - t_close) / 1e6;
	if (rc < 0) {
		fprintf(stderr, "bench_log: log_close: %s\n", strerror(-rc));
		b.err = b.err ? b.err : rc;
	}
	if (b.err != 0)
		goto out;

	double secs = (double)(b.t_last_ns - b.t_start_ns) / 1e9;
	if (secs <= 0)
		secs = 1e-9;
	qsort(b.lat_ns, b.nlat, sizeof(*b.lat_ns), cmp_u64);
	printf("bench=log mode=%s batch_bytes=%zu batch_len=%zu records_per_batch=%" PRIu32
	       " record_size=%" PRId32 " appenders=%d acks=%s records=%" PRIu64
	       " batches=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f records_per_s=%.0f"
	       " MB_per_s=%.1f appends_per_s=%.0f p50_us=%.1f p99_us=%.1f"
	       " segments=%d close_ms=%.1f\n",
	       mode_name(b.o.mode), b.o.batch_bytes, b.batch_len, b.batch_records,
	       b.o.record_size, b.o.appenders, b.o.acks == LOG_ACKS_ALL ? "all" : "leader",
	       b.done_records, b.done_batches, b.done_bytes, secs,
	       (double)b.done_records / secs, (double)b.done_bytes / secs / 1e6,
	       (double)b.done_batches / secs, lat_pct_us(&b, 50), lat_pct_us(&b, 99),
	       segments, close_ms);
	fflush(stdout);
	exit_code = 0;
	goto out;
oom:
	fprintf(stderr, "bench_log: out of memory\n");
out:
	if (b.log != NULL)
		log_abandon(b.log);
	if (ev_watchdog != NULL)
		event_free(ev_watchdog);
	log_ctx_free(ctx);
	uring_free(u);
	if (base != NULL)
		event_base_free(base);
	if (top != NULL && !b.o.keep)
		rmtree(top);
	free(dir);
	free(top);
	if (b.ap != NULL)
		for (int i = 0; i < b.o.appenders; i++)
			free(b.ap[i].buf);
	free(b.ap);
	free(tmpl);
	free(b.lat_ns);
	return exit_code;
}
