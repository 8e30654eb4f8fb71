import { MtOp } from '../drive/mtio.js';
import { Errno, type TapeError, tapeError } from '../drive/tape-error.js';
import { RmtClient, type RmtReply } from './rmt-client.js';
import { RemoteSink } from './remote-sink.js';
import type { SinkLog } from './sink-uri.js';

const GMT_EOT = 0x20000000;
const GMT_WR_PROT = 0x04000000;
/** struct mtget on x86_64; other layouts are not read. */
const MTGET_SIZE = 48;
/** W requests sent before their replies: enough to hide the round trip, few to space back over. */
const MAX_IN_FLIGHT = 64;

export interface RmtSinkOptions {
  host: string;
  user?: string;
  device: string;
  /** The remote shell and its options (`ssh -o ...`); undefined runs the rmt program on this machine. */
  rsh?: string[];
  /** The rmt program on the remote host. */
  rmt: string;
  /** What the remote drive takes after early warning, if known: it bounds the records in flight. */
  earlyWarningZone?: number;
  /** A reply must come within this (a cut link, a stalled server). */
  replyTimeoutMs: number;
  log?: SinkLog;
}

type Op = { kind: 'record'; data: Buffer } | { kind: 'task'; run: () => Promise<void>; resolve: () => void; reject: (err: Error) => void };

/**
 * A drive on another machine through a standard rmt server (dump's `rmt`, GNU `rmt-tar`), started
 * over ssh (or any remote shell, or here). Records are pipelined (up to 64 `W` requests in flight).
 *
 * Early warning is st's on the remote: the write after the one that crossed it is refused with
 * `E28`, the next one goes through. An rmt server runs requests in order with no conditional, so
 * when record k is refused the records sent behind it have landed in its place or been refused in
 * turn. The sink then waits for every reply, spaces back (MTBSR) over those that landed, and
 * writes k and everything after it again one at a time, each refused write retried once (as
 * tapeproxy-st-io does): a refused retry is the physical end, the copy's failure. Until the next
 * volume the sink stays that careful. Early warning is also read from the remote status (GMT_EOT)
 * at sync points and before filemarks, where the server offers a status.
 */
export class RmtSink extends RemoteSink {
  private client: RmtClient | undefined;
  /** How this server wants `S` (see RmtClient.status), or undefined if it gives no status. */
  private statusWithNewline: boolean | undefined;
  /** Past a refused write on this volume: one record at a time, refusals retried once. */
  private careful = false;
  /** A task or a repair owns the connection: no record may be sent in between its requests. */
  private holding = false;
  private ops: Op[] = [];
  private readonly inflight: { data: Buffer; reply: Promise<RmtReply> }[] = [];
  private pumping: Promise<void> | undefined;

  constructor(private readonly options: RmtSinkOptions) {
    super(`rmt://${options.user ? `${options.user}@` : ''}${options.host}${options.device}`);
  }

  get earlyWarningZone(): number | undefined {
    return this.options.earlyWarningZone;
  }

  /** The command that starts the rmt server, as tar runs it: `RSH [-l USER] HOST RMT`. */
  get command(): string[] {
    const { rsh, user, host, rmt } = this.options;
    return rsh ? [...rsh, ...(user ? ['-l', user] : []), host, rmt] : [rmt];
  }

  async load(volume: number): Promise<{ writeProtected: boolean }> {
    await this.endSession();
    this.startVolume(volume);
    this.careful = false;
    const client = (this.client = new RmtClient(this.command, this.options.host, this.options.replyTimeoutMs));
    const what = `volume ${volume}: ${this.options.device} on ${this.options.host}`;
    try {
      // No O_CREAT: a missing device must fail, not become a file.
      await this.check(client.open(this.options.device, '2 O_RDWR'), `cannot open ${what}`);
      // MTNOP with a count of 1 tells the servers apart: dump's rmt answers A1, GNU rmt A0.
      const nop = await client.ioctl(MtOp.MTNOP, 1);
      this.statusWithNewline = nop.ok ? nop.value === 0 : undefined;
      await this.check(client.ioctl(MtOp.MTREW, 1), `cannot rewind ${what}`);
      const gstat = await this.remoteGstat();
      this.loaded = true;
      return { writeProtected: gstat !== undefined && (gstat & GMT_WR_PROT) !== 0 };
    } catch (err) {
      await this.endSession();
      throw err;
    }
  }

  protected async offline(): Promise<void> {
    await this.task(() => this.check(this.client!.ioctl(MtOp.MTOFFL, 1), 'unload'));
  }

  write(record: Buffer): void {
    if (this.failure) return;
    this.pos++;
    this.queue.added(record.length);
    this.ops.push({ kind: 'record', data: record });
    this.kick();
  }

  writeFilemarks(count: number): void {
    if (this.failure) return;
    this.pos += count;
    this.background(async () => {
      await this.readEarlyWarning();
      await this.check(this.client!.ioctl(MtOp.MTWEOF, count), `writing ${count} filemark(s) at object ${this.confirmed}`);
      this.confirmed += count;
    });
  }

  erase(): void {
    if (this.failure) return;
    // A short erase (count 0): end of data here, as the nst sink does.
    this.background(() => this.check(this.client!.ioctl(MtOp.MTERASE, 0), `erasing at object ${this.confirmed}`));
  }

  /** Everything is on the remote drive, and its buffer on tape (WRITE FILEMARKS 0). */
  async sync(): Promise<void> {
    await this.task(async () => {
      try {
        await this.readEarlyWarning();
        await this.check(this.client!.ioctl(MtOp.MTWEOF, 0), 'flush');
      } catch (err) {
        this.fail(err as Error);
      }
    });
    if (this.failure) throw this.failure;
  }

  async locate(object: number): Promise<void> {
    await this.task(async () => {
      const request = object === 0 ? this.client!.ioctl(MtOp.MTREW, 1) : this.client!.ioctl(MtOp.MTSEEK, object);
      await this.check(request, `locate object ${object}`);
      this.pos = this.confirmed = object;
      this.careful = false;
      if (object === 0) this.ew = false;
    });
  }

  private kick(): void {
    this.sendRecords();
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
      if (this.ops.length > 0 || this.inflight.length > 0) this.kick();
    });
  }

  /** Pipelining: queued records go out while nothing else owns the connection. */
  private sendRecords(): void {
    while (!this.careful && !this.holding && !this.failure && this.ops[0]?.kind === 'record' && this.inflight.length < MAX_IN_FLIGHT) {
      const { data } = this.ops.shift() as { data: Buffer };
      this.inflight.push({ data, reply: this.client!.write(data) });
    }
  }

  /** Settles replies in order and runs queued tasks and careful writes, until nothing is left. */
  private async pump(): Promise<void> {
    while (!this.failure && (this.inflight.length > 0 || this.ops.length > 0)) {
      try {
        if (this.inflight.length > 0) await this.settleOldest();
        else await this.runNext(this.ops[0]!);
      } catch (err) {
        this.fail(err as Error);
      } finally {
        this.holding = false;
      }
      this.sendRecords();
    }
    if (this.failure) this.dropQueued();
  }

  /** The next op when nothing is in flight: a task, or a record written carefully. */
  private async runNext(op: Op): Promise<void> {
    if (op.kind === 'record' && !this.careful) return; // sendRecords sends it
    this.ops.shift();
    this.holding = true;
    if (op.kind === 'record') await this.writeCarefully(op.data);
    else await op.run().then(op.resolve, op.reject);
  }

  private async settleOldest(): Promise<void> {
    const head = this.inflight[0]!;
    const reply = await head.reply;
    if (reply.ok && reply.value === head.data.length) {
      this.inflight.shift();
      this.recordConfirmed(head.data.length);
    } else if (!reply.ok && reply.errno === Errno.ENOSPC) {
      this.holding = true;
      await this.repair();
    } else {
      this.fail(this.writeError(reply, head.data));
    }
  }

  /**
   * The oldest record in flight was refused at early warning: space back over what landed behind
   * it, then write it and the rest again, one at a time.
   */
  private async repair(): Promise<void> {
    this.ew = true;
    this.careful = true;
    const sent = this.inflight.splice(0);
    const replies = await Promise.all(sent.map((s) => s.reply));
    let landed = 0;
    for (let i = 1; i < sent.length; i++) {
      const r = replies[i]!;
      if (r.ok && r.value === sent[i]!.data.length) landed++;
      else if (r.ok || r.errno !== Errno.ENOSPC) return this.fail(this.writeError(r, sent[i]!.data));
    }
    this.options.log?.('early warning on the remote drive: writing on one record at a time', {
      sink: this.name,
      volume: this.volume,
      object: this.confirmed,
      spacedBack: landed,
    });
    if (landed > 0) await this.check(this.client!.ioctl(MtOp.MTBSR, landed), `spacing back over ${landed} records written behind a refused one`);
    for (const { data } of sent) {
      await this.writeCarefully(data);
      if (this.failure) return;
    }
  }

  /** One record, waiting for its reply; a refusal at early warning is retried once. */
  private async writeCarefully(data: Buffer): Promise<void> {
    let reply = await this.client!.write(data);
    if (!reply.ok && reply.errno === Errno.ENOSPC) {
      this.ew = true;
      reply = await this.client!.write(data);
    }
    if (reply.ok && reply.value === data.length) this.recordConfirmed(data.length);
    else this.fail(this.writeError(reply, data));
  }

  /** GMT_EOT in the remote status means early warning too (a crossing write that was the last). */
  private async readEarlyWarning(): Promise<void> {
    const gstat = await this.remoteGstat();
    if (gstat !== undefined && gstat & GMT_EOT) this.ew = true;
  }

  private async remoteGstat(): Promise<number | undefined> {
    if (this.statusWithNewline === undefined) return undefined;
    const reply = await this.client!.status(this.statusWithNewline);
    if (!reply.ok || reply.data?.length !== MTGET_SIZE) return undefined;
    return Number(reply.data.readBigInt64LE(24) & 0xffffffffn);
  }

  /** Runs `run` in order with the records, owning the connection; its error is the caller's. */
  private task(run: () => Promise<void>): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.client) return Promise.reject(tapeError('ENOMEDIUM', `${this.name}: no volume loaded`));
    return new Promise((resolve, reject) => {
      this.ops.push({ kind: 'task', run, resolve, reject });
      this.kick();
    });
  }

  /** A task nobody waits for: its error is the copy's failure. */
  private background(run: () => Promise<void>): void {
    this.task(run).catch((err: Error) => this.fail(err));
  }

  private async check(request: Promise<RmtReply>, what: string): Promise<void> {
    const reply = await request;
    if (!reply.ok) throw tapeError('EIO', `${this.name}: ${what}: ${serverSaid(reply)}`);
  }

  private writeError(reply: RmtReply, data: Buffer): TapeError {
    const why = reply.ok
      ? `the server wrote ${reply.value} of ${data.length} bytes`
      : `${serverSaid(reply)}${reply.errno === Errno.ENOSPC ? ' (physical end of tape: refused twice)' : ''}`;
    return tapeError('EIO', `${this.name}: write of a ${data.length}-byte record failed at object ${this.confirmed} of volume ${this.volume}: ${why}`);
  }

  private fail(err: Error): void {
    if (this.queue.failure) return;
    const error = err.message.includes(this.name) ? err : tapeError('EIO', `${this.name}: ${err.message.replace(/^[A-Z]+: /, '')}`);
    this.queue.fail(error);
    this.options.log?.('rmt copy failed: its server is stopped, nothing more reaches that tape', {
      sink: this.name,
      lastGoodObject: this.confirmed,
      volume: this.volume,
    });
    this.client?.kill(); // nothing sent behind a failure may reach the tape
  }

  private dropQueued(): void {
    const failure = this.failure!;
    for (const op of this.ops.splice(0)) if (op.kind === 'task') op.reject(failure);
    this.inflight.length = 0;
  }

  protected async endSession(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    try {
      await client.closeDevice();
      await client.end();
    } catch {
      client.kill();
    }
  }
}

/** An error reply in the server's words, with its errno. */
function serverSaid(reply: RmtReply & { ok: false }): string {
  return `${reply.message} (E${reply.errno})`;
}
