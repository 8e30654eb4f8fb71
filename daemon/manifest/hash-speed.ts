import { hashLabel, type HashName, newHash } from './file-hash.js';

/**
 * The most a drive takes (LTO-9 and LTO-10: 400 MB/s native, up to 1,000 MB/s of data that
 * compresses): manifest hashing slower than this can hold a drive back.
 */
export const DRIVE_PEAK_BYTES_PER_SECOND = 1e9;

/**
 * Bytes a second `name` hashes on one core here, as manifest hashing gets them. A drive's records
 * are hashed in order on one worker thread (each group's digest chains its records), so this is
 * the most a drive with manifests can take: BLAKE3 2.2 GiB/s on these machines; SHA-256 1.4 with
 * the CPU's SHA extensions, 0.31 without (OPENSSL_ia32cap=":~0x20000000"), where the bench's Cdd
 * fell to 0.29 GiB/s, hashing busy all the run. A short run, at most `bytes` or what `ms` allows,
 * in `slices` of which the fastest counts: a slice the scheduler cut into on a busy host says
 * nothing of the CPU, and a warning should not come of it.
 */
export function hashSpeed(name: HashName, bytes = 8 * 2 ** 20, ms = 50, slices = 4): number {
  const block = Buffer.alloc(256 * 1024, 0xa5);
  const hash = newHash(name);
  hash.update(block); // first use: set-up is not measured
  let fastest = 0;
  for (let i = 0; i < slices; i++) {
    const start = process.hrtime.bigint();
    let hashed = 0;
    let elapsed = 0;
    while (hashed < bytes / slices && elapsed < (ms / slices) * 1e6) {
      hash.update(block);
      hashed += block.length;
      elapsed = Number(process.hrtime.bigint() - start);
    }
    fastest = Math.max(fastest, hashed / (elapsed / 1e9));
  }
  return fastest;
}

/**
 * What the daemon says at start when a drive records manifests: hashing's speed, and a warning
 * when a drive may be faster than it (it would wait for the hash, shoe-shining).
 */
export function hashSpeedNotice(name: HashName, bytesPerSecond: number): { level: 'info' | 'warn'; message: string; mbPerSecond: number } {
  const mbPerSecond = Math.round(bytesPerSecond / 1e6);
  const label = hashLabel(name);
  if (bytesPerSecond >= DRIVE_PEAK_BYTES_PER_SECOND) return { level: 'info', message: `manifest hashing (${label}) runs at ${mbPerSecond} MB/s on this CPU: faster than any drive takes`, mbPerSecond };
  const instead =
    name === 'sha256'
      ? 'CPUs without SHA extensions hash SHA-256 about 3-5 times slower; manifest-hash: blake3 (the default) is faster on any CPU, '
      : '';
  return {
    level: 'warn',
    message:
      `manifest hashing (${label}, one core per drive) runs at ${mbPerSecond} MB/s on this CPU, slower than a drive can take ` +
      `(LTO-9 and LTO-10: 400 MB/s native, up to 1,000 MB/s of data that compresses): a drive with manifests is held to that rate. ` +
      `${instead}--no-manifests (manifests: false for a drive) turns manifests off`,
    mbPerSecond,
  };
}
