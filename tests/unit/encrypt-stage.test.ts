/**
 * The encrypt stage under the real pseudo drive and mirror, over in-memory and image copies: records
 * come back as written, positions are the drive's own, and a changed, swapped or moved record is
 * an EIO at that record, never data.
 */
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KeySource } from '../../daemon/crypto/keys.js';
import { RECORD_OVERHEAD } from '../../daemon/crypto/record-cipher.js';
import { HEADER_BYTES, isHeader, parseHeader } from '../../daemon/crypto/volume-header.js';
import { type DriveHandle, PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import { RecordPool } from '../../daemon/drive/record-pool.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { MemorySink } from '../../daemon/sinks/memory-sink.js';
import type { Sink } from '../../daemon/sinks/sink.js';
import { sinkFromUri, SinkUriError } from '../../daemon/sinks/sink-uri.js';
import { EncryptStage } from '../../daemon/stages/encrypt-stage.js';
import { framedSize } from '../../daemon/sinks/simh-tap.js';
import { imageObjects } from '../support/daemon.js';
import { expectErrno } from '../support/errno.js';
import { useTempDir } from '../support/temp-dir.js';

const tmp = useTempDir();
const open: Sink[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
});

const KEY = KeySource.fromEnv('K', { K: 'ab'.repeat(32) });
const OTHER_KEY = KeySource.fromEnv('K', { K: 'cd'.repeat(32) });

interface Logged {
  message: string;
  fields: Record<string, unknown>;
}

function stage(lower: Sink, key = KEY, logged: Logged[] = [], ringBytes?: number): EncryptStage {
  const s = new EncryptStage(lower, key, (message, fields) => logged.push({ message, fields }), undefined, ringBytes);
  open.push(s);
  return s;
}

/** A drive over the given copies, opened for reading and writing. */
async function driveOver(...sinks: Sink[]): Promise<{ drive: PseudoDrive; fd: DriveHandle; mirror: Mirror }> {
  const mirror = new Mirror(sinks, { window: 4 << 20 });
  const drive = new PseudoDrive('pnst0', mirror, { maxRecord: 1 << 20, autoload: true });
  await drive.start();
  return { drive, mirror, fd: await drive.open({ access: 'read-write' }) };
}

/** Distinct records: record n of file f is `size` bytes of a pattern that names both. */
function rec(f: number, n: number, size = 3000): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32BE(((f << 20) | (n << 4) | (i & 15)) >>> 0, i);
  return b;
}

/** Writes `files` tape files of `records` records each (a filemark after each). */
async function writeFiles(fd: DriveHandle, files: number, records: number, firstFile = 0): Promise<void> {
  for (let f = firstFile; f < firstFile + files; f++) {
    for (let n = 0; n < records; n++) await fd.write(rec(f, n));
    await fd.ioctl(MtOp.MTWEOF, 1);
  }
}

/** Reads up to end of data: record contents as "f/n" labels (via rec()), filemarks as "FM". */
async function readAll(fd: DriveHandle): Promise<string[]> {
  const out: string[] = [];
  for (let zeros = 0; zeros < 2; ) {
    const data = await fd.read(1 << 20);
    if (data.length === 0) {
      zeros++;
      if (zeros === 1) out.push('FM');
      continue;
    }
    zeros = 0;
    out.push(label(data));
  }
  return out;
}

function label(data: Buffer): string {
  const w = data.readUInt32BE(0);
  const l = `${w >>> 20}/${(w >>> 4) & 0xffff}`;
  return data.equals(rec(w >>> 20, (w >>> 4) & 0xffff, data.length)) ? l : `?${l}`;
}

describe('encrypt stage: writing and reading through the drive', () => {
  it('returns the records as written, while the copy holds a header and sealed records only', async () => {
    const plain = new MemorySink('plain', new Capacity());
    const cipherMem = new MemorySink('cipher', new Capacity());
    const { fd, drive } = await driveOver(stage(cipherMem), plain);
    await writeFiles(fd, 2, 5);
    await fd.ioctl(MtOp.MTREW, 1);
    expect(await readAll(fd)).toEqual(['0/0', '0/1', '0/2', '0/3', '0/4', 'FM', '1/0', '1/1', '1/2', '1/3', '1/4', 'FM']);
    await fd.close();
    await drive.shutdown();

    const objects = cipherMem.contents(1);
    expect(objects).toHaveLength(1 + 12);
    const header = parseHeader(objects[0]!);
    expect(header.volume).toBe(1);
    expect(objects[0]!.length).toBe(HEADER_BYTES);
    const plainObjects = plain.contents(1);
    for (const [i, o] of plainObjects.entries()) {
      const sealed = objects[i + 1]!;
      if (o === null) expect(sealed).toBeNull();
      else {
        expect(sealed.length).toBe(o.length + RECORD_OVERHEAD);
        expect(sealed.includes(o.subarray(100, 117))).toBe(false);
      }
    }
  });

  it('keeps the drive position: MTIOCPOS, spacing, locate and status agree with a plain copy', async () => {
    const { fd } = await driveOver(stage(new MemorySink('c', new Capacity())), new MemorySink('p', new Capacity()));
    await writeFiles(fd, 3, 4);
    expect(await fd.position()).toBe(15);
    await fd.ioctl(MtOp.MTREW, 1);
    await fd.ioctl(MtOp.MTFSF, 2);
    expect(label(await fd.read(1 << 20))).toBe('2/0');
    await fd.ioctl(MtOp.MTBSR, 1);
    expect(label(await fd.read(1 << 20))).toBe('2/0');
    await fd.ioctl(MtOp.MTFSR, 2);
    expect(label(await fd.read(1 << 20))).toBe('2/3');
    await fd.ioctl(MtOp.MTSEEK, 6);
    expect(label(await fd.read(1 << 20))).toBe('1/1');
    await fd.ioctl(MtOp.MTBSF, 1);
    expect(await fd.position()).toBe(4);
    expect(await fd.read(1 << 20)).toHaveLength(0); // the filemark after file 0
    expect(label(await fd.read(1 << 20))).toBe('1/0');
    expect(await fd.position()).toBe(6);
  });

  it('reads with the encrypted copy first, and with it alone', async () => {
    const cipherMem = new MemorySink('c', new Capacity());
    const first = await driveOver(stage(cipherMem), new MemorySink('p', new Capacity()));
    await writeFiles(first.fd, 2, 3);
    await first.fd.close();
    await first.drive.shutdown();

    const { fd } = await driveOver(stage(cipherMem));
    expect(await readAll(fd)).toEqual(['0/0', '0/1', '0/2', 'FM', '1/0', '1/1', '1/2', 'FM']);
  });

  it('appends after mt eod, and overwrites from the middle, on a volume it did not write', async () => {
    const cipherMem = new MemorySink('c', new Capacity());
    const first = await driveOver(stage(cipherMem), new MemorySink('p', new Capacity()));
    await writeFiles(first.fd, 2, 3);
    await first.fd.close();

    // A new stage (as after a daemon restart), positioned without reading: eod, then write.
    const again = await driveOver(stage(cipherMem));
    await again.fd.ioctl(MtOp.MTEOM, 1);
    await writeFiles(again.fd, 1, 2, 2);
    await again.fd.ioctl(MtOp.MTREW, 1);
    expect(await readAll(again.fd)).toEqual(['0/0', '0/1', '0/2', 'FM', '1/0', '1/1', '1/2', 'FM', '2/0', '2/1', 'FM']);
    await again.fd.close();

    // A third one seeks into file 1 and writes there: the rest is gone, the new records read back.
    const third = await driveOver(stage(cipherMem));
    await third.fd.ioctl(MtOp.MTSEEK, 5);
    await third.fd.write(rec(9, 9));
    await third.fd.ioctl(MtOp.MTWEOF, 1);
    await third.fd.ioctl(MtOp.MTREW, 1);
    expect(await readAll(third.fd)).toEqual(['0/0', '0/1', '0/2', 'FM', '1/0', '9/9', 'FM']);
  });

  it('rewriting from BOT starts the volume afresh with a new header', async () => {
    const cipherMem = new MemorySink('c', new Capacity());
    const { fd } = await driveOver(stage(cipherMem));
    await writeFiles(fd, 2, 2);
    const firstHeader = Buffer.from(cipherMem.contents(1)[0]!);
    await fd.ioctl(MtOp.MTREW, 1);
    await writeFiles(fd, 1, 1, 5);
    await fd.ioctl(MtOp.MTREW, 1);
    expect(await readAll(fd)).toEqual(['5/0', 'FM']);
    expect(cipherMem.contents(1)).toHaveLength(3);
    expect(cipherMem.contents(1)[0]!.equals(firstHeader)).toBe(false);
  });

  it('works over an image file, header and all', async () => {
    const image = path.join(tmp.path, 'c-%v.tap');
    const { fd, drive } = await driveOver(stage(new FileSink({ path: image, capacity: new Capacity(), readonly: false, fsync: false })));
    await writeFiles(fd, 2, 3);
    await fd.ioctl(MtOp.MTREW, 1);
    expect(await readAll(fd)).toEqual(['0/0', '0/1', '0/2', 'FM', '1/0', '1/1', '1/2', 'FM']);
    await fd.close();
    await drive.shutdown();
    const objects = await imageObjects(path.join(tmp.path, 'c-1.tap'));
    expect(objects).toHaveLength(9);
    expect(isHeader(objects[0]!)).toBe(true);
  });

  it('records larger than a batch buffer (1 MiB and 4 MiB) come back whole', async () => {
    const image = path.join(tmp.path, 'big-%v.tap');
    const mirror = new Mirror([stage(new FileSink({ path: image, capacity: new Capacity(), readonly: false, fsync: false }))], { window: 16 << 20 });
    const drive = new PseudoDrive('pnst0', mirror, { maxRecord: 4 << 20, autoload: true });
    await drive.start();
    const fd = await drive.open({ access: 'read-write' });
    const records = [randomBytes(1 << 20), randomBytes(4 << 20), randomBytes(1000)];
    for (const r of records) await fd.write(r);
    await fd.ioctl(MtOp.MTREW, 1);
    for (const r of records) expect((await fd.read(4 << 20)).equals(r)).toBe(true);
  });

  it('pooled records reused at once, sealed batches behind a slow image: every record reads back as written', async () => {
    // The stage reads a pooled record where it is until sealed, and reuses the space of a sealed
    // batch in its ring only once the image has written all its records: a mistake in either
    // shows as a record that does not decrypt. The ring (2 MiB) is smaller than what waits for the
    // image, so it goes round many times, and is full at times (a batch sealed elsewhere).
    const pool = new RecordPool();
    const image = new FileSink({ path: path.join(tmp.path, 'slow-%v.tap'), capacity: new Capacity(), readonly: false, fsync: false, rate: 20e6 });
    const mirror = new Mirror([stage(image, KEY, [], 2 << 20)], { window: 16 << 20 });
    await mirror.loadNext();
    const count = 384; // 24 MiB
    let waiting = 0;
    for (let n = 0; n < count; n++) {
      const record = pool.take(64 * 1024);
      rec(0, n, 64 * 1024).copy(record.data);
      const release = record.hold(); // the writer's own hold, as the shim connection's
      await mirror.write(record.data, record);
      release();
      waiting = Math.max(waiting, image.queuedBytes);
      await nextTurn(); // as the shim's socket reads do: sealed batches come back meanwhile
    }
    expect(waiting).toBeGreaterThan(4 << 20); // sealed batches waited in the image's queue
    const drive = new PseudoDrive('pnst0', mirror, { maxRecord: 1 << 20, autoload: true });
    const fd = await drive.open({ access: 'read' });
    await fd.ioctl(MtOp.MTREW, 1);
    const labels: string[] = [];
    for (let n = 0; n < count; n++) labels.push(label(await fd.read(1 << 20)));
    expect(labels).toEqual(Array.from({ length: count }, (_, n) => `0/${n}`));
  });

  it('a slow copy behind the stage holds the writer back: its queue stays within the window', async () => {
    const slow = stage(new FileSink({ path: path.join(tmp.path, 'slow.tap'), capacity: new Capacity(), readonly: false, fsync: false, rate: 40 << 20 }));
    const window = 1 << 20;
    const mirror = new Mirror([new MemorySink('fast', new Capacity()), slow], { window });
    const drive = new PseudoDrive('pnst0', mirror, { maxRecord: 1 << 20, autoload: true });
    await drive.start();
    const fd = await drive.open({ access: 'write' });
    let most = 0;
    for (let n = 0; n < 48; n++) {
      await fd.write(rec(0, n, 256 * 1024));
      most = Math.max(most, slow.queuedBytes);
    }
    expect(most).toBeGreaterThan(window / 2);
    expect(most).toBeLessThanOrEqual(window + framedSize(256 * 1024 + RECORD_OVERHEAD));
    await fd.close();
  });

  it('reaches early warning with the larger records counted, before a plain copy of the same size', async () => {
    const cipherMem = new MemorySink('c', new Capacity(100_000, 20_000));
    const plain = new MemorySink('p', new Capacity(100_000, 20_000));
    const { fd } = await driveOver(stage(cipherMem), plain);
    let written = 0;
    for (;;) {
      await fd.write(rec(0, written, 1000));
      written++;
      if ((await fd.status()).gstat & 0x20000000) break; // GMT_EOT
    }
    // 80,000 bytes to early warning: the plain copy holds 79 records of 1008 bytes before it, the
    // encrypted one 77 of 1036 (after a 98-byte header), so the 78th crosses.
    expect(written).toBe(78);
    expect(plain.earlyWarning).toBe(false);
    expect(cipherMem.earlyWarning).toBe(true);
  });
});

describe('encrypt stage: tampering is an EIO at that record', () => {
  async function writtenVolumes(volumes: number, records = 4): Promise<MemorySink> {
    const cipherMem = new MemorySink('c', new Capacity());
    const { fd, drive } = await driveOver(stage(cipherMem));
    for (let v = 1; v <= volumes; v++) {
      for (let n = 0; n < records; n++) await fd.write(rec(v, n));
      await fd.ioctl(MtOp.MTWEOF, 1);
      if (v < volumes) {
        await fd.ioctl(MtOp.MTOFFL, 1);
        await fd.ioctl(MtOp.MTLOAD, 1);
      }
    }
    await fd.close();
    await drive.shutdown();
    return cipherMem;
  }

  /** Reads volume 1 through a new stage; returns what each read gave (label, 'FM' or the errno). */
  async function readVolume(cipherMem: MemorySink, reads: number, logged: Logged[] = []): Promise<string[]> {
    const { fd } = await driveOver(stage(cipherMem, KEY, logged));
    const out: string[] = [];
    for (let i = 0; i < reads; i++) {
      try {
        const data = await fd.read(1 << 20);
        out.push(data.length === 0 ? 'FM' : label(data));
      } catch (err) {
        out.push((err as Error).message.split(':')[0]!);
      }
    }
    return out;
  }

  it('one flipped byte', async () => {
    const cipherMem = await writtenVolumes(1);
    cipherMem.contents(1)[3]![40]! ^= 0x01; // object 3 = record 2 of file 0
    const logged: Logged[] = [];
    expect(await readVolume(cipherMem, 5, logged)).toEqual(['1/0', '1/1', 'EIO', 'EIO', 'EIO']);
    expect(logged.map((l) => l.message)).toContainEqual(expect.stringContaining('volume 1, file 0, record 2: the encrypted record fails authentication'));
    expect(logged.find((l) => l.fields.record === 2)?.fields).toMatchObject({ volume: 1, file: 0, record: 2 });
  });

  it('the record after a bad one is readable once the bad one is spaced over', async () => {
    const cipherMem = await writtenVolumes(1);
    cipherMem.contents(1)[2]![40]! ^= 0x80;
    const { fd } = await driveOver(stage(cipherMem));
    expect(label(await fd.read(1 << 20))).toBe('1/0');
    await expectErrno(fd.read(1 << 20), 'EIO');
    expect(await fd.position()).toBe(1);
    await fd.ioctl(MtOp.MTFSR, 1);
    expect(label(await fd.read(1 << 20))).toBe('1/2');
  });

  it('two records swapped', async () => {
    const cipherMem = await writtenVolumes(1);
    const objects = cipherMem.contents(1);
    [objects[2], objects[3]] = [objects[3]!, objects[2]!];
    expect(await readVolume(cipherMem, 3)).toEqual(['1/0', 'EIO', 'EIO']);
  });

  it('a record moved to another volume, and a record moved across a filemark', async () => {
    const cipherMem = await writtenVolumes(2);
    cipherMem.contents(1)[3] = cipherMem.contents(2)[3]!; // volume 2's record 2 put in volume 1's place
    expect(await readVolume(cipherMem, 4)).toEqual(['1/0', '1/1', 'EIO', 'EIO']);

    const filemarks = await writtenVolumes(1);
    const objects = filemarks.contents(1);
    objects.splice(3, 0, null); // a filemark inserted: records 2 and 3 now look like file 1's
    expect(await readVolume(filemarks, 4)).toEqual(['1/0', '1/1', 'FM', 'EIO']);
  });

  it('a whole volume copied into another volume slot', async () => {
    const cipherMem = await writtenVolumes(2);
    cipherMem.contents(1).splice(0, Infinity, ...cipherMem.contents(2));
    const logged: Logged[] = [];
    const out = await readVolume(cipherMem, 1, logged);
    expect(out).toEqual(['EIO']);
    expect(logged[0]?.message).toContain('its header says it is volume 2');
  });
});

describe('encrypt stage: keys and headers', () => {
  it('another key cannot read, and says so; it may rewrite the volume from BOT', async () => {
    const cipherMem = new MemorySink('c', new Capacity());
    const first = await driveOver(stage(cipherMem));
    await writeFiles(first.fd, 1, 2);
    await first.fd.close();

    const logged: Logged[] = [];
    const { fd } = await driveOver(stage(cipherMem, OTHER_KEY, logged));
    const err = await expectErrno(fd.read(1 << 20), 'EIO');
    expect(err.message).toMatch(/volume 1 cannot be read: it was encrypted with key [0-9a-f]{16}, and this key is [0-9a-f]{16} \(wrong key or passphrase\?\)/);
    expect(logged[0]?.message).toContain('cannot be read with this key');
    // Appending is refused (the volume is not ours) ...
    await expectErrno(fd.ioctl(MtOp.MTEOM, 1), 'EIO');
    // ... writing from BOT makes it ours.
    await fd.ioctl(MtOp.MTREW, 1);
    await writeFiles(fd, 1, 1, 7);
    await fd.ioctl(MtOp.MTREW, 1);
    expect(await readAll(fd)).toEqual(['7/0', 'FM']);
  });

  it('a volume without a header is not read as encrypted', async () => {
    const plain = new MemorySink('p', new Capacity());
    const first = await driveOver(plain);
    await writeFiles(first.fd, 1, 2);
    await first.fd.close();
    const { fd } = await driveOver(stage(plain));
    const err = await expectErrno(fd.read(1 << 20), 'EIO');
    expect(err.message).toContain('its first record is not an encryption header');
  });

  it('a passphrase file: the header carries the scrypt salt, and the passphrase alone reads it back', async () => {
    const file = path.join(tmp.path, 'pass');
    await writeFile(file, 'correct horse battery staple\n', { mode: 0o600 });
    const cipherMem = new MemorySink('c', new Capacity());
    const first = await driveOver(stage(cipherMem, KeySource.fromFile(file)));
    await writeFiles(first.fd, 1, 2);
    await first.fd.close();
    const header = parseHeader(cipherMem.contents(1)[0]!);
    expect(header.kdf).toMatchObject({ kind: 'scrypt', log2n: 17, r: 8, p: 1 });

    const { fd } = await driveOver(stage(cipherMem, KeySource.fromFile(file)));
    expect(await readAll(fd)).toEqual(['0/0', '0/1', 'FM']);
    const wrong = await driveOver(stage(cipherMem, KeySource.fromEnv('P', { P: 'correct horse battery stapler' })));
    expect((await expectErrno(wrong.fd.read(1 << 20), 'EIO')).message).toContain('wrong key or passphrase');
  });

  it('key files: raw 32 bytes and hex work; group- or world-readable and empty files are refused clearly', async () => {
    const raw = path.join(tmp.path, 'raw');
    await writeFile(raw, randomBytes(32), { mode: 0o600 });
    expect(KeySource.fromFile(raw).newVolumeKdf()).toEqual({ kind: 'raw' });
    const hex = path.join(tmp.path, 'hex');
    await writeFile(hex, `${'0f'.repeat(32)}\n`, { mode: 0o400 });
    expect(KeySource.fromFile(hex).newVolumeKdf()).toEqual({ kind: 'raw' });

    await chmod(raw, 0o640);
    expect(() => sinkFromUri(`encrypt:keyfile=${raw}|mem:x`)).toThrow(new RegExp(`key file ${raw} is accessible by group or others \\(mode 0640\\): run chmod 600`));
    expect(() => sinkFromUri(`encrypt:keyfile=${raw}|mem:x`)).toThrow(SinkUriError);
    const empty = path.join(tmp.path, 'empty');
    await writeFile(empty, '\n', { mode: 0o600 });
    expect(() => sinkFromUri(`encrypt:keyfile=${empty}|mem:x`)).toThrow(/is empty/);
    expect(() => sinkFromUri(`encrypt:keyfile=${tmp.path}/missing|mem:x`)).toThrow(/cannot read key file .*missing: ENOENT/);
    expect(() => sinkFromUri('encrypt:keyenv=TAPEPROXY_TEST_UNSET_KEY|mem:x')).toThrow(/TAPEPROXY_TEST_UNSET_KEY .*not set/);
    expect(() => sinkFromUri('encrypt:|mem:x')).toThrow(/needs one of keyfile=PATH or keyenv=NAME/);
    expect(() => sinkFromUri(`encrypt:keyfile=${hex}&cipher=des|mem:x`)).toThrow(/unknown parameter 'cipher'/);
  });

  it('the key never shows in names, status or messages', async () => {
    const secret = 'ab'.repeat(32);
    process.env.TAPEPROXY_TEST_KEY = secret;
    try {
      const s = sinkFromUri('encrypt:keyenv=TAPEPROXY_TEST_KEY|mem:x');
      open.push(s);
      expect(s.name).toBe('encrypt:keyenv=TAPEPROXY_TEST_KEY|mem:x');
      await s.load(1);
      s.write(Buffer.from('hello'));
      await s.sync();
      const shown = JSON.stringify([s.name, s.status(), KEY, String(KEY)]);
      expect(shown).not.toContain(secret);
      expect(shown).not.toContain(Buffer.from(secret, 'hex').toString('base64'));
    } finally {
      delete process.env.TAPEPROXY_TEST_KEY;
    }
  });
});
