/* segment — one segment of a partition log: `<base>.log` with its sparse
 * `<base>.index` and `<base>.timeindex` (base = 20-digit zero-padded base
 * offset).  This module knows the files; log.c owns the write pipeline.
 *
 * Every file opens with a 16-byte header (little-endian):
 *   off size field
 *     0   4  magic    SEG_MAGIC_LOG / SEG_MAGIC_INDEX / SEG_MAGIC_TIMEINDEX
 *     4   2  version  SEG_VERSION (1)
 *     6   2  flags    .index only: SEG_FLAG_SEALED once the seal wrote it
 *                       whole (a checkpoint-written index has 0); else 0
 *     8   8  base     base offset of the segment (i64)
 * The .log then holds record batches back to back (proto/batch.h).
 *
 * Invariants:
 *  1. Batches in a segment have dense, increasing offsets starting at base.
 *  2. fd >= 0 while the segment is active or cached or refs > 0.
 *  3. A segment with refs > 0 is neither closed nor freed; once `deleted`
 *     it is freed when the last reference goes.
 */
#ifndef BROKER_SEGMENT_H
#define BROKER_SEGMENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "broker/index.h"

#define SEG_HEADER_SIZE      16
#define SEG_VERSION          1
#define SEG_MAGIC_LOG        0x474c4b42u /* "BKLG" */
#define SEG_MAGIC_INDEX      0x58494b42u /* "BKIX" */
#define SEG_MAGIC_TIMEINDEX  0x49544b42u /* "BKTI" */
#define SEG_FLAG_SEALED      1u
#define SEG_NAME_MAX         40          /* "<20 digits>.timeindex" + NUL */

/* A byte range of the .log that failed validation and is never served.
 * An empty range (pos == end) lies at the end of a sealed segment whose
 * batches stop short of the next segment's base: the offsets between were
 * lost, and a read of them is refused like a read of corrupt bytes. */
struct seg_bad {
	uint64_t pos, end;      /* file positions [pos, end) */
	int64_t off, off_end;   /* offsets [off, off_end) it hides */
};

struct segment {
	int64_t base;           /* offset of the first batch */
	int64_t next_offset;    /* offset after the last batch written to it */
	uint64_t size;          /* end of the last batch (bytes, header incl.) */
	int64_t created_mono;   /* monotonic ms of creation, for segment.ms */
	int fd;                 /* -1 while not open */
	int refs;               /* readers holding it (slices) */
	bool sealed;            /* no longer appended to */
	bool index_ready;       /* idx holds every entry for [0, size) */
	bool deleted;           /* removed from its log; free at refs == 0 */
	bool hdr_pending;       /* file header not yet written (new segment) */
	bool seal_done;         /* sealed, fsynced, index files durable */
	bool created_durable;   /* the directory entry naming it is durable */
	bool zero_tail;         /* zero-ahead extended the file past size */
	uint64_t synced_pos;    /* fdatasync covered [0, synced_pos) ... */
	int64_t synced_off;     /* ... i.e. offsets below synced_off */
	uint64_t pl_synced;     /* power-loss simulation (log.c): bytes of the
	                           file a really executed fsync covered */
	struct seg_index idx;
	uint32_t idx_saved;     /* offset entries already in the .index file */
	uint32_t tidx_saved;    /* time entries already in the .timeindex file */
	struct seg_bad *bad;    /* corrupt ranges, sorted by pos */
	int nbad;
	/* [ok_pos, ok_end) is known to hold valid batches since this process
	 * opened the segment (a scan or a read checked their CRCs, or we
	 * appended them after validating them); ok_end_off is the offset at
	 * ok_end.  Reads check what lies outside it (seg_verify). */
	uint64_t ok_pos, ok_end;
	int64_t ok_end_off;
	TAILQ_ENTRY(segment) lru; /* in the context's fd cache while linked */
	bool in_lru;
};

/* Fill `name` with "<base 20 digits><ext>" (ext like ".log"). */
void seg_name(char name[SEG_NAME_MAX], int64_t base, const char *ext);

/* Parse a "<20 digits>.log" file name; returns 0 and *base, or -EINVAL. */
int seg_parse_name(const char *name, int64_t *base);

/* Encode / check a file header.  seg_header_check returns 0 or -EUCLEAN. */
void seg_header_encode(uint8_t out[SEG_HEADER_SIZE], uint32_t magic, int64_t base);
int seg_header_check(const uint8_t *buf, uint32_t magic, int64_t base);
void seg_header_set_flags(uint8_t *buf, uint16_t flags);

/* 1 if the segment's .index was written whole by a completed seal, else 0.
 * Tells a sealed segment with a corrupt tail from one whose roll was cut
 * short by a crash. */
int seg_index_sealed(const struct segment *s, int dirfd);

struct segment *seg_new(int64_t base);
/* Close the fd (if open) and free everything; requires refs == 0. */
void seg_free(struct segment *s);

/* Record a corrupt range (kept sorted by pos).  Returns 0 or -ENOMEM. */
int seg_add_bad(struct segment *s, uint64_t pos, uint64_t end, int64_t off, int64_t off_end);

/* The corrupt range containing pos (or empty and at pos), or NULL. */
const struct seg_bad *seg_bad_at(const struct segment *s, uint64_t pos);

/* First corrupt range starting at or after pos, or NULL. */
const struct seg_bad *seg_bad_after(const struct segment *s, uint64_t pos);

/* How a scan ended. */
struct seg_scan_result {
	uint64_t file_size;
	uint64_t torn_bytes;    /* invalid bytes after the last valid batch with
	                           nothing valid after them (a torn tail) */
	uint64_t torn_pos;
	int nbad;               /* corrupt ranges found */
};

/* Scan s->fd from position `pos`, where offset `off` is expected, to the end
 * of the file: validate every batch (header, length, CRC, structure, dense
 * offsets), add index entries, update s->size/next_offset/idx.max_ts.  An
 * invalid stretch followed by a valid batch becomes a corrupt range; an
 * invalid stretch at the end is reported as torn (the caller decides to
 * truncate it, or, for a sealed segment, records it as corrupt up to
 * `off_end_hint`).  Blocks (start-up path).  Returns 0 or -errno. */
int seg_scan(struct segment *s, uint64_t pos, int64_t off, uint32_t max_batch,
	     uint32_t interval, struct seg_scan_result *r);

/* Find the position of the batch that holds `offset` (base <= offset <= its
 * last offset), searching from the index floor up to position `limit`.
 * Returns 0 with *pos and *base (that batch's base offset), -ENOENT if
 * offset is not below limit, -EUCLEAN with *pos at the bad batch or corrupt
 * range met on the way, or -errno from pread. */
int seg_locate(struct segment *s, int64_t offset, uint64_t limit,
	       uint64_t *pos, int64_t *base);

/* Whether [pos, pos + len) of fd reads as zeros (a crash left zero-ahead
 * there, not a torn batch).  Blocking; false on a read error. */
bool seg_all_zero(int fd, uint64_t pos, uint64_t len);

/* Check the batches in [from, to) (whole batches, the first with base
 * offset `off`) that are not known good: header, CRC, record structure,
 * dense offsets.  The first bad one becomes a corrupt range, ending at the
 * next valid batch found before `limit` (else at limit, hiding offsets up
 * to off_limit).  Extends the known-good range over what passed.  Blocks
 * (a pread of the range; once per range per open).  Returns 0 (all good),
 * 1 with *bad_pos (a corrupt range was added there), or -errno. */
int seg_verify(struct segment *s, uint64_t from, uint64_t to, int64_t off, uint64_t limit,
	       int64_t off_limit, uint32_t max_batch, uint64_t *bad_pos);

/* Largest run of whole batches starting at `from` whose end is <= from +
 * max_bytes and <= limit (at least one batch even if larger).  Returns 0
 * with *end (file position) and *next (offset after the run), or -errno. */
int seg_bound(struct segment *s, uint64_t from, uint64_t max_bytes,
	      uint64_t limit, uint64_t *end, int64_t *next);

/* First batch at or after `from` (< limit) whose max timestamp is >= ts;
 * fills *pos and *base of it.  Returns 0, -ENOENT (none), or -errno. */
int seg_find_time(struct segment *s, uint64_t from, uint64_t limit, int64_t ts,
		  uint64_t *pos, int64_t *base);

/* Load both index files of s (s->size known), keeping the entries below
 * valid_end.  Returns 0, -ENOENT, -EUCLEAN (bad file) or -errno; on failure
 * the in-memory index is left empty. */
int seg_read_index(struct segment *s, int dirfd, uint64_t valid_end);

/* Write both index files whole (header + every entry) and fdatasync them.
 * Blocking (start-up path).  Returns 0 or -errno. */
int seg_write_index(struct segment *s, int dirfd);

/* Rebuild both indexes of a sealed segment by scanning its .log (corrupt
 * stretches become bad ranges), then save them.  Blocking. 0 or -errno. */
int seg_rebuild_index(struct segment *s, int dirfd, uint32_t max_batch, uint32_t interval);

/* Load the .index and .timeindex files of a sealed segment found in `dirfd`
 * (fd must be open, size and next_offset known); on a missing or bad index
 * rebuild it by scanning the .log (logged).  Returns 0 or -errno. */
int seg_load_index(struct segment *s, int dirfd, uint32_t max_batch, uint32_t interval);

#endif
