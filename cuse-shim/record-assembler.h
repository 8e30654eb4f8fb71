/*
 * Reassembles tape records from CUSE write chunks (reference sections 5 and 6): the kernel cuts a
 * write(2) into requests of at most 32 pages of the writer's buffer, at offsets restarting at 0 for
 * each syscall. A record ends on a chunk that cannot have been cut (cuse_chunk_may_continue), or,
 * when it could have been, when the next operation arrives (ra_flush). Pure logic: no FUSE, no
 * socket.
 */
#ifndef TAPEPROXY_RECORD_ASSEMBLER_H
#define TAPEPROXY_RECORD_ASSEMBLER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CUSE_CHUNK 131072
#define CUSE_PAGE 4096

/*
 * Whether the kernel may send more chunks of the same read(2) or write(2) after this one.
 * fuse_get_user_pages takes at most 32 pages of the user's buffer per request, so a chunk is cut
 * where the 32nd page ends: the first one, from a buffer that starts o bytes into a page, is
 * CUSE_CHUNK - o bytes long (o = 16 for a malloc'd buffer gives 131056), and every later one starts
 * on a page boundary and is CUSE_CHUNK long. A shorter chunk is the syscall's last.
 */
static inline int cuse_chunk_may_continue(off_t offset, size_t len)
{
	return offset == 0 ? len > CUSE_CHUNK - CUSE_PAGE : len == CUSE_CHUNK;
}

enum ra_result {
	RA_ACCEPTED = 0, /* the chunk is held; the record goes on */
	RA_COMPLETE = 1, /* ra_record() is a whole record */
	RA_NONE = 2,     /* ra_flush(): nothing was pending */
};

struct record_assembler {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t max;
	int active;   /* chunks of a record are held */
	int failed;   /* this syscall's record went over the maximum: its later chunks fail too */
	int complete; /* buf holds a record handed out, dropped at the next call */
};

void ra_init(struct record_assembler *ra, size_t max_record);
void ra_free(struct record_assembler *ra);

/*
 * One write request. Returns RA_ACCEPTED, RA_COMPLETE, -EINVAL when the record goes over the
 * maximum (it is then dropped), -EPROTO for an offset that does not continue the held record,
 * -EBUSY for an offset-0 chunk while a record is pending (call ra_flush first), -ENOMEM.
 */
int ra_feed(struct record_assembler *ra, off_t offset, const void *data, size_t len);

/* Another operation arrived: RA_COMPLETE if a record was pending, else RA_NONE. */
int ra_flush(struct record_assembler *ra);

/* Whether chunks of a record are held (the next operation completes it). */
int ra_pending(const struct record_assembler *ra);

/* The record after RA_COMPLETE; valid until the next call. */
const uint8_t *ra_record(const struct record_assembler *ra, size_t *len);

#endif
