/**
 * Manifests and tapeproxy verify with the built daemon: two copies (one encrypted) written through
 * the drive, each volume's manifest next to each image, then copies doctored in every way a copy
 * can go wrong; verify names the volume, file and record, and exits 0, 1 or 2.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { readSessions } from '../../daemon/catalog/catalog.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import { type FileManifest, FileHasher, type VolumeManifest } from '../../daemon/manifest/manifest.js';
import { cli, imageObjects, startDaemon } from '../support/daemon.js';
import { writeImage } from '../support/images.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const path = (name: string) => join(dir.path, name);
const RECORD = 10240;
/** Files per volume, as record counts: volume 1 has two files, volume 2 one. */
const LAYOUT = [[40, 5], [30]];

let plain: string;
let encrypted: string;

beforeEach(async () => {
  await writeFile(path('k'), randomBytes(32), { mode: 0o600 });
  plain = path('a-%v.tap');
  encrypted = `encrypt:keyfile=${path('k')}|file:${path('b-%v.tap')}`;
  const daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${plain}`, '--sink', encrypted, '--catalog-dir', path('catalog')]);
  try {
    const s = await daemon.session('pnst0', { access: 'write' });
    for (const [v, files] of LAYOUT.entries()) {
      if (v > 0) {
        await s.mt(MtOp.MTOFFL);
        await s.mt(MtOp.MTLOAD);
      }
      for (const records of files) {
        for (let n = 0; n < records; n++) await s.write(randomBytes(RECORD));
        await s.mt(MtOp.MTWEOF, 1);
      }
    }
    await s.close();
  } finally {
    await daemon.stop();
  }
});

const verify = (...args: string[]) => cli(['verify', '--catalog-dir', path('catalog'), ...args]).then((r) => ({ ...r, out: r.stdout.toString() }));

/** Rewrites volume `volume` of image set `name` (a or b) with its objects changed by `change`. */
async function doctor(name: string, volume: number, change: (objects: (Buffer | null)[]) => void): Promise<void> {
  const image = path(`${name}-${volume}.tap`);
  const objects = await imageObjects(image);
  change(objects);
  await writeImage(image, objects);
}

describe('manifests', () => {
  it('each volume has one next to each image, describing its files; the catalog has the session', async () => {
    const manifest = JSON.parse(await readFile(path('a-1.tap.manifest.json'), 'utf8')) as VolumeManifest & { imageBytes: number };
    expect(manifest).toMatchObject({ format: 'tapeproxy-manifest-2', drive: 'pnst0', volume: 1, objects: 47 });
    expect(manifest.files.map((f) => [f.start, f.records, f.bytes, f.sizes, f.filemark])).toEqual([
      [0, 40, 40 * RECORD, [[RECORD, 40]], true],
      [41, 5, 5 * RECORD, [[RECORD, 5]], true],
    ]);
    expect(manifest.files[0]!.blake3).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.imageBytes).toBe((await readFile(path('a-1.tap'))).length);
    const encryptedManifest = JSON.parse(await readFile(path('b-1.tap.manifest.json'), 'utf8')) as VolumeManifest & { imageBytes: number };
    expect(encryptedManifest.files).toEqual(manifest.files);
    expect(encryptedManifest.imageBytes).toBe((await readFile(path('b-1.tap'))).length);

    const [session, ...more] = await readSessions(path('catalog'), 'pnst0');
    expect(more).toEqual([]);
    expect(session).toMatchObject({ drive: 'pnst0', unfinished: false, copies: [`file:${plain}`, `encrypt:keyfile=${path('k')}|file:${path('b-%v.tap')}`] });
    expect(session!.volumes.map((v) => [v.volume, v.files.length, v.files[0]!.blake3])).toEqual([
      [1, 2, manifest.files[0]!.blake3],
      [2, 1, expect.stringMatching(/^[0-9a-f]{64}$/)],
    ]);
  });

  it('one recorded by format 1 (SHA-256, by tapeproxy before BLAKE3) still verifies, and finds a changed record', async () => {
    const file = path('a-2.tap.manifest.json');
    const manifest = JSON.parse(await readFile(file, 'utf8')) as VolumeManifest;
    const hasher = new FileHasher('sha256');
    for (const object of await imageObjects(path('a-2.tap'))) if (object) hasher.add(object);
    const { digest, groups } = hasher.snapshot();
    const [{ blake3: _blake3, ...only }] = manifest.files as [FileManifest];
    await writeFile(file, JSON.stringify({ ...manifest, format: 'tapeproxy-manifest-1', files: [{ ...only, sha256: digest, groups }] }));
    expect((await verify(plain, '--volume', '2')).exitCode).toBe(0);

    await doctor('a', 2, (objects) => {
      objects[17]![5000]! ^= 1;
    });
    const r = await verify(plain, '--volume', '2');
    expect(r.exitCode).toBe(1);
    expect(r.out).toContain(`${plain}: file 0, records 0-29: content differs from the manifest`);
  });

  it('the digest covers record boundaries: the same bytes in other records differ', async () => {
    await doctor('a', 2, (objects) => {
      const [first, second] = [objects[0]!, objects[1]!];
      objects.splice(0, 2, first.subarray(0, 100), Buffer.concat([first.subarray(100), second]));
    });
    const r = await verify(plain);
    expect(r.exitCode).toBe(1);
    expect(r.out).toContain(`volume 2: DIFFERENT`);
    expect(r.out).toContain(`${plain}: file 0, record 0 (object 0): 100 bytes, the manifest says ${RECORD}`);
  });
});

describe('tapeproxy verify', () => {
  it('passes on good copies, plain and encrypted, and puts the verdict in the catalog', async () => {
    const r = await verify(plain, encrypted);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.out).toMatch(/^volume 1: OK: 2 copies match the manifest .*a-1\.tap\.manifest\.json \(session pnst0-\d+T\d+Z\); 2 files, 45 records, 460800 bytes$/m);
    expect(r.out).toMatch(/^volume 2: OK: 2 copies match .*; 1 files, 30 records/m);
    const [session] = await readSessions(path('catalog'), 'pnst0');
    expect(session!.verifications.map((v) => [v.volume, v.ok])).toEqual([
      [1, true],
      [2, true],
    ]);
  });

  it('a changed record: the volume, and the record where the copies part', async () => {
    await doctor('a', 2, (objects) => {
      objects[17]![5000]! ^= 1;
    });
    const r = await verify(plain, encrypted);
    expect(r.exitCode).toBe(1);
    expect(r.out).toMatch(/^volume 1: OK/m);
    expect(r.out).toContain(
      `volume 2: DIFFERENT (checked against the manifest ${path('a-2.tap.manifest.json')}`,
    );
    expect(r.out).toContain(`  ${plain}: file 0, records 0-29: content differs from the manifest; the copies first differ at file 0, record 17 (object 17): differs from ${encrypted}`);
    expect(r.out).not.toContain(`  ${encrypted}:`);
    expect(r.stderr).toContain('tapeproxy: verify: 1 of 2 volumes differ (2)');
    const [session] = await readSessions(path('catalog'), 'pnst0');
    expect(session!.verifications.find((v) => v.volume === 2)).toMatchObject({ ok: false, problems: [expect.stringContaining('record 17')] });
  });

  it('a missing record, and an extra one', async () => {
    await doctor('a', 1, (objects) => objects.splice(43, 1)); // file 1, record 2
    const missing = await verify(plain, encrypted);
    expect(missing.exitCode).toBe(1);
    expect(missing.out).toContain(
      `  ${plain}: file 1 ends after 4 records (object 45); the manifest has 5: records missing; the copies first differ at file 1, record 2 (object 43): differs from ${encrypted}`,
    );

    await doctor('a', 1, (objects) => objects.splice(10, 0, randomBytes(RECORD), Buffer.from(objects[43]!))); // back to 5, and one more in file 0
    const extra = await verify(plain, encrypted);
    expect(extra.exitCode).toBe(1);
    expect(extra.out).toContain(`  ${plain}: file 0, record 40 (object 40): an extra record (the manifest has 40 in file 0); the copies first differ at file 0, record 10 (object 10)`);
  });

  it('a moved, a changed and a missing record in the encrypted copy fail at that record', async () => {
    const volumeTwo = await imageObjects(path('b-2.tap'));
    await doctor('b', 1, (objects) => {
      objects[1 + 7] = volumeTwo[1 + 7]!; // the header is object 0: volume 2's record 7 in volume 1's place
    });
    const moved = await verify(plain, encrypted);
    expect(moved.exitCode).toBe(1);
    expect(moved.out).toContain(`  ${encrypted}: file 0, record 7 (object 7): EIO: encrypt:keyfile=`);
    expect(moved.out).toContain('volume 1, file 0, record 7: the encrypted record fails authentication');
    expect(moved.out).toMatch(/^volume 2: OK/m);

    await doctor('b', 1, (objects) => {
      objects[1 + 3]![200]! ^= 4;
    });
    const changed = await verify(encrypted, '--volume', '1');
    expect(changed.exitCode).toBe(1);
    expect(changed.out).toContain(`  ${encrypted}: file 0, record 3 (object 3): EIO`);

    await doctor('b', 2, (objects) => objects.splice(1 + 20, 1));
    const missing = await verify(encrypted, '--volume', '2');
    expect(missing.exitCode).toBe(1);
    expect(missing.out).toContain(`  ${encrypted}: file 0, record 20 (object 20): EIO`);
  });

  it('one copy alone, against its manifest; copies without a manifest, against each other', async () => {
    await doctor('a', 2, (objects) => {
      objects[17]![5000]! ^= 1;
    });
    const alone = await verify(plain, '--volume', '2');
    expect(alone.exitCode).toBe(1);
    expect(alone.out).toContain(`  ${plain}: file 0, records 0-29: content differs from the manifest`);

    await rm(path('a-2.tap.manifest.json'));
    await rm(path('b-2.tap.manifest.json'));
    const unmanifested = await verify(plain, encrypted, '--volume', '2');
    expect(unmanifested.exitCode).toBe(1);
    expect(unmanifested.out).toContain('volume 2: DIFFERENT (checked against each other (no manifest found))');
    expect(unmanifested.out).toContain(`  ${encrypted}: file 0, record 17 (object 17): content differs from ${plain}`);

    // The catalog still has the manifest: with --drive, verify uses it.
    const fromCatalog = await verify(plain, '--volume', '2', '--drive', 'pnst0');
    expect(fromCatalog.out).toContain(`checked against the manifest catalog ${path('catalog/pnst0.jsonl')}`);
    expect(fromCatalog.out).toContain('content differs from the manifest');
  });

  it('usage: exit 2 for copies that are not there or a bad manifest; --help has examples', async () => {
    const none = await verify(path('none-%v.tap'));
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('no copy holds volume 1');
    await writeFile(path('bad.json'), '{"format":"something else"}');
    expect((await verify(plain, '--manifest', path('bad.json'))).exitCode).toBe(2);
    expect((await verify('tape:/x')).exitCode).toBe(2);
    const help = await cli(['verify', '--help']);
    expect(help.stdout.toString()).toContain('Examples:');
  });
});
