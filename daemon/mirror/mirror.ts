import type { PublishEvent } from '../events/events.js';
import type { Medium, SpaceResult, TapeObject, WriteOutcome } from '../drive/medium.js';
import { TapeError, tapeError } from '../drive/tape-error.js';
import type { Lease } from '../drive/record-pool.js';
import type { MirrorRecorder } from '../manifest/recorder.js';
import type { Room, Sink, SinkStatus } from '../sinks/sink.js';
import { StallWatch } from './stall-watch.js';

export interface MirrorOptions {
  /** Bytes each copy may have queued before the writer waits (write-behind window). */
  window: number;
  /**
   * Copies that must stay healthy (default: all). A failed copy beyond that is set aside and the
   * backup goes on with the others; otherwise its failure reaches the writer.
   */
  minCopies?: number;
  /**
   * How long a copy may make no progress while the writer waits for it before it counts as failed
   * (0 or absent: wait forever). See StallWatch.
   */
  stallTimeoutMs?: number;
  /** Told once per failed copy, whether it was set aside (`dropped`) or failed the writer. */
  onCopyFailed?: (sink: Sink, error: Error, dropped: boolean) => void;
  /** Told every record and filemark written, for manifests (daemon/manifest/recorder.ts). */
  recorder?: MirrorRecorder;
  /** Where volume changes and each copy's early warning are told (the daemon's event bus). */
  events?: PublishEvent;
}

/**
 * The tape as the drive sees it: every record and filemark goes to every copy in order, each copy
 * with a bounded write-behind queue; reads and spacing use the first copy, and the other copies are
 * moved to the same object before anything is written to them. Volumes change on all copies
 * together. A copy that fails is either the writer's error or, when the policy allows fewer
 * copies, set aside for the rest of the session (its status keeps the failure and last position).
 */
export class Mirror implements Medium {
  private volumeNo = 0;
  private isLoaded = false;
  private protectedCartridge = false;
  private pos = 0;
  private readonly minCopies: number;
  /** Copies set aside after a failure, in the order they failed. */
  private readonly dropped = new Set<Sink>();
  private readonly reported = new Set<Sink>();
  /** Copies whose early warning on this volume was told. */
  private readonly warned = new Set<Sink>();
  private changingVolume = false;
  /** Copies that stopped making progress: their I/O may never end, so nothing waits for them again. */
  private readonly stalled = new Map<Sink, TapeError>();
  private readonly stallWatch: StallWatch;

  constructor(
    readonly sinks: readonly Sink[],
    private readonly options: MirrorOptions,
  ) {
    if (sinks.length === 0) throw new Error('a drive needs at least one sink');
    this.minCopies = options.minCopies ?? sinks.length;
    if (this.minCopies < 1 || this.minCopies > sinks.length) {
      throw new Error(`min-copies must be between 1 and the number of sinks (${sinks.length})`);
    }
    this.stallWatch = new StallWatch(options.stallTimeoutMs ?? 0, (sink, error) => this.stalled.set(sink, error));
  }

  /** A copy's status, with the failure the mirror knows of (a stall) when the copy itself does not. */
  copyStatus(sink: Sink): SinkStatus {
    const status = sink.status();
    const stall = this.stalled.get(sink);
    return stall && !status.failure ? { ...status, failure: stall.message } : status;
  }

  /** The copies still written to. */
  get active(): readonly Sink[] {
    return this.dropped.size === 0 ? this.sinks : this.sinks.filter((s) => !this.dropped.has(s));
  }

  isDropped(sink: Sink): boolean {
    return this.dropped.has(sink);
  }

  get loaded(): boolean {
    return this.isLoaded;
  }
  get writeProtected(): boolean {
    return this.protectedCartridge;
  }
  get volume(): number {
    return this.volumeNo;
  }
  get position(): number {
    return this.pos;
  }
  get pastEarlyWarning(): boolean {
    return this.active.some((s) => s.earlyWarning);
  }
  /** A volume change is under way: copies that need a cartridge wait for it. */
  get loading(): boolean {
    return this.changingVolume;
  }

  /**
   * The smallest early-warning zone among the copies (bytes a copy still takes after it reports
   * early warning), or undefined if no copy knows its own. Records acknowledged to a writer before
   * the drive reports early warning must fit in it.
   */
  earlyWarningZone(): number | undefined {
    const zones = this.active.map((s) => s.earlyWarningZone).filter((z): z is number => z !== undefined);
    return zones.length > 0 ? Math.min(...zones) : undefined;
  }

  /**
   * A copy that cannot load its next volume (no cartridge before the timeout, a changer that
   * failed, an image that cannot be created) has failed: the policy decides, as for a write error.
   */
  async loadNext(): Promise<void> {
    const volume = this.volumeNo + 1;
    this.options.events?.({ type: 'volume-loading', volume });
    this.changingVolume = true;
    const copies = this.active;
    let results;
    try {
      results = await Promise.allSettled(copies.map((s) => this.unlessStalled(s, () => s.load(volume))));
    } finally {
      this.changingVolume = false;
    }
    this.settle(copies, results);
    this.volumeNo = volume;
    this.protectedCartridge = results.some((r) => r.status === 'fulfilled' && r.value.writeProtected);
    this.pos = 0;
    this.isLoaded = true;
    this.warned.clear();
    this.options.events?.({ type: 'volume-loaded', volume });
    await this.options.recorder?.loaded(volume);
  }

  async unload(): Promise<void> {
    this.isLoaded = false;
    const results = await Promise.allSettled(this.active.map((s) => this.unlessStalled(s, () => this.stallWatch.watch(s, s.unload(), 'unloading'))));
    this.options.events?.({ type: 'volume-unloaded', volume: this.volumeNo });
    this.settle(this.active, results);
    await this.options.recorder?.unloaded();
  }

  async hasNextVolume(): Promise<boolean> {
    return this.reader.hasVolume(this.volumeNo + 1);
  }

  async fits(recordBytes: number): Promise<boolean> {
    return (await this.roomFor(recordBytes)).room !== 'full';
  }

  async write(record: Buffer, lease?: Lease): Promise<WriteOutcome> {
    this.throwIfFailed();
    const { room, full } = await this.roomFor(record.length);
    if (full) throw tapeError('ENOSPC', `${full.name}: physical end of volume ${this.volumeNo}`);
    let owned = lease ? undefined : record; // a pooled record is reused: others get their own copy
    for (const sink of this.active) {
      if (lease && sink.holdsLeases) sink.write(record, lease);
      else sink.write((owned ??= Buffer.from(record)));
    }
    this.options.recorder?.record(this.pos, record, lease);
    this.pos++;
    if (room === 'early-warning') this.tellEarlyWarnings();
    await this.applyBackPressure();
    return room === 'early-warning' ? 'early-warning' : 'ok';
  }

  /** Where a record would leave the copies: the tightest room, and the first copy it would not fit. */
  private async roomFor(recordBytes: number): Promise<{ room: Room; full?: Sink }> {
    await this.alignAll(); // room depends on where each copy will write
    let room: Room = 'ok';
    for (const sink of this.active) {
      const r = sink.room(recordBytes);
      if (r === 'full') return { room: r, full: sink };
      if (r === 'early-warning') room = r;
    }
    return { room };
  }

  async writeFilemarks(count: number): Promise<void> {
    this.throwIfFailed();
    await this.alignAll();
    for (const sink of this.active) sink.writeFilemarks(count);
    this.options.recorder?.filemarks(this.pos, count);
    this.pos += count;
    await this.applyBackPressure();
  }

  async read(): Promise<TapeObject> {
    const object = await this.reader.next(true);
    this.pos = this.reader.position;
    return object;
  }

  async spaceRecords(count: number): Promise<SpaceResult> {
    const result = count >= 0 ? await this.forward(count, 'record') : await this.backward(-count, 'record');
    this.pos = this.reader.position;
    return result;
  }

  async spaceFilemarks(count: number): Promise<SpaceResult> {
    const result = count >= 0 ? await this.forward(count, 'filemark') : await this.backward(-count, 'filemark');
    this.pos = this.reader.position;
    return result;
  }

  async rewind(): Promise<void> {
    await this.locate(0);
  }

  async locate(object: number): Promise<void> {
    await this.reader.locate(object);
    this.pos = object;
  }

  async erase(): Promise<void> {
    this.throwIfFailed();
    await this.alignAll();
    for (const sink of this.active) sink.erase();
    this.options.recorder?.erased(this.pos);
  }

  async atEndOfData(): Promise<boolean> {
    return this.reader.atEnd();
  }

  async sync(): Promise<void> {
    const sinks = this.active;
    const results = await Promise.allSettled(sinks.map((s) => this.unlessStalled(s, () => this.stallWatch.watch(s, s.sync(), 'syncing'))));
    this.tellEarlyWarnings(); // a real drive may report it only at a sync point (GMT_EOT)
    this.settle(sinks, results);
    await this.options.recorder?.sync();
  }

  /** Tells each copy's early warning once per volume. Past early warning only: never per record before it. */
  private tellEarlyWarnings(): void {
    for (const sink of this.active) {
      if (sink.earlyWarning && !this.warned.has(sink)) {
        this.warned.add(sink);
        this.options.events?.({ type: 'early-warning', sink: sink.name, volume: this.volumeNo });
      }
    }
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled(this.sinks.map((s) => this.unlessStalled(s, () => this.stallWatch.watch(s, s.close(), 'closing'))));
    await this.options.recorder?.close();
    const failure = results.find((r, i) => r.status === 'rejected' && !this.dropped.has(this.sinks[i]!));
    if (failure) throw asEio((failure as PromiseRejectedResult).reason as Error);
  }

  /** Reads and spacing use the first healthy copy that can be read back. */
  private get reader(): Sink {
    const active = this.active;
    return active.find((s) => s.readable !== false) ?? active[0]!;
  }

  /** Crosses `count` objects of `kind` forward; a filemark stops a record space after it. */
  private async forward(count: number, kind: 'record' | 'filemark'): Promise<SpaceResult> {
    let crossed = 0;
    while (crossed < count) {
      const object = await this.reader.next(false);
      if (object.kind === 'blank') return { crossed, stoppedAt: 'blank' };
      if (object.kind === kind) crossed++;
      else if (kind === 'record') return { crossed, stoppedAt: 'filemark' };
    }
    return { crossed };
  }

  /** Crosses `count` objects of `kind` backward; a filemark stops a record space before it. */
  private async backward(count: number, kind: 'record' | 'filemark'): Promise<SpaceResult> {
    let crossed = 0;
    while (crossed < count) {
      const object = await this.reader.previous();
      if (object === 'bot') return { crossed, stoppedAt: 'bot' };
      if (object === kind) crossed++;
      else if (kind === 'record') return { crossed, stoppedAt: 'filemark' };
    }
    return { crossed };
  }

  private async alignAll(): Promise<void> {
    for (const sink of this.active) {
      if (sink.position !== this.pos) await sink.locate(this.pos);
    }
  }

  private async applyBackPressure(): Promise<void> {
    for (const sink of this.active) {
      const limit = queueLimit(sink, this.options.window);
      if (sink.queuedBytes > limit) {
        await this.stallWatch.watch(sink, sink.drain(limit), 'writing').catch((err: Error) => this.copyFailed(sink, err));
      }
    }
    await this.options.recorder?.drain(this.options.window);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    for (const sink of this.active) {
      const failure = sink.failure ?? this.stalled.get(sink);
      if (failure) this.copyFailed(sink, failure);
    }
  }

  /** `op()`, unless the copy has stalled: then its stall, without touching it. */
  private unlessStalled<T>(sink: Sink, op: () => Promise<T>): Promise<T> {
    const stall = this.stalled.get(sink);
    return stall ? Promise.reject(stall) : op();
  }

  /** Applies the policy to the copies whose operation failed. */
  private settle(sinks: readonly Sink[], results: PromiseSettledResult<unknown>[]): void {
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.copyFailed(sinks[i]!, r.reason as Error);
    });
  }

  /** Sets the copy aside if enough others remain; otherwise its failure is the writer's. */
  private copyFailed(sink: Sink, error: Error): void {
    const allowed = this.active.length - 1 >= this.minCopies;
    if (!this.reported.has(sink)) {
      this.reported.add(sink);
      this.options.onCopyFailed?.(sink, error, allowed);
    }
    if (!allowed) throw asEio(error.message.includes(sink.name) ? error : new Error(`${sink.name}: ${error.message}`));
    this.dropped.add(sink);
  }
}

/**
 * A copy queues at most half its early-warning zone: a real tape learns of early warning only when
 * the queued records reach it, and the other half is for what the shim acknowledged.
 */
function queueLimit(sink: Sink, window: number): number {
  const zone = sink.earlyWarningZone;
  return zone === undefined ? window : Math.min(window, Math.max(1, Math.floor(zone / 2)));
}

function asEio(error: Error): TapeError {
  return error instanceof TapeError ? error : tapeError('EIO', error.message);
}
