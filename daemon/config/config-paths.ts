import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { sinkRequires, type RequiredPath } from '../sinks/sink-uri.js';
import { ConfigError, loadConfigFile, type DaemonConfig } from './config.js';

/**
 * Checks that what the configuration points at exists on this machine: each sink's directories,
 * files and devices (a sink type declares them, see `requires` in sink-uri.ts) and each FUSE
 * file's directory. Separate from validateConfig, which judges the file alone (the example config
 * is valid on any machine); the daemon and `config check` run both, so a wrong path is a
 * configuration error (exit 2) before anything starts, not a failure at the first write.
 */
export function checkConfigPaths(config: DaemonConfig): void {
  config.drives.forEach((drive, i) => {
    drive.sinks.forEach((uri, j) => {
      for (const required of sinkRequires(uri)) {
        const problem = pathProblem(required);
        if (problem) throw new ConfigError(`drives[${i}].sinks[${j}]: sink '${uri}': ${problem}`);
      }
    });
    if (drive.device?.kind === 'fuse') {
      const problem = pathProblem({ path: dirname(drive.device.path), kind: 'directory', what: "the FUSE file's directory" });
      if (problem) throw new ConfigError(`drives[${i}].fuse: ${problem}`);
    }
  });
}

function pathProblem({ path, kind, what }: RequiredPath): string | undefined {
  let stats;
  try {
    stats = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${what} ${path} does not exist` : `${what} ${path}: ${(err as Error).message}`;
  }
  const ok = { directory: stats.isDirectory(), file: stats.isFile(), 'char-device': stats.isCharacterDevice() }[kind];
  return ok ? undefined : `${what} ${path} is not a ${kind === 'char-device' ? 'character device' : kind}`;
}

/** What the daemon runs on its config file before it starts, and `tapeproxy config check`. */
export async function loadCheckedConfig(path: string): Promise<DaemonConfig> {
  const config = await loadConfigFile(path);
  try {
    checkConfigPaths(config);
  } catch (err) {
    throw new ConfigError(`${path}: ${(err as Error).message}`);
  }
  return config;
}
