/* hist — fixed-bound latency histogram (see hist.h). */
#include "broker/hist.h"

const uint64_t hist_bounds_us[HIST_BUCKETS - 1] = {
	25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
	100000, 250000, 500000, 1000000, 2500000, 10000000,
};

void hist_add(struct hist *h, uint64_t us)
{
	int i = 0;

	while (i < HIST_BUCKETS - 1 && us > hist_bounds_us[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum_us += us;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->count == 0)
		return 0;
	want = (uint64_t)((double)h->count * q + 0.5);
	if (want == 0)
		want = 1;
	for (int i = 0; i < HIST_BUCKETS - 1; i++) {
		seen += h->counts[i];
		if (seen >= want)
			return hist_bounds_us[i];
	}
	return UINT64_MAX;
}
