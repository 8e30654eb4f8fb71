/*
 * Unit tests of the daemon link against a fake daemon thread on a real Unix socket: replies in
 * order, the write-behind window and its gathering, early warning, a failed write-behind, a lost
 * connection.
 */
#define _GNU_SOURCE
#include "daemon-link.h"
#include "record-ring.h"
#include "test-support.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static atomic_int lost_calls;
static void on_lost(void *ctx)
{
	(void)ctx;
	lost_calls++;
}

static const uint8_t record[10240];

static void test_round_trips(void)
{
	struct fake f;
	fake_start(&f, all_ok, 1 << 30);
	struct daemon_link *l = link_open(f.shim_fd, 32, NULL, on_lost, NULL);
	fake_serve(&f);
	CHECK(l != NULL);
	struct link_reply r;
	CHECK(link_call(l, FRAME_OPEN, 0, 02 | 04000, NULL, 0, &r) == 0 && r.arg == 0 && r.length == 0);
	CHECK(link_call(l, FRAME_MTIOCGET, 0, 0, NULL, 0, &r) == 0 && r.arg == 0 && r.length == MTGET_WIRE_BYTES);
	link_reply_free(&r);
	/* A READ of 1 MiB: the payload arrives whole. */
	CHECK(link_call(l, FRAME_READ, 0, 1 << 20, NULL, 0, &r) == 0);
	CHECK(r.arg == 1 << 20 && r.length == 1 << 20 && r.payload[0] == 0xab && r.payload[(1 << 20) - 1] == 0xab);
	link_reply_free(&r);
	/* A WRITE of 4 MiB: more than the socket holds, so sendmsg writes it in parts. */
	uint8_t *big = malloc(4 << 20);
	memset(big, 7, 4 << 20);
	CHECK(link_call(l, FRAME_WRITE, 0, 0, big, 4 << 20, &r) == 0 && r.arg == 4 << 20);
	free(big);
	CHECK(link_call(l, FRAME_WRITE, 0, 0, NULL, FRAME_MAX_PAYLOAD + 1, &r) == -EINVAL);
	CHECK(f.req[0].type == FRAME_OPEN && f.req[0].arg == (02 | 04000));
	CHECK(f.req[2].type == FRAME_READ && f.req[2].arg == 1 << 20);
	CHECK(f.req[3].length == 4u << 20);
	CHECK(f.req[1].id != f.req[0].id && f.req[2].id != f.req[1].id);
	link_close(l);
	fake_stop(&f);
	CHECK(lost_calls == 0);
}

struct write_job {
	struct daemon_link *l;
	size_t length;
	ssize_t result;
};

static void *write_in_thread(void *arg)
{
	struct write_job *job = arg;
	job->result = link_write(job->l, 0, record, job->length, 1);
	return NULL;
}

static const struct timespec pause_100ms = {.tv_nsec = 100 * 1000 * 1000};

/* Whether the fake daemon has seen exactly n requests, after giving the link time to send more. */
static int seen_exactly(struct fake *f, int n)
{
	fake_wait_seen(f, n);
	nanosleep(&pause_100ms, NULL);
	return fake_seen(f) == n;
}

static void test_window(void)
{
	struct fake f;
	fake_start(&f, all_ok, 0);
	/* A window of 4: too small to gather in (a quarter of it is one record). */
	struct daemon_link *l = link_open(f.shim_fd, 4, NULL, on_lost, NULL);
	fake_serve(&f);
	/* The daemon answers nothing yet: four writes are acknowledged at once. */
	for (int i = 0; i < 4; i++)
		CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	fake_wait_seen(&f, 4);
	for (int i = 0; i < 4; i++)
		CHECK(f.req[i].type == FRAME_WRITE && f.req[i].flags == FRAME_WRITE_BEHIND);
	CHECK(!link_behind_ok(l));
	/* The fifth waits for room: nothing is sent until a reply comes, then it goes write-behind. */
	struct write_job job = {.l = l, .length = 100};
	pthread_t t;
	pthread_create(&t, NULL, write_in_thread, &job);
	CHECK(seen_exactly(&f, 4));
	fake_allow(&f, 1);
	pthread_join(t, NULL);
	CHECK(job.result == 100);
	fake_wait_seen(&f, 5);
	CHECK(f.req[4].type == FRAME_WRITE && f.req[4].flags == FRAME_WRITE_BEHIND && f.req[4].length == 100);
	fake_allow(&f, 1 << 30);
	CHECK(link_drain(l) == 0);
	CHECK(link_behind_ok(l));
	/* A record longer than the byte window never goes write-behind: sent and waited for. */
	link_set_window_bytes(l, 50);
	CHECK(link_write(l, 0, record, 100, 1) == 100);
	fake_wait_seen(&f, 6);
	CHECK(f.req[5].flags == 0 && f.req[5].length == 100);
	link_close(l);
	fake_stop(&f);
}

static void test_gathering_bounds(void)
{
	struct fake f;
	fake_start(&f, all_ok, 0);
	/* A window of 8: up to two records (a quarter) wait to go together. */
	struct daemon_link *l = link_open(f.shim_fd, 8, NULL, on_lost, NULL);
	fake_serve(&f);
	CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(seen_exactly(&f, 1)); /* nothing to answer yet: sent at once */
	CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(seen_exactly(&f, 1)); /* gathered */
	CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(seen_exactly(&f, 3)); /* a quarter of the window: both go */
	for (int i = 0; i < 5; i++)
		CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(seen_exactly(&f, 7)); /* the window is full, the eighth gathered */
	/* The ninth waits for room; before it waits, the gathered one goes (the daemon may be holding
	 * its replies until it has more of the window). */
	struct write_job job = {.l = l, .length = sizeof(record)};
	pthread_t t;
	pthread_create(&t, NULL, write_in_thread, &job);
	CHECK(seen_exactly(&f, 8));
	fake_allow(&f, 1 << 30);
	pthread_join(t, NULL);
	CHECK(job.result == (ssize_t)sizeof(record));
	CHECK(link_drain(l) == 0);
	CHECK(fake_seen(&f) == 9);
	for (int i = 0; i < 9; i++)
		CHECK(f.req[i].type == FRAME_WRITE && f.req[i].flags == FRAME_WRITE_BEHIND && f.req[i].id == f.req[0].id + (uint32_t)i);
	link_close(l);
	fake_stop(&f);
}

static uint8_t large_record[64 * 1024];

static void test_gathering(void)
{
	struct fake f;
	fake_start(&f, all_ok, 0);
	/* A window of 64: up to 16 records wait to go together. */
	struct daemon_link *l = link_open(f.shim_fd, 64, NULL, on_lost, NULL);
	fake_serve(&f);
	for (int i = 0; i < 10; i++)
		CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(seen_exactly(&f, 1));
	/* A large record is not copied: it goes at once, after everything gathered. */
	CHECK(link_write(l, 0, large_record, sizeof(large_record), 1) == (ssize_t)sizeof(large_record));
	fake_wait_seen(&f, 11);
	CHECK(f.req[10].length == sizeof(large_record));
	/* Gathered again behind it; a request that waits for its reply sends them first. */
	for (int i = 0; i < 3; i++)
		CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(seen_exactly(&f, 11));
	fake_allow(&f, 1 << 30);
	struct link_reply r;
	CHECK(link_call(l, FRAME_MTIOCGET, 0, 0, NULL, 0, &r) == 0 && r.arg == 0);
	link_reply_free(&r);
	CHECK(fake_seen(&f) == 15);
	for (int i = 0; i < 14; i++)
		CHECK(f.req[i].type == FRAME_WRITE && f.req[i].flags == FRAME_WRITE_BEHIND && f.req[i].id == f.req[0].id + (uint32_t)i &&
		      f.req[i].length == (i == 10 ? sizeof(large_record) : sizeof(record)));
	CHECK(f.req[14].type == FRAME_MTIOCGET);
	link_close(l);
	fake_stop(&f);
}

static int ew_from;
static void early_warning(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags)
{
	all_ok(req, n, arg, flags);
	if (req->type == FRAME_OPEN) {
		ew_from = 1 << 30;
		return;
	}
	if (n == 3)
		ew_from = n;
	if (n >= ew_from) {
		*flags = FRAME_EARLY_WARNING;
		if (req->type == FRAME_WRITE && !(req->flags & FRAME_WRITE_BEHIND) && n > ew_from)
			*arg = -ENOSPC;
	}
}

static void test_early_warning(void)
{
	struct fake f;
	ew_from = 1 << 30;
	fake_start(&f, early_warning, 1 << 30);
	struct daemon_link *l = link_open(f.shim_fd, 32, NULL, on_lost, NULL);
	fake_serve(&f);
	struct link_reply r;
	CHECK(link_call(l, FRAME_OPEN, 0, 1, NULL, 0, &r) == 0);
	/* Requests 1-3; the reply to request 3 crosses early warning. */
	for (int i = 0; i < 3; i++)
		CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(link_drain(l) == 0);
	CHECK(!link_behind_ok(l));
	/* The next write waits and gets the daemon's ENOSPC. */
	CHECK(link_write(l, 0, record, sizeof(record), 1) == -ENOSPC);
	CHECK(f.req[4].flags == 0);
	CHECK(!link_behind_ok(l));
	/* A new open starts over. */
	CHECK(link_call(l, FRAME_CLOSE, 0, 0, NULL, 0, &r) == 0);
	CHECK(!link_behind_ok(l));
	CHECK(link_call(l, FRAME_OPEN, 0, 1, NULL, 0, &r) == 0);
	CHECK(link_behind_ok(l));
	link_close(l);
	fake_stop(&f);
}

static void second_write_fails(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags)
{
	all_ok(req, n, arg, flags);
	if (n == 1)
		*arg = -EIO;
}

static void test_behind_failure(void)
{
	struct fake f;
	/* No reply until the three writes are out: had the second one's failure come back before the
	 * third write, that write would rightly have been the one to get EIO (a race under load). */
	fake_start(&f, second_write_fails, 0);
	struct daemon_link *l = link_open(f.shim_fd, 32, NULL, on_lost, NULL);
	fake_serve(&f);
	struct link_reply r;
	for (int i = 0; i < 3; i++)
		CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	fake_allow(&f, 1 << 30);
	/* The next operation, whatever it is, gets EIO and is not sent. */
	CHECK(link_call(l, FRAME_MTIOCGET, 0, 0, NULL, 0, &r) == -EIO);
	CHECK(fake_seen(&f) == 3);
	/* Once. */
	CHECK(link_call(l, FRAME_MTIOCGET, 0, 0, NULL, 0, &r) == 0 && r.arg == 0);
	link_reply_free(&r);
	CHECK(link_behind_ok(l));

	/* Then writes go behind again. */
	CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(link_drain(l) == 0);
	CHECK(link_take_failure(l) == 0);
	link_close(l);
	fake_stop(&f);
}

static void test_behind_failure_then_write(void)
{
	struct fake f;
	fake_start(&f, second_write_fails, 1 << 30);
	struct daemon_link *l = link_open(f.shim_fd, 32, NULL, on_lost, NULL);
	fake_serve(&f);
	for (int i = 0; i < 2; i++)
		CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	CHECK(link_drain(l) == 0);
	CHECK(!link_behind_ok(l));
	CHECK(link_write(l, 0, record, sizeof(record), 1) == -EIO);
	CHECK(fake_seen(&f) == 2);
	CHECK(link_behind_ok(l));
	link_close(l);
	fake_stop(&f);
}

static void test_lost(void)
{
	struct fake f;
	fprintf(stderr, "test-daemon-link: a lost connection and a reply out of order; their messages are expected:\n");
	int before = lost_calls;
	fake_start(&f, all_ok, 0);
	struct daemon_link *l = link_open(f.shim_fd, 32, NULL, on_lost, NULL);
	fake_serve(&f);
	CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record));
	fake_wait_seen(&f, 1);
	fake_hang_up(&f);
	struct link_reply r;
	CHECK(link_call(l, FRAME_MTIOCGET, 0, 0, NULL, 0, &r) == -EIO);
	CHECK(link_write(l, 0, record, sizeof(record), 1) == -EIO);
	CHECK(link_call(l, FRAME_CLOSE, 0, 0, NULL, 0, &r) == -EIO);
	CHECK(!link_behind_ok(l));
	link_close(l);
	fake_stop(&f);
	CHECK(lost_calls == before + 1);
}

static void test_reply_out_of_order(void)
{
	struct fake f;
	int before = lost_calls;
	fake_start(&f, all_ok, 1 << 30);
	f.bad_id = 1;
	struct daemon_link *l = link_open(f.shim_fd, 32, NULL, on_lost, NULL);
	fake_serve(&f);
	struct link_reply r;
	CHECK(link_call(l, FRAME_OPEN, 0, 0, NULL, 0, &r) == -EIO);
	link_close(l);
	fake_stop(&f);
	CHECK(lost_calls == before + 1);
}

static volatile sig_atomic_t stop_flag;

static void test_stop_while_waiting(void)
{
	struct fake f;
	fake_start(&f, all_ok, 0);
	stop_flag = 1; /* as if SIGTERM came while the daemon takes its time */
	struct daemon_link *l = link_open(f.shim_fd, 32, &stop_flag, on_lost, NULL);
	fake_serve(&f);
	struct link_reply r;
	CHECK(link_call(l, FRAME_READ, 0, 10, NULL, 0, &r) == -EIO);
	link_close(l);
	fake_stop(&f);
	stop_flag = 0;
}

/* A link with a window of 32 to a fake that may answer `allowed` requests, and a ring of 256 KiB. */
static struct daemon_link *link_with_ring(struct fake *f, int allowed, struct record_ring *ring)
{
	fake_start(f, all_ok, allowed);
	struct daemon_link *l = link_open(f->shim_fd, 32, NULL, on_lost, NULL);
	fake_serve(f);
	int fd = memfd_create("test-ring", MFD_CLOEXEC);
	CHECK(fd >= 0 && ftruncate(fd, RING_HEADER_BYTES + 256 * 1024) == 0);
	CHECK(ring_map(ring, fd) == 0);
	link_set_ring(l, ring);
	return l;
}

/* Large WRITEs go in the ring while it has room, and their frames say where; others as before. */
static void test_ring(void)
{
	struct fake f;
	struct record_ring ring;
	struct daemon_link *l = link_with_ring(&f, 1 << 30, &ring);
	uint8_t *rec = malloc(200 * 1024);
	for (size_t i = 0; i < 200 * 1024; i++)
		rec[i] = (uint8_t)(i * 11 + 3);
	CHECK(link_write(l, 0, rec, 128 * 1024, 0) == 128 * 1024);
	CHECK(link_write(l, 0, record, sizeof(record), 0) == (ssize_t)sizeof(record)); /* small: socket */
	CHECK(link_write(l, 0, rec, 200 * 1024, 0) == 200 * 1024); /* the ring is full: socket */
	CHECK(f.req[0].type == FRAME_WRITE && f.req[0].flags == FRAME_IN_RING);
	CHECK(f.req[0].length == RING_POSITION_BYTES && f.req[0].arg == 128 * 1024);
	CHECK(memcmp(ring.data, rec, 128 * 1024) == 0);
	CHECK(f.req[1].flags == 0 && f.req[1].length == sizeof(record));
	CHECK(f.req[2].flags == 0 && f.req[2].length == 200 * 1024 && f.req[2].arg == 0);
	link_close(l);
	fake_stop(&f);
	ring_unmap(&ring);
	free(rec);
}

/* A small WRITE the kernel read into the ring (at ring_spot's place) stays there: only its position
 * crosses, gathered like any small write-behind frame; one read elsewhere goes on the socket. */
static void test_small_records_read_into_the_ring(void)
{
	struct fake f;
	struct record_ring ring;
	struct daemon_link *l = link_with_ring(&f, 0, &ring);
	for (int i = 0; i < 3; i++) {
		uint8_t *read_at = link_ring_spot(l, 80, 64 * 1024);
		CHECK(read_at != NULL);
		memset(read_at + 80, 'a' + i, sizeof(record));
		CHECK(link_write(l, 0, read_at + 80, sizeof(record), 1) == (ssize_t)sizeof(record));
	}
	CHECK(link_ring_spot(l, 80, 64 * 1024) != NULL);
	CHECK(link_write(l, 0, record, sizeof(record), 1) == (ssize_t)sizeof(record)); /* from elsewhere */
	CHECK(seen_exactly(&f, 1)); /* the first went at once; the others wait for a reply to be due */
	fake_allow(&f, 1 << 30);
	CHECK(link_drain(l) == 0);
	CHECK(fake_seen(&f) == 4);
	for (int i = 0; i < 3; i++) {
		CHECK(f.req[i].flags == (FRAME_WRITE_BEHIND | FRAME_IN_RING) && f.req[i].length == RING_POSITION_BYTES &&
		      f.req[i].arg == (int32_t)sizeof(record));
		/* Each on the first page past the last one's end (10 KiB: three pages further). */
		CHECK(ring.data[4096 + i * 3 * 4096] == 'a' + i);
	}
	CHECK(f.req[3].flags == FRAME_WRITE_BEHIND && f.req[3].length == sizeof(record));
	link_close(l);
	fake_stop(&f);
	ring_unmap(&ring);
}

int main(void)
{
	test_round_trips();
	test_ring();
	test_small_records_read_into_the_ring();
	test_window();
	test_gathering();
	test_gathering_bounds();
	test_early_warning();
	test_behind_failure();
	test_behind_failure_then_write();
	test_lost();
	test_reply_out_of_order();
	test_stop_while_waiting();
	return test_result("test-daemon-link");
}
