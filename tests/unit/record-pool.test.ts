/**
 * Pooled record buffers (daemon/drive/record-pool.ts): shared memory in slabs, bounded and never
 * let go; a buffer is reused only once every hold on its record is released, and a mirror's copies that keep a record hold it until it is written
 * (an image) or confirmed (a grpc copy).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { type PooledRecord, RecordPool } from '../../daemon/drive/record-pool.js';
import { LARGEST_WINDOW_BYTES } from '../../daemon/drive/write-behind-window.js';
import { EventBus } from '../../daemon/events/events.js';
import { startGrpcServer } from '../../daemon/frontends/grpc/server.js';
import { GrpcSink } from '../../daemon/sinks/grpc-sink.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { MemorySink } from '../../daemon/sinks/memory-sink.js';
import { imageObjects } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const tmp = useTempDir();
let mirror: Mirror | undefined;
afterEach(async () => {
  await mirror?.close();
  mirror = undefined;
});

/** Where a record's memory is: the same place means the same buffer, reused. */
const place = (r: PooledRecord): [ArrayBufferLike, number] => [r.data.buffer, r.data.byteOffset];

describe('RecordPool', () => {
  it('reuses a buffer only after the last hold is released, and a release counts once', () => {
    const pool = new RecordPool();
    const a = pool.take(100_000);
    const first = a.hold();
    const second = a.hold();
    first();
    first(); // again: no effect
    const b = pool.take(100_000);
    expect(place(b)).not.toEqual(place(a)); // still held by `second`
    second();
    const c = pool.take(70_000); // the same capacity class (128 KiB)
    expect(place(c)).toEqual(place(a));
    expect(c.data.length).toBe(70_000);
    expect(() => a.hold()).toThrow('a record was held after its buffer was reused');
  });

  it('hands out shared memory, so that workers read records where they are', () => {
    const pool = new RecordPool();
    for (const length of [1, 10_240, 262_144, 2 ** 21]) expect(pool.take(length).data.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('holds at most its bound of shared memory; past it, and for very large records, plain memory that is not pooled', () => {
    const pool = new RecordPool(2 * 2 ** 21); // two slabs
    const records = Array.from({ length: 16 }, () => pool.take(200_000)); // 256 KiB each: 8 to a slab
    expect(records.every((r) => r.data.buffer instanceof SharedArrayBuffer)).toBe(true);
    expect(new Set(records.map((r) => r.data.buffer)).size).toBe(2);
    const past = pool.take(200_000);
    expect(past.data.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    past.hold()();
    expect(pool.take(200_000).data.buffer).not.toBe(past.data.buffer); // never given to the pool
    records[3]!.hold()();
    expect(place(pool.take(200_000))).toEqual(place(records[3]!));
    const big = pool.take(3 * 2 ** 20);
    expect(big.data.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    big.hold()();
    expect(pool.take(3 * 2 ** 20).data.buffer).not.toBe(big.data.buffer);
  });

  it('by default holds a write-behind window of records in use and as many given back in one burst, all reused', () => {
    const pool = new RecordPool();
    const count = LARGEST_WINDOW_BYTES / (256 * 1024);
    const inUse = Array.from({ length: count }, () => pool.take(256 * 1024));
    const burst = Array.from({ length: count }, () => pool.take(256 * 1024));
    expect([...inUse, ...burst].every((r) => r.data.buffer instanceof SharedArrayBuffer)).toBe(true);
    for (const r of burst) r.hold()(); // a sink's vectored write completes
    const again = new Set(Array.from({ length: count }, () => place(pool.take(256 * 1024)).join('@')));
    expect(burst.filter((r) => again.has(place(r).join('@')))).toHaveLength(count);
  });

  it('copyOf: bytes copied into a pooled buffer, or, too large to pool, kept where they are', () => {
    const pool = new RecordPool();
    const reused = pool.take(100_000);
    reused.hold()();
    const bytes = new Uint8Array(100_000).fill(7);
    const copy = pool.copyOf(bytes);
    expect(place(copy)).toEqual(place(reused));
    expect(copy.data.equals(bytes)).toBe(true);
    bytes.fill(0); // the caller's memory is free again: the record keeps its bytes
    expect(copy.data.every((b) => b === 7)).toBe(true);

    const large = new Uint8Array(new ArrayBuffer(3 * 2 ** 20 + 8), 8, 3 * 2 ** 20).fill(9);
    const kept = pool.copyOf(large);
    expect(kept.data.buffer).toBe(large.buffer);
    expect([kept.data.byteOffset, kept.data.length]).toEqual([8, 3 * 2 ** 20]);
    kept.hold()();
    expect(pool.take(3 * 2 ** 20).data.buffer).not.toBe(large.buffer); // never given to the pool
  });

  it('at its bound, a slab whose buffers are all free is cut anew for another size, the one idle longest first', () => {
    const pool = new RecordPool(2 * 2 ** 21); // two slabs
    const small = Array.from({ length: 128 }, () => pool.take(10_240)); // 16 KiB each: one slab
    const large = Array.from({ length: 8 }, () => pool.take(256 * 1024)); // the other
    const slabs = [small[0]!.data.buffer, large[0]!.data.buffer];
    expect(slabs[0]).not.toBe(slabs[1]);
    expect(pool.take(1_000_000).data.buffer).not.toBeInstanceOf(SharedArrayBuffer); // a third size: no slab free
    for (const r of small.slice(1)) r.hold()();
    expect(pool.take(1_000_000).data.buffer).not.toBeInstanceOf(SharedArrayBuffer); // one small buffer still in use
    small[0]!.hold()();
    for (const r of large) r.hold()();
    // Both slabs are free now; the small one was used longest ago.
    const megas = [pool.take(1_000_000), pool.take(1_000_000)]; // its two MiB
    expect(megas.map((r) => r.data.buffer)).toEqual([slabs[0], slabs[0]]);
    expect(megas.map((r) => r.data.byteOffset).sort()).toEqual([0, 2 ** 20]);
    expect(place(pool.take(256 * 1024))).toEqual(place(large.at(-1)!)); // the large slab is still cut for 256 KiB
  });
});

describe('a mirror given pooled records', () => {
  it('an image copy holds each record until written; a copy that does not hold gets its own bytes', async () => {
    const pool = new RecordPool();
    // Slow, so that records wait in its queue while the writer reuses their buffers.
    const image = new FileSink({ path: join(tmp.path, 'a.tap'), capacity: new Capacity(), readonly: false, fsync: false, rate: 20e6 });
    const memory = new MemorySink('mem', new Capacity());
    mirror = new Mirror([image, memory], { window: 16 * 2 ** 20 });
    await mirror.loadNext();
    const expected: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const record = pool.take(64 * 1024);
      record.data.fill(i);
      expected.push(Buffer.from(record.data));
      const release = record.hold(); // the writer's own hold, as the shim connection's
      await mirror.write(record.data, record);
      release();
    }
    expect(image.queuedBytes).toBeGreaterThan(0); // records were still queued when their writer let go
    await mirror.sync();
    expect(memory.contents(1).map(digest)).toEqual(expected.map(digest));
    await mirror.rewind();
    const read: Buffer[] = [];
    for (let i = 0; i < expected.length; i++) {
      const object = await image.next(true);
      read.push(object.kind === 'record' ? object.data : Buffer.alloc(0));
    }
    expect(read.map(digest)).toEqual(expected.map(digest));
  });

  it('a grpc copy holds each record until the remote confirms it', async () => {
    // The remote writes its image slowly, so more records wait in the copy than it sends at once
    // (256): those go out later, from the record the copy keeps.
    const remoteMirror = new Mirror([new FileSink({ path: join(tmp.path, 'r.tap'), capacity: new Capacity(), readonly: false, fsync: false, rate: 8e6 })], { window: 4 * 2 ** 20 });
    const remoteDrive = new PseudoDrive('pnst0', remoteMirror, { maxRecord: 2 ** 20, autoload: true });
    await remoteDrive.start();
    const served = await startGrpcServer(new Map([['pnst0', { drive: remoteDrive, mirror: remoteMirror }]]), '127.0.0.1:0', 2 ** 22, pino({ level: 'silent' }), new EventBus(), {
      credentials: grpc.ServerCredentials.createInsecure(),
      interceptors: [],
    });
    try {
      const pool = new RecordPool();
      const copy = new GrpcSink({ peer: { address: served.address, keepaliveMs: 10_000 }, drive: 'pnst0', replyTimeoutMs: 30_000, graceMs: 0, records: 'channel' });
      mirror = new Mirror([copy], { window: 16 * 2 ** 20 });
      await mirror.loadNext();
      const expected: Buffer[] = [];
      let waiting = 0;
      for (let i = 0; i < 800; i++) {
        const record = pool.take(20 * 1024);
        record.data.fill(i % 251);
        record.data.writeUInt32BE(i);
        expected.push(Buffer.from(record.data));
        const release = record.hold();
        await mirror.write(record.data, record);
        release();
        waiting = Math.max(waiting, copy.queuedBytes);
      }
      expect(waiting).toBeGreaterThan(300 * 20 * 1024); // more than the copy sends at once
      await mirror.sync();
      await mirror.close();
      mirror = undefined;
      expect((await imageObjects(join(tmp.path, 'r.tap'))).filter((o) => o !== null).map(digest)).toEqual(expected.map(digest));
    } finally {
      served.watch.close();
      await served.channels?.close();
      served.server.forceShutdown();
      await remoteDrive.shutdown();
      await remoteMirror.close();
    }
  });
});

/** Compared by digest: toEqual on megabytes of buffers takes seconds, and its diff minutes. */
function digest(b: Buffer | null): string {
  return b ? `${b.length}:${createHash('sha256').update(b).digest('hex').slice(0, 16)}` : 'filemark';
}
