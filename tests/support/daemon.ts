import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { open } from 'node:fs/promises';
import { connect, DriveSession, type OpenOptions } from '../../client/drive-session.js';
import { SimhReader } from '../../daemon/sinks/simh-reader.js';
import type { DriveInfo } from '../../generated/tapeproxy.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The built CLI: integration tests run the real daemon, as users do. */
export const CLI = join(root, 'dist', 'client', 'tapeproxy.js');

/** What each daemon started in this test file logged, for the failure report (tests/support/failure-logs.ts). */
export const daemonLogs: { argv: string[]; lines: string[] }[] = [];

export interface RunningDaemon {
  address: string;
  pid: number;
  session(drive: string, options: OpenOptions): Promise<DriveSession>;
  status(drive: string): Promise<DriveInfo>;
  /** Everything the daemon logged so far (pino JSON lines). */
  log(): string;
  /** Peak resident memory of the daemon so far (VmHWM), in bytes. */
  peakRss(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts `tapeproxy daemon ARGS --listen 127.0.0.1:0` and waits for its "listening" line; `listen`
 * another address, `prefix` a command it runs under (`ip netns exec NS`), `env` variables added to
 * its environment. Without --catalog-dir (or --config) the catalog goes to a temporary folder, not
 * the machine's.
 */
export async function startDaemon(
  args: string[],
  { listen = '127.0.0.1:0', prefix = [] as string[], env = {} as Record<string, string> } = {},
): Promise<RunningDaemon> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const ownCatalog = args.includes('--catalog-dir') || args.includes('--config') ? undefined : await mkdtemp(join(tmpdir(), 'tapeproxy-catalog-'));
  const catalog = ownCatalog ? ['--catalog-dir', ownCatalog] : [];
  const argv = [...prefix, 'node', CLI, 'daemon', ...args, ...catalog, '--listen', listen];
  const proc = execa(argv[0]!, argv.slice(1), { reject: false, stderr: 'inherit', env });
  const logged: string[] = [];
  daemonLogs.push({ argv, lines: logged });
  const address = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      logged.push(line);
      const entry = parseJson(line);
      if (entry?.msg === 'listening' && entry.address) resolve(entry.address);
    });
    void proc.then((r) => reject(new Error(`daemon exited (${r.exitCode}) before listening`)));
  });
  const client = connect(address);
  return {
    address,
    pid: proc.pid!,
    session: (drive, options) => DriveSession.open(client, drive, options),
    log: () => logged.join('\n'),
    status: (drive) =>
      new Promise((resolve, reject) => client.driveStatus({ drive }, (err, info) => (err ? reject(err) : resolve(info!)))),
    async peakRss() {
      const status = await readFile(`/proc/${proc.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
    async stop() {
      client.close();
      proc.kill('SIGTERM');
      await (proc as ResultPromise);
      if (ownCatalog) await rm(ownCatalog, { recursive: true, force: true });
    },
  };
}

/** Runs the CLI and returns its exit code and output (never throws on a non-zero exit). */
export async function cli(args: string[], input?: Buffer | string, env?: Record<string, string>) {
  const r = await execa('node', [CLI, ...args], { reject: false, input, encoding: 'buffer', env });
  return { exitCode: r.exitCode, stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr).toString() };
}

/** The pid of the shim serving the FUSE file `device`: only the shim has both options. */
export async function fuseShimPid(device: string): Promise<number> {
  return Number((await execa('pgrep', ['-f', '--', `--socket .*--fuse ${device}`])).stdout.split('\n')[0]);
}

/** Every object of a SIMH image: record data, or null for a tape mark. */
export async function imageObjects(path: string): Promise<(Buffer | null)[]> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const reader = new SimhReader(fh, path);
    const objects: (Buffer | null)[] = [];
    for (let offset = 0; ; ) {
      const r = await reader.objectAt(offset, size, true);
      if (r.object.kind === 'blank') return objects;
      objects.push(r.object.kind === 'record' ? Buffer.from(r.object.data) : null);
      offset = r.next;
    }
  } finally {
    await fh.close();
  }
}

/** A pino log line's fields, or undefined for a line that is not JSON. */
export function parseJson(line: string): { msg?: string; address?: string; level?: number } | undefined {
  try {
    return JSON.parse(line) as { msg?: string; address?: string; level?: number };
  } catch {
    return undefined;
  }
}
