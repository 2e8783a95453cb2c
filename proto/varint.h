/* varint — protobuf's base-128 varints (LEB128) and zig-zag, shared by the
 * record batch codec and by the two places that pack protobuf around bytes
 * they do not copy (the broker's zero-copy fetch answer, the producer's
 * request header in front of its batch). */
#ifndef BROKER_PROTO_VARINT_H
#define BROKER_PROTO_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Zig-zag map a signed value to unsigned, written without shifting a
 * negative number (undefined in C). */
static inline uint64_t zigzag(int64_t x)
{
	return x < 0 ? ((uint64_t)-(x + 1) << 1) | 1 : (uint64_t)x << 1;
}

/* Inverse of zigzag(); v >> 1 < 2^63, so neither branch overflows. */
static inline int64_t unzigzag(uint64_t v)
{
	return (v & 1) ? -(int64_t)(v >> 1) - 1 : (int64_t)(v >> 1);
}

/* Bytes LEB128 takes for v: one per started group of 7 significant bits. */
static inline size_t varint_size(uint64_t v)
{
	return (size_t)(64 - __builtin_clzll(v | 1) + 6) / 7;
}

/* Bytes of the zig-zag varint of x. */
static inline size_t svarint_size(int64_t x)
{
	return varint_size(zigzag(x));
}

/* Write v as LEB128 at p (the caller reserved varint_size(v) bytes);
 * returns the bytes written. */
static inline size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

#endif
