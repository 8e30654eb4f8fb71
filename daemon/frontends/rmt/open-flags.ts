import { Errno, TapeError } from '../../drive/tape-error.js';
import type { Access } from '../../drive/pseudo-drive.js';

/** Linux x86_64 open(2) flag values, for the numeric form. */
const O_ACCMODE = 0o3;
const O_NONBLOCK = 0o4000;

const SYMBOLS: Record<string, number> = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: O_NONBLOCK,
  NDELAY: O_NONBLOCK,
  SYNC: 0o4010000,
  DSYNC: 0o10000,
  LARGEFILE: 0,
};

const ACCESS: Access[] = ['read', 'write', 'read-write'];

/**
 * The flags line of an rmt `O` request, in every form clients send (reference section 3.2):
 * a number (`1`), symbols (`O_WRONLY|O_CREAT`, `O_` optional), or both (`1 O_WRONLY|O_CREAT`),
 * where the symbols win. Of a bare number only the access mode and O_NONBLOCK are trusted: other
 * bits differ between systems.
 */
export function parseOpenFlags(text: string): { access: Access; nonBlocking: boolean } {
  const m = /^\s*(\d+)?\s*([A-Za-z_|\s]*?)\s*$/.exec(text);
  if (!m || (m[1] === undefined && !m[2])) throw bad(text, 'expected a number and/or O_ flags');
  let flags: number;
  if (m[2]) {
    flags = 0;
    for (const name of m[2].split('|').map((s) => s.trim())) {
      const value = SYMBOLS[name.replace(/^O_/, '')];
      if (value === undefined) throw bad(text, `unknown flag '${name}'`);
      flags |= value;
    }
  } else {
    flags = Number(m[1]);
  }
  const access = ACCESS[flags & O_ACCMODE];
  if (!access) throw bad(text, 'access mode 3 is not a valid open mode');
  return { access, nonBlocking: (flags & O_NONBLOCK) !== 0 };
}

function bad(text: string, why: string): TapeError {
  return new TapeError(Errno.EINVAL, `rmt: open flags '${text}': ${why}`);
}
