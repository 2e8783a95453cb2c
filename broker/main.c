/* main — brokerd start-up, the reactor loop and shutdown.
 * Start-up: config, data-directory lock, io_uring, the topic registry (opens
 * and recovers every partition), the offsets store, the client listener and
 * the admin HTTP port.  Run: retention and recovery checkpoints on timers.
 * SIGTERM/SIGINT: stop accepting, answer what is in flight, flush every log,
 * write the clean checkpoints, exit 0.  A signal during start-up (recovery)
 * is held until ready, then handled so: recovery is finished, not cut, and
 * the next start is clean.  Signals after the loop are ignored (exit 0). */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/admin.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/failpoint.h"
#include "broker/log.h"
#include "broker/logging.h"
#include "broker/offsets.h"
#include "broker/server.h"
#include "broker/topic.h"
#include "broker/uring.h"
#include "broker/verify.h"

/* A graceful stop waits this long for in-flight requests, then closes. */
#define SHUTDOWN_GRACE_MS 10000

static void usage(FILE *f)
{
	fprintf(f,
		"usage: brokerd [-c FILE] [options]\n"
		"       brokerd [-c FILE] --verify [DATA_DIR]\n"
		"\n"
		"brokerd stores topics as segmented append-only logs written through io_uring.\n"
		"\n"
		"options:\n"
		"  -c, --config FILE      read settings from FILE (key = value lines)\n"
		"      --listen HOST:PORT override 'listen'\n"
		"      --data-dir DIR     override 'data.dir'\n"
		"      --log-level LEVEL  override 'log.level' (debug|info|warn|error)\n"
		"  -o, --set KEY=VALUE    override any configuration key\n"
		"      --verify           check every batch, CRC and index of the data\n"
		"                         directory (DATA_DIR or 'data.dir') offline, print\n"
		"                         each bad one; exit 0 clean, 1 corrupt, 2 error\n"
		"  -h, --help             this help, then every configuration key\n"
		"  -V, --version          print the version\n"
		"\n"
		"configuration keys (defaults in brackets):\n");
	config_print_help(f);
}

static int set_or_die(struct config *c, const char *key, const char *value)
{
	char err[512];

	if (config_set(c, key, value, err, sizeof(err)) < 0) {
		fprintf(stderr, "brokerd: command line: %s\n", err);
		exit(1);
	}
	return 0;
}

static bool verify_mode;

static void parse_args(struct config *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "set", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "verify", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = NULL;
	char err[512];
	int ch;

	/* First pass: the file; second pass: flags override it. */
	while ((ch = getopt_long(argc, argv, "c:o:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("brokerd %s\n", BROKERD_VERSION);
			exit(0);
		case 'v':
			verify_mode = true;
			break;
		case '?':
			usage(stderr);
			exit(2);
		default:
			break;
		}
	}
	/* brokerd --verify DATA_DIR: the one positional argument there is. */
	const char *verify_dir = verify_mode && optind + 1 == argc ? argv[optind++] : NULL;
	if (optind < argc) {
		fprintf(stderr, "brokerd: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	if (file != NULL && config_load(c, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "brokerd: %s\n", err);
		exit(1);
	}
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:o:hV", opts, NULL)) != -1) {
		char *eq;
		switch (ch) {
		case 'l':
			set_or_die(c, "listen", optarg);
			break;
		case 'd':
			set_or_die(c, "data.dir", optarg);
			break;
		case 'L':
			set_or_die(c, "log.level", optarg);
			break;
		case 'o':
			eq = strchr(optarg, '=');
			if (eq == NULL) {
				fprintf(stderr, "brokerd: --set needs KEY=VALUE, got '%s'\n", optarg);
				exit(2);
			}
			*eq = '\0';
			set_or_die(c, optarg, eq + 1);
			*eq = '=';
			break;
		default:
			break;
		}
	}
	if (verify_dir != NULL)
		set_or_die(c, "data.dir", verify_dir);
}

/* Lock the data directory so a second broker cannot open it. */
static int lock_data_dir(struct broker *b)
{
	char path[CONFIG_PATH_MAX + 16];

	if (mkdir(b->cfg.data_dir, 0755) < 0 && errno != EEXIST) {
		log_msg_errno(LOGL_ERROR, errno, "cannot create data directory %s", b->cfg.data_dir);
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/.lock", b->cfg.data_dir);
	b->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (b->lockfd < 0) {
		log_msg_errno(LOGL_ERROR, errno, "cannot open %s", path);
		return -errno;
	}
	if (flock(b->lockfd, LOCK_EX | LOCK_NB) < 0) {
		log_msg(LOGL_ERROR, "data directory %s is in use by another brokerd (lock %s held)",
			b->cfg.data_dir, path);
		return -EBUSY;
	}
	return 0;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void each_log(struct broker *b, void (*fn)(struct log *l))
{
	for (size_t i = 0; i < topic_reg_count(b->topics); i++) {
		struct topic *t = topic_reg_at(b->topics, i);
		for (int p = 0; p < topic_partitions(t); p++)
			fn(topic_log(t, p));
	}
}

static void retain(struct log *l)
{
	log_retention_run(l);
}

static void on_retention(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	each_log(b, retain);
	ofs_compact(b->offsets);
}

static void on_checkpoint(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	each_log(b, log_checkpoint);
}

struct purge {
	struct broker *b;
	char **gone;
	size_t n;
};

static void purge_topic(const char *topic, uint32_t p, const struct ofs_value *v, void *arg)
{
	struct purge *pg = arg;

	(void)p;
	(void)v;
	if (topic_find(pg->b->topics, topic) != NULL)
		return;
	for (size_t i = 0; i < pg->n; i++)
		if (strcmp(pg->gone[i], topic) == 0)
			return;
	pg->gone = realloc(pg->gone, (pg->n + 1) * sizeof(*pg->gone));
	if (pg->gone == NULL) {
		fprintf(stderr, "brokerd: out of memory\n");
		abort();
	}
	pg->gone[pg->n++] = xstrdup(topic);
}

static void purge_group(const char *group, size_t partitions, void *arg)
{
	struct purge *pg = arg;

	(void)partitions;
	ofs_each(pg->b->offsets, group, purge_topic, arg);
}

/* Offsets of topics deleted just before a crash (their tombstones were not
 * yet durable) are forgotten before anyone can re-create the topic. */
static void purge_deleted_offsets(struct broker *b)
{
	struct purge pg = { .b = b };

	ofs_each_group(b->offsets, purge_group, &pg);
	for (size_t i = 0; i < pg.n; i++) {
		log_msg(LOGL_INFO, "forgetting the committed offsets of deleted topic '%s'",
			pg.gone[i]);
		ofs_delete_topic(b->offsets, pg.gone[i]);
		free(pg.gone[i]);
	}
	free(pg.gone);
}

static void on_drained(void *arg)
{
	struct broker *b = arg;

	log_msg(LOGL_INFO, "every request answered");
	event_base_loopbreak(b->base);
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	log_msg(LOGL_WARN, "requests still in flight after %d ms; closing their connections",
		SHUTDOWN_GRACE_MS);
	event_base_loopbreak(b->base);
}

/* First signal: stop accepting and reading, answer what is in flight, then
 * leave the loop.  A second signal leaves at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;
	struct timeval tv = { SHUTDOWN_GRACE_MS / 1000, 0 };

	(void)what;
	if (b->stopping) {
		log_msg(LOGL_WARN, "signal %d again: stopping now", (int)sig);
		event_base_loopbreak(b->base);
		return;
	}
	log_msg(LOGL_INFO, "signal %d: shutting down", (int)sig);
	b->stopping = true;
	event_base_once(b->base, -1, EV_TIMEOUT, on_grace_over, b, &tv);
	srv_shutdown(b->srv, on_drained, b);
}

static struct event *add_timer(struct broker *b, int64_t ms, event_callback_fn fn)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	struct event *ev = event_new(b->base, -1, EV_PERSIST, fn, b);

	if (ev != NULL)
		event_add(ev, &tv);
	return ev;
}

int main(int argc, char **argv)
{
	struct broker b = { .lockfd = -1 };
	struct event *evs[4] = { NULL };
	struct timespec t0, t1;
	int rc, status = 1;

	config_defaults(&b.cfg);
	parse_args(&b.cfg, argc, argv);
	log_msg_level = b.cfg.log_level;
	if (verify_mode) {
		rc = verify_data_dir(b.cfg.data_dir, (uint32_t)b.cfg.max_batch_bytes, stdout);
		return rc < 0 ? 2 : rc;
	}
	if (b.cfg.max_batch_bytes > b.cfg.max_request_bytes) {
		log_msg(LOGL_ERROR, "max.batch.bytes (%lld) must not exceed max.request.bytes (%lld)",
			(long long)b.cfg.max_batch_bytes, (long long)b.cfg.max_request_bytes);
		return 1;
	}
	{
		char fperr[160];

		if (fp_arm_from_env(fperr, sizeof(fperr)) < 0) {
			log_msg(LOGL_ERROR, "%s", fperr);
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	sigset_t stopsigs;
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGINT);
	sigprocmask(SIG_BLOCK, &stopsigs, NULL); /* until the handlers exist */
	raise_fd_limit();
	b.start_wall_ms = broker_wall_ms();
	if (lock_data_dir(&b) < 0)
		return 1;
	b.base = event_base_new();
	if (b.base == NULL)
		return 1;
	rc = uring_new(b.base, (unsigned)b.cfg.io_uring_entries, &b.u);
	if (rc < 0)
		goto out;
	struct log_ctx_opts opts = {
		.max_open_segments = (int)b.cfg.max_open_segments,
		.max_batch_bytes = (uint32_t)b.cfg.max_batch_bytes,
		.fsync_hist = &b.met.fsync_us,
	};
	rc = log_ctx_new(b.u, &opts, &b.ctx);
	if (rc < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = topic_reg_open(b.cfg.data_dir, b.ctx, &b.cfg.topic_defaults, &b.topics);
	if (rc < 0)
		goto out;
	rc = ofs_open(b.cfg.data_dir, b.ctx, &b.offsets);
	if (rc < 0)
		goto out;
	purge_deleted_offsets(&b);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	size_t nparts = 0;
	for (size_t i = 0; i < topic_reg_count(b.topics); i++)
		nparts += (size_t)topic_partitions(topic_reg_at(b.topics, i));
	log_msg(LOGL_INFO, "brokerd %s: data directory %s, %zu topics, %zu partitions opened in %.1f ms",
		BROKERD_VERSION, b.cfg.data_dir, topic_reg_count(b.topics), nparts,
		(double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	rc = srv_new(&b, &b.srv);
	if (rc < 0)
		goto out;
	if (b.cfg.admin_enabled) {
		rc = admin_new(&b, &b.admin);
		if (rc < 0)
			goto out;
	}
	evs[0] = add_timer(&b, b.cfg.retention_check_interval_ms, on_retention);
	evs[1] = add_timer(&b, b.cfg.checkpoint_interval_ms, on_checkpoint);
	evs[2] = evsignal_new(b.base, SIGTERM, on_signal, &b);
	evs[3] = evsignal_new(b.base, SIGINT, on_signal, &b);
	for (int i = 2; i < 4; i++)
		if (evs[i] != NULL)
			event_add(evs[i], NULL);
	sigprocmask(SIG_UNBLOCK, &stopsigs, NULL);
	log_msg(LOGL_INFO, "ready: listening on %s (port %d)%s%s", b.cfg.listen, srv_port(b.srv),
		b.cfg.admin_enabled ? ", admin HTTP on " : "",
		b.cfg.admin_enabled ? b.cfg.admin_listen : "");
	event_base_dispatch(b.base);
	status = 0;
out:
	b.stopping = true;
	srv_free(b.srv);
	admin_free(b.admin);
	if (ofs_close(b.offsets) < 0)
		status = 1;
	if (topic_reg_close(b.topics) < 0)
		status = 1;
	for (int i = 0; i < 4; i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	/* Freeing the signal events restored the default action: a signal
	 * from now on (logs closed) must not turn a clean exit into a kill. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	log_ctx_free(b.ctx);
	uring_free(b.u);
	if (b.base != NULL)
		event_base_free(b.base);
	if (b.lockfd >= 0)
		close(b.lockfd);
	if (status == 0)
		log_msg(LOGL_INFO, "clean shutdown");
	return status;
}
