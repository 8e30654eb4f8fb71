/*
 * fuse-floor FILE: mounts a FUSE file over FILE that answers every write(2) at once and keeps
 * nothing: the pseudo drive's FUSE front end with no work behind it, mounted as the shim mounts
 * it (direct I/O, one request at a time, writes of up to 1 MiB) and following its writer's CPU as
 * the shim does (cuse-shim/writer-cpu.h). The bench's "Floor" contender
 * writes dd's records into it: how many records a second the FUSE round trip alone allows.
 * Runs until SIGTERM or SIGINT, then unmounts.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 35

#include "writer-cpu.h"

#include <fuse_lowlevel.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct stat attr;
static struct writer_cpu writer_cpu;

static void floor_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->max_write > 1024 * 1024)
		conn->max_write = 1024 * 1024;
	conn->want &= ~(FUSE_CAP_ASYNC_READ | FUSE_CAP_ASYNC_DIO);
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, ENOENT);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_attr(req, &attr, 0);
}

static void floor_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st, int to_set, struct fuse_file_info *fi)
{
	(void)st;
	(void)to_set;
	floor_getattr(req, ino, fi);
}

static void floor_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fi->direct_io = 1;
	fi->nonseekable = 1;
	fuse_reply_open(req, fi);
}

static void floor_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)size;
	(void)off;
	(void)fi;
	writer_cpu_follow(&writer_cpu, fuse_req_ctx(req)->pid);
	fuse_reply_buf(req, NULL, 0);
}

static void floor_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)off;
	(void)fi;
	writer_cpu_follow(&writer_cpu, fuse_req_ctx(req)->pid);
	fuse_reply_write(req, size);
}

static void floor_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.init = floor_init,
	.lookup = floor_lookup,
	.getattr = floor_getattr,
	.setattr = floor_setattr,
	.open = floor_open,
	.read = floor_read,
	.write = floor_write,
	.flush = floor_ok,
	.release = floor_ok,
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuse-floor FILE\n");
		return 2;
	}
	attr.st_ino = FUSE_ROOT_ID;
	attr.st_mode = S_IFREG | 0600;
	attr.st_nlink = 1;
	attr.st_uid = getuid();
	attr.st_gid = getgid();
	writer_cpu_init(&writer_cpu);

	char arg0[] = "fuse-floor";
	char *args_v[] = {arg0, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(1, args_v);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	fuse_opt_free_args(&args);
	if (!se)
		return 1;
	int res = 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, argv[1]) == 0) {
			res = fuse_session_loop(se) < 0;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	writer_cpu_end(&writer_cpu);
	return res;
}
