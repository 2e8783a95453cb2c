/* broker-bench — producer and consumer load generator for brokerd, in the
 * manner of kafka-producer-perf-test and Iggy's bench, built only on the
 * public client library: P threads each with its own bk_producer, C threads
 * each with its own bk_consumer on a share of the partitions.
 *
 * Invariants:
 *  1. Every value carries the send time (CLOCK_MONOTONIC ns, bytes 0-7) and
 *     a run tag with the record's sequence number (bytes 8-15), so that
 *     consumers measure end-to-end latency and count every record of this
 *     run once: missing and duplicated records are reported, never guessed.
 *  2. Every loop is bounded in count and in time (--duration plus a fixed
 *     grace to flush and drain); a stuck broker ends the run with exit 1.
 *
 * Exit status: 0 ok; 1 a delivery or consumer error, a lost or duplicated
 * record; 2 usage; 3 the broker could not be reached or refused the setup. */
#include <brokerd/client.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "tools/lathist.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

#define BB_MAX_THREADS  64
#define BB_STAMP_BYTES  16                      /* send time + tagged sequence */
#define BB_SEQ_BITS     40                      /* sequence; the run tag above */
#define BB_SEQ_MASK     ((1ull << BB_SEQ_BITS) - 1)
#define BB_GRACE_NS     (30ull * 1000000000ull) /* to flush, and again to drain */
#define BB_IDLE_NS      (2ull * 1000000000ull)  /* acks none: nothing more is coming */
#define BB_TICK_MS      100
#define BB_NOBUFS_NS    200000                  /* pause when buffer_memory is full */
#define NS              1000000000ull

/* The delivery callback's opaque packs the producer's index (top 8 bits)
 * with the send time in ns since t0 (56 bits: two years). */
_Static_assert(sizeof(void *) >= sizeof(uint64_t), "broker-bench needs 64-bit pointers");
#define BB_OPQ_SHIFT    56

/* --- options ------------------------------------------------------------------ */

static struct {
	const char *broker;
	const char *topic;
	bool create;
	int64_t partitions;          /* 0: the topic's (or broker's default) */
	uint64_t messages;
	bool messages_set;
	int32_t size;
	size_t batch_size;
	int linger_ms;
	int acks;
	int producers;
	int consumers;
	double rate;                 /* records/s over all producers; 0: flat out */
	double duration;             /* seconds */
	int64_t from;                /* BK_OFFSET_EARLIEST / LATEST */
	bool from_set;
	size_t buffer_memory;
	uint32_t fetch_max_bytes;
	uint32_t fetch_wait_ms;
	int timeout_ms;
	bool quiet;
} opt;

static const char usage_text[] =
	"usage: broker-bench [options]\n"
	"Producer and consumer load generator for brokerd (public client library only).\n"
	"Producers stamp CLOCK_MONOTONIC ns and a sequence number into the first 16\n"
	"bytes of each value; consumers measure end-to-end latency and count every\n"
	"record once (missing and duplicates reported).\n"
	"\n"
	"options (defaults):\n"
	"  --broker HOST:PORT     broker (127.0.0.1:9092, or $BROKERD_BROKER)\n"
	"  --topic T              topic (bench)\n"
	"  --create               create the topic with --partitions if it is missing\n"
	"  --partitions N         partitions for --create (the broker's default)\n"
	"  --messages N           records produced over all producers (1000000); with\n"
	"                         --producers 0, records to consume (default: up to\n"
	"                         the high watermarks seen at start)\n"
	"  --size BYTES           value size, at least 16 (100)\n"
	"  --batch-size BYTES     producer batch_size per partition (65536)\n"
	"  --linger-ms MS         producer linger_ms (5)\n"
	"  --acks all|leader|none producer acks (all)\n"
	"  --producers P          producer threads, each its own bk_producer (1)\n"
	"  --consumers C          consumer threads, each its own bk_consumer on\n"
	"                         partitions i, i+C, ... (0)\n"
	"  --rate R               total records/s, paced per producer (0: flat out)\n"
	"  --duration SECONDS     cap on producing or consuming (300); flushing and\n"
	"                         draining get 30 s more each\n"
	"  --from earliest|latest where consumers start (latest when producers run,\n"
	"                         else earliest)\n"
	"  --buffer-memory BYTES  producer buffer_memory (33554432)\n"
	"  --fetch-max-bytes N    consumer fetch_max_bytes (1048576)\n"
	"  --fetch-wait-ms MS     consumer fetch_max_wait_ms (500)\n"
	"  --timeout-ms MS        bound on connecting and each setup request (10000)\n"
	"  -q, --quiet            no progress lines\n"
	"  -h, --help             this help\n"
	"Sizes take k/m/g (binary).  MB = 10^6 bytes of values.\n"
	"\n"
	"Prints a progress line every second (stderr), a summary with records/s,\n"
	"MB/s, produce latency (send call to delivery callback) and end-to-end\n"
	"latency (send call to poll) p50/p95/p99/p99.9/max, then one line\n"
	"  broker-bench result=ok|fail key=value ...\n"
	"for scripts.  Exit status: 0 ok, 1 delivery or consumer errors, missing or\n"
	"duplicated records, 2 usage error, 3 broker unreachable or setup refused.\n";

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("broker-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / NS), (long)(t % NS) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Single-writer counters that other threads read: plain loads and stores,
 * no locked instruction on the hot path. */
static inline void cnt_add(_Atomic uint64_t *c, uint64_t d)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
			      memory_order_relaxed);
}

static inline uint64_t cnt_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* --- latency histograms (tools/lathist.h) --------------------------------------- */

static const double h_quantiles[] = { 0.50, 0.95, 0.99, 0.999, 1.0 };
static const char *const h_names[] = { "p50", "p95", "p99", "p999", "max" };
#define H_NQ (sizeof(h_quantiles) / sizeof(h_quantiles[0]))

static void h_print_human(const char *what, const struct hist *h)
{
	printf("  %-22s", what);
	if (h->count == 0) {
		printf(" no samples\n");
		return;
	}
	for (size_t i = 0; i < H_NQ; i++)
		printf(" %s %.0f", i == 3 ? "p99.9" : h_names[i], h_pct_us(h, h_quantiles[i]));
	printf(" us\n");
}

static void h_print_kv(const char *prefix, const struct hist *h)
{
	for (size_t i = 0; i < H_NQ; i++)
		printf(" %s_%s_us=%.1f", prefix, h_names[i], h_pct_us(h, h_quantiles[i]));
}

/* --- shared run state ------------------------------------------------------------ */

struct prod {
	/* written by the producer thread */
	alignas(64) _Atomic uint64_t sent;   /* accepted by bk_producer_send */
	_Atomic int done;
	uint64_t first_seq, count;           /* its share of the sequence space */
	uint64_t send_errors;                /* bk_producer_send refusals */
	int send_err;                        /* the first of them */
	bool stopped_by_time;
	bool stopped_by_error;               /* after a failed delivery */
	int idx;
	pthread_t tid;
	struct bk_producer *p;
	/* written by its I/O thread, in the delivery callback */
	alignas(64) _Atomic uint64_t delivered; /* callbacks run, ok or not */
	_Atomic uint64_t failed;
	_Atomic uint64_t last_ns;            /* time of the latest callback */
	int first_err;
	struct hist lat;                     /* send call to callback */
	int64_t *max_off;                    /* per partition, -1: none */
};

struct cons {
	/* written by the consumer thread */
	alignas(64) _Atomic uint64_t received; /* records of this run */
	_Atomic uint64_t bytes;              /* value bytes of every record */
	_Atomic int state;                   /* 0 setting up, 1 ready, 2 done, -1 failed */
	uint64_t foreign;                    /* records not from this run */
	uint64_t dups;
	uint64_t errors;
	int first_err;
	uint64_t first_ns, last_ns;
	bool timed_out;
	int idx;
	pthread_t tid;
	int32_t *parts;                      /* its partitions */
	int nparts;
	struct hist e2e;                     /* send call to poll */
};

static struct {
	uint32_t nparts;
	int64_t *hw;                         /* high watermarks at start */
	uint64_t t0;                         /* producers start */
	uint64_t run_tag;                    /* bits above BB_SEQ_BITS */
	struct prod *prods;
	struct cons *cons;
	_Atomic uint64_t *seen;              /* bitmap over the sequence space */
	bool check_seq;                      /* producers run: values are ours */
	bool measure_e2e;
	_Atomic int producers_done;          /* end[] is final */
	_Atomic uint64_t producers_done_ns;
	int64_t *end;                        /* per partition: max acked offset + 1 */
	_Atomic uint64_t taken;              /* consume-only with --messages */
	uint64_t produced_ok;                /* acked records (when producers_done) */
} run;

/* The first SIGINT/SIGTERM stops the producers and lets the consumers
 * drain what was acknowledged; the second stops the consumers too. */
static volatile sig_atomic_t interrupted;
static volatile sig_atomic_t aborted;   /* setup failed: every thread stops */

static void on_signal(int sig)
{
	(void)sig;
	if (interrupted < 2)
		interrupted++;
}

/* Set by the first failed delivery: the run has failed, so producers stop
 * sending rather than queue records that would time out as well. */
static _Atomic int delivery_failed;

static bool prod_stopping(void)
{
	return interrupted != 0 || aborted ||
	       atomic_load_explicit(&delivery_failed, memory_order_relaxed);
}

static bool cons_stopping(void)
{
	return interrupted >= 2 || (interrupted && opt.producers == 0) || aborted;
}

/* --- setup: topic ------------------------------------------------------------------ */

/* Exit 3 naming a failed setup call: the broker's refusal (with a hint
 * for a missing topic), else the lost connection. */
static void setup_failed(struct bk_admin *a, int rc, const char *what) __attribute__((noreturn));
static void setup_failed(struct bk_admin *a, int rc, const char *what)
{
	char msg[512];

	if (bk_err_code(rc) == 0)
		die(EXIT_UNREACHABLE, "lost the broker at %s: %s", opt.broker, bk_strerror(rc));
	snprintf(msg, sizeof(msg), "%s", bk_admin_errmsg(a));
	bk_admin_close(a);
	die(EXIT_UNREACHABLE, "%s: %s (%s)%s", what, msg, bk_error_name(bk_err_code(rc)),
	    rc == BK_ERR(BROKERD__ERROR_CODE__UNKNOWN_TOPIC) ? "; use --create" : "");
}

/* Create the topic (--create) and learn its partitions and high watermarks. */
static void setup_topic(void)
{
	struct bk_admin_conf conf;
	struct bk_admin *a = NULL;
	struct bk_topic_info *d = NULL;
	int rc;

	bk_admin_conf_init(&conf);
	conf.bootstrap = opt.broker;
	conf.client_id = "broker-bench";
	conf.request_timeout_ms = opt.timeout_ms;
	rc = bk_admin_new(&conf, &a);
	if (rc < 0)
		die(EXIT_UNREACHABLE, "cannot reach the broker at %s: %s", opt.broker, bk_strerror(rc));
	if (opt.create) {
		rc = bk_admin_create_topic(a, opt.topic, (int32_t)opt.partitions, NULL, 0, NULL);
		if (rc < 0 && rc != BK_ERR(BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS))
			setup_failed(a, rc, "create topic");
	}
	rc = bk_admin_describe_topic(a, opt.topic, &d);
	if (rc < 0)
		setup_failed(a, rc, "describe topic");
	bk_admin_close(a);
	run.nparts = (uint32_t)d->partition_count;
	if (run.nparts == 0) {
		bk_admin_free(d);
		die(EXIT_UNREACHABLE, "topic '%s' has no partitions", opt.topic);
	}
	if (opt.partitions > 0 && (uint32_t)opt.partitions != run.nparts)
		fprintf(stderr, "broker-bench: topic '%s' exists with %u partitions, not %" PRId64
			"; using %u\n", opt.topic, run.nparts, opt.partitions, run.nparts);
	run.hw = calloc(run.nparts, sizeof(*run.hw));
	run.end = calloc(run.nparts, sizeof(*run.end));
	if (run.hw == NULL || run.end == NULL)
		die(EXIT_FAILED, "out of memory");
	for (uint32_t p = 0; p < run.nparts; p++)
		run.hw[p] = d->partitions[p].high_watermark;
	bk_admin_free(d);
}

/* --- producers ----------------------------------------------------------------------- */

/* Delivery callback, on the producer's I/O thread (one per producer: every
 * field it writes has this single writer). */
static void on_delivery(void *opaque, int err, const char *topic, int32_t partition,
			int64_t offset)
{
	uint64_t v = (uint64_t)(uintptr_t)opaque, now = now_ns();
	struct prod *pr = &run.prods[v >> BB_OPQ_SHIFT];
	uint64_t sent_at = run.t0 + (v & ((1ull << BB_OPQ_SHIFT) - 1));

	(void)topic;
	if (err != 0) {
		if (pr->first_err == 0) {
			pr->first_err = err;
			atomic_store_explicit(&delivery_failed, 1, memory_order_relaxed);
		}
		cnt_add(&pr->failed, 1);
	} else {
		h_add(&pr->lat, now > sent_at ? now - sent_at : 0);
		if (partition >= 0 && (uint32_t)partition < run.nparts &&
		    offset > pr->max_off[partition])
			pr->max_off[partition] = offset;
	}
	atomic_store_explicit(&pr->last_ns, now, memory_order_relaxed);
	/* release: a reader that acquires `delivered` sees the fields above */
	atomic_fetch_add_explicit(&pr->delivered, 1, memory_order_release);
}

static void fill_pattern(uint8_t *buf, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
}

static void *producer_main(void *arg)
{
	struct prod *pr = arg;
	uint64_t deadline = run.t0 + (uint64_t)(opt.duration * 1e9), period = 0, flush_ms;
	uint8_t *buf = malloc((size_t)opt.size);
	struct bk_record rec = { 0 };
	uint64_t k;

	if (buf == NULL)
		die(EXIT_FAILED, "out of memory");
	fill_pattern(buf, (size_t)opt.size, (uint32_t)pr->idx);
	if (opt.rate > 0) {
		prctl(PR_SET_TIMERSLACK, 1UL);
		period = (uint64_t)(1e9 * opt.producers / opt.rate);
	}
	rec.topic = opt.topic;
	rec.partition = -1;
	rec.key_len = -1;
	rec.value = buf;
	rec.value_len = opt.size;
	for (k = 0; k < pr->count && !prod_stopping(); k++) {
		uint64_t now = now_ns(), seq = run.run_tag | (pr->first_seq + k), stamp;
		int rc;

		if (period != 0) {
			/* A late producer catches up at once: the schedule, not
			 * the previous send, sets the pace. */
			uint64_t sched = run.t0 + k * period;
			if (sched >= deadline)
				break;
			if (sched > now) {
				sleep_until(sched);
				now = now_ns();
			}
		}
		if (now >= deadline)
			break;
		stamp = now;
		memcpy(buf, &stamp, sizeof(stamp));
		memcpy(buf + 8, &seq, sizeof(seq));
		/* Produce latency counts from the first attempt: time spent
		 * waiting for buffer_memory is latency the application sees. */
		while ((rc = bk_producer_send(pr->p, &rec, on_delivery,
					      (void *)(uintptr_t)((uint64_t)pr->idx << BB_OPQ_SHIFT |
								  (stamp - run.t0)))) == -ENOBUFS) {
			uint64_t t = now_ns();
			if (prod_stopping() || t >= deadline)
				break;
			sleep_until(t + BB_NOBUFS_NS);
		}
		if (rc == -ENOBUFS)
			break;
		if (rc < 0) {
			pr->send_errors++;
			pr->send_err = rc;
			break; /* the same refusal would repeat for every record */
		}
		cnt_add(&pr->sent, 1);
	}
	if (k < pr->count && !prod_stopping() && pr->send_errors == 0)
		pr->stopped_by_time = true;
	if (k < pr->count && atomic_load_explicit(&delivery_failed, memory_order_relaxed))
		pr->stopped_by_error = true;
	{
		uint64_t now = now_ns(), until = (now > deadline ? now : deadline) + BB_GRACE_NS;
		flush_ms = (until - now) / 1000000;
	}
	bk_producer_flush(pr->p, (int)flush_ms);
	/* Records still pending fail with -ESHUTDOWN (bounded by
	 * delivery_timeout_ms); every callback has run when close returns. */
	bk_producer_close(pr->p);
	pr->p = NULL;
	free(buf);
	atomic_store_explicit(&pr->done, 1, memory_order_release);
	return NULL;
}

/* --- consumers ------------------------------------------------------------------------- */

static uint64_t total_received(void)
{
	uint64_t n = 0;

	for (int i = 0; i < opt.consumers; i++)
		n += cnt_get(&run.cons[i].received);
	return n;
}

/* Whether consumer cs has read everything it is to read. */
static bool cons_finished(struct cons *cs, struct bk_consumer *c, uint64_t now)
{
	if (opt.producers > 0) {
		uint64_t pd;

		if (!atomic_load_explicit(&run.producers_done, memory_order_acquire))
			return false;
		if (opt.acks == BK_ACKS_NONE) {
			/* No offsets come back: stop when every record sent
			 * arrived, or nothing arrived for a while. */
			pd = atomic_load_explicit(&run.producers_done_ns, memory_order_relaxed);
			if (total_received() >= run.produced_ok)
				return true;
			return now > (cs->last_ns > pd ? cs->last_ns : pd) + BB_IDLE_NS;
		}
	} else if (opt.messages_set) {
		return atomic_load_explicit(&run.taken, memory_order_relaxed) >= opt.messages;
	}
	for (int i = 0; i < cs->nparts; i++) {
		int32_t p = cs->parts[i];
		int64_t pos, target = opt.producers > 0 ? run.end[p] : run.hw[p];
		if (target <= 0)
			continue;
		if (bk_consumer_position(c, opt.topic, p, &pos) < 0 || pos < target)
			return false;
	}
	return true;
}

/* Account one record (sequence check when this run produced it, e2e
 * latency at `now` when measured). */
static void cons_record(struct cons *cs, const struct bk_record *r, uint64_t now)
{
	uint64_t stamp, seq;

	if (r->value_len < BB_STAMP_BYTES) {
		if (run.check_seq)
			cs->foreign++;
		else
			cnt_add(&cs->received, 1);
		return;
	}
	memcpy(&stamp, r->value, sizeof(stamp));
	memcpy(&seq, (const uint8_t *)r->value + 8, sizeof(seq));
	if (run.check_seq) {
		uint64_t s = seq & BB_SEQ_MASK, bit, old;
		if ((seq & ~BB_SEQ_MASK) != run.run_tag || s >= opt.messages) {
			cs->foreign++;
			return;
		}
		bit = 1ull << (s % 64);
		old = atomic_fetch_or_explicit(&run.seen[s / 64], bit, memory_order_relaxed);
		if (old & bit)
			cs->dups++;
	}
	if (run.measure_e2e && stamp <= now)
		h_add(&cs->e2e, now - stamp);
	cnt_add(&cs->received, 1);
}

static void *consumer_main(void *arg)
{
	struct cons *cs = arg;
	struct bk_consumer_conf conf;
	struct bk_consumer *c = NULL;
	uint64_t since_check = 0, hard;
	bool wait = false, unstamped = false;
	int rc;

	bk_consumer_conf_init(&conf);
	conf.bootstrap = opt.broker;
	conf.client_id = "broker-bench";
	conf.auto_offset_reset = BK_OFFSET_EARLIEST;
	conf.fetch_max_bytes = opt.fetch_max_bytes;
	conf.fetch_max_wait_ms = opt.fetch_wait_ms;
	conf.request_timeout_ms = (int)opt.fetch_wait_ms + opt.timeout_ms;
	rc = bk_consumer_new(&conf, &c);
	for (int i = 0; rc == 0 && i < cs->nparts; i++)
		rc = bk_consumer_assign(c, opt.topic, cs->parts[i], opt.from);
	if (rc < 0) {
		cs->first_err = rc;
		bk_consumer_close(c);
		atomic_store_explicit(&cs->state, -1, memory_order_release);
		return NULL;
	}
	atomic_store_explicit(&cs->state, 1, memory_order_release);
	/* The main thread starts the clock (and the producers) once every
	 * consumer is ready: wait for t0. */
	while (atomic_load_explicit(&run.producers_done, memory_order_acquire) == 0 &&
	       __atomic_load_n(&run.t0, __ATOMIC_ACQUIRE) == 0 && !cons_stopping())
		usleep(1000);
	hard = __atomic_load_n(&run.t0, __ATOMIC_ACQUIRE) + (uint64_t)(opt.duration * 1e9) +
	       (opt.producers > 0 ? 2 * BB_GRACE_NS : 0);
	/* Poll without waiting while records come; when none is at hand,
	 * note the time of the last one, check for the end, then wait. */
	while (!cons_stopping()) {
		struct bk_record r;
		uint64_t now;

		rc = bk_consumer_poll(c, wait ? BB_TICK_MS : 0, &r);
		if (rc == 1) {
			wait = false;
			if (opt.producers == 0 && opt.messages_set &&
			    atomic_fetch_add_explicit(&run.taken, 1, memory_order_relaxed) >=
				    opt.messages)
				break;
			now = run.measure_e2e || cs->first_ns == 0 ? now_ns() : 0;
			if (cs->first_ns == 0)
				cs->first_ns = now;
			cnt_add(&cs->bytes, r.value_len > 0 ? (uint64_t)r.value_len : 0);
			cons_record(cs, &r, now);
			unstamped = true;
			if (++since_check < 1024)
				continue;
		} else if (rc == 0) {
			wait = true;
		} else if (rc != -EINTR) {
			cs->errors++;
			if (cs->first_err == 0)
				cs->first_err = rc;
			if (rc != -ENOMEM)
				break; /* that partition stopped: its records cannot all come */
		}
		since_check = 0;
		now = now_ns();
		if (unstamped) {
			cs->last_ns = now;
			unstamped = false;
		}
		if (cons_finished(cs, c, now))
			break;
		if (opt.producers > 0 && atomic_load_explicit(&run.producers_done, memory_order_acquire)) {
			uint64_t drain = atomic_load_explicit(&run.producers_done_ns,
							      memory_order_relaxed) + BB_GRACE_NS;
			if (drain < hard)
				hard = drain;
		}
		if (now >= hard) {
			cs->timed_out = true;
			break;
		}
	}
	if (unstamped)
		cs->last_ns = now_ns();
	bk_consumer_close(c);
	atomic_store_explicit(&cs->state, 2, memory_order_release);
	return NULL;
}

/* --- the run ------------------------------------------------------------------------------ */

static void start_consumers(void)
{
	uint64_t deadline;

	for (int i = 0; i < opt.consumers; i++) {
		struct cons *cs = &run.cons[i];
		cs->idx = i;
		cs->parts = calloc(run.nparts / (uint32_t)opt.consumers + 1, sizeof(*cs->parts));
		if (cs->parts == NULL)
			die(EXIT_FAILED, "out of memory");
		for (uint32_t p = (uint32_t)i; p < run.nparts; p += (uint32_t)opt.consumers)
			cs->parts[cs->nparts++] = (int32_t)p;
		if (pthread_create(&cs->tid, NULL, consumer_main, cs) != 0)
			die(EXIT_FAILED, "cannot start a consumer thread");
	}
	/* Each assign is bounded by request_timeout_ms. */
	deadline = now_ns() + (uint64_t)(opt.timeout_ms + (int)opt.fetch_wait_ms) *
		   (run.nparts + 1) * 1000000ull;
	for (int i = 0; i < opt.consumers; i++) {
		int st;
		while ((st = atomic_load_explicit(&run.cons[i].state, memory_order_acquire)) == 0 &&
		       now_ns() < deadline)
			usleep(1000);
		if (st == 1)
			continue;
		aborted = 1; /* release the others */
		for (int j = 0; j < opt.consumers; j++)
			pthread_join(run.cons[j].tid, NULL);
		die(EXIT_UNREACHABLE, "consumer %d: cannot start on '%s': %s", i, opt.topic,
		    st == 0 ? "timed out" : bk_strerror(run.cons[i].first_err));
	}
}

/* Create the producers (they connect lazily); start_producers runs them. */
static void new_producers(void)
{
	uint64_t base = 0;

	for (int i = 0; i < opt.producers; i++) {
		struct prod *pr = &run.prods[i];
		struct bk_producer_conf conf;
		int rc;

		pr->idx = i;
		pr->first_seq = base;
		pr->count = opt.messages / (uint64_t)opt.producers +
			    ((uint64_t)i < opt.messages % (uint64_t)opt.producers);
		base += pr->count;
		pr->max_off = malloc(run.nparts * sizeof(*pr->max_off));
		if (pr->max_off == NULL)
			die(EXIT_FAILED, "out of memory");
		for (uint32_t p = 0; p < run.nparts; p++)
			pr->max_off[p] = -1;
		bk_producer_conf_init(&conf);
		conf.bootstrap = opt.broker;
		conf.client_id = "broker-bench";
		conf.acks = opt.acks;
		conf.batch_size = opt.batch_size;
		conf.linger_ms = opt.linger_ms;
		conf.buffer_memory = opt.buffer_memory;
		conf.request_timeout_ms = 15000;
		conf.delivery_timeout_ms = (int)(BB_GRACE_NS / 1000000);
		rc = bk_producer_new(&conf, &pr->p);
		if (rc < 0)
			die(EXIT_FAILED, "producer %d: %s", i, bk_strerror(rc));
	}
}

/* Start the producer threads; run.t0 is set. */
static void start_producers(void)
{
	for (int i = 0; i < opt.producers; i++)
		if (pthread_create(&run.prods[i].tid, NULL, producer_main, &run.prods[i]) != 0)
			die(EXIT_FAILED, "cannot start a producer thread");
}

struct totals {
	uint64_t sent, delivered, failed, received, bytes;
};

static void totals(struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < opt.producers; i++) {
		t->sent += cnt_get(&run.prods[i].sent);
		t->delivered += atomic_load_explicit(&run.prods[i].delivered, memory_order_relaxed);
		t->failed += cnt_get(&run.prods[i].failed);
	}
	for (int i = 0; i < opt.consumers; i++) {
		t->received += cnt_get(&run.cons[i].received);
		t->bytes += cnt_get(&run.cons[i].bytes);
	}
}

/* Producers finished: publish each partition's end (max acked offset + 1)
 * for the consumers' stop test. */
static void producers_finished(void)
{
	uint64_t ok = 0;

	for (int i = 0; i < opt.producers; i++) {
		struct prod *pr = &run.prods[i];
		pthread_join(pr->tid, NULL);
		(void)atomic_load_explicit(&pr->delivered, memory_order_acquire);
		ok += atomic_load_explicit(&pr->delivered, memory_order_relaxed) -
		      cnt_get(&pr->failed);
		for (uint32_t p = 0; p < run.nparts; p++)
			if (pr->max_off[p] + 1 > run.end[p])
				run.end[p] = pr->max_off[p] + 1;
	}
	run.produced_ok = ok;
	atomic_store_explicit(&run.producers_done_ns, now_ns(), memory_order_relaxed);
	atomic_store_explicit(&run.producers_done, 1, memory_order_release);
}

static void progress(double secs, const struct totals *d, uint64_t inflight, double dt)
{
	fprintf(stderr, "broker-bench: %5.1f s:", secs);
	if (opt.producers > 0)
		fprintf(stderr, " produced %9.0f rec/s %7.1f MB/s, in-flight %" PRIu64 ";",
			(double)d->delivered / dt, (double)d->delivered * opt.size / dt / 1e6,
			inflight);
	if (opt.consumers > 0)
		fprintf(stderr, " consumed %9.0f rec/s %7.1f MB/s;", (double)d->received / dt,
			(double)d->bytes / dt / 1e6);
	fputc('\n', stderr);
}

/* Wait for every thread, printing a progress line each second. */
static void monitor(void)
{
	struct totals prev, cur, d;
	uint64_t t_prev = now_ns(), next = t_prev + NS;
	bool prod_done = opt.producers == 0;

	totals(&prev);
	for (;;) {
		bool cons_done = true;
		uint64_t now;

		if (!prod_done) {
			prod_done = true;
			for (int i = 0; i < opt.producers; i++)
				if (!atomic_load_explicit(&run.prods[i].done, memory_order_acquire))
					prod_done = false;
			if (prod_done)
				producers_finished();
		}
		for (int i = 0; i < opt.consumers; i++)
			if (atomic_load_explicit(&run.cons[i].state, memory_order_acquire) != 2)
				cons_done = false;
		if (prod_done && cons_done)
			break;
		usleep(BB_TICK_MS * 1000 / 2);
		now = now_ns();
		if (now < next)
			continue;
		totals(&cur);
		d = (struct totals){ 0, cur.delivered - prev.delivered, 0,
				     cur.received - prev.received, cur.bytes - prev.bytes };
		if (!opt.quiet)
			progress((double)(now - run.t0) / 1e9, &d, cur.sent - cur.delivered,
				 (double)(now - t_prev) / 1e9);
		prev = cur;
		t_prev = now;
		next += NS;
		if (next < now)
			next = now + NS;
	}
	for (int i = 0; i < opt.consumers; i++)
		pthread_join(run.cons[i].tid, NULL);
}

static const char *acks_name(int acks)
{
	return acks == BK_ACKS_ALL ? "all" : acks == BK_ACKS_LEADER ? "leader" : "none";
}

/* Summary and the machine-readable line.  Returns the exit status. */
static int report(void)
{
	struct hist *lat = calloc(1, sizeof(*lat)), *e2e = calloc(1, sizeof(*e2e));
	uint64_t sent = 0, delivered = 0, failed = 0, send_errors = 0, last = run.t0;
	uint64_t received = 0, bytes = 0, foreign = 0, dups = 0, cerrors = 0, unique = 0;
	uint64_t missing = 0, c_first = UINT64_MAX, c_last = 0;
	int first_err = 0, cons_err = 0;
	bool by_time = false, by_error = false, timed_out = false, ok;
	double psecs = 0, csecs = 0, prate = 0, pmb = 0, crate = 0, cmb = 0;

	if (lat == NULL || e2e == NULL)
		die(EXIT_FAILED, "out of memory");
	for (int i = 0; i < opt.producers; i++) {
		struct prod *pr = &run.prods[i];
		sent += cnt_get(&pr->sent);
		delivered += cnt_get(&pr->delivered);
		failed += cnt_get(&pr->failed);
		send_errors += pr->send_errors;
		if (first_err == 0)
			first_err = pr->first_err ? pr->first_err : pr->send_err;
		by_time |= pr->stopped_by_time;
		by_error |= pr->stopped_by_error;
		if (cnt_get(&pr->last_ns) > last)
			last = cnt_get(&pr->last_ns);
		h_merge(lat, &pr->lat);
	}
	for (int i = 0; i < opt.consumers; i++) {
		struct cons *cs = &run.cons[i];
		received += cnt_get(&cs->received);
		bytes += cnt_get(&cs->bytes);
		foreign += cs->foreign;
		dups += cs->dups;
		cerrors += cs->errors;
		if (cons_err == 0)
			cons_err = cs->first_err;
		timed_out |= cs->timed_out;
		if (cs->first_ns != 0 && cs->first_ns < c_first)
			c_first = cs->first_ns;
		if (cs->last_ns > c_last)
			c_last = cs->last_ns;
		h_merge(e2e, &cs->e2e);
	}
	if (opt.producers > 0 && last > run.t0) {
		psecs = (double)(last - run.t0) / 1e9;
		prate = (double)(delivered - failed) / psecs;
		pmb = prate * opt.size / 1e6;
	}
	if (c_last > 0) {
		/* From the clock's start when producing too (the consumers wait
		 * for the producers), else from the first record. */
		uint64_t from = opt.producers > 0 ? run.t0 : c_first;
		csecs = (double)(c_last - from) / 1e9;
		if (csecs > 0) {
			crate = (double)(received + foreign) / csecs;
			cmb = (double)bytes / csecs / 1e6;
		}
	}
	if (run.check_seq && opt.consumers > 0) {
		for (uint64_t w = 0; w < (opt.messages + 63) / 64; w++)
			unique += (uint64_t)__builtin_popcountll(atomic_load_explicit(&run.seen[w],
										 memory_order_relaxed));
		missing = sent - failed > unique ? sent - failed - unique : 0;
	}

	printf("broker-bench: topic '%s', %u partitions, %d producer(s), %d consumer(s)",
	       opt.topic, run.nparts, opt.producers, opt.consumers);
	if (opt.producers > 0) {
		printf(", %d B values, acks=%s, batch %zu B, linger %d ms, ", opt.size,
		       acks_name(opt.acks), opt.batch_size, opt.linger_ms);
		if (opt.rate > 0)
			printf("%.0f records/s\n", opt.rate);
		else
			printf("no rate limit\n");
	} else {
		printf(", from %s\n", opt.from == BK_OFFSET_EARLIEST ? "earliest" : "latest");
	}
	if (opt.producers > 0) {
		printf("produced %" PRIu64 " of %" PRIu64 " records in %.2f s: %.0f records/s, "
		       "%.1f MB/s; %" PRIu64 " delivery errors%s\n",
		       delivered - failed, opt.messages, psecs, prate, pmb, failed + send_errors,
		       by_time ? " (stopped by --duration)" :
		       by_error ? " (stopped at the first one)" : "");
		if (first_err != 0)
			printf("  first error: %s\n", bk_strerror(first_err));
		h_print_human("produce latency:", lat);
	}
	if (opt.consumers > 0) {
		printf("consumed %" PRIu64 " records in %.2f s: %.0f records/s, %.1f MB/s",
		       received, csecs, crate, cmb);
		if (run.check_seq)
			printf("; %" PRIu64 " missing, %" PRIu64 " duplicates", missing, dups);
		printf(", %" PRIu64 " errors%s\n", cerrors, timed_out ? " (timed out)" : "");
		if (foreign > 0)
			printf("  %" PRIu64 " records not from this run (another writer?)\n", foreign);
		if (cons_err != 0)
			printf("  first error: %s\n", bk_strerror(cons_err));
		if (run.measure_e2e)
			h_print_human("end-to-end latency:", e2e);
	}
	ok = failed == 0 && send_errors == 0 && cerrors == 0 && missing == 0 && dups == 0 &&
	     !interrupted && !(opt.consumers > 0 && timed_out) &&
	     !(opt.producers == 0 && opt.messages_set && received < opt.messages);
	if (interrupted)
		printf("interrupted%s\n", interrupted > 1 ? " twice: consumers did not drain" : "");
	/* consume only: the mean value size of what was read */
	if (opt.producers == 0)
		opt.size = received + foreign > 0 ? (int32_t)(bytes / (received + foreign)) : 0;
	printf("broker-bench result=%s topic=%s partitions=%u producers=%d consumers=%d size=%d "
	       "acks=%s batch_size=%zu linger_ms=%d rate=%.0f messages=%" PRIu64,
	       ok ? "ok" : interrupted ? "interrupted" : "fail", opt.topic, run.nparts,
	       opt.producers, opt.consumers, opt.size,
	       acks_name(opt.acks), opt.batch_size, opt.linger_ms, opt.rate,
	       opt.producers > 0 || opt.messages_set ? opt.messages : 0);
	if (opt.producers > 0) {
		printf(" sent=%" PRIu64 " produced=%" PRIu64 " produce_errors=%" PRIu64
		       " produce_s=%.3f produce_records_per_s=%.0f produce_MB_per_s=%.1f",
		       sent, delivered - failed, failed + send_errors, psecs, prate, pmb);
		h_print_kv("produce", lat);
	}
	if (opt.consumers > 0) {
		printf(" consumed=%" PRIu64 " foreign=%" PRIu64 " consume_errors=%" PRIu64
		       " consume_s=%.3f consume_records_per_s=%.0f consume_MB_per_s=%.1f",
		       received, foreign, cerrors, csecs, crate, cmb);
		if (run.check_seq)
			printf(" missing=%" PRIu64 " duplicates=%" PRIu64, missing, dups);
		if (run.measure_e2e)
			h_print_kv("e2e", e2e);
	}
	printf("\n");
	fflush(stdout);
	free(lat);
	free(e2e);
	return ok ? 0 : EXIT_FAILED;
}

/* --- command line ------------------------------------------------------------------------- */

/* "16k" / "1m" / "1g" / plain -> value within [min, max]; exits 2 if bad. */
static int64_t parse_num(const char *s, int64_t min, int64_t max, const char *what)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *s == '-')
		goto bad;
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
		goto bad;
	return (int64_t)(v * mul);
bad:
	die(EXIT_USAGE, "%s needs a number from %" PRId64 " to %" PRId64 ", got '%s'", what, min,
	    max, s);
}

static double parse_real(const char *s, double min, double max, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min) || !(v <= max))
		die(EXIT_USAGE, "%s needs a number from %g to %g, got '%s'", what, min, max, s);
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "broker", required_argument, NULL, 'b' },
		{ "topic", required_argument, NULL, 't' },
		{ "create", no_argument, NULL, 'C' },
		{ "partitions", required_argument, NULL, 'P' },
		{ "messages", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "batch-size", required_argument, NULL, 'B' },
		{ "linger-ms", required_argument, NULL, 'l' },
		{ "acks", required_argument, NULL, 'a' },
		{ "producers", required_argument, NULL, 'p' },
		{ "consumers", required_argument, NULL, 'c' },
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "from", required_argument, NULL, 'f' },
		{ "buffer-memory", required_argument, NULL, 'M' },
		{ "fetch-max-bytes", required_argument, NULL, 'F' },
		{ "fetch-wait-ms", required_argument, NULL, 'w' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opt.broker = getenv("BROKERD_BROKER") != NULL ? getenv("BROKERD_BROKER") : "127.0.0.1:9092";
	opt.topic = "bench";
	opt.messages = 1000000;
	opt.size = 100;
	opt.batch_size = 65536;
	opt.linger_ms = 5;
	opt.acks = BK_ACKS_ALL;
	opt.producers = 1;
	opt.duration = 300;
	opt.buffer_memory = 33554432;
	opt.fetch_max_bytes = 1048576;
	opt.fetch_wait_ms = 500;
	opt.timeout_ms = 10000;
	while ((ch = getopt_long(argc, argv, "qh", lopts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			opt.broker = optarg;
			break;
		case 't':
			if (*optarg == '\0' || strlen(optarg) > 249)
				die(EXIT_USAGE, "--topic needs a name of 1 to 249 bytes");
			opt.topic = optarg;
			break;
		case 'C':
			opt.create = true;
			break;
		case 'P':
			opt.partitions = parse_num(optarg, 1, 100000, "--partitions");
			break;
		case 'n':
			opt.messages = (uint64_t)parse_num(optarg, 1, (int64_t)BB_SEQ_MASK, "--messages");
			opt.messages_set = true;
			break;
		case 's':
			opt.size = (int32_t)parse_num(optarg, BB_STAMP_BYTES, 64 << 20, "--size");
			break;
		case 'B':
			opt.batch_size = (size_t)parse_num(optarg, 1, INT32_MAX, "--batch-size");
			break;
		case 'l':
			opt.linger_ms = (int)parse_num(optarg, 0, 60000, "--linger-ms");
			break;
		case 'a':
			if (strcmp(optarg, "all") == 0)
				opt.acks = BK_ACKS_ALL;
			else if (strcmp(optarg, "leader") == 0)
				opt.acks = BK_ACKS_LEADER;
			else if (strcmp(optarg, "none") == 0)
				opt.acks = BK_ACKS_NONE;
			else
				die(EXIT_USAGE, "--acks must be all, leader or none, got '%s'", optarg);
			break;
		case 'p':
			opt.producers = (int)parse_num(optarg, 0, BB_MAX_THREADS, "--producers");
			break;
		case 'c':
			opt.consumers = (int)parse_num(optarg, 0, BB_MAX_THREADS, "--consumers");
			break;
		case 'r':
			opt.rate = parse_real(optarg, 0, 1e8, "--rate");
			break;
		case 'd':
			opt.duration = parse_real(optarg, 0.001, 86400, "--duration");
			break;
		case 'f':
			if (strcmp(optarg, "earliest") == 0)
				opt.from = BK_OFFSET_EARLIEST;
			else if (strcmp(optarg, "latest") == 0)
				opt.from = BK_OFFSET_LATEST;
			else
				die(EXIT_USAGE, "--from must be earliest or latest, got '%s'", optarg);
			opt.from_set = true;
			break;
		case 'M':
			opt.buffer_memory = (size_t)parse_num(optarg, 1, INT64_MAX, "--buffer-memory");
			break;
		case 'F':
			opt.fetch_max_bytes = (uint32_t)parse_num(optarg, 1, UINT32_MAX, "--fetch-max-bytes");
			break;
		case 'w':
			opt.fetch_wait_ms = (uint32_t)parse_num(optarg, 0, 60000, "--fetch-wait-ms");
			break;
		case 'T':
			opt.timeout_ms = (int)parse_num(optarg, 1, 3600000, "--timeout-ms");
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			die(EXIT_USAGE, "see broker-bench --help");
		}
	}
	if (optind != argc)
		die(EXIT_USAGE, "unexpected argument '%s' (see broker-bench --help)", argv[optind]);
	if (opt.producers == 0 && opt.consumers == 0)
		die(EXIT_USAGE, "nothing to do: --producers and --consumers are both 0");
	if (opt.rate > 0 && opt.producers == 0)
		die(EXIT_USAGE, "--rate needs producers");
	if (opt.rate > 0 && opt.rate < opt.producers)
		die(EXIT_USAGE, "--rate must give each producer at least 1 record/s");
	if (!opt.from_set)
		opt.from = opt.producers > 0 ? BK_OFFSET_LATEST : BK_OFFSET_EARLIEST;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int status;

	parse_args(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	setup_topic();
	if (opt.consumers > 0 && (uint32_t)opt.consumers > run.nparts) {
		fprintf(stderr, "broker-bench: %d consumers for %u partitions: using %u\n",
			opt.consumers, run.nparts, run.nparts);
		opt.consumers = (int)run.nparts;
	}
	run.prods = aligned_alloc(64, sizeof(*run.prods) * (size_t)(opt.producers + 1));
	run.cons = aligned_alloc(64, sizeof(*run.cons) * (size_t)(opt.consumers + 1));
	if (run.prods == NULL || run.cons == NULL)
		die(EXIT_FAILED, "out of memory");
	memset(run.prods, 0, sizeof(*run.prods) * (size_t)(opt.producers + 1));
	memset(run.cons, 0, sizeof(*run.cons) * (size_t)(opt.consumers + 1));
	run.check_seq = opt.producers > 0;
	/* Old records carry stale stamps: e2e only for records sent now. */
	run.measure_e2e = opt.producers > 0 || opt.from == BK_OFFSET_LATEST;
	if (run.check_seq && opt.consumers > 0) {
		run.seen = calloc((opt.messages + 63) / 64, sizeof(*run.seen));
		if (run.seen == NULL)
			die(EXIT_FAILED, "out of memory for the %" PRIu64 "-record bitmap",
			    opt.messages);
	}
	{
		uint64_t r = now_ns() ^ ((uint64_t)getpid() << 20);
		r ^= r >> 33;
		r *= 0xff51afd7ed558ccdull;
		r ^= r >> 33;
		run.run_tag = (r | 1) << BB_SEQ_BITS;
	}

	if (opt.consumers > 0)
		start_consumers();
	new_producers();
	/* Consumers are in place (at the latest offset by default): start the
	 * clock, then the producers. */
	__atomic_store_n(&run.t0, now_ns(), __ATOMIC_RELEASE);
	start_producers();
	monitor();
	status = report();
	for (int i = 0; i < opt.producers; i++)
		free(run.prods[i].max_off);
	for (int i = 0; i < opt.consumers; i++)
		free(run.cons[i].parts);
	free(run.prods);
	free(run.cons);
	free((void *)run.seen);
	free(run.hw);
	free(run.end);
	return status;
}
