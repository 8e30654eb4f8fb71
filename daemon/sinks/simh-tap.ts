/**
 * The SIMH magnetic tape image format (.tap): each record is a 32-bit little-endian length word,
 * the data padded to an even length, and the same length word again; a 0 word is a tape mark.
 * The top nibble of a length word is its class: 0 good data, 8 bad data; 0xF words are markers
 * (0xFFFFFFFF end of medium, 0xFFFFFFFE erase gap, 0xFFFEFFFF half gap).
 * Reference: SIMH "magtape.pdf" / sim_tape.h (MTR_TMK, MTR_EOM, MTR_GAP, MTR_FHGAP, MTR_MAXLEN).
 */

export const TAPE_MARK = 0x00000000;
export const END_OF_MEDIUM = 0xffffffff;
export const ERASE_GAP = 0xfffffffe;
export const HALF_GAP = 0xfffeffff;
export const MAX_RECORD_LENGTH = 0x0fffffff;
const CLASS_BAD_DATA = 0x8;

export type Word =
  | { kind: 'tape-mark' }
  | { kind: 'end-of-medium' }
  | { kind: 'gap'; bytes: number }
  | { kind: 'record'; length: number; bad: boolean }
  | { kind: 'unsupported'; word: number };

export function decodeWord(word: number): Word {
  if (word === TAPE_MARK) return { kind: 'tape-mark' };
  if (word === END_OF_MEDIUM) return { kind: 'end-of-medium' };
  if (word === ERASE_GAP) return { kind: 'gap', bytes: 4 };
  if (word === HALF_GAP) return { kind: 'gap', bytes: 2 };
  const cls = word >>> 28;
  const length = word & MAX_RECORD_LENGTH;
  if ((cls === 0 || cls === CLASS_BAD_DATA) && length > 0) {
    return { kind: 'record', length, bad: cls === CLASS_BAD_DATA };
  }
  return { kind: 'unsupported', word };
}

/** Bytes one record of `length` data bytes takes in the image. */
export function framedSize(length: number): number {
  return 8 + length + (length & 1);
}

export const TAPE_MARK_SIZE = 4;

/** The leading and trailing length words of a record, as one 8-byte buffer (0-4 and 4-8). */
export function lengthWords(length: number): Buffer {
  const words = Buffer.allocUnsafe(8);
  words.writeUInt32LE(length, 0);
  words.writeUInt32LE(length, 4);
  return words;
}

export const PAD_BYTE = Buffer.alloc(1);
export const TAPE_MARK_BYTES = Buffer.alloc(TAPE_MARK_SIZE);
export const END_OF_MEDIUM_BYTES = Buffer.alloc(4, 0xff);
