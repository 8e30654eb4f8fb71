import { join } from 'node:path';
import { type BufferHome, PooledRecord } from '../../drive/record-pool.js';
import { loadAddon } from '../../native-addon.js';
import { packageRoot } from '../../package-root.js';

/** The first page of the ring is its header; `released` (u64) is its first field. */
export const RING_HEADER_BYTES = 4096;
/**
 * A drive's ring. Records stay in it from the shim's copy until the last sink wrote them and the
 * hashing read them; when it is full, records cross the socket as before. In the bench (Cdd, 256
 * KiB records) 32 MiB took 2.03-2.21 CPU s/GiB against 2.45-2.66 with 64 MiB and 2.38-2.65 without a
 * ring: a smaller ring is reused while its bytes are still in the CPU's caches.
 */
export const RING_BYTES = 32 * 2 ** 20;
/** As the shim aligns records (cuse-shim/record-ring.h). */
const RING_ALIGN = 4096;

/** Where the build puts the addon that makes the ring's memory (native/shared-ring.cc). */
export const RING_ADDON_PATH = join(packageRoot(), 'daemon', 'frontends', 'shim', 'native', 'build', 'shared-ring.node');

type CreateShared = (bytes: number) => { fd: number; memory: SharedArrayBuffer };

/** A record the shim put in the ring; its buffer comes home once every sink and the hashing let it go. */
interface Placed extends BufferHome {
  end: number;
  released: boolean;
}

/** A record frame that does not fit the ring's rules: the connection cannot go on (FrameError). */
export class RingError extends Error {}

/**
 * The daemon's side of a shim's record ring (proto/shim-frames.md, "Record ring"). The shim puts a
 * record in this shared memory (the kernel reads it there in FUSE mode) and sends where it lies; here it becomes a record like a
 * pooled one, a view of the ring, which goes back to the shim once every hold on it is released:
 * records are let go in the order they came (`released` only moves forward over records all of
 * whose holds are gone), so the shim sees one position and never writes over a record still held.
 *
 * The memory is a SharedArrayBuffer, so hashing and encryption workers read records where they are,
 * as they do pooled ones.
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

/** Loaded at the first ring (null: not there). */
let addon: { create: CreateShared } | null | undefined;

/**
 * A new ring of `bytes` (rounded up to whole pages) and its descriptor, which the shim opens as
 * /proc/PID/fd/N and the caller closes once the shim has exited; undefined where the addon is not built.
 */
export function createRecordRing(bytes: number): { ring: RecordRing; fd: number } | undefined {
  addon ??= loadAddon<{ create: CreateShared }>(RING_ADDON_PATH, 'shim records go on the socket') ?? null;
  if (!addon) return undefined;
  const { fd, memory } = addon.create(RING_HEADER_BYTES + Math.ceil(bytes / RING_ALIGN) * RING_ALIGN);
  return { ring: new RecordRing(memory), fd };
}

