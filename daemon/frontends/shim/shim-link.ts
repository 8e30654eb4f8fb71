import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { PseudoDrive } from '../../drive/pseudo-drive.js';
import { RecordPool } from '../../drive/record-pool.js';
import { FrameReader, type WriteCounts } from './frame-reader.js';
import type { RecordRing } from '../../drive/record-ring.js';
import { serveShimConnection, type ShimWindow } from './shim-connection.js';

/** Pauses between attempts to reach a shim that is not listening yet (starting, or restarting). */
const RETRY_MS = [10, 20, 50, 100, 250];

/**
 * The daemon's link to a drive's shim. The shim listens on a socket in the runtime directory and
 * takes one connection; the daemon connects, since only a socket Node connects itself can read
 * straight into record buffers (FrameReader). When the shim goes (killed, restarted by its
 * supervisor), the link connects again to the next one.
 */
export class ShimLink {
  private readonly pool = new RecordPool();
  /** WRITE records from this drive's shims, by how they crossed: the record ring or the socket. */
  readonly writes: WriteCounts = { ring: 0, socket: 0 };
  private active: Socket | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private connectedWaiters: (() => void)[] = [];

  constructor(
    readonly path: string,
    readonly drive: PseudoDrive,
    private readonly log: Logger,
    private readonly window: ShimWindow,
    /** The record ring of the shim running now, if it was given one (ShimSupervisor). */
    private readonly ringOfShim: () => RecordRing | undefined = () => undefined,
  ) {}

  start(): void {
    this.running ??= this.run();
  }

  /** Resolves when a shim is connected. */
  connected(): Promise<void> {
    if (this.active) return Promise.resolve();
    return new Promise((resolve) => this.connectedWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.active?.destroy();
    await this.running;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const reader = new FrameReader(this.pool, { ring: this.ringOfShim(), writes: this.writes });
      const socket = await this.connect(reader);
      if (!socket) {
        await sleep(RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)]);
        continue;
      }
      attempt = 0;
      this.active = socket;
      this.connectedWaiters.splice(0).forEach((wake) => wake());
      await serveShimConnection(socket, reader, this.drive, this.log, this.window);
      this.active = undefined;
    }
  }

  /** A connected socket, or undefined while no shim listens. */
  private connect(reader: FrameReader): Promise<Socket | undefined> {
    return new Promise((resolve) => {
      const socket = connect({ path: this.path, ...reader.socketOptions });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        if (!this.closed) return resolve(socket);
        socket.destroy(); // closed while connecting
        resolve(undefined);
      });
      socket.once('error', () => resolve(undefined));
    });
  }
}
