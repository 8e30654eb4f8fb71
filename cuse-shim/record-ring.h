/*
 * The record ring (proto/shim-frames.md, "Record ring"): shared memory the daemon makes and the
 * shim inherits as a descriptor. The shim puts a record in it (a large one copied, any one that the
 * kernel read there in place) and sends only where it lies instead of the record itself: the record
 * no longer crosses the socket (a copy into the kernel and one out of it, with their system calls),
 * and the daemon's sinks and hashing read it where it is.
 *
 * Layout: the first page is the header, of which the daemon writes one field, `released` (u64 at
 * offset 0): the ring position up to which it has let every record go. The rest is the data area.
 * Positions count bytes since the ring was made and never wrap; a position's byte lies at
 * data[position % size]. A record never wraps: one that would is placed at the start of the area.
 */
#ifndef TAPEPROXY_RECORD_RING_H
#define TAPEPROXY_RECORD_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_HEADER_BYTES 4096
/* Smaller records go in the ring only where the kernel read them into it (ring_at_spot): copied,
 * they go on the socket, gathered (daemon-link.c), where a copy costs about as much. */
#define RING_MIN_RECORD (64 * 1024)
/* Records start on a page, as the sinks' writes then copy whole pages from the ring. */
#define RING_ALIGN 4096

struct record_ring {
	uint8_t *map;
	size_t map_bytes;
	uint8_t *data;
	uint64_t size; /* of the data area */
	uint64_t end;  /* where the last record ends; the next starts on a page after it */
	/* ring_spot's place (none while spot_end is 0): a record at spot_at is placed where it lies,
	 * up to spot_end. */
	uint64_t spot_at, spot_end;
};

/* Maps the ring whose descriptor is fd (then closed). 0, or -errno (-EINVAL: too small). */
int ring_map(struct record_ring *r, int fd);
void ring_unmap(struct record_ring *r);

/* Copies len bytes into the ring: 1 with their position in *start, or 0 when the ring has no room.
 * A record that lies at the place ring_spot gave is placed there, without a copy. */
int ring_put(struct record_ring *r, const void *src, size_t len, uint64_t *start);

/* Whether a record of len bytes at src lies at the place ring_spot gave: ring_put then places it
 * where it is, without a copy. */
int ring_at_spot(const struct record_ring *r, const void *src, size_t len);

/* Where to read `room` bytes of which the record starts `before` bytes in, so that the record lands
 * on a free page of the ring: the kernel then reads a FUSE WRITE's record straight into the ring,
 * and ring_put finds it there. NULL while the ring has no such room. The place holds until the
 * next ring_put. */
uint8_t *ring_spot(struct record_ring *r, size_t before, size_t room);

#endif
