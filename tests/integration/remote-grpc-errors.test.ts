/**
 * What the remote drive itself refuses, on loopback (plaintext: the link is not the point here):
 * a drive it does not have, and its physical end reached by records the local writer was already
 * told were written.
 */
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { fuseDrive, tarCreate } from '../support/tape-copies.js';
import { useTempDir } from '../support/temp-dir.js';
import { makeTree } from '../support/trees.js';

const MiB = 2 ** 20;
const dir = useTempDir();
let daemons: RunningDaemon[] = [];

beforeEach(async () => {
  await makeTree(join(dir.path, 'src'), 9 * MiB);
});
afterEach(async () => {
  for (const d of daemons.reverse()) await d.stop();
  daemons = [];
});

async function remote(image: string): Promise<string> {
  const daemon = await startDaemon(['--drive', 'remote0', '--sink', `file:${dir.path}/r-%v.tap?${image}`]);
  daemons.push(daemon);
  return daemon.address;
}

it('a drive the remote does not have: the daemon does not start, and says which drives it has', async () => {
  const address = await remote('capacity=4M');
  const r = await cli(['daemon', '--drive', 'pnst0', '--listen', '127.0.0.1:0', '--sink', `file:${dir.path}/a.tap`, '--sink', `grpc://${address}/tape9?plaintext`]);
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain(`grpc://${address}/tape9: cannot load volume 1: ${address}: no drive named 'tape9'; drives: remote0`);
  expect(existsSync(`${dir.path}/r-1.tap`)).toBe(false);
});

it("the remote's physical end (an early-warning zone of one byte): the copy fails, tar gets an I/O error, the log names the remote", async () => {
  // 32 KiB records (8 bytes of framing each) never end exactly at 4 MiB: the one that would
  // cross early warning crosses the end too, and the remote refuses it.
  const address = await remote('capacity=4M&early-warning=1');
  const { daemon, device } = await fuseDrive(dir.path, 'pnst0', [`file:${dir.path}/a-%v.tap?capacity=64M`, `grpc://${address}/remote0?plaintext`]);
  daemons.push(daemon);
  const tar = await tarCreate(device, dir.path, { reject: false });
  expect(tar.exitCode).not.toBe(0);
  expect(tar.stderr).toMatch(/Input\/output error/);
  expect(daemon.log()).toMatch(/copy failed: the writer gets the error/);
  const failure = (await daemon.status('pnst0')).sinks[1]!.failure;
  expect(failure).toMatch(
    new RegExp(`^EIO: grpc://${address}/remote0: write of a 32768-byte record at object \\d+ of volume 1 failed on the remote drive: EIO: physical end of volume 1 reached by a record already acknowledged`),
  );
  expect((await stat(`${dir.path}/r-1.tap`)).size).toBeLessThanOrEqual(4 * MiB);
});
