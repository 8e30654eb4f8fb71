#define _GNU_SOURCE
#include "daemon-link.h"

#include "frames.h"
#include "record-ring.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How often a waiter looks at the stop flag: a signal cannot wake a condition variable. */
#define STOP_POLL_NS (200 * 1000 * 1000L)

/*
 * Small write-behind records are gathered and sent together while the daemon still has frames to
 * answer: a wake-up of the daemon and of the reader thread per record cost more than the record
 * (tens of microseconds each on these VMs). Larger records go as they come, from the caller's buffer.
 */
#define GATHER_MAX_RECORD (64 * 1024)
#define GATHER_BYTES (256 * 1024)

struct outstanding {
	uint32_t id;
	uint32_t bytes; /* of a write-behind record */
	uint16_t type;
	uint8_t behind;
};

struct daemon_link {
	int fd;
	unsigned window;
	const volatile sig_atomic_t *stop;
	link_lost_fn on_lost;
	void *ctx;
	pthread_t reader;
	pthread_mutex_t send_lock;
	/*
	 * Guarded by send_lock: whole frames (header and payload) gathered, not sent yet. They wait only
	 * while a frame sent earlier awaits its reply, and the reader sends them after each batch of
	 * replies, so none waits for nothing.
	 */
	uint8_t *gathered;
	size_t gathered_bytes;
	unsigned gathered_frames;
	/* Guarded by send_lock: where large records go instead of the socket (NULL: none). */
	struct record_ring *ring;

	/* Everything below is guarded by lock and signalled through cond. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t next_id;
	struct outstanding *queue; /* requests sent, replies not yet received, oldest first */
	size_t queue_cap, queue_head, queue_count;
	unsigned behind; /* write-behind WRITEs without a reply yet */
	size_t behind_bytes; /* and their bytes */
	size_t window_bytes;
	int early_warning;
	int behind_failed;
	int lost;
	int closing;
	int wait_done;
	struct link_reply wait_reply;
};

void link_reply_free(struct link_reply *r)
{
	free(r->payload);
	r->payload = NULL;
	r->length = 0;
}

static void set_lost(struct daemon_link *l)
{
	l->lost = 1;
	pthread_cond_broadcast(&l->cond);
}

/* A condition-variable wait that gives up when a signal asked the shim to stop. */
static int wait_tick(struct daemon_link *l)
{
	if (l->stop && *l->stop) {
		/* The reply may still come; nothing can use the link after this. */
		set_lost(l);
		return -EIO;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += STOP_POLL_NS;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&l->cond, &l->lock, &ts);
	return 0;
}

static int enqueue(struct daemon_link *l, uint16_t type, int behind, uint32_t bytes, uint32_t *id)
{
	if (l->queue_count == l->queue_cap) {
		size_t cap = l->queue_cap ? l->queue_cap * 2 : 64;
		struct outstanding *q = malloc(cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		for (size_t i = 0; i < l->queue_count; i++)
			q[i] = l->queue[(l->queue_head + i) % l->queue_cap];
		free(l->queue);
		l->queue = q;
		l->queue_cap = cap;
		l->queue_head = 0;
	}
	*id = l->next_id++;
	l->queue[(l->queue_head + l->queue_count) % l->queue_cap] =
		(struct outstanding){.id = *id, .bytes = behind ? bytes : 0, .type = type, .behind = (uint8_t)behind};
	l->queue_count++;
	if (behind) {
		l->behind++;
		l->behind_bytes += bytes;
	}
	return 0;
}

/*
 * A WRITE's record goes in the ring where the kernel read it there (any size: nothing to copy), or
 * copied when it is large and the ring has room; *h and *payload then become the frame that says
 * where it lies, with the position in `position`. Called with send_lock held.
 */
static void place_in_ring(struct daemon_link *l, struct frame_header *h, const void **payload,
			  uint8_t position[RING_POSITION_BYTES])
{
	uint64_t start;
	if (h->type != FRAME_WRITE || !l->ring || !h->length ||
	    (h->length < RING_MIN_RECORD && !ring_at_spot(l->ring, *payload, h->length)) ||
	    !ring_put(l->ring, *payload, h->length, &start))
		return;
	for (int i = 0; i < RING_POSITION_BYTES; i++)
		position[i] = (uint8_t)(start >> (8 * i));
	*h = (struct frame_header){.length = RING_POSITION_BYTES, .type = FRAME_WRITE,
				   .flags = (uint16_t)(h->flags | FRAME_IN_RING), .id = h->id, .arg = (int32_t)h->length};
	*payload = position;
}

/* The gathered frames, then this one (header and payload, NULL for none), in one sendmsg where the
 * socket takes it; MSG_NOSIGNAL instead of SIGPIPE. Called with send_lock held. */
static int send_locked(struct daemon_link *l, const struct frame_header *h, const void *payload)
{
	uint8_t head[FRAME_HEADER_BYTES];
	struct iovec iov[3];
	struct msghdr msg = {.msg_iov = iov};
	if (l->gathered_bytes)
		iov[msg.msg_iovlen++] = (struct iovec){l->gathered, l->gathered_bytes};
	if (h) {
		frame_header_encode(h, head);
		iov[msg.msg_iovlen++] = (struct iovec){head, sizeof(head)};
		if (h->length)
			iov[msg.msg_iovlen++] = (struct iovec){(void *)payload, h->length};
	}
	l->gathered_bytes = 0;
	l->gathered_frames = 0;

	int err = 0;
	while (msg.msg_iovlen > 0) {
		ssize_t n = sendmsg(l->fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		while (msg.msg_iovlen > 0 && (size_t)n >= msg.msg_iov[0].iov_len) {
			n -= (ssize_t)msg.msg_iov[0].iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen > 0) {
			msg.msg_iov[0].iov_base = (uint8_t *)msg.msg_iov[0].iov_base + n;
			msg.msg_iov[0].iov_len -= (size_t)n;
		}
	}
	if (err) {
		fprintf(stderr, "tapeproxy-shim: sending to the daemon: %s\n", strerror(-err));
		/* Wakes the reader, which reports the loss. */
		shutdown(l->fd, SHUT_RDWR);
		pthread_mutex_lock(&l->lock);
		set_lost(l);
		pthread_mutex_unlock(&l->lock);
		return -EIO;
	}
	return 0;
}

static int send_frame(struct daemon_link *l, const struct frame_header *h, const void *payload)
{
	struct frame_header f = *h;
	uint8_t position[RING_POSITION_BYTES];
	pthread_mutex_lock(&l->send_lock);
	place_in_ring(l, &f, &payload, position);
	int r = send_locked(l, &f, payload);
	pthread_mutex_unlock(&l->send_lock);
	return r;
}

/* Whether a frame sent earlier awaits its reply. Called with send_lock held, for a frame that is
 * queued (enqueue) and not sent yet: with one caller thread, the queue holds the frames sent and
 * unanswered, the gathered ones and this one. */
static int reply_due(struct daemon_link *l)
{
	pthread_mutex_lock(&l->lock);
	int due = l->queue_count > l->gathered_frames + 1;
	pthread_mutex_unlock(&l->lock);
	return due;
}

/* A write-behind frame: gathered when its record is small and the daemon has replies to send, else
 * sent now. A small record the kernel read into the ring gathers only its position. */
static int send_or_gather(struct daemon_link *l, const struct frame_header *h, const void *payload)
{
	struct frame_header f = *h;
	uint8_t position[RING_POSITION_BYTES];
	int r = 0;
	pthread_mutex_lock(&l->send_lock);
	place_in_ring(l, &f, &payload, position);
	size_t bytes = FRAME_HEADER_BYTES + f.length;
	/* At most a quarter of the window waits here: the daemon holds its replies until it has about
	 * that much (shim-connection.ts), so the two keep the pipe full instead of taking turns. */
	if (h->length < GATHER_MAX_RECORD && l->gathered_bytes + bytes <= GATHER_BYTES &&
	    l->gathered_frames + 1 < l->window / 4 && reply_due(l)) {
		frame_header_encode(&f, l->gathered + l->gathered_bytes);
		memcpy(l->gathered + l->gathered_bytes + FRAME_HEADER_BYTES, payload, f.length);
		l->gathered_bytes += bytes;
		l->gathered_frames++;
	} else {
		r = send_locked(l, &f, payload);
	}
	pthread_mutex_unlock(&l->send_lock);
	return r;
}

void link_set_ring(struct daemon_link *l, struct record_ring *ring)
{
	pthread_mutex_lock(&l->send_lock);
	l->ring = ring;
	pthread_mutex_unlock(&l->send_lock);
}

uint8_t *link_ring_spot(struct daemon_link *l, size_t before, size_t room)
{
	pthread_mutex_lock(&l->send_lock);
	uint8_t *spot = l->ring ? ring_spot(l->ring, before, room) : NULL;
	pthread_mutex_unlock(&l->send_lock);
	return spot;
}

int link_flush(struct daemon_link *l)
{
	pthread_mutex_lock(&l->send_lock);
	int r = l->gathered_bytes ? send_locked(l, NULL, NULL) : 0;
	pthread_mutex_unlock(&l->send_lock);
	return r;
}

/*
 * Replies come in batches (the daemon writes a turn's replies at once): read them in large pieces,
 * not one read(2) per 16-byte header.
 */
struct reply_reader {
	int fd;
	size_t start, end;
	uint8_t buf[64 * 1024];
};

/* 1 with len bytes in dst, 0 at a clean end of stream, -EPROTO cut mid-way, -errno. */
static int read_exact(struct reply_reader *rr, void *dst, size_t len)
{
	size_t got = 0;
	while (got < len) {
		if (rr->start == rr->end) {
			/* A large payload goes straight to its destination. */
			int direct = len - got >= sizeof(rr->buf);
			ssize_t n = read(rr->fd, direct ? (uint8_t *)dst + got : rr->buf, direct ? len - got : sizeof(rr->buf));
			if (n == 0)
				return got == 0 ? 0 : -EPROTO;
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (direct) {
				got += (size_t)n;
				continue;
			}
			rr->start = 0;
			rr->end = (size_t)n;
		}
		size_t take = rr->end - rr->start < len - got ? rr->end - rr->start : len - got;
		memcpy((uint8_t *)dst + got, rr->buf + rr->start, take);
		rr->start += take;
		got += take;
	}
	return 1;
}

/* Hands one reply to its request; -EPROTO when it does not answer the oldest one. */
static int take_reply(struct daemon_link *l, const struct frame_header *h, uint8_t *payload)
{
	if (l->queue_count == 0) {
		fprintf(stderr, "tapeproxy-shim: reply id %u with no request outstanding\n", h->id);
		return -EPROTO;
	}
	struct outstanding o = l->queue[l->queue_head];
	if (h->id != o.id || h->type != (o.type | FRAME_REPLY)) {
		fprintf(stderr, "tapeproxy-shim: reply type %u id %u does not answer request type %u id %u\n",
			h->type, h->id, o.type, o.id);
		return -EPROTO;
	}
	l->queue_head = (l->queue_head + 1) % l->queue_cap;
	l->queue_count--;

	/* "No reply since the last OPEN had EARLY_WARNING": the OPEN's own reply counts. */
	if (o.type == FRAME_OPEN)
		l->early_warning = 0;
	if (h->flags & FRAME_EARLY_WARNING)
		l->early_warning = 1;

	if (o.behind) {
		l->behind--;
		l->behind_bytes -= o.bytes;
		if (h->arg < 0)
			l->behind_failed = 1;
		free(payload);
	} else {
		l->wait_reply = (struct link_reply){
			.arg = h->arg, .flags = h->flags, .length = h->length, .payload = payload};
		l->wait_done = 1;
	}
	pthread_cond_broadcast(&l->cond);
	return 0;
}

static void *reader_main(void *arg)
{
	struct daemon_link *l = arg;
	const char *why = "the daemon closed the connection";
	int err = 0;
	struct reply_reader *rr = malloc(sizeof(*rr));
	if (!rr)
		err = -ENOMEM;
	else
		*rr = (struct reply_reader){.fd = l->fd};

	while (rr) {
		uint8_t head[FRAME_HEADER_BYTES];
		struct frame_header h;
		int r = read_exact(rr, head, sizeof(head));
		if (r <= 0) {
			err = r;
			break;
		}
		if (frame_header_decode(head, &h)) {
			err = -EPROTO;
			why = "a reply's payload length is over the maximum";
			break;
		}
		uint8_t *payload = NULL;
		if (h.length) {
			payload = malloc(h.length);
			if (!payload) {
				err = -ENOMEM;
				break;
			}
			r = read_exact(rr, payload, h.length);
			if (r <= 0) {
				free(payload);
				err = r ? r : -EPROTO;
				break;
			}
		}
		pthread_mutex_lock(&l->lock);
		r = take_reply(l, &h, payload);
		pthread_mutex_unlock(&l->lock);
		if (r) {
			free(payload);
			err = r;
			why = "a reply out of order";
			break;
		}
		/* A failed send loses the link: the next read ends this loop. */
		if (rr->start == rr->end)
			(void)link_flush(l);
	}

	free(rr);
	pthread_mutex_lock(&l->lock);
	int closing = l->closing;
	set_lost(l);
	pthread_mutex_unlock(&l->lock);
	if (!closing) {
		if (err)
			fprintf(stderr, "tapeproxy-shim: connection to the daemon lost: %s\n",
				err == -EPROTO ? why : strerror(-err));
		else
			fprintf(stderr, "tapeproxy-shim: connection to the daemon lost: %s\n", why);
		if (l->on_lost)
			l->on_lost(l->ctx);
	}
	return NULL;
}

/* Room for a window of large records in the socket. */
#define SOCKET_BUFFER_BYTES (4 * 1024 * 1024)

int link_accept(const char *path, const volatile sig_atomic_t *stop)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listener < 0)
		return -1;
	(void)unlink(path); /* left by a shim that was killed */
	int fd = -1;
	if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) == 0 && chmod(path, 0600) == 0 &&
	    listen(listener, 1) == 0) {
		do
			fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		while (fd < 0 && errno == EINTR && !(stop && *stop));
	}
	int e = errno;
	(void)unlink(path);
	close(listener);
	errno = e;
	return fd;
}

struct daemon_link *link_open(int fd, unsigned window, const volatile sig_atomic_t *stop, link_lost_fn on_lost,
			      void *ctx)
{
	struct daemon_link *l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	l->fd = fd;
	l->gathered = malloc(GATHER_BYTES);
	if (!l->gathered) {
		close(fd);
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	/*
	 * A window of records must fit in the socket, or every write-behind send blocks until the
	 * daemon drains the last one (prototype figures in shared/DESIGN.md section 7). Best effort:
	 * the kernel caps it at net.core.wmem_max.
	 */
	int sndbuf = SOCKET_BUFFER_BYTES;
	(void)setsockopt(l->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	l->window = window;
	l->window_bytes = SIZE_MAX;
	l->stop = stop;
	l->on_lost = on_lost;
	l->ctx = ctx;
	l->next_id = 1;

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->send_lock, NULL);

	/* Signals go to the session loop's thread, where they interrupt its read of /dev/fuse. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&l->reader, NULL, reader_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		close(l->fd);
		pthread_cond_destroy(&l->cond);
		pthread_mutex_destroy(&l->lock);
		pthread_mutex_destroy(&l->send_lock);
		free(l->gathered);
		free(l);
		errno = e;
		return NULL;
	}
	return l;
}

void link_close(struct daemon_link *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->closing = 1;
	pthread_mutex_unlock(&l->lock);
	shutdown(l->fd, SHUT_RDWR);
	pthread_join(l->reader, NULL);
	close(l->fd);
	if (l->wait_done)
		link_reply_free(&l->wait_reply);
	free(l->queue);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->send_lock);
	free(l->gathered);
	free(l);
}

static int drain_locked(struct daemon_link *l)
{
	while (l->behind > 0 && !l->lost)
		if (wait_tick(l))
			return -EIO;
	return l->lost ? -EIO : 0;
}

int link_drain(struct daemon_link *l)
{
	(void)link_flush(l);
	pthread_mutex_lock(&l->lock);
	int r = drain_locked(l);
	pthread_mutex_unlock(&l->lock);
	return r;
}

int link_take_failure(struct daemon_link *l)
{
	pthread_mutex_lock(&l->lock);
	int r = 0;
	if (l->lost) {
		r = -EIO;
	} else if (l->behind_failed) {
		l->behind_failed = 0;
		r = -EIO;
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

/* drain: first wait for the write-behind replies and fail with a write-behind failure unsent. */
static int call(struct daemon_link *l, uint16_t type, uint16_t flags, int32_t arg, const void *payload,
		size_t length, struct link_reply *reply, int drain)
{
	uint32_t id;
	*reply = (struct link_reply){0};
	if (length > FRAME_MAX_PAYLOAD)
		return -EINVAL;

	pthread_mutex_lock(&l->lock);
	int r = drain ? drain_locked(l) : l->lost ? -EIO : 0;
	if (!r && drain && l->behind_failed) {
		l->behind_failed = 0;
		r = -EIO;
	}
	if (!r)
		r = enqueue(l, type, 0, 0, &id);
	if (r) {
		pthread_mutex_unlock(&l->lock);
		return r;
	}
	l->wait_done = 0;
	pthread_mutex_unlock(&l->lock);

	struct frame_header h = {.length = (uint32_t)length, .type = type, .flags = flags, .id = id, .arg = arg};
	if (send_frame(l, &h, payload))
		return -EIO;

	pthread_mutex_lock(&l->lock);
	while (!l->wait_done && !l->lost)
		if (wait_tick(l))
			break;
	if (l->wait_done) {
		*reply = l->wait_reply;
		l->wait_reply = (struct link_reply){0};
		l->wait_done = 0;
		r = 0;
	} else {
		r = -EIO;
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

int link_call(struct daemon_link *l, uint16_t type, uint16_t flags, int32_t arg, const void *payload,
	      size_t length, struct link_reply *reply)
{
	return call(l, type, flags, arg, payload, length, reply, 1);
}

void link_set_window_bytes(struct daemon_link *l, size_t bytes)
{
	pthread_mutex_lock(&l->lock);
	l->window_bytes = bytes;
	pthread_mutex_unlock(&l->lock);
}

/* The spec's conditions for write-behind, but for room in the window. */
static int behind_allowed(struct daemon_link *l, size_t length)
{
	return !l->lost && !l->behind_failed && !l->early_warning && l->window > 0 && length <= l->window_bytes;
}

static int behind_room(struct daemon_link *l, size_t length)
{
	return l->behind < l->window && l->behind_bytes + length <= l->window_bytes;
}

int link_behind_ok(struct daemon_link *l)
{
	pthread_mutex_lock(&l->lock);
	int ok = behind_allowed(l, 0) && behind_room(l, 0);
	pthread_mutex_unlock(&l->lock);
	return ok;
}

int link_reserve_behind(struct daemon_link *l, size_t length, uint32_t *id)
{
	if (length > FRAME_MAX_PAYLOAD)
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	int r;
	int sent_gathered = 0;
	for (;;) {
		if (l->lost) {
			r = -EIO;
			break;
		}
		if (!behind_allowed(l, length)) {
			r = 0;
			break;
		}
		if (behind_room(l, length)) {
			r = enqueue(l, FRAME_WRITE, 1, (uint32_t)length, id);
			if (!r)
				r = 1;
			break;
		}
		/* The daemon may be holding its replies until it has more of the window. */
		if (!sent_gathered) {
			sent_gathered = 1;
			pthread_mutex_unlock(&l->lock);
			(void)link_flush(l);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		/* A reply makes room, or says early warning, or the link goes. */
		if (wait_tick(l)) {
			r = -EIO;
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

int link_send_reserved(struct daemon_link *l, uint32_t id, uint16_t flags, const void *record, size_t length)
{
	struct frame_header h = {
		.length = (uint32_t)length, .type = FRAME_WRITE, .flags = (uint16_t)(flags | FRAME_WRITE_BEHIND), .id = id};
	return send_or_gather(l, &h, record);
}

int link_send_behind(struct daemon_link *l, uint16_t flags, const void *record, size_t length)
{
	uint32_t id;
	if (length > FRAME_MAX_PAYLOAD)
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	int r = l->lost ? -EIO : enqueue(l, FRAME_WRITE, 1, (uint32_t)length, &id);
	pthread_mutex_unlock(&l->lock);
	return r ? r : link_send_reserved(l, id, flags, record, length);
}

ssize_t link_write(struct daemon_link *l, uint16_t flags, const void *record, size_t length, int may_behind)
{
	int r = link_take_failure(l);
	if (r)
		return r;
	if (may_behind) {
		uint32_t id;
		r = link_reserve_behind(l, length, &id);
		if (r < 0)
			return r;
		if (r == 1) {
			r = link_send_reserved(l, id, flags, record, length);
			return r ? r : (ssize_t)length;
		}
	}
	/* No drain: the reply comes after every earlier one anyway, and the daemon answers a write
	 * after a failed write-behind with an error itself. */
	struct link_reply reply;
	r = call(l, FRAME_WRITE, flags, 0, record, length, &reply, 0);
	if (r)
		return r;
	link_reply_free(&reply);
	if (reply.arg < 0) {
		/* This error is the report of a write-behind failure that came in meanwhile. */
		pthread_mutex_lock(&l->lock);
		l->behind_failed = 0;
		pthread_mutex_unlock(&l->lock);
		return reply.arg;
	}
	return reply.arg > (int32_t)length ? (ssize_t)length : reply.arg;
}
