/**
 * The shim's record ring end to end (proto/shim-frames.md, "Record ring"): dd through the drive's
 * FUSE file, the real shim reading records into the ring the daemon made (FUSE mode), and
 * the daemon writing them to its copies from there. Every record must reach every copy byte for
 * byte, in order, whichever way it crossed: the ring, the socket when the ring is full (a slow copy
 * holds its records), or a new shim's new ring after the old one was killed. The daemon's metrics
 * count the records by the way they came, so each test knows the ring was in fact used.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { imageObjects, startDaemon, type RunningDaemon, fuseShimPid } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

async function fuseDrive(sinks: string[], extra: string[] = []): Promise<string> {
  const device = join(dir.path, 'pnst0');
  daemon = await startDaemon(['--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), '--metrics', '127.0.0.1:0', ...extra, ...sinks.flatMap((s) => ['--sink', s])]);
  return device;
}

/** WRITE records from the shim so far, by how they crossed (tapeproxy_shim_records_total). */
async function crossed(): Promise<{ ring: number; socket: number }> {
  const address = /"address":"([^"]+)","msg":"metrics listening/.exec(daemon!.log())![1]!;
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const value = (path: string) => Number(new RegExp(`^tapeproxy_shim_records_total\\{drive="pnst0",path="${path}"\\} (\\d+)$`, 'm').exec(text)![1]);
  return { ring: value('ring'), socket: value('socket') };
}

/** dd of `data` in records of `bs` bytes to the device (one tape file: close writes its filemark). */
async function ddTo(device: string, data: Buffer, bs: number): Promise<void> {
  const input = join(dir.path, `in-${bs}`);
  await writeFile(input, data);
  await execa('dd', [`if=${input}`, `of=${device}`, `bs=${bs}`, 'conv=notrunc', 'status=none']);
}

const records = (data: Buffer, bs: number) => Array.from({ length: Math.ceil(data.length / bs) }, (_, i) => data.subarray(i * bs, (i + 1) * bs));

describe('the record ring between shim and daemon', () => {
  it('records of every size cross in the ring, read there by the kernel: both copies hold them all, in order', { timeout: 60_000 }, async () => {
    const dev = await fuseDrive([`file:${dir.path}/a.tap?fsync=false`, `file:${dir.path}/b.tap?fsync=false`]);
    const large = randomBytes(48 * MiB + 100 * KiB); // the last record is 100 KiB
    const small = randomBytes(200 * 10 * KiB);
    await ddTo(dev, large, 256 * KiB);
    const afterLarge = await crossed();
    await ddTo(dev, small, 10 * KiB);
    const afterSmall = await crossed();
    const expected = [...records(large, 256 * KiB), null, ...records(small, 10 * KiB), null];
    for (const copy of ['a', 'b']) {
      const objects = await imageObjects(join(dir.path, `${copy}.tap`));
      expect(objects.length).toBe(expected.length);
      const wrong = objects.findIndex((o, i) => (o === null) !== (expected[i] === null) || (o !== null && !o.equals(expected[i]!)));
      expect(wrong, `copy ${copy}: first object that differs`).toBe(-1);
    }
    const largeRecords = Math.ceil(large.length / (256 * KiB));
    const smallRecords = small.length / (10 * KiB);
    expect(afterLarge.ring + afterLarge.socket).toBe(largeRecords);
    expect(afterSmall.ring + afterSmall.socket).toBe(largeRecords + smallRecords);
    // Fast copies let go of records as fast as they come: most find room in the ring, small ones too.
    expect(afterLarge.ring).toBeGreaterThan(largeRecords / 2);
    expect(afterSmall.ring - afterLarge.ring).toBeGreaterThan(smallRecords / 2);
  });

  it('when a slow copy holds the ring full, records cross the socket meanwhile, and none is lost or reordered', { timeout: 120_000 }, async () => {
    // A copy queue of 32 MiB at 40 MB/s with the shim's window of 32 MiB: more is held than the ring's 32 MiB.
    const dev = await fuseDrive([`file:${dir.path}/fast.tap?fsync=false`, `file:${dir.path}/slow.tap?fsync=false&rate=40000000`], ['--window', '32M']);
    const data = randomBytes(96 * MiB);
    await ddTo(dev, data, 256 * KiB);
    const { ring, socket } = await crossed();
    expect(ring + socket).toBe(data.length / (256 * KiB));
    expect(ring).toBeGreaterThan(0);
    expect(socket).toBeGreaterThan(0); // the ring was full at times
    const expected = [...records(data, 256 * KiB), null];
    for (const copy of ['fast', 'slow']) {
      const objects = await imageObjects(join(dir.path, `${copy}.tap`));
      expect(objects.length).toBe(expected.length);
      const wrong = objects.findIndex((o, i) => (o === null) !== (expected[i] === null) || (o !== null && !o.equals(expected[i]!)));
      expect(wrong, `copy ${copy}: first object that differs`).toBe(-1);
    }
  });

  it('a shim killed while the records it put in the ring are still being written: every record the daemon took lands, and the next shim gets a ring of its own', { timeout: 60_000 }, async () => {
    const dev = await fuseDrive([`file:${dir.path}/a.tap?fsync=false`, `file:${dir.path}/slow.tap?fsync=false&rate=20000000`]);
    const shimPid = () => fuseShimPid(dev);
    const first = randomBytes(64 * MiB);
    const writing = ddTo(dev, first, 256 * KiB).then(() => 'finished', () => 'failed');
    // Killed once the slow copy holds a good part of the ring's records.
    for (let i = 0; i < 200 && (await daemon!.status('pnst0')).sinks[1]!.queuedBytes < 8 * MiB; i++) await sleep(20);
    const pid = await shimPid();
    const before = await crossed();
    process.kill(pid, 'SIGKILL');
    expect(await writing).toBe('failed');
    expect(before.ring).toBeGreaterThan(0);
    let status = await execa('mt', ['-f', dev, 'status'], { reject: false });
    for (let i = 0; i < 100 && status.exitCode !== 0; i++) {
      await sleep(100);
      status = await execa('mt', ['-f', dev, 'status'], { reject: false });
    }
    expect(status.exitCode).toBe(0);
    const afterKill = await crossed();
    const second = randomBytes(16 * MiB);
    await ddTo(dev, second, 256 * KiB);
    const after = await crossed();
    expect(after.ring).toBeGreaterThan(afterKill.ring); // the new shim has a ring too
    // The first file holds the records the daemon took from the dead shim, a prefix of what dd wrote.
    const taken = afterKill.ring + afterKill.socket;
    expect(taken).toBeGreaterThanOrEqual(before.ring + before.socket);
    const expected = [...records(first, 256 * KiB).slice(0, taken), null, ...records(second, 256 * KiB), null];
    for (const copy of ['a', 'slow']) {
      const objects = await imageObjects(join(dir.path, `${copy}.tap`));
      const wrong = objects.findIndex((o, i) => (o === null) !== (expected[i] === null) || (o !== null && !o.equals(expected[i]!)));
      expect(objects.length, `copy ${copy}`).toBe(expected.length);
      expect(wrong, `copy ${copy}: first object that differs`).toBe(-1);
    }
  });
});
