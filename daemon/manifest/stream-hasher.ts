import type { Lease } from '../drive/record-pool.js';
import type { HashName } from './file-hash.js';
import { ChunkPool, Batcher, type BatchRecords, type RecordBatch } from '../workers/record-batch.js';
import { WorkerClient } from '../workers/worker-client.js';
import { workerScript } from '../workers/worker-script.js';
import { WriteQueue } from '../sinks/write-queue.js';

export type HashRequest =
  | ({ op: 'records'; hash: HashName; streams: number[] } & BatchRecords)
  | { op: 'snapshot'; hash: HashName; streams: number[] }
  | { op: 'drop'; streams: number[] };

export type HashReply = { snapshots?: Snapshot[] };

export interface Snapshot {
  stream: number;
  hash: HashName;
  digest: string;
  groups: string[];
}

const HASH_BATCH_BYTES = 8 * 2 ** 20;

/**
 * Manifest hashing off the main thread: records are batched to one worker thread that keeps a
 * FileHasher per stream (a tape file), in order, with the drive's hash. The bytes not hashed yet are bounded by the
 * caller through `queuedBytes`/`drain`, as a sink's queue is.
 */
export class StreamHasher {
  private readonly chunks = new ChunkPool();
  private readonly worker = new WorkerClient<HashRequest, HashReply>(workerScript(import.meta.url, './hash-worker.js'), 'manifest hashing');
  /**
   * Hashes are needed at sync points only (which flush): records gather for a few milliseconds, up
   * to HASH_BATCH_BYTES of them when read where they are (each batch wakes the worker).
   */
  private readonly batcher = new Batcher<number>(this.chunks, (batch) => this.send(batch), { gatherMs: 5, maxBytes: HASH_BATCH_BYTES });
  private readonly queue = new WriteQueue();
  private nextStream = 1;

  constructor(readonly hash: HashName) {}

  /** The worker's first failure (the hashes of the files it held are lost). */
  get failure(): Error | undefined {
    return this.queue.failure;
  }
  get queuedBytes(): number {
    return this.queue.bytes;
  }

  newStream(): number {
    return this.nextStream++;
  }

  /** `lease`: the record is hashed where it is, held until then (else copied). */
  add(stream: number, record: Uint8Array, lease?: Lease): void {
    if (this.queue.failure) return;
    this.batcher.add(record, stream, lease);
    this.queue.added(record.length);
  }

  drain(maxQueuedBytes: number): Promise<void> {
    if (this.queue.bytes <= maxQueuedBytes) return Promise.resolve(); // the common case: keep batching
    this.batcher.flush();
    return this.queue.drain(maxQueuedBytes);
  }

  /** Digests of what each stream has been given so far. */
  async snapshot(streams: number[]): Promise<Snapshot[]> {
    this.batcher.flush();
    if (this.queue.failure) throw this.queue.failure; // a new worker would not know the streams
    if (streams.length === 0) return [];
    return (await this.worker.request({ op: 'snapshot', hash: this.hash, streams })).snapshots ?? [];
  }

  /** Forgets finished streams. */
  drop(streams: number[]): void {
    if (streams.length > 0) this.worker.request({ op: 'drop', streams }).catch(() => undefined);
  }

  close(): Promise<void> {
    this.batcher.discard();
    return this.worker.close();
  }

  private send(batch: RecordBatch<number>): void {
    const bytes = batch.bytes;
    this.worker
      .request({ op: 'records', hash: this.hash, ...batch.message, streams: batch.meta })
      .then(
        () => this.queue.done(bytes),
        (err: Error) => this.queue.fail(err),
      )
      .finally(() => batch.done());
  }
}
