/* topic — the registry of topics: each topic is a name, a unique id, a
 * fixed number of partitions (one struct log each, in directory
 * <data>/<name>-<n>) and its topic-level config overrides.
 *
 * Durability: the list of topics lives in <data>/topics.meta, replaced
 * atomically (write temp file, fsync, rename, fsync directory) on every
 * create, delete and alter.  The metadata file is the commit point:
 *  1. create: partition directories first, then the metadata file;
 *  2. delete: the metadata file first, then the directories;
 * so after a crash at any moment a partition directory that the metadata
 * does not name is an orphan: it is removed at start-up (logged), and
 * removed again before a create reuses its name (no resurrected data).
 * Admin operations block the reactor for a few fsyncs; produce and fetch
 * never do.  Single-threaded, like the logs it owns.
 */
#ifndef BROKER_TOPIC_H
#define BROKER_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "broker/log.h"

#define TOPIC_NAME_MAX 249       /* as Kafka: a file name with room to spare */
#define TOPIC_PARTITIONS_MAX 10000

struct topic_reg;
struct topic;

/* Open the registry of data directory `data_dir`: read topics.meta, open
 * (recovering if needed) every partition of every topic with the topic's
 * effective config (`defaults` + its overrides), remove orphan partition
 * directories.  With no topics.meta but existing "<name>-<n>" directories
 * (a data directory from before metadata existed), adopts them as topics
 * with default configs and writes topics.meta.  Borrows ctx and defaults
 * (both must outlive the registry; defaults is copied).  Blocks.
 * Returns 0 and *out owned, or -errno (logged, naming the file). */
int topic_reg_open(const char *data_dir, struct log_ctx *ctx,
		   const struct log_config *defaults, struct topic_reg **out);

/* log_close every partition and free the registry.  Returns 0 or the first
 * -errno of a log_close (everything is freed anyway).  NULL is a no-op. */
int topic_reg_close(struct topic_reg *r);

/* Number of topics and the i-th in name order (0 <= i < count).  Indices
 * are invalidated by create and delete. */
size_t topic_reg_count(const struct topic_reg *r);
struct topic *topic_reg_at(const struct topic_reg *r, size_t i);

/* The topic named `name`, or NULL. */
struct topic *topic_find(const struct topic_reg *r, const char *name);

/* 0 if `name` (len bytes, which may hold a NUL) is a valid topic name:
 * 1..TOPIC_NAME_MAX bytes of [A-Za-z0-9._-], not "." or "..".  Else
 * -EINVAL with err naming what is wrong. */
int topic_name_check(const char *name, size_t len, char *err, size_t errlen);

/* Create a topic with `partitions` partitions (0 < partitions <=
 * TOPIC_PARTITIONS_MAX) and n topic-level overrides keys[i] = values[i].
 * Returns 0 and *out (owned by the registry), or with err set:
 * -EINVAL bad name, -EEXIST exists, -ERANGE bad partition count,
 * -ENOENT unknown/broker-only config key, -EDOM bad config value
 * (err "key: reason"), or -errno from the file system (nothing created). */
int topic_create(struct topic_reg *r, const char *name, int partitions,
		 const char *const *keys, const char *const *values, size_t n,
		 char *err, size_t errlen, struct topic **out);

/* Delete the topic: write the metadata without it (the commit point),
 * drop it from the registry, wake its waiters with -ENOENT, then destroy
 * every partition (in-flight appends complete with -ECANCELED; slices
 * already handed out stay readable until released).  `t` is freed.  Must
 * not be called from inside a wake callback.  Returns 0 or -errno: an
 * error before the metadata write leaves the topic untouched; after it the
 * topic is gone and only removing its files failed. */
int topic_delete(struct topic_reg *r, struct topic *t);

/* Apply overrides set_keys[i] = set_values[i] and remove the overrides in
 * reset_keys, all or nothing, persist, then log_set_config every partition.
 * Returns 0, or -ENOENT / -EDOM with err "key: reason", or -errno. */
int topic_alter(struct topic_reg *r, struct topic *t,
		const char *const *set_keys, const char *const *set_values,
		size_t nset, const char *const *reset_keys, size_t nreset,
		char *err, size_t errlen);

const char *topic_name(const struct topic *t);
uint64_t topic_id(const struct topic *t);
int64_t topic_created_ms(const struct topic *t);
int topic_partitions(const struct topic *t);
/* The log of partition p (0 <= p < topic_partitions). */
struct log *topic_log(const struct topic *t, int p);
/* Effective config: broker defaults with the overrides applied. */
const struct log_config *topic_config(const struct topic *t);
/* Every topic-level key with its effective value; is_default is false for
 * the keys this topic overrides.  Strings are borrowed for the call. */
void topic_config_each(const struct topic *t,
		       void (*fn)(const char *key, const char *value,
				  bool is_default, void *arg),
		       void *arg);
/* Next partition for round-robin produce. */
int topic_next_partition(struct topic *t);

/* --- long-poll waiters ------------------------------------------------------- */

/* A fetch waiting for data on one partition: caller storage, zeroed before
 * first use.  wake() is called (the waiter disarmed just before) when the
 * partition's high watermark advances (reason 0) or the topic is deleted
 * (reason -ENOENT).  wake may re-arm its waiter (it then waits for the next
 * advance) and may disarm or free other waiters.  topic_reg_close disarms
 * every waiter without calling it. */
struct topic_waiter {
	void (*wake)(struct topic_waiter *w, int reason);
	/* private */
	LIST_ENTRY(topic_waiter) link;
	bool armed;
};

/* Arm w on partition p of t (no-op if already armed). */
void topic_wait(struct topic *t, int p, struct topic_waiter *w);
/* Disarm w (no-op if not armed). */
void topic_unwait(struct topic_waiter *w);

#endif
