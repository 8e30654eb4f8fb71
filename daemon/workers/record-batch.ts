import type { Lease } from '../drive/record-pool.js';

/** A batch's records as a worker gets them: each `lengths[i]` bytes at `offsets[i]` of `buffers[i]`. */
export interface SharedRecords {
  buffers: SharedArrayBuffer[];
  offsets: number[];
  lengths: number[];
}

/** The records of a batch, in the worker. */
export function recordsOf(batch: SharedRecords): Uint8Array[] {
  return batch.lengths.map((length, i) => new Uint8Array(batch.buffers[i]!, batch.offsets[i], length));
}

/**
 * Records on their way to a worker thread, crossing in one message. A pooled record in shared
 * memory (a large one, RecordPool) goes as it is, held until the worker answered (copying it was a tenth of the daemon's
 * time at 256 KiB records); any other is copied into one shared chunk, back to back, because its
 * buffer may be reused. The chunk goes back to a pool once the worker answered.
 * Shared, not transferred: a buffer handed back from a worker is new external memory to V8 each
 * time, and every 64 MB of it forced a full collection on the main thread.
 */
export class RecordBatch<M> implements SharedRecords {
  readonly buffers: SharedArrayBuffer[] = [];
  readonly offsets: number[] = [];
  readonly lengths: number[] = [];
  readonly meta: M[] = [];
  private chunk: SharedArrayBuffer | undefined;
  private copied = 0;
  private total = 0;
  private releases: (() => void)[] = [];

  constructor(private readonly chunks: ChunkPool) {}

  get bytes(): number {
    return this.total;
  }

  /** A batch holds a chunk's worth of bytes, or one record of any size. */
  fits(length: number): boolean {
    return this.lengths.length === 0 || this.total + length <= this.chunks.chunkBytes;
  }

  add(record: Uint8Array, meta: M, lease?: Lease): void {
    if (lease && record.buffer instanceof SharedArrayBuffer) {
      this.releases.push(lease.hold());
      this.buffers.push(record.buffer);
      this.offsets.push(record.byteOffset);
    } else {
      const chunk = (this.chunk ??= this.chunks.take(record.length));
      new Uint8Array(chunk, this.copied, record.length).set(record);
      this.buffers.push(chunk);
      this.offsets.push(this.copied);
      this.copied += record.length;
    }
    this.lengths.push(record.length);
    this.meta.push(meta);
    this.total += record.length;
  }

  /** Lets the records' memory be reused: once no worker reads it any more (it answered). */
  release(): void {
    if (this.chunk) this.chunks.give(this.chunk);
    this.chunk = undefined;
    for (const release of this.releases) release();
    this.releases = [];
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
 */
export class Batcher<M> {
  private current: RecordBatch<M> | undefined;
  private timer: { cancel(): void } | undefined;

  constructor(
    private readonly chunks: ChunkPool,
    private readonly send: (batch: RecordBatch<M>) => void,
    private readonly gatherMs = 0,
  ) {}

  add(record: Uint8Array, meta: M, lease?: Lease): void {
    if (this.current && !this.current.fits(record.length)) this.flush();
    this.current ??= new RecordBatch(this.chunks);
    this.current.add(record, meta, lease);
    this.timer ??= this.later(() => {
      this.timer = undefined;
      this.flush();
    });
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
    this.current?.release();
    this.current = undefined;
  }

  private later(run: () => void): { cancel(): void } {
    if (this.gatherMs > 0) {
      const t = setTimeout(run, this.gatherMs);
      return { cancel: () => clearTimeout(t) };
    }
    const i = setImmediate(run);
    return { cancel: () => clearImmediate(i) };
  }
}
