/**
 * Unmodified dump/restore through the rmt front end (dump -f host:dev with RSH): a level-0 dump of
 * a small ext4 file system across a volume change, then restore -r and restore -C from each copy.
 */
import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { CLI, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { RSH, withTerminal } from '../support/tools.js';
import { hashTree, makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const undo of cleanups.splice(0).reverse()) await undo();
  await daemon?.stop();
  daemon = undefined;
});

/** dump needs a block device: the image behind a loop device (and mounted, for restore -C). */
async function loopDevice(image: string): Promise<string> {
  const { stdout } = await execa('losetup', ['--find', '--show', '--read-only', image]);
  cleanups.push(() => execa('losetup', ['-d', stdout]));
  return stdout;
}

/** One line per volume image: its files and records. */
async function describeImages(): Promise<string> {
  const { stdout } = await execa('sh', ['-c', `for f in ${dir.path}/*.tap; do echo "$f: $(node ${CLI} image ls $f | head -1)"; done`], { reject: false });
  return stdout;
}

function env() {
  return { TAPEPROXY_SERVER: daemon!.address, RSH };
}

it('dump -0 across a volume change; restore -r and restore -C from each copy alone', async () => {
  const src = join(dir.path, 'src');
  await makeTree(src, 5 * 2 ** 20);
  const image = join(dir.path, 'fs.img');
  await execa('mkfs.ext4', ['-q', '-d', src, image, '32M']);
  const device = await loopDevice(image);

  daemon = await startDaemon([
    '--drive', 'pnst0',
    '--sink', `file:${dir.path}/a-%v.tap?capacity=3M&early-warning=256K`,
    '--sink', `file:${dir.path}/b-%v.tap`,
  ]);
  // -F true: "exit 0 = continue without prompting"; the drive loads the next volume itself.
  const dump = await execa('dump', ['-0', '-F', 'true', '-f', 'localhost:/dev/pnst0', device], { env: env(), stdin: 'ignore', all: true });
  expect(dump.all).toMatch(/DUMP: .* on 2 volume\(s\)/);
  expect(dump.all).toContain('DUMP IS DONE');
  await daemon.stop();

  const mountpoint = join(dir.path, 'mnt');
  await mkdir(mountpoint);
  await execa('mount', ['-o', 'ro', device, mountpoint]);
  cleanups.push(() => execa('umount', [mountpoint]));

  const original = await hashTree(src);
  for (const copy of ['a', 'b']) {
    const serve = () => startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/${copy}-%v.tap?readonly`]);
    // restore asks on its terminal for volume 2 ("Mount tape volume 2 ... (default: ...)"): Enter.
    const answers = '\n'.repeat(4) + 'n\n'.repeat(4);

    daemon = await serve();
    const out = join(dir.path, `restore-${copy}`);
    await mkdir(out);
    await withTerminal(['restore', '-r', '-f', 'localhost:/dev/pnst0'], { cwd: out, env: env(), answers }).catch(
      async (err: Error) => {
        throw new Error(`${err.message}\n${await describeImages()}`); // what the copies hold, for diagnosis
      },
    );
    const restored = await hashTree(out);
    delete restored['lost+found/'];
    delete restored['restoresymtable'];
    expect(restored, `restore -r from copy ${copy}`).toEqual(original);
    await daemon.stop();

    daemon = await serve();
    const compare = await withTerminal(['restore', '-C', '-D', mountpoint, '-f', 'localhost:/dev/pnst0'], {
      cwd: out,
      env: env(),
      answers,
    });
    expect(compare.exitCode).toBe(0);
    expect(compare.stdout).not.toMatch(/differ|not found|error/i);
    expect(compare.stdout).toContain('Mount tape volume 2');
    await daemon.stop();
    daemon = undefined;
  }
});
