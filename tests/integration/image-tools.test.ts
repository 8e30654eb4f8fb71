/**
 * The image tools on images the drive wrote from real tar runs: replay onto a new sink byte for
 * byte, one tape file through a pipe to tar -t, framing checks with byte offsets, and repair that
 * never loses a byte.
 */
import { execa } from 'execa';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { CLI, cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

/** Runs `tar ARGS` for each archive onto a drive's FUSE file, then stops the daemon (images synced). */
async function tarOnto(sink: string, archives: string[][]): Promise<void> {
  const device = join(dir.path, 'pnst0');
  daemon = await startDaemon(['--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), '--sink', sink]);
  for (const args of archives) await execa('tar', [...args, '-f', device], { cwd: dir.path, stdin: 'ignore' });
  await daemon.stop();
  daemon = undefined;
}

const sh = (script: string) => execa('sh', ['-c', script], { cwd: dir.path, reject: false });
const tp = `node ${CLI}`;

describe('image write and image cat, on three tar archives on one tape', () => {
  it('replayed to a new image sink, the image is byte-identical; image cat --file 2 | tar -t lists the second archive', async () => {
    for (const name of ['first', 'second', 'third']) await writeFile(join(dir.path, `${name}.txt`), `${name}\n`.repeat(5000));
    await tarOnto(`file:${dir.path}/a.tap`, [['-c', 'first.txt'], ['-c', 'second.txt', 'first.txt'], ['-c', 'third.txt']]);

    const write = await cli(['image', 'write', join(dir.path, 'a.tap'), `file:${dir.path}/b.tap`]);
    expect(write.stderr).toBe('');
    expect(write.stdout.toString()).toMatch(/^wrote \d+ records and 3 tape marks, 1 volume, from /);
    expect((await readFile(join(dir.path, 'b.tap'))).equals(await readFile(join(dir.path, 'a.tap')))).toBe(true);

    const list = await sh(`${tp} image cat a.tap --file 2 | tar -t`);
    expect(list.stderr).toBe('');
    expect(list.stdout).toBe('second.txt\nfirst.txt');
    const first = await sh(`${tp} image cat a.tap | tar -xO`);
    expect(first.stdout).toBe(`${'first\n'.repeat(5000)}`.trimEnd());

    const ls = await cli(['image', 'ls', join(dir.path, 'a.tap')]);
    expect(ls.stdout.toString().split('\n').filter((l) => l.startsWith('file '))).toEqual([
      expect.stringMatching(/^file 1: /),
      expect.stringMatching(/^file 2: /),
      expect.stringMatching(/^file 3: /),
    ]);
    const none = await cli(['image', 'cat', join(dir.path, 'a.tap'), '--file', '4']);
    expect([none.exitCode, none.stderr.trim()]).toEqual([1, `tapeproxy: ${join(dir.path, 'a.tap')} has 3 tape files; there is no file 4`]);
    const zero = await cli(['image', 'cat', join(dir.path, 'a.tap'), '--file', '0']);
    expect([zero.exitCode, zero.stderr.split('\n')[0]]).toEqual([2, 'tapeproxy: --file: a tape file number from 1, not 0']);

    // The target now holds data: refused, unless asked.
    const again = await cli(['image', 'write', join(dir.path, 'a.tap'), `file:${dir.path}/b.tap`]);
    expect([again.exitCode, again.stderr.trim()]).toEqual([1, `tapeproxy: file:${dir.path}/b.tap: volume 1 already holds data; --overwrite replaces it`]);
    expect((await cli(['image', 'write', join(dir.path, 'a.tap'), `file:${dir.path}/b.tap`, '--overwrite'])).exitCode).toBe(0);
    expect((await readFile(join(dir.path, 'b.tap'))).equals(await readFile(join(dir.path, 'a.tap')))).toBe(true);
  });

  it('a multi-volume tar -M set (%v) replays volume by volume, each byte-identical', async () => {
    await makeTree(join(dir.path, 'src'), 7 * 2 ** 20);
    await tarOnto(`file:${dir.path}/a-%v.tap?capacity=3M&early-warning=256K`, [['-c', '-M', '-F', 'true', '-b', '64', 'src']]);
    const r = await cli(['image', 'write', join(dir.path, 'a-%v.tap'), `file:${dir.path}/c-%v.tap?capacity=3M&early-warning=256K`]);
    expect(r.stderr).toBe('');
    const volumes = Number(/, (\d+) volumes, /.exec(r.stdout.toString())?.[1]);
    expect(volumes).toBeGreaterThanOrEqual(3);
    expect(r.stdout.toString()).toMatch(/past early warning on volume 1, 2/);
    for (let v = 1; v <= volumes; v++) {
      expect((await readFile(join(dir.path, `c-${v}.tap`))).equals(await readFile(join(dir.path, `a-${v}.tap`))), `volume ${v}`).toBe(true);
    }
    await expect(stat(join(dir.path, `c-${volumes + 1}.tap`))).rejects.toThrow('ENOENT');
  });
});

describe('image verify and image repair', () => {
  /** An image of 3 records of 10 KiB and a tape mark, as the drive writes it. */
  async function image(): Promise<{ path: string; bytes: Buffer }> {
    await tarOnto(`file:${dir.path}/a.tap`, [['-c', '-b', '20', 'a.txt', 'b.txt']]);
    const path = join(dir.path, 'a.tap');
    return { path, bytes: await readFile(path) };
  }

  it('verify: a whole image passes; a truncated one, mismatched lengths and a bad record class fail at their byte offset', async () => {
    await writeFile(join(dir.path, 'a.txt'), 'a'.repeat(15000));
    await writeFile(join(dir.path, 'b.txt'), 'b'.repeat(5000));
    const { path, bytes } = await image();
    const records = (bytes.length - 4) / (10240 + 8);
    const ok = await cli(['image', 'verify', path]);
    expect([ok.exitCode, ok.stdout.toString()]).toEqual([0, `${path}: valid SIMH image: ${records} records (${records * 10}.0 KiB of data) and 1 tape marks, ${bytes.length} bytes`]);

    const cut = join(dir.path, 'cut.tap');
    await writeFile(cut, bytes.subarray(0, 10248 + 5000));
    const truncated = await cli(['image', 'verify', cut]);
    expect(truncated.exitCode).toBe(1);
    expect(truncated.stdout.toString()).toBe(
      `${cut}: record of 10240 bytes cut short (image truncated) at byte 10248; before it, 1 records (10.0 KiB of data) and 0 tape marks are whole (tapeproxy image repair cuts the rest)`,
    );

    const lengths = Buffer.from(bytes);
    lengths.writeUInt32LE(10238, 10248 + 4 + 10240); // the second record's trailing length
    await writeFile(join(dir.path, 'lengths.tap'), lengths);
    expect((await cli(['image', 'verify', join(dir.path, 'lengths.tap')])).stdout.toString()).toContain(
      'leading length 10240 and trailing length 10238 differ at byte 10248',
    );

    const bad = Buffer.from(bytes);
    bad.writeUInt32LE((0x80000000 | 10240) >>> 0, 0); // class 8: bad data
    bad.writeUInt32LE((0x80000000 | 10240) >>> 0, 4 + 10240);
    await writeFile(join(dir.path, 'bad.tap'), bad);
    expect((await cli(['image', 'verify', join(dir.path, 'bad.tap')])).stdout.toString()).toContain('record marked bad (class 8) at byte 0');
  });

  it('repair: says what it would cut and changes nothing; --output writes the whole part; --in-place keeps the cut bytes in FILE.cut', async () => {
    await writeFile(join(dir.path, 'a.txt'), 'a'.repeat(25000));
    await writeFile(join(dir.path, 'b.txt'), 'b');
    const { path, bytes } = await image();
    const crashed = bytes.subarray(0, 2 * 10248 + 777); // a crash in the middle of the third record
    await writeFile(path, crashed);

    const dry = await cli(['image', 'repair', path]);
    expect(dry.exitCode).toBe(1);
    expect(dry.stdout.toString()).toContain(`repair would keep 2 records (20.0 KiB of data) and 0 tape marks, 20496 bytes and cut bytes 20496-21272 (777 bytes)`);
    expect((await readFile(path)).equals(crashed)).toBe(true);

    const fixed = join(dir.path, 'fixed.tap');
    expect((await cli(['image', 'repair', path, '--output', fixed])).exitCode).toBe(0);
    expect((await readFile(fixed)).equals(bytes.subarray(0, 20496))).toBe(true);
    expect((await readFile(path)).equals(crashed)).toBe(true);
    expect((await cli(['image', 'repair', path, '--output', fixed])).stderr).toMatch(/EEXIST/); // never over a file

    const inPlace = await cli(['image', 'repair', path, '--in-place']);
    expect(inPlace.exitCode).toBe(0);
    expect(inPlace.stdout.toString()).toContain(`cut bytes 20496-21272 (777 bytes) into ${path}.cut`);
    expect(Buffer.concat([await readFile(path), await readFile(`${path}.cut`)]).equals(crashed)).toBe(true);
    expect((await cli(['image', 'verify', path])).exitCode).toBe(0);
    expect((await cli(['image', 'repair', path])).stdout.toString()).toContain('nothing to repair');
  });
});

describe('bounded memory', () => {
  it('image write and image cat of a 512 MiB image stay far below its size', async () => {
    const path = join(dir.path, 'big.tap');
    const sink = new FileSink({ path, capacity: new Capacity(), readonly: false, fsync: false });
    await sink.load(1);
    const record = Buffer.alloc(2 ** 20, 7);
    for (let i = 0; i < 512; i++) {
      sink.write(record);
      await sink.drain(16 * 2 ** 20);
    }
    sink.writeFilemarks(1);
    await sink.close();

    const maxRss = (stderr: string) => Number(/max-rss (\d+)/.exec(stderr)![1]);
    const preload = ['--import', new URL('../support/max-rss.mjs', import.meta.url).href];
    const write = await execa('node', [...preload, CLI, 'image', 'write', path, `file:${dir.path}/copy.tap?fsync=false`]);
    expect(maxRss(write.stderr)).toBeLessThan(200 * 2 ** 20);
    const size = (await stat(path)).size;
    expect((await stat(join(dir.path, 'copy.tap'))).size).toBe(size);

    const cat = await execa('sh', ['-c', `node ${preload.join(' ')} ${CLI} image cat ${path} | wc -c`]);
    expect(Number(cat.stdout)).toBe(512 * 2 ** 20);
    expect(maxRss(cat.stderr)).toBeLessThan(200 * 2 ** 20);

    const head = await sh(`${tp} image cat ${path} | head -c 100 | wc -c`); // the reader stops early: no error
    expect([head.stdout, head.stderr]).toEqual(['100', '']);
  });
});
