/*
 * Unit tests of the record assembler: records fed exactly as CUSE chunks them (reference section 6).
 */
#include "record-assembler.h"
#include "test-cuse-kernel.h"

#include <errno.h>
#include <stdio.h>

#include "test-check.h"
#include <stdlib.h>
#include <string.h>

int failures;

#define KiB 1024
#define MiB (1024 * 1024)

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len ? len : 1);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed + (i >> 17));
	return p;
}

/* Where the writer's buffer starts in its page: the kernel cuts the first chunk short by that much. */
static size_t misalign;

/*
 * One write(2) of len bytes as CUSE delivers it. Returns the result of the last chunk fed; *chunks
 * gets how many chunks were fed (feeding stops at the first error, as the kernel does).
 */
static int write_syscall(struct record_assembler *ra, const uint8_t *data, size_t len, int *chunks)
{
	size_t off = 0;
	int r;
	*chunks = 0;
	do {
		size_t n = cuse_kernel_chunk(misalign, off, len);
		r = ra_feed(ra, (off_t)off, data + off, n);
		(*chunks)++;
		if (r < 0 || r == RA_COMPLETE)
			return r;
		off += n;
	} while (off < len);
	return r;
}

static int record_is(const struct record_assembler *ra, const uint8_t *data, size_t len)
{
	size_t got;
	const uint8_t *rec = ra_record(ra, &got);
	return got == len && (len == 0 || memcmp(rec, data, len) == 0);
}

/* A record that is an exact multiple of the chunk is complete only at the next operation. */
static void exact_multiple(size_t len, size_t max)
{
	struct record_assembler ra;
	ra_init(&ra, max);
	uint8_t *data = pattern(len, 1);
	int chunks;
	CHECK(write_syscall(&ra, data, len, &chunks) == RA_ACCEPTED);
	CHECK((size_t)chunks == len / CUSE_CHUNK);
	CHECK(ra_pending(&ra));
	CHECK(ra_flush(&ra) == RA_COMPLETE);
	CHECK(record_is(&ra, data, len));
	CHECK(!ra_pending(&ra));
	CHECK(ra_flush(&ra) == RA_NONE);
	free(data);
	ra_free(&ra);
}

static void test_128k(void)
{
	exact_multiple(128 * KiB, MiB);
}

static void test_1m(void)
{
	exact_multiple(MiB, MiB);
}

static void test_4m(void)
{
	exact_multiple(4 * MiB, 64 * MiB);
}

static void test_300000(void)
{
	struct record_assembler ra;
	ra_init(&ra, MiB);
	uint8_t *data = pattern(300000, 2);
	int chunks;
	CHECK(write_syscall(&ra, data, 300000, &chunks) == RA_COMPLETE);
	CHECK(chunks == 3);
	CHECK(record_is(&ra, data, 300000));
	CHECK(!ra_pending(&ra));
	CHECK(ra_flush(&ra) == RA_NONE);
	free(data);
	ra_free(&ra);
}

static void test_small_record(void)
{
	struct record_assembler ra;
	ra_init(&ra, MiB);
	uint8_t *data = pattern(10240, 3);
	CHECK(ra_feed(&ra, 0, data, 10240) == RA_COMPLETE);
	CHECK(record_is(&ra, data, 10240));
	free(data);
	ra_free(&ra);
}

static void test_back_to_back(void)
{
	struct record_assembler ra;
	ra_init(&ra, 4 * MiB);
	uint8_t *a = pattern(300000, 4), *b = pattern(2 * MiB, 5), *c = pattern(5000, 6);
	int chunks;

	CHECK(write_syscall(&ra, a, 300000, &chunks) == RA_COMPLETE);
	CHECK(record_is(&ra, a, 300000));
	CHECK(write_syscall(&ra, c, 5000, &chunks) == RA_COMPLETE);
	CHECK(record_is(&ra, c, 5000));

	/* Two exact multiples in a row: the second write's offset-0 chunk is the next operation. */
	CHECK(write_syscall(&ra, b, 2 * MiB, &chunks) == RA_ACCEPTED);
	CHECK(ra_feed(&ra, 0, a, CUSE_CHUNK) == -EBUSY);
	CHECK(ra_flush(&ra) == RA_COMPLETE);
	CHECK(record_is(&ra, b, 2 * MiB));
	CHECK(write_syscall(&ra, b, 128 * KiB, &chunks) == RA_ACCEPTED);
	CHECK(ra_flush(&ra) == RA_COMPLETE);
	CHECK(record_is(&ra, b, 128 * KiB));
	CHECK(write_syscall(&ra, a, 300000, &chunks) == RA_COMPLETE);
	CHECK(record_is(&ra, a, 300000));
	free(a);
	free(b);
	free(c);
	ra_free(&ra);
}

static void test_then_other_op(void)
{
	struct record_assembler ra;
	ra_init(&ra, MiB);
	uint8_t *data = pattern(256 * KiB, 7);
	int chunks;
	CHECK(write_syscall(&ra, data, 256 * KiB, &chunks) == RA_ACCEPTED);
	/* An ioctl, read, flush or release arrives. */
	CHECK(ra_flush(&ra) == RA_COMPLETE);
	CHECK(record_is(&ra, data, 256 * KiB));
	/* The operation after it finds nothing pending, and the record is no longer handed out. */
	CHECK(ra_flush(&ra) == RA_NONE);
	CHECK(record_is(&ra, data, 0));
	free(data);
	ra_free(&ra);
}

static void test_out_of_order(void)
{
	struct record_assembler ra;
	ra_init(&ra, MiB);
	uint8_t *data = pattern(CUSE_CHUNK, 8);
	CHECK(ra_feed(&ra, 0, data, CUSE_CHUNK) == RA_ACCEPTED);
	CHECK(ra_feed(&ra, 2 * CUSE_CHUNK, data, CUSE_CHUNK) == -EPROTO);
	/* The broken record is dropped: nothing to send at the next operation. */
	CHECK(ra_feed(&ra, CUSE_CHUNK, data, CUSE_CHUNK) == -EPROTO);
	CHECK(ra_flush(&ra) == RA_NONE);
	/* A continuation with no record started. */
	CHECK(ra_feed(&ra, CUSE_CHUNK, data, 100) == -EPROTO);
	/* Going back inside the record. */
	CHECK(ra_feed(&ra, 0, data, CUSE_CHUNK) == RA_ACCEPTED);
	CHECK(ra_feed(&ra, CUSE_CHUNK, data, CUSE_CHUNK) == RA_ACCEPTED);
	CHECK(ra_feed(&ra, CUSE_CHUNK, data, CUSE_CHUNK) == -EPROTO);
	CHECK(ra_flush(&ra) == RA_NONE);
	/* It recovers at the next syscall. */
	CHECK(ra_feed(&ra, 0, data, 1000) == RA_COMPLETE);
	CHECK(record_is(&ra, data, 1000));
	free(data);
	ra_free(&ra);
}

static void test_oversize(void)
{
	struct record_assembler ra;
	ra_init(&ra, MiB);
	uint8_t *data = pattern(2 * MiB, 9);
	int chunks;

	/* One byte over: the ninth chunk fails, the writer sees a short write of 1 MiB. */
	CHECK(write_syscall(&ra, data, MiB + 1, &chunks) == -EINVAL);
	CHECK(chunks == 9);
	CHECK(!ra_pending(&ra));
	/* Any later chunk of that syscall fails too, and nothing is sent at the next operation. */
	CHECK(ra_feed(&ra, MiB + CUSE_CHUNK, data, CUSE_CHUNK) == -EINVAL);
	CHECK(ra_flush(&ra) == RA_NONE);

	/* Whole chunks over the maximum. */
	CHECK(write_syscall(&ra, data, 2 * MiB, &chunks) == -EINVAL);
	CHECK(chunks == 9);
	CHECK(ra_flush(&ra) == RA_NONE);

	/* The next record is fine, and exactly the maximum fits. */
	CHECK(write_syscall(&ra, data, MiB, &chunks) == RA_ACCEPTED);
	CHECK(ra_flush(&ra) == RA_COMPLETE);
	CHECK(record_is(&ra, data, MiB));
	ra_free(&ra);

	/* A maximum under one chunk fails on the offset-0 chunk: the writer gets EINVAL. */
	ra_init(&ra, 100000);
	CHECK(ra_feed(&ra, 0, data, 100001) == -EINVAL);
	CHECK(ra_feed(&ra, 0, data, CUSE_CHUNK) == -EINVAL);
	CHECK(ra_flush(&ra) == RA_NONE);
	CHECK(ra_feed(&ra, 0, data, 100000) == RA_COMPLETE);
	CHECK(record_is(&ra, data, 100000));
	free(data);
	ra_free(&ra);
}

/*
 * Buffers that do not start on a page boundary (tar's and perl's, unlike dd's): the first chunk is
 * short of 128 KiB, and only a chunk that cannot have been cut ends the record by itself.
 */
static void test_misaligned(void)
{
	static const size_t offsets[] = {16, 1408, 4095};
	static const size_t sizes[] = {10240, 126976, 126977, 131056, 128 * KiB, 300000, MiB};
	struct record_assembler ra;
	ra_init(&ra, 4 * MiB);
	uint8_t *data = pattern(MiB, 10);
	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		misalign = offsets[i];
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			size_t len = sizes[j];
			int chunks, r = write_syscall(&ra, data, len, &chunks);
			/* The first chunk is whole when it could have been longer. */
			int cut = len > CUSE_CHUNK - misalign;
			size_t last = cut ? (len - (CUSE_CHUNK - misalign)) % CUSE_CHUNK : len;
			int ends_itself = cut ? last != 0 : !cuse_chunk_may_continue(0, len);
			CHECK(r == (ends_itself ? RA_COMPLETE : RA_ACCEPTED));
			if (r == RA_ACCEPTED)
				CHECK(ra_flush(&ra) == RA_COMPLETE);
			if (!record_is(&ra, data, len))
				fprintf(stderr, "misalign %zu, record of %zu bytes\n", misalign, len);
			CHECK(record_is(&ra, data, len));
			CHECK(ra_flush(&ra) == RA_NONE);
		}
	}
	/* 131056 bytes from a buffer 16 bytes into a page: one chunk that may go on, so it waits. */
	misalign = 16;
	int chunks;
	CHECK(write_syscall(&ra, data, 131056, &chunks) == RA_ACCEPTED && chunks == 1);
	CHECK(ra_pending(&ra));
	/* 300000 bytes from there: 131056 + 131072 + 37872, complete on the short one. */
	CHECK(ra_flush(&ra) == RA_COMPLETE);
	CHECK(write_syscall(&ra, data, 300000, &chunks) == RA_COMPLETE && chunks == 3);
	misalign = 0;
	free(data);
	ra_free(&ra);
}

int main(void)
{
	test_128k();
	test_300000();
	test_1m();
	test_4m();
	test_small_record();
	test_back_to_back();
	test_then_other_op();
	test_out_of_order();
	test_oversize();
	test_misaligned();
	return test_result("test-record-assembler");
}
