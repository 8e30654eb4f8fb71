/**
 * Manifest hashing on its worker thread (daemon/manifest/stream-hasher.ts): records cross in
 * batches of shared chunks, a record larger than a chunk in one of its own, and the digests are
 * those of the bytes the drive was given, per stream and in order, even when the caller's buffer
 * is reused right after `add`. Pooled records given with their lease are hashed where they are:
 * held until hashed, so the pool cannot hand their buffers out again before.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordPool } from '../../daemon/drive/record-pool.js';
import { FileHasher } from '../../daemon/manifest/manifest.js';
import { StreamHasher } from '../../daemon/manifest/stream-hasher.js';

let hasher: StreamHasher | undefined;
afterEach(async () => {
  await hasher?.close();
  hasher = undefined;
});

describe.each(['blake3', 'sha256'] as const)('StreamHasher (%s)', (hash) => {
  it('gives the digests of what each stream was given, across batches and reused buffers', async () => {
    hasher = new StreamHasher(hash);
    const streams = [hasher.newStream(), hasher.newStream()];
    const expected = streams.map(() => new FileHasher(hash));
    const reused = Buffer.alloc(3 * 2 ** 20);
    const sizes = [300_000, 10_240, 65_536, 0, 1_048_576, 3 * 2 ** 20, 4_000];
    for (let i = 0; i < 40; i++) {
      const size = sizes[i % sizes.length]!;
      const s = i % 3 === 0 ? 1 : 0;
      const record = reused.subarray(0, size);
      randomBytes(size).copy(record);
      expected[s]!.add(Buffer.from(record));
      hasher.add(streams[s]!, record);
    }
    reused.fill(0); // the last records are still in the batch being filled: it must hold copies
    const snapshots = await hasher.snapshot(streams);
    expect(snapshots).toEqual(streams.map((stream, s) => ({ stream, ...expected[s]!.snapshot() })));
  });

  it('hashes leased pooled records in place, holding them until hashed', async () => {
    hasher = new StreamHasher(hash);
    const stream = hasher.newStream();
    const expected = new FileHasher(hash);
    const pool = new RecordPool();
    const given: Uint8Array[] = [];
    const sameMemory = (a: Uint8Array) => given.some((g) => g.buffer === a.buffer && g.byteOffset === a.byteOffset);
    for (let i = 0; i < 64; i++) {
      const record = pool.take(i % 2 ? 262_144 : 10_240);
      randomBytes(record.data.length).copy(record.data);
      expected.add(Buffer.from(record.data));
      const release = record.hold(); // the front end's hold, let go once the drive took the record
      hasher.add(stream, record.data, record);
      release();
      given.push(record.data);
    }
    // Records the front end takes next must not be the ones still waiting to be hashed.
    for (let i = 0; i < 64; i++) {
      const next = pool.take(i % 2 ? 262_144 : 10_240);
      expect(sameMemory(next.data)).toBe(false);
      next.data.fill(0xee);
    }
    expect(await hasher.snapshot([stream])).toEqual([{ stream, ...expected.snapshot() }]);
    // Hashed: their buffers go back to the pool.
    const after = pool.take(262_144);
    expect(sameMemory(after.data)).toBe(true);
  });
});
