/*
 * The shim's connection to the daemon (proto/shim-frames.md): frames out under one lock (small
 * write-behind records gathered into one send while replies are due), a reader thread that takes
 * the replies in order, wakes the waiting caller and sends what was gathered, and the write-behind
 * window.
 *
 * One caller thread (the FUSE session loop) is assumed: at most one request waits for its reply
 * at a time, behind any number of write-behind WRITEs.
 */
#ifndef TAPEPROXY_DAEMON_LINK_H
#define TAPEPROXY_DAEMON_LINK_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct daemon_link;

struct link_reply {
	int32_t arg;      /* >= 0 result, -errno */
	uint16_t flags;   /* FRAME_EARLY_WARNING ... */
	uint32_t length;  /* payload bytes */
	uint8_t *payload; /* NULL when empty; release with link_reply_free */
};

/* Called once from the reader thread when the connection is lost (not after link_close). */
typedef void (*link_lost_fn)(void *ctx);

/*
 * Waits for the daemon to connect: listens on a new socket at path (mode 0600), takes one
 * connection and removes the path. The daemon connects, not the shim, so that it can read frames
 * straight into its record buffers (Node gives that only to sockets it connects). Returns the
 * connected descriptor, or -1 with errno set (EINTR once *stop is set by a signal).
 */
int link_accept(const char *path, const volatile sig_atomic_t *stop);

/*
 * Takes over a connected socket (closed by link_close, or here on failure). window: WRITE replies
 * that may be outstanding for write-behind (0 turns write-behind off). stop: when it becomes
 * nonzero, waits give up with -EIO (a signal asked the shim to exit). Returns NULL with errno set.
 */
struct daemon_link *link_open(int fd, unsigned window, const volatile sig_atomic_t *stop, link_lost_fn on_lost,
			      void *ctx);
void link_close(struct daemon_link *l);

/*
 * A request that waits for its reply: first waits for every write-behind reply, then fails with
 * -EIO without sending anything if the connection is lost or a write-behind WRITE failed (that
 * failure is then cleared). Returns 0 with *reply filled (its arg may be -errno), or -EIO.
 */
int link_call(struct daemon_link *l, uint16_t type, uint16_t flags, int32_t arg, const void *payload,
	      size_t length, struct link_reply *reply);

struct record_ring;
/* Large WRITE records go through ring from now on, while it has room (NULL: none do). */
void link_set_ring(struct daemon_link *l, struct record_ring *ring);
/* ring_spot of the link's ring (record-ring.h), or NULL without one. */
uint8_t *link_ring_spot(struct daemon_link *l, size_t before, size_t room);

/* Waits for every write-behind reply. 0, or -EIO if the connection is lost. */
int link_drain(struct daemon_link *l);

/* -EIO, once, if a write-behind WRITE failed (or always, once the connection is lost); else 0. */
int link_take_failure(struct daemon_link *l);

/* Whether a WRITE may be acknowledged now and sent WRITE_BEHIND (the spec's three conditions). */
int link_behind_ok(struct daemon_link *l);

/*
 * Bounds the bytes of write-behind records in flight (default: unbounded). The daemon passes less
 * than the smallest early-warning zone of the drive's copies, so every record acknowledged early
 * still fits before the physical end of every copy.
 */
void link_set_window_bytes(struct daemon_link *l, size_t bytes);

/*
 * Sends the write-behind records gathered so far. They go anyway with the next reply that comes,
 * before any request that waits and before waiting for room in the window; this is for a caller
 * that wants them on the socket now. 0 or -EIO (the connection is then lost).
 */
int link_flush(struct daemon_link *l);
/* Sends a WRITE flagged WRITE_BEHIND (plus flags) without waiting, whatever the window. 0 or -EIO. */
int link_send_behind(struct daemon_link *l, uint16_t flags, const void *record, size_t length);

/*
 * Takes a place in the write-behind window for a record of length bytes, waiting while the window
 * is full. 1: reserved, *id is the frame's id, and the record must then go with link_send_reserved
 * (the writer may be answered first); 0: this record may not go write-behind (early warning seen,
 * a write-behind failure to report, write-behind off, or longer than the byte window); -EIO: the
 * connection is lost.
 */
int link_reserve_behind(struct daemon_link *l, size_t length, uint32_t *id);
/* Sends a reserved WRITE flagged WRITE_BEHIND (plus flags). 0 or -EIO (the connection is then lost). */
int link_send_reserved(struct daemon_link *l, uint32_t id, uint16_t flags, const void *record, size_t length);

/*
 * One record, as write(2) sees it: -EIO if a write-behind failed (once); write-behind when
 * may_behind and link_reserve_behind allows it (waiting for room in the window; returns length once
 * sent); else a WRITE with flags, sent at once, that waits for its reply. Returns bytes written or
 * -errno.
 */
ssize_t link_write(struct daemon_link *l, uint16_t flags, const void *record, size_t length, int may_behind);

void link_reply_free(struct link_reply *r);

#endif
