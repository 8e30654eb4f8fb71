import { execa, type ResultPromise } from 'execa';
import { setTimeout as sleep } from 'node:timers/promises';
import { tapeError } from '../drive/tape-error.js';

/** A reply of an rmt server: `A<n>` (with the data of R and S replies), or `E`/`F<errno>`. */
export type RmtReply = { ok: true; value: number; data?: Buffer } | { ok: false; errno: number; message: string };

/** Which reply parsing a request needs: R and S replies carry `n` bytes of data after `A<n>`. */
type Expect = 'value' | 'data';

interface Pending {
  expect: Expect;
  resolve: (reply: RmtReply) => void;
}

const SPAWN_OPTIONS = { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false } as const;

/** How long a server may take to exit once its input ended. */
const EXIT_WAIT_MS = 10_000;

/** stderr kept for error messages (ssh's "Permission denied", "rmt: not found"). */
const STDERR_TAIL = 2000;

/**
 * The client side of the rmt protocol (reference section 3) over a child process, usually
 * `ssh host /usr/sbin/rmt`. Requests may be pipelined: the server answers them in order, so each
 * request's promise resolves with its own reply. Replies are values, never rejections; a broken
 * connection (the process ended, a reply did not come within `replyTimeoutMs`, a reply that is not
 * rmt) rejects every waiting request and all later ones with one error naming the host.
 */
export class RmtClient {
  private readonly proc: ResultPromise<typeof SPAWN_OPTIONS>;
  private readonly pending: Pending[] = [];
  private readonly rejecters = new Set<(err: Error) => void>();
  private input: Buffer = Buffer.alloc(0);
  private stderrTail = '';
  private broken: Error | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** `argv`: the command that starts an rmt server; `peer`: the host, for messages. */
  constructor(
    argv: string[],
    private readonly peer: string,
    private readonly replyTimeoutMs: number,
  ) {
    this.proc = execa(argv[0]!, argv.slice(1), SPAWN_OPTIONS);
    this.proc.stdout.on('data', (chunk: Buffer) => this.received(chunk));
    this.proc.stderr.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-STDERR_TAIL);
    });
    this.proc.stdin.on('error', () => undefined); // EPIPE: the exit below says why
    void this.proc.then((r) => {
      const how = r.signal ? `was killed (${r.signal})` : `exited (${r.exitCode ?? r.failed})`;
      this.break(`the rmt connection to ${peer} ended: '${argv.join(' ')}' ${how}${this.stderrSaid()}`);
    });
  }

  /** O: opens the device with open(2) flags as `number symbolic` (both server families read it). */
  open(device: string, flags: string): Promise<RmtReply> {
    return this.request(`O${device}\n${flags}\n`);
  }
  /** W: one record. */
  write(record: Buffer): Promise<RmtReply> {
    return this.request(`W${record.length}\n`, 'value', record);
  }
  /** I: an MTIOCTOP with Linux's op numbers. dump's rmt answers `A<count>`, GNU rmt `A0`. */
  ioctl(op: number, count: number): Promise<RmtReply> {
    return this.request(`I${op}\n${count}\n`);
  }
  /** S: the server's struct mtget. dump's rmt reads `S` alone, GNU rmt only a line (`S\n`). */
  status(withNewline: boolean): Promise<RmtReply> {
    return this.request(withNewline ? 'S\n' : 'S', 'data');
  }
  /** C: closes the device (GNU rmt also exits). */
  closeDevice(): Promise<RmtReply> {
    return this.request('C\n');
  }

  /** Ends the session: stdin closes, so the server exits, as at the end of a tar run (or is killed if it does not). */
  async end(): Promise<void> {
    this.proc.stdin.end();
    const exited = await Promise.race([this.proc.then(() => true), sleep(EXIT_WAIT_MS, false, { ref: false })]);
    if (!exited) this.kill();
    await this.proc;
  }

  /** Stops the server at once (a failed copy: nothing more may reach its tape). */
  kill(): void {
    this.proc.kill('SIGKILL');
  }

  private request(header: string, expect: Expect = 'value', data?: Buffer): Promise<RmtReply> {
    if (this.broken) return Promise.reject(this.broken);
    const reply = new Promise<RmtReply>((resolve, reject) => {
      const rejecter = (err: Error) => reject(err);
      this.rejecters.add(rejecter);
      this.pending.push({
        expect,
        resolve: (r) => {
          this.rejecters.delete(rejecter);
          resolve(r);
        },
      });
    });
    const stdin = this.proc.stdin;
    stdin.cork();
    stdin.write(header);
    if (data) stdin.write(data);
    process.nextTick(() => stdin.uncork());
    if (this.pending.length === 1) this.armTimer();
    reply.catch(() => undefined); // a broken connection rejects requests nobody waits for any more
    return reply;
  }

  private received(chunk: Buffer): void {
    this.input = this.input.length === 0 ? chunk : Buffer.concat([this.input, chunk]);
    try {
      while (this.pending.length > 0) {
        const reply = this.parse(this.pending[0]!.expect);
        if (!reply) break;
        this.pending.shift()!.resolve(reply);
        this.armTimer();
      }
      if (this.pending.length === 0 && this.input.length > 0) throw new Error('a reply nobody asked for');
    } catch (err) {
      this.break(`${this.peer} sent something that is not an rmt reply (${(err as Error).message}): '${printable(this.input)}'`);
      this.kill();
    }
  }

  /** One whole reply from the input, or undefined if it has not all arrived. */
  private parse(expect: Expect): RmtReply | undefined {
    const nl = this.input.indexOf(0x0a);
    if (nl < 0) {
      if (this.input.length > 64) throw new Error('reply line too long');
      return undefined;
    }
    const line = this.input.subarray(0, nl).toString('latin1');
    const kind = line[0];
    const number = line.slice(1);
    if (!/^-?\d+$/.test(number)) throw new Error(`'${line}'`);
    if (kind === 'A') {
      const value = Number(number);
      if (expect === 'value') {
        this.input = this.input.subarray(nl + 1);
        return { ok: true, value };
      }
      if (this.input.length < nl + 1 + value) return undefined;
      const data = Buffer.from(this.input.subarray(nl + 1, nl + 1 + value));
      this.input = this.input.subarray(nl + 1 + value);
      return { ok: true, value, data };
    }
    if (kind === 'E' || kind === 'F') {
      const end = this.input.indexOf(0x0a, nl + 1);
      if (end < 0) return undefined;
      const message = this.input.subarray(nl + 1, end).toString('utf8');
      this.input = this.input.subarray(end + 1);
      return { ok: false, errno: Number(number), message };
    }
    throw new Error(`'${line}'`);
  }

  /** A reply must come within the timeout of the previous one (or of the request, when idle). */
  private armTimer(): void {
    clearTimeout(this.timer);
    if (this.pending.length === 0 || this.broken) return;
    this.timer = setTimeout(() => {
      this.break(`no reply from the rmt server on ${this.peer} for ${this.replyTimeoutMs / 1000} s (link down or server stalled)`);
      this.kill();
    }, this.replyTimeoutMs);
    this.timer.unref();
  }

  private break(message: string): void {
    clearTimeout(this.timer);
    if (this.broken) return;
    this.broken = tapeError('EIO', message);
    for (const reject of this.rejecters) reject(this.broken);
    this.rejecters.clear();
    this.pending.length = 0;
  }

  private stderrSaid(): string {
    const text = this.stderrTail.trim();
    return text ? `: ${text.split('\n').slice(-3).join(' / ')}` : '';
  }
}

function printable(bytes: Buffer): string {
  return bytes
    .subarray(0, 80)
    .toString('latin1')
    .replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
