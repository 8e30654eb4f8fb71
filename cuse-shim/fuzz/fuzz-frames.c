/*
 * libFuzzer harness: the frame codec (frames.c) over any bytes, read as the shim's reply reader
 * reads a stream (daemon-link.c reader_main: a header, then its payload if the length is in bounds).
 *
 * Invariants: a header decodes to the fields at their offsets and encodes back to the same 16
 * bytes; it is refused (-EPROTO) exactly when its length is over FRAME_MAX_PAYLOAD, and the stream
 * stops there; a payload is only read within the input; struct mtget, mtop and mtpos payloads
 * survive decode + encode byte for byte (mtop's two padding bytes are written as zeros).
 */
#include "../frames.h"
#include "fuzz-check.h"

#include <errno.h>
#include <string.h>
#include <sys/mtio.h>

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void payload_round_trip(const uint8_t *p, uint32_t length)
{
	uint8_t out[MTGET_WIRE_BYTES];
	if (length == MTGET_WIRE_BYTES) {
		struct mtget st;
		mtget_decode(p, &st);
		mtget_encode(&st, out);
		FUZZ_CHECK(memcmp(out, p, MTGET_WIRE_BYTES) == 0);
	}
	if (length == MTOP_WIRE_BYTES) {
		struct mtop op;
		mtop_decode(p, &op);
		mtop_encode(&op, out);
		FUZZ_CHECK(memcmp(out, p, 2) == 0 && out[2] == 0 && out[3] == 0 && memcmp(out + 4, p + 4, 4) == 0);
		struct mtpos pos;
		mtpos_decode(p, &pos);
		mtpos_encode(&pos, out);
		FUZZ_CHECK(memcmp(out, p, MTPOS_WIRE_BYTES) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t at = 0;
	while (size - at >= FRAME_HEADER_BYTES) {
		const uint8_t *head = data + at;
		struct frame_header h;
		int r = frame_header_decode(head, &h);
		FUZZ_CHECK(h.length == le32(head) && h.id == le32(head + 8) && h.arg == (int32_t)le32(head + 12));
		FUZZ_CHECK(h.type == (uint16_t)(head[4] | head[5] << 8) && h.flags == (uint16_t)(head[6] | head[7] << 8));
		FUZZ_CHECK(r == (h.length > FRAME_MAX_PAYLOAD ? -EPROTO : 0));
		uint8_t again[FRAME_HEADER_BYTES];
		frame_header_encode(&h, again);
		FUZZ_CHECK(memcmp(again, head, FRAME_HEADER_BYTES) == 0);
		if (r)
			return 0; /* the reader stops at a length over the limit, before any allocation */
		at += FRAME_HEADER_BYTES;
		if (h.length > size - at)
			return 0; /* cut short: the reader reports the stream ended inside a frame */
		payload_round_trip(data + at, h.length);
		at += h.length;
	}
	return 0;
}
