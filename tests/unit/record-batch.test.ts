/**
 * Batches of records for worker threads (daemon/workers/record-batch.ts): leased records in shared
 * memory are referenced where they are, up to the batch's bound, and held until the batch is done;
 * any other record is copied, a chunk's worth to a batch.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
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

  it('while its owner is busy, a batch due at the end of a turn keeps growing, and goes once the owner is ready', async () => {
    const sent: number[][] = [];
    let busy = false;
    const batcher = new Batcher<number>(new ChunkPool(1024 * KiB), (b) => sent.push([...b.meta]), { maxBytes: 64 * KiB, busy: () => busy });
    const record = Buffer.alloc(10 * KiB);
    batcher.add(record, 0);
    await nextTurn();
    expect(sent).toEqual([[0]]); // not busy: one turn's records go at its end
    busy = true;
    for (let turn = 1; turn <= 3; turn++) {
      batcher.add(record, turn);
      await nextTurn();
    }
    expect(sent).toEqual([[0]]); // held back over three turns
    batcher.ready(); // still busy: nothing goes
    expect(sent).toHaveLength(1);
    busy = false;
    batcher.ready();
    expect(sent).toEqual([[0], [1, 2, 3]]);
    busy = true;
    for (let n = 4; n <= 10; n++) batcher.add(record, n); // 70 KiB: the seventh does not fit
    expect(sent.slice(2)).toEqual([[4, 5, 6, 7, 8, 9]]); // full batches go, busy or not
    batcher.flush();
    expect(sent.slice(3)).toEqual([[10]]);
  });
});

