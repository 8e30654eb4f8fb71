/**
 * Unmodified mt-st, dd and GNU tar on the drive's FUSE file (the CI host has FUSE but no CUSE):
 * the tools open the file as they would /dev/nst0 and see a Linux tape.
 */
import { execa } from 'execa';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, imageObjects, startDaemon, type RunningDaemon, fuseShimPid } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { hashTree, makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

/** A daemon whose drive pnst0 is the FUSE file `<tmp>/pnst0`; returns that path. */
async function fuseDrive(sinks: string[]): Promise<string> {
  const device = join(dir.path, 'pnst0');
  daemon = await startDaemon(['--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), ...sinks.flatMap((s) => ['--sink', s])]);
  return device;
}

const mt = (device: string, ...args: string[]) => execa('mt', ['-f', device, ...args], { reject: false });

describe('mt-st on the FUSE file', () => {
  it('status has the layout of a real drive, and the motion commands move as st does', async () => {
    const dev = await fuseDrive([`file:${dir.path}/a.tap`]);
    const fresh = await mt(dev, 'status');
    expect(fresh.stdout).toBe(
      [
        'SCSI 2 tape drive:',
        'File number=0, block number=0, partition=0.',
        'Tape block size 0 bytes. Density code 0x0 (default).',
        'Soft error count since last status=0',
        'General status bits on (41010000):',
        ' BOT ONLINE IM_REP_EN',
      ].join('\n'),
    );
    // tapeproxy mt prints the same layout as mt-st.
    const ours = await cli(['--server', daemon!.address, 'mt', 'pnst0', 'status']);
    expect(ours.stdout.toString().trimEnd()).toBe(fresh.stdout.trimEnd());

    for (let file = 0; file < 3; file++) {
      await execa('dd', [`of=${dev}`, 'bs=10k', 'count=3', 'conv=notrunc', 'status=none'], { input: randomBytes(30 * 1024) });
    }
    const pos = async () => /File number=(-?\d+), block number=(-?\d+)/.exec((await mt(dev, 'status')).stdout)!.slice(1).map(Number);
    expect(await pos()).toEqual([3, 0]);
    expect((await mt(dev, 'rewind')).exitCode).toBe(0);
    expect(await pos()).toEqual([0, 0]);
    await mt(dev, 'fsf', '2');
    expect(await pos()).toEqual([2, 0]);
    await mt(dev, 'fsr', '2');
    expect(await pos()).toEqual([2, 2]);
    await mt(dev, 'bsr', '1');
    expect(await pos()).toEqual([2, 1]);
    await mt(dev, 'bsf', '1');
    expect(await pos()).toEqual([1, -1]);
    expect((await mt(dev, 'tell')).stdout).toBe('At block 7.');
    await mt(dev, 'eod');
    expect(await pos()).toEqual([3, -1]);
    expect((await mt(dev, 'status')).stdout).toContain(' EOD ONLINE IM_REP_EN');
    await mt(dev, 'weof', '2');
    expect(await pos()).toEqual([5, 0]);
    await mt(dev, 'setblk', '512');
    expect((await mt(dev, 'status')).stdout).toContain('Tape block size 512 bytes.');
    await mt(dev, 'setblk', '0');
    expect((await mt(dev, 'offline')).exitCode).toBe(0);
    const offline = await mt(dev, 'status');
    expect(offline.stdout).toContain('File number=-1, block number=-1');
    expect(offline.stdout).toContain(' DR_OPEN IM_REP_EN');
  });

  it('a second open while one is held gets EBUSY', async () => {
    const dev = await fuseDrive([`file:${dir.path}/a.tap`]);
    const held = await open(dev, 'r');
    try {
      const busy = await mt(dev, 'status');
      expect(busy.exitCode).not.toBe(0);
      expect(busy.stderr).toContain('Device or resource busy');
    } finally {
      await held.close();
    }
    expect((await mt(dev, 'status')).exitCode).toBe(0);
  });
});

describe('dd on the FUSE file', () => {
  it('records of 10 KiB, 64 KiB, 256 KiB and 1 MiB keep their boundaries; a short buffer gets ENOMEM', async () => {
    const dev = await fuseDrive([`file:${dir.path}/a.tap`, `file:${dir.path}/b.tap`]);
    const sizes = [10240, 65536, 262144, 1048576];
    const inputs = sizes.map((size) => randomBytes(size * 3));
    for (const [i, size] of sizes.entries()) {
      // iflag=fullblock: from a pipe, dd would otherwise write whatever each read of the pipe returned.
      await execa('dd', [`of=${dev}`, `bs=${size}`, 'iflag=fullblock', 'conv=notrunc', 'status=none'], { input: inputs[i] }); // 3 records + filemark
    }
    await mt(dev, 'rewind');
    for (const [i, size] of sizes.entries()) {
      // A 1 MiB buffer: each read returns one record of its own size; dd counts them as partial reads.
      const out = join(dir.path, `out${i}`);
      const r = await execa('dd', [`if=${dev}`, `of=${out}`, 'bs=1M']);
      expect(r.stderr).toContain(size === 1048576 ? '3+0 records in' : '0+3 records in');
      expect((await readFile(out)).equals(inputs[i]!)).toBe(true);
    }
    expect((await readFile(join(dir.path, 'a.tap'))).equals(await readFile(join(dir.path, 'b.tap')))).toBe(true);
    await mt(dev, 'rewind');
    const short = await execa('dd', [`if=${dev}`, 'of=/dev/null', 'bs=5k', 'count=1'], { reject: false });
    expect(short.exitCode).not.toBe(0);
    expect(short.stderr).toContain('Cannot allocate memory');
  });
});

describe('write-behind at early warning', () => {
  it('every record dd was told was written is on the copy, however small the early-warning zone', async () => {
    // A 512 KiB zone is smaller than 32 records of 32 KiB in flight: the shim's byte window must hold.
    const dev = await fuseDrive([`file:${dir.path}/a-%v.tap?capacity=4M&early-warning=512K`]);
    const r = await execa('dd', [`of=${dev}`, 'bs=32k', 'count=200', 'iflag=fullblock', 'conv=notrunc'], {
      input: randomBytes(200 * 32768),
      reject: false,
    });
    expect(r.stderr).toContain('No space left on device');
    const out = Number(/(\d+)\+0 records out/.exec(r.stderr)![1]);
    await daemon!.stop();
    daemon = undefined;
    const images = await imageObjects(join(dir.path, 'a-1.tap'));
    expect(images.filter((o) => o !== null).length).toBe(out);
  });
});

describe('GNU tar on the FUSE file', () => {
  it('tar -c -M -b 64 across volumes (autoload), identical copies per volume, tar -x -M from each copy', async () => {
    const src = join(dir.path, 'src');
    await makeTree(src, 9 * 2 ** 20);
    const dev = await fuseDrive([`file:${dir.path}/a-%v.tap?capacity=4M&early-warning=512K`, `file:${dir.path}/b-%v.tap?capacity=64M`]);
    await execa('tar', ['-c', '-M', '-F', 'true', '-b', '64', '-f', dev, 'src'], { cwd: dir.path, stdin: 'ignore' });
    const volumes = (await daemon!.status('pnst0')).state!.volume;
    expect(volumes).toBeGreaterThanOrEqual(3);
    await daemon!.stop();
    for (let v = 1; v <= volumes; v++) {
      const a = await readFile(join(dir.path, `a-${v}.tap`));
      expect(a.equals(await readFile(join(dir.path, `b-${v}.tap`))), `volume ${v}`).toBe(true);
    }
    const original = await hashTree(src);
    for (const copy of ['a', 'b']) {
      const device = await fuseDrive([`file:${dir.path}/${copy}-%v.tap?readonly`]);
      const out = join(dir.path, `restore-${copy}`);
      await execa('mkdir', [out]);
      await execa('tar', ['-x', '-M', '-F', 'true', '-b', '64', '-f', device], { cwd: out, stdin: 'ignore' });
      expect(await hashTree(join(out, 'src')), `restored from copy ${copy}`).toEqual(original);
      await daemon!.stop();
      daemon = undefined;
    }
  });

  it('three archives on one tape: mt fsf 2 then tar -t lists the third', async () => {
    const dev = await fuseDrive([`file:${dir.path}/a.tap`]);
    for (const name of ['first', 'second', 'third']) {
      await writeFile(join(dir.path, `${name}.txt`), name);
      await execa('tar', ['-cf', dev, `${name}.txt`], { cwd: dir.path });
    }
    await mt(dev, 'rewind');
    await mt(dev, 'fsf', '2');
    expect((await execa('tar', ['-tf', dev])).stdout).toBe('third.txt');
  });
});

describe('shim supervision', () => {
  it('a killed shim is restarted and the device works again; the writer holding it open gets an error', async () => {
    const dev = await fuseDrive([`file:${dir.path}/a.tap`]);
    await execa('dd', [`of=${dev}`, 'bs=10k', 'count=2', 'conv=notrunc', 'status=none'], { input: randomBytes(20 * 1024) });
    const shimPid = () => fuseShimPid(dev);
    const first = await shimPid();
    const writer = await open(dev, 'w');
    process.kill(first, 'SIGKILL');
    await expect(writer.write(Buffer.alloc(10240))).rejects.toThrow();
    await writer.close().catch(() => undefined);
    // Supervisor: logs, clears the dead mount, starts a new shim.
    let status = await mt(dev, 'status');
    for (let i = 0; i < 100 && status.exitCode !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await mt(dev, 'status');
    }
    expect(status.exitCode).toBe(0);
    expect(await shimPid()).not.toBe(first);
    expect(status.stdout).toContain('File number=1, block number=0'); // the drive kept its position
  });
});

/**
 * The shim's session thread runs on the CPU its writer last ran on (cuse-shim/writer-cpu.h), for
 * writes and reads alike; the link's reader thread keeps the CPUs it started with. Two CPUs needed.
 */
describe.skipIf(cpus().length < 2)('the shim follows its writer', () => {
  const allowed = async (pid: number, tid: number) => /Cpus_allowed_list:\s*(\S+)/.exec(await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1];
  const shimThreads = async (dev: string) => {
    const pid = Number((await execa('pgrep', ['-f', `tapeproxy-shim .*--fuse ${dev}`])).stdout.split('\n')[0]);
    const tids = (await execa('ls', [`/proc/${pid}/task`])).stdout.split('\n').map(Number);
    return { pid, others: tids.filter((t) => t !== pid) }; // the session loop is the main thread
  };
  const ddOn = (cpu: number, ...args: string[]) => execa('taskset', ['-c', String(cpu), 'dd', 'bs=10k', 'count=4', 'status=none', ...args], { input: randomBytes(40 * 1024) });
  const everyCpu = `0-${cpus().length - 1}`;

  it('a writer on CPU 1, then one on CPU 0, then a reader on CPU 1: the session thread goes with each', async () => {
    const dev = await fuseDrive([`file:${dir.path}/a.tap`]);
    const { pid, others } = await shimThreads(dev);
    expect(await allowed(pid, pid)).toBe(everyCpu);
    await ddOn(1, `of=${dev}`, 'conv=notrunc');
    expect(await allowed(pid, pid)).toBe('1');
    await mt(dev, 'rewind');
    await ddOn(0, `of=${dev}`, 'conv=notrunc');
    expect(await allowed(pid, pid)).toBe('0');
    await mt(dev, 'rewind');
    await ddOn(1, `if=${dev}`, 'of=/dev/null');
    expect(await allowed(pid, pid)).toBe('1');
    for (const tid of others) expect(await allowed(pid, tid), `shim thread ${tid}`).toBe(everyCpu);
  });

  it('--no-follow-writer leaves it where it was', async () => {
    const device = join(dir.path, 'pnst0');
    daemon = await startDaemon(['--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), '--no-follow-writer', '--sink', `file:${dir.path}/a.tap`]);
    const { pid } = await shimThreads(device);
    await ddOn(1, `of=${device}`, 'conv=notrunc');
    expect(await allowed(pid, pid)).toBe(everyCpu);
  });
});
