#include "record-assembler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ra_init(struct record_assembler *ra, size_t max_record)
{
	memset(ra, 0, sizeof(*ra));
	ra->max = max_record;
}

void ra_free(struct record_assembler *ra)
{
	free(ra->buf);
	ra->buf = NULL;
	ra->len = ra->cap = 0;
	ra->active = ra->failed = ra->complete = 0;
}

static void reset(struct record_assembler *ra)
{
	ra->len = 0;
	ra->active = 0;
	ra->complete = 0;
}

/* Grows geometrically so a 64 MiB maximum costs memory only when such records come. */
static int reserve(struct record_assembler *ra, size_t need)
{
	if (need <= ra->cap)
		return 0;
	size_t cap = ra->cap ? ra->cap : CUSE_CHUNK;
	while (cap < need)
		cap *= 2;
	if (cap > ra->max)
		cap = ra->max;
	uint8_t *buf = realloc(ra->buf, cap);
	if (!buf)
		return -ENOMEM;
	ra->buf = buf;
	ra->cap = cap;
	return 0;
}

int ra_feed(struct record_assembler *ra, off_t offset, const void *data, size_t len)
{
	if (ra->complete)
		reset(ra);
	if (offset == 0) {
		if (ra->active)
			return -EBUSY;
		ra->failed = 0;
	} else {
		if (ra->failed)
			return -EINVAL;
		if (!ra->active || (size_t)offset != ra->len) {
			reset(ra);
			return -EPROTO;
		}
	}
	if (len > ra->max - ra->len) {
		/* Only an offset-0 failure reaches the writer as an errno; later ones make a short
		 * write. Either way the record must never reach the tape in pieces. */
		ra->failed = offset != 0;
		reset(ra);
		return -EINVAL;
	}
	int err = reserve(ra, ra->len + len);
	if (err) {
		reset(ra);
		return err;
	}
	if (len)
		memcpy(ra->buf + ra->len, data, len);
	ra->len += len;
	if (!cuse_chunk_may_continue(offset, len)) {
		ra->active = 0;
		ra->complete = 1;
		return RA_COMPLETE;
	}
	ra->active = 1;
	return RA_ACCEPTED;
}

int ra_flush(struct record_assembler *ra)
{
	if (ra->complete)
		reset(ra);
	ra->failed = 0;
	if (!ra->active)
		return RA_NONE;
	ra->active = 0;
	ra->complete = 1;
	return RA_COMPLETE;
}

int ra_pending(const struct record_assembler *ra)
{
	return ra->active;
}

const uint8_t *ra_record(const struct record_assembler *ra, size_t *len)
{
	*len = ra->complete ? ra->len : 0;
	return ra->complete ? ra->buf : NULL;
}
