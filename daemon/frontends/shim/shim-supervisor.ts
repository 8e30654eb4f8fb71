import { execa, type ResultPromise } from 'execa';
import { closeSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { DriveConfig } from '../../config/config.js';
import { packageRoot } from '../../package-root.js';
import type { RecordRing } from '../../drive/record-ring.js';
import { createRecordRing } from './shim-ring.js';

/** The kernel-facing device a drive's config asks for. */
export type ShimDevice = NonNullable<DriveConfig['device']>;

export interface ShimOptions {
  drive: string;
  device: ShimDevice;
  socket: string;
  /** Octal mode and group of the device node or file. */
  mode: string;
  group?: string;
  window: number;
  /** Bytes of write-behind records in flight at most: less than the smallest early-warning zone. */
  windowBytes: number;
  maxRecord: number;
  /** Serve reads and writes on the CPU the writer last ran on (the shim's default). */
  followWriter: boolean;
  /** Bytes of the record ring each shim gets (0: none; records then all cross the socket). */
  ringBytes: number;
}

const MAX_BACKOFF_MS = 30_000;

/** The built shim; TAPEPROXY_SHIM overrides it (tests, packaging). */
export function shimBinary(): string {
  return process.env.TAPEPROXY_SHIM ?? join(packageRoot(), 'cuse-shim', 'build', 'tapeproxy-shim');
}

/**
 * Runs a drive's cuse-shim and keeps it running: if it exits, the supervisor logs why, clears a
 * FUSE mount it left behind (a dead FUSE server leaves "transport endpoint is not connected"),
 * and starts it again after a growing pause.
 */
export class ShimSupervisor {
  private child: ResultPromise | undefined;
  private stopping = false;
  private backoff = 500;
  private currentRing: RecordRing | undefined;
  /** Told why, when the running shim exits (whileRunning). */
  private exitListener: ((why: string) => void) | undefined;

  constructor(
    private readonly options: ShimOptions,
    private readonly log: Logger,
  ) {}

  get devicePath(): string {
    const { device } = this.options;
    return device.kind === 'fuse' ? resolve(device.path) : `/dev/${device.name}`;
  }

  /** The running shim's record ring: each shim gets a new one, as records of the last may still be held. */
  get ring(): RecordRing | undefined {
    return this.currentRing;
  }

  start(): void {
    const { options } = this;
    const made = options.ringBytes > 0 ? this.makeRing(options.ringBytes) : undefined;
    this.currentRing = made?.ring;
    const device = options.device.kind === 'fuse' ? ['--fuse', this.devicePath] : ['--cuse', options.device.name];
    const args = [
      '--socket', options.socket,
      ...device,
      '--mode', options.mode,
      ...(options.group ? ['--group', options.group] : []),
      '--window', String(options.window),
      '--window-bytes', String(options.windowBytes),
      '--max-record', String(options.maxRecord),
      ...(options.followWriter ? [] : ['--no-follow-writer']),
      // The shim opens the ring through this process's descriptor, which stays open while it runs.
      ...(made ? ['--ring', `/proc/${process.pid}/fd/${made.fd}`] : []),
    ];
    const started = Date.now();
    const child = execa(shimBinary(), args, { reject: false, stdin: 'ignore', buffer: false });
    this.child = child;
    // The shim's own messages become log lines, so stdout stays one JSON object per line.
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream! }).on('line', (line) => this.log.warn({ drive: options.drive, shim: line }, 'shim says'));
    }
    this.log.info({ drive: options.drive, device: this.devicePath, pid: child.pid }, 'shim started');
    void child.then(async (result) => {
      this.child = undefined;
      if (made) closeSync(made.fd);
      await this.clearMount();
      if (this.stopping) return;
      const why = exitReason(result);
      this.exitListener?.(why);
      this.log.error(
        { drive: options.drive, device: this.devicePath, why, restartInMs: this.backoff },
        'shim exited; restarting it (writers with the device open got an I/O error)',
      );
      const ranLong = Date.now() - started > 60_000;
      await sleep(ranLong ? 500 : this.backoff);
      this.backoff = ranLong ? 500 : Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      if (!this.stopping) this.start();
    });
  }

  private makeRing(bytes: number): ReturnType<typeof createRecordRing> {
    try {
      const made = createRecordRing(bytes);
      if (!made) this.log.warn({ drive: this.options.drive }, 'the record ring addon is not built (npm run build): records cross the socket');
      return made;
    } catch (err) {
      this.log.warn({ drive: this.options.drive, err: (err as Error).message }, 'no record ring: records cross the socket');
      return undefined;
    }
  }

  /**
   * `until`, unless the shim exits first: then an error that says why. Startup waits through this,
   * so that a shim that cannot run (not built, a kernel without FUSE) stops the daemon with its
   * reason instead of restarting unseen while the daemon waits for its connection.
   */
  async whileRunning<T>(until: Promise<T>): Promise<T> {
    const exited = new Promise<never>((_, reject) => {
      this.exitListener = (why) => reject(new Error(`the shim for drive ${this.options.drive} (${shimBinary()}) exited before its device was ready: ${why}`));
    });
    try {
      return await Promise.race([until, exited]);
    } finally {
      this.exitListener = undefined;
    }
  }

  /** Resolves once the device node or FUSE mount is in place. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!(await this.deviceInPlace())) {
      if (Date.now() > until) throw new Error(`the shim for drive ${this.options.drive} did not bring up ${this.devicePath}`);
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await child;
    clearTimeout(timer);
  }

  private async deviceInPlace(): Promise<boolean> {
    // Not opened: an open of the node would be an open of the drive.
    if (this.options.device.kind === 'cuse') return access(this.devicePath).then(() => true, () => false);
    return isMountPoint(this.devicePath);
  }

  private async clearMount(): Promise<void> {
    if (this.options.device.kind !== 'fuse' || !(await isMountPoint(this.devicePath))) return;
    await execa('umount', ['-l', this.devicePath], { reject: false });
  }
}

async function isMountPoint(path: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  return mounts.split('\n').some((line) => line.split(' ')[4] === path);
}

/** How a shim process ended, in words: its exit status, its signal, or why it could not start. */
function exitReason(result: Awaited<ResultPromise>): string {
  if (result.exitCode !== undefined) return `exit status ${result.exitCode}`;
  if (result.signal) return `killed by ${result.signal}`;
  return 'originalMessage' in result && result.originalMessage ? result.originalMessage : result.shortMessage ?? 'not started';
}
