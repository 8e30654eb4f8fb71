/*
 * The CUSE callbacks of shim.c, driven as the kernel drives them (128 KiB chunks, offsets
 * restarting at 0 for each syscall; reference section 6) against the fake daemon, with libfuse's
 * reply functions replaced by recorders. This machine has no /dev/cuse: this is how CUSE mode is
 * tested here.
 */
#define main shim_main
#include "shim.c"
#undef main

#include "test-cuse-kernel.h"
#include "test-support.h"

struct fuse_req {
	int replied;
	int err;
	size_t count;   /* fuse_reply_write */
	size_t buflen;  /* fuse_reply_buf, fuse_reply_ioctl */
	uint8_t *buf;
};

static uint8_t reply_buf[CUSE_CHUNK];

static struct fuse_req *new_req(struct fuse_req *r)
{
	*r = (struct fuse_req){.buf = reply_buf};
	return r;
}

/* The caller of every request: this process (so --follow-writer looks at a thread that exists). */
const struct fuse_ctx *fuse_req_ctx(fuse_req_t req)
{
	static struct fuse_ctx ctx;
	(void)req;
	ctx.pid = getpid();
	return &ctx;
}

int fuse_reply_err(fuse_req_t req, int err)
{
	req->replied++;
	req->err = err;
	return 0;
}

int fuse_reply_write(fuse_req_t req, size_t count)
{
	req->replied++;
	req->count = count;
	return 0;
}

int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	req->replied++;
	req->buflen = size;
	if (size)
		memcpy(req->buf, buf, size);
	return 0;
}

int fuse_reply_ioctl(fuse_req_t req, int result, const void *buf, size_t size)
{
	req->replied++;
	req->err = result < 0 ? -result : 0;
	req->buflen = size;
	if (size)
		memcpy(req->buf, buf, size);
	return 0;
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	(void)fi;
	req->replied++;
	return 0;
}

/* Not reached by these tests; here so that shim.c links without libfuse. */
int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double t)
{
	(void)attr;
	(void)t;
	req->replied++;
	return 0;
}
void fuse_session_exit(struct fuse_session *se) { (void)se; }
struct fuse_session *fuse_session_new(struct fuse_args *args, const struct fuse_lowlevel_ops *op, size_t op_size, void *userdata)
{
	(void)args, (void)op, (void)op_size, (void)userdata;
	return NULL;
}
int fuse_session_mount(struct fuse_session *se, const char *mountpoint)
{
	(void)se, (void)mountpoint;
	return -1;
}
int fuse_session_loop(struct fuse_session *se)
{
	(void)se;
	return -1;
}
void fuse_session_unmount(struct fuse_session *se) { (void)se; }
void fuse_session_destroy(struct fuse_session *se) { (void)se; }
void fuse_opt_free_args(struct fuse_args *args) { (void)args; }
struct fuse_session *cuse_lowlevel_setup(int argc, char *argv[], const struct cuse_info *ci,
					 const struct cuse_lowlevel_ops *clop, int *multithreaded, void *userdata)
{
	(void)argc, (void)argv, (void)ci, (void)clop, (void)multithreaded, (void)userdata;
	return NULL;
}
void cuse_lowlevel_teardown(struct fuse_session *se) { (void)se; }

#define MiB (1024 * 1024)

static struct fake f;
static struct fuse_file_info fi;

static void setup(policy_fn policy, unsigned window, size_t max_record)
{
	memset(&g, 0, sizeof(g));
	g.cuse = 1;
	g.opt.max_record = max_record;
	g.opt.window = window;
	fake_start(&f, policy, 1 << 30);
	g.link = link_open(f.shim_fd, window, NULL, NULL, NULL);
	fake_serve(&f);
	ra_init(&g.ra, max_record);
	memset(&fi, 0, sizeof(fi));
	fi.flags = O_WRONLY;
	struct fuse_req r;
	cuse_open(new_req(&r), &fi);
	CHECK(r.replied == 1 && r.err == 0 && fi.fh != 0);
}

static void teardown(void)
{
	struct fuse_req r;
	cuse_release(new_req(&r), &fi);
	CHECK(r.replied == 1 && r.err == 0);
	link_close(g.link);
	fake_stop(&f);
	drop_held();
	ra_free(&g.ra);
}

/* Where the program's buffer starts in its page: the kernel cuts the first chunk short by that much. */
static size_t misalign;

/* write(2) as CUSE delivers it: the byte count it returns, or -errno. */
static ssize_t cuse_write_syscall(const uint8_t *data, size_t len)
{
	size_t done = 0;
	do {
		size_t n = cuse_kernel_chunk(misalign, done, len);
		struct fuse_req r;
		cuse_write(new_req(&r), (const char *)data + done, n, (off_t)done, &fi);
		CHECK(r.replied == 1);
		if (r.err)
			return done ? (ssize_t)done : -r.err;
		done += r.count;
		if (r.count < n)
			break;
	} while (done < len);
	return (ssize_t)done;
}

/* read(2) into a buffer of len bytes as CUSE delivers it. */
static ssize_t cuse_read_syscall(size_t len)
{
	size_t done = 0;
	do {
		size_t n = cuse_kernel_chunk(misalign, done, len);
		struct fuse_req r;
		cuse_read(new_req(&r), n, (off_t)done, &fi);
		CHECK(r.replied == 1);
		if (r.err)
			return done ? (ssize_t)done : -r.err;
		done += r.buflen;
		if (r.buflen < n)
			break;
	} while (done < len);
	return (ssize_t)done;
}

static int mtioctop(short op)
{
	struct mtop m = {.mt_op = op, .mt_count = 1};
	struct fuse_req r;
	cuse_ioctl(new_req(&r), (int)MTIOCTOP, NULL, &fi, 0, &m, sizeof(m), 0);
	CHECK(r.replied == 1);
	return r.err;
}

static int mtiocget(void)
{
	struct fuse_req r;
	cuse_ioctl(new_req(&r), (int)MTIOCGET, NULL, &fi, 0, NULL, 0, sizeof(struct mtget));
	CHECK(r.replied == 1);
	CHECK(r.err || r.buflen == sizeof(struct mtget));
	return r.err;
}

static int flush(void)
{
	struct fuse_req r;
	cuse_flush(new_req(&r), &fi);
	CHECK(r.replied == 1);
	return r.err;
}

/* The fake saw request n as type/flags/arg/length. */
static int saw(int n, uint16_t type, uint16_t flags, int32_t arg, uint32_t length)
{
	fake_wait_seen(&f, n + 1);
	const struct frame_header *h = &f.req[n];
	if (h->type == type && h->flags == flags && h->arg == arg && h->length == length)
		return 1;
	fprintf(stderr, "request %d: type %u flags %u arg %d length %u; expected %u %u %d %u\n", n, h->type,
		h->flags, h->arg, h->length, type, flags, arg, length);
	return 0;
}

static uint8_t data[4 * MiB];

static void test_write_behind_records(void)
{
	setup(all_ok, 32, MiB);
	CHECK(saw(0, FRAME_OPEN, 0, O_WRONLY, 0));
	/* The first record after OPEN is checked and waited for (exact EACCES, ENOMEDIUM, EINVAL). */
	CHECK(cuse_write_syscall(data, 300000) == 300000);
	CHECK(saw(1, FRAME_WRITE_CHECK, 0, CUSE_CHUNK, 0));
	CHECK(saw(2, FRAME_WRITE, FRAME_CHECKED, 0, 300000));
	/* An exact multiple of 128 KiB goes when the next operation arrives. */
	CHECK(cuse_write_syscall(data, 262144) == 262144);
	CHECK(link_drain(g.link) == 0 && fake_seen(&f) == 3);
	CHECK(mtiocget() == 0);
	CHECK(saw(3, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, 262144));
	CHECK(saw(4, FRAME_MTIOCGET, 0, 0, 0));
	/* Back to back: the second write's first chunk completes the first record. */
	CHECK(cuse_write_syscall(data, MiB) == MiB);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(saw(5, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, MiB));
	CHECK(saw(6, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, 10240));
	/* close(2) after writes: st's close-time work (filemark, sync); the drive's close comes at release. */
	CHECK(flush() == 0);
	CHECK(saw(7, FRAME_FLUSH, 0, 0, 0));
	CHECK(flush() == 0);
	CHECK(fake_seen(&f) == 8);
	teardown();
	CHECK(saw(8, FRAME_CLOSE, 0, 0, 0));
}

/* Write-behind starts after a write succeeded since the last OPEN or tape operation. */
static void test_first_write_waited(void)
{
	setup(all_ok, 32, MiB);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(mtioctop(MTSETBLK) == 0);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(mtioctop(MTNOP) == 0);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(saw(1, FRAME_WRITE, 0, 0, 10240));
	CHECK(saw(2, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, 10240));
	CHECK(saw(3, FRAME_MTIOCTOP, 0, 0, 8));
	CHECK(saw(4, FRAME_WRITE, 0, 0, 10240));
	CHECK(saw(5, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, 10240));
	CHECK(saw(6, FRAME_MTIOCTOP, 0, 0, 8));
	CHECK(saw(7, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, 10240));
	teardown();
}

static void test_checked_records(void)
{
	setup(all_ok, 0, MiB);
	CHECK(cuse_write_syscall(data, 300000) == 300000);
	CHECK(saw(1, FRAME_WRITE_CHECK, 0, CUSE_CHUNK, 0));
	CHECK(saw(2, FRAME_WRITE, FRAME_CHECKED, 0, 300000));
	/* A record in one chunk needs no check: its own result reaches the writer. */
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(saw(3, FRAME_WRITE, 0, 0, 10240));
	CHECK(cuse_write_syscall(data, 262144) == 262144);
	CHECK(saw(4, FRAME_WRITE_CHECK, 0, CUSE_CHUNK, 0));
	CHECK(mtioctop(MTWEOF) == 0);
	CHECK(saw(5, FRAME_WRITE, FRAME_CHECKED, 0, 262144));
	CHECK(saw(6, FRAME_MTIOCTOP, 0, 0, 8));
	teardown();
}

static void check_says_enospc(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags)
{
	all_ok(req, n, arg, flags);
	if (req->type == FRAME_WRITE_CHECK)
		*arg = -ENOSPC;
}

static void test_check_refused(void)
{
	setup(check_says_enospc, 0, MiB);
	CHECK(cuse_write_syscall(data, 300000) == -ENOSPC);
	CHECK(cuse_write_syscall(data, 262144) == -ENOSPC);
	CHECK(mtiocget() == 0);
	CHECK(saw(1, FRAME_WRITE_CHECK, 0, CUSE_CHUNK, 0));
	CHECK(saw(2, FRAME_WRITE_CHECK, 0, CUSE_CHUNK, 0));
	CHECK(saw(3, FRAME_MTIOCGET, 0, 0, 0));
	teardown();
}

static void checked_write_fails(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags)
{
	all_ok(req, n, arg, flags);
	if (req->type == FRAME_WRITE && (req->flags & FRAME_CHECKED))
		*arg = -EIO;
}

/* The writer was answered before the record could fail: the next operation gets EIO. */
static void test_checked_record_fails(void)
{
	setup(checked_write_fails, 0, MiB);
	CHECK(cuse_write_syscall(data, 300000) == 300000);
	CHECK(mtiocget() == EIO);
	CHECK(fake_seen(&f) == 3);
	CHECK(mtiocget() == 0);
	/* The same for a record completed by the next operation. */
	CHECK(cuse_write_syscall(data, 262144) == 262144);
	CHECK(flush() == EIO);
	teardown();
}

static void second_write_fails(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags)
{
	all_ok(req, n, arg, flags);
	if (n == 2)
		*arg = -EIO;
}

static void test_behind_failure(void)
{
	setup(second_write_fails, 32, MiB);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	CHECK(saw(2, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, 10240));
	CHECK(link_drain(g.link) == 0);
	/* Reported on the next write's first chunk; nothing of that write is sent. */
	CHECK(cuse_write_syscall(data, 300000) == -EIO);
	CHECK(fake_seen(&f) == 3);
	CHECK(cuse_write_syscall(data, 300000) == 300000);
	CHECK(saw(3, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, 300000));
	teardown();
}

static void record_of_300000(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags)
{
	all_ok(req, n, arg, flags);
	if (req->type == FRAME_READ)
		*arg = req->arg >= 300000 ? 300000 : -ENOMEM;
}

static void test_reads(void)
{
	setup(record_of_300000, 32, MiB);
	/* A large buffer: the first chunk asks for the largest record, the rest comes from it. */
	CHECK(cuse_read_syscall(MiB) == 300000);
	CHECK(saw(1, FRAME_READ, 0, MiB, 0));
	CHECK(reply_buf[0] == 0xab);
	CHECK(fake_seen(&f) == 2);
	/* A buffer under one chunk: asked as it is, so ENOMEM is exact. */
	CHECK(cuse_read_syscall(10240) == -ENOMEM);
	CHECK(saw(2, FRAME_READ, 0, 10240, 0));
	/* 128 KiB or more but shorter than the record: the record is cut (the documented gap). */
	CHECK(cuse_read_syscall(200000) == 200000);
	CHECK(saw(3, FRAME_READ, 0, MiB, 0));
	/* The next read(2) reads the next record, not the rest of that one. */
	CHECK(cuse_read_syscall(MiB) == 300000);
	CHECK(saw(4, FRAME_READ, 0, MiB, 0));
	/* A buffer of exactly the record's size: every chunk is full. */
	CHECK(cuse_read_syscall(300000) == 300000);
	CHECK(fake_seen(&f) == 6);
	teardown();
}

static void record_of_one_chunk(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags)
{
	all_ok(req, n, arg, flags);
	if (req->type == FRAME_READ)
		*arg = CUSE_CHUNK;
}

/* A record of exactly one chunk in a larger buffer: the second chunk gets 0, which ends the read. */
static void test_read_one_chunk(void)
{
	setup(record_of_one_chunk, 32, MiB);
	CHECK(cuse_read_syscall(4 * CUSE_CHUNK) == CUSE_CHUNK);
	CHECK(cuse_read_syscall(4 * CUSE_CHUNK) == CUSE_CHUNK);
	CHECK(fake_seen(&f) == 3);
	teardown();
}

/*
 * Buffers that do not start on a page boundary (perl's, tar's): the first chunk is 131056 bytes, and
 * neither a write nor a read may take that for the whole record or the whole buffer.
 */
static void test_misaligned(void)
{
	misalign = 16;
	setup(record_of_300000, 0, MiB);
	/* Checked on the first chunk (it may go on), then one record of 300000 bytes, not a short write. */
	CHECK(cuse_write_syscall(data, 300000) == 300000);
	CHECK(saw(1, FRAME_WRITE_CHECK, 0, CUSE_CHUNK - 16, 0));
	CHECK(saw(2, FRAME_WRITE, FRAME_CHECKED, 0, 300000));
	/* Under 124 KiB the first chunk is the whole record: written and answered as it is. */
	CHECK(cuse_write_syscall(data, 126976) == 126976);
	CHECK(saw(3, FRAME_WRITE, 0, 0, 126976));
	/* A read: the first chunk may be part of a larger buffer, so it asks for the largest record. */
	CHECK(cuse_read_syscall(MiB) == 300000);
	CHECK(saw(4, FRAME_READ, 0, MiB, 0));
	/* A buffer the first chunk shows whole is asked as it is: ENOMEM is exact. */
	CHECK(cuse_read_syscall(126976) == -ENOMEM);
	CHECK(saw(5, FRAME_READ, 0, 126976, 0));
	teardown();
	misalign = 0;

	/* Past early warning every record is checked on its first chunk: ENOSPC, never a short write. */
	misalign = 1408;
	setup(check_says_enospc, 0, MiB);
	CHECK(cuse_write_syscall(data, 300000) == -ENOSPC);
	CHECK(saw(1, FRAME_WRITE_CHECK, 0, CUSE_CHUNK - 1408, 0));
	CHECK(fake_seen(&f) == 2);
	teardown();
	misalign = 0;
}

static void test_oversize(void)
{
	setup(all_ok, 32, MiB);
	CHECK(cuse_write_syscall(data, 10240) == 10240);
	/* The ninth chunk goes over: a short write of 1 MiB, and nothing reaches the daemon. */
	CHECK(cuse_write_syscall(data, MiB + 1) == MiB);
	CHECK(mtiocget() == 0);
	CHECK(saw(2, FRAME_MTIOCGET, 0, 0, 0));
	CHECK(cuse_write_syscall(data, 4 * MiB) == MiB);
	CHECK(cuse_write_syscall(data, MiB) == MiB);
	CHECK(mtiocget() == 0);
	CHECK(saw(3, FRAME_WRITE, FRAME_WRITE_BEHIND, 0, MiB));
	CHECK(saw(4, FRAME_MTIOCGET, 0, 0, 0));
	teardown();

	/* A maximum under one chunk fails the first chunk: the writer gets EINVAL. */
	setup(all_ok, 32, 65536);
	CHECK(cuse_write_syscall(data, 65537) == -EINVAL);
	CHECK(cuse_write_syscall(data, 65536) == 65536);
	CHECK(saw(1, FRAME_WRITE, 0, 0, 65536));
	teardown();
}

static void test_ioctl_sizes(void)
{
	setup(all_ok, 32, MiB);
	struct fuse_req r;
	struct mtop m = {.mt_op = MTREW, .mt_count = 1};
	cuse_ioctl(new_req(&r), (int)MTIOCTOP, NULL, &fi, 0, &m, 4, 0);
	CHECK(r.err == EINVAL);
	cuse_ioctl(new_req(&r), (int)MTIOCGET, NULL, &fi, 0, NULL, 0, 28);
	CHECK(r.err == EINVAL);
	cuse_ioctl(new_req(&r), (int)MTIOCPOS, NULL, &fi, 0, NULL, 0, 4);
	CHECK(r.err == EINVAL);
	cuse_ioctl(new_req(&r), 0x5401 /* TCGETS */, NULL, &fi, 0, NULL, 0, 60);
	CHECK(r.err == ENOTTY);
	CHECK(fake_seen(&f) == 1);
	cuse_ioctl(new_req(&r), (int)MTIOCTOP, NULL, &fi, 0, &m, sizeof(m), 0);
	CHECK(r.err == 0 && r.buflen == 0);
	CHECK(saw(1, FRAME_MTIOCTOP, 0, 0, 8));
	teardown();
}

int main(void)
{
	test_write_behind_records();
	test_first_write_waited();
	test_checked_records();
	test_check_refused();
	test_checked_record_fails();
	test_behind_failure();
	test_reads();
	test_read_one_chunk();
	test_oversize();
	test_misaligned();
	test_ioctl_sizes();
	return test_result("test-cuse-ops");
}
