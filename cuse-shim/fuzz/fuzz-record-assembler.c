/*
 * libFuzzer harness: the CUSE record assembler (record-assembler.c) fed any sequence of chunks
 * (offsets right, wrong or arbitrary, lengths at the chunking boundaries or anywhere) and flushes,
 * against a model written from record-assembler.h.
 *
 * Invariants: every call returns what the header says for the model's state; a complete record is
 * exactly the chunks fed since its offset-0 chunk, in order; nothing from a refused chunk or a
 * dropped record ever appears in one; ra_pending() tells whether a record is held; the buffer never
 * grows past the maximum record.
 *
 * Input: byte 0 picks the maximum record; then operations, each a byte (feed, flush) followed by
 * its offset and length choices.
 */
#include "../record-assembler.h"
#include "fuzz-check.h"

#include <errno.h>
#include <string.h>

static const size_t MAXIMA[] = {0, 1, 4096, CUSE_CHUNK, 300000, 1 << 20};
/* Chunk lengths where the assembler decides: around a page short of 128 KiB, and 128 KiB. */
static const size_t LENGTHS[] = {0, 1, 2, 100, 4096, CUSE_CHUNK - CUSE_PAGE, CUSE_CHUNK - CUSE_PAGE + 1,
				 131056, CUSE_CHUNK - 1, CUSE_CHUNK, CUSE_CHUNK + 1, 200000};
#define NLENGTHS (sizeof(LENGTHS) / sizeof(LENGTHS[0]))
#define LONGEST 300000

struct input {
	const uint8_t *p;
	size_t n;
};

static unsigned take(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* What record-assembler.h promises, kept apart from how it is done. */
struct model {
	uint8_t *held;
	size_t len;
	int active; /* chunks of a record are held */
	int failed; /* this syscall's record went over the maximum */
};

static uint8_t chunk[LONGEST];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	size_t max = MAXIMA[take(&in) % (sizeof(MAXIMA) / sizeof(MAXIMA[0]))];
	struct record_assembler ra;
	ra_init(&ra, max);
	struct model m = {.held = malloc(max + 1)};
	unsigned seq = 0;

	while (in.n) {
		unsigned op = take(&in);
		if (op % 3 == 2) {
			int r = ra_flush(&ra);
			FUZZ_CHECK(r == (m.active ? RA_COMPLETE : RA_NONE));
			if (r == RA_COMPLETE) {
				size_t got;
				const uint8_t *rec = ra_record(&ra, &got);
				FUZZ_CHECK(got == m.len && (got == 0 || memcmp(rec, m.held, got) == 0));
			}
			m.active = m.failed = 0;
			m.len = 0;
			continue;
		}
		unsigned lc = take(&in);
		size_t len = lc < NLENGTHS ? LENGTHS[lc] : (size_t)lc * 997 % LONGEST;
		off_t offset;
		switch ((op >> 2) % 4) {
		case 0: offset = 0; break;
		case 1: offset = (off_t)m.len; break;                      /* continues the record */
		case 2: offset = (off_t)m.len + 1 + take(&in); break;      /* past it */
		default: offset = (off_t)(take(&in) << 8 | take(&in)); break;
		}
		seq++;
		for (size_t i = 0; i < len; i++)
			chunk[i] = (uint8_t)(seq * 131 + i * 7);

		int r = ra_feed(&ra, offset, chunk, len);
		int expected;
		if (offset == 0 && m.active) {
			expected = -EBUSY; /* the held record stays */
		} else if (offset != 0 && m.failed) {
			expected = -EINVAL;
		} else if (offset != 0 && (!m.active || (size_t)offset != m.len)) {
			expected = -EPROTO;
			m.active = 0;
			m.len = 0;
		} else {
			if (offset == 0)
				m.len = 0;
			m.failed = 0;
			if (len > max - m.len) {
				expected = -EINVAL;
				m.failed = offset != 0;
				m.active = 0;
				m.len = 0;
			} else {
				memcpy(m.held + m.len, chunk, len);
				m.len += len;
				m.active = cuse_chunk_may_continue(offset, len);
				expected = m.active ? RA_ACCEPTED : RA_COMPLETE;
			}
		}
		FUZZ_CHECK(r == expected || r == -ENOMEM);
		if (r == -ENOMEM) { /* the record is dropped */
			m.active = 0;
			m.len = 0;
		}
		if (r == RA_COMPLETE) {
			size_t got;
			const uint8_t *rec = ra_record(&ra, &got);
			FUZZ_CHECK(got == m.len && (got == 0 || memcmp(rec, m.held, got) == 0));
			m.len = 0;
		} else {
			size_t got;
			FUZZ_CHECK(ra_record(&ra, &got) == NULL && got == 0);
		}
		FUZZ_CHECK(ra_pending(&ra) == m.active);
		FUZZ_CHECK(ra.cap <= max && ra.len <= max);
	}
	ra_free(&ra);
	free(m.held);
	return 0;
}
