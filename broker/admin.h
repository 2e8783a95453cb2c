/* admin — the admin HTTP port (libevent's evhttp) on admin.listen:
 *   GET /healthz  200 "ok" while serving; 503 with the reason while
 *                 shutting down or when a partition is read-only
 *   GET /metrics  Prometheus text format 0.0.4: requests, errors and bytes
 *                 per operation, produce/fetch/fsync latency histograms,
 *                 connections, per-partition log start/end/high watermark,
 *                 size and segments, per-group lag.
 * Anything else: 404; methods other than GET/HEAD: 405.
 * Runs in the broker's reactor; reads broker state, changes nothing. */
#ifndef BROKER_ADMIN_H
#define BROKER_ADMIN_H

struct broker;
struct admin;
struct evbuffer;

/* Bind b->cfg.admin_listen and serve.  Borrows b (must outlive the admin).
 * Returns 0 and *out owned, or -errno (logged with the address).  With
 * admin.listen = off: 0 and *out = NULL (nothing listens). */
int admin_new(struct broker *b, struct admin **out);
/* Close the listener and every admin connection.  NULL is a no-op. */
void admin_free(struct admin *a);

/* The TCP port actually bound (admin.listen may say port 0), or -1 for
 * NULL. */
int admin_port(const struct admin *a);

/* Render the /metrics body into out (exposed for unit tests).
 * Returns 0 or -ENOMEM. */
int admin_render_metrics(struct broker *b, struct evbuffer *out);

#endif
