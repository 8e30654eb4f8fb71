import { scryptSync } from 'node:crypto';

/**
 * Keeps glibc's malloc from handing freed memory back to the kernel after every collection.
 *
 * Node's ciphers return a new buffer per update, so the encryption worker allocates as many bytes
 * as it seals, and a scavenge frees them in one go. With glibc's default trim threshold (128 KiB)
 * each such free shrank the worker's heap, and the next batch took the pages back one fault at a
 * time, zeroed: after a stream of small records had left the thresholds at their defaults, sealing
 * cost 2.6 CPU s/GiB instead of 0.7, and a drive with an encrypted copy ran at half speed (perf:
 * memset, sysmalloc, page faults in the worker). glibc raises the thresholds itself when a large
 * block it had mapped is freed (mallopt(3): the mmap threshold becomes that block's size and the
 * trim threshold twice it), which happened on some runs and not on others. This makes it happen
 * at start: scrypt allocates its 16 MiB work area with malloc and frees it before returning.
 * glibc keeps the thresholds where they went (32 MiB of free memory at the top of a heap before it
 * trims); GLIBC_TUNABLES=glibc.malloc.trim_threshold=... set by an administrator wins (glibc then
 * leaves the thresholds fixed), and on another libc this costs a tenth of a second, nothing more.
 */
export function raiseMallocThresholds(): void {
  scryptSync('', '', 1, { N: 2 ** 14, r: 8, p: 1 }); // 128 * N * r bytes
}
