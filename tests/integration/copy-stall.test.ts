/**
 * A copy whose storage stops answering mid-backup. The copy's image lives on storage that really
 * hangs: a bindfs (FUSE) mount whose server the test freezes with SIGSTOP, so the daemon's writes
 * to it block in the kernel, as on a hung network file system. With stall-timeout 2 s the copy
 * counts as failed:
 * under the default policy tar gets an I/O error instead of hanging and the log names the copy;
 * with min-copies 1 the backup completes on the other copy, which restores alone, and status shows
 * the stalled copy failed and set aside.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { isMountPoint, waitFor } from '../support/wait.js';
import { hashTree, makeTree } from '../support/trees.js';

const dir = useTempDir();
let storage: ResultPromise | undefined;
let daemon: RunningDaemon | undefined;

beforeEach(async () => {
  await makeTree(join(dir.path, 'src'), 12 * 2 ** 20);
  await mkdir(join(dir.path, 'backing'));
  await mkdir(join(dir.path, 'hung'));
  // -f: bindfs stays in the foreground, so its pid is the FUSE server to freeze.
  storage = execa('bindfs', ['-f', join(dir.path, 'backing'), join(dir.path, 'hung')], { reject: false });
  await waitFor('bindfs to mount', () => isMountPoint(join(dir.path, 'hung')), 5);
});
afterEach(async () => {
  storage?.kill('SIGCONT');
  await daemon?.stop();
  daemon = undefined;
  await execa('umount', [join(dir.path, 'hung')], { reject: false });
  storage?.kill();
  await storage;
  storage = undefined;
});


/** Drive pnst0 with a good copy and one on the bindfs mount, whose server is then frozen. */
async function driveWithFrozenCopy(extra: string[]): Promise<string> {
  const device = join(dir.path, 'pnst0');
  daemon = await startDaemon([
    '--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'),
    '--sink', `file:${dir.path}/good.tap?fsync=false`,
    '--sink', `file:${dir.path}/hung/stalled.tap?fsync=false`,
    '--window', '1M', '--stall-timeout', '2',
    ...extra,
  ]);
  storage!.kill('SIGSTOP');
  return device;
}

it('default policy: tar gets an I/O error, not a hang, and the log names the stalled copy', async () => {
  const device = await driveWithFrozenCopy([]);
  const tar = await execa('tar', ['-c', '-b', '64', '-f', device, 'src'], { cwd: dir.path, reject: false, timeout: 50_000 });
  expect(tar.timedOut).toBe(false);
  expect(tar.exitCode).not.toBe(0);
  expect(tar.stderr).toMatch(/Input\/output error/);
  const log = daemon!.log();
  expect(log).toMatch(/copy failed: the writer gets the error/);
  expect(log).toContain(`file:${dir.path}/hung/stalled.tap: no progress for 2 s`);
  const status = JSON.parse((await cli(['status', 'pnst0', '--json', '--server', daemon!.address])).stdout.toString());
  const stalled = status.sinks.find((s: { name: string }) => s.name.endsWith('/stalled.tap'));
  expect(stalled.failure).toMatch(/no progress for 2 s while writing/);
}, 60_000);

it('min-copies 1: the backup completes on the good copy, which restores alone; status shows the stalled one', async () => {
  const device = await driveWithFrozenCopy(['--min-copies', '1']);
  await execa('tar', ['-c', '-b', '64', '-f', device, 'src'], { cwd: dir.path, timeout: 50_000 });
  expect(daemon!.log()).toMatch(/copy failed: set aside/);
  const text = (await cli(['status', 'pnst0', '--server', daemon!.address])).stdout.toString();
  expect(text).toMatch(/stalled\.tap.*FAILED.*no progress for 2 s.*\(set aside/);
  await daemon!.stop();
  daemon = undefined;

  const restore = join(dir.path, 'restore');
  daemon = await startDaemon(['--drive', 'r0', '--fuse', restore, '--runtime-dir', join(dir.path, 'run'), '--sink', `file:${dir.path}/good.tap?readonly`]);
  const out = join(dir.path, 'out');
  await mkdir(out);
  await execa('tar', ['-x', '-b', '64', '-f', restore], { cwd: out });
  expect(await hashTree(join(out, 'src'))).toEqual(await hashTree(join(dir.path, 'src')));
}, 60_000);
