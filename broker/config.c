/* config — see config.h.  One table of key descriptors drives loading,
 * overrides, per-topic overrides, rendering and --help; no key has code of
 * its own.  Invariants:
 *   1. a value is parsed and range-checked completely before it is stored;
 *   2. every descriptor's default is a valid value of that key (tested). */
#include "broker/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "broker/logging.h"

#define KiB (INT64_C(1) << 10)
#define MiB (INT64_C(1) << 20)
#define GiB (INT64_C(1) << 30)
#define SEC INT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

enum config_type {
	CT_BOOL,
	CT_INT,      /* int64_t or int32_t field, plain integer */
	CT_SIZE,     /* bytes, K/M/G/KiB/MiB/GiB suffixes */
	CT_DURATION, /* milliseconds, ms/s/m/h/d suffixes */
	CT_STRING,   /* char[size] */
	CT_ENUM,     /* int-sized field holding the index into choices */
	CT_ADDR,     /* char[size] holding a validated "host:port" */
	CT_ADDR_OFF, /* CT_ADDR or "off"; aux_off is the "enabled" bool */
};

enum {
	CD_TOPIC = 1 << 0, /* field lives in struct log_config */
	CD_NEG1 = 1 << 1,  /* -1 (unlimited / off) is accepted besides min..max */
};

struct config_desc {
	const char *name;
	enum config_type type;
	unsigned flags;
	int64_t min, max;           /* numeric types */
	const char *def;            /* default, as it would be written in a file */
	size_t off, size;           /* field in struct config or struct log_config */
	size_t aux_off;             /* CT_ADDR_OFF: bool in struct config */
	const char *const *choices; /* CT_ENUM: NULL-terminated, index = value */
	const char *section;
	const char *help;
};

#define BFIELD(m) .off = offsetof(struct config, m), \
		  .size = sizeof(((struct config *)0)->m)
#define TFIELD(m) .off = offsetof(struct log_config, m), \
		  .size = sizeof(((struct log_config *)0)->m), .flags = CD_TOPIC
#define TFIELD_NEG1(m) .off = offsetof(struct log_config, m), \
		       .size = sizeof(((struct log_config *)0)->m), \
		       .flags = CD_TOPIC | CD_NEG1

static const char *const flush_modes[] = { "always", "interval", "os", NULL };
static const char *const log_levels[] = { "debug", "info", "warn", "error",
					  NULL };

_Static_assert(LOG_FLUSH_ALWAYS == 0 && LOG_FLUSH_INTERVAL == 1 &&
	       LOG_FLUSH_OS == 2, "flush_modes[] follows enum log_flush_mode");
_Static_assert(LOGL_DEBUG == 0 && LOGL_INFO == 1 && LOGL_WARN == 2 &&
	       LOGL_ERROR == 3, "log_levels[] follows LOGL_*");
_Static_assert(sizeof(enum log_flush_mode) == sizeof(int32_t),
	       "enum fields are stored as 32-bit integers");

static const struct config_desc descs[] = {
	/* network */
	{ .name = "listen", .type = CT_ADDR, BFIELD(listen),
	  .def = "127.0.0.1:9092", .section = "network",
	  .help = "TCP address clients connect to: IPv4:port, [IPv6]:port or "
		  "localhost:port (port 0: any free port)." },
	{ .name = "admin.listen", .type = CT_ADDR_OFF, BFIELD(admin_listen),
	  .aux_off = offsetof(struct config, admin_enabled),
	  .def = "127.0.0.1:9644", .section = "network",
	  .help = "Admin HTTP address (/healthz, /metrics), or off to disable "
		  "the admin listener." },
	/* storage */
	{ .name = "data.dir", .type = CT_STRING, BFIELD(data_dir),
	  .def = "./data", .section = "storage",
	  .help = "Directory where topics live (relative paths are relative "
		  "to the working directory)." },
	{ .name = "auto.create.topics", .type = CT_BOOL,
	  BFIELD(auto_create_topics), .def = "false", .section = "storage",
	  .help = "Create a topic on its first produce instead of "
		  "failing with an unknown-topic error." },
	{ .name = "default.partitions", .type = CT_INT,
	  BFIELD(default_partitions), .min = 1, .max = 10000, .def = "1",
	  .section = "storage",
	  .help = "Partitions of an auto-created topic." },
	{ .name = "segment.bytes", .type = CT_SIZE, TFIELD(segment_bytes),
	  .min = 4096, .max = 4 * GiB - 1, .def = "1GiB", .section = "storage",
	  .help = "Roll to a new segment file when the next batch would make "
		  "the active one larger than this." },
	{ .name = "segment.ms", .type = CT_DURATION, TFIELD(segment_ms),
	  .min = 1, .max = 365 * DAY, .def = "7d", .section = "storage",
	  .help = "Roll the active segment once it is this old, so retention "
		  "can delete it." },
	{ .name = "index.interval.bytes", .type = CT_SIZE,
	  TFIELD(index_interval_bytes), .min = 64, .max = 16 * MiB,
	  .def = "4096", .section = "storage",
	  .help = "Log bytes between two entries of the sparse offset and "
		  "time indexes (smaller: faster lookups, larger indexes)." },
	{ .name = "io.uring.entries", .type = CT_INT, BFIELD(io_uring_entries),
	  .min = 8, .max = 32768, .def = "4096", .section = "storage",
	  .help = "io_uring submission queue size." },
	{ .name = "max.open.segments", .type = CT_INT,
	  BFIELD(max_open_segments), .min = 16, .max = 1000000, .def = "1024",
	  .section = "storage",
	  .help = "File descriptors of sealed segments kept open (LRU cache)." },
	{ .name = "checkpoint.interval.ms", .type = CT_DURATION,
	  BFIELD(checkpoint_interval_ms), .min = 100, .max = DAY, .def = "60s",
	  .section = "storage",
	  .help = "Period of the recovery checkpoint, which bounds how much "
		  "of each log is scanned after a crash." },
	/* durability */
	{ .name = "flush.mode", .type = CT_ENUM, TFIELD(flush_mode),
	  .choices = flush_modes, .def = "always", .section = "durability",
	  .help = "always: fdatasync before an acks=all produce is answered "
		  "(group commit); interval: fsync every flush.interval.ms or "
		  "flush.bytes; os: leave write-back to the kernel." },
	{ .name = "flush.interval.ms", .type = CT_DURATION,
	  TFIELD(flush_interval_ms), .min = 1, .max = DAY, .def = "1000",
	  .section = "durability",
	  .help = "flush.mode=interval: fsync at least this often." },
	{ .name = "flush.bytes", .type = CT_SIZE, TFIELD_NEG1(flush_bytes),
	  .min = 4096, .max = INT64_MAX, .def = "-1", .section = "durability",
	  .help = "flush.mode=interval: also fsync once this many bytes are "
		  "unsynced (-1: only on the timer)." },
	/* retention */
	{ .name = "retention.ms", .type = CT_DURATION,
	  TFIELD_NEG1(retention_ms), .min = 1, .max = INT64_MAX, .def = "7d",
	  .section = "retention",
	  .help = "Delete a segment once its newest record is older than "
		  "this (-1: keep forever)." },
	{ .name = "retention.bytes", .type = CT_SIZE,
	  TFIELD_NEG1(retention_bytes), .min = 0, .max = INT64_MAX,
	  .def = "-1", .section = "retention",
	  .help = "Delete the oldest segments while a partition is larger "
		  "than this (-1: no size limit)." },
	{ .name = "message.timestamp.after.max.ms", .type = CT_DURATION,
	  TFIELD_NEG1(timestamp_after_max_ms), .min = 0, .max = INT64_MAX,
	  .def = "1h", .section = "retention",
	  .help = "Reject a produce whose largest record timestamp is further "
		  "than this ahead of the broker's clock, so one producer with "
		  "a bad clock cannot pin segments against time retention or "
		  "skew time lookups (-1: no bound)." },
	{ .name = "retention.check.interval.ms", .type = CT_DURATION,
	  BFIELD(retention_check_interval_ms), .min = 100, .max = DAY,
	  .def = "60s", .section = "retention",
	  .help = "How often retention runs over every partition." },
	/* limits */
	{ .name = "max.connections", .type = CT_INT, BFIELD(max_connections),
	  .min = 1, .max = 1000000, .def = "10000", .section = "limits",
	  .help = "Client connections accepted at once; further ones are "
		  "closed on accept." },
	{ .name = "max.request.bytes", .type = CT_SIZE,
	  BFIELD(max_request_bytes), .min = 1 * KiB, .max = 1 * GiB,
	  .def = "16MiB", .section = "limits",
	  .help = "Largest request frame accepted; a larger one closes the "
		  "connection." },
	{ .name = "max.batch.bytes", .type = CT_SIZE, BFIELD(max_batch_bytes),
	  .min = 1 * KiB, .max = 1 * GiB, .def = "8MiB", .section = "limits",
	  .help = "Largest record batch a produce may carry." },
	{ .name = "idle.timeout.ms", .type = CT_DURATION,
	  BFIELD(idle_timeout_ms), .min = 0, .max = 7 * DAY, .def = "10m",
	  .section = "limits",
	  .help = "Close a client connection idle this long (0: never)." },
	{ .name = "request.timeout.ms", .type = CT_DURATION,
	  BFIELD(request_timeout_ms), .min = 0, .max = DAY, .def = "30s",
	  .section = "limits",
	  .help = "A request frame that has started must be complete within "
		  "this, else the connection is closed (0: never)." },
	{ .name = "max.pending.request.bytes", .type = CT_SIZE,
	  BFIELD(max_pending_request_bytes), .min = 1 * MiB, .max = 64 * GiB,
	  .def = "256MiB", .section = "limits",
	  .help = "Memory for receiving request frames above 64 KiB, shared by "
		  "all connections; a frame beyond it waits (never less than "
		  "one max.request.bytes frame)." },
	/* logging */
	{ .name = "log.level", .type = CT_ENUM, BFIELD(log_level),
	  .choices = log_levels, .def = "info", .section = "logging",
	  .help = "Lowest level of the lines written to stderr." },
};

#define NDESCS (sizeof(descs) / sizeof(descs[0]))

struct unit {
	const char *suffix;
	int64_t mult;
};

static const struct unit size_units[] = {
	{ "k", KiB }, { "kib", KiB }, { "m", MiB }, { "mib", MiB },
	{ "g", GiB }, { "gib", GiB }, { NULL, 0 },
};

static const struct unit duration_units[] = {
	{ "ms", 1 }, { "s", SEC }, { "m", MIN }, { "h", HOUR }, { "d", DAY },
	{ NULL, 0 },
};

static const struct unit no_units[] = { { NULL, 0 } };

/* --- helpers ----------------------------------------------------------- */

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Quote `v` for a message, shortened to keep the message readable. */
static const char *quote(const char *v, char *buf, size_t len)
{
	size_t n = strlen(v);

	if (n > 64)
		snprintf(buf, len, "\"%.64s...\"", v);
	else
		snprintf(buf, len, "\"%s\"", v);
	return buf;
}

static const struct config_desc *find_desc(const char *key)
{
	for (size_t i = 0; i < NDESCS; i++)
		if (strcmp(descs[i].name, key) == 0)
			return &descs[i];
	return NULL;
}

static const struct unit *type_units(enum config_type t)
{
	if (t == CT_SIZE)
		return size_units;
	if (t == CT_DURATION)
		return duration_units;
	return no_units;
}

static const char *type_unit_name(enum config_type t)
{
	if (t == CT_SIZE)
		return " bytes";
	if (t == CT_DURATION)
		return " ms";
	return "";
}

static void store_int(void *p, size_t size, int64_t v)
{
	if (size == sizeof(int64_t)) {
		memcpy(p, &v, sizeof(v));
	} else {
		int32_t v32 = (int32_t)v;

		assert(size == sizeof(int32_t) && v >= INT32_MIN &&
		       v <= INT32_MAX);
		memcpy(p, &v32, sizeof(v32));
	}
}

static int64_t load_int(const void *p, size_t size)
{
	int64_t v;
	int32_t v32;

	if (size == sizeof(int64_t)) {
		memcpy(&v, p, sizeof(v));
		return v;
	}
	assert(size == sizeof(int32_t));
	memcpy(&v32, p, sizeof(v32));
	return v32;
}

/* Parse "[-]digits[blanks][suffix]" with a suffix from `units` (matched
 * case-insensitively; none means a multiplier of 1).  Returns 0 and *out,
 * -EINVAL (not a number of this kind) or -ERANGE (does not fit 64 bits). */
static int parse_number(const char *s, const struct unit *units, int64_t *out)
{
	bool neg = false, overflow = false;
	int64_t v = 0, mult = 1;

	if (*s == '-') {
		neg = true;
		s++;
	}
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		int d = *s - '0';

		if (v > (INT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (*s != '\0' && units[0].suffix != NULL) {
		while (*s == ' ' || *s == '\t')
			s++;
		mult = 0;
		for (const struct unit *u = units; u->suffix != NULL; u++) {
			if (strcasecmp(s, u->suffix) == 0) {
				mult = u->mult;
				s += strlen(s);
				break;
			}
		}
	}
	if (*s != '\0' || mult == 0)
		return -EINVAL;
	if (overflow || v > INT64_MAX / mult)
		return -ERANGE;
	*out = neg ? -(v * mult) : v * mult;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Parse "a.b.c.d:port", "[v6]:port" or "localhost:port"; fill *ss and
 * *len when ss is not NULL.  Returns 0, -EINVAL (shape or host) or -ERANGE
 * (port above 65535). */
static int parse_addr(const char *s, struct sockaddr_storage *ss,
		      socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port, *hend;
	unsigned long p = 0;
	bool v6 = false;

	if (s[0] == '[') {
		hend = strchr(s, ']');
		if (hend == NULL || hend[1] != ':')
			return -EINVAL;
		s++;
		port = hend + 2;
		v6 = true;
	} else {
		hend = strrchr(s, ':');
		if (hend == NULL)
			return -EINVAL;
		port = hend + 1;
	}
	if (hend == s || (size_t)(hend - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(hend - s));
	host[hend - s] = '\0';
	if (*port == '\0' || strlen(port) > 5)
		return -EINVAL;
	for (const char *c = port; *c != '\0'; c++) {
		if (!isdigit((unsigned char)*c))
			return -EINVAL;
		p = p * 10 + (unsigned long)(*c - '0');
	}
	if (p > 65535)
		return -ERANGE;

	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)p) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6,
				     .sin6_port = htons((uint16_t)p) };
	if (v6) {
		if (inet_pton(AF_INET6, host, &sin6.sin6_addr) != 1)
			return -EINVAL;
	} else if (strcmp(host, "localhost") == 0) {
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		return -EINVAL;
	}
	if (ss != NULL) {
		memset(ss, 0, sizeof(*ss));
		if (v6) {
			memcpy(ss, &sin6, sizeof(sin6));
			*len = sizeof(sin6);
		} else {
			memcpy(ss, &sin, sizeof(sin));
			*len = sizeof(sin);
		}
	}
	return 0;
}

static bool in_range(const struct config_desc *d, int64_t v)
{
	if (v == -1 && (d->flags & CD_NEG1))
		return true;
	return v >= d->min && v <= d->max;
}

/* Render the accepted range: "1..1000000", "-1 or >= 4096 bytes". */
static void fmt_range(const struct config_desc *d, char *buf, size_t len)
{
	const char *neg = (d->flags & CD_NEG1) ? "-1 or " : "";
	const char *unit = type_unit_name(d->type);

	if (d->max == INT64_MAX)
		snprintf(buf, len, "%s>= %" PRId64 "%s", neg, d->min, unit);
	else
		snprintf(buf, len, "%s%" PRId64 "..%" PRId64 "%s", neg, d->min,
			 d->max, unit);
}

static void *field(const struct config_desc *d, struct config *c,
		   struct log_config *lc)
{
	if (d->flags & CD_TOPIC)
		return (char *)lc + d->off;
	return (char *)c + d->off;
}

/* Parse `value` for key d and store it.  `c` may be NULL for topic keys
 * (lc is then the target); otherwise lc is &c->topic_defaults.  Returns 0
 * or -EINVAL with err "key: reason"; nothing is stored on error. */
static int desc_set(const struct config_desc *d, struct config *c,
		    struct log_config *lc, const char *value, char *err,
		    size_t errlen)
{
	void *p = field(d, c, lc);
	char q[80], range[96];
	int64_t v = 0;
	bool b;
	int rc;

	if (*value == '\0') {
		set_err(err, errlen, "%s: empty value", d->name);
		return -EINVAL;
	}
	switch (d->type) {
	case CT_BOOL:
		if (parse_bool(value, &b) < 0) {
			set_err(err, errlen, "%s: %s is not a boolean (expected "
				"true/false, yes/no, on/off or 1/0)", d->name,
				quote(value, q, sizeof(q)));
			return -EINVAL;
		}
		memcpy(p, &b, sizeof(b));
		return 0;
	case CT_INT:
	case CT_SIZE:
	case CT_DURATION:
		rc = parse_number(value, type_units(d->type), &v);
		if (rc == -EINVAL) {
			static const char *const what[] = {
				[CT_INT] = "is not an integer",
				[CT_SIZE] = "is not a size (expected bytes, "
					    "optionally with K/M/G/KiB/MiB/GiB "
					    "suffix)",
				[CT_DURATION] = "is not a duration (expected "
						"milliseconds, optionally with "
						"ms/s/m/h/d suffix)",
			};
			set_err(err, errlen, "%s: %s %s", d->name,
				quote(value, q, sizeof(q)), what[d->type]);
			return -EINVAL;
		}
		if (rc < 0 || !in_range(d, v)) {
			fmt_range(d, range, sizeof(range));
			set_err(err, errlen, "%s: %s is out of range "
				"(expected %s)", d->name,
				quote(value, q, sizeof(q)), range);
			return -EINVAL;
		}
		store_int(p, d->size, v);
		return 0;
	case CT_ENUM:
		for (int i = 0; d->choices[i] != NULL; i++) {
			if (strcasecmp(value, d->choices[i]) == 0) {
				store_int(p, d->size, i);
				return 0;
			}
		}
		range[0] = '\0';
		for (int i = 0; d->choices[i] != NULL; i++) {
			size_t n = strlen(range);

			snprintf(range + n, sizeof(range) - n, "%s%s",
				 i > 0 ? "|" : "", d->choices[i]);
		}
		set_err(err, errlen, "%s: %s is not one of %s", d->name,
			quote(value, q, sizeof(q)), range);
		return -EINVAL;
	case CT_STRING:
		if (strlen(value) >= d->size) {
			set_err(err, errlen, "%s: value is longer than %zu "
				"bytes", d->name, d->size - 1);
			return -EINVAL;
		}
		strcpy(p, value);
		return 0;
	case CT_ADDR:
	case CT_ADDR_OFF:
		b = d->type == CT_ADDR || strcasecmp(value, "off") != 0;
		if (b) {
			rc = parse_addr(value, NULL, NULL);
			if (rc == -ERANGE) {
				set_err(err, errlen, "%s: %s: port must be "
					"0..65535", d->name,
					quote(value, q, sizeof(q)));
				return -EINVAL;
			}
			if (rc < 0 || strlen(value) >= d->size) {
				set_err(err, errlen, "%s: %s is not an address "
					"(expected IPv4:port, [IPv6]:port or "
					"localhost:port%s)", d->name,
					quote(value, q, sizeof(q)),
					d->type == CT_ADDR_OFF ? ", or off" : "");
				return -EINVAL;
			}
		}
		strcpy(p, b ? value : "off");
		if (d->type == CT_ADDR_OFF) {
			assert(c != NULL); /* broker-only key */
			memcpy((char *)c + d->aux_off, &b, sizeof(b));
		}
		return 0;
	}
	set_err(err, errlen, "%s: unsupported type", d->name);
	return -EINVAL;
}

/* Render key d's current value so that desc_set parses it back. */
static void desc_render(const struct config_desc *d, const struct config *c,
			const struct log_config *lc, char *buf, size_t len)
{
	const void *p = (d->flags & CD_TOPIC) ? (const char *)lc + d->off :
						(const char *)c + d->off;
	int64_t v;
	bool b;

	switch (d->type) {
	case CT_BOOL:
		memcpy(&b, p, sizeof(b));
		snprintf(buf, len, "%s", b ? "true" : "false");
		return;
	case CT_INT:
	case CT_SIZE:
	case CT_DURATION:
		snprintf(buf, len, "%" PRId64, load_int(p, d->size));
		return;
	case CT_ENUM:
		v = load_int(p, d->size);
		for (int64_t i = 0; d->choices[i] != NULL; i++) {
			if (i == v) {
				snprintf(buf, len, "%s", d->choices[i]);
				return;
			}
		}
		snprintf(buf, len, "%" PRId64, v);
		return;
	case CT_STRING:
	case CT_ADDR:
	case CT_ADDR_OFF:
		snprintf(buf, len, "%s", (const char *)p);
		return;
	}
	buf[0] = '\0';
}

/* --- public ------------------------------------------------------------ */

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NDESCS; i++) {
		int rc = desc_set(&descs[i], c, &c->topic_defaults,
				  descs[i].def, NULL, 0);

		assert(rc == 0); /* invariant 2 */
		(void)rc;
	}
}

/* The descriptor of `key`, or NULL with err "unknown key" set. */
static const struct config_desc *lookup(const char *key, char *err, size_t errlen)
{
	const struct config_desc *d = find_desc(key);

	set_err(err, errlen, "%s", "");
	if (d == NULL)
		set_err(err, errlen, "unknown key \"%s\"", key);
	return d;
}

int config_set(struct config *c, const char *key, const char *value,
	       char *err, size_t errlen)
{
	const struct config_desc *d = lookup(key, err, errlen);

	if (d == NULL)
		return -ENOENT;
	return desc_set(d, c, &c->topic_defaults, value, err, errlen);
}

int config_topic_set(struct log_config *lc, const char *key, const char *value,
		     char *err, size_t errlen)
{
	const struct config_desc *d = lookup(key, err, errlen);

	if (d == NULL)
		return -ENOENT;
	if (!(d->flags & CD_TOPIC)) {
		set_err(err, errlen, "%s: not a topic-level key (broker-wide "
			"only)", key);
		return -ENOENT;
	}
	return desc_set(d, NULL, lc, value, err, errlen);
}

static char *trim(char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Apply one line (without its newline) to *c.  Returns 0 or -EINVAL with
 * the reason (no "path:line: " prefix) in err. */
static int config_line(struct config *c, char *line, char *err, size_t errlen)
{
	char *s, *eq, *key, *value;

	/* A comment starts at a '#' that opens the line or follows a blank,
	 * so "a#b" stays a value. */
	for (char *p = line; *p != '\0'; p++) {
		if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			break;
		}
	}
	s = trim(line);
	if (*s == '\0')
		return 0;
	eq = strchr(s, '=');
	if (eq == NULL) {
		set_err(err, errlen, "missing \"=\" (expected \"key = value\")");
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (*key == '\0') {
		set_err(err, errlen, "missing key before \"=\"");
		return -EINVAL;
	}
	return config_set(c, key, value, err, errlen) < 0 ? -EINVAL : 0;
}

/* Read one line into buf (NUL-terminated, without its newline).  Returns 1,
 * 0 at end of file, -E2BIG when longer than cap - 1, -EILSEQ on a NUL
 * byte, or -EIO. */
static int read_line(FILE *f, char *buf, size_t cap)
{
	size_t n = 0;
	int ch;

	while ((ch = getc(f)) != EOF && ch != '\n') {
		if (n == cap - 1)
			return -E2BIG;
		if (ch == '\0')
			return -EILSEQ;
		buf[n++] = (char)ch;
	}
	buf[n] = '\0';
	if (ch == EOF && ferror(f))
		return -EIO;
	return ch == EOF && n == 0 ? 0 : 1;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct config tmp; /* applied to *c only when the whole file is valid */
	char line[CONFIG_LINE_MAX + 1], msg[512];
	unsigned lineno = 0;
	FILE *f;
	int rc;

	set_err(err, errlen, "%s", "");
	f = fopen(path, "re");
	if (f == NULL) {
		rc = -errno;
		set_err(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	tmp = *c;
	for (;;) {
		rc = read_line(f, line, sizeof(line));
		if (rc == 0)
			break;
		lineno++;
		if (rc == -E2BIG) {
			set_err(err, errlen, "%s:%u: line too long (more than "
				"%d bytes)", path, lineno, CONFIG_LINE_MAX);
			rc = -EINVAL;
			goto fail;
		}
		if (rc == -EILSEQ) {
			set_err(err, errlen, "%s:%u: NUL byte in line", path,
				lineno);
			rc = -EINVAL;
			goto fail;
		}
		if (rc < 0) {
			set_err(err, errlen, "%s: read error after line %u",
				path, lineno - 1);
			goto fail;
		}
		rc = config_line(&tmp, line, msg, sizeof(msg));
		if (rc < 0) {
			set_err(err, errlen, "%s:%u: %s", path, lineno, msg);
			goto fail;
		}
	}
	fclose(f);
	*c = tmp;
	return 0;
fail:
	fclose(f);
	return rc;
}

void config_each(const struct config *c, config_each_fn fn, void *arg)
{
	char buf[CONFIG_PATH_MAX];

	for (size_t i = 0; i < NDESCS; i++) {
		desc_render(&descs[i], c, &c->topic_defaults, buf, sizeof(buf));
		fn(descs[i].name, buf, arg);
	}
}

void config_topic_each(const struct log_config *lc, config_each_fn fn,
		       void *arg)
{
	char buf[CONFIG_PATH_MAX];

	for (size_t i = 0; i < NDESCS; i++) {
		if (!(descs[i].flags & CD_TOPIC))
			continue;
		desc_render(&descs[i], NULL, lc, buf, sizeof(buf));
		fn(descs[i].name, buf, arg);
	}
}

/* Human form of a size or duration bound for --help: "16MiB", "7d". */
static void fmt_human(enum config_type t, int64_t v, char *buf, size_t len)
{
	static const struct unit sizes[] = {
		{ "GiB", GiB }, { "MiB", MiB }, { "KiB", KiB }, { NULL, 0 },
	};
	static const struct unit durs[] = {
		{ "d", DAY }, { "h", HOUR }, { "m", MIN }, { "s", SEC },
		{ NULL, 0 },
	};
	const struct unit *u = t == CT_SIZE ? sizes :
			       t == CT_DURATION ? durs : no_units;

	for (; v > 0 && u->suffix != NULL; u++) {
		if (v % u->mult == 0) {
			snprintf(buf, len, "%" PRId64 "%s", v / u->mult,
				 u->suffix);
			return;
		}
	}
	snprintf(buf, len, "%" PRId64 "%s", v,
		 t == CT_DURATION && v > 0 ? "ms" : "");
}

static void fmt_type(const struct config_desc *d, char *buf, size_t len)
{
	static const char *const names[] = {
		[CT_INT] = "integer", [CT_SIZE] = "size",
		[CT_DURATION] = "duration",
	};
	char lo[32], hi[32];
	size_t n;

	switch (d->type) {
	case CT_BOOL:
		snprintf(buf, len, "bool");
		return;
	case CT_INT:
	case CT_SIZE:
	case CT_DURATION:
		fmt_human(d->type, d->min, lo, sizeof(lo));
		fmt_human(d->type, d->max, hi, sizeof(hi));
		if (d->max == INT64_MAX)
			snprintf(buf, len, "%s %s>= %s", names[d->type],
				 (d->flags & CD_NEG1) ? "-1 or " : "", lo);
		else
			snprintf(buf, len, "%s %s%s..%s", names[d->type],
				 (d->flags & CD_NEG1) ? "-1 or " : "", lo, hi);
		return;
	case CT_STRING:
		snprintf(buf, len, "string, up to %zu bytes", d->size - 1);
		return;
	case CT_ENUM:
		n = (size_t)snprintf(buf, len, "one of ");
		for (int i = 0; d->choices[i] != NULL && n < len; i++)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
					      i > 0 ? "|" : "", d->choices[i]);
		return;
	case CT_ADDR:
		snprintf(buf, len, "address host:port");
		return;
	case CT_ADDR_OFF:
		snprintf(buf, len, "address host:port, or off");
		return;
	}
	buf[0] = '\0';
}

/* Print `text` word-wrapped to 78 columns, each line indented by 6. */
static void print_wrapped(FILE *f, const char *text)
{
	const char *p = text;

	while (*p != '\0') {
		size_t n = strlen(p), cut = n;

		if (n > 72) {
			cut = 72;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = n;
		}
		fprintf(f, "      %.*s\n", (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

void config_print_help(FILE *f)
{
	const char *section = NULL;
	char type[128];

	fprintf(f, "Configuration keys: file lines \"key = value\"; sizes take "
		"K/M/G/KiB/MiB/GiB,\ndurations ms/s/m/h/d; [topic] keys are "
		"defaults that each topic may override.\n");
	for (size_t i = 0; i < NDESCS; i++) {
		const struct config_desc *d = &descs[i];

		if (section == NULL || strcmp(section, d->section) != 0) {
			section = d->section;
			fprintf(f, "\n%s:\n", section);
		}
		fmt_type(d, type, sizeof(type));
		fprintf(f, "  %s = %s%s\n      (%s)\n", d->name, d->def,
			(d->flags & CD_TOPIC) ? "  [topic]" : "", type);
		print_wrapped(f, d->help);
	}
}

int config_addr_resolve(const char *addr, struct sockaddr_storage *ss,
			socklen_t *len)
{
	return parse_addr(addr, ss, len) < 0 ? -EINVAL : 0;
}
