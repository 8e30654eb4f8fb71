/**
 * Manifest hashing from pooled records (daemon/manifest/stream-hasher.ts): a large record in the
 * pool's shared memory is hashed where it is, held by its lease until the worker has read it,
 * instead of being copied into a batch. The digests must not depend on which way a record went,
 * the writer may reuse nothing the worker still reads, and back-pressure must count shared records.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordPool } from '../../daemon/drive/record-pool.js';
import { StreamHasher } from '../../daemon/manifest/stream-hasher.js';

const RECORD = 256 * 1024;
const hashers: StreamHasher[] = [];
afterEach(async () => {
  await Promise.all(hashers.splice(0).map((h) => h.close()));
});
function hasher(): StreamHasher {
  const h = new StreamHasher();
  hashers.push(h);
  return h;
}

/** Distinct contents per record number. */
const content = (i: number, length = RECORD) => createHash('sha256').update(String(i)).digest().subarray(0, 1).toString('hex').repeat(length / 2);

describe('StreamHasher with pooled records', () => {
  it('hashes records in place to the same digests as copies, while the writer reuses its buffers at once', async () => {
    const h = hasher();
    const pool = new RecordPool();
    const [shared, copied] = [h.newStream(), h.newStream()];
    const sizes = [RECORD, 100, 70 * 1024, RECORD, 10 * 1024, 2 ** 20];
    for (const [i, size] of sizes.entries()) {
      const record = pool.take(size);
      record.data.write(content(i, size), 'hex');
      const release = record.hold(); // the writer's own hold, as a shim frame's
      h.add(shared, record.data, record);
      h.add(copied, Buffer.from(record.data));
      release();
      // The writer's next record: a large one is never a buffer the hasher still has to read (a
      // small one was copied, and its buffer is free again at once).
      const next = pool.take(size);
      if (size >= 64 * 1024) expect(next.data.buffer).not.toBe(record.data.buffer);
      else expect(next.data.buffer).toBe(record.data.buffer);
      next.data.fill(0xee);
      next.hold()();
    }
    const [a, b] = await h.snapshot([shared, copied]);
    expect(a!.sha256).toBe(b!.sha256);
    expect(a!.groups).toEqual(b!.groups);
    expect(h.failure).toBeUndefined();
  });

  it('counts shared records in its queue: back-pressure waits for them and then lets go', async () => {
    const h = hasher();
    const pool = new RecordPool();
    const stream = h.newStream();
    const buffers = new Set<ArrayBufferLike>();
    for (let i = 0; i < 64; i++) {
      const record = pool.take(RECORD);
      buffers.add(record.data.buffer);
      record.data.write(content(i), 'hex');
      h.add(stream, record.data, record);
    }
    expect(h.queuedBytes).toBe(64 * RECORD);
    await h.drain(4 * RECORD); // resolves only if the worker's answers count the shared bytes
    await h.snapshot([stream]);
    expect(h.queuedBytes).toBe(0);
    // Every hold let go: the pool hands the same buffers out again.
    const again = pool.take(RECORD);
    expect(buffers.has(again.data.buffer)).toBe(true);
  });
});
