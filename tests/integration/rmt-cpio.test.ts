/**
 * Unmodified GNU cpio through the rmt front end (cpio --rsh-command): an archive across a reel
 * change (cpio unloads with MTOFFL and asks for the next reel on its terminal), read back with -i.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { RSH, withTerminal } from '../support/tools.js';
import { hashTree, makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

function cpio(args: string[], cwd: string, stdinFile?: string) {
  // Answers for every "Found end of tape.  Load next tape and press RETURN." cpio may ask.
  return withTerminal(['cpio', ...args, '-B', '--rsh-command', RSH], {
    cwd,
    env: { TAPEPROXY_SERVER: daemon!.address },
    answers: '\n'.repeat(20),
    stdinFile,
  });
}

it('cpio -o across a reel change and cpio -i back, from each copy', async () => {
  const src = join(dir.path, 'src');
  await makeTree(src, 3 * 2 ** 20);
  const files = await readdir(src, { recursive: true });
  await writeFile(join(dir.path, 'list'), files.map((f) => `src/${f}\n`).join(''));
  daemon = await startDaemon([
    '--drive', 'pnst0',
    '--sink', `file:${dir.path}/a-%v.tap?capacity=2M&early-warning=256K`,
    '--sink', `file:${dir.path}/b-%v.tap`,
  ]);
  const out = await cpio(['-o', '-H', 'newc', '-O', 'localhost:/dev/pnst0'], dir.path, 'list');
  expect(out.stdout, out.stdout).toContain('Found end of tape');
  expect((await daemon.status('pnst0')).state!.volume).toBe(2);
  await daemon.stop();

  const original = await hashTree(src);
  for (const copy of ['a', 'b']) {
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/${copy}-%v.tap?readonly`]);
    const restore = join(dir.path, `restore-${copy}`);
    await mkdir(restore);
    const back = await cpio(['-i', '-d', '-I', 'localhost:/dev/pnst0'], restore);
    expect(back.stdout).toContain('Found end of tape');
    expect(await hashTree(join(restore, 'src')), `restored from copy ${copy}`).toEqual(original);
    await daemon.stop();
    daemon = undefined;
  }
});
