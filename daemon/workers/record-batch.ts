import type { Lease } from '../drive/record-pool.js';

/** A batch as it crosses to a worker: record i is `lengths[i]` bytes at `offsets[i]` of `buffers[i]`. */
export interface BatchRecords {
  buffers: SharedArrayBuffer[];
  offsets: number[];
  lengths: number[];
}

/** Record `i` of a batch, on the worker's side. */
export function recordAt(batch: BatchRecords, i: number): Uint8Array {
  return new Uint8Array(batch.buffers[i]!, batch.offsets[i], batch.lengths[i]);
}

/** Whether a worker reads the record where it is: leased (its memory kept for it) and shared. */
function readInPlace(record: Uint8Array, lease: Lease | undefined): lease is Lease {
  return lease !== undefined && record.buffer instanceof SharedArrayBuffer;
}

/**
 * Records on their way to a worker thread, crossing in one message (no allocation per record).
 * A record in shared memory that the caller leases (a pooled record from a front end) is read by
 * the worker where it is, held until the worker answered: copying it cost the main thread as much
 * as reading it from the socket. Any other is copied into the batch's own shared chunk, since its
 * buffer is reused or not shared; the chunk goes back to its pool once the worker answered.
 * Shared, not transferred: a buffer handed back from a worker is new external memory to V8 each
 * time, and every 64 MB of it forced a full collection on the main thread.
 */
export class RecordBatch<M> {
  readonly meta: M[] = [];
  private readonly records: BatchRecords = { buffers: [], offsets: [], lengths: [] };
  private readonly releases: (() => void)[] = [];
  private chunk: SharedArrayBuffer | undefined;
  private copied = 0;
  private total = 0;

  constructor(
    private readonly chunks: ChunkPool,
    private readonly maxBytes = chunks.chunkBytes,
  ) {}

  get bytes(): number {
    return this.total;
  }

  get lengths(): number[] {
    return this.records.lengths;
  }

  /** What the worker is sent. */
  get message(): BatchRecords {
    return this.records;
  }

  /**
   * Whether a record of `length` bytes may join: a batch holds at most `maxBytes`, of which a
   * chunk's worth copied (or one larger record on its own).
   */
  fits(length: number, inPlace: boolean): boolean {
    return this.total + length <= this.maxBytes && (inPlace || this.copied + length <= this.chunks.chunkBytes);
  }

  add(record: Uint8Array, meta: M, lease?: Lease): void {
    if (readInPlace(record, lease)) {
      this.releases.push(lease.hold());
      this.place(record.buffer as SharedArrayBuffer, record.byteOffset, record.length); // shared, as readInPlace checked
    } else {
      const chunk = (this.chunk ??= this.chunks.take(record.length));
      new Uint8Array(chunk, this.copied, record.length).set(record);
      this.place(chunk, this.copied, record.length);
      this.copied += record.length;
    }
    this.meta.push(meta);
  }

  /** Lets go of the records: once the worker answered (or the batch is dropped). */
  done(): void {
    for (const release of this.releases.splice(0)) release();
    if (this.chunk) this.chunks.give(this.chunk);
    this.chunk = undefined;
  }

  private place(buffer: SharedArrayBuffer, offset: number, length: number): void {
    this.records.buffers.push(buffer);
    this.records.offsets.push(offset);
    this.records.lengths.push(length);
    this.total += length;
  }
}

/** Shared buffers of one size, reused; a record larger than that gets a buffer of its own. */
export class ChunkPool {
  private readonly free: SharedArrayBuffer[] = [];

  constructor(
    readonly chunkBytes = 2 ** 20,
    /** Enough for the batches of a 16 MiB write-behind window in flight. */
    private readonly keep = 16,
  ) {}

  take(minBytes: number): SharedArrayBuffer {
    if (minBytes > this.chunkBytes) return new SharedArrayBuffer(minBytes);
    return this.free.pop() ?? new SharedArrayBuffer(this.chunkBytes);
  }

  /** Back to the pool: only once no worker uses it any more (it answered). */
  give(chunk: SharedArrayBuffer): void {
    if (chunk.byteLength === this.chunkBytes && this.free.length < this.keep) this.free.push(chunk);
  }
}

/**
 * Collects records into batches: a batch goes to `send` when the next record does not fit, when
 * `flush` is called, or at the end of the event-loop turn (setImmediate), so the records of one
 * socket read travel together and a lone record does not wait; or, with `gatherMs`, that much later,
 * for work nobody waits for record by record (each message wakes the worker, about 100 µs of this
 * thread's time on these machines: at 10 KiB records one per socket read cost more than hashing).
 *
 * With `busy`, a batch due at the end of a turn keeps growing instead while `busy()` holds (the
 * worker has enough to do), until the owner calls `ready`: the slower the worker, the larger its
 * batches, so the messages cost less exactly when the worker is the bottleneck.
 */
export class Batcher<M> {
  private current: RecordBatch<M> | undefined;
  private timer: { cancel(): void } | undefined;

  constructor(
    private readonly chunks: ChunkPool,
    private readonly send: (batch: RecordBatch<M>) => void,
    private readonly options: { gatherMs?: number; maxBytes?: number; busy?: () => boolean } = {},
  ) {}

  /** `lease`: the record may be read where it is, held until the batch is done (see RecordBatch). */
  add(record: Uint8Array, meta: M, lease?: Lease): void {
    if (this.current && !this.current.fits(record.length, readInPlace(record, lease))) this.flush();
    this.current ??= new RecordBatch(this.chunks, this.options.maxBytes);
    this.current.add(record, meta, lease);
    this.timer ??= this.later(() => {
      this.timer = undefined;
      if (!this.options.busy?.()) this.flush();
    });
  }

  /** No longer busy (see `busy`): a batch held back goes now. */
  ready(): void {
    if (this.current && !this.options.busy?.()) this.flush();
  }

  flush(): void {
    this.timer?.cancel();
    this.timer = undefined;
    const batch = this.current;
    this.current = undefined;
    if (batch) this.send(batch);
  }

  /** Drops what was not sent (after a failure or a volume change). */
  discard(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.current?.done();
    this.current = undefined;
  }

  private later(run: () => void): { cancel(): void } {
    if (this.options.gatherMs) {
      const t = setTimeout(run, this.options.gatherMs);
      return { cancel: () => clearTimeout(t) };
    }
    const i = setImmediate(run);
    return { cancel: () => clearImmediate(i) };
  }
}
