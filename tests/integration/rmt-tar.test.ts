/**
 * Unmodified GNU tar through the rmt front end (tar --rsh-command): a multi-volume archive across
 * unattended volume changes, mirrored to two copies, restored from each copy alone.
 */
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { RSH } from '../support/tools.js';
import { hashTree, makeTree } from '../support/trees.js';

const MiB = 2 ** 20;

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

/** tar with the archive on drive pnst0 of `daemon`, reached through rmt. */
function tar(args: string[], cwd: string) {
  return execa('tar', [...args, '-b', '64', '--rsh-command', RSH, '-f', 'localhost:/dev/pnst0'], {
    cwd,
    env: { TAPEPROXY_SERVER: daemon!.address },
    stdin: 'ignore',
  });
}

it('tar -c -M -b 64 across 2+ volumes to two copies; tar -x -M from each copy alone restores the tree', async () => {
  const src = join(dir.path, 'src');
  await makeTree(src, 9 * MiB);
  // Copy a ends volumes early (3.5 MiB of 4 MiB); copy b is roomier: a's early warning decides.
  daemon = await startDaemon([
    '--drive', 'pnst0',
    '--sink', `file:${dir.path}/a-%v.tap?capacity=4M&early-warning=512K`,
    '--sink', `file:${dir.path}/b-%v.tap?capacity=64M`,
  ]);
  // -F true: the next volume is loaded by the drive itself (autoload), no operator.
  await tar(['-c', '-M', '-F', 'true', 'src'], dir.path);
  const status = await daemon.status('pnst0');
  expect(status.state!.volume).toBeGreaterThanOrEqual(3);
  await daemon.stop();

  const volumes = status.state!.volume;
  for (let v = 1; v <= volumes; v++) {
    const a = await readFile(join(dir.path, `a-${v}.tap`));
    const b = await readFile(join(dir.path, `b-${v}.tap`));
    expect(a.equals(b), `volume ${v} of both copies`).toBe(true);
    if (v < volumes) expect(a.length).toBeGreaterThan(3.5 * MiB); // ended at early warning
  }

  const original = await hashTree(src);
  for (const copy of ['a', 'b']) {
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/${copy}-%v.tap?readonly`]);
    const out = join(dir.path, `restore-${copy}`);
    await execa('mkdir', [out]);
    await tar(['-x', '-M', '-F', 'true'], out);
    expect(await hashTree(join(out, 'src')), `restored from copy ${copy}`).toEqual(original);
    await daemon.stop();
    daemon = undefined;
  }
});
