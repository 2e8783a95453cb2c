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
/* Stop if running and remove the data directory. */
void tb_cleanup(struct tb *b);
/* 1 if brokerd's log contains `needle`. */
int tb_log_contains(const struct tb *b, const char *needle);

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
/* Decode the record values of a fetch response's records field into
 * a malloc'd array of malloc'd strings; returns the count (offsets below
 * `from` are skipped); *last gets the offset of the last record. */
int tc_values(const Brokerd__FetchResponse *f, int64_t from, char ***values,
	      int64_t *last);
void tc_free_values(char **values, int n);

#endif
