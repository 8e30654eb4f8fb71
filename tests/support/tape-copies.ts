import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { volumePath } from '../../daemon/sinks/file-sink.js';
import { startDaemon, type RunningDaemon } from './daemon.js';
import { hashTree } from './trees.js';

/** A drive served as a FUSE file in `dir`, with its sinks: what tar -f reaches. */
export async function fuseDrive(dir: string, name: string, sinks: string[], extra: string[] = []): Promise<{ daemon: RunningDaemon; device: string }> {
  const device = join(dir, name);
  const daemon = await startDaemon(['--drive', name, '--fuse', device, '--runtime-dir', join(dir, `run-${name}`), ...sinks.flatMap((s) => ['--sink', s]), ...extra]);
  return { daemon, device };
}

/** `tar -c -M` of `cwd/src` onto a drive's device; volumes change unattended (-F true). */
export function tarCreate(device: string, cwd: string, options: { reject?: boolean } = {}) {
  return execa('tar', ['-c', '-M', '-F', 'true', '-b', '64', '-f', device, 'src'], { cwd, stdin: 'ignore', reject: options.reject ?? true });
}

/**
 * Volumes 1..N of two image copies (file-sink path templates) are byte for byte the same, and N is
 * the last volume either copy has; returns N.
 */
export async function expectSameVolumes(a: string, b: string): Promise<number> {
  let v = 1;
  for (; existsSync(volumePath(a, v)) || existsSync(volumePath(b, v)); v++) {
    const [x, y] = await Promise.all([readFile(volumePath(a, v)), readFile(volumePath(b, v))]);
    expect(x.equals(y), `volume ${v} of ${a} and ${b}`).toBe(true);
  }
  return v - 1;
}

/** Restores `tar -x -M` from one image copy alone (read-only) and compares it with `original`. */
export async function expectRestoresAlone(dir: string, copy: string, original: Record<string, string>): Promise<void> {
  const out = join(dir, `restore-${Math.random().toString(36).slice(2, 8)}`);
  await mkdir(out);
  const { daemon, device } = await fuseDrive(dir, `r${Math.random().toString(36).slice(2, 6)}`, [`file:${copy}?readonly`]);
  try {
    await execa('tar', ['-x', '-M', '-F', 'true', '-b', '64', '-f', device], { cwd: out, stdin: 'ignore' });
  } finally {
    await daemon.stop();
  }
  expect(await hashTree(join(out, 'src')), `restored from ${copy} alone`).toEqual(original);
}

/**
 * After `tar -c -M` of `dir/src` to a drive with a roomy local image copy and a remote copy whose
 * volumes are small: the copies are the same volume for volume, over at least three volumes; every
 * volume but the last ended past the remote's early-warning point and within its capacity (so the
 * remote's early warning ended it, for the local copy too); each copy restores alone.
 */
export async function expectVolumesEndedByRemote(dir: string, local: string, remote: string, remoteVolume: { earlyWarningAt: number; capacity: number }): Promise<void> {
  const volumes = await expectSameVolumes(local, remote);
  expect(volumes).toBeGreaterThanOrEqual(3);
  for (let v = 1; v < volumes; v++) {
    const { size } = await stat(volumePath(remote, v));
    expect(size, `remote volume ${v}`).toBeGreaterThan(remoteVolume.earlyWarningAt);
    expect(size, `remote volume ${v}`).toBeLessThanOrEqual(remoteVolume.capacity);
  }
  const original = await hashTree(join(dir, 'src'));
  await expectRestoresAlone(dir, local, original);
  await expectRestoresAlone(dir, remote, original);
}

/** Waits until a file has grown past `bytes` (a stream is under way), to act mid-stream. */
export async function grows(path: string, bytes: number): Promise<void> {
  while ((await stat(path).catch(() => ({ size: 0 }))).size < bytes) await sleep(50);
}
