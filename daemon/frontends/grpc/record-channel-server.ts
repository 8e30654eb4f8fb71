import { randomBytes } from 'node:crypto';
import { createServer as createNetServer, type Server, Socket, type SocketConstructorOpts } from 'node:net';
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
    private readonly secure: boolean,
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
      : createNetServer({ pauseOnConnect: true }); // not read until its reads go straight to records (readingDirectly)
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

  private accept(accepted: Socket): void {
    /** The first frame, gathered before anything else is allocated for a connection not yet trusted. */
    const hello = Buffer.alloc(HELLO_BYTES);
    let helloFill = 0;
    /** Its frames, from the first after a live ticket, and where the reader wants them read; the channel they go to. */
    let reader: FrameReader | undefined;
    let readerReads: FrameReader['socketOptions']['onread'] | undefined;
    let channel: AttachedChannel | undefined;
    let closed = false;
    /** n more bytes of the ATTACH frame are in `hello`; once it is whole, it attaches. */
    const greeted = (n: number) => {
      helloFill += n;
      if (helloFill < HELLO_BYTES) return;
      channel = this.attach(hello, socket, close);
      clearTimeout(unattended);
      if (!channel) return close('no valid ticket');
      reader = new FrameReader(this.pool, { stagingBytes: direct ? undefined : 0 }); // 'data' events need no staging buffer
      reader.onFrames = (frames, malformed) => {
        const more = closed || frames.length === 0 || channel!.onFrames(frames);
        if (malformed) close(malformed.message);
        return more && !closed;
      };
      readerReads = reader.socketOptions.onread;
    };
    const direct = this.secure ? undefined : readingDirectly(accepted, {
      // Node asks for the next buffer even after a read that closed the connection: `hello` then.
      buffer: () => readerReads?.buffer() ?? (helloFill < HELLO_BYTES ? hello.subarray(helloFill) : hello),
      callback: (n, buf) => {
        if (readerReads) return readerReads.callback(n, buf);
        greeted(n);
        return !closed;
      },
    });
    const socket = direct ?? accepted;
    if (!direct) {
      // Frames copied out of 'data' events: TLS deciphers into fresh buffers anyway; and a Node
      // whose sockets no longer keep their handle where readingDirectly finds it still works.
      socket.on('data', (bytes: Buffer) => {
        let rest = bytes;
        if (helloFill < HELLO_BYTES) {
          const take = Math.min(HELLO_BYTES - helloFill, bytes.length);
          bytes.copy(hello, helloFill, 0, take);
          greeted(take);
          rest = bytes.subarray(take);
        }
        if (rest.length === 0 || closed) return;
        let frames: Frame[];
        let malformed: FrameError | undefined;
        try {
          frames = reader!.push(rest);
        } catch (err) {
          if (!(err instanceof FrameError)) throw err;
          [frames, malformed] = [err.frames, err];
        }
        if (!reader!.onFrames(frames, malformed)) socket.pause();
      });
      socket.resume(); // accepted paused (pauseOnConnect)
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    function close(why: string): void {
      if (closed) return;
      closed = true;
      socket.destroy();
      channel?.onClose(why);
    }
    const unattended = setTimeout(() => close('no ticket in time'), TICKET_MS);
    unattended.unref();
    socket.on('error', (err) => close(err.message));
    socket.on('close', () => {
      this.sockets.delete(socket);
      clearTimeout(unattended);
      close((reader?.buffered ?? 0) > 0 ? 'connection closed mid-frame' : 'connection closed');
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

/**
 * The accepted plaintext connection as a socket whose reads land where `onread` says (for a large
 * record, straight into it, as the shim's connection reads). Node offers `onread` only to sockets
 * it creates, so the accepted handle, not yet read from (pauseOnConnect), moves to a new socket;
 * the accepted one lets go of it and leaves the server's count. Read from 'data' events, each read
 * cost a fresh 64 KiB buffer and a copy into the record: a fifth of the receiving daemon's main
 * thread in E's bench. Undefined where the handle is not found (`_handle` is private to Node).
 */
export function readingDirectly(accepted: Socket, onread: { buffer: () => Uint8Array; callback: (n: number, buf: Uint8Array) => boolean }): Socket | undefined {
  // `_handle`, Node's private field for the socket's libuv stream, is what its `handle` option takes.
  const owner = accepted as unknown as { _handle: { readStart?: unknown } | null | undefined };
  const handle = owner._handle;
  if (typeof handle?.readStart !== 'function') return undefined;
  owner._handle = null;
  accepted.destroy();
  return new Socket({ handle, readable: true, writable: true, onread } as SocketConstructorOpts);
}
