/**
 * Records on their way to a worker thread: copied back to back into one shared buffer, so a batch
 * crosses in one message, and the buffer goes back to a pool once the worker answered (no
 * allocation per record). The copy is needed because the caller's record buffers are reused.
 * Shared, not transferred: a buffer handed back from a worker is new external memory to V8 each
 * time, and every 64 MB of it forced a full collection on the main thread.
 */
export class RecordBatch<M> {
  readonly lengths: number[] = [];
  readonly meta: M[] = [];
  private used = 0;

  constructor(readonly chunk: SharedArrayBuffer) {}

  get bytes(): number {
    return this.used;
  }

  fits(length: number): boolean {
    return this.used + length <= this.chunk.byteLength;
  }

  add(record: Uint8Array, meta: M): void {
    new Uint8Array(this.chunk, this.used, record.length).set(record);
    this.used += record.length;
    this.lengths.push(record.length);
    this.meta.push(meta);
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

  add(record: Uint8Array, meta: M): void {
    if (this.current && !this.current.fits(record.length)) this.flush();
    this.current ??= new RecordBatch(this.chunks.take(record.length));
    this.current.add(record, meta);
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
