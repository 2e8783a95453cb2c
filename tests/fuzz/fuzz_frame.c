/* fuzz_frame — libFuzzer target for the connection framing of
 * broker/server.c: the input is a client's byte stream, split into frames
 * by srv_frame_check() (the same function conn_read uses: 4-byte big-endian
 * length, refused above max.request.bytes before anything is allocated),
 * each frame decoded as a protobuf Request as conn_read does.
 *
 * Properties checked besides ASan/UBSan: a complete frame never extends
 * past the buffered bytes or above the limit; an incomplete one is below
 * the limit.  Byte 0 of the input picks the limit (so both sides of it
 * are reached with small inputs); the rest is the stream. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker/server.h"
#include "proto/broker.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAME_DEFAULT_MAX (16 << 20) /* max.request.bytes' default */

static __attribute__((noreturn)) void fail(const char *what, size_t off, uint32_t len)
{
	fprintf(stderr, "fuzz_frame: %s (stream offset %zu, frame length %u)\n", what, off, len);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t max;
	size_t off = 1;

	if (size < 1)
		return 0;
	/* 0: the default limit; else a small one (16..4080 bytes). */
	max = data[0] == 0 ? FRAME_DEFAULT_MAX : (int64_t)data[0] * 16;
	/* Bounded: each step consumes >= 4 bytes or stops. */
	while (off < size) {
		uint32_t len = 0;
		size_t have = size - off;
		int rc = srv_frame_check(data + off, have, max, &len);
		Brokerd__Request *m;

		if (rc == -EMSGSIZE) {
			if ((int64_t)len <= max)
				fail("refused a frame within the limit", off, len);
			break;
		}
		if (rc == 0) {
			if (have >= 4 && ((int64_t)len > max || have - 4 >= len))
				fail("asked for more bytes than the frame needs", off, len);
			break;
		}
		if (rc != 1 || (int64_t)len > max || 4 + (size_t)len > have)
			fail("accepted a frame past the buffer or the limit", off, len);
		m = brokerd__request__unpack(NULL, len, data + off + 4);
		if (m != NULL)
			brokerd__request__free_unpacked(m, NULL);
		off += 4 + (size_t)len;
	}
	return 0;
}
