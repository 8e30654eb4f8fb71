import { isHeader } from '../crypto/volume-header.js';

/** What a tape file holds, judged from its first record. */
export type ContentType = 'tar' | 'cpio' | 'dump' | 'encrypted' | 'unknown' | 'empty';

/** dump's header magics (protocols/dumprestore.h): OFS_MAGIC, NFS_MAGIC, FS_UFS2_MAGIC. */
const DUMP_MAGICS = new Set([60011, 60012, 0x19540119]);
/** dump's TP_BSIZE header, whose 256 32-bit words sum to CHECKSUM (84446). */
const DUMP_HEADER_BYTES = 1024;
const DUMP_CHECKSUM = 84446;

/**
 * The format of a tape file from its first record: tar (ustar magic at 257, or a header whose
 * checksum adds up: GNU tar's multi-volume continuation header and v7 headers have no magic), cpio
 * (ASCII 070707/070701/070702, or the binary 0x71c7 magic in a plausible header, either byte
 * order), dump (c_magic at 24 with a valid header checksum, either byte order), an encrypt stage
 * header, or unknown.
 */
export function detectContent(first: Uint8Array | undefined): ContentType {
  if (!first || first.length === 0) return 'empty';
  const record = Buffer.from(first.buffer, first.byteOffset, first.byteLength);
  if (isHeader(record)) return 'encrypted';
  if (record.length >= 263 && record.toString('latin1', 257, 262) === 'ustar') return 'tar';
  if (isTarHeader(record)) return 'tar';
  if (record.length >= 6 && /^0707(07|01|02)$/.test(record.toString('latin1', 0, 6))) return 'cpio';
  if (isBinaryCpio(record, 'LE') || isBinaryCpio(record, 'BE')) return 'cpio';
  if (record.length >= DUMP_HEADER_BYTES && (isDumpHeader(record, 'LE') || isDumpHeader(record, 'BE'))) return 'dump';
  return 'unknown';
}

/** A 512-byte tar header whose checksum (at 148, octal) is the sum of its bytes, itself as spaces. */
function isTarHeader(record: Buffer): boolean {
  if (record.length < 512 || record[0] === 0) return false;
  const field = /^ *([0-7]{1,7})[ \0]/.exec(record.toString('latin1', 148, 156));
  if (!field) return false;
  let sum = 8 * 0x20;
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += record[i]!;
  return sum === parseInt(field[1]!, 8);
}

/** The old binary cpio header: its magic, a file type in its mode, a NUL-terminated name after it. */
function isBinaryCpio(record: Buffer, order: 'LE' | 'BE'): boolean {
  const half = (at: number) => (order === 'LE' ? record.readUInt16LE(at) : record.readUInt16BE(at));
  if (record.length < 28 || half(0) !== 0o70707) return false;
  const type = half(6) & 0o170000;
  const nameSize = half(20);
  return CPIO_TYPES.has(type) && nameSize >= 2 && 26 + nameSize <= record.length && record[26 + nameSize - 1] === 0;
}
const CPIO_TYPES = new Set([0o140000, 0o120000, 0o100000, 0o060000, 0o040000, 0o020000, 0o010000]);

function isDumpHeader(record: Buffer, order: 'LE' | 'BE'): boolean {
  const word = (at: number) => (order === 'LE' ? record.readInt32LE(at) : record.readInt32BE(at));
  if (!DUMP_MAGICS.has(word(24))) return false;
  let sum = 0;
  for (let at = 0; at < DUMP_HEADER_BYTES; at += 4) sum = (sum + word(at)) | 0;
  return sum === DUMP_CHECKSUM;
}
