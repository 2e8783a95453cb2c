/* batch — encode, validate and iterate record batches (layout in batch.h).
 * Invariants: input bytes are never trusted: every varint and length is
 * checked against the end of its enclosing region before use, with no
 * allocation and no arithmetic that can overflow; validation is one pass.
 * Linked into the client library: never prints, never aborts. */
#include "proto/batch.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/crc.h>
#include "proto/le.h"
#include "proto/varint.h"

#define VARINT32_MAX_BYTES 5
#define VARINT64_MAX_BYTES 10
#define BUILDER_INITIAL_CAP 512
/* crc32_iscsi takes an int length: feed it well below INT_MAX. */
#define CRC_CHUNK ((size_t)1 << 30)

/* --- varints ------------------------------------------------------------ */

/* Read one LEB128 varint from [*pp, end) of at most `max` bytes, whose last
 * possible byte may not exceed `last_max` (so the value fits the type and
 * that byte cannot continue).  Advances *pp.  Returns 0, or -EINVAL for a
 * truncated, overlong or out-of-range varint. */
static int get_uvarint_slow(const uint8_t **pp, const uint8_t *end,
			    unsigned max, uint8_t last_max, uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;

	for (unsigned i = 0; i < max; i++) {
		if (p == end)
			return -EINVAL;
		uint8_t c = *p++;
		if (i == max - 1 && c > last_max)
			return -EINVAL;
		v |= (uint64_t)(c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			*pp = p;
			*out = v;
			return 0;
		}
	}
	return -EINVAL;
}

/* Signed 32-bit varint (sint32): at most 5 bytes, the 5th carrying bits
 * 28-31 only.  Same contract as get_uvarint_slow. */
static inline int get_svarint32(const uint8_t **pp, const uint8_t *end,
				int32_t *out)
{
	uint64_t v;

	if (*pp != end && **pp < 0x80) {
		v = **pp;
		(*pp)++;
	} else if (get_uvarint_slow(pp, end, VARINT32_MAX_BYTES, 0x0f, &v) < 0) {
		return -EINVAL;
	}
	*out = (int32_t)unzigzag(v);
	return 0;
}

/* Signed 64-bit varint (sint64): at most 10 bytes, the 10th carrying bit 63
 * only.  Same contract as get_uvarint_slow. */
static inline int get_svarint64(const uint8_t **pp, const uint8_t *end,
				int64_t *out)
{
	uint64_t v;

	if (*pp != end && **pp < 0x80) {
		v = **pp;
		(*pp)++;
	} else if (get_uvarint_slow(pp, end, VARINT64_MAX_BYTES, 0x01, &v) < 0) {
		return -EINVAL;
	}
	*out = unzigzag(v);
	return 0;
}

/* Read a length-prefixed byte string from [*pp, end): length -1 means null
 * (only when allow_null), then *data is NULL.  Advances *pp past the bytes.
 * Returns 0 or -EINVAL. */
static inline int get_bytes(const uint8_t **pp, const uint8_t *end,
			    int allow_null, const uint8_t **data, int32_t *len)
{
	int32_t n;

	if (get_svarint32(pp, end, &n) < 0)
		return -EINVAL;
	if (n == -1 && allow_null) {
		*data = NULL;
		*len = -1;
		return 0;
	}
	if (n < 0 || (size_t)n > (size_t)(end - *pp))
		return -EINVAL;
	*data = *pp;
	*len = n;
	*pp += n;
	return 0;
}

/* --- CRC ---------------------------------------------------------------- */

uint32_t batch_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t reg = ~crc; /* ISA-L works on the raw, un-inverted register */

	while (len > 0) {
		size_t n = len < CRC_CHUNK ? len : CRC_CHUNK;
		/* ISA-L's prototype lacks const; it only reads the buffer. */
		reg = crc32_iscsi((unsigned char *)p, (int)n, reg);
		p += n;
		len -= n;
	}
	return ~reg;
}

/* --- header ------------------------------------------------------------- */

int batch_header_decode(const uint8_t *buf, size_t len, struct batch_header *h)
{
	if (len < BATCH_HEADER_SIZE)
		return -EAGAIN;

	h->base_offset = (int64_t)get_le64(buf + BATCH_OFF_BASE_OFFSET);
	h->length = get_le32(buf + BATCH_OFF_LENGTH);
	h->crc = get_le32(buf + BATCH_OFF_CRC);
	h->magic = buf[BATCH_OFF_MAGIC];
	h->attributes = get_le16(buf + BATCH_OFF_ATTRIBUTES);
	h->record_count = get_le32(buf + BATCH_OFF_RECORD_COUNT);
	h->first_timestamp = (int64_t)get_le64(buf + BATCH_OFF_FIRST_TS);
	h->max_timestamp = (int64_t)get_le64(buf + BATCH_OFF_MAX_TS);
	h->producer_id = (int64_t)get_le64(buf + 40);
	h->base_sequence = (int32_t)get_le32(buf + 48);
	h->producer_epoch = (int16_t)get_le16(buf + 52);

	/* Magic first: under another version the other fields mean nothing. */
	if (h->magic != BATCH_MAGIC)
		return -EPROTONOSUPPORT;
	if (h->attributes & BATCH_CODEC_MASK)
		return -EPROTONOSUPPORT;
	if (buf[17] != 0 || (h->attributes & ~BATCH_ATTR_KNOWN) != 0 ||
	    get_le16(buf + 54) != 0)
		return -EINVAL;
	if (h->record_count < 1 ||
	    h->length < BATCH_HEADER_SIZE - BATCH_LENGTH_END)
		return -EINVAL;
	return 0;
}

void batch_stamp_offset(uint8_t *buf, int64_t base_offset)
{
	put_le64(buf + BATCH_OFF_BASE_OFFSET, (uint64_t)base_offset);
}

/* --- records ------------------------------------------------------------ */

/* Decode the record at *pp (which must lie in [*pp, end)) as record `index`
 * of the batch described by h, filling *rec with pointers into the buffer.
 * Checks every field of the record except the headers, which it leaves
 * encoded in rec->headers (see headers_check).  Advances *pp past the
 * record.  Returns 0 or -EINVAL. */
static int record_decode(const uint8_t **pp, const uint8_t *end,
			 uint32_t index, const struct batch_header *h,
			 struct batch_record *rec)
{
	const uint8_t *p = *pp;
	const uint8_t *rend;
	int32_t rlen, offset_delta, header_count;
	int64_t ts_delta;

	if (get_svarint32(&p, end, &rlen) < 0 || rlen < 0 ||
	    (size_t)rlen > (size_t)(end - p))
		return -EINVAL;
	rend = p + rlen;
	if (p == rend || *p != 0) /* record attributes: must be 0 */
		return -EINVAL;
	p++;
	if (get_svarint64(&p, rend, &ts_delta) < 0 ||
	    get_svarint32(&p, rend, &offset_delta) < 0 ||
	    offset_delta < 0 || (uint32_t)offset_delta != index)
		return -EINVAL;
	if (get_bytes(&p, rend, 1, &rec->key, &rec->key_len) < 0 ||
	    get_bytes(&p, rend, 1, &rec->value, &rec->value_len) < 0)
		return -EINVAL;
	if (get_svarint32(&p, rend, &header_count) < 0 || header_count < 0)
		return -EINVAL;
	if (__builtin_add_overflow(h->first_timestamp, ts_delta,
				   &rec->timestamp))
		return -EINVAL;
	/* base_offset is outside the CRC and may be anything: wrap, never
	 * overflow a signed type. */
	rec->offset = (int64_t)((uint64_t)h->base_offset + index);
	rec->header_count = (uint32_t)header_count;
	rec->headers = p;
	rec->headers_len = (size_t)(rend - p);
	*pp = rend;
	return 0;
}

/* Check that [p, p + len) holds exactly `count` well-formed headers.
 * Each header takes at least 2 bytes, so a hostile count ends the loop
 * early.  Returns 0 or -EINVAL. */
static int headers_check(const uint8_t *p, size_t len, uint32_t count)
{
	const uint8_t *end = p + len;
	const uint8_t *data;
	int32_t n;

	for (uint32_t i = 0; i < count; i++) {
		if (get_bytes(&p, end, 0, &data, &n) < 0 ||
		    get_bytes(&p, end, 1, &data, &n) < 0)
			return -EINVAL;
	}
	return p == end ? 0 : -EINVAL;
}

/* Check the records region [p, end) against header h in one pass. */
static int records_check(const uint8_t *p, const uint8_t *end,
			 const struct batch_header *h)
{
	struct batch_record rec;

	for (uint32_t i = 0; i < h->record_count; i++) {
		if (record_decode(&p, end, i, h, &rec) < 0 ||
		    headers_check(rec.headers, rec.headers_len,
				  rec.header_count) < 0)
			return -EINVAL;
		if (rec.timestamp > h->max_timestamp ||
		    (i == 0 && rec.timestamp != h->first_timestamp))
			return -EINVAL;
	}
	return p == end ? 0 : -EINVAL; /* no trailing bytes */
}

/* A buffer shorter than the length field announces is -EAGAIN (as a short
 * header: more bytes would be needed), a longer one -EINVAL. */
int batch_validate(const uint8_t *buf, size_t len, struct batch_header *h)
{
	struct batch_header local;
	int ret;

	if (h == NULL)
		h = &local;
	ret = batch_header_decode(buf, len, h);
	if (ret < 0)
		return ret;
	if (h->length > len - BATCH_LENGTH_END)
		return -EAGAIN;
	if (h->length < len - BATCH_LENGTH_END)
		return -EINVAL;
	if (batch_crc32c(0, buf + BATCH_CRC_START, len - BATCH_CRC_START) !=
	    h->crc)
		return -EBADMSG;
	return records_check(buf + BATCH_HEADER_SIZE, buf + len, h);
}

/* --- building ----------------------------------------------------------- */

void batch_builder_init(struct batch_builder *b)
{
	b->buf = NULL;
	b->len = 0;
	b->cap = 0;
	b->count = 0;
	b->first_ts = 0;
	b->max_ts = 0;
}

void batch_builder_fini(struct batch_builder *b)
{
	free(b->buf);
	batch_builder_init(b);
}

size_t batch_builder_size(const struct batch_builder *b)
{
	return b->buf != NULL ? b->len : BATCH_HEADER_SIZE;
}

/* Make room for n more bytes, reserving the header on first use; capacity
 * doubles so appends are amortised O(1).  The batch stays <= INT32_MAX
 * bytes.  Returns 0, -EINVAL (too big) or -ENOMEM; on failure the builder is
 * unchanged. */
static int builder_reserve(struct batch_builder *b, size_t n)
{
	size_t used = b->buf != NULL ? b->len : BATCH_HEADER_SIZE;
	size_t need, cap;
	uint8_t *nbuf;

	if (n > (size_t)INT32_MAX - used)
		return -EINVAL;
	need = used + n;
	if (b->buf != NULL && need <= b->cap)
		return 0;
	cap = b->cap != 0 ? b->cap : BUILDER_INITIAL_CAP;
	while (cap < need)
		cap = cap > (size_t)INT32_MAX / 2 ? (size_t)INT32_MAX : cap * 2;
	nbuf = realloc(b->buf, cap);
	if (nbuf == NULL)
		return -ENOMEM;
	b->buf = nbuf;
	b->cap = cap;
	b->len = used;
	return 0;
}

/* Encoded size of a length-prefixed byte string (n == -1: null). */
static inline size_t bytes_size(int32_t n)
{
	return svarint_size(n) + (n > 0 ? (size_t)n : 0);
}

static inline uint8_t *put_bytes(uint8_t *p, const void *data, int32_t n)
{
	p += varint_put(p, zigzag(n));
	if (n > 0) {
		memcpy(p, data, (size_t)n);
		p += n;
	}
	return p;
}

int batch_builder_add(struct batch_builder *b, int64_t timestamp,
		      const void *key, int32_t key_len,
		      const void *value, int32_t value_len,
		      const struct batch_kv *headers, uint32_t nheaders)
{
	int64_t first_ts = b->count > 0 ? b->first_ts : timestamp;
	int64_t ts_delta;
	size_t body, total;
	uint8_t *p;
	int ret;

	if (key_len < -1 || value_len < -1 ||
	    (key_len > 0 && key == NULL) || (value_len > 0 && value == NULL) ||
	    (nheaders > 0 && headers == NULL) || nheaders > INT32_MAX ||
	    b->count >= INT32_MAX)
		return -EINVAL;
	if (__builtin_sub_overflow(timestamp, first_ts, &ts_delta))
		return -EINVAL;

	/* Size the body first so the length prefix goes straight before it. */
	body = 1 + svarint_size(ts_delta) + svarint_size(b->count) +
	       bytes_size(key_len) + bytes_size(value_len) +
	       svarint_size(nheaders);
	for (uint32_t i = 0; i < nheaders; i++) {
		const struct batch_kv *kv = &headers[i];

		if (kv->key_len < 0 || kv->value_len < -1 ||
		    (kv->key_len > 0 && kv->key == NULL) ||
		    (kv->value_len > 0 && kv->value == NULL))
			return -EINVAL;
		body += bytes_size(kv->key_len) + bytes_size(kv->value_len);
		if (body > INT32_MAX) /* also keeps the sum from overflowing */
			return -EINVAL;
	}
	if (body > INT32_MAX)
		return -EINVAL;
	total = svarint_size((int64_t)body) + body;
	ret = builder_reserve(b, total);
	if (ret < 0)
		return ret;

	p = b->buf + b->len;
	p += varint_put(p, zigzag((int64_t)body));
	*p++ = 0; /* record attributes */
	p += varint_put(p, zigzag(ts_delta));
	p += varint_put(p, zigzag(b->count));
	p = put_bytes(p, key, key_len);
	p = put_bytes(p, value, value_len);
	p += varint_put(p, zigzag(nheaders));
	for (uint32_t i = 0; i < nheaders; i++) {
		p = put_bytes(p, headers[i].key, headers[i].key_len);
		p = put_bytes(p, headers[i].value, headers[i].value_len);
	}
	b->len += total;

	if (b->count == 0) {
		b->first_ts = timestamp;
		b->max_ts = timestamp;
	} else if (timestamp > b->max_ts) {
		b->max_ts = timestamp;
	}
	b->count++;
	return 0;
}

/* Also returns -EINVAL, leaving the builder untouched, for attributes that
 * would make an invalid batch (unknown bits or a codec other than none). */
int batch_builder_finish(struct batch_builder *b, uint16_t attributes,
			 uint8_t **out, size_t *len)
{
	uint8_t *h = b->buf;

	if (b->count == 0 || h == NULL)
		return -EINVAL;
	if ((attributes & ~BATCH_ATTR_KNOWN) != 0 ||
	    (attributes & BATCH_CODEC_MASK) != 0)
		return -EINVAL;

	put_le64(h + BATCH_OFF_BASE_OFFSET, 0);
	put_le32(h + BATCH_OFF_LENGTH, (uint32_t)(b->len - BATCH_LENGTH_END));
	h[BATCH_OFF_MAGIC] = BATCH_MAGIC;
	h[17] = 0;
	put_le16(h + BATCH_OFF_ATTRIBUTES, attributes);
	put_le32(h + BATCH_OFF_RECORD_COUNT, b->count);
	put_le64(h + BATCH_OFF_FIRST_TS, (uint64_t)b->first_ts);
	put_le64(h + BATCH_OFF_MAX_TS, (uint64_t)b->max_ts);
	put_le64(h + 40, (uint64_t)-1);  /* producer_id: none */
	put_le32(h + 48, (uint32_t)-1);  /* base_sequence: none */
	put_le16(h + 52, (uint16_t)-1);  /* producer_epoch: none */
	put_le16(h + 54, 0);
	put_le32(h + BATCH_OFF_CRC,
		 batch_crc32c(0, h + BATCH_CRC_START,
			      b->len - BATCH_CRC_START));

	*out = h;
	*len = b->len;
	batch_builder_init(b); /* the buffer now belongs to the caller */
	return 0;
}

/* --- reading ------------------------------------------------------------ */

int batch_iter_init(struct batch_iter *it, const uint8_t *buf, size_t len)
{
	int ret;

	memset(it, 0, sizeof(*it));
	ret = batch_validate(buf, len, &it->h);
	if (ret < 0) {
		it->h.record_count = 0; /* yields nothing */
		return ret;
	}
	it->pos = buf + BATCH_HEADER_SIZE;
	it->end = buf + len;
	return 0;
}

/* The batch passed batch_validate, so the headers need no second check;
 * decoding stays bounds-checked all the same. */
int batch_iter_next(struct batch_iter *it, struct batch_record *rec)
{
	if (it->index >= it->h.record_count || it->pos == it->end)
		return 0;
	if (record_decode(&it->pos, it->end, it->index, &it->h, rec) < 0) {
		it->pos = it->end;
		return 0;
	}
	it->index++;
	return 1;
}

void batch_header_iter_init(struct batch_header_iter *it, const struct batch_record *rec)
{
	it->pos = rec->headers;
	it->end = rec->headers != NULL ? rec->headers + rec->headers_len : NULL;
	it->left = rec->headers != NULL ? rec->header_count : 0;
}

int batch_header_iter_next(struct batch_header_iter *it, struct batch_kv *kv)
{
	const uint8_t *key, *value;

	if (it->left == 0)
		return 0;
	if (get_bytes(&it->pos, it->end, 0, &key, &kv->key_len) < 0 ||
	    get_bytes(&it->pos, it->end, 1, &value, &kv->value_len) < 0) {
		it->left = 0;
		return -EINVAL;
	}
	kv->key = key;
	kv->value = value;
	it->left--;
	return 1;
}

int batch_record_header(const struct batch_record *rec, uint32_t i,
			struct batch_kv *kv)
{
	struct batch_header_iter it;

	if (i >= rec->header_count || rec->headers == NULL)
		return -EINVAL;
	batch_header_iter_init(&it, rec);
	for (uint32_t j = 0; j <= i; j++)
		if (batch_header_iter_next(&it, kv) != 1)
			return -EINVAL;
	return 0;
}
