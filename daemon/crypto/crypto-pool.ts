import { availableParallelism } from 'node:os';
import { type BatchRecords, ChunkPool, type RecordBatch } from '../workers/record-batch.js';
import { WorkerClient } from '../workers/worker-client.js';
import { workerScript } from '../workers/worker-script.js';
import type { RecordPlace } from './record-cipher.js';
import type { VolumeKey } from './volume-header.js';

/**
 * The most record bytes a batch to seal holds (see EncryptStage: batches grow while the workers are
 * busy). Each batch is a message that wakes a worker, and at 1 MiB those messages cost the
 * encryption thread about as much as sealing the records did.
 */
export const SEAL_BATCH_BYTES = 4 * 2 ** 20;

/** A record's place within its volume (the volume comes with the batch). */
export interface Spot {
  file: number;
  record: number;
}

export type CryptoRequest =
  | ({ op: 'seal'; recordKey: Uint8Array; keyId: Uint8Array; volume: number; spots: number[]; out?: { memory: SharedArrayBuffer; offset: number; length: number } } & BatchRecords)
  | { op: 'open'; recordKey: Uint8Array; keyId: Uint8Array; place: RecordPlace; chunk: SharedArrayBuffer; length: number };

/** `sealed` is absent when the records were sealed into the request's `out`. */
export type CryptoReply = { sealed?: ArrayBuffer } | { plain: ArrayBuffer } | { error: string };

/** A record failed authentication: changed, moved, or encrypted with another key. */
export class AuthenticationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthenticationError';
  }
}

/**
 * AES-GCM off the main thread: a few worker threads shared by every encrypt stage of the process.
 * A batch of records crosses in one message and comes back sealed in one buffer; callers keep
 * their own order (each batch's promise).
 */
export class CryptoPool {
  readonly chunks = new ChunkPool();
  private readonly workers: WorkerClient<CryptoRequest, CryptoReply>[];

  /**
   * One worker seals about 2 GiB/s here, several times what the drive carries, so one per spare
   * core, at most two: each is a V8 isolate (memory) and a thread to wake per batch.
   */
  constructor(size = Math.max(1, Math.min(2, availableParallelism() - 1))) {
    const script = workerScript(import.meta.url, './crypto-worker.js');
    this.workers = Array.from({ length: size }, () => new WorkerClient<CryptoRequest, CryptoReply>(script, 'encryption'));
  }

  /**
   * The batch's records encrypted, back to back (each RECORD_OVERHEAD bytes longer): into `into`
   * (shared memory the caller reuses) when given, else into a buffer of the worker's, handed over.
   * A fresh buffer per batch is new external memory that makes V8 collect garbage (a fifth of the
   * daemon's time with one encrypted copy at 256 KiB records).
   */
  async seal(key: VolumeKey, batch: RecordBatch<Spot>, into?: Buffer): Promise<Buffer> {
    const spots = batch.meta.flatMap((s) => [s.file, s.record]);
    let out: { memory: SharedArrayBuffer; offset: number; length: number } | undefined;
    if (into) {
      if (!(into.buffer instanceof SharedArrayBuffer)) throw new TypeError('records are sealed into shared memory only');
      out = { memory: into.buffer, offset: into.byteOffset, length: into.length };
    }
    const request = { op: 'seal' as const, recordKey: key.recordKey, keyId: key.keyId, volume: key.volume, ...batch.message, spots, out };
    let reply: CryptoReply;
    try {
      reply = await this.pick().request(request);
    } finally {
      batch.done();
    }
    if (into && !('sealed' in reply)) return into;
    if (!('sealed' in reply) || !reply.sealed) throw new Error('the encryption worker answered without records');
    return Buffer.from(reply.sealed);
  }

  /** The record `sealed` holds at `place`; AuthenticationError if it does not check out. */
  async open(key: VolumeKey, place: RecordPlace, sealed: Buffer): Promise<Buffer> {
    const chunk = this.chunks.take(sealed.length);
    new Uint8Array(chunk, 0, sealed.length).set(sealed);
    const reply = await this.pick().request({ op: 'open', recordKey: key.recordKey, keyId: key.keyId, place, chunk, length: sealed.length });
    this.chunks.give(chunk);
    if ('error' in reply) throw new AuthenticationError(reply.error);
    if (!('plain' in reply)) throw new Error('the decryption worker answered without a record');
    return Buffer.from(reply.plain);
  }

  private pick(): WorkerClient<CryptoRequest, CryptoReply> {
    return this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
  }
}

let shared: CryptoPool | undefined;

/** The process's pool (workers start at the first job). */
export function cryptoPool(): CryptoPool {
  return (shared ??= new CryptoPool());
}
