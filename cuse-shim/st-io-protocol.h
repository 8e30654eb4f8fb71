/*
 * The st-io protocol between the daemon (daemon/sinks/st-io-link.ts) and tapeproxy-st-io, on the
 * helper's stdin (requests) and stdout (replies). Little-endian, packed as declared; one reply per
 * request, in request order. A request's payload (WRITE: the record) follows its header; a reply's
 * payload (READ: the record; GET: the fields) follows its header.
 */
#ifndef TAPEPROXY_ST_IO_PROTOCOL_H
#define TAPEPROXY_ST_IO_PROTOCOL_H
#include <stdint.h>

enum stio_op {
  STIO_WRITE = 1, /* payload: one record, written with one write() */
  STIO_READ = 2,  /* a: buffer size; reply: RECORD + data, FILEMARK or BLANK */
  STIO_MTOP = 3,  /* a: mt_op, b: mt_count (MTIOCTOP) */
  STIO_GET = 4,   /* reply payload: STIO_GET_FIELDS int64 of struct mtget, see do_get */
  STIO_POS = 5,   /* reply value: MTIOCPOS block */
  STIO_RESET = 6, /* clears the refusal of writes after a failed one */
};

enum stio_flags {
  STIO_EARLY_WARNING = 1, /* this write was first refused with ENOSPC: the drive is past EW */
  STIO_RECORD = 2,
  STIO_FILEMARK = 4,
  STIO_BLANK = 8,
};

#define STIO_GET_FIELDS 7
/* Largest record or read buffer: st's own limit is lower (the driver buffer). */
#define STIO_MAX_RECORD (64u << 20)

struct stio_request {
  uint32_t op;
  uint32_t length; /* payload bytes */
  int32_t a;
  int32_t b;
};

struct stio_reply {
  uint32_t op;
  int32_t err; /* 0, or the errno of the failed call */
  uint32_t length;
  uint32_t flags;
  int64_t value;
};

_Static_assert(sizeof(struct stio_request) == 16, "request header is 16 bytes");
_Static_assert(sizeof(struct stio_reply) == 24, "reply header is 24 bytes");
#endif
