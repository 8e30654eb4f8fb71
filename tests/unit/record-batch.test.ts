/**
 * Batches of records for worker threads (daemon/workers/record-batch.ts): leased records in shared
 * memory are referenced where they are, up to the batch's bound, and held until the batch is done;
 * any other record is copied, a chunk's worth to a batch.
 */
import { describe, expect, it } from 'vitest';
import { RecordPool } from '../../daemon/drive/record-pool.js';
import { Batcher, ChunkPool, recordAt, type RecordBatch } from '../../daemon/workers/record-batch.js';

const KiB = 1024;

describe('Batcher', () => {
  it('references leased shared records up to maxBytes, copies others a chunk at a time, and holds the referenced until done', () => {
    const chunks = new ChunkPool(1024 * KiB);
    const sent: RecordBatch<number>[] = [];
    const batcher = new Batcher<number>(chunks, (b) => sent.push(b), { maxBytes: 4096 * KiB });
    const pool = new RecordPool();
    const leased = Array.from({ length: 20 }, (_, i) => {
      const r = pool.take(256 * KiB);
      r.data.fill(i);
      return r;
    });
    for (const [i, r] of leased.entries()) batcher.add(r.data, i, r);
    batcher.flush();
    expect(sent.map((b) => b.lengths.length)).toEqual([16, 4]);
    const plain = Buffer.alloc(256 * KiB, 0xcc);
    for (let i = 0; i < 6; i++) batcher.add(plain, 100 + i); // no lease: copied
    batcher.flush();
    expect(sent.slice(2).map((b) => b.lengths.length)).toEqual([4, 2]);

    // The referenced records are where the pool put them, the copies in the batch's own chunk.
    const first = sent[0]!.message;
    expect(first.buffers[3]).toBe(leased[3]!.data.buffer);
    expect(first.offsets[3]).toBe(leased[3]!.data.byteOffset);
    const records = (b: RecordBatch<number>) => b.lengths.map((_, i) => recordAt(b.message, i));
    expect(records(sent[2]!).every((r) => r.every((b) => b === 0xcc) && r.buffer !== plain.buffer)).toBe(true);
    expect(records(sent[0]!).map((r) => r[0])).toEqual(Array.from({ length: 16 }, (_, i) => i));

    // Held until done: the pool hands out other memory meanwhile, and theirs again after.
    const sameMemory = (r: { data: Buffer }) => leased.some((l) => l.data.buffer === r.data.buffer && l.data.byteOffset === r.data.byteOffset);
    expect(sameMemory(pool.take(256 * KiB))).toBe(false);
    for (const batch of sent) batch.done();
    expect(sameMemory(pool.take(256 * KiB))).toBe(true);
  });
});
