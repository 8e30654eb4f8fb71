/*
 * tapeproxy-shim: presents one tapeproxy drive to the kernel, as a CUSE character device or as a
 * single-file FUSE mount, and forwards every operation to the daemon (proto/shim-frames.md).
 *
 * The session loop is single-threaded on purpose: the kernel's requests for the one drive are then
 * handled strictly in order, which is the order the daemon must see them in.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 35

#include "daemon-link.h"
#include "frames.h"
#include "record-assembler.h"
#include "record-ring.h"
#include "writer-cpu.h"

#include <cuse_lowlevel.h>
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/mtio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define EXIT_LOST 3 /* the daemon went away: its supervisor restarts the shim */

#define MAX_RECORD_LIMIT (64u * 1024 * 1024)
/* libfuse 3.14's receive buffer holds 256 pages: the largest FUSE write request is 1 MiB. */
#define FUSE_MODE_MAX_WRITE (1024u * 1024)
/* What one read of /dev/fuse may bring in FUSE mode: a request's headers and at most max_write
 * bytes (libfuse reads with max_write and a page for the headers). */
#define FUSE_MODE_READ_BYTES (FUSE_MODE_MAX_WRITE + 4096u)
/* Where a WRITE's data starts in the request: struct fuse_in_header and struct fuse_write_in,
 * 40 bytes each (<linux/fuse.h>, protocol 7.9 and later). Were it otherwise, records would still
 * reach the daemon, copied (record-ring.c). */
#define FUSE_WRITE_DATA_OFFSET 80u

_Static_assert(MTIOCTOP == 0x40086d01, "x86_64 MTIOCTOP");
_Static_assert(MTIOCGET == 0x80306d02, "x86_64 MTIOCGET");
_Static_assert(MTIOCPOS == 0x80086d03, "x86_64 MTIOCPOS");

struct options {
	const char *socket;
	const char *fuse_path;
	const char *cuse_name;
	unsigned window;
	size_t window_bytes;
	size_t max_record;
	mode_t mode;
	gid_t gid;
	int follow_writer;
	const char *ring; /* the record ring's file, or NULL */
};

/* Per open(2). Listed, so that those still open when the shim exits are freed. */
struct open_file {
	int wrote; /* records written since the last close(2) of one of its descriptors */
	struct open_file *prev, *next;
};

static struct {
	struct options opt;
	int cuse;
	struct daemon_link *link;
	struct fuse_session *se;
	pthread_t main_thread;
	volatile sig_atomic_t stop;
	atomic_int lost;
	atomic_int loop_done;
	struct stat attr;
	struct open_file *files;
	struct writer_cpu writer_cpu; /* the session thread's, when --follow-writer */
	struct record_ring ring;

	/* CUSE writes: the record being assembled, and whether WRITE_CHECK passed it (else it goes
	 * write-behind). A failure of a record the writer was already answered for: pending_eio. */
	struct record_assembler ra;
	int rec_checked;
	int pending_eio;

	/* A write has succeeded, waited for, since the last OPEN or tape operation: the drive takes
	 * records (access mode, medium, block size), so write-behind cannot turn an EACCES,
	 * ENOMEDIUM or EINVAL of the first write into a later EIO. */
	int proven;

	/* CUSE reads: the record whose rest serves the following chunks of the same read(2). */
	struct link_reply held;
	size_t held_off;
	int holding;
} g;

static int reply_errno(int32_t arg)
{
	return arg < 0 && arg > -4096 ? -arg : EIO;
}

static void drop_held(void)
{
	if (g.holding)
		link_reply_free(&g.held);
	g.holding = 0;
}

/* A finished CUSE record: its writer has been answered already. */
static int send_record(const uint8_t *rec, size_t len)
{
	if (!g.rec_checked)
		return link_send_behind(g.link, 0, rec, len);
	struct link_reply r;
	int e = link_call(g.link, FRAME_WRITE, FRAME_CHECKED, 0, rec, len, &r);
	if (e)
		return e;
	link_reply_free(&r);
	if (r.arg < 0)
		return -EIO;
	g.proven = 1;
	return 0;
}

/*
 * Every operation starts here: a record of whole 128 KiB chunks is complete now, a held read
 * record belongs to an earlier read(2), and an error owed to the writer is reported now.
 */
static int before_op(void)
{
	int e = 0;
	drop_held();
	if (g.cuse && ra_flush(&g.ra) == RA_COMPLETE) {
		size_t len;
		const uint8_t *rec = ra_record(&g.ra, &len);
		e = send_record(rec, len);
	}
	if (g.pending_eio && !e)
		e = -EIO;
	g.pending_eio = 0;
	return e;
}

static void forget_file(struct open_file *of)
{
	if (of->prev)
		of->prev->next = of->next;
	else
		g.files = of->next;
	if (of->next)
		of->next->prev = of->prev;
	free(of);
}

static void reply_result(fuse_req_t req, int e)
{
	fuse_reply_err(req, e < 0 ? -e : 0);
}

/* Reads and writes: the session thread goes to the CPU of the thread that waits for it. */
static void follow_writer(fuse_req_t req)
{
	if (g.opt.follow_writer)
		writer_cpu_follow(&g.writer_cpu, fuse_req_ctx(req)->pid);
}

static void op_open(fuse_req_t req, struct fuse_file_info *fi)
{
	/* Anything left over belongs to a descriptor already closed. */
	before_op();
	link_take_failure(g.link);
	g.proven = 0;

	struct open_file *of = calloc(1, sizeof(*of));
	if (!of) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct link_reply r;
	int e = link_call(g.link, FRAME_OPEN, 0, fi->flags, NULL, 0, &r);
	if (!e && r.arg < 0)
		e = -reply_errno(r.arg);
	link_reply_free(&r);
	if (e) {
		free(of);
		reply_result(req, e);
		return;
	}
	of->next = g.files;
	if (g.files)
		g.files->prev = of;
	g.files = of;
	fi->fh = (uintptr_t)of;
	fi->keep_cache = 0;
	if (!g.cuse) {
		fi->direct_io = 1;
		fi->nonseekable = 1;
	}
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The open(2) was interrupted: no release will come for it. */
		if (link_call(g.link, FRAME_CLOSE, 0, 0, NULL, 0, &r) == 0)
			link_reply_free(&r);
		forget_file(of);
	}
}

/*
 * Every close(2) of any descriptor of this open, dup'd or inherited ones included (dd and shell
 * redirections close a duplicate right after open; dump's slave processes share the tape). After
 * writes it is st's close-time work (FLUSH: the filemark and a sync point, whose errors close(2)
 * returns, as st_flush does); the drive is closed at release, after the last one.
 */
static void op_flush(fuse_req_t req, struct fuse_file_info *fi)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	int e = before_op();
	if (of->wrote) {
		of->wrote = 0;
		if (!e)
			e = link_drain(g.link);
		if (!e)
			e = link_take_failure(g.link);
		if (!e) {
			struct link_reply r;
			e = link_call(g.link, FRAME_FLUSH, 0, 0, NULL, 0, &r);
			if (!e && r.arg < 0)
				e = -reply_errno(r.arg);
			link_reply_free(&r);
		}
	}
	reply_result(req, e);
}

/* The last close: the drive's close (the filemark after writes). Its result has no one to go to. */
static void op_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	struct link_reply r;
	before_op();
	link_drain(g.link);
	link_take_failure(g.link);
	if (link_call(g.link, FRAME_CLOSE, 0, 0, NULL, 0, &r) == 0) {
		if (r.arg < 0)
			fprintf(stderr, "tapeproxy-shim: closing the drive: %s\n", strerror(reply_errno(r.arg)));
		link_reply_free(&r);
	}
	forget_file(of);
	fuse_reply_err(req, 0);
}

/*
 * A write request that holds a whole record. Write-behind when allowed: the writer is answered
 * before the record crosses the socket, so it prepares its next record meanwhile (a failed send
 * loses the link, and the next operation gets EIO). Else the record is sent and its reply is the
 * writer's result.
 */
static void write_whole_record(fuse_req_t req, const char *buf, size_t size)
{
	uint32_t id;
	int r = g.proven ? link_reserve_behind(g.link, size, &id) : 0;
	if (r == 1) {
		fuse_reply_write(req, size);
		(void)link_send_reserved(g.link, id, 0, buf, size);
		return;
	}
	ssize_t n = r < 0 ? r : link_write(g.link, 0, buf, size, 0);
	if (n < 0) {
		reply_result(req, (int)n);
		return;
	}
	g.proven = 1;
	fuse_reply_write(req, (size_t)n);
}

/* A READ of ask bytes; 0 with *r filled, or -errno. */
static int read_record(int32_t ask, struct link_reply *r)
{
	int e = link_call(g.link, FRAME_READ, 0, ask, NULL, 0, r);
	if (e)
		return e;
	if (r->arg < 0) {
		e = -reply_errno(r->arg);
		link_reply_free(r);
		return e;
	}
	return 0;
}

static void op_ioctl(fuse_req_t req, unsigned int cmd, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct link_reply r;
	int e = before_op();
	if (e) {
		reply_result(req, e);
		return;
	}
	switch (cmd) {
	case MTIOCTOP: {
		if (in_bufsz != sizeof(struct mtop)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		struct mtop op;
		uint8_t wire[MTOP_WIRE_BYTES];
		memcpy(&op, in_buf, sizeof(op));
		mtop_encode(&op, wire);
		if (op.mt_op != MTNOP)
			g.proven = 0;
		e = link_call(g.link, FRAME_MTIOCTOP, 0, 0, wire, sizeof(wire), &r);
		if (!e && r.arg < 0)
			e = -reply_errno(r.arg);
		link_reply_free(&r);
		if (e)
			reply_result(req, e);
		else
			fuse_reply_ioctl(req, 0, NULL, 0);
		return;
	}
	case MTIOCGET:
	case MTIOCPOS: {
		int get = cmd == MTIOCGET;
		size_t size = get ? sizeof(struct mtget) : sizeof(struct mtpos);
		size_t wire = get ? MTGET_WIRE_BYTES : MTPOS_WIRE_BYTES;
		if (out_bufsz != size) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		e = link_call(g.link, get ? FRAME_MTIOCGET : FRAME_MTIOCPOS, 0, 0, NULL, 0, &r);
		if (!e && r.arg < 0)
			e = -reply_errno(r.arg);
		else if (!e && r.length != wire) {
			fprintf(stderr, "tapeproxy-shim: %s reply of %u bytes, expected %zu\n",
				get ? "MTIOCGET" : "MTIOCPOS", r.length, wire);
			e = -EIO;
		}
		if (e) {
			link_reply_free(&r);
			reply_result(req, e);
			return;
		}
		struct mtget st;
		struct mtpos pos;
		if (get)
			mtget_decode(r.payload, &st);
		else
			mtpos_decode(r.payload, &pos);
		link_reply_free(&r);
		fuse_reply_ioctl(req, 0, get ? (const void *)&st : (const void *)&pos, size);
		return;
	}
	default:
		fuse_reply_err(req, ENOTTY);
	}
}

/* ---- FUSE single-file mode: one request is one record, offsets mean nothing. ---- */

static void fuse_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->max_write > FUSE_MODE_MAX_WRITE)
		conn->max_write = FUSE_MODE_MAX_WRITE;
	/* One request in flight at a time, in syscall order. */
	conn->want &= ~(FUSE_CAP_ASYNC_READ | FUSE_CAP_ASYNC_DIO);
}

static void fuse_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, ENOENT);
}

static void fuse_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_attr(req, &g.attr, 1.0);
}

/* dd opens with O_TRUNC, others chmod or touch: accepted, and nothing changes. */
static void fuse_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	(void)attr;
	(void)to_set;
	fuse_getattr(req, ino, fi);
}

static void fuse_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	op_open(req, fi);
}

static void fuse_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)off;
	(void)fi;
	follow_writer(req);
	struct link_reply r;
	int e = before_op();
	if (!e)
		e = read_record(size > INT32_MAX ? INT32_MAX : (int32_t)size, &r);
	if (e) {
		reply_result(req, e);
		return;
	}
	fuse_reply_buf(req, (const char *)r.payload, r.length < size ? r.length : size);
	link_reply_free(&r);
}

static void fuse_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)off;
	follow_writer(req);
	((struct open_file *)(uintptr_t)fi->fh)->wrote = 1;
	int e = before_op();
	if (e) {
		reply_result(req, e);
		return;
	}
	if (size > g.opt.max_record) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	write_whole_record(req, buf, size);
}

static void fuse_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	op_flush(req, fi);
}

static void fuse_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	op_release(req, fi);
}

static void fuse_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
		       unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	(void)ino;
	(void)arg;
	(void)fi;
	(void)flags;
	op_ioctl(req, cmd, in_buf, in_bufsz, out_bufsz);
}

static const struct fuse_lowlevel_ops fuse_ops = {
	.init = fuse_init,
	.lookup = fuse_lookup,
	.getattr = fuse_getattr,
	.setattr = fuse_setattr,
	.open = fuse_open,
	.read = fuse_read,
	.write = fuse_write,
	.flush = fuse_flush,
	.release = fuse_release,
	.ioctl = fuse_ioctl,
};

/* ---- CUSE mode: write(2) and read(2) arrive in chunks of 128 KiB (reference section 6). ---- */

static void cuse_init_done(void *userdata)
{
	(void)userdata;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "/dev/%s", g.opt.cuse_name);
	/* The node appears when the kernel has taken the init reply; udev may still be creating it. */
	for (int i = 0; i < 100 && access(path, F_OK) != 0; i++)
		usleep(50 * 1000);
	if (chown(path, (uid_t)-1, g.opt.gid) != 0 || chmod(path, g.opt.mode) != 0)
		fprintf(stderr, "tapeproxy-shim: setting the owner and mode of %s: %s\n", path, strerror(errno));
}

static void cuse_open(fuse_req_t req, struct fuse_file_info *fi)
{
	op_open(req, fi);
}

static void cuse_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	follow_writer(req);
	if (off == 0) {
		int e = before_op();
		/* The syscall's whole buffer is unknown when the kernel may have cut it: such a chunk
		 * asks for the largest record (spec "CUSE chunks"). */
		int32_t ask = cuse_chunk_may_continue(0, size) ? (int32_t)g.opt.max_record : (int32_t)size;
		if (!e)
			e = read_record(ask, &g.held);
		if (e) {
			reply_result(req, e);
			return;
		}
		g.holding = 1;
		g.held_off = 0;
	} else if (!g.holding || (size_t)off != g.held_off) {
		/* Not a continuation of the held record: end this read(2) here. */
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t left = g.held.length - g.held_off;
	size_t n = left < size ? left : size;
	fuse_reply_buf(req, (const char *)g.held.payload + g.held_off, n);
	g.held_off += n;
	/* A short chunk ends the syscall; a full one may be followed by the next chunk. */
	if (n < size)
		drop_held();
}

static void cuse_write(fuse_req_t req, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	int e;
	follow_writer(req);
	((struct open_file *)(uintptr_t)fi->fh)->wrote = 1;
	if (off == 0) {
		e = before_op();
		if (!e)
			e = link_take_failure(g.link);
		if (!e && size > g.opt.max_record)
			e = -EINVAL;
		if (e) {
			reply_result(req, e);
			return;
		}
		if (!cuse_chunk_may_continue(0, size)) {
			/* The whole record in one chunk: its result reaches the writer as it is. */
			write_whole_record(req, buf, size);
			return;
		}
		/* Only this chunk can fail with an errno: check the record before accepting it. */
		g.rec_checked = !g.proven || !link_behind_ok(g.link);
		if (g.rec_checked) {
			struct link_reply r;
			e = link_call(g.link, FRAME_WRITE_CHECK, 0, (int32_t)size, NULL, 0, &r);
			if (!e && r.arg < 0)
				e = -reply_errno(r.arg);
			link_reply_free(&r);
			if (e) {
				reply_result(req, e);
				return;
			}
		}
	}
	int res = ra_feed(&g.ra, off, buf, size);
	if (res < 0) {
		if (res == -EPROTO)
			fprintf(stderr, "tapeproxy-shim: write chunk at offset %lld does not continue the record\n",
				(long long)off);
		reply_result(req, res == -EPROTO ? -EIO : res);
		return;
	}
	if (res == RA_COMPLETE) {
		size_t len;
		const uint8_t *rec = ra_record(&g.ra, &len);
		if (send_record(rec, len))
			g.pending_eio = 1;
	}
	fuse_reply_write(req, size);
}

static void cuse_flush(fuse_req_t req, struct fuse_file_info *fi)
{
	op_flush(req, fi);
}

static void cuse_release(fuse_req_t req, struct fuse_file_info *fi)
{
	op_release(req, fi);
}

static void cuse_ioctl(fuse_req_t req, int cmd, void *arg, struct fuse_file_info *fi, unsigned int flags,
		       const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	(void)arg;
	(void)fi;
	(void)flags;
	op_ioctl(req, (unsigned int)cmd, in_buf, in_bufsz, out_bufsz);
}

static const struct cuse_lowlevel_ops cuse_ops = {
	.init_done = cuse_init_done,
	.open = cuse_open,
	.read = cuse_read,
	.write = cuse_write,
	.flush = cuse_flush,
	.release = cuse_release,
	.ioctl = cuse_ioctl,
};

/* ---- process ---- */

/* Without SA_RESTART, so that the session loop's read of /dev/fuse returns EINTR and it looks
 * at the exit flag. SIGUSR1 is the reader thread's "connection lost". */
static void on_signal(int sig)
{
	if (sig != SIGUSR1)
		g.stop = 1;
	if (g.se)
		fuse_session_exit(g.se);
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Reader thread. Keeps poking the session loop: a poke that lands just before its read() is lost. */
static void on_lost(void *ctx)
{
	(void)ctx;
	atomic_store(&g.lost, 1);
	while (!atomic_load(&g.loop_done)) {
		pthread_kill(g.main_thread, SIGUSR1);
		usleep(100 * 1000);
	}
}

static int prepare_fuse_file(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 && errno == ENOTCONN) {
		/* A mount left by a shim that died. */
		umount2(path, MNT_DETACH);
	}
	if (stat(path, &st) != 0) {
		if (errno != ENOENT) {
			fprintf(stderr, "tapeproxy-shim: %s: %s\n", path, strerror(errno));
			return -1;
		}
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) {
			fprintf(stderr, "tapeproxy-shim: creating %s: %s\n", path, strerror(errno));
			return -1;
		}
		if (fd >= 0)
			close(fd);
		if (stat(path, &st) != 0) {
			fprintf(stderr, "tapeproxy-shim: %s: %s\n", path, strerror(errno));
			return -1;
		}
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "tapeproxy-shim: %s: not a regular file (--fuse mounts the drive on a file)\n", path);
		return -1;
	}
	return 0;
}

/*
 * FUSE mode's session loop: libfuse's (fuse_loop.c), except where each request is read. Where the
 * record ring has room, the request is read so that a WRITE's record lands on a free page of the
 * ring: the kernel's copy out of the writer is then the only one before the daemon's sinks, and
 * send_locked (daemon-link.c) finds the record already placed. Other requests land there too and
 * are forgotten with the place, which the next read uses again.
 */
static int fuse_loop(struct fuse_session *se)
{
	uint8_t *own = malloc(FUSE_MODE_READ_BYTES);
	if (!own)
		return -ENOMEM;
	int res = 0;
	while (!fuse_session_exited(se)) {
		uint8_t *spot = link_ring_spot(g.link, FUSE_WRITE_DATA_OFFSET, FUSE_MODE_READ_BYTES);
		struct fuse_buf buf = {.mem = spot ? spot : own, .size = FUSE_MODE_READ_BYTES};
		res = fuse_session_receive_buf(se, &buf);
		if (res == -EINTR)
			continue;
		if (res <= 0)
			break;
		fuse_session_process_buf(se, &buf);
	}
	free(own);
	fuse_session_reset(se);
	return res > 0 ? 0 : res;
}

static int run_fuse(void)
{
	const char *path = g.opt.fuse_path;
	if (prepare_fuse_file(path))
		return 1;
	if (g.opt.max_record > FUSE_MODE_MAX_WRITE)
		fprintf(stderr, "tapeproxy-shim: warning: in FUSE mode a write(2) over 1 MiB arrives in parts "
				"and becomes several records; use records of 1 MiB at most\n");

	time_t now = time(NULL);
	g.attr.st_ino = FUSE_ROOT_ID;
	g.attr.st_mode = S_IFREG | g.opt.mode;
	g.attr.st_nlink = 1;
	g.attr.st_uid = getuid();
	g.attr.st_gid = g.opt.gid;
	g.attr.st_size = 0;
	g.attr.st_atime = g.attr.st_mtime = g.attr.st_ctime = now;

	char arg0[] = "tapeproxy-shim", o[] = "-o";
	char mount_opts[] = "default_permissions,allow_other,fsname=tapeproxy,subtype=tapeproxy";
	char *argv[] = {arg0, o, mount_opts, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct fuse_session *se = fuse_session_new(&args, &fuse_ops, sizeof(fuse_ops), NULL);
	fuse_opt_free_args(&args);
	if (!se)
		return 1;
	g.se = se;
	if (fuse_session_mount(se, path) != 0) {
		g.se = NULL;
		fuse_session_destroy(se);
		return 1;
	}
	if (g.stop || atomic_load(&g.lost))
		fuse_session_exit(se);
	int res = fuse_loop(se);
	atomic_store(&g.loop_done, 1);
	fuse_session_unmount(se);
	g.se = NULL;
	fuse_session_destroy(se);
	return res < 0 ? 1 : 0;
}

static int run_cuse(void)
{
	char devname[PATH_MAX];
	snprintf(devname, sizeof(devname), "DEVNAME=%s", g.opt.cuse_name);
	const char *dev_info_argv[] = {devname};
	struct cuse_info ci = {.dev_info_argc = 1, .dev_info_argv = dev_info_argv};
	char arg0[] = "tapeproxy-shim", fg[] = "-f", single[] = "-s";
	char *argv[] = {arg0, fg, single, NULL};
	int multithreaded;

	ra_init(&g.ra, g.opt.max_record);
	struct fuse_session *se = cuse_lowlevel_setup(3, argv, &ci, &cuse_ops, &multithreaded, NULL);
	if (!se) {
		ra_free(&g.ra);
		return 1;
	}
	/* libfuse installs its own handlers where none were; make sure ours are the ones. */
	install_signals();
	g.se = se;
	if (g.stop || atomic_load(&g.lost))
		fuse_session_exit(se);
	int res = fuse_session_loop(se);
	atomic_store(&g.loop_done, 1);
	g.se = NULL;
	cuse_lowlevel_teardown(se);
	drop_held();
	ra_free(&g.ra);
	return res < 0 ? 1 : 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tapeproxy-shim --socket PATH (--fuse FILE | --cuse NAME) [options]\n"
		"Presents one tapeproxy drive to the kernel and forwards its operations to the daemon.\n"
		"The daemon starts it; see cuse-shim/README.md.\n"
		"  --socket PATH       Unix socket to make for the daemon to connect to (required)\n"
		"  --fuse FILE         mount the drive on the regular file FILE (created if missing)\n"
		"  --cuse NAME         create the character device /dev/NAME\n"
		"  --window N          write-behind WRITE replies outstanding at most (default 32, 0: off)\n"
		"  --window-bytes N    and their bytes at most (default unbounded; the daemon passes less\n"
		"                      than the smallest early-warning zone of its copies)\n"
		"  --max-record BYTES  largest record, K/M suffixes allowed (default 1M, at most 64M)\n"
		"  --ring FILE         the daemon's record ring: shared memory that large records go through\n"
		"                      instead of the socket (the daemon passes /proc/PID/fd/N of its own)\n"
		"  --mode OCTAL        mode of the file or device node (default 0660)\n"
		"  --group GROUP       group of the file or device node (default tape if it exists, else root)\n"
		"  --no-follow-writer  leave the thread that serves reads and writes where the scheduler\n"
		"                      puts it (by default it runs on the CPU its writer last ran on, within\n"
		"                      the CPUs it was given: the writer waits for it, and a wake-up on the\n"
		"                      same CPU costs a fraction of one across CPUs)\n"
		"Exit status: 0 after SIGTERM/SIGINT or an unmount, 1 on a failure to start,\n"
		"2 for a wrong command line, 3 when the connection to the daemon was lost.\n");
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if (*end == 'K' || *end == 'k')
		v *= 1024, end++;
	else if (*end == 'M' || *end == 'm')
		v *= 1024 * 1024, end++;
	if (*end || v == 0 || v > MAX_RECORD_LIMIT)
		return -1;
	*out = (size_t)v;
	return 0;
}

static int valid_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '.' || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},   {"fuse", required_argument, NULL, 'f'},
		{"cuse", required_argument, NULL, 'c'},     {"window", required_argument, NULL, 'w'},
		{"window-bytes", required_argument, NULL, 'W'},
		{"max-record", required_argument, NULL, 'r'}, {"mode", required_argument, NULL, 'm'},
		{"group", required_argument, NULL, 'g'},    {"help", no_argument, NULL, 'h'},
		{"no-follow-writer", no_argument, NULL, 'n'}, {"ring", required_argument, NULL, 'R'},
		{NULL, 0, NULL, 0},
	};
	const char *group = NULL;
	char *end;
	int c;

	*opt = (struct options){
		.window = 32, .window_bytes = SIZE_MAX, .max_record = 1024 * 1024, .mode = 0660, .follow_writer = 1};
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			opt->socket = optarg;
			break;
		case 'f':
			opt->fuse_path = optarg;
			break;
		case 'c':
			opt->cuse_name = optarg;
			break;
		case 'w': {
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || *optarg == '-' || v > 65535) {
				fprintf(stderr, "tapeproxy-shim: --window %s: expected a number of replies, 0 to 65535\n", optarg);
				return -1;
			}
			opt->window = (unsigned)v;
			break;
		}
		case 'W': {
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg || *optarg == '-' || v == 0) {
				fprintf(stderr, "tapeproxy-shim: --window-bytes %s: expected a positive number of bytes\n", optarg);
				return -1;
			}
			opt->window_bytes = (size_t)v;
			break;
		}
		case 'r':
			if (parse_size(optarg, &opt->max_record)) {
				fprintf(stderr, "tapeproxy-shim: --max-record %s: expected bytes from 1 to 64M\n", optarg);
				return -1;
			}
			break;
		case 'm': {
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 8);
			if (errno || *end || end == optarg || v > 07777) {
				fprintf(stderr, "tapeproxy-shim: --mode %s: expected an octal mode such as 0660\n", optarg);
				return -1;
			}
			opt->mode = (mode_t)v;
			break;
		}
		case 'g':
			group = optarg;
			break;
		case 'n':
			opt->follow_writer = 0;
			break;
		case 'R':
			opt->ring = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tapeproxy-shim: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	if (!opt->socket) {
		fprintf(stderr, "tapeproxy-shim: --socket PATH is required\n");
		return -1;
	}
	if (!!opt->fuse_path == !!opt->cuse_name) {
		fprintf(stderr, "tapeproxy-shim: give exactly one of --fuse FILE and --cuse NAME\n");
		return -1;
	}
	if (opt->cuse_name && !valid_name(opt->cuse_name)) {
		fprintf(stderr, "tapeproxy-shim: --cuse %s: a device name is letters, digits, '.', '_', '-'\n",
			opt->cuse_name);
		return -1;
	}

	struct group *gr = getgrnam(group ? group : "tape");
	if (gr) {
		opt->gid = gr->gr_gid;
	} else if (!group) {
		opt->gid = 0;
	} else {
		errno = 0;
		unsigned long v = strtoul(group, &end, 10);
		if (errno || *end || end == group || *group == '-' || v >= (gid_t)-1) {
			fprintf(stderr, "tapeproxy-shim: --group %s: no such group\n", group);
			return -1;
		}
		opt->gid = (gid_t)v;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (parse_options(argc, argv, &g.opt))
		return EXIT_USAGE;
	g.cuse = g.opt.cuse_name != NULL;
	g.main_thread = pthread_self();
	/* Before anything can report a lost connection; libfuse then leaves these handlers alone. */
	install_signals();

	/* Before taking the daemon's connection, so that the ring is ready before any record comes, and
	 * while the daemon's descriptor (which it keeps until this shim exits) is there to open. */
	if (g.opt.ring) {
		int rfd = open(g.opt.ring, O_RDWR | O_CLOEXEC);
		int e = rfd < 0 ? -errno : ring_map(&g.ring, rfd);
		if (e)
			fprintf(stderr, "tapeproxy-shim: the record ring %s cannot be used (%s): records go on the socket\n",
				g.opt.ring, strerror(-e));
	}
	int fd = link_accept(g.opt.socket, &g.stop);
	g.link = fd < 0 ? NULL : link_open(fd, g.opt.window, &g.stop, on_lost, NULL);
	if (!g.link) {
		if (g.stop)
			return 0; /* asked to exit before the daemon came */
		fprintf(stderr, "tapeproxy-shim: waiting for the daemon on %s: %s\n", g.opt.socket, strerror(errno));
		return 1;
	}
	link_set_window_bytes(g.link, g.opt.window_bytes);
	if (g.ring.map)
		link_set_ring(g.link, &g.ring);
	/* After link_open: the link's reader thread keeps the mask it started with. */
	writer_cpu_init(&g.writer_cpu);
	int status = g.cuse ? run_cuse() : run_fuse();
	atomic_store(&g.loop_done, 1);
	link_close(g.link);
	ring_unmap(&g.ring);
	writer_cpu_end(&g.writer_cpu);
	while (g.files)
		forget_file(g.files);
	if (atomic_load(&g.lost))
		return EXIT_LOST;
	return status;
}
