/**
 * An error a tape operation returns to the writer, as the Linux st driver would: an errno and a
 * message for logs. Front ends turn `errno` into -1/errno (CUSE, FUSE), `E<errno>` (rmt) or an
 * error reply (gRPC).
 */

/** Linux errno values (asm-generic/errno-base.h, errno.h), the only ones the drive returns. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  EROFS: 30,
  ENOSYS: 38,
  EOVERFLOW: 75,
  ENOMEDIUM: 123,
  ECANCELED: 125,
} as const;

export type ErrnoName = keyof typeof Errno;

const names = new Map<number, ErrnoName>(
  Object.entries(Errno).map(([name, value]) => [value, name as ErrnoName]),
);

export function errnoName(errno: number): string {
  return names.get(errno) ?? `errno ${errno}`;
}

export class TapeError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(`${errnoName(errno)}: ${message}`);
    this.name = 'TapeError';
  }
}

export function tapeError(name: ErrnoName, message: string): TapeError {
  return new TapeError(Errno[name], message);
}
