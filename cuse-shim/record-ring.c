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

int ring_put(struct record_ring *r, const void *src, size_t len, uint64_t *start)
{
	if (!r->map || len > r->size)
		return 0;
	uint64_t at = r->head;
	uint64_t offset = at % r->size;
	if (offset + len > r->size)
		at += r->size - offset;
	/* Acquire: the daemon's reads of the bytes it released happen before this shim overwrites them. */
	uint64_t released = __atomic_load_n((const uint64_t *)r->map, __ATOMIC_ACQUIRE);
	if (at + len - released > r->size)
		return 0;
	memcpy(r->data + at % r->size, src, len);
	*start = at;
	r->head = (at + len + RING_ALIGN - 1) / RING_ALIGN * RING_ALIGN;
	return 1;
}
