/* partition — the key partitioner shared by the broker and the client:
 * Kafka's default, so a key lands on the same partition number as it would
 * in Kafka: (murmur2(key) & 0x7fffffff) % partitions, murmur2 being the
 * 32-bit MurmurHash2 with seed 0x9747b28c over the key bytes.  Stable:
 * changing it would move keys between partitions, so it never changes. */
#ifndef BROKER_PROTO_PARTITION_H
#define BROKER_PROTO_PARTITION_H

#include <stddef.h>
#include <stdint.h>

uint32_t part_murmur2(const void *key, size_t len);

/* Partition of `key` among n > 0 partitions. */
static inline uint32_t part_for_key(const void *key, size_t len, uint32_t n)
{
	return (part_murmur2(key, len) & 0x7fffffffu) % n;
}

#endif
