/* offsets — the consumer offsets store: (group, topic, partition) ->
 * (offset, metadata, commit time).
 *
 * Durability: every commit is one record batch appended with acks=all to an
 * internal partition log in <data>/__consumer_offsets/ (flush.mode=always),
 * so concurrent commits share one fdatasync (group commit) and a commit
 * costs one small write.  A commit is applied to the in-memory table only
 * once durable, in log order, so readers never see an offset that could
 * still be lost and a committed offset never goes backwards after a crash.
 * Compaction: when the log holds more than one segment, the table is
 * written to <data>/__consumer_offsets/snapshot (atomic replace) naming the
 * log offset it covers, then the older segments are deleted.  Start-up
 * loads the snapshot and replays the log from the offset it covers.
 * Single-threaded (the reactor thread).
 */
#ifndef BROKER_OFFSETS_H
#define BROKER_OFFSETS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "broker/log.h"

#define OFS_GROUP_MAX 255
#define OFS_METADATA_MAX 1024

struct offsets;

struct ofs_value {
	int64_t offset;
	int64_t commit_time_ms;
	const char *metadata;   /* NUL-terminated, borrowed from the store */
};

/* One (topic, partition, offset, metadata) of a commit; borrowed. */
struct ofs_entry {
	const char *topic;
	uint32_t partition;
	int64_t offset;
	const char *metadata;   /* may be NULL */
};

struct ofs_op;
/* res 0: durable and applied; -errno: not committed. */
typedef void (*ofs_cb)(struct ofs_op *op, int res);

/* An asynchronous commit or delete: caller storage, alive until cb. */
struct ofs_op {
	ofs_cb cb;
	void *arg;
	/* private */
	struct offsets *o;
	struct log_append app;
	uint8_t *buf;
	size_t buflen;
	LIST_ENTRY(ofs_op) inflight; /* appended, not yet durable */
};

/* Open (creating if needed) the store under data_dir, load the snapshot
 * and replay the log.  Borrows ctx.  Blocks (start-up).  Returns 0 and
 * *out owned, or -errno (logged). */
int ofs_open(const char *data_dir, struct log_ctx *ctx, struct offsets **out);

/* Write a final snapshot, close the log, free.  Blocks.  NULL is a no-op.
 * Returns 0 or -errno. */
int ofs_close(struct offsets *o);

/* Commit n entries for `group` as one durable unit.  Validates lengths
 * (group 1..OFS_GROUP_MAX bytes, metadata <= OFS_METADATA_MAX, offset >= 0)
 * and returns -EINVAL without calling cb, or -EROFS/-ENOMEM; else 0 and
 * op->cb runs once the commit is durable (or failed). */
int ofs_commit(struct offsets *o, const char *group,
	       const struct ofs_entry *e, size_t n, struct ofs_op *op);

/* Delete every offset of `group` (durably, like a commit).  Returns
 * -ENOENT when the group has no offsets, else as ofs_commit. */
int ofs_delete_group(struct offsets *o, const char *group, struct ofs_op *op);

/* Forget every offset of `topic` in every group (the topic was deleted):
 * at once in memory, durably in the background (nobody waits).  Commits
 * still in flight for the topic are covered too: they get tombstones after
 * them in the log and are not applied when they complete, so a topic
 * recreated under the same name never inherits an old offset.  A crash
 * before the tombstones are durable brings the offsets back, so start-up
 * calls this for every topic that no longer exists.  Returns 0 or -errno. */
int ofs_delete_topic(struct offsets *o, const char *topic);

/* The committed value, or -ENOENT. */
int ofs_get(const struct offsets *o, const char *group, const char *topic,
	    uint32_t partition, struct ofs_value *out);

/* Groups in name order, with the number of partitions each has. */
void ofs_each_group(const struct offsets *o,
		    void (*fn)(const char *group, size_t partitions, void *arg),
		    void *arg);

/* Offsets of one group ordered by (topic, partition).  Returns -ENOENT
 * when the group has none. */
int ofs_each(const struct offsets *o, const char *group,
	     void (*fn)(const char *topic, uint32_t partition,
			const struct ofs_value *v, void *arg),
	     void *arg);

/* Maintenance (retention timer): snapshot and drop old segments when the
 * log has grown past one segment.  Returns 0 or -errno (logged). */
int ofs_compact(struct offsets *o);

#endif
