import { isHeader } from '../crypto/volume-header.js';

/** What a tape file holds, judged from its first record. */
export type ContentType = 'tar' | 'cpio' | 'dump' | 'encrypted' | 'unknown' | 'empty';

/** dump's header magics (protocols/dumprestore.h): OFS_MAGIC, NFS_MAGIC, FS_UFS2_MAGIC. */
const DUMP_MAGICS = new Set([60011, 60012, 0x19540119]);
/** dump's TP_BSIZE header, whose 256 32-bit words sum to CHECKSUM (84446). */
const DUMP_HEADER_BYTES = 1024;
const DUMP_CHECKSUM = 84446;

/**
 * The format of a tape file from its first record: tar (POSIX or GNU ustar magic at 257), cpio
 * (ASCII 070707/070701/070702 or the binary 0x71c7 magic, either byte order), dump (c_magic at 24
 * with a valid header checksum, either byte order), an encrypt stage header, or unknown.
 */
export function detectContent(first: Uint8Array | undefined): ContentType {
  if (!first || first.length === 0) return 'empty';
  const record = Buffer.from(first.buffer, first.byteOffset, first.byteLength);
  if (isHeader(record)) return 'encrypted';
  if (record.length >= 263 && record.toString('latin1', 257, 262) === 'ustar') return 'tar';
  if (record.length >= 6 && /^0707(07|01|02)$/.test(record.toString('latin1', 0, 6))) return 'cpio';
  if (record.length >= 2 && (record.readUInt16LE(0) === 0o70707 || record.readUInt16BE(0) === 0o70707)) return 'cpio';
  if (record.length >= DUMP_HEADER_BYTES && (isDumpHeader(record, 'LE') || isDumpHeader(record, 'BE'))) return 'dump';
  return 'unknown';
}

function isDumpHeader(record: Buffer, order: 'LE' | 'BE'): boolean {
  const word = (at: number) => (order === 'LE' ? record.readInt32LE(at) : record.readInt32BE(at));
  if (!DUMP_MAGICS.has(word(24))) return false;
  let sum = 0;
  for (let at = 0; at < DUMP_HEADER_BYTES; at += 4) sum = (sum + word(at)) | 0;
  return sum === DUMP_CHECKSUM;
}
