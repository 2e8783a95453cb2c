/* lathist — a log-linear latency histogram for the load generators
 * (broker-bench, tests/bench/bench_wire): values in ns; below 128 ns one
 * bucket per ns, above 64 buckets per power of two (each ~1.6 % wide), as
 * HdrHistogram with 2 significant digits.  Recording is a clz and an
 * increment; keep one per writing thread and merge at the end.
 * Header-only: not part of any library. */
#ifndef BROKER_TOOLS_LATHIST_H
#define BROKER_TOOLS_LATHIST_H

#include <stdint.h>

#define H_SUB     64
#define H_BUCKETS ((64 - 6) * H_SUB + H_SUB)

struct hist {
	uint64_t n[H_BUCKETS];
	uint64_t count;
	uint64_t max;
};

static inline unsigned h_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * H_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - 6;
	return (shift + 1) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

/* The middle of bucket i, in ns. */
static inline double h_value(unsigned i)
{
	unsigned shift;
	uint64_t lo;

	if (i < 2 * H_SUB)
		return i;
	shift = i / H_SUB - 1;
	lo = (uint64_t)(i % H_SUB + H_SUB) << shift;
	return (double)lo + (double)(1ull << shift) / 2.0;
}

static inline void h_add(struct hist *h, uint64_t ns)
{
	h->n[h_index(ns)]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

static inline void h_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < H_BUCKETS; i++)
		dst->n[i] += src->n[i];
	dst->count += src->count;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* Quantile q (0..1) in us; the exact maximum for q = 1. */
static inline double h_pct_us(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	if (q >= 1.0)
		return (double)h->max / 1000.0;
	rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->n[i];
		if (seen > rank) {
			double v = h_value(i);
			return (v > (double)h->max ? (double)h->max : v) / 1000.0;
		}
	}
	return (double)h->max / 1000.0;
}

#endif
