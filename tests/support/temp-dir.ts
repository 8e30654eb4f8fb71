import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';

/**
 * A fresh temporary directory for each test of the calling file (or one for the whole file),
 * removed afterwards. Call it before the hooks that use it: they then run after its creation and
 * before its removal. `base`: where, if not the system's temporary directory (`/dev/shm` for tmpfs).
 */
export function useTempDir(scope: 'each' | 'all' = 'each', base = tmpdir()): { readonly path: string } {
  const dir = { path: '' };
  const [before, after] = scope === 'each' ? [beforeEach, afterEach] : [beforeAll, afterAll];
  before(async () => {
    dir.path = await mkdtemp(join(base, 'tapeproxy-test-'));
  });
  after(async () => {
    await rm(dir.path, { recursive: true, force: true });
  });
  return dir;
}
