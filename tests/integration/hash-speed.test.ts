/**
 * The daemon says at start how fast manifest hashing runs here, and warns when a drive could be
 * faster than it: a drive's records are hashed in order on one core, so with SHA-256 on a CPU
 * without SHA extensions the hash, not the drive, sets the pace. OpenSSL's OPENSSL_ia32cap turns
 * the SHA extensions off for the daemon, as such a CPU would be; BLAKE3, the default, does not use
 * them.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DRIVE_PEAK_BYTES_PER_SECOND, hashSpeed, hashSpeedNotice } from '../../daemon/manifest/hash-speed.js';
import { parseJson, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

/** CPUID leaf 7 EBX bit 29 (SHA) cleared, in OpenSSL's notation. */
const NO_SHA_EXTENSIONS = { OPENSSL_ia32cap: ':~0x20000000' };

function hashingLines(log: string) {
  return log
    .split('\n')
    .map((line) => parseJson(line) as { msg?: string; level?: number; hash?: string; hashMBps?: number } | undefined)
    .filter((entry) => entry?.msg?.startsWith('manifest hashing'));
}

describe('manifest hashing speed at start', () => {
  it.skipIf(process.arch !== 'x64')('warns, with the rate, BLAKE3 and --no-manifests, where SHA-256 is slower than a drive', async () => {
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a.tap`, '--manifest-hash', 'sha256'], { env: NO_SHA_EXTENSIONS });
    const [line, ...more] = hashingLines(daemon.log());
    expect(more).toEqual([]);
    expect(line?.level).toBe(40);
    expect(line?.hash).toBe('sha256');
    expect(line?.hashMBps).toBeGreaterThan(0);
    expect(line!.hashMBps!).toBeLessThan(DRIVE_PEAK_BYTES_PER_SECOND / 1e6);
    expect(line?.msg).toContain(`(SHA-256, one core per drive) runs at ${line!.hashMBps} MB/s`);
    expect(line?.msg).toContain('manifest-hash: blake3');
    expect(line?.msg).toContain('--no-manifests');
  });

  // BLAKE3 (with AVX2) runs at ~2,300 MB/s here, and needs no SHA extensions.
  it.skipIf(!/\bavx2\b/.test(readFileSync('/proc/cpuinfo', 'utf8')))('hashes with BLAKE3 by default, fast enough on the same CPU without SHA extensions', async () => {
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a.tap`], { env: NO_SHA_EXTENSIONS });
    const [line, ...more] = hashingLines(daemon.log());
    expect(more).toEqual([]);
    expect(line).toMatchObject({ level: 30, hash: 'blake3' });
    expect(line!.hashMBps!).toBeGreaterThanOrEqual(DRIVE_PEAK_BYTES_PER_SECOND / 1e6);
    expect(line?.msg).toContain(`manifest hashing (BLAKE3) runs at ${line!.hashMBps} MB/s`);
  });

  it('says nothing of hashing when the drive records no manifests', async () => {
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a.tap`, '--no-manifests'], { env: NO_SHA_EXTENSIONS });
    expect(daemon.log()).toMatch(/"msg":"listening"/);
    expect(hashingLines(daemon.log())).toEqual([]);
  });

  // On these machines SHA-256 runs at ~1,500 MB/s; with four busy loops on two cores, one 50 ms
  // run measured 457-897 (a false warning every time), the fastest of four slices 1,476-1,602.
  it.skipIf(!/\bsha_ni\b/.test(readFileSync('/proc/cpuinfo', 'utf8')))('a CPU with SHA extensions is not taken for a slow one while other processes keep it busy', async () => {
    const busy = [0, 1, 2, 3].map(() => execa('sh', ['-c', 'while :; do :; done'], { reject: false }));
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (let i = 0; i < 5; i++) expect(hashSpeed('sha256')).toBeGreaterThanOrEqual(DRIVE_PEAK_BYTES_PER_SECOND);
    } finally {
      for (const p of busy) p.kill('SIGKILL');
      await Promise.all(busy);
    }
  });

  it('warns below the rate a drive takes, and only there', () => {
    expect(hashSpeedNotice('blake3', DRIVE_PEAK_BYTES_PER_SECOND - 1e6)).toMatchObject({ level: 'warn', mbPerSecond: 999 });
    expect(hashSpeedNotice('blake3', DRIVE_PEAK_BYTES_PER_SECOND)).toMatchObject({ level: 'info', mbPerSecond: 1000 });
  });
});
