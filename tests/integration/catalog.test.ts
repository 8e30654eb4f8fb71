/**
 * The catalog with the built daemon: a tar -M backup across volumes is one session with its
 * volumes, files and digests; verify adds its verdict; tapeproxy catalog lists and searches; a
 * daemon killed mid-session, or mid-line, leaves a catalog that still reads and grows.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { Session } from '../../daemon/catalog/catalog.js';
import { cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

const catalogDir = () => join(dir.path, 'catalog');
const catalog = async (...args: string[]) => {
  const r = await cli(['catalog', '--catalog-dir', catalogDir(), ...args]);
  return { ...r, out: r.stdout.toString() };
};

it('a tar -M backup is one session over its volumes; verify adds its verdict; catalog lists and searches', async () => {
  await makeTree(join(dir.path, 'src'), 6 * 2 ** 20);
  const device = join(dir.path, 'pnst0');
  const copies = [`file:${dir.path}/a-%v.tap?capacity=4M&early-warning=512K`, `file:${dir.path}/b-%v.tap?capacity=4M&early-warning=512K`];
  daemon = await startDaemon(['--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), '--catalog-dir', catalogDir(), ...copies.flatMap((c) => ['--sink', c])]);
  await execa('tar', ['-c', '-M', '-F', 'true', '-b', '64', '-f', device, 'src'], { cwd: dir.path, stdin: 'ignore' });
  // A second backup, appended; small, so that it never reaches the last volume's early warning
  // (the tree's file sizes are random, so src/d0 sometimes did).
  await writeFile(join(dir.path, 'extra.bin'), randomBytes(200_000));
  await execa('tar', ['-c', '-b', '64', '-f', device, 'extra.bin'], { cwd: dir.path });
  const volumes = (await daemon.status('pnst0')).state!.volume;
  await daemon.stop();
  daemon = undefined;

  const sessions = JSON.parse((await catalog('--json')).out) as Session[];
  expect(sessions).toHaveLength(2);
  const [backup, appended] = sessions as [Session, Session];
  expect(backup.volumes.map((v) => v.volume)).toEqual(Array.from({ length: volumes }, (_, i) => i + 1));
  expect(backup.volumes.flatMap((v) => v.files.map((f) => f.content))).toEqual(Array(volumes).fill('tar'));
  expect(appended.volumes.map((v) => v.volume)).toEqual([volumes]);
  expect(backup.copies).toEqual([`file:${dir.path}/a-%v.tap`, `file:${dir.path}/b-%v.tap`]);

  expect((await cli(['verify', '--catalog-dir', catalogDir(), `${dir.path}/a-%v.tap`, `${dir.path}/b-%v.tap`])).exitCode).toBe(0);
  const listed = await catalog();
  expect(listed.out).toContain(`${backup.session}: drive pnst0, `);
  expect(listed.out).toMatch(new RegExp(`volumes ${backup.volumes.map((v) => v.volume).join(', ')}; ${volumes} files, \\d+ records, \\d+ bytes; verified OK, volume 1, 2`));

  const digest = appended.volumes[0]!.files.at(-1)!.blake3!;
  const found = await catalog('--files', digest.slice(0, 12));
  expect(found.out).toContain(`${appended.session}: `);
  expect(found.out).not.toContain(`${backup.session}: `);
  expect(found.out).toMatch(new RegExp(`file 1: tar, \\d+ records, \\d+ bytes, blake3 ${digest}$`, 'm'));
  expect((await catalog('--drive', 'other')).out.trim()).toBe('no sessions');
  expect((await catalog('--since', '1h')).out).toContain(backup.session);
  expect((await catalog('--since', '2000-01-01', 'cpio')).out.trim()).toBe('no sessions');
  expect((await catalog('--since', 'soon')).exitCode).toBe(2);
  expect((await cli(['catalog', '--help'])).stdout.toString()).toContain('Examples:');
});

it('a daemon killed mid-session, and a line torn by a crash, leave a catalog that reads and grows', async () => {
  const start = () => startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a-%v.tap`, '--catalog-dir', catalogDir()]);
  daemon = await start();
  const s = await daemon.session('pnst0', { access: 'write' });
  for (let i = 0; i < 5; i++) await s.write(randomBytes(10240));
  await s.status(); // a sync point: the manifest and the session are on disk
  process.kill(daemon.pid, 'SIGKILL');
  await daemon.stop();
  const journal = join(catalogDir(), 'pnst0.jsonl');
  await appendFile(journal, '{"type":"volume","session":"torn'); // as if killed mid-line

  expect((await catalog()).out).toContain('(no end recorded: still writing, or the daemon was killed)');
  daemon = await start();
  const again = await daemon.session('pnst0', { access: 'write' });
  await again.write(randomBytes(10240));
  await again.close();
  await daemon.stop();
  daemon = undefined;
  const lines = (await readFile(journal, 'utf8')).trimEnd().split('\n');
  expect(lines.filter((l) => l.startsWith('{"type":"volume","session":"torn'))).toEqual(['{"type":"volume","session":"torn']);
  const sessions = JSON.parse((await catalog('--json')).out) as Session[];
  expect(sessions.map((x) => [x.unfinished, x.ended !== undefined])).toEqual([
    [true, false],
    [false, true],
  ]);
});
