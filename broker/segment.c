/* segment — see segment.h.  Reads here are plain pread(2): the scan runs at
 * start-up, and the header walks of the read path touch a few bytes of the
 * page cache next to what the index points at. */
#include "broker/segment.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/logging.h"
#include "proto/batch.h"

#define SCAN_WINDOW (1u << 20) /* bytes read at a time by scans and walks */
#define WALK_WINDOW (16u << 10)

_Static_assert(SEG_HEADER_SIZE == 16, "segment file header is 16 bytes");

void seg_name(char name[SEG_NAME_MAX], int64_t base, const char *ext)
{
	snprintf(name, SEG_NAME_MAX, "%020" PRId64 "%s", base, ext);
}

int seg_parse_name(const char *name, int64_t *base)
{
	int64_t v = 0;

	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -EINVAL;
		if (v > (INT64_MAX - (name[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (name[i] - '0');
	}
	if (strcmp(name + 20, ".log") != 0)
		return -EINVAL;
	*base = v;
	return 0;
}

void seg_header_encode(uint8_t out[SEG_HEADER_SIZE], uint32_t magic, int64_t base)
{
	uint32_t m = htole32(magic);
	uint16_t v = htole16(SEG_VERSION), r = 0;
	uint64_t b = htole64((uint64_t)base);

	memcpy(out, &m, 4);
	memcpy(out + 4, &v, 2);
	memcpy(out + 6, &r, 2);
	memcpy(out + 8, &b, 8);
}

int seg_header_check(const uint8_t *buf, uint32_t magic, int64_t base)
{
	uint8_t want[SEG_HEADER_SIZE];

	seg_header_encode(want, magic, base);
	/* Bytes 6-7 are flags. */
	return memcmp(buf, want, 6) == 0 && memcmp(buf + 8, want + 8, 8) == 0 ? 0 : -EUCLEAN;
}

void seg_header_set_flags(uint8_t *buf, uint16_t flags)
{
	uint16_t f = htole16(flags);

	memcpy(buf + 6, &f, 2);
}


struct segment *seg_new(int64_t base)
{
	struct segment *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->base = base;
	s->next_offset = base;
	s->size = SEG_HEADER_SIZE;
	s->ok_pos = s->ok_end = SEG_HEADER_SIZE; /* nothing checked yet */
	s->ok_end_off = base;
	s->fd = -1;
	idx_init(&s->idx);
	return s;
}

void seg_free(struct segment *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	idx_fini(&s->idx);
	free(s->bad);
	free(s);
}

int seg_add_bad(struct segment *s, uint64_t pos, uint64_t end, int64_t off, int64_t off_end)
{
	struct seg_bad *nb = realloc(s->bad, (size_t)(s->nbad + 1) * sizeof(*nb));

	if (nb == NULL)
		return -ENOMEM;
	s->bad = nb;
	/* Keep the list sorted by pos (seg_bad_after, and recovery dropping
	 * the ranges past its start, rely on it): a read may find a range
	 * before the ones already known. */
	int i = s->nbad;
	while (i > 0 && s->bad[i - 1].pos > pos)
		i--;
	memmove(&s->bad[i + 1], &s->bad[i], (size_t)(s->nbad - i) * sizeof(*nb));
	s->bad[i] = (struct seg_bad){ pos, end, off, off_end };
	s->nbad++;
	return 0;
}

const struct seg_bad *seg_bad_at(const struct segment *s, uint64_t pos)
{
	for (int i = 0; i < s->nbad; i++)
		if (pos >= s->bad[i].pos && (pos < s->bad[i].end || pos == s->bad[i].pos))
			return &s->bad[i];
	return NULL;
}

const struct seg_bad *seg_bad_after(const struct segment *s, uint64_t pos)
{
	for (int i = 0; i < s->nbad; i++)
		if (s->bad[i].pos >= pos)
			return &s->bad[i];
	return NULL;
}

/* A window over a file, refilled by pread as positions move past it. */
struct rbuf {
	int fd;
	uint8_t *buf;
	size_t cap;
	size_t min_cap;
	uint64_t start;
	size_t len;
};

static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t pos)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(pos + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

bool seg_all_zero(int fd, uint64_t pos, uint64_t len)
{
	uint8_t buf[64 << 10];

	while (len > 0) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		if (pread_full(fd, buf, n, pos) != (ssize_t)n)
			return false;
		for (size_t i = 0; i < n; i++)
			if (buf[i] != 0)
				return false;
		pos += n;
		len -= n;
	}
	return true;
}

/* Point *out at `need` bytes at `pos`.  Returns 0, -ENODATA if the file ends
 * first, -ENOMEM or -errno. */
static int rbuf_get(struct rbuf *b, uint64_t pos, size_t need, const uint8_t **out)
{
	if (b->buf != NULL && pos >= b->start && pos + need <= b->start + b->len) {
		*out = b->buf + (pos - b->start);
		return 0;
	}
	size_t want = need > b->min_cap ? need : b->min_cap;
	if (want > b->cap) {
		uint8_t *nb = realloc(b->buf, want);
		if (nb == NULL)
			return -ENOMEM;
		b->buf = nb;
		b->cap = want;
	}
	ssize_t n = pread_full(b->fd, b->buf, b->cap, pos);
	if (n < 0)
		return (int)n;
	b->start = pos;
	b->len = (size_t)n;
	if ((size_t)n < need)
		return -ENODATA;
	*out = b->buf;
	return 0;
}

static void rbuf_init(struct rbuf *b, int fd, size_t min_cap)
{
	memset(b, 0, sizeof(*b));
	b->fd = fd;
	b->min_cap = min_cap;
}

static void rbuf_fini(struct rbuf *b)
{
	free(b->buf);
}

/* Is there a valid batch at pos?  `lo`..`hi` bound its base offset.
 * Returns 1 valid (fills *h), 0 invalid, or -errno. */
static int check_batch(struct rbuf *b, uint64_t pos, uint64_t size, int64_t lo, int64_t hi,
		       uint32_t max_batch, struct batch_header *h)
{
	const uint8_t *p;
	int rc;

	if (size - pos < BATCH_HEADER_SIZE)
		return 0;
	rc = rbuf_get(b, pos, BATCH_HEADER_SIZE, &p);
	if (rc < 0)
		return rc == -ENODATA ? 0 : rc;
	if (batch_header_decode(p, BATCH_HEADER_SIZE, h) < 0)
		return 0;
	if (h->base_offset < lo || h->base_offset > hi)
		return 0;
	size_t sz = batch_size(h);
	if (sz > max_batch || sz > size - pos)
		return 0;
	rc = rbuf_get(b, pos, sz, &p);
	if (rc < 0)
		return rc == -ENODATA ? 0 : rc;
	return batch_validate(p, sz, NULL) == 0 ? 1 : 0;
}

/* Find the first valid batch after the invalid one at `pos`.  Every record
 * takes at least one byte, so a batch at y cannot start more than y - pos
 * offsets past the expected one: that bound and the magic byte keep the
 * byte-by-byte search cheap.  Returns 0 with *y and *h, -ENOENT, or -errno. */
static int resync(struct rbuf *b, uint64_t pos, uint64_t size, int64_t off, uint32_t max_batch,
		  uint64_t *y, struct batch_header *h)
{
	for (uint64_t c = pos + 1; c + BATCH_HEADER_SIZE <= size; c++) {
		const uint8_t *p;
		int rc = rbuf_get(b, c, BATCH_HEADER_SIZE, &p);
		if (rc < 0)
			return rc == -ENODATA ? -ENOENT : rc;
		if (p[BATCH_OFF_MAGIC] != BATCH_MAGIC || p[BATCH_OFF_MAGIC + 1] != 0)
			continue;
		rc = check_batch(b, c, size, off, off + (int64_t)(c - pos), max_batch, h);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			*y = c;
			return 0;
		}
	}
	return -ENOENT;
}

int seg_scan(struct segment *s, uint64_t pos, int64_t off, uint32_t max_batch,
	     uint32_t interval, struct seg_scan_result *r)
{
	struct rbuf b;
	struct stat st;
	uint64_t start = pos;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (fstat(s->fd, &st) < 0)
		return -errno;
	r->file_size = (uint64_t)st.st_size;
	rbuf_init(&b, s->fd, SCAN_WINDOW);
	while (pos < r->file_size) {
		struct batch_header h;
		rc = check_batch(&b, pos, r->file_size, off, off, max_batch, &h);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			rc = idx_add(&s->idx, (uint32_t)(off - s->base), pos, h.max_timestamp, interval);
			if (rc < 0)
				goto out;
			pos += batch_size(&h);
			off = batch_last_offset(&h) + 1;
			continue;
		}
		uint64_t y;
		rc = resync(&b, pos, r->file_size, off, max_batch, &y, &h);
		if (rc == -ENOENT) {
			r->torn_pos = pos;
			r->torn_bytes = r->file_size - pos;
			rc = 0;
			break;
		}
		if (rc < 0)
			goto out;
		rc = seg_add_bad(s, pos, y, off, h.base_offset);
		if (rc < 0)
			goto out;
		r->nbad++;
		pos = y;
		off = h.base_offset;
	}
	s->size = pos;
	s->next_offset = off;
	s->ok_pos = start; /* the scan checked every batch from its start */
	s->ok_end = pos;
	s->ok_end_off = off;
	rc = 0;
out:
	rbuf_fini(&b);
	return rc;
}

int seg_verify(struct segment *s, uint64_t from, uint64_t to, int64_t off, uint64_t limit,
	       int64_t off_limit, uint32_t max_batch, uint64_t *bad_pos)
{
	bool extend = from >= s->ok_pos && from <= s->ok_end;
	uint64_t p = from;
	struct rbuf b;
	int rc = 0;

	if (extend) {
		if (to <= s->ok_end)
			return 0;
		p = s->ok_end;
		off = s->ok_end_off;
	}
	/* Read the slice, not a scan window past it: this runs on fetches. */
	rbuf_init(&b, s->fd, to - p < SCAN_WINDOW ? (size_t)(to - p) : SCAN_WINDOW);
	while (p < to) {
		struct batch_header h;
		uint64_t y;

		rc = check_batch(&b, p, limit, off, off, max_batch, &h);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			p += batch_size(&h);
			off = batch_last_offset(&h) + 1;
			rc = 0;
			continue;
		}
		rc = resync(&b, p, limit, off, max_batch, &y, &h);
		if (rc < 0 && rc != -ENOENT)
			goto out;
		if (rc == 0)
			rc = seg_add_bad(s, p, y, off, h.base_offset);
		else /* nothing valid up to the end of the data */
			rc = seg_add_bad(s, p, limit, off, off_limit > off ? off_limit : off + 1);
		if (rc == 0) {
			*bad_pos = p;
			rc = 1;
		}
		break;
	}
	/* One range is kept: grow it by what passed when they touch, else keep
	 * the later one (for the active segment, the one appends extend). */
	if (rc >= 0 && p > from && p >= s->ok_pos) {
		if (from < s->ok_pos || from > s->ok_end)
			s->ok_pos = from;
		if (p > s->ok_end || from > s->ok_end) {
			s->ok_end = p;
			s->ok_end_off = off;
		}
	}
out:
	rbuf_fini(&b);
	return rc;
}

/* Read and decode the batch header at pos. Returns 0, -EUCLEAN, -errno. */
static int walk_header(struct rbuf *b, uint64_t pos, struct batch_header *h)
{
	const uint8_t *p;
	int rc = rbuf_get(b, pos, BATCH_HEADER_SIZE, &p);

	if (rc < 0)
		return rc == -ENODATA ? -EUCLEAN : rc;
	if (batch_header_decode(p, BATCH_HEADER_SIZE, h) < 0)
		return -EUCLEAN;
	return 0;
}

int seg_locate(struct segment *s, int64_t offset, uint64_t limit, uint64_t *pos, int64_t *base)
{
	struct idx_entry e;
	struct rbuf b;
	uint64_t p = SEG_HEADER_SIZE;
	int rc;

	if (offset - s->base <= (int64_t)UINT32_MAX &&
	    idx_floor_rel(&s->idx, (uint32_t)(offset - s->base), &e) == 0)
		p = e.pos;
	rbuf_init(&b, s->fd, WALK_WINDOW);
	for (;;) {
		struct batch_header h;
		const struct seg_bad *bad = seg_bad_at(s, p);

		if (bad != NULL && offset < bad->off_end) {
			*pos = p;
			rc = -EUCLEAN;
			break;
		}
		if (p >= limit) {
			rc = -ENOENT;
			break;
		}
		if (bad != NULL && bad->end > p) {
			p = bad->end;
			continue;
		}
		rc = walk_header(&b, p, &h);
		if (rc < 0) {
			*pos = p;
			break;
		}
		if (offset <= batch_last_offset(&h)) {
			*pos = p;
			*base = h.base_offset;
			break;
		}
		p += batch_size(&h);
	}
	rbuf_fini(&b);
	return rc;
}

int seg_bound(struct segment *s, uint64_t from, uint64_t max_bytes, uint64_t limit,
	      uint64_t *end, int64_t *next)
{
	const struct seg_bad *bad = seg_bad_after(s, from);
	uint64_t target = max_bytes > limit - from ? limit : from + max_bytes;
	uint64_t p = from;
	struct idx_entry e;
	struct rbuf b;
	int rc = 0;

	if (bad != NULL && bad->pos < limit)
		limit = bad->pos;
	if (target > limit)
		target = limit;
	/* Batches before an index entry at or below target all fit: jump. */
	if (idx_floor_pos(&s->idx, target, &e) == 0 && e.pos > from) {
		p = e.pos;
		*end = p;
		*next = s->base + e.rel;
	}
	rbuf_init(&b, s->fd, WALK_WINDOW);
	while (p < limit) {
		struct batch_header h;
		rc = walk_header(&b, p, &h);
		if (rc < 0)
			break;
		if (p + batch_size(&h) > target && p != from)
			break;
		p += batch_size(&h);
		*end = p;
		*next = batch_last_offset(&h) + 1;
		if (p >= target)
			break;
	}
	rbuf_fini(&b);
	return rc;
}

int seg_find_time(struct segment *s, uint64_t from, uint64_t limit, int64_t ts,
		  uint64_t *pos, int64_t *base)
{
	struct rbuf b;
	uint64_t p = from;
	int rc = -ENOENT;

	rbuf_init(&b, s->fd, WALK_WINDOW);
	while (p < limit) {
		struct batch_header h;
		const struct seg_bad *bad = seg_bad_at(s, p);
		if (bad != NULL && bad->end > p) {
			p = bad->end;
			continue;
		}
		rc = walk_header(&b, p, &h);
		if (rc < 0)
			break;
		if (h.max_timestamp >= ts) {
			*pos = p;
			*base = h.base_offset;
			break;
		}
		p += batch_size(&h);
		rc = -ENOENT;
	}
	rbuf_fini(&b);
	return rc;
}

/* Read a whole index file into *buf (owned) after checking its header.
 * Returns its entry bytes in *len; 0, -ENOENT, -EUCLEAN or -errno. */
static int read_index_file(int dirfd, const struct segment *s, const char *ext, uint32_t magic,
			   size_t max_len, uint8_t **buf, size_t *len)
{
	char name[SEG_NAME_MAX];
	struct stat st;
	int fd, rc = 0;

	seg_name(name, s->base, ext);
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size < SEG_HEADER_SIZE || (uint64_t)st.st_size > max_len) {
		rc = -EUCLEAN;
		goto out;
	}
	*buf = malloc((size_t)st.st_size);
	if (*buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	ssize_t n = pread_full(fd, *buf, (size_t)st.st_size, 0);
	if (n != st.st_size || seg_header_check(*buf, magic, s->base) < 0) {
		rc = n < 0 ? (int)n : -EUCLEAN;
		free(*buf);
		*buf = NULL;
		goto out;
	}
	*len = (size_t)st.st_size - SEG_HEADER_SIZE;
out:
	close(fd);
	return rc;
}

/* An index file can be well formed and still wrong (shifted, stale): check
 * that its first and last entries point at batch headers with the offsets
 * they claim.  Returns 0 or -EUCLEAN. */
static int idx_spot_check(const struct segment *s)
{
	const uint32_t which[2] = { 0, s->idx.noff ? s->idx.noff - 1 : 0 };

	for (int i = 0; i < (s->idx.noff ? 2 : 0); i++) {
		const struct idx_entry *e = &s->idx.off[which[i]];
		uint8_t hdr[BATCH_HEADER_SIZE];
		struct batch_header h;
		if (pread_full(s->fd, hdr, sizeof(hdr), e->pos) != (ssize_t)sizeof(hdr) ||
		    batch_header_decode(hdr, sizeof(hdr), &h) < 0 ||
		    h.base_offset != s->base + (int64_t)e->rel)
			return -EUCLEAN;
	}
	return 0;
}

int seg_read_index(struct segment *s, int dirfd, uint64_t valid_end)
{
	/* One entry per batch at most: bounds what a garbage file may make us
	 * allocate. */
	size_t max_batches = (size_t)(s->size / BATCH_HEADER_SIZE) + 1;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	rc = read_index_file(dirfd, s, ".index", SEG_MAGIC_INDEX,
			     SEG_HEADER_SIZE + max_batches * IDX_ENTRY_SIZE, &buf, &len);
	if (rc == 0)
		rc = idx_decode_off(&s->idx, buf + SEG_HEADER_SIZE, len, SEG_HEADER_SIZE, s->size);
	free(buf);
	buf = NULL;
	if (rc == 0)
		rc = read_index_file(dirfd, s, ".timeindex", SEG_MAGIC_TIMEINDEX,
				     SEG_HEADER_SIZE + max_batches * TIDX_ENTRY_SIZE, &buf, &len);
	if (rc == 0)
		rc = idx_decode_time(&s->idx, buf + SEG_HEADER_SIZE, len);
	free(buf);
	if (rc == 0) {
		if (valid_end < s->size)
			idx_truncate(&s->idx, valid_end);
		rc = idx_spot_check(s);
	}
	if (rc == 0) {
		s->idx_saved = s->idx.noff;
		s->tidx_saved = s->idx.ntime;
	} else {
		idx_fini(&s->idx);
	}
	return rc;
}

int seg_rebuild_index(struct segment *s, int dirfd, uint32_t max_batch, uint32_t interval)
{
	struct seg_scan_result r;
	char name[SEG_NAME_MAX];
	int64_t known_next = s->next_offset;
	uint64_t known_size = s->size;
	int rc;

	seg_name(name, s->base, ".log");
	idx_fini(&s->idx);
	s->idx_saved = s->tidx_saved = 0;
	s->nbad = 0;
	rc = seg_scan(s, SEG_HEADER_SIZE, s->base, max_batch, interval, &r);
	if (rc < 0)
		return rc;
	/* A sealed segment has no torn tail: what does not validate is corrupt,
	 * and it hides the offsets up to the next segment. */
	if (r.torn_bytes > 0) {
		rc = seg_add_bad(s, r.torn_pos, r.file_size, s->next_offset, known_next);
		if (rc < 0)
			return rc;
	}
	for (int i = 0; i < s->nbad; i++)
		log_msg(LOGL_ERROR, "corrupt record batch in %s at position %" PRIu64
			": offsets %" PRId64 "..%" PRId64 " will not be served",
			name, s->bad[i].pos, s->bad[i].off, s->bad[i].off_end - 1);
	s->size = known_size;
	s->next_offset = known_next;
	if (idx_seal(&s->idx) < 0)
		return -ENOMEM;
	s->index_ready = true;
	rc = seg_write_index(s, dirfd);
	if (rc < 0) /* still usable from memory; rebuilt again next time */
		log_msg_errno(LOGL_WARN, rc, "cannot save the rebuilt index of %s", name);
	return 0;
}

int seg_load_index(struct segment *s, int dirfd, uint32_t max_batch, uint32_t interval)
{
	char name[SEG_NAME_MAX];
	int rc;

	if (s->index_ready)
		return 0;
	rc = seg_read_index(s, dirfd, s->size);
	if (rc == 0) {
		s->index_ready = true;
		return 0;
	}
	seg_name(name, s->base, ".log");
	log_msg(LOGL_WARN, "index of %s unusable (%s): rebuilding it from the log", name,
		strerror(-rc));
	return seg_rebuild_index(s, dirfd, max_batch, interval);
}

int seg_write_index(struct segment *s, int dirfd)
{
	const char *ext[2] = { ".index", ".timeindex" };
	const uint32_t magic[2] = { SEG_MAGIC_INDEX, SEG_MAGIC_TIMEINDEX };
	const size_t n[2] = { s->idx.noff, s->idx.ntime };
	const size_t esz[2] = { IDX_ENTRY_SIZE, TIDX_ENTRY_SIZE };
	int rc = 0;

	for (int i = 0; i < 2 && rc == 0; i++) {
		char name[SEG_NAME_MAX];
		size_t len = SEG_HEADER_SIZE + n[i] * esz[i];
		uint8_t *buf = malloc(len);
		int fd;

		if (buf == NULL)
			return -ENOMEM;
		seg_header_encode(buf, magic[i], s->base);
		if (i == 0) /* only sealed segments' indexes are written whole */
			seg_header_set_flags(buf, SEG_FLAG_SEALED);
		if (i == 0)
			idx_encode_off(&s->idx, 0, s->idx.noff, buf + SEG_HEADER_SIZE);
		else
			idx_encode_time(&s->idx, 0, s->idx.ntime, buf + SEG_HEADER_SIZE);
		seg_name(name, s->base, ext[i]);
		fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = -errno;
		} else {
			if (pwrite(fd, buf, len, 0) != (ssize_t)len)
				rc = -EIO;
			else if (fdatasync(fd) < 0)
				rc = -errno;
			close(fd);
		}
		free(buf);
	}
	if (rc == 0) {
		s->idx_saved = s->idx.noff;
		s->tidx_saved = s->idx.ntime;
	}
	return rc;
}

int seg_index_sealed(const struct segment *s, int dirfd)
{
	uint8_t hdr[SEG_HEADER_SIZE];
	char name[SEG_NAME_MAX];
	uint16_t f;
	int fd, ok = 0;

	seg_name(name, s->base, ".index");
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread_full(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    seg_header_check(hdr, SEG_MAGIC_INDEX, s->base) == 0) {
		memcpy(&f, hdr + 6, 2);
		ok = (le16toh(f) & SEG_FLAG_SEALED) != 0;
	}
	close(fd);
	return ok;
}
