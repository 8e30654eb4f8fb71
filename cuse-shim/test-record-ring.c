/*
 * Unit tests of the shim's side of the record ring (record-ring.c): where records go, that a record
 * never wraps and never lands on bytes the daemon has not released, and what the mapping refuses.
 * The daemon's side is tests/unit/record-ring.test.ts.
 */
#define _GNU_SOURCE
#include "record-ring.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test-check.h"

int failures;

#define KiB 1024
#define DATA (256 * KiB)

static int ring_file(size_t bytes)
{
	int fd = memfd_create("test-record-ring", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) {
		perror("memfd");
		exit(1);
	}
	return fd;
}

/* What the daemon does when it lets go of everything up to position. */
static void release_to(struct record_ring *r, uint64_t position)
{
	__atomic_store_n((uint64_t *)r->map, position, __ATOMIC_RELEASE);
}

static void test_places_records_in_order_on_pages(void)
{
	struct record_ring r;
	CHECK(ring_map(&r, ring_file(RING_HEADER_BYTES + DATA)) == 0);
	CHECK(r.size == DATA);
	uint8_t rec[100 * KiB];
	for (size_t i = 0; i < sizeof(rec); i++)
		rec[i] = (uint8_t)(i * 13 + 1);
	uint64_t start = 1;
	CHECK(ring_put(&r, rec, 64 * KiB, &start) == 1 && start == 0);
	CHECK(memcmp(r.data, rec, 64 * KiB) == 0);
	/* 100 KiB after it, then the next starts on the page after that. */
	CHECK(ring_put(&r, rec, 100 * KiB - 1, &start) == 1 && start == 64 * KiB);
	CHECK(memcmp(r.data + 64 * KiB, rec, 100 * KiB - 1) == 0);
	CHECK(r.end == 164 * KiB - 1);
	/* 92 KiB are left before the end, 164 KiB are held: no room for 100 KiB anywhere. */
	CHECK(ring_put(&r, rec, 100 * KiB, &start) == 0);
	CHECK(r.end == 164 * KiB - 1); /* a refusal changes nothing */
	/* The next record starts on the page after the last one's end. */
	CHECK(ring_put(&r, rec, 64 * KiB, &start) == 1 && start == 164 * KiB);
	ring_unmap(&r);
}

static void test_wraps_to_the_start_once_released(void)
{
	struct record_ring r;
	CHECK(ring_map(&r, ring_file(RING_HEADER_BYTES + DATA)) == 0);
	uint8_t rec[100 * KiB];
	memset(rec, 0xab, sizeof(rec));
	uint64_t start = 0;
	CHECK(ring_put(&r, rec, 100 * KiB, &start) == 1 && start == 0);
	CHECK(ring_put(&r, rec, 100 * KiB, &start) == 1 && start == 100 * KiB);
	/* 56 KiB to the end: the next record goes to the next lap's start, which is still held. */
	CHECK(ring_put(&r, rec, 100 * KiB, &start) == 0);
	release_to(&r, 100 * KiB - 1); /* not quite all of the first record */
	CHECK(ring_put(&r, rec, 100 * KiB, &start) == 0);
	release_to(&r, 100 * KiB);
	CHECK(ring_put(&r, rec, 100 * KiB, &start) == 1 && start == DATA);
	CHECK(memcmp(r.data, rec, 100 * KiB) == 0);
	/* Fits before the end, behind the released bytes. */
	release_to(&r, 200 * KiB);
	CHECK(ring_put(&r, rec, 56 * KiB, &start) == 1 && start == DATA + 100 * KiB);
	/* Larger than the whole ring: never. */
	uint8_t *big = calloc(1, DATA + 1);
	release_to(&r, DATA + 156 * KiB);
	CHECK(ring_put(&r, big, DATA + 1, &start) == 0);
	free(big);
	ring_unmap(&r);
}

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed);
}

static int filled(const uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(i * 7 + seed))
			return 0;
	return 1;
}

/* The FUSE loop reads each request at a spot: a record read there is placed where it lies. */
static void test_places_a_record_read_at_its_spot_where_it_lies(void)
{
	struct record_ring r;
	CHECK(ring_map(&r, ring_file(RING_HEADER_BYTES + DATA)) == 0);
	uint8_t *read_at = ring_spot(&r, 80, 128 * KiB);
	/* The record, 80 bytes in, starts on the first page boundary it can. */
	CHECK(read_at == r.data + 4 * KiB - 80);
	fill(read_at + 80, 100 * KiB, 1); /* what the kernel reads there */
	uint64_t start = 0;
	CHECK(ring_put(&r, read_at + 80, 100 * KiB, &start) == 1 && start == 4 * KiB);
	CHECK(filled(r.data + 4 * KiB, 100 * KiB, 1));

	/* A record from elsewhere is copied to the head as before; the spot is forgotten. */
	CHECK(ring_spot(&r, 80, 128 * KiB) != NULL);
	uint8_t rec[100 * KiB];
	fill(rec, sizeof(rec), 2);
	CHECK(ring_put(&r, rec, sizeof(rec), &start) == 1 && start == 104 * KiB);
	CHECK(filled(r.data + 104 * KiB, sizeof(rec), 2));

	/* 52 KiB left in this lap: the spot is in the next, once the daemon released what it covers. */
	CHECK(ring_spot(&r, 80, 128 * KiB) == NULL);
	release_to(&r, 204 * KiB);
	read_at = ring_spot(&r, 80, 128 * KiB);
	CHECK(read_at == r.data + 4 * KiB - 80);
	fill(read_at + 80, 64 * KiB, 3);
	CHECK(ring_put(&r, read_at + 80, 64 * KiB, &start) == 1 && start == DATA + 4 * KiB);
	CHECK(filled(r.data + 4 * KiB, 64 * KiB, 3));

	/* A record read into the ring but not at its spot (headers of another size) is moved. */
	read_at = ring_spot(&r, 80, 128 * KiB);
	CHECK(read_at == r.data + 72 * KiB - 80);
	fill(read_at + 80 + 40, 64 * KiB, 4);
	CHECK(ring_put(&r, read_at + 80 + 40, 64 * KiB, &start) == 1 && start == DATA + 68 * KiB);
	CHECK(filled(r.data + 68 * KiB, 64 * KiB, 4));
	ring_unmap(&r);
}

static void test_refuses_a_ring_too_small_or_missing(void)
{
	struct record_ring r;
	CHECK(ring_map(&r, ring_file(RING_HEADER_BYTES)) == -EINVAL);
	CHECK(r.map == NULL);
	CHECK(ring_map(&r, -1) == -EBADF);
	uint64_t start;
	uint8_t b[RING_MIN_RECORD] = {0};
	CHECK(ring_put(&r, b, sizeof(b), &start) == 0); /* an unmapped ring takes nothing */
	CHECK(ring_spot(&r, 80, sizeof(b)) == NULL);
	ring_unmap(&r);
}

int main(void)
{
	test_places_records_in_order_on_pages();
	test_wraps_to_the_start_once_released();
	test_places_a_record_read_at_its_spot_where_it_lies();
	test_refuses_a_ring_too_small_or_missing();
	return test_result("test-record-ring");
}
