import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * A native addon's exports, or undefined where it is not built; one that is built but does not load
 * (made for another Node, say) is a warning naming `fallback`, what the daemon does instead.
 */
export function loadAddon<T>(path: string, fallback: string): T | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return createRequire(import.meta.url)(path) as T;
  } catch (err) {
    process.emitWarning(`tapeproxy: ${path} does not load (${(err as Error).message}); ${fallback}`);
    return undefined;
  }
}
