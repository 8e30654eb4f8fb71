import { type BufferHome, PooledRecord } from './record-pool.js';

/** The first page of the ring is its header; `released` (u64) is its first field. */
export const RING_HEADER_BYTES = 4096;
/** As the shim aligns records (cuse-shim/record-ring.h), and a ring's size is a multiple of. */
export const RING_ALIGN = 4096;

/** A record in the ring; its buffer comes home once every sink and the hashing let it go. */
interface Placed extends BufferHome {
  end: number;
  released: boolean;
}

/** A record frame that does not fit the ring's rules: the connection cannot go on (FrameError). */
export class RingError extends Error {}

/**
 * Records in shared memory, one after another round a ring, each a view of the ring like a pooled
 * record, whose space comes back once every hold on it is released: in the order the records came
 * (`released` only moves forward over records all of whose holds are gone), so whoever writes the
 * records sees one position and never writes over a record still held.
 *
 * A shim's record ring (proto/shim-frames.md, "Record ring"): the shim puts a record in the ring
 * (the kernel reads it there in FUSE mode) and sends where it lies (`recordAt`). The encrypt stage's
 * sealed batches: the stage takes the next free space (`take`) and a worker seals records into it.
 * The memory is a SharedArrayBuffer, so hashing and encryption workers read records where they are.
 */
export class RecordRing {
  readonly size: number;
  private readonly data: Buffer;
  private readonly releasedCell: BigUint64Array;
  private readonly placed: Placed[] = [];
  private released = 0;
  /** The end of the last record placed: the next starts at or after it. */
  private lastEnd = 0;

  constructor(readonly memory: SharedArrayBuffer) {
    if (memory.byteLength < RING_HEADER_BYTES + RING_ALIGN || memory.byteLength % RING_ALIGN !== 0) throw new RangeError('a record ring is whole pages, two at least');
    this.size = memory.byteLength - RING_HEADER_BYTES;
    this.data = Buffer.from(memory, RING_HEADER_BYTES);
    this.releasedCell = new BigUint64Array(memory, 0, 1);
  }

  /** Records placed and not yet let go. */
  get held(): number {
    return this.placed.length;
  }

  /** The record of `length` bytes at ring position `start`; RingError if the shim broke the rules. */
  recordAt(start: number, length: number): PooledRecord {
    const offset = start % this.size;
    if (!Number.isSafeInteger(start) || length <= 0 || start < this.lastEnd || offset + length > this.size || start + length - this.released > this.size) {
      throw new RingError(`a record of ${length} bytes at ring position ${start} is outside the ring's free space (${this.released} to ${this.released + this.size}, next from ${this.lastEnd})`);
    }
    const placed: Placed = { end: start + length, released: false, give: () => this.release(placed) };
    this.placed.push(placed);
    this.lastEnd = placed.end;
    return new PooledRecord(this.data.subarray(offset, offset + length), length, placed);
  }

  /**
   * The next `length` bytes after the last record (at the next page, not across the ring's end) as
   * a record; undefined while the ring has no such room.
   */
  take(length: number): PooledRecord | undefined {
    let start = Math.ceil(this.lastEnd / RING_ALIGN) * RING_ALIGN;
    if (length > this.size) return undefined;
    if ((start % this.size) + length > this.size) start += this.size - (start % this.size);
    if (this.placed.length === 0) this.released = start; // nothing held: a skipped end is free too
    if (start + length - this.released > this.size) return undefined;
    return this.recordAt(start, length);
  }

  private release(placed: Placed): void {
    placed.released = true;
    let moved = false;
    while (this.placed[0]?.released) {
      this.released = this.placed.shift()!.end;
      moved = true;
    }
    // Sequentially consistent: every read of these records happened before the shim sees them free.
    if (moved) Atomics.store(this.releasedCell, 0, BigInt(this.released));
  }
}
