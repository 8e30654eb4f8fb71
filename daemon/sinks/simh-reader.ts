import type { FileHandle } from 'node:fs/promises';
import type { TapeObject } from '../drive/medium.js';
import { Errno, TapeError } from '../drive/tape-error.js';
import { decodeWord, TAPE_MARK_SIZE } from './simh-tap.js';

const CHUNK = 1 << 20;

export interface ObjectAt {
  object: TapeObject;
  /** Offset of the next object (unchanged for `blank`). */
  next: number;
  /** Data bytes of a record (known even when its data were not read). */
  length: number;
}

/** A SIMH image that is not well formed at byte `offset` (EIO to a reader of the drive). */
export class ImageCorrupt extends TapeError {
  constructor(
    label: string,
    readonly offset: number,
    readonly problem: string,
  ) {
    super(Errno.EIO, `image ${label}: ${problem} at byte ${offset}`);
  }
}

/**
 * Reads objects of a SIMH image forward and backward, through a read-ahead chunk so sequential
 * reads cost one syscall per megabyte. Returned record data are views of a chunk that is never
 * reused, so they stay valid.
 */
export class SimhReader {
  private chunk = Buffer.alloc(0);
  private chunkStart = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly label: string,
  ) {}

  /** Forget cached bytes (the file was written). */
  invalidate(): void {
    this.chunk = Buffer.alloc(0);
  }

  async objectAt(offset: number, end: number, withData: boolean): Promise<ObjectAt> {
    let at = offset;
    for (;;) {
      if (at + 4 > end) {
        if (at === end) return { object: { kind: 'blank' }, next: offset, length: 0 };
        throw this.corrupt(at, `${end - at} stray bytes after the last object`);
      }
      const word = decodeWord((await this.bytes(at, 4)).readUInt32LE(0));
      switch (word.kind) {
        case 'tape-mark':
          return { object: { kind: 'filemark' }, next: at + TAPE_MARK_SIZE, length: 0 };
        case 'end-of-medium':
          return { object: { kind: 'blank' }, next: offset, length: 0 };
        case 'gap':
          at += word.bytes;
          continue;
        case 'unsupported':
          throw this.corrupt(at, `unsupported length word 0x${word.word.toString(16)}`);
        case 'record': {
          const padded = word.length + (word.length & 1);
          const next = at + 8 + padded;
          if (next > end) throw this.corrupt(at, `record of ${word.length} bytes cut short (image truncated)`);
          const trailer = (await this.bytes(at + 4 + padded, 4)).readUInt32LE(0);
          if ((trailer & 0x0fffffff) !== word.length) {
            throw this.corrupt(at, `leading length ${word.length} and trailing length ${trailer} differ`);
          }
          if (word.bad) throw this.corrupt(at, 'record marked bad (class 8)');
          const data = withData ? await this.bytes(at + 4, word.length) : Buffer.alloc(0);
          return { object: { kind: 'record', data }, next, length: word.length };
        }
      }
    }
  }

  /** The object ending at `offset`: its kind and start offset. */
  async objectBefore(offset: number): Promise<{ kind: 'record' | 'filemark' | 'bot'; start: number }> {
    if (offset === 0) return { kind: 'bot', start: 0 };
    if (offset < 4) throw this.corrupt(offset, 'object boundary inside the first length word');
    const word = decodeWord((await this.bytes(offset - 4, 4)).readUInt32LE(0));
    if (word.kind === 'tape-mark') return { kind: 'filemark', start: offset - TAPE_MARK_SIZE };
    if (word.kind !== 'record') throw this.corrupt(offset - 4, 'no record or tape mark ends here');
    const start = offset - 8 - word.length - (word.length & 1);
    if (start < 0) throw this.corrupt(offset - 4, 'record length runs past the start of the image');
    return { kind: 'record', start };
  }

  /**
   * Checks that the image can be read to its end, cheaply in the usual case: if its last object
   * starts where its trailing length word says and ends exactly at `end`, it does. Otherwise (a
   * record torn by a crash, or a foreign image ending in gap or end-of-medium markers, or with bytes
   * after its end-of-medium marker) the image is read forward from the start, length words only,
   * and the first problem, if any, is thrown. A torn record whose cut data end in bytes that look
   * like whole objects (zero bytes read as tape marks) passes the quick check: a forward walk
   * (`tapeproxy image verify`) finds it.
   */
  async checkEnd(end: number): Promise<void> {
    if (end === 0 || (await this.lastObjectEndsAt(end))) return;
    for (let at = 0; ; ) {
      const r = await this.objectAt(at, end, false);
      if (r.object.kind === 'blank') return;
      at = r.next;
    }
  }

  private async lastObjectEndsAt(end: number): Promise<boolean> {
    try {
      const { start } = await this.objectBefore(end);
      return (await this.objectAt(start, end, false)).next === end;
    } catch (err) {
      if (err instanceof ImageCorrupt) return false;
      throw err;
    }
  }

  private async bytes(offset: number, length: number): Promise<Buffer> {
    const from = offset - this.chunkStart;
    if (from >= 0 && from + length <= this.chunk.length) return this.chunk.subarray(from, from + length);
    const chunk = Buffer.allocUnsafe(Math.max(length, CHUNK));
    const { bytesRead } = await this.fh.read(chunk, 0, chunk.length, offset);
    if (bytesRead < length) throw this.corrupt(offset, 'unexpected end of file');
    this.chunk = chunk.subarray(0, bytesRead);
    this.chunkStart = offset;
    return this.chunk.subarray(0, length);
  }

  private corrupt(offset: number, what: string): ImageCorrupt {
    return new ImageCorrupt(this.label, offset, what);
  }
}
