import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

/**
 * A tree of about `totalBytes` of random (incompressible) files in nested directories. With a
 * `seed`, the file sizes (not the contents) are the same on every run: for tests whose outcome
 * depends on where the tool's stream ends, not on what it holds.
 */
export async function makeTree(root: string, totalBytes: number, { seed }: { seed?: number } = {}): Promise<void> {
  const between = seed === undefined ? randomInt : seededInts(seed);
  let written = 0;
  for (let i = 0; written < totalBytes; i++) {
    const dir = join(root, `d${i % 7}`, `e${i % 3}`);
    await mkdir(dir, { recursive: true });
    const size = Math.min(totalBytes - written, between(i % 5 === 0 ? 0 : 1, 600_000));
    await writeFile(join(dir, `f${i}.bin`), randomBytes(size));
    written += size;
  }
}

/** Integers in [min, max) from a seeded generator (mulberry32). */
function seededInts(seed: number): (min: number, max: number) => number {
  let state = seed >>> 0;
  return (min, max) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const unit = ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    return min + Math.floor(unit * (max - min));
  };
}

/** Every entry below `root`: files by SHA-256, symlinks by target, directories by name. */
export async function hashTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(dir: string): Promise<void> {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const key = relative(root, path);
      if (entry.isDirectory()) {
        out[key + '/'] = 'dir';
        await walk(path);
      } else if (entry.isSymbolicLink()) out[key] = `-> ${await readlink(path)}`;
      else out[key] = createHash('sha256').update(await readFile(path)).digest('hex');
    }
  }
  await walk(root);
  return out;
}
