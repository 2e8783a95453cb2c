/* index — see index.h.  Both arrays are sorted by construction, so every
 * lookup is a binary search. */
#include "broker/index.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void idx_init(struct seg_index *ix)
{
	memset(ix, 0, sizeof(*ix));
	ix->max_ts = INT64_MIN;
}

void idx_fini(struct seg_index *ix)
{
	free(ix->off);
	free(ix->time);
	idx_init(ix);
}

static int grow(void **arr, uint32_t *cap, size_t elem)
{
	uint32_t ncap = *cap ? *cap * 2 : 64;
	void *p;

	if (ncap < *cap)
		return -ENOMEM;
	p = realloc(*arr, (size_t)ncap * elem);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int push_off(struct seg_index *ix, uint32_t rel, uint32_t pos)
{
	if (ix->noff == ix->cap_off && grow((void **)&ix->off, &ix->cap_off, sizeof(*ix->off)) < 0)
		return -ENOMEM;
	ix->off[ix->noff++] = (struct idx_entry){ rel, pos };
	return 0;
}

static int push_time(struct seg_index *ix, int64_t ts, uint32_t rel)
{
	if (ix->ntime == ix->cap_time &&
	    grow((void **)&ix->time, &ix->cap_time, sizeof(*ix->time)) < 0)
		return -ENOMEM;
	ix->time[ix->ntime++] = (struct tidx_entry){ ts, rel };
	return 0;
}

int idx_add(struct seg_index *ix, uint32_t rel, uint64_t pos, int64_t max_ts,
	    uint32_t interval)
{
	bool due = ix->noff == 0 || pos >= ix->next_pos;

	if (max_ts > ix->max_ts)
		ix->max_ts = max_ts;
	ix->last_rel = rel;
	if (!due)
		return 0;
	if (push_off(ix, rel, (uint32_t)pos) < 0)
		return -ENOMEM;
	if (ix->ntime == 0 || ix->max_ts > ix->time[ix->ntime - 1].ts) {
		if (push_time(ix, ix->max_ts, rel) < 0)
			return -ENOMEM;
	}
	ix->next_pos = pos + interval;
	return 0;
}

int idx_seal(struct seg_index *ix)
{
	if (ix->noff == 0 || (ix->ntime > 0 && ix->time[ix->ntime - 1].ts >= ix->max_ts))
		return 0;
	return push_time(ix, ix->max_ts, ix->last_rel);
}

void idx_count_below(const struct seg_index *ix, uint64_t pos, uint32_t *noff, uint32_t *ntime)
{
	uint32_t n = ix->noff, t = ix->ntime;

	while (n > 0 && ix->off[n - 1].pos >= pos)
		n--;
	uint32_t last_rel = n ? ix->off[n - 1].rel : 0;
	while (t > 0 && (n == 0 || ix->time[t - 1].rel > last_rel))
		t--;
	*noff = n;
	*ntime = t;
}

void idx_truncate(struct seg_index *ix, uint64_t pos)
{
	idx_count_below(ix, pos, &ix->noff, &ix->ntime);
	ix->max_ts = ix->ntime ? ix->time[ix->ntime - 1].ts : INT64_MIN;
	ix->next_pos = 0; /* the next batch recorded gets an entry */
}

/* Index of the last entry whose key (rel, or pos when by_pos) is <= key,
 * plus one; 0 when there is none.  Both keys increase along the array. */
static uint32_t floor_index(const struct seg_index *ix, uint64_t key, bool by_pos)
{
	uint32_t lo = 0, hi = ix->noff;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint64_t k = by_pos ? ix->off[mid].pos : ix->off[mid].rel;
		if (k <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int idx_floor_rel(const struct seg_index *ix, uint32_t rel, struct idx_entry *e)
{
	uint32_t n = floor_index(ix, rel, false);

	if (n == 0)
		return -ENOENT;
	*e = ix->off[n - 1];
	return 0;
}

int idx_floor_pos(const struct seg_index *ix, uint64_t pos, struct idx_entry *e)
{
	uint32_t n = floor_index(ix, pos, true);

	if (n == 0)
		return -ENOENT;
	*e = ix->off[n - 1];
	return 0;
}

uint32_t idx_time_start(const struct seg_index *ix, int64_t ts)
{
	uint32_t lo = 0, hi = ix->ntime;

	while (lo < hi) { /* first entry with ts >= target */
		uint32_t mid = lo + (hi - lo) / 2;
		if (ix->time[mid].ts < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? 0 : ix->time[lo - 1].rel + 1;
}

void idx_encode_off(const struct seg_index *ix, uint32_t from, uint32_t to, uint8_t *buf)
{
	for (uint32_t i = from; i < to; i++, buf += IDX_ENTRY_SIZE) {
		uint32_t v[2] = { htole32(ix->off[i].rel), htole32(ix->off[i].pos) };
		memcpy(buf, v, sizeof(v));
	}
}

void idx_encode_time(const struct seg_index *ix, uint32_t from, uint32_t to, uint8_t *buf)
{
	for (uint32_t i = from; i < to; i++, buf += TIDX_ENTRY_SIZE) {
		uint64_t ts = htole64((uint64_t)ix->time[i].ts);
		uint32_t rel = htole32(ix->time[i].rel);
		memcpy(buf, &ts, 8);
		memcpy(buf + 8, &rel, 4);
	}
}

int idx_decode_off(struct seg_index *ix, const uint8_t *buf, size_t len,
		   uint64_t first_pos, uint64_t size)
{
	if (len % IDX_ENTRY_SIZE != 0)
		return -EUCLEAN;
	for (size_t i = 0; i < len; i += IDX_ENTRY_SIZE) {
		uint32_t v[2];
		memcpy(v, buf + i, sizeof(v));
		uint32_t rel = le32toh(v[0]), pos = le32toh(v[1]);
		if (pos < first_pos || pos >= size)
			return -EUCLEAN;
		if (ix->noff > 0 && (rel <= ix->off[ix->noff - 1].rel ||
				     pos <= ix->off[ix->noff - 1].pos))
			return -EUCLEAN;
		if (push_off(ix, rel, pos) < 0)
			return -ENOMEM;
		ix->next_pos = 0;
	}
	return 0;
}

int idx_decode_time(struct seg_index *ix, const uint8_t *buf, size_t len)
{
	if (len % TIDX_ENTRY_SIZE != 0)
		return -EUCLEAN;
	for (size_t i = 0; i < len; i += TIDX_ENTRY_SIZE) {
		uint64_t ts;
		uint32_t rel;
		memcpy(&ts, buf + i, 8);
		memcpy(&rel, buf + i + 8, 4);
		int64_t t = (int64_t)le64toh(ts);
		rel = le32toh(rel);
		if (ix->ntime > 0 && (t <= ix->time[ix->ntime - 1].ts ||
				      rel < ix->time[ix->ntime - 1].rel))
			return -EUCLEAN;
		if (push_time(ix, t, rel) < 0)
			return -ENOMEM;
		ix->max_ts = t;
	}
	return 0;
}
