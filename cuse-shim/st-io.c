/*
 * tapeproxy-st-io: the daemon's hands on one real tape drive (an nst: sink). Opens the drive
 * once and keeps it open, then serves requests on stdin and answers on stdout, one reply per
 * request, in order, so the daemon can keep a window of writes in flight. The protocol is in
 * st-io-protocol.h.
 *
 * Why a helper process and not the daemon itself: node cannot issue tape ioctls, and a blocking
 * write() to a drive (seconds at a time while it repositions) must not stall the daemon's thread.
 *
 * st's early-warning alternation (reference section 1.3) is handled here, because only here is it
 * known which write was refused: a write refused with ENOSPC after a successful one is retried
 * once; if the retry succeeds the record is on tape and the reply says early warning; if it is
 * refused again the drive is at its physical end. After any failed write, later writes and
 * filemarks are refused with ECANCELED until RESET, so no record can land after a lost one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mtio.h>
#include <unistd.h>

#include "st-io-protocol.h"

#ifndef MTWEOFI
#define MTWEOFI 35 /* linux/mtio.h: write filemarks, immediate; glibc's sys/mtio.h lacks it */
#endif

static int read_full(int fd, void *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, (char *)buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return done == 0 && n == 0 ? 0 : -1;
    done += (size_t)n;
  }
  return 1;
}

static int write_full(int fd, const void *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, (const char *)buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    done += (size_t)n;
  }
  return 0;
}

struct drive {
  int fd;
  int failed; /* a write or filemark was lost: refuse the ones after it */
  unsigned char *buf;
  size_t cap;
};

static int reserve(struct drive *d, size_t len) {
  if (len <= d->cap) return 0;
  unsigned char *b = realloc(d->buf, len);
  if (!b) return -1;
  d->buf = b;
  d->cap = len;
  return 0;
}

static int reply(struct stio_reply *r, const void *payload) {
  if (write_full(STDOUT_FILENO, r, sizeof *r) < 0) return -1;
  if (r->length > 0 && write_full(STDOUT_FILENO, payload, r->length) < 0) return -1;
  return 0;
}

static void do_write(struct drive *d, uint32_t len, struct stio_reply *r) {
  if (d->failed) {
    r->err = ECANCELED;
    return;
  }
  ssize_t n = write(d->fd, d->buf, len);
  if (n < 0 && errno == ENOSPC) {
    /* Refused without writing: past early warning (st lets every other write through) or at
       the physical end (refused again). */
    n = write(d->fd, d->buf, len);
    if (n == (ssize_t)len) r->flags |= STIO_EARLY_WARNING;
  }
  if (n == (ssize_t)len) {
    r->value = n;
    return;
  }
  d->failed = 1;
  r->err = n < 0 ? errno : EIO; /* a short write (fixed-block mode at the end) lost the rest */
  r->value = n < 0 ? 0 : n;
}

static void do_read(struct drive *d, uint32_t max, struct stio_reply *r) {
  if (max == 0 || max > STIO_MAX_RECORD) {
    r->err = EINVAL;
    return;
  }
  if (reserve(d, max) < 0) {
    r->err = ENOMEM;
    return;
  }
  ssize_t n = read(d->fd, d->buf, max);
  /* A read that fills the buffer may be tgt's blank check after a filemark, which st turns into a
     "record" of the whole buffer with GMT_EOD set (tgt reports no residual); a real record leaves
     GMT_EOD clear, since st sets it only on a blank check. */
  if (n > 0 && (size_t)n < max) {
    r->flags |= STIO_RECORD;
    r->length = (uint32_t)n;
    return;
  }
  int err = n < 0 ? errno : 0;
  struct mtget st;
  if (ioctl(d->fd, MTIOCGET, &st) < 0) {
    r->err = errno;
    return;
  }
  if (n > 0 && !GMT_EOD(st.mt_gstat)) {
    r->flags |= STIO_RECORD;
    r->length = (uint32_t)n;
    return;
  }
  /* st: 0 for a filemark (GMT_EOF), 0 for the blank after one and EIO for any other blank
     (GMT_EOD either way). */
  if (GMT_EOD(st.mt_gstat)) r->flags |= STIO_BLANK;
  else if (n == 0 && GMT_EOF(st.mt_gstat)) r->flags |= STIO_FILEMARK;
  else r->err = err ? err : EIO;
}

static void do_mtop(struct drive *d, int32_t op, int32_t count, struct stio_reply *r) {
  int writes = op == MTWEOF || op == MTWSM || op == MTWEOFI;
  if (writes && d->failed) {
    r->err = ECANCELED;
    return;
  }
  struct mtop mt = {.mt_op = (short)op, .mt_count = count};
  if (ioctl(d->fd, MTIOCTOP, &mt) < 0) {
    r->err = errno;
    if (writes) d->failed = 1;
  }
}

static void do_get(struct drive *d, struct stio_reply *r, int64_t out[STIO_GET_FIELDS]) {
  struct mtget st;
  if (ioctl(d->fd, MTIOCGET, &st) < 0) {
    r->err = errno;
    return;
  }
  out[0] = st.mt_type;
  out[1] = st.mt_resid;
  out[2] = st.mt_dsreg;
  out[3] = (int64_t)st.mt_gstat;
  out[4] = st.mt_erreg;
  out[5] = st.mt_fileno;
  out[6] = st.mt_blkno;
  r->length = STIO_GET_FIELDS * sizeof(int64_t);
}

static void do_pos(struct drive *d, struct stio_reply *r) {
  struct mtpos pos;
  if (ioctl(d->fd, MTIOCPOS, &pos) < 0) r->err = errno;
  else r->value = pos.mt_blkno;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--readonly") != 0)) {
    fprintf(stderr, "usage: %s DEVICE [--readonly]\n"
                    "Serves tapeproxy's st-io protocol for one tape drive on stdin/stdout.\n", argv[0]);
    return 2;
  }
  /* O_NONBLOCK: open without a cartridge too; MTLOAD later runs st's medium checks again. */
  int flags = (argc == 3 ? O_RDONLY : O_RDWR) | O_NONBLOCK;
  struct drive d = {.fd = open(argv[1], flags)};
  if (d.fd < 0 && (errno == EROFS || errno == EACCES) && !(flags & O_RDONLY)) {
    d.fd = open(argv[1], O_RDONLY | O_NONBLOCK);
  }
  if (d.fd < 0) {
    fprintf(stderr, "tapeproxy-st-io: cannot open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  int status = 0;
  for (;;) {
    struct stio_request q;
    int got = read_full(STDIN_FILENO, &q, sizeof q);
    if (got == 0) break; /* the daemon closed: done */
    if (got < 0 || q.length > STIO_MAX_RECORD) {
      fprintf(stderr, "tapeproxy-st-io: bad request stream\n");
      status = 1;
      break;
    }
    if (reserve(&d, q.length) < 0 || (q.length > 0 && read_full(STDIN_FILENO, d.buf, q.length) != 1)) {
      fprintf(stderr, "tapeproxy-st-io: request payload lost\n");
      status = 1;
      break;
    }
    struct stio_reply r = {.op = q.op};
    int64_t fields[STIO_GET_FIELDS];
    const void *payload = NULL;
    switch (q.op) {
    case STIO_WRITE: do_write(&d, q.length, &r); break;
    case STIO_READ: do_read(&d, (uint32_t)q.a, &r); payload = d.buf; break;
    case STIO_MTOP: do_mtop(&d, q.a, q.b, &r); break;
    case STIO_GET: do_get(&d, &r, fields); payload = fields; break;
    case STIO_POS: do_pos(&d, &r); break;
    case STIO_RESET: d.failed = 0; break;
    default: r.err = EINVAL; break;
    }
    if (reply(&r, payload) < 0) {
      status = 1;
      break;
    }
  }
  close(d.fd);
  free(d.buf);
  return status;
}
