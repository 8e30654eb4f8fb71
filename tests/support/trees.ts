import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** A tree of about `totalBytes` of random (incompressible) files in nested directories. */
export async function makeTree(root: string, totalBytes: number): Promise<void> {
  let written = 0;
  for (let i = 0; written < totalBytes; i++) {
    const dir = join(root, `d${i % 7}`, `e${i % 3}`);
    await mkdir(dir, { recursive: true });
    const size = Math.min(totalBytes - written, randomInt(i % 5 === 0 ? 0 : 1, 600_000));
    await writeFile(join(dir, `f${i}.bin`), randomBytes(size));
    written += size;
  }
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
