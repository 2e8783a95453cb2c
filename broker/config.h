/* config — the daemon's settings: `key = value` files, command-line
 * overrides and per-topic overrides, all driven by one descriptor table in
 * config.c.  Every value is validated (type, range) before it is stored, so
 * a struct config or log_config filled through this module is always valid.
 * Read-only after start-up; topic keys may change at run time per topic. */
#ifndef BROKER_CONFIG_H
#define BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "broker/log.h"

/* "[ipv6]:port" fits: 39 + 2 brackets + 1 colon + 5 digits + NUL. */
#define CONFIG_ADDR_MAX 64
#define CONFIG_PATH_MAX 4096
/* Longest line config_load accepts, without its newline. */
#define CONFIG_LINE_MAX 4096

struct config {
	/* network */
	char listen[CONFIG_ADDR_MAX];       /* "host:port", validated */
	char admin_listen[CONFIG_ADDR_MAX]; /* "host:port", or "off" */
	bool admin_enabled;                 /* false when admin.listen = off */
	int64_t max_connections;
	int64_t idle_timeout_ms;            /* 0: never close idle clients */
	int64_t request_timeout_ms;         /* 0: a started frame may take forever */
	int64_t max_pending_request_bytes;  /* budget for frames being received */
	/* storage */
	char data_dir[CONFIG_PATH_MAX];
	bool auto_create_topics;
	int64_t default_partitions;
	int64_t io_uring_entries;
	int64_t max_open_segments;
	int64_t checkpoint_interval_ms;
	/* retention */
	int64_t retention_check_interval_ms;
	/* limits */
	int64_t max_request_bytes;
	int64_t max_batch_bytes;
	/* logging */
	int log_level;                      /* LOGL_* from broker/logging.h */
	/* defaults of the topic-level keys (segment.*, retention.*, flush.*,
	 * index.*); each topic may override them */
	struct log_config topic_defaults;
};

/* Fill *c with every key's default. */
void config_defaults(struct config *c);

/* Apply the file at `path` on top of *c: keys not in the file keep their
 * current value; a key given twice takes the later value.  All or nothing:
 * on error *c is unchanged.  Returns 0; -EINVAL with err set to
 * "path:line: reason" (unknown key, bad value, malformed or too long line);
 * or -errno with err "path: strerror" when the file cannot be read.
 * Borrows every argument; err is always NUL-terminated when errlen > 0. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Set one key (a command-line override).  Returns 0, -ENOENT (unknown key,
 * err "unknown key \"k\""), or -EINVAL (err "key: reason"); *c is unchanged
 * on error. */
int config_set(struct config *c, const char *key, const char *value,
	       char *err, size_t errlen);

/* Set one topic-level key in *lc (CreateTopic / AlterConfigs).  Returns 0,
 * -ENOENT for an unknown or broker-only key, or -EINVAL for a bad value;
 * err gets "key: reason" (or the -ENOENT message) and *lc is unchanged on
 * error. */
int config_topic_set(struct log_config *lc, const char *key, const char *value,
		     char *err, size_t errlen);

/* Callback of the _each functions: key and its value rendered as text that
 * config_set / config_topic_set parse back to the same value (sizes and
 * durations as plain integers).  Both strings are borrowed for the call. */
typedef void (*config_each_fn)(const char *key, const char *value, void *arg);

/* Every key of *c (broker and topic defaults), in table order. */
void config_each(const struct config *c, config_each_fn fn, void *arg);

/* The topic-level keys of *lc, in table order (for describe). */
void config_topic_each(const struct log_config *lc, config_each_fn fn,
		       void *arg);

/* Print every key, grouped by section, with its type, default, range and
 * meaning (brokerd --help). */
void config_print_help(FILE *f);

/* Resolve a validated address ("1.2.3.4:9092", "[::1]:9092",
 * "localhost:9092") into *ss / *len for bind(2).  No name lookup: localhost
 * is 127.0.0.1.  Returns 0 or -EINVAL. */
int config_addr_resolve(const char *addr, struct sockaddr_storage *ss,
			socklen_t *len);

#endif
