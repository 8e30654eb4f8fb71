/*
 * The shim <-> daemon framing of proto/shim-frames.md: a 16-byte little-endian header, then the
 * payload, and the wire layouts of struct mtop, mtget and mtpos (x86_64 Linux).
 */
#ifndef TAPEPROXY_FRAMES_H
#define TAPEPROXY_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_BYTES 16
#define FRAME_MAX_PAYLOAD (64u * 1024 * 1024 + 64)
#define FRAME_REPLY 0x80

enum frame_type {
	FRAME_OPEN = 1,
	FRAME_WRITE = 2,
	FRAME_READ = 3,
	FRAME_MTIOCTOP = 4,
	FRAME_MTIOCGET = 5,
	FRAME_MTIOCPOS = 6,
	FRAME_CLOSE = 7,
	FRAME_WRITE_CHECK = 8,
	FRAME_FLUSH = 9,
};

/* Request flags. */
#define FRAME_WRITE_BEHIND 0x1
#define FRAME_CHECKED 0x2
/* On WRITE: the record is in the record ring (record-ring.h); the payload is its u64 position and arg
 * its length. */
#define FRAME_IN_RING 0x4
#define RING_POSITION_BYTES 8
/* Reply flags: the drive after the operation. */
#define FRAME_EARLY_WARNING 0x1
#define FRAME_END_OF_DATA 0x2
#define FRAME_FILEMARK 0x4

struct frame_header {
	uint32_t length;
	uint16_t type;
	uint16_t flags;
	uint32_t id;
	int32_t arg;
};

#define MTOP_WIRE_BYTES 8
#define MTGET_WIRE_BYTES 48
#define MTPOS_WIRE_BYTES 8

struct mtop;
struct mtget;
struct mtpos;

void frame_header_encode(const struct frame_header *h, uint8_t out[FRAME_HEADER_BYTES]);
/* Returns 0, or -EPROTO when the payload length is over FRAME_MAX_PAYLOAD. */
int frame_header_decode(const uint8_t in[FRAME_HEADER_BYTES], struct frame_header *h);

void mtop_encode(const struct mtop *op, uint8_t out[MTOP_WIRE_BYTES]);
void mtop_decode(const uint8_t in[MTOP_WIRE_BYTES], struct mtop *op);
void mtget_encode(const struct mtget *st, uint8_t out[MTGET_WIRE_BYTES]);
void mtget_decode(const uint8_t in[MTGET_WIRE_BYTES], struct mtget *st);
void mtpos_encode(const struct mtpos *pos, uint8_t out[MTPOS_WIRE_BYTES]);
void mtpos_decode(const uint8_t in[MTPOS_WIRE_BYTES], struct mtpos *pos);

#endif
