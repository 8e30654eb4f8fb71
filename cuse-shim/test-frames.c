/*
 * Unit tests of the frame codec: the header's byte layout, and the wire layouts of struct mtop,
 * mtget and mtpos against the kernel's own structs (which ioctl copies through on x86_64).
 */
#include "frames.h"

#include <errno.h>
#include <stdio.h>

#include "test-check.h"
#include <string.h>
#include <sys/mtio.h>

int failures;

_Static_assert(sizeof(struct mtop) == MTOP_WIRE_BYTES, "struct mtop is 8 bytes on x86_64");
_Static_assert(sizeof(struct mtget) == MTGET_WIRE_BYTES, "struct mtget is 48 bytes on x86_64");
_Static_assert(sizeof(struct mtpos) == MTPOS_WIRE_BYTES, "struct mtpos is 8 bytes on x86_64");

static void test_header_layout(void)
{
	struct frame_header h = {.length = 0x01020304, .type = 0x0583, .flags = 0x0607, .id = 0xfffffffe, .arg = -28};
	uint8_t b[FRAME_HEADER_BYTES];
	const uint8_t want[FRAME_HEADER_BYTES] = {4, 3, 2, 1, 0x83, 5, 7, 6, 0xfe, 0xff, 0xff, 0xff, 0xe4, 0xff, 0xff, 0xff};
	frame_header_encode(&h, b);
	CHECK(memcmp(b, want, sizeof(b)) == 0);

	struct frame_header d;
	CHECK(frame_header_decode(b, &d) == 0);
	CHECK(d.length == h.length && d.type == h.type && d.flags == h.flags && d.id == h.id && d.arg == -28);
}

static void test_header_limits(void)
{
	struct frame_header h = {.length = FRAME_MAX_PAYLOAD, .type = FRAME_READ | FRAME_REPLY, .arg = INT32_MIN};
	uint8_t b[FRAME_HEADER_BYTES];
	struct frame_header d;
	frame_header_encode(&h, b);
	CHECK(frame_header_decode(b, &d) == 0);
	CHECK(d.arg == INT32_MIN && d.length == FRAME_MAX_PAYLOAD);
	h.length = FRAME_MAX_PAYLOAD + 1;
	frame_header_encode(&h, b);
	CHECK(frame_header_decode(b, &d) == -EPROTO);
}

/* On x86_64 the wire layout is the native layout, padding aside. */
static void test_mtop(void)
{
	struct mtop op = {.mt_op = MTFSF, .mt_count = -7}, back;
	uint8_t b[MTOP_WIRE_BYTES];
	mtop_encode(&op, b);
	const uint8_t want[8] = {MTFSF, 0, 0, 0, 0xf9, 0xff, 0xff, 0xff};
	CHECK(memcmp(b, want, 8) == 0);
	mtop_decode(b, &back);
	CHECK(back.mt_op == MTFSF && back.mt_count == -7);
}

static void test_mtget(void)
{
	struct mtget st, back;
	memset(&st, 0, sizeof(st));
	st.mt_type = MT_ISSCSI2;
	st.mt_resid = 1;
	st.mt_dsreg = 0x12000400;
	st.mt_gstat = (long)0x81010000;
	st.mt_erreg = 3;
	st.mt_fileno = 5;
	st.mt_blkno = -1;
	uint8_t b[MTGET_WIRE_BYTES];
	mtget_encode(&st, b);
	CHECK(memcmp(b, &st, sizeof(b)) == 0);
	mtget_decode(b, &back);
	CHECK(memcmp(&back, &st, sizeof(st)) == 0);
}

static void test_mtpos(void)
{
	struct mtpos pos = {.mt_blkno = 0x123456789aL}, back;
	uint8_t b[MTPOS_WIRE_BYTES];
	mtpos_encode(&pos, b);
	CHECK(memcmp(b, &pos, sizeof(b)) == 0);
	mtpos_decode(b, &back);
	CHECK(back.mt_blkno == pos.mt_blkno);
}

int main(void)
{
	test_header_layout();
	test_header_limits();
	test_mtop();
	test_mtget();
	test_mtpos();
	return test_result("test-frames");
}
