import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { packageRoot } from '../package-root.js';

/** cuse-shim/st-io-protocol.h */
export const StIoOp = { WRITE: 1, READ: 2, MTOP: 3, GET: 4, POS: 5, RESET: 6 } as const;
export const StIoFlag = { EARLY_WARNING: 1, RECORD: 2, FILEMARK: 4, BLANK: 8 } as const;
const REQUEST_BYTES = 16;
const REPLY_BYTES = 24;

export interface StIoReply {
  /** 0, or the errno of the failed call. */
  err: number;
  flags: number;
  value: number;
  payload: Buffer;
}

/** struct mtget as the helper reports it. */
export interface DriveStatus {
  type: number;
  resid: number;
  dsreg: number;
  gstat: number;
  erreg: number;
  fileno: number;
  blkno: number;
}

/** The helper binary; TAPEPROXY_ST_IO overrides it (tests, packaging). */
export function stIoBinary(): string {
  return process.env.TAPEPROXY_ST_IO ?? join(packageRoot(), 'cuse-shim', 'build', 'tapeproxy-st-io');
}

const errnoNames = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));
export function errnoName(err: number): string {
  return errnoNames.get(err) ?? `errno ${err}`;
}

/**
 * One tapeproxy-st-io process holding one drive open. Requests are pipelined: each returns a
 * promise of its reply, and replies come in request order, so a caller may keep many writes in
 * flight. If the helper dies, every pending and later request fails with its stderr.
 */
export class StIoLink {
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private readonly pending: { resolve: (r: StIoReply) => void; reject: (e: Error) => void }[] = [];
  private chunks: Buffer[] = [];
  private buffered = 0;
  private stderr = '';
  private dead: Error | undefined;
  private readonly exited: Promise<void>;

  constructor(
    readonly device: string,
    readonly: boolean,
  ) {
    this.child = spawn(stIoBinary(), [device, ...(readonly ? ['--readonly'] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.on('data', (chunk: Buffer) => this.received(chunk));
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-2000)));
    this.child.stdin.on('error', () => undefined); // reported through 'close' below
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => {
        this.fail(new Error(`cannot run ${stIoBinary()}: ${err.message}`));
        resolve();
      });
      this.child.on('close', (code, signal) => {
        const why = this.stderr.trim() || `exited with ${signal ?? `code ${code}`}`;
        this.fail(new Error(`tape helper for ${device}: ${why}`));
        resolve();
      });
    });
  }

  request(op: number, a = 0, b = 0, payload?: Buffer): Promise<StIoReply> {
    if (this.dead) return Promise.reject(this.dead);
    const header = Buffer.alloc(REQUEST_BYTES);
    header.writeUInt32LE(op, 0);
    header.writeUInt32LE(payload?.length ?? 0, 4);
    header.writeInt32LE(a, 8);
    header.writeInt32LE(b, 12);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.child.stdin.write(header);
      if (payload && payload.length > 0) this.child.stdin.write(payload);
    });
  }

  async status(): Promise<DriveStatus> {
    const r = await this.request(StIoOp.GET);
    if (r.err) throw new Error(`MTIOCGET on ${this.device}: ${errnoName(r.err)}`);
    const f = (i: number) => Number(r.payload.readBigInt64LE(i * 8));
    return { type: f(0), resid: f(1), dsreg: f(2), gstat: f(3), erreg: f(4), fileno: f(5), blkno: f(6) };
  }

  /** Ends the helper: it closes the drive (no rewind on an nst device) and exits. */
  async close(): Promise<void> {
    this.child.stdin.end();
    await this.exited;
  }

  private received(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < REPLY_BYTES) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const length = all.readUInt32LE(8);
      if (all.length < REPLY_BYTES + length) {
        this.chunks = [all];
        return;
      }
      const reply: StIoReply = {
        err: all.readInt32LE(4),
        flags: all.readUInt32LE(12),
        value: Number(all.readBigInt64LE(16)),
        payload: Buffer.from(all.subarray(REPLY_BYTES, REPLY_BYTES + length)),
      };
      const rest = all.subarray(REPLY_BYTES + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      this.pending.shift()?.resolve(reply);
    }
  }

  private fail(err: Error): void {
    this.dead ??= err;
    for (const p of this.pending.splice(0)) p.reject(this.dead);
  }
}
