/* brokerctl — the operator's command line for brokerd: topics, consumer
 * offsets and groups, broker status.  Talks to the broker only through the
 * public client library (<brokerd/client.h>).
 *
 * Exit status: 0 ok, 1 the broker refused (its error on stderr), 2 usage,
 * 3 the broker could not be reached. */
#include <brokerd/client.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

static const char *broker = "127.0.0.1:9092";
static bool json;
static int timeout_ms = 10000;

static const char usage_text[] =
	"usage: brokerctl [--broker HOST:PORT] [--json] [--timeout-ms N] COMMAND ...\n"
	"\n"
	"commands:\n"
	"  topic create NAME [--partitions N] [--config KEY=VALUE ...]\n"
	"  topic list\n"
	"  topic describe NAME\n"
	"  topic alter NAME [--set KEY=VALUE ...] [--reset KEY ...]\n"
	"  topic delete NAME\n"
	"  offsets get GROUP [TOPIC]\n"
	"  offsets commit GROUP TOPIC PARTITION OFFSET [--metadata TEXT]\n"
	"  offsets reset GROUP TOPIC --to earliest|latest|OFFSET|@TIMESTAMP_MS\n"
	"  groups list\n"
	"  groups describe GROUP\n"
	"  groups delete GROUP\n"
	"  status\n"
	"  produce TOPIC [--key-separator SEP] [--partition N] [--acks all|leader|none]\n"
	"                [--header KEY=VALUE ...]   one record per stdin line\n"
	"  consume TOPIC [--from earliest|latest|OFFSET|@TIMESTAMP_MS] [--partition N]\n"
	"                [--follow] [--max N] [--group G] [--format value|full|json]\n"
	"\n"
	"options:\n"
	"  --broker HOST:PORT   broker address (default 127.0.0.1:9092, or $BROKERD_BROKER)\n"
	"  --json               one JSON document on stdout instead of a table\n"
	"  --timeout-ms N       bound on connecting and on each request (10000)\n"
	"  -h, --help           this help (also after any command)\n"
	"\n"
	"exit status: 0 ok, 1 the broker refused, 2 usage error, 3 broker unreachable\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

/* `brokerctl GROUP ... --help`: the lines of usage_text for that command
 * group (their continuation lines included), else everything. */
static void command_usage(const char *group)
{
	const char *line = usage_text;
	size_t glen = group != NULL ? strlen(group) : 0;
	bool in = false, any = false;

	if (group == NULL) {
		usage(stdout);
		return;
	}
	printf("usage: brokerctl [--broker HOST:PORT] [--json] [--timeout-ms N] ...\n\n");
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
		if (strncmp(line, "  ", 2) == 0 && line[2] != ' ')
			in = strncmp(line + 2, group, glen) == 0 &&
			     (line[2 + glen] == ' ' || line[2 + glen] == '\n');
		else if (strncmp(line, "  ", 2) != 0)
			in = false;
		if (in) {
			fwrite(line, 1, len, stdout);
			any = true;
		}
		line += len;
	}
	if (!any)
		usage(stdout);
}

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("brokerctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* --- connection ------------------------------------------------------------ */

static struct bk_admin *admin_handle;

/* The admin handle, connected on first use (so usage errors never need the
 * broker). */
static struct bk_admin *admin(void)
{
	struct bk_admin_conf conf;
	int rc;

	if (admin_handle != NULL)
		return admin_handle;
	bk_admin_conf_init(&conf);
	conf.bootstrap = broker;
	conf.client_id = "brokerctl";
	conf.request_timeout_ms = timeout_ms;
	rc = bk_admin_new(&conf, &admin_handle);
	if (rc < 0)
		die(EXIT_UNREACHABLE, "cannot reach the broker at %s: %s", broker, bk_strerror(rc));
	return admin_handle;
}

/* Exit when an admin call failed: with the broker's message when it
 * refused, else as unreachable. */
static void check(int rc)
{
	if (rc >= 0)
		return;
	if (bk_err_code(rc) != 0)
		die(EXIT_REFUSED, "%s (%s)", bk_admin_errmsg(admin_handle),
		    bk_error_name(bk_err_code(rc)));
	die(EXIT_UNREACHABLE, "lost the broker at %s: %s", broker, bk_strerror(rc));
}

/* --- JSON output -------------------------------------------------------------- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* --- topics ----------------------------------------------------------------------- */

/* Split "key=value" into a map entry's key and value (in place). */
static void split_kv(char *kv, char **key, char **value, const char *what)
{
	char *eq = strchr(kv, '=');

	if (eq == NULL || eq == kv)
		die(EXIT_USAGE, "%s needs KEY=VALUE, got '%s'", what, kv);
	*eq = '\0';
	*key = kv;
	*value = eq + 1;
}

static void print_description(const struct bk_topic_info *d)
{
	if (json) {
		printf("{\"name\":");
		json_str(d->name);
		printf(",\"topic_id\":%" PRIu64 ",\"partitions\":[", d->topic_id);
		for (int32_t i = 0; i < d->partition_count; i++) {
			const struct bk_partition_info *p = &d->partitions[i];
			printf("%s{\"partition\":%d,\"log_start_offset\":%" PRId64
			       ",\"high_watermark\":%" PRId64 ",\"log_end_offset\":%" PRId64
			       ",\"size_bytes\":%" PRIu64 ",\"segments\":%u,\"error\":",
			       i ? "," : "", p->partition, p->log_start_offset, p->high_watermark,
			       p->log_end_offset, p->size_bytes, p->segment_count);
			json_str(p->error ? bk_error_name(bk_err_code(p->error)) : "");
			putchar('}');
		}
		printf("],\"configs\":{");
		for (size_t i = 0; i < d->nconfigs; i++) {
			printf("%s", i ? "," : "");
			json_str(d->configs[i].name);
			putchar(':');
			json_str(d->configs[i].value);
		}
		printf("}}\n");
		return;
	}
	printf("topic %s (id %" PRIu64 "), %d partitions\n\n", d->name, d->topic_id,
	       d->partition_count);
	printf("%9s %14s %14s %14s %14s %8s  %s\n", "PARTITION", "LOG-START", "HIGH-WATERMARK",
	       "LOG-END", "BYTES", "SEGMENTS", "STATE");
	for (int32_t i = 0; i < d->partition_count; i++) {
		const struct bk_partition_info *p = &d->partitions[i];
		printf("%9d %14" PRId64 " %14" PRId64 " %14" PRId64 " %14" PRIu64 " %8u  %s\n",
		       p->partition, p->log_start_offset, p->high_watermark, p->log_end_offset,
		       p->size_bytes, p->segment_count, p->error ? p->error_message : "ok");
	}
	printf("\n%-28s %-22s %s\n", "CONFIG", "VALUE", "SOURCE");
	for (size_t i = 0; i < d->nconfigs; i++)
		printf("%-28s %-22s %s\n", d->configs[i].name, d->configs[i].value,
		       d->configs[i].is_default ? "default" : "topic");
}

static int topic_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "partitions", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct bk_config configs[64];
	struct bk_topic_info *d = NULL;
	int32_t partitions = 0;
	size_t nconfigs = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p') {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end != '\0' || n <= 0)
				die(EXIT_USAGE, "--partitions needs a positive number, got '%s'", optarg);
			/* above the range the broker refuses it, naming the limit */
			partitions = n > INT32_MAX ? INT32_MAX : (int32_t)n;
		} else if (ch == 'c') {
			char *key, *value;
			if (nconfigs == 64)
				die(EXIT_USAGE, "at most 64 --config options");
			split_kv(optarg, &key, &value, "--config");
			configs[nconfigs++] = (struct bk_config){ key, value, 0 };
		} else {
			die(EXIT_USAGE, "see brokerctl --help");
		}
	}
	if (optind + 1 != argc)
		die(EXIT_USAGE, "topic create needs exactly one topic name");
	check(bk_admin_create_topic(admin(), argv[optind], partitions, configs, nconfigs, &d));
	if (!json)
		printf("created topic '%s' with %d partitions\n", argv[optind], d->partition_count);
	else
		print_description(d);
	bk_admin_free(d);
	return 0;
}

static int topic_list(int argc, char **argv)
{
	struct bk_topic_list *l = NULL;

	(void)argv;
	if (argc != 1)
		die(EXIT_USAGE, "topic list takes no arguments");
	check(bk_admin_list_topics(admin(), &l));
	if (json) {
		printf("[");
		for (size_t i = 0; i < l->ntopics; i++) {
			const struct bk_topic_summary *t = &l->topics[i];
			printf("%s{\"name\":", i ? "," : "");
			json_str(t->name);
			printf(",\"partitions\":%d,\"size_bytes\":%" PRIu64 "}", t->partition_count,
			       t->size_bytes);
		}
		printf("]\n");
	} else {
		printf("%-40s %10s %14s\n", "TOPIC", "PARTITIONS", "BYTES");
		for (size_t i = 0; i < l->ntopics; i++) {
			const struct bk_topic_summary *t = &l->topics[i];
			printf("%-40s %10d %14" PRIu64 "\n", t->name, t->partition_count, t->size_bytes);
		}
	}
	bk_admin_free(l);
	return 0;
}

/* Describe name, or exit with the broker's refusal.  Free with
 * bk_admin_free. */
static struct bk_topic_info *describe_topic(const char *name)
{
	struct bk_topic_info *d = NULL;

	check(bk_admin_describe_topic(admin(), name, &d));
	return d;
}

static int topic_describe(int argc, char **argv)
{
	struct bk_topic_info *d;

	if (argc != 2)
		die(EXIT_USAGE, "topic describe needs exactly one topic name");
	d = describe_topic(argv[1]);
	print_description(d);
	bk_admin_free(d);
	return 0;
}

static int topic_alter(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "set", required_argument, NULL, 's' },
		{ "reset", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct bk_config set[64];
	const char *resets[64];
	size_t nset = 0, nreset = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 's') {
			char *key, *value;
			if (nset == 64)
				die(EXIT_USAGE, "at most 64 --set options");
			split_kv(optarg, &key, &value, "--set");
			set[nset++] = (struct bk_config){ key, value, 0 };
		} else if (ch == 'r') {
			if (nreset == 64)
				die(EXIT_USAGE, "at most 64 --reset options");
			resets[nreset++] = optarg;
		} else {
			die(EXIT_USAGE, "see brokerctl --help");
		}
	}
	if (optind + 1 != argc)
		die(EXIT_USAGE, "topic alter needs exactly one topic name");
	if (nset == 0 && nreset == 0)
		die(EXIT_USAGE, "topic alter needs --set KEY=VALUE or --reset KEY");
	check(bk_admin_alter_topic_configs(admin(), argv[optind], set, nset, resets, nreset, NULL));
	if (!json)
		printf("altered topic '%s'\n", argv[optind]);
	else
		printf("{\"altered\":true}\n");
	return 0;
}

static int topic_delete(int argc, char **argv)
{
	if (argc != 2)
		die(EXIT_USAGE, "topic delete needs exactly one topic name");
	check(bk_admin_delete_topic(admin(), argv[1]));
	if (json)
		printf("{\"deleted\":true}\n");
	else
		printf("deleted topic '%s'\n", argv[1]);
	return 0;
}

/* --- offsets and groups ------------------------------------------------------------ */

/* The group's committed offsets (of one topic when topic != NULL), with
 * the high watermark and lag of each partition. */
static int print_offsets(const char *group, const char *topic)
{
	struct bk_group_offsets *g = NULL;
	bool first = true;

	check(bk_admin_describe_group(admin(), group, &g));
	if (json)
		printf("[");
	else
		printf("%-30s %9s %14s %14s %10s  %s\n", "TOPIC", "PARTITION", "COMMITTED",
		       "HIGH-WATERMARK", "LAG", "METADATA");
	for (size_t i = 0; i < g->noffsets; i++) {
		const struct bk_committed_offset *o = &g->offsets[i];
		if (topic != NULL && strcmp(o->topic, topic) != 0)
			continue;
		if (json) {
			printf("%s{\"topic\":", first ? "" : ",");
			json_str(o->topic);
			printf(",\"partition\":%d,\"offset\":%" PRId64 ",\"high_watermark\":%" PRId64
			       ",\"lag\":%" PRId64 ",\"metadata\":",
			       o->partition, o->offset, o->high_watermark, o->lag);
			json_str(o->metadata);
			putchar('}');
		} else {
			printf("%-30s %9d %14" PRId64 " %14" PRId64 " %10" PRId64 "  %s\n", o->topic,
			       o->partition, o->offset, o->high_watermark, o->lag, o->metadata);
		}
		first = false;
	}
	if (json)
		printf("]\n");
	bk_admin_free(g);
	return 0;
}

static void commit_one(const char *group, const char *topic, int32_t partition, int64_t offset,
		       const char *metadata)
{
	struct bk_offset_commit c = { topic, partition, offset, metadata };

	check(bk_admin_commit_offsets(admin(), group, &c, 1));
}

static int64_t parse_i64(const char *s, const char *what)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s)
		die(EXIT_USAGE, "%s must be an integer, got '%s'", what, s);
	return v;
}

static int offsets_commit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "metadata", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *metadata = "";
	int64_t partition, offset;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'm')
			die(EXIT_USAGE, "see brokerctl --help");
		metadata = optarg;
	}
	if (argc - optind != 4)
		die(EXIT_USAGE, "offsets commit needs GROUP TOPIC PARTITION OFFSET");
	partition = parse_i64(argv[optind + 2], "PARTITION");
	offset = parse_i64(argv[optind + 3], "OFFSET");
	if (partition < 0 || partition > INT32_MAX)
		die(EXIT_USAGE, "PARTITION out of range: %s", argv[optind + 2]);
	commit_one(argv[optind], argv[optind + 1], (int32_t)partition, offset, metadata);
	if (json)
		printf("{\"committed\":true}\n");
	else
		printf("committed offset %" PRId64 " for group '%s' on '%s' partition %" PRId64 "\n",
		       offset, argv[optind], argv[optind + 1], partition);
	return 0;
}

/* Resolve --to for one partition: earliest, latest, an offset or @ms. */
static int64_t resolve_to(const char *to, const char *topic, int32_t partition)
{
	struct bk_listed_offset lo;
	int64_t when;

	if (strcmp(to, "earliest") == 0)
		when = BK_OFFSET_EARLIEST;
	else if (strcmp(to, "latest") == 0)
		when = BK_OFFSET_LATEST;
	else if (to[0] == '@')
		when = parse_i64(to + 1, "--to @TIMESTAMP_MS");
	else
		return parse_i64(to, "--to OFFSET");
	check(bk_admin_list_offset(admin(), topic, partition, when, &lo));
	return lo.offset;
}

static int offsets_reset(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *to = NULL, *group, *topic;
	struct bk_topic_info *d;
	int32_t nparts;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 't')
			die(EXIT_USAGE, "see brokerctl --help");
		to = optarg;
	}
	if (argc - optind != 2 || to == NULL)
		die(EXIT_USAGE, "offsets reset needs GROUP TOPIC --to earliest|latest|OFFSET|@MS");
	group = argv[optind];
	topic = argv[optind + 1];
	d = describe_topic(topic);
	nparts = d->partition_count;
	bk_admin_free(d);
	for (int32_t p = 0; p < nparts; p++) {
		int64_t off = resolve_to(to, topic, p);
		commit_one(group, topic, p, off, "");
		if (!json)
			printf("group '%s' '%s' partition %d -> %" PRId64 "\n", group, topic, p, off);
	}
	if (json)
		printf("{\"reset\":%d}\n", nparts);
	return 0;
}

static int groups_list(int argc, char **argv)
{
	struct bk_group_list *l = NULL;

	(void)argv;
	if (argc != 1)
		die(EXIT_USAGE, "groups list takes no arguments");
	check(bk_admin_list_groups(admin(), &l));
	if (json)
		printf("[");
	else
		printf("%-40s %10s %12s\n", "GROUP", "PARTITIONS", "LAG");
	for (size_t i = 0; i < l->ngroups; i++) {
		const struct bk_group_summary *g = &l->groups[i];
		if (json) {
			printf("%s{\"group\":", i ? "," : "");
			json_str(g->group);
			printf(",\"partitions\":%u,\"lag\":%" PRId64 "}", g->partitions, g->lag);
		} else {
			printf("%-40s %10u %12" PRId64 "\n", g->group, g->partitions, g->lag);
		}
	}
	if (json)
		printf("]\n");
	bk_admin_free(l);
	return 0;
}

static int groups_delete(int argc, char **argv)
{
	if (argc != 2)
		die(EXIT_USAGE, "groups delete needs exactly one group");
	check(bk_admin_delete_group(admin(), argv[1]));
	if (json)
		printf("{\"deleted\":true}\n");
	else
		printf("deleted group '%s'\n", argv[1]);
	return 0;
}

static int status(int argc, char **argv)
{
	struct bk_broker_status *s = NULL;

	(void)argv;
	if (argc != 1)
		die(EXIT_USAGE, "status takes no arguments");
	check(bk_admin_broker_status(admin(), &s));
	if (json) {
		printf("{\"version\":");
		json_str(s->broker_version);
		printf(",\"uptime_ms\":%" PRId64 ",\"topics\":%u,\"partitions\":%u,\"data_bytes\":%"
		       PRIu64 ",\"disk_free_bytes\":%" PRIu64 ",\"disk_total_bytes\":%" PRIu64
		       ",\"connections\":%u,\"data_dir\":",
		       s->uptime_ms, s->topic_count, s->partition_count, s->data_bytes,
		       s->disk_free_bytes, s->disk_total_bytes, s->connections);
		json_str(s->data_dir);
		printf("}\n");
	} else {
		printf("broker       %s (brokerd %s)\n", broker, s->broker_version);
		printf("uptime       %" PRId64 " s\n", s->uptime_ms / 1000);
		printf("topics       %u (%u partitions)\n", s->topic_count, s->partition_count);
		printf("data         %" PRIu64 " bytes in %s\n", s->data_bytes, s->data_dir);
		printf("disk         %" PRIu64 " of %" PRIu64 " MiB free\n", s->disk_free_bytes >> 20,
		       s->disk_total_bytes >> 20);
		printf("connections  %u\n", s->connections);
	}
	bk_admin_free(s);
	return 0;
}

/* --- produce ------------------------------------------------------------------------- */

struct produce_stats {
	long ok, failed;
	int first_err;
};

static void on_delivered(void *opaque, int err, const char *topic, int32_t partition,
			 int64_t offset)
{
	struct produce_stats *st = opaque;

	(void)topic;
	(void)partition;
	(void)offset;
	if (err == 0) {
		__atomic_add_fetch(&st->ok, 1, __ATOMIC_RELAXED);
	} else {
		int zero = 0;
		__atomic_add_fetch(&st->failed, 1, __ATOMIC_RELAXED);
		__atomic_compare_exchange_n(&st->first_err, &zero, err, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
	}
}

static int produce(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key-separator", required_argument, NULL, 'k' },
		{ "partition", required_argument, NULL, 'p' },
		{ "acks", required_argument, NULL, 'a' },
		{ "header", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct bk_producer_conf conf;
	struct bk_producer *p = NULL;
	struct bk_header headers[32];
	struct produce_stats st = { 0 };
	const char *sep = NULL;
	int32_t partition = -1;
	uint32_t nheaders = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ch, rc;

	bk_producer_conf_init(&conf);
	conf.bootstrap = broker;
	conf.client_id = "brokerctl";
	conf.request_timeout_ms = timeout_ms;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *key, *value;
		switch (ch) {
		case 'k':
			if (optarg[0] == '\0')
				die(EXIT_USAGE, "--key-separator must not be empty");
			sep = optarg;
			break;
		case 'p':
			partition = (int32_t)parse_i64(optarg, "--partition");
			if (partition < 0)
				die(EXIT_USAGE, "--partition must be >= 0");
			break;
		case 'a':
			if (strcmp(optarg, "all") == 0)
				conf.acks = BK_ACKS_ALL;
			else if (strcmp(optarg, "leader") == 0)
				conf.acks = BK_ACKS_LEADER;
			else if (strcmp(optarg, "none") == 0)
				conf.acks = BK_ACKS_NONE;
			else
				die(EXIT_USAGE, "--acks must be all, leader or none, got '%s'", optarg);
			break;
		case 'H':
			if (nheaders == 32)
				die(EXIT_USAGE, "at most 32 --header options");
			split_kv(optarg, &key, &value, "--header");
			headers[nheaders++] = (struct bk_header){ key, value, (int32_t)strlen(value) };
			break;
		default:
			die(EXIT_USAGE, "see brokerctl --help");
		}
	}
	if (optind + 1 != argc)
		die(EXIT_USAGE, "produce needs exactly one topic");
	rc = bk_producer_new(&conf, &p);
	if (rc < 0)
		die(EXIT_USAGE, "cannot create a producer: %s", bk_strerror(rc));
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		struct bk_record rec = { .topic = argv[optind], .partition = partition,
					 .key_len = -1, .headers = headers, .nheaders = nheaders };
		char *v = line;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (sep != NULL) {
			char *at = strstr(line, sep);
			if (at != NULL) {
				rec.key = line;
				rec.key_len = (int32_t)(at - line);
				v = at + strlen(sep);
			}
		}
		rec.value = v;
		rec.value_len = (int32_t)(line + n - v);
		while ((rc = bk_producer_send(p, &rec, on_delivered, &st)) == -ENOBUFS)
			bk_producer_flush(p, timeout_ms);
		if (rc < 0) /* counted as a failed delivery; the I/O thread may be in one */
			on_delivered(&st, rc, rec.topic, rec.partition, -1);
	}
	free(line);
	rc = bk_producer_flush(p, -1);
	bk_producer_close(p);
	if (json)
		printf("{\"produced\":%ld,\"failed\":%ld}\n", st.ok, st.failed);
	else
		printf("produced %ld records to '%s'%s\n", st.ok, argv[optind],
		       st.failed ? "" : " (all acknowledged)");
	if (st.failed > 0) {
		fprintf(stderr, "brokerctl: %ld records to '%s' failed: %s\n", st.failed,
			argv[optind], bk_strerror(st.first_err));
		return bk_err_code(st.first_err) != 0 ? EXIT_REFUSED : EXIT_UNREACHABLE;
	}
	return rc < 0 ? EXIT_UNREACHABLE : 0;
}

/* --- consume ------------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void json_bytes(const void *p, int32_t len)
{
	char *tmp;

	if (len < 0) {
		printf("null");
		return;
	}
	tmp = malloc((size_t)len + 1);
	if (tmp == NULL)
		die(EXIT_UNREACHABLE, "out of memory");
	memcpy(tmp, p, (size_t)len);
	tmp[len] = '\0'; /* a NUL inside ends the JSON string: binary is not JSON */
	json_str(tmp);
	free(tmp);
}

static void print_record(const struct bk_record *r, const char *format)
{
	if (strcmp(format, "value") == 0) {
		fwrite(r->value, 1, r->value_len > 0 ? (size_t)r->value_len : 0, stdout);
		putchar('\n');
	} else if (strcmp(format, "json") == 0) {
		printf("{\"partition\":%d,\"offset\":%" PRId64 ",\"timestamp\":%" PRId64 ",\"key\":",
		       r->partition, r->offset, r->timestamp_ms);
		json_bytes(r->key, r->key_len);
		printf(",\"value\":");
		json_bytes(r->value, r->value_len);
		printf(",\"headers\":{");
		for (uint32_t i = 0; i < r->nheaders; i++) {
			printf("%s", i ? "," : "");
			json_str(r->headers[i].key);
			putchar(':');
			json_bytes(r->headers[i].value, r->headers[i].value_len);
		}
		printf("}}\n");
	} else {
		printf("%d\t%" PRId64 "\t%" PRId64 "\t%.*s\t%.*s", r->partition, r->offset,
		       r->timestamp_ms, r->key_len > 0 ? r->key_len : 0, (const char *)r->key,
		       r->value_len > 0 ? r->value_len : 0, (const char *)r->value);
		for (uint32_t i = 0; i < r->nheaders; i++)
			printf("\t%s=%.*s", r->headers[i].key,
			       r->headers[i].value_len > 0 ? r->headers[i].value_len : 0,
			       (const char *)r->headers[i].value);
		putchar('\n');
	}
}

static int consume(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "partition", required_argument, NULL, 'p' },
		{ "follow", no_argument, NULL, 'F' },
		{ "max", required_argument, NULL, 'm' },
		{ "group", required_argument, NULL, 'g' },
		{ "format", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *from = NULL, *format = "value", *group = NULL, *topic;
	struct bk_consumer_conf conf;
	struct bk_consumer *c = NULL;
	struct bk_topic_info *d;
	int64_t partition = -1, max = -1, got = 0, *end = NULL;
	uint32_t nparts, lo, hi;
	bool follow = false;
	int ch, rc, status = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			from = optarg;
			break;
		case 'p':
			partition = parse_i64(optarg, "--partition");
			break;
		case 'F':
			follow = true;
			break;
		case 'm':
			max = parse_i64(optarg, "--max");
			break;
		case 'g':
			group = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "value") && strcmp(optarg, "full") && strcmp(optarg, "json"))
				die(EXIT_USAGE, "--format must be value, full or json, got '%s'", optarg);
			format = optarg;
			break;
		default:
			die(EXIT_USAGE, "see brokerctl --help");
		}
	}
	if (optind + 1 != argc)
		die(EXIT_USAGE, "consume needs exactly one topic");
	topic = argv[optind];
	d = describe_topic(topic);
	nparts = (uint32_t)d->partition_count;
	if (partition >= (int64_t)nparts)
		die(EXIT_REFUSED, "topic '%s' has no partition %" PRId64 " (it has %u)", topic,
		    partition, nparts);
	lo = partition >= 0 ? (uint32_t)partition : 0;
	hi = partition >= 0 ? (uint32_t)partition + 1 : nparts;
	/* Without --follow, stop at the high watermarks seen now. */
	end = calloc(nparts ? nparts : 1, sizeof(*end));
	if (end == NULL)
		die(EXIT_UNREACHABLE, "out of memory");
	for (uint32_t p = 0; p < nparts; p++)
		end[p] = d->partitions[p].high_watermark;
	bk_admin_free(d);
	bk_consumer_conf_init(&conf);
	conf.bootstrap = broker;
	conf.client_id = "brokerctl";
	conf.group = group;
	conf.auto_offset_reset = BK_OFFSET_EARLIEST;
	rc = bk_consumer_new(&conf, &c);
	if (rc < 0)
		die(EXIT_UNREACHABLE, "cannot create a consumer: %s", bk_strerror(rc));
	for (uint32_t p = lo; p < hi; p++) {
		int64_t start = group != NULL ? BK_OFFSET_COMMITTED : BK_OFFSET_EARLIEST;
		bool by_time = false;
		if (from != NULL && strcmp(from, "earliest") == 0)
			start = BK_OFFSET_EARLIEST;
		else if (from != NULL && strcmp(from, "latest") == 0)
			start = BK_OFFSET_LATEST;
		else if (from != NULL && from[0] == '@')
			by_time = true;
		else if (from != NULL)
			start = parse_i64(from, "--from");
		rc = bk_consumer_assign(c, topic, (int32_t)p, by_time ? BK_OFFSET_EARLIEST : start);
		if (rc == 0 && by_time)
			rc = bk_consumer_seek_time(c, topic, (int32_t)p,
						   parse_i64(from + 1, "--from @TIMESTAMP_MS"));
		if (rc < 0)
			die(bk_err_code(rc) ? EXIT_REFUSED : EXIT_UNREACHABLE, "'%s' partition %u: %s",
			    topic, p, bk_strerror(rc));
	}
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);
	while (!interrupted && (max < 0 || got < max)) {
		struct bk_record r;
		bool done = !follow;
		for (uint32_t p = lo; p < hi && done; p++) {
			int64_t pos;
			if (bk_consumer_position(c, topic, (int32_t)p, &pos) < 0 || pos < end[p])
				done = false;
		}
		if (done)
			break;
		rc = bk_consumer_poll(c, 500, &r);
		if (rc == 0 || rc == -EINTR)
			continue;
		if (rc < 0) {
			fprintf(stderr, "brokerctl: consuming '%s': %s\n", topic, bk_strerror(rc));
			status = bk_err_code(rc) ? EXIT_REFUSED : EXIT_UNREACHABLE;
			break;
		}
		print_record(&r, format);
		got++;
		if (group != NULL && got % 1000 == 0)
			bk_consumer_commit_async(c, NULL, NULL);
	}
	fflush(stdout);
	if (group != NULL && (rc = bk_consumer_commit(c)) < 0) {
		fprintf(stderr, "brokerctl: commit for group '%s': %s\n", group, bk_strerror(rc));
		status = status ? status : EXIT_REFUSED;
	}
	bk_consumer_close(c);
	free(end);
	return status;
}

/* --- dispatch ---------------------------------------------------------------------- */

struct command {
	const char *group, *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the command name */
};

static int offsets_get(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		die(EXIT_USAGE, "offsets get needs GROUP [TOPIC]");
	return print_offsets(argv[1], argc == 3 ? argv[2] : NULL);
}

static int groups_describe(int argc, char **argv)
{
	if (argc != 2)
		die(EXIT_USAGE, "groups describe needs exactly one group");
	return print_offsets(argv[1], NULL);
}

static const struct command commands[] = {
	{ "topic", "create", topic_create },
	{ "topic", "list", topic_list },
	{ "topic", "describe", topic_describe },
	{ "topic", "alter", topic_alter },
	{ "topic", "delete", topic_delete },
	{ "offsets", "get", offsets_get },
	{ "offsets", "commit", offsets_commit },
	{ "offsets", "reset", offsets_reset },
	{ "groups", "list", groups_list },
	{ "groups", "describe", groups_describe },
	{ "groups", "delete", groups_delete },
	{ "status", NULL, status },
	{ "produce", NULL, produce },
	{ "consume", NULL, consume },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "broker", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, rc;

	if (getenv("BROKERD_BROKER") != NULL)
		broker = getenv("BROKERD_BROKER");
	/* "+": stop at the command; its own options follow it. */
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			broker = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 't':
			timeout_ms = (int)parse_i64(optarg, "--timeout-ms");
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			command_usage(i > optind ? argv[optind] : NULL);
			return 0;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];
		int skip;
		if (strcmp(argv[optind], c->group) != 0)
			continue;
		if (c->name != NULL && (optind + 1 >= argc || strcmp(argv[optind + 1], c->name) != 0))
			continue;
		skip = c->name != NULL ? optind + 1 : optind;
		optind = 0; /* GNU getopt: re-initialise; the command parses its own options */
		rc = c->fn(argc - skip, argv + skip);
		bk_admin_close(admin_handle);
		return rc;
	}
	fprintf(stderr, "brokerctl: unknown command '%s%s%s' (see brokerctl --help)\n", argv[optind],
		optind + 1 < argc ? " " : "", optind + 1 < argc ? argv[optind + 1] : "");
	return EXIT_USAGE;
}
