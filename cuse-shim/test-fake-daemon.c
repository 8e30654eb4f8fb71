/* The C unit tests' fake daemon (test-support.h). */
#define _GNU_SOURCE
#include "test-support.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int failures;

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);
		if (n <= 0)
			return;
		done += (size_t)n;
	}
}

/* Takes requests as they come, whether or not the replier may answer them yet. */
static void *fake_reader(void *arg)
{
	struct fake *f = arg;
	for (;;) {
		uint8_t head[FRAME_HEADER_BYTES];
		struct frame_header h;
		if (read_full(f->fd, head, sizeof(head)))
			break;
		frame_header_decode(head, &h);
		uint8_t *payload = malloc(h.length + 1);
		int r = read_full(f->fd, payload, h.length);
		free(payload);
		if (r)
			break;
		pthread_mutex_lock(&f->lock);
		if (f->seen < MAX_SEEN)
			f->req[f->seen++] = h;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
	}
	pthread_mutex_lock(&f->lock);
	f->ended = 1;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static void *fake_replier(void *arg)
{
	struct fake *f = arg;
	for (int n = 0;; n++) {
		pthread_mutex_lock(&f->lock);
		while (!f->ended && !f->hang_up && (f->seen <= n || f->allowed <= n))
			pthread_cond_wait(&f->cond, &f->lock);
		int stop = f->ended || f->hang_up;
		struct frame_header h = f->req[n];
		int bad_id = f->bad_id;
		pthread_mutex_unlock(&f->lock);
		if (stop) {
			shutdown(f->fd, SHUT_RDWR);
			return NULL;
		}

		struct frame_header r = {.type = h.type | FRAME_REPLY, .id = bad_id ? h.id + 1 : h.id};
		uint8_t out[FRAME_HEADER_BYTES + MTGET_WIRE_BYTES] = {0};
		f->policy(&h, n, &r.arg, &r.flags);
		if (h.type == FRAME_MTIOCGET && r.arg == 0)
			r.length = MTGET_WIRE_BYTES;
		if (h.type == FRAME_READ && r.arg > 0) {
			/* A READ answers with arg bytes of 0xab. */
			r.length = (uint32_t)r.arg;
			frame_header_encode(&r, out);
			uint8_t *data = malloc(r.length);
			memset(data, 0xab, r.length);
			write_full(f->fd, out, FRAME_HEADER_BYTES);
			write_full(f->fd, data, r.length);
			free(data);
			continue;
		}
		frame_header_encode(&r, out);
		write_full(f->fd, out, FRAME_HEADER_BYTES + r.length);
	}
}

void fake_start(struct fake *f, policy_fn policy, int allowed)
{
	memset(f, 0, sizeof(*f));
	f->policy = policy;
	f->allowed = allowed;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		perror("fake daemon");
		exit(1);
	}
	f->fd = sv[0];
	f->shim_fd = sv[1];
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
}

/* After link_open(f->shim_fd, ...). */
void fake_serve(struct fake *f)
{
	pthread_create(&f->reader, NULL, fake_reader, f);
	pthread_create(&f->replier, NULL, fake_replier, f);
}

void fake_stop(struct fake *f)
{
	pthread_join(f->reader, NULL);
	pthread_join(f->replier, NULL);
	close(f->fd);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
}

void fake_allow(struct fake *f, int n)
{
	pthread_mutex_lock(&f->lock);
	f->allowed = n;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

void fake_wait_seen(struct fake *f, int n)
{
	pthread_mutex_lock(&f->lock);
	while (f->seen < n)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

int fake_seen(struct fake *f)
{
	pthread_mutex_lock(&f->lock);
	int n = f->seen;
	pthread_mutex_unlock(&f->lock);
	return n;
}

void fake_hang_up(struct fake *f)
{
	pthread_mutex_lock(&f->lock);
	f->hang_up = 1;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

void all_ok(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags)
{
	(void)n;
	*flags = 0;
	/* A WRITE's record is its payload, or in the ring with its length in arg. */
	int32_t written = req->flags & FRAME_IN_RING ? req->arg : (int32_t)req->length;
	*arg = req->type == FRAME_WRITE ? written : req->type == FRAME_READ ? req->arg : 0;
}

