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

/* Text for a negative errno returned by this library. */
const char *bk_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
