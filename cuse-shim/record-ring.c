#include "record-ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ring_map(struct record_ring *r, int fd)
{
	struct stat st;
	*r = (struct record_ring){0};
	int e = fstat(fd, &st) ? -errno : 0;
	if (!e && st.st_size < RING_HEADER_BYTES + RING_MIN_RECORD)
		e = -EINVAL;
	void *map = MAP_FAILED;
	if (!e) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			e = -errno;
	}
	close(fd);
	if (e)
		return e;
	r->map = map;
	r->map_bytes = (size_t)st.st_size;
	r->data = r->map + RING_HEADER_BYTES;
	r->size = r->map_bytes - RING_HEADER_BYTES;
	return 0;
}

void ring_unmap(struct record_ring *r)
{
	if (r->map)
		munmap(r->map, r->map_bytes);
	*r = (struct record_ring){0};
}

static uint64_t page_up(uint64_t position)
{
	return (position + RING_ALIGN - 1) / RING_ALIGN * RING_ALIGN;
}

/* Whether the bytes [from, to) are free: past the last record's end, and released by the daemon. */
static int is_free(const struct record_ring *r, uint64_t from, uint64_t to)
{
	/* Acquire: the daemon's reads of the bytes it released happen before this shim overwrites them. */
	uint64_t released = __atomic_load_n((const uint64_t *)r->map, __ATOMIC_ACQUIRE);
	return from >= r->end && to - released <= r->size;
}

int ring_at_spot(const struct record_ring *r, const void *src, size_t len)
{
	return r->spot_end && src == r->data + r->spot_at % r->size && r->spot_at + len <= r->spot_end;
}

int ring_put(struct record_ring *r, const void *src, size_t len, uint64_t *start)
{
	int at_spot = ring_at_spot(r, src, len);
	r->spot_end = 0;
	if (!r->map || len > r->size)
		return 0;
	uint64_t at;
	if (at_spot) {
		at = r->spot_at; /* read there by the kernel, into space ring_spot found free: nothing to copy */
	} else {
		at = page_up(r->end);
		uint64_t offset = at % r->size;
		if (offset + len > r->size)
			at += r->size - offset;
		if (!is_free(r, at, at + len))
			return 0;
		/* memmove: a record read into the ring but not at its spot may overlap where it goes. */
		memmove(r->data + at % r->size, src, len);
	}
	*start = at;
	r->end = at + len;
	return 1;
}

uint8_t *ring_spot(struct record_ring *r, size_t before, size_t room)
{
	r->spot_end = 0;
	if (!r->map || room > r->size)
		return NULL;
	uint64_t at = page_up(r->end + before);
	uint64_t from = at - before;
	if (from % r->size + room > r->size) {
		from += r->size - from % r->size; /* the next lap's start */
		at = page_up(from + before);
		from = at - before;
		if (from % r->size + room > r->size)
			return NULL; /* `before` so large that no place in a lap fits */
	}
	if (!is_free(r, from, from + room))
		return NULL;
	r->spot_at = at;
	r->spot_end = from + room;
	return r->data + from % r->size;
}
