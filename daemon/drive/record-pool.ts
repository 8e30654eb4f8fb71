import { LARGEST_WINDOW_BYTES } from './write-behind-window.js';

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

/** Shared memory comes in slabs of this size, each cut into buffers of one capacity at a time. */
const SLAB_BYTES = MAX_POOLED;

/**
 * Twice the largest write-behind window: a window of records queued in the sinks, as much again
 * waiting to be hashed (held where they are, not copied). Too tight a bound costs speed: sinks hand
 * records back in bursts (a vectored write completes), and with free buffers bounded by half a
 * window the front end took new ones moments later, 334 over 3 GiB of 256 KiB records against 97
 * with a whole window (new memory, which makes V8 collect garbage).
 */
const SHARED_BYTES = 2 * LARGEST_WINDOW_BYTES;

/** A slab of shared memory, cut into buffers of one capacity; recut to another once all are free. */
class Slab implements BufferHome {
  capacity = 0;
  free: Buffer[] = [];
  private count = 0;
  /** When a buffer was last taken from it, on the pool's counter of takes. */
  lastUse = 0;

  constructor(readonly memory: SharedArrayBuffer) {}

  get unused(): boolean {
    return this.free.length === this.count;
  }

  give(backing: Buffer): void {
    this.free.push(backing);
  }

  cut(capacity: number): void {
    this.capacity = capacity;
    this.count = this.memory.byteLength / capacity;
    this.free = Array.from({ length: this.count }, (_, i) => Buffer.from(this.memory, i * capacity, capacity));
  }
}

/**
 * Record buffers reused instead of allocated. A fresh buffer per record made V8 collect garbage
 * for most of the daemon's time at 256 KiB records (every 64 MB of new external memory forces a
 * full collection); a reused one costs nothing. A buffer returns to the pool when every hold on its
 * record is released.
 *
 * The buffers are shared memory, so that worker threads (manifest hashing, encryption) read a
 * record where it is instead of a copy (RecordBatch): that saved the main thread 0.15 CPU s/GiB at
 * 256 KiB records. V8 does not count shared memory towards collecting garbage, so shared memory
 * the pool let go would live until some later full collection (tried twice with buffers let go as
 * before: the bench's daemon peaked at 626 MiB, once at 2.8 GiB). So the pool never lets it go: it
 * holds at most `maxSharedBytes` of it, in slabs cut into buffers of one capacity, and a slab whose
 * buffers are all free is cut anew for another capacity (the one idle longest goes first: a backup
 * of 10 KiB records must not leave the next one, of 256 KiB records, without buffers). Beyond the
 * bound, and for records too large to pool, a record gets plain memory, which V8 counts and frees.
 */
export class RecordPool {
  private readonly slabs: Slab[] = [];
  private clock = 0;

  constructor(private readonly maxSharedBytes = SHARED_BYTES) {}

  /** A record of `length` bytes (contents undefined), not held yet. */
  take(length: number): PooledRecord {
    if (length > MAX_POOLED) return new PooledRecord(Buffer.allocUnsafeSlow(length), length, undefined);
    const capacity = Math.max(MIN_POOLED, 2 ** Math.ceil(Math.log2(Math.max(1, length))));
    const slab = this.slabFor(capacity);
    if (!slab) return new PooledRecord(Buffer.allocUnsafeSlow(length), length, undefined);
    slab.lastUse = ++this.clock;
    return new PooledRecord(slab.free.pop()!, length, slab);
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

  /** A slab with a free buffer of `capacity`: one cut for it, a new one, or one recut; none past the bound. */
  private slabFor(capacity: number): Slab | undefined {
    const cut = this.slabs.find((s) => s.capacity === capacity && s.free.length > 0);
    if (cut) return cut;
    let slab: Slab | undefined;
    if ((this.slabs.length + 1) * SLAB_BYTES <= this.maxSharedBytes) {
      slab = new Slab(new SharedArrayBuffer(SLAB_BYTES));
      this.slabs.push(slab);
    } else {
      for (const s of this.slabs) if (s.unused && (!slab || s.lastUse < slab.lastUse)) slab = s;
    }
    slab?.cut(capacity);
    return slab;
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
