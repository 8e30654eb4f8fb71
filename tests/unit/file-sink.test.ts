import { access, appendFile, chmod, mkdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { TapeObject } from '../../daemon/drive/medium.js';
import { TapeError } from '../../daemon/drive/tape-error.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { FileSink, type FileSinkOptions, volumePath } from '../../daemon/sinks/file-sink.js';
import { MemorySink } from '../../daemon/sinks/memory-sink.js';
import { ObjectIndex } from '../../daemon/sinks/object-index.js';
import { END_OF_MEDIUM_BYTES } from '../../daemon/sinks/simh-tap.js';
import type { Sink } from '../../daemon/sinks/sink.js';
import { WriteQueue } from '../../daemon/sinks/write-queue.js';
import { imageObjects } from '../support/daemon.js';
import { writeImage } from '../support/images.js';
import { useTempDir } from '../support/temp-dir.js';

const tmp = useTempDir();
const shm = useTempDir('each', '/dev/shm');
const sinks: Sink[] = [];
afterEach(async () => {
  for (const s of sinks.splice(0)) await s.close().catch(() => undefined);
});

// On tmpfs an image written over is overwritten in place (FileSink's class comment); on disk it is
// truncated first. Both must behave as the same cartridge.
describe.each([
  ['on disk', tmp],
  ['on tmpfs', shm],
])('FileSink as a cartridge, %s', (_where, dir) => {
  it('creates nothing for a missing image until the first write', async () => {
    const file = path.join(dir.path, 'a.tap');
    const sink = fileSink({ path: file });

    expect(await sink.load(1)).toEqual({ writeProtected: false });
    expect(await exists(file)).toBe(false);
    expect(await sink.atEnd()).toBe(true);
    expect(await sink.next(true)).toEqual({ kind: 'blank' });
    expect(await sink.previous()).toBe('bot');
    await sink.sync();
    expect(await exists(file)).toBe(false);
    expect(sink.status()).toMatchObject({ volume: 1, loaded: true, position: 0, used: 0, queuedBytes: 0 });

    sink.write(Buffer.from('hello'));
    await sink.sync();
    expect(await fileSize(file)).toBe(8 + 5 + 1);
    expect(sink.status()).toMatchObject({ position: 1, used: 14, recordsWritten: 1, bytesWritten: 5 });
  });

  it('moves over records and filemarks with next, previous, locate and atEnd', async () => {
    const file = path.join(dir.path, 'a.tap');
    const sink = fileSink({ path: file });
    await sink.load(1);
    sink.write(Buffer.from('abc'));
    sink.write(Buffer.from('defg'));
    sink.writeFilemarks(1);
    sink.write(Buffer.from('hijkl'));
    sink.writeFilemarks(2);
    await sink.sync();
    expect(await fileSize(file)).toBe(12 + 12 + 4 + 14 + 8);
    expect(sink.position).toBe(6);
    expect(await sink.atEnd()).toBe(true);

    await sink.locate(0);
    expect(await sink.atEnd()).toBe(false);
    expect(await readRest(sink)).toEqual(['abc', 'defg', 'FM', 'hijkl', 'FM', 'FM']);
    expect(sink.position).toBe(6);
    expect(await sink.next(true)).toEqual({ kind: 'blank' });
    expect(sink.position).toBe(6);

    const back: string[] = [];
    for (let i = 0; i < 7; i++) back.push(await sink.previous());
    expect(back).toEqual(['filemark', 'filemark', 'record', 'filemark', 'record', 'record', 'bot']);
    expect(sink.position).toBe(0);

    await sink.locate(3);
    expect(await sink.next(true)).toEqual(record('hijkl'));
    await sink.locate(1);
    expect(await sink.next(false)).toEqual({ kind: 'record', data: Buffer.alloc(0) });
    expect(await sink.next(true)).toEqual({ kind: 'filemark' });
    expect(sink.position).toBe(3);
    await sink.locate(6);
    expect(await sink.atEnd()).toBe(true);
  });

  it('reads an existing image as a loaded cartridge and appends to it', async () => {
    const file = path.join(dir.path, 'a.tap');
    const first = fileSink({ path: file });
    await first.load(1);
    first.write(Buffer.from('one'));
    first.writeFilemarks(1);
    await first.unload();

    const again = fileSink({ path: file });
    expect(await again.load(1)).toEqual({ writeProtected: false });
    expect(again.status()).toMatchObject({ position: 0, used: 16 });
    expect(await readRest(again)).toEqual(['one', 'FM']);
    again.write(Buffer.from('two!'));
    await again.sync();
    await again.locate(0);
    expect(await readRest(again)).toEqual(['one', 'FM', 'two!']);
    expect(await fileSize(file)).toBe(28);
  });

  it('refuses to locate beyond the end of data with EIO and stays put', async () => {
    const sink = fileSink({ path: path.join(dir.path, 'a.tap') });
    await sink.load(1);
    for (const s of ['a', 'b', 'c']) sink.write(Buffer.from(s));
    sink.writeFilemarks(1);
    await sink.locate(1);

    const err = await sink.locate(5).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TapeError);
    expect((err as TapeError).errno).toBe(5);
    expect((err as TapeError).message).toContain('volume 1 ends at object 4, cannot reach 5');
    expect(sink.position).toBe(1);
    expect(await sink.next(true)).toEqual(record('b'));

    await sink.locate(4); // the end itself can be reached
    expect(await sink.atEnd()).toBe(true);
  });

  it('discards everything after the position when writing in the middle', async () => {
    const file = path.join(dir.path, 'a.tap');
    const sink = fileSink({ path: file });
    await sink.load(1);
    for (let i = 0; i < 5; i++) sink.write(Buffer.from(`record ${i}.`)); // 10 bytes: 18 in the image
    sink.writeFilemarks(1);
    await sink.sync();
    expect(await fileSize(file)).toBe(5 * 18 + 4);

    await sink.locate(2);
    sink.write(Buffer.from('new'));
    await sink.sync();
    expect(await fileSize(file)).toBe(2 * 18 + 12);
    expect(sink.position).toBe(3);
    expect(sink.status().used).toBe(48);
    expect(await sink.atEnd()).toBe(true);
    expect(await sink.next(true)).toEqual({ kind: 'blank' });

    await sink.locate(0);
    expect(await readRest(sink)).toEqual(['record 0.', 'record 1.', 'new']);
    await expect(sink.locate(4)).rejects.toMatchObject({ errno: 5 });
  });

  it('reads an image that ends at an end-of-medium marker before its last byte to the marker, and writes on from there', async () => {
    // As a process killed while writing over an image on tmpfs leaves it: old bytes after the marker.
    const file = path.join(dir.path, 'a.tap');
    await writeImage(file, [Buffer.from('kept 0'), Buffer.from('kept 1')]);
    await appendFile(file, Buffer.concat([END_OF_MEDIUM_BYTES, Buffer.from([6, 0, 0, 0]), Buffer.from('old 2!'), Buffer.from([6, 0, 0, 0])]));
    const sink = fileSink({ path: file });
    await sink.load(1);
    expect(await readRest(sink)).toEqual(['kept 0', 'kept 1']);
    expect(sink.position).toBe(2);
    expect(await sink.atEnd()).toBe(true);

    sink.write(Buffer.from('new 2'));
    await sink.sync();
    expect(await fileSize(file)).toBe(3 * 14);
    await sink.locate(0);
    expect(await readRest(sink)).toEqual(['kept 0', 'kept 1', 'new 2']);
  });

  it('discards everything from the position on erase()', async () => {
    const file = path.join(dir.path, 'a.tap');
    const sink = fileSink({ path: file });
    await sink.load(1);
    for (const s of ['aa', 'bb', 'cc']) sink.write(Buffer.from(s));
    sink.writeFilemarks(1);
    await sink.sync();

    await sink.locate(1);
    sink.erase();
    await sink.sync();
    expect(await fileSize(file)).toBe(10);
    expect(sink.position).toBe(1);
    expect(await sink.atEnd()).toBe(true);
    expect(await sink.next(true)).toEqual({ kind: 'blank' });
    await expect(sink.locate(2)).rejects.toMatchObject({ errno: 5 });
    await sink.locate(0);
    expect(await readRest(sink)).toEqual(['aa']);
  });
});

describe('FileSink capacity', () => {
  it('answers ok, early-warning and full from where the record would end', async () => {
    // capacity 1000, early warning zone 200: early warning past byte 800, physical end at 1000.
    const sink = fileSink({ path: path.join(tmp.path, 'a.tap'), capacity: new Capacity(1000, 200) });
    await sink.load(1);
    expect(sink.room(792)).toBe('ok'); // ends at 800
    expect(sink.room(791)).toBe('ok'); // padded: ends at 800
    expect(sink.room(793)).toBe('early-warning'); // padded: ends at 802
    expect(sink.room(992)).toBe('early-warning'); // ends at 1000
    expect(sink.room(993)).toBe('full'); // padded: ends at 1002

    sink.write(Buffer.alloc(500)); // ends at 508
    expect(sink.room(284)).toBe('ok'); // ends at 800
    expect(sink.room(285)).toBe('early-warning');
    expect(sink.room(484)).toBe('early-warning'); // ends at 1000
    expect(sink.room(485)).toBe('full');
    expect(sink.earlyWarning).toBe(false);

    sink.write(Buffer.alloc(292)); // ends at 808
    expect(sink.earlyWarning).toBe(true);
    expect(sink.status()).toMatchObject({ used: 808, capacity: 1000, earlyWarningAt: 800, earlyWarning: true });

    // Room counts from the position: a write at BOT discards the rest.
    await sink.locate(0);
    expect(sink.room(792)).toBe('ok');
    expect(sink.room(993)).toBe('full');
  });

  it('never reports early warning or full without a capacity', async () => {
    const sink = fileSink({ path: path.join(tmp.path, 'a.tap') });
    await sink.load(1);
    sink.write(Buffer.alloc(100_000));
    expect(sink.room(2 ** 28)).toBe('ok');
    expect(sink.earlyWarning).toBe(false);
    expect(sink.status()).toMatchObject({ capacity: undefined, earlyWarningAt: undefined });
  });

  it('makes the mirror refuse a record past any copy\'s physical end with ENOSPC, writing nothing', async () => {
    const a = fileSink({ path: path.join(tmp.path, 'a.tap') });
    const b = fileSink({ path: path.join(tmp.path, 'b.tap'), capacity: new Capacity(100, 10) });
    const mirror = new Mirror([a, b], { window: 1 << 20 });
    await mirror.loadNext();

    expect(await mirror.write(Buffer.alloc(50, 1))).toBe('ok'); // ends at 58
    expect(await mirror.write(Buffer.alloc(30, 2))).toBe('early-warning'); // ends at 96 > 90
    await mirror.sync();

    const err = await mirror.write(Buffer.alloc(1, 3)).catch((e: unknown) => e); // would end at 106 > 100
    expect(err).toBeInstanceOf(TapeError);
    expect((err as TapeError).errno).toBe(28);
    expect((err as TapeError).message).toBe(`ENOSPC: file:${tmp.path}/b.tap: physical end of volume 1`);
    await mirror.sync();
    expect(await fileSize(path.join(tmp.path, 'a.tap'))).toBe(96);
    expect(await fileSize(path.join(tmp.path, 'b.tap'))).toBe(96);
    expect([mirror.position, a.position, b.position]).toEqual([2, 2, 2]);
    expect([a.queuedBytes, b.queuedBytes]).toEqual([0, 0]);
    expect(a.status().recordsWritten).toBe(2);

    // Filemarks are still accepted past early warning (st writes one at close).
    await mirror.writeFilemarks(1);
    await mirror.sync();
    expect(await fileSize(path.join(tmp.path, 'a.tap'))).toBe(100);
    expect(await fileSize(path.join(tmp.path, 'b.tap'))).toBe(100);
  });

  it('lets the mirror rewrite a full copy from BOT (room is judged where each copy will write)', async () => {
    const a = fileSink({ path: path.join(tmp.path, 'a.tap') });
    const b = fileSink({ path: path.join(tmp.path, 'b.tap'), capacity: new Capacity(100, 10) });
    const mirror = new Mirror([a, b], { window: 1 << 20 });
    await mirror.loadNext();
    await mirror.write(Buffer.alloc(80));
    await expect(mirror.write(Buffer.alloc(20))).rejects.toMatchObject({ errno: 28 });

    await mirror.rewind(); // moves the first copy only; the others follow before the next write
    expect(await mirror.write(Buffer.from('fresh'))).toBe('ok');
    await mirror.sync();
    expect(await fileSize(path.join(tmp.path, 'a.tap'))).toBe(14);
    expect(await fileSize(path.join(tmp.path, 'b.tap'))).toBe(14);
  });

  it('sizes MemorySink volumes as SIMH images, like FileSink', async () => {
    const file = fileSink({ path: path.join(tmp.path, 'a.tap'), capacity: new Capacity(100, 30) });
    const mem = new MemorySink('m', new Capacity(100, 30));
    for (const s of [file, mem]) {
      await s.load(1);
      s.write(Buffer.alloc(41)); // 50
      s.writeFilemarks(1); // 54
    }
    // Early warning past byte 70, physical end at 100: from 54, n=8 ends at 70, n=9 (padded) at 72.
    for (const n of [0, 1, 7, 8, 9, 10, 37, 38, 39]) expect(mem.room(n)).toBe(file.room(n));
    expect([mem.room(8), mem.room(9), mem.room(38), mem.room(39)]).toEqual(['ok', 'early-warning', 'early-warning', 'full']);
    expect(mem.status().used).toBe(file.status().used);
  });
});

describe('FileSink volumes and protection', () => {
  it('puts volume N at the %v path of the template', async () => {
    const sink = fileSink({ path: path.join(tmp.path, 'vol-%v.tap') });
    await sink.load(1);
    sink.write(Buffer.from('v1'));
    await sink.unload();
    expect(await sink.hasVolume(2)).toBe(false);
    await sink.load(2);
    sink.write(Buffer.from('volume 2'));
    await sink.sync();

    expect(sink.status()).toMatchObject({ volume: 2, position: 1 });
    expect(await fileSize(path.join(tmp.path, 'vol-1.tap'))).toBe(10);
    expect(await fileSize(path.join(tmp.path, 'vol-2.tap'))).toBe(16);
    expect(await sink.hasVolume(1)).toBe(true);
    expect(await sink.hasVolume(2)).toBe(true);
    expect(await sink.hasVolume(3)).toBe(false);
  });

  it('puts volume N at PATH.N without %v, and volume 1 at PATH', async () => {
    const file = path.join(tmp.path, 'img.tap');
    const sink = fileSink({ path: file });
    await sink.load(1);
    sink.write(Buffer.from('1'));
    await sink.load(2); // unloads volume 1 first
    sink.write(Buffer.from('22'));
    await sink.sync();

    expect(await fileSize(file)).toBe(10);
    expect(await fileSize(`${file}.2`)).toBe(10);
    expect(await readFile(`${file}.2`)).toEqual(Buffer.from([2, 0, 0, 0, 0x32, 0x32, 2, 0, 0, 0]));
  });

  it('maps volume numbers to paths', () => {
    expect(volumePath('/t/a-%v.tap', 7)).toBe('/t/a-7.tap');
    expect(volumePath('/t/%v/a-%v.tap', 12)).toBe('/t/12/a-12.tap');
    expect(volumePath('/t/a.tap', 1)).toBe('/t/a.tap');
    expect(volumePath('/t/a.tap', 3)).toBe('/t/a.tap.3');
  });

  it('loads write-protected with readonly and creates no file', async () => {
    const missing = path.join(tmp.path, 'missing.tap');
    const ro = fileSink({ path: missing, readonly: true });
    expect(await ro.load(1)).toEqual({ writeProtected: true });
    await ro.unload();
    expect(await exists(missing)).toBe(false);

    const file = path.join(tmp.path, 'existing.tap');
    const writer = fileSink({ path: file });
    await writer.load(1);
    writer.write(Buffer.from('keep'));
    await writer.close();

    const reader = fileSink({ path: file, readonly: true });
    expect(await reader.load(1)).toEqual({ writeProtected: true });
    expect(await readRest(reader)).toEqual(['keep']);
    await reader.unload();
    expect(await fileSize(file)).toBe(12);
  });

  // As root (how these tests run in CI) a 0444 image still opens read-write, so the EACCES branch
  // cannot be reached; it is only exercised when the tests run as an ordinary user.
  it.skipIf(process.getuid?.() === 0)('loads a read-only image file write-protected', async () => {
    const file = path.join(tmp.path, 'a.tap');
    await writeFile(file, Buffer.from([1, 0, 0, 0, 0x41, 0, 1, 0, 0, 0]));
    await chmod(file, 0o444);
    const sink = fileSink({ path: file });
    expect(await sink.load(1)).toEqual({ writeProtected: true });
    expect(await sink.next(true)).toEqual(record('A'));
  });

  it('fails the load with EIO when the image cannot be opened', async () => {
    const notAFile = path.join(tmp.path, 'a-directory.tap');
    await mkdir(notAFile);
    const sink = fileSink({ path: notAFile });
    const err = await sink.load(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TapeError);
    expect((err as TapeError).errno).toBe(5);
    expect((err as TapeError).message).toContain(`cannot open ${notAFile}:`);
    expect((err as TapeError).message).toContain('EISDIR');
  });
});

describe('FileSink writing over an image', () => {
  const TMPFS = 0x01021994;
  const old = ['old 0', 'old 1', 'old 2', 'old 3', 'old 4'];

  /** An image of `old` and a filemark, loaded at BOT, written over with `fresh` and left queued-but-written (no sync point). */
  async function overwriteFromBot(dir: string, fresh: string[]): Promise<{ file: string; sink: FileSink }> {
    const file = path.join(dir, 'a.tap');
    await writeImage(file, [...old.map((t) => Buffer.from(t)), null]);
    const sink = fileSink({ path: file });
    await sink.load(1);
    for (const t of fresh) sink.write(Buffer.from(t));
    await sink.drain(0);
    return { file, sink };
  }

  it('on tmpfs overwrites in place: until the sync point the image ends at an end-of-medium marker, then it is cut', async () => {
    expect(Number((await statfs(shm.path)).type), '/dev/shm must be a tmpfs').toBe(TMPFS);
    const { file, sink } = await overwriteFromBot(shm.path, ['new 0', 'new 1!!']); // 14 and 16 bytes framed

    // The old bytes are still there (the same pages), but any reader, such as one after a crash,
    // sees the new records and then the end of the medium.
    expect(await fileSize(file)).toBe(5 * 14 + 4);
    expect((await readFile(file)).readUInt32LE(30)).toBe(0xffffffff);
    expect((await imageObjects(file)).map((o) => o?.toString())).toEqual(['new 0', 'new 1!!']);
    expect(await sink.atEnd()).toBe(true);

    await sink.sync();
    expect(await fileSize(file)).toBe(30);
    expect((await imageObjects(file)).map((o) => o?.toString())).toEqual(['new 0', 'new 1!!']);
  });

  it('on tmpfs cuts no more than the old bytes: a longer stream simply runs past them', async () => {
    const fresh = Array.from({ length: 7 }, (_, i) => `new ${i}`);
    const { file, sink } = await overwriteFromBot(shm.path, fresh);
    sink.writeFilemarks(1);
    await sink.sync();
    expect(await fileSize(file)).toBe(7 * 14 + 4);
    expect((await imageObjects(file)).map((o) => o?.toString() ?? 'FM')).toEqual([...fresh, 'FM']);
  });

  it('on tmpfs, written over twice before a sync point (a cut back into the new records), still ends where the last write did', async () => {
    const { file, sink } = await overwriteFromBot(shm.path, ['new 0', 'new 1', 'new 2']);
    await sink.locate(1);
    sink.write(Buffer.from('again 1'));
    await sink.drain(0);
    expect((await imageObjects(file)).map((o) => o?.toString())).toEqual(['new 0', 'again 1']);
    await sink.sync();
    expect(await fileSize(file)).toBe(14 + 16);
    expect(sink.status().used).toBe(30);
  });

  it('on disk truncates first, as soon as the write is done (writes reach a disk in no set order)', async () => {
    expect(Number((await statfs(tmp.path)).type), `${tmp.path} must not be a tmpfs for this test`).not.toBe(TMPFS);
    const { file } = await overwriteFromBot(tmp.path, ['new 0', 'new 1!!']);
    expect(await fileSize(file)).toBe(30);
    expect((await imageObjects(file)).map((o) => o?.toString())).toEqual(['new 0', 'new 1!!']);
  });
});

describe('FileSink write-behind', () => {
  it('reports a failed write at sync with EIO naming the path, sticky until the next load', async () => {
    const sub = path.join(tmp.path, 'sub');
    await mkdir(sub);
    const file = path.join(sub, 'a.tap');
    const sink = fileSink({ path: file });
    await sink.load(1);
    await rm(sub, { recursive: true }); // the lazy create of the image will fail

    sink.write(Buffer.from('lost'));
    const err = await sink.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TapeError);
    expect((err as TapeError).errno).toBe(5);
    expect((err as TapeError).message).toContain(`write of ${file} failed`);
    expect((err as TapeError).message).toContain('ENOENT');
    expect(sink.failure).toBe(err);
    expect(sink.queuedBytes).toBe(0);
    expect(sink.status().failure).toBe((err as Error).message);

    sink.write(Buffer.from('ignored'));
    expect(sink.queuedBytes).toBe(0);
    await expect(sink.sync()).rejects.toBe(err);
    await expect(sink.next(true)).rejects.toBe(err);

    // A mirror over it refuses further writes with the same error.
    await expect(new Mirror([sink], { window: 1 << 20 }).write(Buffer.from('x'))).rejects.toBe(err);

    await mkdir(sub);
    await sink.load(1);
    expect(sink.failure).toBeUndefined();
    sink.write(Buffer.from('ok'));
    await sink.sync();
    expect(await fileSize(file)).toBe(10);
  });

  it('drain(max) resolves only once at most max bytes are queued', async () => {
    const sink = fileSink({ path: path.join(tmp.path, 'a.tap'), rate: 1 << 20 }); // 1 MiB/s
    await sink.load(1);
    const framed = 256 * 1024 + 8;
    const started = performance.now();
    for (let i = 0; i < 4; i++) sink.write(Buffer.alloc(256 * 1024, i));
    expect(sink.queuedBytes).toBe(4 * framed);

    const when = (max: number) =>
      sink.drain(max).then(() => ({ queued: sink.queuedBytes, after: performance.now() - started }));
    const threeLeft = when(3 * framed);
    const empty = when(0);
    let emptyResolved = false;
    void empty.then(() => (emptyResolved = true));
    expect(await when(10 * framed)).toEqual({ queued: 4 * framed, after: expect.any(Number) }); // already true

    await sleep(100);
    expect(sink.queuedBytes).toBe(4 * framed); // the first record takes 250 ms at 1 MiB/s
    expect(emptyResolved).toBe(false);

    const a = await threeLeft;
    expect(a.queued).toBeLessThanOrEqual(3 * framed);
    expect(a.after).toBeGreaterThanOrEqual(200);
    expect(emptyResolved).toBe(false);

    const b = await empty;
    expect(b.queued).toBe(0);
    expect(b.after).toBeGreaterThanOrEqual(900); // 1 MiB at 1 MiB/s
    await sink.sync();
    expect(sink.status()).toMatchObject({ used: 4 * framed, queuedBytes: 0, recordsWritten: 4 });
  });

  it('writes many small records in order, batched', async () => {
    const file = path.join(tmp.path, 'a.tap');
    const sink = fileSink({ path: file });
    await sink.load(1);
    for (let i = 0; i < 5000; i++) sink.write(indexRecord(i)); // more than one writev (1024 buffers) each
    await sink.sync();
    expect(await fileSize(file)).toBe(5000 * 12);
    const image = await readFile(file);
    for (const i of [0, 1, 255, 256, 1023, 4999]) {
      expect(image.readUInt32LE(i * 12)).toBe(4);
      expect(image.readUInt32LE(i * 12 + 4)).toBe(i);
      expect(image.readUInt32LE(i * 12 + 8)).toBe(4);
    }
  });
});

describe('FileSink locating over many objects', () => {
  const COUNT = 3000; // almost three ObjectIndex strides

  it('locates forward and backward across index strides', async () => {
    expect(ObjectIndex.STRIDE).toBe(1024);
    const sink = fileSink({ path: path.join(tmp.path, 'a.tap') });
    await sink.load(1);
    for (let i = 0; i < COUNT; i++) sink.write(indexRecord(i));
    await sink.sync();

    for (const target of [5, 1500, 2999, 10, 2050, 1024, 1023, 0, 2048, 2047]) {
      await sink.locate(target);
      expect(sink.position).toBe(target);
      expect(await nextIndex(sink)).toBe(target);
    }
    await sink.locate(COUNT);
    expect(await sink.next(true)).toEqual({ kind: 'blank' });
    await sink.locate(1025);
    expect(await sink.previous()).toBe('record');
    expect(await nextIndex(sink)).toBe(1024);
  });

  it('builds the index again when the image is loaded from disk', async () => {
    const file = path.join(tmp.path, 'a.tap');
    const writer = fileSink({ path: file });
    await writer.load(1);
    for (let i = 0; i < COUNT; i++) {
      writer.write(indexRecord(i));
      if (i % 700 === 699) writer.writeFilemarks(1); // filemarks are objects 700, 1401, 2102 and 2803
    }
    await writer.close();

    const sink = fileSink({ path: file });
    await sink.load(1);
    await sink.locate(2500);
    const expected = (object: number) => object - Math.floor(object / 701); // record index at an object
    expect(await nextIndex(sink)).toBe(expected(2500));
    for (const target of [3, 2103, 1500, 699, 1402]) {
      await sink.locate(target);
      expect(await nextIndex(sink)).toBe(expected(target));
    }
    await sink.locate(2102);
    expect(await sink.next(true)).toEqual({ kind: 'filemark' });
    expect(await nextIndex(sink)).toBe(2100);
    await sink.locate(700);
    expect(await sink.next(true)).toEqual({ kind: 'filemark' });
    expect(await sink.previous()).toBe('filemark');
    expect(await sink.previous()).toBe('record');
    expect(await nextIndex(sink)).toBe(699);
    await expect(sink.locate(COUNT + 5)).rejects.toMatchObject({ errno: 5 });
    await sink.locate(COUNT + 4);
    expect(await sink.atEnd()).toBe(true);
  });

  it('forgets positions past a truncation', async () => {
    const sink = fileSink({ path: path.join(tmp.path, 'a.tap') });
    await sink.load(1);
    for (let i = 0; i < COUNT; i++) sink.write(indexRecord(i));
    await sink.locate(1500);
    for (let i = 0; i < 100; i++) sink.write(indexRecord(100_000 + i)); // objects 1500-1599
    await sink.sync();

    await sink.locate(0);
    const err = await sink.locate(2100).catch((e: unknown) => e);
    expect((err as TapeError).errno).toBe(5);
    expect((err as TapeError).message).toContain('ends at object 1600, cannot reach 2100');
    await sink.locate(1599);
    expect(await nextIndex(sink)).toBe(100_099);
    await sink.locate(1499);
    expect(await nextIndex(sink)).toBe(1499);
    expect(await nextIndex(sink)).toBe(100_000);
  });
});

describe('ObjectIndex and WriteQueue', () => {
  it('remembers every STRIDE-th object and forgets them past a truncation', () => {
    const index = new ObjectIndex();
    index.passed(1024, 5000);
    index.passed(3072, 9999); // not contiguous with what is known: ignored
    index.passed(2048, 8000);
    index.passed(2049, 8010); // not a checkpoint
    expect(index.nearest(0)).toEqual({ object: 0, offset: 0 });
    expect(index.nearest(1023)).toEqual({ object: 0, offset: 0 });
    expect(index.nearest(1500)).toEqual({ object: 1024, offset: 5000 });
    expect(index.nearest(5000)).toEqual({ object: 2048, offset: 8000 });
    index.truncate(2047);
    expect(index.nearest(5000)).toEqual({ object: 1024, offset: 5000 });
    index.reset();
    expect(index.nearest(1500)).toEqual({ object: 0, offset: 0 });
  });

  it('counts queued bytes, wakes drain waiters and keeps the first failure', async () => {
    const q = new WriteQueue();
    q.added(100);
    const order: string[] = [];
    const at50 = q.drain(50).then(() => order.push(`<=50 at ${q.bytes}`));
    const at0 = q.drain(0).then(() => order.push(`<=0 at ${q.bytes}`));
    q.done(40);
    await Promise.resolve();
    expect(order).toEqual([]);
    q.done(20);
    await at50;
    expect(order).toEqual(['<=50 at 40']);

    const first = new Error('first');
    q.fail(first);
    q.fail(new Error('second'));
    await at0;
    expect(order).toEqual(['<=50 at 40', '<=0 at 0']);
    expect(q.failure).toBe(first);
    q.added(10);
    await q.drain(0); // a failed queue never blocks
    q.reset();
    expect([q.failure, q.bytes]).toEqual([undefined, 0]);
  });
});

// --- helpers ---

function fileSink(options: Partial<FileSinkOptions> & { path: string }): FileSink {
  const sink = new FileSink({ capacity: new Capacity(), readonly: false, fsync: true, ...options });
  sinks.push(sink);
  return sink;
}

function record(text: string): TapeObject {
  return { kind: 'record', data: Buffer.from(text) };
}

/** A 4-byte record holding its index. */
function indexRecord(i: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i, 0);
  return b;
}

async function nextIndex(sink: Sink): Promise<number> {
  const object = await sink.next(true);
  if (object.kind !== 'record') throw new Error(`expected a record, got ${object.kind}`);
  expect(object.data.length).toBe(4);
  return object.data.readUInt32LE(0);
}

/** Reads to end of data: record contents as text, 'FM' for filemarks. */
async function readRest(sink: Sink): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const object = await sink.next(true);
    if (object.kind === 'blank') return out;
    out.push(object.kind === 'record' ? object.data.toString() : 'FM');
  }
}

async function fileSize(file: string): Promise<number> {
  return (await stat(file)).size;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
