/**
 * A copy whose storage fails mid-backup (its image on a 3 MiB tmpfs that fills up: a real ENOSPC
 * from the file system, reported by the sink as EIO): under the default policy the writer gets the
 * error and the log names the copy; with min-copies 1 the backup completes on the other copy, which
 * restores alone, and status shows the failed copy set aside. Through rmt too, whose writes are
 * answered before the daemon has them.
 */
import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { RSH } from '../support/tools.js';
import { hashTree, makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
let small: string;

beforeEach(async () => {
  small = join(dir.path, 'small');
  await mkdir(small);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tapeproxy-test', small]);
  await makeTree(join(dir.path, 'src'), 8 * 2 ** 20);
});
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  await execa('umount', [small]);
});

async function fuseDrive(extra: string[], lostOptions = ''): Promise<string> {
  const device = join(dir.path, 'pnst0');
  daemon = await startDaemon([
    '--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'),
    '--sink', `file:${dir.path}/good.tap?fsync=false`,
    '--sink', `file:${small}/lost.tap?fsync=false${lostOptions}`,
    ...extra,
  ]);
  return device;
}

it('default policy: tar fails with an I/O error and the daemon log names the failed copy', async () => {
  const device = await fuseDrive([]);
  const tar = await execa('tar', ['-c', '-b', '64', '-f', device, 'src'], { cwd: dir.path, reject: false });
  expect(tar.exitCode).not.toBe(0);
  expect(tar.stderr).toMatch(/Input\/output error/);
  const log = daemon!.log();
  expect(log).toMatch(/copy failed: the writer gets the error/);
  expect(log).toContain(`${small}/lost.tap`);
  const status = JSON.parse((await cli(['status', 'pnst0', '--json', '--server', daemon!.address])).stdout.toString());
  const lost = status.sinks.find((s: { name: string }) => s.name.includes('lost.tap'));
  expect(lost.failure).toMatch(/ENOSPC: no space left on device/);
  expect(lost.setAside).toBe(false);
});

it('a failure first seen after the last write: the FUSE writer gets it from close(2)', async () => {
  // The failing copy is slow (4 MB/s), so when dd's last write is answered (writes go behind) it is
  // still about a window back, and its file system fills within the last 20 records, after dd has
  // written them all: only the FLUSH at close(2) can tell dd.
  const device = await fuseDrive([], '&rate=4M');
  const records = Math.ceil((3 * 2 ** 20 + 200 * 1024) / 10240);
  const dd = await execa('dd', ['if=/dev/zero', `of=${device}`, 'bs=10k', `count=${records}`], { reject: false });
  expect(dd.stderr).toMatch(/closing output file.*Input\/output error/);
  expect(dd.exitCode).toBe(1);
  expect(daemon!.log()).toMatch(/copy failed: the writer gets the error/);
});

it('through rmt, whose writes go behind: tar fails with an I/O error all the same', async () => {
  await fuseDrive([]);
  const tar = await execa('tar', ['-c', '-b', '64', '--rsh-command', RSH, '-f', 'localhost:/dev/pnst0', 'src'], {
    cwd: dir.path,
    env: { TAPEPROXY_SERVER: daemon!.address },
    stdin: 'ignore',
    reject: false,
  });
  expect(tar.exitCode).not.toBe(0);
  expect(tar.stderr).toMatch(/Input\/output error/);
  expect(daemon!.log()).toMatch(/copy failed: the writer gets the error/);
});

it('min-copies 1: the backup completes on the good copy, which restores alone; status shows the failed one', async () => {
  const device = await fuseDrive(['--min-copies', '1', '--catalog-dir', join(dir.path, 'catalog')]);
  await execa('tar', ['-c', '-b', '64', '-f', device, 'src'], { cwd: dir.path });
  // The log, and the catalog, say which copy failed and where: volume, object, file and record.
  const failed = /copy failed: set aside, the backup goes on with the other copies; (\S+) at volume 1, object (\d+) \(file 0, record (\d+)\)/.exec(daemon!.log());
  expect(failed, daemon!.log()).not.toBeNull();
  expect(failed![1]).toBe(`file:${small}/lost.tap`);
  expect(failed![3]).toBe(failed![2]); // file 0 starts at object 0
  // Where the copy stops, not how far the writer got: no more 32 KiB records than 3 MiB holds,
  // though tar may have had the whole backup queued by then.
  expect(Number(failed![2])).toBeLessThanOrEqual((3 * 2 ** 20) / (64 * 512));

  const status = JSON.parse((await cli(['status', 'pnst0', '--json', '--server', daemon!.address])).stdout.toString());
  const [good, lost] = status.sinks as { failure: string; setAside: boolean; position: string; recordsWritten: string }[];
  expect(good!.failure).toBe('');
  expect(lost!.setAside).toBe(true);
  expect(lost!.failure).toMatch(/ENOSPC: no space left on device/);
  // It got part of the stream before the file system filled: less than the good copy.
  expect(Number(lost!.recordsWritten)).toBeGreaterThan(0);
  expect(Number(lost!.recordsWritten)).toBeLessThan(Number(good!.recordsWritten));
  const text = (await cli(['status', 'pnst0', '--server', daemon!.address])).stdout.toString();
  expect(text).toMatch(/lost\.tap.*FAILED at object \d+: .*\(set aside/);
  await daemon!.stop();
  daemon = undefined;
  const catalog = (await cli(['catalog', '--catalog-dir', join(dir.path, 'catalog')])).stdout.toString();
  expect(catalog).toContain(`copy FAILED: file:${small}/lost.tap at volume 1, object ${failed![2]} (file 0, record ${failed![3]}), set aside`);

  const restoreDevice = await fuseDriveReadingOnly(`file:${dir.path}/good.tap?readonly`);
  const out = join(dir.path, 'out');
  await mkdir(out);
  await execa('tar', ['-x', '-b', '64', '-f', restoreDevice], { cwd: out });
  expect(await hashTree(join(out, 'src'))).toEqual(await hashTree(join(dir.path, 'src')));
});

async function fuseDriveReadingOnly(sink: string): Promise<string> {
  const device = join(dir.path, 'restore');
  daemon = await startDaemon(['--drive', 'r0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), '--sink', sink]);
  return device;
}
