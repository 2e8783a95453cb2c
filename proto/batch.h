/* batch — the record batch: the unit a producer sends, the log stores and a
 * consumer receives, the same bytes all the way (so a fetch can be sendfile'd).
 * Built into both the broker and the client library; never written twice.
 *
 * Invariants:
 *  1. Every integer in the header is little-endian, at a fixed position.
 *  2. The CRC-32C covers bytes [BATCH_CRC_START, BATCH_LENGTH_END + length):
 *     everything after the crc field.  base_offset is outside it, so the
 *     broker stamps offsets without recomputing the CRC.
 *  3. Offsets inside a batch are dense: record i has offset base_offset + i.
 *
 * Header (BATCH_HEADER_SIZE = 56 bytes):
 *   off size field            meaning
 *     0   8  base_offset      i64 offset of record 0; stamped by the broker
 *     8   4  length           u32 bytes after this field (= total size - 12)
 *    12   4  crc              u32 CRC-32C (Castagnoli) of bytes [16, 12+length)
 *    16   1  magic            u8  format version, BATCH_MAGIC (1)
 *    17   1  reserved         u8  0
 *    18   2  attributes       u16 bits 0-2 compression codec (0 = none; others
 *                                 are reserved and rejected), bit 3 timestamp
 *                                 type (0 create time, 1 log-append time),
 *                                 bits 4-15 must be 0
 *    20   4  record_count     u32 >= 1
 *    24   8  first_timestamp  i64 ms since the epoch, timestamp of record 0
 *    32   8  max_timestamp    i64 largest record timestamp in the batch
 *    40   8  producer_id      i64 -1 = none (reserved for idempotence)
 *    48   4  base_sequence    i32 -1 = none (reserved for idempotence)
 *    52   2  producer_epoch   i16 -1 = none (reserved for idempotence)
 *    54   2  reserved         u16 0
 *    56      records, record_count of them, back to back
 *
 * Record ("varint" = zig-zag LEB128 as protobuf's sint32/sint64, at most
 * 5 / 10 bytes; an overlong or truncated varint is malformed):
 *   length           varint  bytes of the record after this field
 *   attributes       u8      0
 *   timestamp_delta  varint  timestamp - first_timestamp (64-bit)
 *   offset_delta     varint  must equal the record's index in the batch
 *   key_length       varint  -1 = null key
 *   key              bytes
 *   value_length     varint  -1 = null value
 *   value            bytes
 *   header_count     varint  >= 0
 *   header_count times: key_length varint (>= 0), key bytes,
 *                       value_length varint (-1 = null), value bytes
 */
#ifndef BROKER_PROTO_BATCH_H
#define BROKER_PROTO_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define BATCH_HEADER_SIZE   56
#define BATCH_LENGTH_END    12 /* bytes before the first byte `length` counts */
#define BATCH_CRC_START     16
#define BATCH_MAGIC         1
#define BATCH_CODEC_MASK    0x0007u
#define BATCH_TS_LOG_APPEND 0x0008u
#define BATCH_ATTR_KNOWN    0x000fu

/* Header offsets, for code that patches or peeks at a few fields in place. */
#define BATCH_OFF_BASE_OFFSET   0
#define BATCH_OFF_LENGTH        8
#define BATCH_OFF_CRC           12
#define BATCH_OFF_MAGIC         16
#define BATCH_OFF_ATTRIBUTES    18
#define BATCH_OFF_RECORD_COUNT  20
#define BATCH_OFF_FIRST_TS      24
#define BATCH_OFF_MAX_TS        32

struct batch_header {
	int64_t base_offset;
	uint32_t length;
	uint32_t crc;
	uint8_t magic;
	uint16_t attributes;
	uint32_t record_count;
	int64_t first_timestamp;
	int64_t max_timestamp;
	int64_t producer_id;
	int32_t base_sequence;
	int16_t producer_epoch;
};

/* Total size in bytes of the batch a header describes. */
static inline size_t batch_size(const struct batch_header *h)
{
	return (size_t)BATCH_LENGTH_END + h->length;
}

/* Offset of the last record of the batch.  base_offset is outside the CRC
 * and may be anything: it wraps as the record iterator's offsets do, never
 * overflows. */
static inline int64_t batch_last_offset(const struct batch_header *h)
{
	return (int64_t)((uint64_t)h->base_offset + h->record_count - 1);
}

/* CRC-32C (Castagnoli, as iSCSI/ext4): batch_crc32c(0, "123456789", 9) is
 * 0xe3069283.  Chain calls by passing the previous result as `crc`. */
uint32_t batch_crc32c(uint32_t crc, const void *buf, size_t len);

/* Parse the fixed header from `buf` (at least BATCH_HEADER_SIZE bytes) and
 * check what the header alone can tell: magic, reserved fields and attribute
 * bits zero, codec 0, record_count >= 1, length >= BATCH_HEADER_SIZE - 12.
 * Does not look at the records or the CRC.
 * Returns 0, -EAGAIN if len < BATCH_HEADER_SIZE, -EPROTONOSUPPORT for an
 * unknown magic or codec, -EINVAL for any other bad field. */
int batch_header_decode(const uint8_t *buf, size_t len, struct batch_header *h);

/* Validate one complete batch that must fill exactly `len` bytes: header as
 * batch_header_decode, batch_size(h) == len, CRC, and every record well formed
 * (lengths inside the batch, record lengths consistent, offset deltas 0..n-1,
 * exactly record_count records, no trailing bytes, every timestamp
 * <= max_timestamp and the first equal to first_timestamp).
 * Fills *h (may be NULL).  Returns 0, -EBADMSG on a CRC mismatch, or the
 * errors of batch_header_decode / -EINVAL for malformed records. */
int batch_validate(const uint8_t *buf, size_t len, struct batch_header *h);

/* Overwrite the base offset of the batch in place (outside the CRC). */
void batch_stamp_offset(uint8_t *buf, int64_t base_offset);

/* --- building ----------------------------------------------------------- */

/* One record header; key is never null, value may be (value_len = -1). */
struct batch_kv {
	const void *key;
	int32_t key_len;
	const void *value;
	int32_t value_len;
};

/* A batch under construction; caller storage.  Not thread-safe. */
struct batch_builder {
	uint8_t *buf; /* owned; header space reserved at the front */
	size_t len;
	size_t cap;
	uint32_t count;
	int64_t first_ts;
	int64_t max_ts;
};

/* Prepare an empty builder.  No allocation until the first add. */
void batch_builder_init(struct batch_builder *b);

/* Release the builder's buffer; safe on an initialised or finished builder. */
void batch_builder_fini(struct batch_builder *b);

/* Append one record.  key/value may be NULL with length -1 (null); headers
 * may be NULL when nheaders is 0.  The data are copied.
 * Returns 0, -ENOMEM, or -EINVAL (negative length other than -1, more than
 * INT32_MAX records or bytes). */
int batch_builder_add(struct batch_builder *b, int64_t timestamp,
		      const void *key, int32_t key_len,
		      const void *value, int32_t value_len,
		      const struct batch_kv *headers, uint32_t nheaders);

/* Bytes the batch would take if finished now (header included). */
size_t batch_builder_size(const struct batch_builder *b);

/* Number of records added so far. */
static inline uint32_t batch_builder_count(const struct batch_builder *b)
{
	return b->count;
}

/* Finish the batch: write the header (base_offset 0, producer fields -1,
 * given attributes) and the CRC.  On success *out is the batch, returned
 * owned (free() it), *len its size, and the builder is empty again (ready
 * for reuse, no buffer).  Returns 0, -EINVAL if no record was added. */
int batch_builder_finish(struct batch_builder *b, uint16_t attributes,
			 uint8_t **out, size_t *len);

/* --- reading ------------------------------------------------------------ */

/* One decoded record; pointers borrow from the batch buffer. */
struct batch_record {
	int64_t offset;
	int64_t timestamp;
	const uint8_t *key;     /* NULL when key_len == -1 */
	int32_t key_len;
	const uint8_t *value;   /* NULL when value_len == -1 */
	int32_t value_len;
	uint32_t header_count;
	const uint8_t *headers; /* encoded headers, for batch_header_iter */
	size_t headers_len;
};

struct batch_iter {
	const uint8_t *pos;
	const uint8_t *end;
	struct batch_header h;
	uint32_t index;
};

/* Start iterating over a complete batch: runs batch_validate first, so a
 * corrupt or malformed batch yields no record.  Borrows buf for the life of
 * the iterator.  Returns 0 or the errors of batch_validate. */
int batch_iter_init(struct batch_iter *it, const uint8_t *buf, size_t len);

/* Next record.  Returns 1 with *rec filled, 0 at the end. */
int batch_iter_next(struct batch_iter *it, struct batch_record *rec);

/* A record's headers in order, O(1) each (borrows the record's bytes). */
struct batch_header_iter {
	const uint8_t *pos;
	const uint8_t *end;
	uint32_t left;
};

void batch_header_iter_init(struct batch_header_iter *it, const struct batch_record *rec);

/* Next header into *kv (borrowing).  Returns 1, 0 at the end, or -EINVAL
 * (cannot happen on a batch that passed validation). */
int batch_header_iter_next(struct batch_header_iter *it, struct batch_kv *kv);

/* Decode header `i` (< rec->header_count) of a record into *kv (borrowing):
 * O(i), for random access; walk every header with batch_header_iter.
 * Returns 0 or -EINVAL (cannot happen on a batch that passed validation). */
int batch_record_header(const struct batch_record *rec, uint32_t i,
			struct batch_kv *kv);

#endif
