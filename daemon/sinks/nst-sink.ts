import { execa } from 'execa';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TapeObject } from '../drive/medium.js';
import { MtOp } from '../drive/mtio.js';
import { tapeError, type TapeError } from '../drive/tape-error.js';
import type { Room, Sink, SinkStatus } from './sink.js';
import { errnoName, StIoFlag, StIoLink, StIoOp, type StIoReply } from './st-io-link.js';

/** linux/mtio.h GMT_* bits of mt_gstat. */
const GMT_EOT = 0x20000000;
const GMT_WR_PROT = 0x04000000;
const GMT_ONLINE = 0x01000000;
/** Not in mtio.ts's MtOp (the pseudo drive does not implement them). */
const MTLOAD = 30;
const MTSETBLK = 20;

export interface NstSinkOptions {
  device: string;
  /** 0: variable block mode (one write = one record); else the fixed block size. */
  blockSize: number;
  /** What the drive takes after early warning, if the user knows it: it bounds the records in flight. */
  earlyWarningZone?: number;
  /** Largest record read back. */
  maxRecord: number;
  /** Run (sh -c) to put the next cartridge in; %d is the device, %v the volume number. */
  changer?: string;
  /** How long to wait for a cartridge (changer or operator) before the load fails. */
  loadTimeoutMs: number;
  pollMs?: number;
  readonly: boolean;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

interface Inflight {
  bytes: number;
  done: Promise<void>;
}

/**
 * A real tape drive through the st driver (`/dev/nstN`), held open by a tapeproxy-st-io helper for
 * the sink's lifetime. Records go one write() each, pipelined; early warning is st's ENOSPC
 * alternation (seen by the helper) or GMT_EOT at a sync point; physical end and I/O errors are
 * the sink's failure. On a volume change the drive unloads, then a changer command or an operator
 * loads the next cartridge while the writer waits.
 */
export class NstSink implements Sink {
  readonly name: string;
  private link: StIoLink | undefined;
  private pos = 0;
  private volume = 0;
  private loaded = false;
  private ew = false;
  private queued = 0;
  private dirty = false;
  private records = 0;
  private bytes = 0;
  private volumeBytes = 0;
  private failed: TapeError | undefined;
  /** At a failure, the object the failed operation began at: where the cartridge's copy stops. */
  private stoppedAt: number | undefined;
  private readonly inflight: Inflight[] = [];
  private last: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: NstSinkOptions) {
    this.name = `nst:${options.device}`;
  }

  get position(): number {
    return this.pos;
  }
  get earlyWarning(): boolean {
    return this.ew;
  }
  get queuedBytes(): number {
    return this.queued;
  }
  get failure(): Error | undefined {
    return this.failed;
  }
  get earlyWarningZone(): number | undefined {
    return this.options.earlyWarningZone;
  }

  async load(volume: number): Promise<{ writeProtected: boolean }> {
    const link = (this.link ??= new StIoLink(this.options.device, this.options.readonly));
    await link.request(StIoOp.RESET);
    this.failed = undefined;
    this.stoppedAt = undefined;
    if (volume > 1 && this.options.changer) await this.runChanger(volume);
    const status = await this.waitForCartridge(link, volume);
    await this.mtop(MTSETBLK, this.options.blockSize, 'set the block size');
    await this.mtop(MtOp.MTREW, 1, 'rewind');
    Object.assign(this, { volume, loaded: true, pos: 0, ew: false, volumeBytes: 0, dirty: false });
    return { writeProtected: this.options.readonly || (status.gstat & GMT_WR_PROT) !== 0 };
  }

  async unload(): Promise<void> {
    if (!this.loaded) return;
    await this.sync();
    this.loaded = false;
    await this.mtop(MtOp.MTOFFL, 1, 'unload');
  }

  async hasVolume(volume: number): Promise<boolean> {
    // A changer is assumed to hold the next cartridge; without one, only an operator knows.
    return (volume === this.volume && this.loaded) || Boolean(this.options.changer);
  }

  room(): Room {
    return this.ew ? 'early-warning' : 'ok';
  }

  write(record: Buffer): void {
    if (this.failed) return;
    const at = this.pos++;
    this.dirty = true;
    this.queued += record.length;
    const reply = this.link!.request(StIoOp.WRITE, 0, 0, record);
    const done = reply.then(
      (r) => {
        this.queued -= record.length;
        this.inflight.shift();
        if (r.err) return this.fail('write', r.err, at);
        if (r.flags & StIoFlag.EARLY_WARNING) this.ew = true;
        this.records++;
        this.bytes += record.length;
        this.volumeBytes += record.length;
      },
      (err: Error) => this.fail('write', err, at),
    );
    this.inflight.push({ bytes: record.length, done });
    this.last = done;
  }

  writeFilemarks(count: number): void {
    if (this.failed) return;
    const at = this.pos;
    this.pos += count;
    this.dirty = true;
    this.track(this.link!.request(StIoOp.MTOP, MtOp.MTWEOF, count), 'write filemarks', at);
  }

  erase(): void {
    if (this.failed) return;
    // A short erase (count 0): end of data here, without erasing the rest of the tape for hours.
    this.track(this.link!.request(StIoOp.MTOP, MtOp.MTERASE, 0), 'erase', this.pos);
  }

  async drain(maxQueuedBytes: number): Promise<void> {
    while (this.queued > maxQueuedBytes && this.inflight.length > 0) await this.inflight[0]!.done;
  }

  /** Everything queued is on the drive and the drive's buffer is on tape (WRITE FILEMARKS 0). */
  async sync(): Promise<void> {
    await this.last;
    if (this.failed) throw this.failed;
    if (!this.dirty) return;
    await this.mtop(MtOp.MTWEOF, 0, 'flush');
    this.dirty = false;
    const status = await this.link!.status();
    if (status.gstat & GMT_EOT) this.ew = true;
  }

  async locate(object: number): Promise<void> {
    await this.settled();
    await this.mtop(MtOp.MTSEEK, object, `seek to object ${object}`);
    this.pos = object;
  }

  async next(withData: boolean): Promise<TapeObject> {
    await this.settled();
    const r = await this.link!.request(StIoOp.READ, this.options.maxRecord);
    if (r.err) throw this.error('read', r.err);
    if (r.flags & StIoFlag.BLANK) return { kind: 'blank' };
    this.pos++;
    if (r.flags & StIoFlag.FILEMARK) return { kind: 'filemark' };
    return { kind: 'record', data: withData ? r.payload : Buffer.alloc(0) };
  }

  async previous(): Promise<'record' | 'filemark' | 'bot'> {
    if (this.pos === 0) return 'bot';
    const before = this.pos - 1;
    await this.locate(before);
    const object = await this.next(false);
    await this.locate(before);
    return object.kind === 'filemark' ? 'filemark' : 'record';
  }

  async atEnd(): Promise<boolean> {
    const at = this.pos;
    const object = await this.next(false);
    if (object.kind === 'blank') return true;
    await this.locate(at);
    return false;
  }

  status(): SinkStatus {
    return {
      name: this.name,
      volume: this.volume,
      loaded: this.loaded,
      position: this.stoppedAt ?? this.pos,
      used: this.volumeBytes,
      earlyWarning: this.ew,
      queuedBytes: this.queued,
      recordsWritten: this.records,
      bytesWritten: this.bytes,
      failure: this.failed?.message,
    };
  }

  async close(): Promise<void> {
    if (!this.link) return;
    try {
      if (this.loaded) await this.sync();
    } finally {
      await this.link.close();
      this.link = undefined;
    }
  }

  /** Waits until the drive answers and there is no write failure to report. */
  private async settled(): Promise<void> {
    await this.last;
    if (this.failed) throw this.failed;
  }

  /** `at`: the object the operation begins at. */
  private track(reply: Promise<StIoReply>, what: string, at: number): void {
    this.last = reply.then(
      (r) => {
        if (r.err) this.fail(what, r.err, at);
      },
      (err: Error) => this.fail(what, err, at),
    );
  }

  private async mtop(op: number, count: number, what: string): Promise<void> {
    const r = await this.link!.request(StIoOp.MTOP, op, count);
    if (r.err) throw this.error(what, r.err);
  }

  private async runChanger(volume: number): Promise<void> {
    const command = this.options.changer!.replaceAll('%d', this.options.device).replaceAll('%v', String(volume));
    this.options.log?.('running the changer command', { sink: this.name, volume, command });
    const r = await execa('sh', ['-c', command], { reject: false, all: true, stdin: 'ignore' });
    if (r.exitCode !== 0) {
      throw tapeError('EIO', `${this.name}: changer command '${command}' failed (${r.exitCode}): ${String(r.all).trim().slice(-500)}`);
    }
  }

  /**
   * Loads the cartridge in the drive (MTLOAD also makes st check the new medium on the open
   * descriptor), retrying until one is there or the timeout passes. Without a changer, the next
   * volume is only taken once the drive has been seen empty since the unload: a drive that did not
   * eject (or an autoloader that put the same cartridge back) must not get volume N written over
   * volume N-1.
   */
  private async waitForCartridge(link: StIoLink, volume: number) {
    const deadline = Date.now() + this.options.loadTimeoutMs;
    let sawEmpty = volume === 1 || Boolean(this.options.changer);
    let told = false;
    let toldStillIn = false;
    for (;;) {
      const r = await link.request(StIoOp.MTOP, MTLOAD, 0);
      const status = await link.status();
      const online = !r.err && (status.gstat & GMT_ONLINE) !== 0;
      if (!online) sawEmpty = true;
      else if (sawEmpty) return status;
      if (Date.now() >= deadline) {
        const why = online ? `the cartridge of volume ${volume - 1} was never taken out` : errnoName(r.err);
        throw tapeError('ENOMEDIUM', `${this.name}: no cartridge for volume ${volume} after ${this.options.loadTimeoutMs / 1000} s (${why})`);
      }
      if (!told) {
        this.options.log?.(`waiting for a cartridge in ${this.options.device}`, { sink: this.name, volume });
        told = true;
      }
      if (online && !toldStillIn) {
        this.options.log?.(`the cartridge of volume ${volume - 1} is still in ${this.options.device}: take it out and load volume ${volume}`, {
          sink: this.name,
          volume,
        });
        toldStillIn = true;
      }
      await sleep(this.options.pollMs ?? 1000);
    }
  }

  /**
   * The first failure is the copy's: it stops where the failed operation began, not at the end of
   * what was queued after it (st reports a buffered write's error at a later write, as it does to
   * its own writers, so the copy may end a few records earlier still).
   */
  private fail(what: string, err: number | Error, at: number): void {
    if (this.failed) return;
    this.stoppedAt = at;
    this.failed = typeof err === 'number' ? this.error(what, err, at) : tapeError('EIO', `${this.name}: ${what} failed at object ${at}: ${err.message}`);
  }

  private error(what: string, err: number, at = this.pos): TapeError {
    const meaning = err === 28 ? ' (physical end of tape)' : '';
    return tapeError('EIO', `${this.name}: ${what} failed at object ${at}: ${errnoName(err)}${meaning}`);
  }
}
