/* partition — Kafka-compatible murmur2 key partitioner (see partition.h). */
#include "proto/partition.h"

uint32_t part_murmur2(const void *key, size_t len)
{
	const uint8_t *p = key;
	const uint32_t m = 0x5bd1e995u;
	uint32_t h = 0x9747b28cu ^ (uint32_t)len;
	size_t i = 0;

	for (; i + 4 <= len; i += 4) {
		uint32_t k = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 |
			     (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len & 3) {
	case 3:
		h ^= (uint32_t)p[i + 2] << 16;
		__attribute__((fallthrough));
	case 2:
		h ^= (uint32_t)p[i + 1] << 8;
		__attribute__((fallthrough));
	case 1:
		h ^= p[i];
		h *= m;
		break;
	default:
		break;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return h;
}
