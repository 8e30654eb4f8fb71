/**
 * tapeproxy image ls names what each tape file holds, from archives made by the real tools: GNU
 * tar (ustar and a multi-volume continuation), cpio in its four formats, dump of an ext4 file
 * system, an encrypted volume, and random bytes.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { detectContent } from '../../daemon/manifest/content-type.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import { cli, startDaemon } from '../support/daemon.js';
import { writeImage } from '../support/images.js';
import { useTempDir } from '../support/temp-dir.js';
import { makeTree } from '../support/trees.js';

const dir = useTempDir();
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const undo of cleanups.splice(0).reverse()) await undo();
});

/** An archive as tape records of `size` bytes (the last one short), then a filemark. */
function asTapeFile(archive: Buffer, size = 10240): (Buffer | null)[] {
  const records: (Buffer | null)[] = [];
  for (let at = 0; at < archive.length; at += size) records.push(archive.subarray(at, at + size));
  return [...records, null];
}

async function archive(command: string): Promise<Buffer> {
  return (await execa('sh', ['-c', command], { cwd: dir.path, encoding: 'buffer' })).stdout as Buffer;
}

it('tar, cpio, dump, encrypted and unknown files', async () => {
  await makeTree(join(dir.path, 'src'), 200_000);
  const tar = await archive('tar -cf - src');
  // The second volume of a multi-volume archive starts with GNU tar's continuation header.
  await execa('tar', ['-c', '-M', '-L', '100', '-f', 'v1.tar', '-f', 'v2.tar', '-f', 'v3.tar', 'src'], { cwd: dir.path });
  const tarContinued = await readFile(join(dir.path, 'v2.tar'));
  const cpio = await Promise.all(['odc', 'newc', 'crc', 'bin'].map((f) => archive(`find src | cpio -o -H ${f} 2>/dev/null`)));
  const fs = join(dir.path, 'fs.img');
  await execa('mkfs.ext4', ['-q', '-d', join(dir.path, 'src'), fs, '4M']);
  const { stdout: loop } = await execa('losetup', ['--find', '--show', '--read-only', fs]);
  cleanups.push(() => execa('losetup', ['-d', loop]));
  await execa('dump', ['-0', '-f', join(dir.path, 'fs.dump'), loop]);
  const dump = await readFile(join(dir.path, 'fs.dump'));

  const image = join(dir.path, 'mixed.tap');
  await writeImage(image, [tar, tarContinued, ...cpio, dump, randomBytes(30000)].flatMap((a) => asTapeFile(a)));
  const ls = (await cli(['image', 'ls', image])).stdout.toString();
  expect(ls.split('\n').filter((l) => l.startsWith('file')).map((l) => l.split(',')[0])).toEqual([
    'file 1: tar',
    'file 2: tar',
    'file 3: cpio',
    'file 4: cpio',
    'file 5: cpio',
    'file 6: cpio',
    'file 7: dump',
    'file 8: unknown',
  ]);
  const json = JSON.parse((await cli(['image', 'ls', '--json', image])).stdout.toString()) as { files: { content: string }[] };
  expect(json.files[6]!.content).toBe('dump');

  // Random data is unknown, not a format that starts with a short magic (binary cpio's is 2 bytes).
  for (let i = 0; i < 20_000; i++) expect(detectContent(randomBytes(1024))).toBe('unknown');
});

it('every file of an encrypted volume is encrypted', async () => {
  const key = join(dir.path, 'key');
  await writeFile(key, randomBytes(32), { mode: 0o600 });
  const tar = await archive('tar -cf - -C / etc/hostname');
  const daemon = await startDaemon(['--drive', 'pnst0', '--sink', `encrypt:keyfile=${key}|file:${dir.path}/e.tap`, '--catalog-dir', join(dir.path, 'catalog')]);
  try {
    const s = await daemon.session('pnst0', { access: 'write' });
    await s.write(tar);
    await s.mt(MtOp.MTWEOF, 1);
    await s.write(tar);
    await s.close();
  } finally {
    await daemon.stop();
  }
  const ls = (await cli(['image', 'ls', join(dir.path, 'e.tap')])).stdout.toString();
  expect(ls).toMatch(/^file 1: encrypted, 2 records/m);
  expect(ls).toMatch(/^file 2: encrypted, 1 records/m);
});
