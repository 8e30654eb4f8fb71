/**
 * Faults not covered elsewhere, each with what the writer saw, what each copy holds and what status
 * says, asserted (README "Tests" lists the whole fault matrix and where each case lives):
 * - the shim killed in the middle of a backup;
 * - a copy that meets its physical end before its early warning (a zone smaller than a record).
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { cli, imageObjects, startDaemon, type RunningDaemon, fuseShimPid } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { sizeOf, waitFor } from '../support/wait.js';
import { hashTree, makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

const REC = 64 * 1024;

async function fuseDrive(name: string, sinks: string[]): Promise<string> {
  const device = join(dir.path, name);
  daemon = await startDaemon(['--drive', name, '--fuse', device, '--runtime-dir', join(dir.path, 'run'), ...sinks.flatMap((s) => ['--sink', s])]);
  return device;
}

async function statusOf(drive: string) {
  return JSON.parse((await cli(['status', drive, '--json', '--server', daemon!.address])).stdout.toString()) as {
    state: { volume: number; fileno: number; inUse: boolean };
    sinks: { name: string; failure: string; volume: number; setAside: boolean }[];
  };
}


it('shim SIGKILL mid-stream: the writer gets an error; both copies hold the same prefix and a filemark; a new shim serves the next backup', async () => {
  const device = await fuseDrive('pnst0', [`file:${dir.path}/a.tap`, `file:${dir.path}/b.tap`]);
  const input = join(dir.path, 'input');
  await writeFile(input, randomBytes(256 * REC));
  const writer = execa('sh', ['-c', `for i in $(seq 0 255); do dd if=${input} bs=${REC} skip=$i count=1 status=none; done | dd of=${device} bs=${REC} iflag=fullblock status=none`], { reject: false });
  const shimPid = () => fuseShimPid(device);
  await waitFor('records on the copies', async () => (await sizeOf(join(dir.path, 'b.tap'))) > 32 * REC);
  const first = await shimPid();
  process.kill(first, 'SIGKILL');

  const seen = await writer;
  expect(seen.exitCode, 'the writer saw the loss').not.toBe(0);
  expect(seen.stderr).toMatch(/Input\/output error|Transport endpoint is not connected|Software caused connection abort/);

  // The daemon closed the drive for the vanished shim, with the close-time filemark, on both copies.
  await waitFor('the drive to be closed', async () => !(await statusOf('pnst0')).state.inUse);
  const status = await statusOf('pnst0');
  expect(status.state.fileno).toBe(1);
  expect(status.sinks.map((s) => s.failure)).toEqual(['', '']);
  const written = await readFile(input);
  const [a, b] = await Promise.all(['a.tap', 'b.tap'].map((c) => imageObjects(join(dir.path, c))));
  expect(a).toEqual(b);
  expect(a!.at(-1), 'a filemark ends what was written').toBeNull();
  const records = a!.slice(0, -1);
  expect(records.length).toBeGreaterThan(32);
  records.forEach((r, i) => expect(r!.equals(written.subarray(i * REC, (i + 1) * REC)), `record ${i} is the writer's record ${i}`).toBe(true));

  // The supervisor's new shim serves the device again: a whole backup after the broken one.
  await waitFor('a new shim', async () => (await execa('mt', ['-f', device, 'status'], { reject: false })).exitCode === 0);
  expect(await shimPid()).not.toBe(first);
  await makeTree(join(dir.path, 'src'), 4 * 2 ** 20);
  await execa('tar', ['-c', '-b', '64', '-f', device, '-C', dir.path, 'src']);
  for (const copy of ['a.tap', 'b.tap']) {
    await daemon!.stop();
    const restore = await fuseDrive('r0', [`file:${dir.path}/${copy}?readonly`]);
    await execa('mt', ['-f', restore, 'fsf', '1']);
    const out = join(dir.path, `out-${copy}`);
    await mkdir(out);
    await execa('tar', ['-x', '-b', '64', '-f', restore, '-C', out]);
    expect(await hashTree(join(out, 'src')), `the second backup restored from ${copy} alone`).toEqual(await hashTree(join(dir.path, 'src')));
  }
}, 120_000);

it('a copy at its physical end before early warning: the writer sees ENOSPC, nothing is lost, both copies change volume together', async () => {
  // Copy a's zone (1 byte) is smaller than any record: the record that would cross early warning
  // does not fit, so a reaches its physical end without warning; b has room to spare.
  const device = await fuseDrive('pnst0', [`file:${dir.path}/a-%v.tap?capacity=5M&early-warning=1`, `file:${dir.path}/b-%v.tap?capacity=50M`]);
  await makeTree(join(dir.path, 'src'), 12 * 2 ** 20);
  const tar = await execa('tar', ['-c', '-M', '-F', 'true', '-b', '64', '-f', device, '-C', dir.path, 'src']);
  expect(tar.exitCode).toBe(0);
  const status = await statusOf('pnst0');
  expect(status.state.volume).toBeGreaterThanOrEqual(3);
  expect(status.sinks.map((s) => [s.volume, s.failure])).toEqual([
    [status.state.volume, ''],
    [status.state.volume, ''],
  ]);
  for (let v = 1; v <= status.state.volume; v++) {
    const [a, b] = await Promise.all(['a', 'b'].map((c) => imageObjects(join(dir.path, `${c}-${v}.tap`))));
    expect(a, `volume ${v}: the same records on both copies`).toEqual(b);
  }
  await daemon!.stop();
  for (const copy of ['a', 'b']) {
    const restore = await fuseDrive('r0', [`file:${dir.path}/${copy}-%v.tap?readonly`]);
    const out = join(dir.path, `out-${copy}`);
    await mkdir(out);
    await execa('tar', ['-x', '-M', '-F', 'true', '-b', '64', '-f', restore, '-C', out]);
    expect(await hashTree(join(out, 'src')), `restored from copy ${copy} alone`).toEqual(await hashTree(join(dir.path, 'src')));
    await daemon!.stop();
    daemon = undefined;
  }
}, 120_000);
