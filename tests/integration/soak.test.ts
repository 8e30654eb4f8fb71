/**
 * Load: one daemon with four drives, each mirrored to two image copies with 16 MiB volumes, and four
 * unmodified tar -M writers at once, round after round for TAPEPROXY_SOAK_SECONDS (default 20; each
 * round on the volumes after the last, as a stacker goes on). After every round every copy of every
 * drive must be identical to its twin volume by volume; `tapeproxy verify` must pass both copies of
 * the last round against their manifests; copy B alone must restore each writer's last backup; and
 * the daemon's memory must not grow from the first round to the last.
 */
import { execa } from 'execa';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { hashTree, makeTree } from '../support/trees.js';

const DRIVES = ['pnst0', 'pnst1', 'pnst2', 'pnst3'];
const dir = useTempDir('all');
let daemon: RunningDaemon | undefined;

beforeAll(async () => {
  await Promise.all(DRIVES.map((d) => makeTree(join(dir.path, `src-${d}`), 24 * 2 ** 20)));
  const config = {
    'runtime-dir': join(dir.path, 'run'),
    drives: DRIVES.map((d) => ({
      name: d,
      fuse: join(dir.path, d),
      sinks: ['a', 'b'].map((c) => `file:${dir.path}/${d}-${c}-%v.tap?capacity=16M&early-warning=1M&fsync=false`),
    })),
  };
  await writeFile(join(dir.path, 'config.json'), JSON.stringify(config)); // YAML is a superset of JSON
  daemon = await startDaemon(['--config', join(dir.path, 'config.json')]);
}, 120_000);
afterAll(async () => {
  await daemon?.stop();
});

/** Four tar -M writers at once, one per drive, each starting on a new volume (after an unload). */
async function backUpAll(): Promise<void> {
  await Promise.all(
    DRIVES.map(async (d) => {
      await execa('mt', ['-f', join(dir.path, d), 'offline']);
      await execa('tar', ['-c', '-M', '-F', 'true', '-b', '64', '-f', join(dir.path, d), '-C', dir.path, `src-${d}`]);
    }),
  );
}

/** The volumes of a drive's copy (`a` or `b`) that exist now, by number. */
async function volumes(drive: string, copy: string): Promise<number[]> {
  const prefix = `${drive}-${copy}-`;
  return (await readdir(dir.path))
    .filter((f) => f.startsWith(prefix) && f.endsWith('.tap'))
    .map((f) => Number(f.slice(prefix.length, -'.tap'.length)))
    .sort((x, y) => x - y);
}

/** VmRSS of the daemon now, in bytes. */
async function rss(): Promise<number> {
  const status = await readFile(`/proc/${daemon!.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const SOAK_SECONDS = Number(process.env.TAPEPROXY_SOAK_SECONDS ?? 20);

/** Checks that both copies of each drive hold the same volumes, byte for byte; returns them per drive. */
async function checkCopies(): Promise<Map<string, number[]>> {
  const byDrive = new Map<string, number[]>();
  for (const d of DRIVES) {
    const all = await volumes(d, 'a');
    expect(await volumes(d, 'b'), `${d}: the same volumes on both copies`).toEqual(all);
    expect(all.length, `${d}: a round spans at least two volumes`).toBeGreaterThanOrEqual(2);
    for (const v of all) {
      const [a, b] = ['a', 'b'].map((c) => join(dir.path, `${d}-${c}-${v}.tap`));
      expect((await readFile(a!)).equals(await readFile(b!)), `${d} volume ${v}: copies identical`).toBe(true);
    }
    byDrive.set(d, all);
  }
  return byDrive;
}

it('four concurrent tar -M writers on four drives of two copies, round after round: copies identical and restorable, memory flat', async () => {
  const started = Date.now();
  let rounds = 0;
  let firstRss = 0;
  let lastRound = new Map<string, number[]>();
  do {
    // The volumes of the round before are checked and gone: only this round's stay.
    for (const [d, vols] of lastRound) for (const v of vols) for (const c of ['a', 'b']) await rm(join(dir.path, `${d}-${c}-${v}.tap`));
    await backUpAll();
    rounds++;
    lastRound = await checkCopies();
    if (rounds === 1) firstRss = await rss();
  } while (Date.now() - started < SOAK_SECONDS * 1000);
  const lastRss = await rss();
  console.log(`${rounds} rounds in ${((Date.now() - started) / 1000).toFixed(0)} s; daemon RSS after the first: ${(firstRss / 2 ** 20).toFixed(0)} MiB, after the last: ${(lastRss / 2 ** 20).toFixed(0)} MiB`);
  expect(rounds, 'rounds').toBeGreaterThanOrEqual(2);
  expect(lastRss - firstRss, 'RSS growth from the first round to the last').toBeLessThan(64 * 2 ** 20);
  await daemon!.stop();
  daemon = undefined;

  // tapeproxy verify: both copies of each of the last round's volumes against its manifest and each other.
  for (const [d, vols] of lastRound) {
    for (const v of vols) {
      const verify = await cli(['verify', '--volume', String(v), join(dir.path, `${d}-a-%v.tap`), join(dir.path, `${d}-b-%v.tap`)]);
      expect(verify.exitCode, `${d} volume ${v}: ${verify.stdout}${verify.stderr}`).toBe(0);
    }
  }

  // The last round's volumes of copy B, numbered from 1 for a reading drive.
  for (const [d, vols] of lastRound) {
    await Promise.all(vols.map((v, i) => copyFile(join(dir.path, `${d}-b-${v}.tap`), join(dir.path, `restore-${d}-${i + 1}.tap`))));
  }
  daemon = await startDaemon([
    '--config',
    await writeConfig(DRIVES.map((d) => ({ name: d, fuse: join(dir.path, d), sinks: [`file:${dir.path}/restore-${d}-%v.tap?readonly`] }))),
  ]);
  await Promise.all(
    DRIVES.map(async (d) => {
      const out = join(dir.path, `out-${d}`);
      await mkdir(out);
      await execa('tar', ['-x', '-M', '-F', 'true', '-b', '64', '-f', join(dir.path, d), '-C', out]);
      expect(await hashTree(join(out, `src-${d}`)), `${d}: the last backup restored from copy B alone`).toEqual(
        await hashTree(join(dir.path, `src-${d}`)),
      );
    }),
  );
}, 600_000 + SOAK_SECONDS * 2000);

async function writeConfig(drives: object[]): Promise<string> {
  const path = join(dir.path, 'restore.json');
  await writeFile(path, JSON.stringify({ 'runtime-dir': join(dir.path, 'run'), drives }));
  return path;
}
