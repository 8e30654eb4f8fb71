/**
 * The manifest recorder under the real drive and mirror, with image copies on disk: what it writes
 * next to the images when the drive writes, appends, rewrites, erases and changes volumes, and what
 * its journal says about sessions.
 */
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readSessions } from '../../daemon/catalog/catalog.js';
import { Journal, readJournal } from '../../daemon/catalog/journal.js';
import { type DriveHandle, PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import type { DriveEventBody } from '../../daemon/events/events.js';
import type { HashName } from '../../daemon/manifest/file-hash.js';
import { fileDigest, FileHasher, GROUP_RECORDS, type VolumeManifest } from '../../daemon/manifest/manifest.js';
import { ManifestRecorder } from '../../daemon/manifest/recorder.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { useTempDir } from '../support/temp-dir.js';

const tmp = useTempDir();
const drives: PseudoDrive[] = [];
const mirrors: Mirror[] = [];
afterEach(async () => {
  for (const d of drives.splice(0)) await d.shutdown().catch(() => undefined);
  for (const m of mirrors.splice(0)) await m.close().catch(() => undefined);
});

/** What the recorder is doing about the last close (the daemon starts it on the drive's 'closed' event). */
let closing: Promise<void> = Promise.resolve();

/** A drive pnst0 over one image copy a-%v.tap, recording manifests (with `hash`) and a journal. */
async function drive(capacity = new Capacity(), hash: HashName = 'blake3'): Promise<{ fd: DriveHandle; drive: PseudoDrive; journal: string }> {
  const template = path.join(tmp.path, 'a-%v.tap');
  const journal = path.join(tmp.path, 'catalog', 'pnst0.jsonl');
  const sink = new FileSink({ path: template, capacity, readonly: false, fsync: false });
  const recorder = new ManifestRecorder({ drive: 'pnst0', copies: [sink.name], images: [{ template, sink, stages: [] }], journal: new Journal(journal), hash, log: () => undefined });
  const mirror = new Mirror([sink], { window: 1 << 20, recorder });
  const events = (e: DriveEventBody) => {
    if (e.type === 'closed') closing = recorder.writerClosed(mirror.pastEarlyWarning);
  };
  const d = new PseudoDrive('pnst0', mirror, { maxRecord: 1 << 20, autoload: true, events });
  await d.start();
  drives.push(d);
  mirrors.push(mirror);
  return { drive: d, fd: await d.open({ access: 'read-write' }), journal };
}

const record = (n: number, size = 1000) => Buffer.alloc(size, n);

/** A daemon run that wrote one file of one record to volume 1 and stopped. */
async function oneFileInAnEarlierRun(hash: HashName = 'blake3'): Promise<void> {
  const first = await drive(undefined, hash);
  await first.fd.write(record(1));
  await first.fd.ioctl(MtOp.MTWEOF, 1);
  await first.fd.close();
  await first.drive.shutdown();
  await mirrors.pop()!.close();
}

async function manifest(volume = 1): Promise<VolumeManifest> {
  return JSON.parse(await readFile(path.join(tmp.path, `a-${volume}.tap.manifest.json`), 'utf8')) as VolumeManifest;
}

/** The digest of a file of these records, by the manifest's code. */
function digestOf(records: Buffer[], hash: HashName = 'blake3'): string {
  const h = new FileHasher(hash);
  for (const r of records) h.add(r);
  return h.snapshot().digest;
}

/** The hashes, from their own libraries: the definition is checked against them, not against itself. */
const reference: Record<HashName, (data: Buffer) => string> = {
  blake3: (data) => new Blake3Hasher().update(data).digest('hex'),
  sha256: (data) => createHash('sha256').update(data).digest('hex'),
};

describe('manifest recorder', () => {
  it('describes each file: start, records, sizes, filemark, content and digest', async () => {
    const { fd } = await drive();
    const first = [record(1), record(2), record(3, 500)];
    for (const r of first) await fd.write(r);
    await fd.ioctl(MtOp.MTWEOF, 2); // file 1 has no records
    await fd.write(record(4));
    await fd.ioctl(MtOp.MTNOP, 1); // a sync point: file 2 has no filemark yet
    const m = await manifest();
    expect(m.files.map((f) => [f.start, f.records, f.bytes, f.sizes, f.filemark, f.content])).toEqual([
      [0, 3, 2500, [[1000, 2], [500, 1]], true, 'unknown'],
      [4, 0, 0, [], true, 'empty'],
      [5, 1, 1000, [[1000, 1]], false, 'unknown'],
    ]);
    expect(m.format).toBe('tapeproxy-manifest-2');
    expect(m.files.map((f) => f.blake3)).toEqual([digestOf(first), fileDigest('blake3', 0, []), digestOf([record(4)])]);
    expect(m.files.every((f) => !('sha256' in f))).toBe(true);
    expect(m.objects).toBe(6);
  });

  it.each([
    ['blake3', 'tapeproxy-manifest-2\n'],
    ['sha256', 'tapeproxy-manifest-1\n'],
  ] as const)('groups of 1024 records each have a digest; the file digest is over them (%s)', async (hash, prefix) => {
    const { fd } = await drive(undefined, hash);
    const records = Array.from({ length: GROUP_RECORDS + 5 }, (_, i) => record(i % 256, 100));
    for (const r of records) await fd.write(r);
    await fd.ioctl(MtOp.MTWEOF, 1);
    const [file] = (await manifest()).files;
    const framed = (rs: Buffer[]) => reference[hash](Buffer.concat(rs.flatMap((r) => [Buffer.from([0, 0, r.length >> 8, r.length & 255]), r])));
    expect(file!.groups).toEqual([framed(records.slice(0, GROUP_RECORDS)), framed(records.slice(GROUP_RECORDS))]);
    const count = Buffer.alloc(8);
    count.writeBigUInt64BE(BigInt(records.length));
    expect(file![hash]).toBe(reference[hash](Buffer.concat([Buffer.from(prefix), count, ...file!.groups.map((g) => Buffer.from(g, 'hex'))])));
    expect(file![hash]).toBe(digestOf(records, hash));
  });

  it('appending after mt eod in a later run continues the manifest found next to the image', async () => {
    await oneFileInAnEarlierRun();
    const before = await manifest();

    const again = await drive();
    await again.fd.ioctl(MtOp.MTEOM, 1);
    await again.fd.write(record(2));
    await again.fd.ioctl(MtOp.MTWEOF, 1);
    const after = await manifest();
    expect(after.files[0]).toEqual(before.files[0]);
    expect(after.files[1]).toMatchObject({ start: 2, records: 1, blake3: digestOf([record(2)]) });
    expect(after.files[1]!.session).not.toBe(after.files[0]!.session);
  });

  it('a volume recorded by format 1 (SHA-256) is continued: its files keep their digests, new files get BLAKE3', async () => {
    await oneFileInAnEarlierRun('sha256');
    // As tapeproxy wrote it before format 2: every digest under `sha256`, the format 1 definition.
    const file = path.join(tmp.path, 'a-1.tap.manifest.json');
    const old = await manifest();
    const digest = 'per record: u32be length | bytes; sha256 per group of 1024 records; file sha256 = sha256("tapeproxy-manifest-1\\n" | u64be records | group digests)';
    await writeFile(file, JSON.stringify({ ...old, format: 'tapeproxy-manifest-1', digest }));
    expect(old.files[0]!.sha256).toBe(digestOf([record(1)], 'sha256'));

    const again = await drive();
    await again.fd.ioctl(MtOp.MTEOM, 1);
    await again.fd.write(record(2));
    await again.fd.ioctl(MtOp.MTWEOF, 1);
    const after = await manifest();
    expect(after.format).toBe('tapeproxy-manifest-2');
    expect(after.unrecordedBefore).toBeUndefined();
    expect(after.files[0]).toEqual(old.files[0]);
    expect(after.files[1]).toMatchObject({ start: 2, records: 1, blake3: digestOf([record(2)]) });
    expect('sha256' in after.files[1]!).toBe(false);
  });

  it('an image changed behind its manifest is recorded from where writing began', async () => {
    await oneFileInAnEarlierRun();
    const image = path.join(tmp.path, 'a-1.tap');
    await writeFile(image, Buffer.concat([await readFile(image), await readFile(image)])); // two files now

    const again = await drive();
    await again.fd.ioctl(MtOp.MTEOM, 1);
    await again.fd.write(record(2));
    await again.fd.ioctl(MtOp.MTWEOF, 1);
    const m = await manifest();
    expect(m.unrecordedBefore).toBe(4);
    expect(m.files).toHaveLength(1);
    expect(m.files[0]).toMatchObject({ start: 4, records: 1 });
  });

  it('writing inside a file keeps its first records and gives up its digest; at a file boundary, only later files go', async () => {
    const { fd } = await drive();
    for (let n = 0; n < 4; n++) await fd.write(record(n));
    await fd.ioctl(MtOp.MTWEOF, 1);
    for (let n = 0; n < 3; n++) await fd.write(record(10 + n));
    await fd.ioctl(MtOp.MTWEOF, 1);

    await fd.ioctl(MtOp.MTSEEK, 5); // the start of file 1
    await fd.write(record(20));
    await fd.ioctl(MtOp.MTWEOF, 1);
    let m = await manifest();
    expect(m.files.map((f) => [f.start, f.records, f.blake3])).toEqual([
      [0, 4, digestOf([0, 1, 2, 3].map((n) => record(n)))],
      [5, 1, digestOf([record(20)])],
    ]);

    await fd.ioctl(MtOp.MTSEEK, 2); // inside file 0
    await fd.write(record(30));
    await fd.ioctl(MtOp.MTWEOF, 1);
    m = await manifest();
    expect(m.files.map((f) => [f.start, f.records, f.bytes, f.filemark, f.blake3, f.groups])).toEqual([[0, 3, 3000, true, null, []]]);
    expect(m.objects).toBe(4);
  });

  it('a backup over volumes is one session; a writer closing short of early warning ends it', async () => {
    const { fd, drive: d, journal } = await drive(new Capacity(10_000, 3_000));
    for (let n = 0; n < 7; n++) await fd.write(record(n)); // the 7th crosses early warning (at 7,000 bytes)
    await fd.close(); // past early warning: the backup goes on on the next volume
    const next = await d.open({ access: 'write' }); // autoload: volume 2
    await next.write(record(9));
    await next.close(); // short of early warning: the session ends
    const again = await d.open({ access: 'write' });
    await again.write(record(10));
    await again.close();
    await closing;
    const sessions = await readSessions(path.dirname(journal));
    expect(sessions.map((s) => [s.volumes.map((v) => [v.volume, v.files.filter((f) => f.session === s.session).map((f) => f.records)]), s.unfinished])).toEqual([
      [[[1, [7]], [2, [1]]], false],
      [[[2, [1]]], false],
    ]);
    // A session's end is journaled as the close happens, so the next session's start may come before it.
    const entries = (await readJournal(journal)) as { type: string; session: string }[];
    expect(sessions.map((s) => entries.filter((e) => e.session === s.session).map((e) => e.type))).toEqual([
      ['session', 'volume', 'volume', 'end'],
      ['session', 'volume', 'end'],
    ]);
  });

  it('a copy that failed: its manifest says where and why, once for good, and the catalog keeps it', async () => {
    const template = path.join(tmp.path, 'a-%v.tap');
    const journal = path.join(tmp.path, 'catalog', 'pnst0.jsonl');
    const sink = new FileSink({ path: template, capacity: new Capacity(), readonly: false, fsync: false });
    const recorder = new ManifestRecorder({ drive: 'pnst0', copies: [sink.name], images: [{ template, sink, stages: [] }], journal: new Journal(journal), hash: 'blake3', log: () => undefined });
    const mirror = new Mirror([sink], { window: 1 << 20, recorder });
    const d = new PseudoDrive('pnst0', mirror, { maxRecord: 1 << 20, autoload: true });
    await d.start();
    drives.push(d);
    mirrors.push(mirror);
    const fd = await d.open({ access: 'write' });
    for (let n = 0; n < 3; n++) await fd.write(record(n));
    await fd.ioctl(MtOp.MTWEOF, 1);
    for (let n = 3; n < 5; n++) await fd.write(record(n));
    await fd.ioctl(MtOp.MTNOP, 1); // a sync point: the manifest is written
    // Object 5 is the second record of file 1 (objects 0-2 records, 3 the filemark, 4-5 file 1).
    expect(recorder.place(5)).toEqual({ fileno: 1, record: 1 });
    recorder.copyFailed(sink, { volume: 1, object: 5, ...recorder.place(5), error: 'EIO: the disk said no', setAside: true });
    await fd.write(record(5));
    await fd.close();
    await closing;
    await recorder.close();
    const m = (await manifest()) as VolumeManifest & { incomplete?: Record<string, unknown> };
    expect(m.incomplete).toMatchObject({ volume: 1, object: 5, fileno: 1, record: 1, error: 'EIO: the disk said no', setAside: true });
    expect(m.files.map((f) => f.records)).toEqual([3, 2]); // as it was when the copy failed: not updated since
    const [session] = await readSessions(path.dirname(journal));
    expect(session!.failures).toMatchObject([{ copy: sink.name, volume: 1, object: 5, fileno: 1, record: 1, setAside: true }]);
  });
});
