/*
 * libFuzzer harness: the shim's reply reader (daemon-link.c reader_main, read_exact, take_reply)
 * on any bytes a daemon could send, through a real Unix socket as in the shim. Each input opens a
 * link, sends one waiting request (from a second thread: link_call blocks) and some write-behind
 * WRITEs, then plays the input as the daemon's replies and hangs up.
 *
 * Invariants (with ASan/UBSan and LeakSanitizer watching every allocation and free): the waiting
 * request gets either a reply with the length its header gave and a payload of that many bytes, or
 * -EIO once the stream is found bad or ends; the link then reports itself lost; nothing leaks; and
 * no single allocation passes the frame limit (the fuzz run sets -malloc_limit_mb just above it).
 *
 * Input: byte 0 is how many write-behind WRITEs are outstanding (0-7), byte 1 the waiting request's
 * type; the rest is what the daemon sends (the waiting request is id 1, the WRITEs 2, 3, ...).
 */
#define _GNU_SOURCE
#include "../daemon-link.h"
#include "../frames.h"
#include "fuzz-check.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct waiting {
	struct daemon_link *link;
	uint16_t type;
	int result;
	struct link_reply reply;
};

static void *wait_for_reply(void *arg)
{
	struct waiting *w = arg;
	w->result = link_call(w->link, w->type, 0, 0, NULL, 0, &w->reply);
	return NULL;
}

static void lost(void *ctx)
{
	__atomic_store_n((int *)ctx, 1, __ATOMIC_SEQ_CST);
}

static int read_full(int fd, size_t len)
{
	uint8_t buf[256];
	while (len > 0) {
		ssize_t n = read(fd, buf, len < sizeof(buf) ? len : sizeof(buf));
		if (n <= 0)
			return -1;
		len -= (size_t)n;
	}
	return 0;
}

static void write_full(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return; /* the shim hung up: it found the stream bad */
		p += n;
		len -= (size_t)n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned behind = data[0] % 8;
	uint16_t type = (uint16_t)(data[1] % 9 + 1);
	data += 2;
	size -= 2;

	int is_lost = 0;
	int sv[2];
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	struct daemon_link *l = link_open(sv[1], 32, NULL, lost, &is_lost);
	FUZZ_CHECK(l != NULL);
	int fd = sv[0];

	/*
	 * The waiting request goes first (id 1): link_call waits for write-behind replies before it
	 * sends, so after them it would race the input's replies. The reader takes replies the same way
	 * in either order: each must answer the oldest request.
	 */
	struct waiting w = {.link = l, .type = type};
	pthread_t waiter;
	FUZZ_CHECK(pthread_create(&waiter, NULL, wait_for_reply, &w) == 0);
	FUZZ_CHECK(read_full(fd, FRAME_HEADER_BYTES) == 0);
	static const uint8_t record[4] = "abcd";
	for (unsigned i = 0; i < behind; i++)
		FUZZ_CHECK(link_send_behind(l, 0, record, sizeof(record)) == 0);
	/* Gathered while the waiting request's reply is due: on the socket now, before the replies. */
	FUZZ_CHECK(link_flush(l) == 0);
	FUZZ_CHECK(read_full(fd, behind * (FRAME_HEADER_BYTES + sizeof(record))) == 0);

	write_full(fd, data, size);
	shutdown(fd, SHUT_WR);
	pthread_join(waiter, NULL);

	FUZZ_CHECK(w.result == 0 || w.result == -EIO);
	if (w.result == 0) {
		FUZZ_CHECK(w.reply.length <= FRAME_MAX_PAYLOAD);
		FUZZ_CHECK((w.reply.length == 0) == (w.reply.payload == NULL));
		/* The reply's header is in the input: its payload follows it there. */
		int found = 0;
		for (size_t at = 0; !found && at + FRAME_HEADER_BYTES + w.reply.length <= size; at++) {
			struct frame_header h;
			frame_header_decode(data + at, &h);
			found = h.type == (type | FRAME_REPLY) && h.arg == w.reply.arg && h.length == w.reply.length &&
				(h.length == 0 || memcmp(data + at + FRAME_HEADER_BYTES, w.reply.payload, h.length) == 0);
		}
		FUZZ_CHECK(found);
		link_reply_free(&w.reply);
	}
	/* The daemon hung up: the reader finds the end of the stream (or stopped earlier at a bad
	 * reply) and says the link is lost, within 10 s however the stream looked. */
	for (int i = 0; i < 10000 && !__atomic_load_n(&is_lost, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	FUZZ_CHECK(__atomic_load_n(&is_lost, __ATOMIC_SEQ_CST));
	FUZZ_CHECK(link_drain(l) == -EIO && link_take_failure(l) == -EIO);
	link_close(l);
	close(fd);
	return 0;
}
