import { randomBytes } from 'node:crypto';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { RecordChannel } from '../../../generated/tapeproxy.js';
import type { RecordPool } from '../../drive/record-pool.js';
import { FrameReader } from '../shim/frame-reader.js';
import { type Frame, FrameError, HEADER_BYTES } from '../shim/frames.js';
import { ChannelFrame, TICKET_BYTES } from './channel-frames.js';

/** How long a ticket is good for; and a connection's first frame must come within as long. */
const TICKET_MS = 30_000;
/** The ATTACH frame: header and ticket. */
const HELLO_BYTES = HEADER_BYTES + TICKET_BYTES;

/** A record channel attached to its session: the session reads its frames and may pause it. */
export interface AttachedChannel {
  /** Frames as they arrive; returning false stops reading until `resume()`. */
  onFrames: (frames: Frame[]) => boolean;
  /** The connection ended, failed or broke the framing; called once. */
  onClose: (why: string) => void;
  resume(): void;
  close(): void;
}

/**
 * The daemon's record port: connections that carry a gRPC session's requests (channel-frames.ts),
 * plaintext or TLS like the gRPC port. A session hands out a one-time ticket in its open reply,
 * over its authenticated stream; a connection whose first frame does not carry a live ticket is
 * closed, so the record port needs no token of its own. Records are read into the daemon's
 * RecordPool as they arrive.
 */
export class RecordChannelServer {
  private readonly tickets = new Map<string, { attach: (channel: AttachedChannel) => void; timer: NodeJS.Timeout }>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly pool: RecordPool,
    secure: boolean,
    onError: (err: Error) => void,
  ) {
    server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => this.accept(socket));
    server.on('error', onError); // after listening: a failed accept (too many open files)
  }

  /** Listens on host (no brackets) and port (0: any free port); TLS with the gRPC port's certificate when given. */
  static async listen(
    host: string,
    port: number,
    pool: RecordPool,
    tls: { cert: Buffer; key: Buffer; clientCa?: Buffer } | undefined,
    onError: (err: Error) => void,
  ): Promise<RecordChannelServer> {
    const server = tls
      ? createTlsServer({ cert: tls.cert, key: tls.key, ...(tls.clientCa && { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }) })
      : createNetServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    return new RecordChannelServer(server, typeof address === 'object' && address ? address.port : port, pool, tls !== undefined, onError);
  }

  /** A ticket for one connection: `attach` gets it once it arrives. */
  offer(attach: (channel: AttachedChannel) => void): RecordChannel {
    const ticket = randomBytes(TICKET_BYTES);
    const key = ticket.toString('hex');
    const timer = setTimeout(() => this.tickets.delete(key), TICKET_MS);
    timer.unref();
    this.tickets.set(key, { attach, timer });
    return { port: this.port, ticket };
  }

  async close(): Promise<void> {
    for (const { timer } of this.tickets.values()) clearTimeout(timer);
    this.tickets.clear();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const reader = new FrameReader(this.pool, 0); // read from 'data' events: no staging buffer
    /** The first frame, gathered before anything is allocated for a connection not yet trusted. */
    let hello: Buffer | undefined = Buffer.alloc(0);
    let channel: AttachedChannel | undefined;
    let closed = false;
    const close = (why: string) => {
      if (closed) return;
      closed = true;
      socket.destroy();
      channel?.onClose(why);
    };
    const unattended = setTimeout(() => close('no ticket in time'), TICKET_MS);
    unattended.unref();
    socket.on('data', (bytes: Buffer) => {
      let rest = bytes;
      if (hello) {
        hello = Buffer.concat([hello, bytes]);
        if (hello.length < HELLO_BYTES) return;
        channel = this.attach(hello.subarray(0, HELLO_BYTES), socket, close);
        rest = hello.subarray(HELLO_BYTES);
        hello = undefined;
        clearTimeout(unattended);
        if (!channel) return close('no valid ticket');
      }
      let frames: Frame[];
      let malformed: FrameError | undefined;
      try {
        frames = reader.push(rest);
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        [frames, malformed] = [err.frames, err];
      }
      if (frames.length > 0 && !channel!.onFrames(frames)) socket.pause();
      if (malformed) close(malformed.message);
    });
    socket.on('error', (err) => close(err.message));
    socket.on('close', () => {
      this.sockets.delete(socket);
      clearTimeout(unattended);
      close(reader.buffered > 0 ? 'connection closed mid-frame' : 'connection closed');
    });
  }

  /** The channel an ATTACH frame's ticket opens (the ticket is used up), or undefined. */
  private attach(frame: Buffer, socket: Socket, close: (why: string) => void): AttachedChannel | undefined {
    if (frame.readUInt32LE(0) !== TICKET_BYTES || frame.readUInt16LE(4) !== ChannelFrame.ATTACH) return undefined;
    const key = frame.subarray(HEADER_BYTES).toString('hex');
    const offered = this.tickets.get(key);
    if (!offered) return undefined;
    this.tickets.delete(key);
    clearTimeout(offered.timer);
    const channel: AttachedChannel = {
      onFrames: () => true,
      onClose: () => undefined,
      resume: () => socket.resume(),
      close: () => close('session ended'),
    };
    offered.attach(channel);
    return channel;
  }
}
