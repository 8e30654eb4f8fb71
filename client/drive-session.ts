import * as grpc from '@grpc/grpc-js';
import { Access, type DriveReply, type DriveRequest, type TapeProxyClient } from '../generated/tapeproxy.js';
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
      await session.request({
        open: { drive, access: ACCESS[options.access], nonBlocking: !!options.nonBlocking, rewindOnClose: !!options.rewindOnClose },
      });
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
    }
  }

  /** Abandons the session at once (a dead link): waiting requests fail with CANCELLED. */
  cancel(): void {
    this.call.cancel();
  }

  /** Sends one request; resolves with (part of) its reply, or rejects with the drive's error. */
  request(op: Op): Promise<DriveReply>;
  request<T>(op: Op, pipelined: boolean, pick: (reply: DriveReply) => T): Promise<T>;
  request<T>(op: Op, pipelined = false, pick?: (reply: DriveReply) => T): Promise<T | DriveReply> {
    if (this.broken) return Promise.reject(this.broken);
    const reply = new Promise<DriveReply>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.call.write({ id: this.nextId++, pipelined, ...op });
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
