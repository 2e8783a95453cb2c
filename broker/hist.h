/* hist — a latency histogram with fixed bucket bounds in microseconds, as
 * a Prometheus classic histogram needs them: cumulative counts per bound,
 * a sum and a count.  Recording is a short loop; no allocation. */
#ifndef BROKER_HIST_H
#define BROKER_HIST_H

#include <stdint.h>

#define HIST_BUCKETS 18

/* Upper bounds (µs, inclusive) of the finite buckets; the last bucket of
 * `counts` is +Inf. */
extern const uint64_t hist_bounds_us[HIST_BUCKETS - 1];

struct hist {
	uint64_t counts[HIST_BUCKETS]; /* per bucket, not cumulative */
	uint64_t count;
	uint64_t sum_us;
};

void hist_add(struct hist *h, uint64_t us);

/* Smallest bucket bound at or above quantile q (0 < q <= 1), UINT64_MAX for
 * the +Inf bucket, 0 when empty (for logs; Prometheus computes its own). */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
