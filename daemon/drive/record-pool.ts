import { writeBehindWindow } from './write-behind-window.js';

/**
 * A hold on a record's memory. Records read from the shim live in reused buffers (RecordPool), as
 * do the encrypt stage's sealed batches: a sink that keeps a record after its write call returns
 * holds it, and lets go once written (or, for a grpc copy, confirmed).
 */
export interface Lease {
  /** Keeps the record's memory from reuse until the returned function is called (once). */
  hold(): () => void;
}

/** Where a pooled buffer goes back to once its last hold is released. */
export interface BufferHome {
  give(backing: Buffer): void;
}

/** Buffers are pooled by capacity, powers of two from MIN_POOLED to MAX_POOLED. */
const MIN_POOLED = 16 * 1024;
const MAX_POOLED = 2 * 2 ** 20;

/**
 * As much as the largest write-behind window. With half of it, 3 GiB of 256 KiB records through two
 * image copies allocated 334 buffers, 97 with this: sinks hand records back in bursts (a vectored
 * write completes), more than the pool kept, and the front end took them anew moments later (new
 * external memory, which makes V8 collect garbage).
 */
const KEEP_FREE_BYTES = writeBehindWindow(undefined).bytes;

/**
 * Record buffers reused instead of allocated. A fresh buffer per record made V8 collect garbage
 * for most of the daemon's time at 256 KiB records (every 64 MB of new external memory forces a
 * full collection); a reused one costs nothing. A buffer returns to the pool when every hold on its
 * record is released; the pool keeps at most `maxFreeBytes` of them, so memory stays bounded.
 * When it is full, buffers of the size idle longest make room: a backup of 10 KiB records left the
 * pool full of them, and the next one, of 256 KiB records, ran at half speed, allocating every record.
 */
export class RecordPool implements BufferHome {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;
  /** When each capacity was last taken or given, on a counter of takes and gives. */
  private readonly lastUse = new Map<number, number>();
  private clock = 0;

  constructor(private readonly maxFreeBytes = KEEP_FREE_BYTES) {}

  /** A record of `length` bytes (contents undefined), not held yet. */
  take(length: number): PooledRecord {
    if (length > MAX_POOLED) return new PooledRecord(Buffer.allocUnsafeSlow(length), length, undefined);
    const capacity = Math.max(MIN_POOLED, 2 ** Math.ceil(Math.log2(Math.max(1, length))));
    this.lastUse.set(capacity, ++this.clock);
    const reused = this.free.get(capacity)?.pop();
    if (reused) this.freeBytes -= capacity;
    return new PooledRecord(reused ?? Buffer.allocUnsafeSlow(capacity), length, this);
  }

  /**
   * `bytes` as a record of this pool, for bytes the caller got in fresh memory (a grpc-js message):
   * copied into a pooled buffer, so that the fresh memory dies young instead of waiting with the
   * record for a full collection; too large to pool, kept where they are (a copy would be as fresh).
   */
  copyOf(bytes: Uint8Array): PooledRecord {
    if (bytes.length > MAX_POOLED) return new PooledRecord(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), bytes.length, undefined);
    const record = this.take(bytes.length);
    record.data.set(bytes);
    return record;
  }

  /** @internal from PooledRecord, once its last hold is released */
  give(backing: Buffer): void {
    const capacity = backing.length;
    this.lastUse.set(capacity, ++this.clock);
    while (this.freeBytes + capacity > this.maxFreeBytes && this.dropIdlest(capacity));
    if (this.freeBytes + capacity > this.maxFreeBytes) return; // the GC takes it
    let list = this.free.get(capacity);
    if (!list) this.free.set(capacity, (list = []));
    list.push(backing);
    this.freeBytes += capacity;
  }

  /** Leaves one free buffer of the capacity idle longest (other than `keep`) to the GC; false if none. */
  private dropIdlest(keep: number): boolean {
    let idlest: number | undefined;
    for (const [capacity, list] of this.free) {
      if (capacity === keep || list.length === 0) continue;
      if (idlest === undefined || this.lastUse.get(capacity)! < this.lastUse.get(idlest)!) idlest = capacity;
    }
    if (idlest === undefined) return false;
    this.free.get(idlest)!.pop();
    this.freeBytes -= idlest;
    return true;
  }
}

export class PooledRecord implements Lease {
  /** The record's bytes: a view of the pooled buffer. */
  readonly data: Buffer;
  private holds = 0;
  private retired = false;

  constructor(
    private readonly backing: Buffer,
    length: number,
    private readonly pool: BufferHome | undefined,
  ) {
    this.data = backing.subarray(0, length);
  }

  hold(): () => void {
    // Held again after its memory went back to the pool: whoever holds it would read another record.
    if (this.retired) throw new Error('a record was held after its buffer was reused');
    this.holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.holds > 0) return;
      this.retired = true;
      this.pool?.give(this.backing);
    };
  }
}
