/**
 * An encrypted copy next to a plain one, through the built daemon: GNU tar -M on the drive's FUSE
 * file, the encrypted images holding no plaintext, a restore through the drive with the key; and
 * records changed, swapped or moved between volumes in the image files failing with EIO at that
 * record, as the daemon's log says.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RECORD_OVERHEAD } from '../../daemon/crypto/record-cipher.js';
import { HEADER_BYTES } from '../../daemon/crypto/volume-header.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import { TapeError } from '../../daemon/drive/tape-error.js';
import { framedSize } from '../../daemon/sinks/simh-tap.js';
import { cli, imageObjects, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { sharedRunLongerThan } from '../support/shared-runs.js';
import { useTempDir } from '../support/temp-dir.js';
import { hashTree, makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

async function keyFile(): Promise<string> {
  const path = join(dir.path, 'offsite.key');
  await writeFile(path, randomBytes(32), { mode: 0o600 });
  return path;
}

async function fuseDrive(sinks: string[]): Promise<string> {
  const device = join(dir.path, 'pnst0');
  daemon = await startDaemon(['--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), ...sinks.flatMap((s) => ['--sink', s])]);
  return device;
}

describe('tar -M to a plain and an encrypted copy', () => {
  it('the encrypted images hold no plaintext run over 16 bytes; tar -x -M through the drive with the key restores the source', async () => {
    const key = await keyFile();
    const src = join(dir.path, 'src');
    await makeTree(src, 9 * 2 ** 20);
    const size = 'capacity=4M&early-warning=512K';
    const dev = await fuseDrive([`file:${dir.path}/a-%v.tap?${size}`, `encrypt:keyfile=${key}|file:${dir.path}/b-%v.tap?${size}`]);
    await execa('tar', ['-c', '-M', '-F', 'true', '-b', '64', '-f', dev, 'src'], { cwd: dir.path, stdin: 'ignore' });
    const volumes = (await daemon!.status('pnst0')).state!.volume;
    expect(volumes).toBeGreaterThanOrEqual(3);
    await daemon!.stop();
    daemon = undefined;

    for (let v = 1; v <= volumes; v++) {
      const plain = (await imageObjects(join(dir.path, `a-${v}.tap`))).map((o) => o ?? Buffer.alloc(0));
      const cipherImage = await readFile(join(dir.path, `b-${v}.tap`));
      const cipherObjects = await imageObjects(join(dir.path, `b-${v}.tap`));
      // Same records and filemarks, each record 28 bytes longer, behind one header record.
      expect(cipherObjects.slice(1).map((o) => (o === null ? 'FM' : o.length - RECORD_OVERHEAD))).toEqual(
        plain.map((o) => (o.length === 0 ? 'FM' : o.length)),
      );
      const leak = sharedRunLongerThan(Buffer.concat(plain), cipherImage, 16);
      expect(leak, `volume ${v}: ${leak?.length} plaintext bytes at image offset ${leak?.haystackAt}`).toBeUndefined();
    }
    // The check finds a plaintext run where there is one: in the plain image itself.
    expect(sharedRunLongerThan(Buffer.concat((await imageObjects(join(dir.path, 'a-1.tap'))).map((o) => o ?? Buffer.alloc(0))).subarray(0, 5000), await readFile(join(dir.path, 'a-1.tap')), 16)).toBeDefined();

    const device = await fuseDrive([`encrypt:keyfile=${key}|file:${dir.path}/b-%v.tap?readonly`]);
    const out = join(dir.path, 'restore');
    await mkdir(out);
    await execa('tar', ['-x', '-M', '-F', 'true', '-b', '64', '-f', device], { cwd: out, stdin: 'ignore' });
    expect(await hashTree(join(out, 'src'))).toEqual(await hashTree(src));
  });
});

describe('an encrypted copy on its own', () => {
  it('a later run appends after mt eod and overwrites in the middle; tar reads each archive, mt tell agrees', async () => {
    const key = await keyFile();
    const sink = `encrypt:keyfile=${key}|file:${dir.path}/c-%v.tap`;
    for (const name of ['first', 'second']) await writeFile(join(dir.path, `${name}.txt`), name.repeat(5000));
    let dev = await fuseDrive([sink]);
    await execa('tar', ['-cf', dev, 'first.txt'], { cwd: dir.path });
    const afterFirst = (await execa('mt', ['-f', dev, 'tell'])).stdout;
    await daemon!.stop();

    dev = await fuseDrive([sink]); // a new run: the stage knows nothing of the volume yet
    await execa('mt', ['-f', dev, 'eod']);
    expect((await execa('mt', ['-f', dev, 'tell'])).stdout).toBe(afterFirst);
    await execa('tar', ['-cf', dev, 'second.txt'], { cwd: dir.path });
    await execa('mt', ['-f', dev, 'rewind']);
    expect((await execa('tar', ['-tf', dev])).stdout).toBe('first.txt');
    await execa('mt', ['-f', dev, 'fsf', '1']);
    expect((await execa('tar', ['-xOf', dev])).stdout).toBe('second'.repeat(5000));

    // Over the second archive, in a third run: the first stays, the second is gone.
    await daemon!.stop();
    dev = await fuseDrive([sink]);
    await execa('mt', ['-f', dev, 'fsf', '1']);
    await execa('tar', ['-cf', dev, 'first.txt'], { cwd: dir.path });
    await execa('mt', ['-f', dev, 'rewind']);
    await execa('mt', ['-f', dev, 'fsf', '1']);
    expect((await execa('tar', ['-tf', dev])).stdout).toBe('first.txt');
    await execa('mt', ['-f', dev, 'fsf', '1']);
    expect((await execa('tar', ['-tf', dev], { reject: false })).exitCode).not.toBe(0); // end of data
  });
});

describe('an encrypted remote copy', () => {
  it('a grpc copy behind the stage holds ciphertext on the remote; verify with the key finds it equal to the plain copy', async () => {
    const key = await keyFile();
    const remote = await startDaemon(['--drive', 'remote0', '--sink', `file:${dir.path}/r-%v.tap`]);
    try {
      daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a-%v.tap`, '--sink', `encrypt:keyfile=${key}|grpc://${remote.address}/remote0?plaintext`]);
      const s = await daemon.session('pnst0', { access: 'write' });
      const records = Array.from({ length: 20 }, () => randomBytes(10240));
      for (const r of records) await s.write(r);
      await s.mt(MtOp.MTWEOF, 1);
      await s.mt(MtOp.MTREW); // rewriting from BOT starts the remote volume afresh too
      for (const r of records) await s.write(r);
      await s.close();
      await daemon.stop();
      daemon = undefined;
    } finally {
      await remote.stop();
    }
    const remoteObjects = await imageObjects(join(dir.path, 'r-1.tap'));
    expect(remoteObjects).toHaveLength(1 + 20 + 1);
    expect(remoteObjects.slice(1, 21).every((o) => o!.length === 10240 + RECORD_OVERHEAD)).toBe(true);
    const r = await cli(['verify', `${dir.path}/a-%v.tap`, `encrypt:keyfile=${key}|file:${dir.path}/r-%v.tap`]);
    expect(r.stdout.toString()).toMatch(/^volume 1: OK: 2 copies match the manifest .*a-1\.tap\.manifest\.json.*; 1 files, 20 records/m);
    expect(r.exitCode).toBe(0);
    // The remote daemon's manifest next to r-1.tap is of the records it got (ciphertext and the
    // header): it is used for that image as it is, never for the plaintext behind the stage.
    const cipherLevel = await cli(['verify', `${dir.path}/r-%v.tap`]);
    expect(cipherLevel.stdout.toString()).toMatch(/^volume 1: OK: 1 copy matches the manifest .*r-1\.tap\.manifest\.json.*; 1 files, 21 records/m);
    const alone = await cli(['verify', `encrypt:keyfile=${key}|file:${dir.path}/r-%v.tap`]);
    expect(alone.stdout.toString()).toMatch(/^volume 1: OK: read back whole \(no manifest found to check it against\); 1 files, 20 records/m);
  });
});

describe('tampered encrypted images', () => {
  const RECORD = 10240;
  /** Offset in an encrypted image of record n (the drive's numbering) of a volume of RECORD-byte records. */
  const recordOffset = (n: number) => framedSize(HEADER_BYTES) + n * framedSize(RECORD + RECORD_OVERHEAD);

  /** Two volumes of 6 records (then a filemark) through the daemon, to an encrypted image only. */
  async function writeTwoVolumes(key: string): Promise<void> {
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `encrypt:keyfile=${key}|file:${dir.path}/c-%v.tap`]);
    const s = await daemon.session('pnst0', { access: 'write' });
    for (let v = 1; v <= 2; v++) {
      for (let n = 0; n < 6; n++) await s.write(Buffer.alloc(RECORD, 16 * v + n));
      await s.mt(MtOp.MTWEOF, 1);
      if (v === 1) {
        await s.mt(MtOp.MTOFFL);
        await s.mt(MtOp.MTLOAD);
      }
    }
    await s.close();
    await daemon.stop();
    daemon = undefined;
  }

  /** Reads volume 1 through a daemon with the key: each read's first byte, or its errno. */
  async function readVolumeOne(key: string): Promise<(number | string)[]> {
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `encrypt:keyfile=${key}|file:${dir.path}/c-%v.tap?readonly`]);
    const s = await daemon.session('pnst0', { access: 'read' });
    const out: (number | string)[] = [];
    for (let i = 0; i < 6; i++) {
      out.push(
        await s.read(RECORD).then(
          (d) => d[0]!,
          (err: TapeError) => `errno ${err.errno}`,
        ),
      );
    }
    await s.close();
    return out;
  }

  async function patchImage(volume: number, patch: (image: Buffer) => void): Promise<void> {
    const path = join(dir.path, `c-${volume}.tap`);
    const image = await readFile(path);
    patch(image);
    await writeFile(path, image);
  }

  it('one byte flipped in a record: EIO at that record, and the log names volume, file and record', async () => {
    const key = await keyFile();
    await writeTwoVolumes(key);
    await patchImage(1, (image) => {
      image[recordOffset(3) + 4 + 500]! ^= 0x20;
    });
    expect(await readVolumeOne(key)).toEqual([16, 17, 18, 'errno 5', 'errno 5', 'errno 5']);
    const line = daemon!
      .log()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: number; msg: string; volume?: number; file?: number; record?: number })
      .find((l) => l.msg.includes('fails authentication'));
    expect(line).toMatchObject({ level: 50, volume: 1, file: 0, record: 3 });
    expect(line?.msg).toContain('volume 1, file 0, record 3');
  });

  it('two records swapped: EIO at the first of them', async () => {
    const key = await keyFile();
    await writeTwoVolumes(key);
    const size = framedSize(RECORD + RECORD_OVERHEAD);
    await patchImage(1, (image) => {
      const second = Buffer.from(image.subarray(recordOffset(2), recordOffset(2) + size));
      image.copy(image, recordOffset(2), recordOffset(4), recordOffset(4) + size);
      second.copy(image, recordOffset(4));
    });
    expect(await readVolumeOne(key)).toEqual([16, 17, 'errno 5', 'errno 5', 'errno 5', 'errno 5']);
  });

  it("a record of volume 2 copied into volume 1's image: EIO at that record", async () => {
    const key = await keyFile();
    await writeTwoVolumes(key);
    const size = framedSize(RECORD + RECORD_OVERHEAD);
    const volumeTwo = await readFile(join(dir.path, 'c-2.tap'));
    await patchImage(1, (image) => {
      volumeTwo.copy(image, recordOffset(1), recordOffset(1), recordOffset(1) + size);
    });
    expect(await readVolumeOne(key)).toEqual([16, 'errno 5', 'errno 5', 'errno 5', 'errno 5', 'errno 5']);
  });

  it('the wrong key reads nothing and says why', async () => {
    await writeTwoVolumes(await keyFile());
    const other = join(dir.path, 'other.key');
    await writeFile(other, randomBytes(32), { mode: 0o600 });
    expect(await readVolumeOne(other)).toEqual(Array(6).fill('errno 5'));
    expect(daemon!.log()).toMatch(/volume 1 of encrypt:keyfile=.*other\.key\|file:.*c-%v\.tap cannot be read with this key: it was encrypted with key [0-9a-f]{16}, and this key is [0-9a-f]{16}/);
  });
});
