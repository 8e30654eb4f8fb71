import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packageRoot } from '../package-root.js';

/**
 * The compiled module of a worker thread, `name` next to the module `from` (its import.meta.url).
 * Under vitest the modules are the TypeScript sources, which a worker cannot load: the build's copy
 * in dist/ is used instead (tests need the build anyway).
 */
export function workerScript(from: string, name: string): URL {
  const url = new URL(name, from);
  const path = fileURLToPath(url);
  if (existsSync(path)) return url;
  const root = packageRoot();
  return pathToFileURL(join(root, 'dist', relative(root, path)));
}
