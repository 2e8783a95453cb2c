/* brokerd/client.h — the brokerd client library, libbrokerc.
 *
 * This first layer is the protocol itself: a blocking connection that sends
 * one protobuf Request (proto/broker.proto, installed as
 * <brokerd/broker.pb-c.h>) and returns its Response, plus the record batch
 * codec producers and consumers need.  The batching producer, the tailing
 * consumer and admin helpers build on it.
 *
 * Conventions:
 *  - Functions return 0 (or a count) on success and a negative errno value
 *    on failure; bk_strerror() names it.  A broker-side failure is not a
 *    transport failure: the call returns 0 and resp->error / error_message
 *    say what the broker refused (bk_error_name() names the code).
 *  - The library never prints and never aborts; allocation failure is
 *    -ENOMEM.
 *  - A struct bk_conn is not thread-safe: use one per thread, or lock.
 */
#ifndef BROKERD_CLIENT_H
#define BROKERD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <brokerd/broker.pb-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BK_VERSION "0.2.0"

struct bk_conn;
struct bk_producer;
struct bk_consumer;

/* Connect to `addr` ("host:port", "[v6addr]:port"; host may be a name).
 * timeout_ms bounds the connect and every later call (0: 10 s).
 * Returns 0 and *out (free with bk_conn_close), -EINVAL for a malformed
 * address, -ECONNREFUSED / -ETIMEDOUT / -EHOSTUNREACH / ... */
int bk_conn_open(const char *addr, int timeout_ms, struct bk_conn **out);

/* Close and free.  NULL is a no-op. */
void bk_conn_close(struct bk_conn *c);

/* Send req and wait for its response.  Sets req->correlation_id (and
 * client_id when NULL or empty: "libbrokerc").  Borrows req.  On 0, *resp
 * is owned by the caller: free it with bk_response_free.  Returns -EPIPE /
 * -ECONNRESET when the broker closed the connection, -ETIMEDOUT, -EPROTO
 * for a response that is not valid protobuf or answers another request,
 * -EMSGSIZE for a response frame above 1 GiB.  After any error the
 * connection is unusable: close it. */
int bk_conn_call(struct bk_conn *c, Brokerd__Request *req,
		 Brokerd__Response **resp);

void bk_response_free(Brokerd__Response *resp);

/* "OK", "UNKNOWN_TOPIC", ... for a wire error code; "?" if unknown. */
const char *bk_error_name(int code);

/* --- errors -----------------------------------------------------------------
 * Every call below returns >= 0 on success or a negative error: -errno for
 * system and transport failures (-ECONNREFUSED, -ETIMEDOUT, -ENOMEM, ...),
 * or BK_ERR(code) when the broker refused with wire ErrorCode `code`. */
#define BK_ERR_BROKER_BASE 100000
#define BK_ERR(code) (-(BK_ERR_BROKER_BASE + (int)(code)))
/* The wire ErrorCode inside err, or 0 if err is not a broker error. */
static inline int bk_err_code(int err)
{
	return err <= -BK_ERR_BROKER_BASE ? -err - BK_ERR_BROKER_BASE : 0;
}
/* 1 if retrying the same call later may succeed (connection loss, timeout,
 * NOT_ENOUGH_SPACE, BROKER_SHUTTING_DOWN, CORRUPT_RECORD_BATCH, ...). */
int bk_err_retriable(int err);

/* Text for an error returned by this library: strerror for -errno, the
 * code's name and meaning for a broker error. */
const char *bk_strerror(int err);

/* Library log lines (connection loss, reconnects, retries): never printed
 * by the library itself.  level: 0 debug, 1 info, 2 warn, 3 error.  A
 * producer calls it from its I/O thread, never holding its lock. */
typedef void (*bk_log_cb)(void *opaque, int level, const char *msg);

/* --- records ----------------------------------------------------------------- */

struct bk_header {
	const char *key;        /* NUL-terminated */
	const void *value;
	int32_t value_len;      /* -1: null value */
};

/* One record.  Producing: everything is borrowed for the call and copied.
 * Consuming: every pointer borrows from the consumer and stays valid until
 * the next bk_consumer_poll or bk_consumer_close. */
struct bk_record {
	const char *topic;
	int32_t partition;      /* produce: -1 = by key (murmur2, as Kafka) or,
	                           without a key, round-robin per batch */
	int64_t offset;         /* consume only */
	int64_t timestamp_ms;   /* produce: 0 = now */
	const void *key;
	int32_t key_len;        /* -1: null key */
	const void *value;
	int32_t value_len;      /* -1: null value */
	const struct bk_header *headers;
	uint32_t nheaders;
};

#define BK_ACKS_ALL    0    /* as Brokerd__Acks */
#define BK_ACKS_LEADER 1
#define BK_ACKS_NONE   2

/* --- producer -----------------------------------------------------------------
 * Asynchronous and thread-safe: bk_producer_send queues a copy of the record
 * into a per-partition batch; a background I/O thread sends a batch when it
 * reaches batch_size or is linger_ms old, keeps at most max_in_flight
 * requests in flight per connection and one batch per partition (so a retry
 * never reorders a partition's records), retries retriable errors with
 * backoff until delivery_timeout_ms, and reconnects after a connection loss.
 * Every record's delivery callback runs exactly once, on the I/O thread,
 * without the producer's lock held: a callback may call bk_producer_send,
 * but bk_producer_flush / bk_producer_send_sync from a callback return
 * -EDEADLK, and bk_producer_close must not be called from one.
 *
 * Partitions: an explicit rec->partition, else murmur2 of the key, else
 * "sticky": keyless records fill one partition's batch, then the next
 * partition's (round-robin per batch).  Partition counts come from
 * describe_topic, cached per topic and refreshed after UNKNOWN_PARTITION;
 * a record for a topic the broker lacks fails with BK_ERR(UNKNOWN_TOPIC)
 * unless the broker creates it on that produce (auto.create.topics).
 *
 * Delivery semantics: at least once.  With acks != none, a batch in flight
 * when the connection is lost is sent again, and may then be stored twice
 * (as Kafka without enable.idempotence); a partition's records are never
 * reordered.  With acks none, a record counts as delivered (offset -1) once
 * its request is written to the socket. */

/* The type of conf.dr_cb: the producer-wide delivery report, as
 * librdkafka's dr_msg_cb.  opaque is conf.opaque, msg_opaque the record's
 * (bk_producer_send's last argument); the rest as for bk_delivery_cb.
 * Called like a record's callback (once per record, on the I/O thread,
 * without the lock), for every record sent with cb == NULL. */
typedef void (*bk_dr_cb)(void *opaque, void *msg_opaque, int err, const char *topic,
			 int32_t partition, int64_t offset);

struct bk_producer_conf {
	const char *bootstrap;       /* "host:port" (required) */
	const char *client_id;       /* default "libbrokerc" */
	int acks;                    /* BK_ACKS_ALL */
	size_t batch_size;           /* 65536 bytes per partition batch */
	int linger_ms;               /* 5 */
	int max_in_flight;           /* 5 requests per connection */
	int retry_backoff_ms;        /* 100, doubling up to 1000 */
	int delivery_timeout_ms;     /* 120000: then the record fails */
	int request_timeout_ms;      /* 30000 */
	size_t buffer_memory;        /* 33554432 bytes queued at most */
	bk_log_cb log_cb;            /* NULL: silent */
	void *log_opaque;
	int max_block_ms;            /* 60000: how long bk_producer_send waits
	                                for room in buffer_memory; 0: -ENOBUFS
	                                at once (as librdkafka/Kafka's
	                                max.block.ms) */
	bk_dr_cb dr_cb;              /* NULL: only records' own callbacks */
	void *opaque;                /* the producer's: dr_cb's first argument */
};

/* Fill conf with the defaults above (bootstrap NULL). */
void bk_producer_conf_init(struct bk_producer_conf *conf);

/* err 0: stored at (partition, offset); else the record was not stored (or,
 * after a lost connection with acks != none, may have been: -EPROTO is
 * never used for that, -ETIMEDOUT / -ECONNRESET say "unknown").  Errors:
 * BK_ERR(code) the broker refused (UNKNOWN_TOPIC, UNKNOWN_PARTITION,
 * MESSAGE_TOO_LARGE, ...), -ETIMEDOUT delivery_timeout_ms passed, -ESHUTDOWN
 * the producer closed first, -ENOMEM.  topic is borrowed for the call;
 * partition is -1 when the record never got one, offset -1 on error and
 * with acks none. */
typedef void (*bk_delivery_cb)(void *msg_opaque, int err, const char *topic,
			       int32_t partition, int64_t offset);

/* Create a producer (connects lazily).  Returns 0 and *out, -EINVAL for a
 * bad conf (max_block_ms < 0, ...), -ENOMEM. */
int bk_producer_new(const struct bk_producer_conf *conf, struct bk_producer **out);

/* Queue rec (copied) for rec->topic.  When buffer_memory is full, waits
 * up to conf.max_block_ms for deliveries to free room (every queued batch
 * is sent at once meanwhile); from a delivery callback it never waits.
 * Returns 0 (a callback will run: cb, else conf.dr_cb with msg_opaque, else
 * none), -ENOBUFS (still full after max_block_ms: flush or retry later),
 * -EMSGSIZE (larger than the broker's max.batch.bytes, 8 MiB until the
 * first connection tells, or than buffer_memory), -EINVAL (no topic or
 * longer than 249 bytes, bad lengths, partition < -1), -ESHUTDOWN (closing,
 * also while waiting), -ENOMEM.  cb may be NULL.  Thread-safe; waits only
 * for buffer space, never for the network otherwise. */
int bk_producer_send(struct bk_producer *p, const struct bk_record *rec,
		     bk_delivery_cb cb, void *msg_opaque);

/* Send and wait for the delivery (its batch goes at once, without waiting
 * for linger_ms).  Returns 0 with *partition / *offset set (either may be
 * NULL), the delivery error, an error of bk_producer_send, or -EDEADLK from
 * a delivery callback. */
int bk_producer_send_sync(struct bk_producer *p, const struct bk_record *rec,
			  int32_t *partition, int64_t *offset);

/* Send everything queued now (linger_ms does not apply while a flush
 * waits) and wait until every callback ran, including those of records
 * other threads send meanwhile.  timeout_ms < 0: no limit.  Returns 0,
 * -ETIMEDOUT (records remain queued or in flight), -EDEADLK from a delivery
 * callback. */
int bk_producer_flush(struct bk_producer *p, int timeout_ms);

/* Flush (bounded by delivery_timeout_ms: records still pending then fail
 * with -ESHUTDOWN), stop the I/O thread, free.  NULL is a no-op.  No other
 * call on p may run concurrently or follow. */
void bk_producer_close(struct bk_producer *p);

/* --- consumer -----------------------------------------------------------------
 * Single-threaded (use it from one thread): bk_consumer_poll hands out
 * records one at a time from fetched batches (CRC-checked), and keeps the
 * next fetch of each partition in flight while the application works
 * (prefetch).  Fetches long-poll, so a caught-up consumer tails the log.
 * Each assigned partition fetches on its own connection (plus one for
 * offsets and commits), so a record on any partition is handed out as soon
 * as it arrives, whatever the other partitions' long polls do.
 * With a group, positions are committed as that group's offsets. */

#define BK_OFFSET_LATEST    (-1)  /* the high watermark: new records only */
#define BK_OFFSET_EARLIEST  (-2)  /* the log start offset */
#define BK_OFFSET_COMMITTED (-3)  /* the group's committed offset, else
                                     auto_offset_reset */

struct bk_consumer_conf {
	const char *bootstrap;       /* "host:port" (required) */
	const char *client_id;       /* default "libbrokerc" */
	const char *group;           /* NULL: no group, no commits */
	int64_t auto_offset_reset;   /* BK_OFFSET_EARLIEST or LATEST (default
	                                LATEST): where BK_OFFSET_COMMITTED starts
	                                without a commit, and after an
	                                out-of-range fetch */
	uint32_t fetch_max_bytes;    /* 1048576 per fetch */
	uint32_t fetch_max_wait_ms;  /* 500 */
	uint32_t fetch_min_bytes;    /* 1 */
	int request_timeout_ms;      /* 30000 (must exceed fetch_max_wait_ms) */
	bk_log_cb log_cb;
	void *log_opaque;
};

void bk_consumer_conf_init(struct bk_consumer_conf *conf);
int bk_consumer_new(const struct bk_consumer_conf *conf, struct bk_consumer **out);

/* Start consuming partition `partition` of `topic` at `offset` (>= 0 or a
 * BK_OFFSET_* value).  Asks the broker and waits, at most
 * request_timeout_ms.  Returns 0, BK_ERR(UNKNOWN_TOPIC / UNKNOWN_PARTITION),
 * -EEXIST if it is assigned already, -EINVAL (BK_OFFSET_COMMITTED without a
 * group), or a transport error; on an error it is not assigned. */
int bk_consumer_assign(struct bk_consumer *c, const char *topic,
		       int32_t partition, int64_t offset);
/* Stop consuming it.  -ENOENT if it is not assigned (so for the calls
 * below). */
int bk_consumer_unassign(struct bk_consumer *c, const char *topic, int32_t partition);
/* Move an assigned partition to offset (>= 0 or BK_OFFSET_*), or to the
 * first record with a timestamp >= ts_ms (the end if there is none); the
 * BK_OFFSET_* values and times are asked of the broker, as for assign.
 * A seek restarts a partition stopped by an error. */
int bk_consumer_seek(struct bk_consumer *c, const char *topic, int32_t partition,
		     int64_t offset);
int bk_consumer_seek_time(struct bk_consumer *c, const char *topic,
			  int32_t partition, int64_t ts_ms);

/* The next record of any assigned partition, waiting up to timeout_ms
 * (0: only what is already fetched; -1: forever).  Returns 1 with *rec
 * filled (valid until the next poll), 0 when none arrived in time, -EINTR
 * when a signal handler interrupted the wait, or an error that stopped one
 * partition at its position, returned once: -EBADMSG for a batch that
 * fails the client's CRC/structure check, BK_ERR(CORRUPT_DATA) when the
 * broker found it corrupt (either named with its offset through the log
 * callback), BK_ERR(UNKNOWN_TOPIC) when the topic was deleted.  A lost
 * connection is not an error: it is logged and re-established. */
int bk_consumer_poll(struct bk_consumer *c, int timeout_ms, struct bk_record *rec);

/* Next offset to be returned for a partition; -EAGAIN while it is being
 * reset (after an out-of-range fetch). */
int bk_consumer_position(struct bk_consumer *c, const char *topic, int32_t partition,
			 int64_t *offset);

/* Commit the position of every assigned partition for the group: durable
 * when 0 is returned.  -EINVAL without a group. */
int bk_consumer_commit(struct bk_consumer *c);
/* Start a commit and return; cb (may be NULL) runs from a later
 * bk_consumer_poll / bk_consumer_commit / bk_consumer_close. */
int bk_consumer_commit_async(struct bk_consumer *c,
			     void (*cb)(void *opaque, int err), void *opaque);

/* Finish async commits, close, free.  NULL is a no-op. */
void bk_consumer_close(struct bk_consumer *c);

/* --- admin --------------------------------------------------------------------
 * Typed calls for every topic, offset, group and broker operation of the
 * protocol, in the manner of Kafka's AdminClient but blocking: each call
 * sends one request on the handle's connection and waits for its answer, at
 * most request_timeout_ms.
 *
 * Errors: each call returns 0 or a negative error of this library:
 * BK_ERR(code) when the broker refused (bk_err_code() gives the wire
 * ErrorCode back), -errno for a transport failure (-ECONNREFUSED,
 * -ECONNRESET, -ETIMEDOUT, ...), -EPROTO for an answer that does not fit the
 * request, -EINVAL for a bad argument (checked before anything is sent),
 * -ENOMEM.  bk_admin_errmsg() then gives the text of the failure: for a
 * broker refusal the broker's own message ("topic 'orders' does not exist").
 * On an error nothing is stored in *out.
 *
 * A call never retries.  After a transport error (or a refusal after which
 * the broker closes the connection: INVALID_REQUEST, FRAME_TOO_LARGE,
 * TOO_MANY_CONNECTIONS) the handle drops its connection and the next call
 * opens a new one; a request that failed on the way may or may not have
 * been applied (a create then fails with TOPIC_ALREADY_EXISTS).
 *
 * Results: an out-parameter result (struct bk_topic_info, ...) is one
 * allocation owned by the caller, strings and arrays included; free it with
 * bk_admin_free().  Strings in results are never NULL ("" when empty).
 *
 * Thread-safety: a struct bk_admin is not thread-safe; use one per thread,
 * or lock.  Results are plain memory, independent of the handle. */

struct bk_admin;

struct bk_admin_conf {
	const char *bootstrap;       /* "host:port" (required) */
	const char *client_id;       /* default "libbrokerc" */
	int request_timeout_ms;      /* 10000: bounds the connect and each call
	                                (<= 0: 10000, as bk_conn_open) */
};

/* Fill conf with the defaults above (bootstrap NULL). */
void bk_admin_conf_init(struct bk_admin_conf *conf);

/* Connect to conf->bootstrap (strings are copied; conf may go away).
 * Returns 0 and *out (free with bk_admin_close), -EINVAL for a missing or
 * malformed address, the connect error (-ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH, ...) or -ENOMEM; no handle is made on an error. */
int bk_admin_new(const struct bk_admin_conf *conf, struct bk_admin **out);

/* Close the connection and free.  NULL is a no-op.  Results stay valid. */
void bk_admin_close(struct bk_admin *a);

/* The text of the last failed call on a: the broker's message for
 * BK_ERR(code), else a description of the local or transport error; ""
 * after a call that succeeded.  Borrowed: valid until the next call on a. */
const char *bk_admin_errmsg(const struct bk_admin *a);

/* Free any result of the calls below.  NULL is a no-op. */
void bk_admin_free(void *result);

/* A topic-level configuration key and value (as in broker.conf: plain
 * integers for sizes and ms).  Passed in: is_default is ignored. */
struct bk_config {
	const char *name;       /* e.g. "retention.ms" */
	const char *value;
	int is_default;         /* results: 1 if the broker default applies,
	                           0 if the topic overrides it */
};

/* A list of configs: every topic-level key with its effective value. */
struct bk_config_list {
	size_t nconfigs;
	struct bk_config *configs;
};

struct bk_partition_info {
	int32_t partition;
	int64_t log_start_offset;   /* first offset still stored */
	int64_t high_watermark;     /* what consumers can read (below it) */
	int64_t log_end_offset;     /* next offset to assign */
	uint64_t size_bytes;
	uint32_t segment_count;
	int error;                  /* 0, or BK_ERR(STORAGE_ERROR) when the
	                               partition is read-only */
	const char *error_message;  /* "" when error is 0 */
};

struct bk_topic_info {
	const char *name;
	uint64_t topic_id;          /* differs when a topic is re-created */
	int64_t created_ms;         /* wall clock, ms since the epoch */
	int32_t partition_count;
	size_t nconfigs;
	struct bk_config *configs;  /* every topic-level key, effective value */
	struct bk_partition_info *partitions; /* partition_count, in order */
};

/* Create `topic` with `partitions` partitions (0: the broker's
 * default.partitions) and nconfigs overrides of its topic-level configs
 * (configs may be NULL when nconfigs is 0).  Borrows everything.  Returns 0
 * and, when out is not NULL, the new topic's description in *out;
 * BK_ERR(TOPIC_ALREADY_EXISTS / INVALID_TOPIC_NAME / INVALID_PARTITIONS /
 * INVALID_CONFIG); -EINVAL for a NULL topic, partitions < 0, or a config
 * without a name or value. */
int bk_admin_create_topic(struct bk_admin *a, const char *topic, int32_t partitions,
			  const struct bk_config *configs, size_t nconfigs,
			  struct bk_topic_info **out);

/* Delete `topic`, its partitions and every offset committed for it.
 * Returns 0 or BK_ERR(UNKNOWN_TOPIC). */
int bk_admin_delete_topic(struct bk_admin *a, const char *topic);

struct bk_topic_summary {
	const char *name;
	int32_t partition_count;
	uint64_t size_bytes;        /* of every partition */
};

struct bk_topic_list {
	size_t ntopics;
	struct bk_topic_summary *topics;
};

/* Every topic.  Returns 0 and *out. */
int bk_admin_list_topics(struct bk_admin *a, struct bk_topic_list **out);

/* Describe `topic`: configs and, per partition, offsets, size and
 * segments.  Returns 0 and *out, or BK_ERR(UNKNOWN_TOPIC). */
int bk_admin_describe_topic(struct bk_admin *a, const char *topic,
			    struct bk_topic_info **out);

/* Alter `topic`'s configs at run time: set nset overrides and return the
 * nreset keys named in `reset` to the broker default, all or nothing.
 * Either array may be NULL when its count is 0; at least one is needed.
 * Returns 0 and, when out is not NULL, every config after the change;
 * BK_ERR(UNKNOWN_TOPIC / INVALID_CONFIG); -EINVAL for nothing to change or
 * a NULL name or value. */
int bk_admin_alter_topic_configs(struct bk_admin *a, const char *topic,
				 const struct bk_config *set, size_t nset,
				 const char *const *reset, size_t nreset,
				 struct bk_config_list **out);

/* One partition's offsets (caller storage: no allocation). */
struct bk_listed_offset {
	int64_t offset;             /* the answer to `when` */
	int64_t log_start_offset;
	int64_t high_watermark;
};

/* The offset of `partition` of `topic` at `when`: BK_OFFSET_EARLIEST (the
 * log start offset), BK_OFFSET_LATEST (the high watermark), or a time in ms
 * since the epoch >= 0 (the first offset whose record timestamp is >= it;
 * the high watermark when there is none).  Returns 0 and *out;
 * BK_ERR(UNKNOWN_TOPIC / UNKNOWN_PARTITION), BK_ERR(INVALID_REQUEST) for
 * another negative `when`; -EINVAL for partition < 0. */
int bk_admin_list_offset(struct bk_admin *a, const char *topic, int32_t partition,
			 int64_t when, struct bk_listed_offset *out);

/* One offset to commit. */
struct bk_offset_commit {
	const char *topic;
	int32_t partition;
	int64_t offset;             /* the next offset the group will consume */
	const char *metadata;       /* free text up to 1 KiB; NULL: none */
};

/* Commit n offsets for `group` (1-255 bytes), all or nothing: every
 * partition must exist.  Returns 0 once the commit is durable;
 * BK_ERR(UNKNOWN_TOPIC / UNKNOWN_PARTITION / INVALID_GROUP /
 * INVALID_REQUEST (negative offset, metadata too long)); -EINVAL for n == 0,
 * a NULL group or topic, or partition < 0. */
int bk_admin_commit_offsets(struct bk_admin *a, const char *group,
			    const struct bk_offset_commit *offsets, size_t n);

struct bk_topic_partition {
	const char *topic;
	int32_t partition;
};

struct bk_committed_offset {
	const char *topic;
	int32_t partition;
	int64_t offset;             /* -1: nothing committed */
	const char *metadata;
	int64_t commit_time_ms;     /* wall clock; 0 when nothing committed */
	int64_t high_watermark;     /* -1 when the partition no longer exists */
	int64_t lag;                /* high_watermark - offset (>= 0), -1 when
	                               either is unknown */
};

/* A group's committed offsets. */
struct bk_group_offsets {
	const char *group;
	int64_t lag;                /* summed over the partitions with a lag */
	size_t noffsets;
	struct bk_committed_offset *offsets;
};

/* The offsets `group` committed for the n partitions in parts, in that
 * order (offset -1 for one without a commit), or, with n == 0 (parts may
 * be NULL), for every partition it committed.  Returns 0 and *out;
 * BK_ERR(INVALID_GROUP); -EINVAL for a NULL group or topic or partition
 * < 0.  An unknown group is not an error: it has no commits. */
int bk_admin_fetch_offsets(struct bk_admin *a, const char *group,
			   const struct bk_topic_partition *parts, size_t n,
			   struct bk_group_offsets **out);

/* Describe `group`: every committed offset with its partition's high
 * watermark and the lag, and the total lag.  Returns 0 and *out
 * (noffsets 0 for a group without commits, which the protocol does not
 * tell from an unknown group), BK_ERR(INVALID_GROUP). */
int bk_admin_describe_group(struct bk_admin *a, const char *group,
			    struct bk_group_offsets **out);

struct bk_group_summary {
	const char *group;
	uint32_t partitions;        /* with a committed offset */
	int64_t lag;                /* summed over them */
};

struct bk_group_list {
	size_t ngroups;
	struct bk_group_summary *groups;
};

/* Every group with committed offsets.  Returns 0 and *out. */
int bk_admin_list_groups(struct bk_admin *a, struct bk_group_list **out);

/* Delete every offset `group` committed.  Returns 0 or
 * BK_ERR(UNKNOWN_GROUP) when it has none, BK_ERR(INVALID_GROUP). */
int bk_admin_delete_group(struct bk_admin *a, const char *group);

struct bk_broker_status {
	const char *broker_version;  /* e.g. "0.2.0" */
	int64_t uptime_ms;
	uint32_t topic_count;
	uint32_t partition_count;    /* of every topic */
	uint64_t data_bytes;         /* bytes of every partition log */
	uint64_t disk_free_bytes;    /* of the data directory's file system */
	uint64_t disk_total_bytes;
	uint32_t connections;        /* open client connections, this one too */
	const char *data_dir;
};

/* The broker's status.  Returns 0 and *out. */
int bk_admin_broker_status(struct bk_admin *a, struct bk_broker_status **out);

struct bk_api_version {
	uint32_t key;                /* the op field number of Request */
	const char *name;            /* e.g. "create_topic" */
	uint32_t min_version, max_version;
};

struct bk_api_versions {
	const char *broker_version;
	uint64_t max_request_bytes;  /* largest request frame accepted */
	uint64_t max_batch_bytes;    /* largest record batch accepted */
	size_t napis;
	struct bk_api_version *apis;
};

/* The operations and versions the broker speaks, and its limits.  Returns
 * 0 and *out. */
int bk_admin_api_versions(struct bk_admin *a, struct bk_api_versions **out);

#ifdef __cplusplus
}
#endif

#endif
