import * as grpc from '@grpc/grpc-js';
import type { Socket } from 'node:net';
import { Access, type DriveReply, type DriveRequest, type RecordChannel, type TapeProxyClient } from '../generated/tapeproxy.js';
import { requestFrame } from '../daemon/frontends/grpc/channel-frames.js';
import { FastTapeProxyClient } from '../daemon/frontends/grpc/record-codec.js';
import { Errno, TapeError } from '../daemon/drive/tape-error.js';

export const DEFAULT_SERVER = process.env.TAPEPROXY_SERVER ?? '127.0.0.1:7070';

/**
 * A client of the daemon at `server`: plaintext without a token unless `security` says otherwise.
 * Records go out with the hand-made codec (one copy each, not ts-proto's four).
 */
export function connect(
  server: string,
  security: { credentials: grpc.ChannelCredentials; interceptors: grpc.Interceptor[] } = { credentials: grpc.credentials.createInsecure(), interceptors: [] },
): TapeProxyClient {
  return new FastTapeProxyClient(server, security.credentials, {
    'grpc.max_receive_message_length': 80 * 2 ** 20,
    'grpc.max_send_message_length': 80 * 2 ** 20,
    interceptors: security.interceptors,
  });
}

type Op = Omit<DriveRequest, 'id' | 'pipelined'>;

export interface OpenOptions {
  access: 'read' | 'write' | 'read-write';
  nonBlocking?: boolean;
  rewindOnClose?: boolean;
  /** Ask for a record channel (see `channelOffer`). */
  recordChannel?: boolean;
}

const ACCESS = { read: Access.ACCESS_READ, write: Access.ACCESS_WRITE, 'read-write': Access.ACCESS_READ_WRITE };

/** The session's stream ended or broke (the daemon went away, the link dropped): not a drive error. */
export class SessionLost extends TapeError {
  constructor(message: string) {
    super(Errno.EIO, message);
  }
}

/**
 * An open drive over a gRPC Session stream. Calls may overlap: requests go out at once and replies
 * come back in order. Failures arrive as TapeError with the drive's errno.
 */
export class DriveSession {
  private readonly call: grpc.ClientDuplexStream<DriveRequest, DriveReply>;
  private readonly waiting: { resolve: (r: DriveReply) => void; reject: (e: Error) => void }[] = [];
  private nextId = 1;
  private broken: Error | undefined;
  /** Flags of the latest reply: early warning, end of data, filemark, volume, fileno, blkno. */
  lastFlags: DriveReply['flags'];
  /** The record channel the daemon offered at open, if asked for and it has one. */
  channelOffer: RecordChannel | undefined;
  /** Where requests go once the channel is in use (`useChannel`); replies still come on the stream. */
  private channel: Socket | undefined;

  private constructor(client: TapeProxyClient, metadata = new grpc.Metadata()) {
    this.call = client.session(metadata);
    this.call.on('data', (reply: DriveReply) => {
      this.lastFlags = reply.flags;
      this.waiting.shift()?.resolve(reply);
    });
    this.call.on('error', (err: Error) => this.fail(err));
    this.call.on('end', () => this.fail(new SessionLost('the daemon ended the session')));
  }

  /** `metadata`: sent with the call (a token, see daemon/frontends/grpc/auth.ts). */
  static async open(client: TapeProxyClient, drive: string, options: OpenOptions, metadata?: grpc.Metadata): Promise<DriveSession> {
    const session = new DriveSession(client, metadata);
    try {
      session.channelOffer = await session.request({
        open: { drive, access: ACCESS[options.access], nonBlocking: !!options.nonBlocking, rewindOnClose: !!options.rewindOnClose, recordChannel: !!options.recordChannel },
      }).then((reply) => reply.recordChannel);
    } catch (err) {
      session.call.end();
      throw err;
    }
    return session;
  }

  /** `behind`: the record was acknowledged to a writer already, see `Write.behind` in the proto. */
  write(data: Buffer, pipelined = false, behind = false): Promise<number> {
    return this.request({ write: { data, behind } }, pipelined, (r) => r.written ?? 0);
  }
  read(maxBytes: number, pipelined = false): Promise<Buffer> {
    return this.request({ read: { maxBytes } }, pipelined, (r) => r.data ?? Buffer.alloc(0));
  }
  async mt(op: number, count = 1): Promise<void> {
    await this.request({ mt: { op, count } });
  }
  async status(): Promise<NonNullable<DriveReply['status']>> {
    return (await this.request({ status: {} })).status!;
  }
  async position(): Promise<number> {
    return (await this.request({ position: {} })).position ?? 0;
  }
  async close(): Promise<void> {
    try {
      await this.request({ close: {} });
    } finally {
      this.call.end();
      this.channel?.end();
    }
  }

  /** Abandons the session at once (a dead link): waiting requests fail with CANCELLED. */
  cancel(): void {
    this.call.cancel();
    this.channel?.destroy();
  }

  /**
   * Sends every later request on `socket`, the record channel connected for this session (see
   * client/record-channel.ts). Its end or failure is the session's, as the stream's is.
   */
  useChannel(socket: Socket): void {
    this.channel = socket;
    const lost = (why: string) => {
      this.fail(new SessionLost(`the record channel ${why}`));
      this.call.cancel();
    };
    socket.on('error', (err) => lost(`failed: ${err.message}`));
    socket.on('close', () => lost('closed'));
  }

  /** Requests go on the record channel. */
  get onChannel(): boolean {
    return this.channel !== undefined;
  }

  /** Sends one request; resolves with (part of) its reply, or rejects with the drive's error. */
  request(op: Op): Promise<DriveReply>;
  request<T>(op: Op, pipelined: boolean, pick: (reply: DriveReply) => T): Promise<T>;
  request<T>(op: Op, pipelined = false, pick?: (reply: DriveReply) => T): Promise<T | DriveReply> {
    if (this.broken) return Promise.reject(this.broken);
    const reply = new Promise<DriveReply>((resolve, reject) => this.waiting.push({ resolve, reject }));
    const request: DriveRequest = { id: this.nextId++, pipelined, ...op };
    if (this.channel) {
      this.channel.cork();
      for (const bytes of requestFrame(request)) this.channel.write(bytes);
      this.channel.uncork();
    } else this.call.write(request);
    const result = reply.then((r) => {
      if (r.error) throw new TapeError(r.error.errno, r.error.message.replace(/^[A-Z]+: /, ''));
      return pick ? pick(r) : r;
    });
    // Requests behind a failed pipelined one fail (ECANCELED) before their caller awaits them;
    // mark them handled so that is not an unhandled rejection. Awaiting them still throws.
    if (pipelined) result.catch(() => undefined);
    return result;
  }

  private fail(err: Error): void {
    this.broken ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}
