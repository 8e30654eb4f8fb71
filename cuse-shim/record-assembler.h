/*
 * Reassembles tape records from CUSE write chunks (reference sections 5 and 6): the kernel cuts a
 * write(2) into requests of at most CUSE_CHUNK bytes at offsets 0, CUSE_CHUNK, ..., restarting at 0
 * for each syscall. A record ends on a short chunk, or, for an exact multiple of the chunk size,
 * when the next operation arrives (ra_flush). Pure logic: no FUSE, no socket.
 */
#ifndef TAPEPROXY_RECORD_ASSEMBLER_H
#define TAPEPROXY_RECORD_ASSEMBLER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CUSE_CHUNK 131072

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
	size_t chunk;
	int active;   /* chunks of a record are held */
	int failed;   /* this syscall's record went over the maximum: its later chunks fail too */
	int complete; /* buf holds a record handed out, dropped at the next call */
};

void ra_init(struct record_assembler *ra, size_t max_record, size_t chunk);
void ra_free(struct record_assembler *ra);

/*
 * One write request. Returns RA_ACCEPTED, RA_COMPLETE, -EINVAL when the record goes over the
 * maximum (it is then dropped), -EPROTO for an offset that does not continue the held record,
 * -EBUSY for an offset-0 chunk while a record is pending (call ra_flush first), -ENOMEM.
 */
int ra_feed(struct record_assembler *ra, off_t offset, const void *data, size_t len);

/* Another operation arrived: RA_COMPLETE if a record of whole chunks was pending, else RA_NONE. */
int ra_flush(struct record_assembler *ra);

/* Whether chunks of a record are held (the next operation completes it). */
int ra_pending(const struct record_assembler *ra);

/* The record after RA_COMPLETE; valid until the next call. */
const uint8_t *ra_record(const struct record_assembler *ra, size_t *len);

#endif
