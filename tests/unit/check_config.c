/* check_config — the config module: defaults, file syntax, every value
 * type with its suffixes and limits, error messages naming path:line and
 * key, overrides, topic keys, and broker.conf.example staying in step with
 * the descriptor table.  Each test writes its files in a fresh temp dir. */
#include "broker/config.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"
#include "broker/logging.h"
#include "tests/unit/testutil.h"

Suite *config_suite(void); /* called by the runner (tests/unit/runner.c) */

#define KiB (INT64_C(1) << 10)
#define MiB (INT64_C(1) << 20)
#define GiB (INT64_C(1) << 30)
#define DAY_MS (INT64_C(86400000))

static char *tmpdir;
static char path[4200];
static char err[8192];

static void setup(void)
{
	tmpdir = tu_mkdtemp();
	ck_assert_ptr_nonnull(tmpdir);
	snprintf(path, sizeof(path), "%s/broker.conf", tmpdir);
	err[0] = '\0';
}

static void teardown(void)
{
	tu_rmtree(tmpdir);
	free(tmpdir);
	tmpdir = NULL;
}

/* Write `text` to `path` (replacing it). */
static void write_conf(const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* Load `text` on top of the defaults into *c; returns config_load's rc. */
static int load_text(struct config *c, const char *text)
{
	config_defaults(c);
	write_conf(text);
	return config_load(c, path, err, sizeof(err));
}

/* Expect err == "<path>:<line>: <rest>". */
static void expect_err_at(int line, const char *rest)
{
	char want[8192];

	snprintf(want, sizeof(want), "%s:%d: %s", path, line, rest);
	ck_assert_str_eq(err, want);
}

static void expect_log_config_eq(const struct log_config *a,
				 const struct log_config *b)
{
	ck_assert_int_eq(a->segment_bytes, b->segment_bytes);
	ck_assert_int_eq(a->segment_ms, b->segment_ms);
	ck_assert_int_eq(a->retention_ms, b->retention_ms);
	ck_assert_int_eq(a->retention_bytes, b->retention_bytes);
	ck_assert_int_eq(a->flush_mode, b->flush_mode);
	ck_assert_int_eq(a->flush_interval_ms, b->flush_interval_ms);
	ck_assert_int_eq(a->flush_bytes, b->flush_bytes);
	ck_assert_int_eq(a->index_interval_bytes, b->index_interval_bytes);
	ck_assert_int_eq(a->timestamp_after_max_ms, b->timestamp_after_max_ms);
}

/* Set one key on fresh defaults; returns config_set's rc. */
static int set1(struct config *c, const char *key, const char *value)
{
	config_defaults(c);
	return config_set(c, key, value, err, sizeof(err));
}

/* --- defaults ------------------------------------------------------------ */

START_TEST(test_defaults_broker)
{
	struct config c;

	config_defaults(&c);
	ck_assert_str_eq(c.listen, "127.0.0.1:9092");
	ck_assert_str_eq(c.admin_listen, "127.0.0.1:9644");
	ck_assert(c.admin_enabled);
	ck_assert_str_eq(c.data_dir, "./data");
	ck_assert_int_eq(c.log_level, LOGL_INFO);
	ck_assert_int_eq(c.max_connections, 10000);
	ck_assert_int_eq(c.max_request_bytes, 16 * MiB);
	ck_assert_int_eq(c.max_batch_bytes, 8 * MiB);
	ck_assert(!c.auto_create_topics);
	ck_assert_int_eq(c.default_partitions, 1);
	ck_assert_int_eq(c.idle_timeout_ms, 600000);
	ck_assert_int_eq(c.io_uring_entries, 4096);
	ck_assert_int_eq(c.max_open_segments, 1024);
	ck_assert_int_eq(c.checkpoint_interval_ms, 60000);
	ck_assert_int_eq(c.retention_check_interval_ms, 60000);
}
END_TEST

START_TEST(test_defaults_topic)
{
	struct config c;
	const struct log_config *t = &c.topic_defaults;

	config_defaults(&c);
	ck_assert_int_eq(t->segment_bytes, GiB);
	ck_assert_int_eq(t->segment_ms, 7 * DAY_MS);
	ck_assert_int_eq(t->retention_ms, 7 * DAY_MS);
	ck_assert_int_eq(t->retention_bytes, -1);
	ck_assert_int_eq(t->flush_mode, LOG_FLUSH_ALWAYS);
	ck_assert_int_eq(t->flush_interval_ms, 1000);
	ck_assert_int_eq(t->flush_bytes, -1);
	ck_assert_int_eq(t->index_interval_bytes, 4096);
}
END_TEST

/* The log module's own defaults and the config table must agree. */
START_TEST(test_defaults_match_log)
{
	struct config c;
	struct log_config lc;

	config_defaults(&c);
	memset(&lc, 0xa5, sizeof(lc));
	log_config_defaults(&lc);
	expect_log_config_eq(&c.topic_defaults, &lc);
}
END_TEST

/* --- file syntax ---------------------------------------------------------- */

START_TEST(test_load_full_file)
{
	struct config c;
	const struct log_config *t = &c.topic_defaults;

	ck_assert_int_eq(load_text(&c,
		"listen = 0.0.0.0:19092\n"
		"admin.listen = [::1]:19644\n"
		"data.dir = /var/lib/brokerd\n"
		"log.level = debug\n"
		"max.connections = 500\n"
		"max.request.bytes = 2MiB\n"
		"max.batch.bytes = 1M\n"
		"auto.create.topics = yes\n"
		"default.partitions = 3\n"
		"idle.timeout.ms = 30s\n"
		"io.uring.entries = 256\n"
		"max.open.segments = 64\n"
		"checkpoint.interval.ms = 5s\n"
		"retention.check.interval.ms = 2m\n"
		"segment.bytes = 64MiB\n"
		"segment.ms = 1h\n"
		"retention.ms = 3d\n"
		"retention.bytes = 10G\n"
		"flush.mode = interval\n"
		"flush.interval.ms = 250\n"
		"flush.bytes = 1MiB\n"
		"index.interval.bytes = 1KiB\n"), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(c.listen, "0.0.0.0:19092");
	ck_assert_str_eq(c.admin_listen, "[::1]:19644");
	ck_assert(c.admin_enabled);
	ck_assert_str_eq(c.data_dir, "/var/lib/brokerd");
	ck_assert_int_eq(c.log_level, LOGL_DEBUG);
	ck_assert_int_eq(c.max_connections, 500);
	ck_assert_int_eq(c.max_request_bytes, 2 * MiB);
	ck_assert_int_eq(c.max_batch_bytes, MiB);
	ck_assert(c.auto_create_topics);
	ck_assert_int_eq(c.default_partitions, 3);
	ck_assert_int_eq(c.idle_timeout_ms, 30000);
	ck_assert_int_eq(c.io_uring_entries, 256);
	ck_assert_int_eq(c.max_open_segments, 64);
	ck_assert_int_eq(c.checkpoint_interval_ms, 5000);
	ck_assert_int_eq(c.retention_check_interval_ms, 120000);
	ck_assert_int_eq(t->segment_bytes, 64 * MiB);
	ck_assert_int_eq(t->segment_ms, 3600000);
	ck_assert_int_eq(t->retention_ms, 3 * DAY_MS);
	ck_assert_int_eq(t->retention_bytes, 10 * GiB);
	ck_assert_int_eq(t->flush_mode, LOG_FLUSH_INTERVAL);
	ck_assert_int_eq(t->flush_interval_ms, 250);
	ck_assert_int_eq(t->flush_bytes, MiB);
	ck_assert_int_eq(t->index_interval_bytes, 1024);
}
END_TEST

START_TEST(test_load_comments_and_whitespace)
{
	struct config c;

	ck_assert_int_eq(load_text(&c,
		"# whole-line comment\n"
		"\n"
		"   \t\n"
		"   # indented comment = with equals\n"
		"\tmax.connections\t=\t77\t# trailing comment\n"
		"data.dir=/srv/a#b   # '#' without a blank before it is data\n"
		"log.level =warn\r\n"
		"default.partitions= 5"), 0); /* no final newline */
	ck_assert_int_eq(c.max_connections, 77);
	ck_assert_str_eq(c.data_dir, "/srv/a#b");
	ck_assert_int_eq(c.log_level, LOGL_WARN);
	ck_assert_int_eq(c.default_partitions, 5);
}
END_TEST

START_TEST(test_load_empty_file)
{
	struct config c, d;

	config_defaults(&d);
	ck_assert_int_eq(load_text(&c, ""), 0);
	ck_assert_str_eq(c.listen, d.listen);
	expect_log_config_eq(&c.topic_defaults, &d.topic_defaults);
}
END_TEST

START_TEST(test_load_keeps_unset_keys)
{
	struct config c;

	config_defaults(&c);
	c.max_connections = 1234;
	write_conf("default.partitions = 2\n");
	ck_assert_int_eq(config_load(&c, path, err, sizeof(err)), 0);
	ck_assert_int_eq(c.max_connections, 1234);
	ck_assert_int_eq(c.default_partitions, 2);
}
END_TEST

START_TEST(test_load_duplicate_later_wins)
{
	struct config c;

	ck_assert_int_eq(load_text(&c,
		"max.connections = 10\n"
		"max.connections = 20\n"), 0);
	ck_assert_int_eq(c.max_connections, 20);
}
END_TEST

START_TEST(test_load_error_leaves_config_unchanged)
{
	struct config c;

	config_defaults(&c);
	write_conf("max.connections = 5\nmax.connections = 0\n");
	ck_assert_int_eq(config_load(&c, path, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(c.max_connections, 10000);
}
END_TEST

START_TEST(test_load_missing_file)
{
	struct config c;
	char want[8192];

	config_defaults(&c);
	ck_assert_int_eq(config_load(&c, path, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_load_directory)
{
	struct config c;

	config_defaults(&c);
	ck_assert_int_lt(config_load(&c, tmpdir, err, sizeof(err)), 0);
	ck_assert_int_eq(strncmp(err, tmpdir, strlen(tmpdir)), 0);
}
END_TEST

START_TEST(test_load_unknown_key)
{
	struct config c;

	ck_assert_int_eq(load_text(&c,
		"# typo below\n"
		"\n"
		"segmnt.bytes = 1G\n"), -EINVAL);
	expect_err_at(3, "unknown key \"segmnt.bytes\"");
}
END_TEST

START_TEST(test_load_missing_equals)
{
	struct config c;

	ck_assert_int_eq(load_text(&c, "listen = 127.0.0.1:1\nlog.level debug\n"),
			 -EINVAL);
	expect_err_at(2, "missing \"=\" (expected \"key = value\")");
}
END_TEST

START_TEST(test_load_missing_key)
{
	struct config c;

	ck_assert_int_eq(load_text(&c, " = 5\n"), -EINVAL);
	expect_err_at(1, "missing key before \"=\"");
}
END_TEST

START_TEST(test_load_empty_value)
{
	struct config c;

	ck_assert_int_eq(load_text(&c, "\n\ndata.dir =   # nothing\n"), -EINVAL);
	expect_err_at(3, "data.dir: empty value");
}
END_TEST

START_TEST(test_load_line_too_long)
{
	struct config c;
	static char text[CONFIG_LINE_MAX + 64];
	size_t n;

	/* Exactly CONFIG_LINE_MAX bytes is accepted... */
	n = (size_t)snprintf(text, sizeof(text), "# ");
	memset(text + n, 'x', CONFIG_LINE_MAX - n);
	strcpy(text + CONFIG_LINE_MAX, "\n");
	ck_assert_int_eq(load_text(&c, text), 0);
	/* ...one more is not. */
	n = (size_t)snprintf(text, sizeof(text), "log.level = info\n# ");
	memset(text + n, 'x', CONFIG_LINE_MAX - 1);
	strcpy(text + n + CONFIG_LINE_MAX - 1, "\n");
	ck_assert_int_eq(load_text(&c, text), -EINVAL);
	expect_err_at(2, "line too long (more than 4096 bytes)");
}
END_TEST

/* Bad values of every type, each on line 2 of a file; the message must
 * name path, line, key and what is wrong. */
static const struct {
	const char *line;
	const char *msg;
} bad_values[] = {
	{ "segment.bytes = 12x",
	  "segment.bytes: \"12x\" is not a size (expected bytes, optionally "
	  "with K/M/G/KiB/MiB/GiB suffix)" },
	{ "segment.bytes = 1K",
	  "segment.bytes: \"1K\" is out of range (expected 4096..4294967295 "
	  "bytes)" },
	{ "segment.bytes = 4GiB",
	  "segment.bytes: \"4GiB\" is out of range (expected 4096..4294967295 "
	  "bytes)" },
	{ "segment.bytes = -1",
	  "segment.bytes: \"-1\" is out of range (expected 4096..4294967295 "
	  "bytes)" },
	{ "retention.bytes = 99999999999999999999",
	  "retention.bytes: \"99999999999999999999\" is out of range "
	  "(expected -1 or >= 0 bytes)" },
	{ "retention.bytes = 9999999999G",
	  "retention.bytes: \"9999999999G\" is out of range "
	  "(expected -1 or >= 0 bytes)" },
	{ "retention.bytes = -2",
	  "retention.bytes: \"-2\" is out of range (expected -1 or >= 0 bytes)" },
	{ "flush.bytes = 100",
	  "flush.bytes: \"100\" is out of range (expected -1 or >= 4096 bytes)" },
	{ "max.request.bytes = 16 MB",
	  "max.request.bytes: \"16 MB\" is not a size (expected bytes, "
	  "optionally with K/M/G/KiB/MiB/GiB suffix)" },
	{ "max.batch.bytes = K",
	  "max.batch.bytes: \"K\" is not a size (expected bytes, optionally "
	  "with K/M/G/KiB/MiB/GiB suffix)" },
	{ "max.connections = 0",
	  "max.connections: \"0\" is out of range (expected 1..1000000)" },
	{ "max.connections = 1000001",
	  "max.connections: \"1000001\" is out of range (expected 1..1000000)" },
	{ "max.connections = 10k",
	  "max.connections: \"10k\" is not an integer" },
	{ "max.connections = 12.5",
	  "max.connections: \"12.5\" is not an integer" },
	{ "default.partitions = 99999999999999999999",
	  "default.partitions: \"99999999999999999999\" is out of range "
	  "(expected 1..10000)" },
	{ "io.uring.entries = +8",
	  "io.uring.entries: \"+8\" is not an integer" },
	{ "retention.ms = 0",
	  "retention.ms: \"0\" is out of range (expected -1 or >= 1 ms)" },
	{ "retention.ms = 7w",
	  "retention.ms: \"7w\" is not a duration (expected milliseconds, "
	  "optionally with ms/s/m/h/d suffix)" },
	{ "retention.ms = 999999999999999999d",
	  "retention.ms: \"999999999999999999d\" is out of range "
	  "(expected -1 or >= 1 ms)" },
	{ "idle.timeout.ms = 8d",
	  "idle.timeout.ms: \"8d\" is out of range (expected 0..604800000 ms)" },
	{ "idle.timeout.ms = -1",
	  "idle.timeout.ms: \"-1\" is out of range (expected 0..604800000 ms)" },
	{ "checkpoint.interval.ms = 99",
	  "checkpoint.interval.ms: \"99\" is out of range "
	  "(expected 100..86400000 ms)" },
	{ "segment.ms = 366d",
	  "segment.ms: \"366d\" is out of range (expected 1..31536000000 ms)" },
	{ "auto.create.topics = maybe",
	  "auto.create.topics: \"maybe\" is not a boolean (expected "
	  "true/false, yes/no, on/off or 1/0)" },
	{ "auto.create.topics = true1",
	  "auto.create.topics: \"true1\" is not a boolean (expected "
	  "true/false, yes/no, on/off or 1/0)" },
	{ "flush.mode = sometimes",
	  "flush.mode: \"sometimes\" is not one of always|interval|os" },
	{ "log.level = verbose",
	  "log.level: \"verbose\" is not one of debug|info|warn|error" },
	{ "listen = 127.0.0.1",
	  "listen: \"127.0.0.1\" is not an address (expected IPv4:port, "
	  "[IPv6]:port or localhost:port)" },
	{ "listen = example.com:9092",
	  "listen: \"example.com:9092\" is not an address (expected IPv4:port, "
	  "[IPv6]:port or localhost:port)" },
	{ "listen = ::1:9092",
	  "listen: \"::1:9092\" is not an address (expected IPv4:port, "
	  "[IPv6]:port or localhost:port)" },
	{ "listen = [::1]9092",
	  "listen: \"[::1]9092\" is not an address (expected IPv4:port, "
	  "[IPv6]:port or localhost:port)" },
	{ "listen = 256.0.0.1:9092",
	  "listen: \"256.0.0.1:9092\" is not an address (expected IPv4:port, "
	  "[IPv6]:port or localhost:port)" },
	{ "listen = 127.0.0.1:9092x",
	  "listen: \"127.0.0.1:9092x\" is not an address (expected IPv4:port, "
	  "[IPv6]:port or localhost:port)" },
	{ "listen = 127.0.0.1:65536",
	  "listen: \"127.0.0.1:65536\": port must be 0..65535" },
	{ "listen = off",
	  "listen: \"off\" is not an address (expected IPv4:port, "
	  "[IPv6]:port or localhost:port)" },
	{ "admin.listen = nope",
	  "admin.listen: \"nope\" is not an address (expected IPv4:port, "
	  "[IPv6]:port or localhost:port, or off)" },
	{ "admin.listen =",
	  "admin.listen: empty value" },
};

START_TEST(test_load_bad_value)
{
	struct config c;
	char text[512];

	snprintf(text, sizeof(text), "log.level = info\n%s\nlisten = "
		 "127.0.0.1:1\n", bad_values[_i].line);
	ck_assert_int_eq(load_text(&c, text), -EINVAL);
	expect_err_at(2, bad_values[_i].msg);
}
END_TEST

/* --- value types ---------------------------------------------------------- */

START_TEST(test_bool_forms)
{
	static const char *const yes[] = { "true", "yes", "on", "1", "TRUE",
					   "Yes" };
	static const char *const no[] = { "false", "no", "off", "0", "OFF" };
	struct config c;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		ck_assert_int_eq(set1(&c, "auto.create.topics", yes[i]), 0);
		ck_assert(c.auto_create_topics);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		c.auto_create_topics = true;
		ck_assert_int_eq(config_set(&c, "auto.create.topics", no[i],
					    err, sizeof(err)), 0);
		ck_assert(!c.auto_create_topics);
	}
}
END_TEST

START_TEST(test_int_bounds)
{
	struct config c;

	ck_assert_int_eq(set1(&c, "max.connections", "1"), 0);
	ck_assert_int_eq(c.max_connections, 1);
	ck_assert_int_eq(set1(&c, "max.connections", "1000000"), 0);
	ck_assert_int_eq(c.max_connections, 1000000);
	ck_assert_int_eq(set1(&c, "io.uring.entries", "8"), 0);
	ck_assert_int_eq(c.io_uring_entries, 8);
	ck_assert_int_eq(set1(&c, "io.uring.entries", "7"), -EINVAL);
	ck_assert_int_eq(c.io_uring_entries, 4096);
	ck_assert_int_eq(set1(&c, "io.uring.entries", "32769"), -EINVAL);
}
END_TEST

START_TEST(test_size_suffixes)
{
	static const struct {
		const char *in;
		int64_t want;
	} cases[] = {
		{ "4096", 4096 }, { "8K", 8 * KiB }, { "8k", 8 * KiB },
		{ "8KiB", 8 * KiB }, { "8kib", 8 * KiB }, { "3M", 3 * MiB },
		{ "3m", 3 * MiB }, { "3MiB", 3 * MiB }, { "2G", 2 * GiB },
		{ "2g", 2 * GiB }, { "2GiB", 2 * GiB }, { "16 MiB", 16 * MiB },
		{ "4294967295", 4 * GiB - 1 },
	};
	struct config c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(set1(&c, "segment.bytes", cases[i].in) == 0,
			      "%s: %s", cases[i].in, err);
		ck_assert_int_eq(c.topic_defaults.segment_bytes, cases[i].want);
	}
}
END_TEST

START_TEST(test_size_minus_one)
{
	struct config c;

	ck_assert_int_eq(set1(&c, "retention.bytes", "-1"), 0);
	ck_assert_int_eq(c.topic_defaults.retention_bytes, -1);
	ck_assert_int_eq(set1(&c, "retention.bytes", "0"), 0);
	ck_assert_int_eq(c.topic_defaults.retention_bytes, 0);
	ck_assert_int_eq(set1(&c, "flush.bytes", "-1"), 0);
	ck_assert_int_eq(c.topic_defaults.flush_bytes, -1);
	ck_assert_int_eq(set1(&c, "flush.bytes", "-1K"), -EINVAL);
	ck_assert_int_eq(set1(&c, "max.request.bytes", "-1"), -EINVAL);
}
END_TEST

START_TEST(test_size_int32_field)
{
	struct config c;

	ck_assert_int_eq(set1(&c, "index.interval.bytes", "16MiB"), 0);
	ck_assert_int_eq(c.topic_defaults.index_interval_bytes, 16 * MiB);
	ck_assert_int_eq(set1(&c, "index.interval.bytes", "64"), 0);
	ck_assert_int_eq(c.topic_defaults.index_interval_bytes, 64);
	ck_assert_int_eq(set1(&c, "index.interval.bytes", "63"), -EINVAL);
	ck_assert_int_eq(set1(&c, "index.interval.bytes", "16777217"),
			 -EINVAL);
}
END_TEST

START_TEST(test_duration_suffixes)
{
	static const struct {
		const char *in;
		int64_t want;
	} cases[] = {
		{ "1500", 1500 }, { "1500ms", 1500 }, { "2s", 2000 },
		{ "3m", 180000 }, { "4h", 14400000 }, { "7d", 7 * DAY_MS },
		{ "7D", 7 * DAY_MS }, { "10 s", 10000 }, { "-1", -1 },
		{ "1", 1 },
	};
	struct config c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(set1(&c, "retention.ms", cases[i].in) == 0,
			      "%s: %s", cases[i].in, err);
		ck_assert_int_eq(c.topic_defaults.retention_ms, cases[i].want);
	}
}
END_TEST

START_TEST(test_duration_zero_allowed_where_min_zero)
{
	struct config c;

	ck_assert_int_eq(set1(&c, "idle.timeout.ms", "0"), 0);
	ck_assert_int_eq(c.idle_timeout_ms, 0);
	ck_assert_int_eq(set1(&c, "idle.timeout.ms", "7d"), 0);
	ck_assert_int_eq(c.idle_timeout_ms, 7 * DAY_MS);
	ck_assert_int_eq(set1(&c, "segment.ms", "0"), -EINVAL);
	ck_assert_int_eq(set1(&c, "segment.ms", "-1"), -EINVAL);
}
END_TEST

START_TEST(test_string_length)
{
	static char v[CONFIG_PATH_MAX + 1];
	struct config c;

	memset(v, 'd', CONFIG_PATH_MAX - 1);
	v[CONFIG_PATH_MAX - 1] = '\0';
	ck_assert_int_eq(set1(&c, "data.dir", v), 0);
	ck_assert_str_eq(c.data_dir, v);
	v[CONFIG_PATH_MAX - 1] = 'd';
	v[CONFIG_PATH_MAX] = '\0';
	ck_assert_int_eq(set1(&c, "data.dir", v), -EINVAL);
	ck_assert_str_eq(err, "data.dir: value is longer than 4095 bytes");
	ck_assert_str_eq(c.data_dir, "./data");
}
END_TEST

START_TEST(test_enum_values)
{
	struct config c;

	ck_assert_int_eq(set1(&c, "flush.mode", "interval"), 0);
	ck_assert_int_eq(c.topic_defaults.flush_mode, LOG_FLUSH_INTERVAL);
	ck_assert_int_eq(set1(&c, "flush.mode", "os"), 0);
	ck_assert_int_eq(c.topic_defaults.flush_mode, LOG_FLUSH_OS);
	ck_assert_int_eq(set1(&c, "flush.mode", "always"), 0);
	ck_assert_int_eq(c.topic_defaults.flush_mode, LOG_FLUSH_ALWAYS);
	ck_assert_int_eq(set1(&c, "log.level", "error"), 0);
	ck_assert_int_eq(c.log_level, LOGL_ERROR);
	ck_assert_int_eq(set1(&c, "log.level", "DEBUG"), 0);
	ck_assert_int_eq(c.log_level, LOGL_DEBUG);
}
END_TEST

START_TEST(test_address_forms)
{
	static const char *const ok[] = {
		"127.0.0.1:9092", "0.0.0.0:0", "10.1.2.3:65535",
		"localhost:9092", "[::1]:9092", "[::]:1",
		"[fe80::1:2:3:4]:80",
	};
	struct config c;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(set1(&c, "listen", ok[i]) == 0, "%s: %s", ok[i],
			      err);
		ck_assert_str_eq(c.listen, ok[i]);
	}
}
END_TEST

START_TEST(test_admin_off)
{
	struct config c;

	ck_assert_int_eq(set1(&c, "admin.listen", "off"), 0);
	ck_assert(!c.admin_enabled);
	ck_assert_str_eq(c.admin_listen, "off");
	ck_assert_int_eq(config_set(&c, "admin.listen", "[::1]:9644", err,
				    sizeof(err)), 0);
	ck_assert(c.admin_enabled);
	ck_assert_str_eq(c.admin_listen, "[::1]:9644");
}
END_TEST

START_TEST(test_addr_resolve)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

	ck_assert_int_eq(config_addr_resolve("localhost:9092", &ss, &len), 0);
	ck_assert_int_eq(len, sizeof(struct sockaddr_in));
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_int_eq(ntohs(sin->sin_port), 9092);
	ck_assert_int_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	ck_assert_int_eq(config_addr_resolve("[::1]:0", &ss, &len), 0);
	ck_assert_int_eq(len, sizeof(struct sockaddr_in6));
	ck_assert_int_eq(sin6->sin6_family, AF_INET6);
	ck_assert_int_eq(ntohs(sin6->sin6_port), 0);
	ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	ck_assert_int_eq(config_addr_resolve("off", &ss, &len), -EINVAL);
}
END_TEST

/* --- overrides ------------------------------------------------------------ */

START_TEST(test_set_overrides_file)
{
	struct config c;

	ck_assert_int_eq(load_text(&c, "listen = 127.0.0.1:1000\n"), 0);
	ck_assert_int_eq(config_set(&c, "listen", "127.0.0.1:2000", err,
				    sizeof(err)), 0);
	ck_assert_str_eq(c.listen, "127.0.0.1:2000");
	ck_assert_int_eq(config_set(&c, "segment.bytes", "8M", err,
				    sizeof(err)), 0);
	ck_assert_int_eq(c.topic_defaults.segment_bytes, 8 * MiB);
}
END_TEST

START_TEST(test_set_unknown_key)
{
	struct config c;

	ck_assert_int_eq(set1(&c, "no.such.key", "1"), -ENOENT);
	ck_assert_str_eq(err, "unknown key \"no.such.key\"");
}
END_TEST

START_TEST(test_set_bad_value_names_key)
{
	struct config c;

	ck_assert_int_eq(set1(&c, "max.connections", "lots"), -EINVAL);
	ck_assert_str_eq(err, "max.connections: \"lots\" is not an integer");
	ck_assert_int_eq(c.max_connections, 10000);
}
END_TEST

START_TEST(test_topic_set)
{
	struct log_config lc;

	memset(&lc, 0, sizeof(lc));
	ck_assert_int_eq(config_topic_set(&lc, "retention.ms", "1h", err,
					  sizeof(err)), 0);
	ck_assert_int_eq(lc.retention_ms, 3600000);
	ck_assert_int_eq(config_topic_set(&lc, "flush.mode", "os", err,
					  sizeof(err)), 0);
	ck_assert_int_eq(lc.flush_mode, LOG_FLUSH_OS);
	ck_assert_int_eq(config_topic_set(&lc, "segment.bytes", "1", err,
					  sizeof(err)), -EINVAL);
	ck_assert_int_eq(lc.segment_bytes, 0);
}
END_TEST

START_TEST(test_topic_set_rejects_broker_key)
{
	struct log_config lc;

	memset(&lc, 0, sizeof(lc));
	ck_assert_int_eq(config_topic_set(&lc, "max.connections", "5", err,
					  sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "max.connections: not a topic-level key "
			 "(broker-wide only)");
	ck_assert_int_eq(config_topic_set(&lc, "nope", "5", err, sizeof(err)),
			 -ENOENT);
	ck_assert_str_eq(err, "unknown key \"nope\"");
}
END_TEST

/* --- rendering ------------------------------------------------------------ */

struct collect {
	char keys[64][64];
	char values[64][CONFIG_PATH_MAX];
	int n;
};

static void collect_fn(const char *key, const char *value, void *arg)
{
	struct collect *col = arg;

	ck_assert_int_lt(col->n, 64);
	snprintf(col->keys[col->n], sizeof(col->keys[0]), "%s", key);
	snprintf(col->values[col->n], sizeof(col->values[0]), "%s", value);
	col->n++;
}

START_TEST(test_topic_each_round_trip)
{
	static struct collect col;
	struct config c;
	struct log_config a, b;

	config_defaults(&c);
	a = c.topic_defaults;
	ck_assert_int_eq(config_topic_set(&a, "segment.bytes", "64MiB", err,
					  sizeof(err)), 0);
	ck_assert_int_eq(config_topic_set(&a, "retention.ms", "-1", err,
					  sizeof(err)), 0);
	ck_assert_int_eq(config_topic_set(&a, "flush.mode", "interval", err,
					  sizeof(err)), 0);
	ck_assert_int_eq(config_topic_set(&a, "flush.bytes", "1M", err,
					  sizeof(err)), 0);
	config_topic_each(&a, collect_fn, &col);
	ck_assert_int_eq(col.n, 9);
	memset(&b, 0, sizeof(b));
	for (int i = 0; i < col.n; i++)
		ck_assert_msg(config_topic_set(&b, col.keys[i], col.values[i],
					       err, sizeof(err)) == 0,
			      "%s=%s: %s", col.keys[i], col.values[i], err);
	expect_log_config_eq(&a, &b);
	ck_assert_str_eq(col.keys[0], "segment.bytes");
	ck_assert_str_eq(col.values[0], "67108864");
}
END_TEST

START_TEST(test_each_round_trip)
{
	static struct collect col;
	struct config a, b;

	config_defaults(&a);
	ck_assert_int_eq(config_set(&a, "admin.listen", "off", err,
				    sizeof(err)), 0);
	ck_assert_int_eq(config_set(&a, "auto.create.topics", "on", err,
				    sizeof(err)), 0);
	ck_assert_int_eq(config_set(&a, "log.level", "warn", err,
				    sizeof(err)), 0);
	config_each(&a, collect_fn, &col);
	memset(&b, 0, sizeof(b));
	for (int i = 0; i < col.n; i++)
		ck_assert_msg(config_set(&b, col.keys[i], col.values[i], err,
					 sizeof(err)) == 0,
			      "%s=%s: %s", col.keys[i], col.values[i], err);
	ck_assert_str_eq(b.listen, a.listen);
	ck_assert_str_eq(b.admin_listen, "off");
	ck_assert(!b.admin_enabled);
	ck_assert_str_eq(b.data_dir, a.data_dir);
	ck_assert(b.auto_create_topics);
	ck_assert_int_eq(b.log_level, LOGL_WARN);
	ck_assert_int_eq(b.max_request_bytes, a.max_request_bytes);
	ck_assert_int_eq(b.idle_timeout_ms, a.idle_timeout_ms);
	expect_log_config_eq(&a.topic_defaults, &b.topic_defaults);
}
END_TEST

START_TEST(test_help_lists_every_key)
{
	static struct collect col;
	struct config c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	config_print_help(f);
	ck_assert_int_eq(fclose(f), 0);
	config_defaults(&c);
	config_each(&c, collect_fn, &col);
	ck_assert_int_gt(col.n, 20);
	for (int i = 0; i < col.n; i++)
		ck_assert_msg(strstr(buf, col.keys[i]) != NULL,
			      "help lacks %s", col.keys[i]);
	ck_assert_ptr_nonnull(strstr(buf, "one of always|interval|os"));
	free(buf);
}
END_TEST

/* --- broker.conf.example -------------------------------------------------- */

#define EXAMPLE "broker.conf.example" /* tests run from the repo root */

START_TEST(test_example_loads_as_defaults)
{
	static struct collect got, want;
	struct config c, d;

	config_defaults(&c);
	config_defaults(&d);
	/* Start from different values so every key must come from the file. */
	c.max_connections = 1;
	c.topic_defaults.segment_bytes = 4096;
	ck_assert_msg(config_load(&c, EXAMPLE, err, sizeof(err)) == 0, "%s",
		      err);
	config_each(&c, collect_fn, &got);
	config_each(&d, collect_fn, &want);
	ck_assert_int_eq(got.n, want.n);
	for (int i = 0; i < got.n; i++)
		ck_assert_msg(strcmp(got.values[i], want.values[i]) == 0,
			      "%s: example has %s, default is %s",
			      got.keys[i], got.values[i], want.values[i]);
}
END_TEST

START_TEST(test_example_sets_every_key)
{
	static struct collect col;
	static char text[65536];
	char pat[128];
	struct config c;
	FILE *f = fopen(EXAMPLE, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	text[0] = '\n';
	n = fread(text + 1, 1, sizeof(text) - 2, f);
	fclose(f);
	ck_assert_int_lt(n, sizeof(text) - 2);
	text[n + 1] = '\0';
	config_defaults(&c);
	config_each(&c, collect_fn, &col);
	for (int i = 0; i < col.n; i++) {
		/* an uncommented "key = " at the start of a line */
		snprintf(pat, sizeof(pat), "\n%s = ", col.keys[i]);
		ck_assert_msg(strstr(text, pat) != NULL,
			      EXAMPLE " does not set %s", col.keys[i]);
	}
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("defaults");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults_broker);
	tcase_add_test(tc, test_defaults_topic);
	tcase_add_test(tc, test_defaults_match_log);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_load_full_file);
	tcase_add_test(tc, test_load_comments_and_whitespace);
	tcase_add_test(tc, test_load_empty_file);
	tcase_add_test(tc, test_load_keeps_unset_keys);
	tcase_add_test(tc, test_load_duplicate_later_wins);
	tcase_add_test(tc, test_load_error_leaves_config_unchanged);
	tcase_add_test(tc, test_load_missing_file);
	tcase_add_test(tc, test_load_directory);
	tcase_add_test(tc, test_load_unknown_key);
	tcase_add_test(tc, test_load_missing_equals);
	tcase_add_test(tc, test_load_missing_key);
	tcase_add_test(tc, test_load_empty_value);
	tcase_add_test(tc, test_load_line_too_long);
	tcase_add_loop_test(tc, test_load_bad_value, 0,
			    sizeof(bad_values) / sizeof(bad_values[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("types");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_bool_forms);
	tcase_add_test(tc, test_int_bounds);
	tcase_add_test(tc, test_size_suffixes);
	tcase_add_test(tc, test_size_minus_one);
	tcase_add_test(tc, test_size_int32_field);
	tcase_add_test(tc, test_duration_suffixes);
	tcase_add_test(tc, test_duration_zero_allowed_where_min_zero);
	tcase_add_test(tc, test_string_length);
	tcase_add_test(tc, test_enum_values);
	tcase_add_test(tc, test_address_forms);
	tcase_add_test(tc, test_admin_off);
	tcase_add_test(tc, test_addr_resolve);
	suite_add_tcase(s, tc);

	tc = tcase_create("overrides");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_set_overrides_file);
	tcase_add_test(tc, test_set_unknown_key);
	tcase_add_test(tc, test_set_bad_value_names_key);
	tcase_add_test(tc, test_topic_set);
	tcase_add_test(tc, test_topic_set_rejects_broker_key);
	suite_add_tcase(s, tc);

	tc = tcase_create("render");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_topic_each_round_trip);
	tcase_add_test(tc, test_each_round_trip);
	tcase_add_test(tc, test_help_lists_every_key);
	suite_add_tcase(s, tc);

	tc = tcase_create("example");
	tcase_add_test(tc, test_example_loads_as_defaults);
	tcase_add_test(tc, test_example_sets_every_key);
	suite_add_tcase(s, tc);
	return s;
}
