/*
 * How the kernel cuts one read(2) or write(2) on a CUSE device into requests, for the C unit tests
 * that play the kernel's part (fs/fuse/file.c fuse_direct_io and fuse_get_user_pages: at most 32
 * pages of the user's buffer per request, so the first request of a buffer that starts `misalign`
 * bytes into a page is short of CUSE_CHUNK by that much).
 */
#ifndef TAPEPROXY_TEST_CUSE_KERNEL_H
#define TAPEPROXY_TEST_CUSE_KERNEL_H

#include "record-assembler.h"

#include <stddef.h>

/* The length of the request for the syscall's bytes from `done` on, of `len` in all. */
static inline size_t cuse_kernel_chunk(size_t misalign, size_t done, size_t len)
{
	size_t most = done == 0 ? CUSE_CHUNK - misalign % CUSE_PAGE : CUSE_CHUNK;
	return len - done < most ? len - done : most;
}

#endif
