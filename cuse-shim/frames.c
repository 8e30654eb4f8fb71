/*
 * Explicit little-endian field access, so the wire format does not depend on the host's struct
 * layout or byte order (the kernel's structs are only copied through on x86_64).
 */
#include "frames.h"

#include <errno.h>
#include <sys/mtio.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void frame_header_encode(const struct frame_header *h, uint8_t out[FRAME_HEADER_BYTES])
{
	put32(out, h->length);
	put16(out + 4, h->type);
	put16(out + 6, h->flags);
	put32(out + 8, h->id);
	put32(out + 12, (uint32_t)h->arg);
}

int frame_header_decode(const uint8_t in[FRAME_HEADER_BYTES], struct frame_header *h)
{
	h->length = get32(in);
	h->type = get16(in + 4);
	h->flags = get16(in + 6);
	h->id = get32(in + 8);
	h->arg = (int32_t)get32(in + 12);
	return h->length > FRAME_MAX_PAYLOAD ? -EPROTO : 0;
}

void mtop_encode(const struct mtop *op, uint8_t out[MTOP_WIRE_BYTES])
{
	put16(out, (uint16_t)op->mt_op);
	put16(out + 2, 0);
	put32(out + 4, (uint32_t)op->mt_count);
}

void mtop_decode(const uint8_t in[MTOP_WIRE_BYTES], struct mtop *op)
{
	op->mt_op = (short)get16(in);
	op->mt_count = (int)get32(in + 4);
}

void mtget_encode(const struct mtget *st, uint8_t out[MTGET_WIRE_BYTES])
{
	put64(out, (uint64_t)st->mt_type);
	put64(out + 8, (uint64_t)st->mt_resid);
	put64(out + 16, (uint64_t)st->mt_dsreg);
	put64(out + 24, (uint64_t)st->mt_gstat);
	put64(out + 32, (uint64_t)st->mt_erreg);
	put32(out + 40, (uint32_t)st->mt_fileno);
	put32(out + 44, (uint32_t)st->mt_blkno);
}

void mtget_decode(const uint8_t in[MTGET_WIRE_BYTES], struct mtget *st)
{
	st->mt_type = (long)get64(in);
	st->mt_resid = (long)get64(in + 8);
	st->mt_dsreg = (long)get64(in + 16);
	st->mt_gstat = (long)get64(in + 24);
	st->mt_erreg = (long)get64(in + 32);
	st->mt_fileno = (int)get32(in + 40);
	st->mt_blkno = (int)get32(in + 44);
}

void mtpos_encode(const struct mtpos *pos, uint8_t out[MTPOS_WIRE_BYTES])
{
	put64(out, (uint64_t)pos->mt_blkno);
}

void mtpos_decode(const uint8_t in[MTPOS_WIRE_BYTES], struct mtpos *pos)
{
	pos->mt_blkno = (long)get64(in);
}
