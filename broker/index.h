/* index — the sparse offset index and time index of one segment, in memory
 * and in their files.  An index is never the source of truth: it is rebuilt
 * from the log whenever it is missing, short or fails its sanity check.
 *
 * Files (little-endian), both opening with the 16-byte file header of
 * segment.h (magic, version, base offset):
 *   <base>.index      entries of 8 bytes:  u32 relative offset, u32 position
 *   <base>.timeindex  entries of 12 bytes: i64 timestamp, u32 relative offset
 * Invariants: relative offsets and positions strictly increase; time entry
 * timestamps strictly increase (each is the largest timestamp so far).
 */
#ifndef BROKER_INDEX_H
#define BROKER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define IDX_ENTRY_SIZE  8
#define TIDX_ENTRY_SIZE 12

struct idx_entry {
	uint32_t rel; /* batch base offset - segment base offset */
	uint32_t pos; /* file position of that batch */
};

struct tidx_entry {
	int64_t ts;   /* largest timestamp up to and including this batch */
	uint32_t rel; /* relative offset of the batch that carried it */
};

struct seg_index {
	struct idx_entry *off;
	uint32_t noff, cap_off;
	struct tidx_entry *time;
	uint32_t ntime, cap_time;
	uint64_t next_pos; /* an entry is due at a batch starting at or after */
	int64_t max_ts;    /* largest timestamp seen (INT64_MIN: none) */
	uint32_t last_rel; /* relative offset of the last batch recorded */
};

void idx_init(struct seg_index *ix);
void idx_fini(struct seg_index *ix);

/* Record a batch at `pos` with relative offset `rel` and largest timestamp
 * max_ts.  Adds an offset entry (and a time entry if max_ts grew) once
 * `interval` bytes passed since the last entry; the first batch always gets
 * one.  Returns 0 or -ENOMEM. */
int idx_add(struct seg_index *ix, uint32_t rel, uint64_t pos, int64_t max_ts,
	    uint32_t interval);

/* At sealing: make the last time entry carry the segment's largest
 * timestamp, so retention and time lookups need no scan.  0 or -ENOMEM. */
int idx_seal(struct seg_index *ix);

/* Entries (offset, time) with a position below pos. */
void idx_count_below(const struct seg_index *ix, uint64_t pos, uint32_t *noff, uint32_t *ntime);

/* Drop the entries at positions >= pos (index ahead of a checkpoint). */
void idx_truncate(struct seg_index *ix, uint64_t pos);

/* The entry with the largest rel <= rel; returns 0 and fills *e, or -ENOENT
 * if every entry is above (or there are none). */
int idx_floor_rel(const struct seg_index *ix, uint32_t rel, struct idx_entry *e);

/* The entry with the largest pos <= pos; 0 or -ENOENT. */
int idx_floor_pos(const struct seg_index *ix, uint64_t pos, struct idx_entry *e);

/* The relative offset after the last time entry whose timestamp is < ts:
 * every batch before that entry's batch (inclusive) is older than ts, so a
 * search for ts may start there.  Returns 0 if no entry qualifies. */
uint32_t idx_time_start(const struct seg_index *ix, int64_t ts);

/* Encode offset entries [from, to) / time entries [from, to) little-endian
 * into buf (IDX_ENTRY_SIZE / TIDX_ENTRY_SIZE bytes each). */
void idx_encode_off(const struct seg_index *ix, uint32_t from, uint32_t to, uint8_t *buf);
void idx_encode_time(const struct seg_index *ix, uint32_t from, uint32_t to, uint8_t *buf);

/* Decode entries from file bytes (header already stripped), appending to
 * ix, and check invariants against the segment: positions in
 * [first_pos, size), strictly increasing.  Returns 0, -EUCLEAN (bad
 * entries: the caller rebuilds), or -ENOMEM. */
int idx_decode_off(struct seg_index *ix, const uint8_t *buf, size_t len,
		   uint64_t first_pos, uint64_t size);
int idx_decode_time(struct seg_index *ix, const uint8_t *buf, size_t len);

#endif
