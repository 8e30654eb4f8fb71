import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { PseudoDrive } from '../../drive/pseudo-drive.js';
import { serveShimConnection, type ShimWindow } from './shim-connection.js';

/**
 * The Unix socket a drive's shim connects to. One shim at a time: a second connection is refused
 * (two shims for one drive would interleave two writers' records).
 */
export class ShimEndpoint {
  private server: Server | undefined;
  private active: Socket | undefined;
  private connectedWaiters: (() => void)[] = [];

  constructor(
    readonly path: string,
    private readonly drive: PseudoDrive,
    private readonly log: Logger,
    private readonly window: ShimWindow,
  ) {}

  async listen(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    await rm(this.path, { force: true }); // a socket left by a daemon that was killed
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, resolve);
    });
    await chmod(this.path, 0o600);
    this.server = server;
  }

  /** Resolves when a shim is connected. */
  connected(): Promise<void> {
    if (this.active) return Promise.resolve();
    return new Promise((resolve) => this.connectedWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.active?.destroy();
    await new Promise((resolve) => (this.server ? this.server.close(resolve) : resolve(undefined)));
    await rm(this.path, { force: true });
  }

  private accept(socket: Socket): void {
    if (this.active) {
      this.log.warn({ drive: this.drive.name }, 'a second shim tried to connect; refused');
      socket.destroy();
      return;
    }
    this.active = socket;
    this.connectedWaiters.splice(0).forEach((wake) => wake());
    void serveShimConnection(socket, this.drive, this.log, this.window).then(() => {
      if (this.active === socket) this.active = undefined;
    });
  }
}
