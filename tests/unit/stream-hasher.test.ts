/**
 * Manifest hashing on its worker thread (daemon/manifest/stream-hasher.ts): a pooled record in
 * shared memory is hashed where it is and held until then; any other record is copied into a
 * batch. Either way the digests are those of the bytes the drive was given, in order.
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

describe('StreamHasher', () => {
  it('hashes a pooled record in place, holding its buffer until the worker is done with it', async () => {
    hasher = new StreamHasher();
    const pool = new RecordPool();
    const stream = hasher.newStream();
    const record = pool.take(256 * 1024);
    expect(record.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    randomBytes(record.data.length).copy(record.data);
    const expected = new FileHasher();
    expected.add(Buffer.from(record.data)); // a copy: the pooled bytes must not change under the hasher

    const release = record.hold(); // the writer's own hold, as a front end's
    hasher.add(stream, record.data, record);
    release();
    // The hasher still holds it: the pool hands out another buffer.
    expect(pool.take(256 * 1024).data.buffer).not.toBe(record.data.buffer);

    const [snapshot] = await hasher.snapshot([stream]);
    expect(snapshot).toEqual({ stream, ...expected.snapshot() });
    expect(pool.take(256 * 1024).data.buffer).toBe(record.data.buffer); // let go once hashed
  });

  it('gives the same digests for records in place, copied, and without a lease, across streams', async () => {
    hasher = new StreamHasher();
    const pool = new RecordPool();
    const streams = [hasher.newStream(), hasher.newStream()];
    const expected = streams.map(() => new FileHasher());
    const sizes = [300_000, 10_240, 65_536, 0, 1_048_576, 3 * 2 ** 20, 4_000];
    for (let i = 0; i < 40; i++) {
      const size = sizes[i % sizes.length]!;
      const s = i % 3 === 0 ? 1 : 0;
      const bytes = randomBytes(size);
      expected[s]!.add(bytes);
      if (i % 5 === 4) {
        hasher.add(streams[s]!, bytes); // an owned record: copied
        continue;
      }
      const record = pool.take(size);
      bytes.copy(record.data);
      const release = record.hold();
      hasher.add(streams[s]!, record.data, record);
      release();
    }
    const snapshots = await hasher.snapshot(streams);
    expect(snapshots).toEqual(streams.map((stream, s) => ({ stream, ...expected[s]!.snapshot() })));
  });
});
