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

#ifdef __cplusplus
}
#endif

#endif
