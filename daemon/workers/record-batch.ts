import type { Lease } from '../drive/record-pool.js';

/** A record smaller than this is copied into the batch even when it could be shared. */
const SHARE_MIN = 64 * 1024;

/**
 * Records on their way to a worker thread: copied back to back into one shared buffer, so a batch
 * crosses in one message, and the buffer goes back to a pool once the worker answered (no
 * allocation per record). The copy is needed because the caller's record buffers are reused,
 * unless the record lives in shared memory and the caller holds it for the batch (a lease): then
 * the worker reads it where it is (`views`) and the batch lets go of it with `release`.
 * Shared, not transferred: a buffer handed back from a worker is new external memory to V8 each
 * time, and every 64 MB of it forced a full collection on the main thread.
 */
export class RecordBatch<M> {
  readonly lengths: number[] = [];
  readonly meta: M[] = [];
  /** Per record, its shared view, or null when it was copied into `chunk` (next after the previous copied one). */
  readonly views: (Uint8Array | null)[] = [];
  private readonly releases: (() => void)[] = [];
  /** Bytes copied into `chunk`. */
  private used = 0;
  private sharedBytes = 0;

  constructor(readonly chunk: SharedArrayBuffer) {}

  /** Of every record, shared or copied. */
  get bytes(): number {
    return this.used + this.sharedBytes;
  }

  fits(length: number): boolean {
    return this.used + length <= this.chunk.byteLength;
  }

  add(record: Uint8Array, meta: M): void {
    new Uint8Array(this.chunk, this.used, record.length).set(record);
    this.used += record.length;
    this.lengths.push(record.length);
    this.meta.push(meta);
    this.views.push(null);
  }

  /** A record the worker reads in place; `release` once it is done with it. */
  share(record: Uint8Array, meta: M, release: () => void): void {
    this.lengths.push(record.length);
    this.meta.push(meta);
    this.views.push(record);
    this.releases.push(release);
    this.sharedBytes += record.length;
  }

  /** Lets go of the shared records (the worker answered, or the batch was dropped). */
  release(): void {
    for (const release of this.releases.splice(0)) release();
  }
}

/** Whether a worker can read this record where it is, held by its lease. */
function shareable(record: Uint8Array, lease: Lease | undefined): lease is Lease {
  return lease !== undefined && record.length >= SHARE_MIN && record.buffer instanceof SharedArrayBuffer;
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

  /** With a lease, a large record in shared memory is held instead of copied (see RecordBatch). */
  add(record: Uint8Array, meta: M, lease?: Lease): void {
    if (shareable(record, lease)) {
      this.current ??= new RecordBatch(this.chunks.take(0));
      this.current.share(record, meta, lease.hold());
    } else {
      if (this.current && !this.current.fits(record.length)) this.flush();
      this.current ??= new RecordBatch(this.chunks.take(record.length));
      this.current.add(record, meta);
    }
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
    if (this.current) this.chunks.give(this.current.chunk);
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
