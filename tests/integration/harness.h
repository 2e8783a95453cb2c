/* harness — integration-test support: start a real brokerd (the binary the
 * build just made) on an ephemeral loopback port with a temporary data
 * directory, and a minimal blocking client that speaks the wire protocol
 * (4-byte big-endian length + protobuf Request/Response) to it.
 * Every wait is bounded; failures abort the test through Check. */
#ifndef BROKER_TESTS_HARNESS_H
#define BROKER_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/broker.pb-c.h"

struct tb {
	pid_t pid;
	int port;
	char *dir;      /* data directory (owned; removed by tb_cleanup) */
	char *log;      /* brokerd's stderr */
	char extra[8][128]; /* extra "-o key=value" settings, kept for restarts */
	int nextra;
	long nofile;    /* > 0: start brokerd with RLIMIT_NOFILE soft = hard = this */
};

/* Add "-o kv" to every start of b (call before tb_start). */
void tb_set(struct tb *b, const char *kv);
/* Start brokerd on 127.0.0.1:0 with a fresh data directory (first start)
 * or the same one (restart); wait until it logs "ready".  Fails the test
 * if it does not within 20 s. */
void tb_start(struct tb *b);
/* SIGTERM and wait; returns the exit status (or -1 if killed by a signal). */
int tb_stop(struct tb *b);
/* SIGKILL and wait. */
void tb_kill9(struct tb *b);
/* Stop if running and remove the data directory and the log (both are
 * kept, and their paths printed, when TB_KEEP is set in the environment). */
void tb_cleanup(struct tb *b);
/* 1 if brokerd's log contains `needle`. */
int tb_log_contains(const struct tb *b, const char *needle);
/* Like tb_start, but a brokerd that exits during start-up is not a test
 * failure: returns 0 once it is ready, else its exit status (-1 if killed
 * by a signal).  Still fails the test if it is neither ready nor gone
 * within 20 s. */
int tb_try_start(struct tb *b);
/* Wait (up to 30 s, else fail) for brokerd to exit on its own, e.g. after
 * the test sent it a signal; returns the exit status (-1 if killed by a
 * signal). */
int tb_wait_exit(struct tb *b);
/* A second broker on b's data directory with its own log file (for lock
 * tests).  Release with tb_twin_free, which leaves the directory alone. */
void tb_twin(const struct tb *b, struct tb *twin);
void tb_twin_free(struct tb *twin);
/* Field `name` ("VmRSS", "VmHWM", ...) of brokerd's /proc/<pid>/status
 * in KiB; fails the test if it cannot be read. */
long tb_status_kib(const struct tb *b, const char *name);
/* Reset brokerd's peak RSS (VmHWM) to its current RSS. */
void tb_reset_peak(const struct tb *b);
/* CPU time (user + system) brokerd has used, in ms, from /proc/<pid>/stat. */
int64_t tb_cpu_ms(const struct tb *b);
/* Monotonic clock and wall clock in ms. */
int64_t tb_now_ms(void);
int64_t tb_wall_ms(void);

/* --- client ----------------------------------------------------------------- */

/* Connect to 127.0.0.1:port (5 s receive timeout).  Returns the fd. */
int tc_connect(int port);
/* Write all of buf. Returns 0 or -errno. */
int tc_send_raw(int fd, const void *buf, size_t len);
/* Send req as one frame (corr id as set). Returns 0 or -errno. */
int tc_send(int fd, Brokerd__Request *req);
/* Receive one response frame; NULL on EOF, timeout or a bad frame.
 * Free with brokerd__response__free_unpacked(resp, NULL). */
Brokerd__Response *tc_recv(int fd);
/* Receive one raw frame body (malloc'd, *len set); NULL on EOF/timeout. */
uint8_t *tc_recv_raw(int fd, size_t *len);
/* 1 if the peer closed the connection within 5 s (reads and discards). */
int tc_closed(int fd);
/* send + recv, checking the correlation id. */
Brokerd__Response *tc_call(int fd, Brokerd__Request *req);
/* Set fd's receive timeout to ms (tc_connect sets 5 s). */
void tc_set_timeout(int fd, int ms);
/* 1 if fd becomes readable (data or EOF) within ms, else 0. */
int tc_readable(int fd, int ms);

/* Convenience calls; each fails the test on a transport error and returns
 * the response (caller frees). */
Brokerd__Response *tc_create_topic(int fd, const char *topic, uint32_t partitions);
/* Build a batch of n records "<prefix>-<i>" (values), no keys. */
uint8_t *tc_batch(const char *prefix, int first, int n, size_t *len);
Brokerd__Response *tc_produce(int fd, const char *topic, uint32_t partition,
			      Brokerd__Acks acks, const uint8_t *batch, size_t len);
Brokerd__Response *tc_fetch(int fd, const char *topic, uint32_t partition,
			    int64_t offset, uint32_t max_bytes, uint32_t max_wait_ms,
			    uint32_t min_bytes);
/* Create with topic-level overrides given as "key=value" strings. */
Brokerd__Response *tc_create_topic_cfg(int fd, const char *topic, uint32_t partitions,
				       const char *const *kv, size_t n);
Brokerd__Response *tc_delete_topic(int fd, const char *topic);
Brokerd__Response *tc_describe_topic(int fd, const char *topic);
Brokerd__Response *tc_list_topics(int fd);
Brokerd__Response *tc_api_versions(int fd);
Brokerd__Response *tc_broker_status(int fd);
/* Alter: set "key=value" overrides and reset keys, in one request. */
Brokerd__Response *tc_alter_topic(int fd, const char *topic, const char *const *set_kv,
				  size_t nset, const char *const *reset, size_t nreset);
/* Build a batch like tc_batch whose record i has timestamp ts0 + i. */
uint8_t *tc_batch_ts(const char *prefix, int first, int n, int64_t ts0, size_t *len);
/* Produce partitioned by key (murmur2), or round-robin (key NULL). */
Brokerd__Response *tc_produce_key(int fd, const char *topic, const void *key, size_t keylen,
				  Brokerd__Acks acks, const uint8_t *batch, size_t len);
/* Send a produce to an explicit partition with correlation id corr without
 * waiting for the answer (pipelining).  Returns 0 or -errno. */
int tc_send_produce(int fd, uint64_t corr, const char *topic, uint32_t partition,
		    Brokerd__Acks acks, const uint8_t *batch, size_t len);
/* Send a fetch with correlation id corr without waiting for the answer. */
int tc_send_fetch(int fd, uint64_t corr, const char *topic, uint32_t partition,
		  int64_t offset, uint32_t max_bytes, uint32_t max_wait_ms, uint32_t min_bytes);
Brokerd__Response *tc_list_offsets(int fd, const char *topic, uint32_t partition,
				   int64_t timestamp);
/* Commit n offsets (caller-built entries) for group. */
Brokerd__Response *tc_commit(int fd, const char *group, Brokerd__OffsetCommit **offsets,
			     size_t n);
/* Fetch committed offsets: n partitions given as tp[i], or n = 0 for all. */
Brokerd__Response *tc_fetch_offsets(int fd, const char *group, Brokerd__TopicPartition **tp,
				    size_t n);
Brokerd__Response *tc_list_groups(int fd);
Brokerd__Response *tc_delete_group(int fd, const char *group);

/* Decode the record values of a fetch response's records field into
 * a malloc'd array of malloc'd strings; returns the count (offsets below
 * `from` are skipped); *last gets the offset of the last record. */
int tc_values(const Brokerd__FetchResponse *f, int64_t from, char ***values,
	      int64_t *last);
void tc_free_values(char **values, int n);
/* The entry named key among n configs (describe or alter answers), or NULL. */
const Brokerd__ConfigEntry *tc_config(Brokerd__ConfigEntry *const *configs, size_t n,
				      const char *key);

/* Fail the test unless response r is OK, showing its error. */
#define TC_OK(r)                                                                          \
	ck_assert_msg((r)->error == BROKERD__ERROR_CODE__OK, "error %d: %s", (int)(r)->error, \
		      (r)->error_message)
/* Fail the test unless response r failed with code and a non-empty message. */
#define TC_ERR(r, code)                                                                   \
	ck_assert_msg((r)->error == (code) && (r)->error_message[0] != '\0',               \
		      "expected error %d, got %d: %s", (int)(code), (int)(r)->error,       \
		      (r)->error_message)
static inline void tc_free(Brokerd__Response *r)
{
	brokerd__response__free_unpacked(r, NULL);
}

#endif
