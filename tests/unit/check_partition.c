/* check_partition — the key partitioner matches Kafka's murmur2. */
#include <check.h>
#include <string.h>

#include "proto/partition.h"

Suite *partition_suite(void); /* called by the runner (tests/unit/runner.c) */

/* Kafka's own test vectors (UtilsTest.testMurmur2), as signed 32-bit. */
START_TEST(test_kafka_vectors)
{
	static const struct {
		const char *key;
		int32_t hash;
	} v[] = {
		{ "21", -973932308 },
		{ "foobar", -790332482 },
		{ "a-little-bit-long-string", -985981536 },
		{ "a-little-bit-longer-string", -1486304829 },
		{ "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971 },
		{ "abc", 479470107 },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		ck_assert_int_eq((int32_t)part_murmur2(v[i].key, strlen(v[i].key)), v[i].hash);
}
END_TEST

START_TEST(test_partition_range)
{
	/* toPositive(murmur2("foobar")) % 7, as Kafka computes it */
	ck_assert_uint_eq(part_for_key("foobar", 6, 7), (uint32_t)(-790332482 & 0x7fffffff) % 7);
	for (uint32_t n = 1; n < 50; n++)
		ck_assert_uint_lt(part_for_key("k", 1, n), n);
	ck_assert_uint_eq(part_for_key("", 0, 3), part_for_key("", 0, 3));
}
END_TEST

Suite *partition_suite(void)
{
	Suite *s = suite_create("partition");
	TCase *tc = tcase_create("murmur2");

	tcase_add_test(tc, test_kafka_vectors);
	tcase_add_test(tc, test_partition_range);
	suite_add_tcase(s, tc);
	return s;
}
