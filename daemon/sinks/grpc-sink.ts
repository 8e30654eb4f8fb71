import { setTimeout as sleep } from 'node:timers/promises';
import { DriveSession } from '../../client/drive-session.js';
import { CHANNEL_CONNECT_MS, useOfferedChannel } from '../../client/record-channel.js';
import type { DriveReply, DriveRequest } from '../../generated/tapeproxy.js';
import { MtOp } from '../drive/mtio.js';
import type { Lease } from '../drive/record-pool.js';
import { Errno, TapeError, tapeError } from '../drive/tape-error.js';
import { connectPeer, explainCallError, isLinkFailure, type Peer, type PeerOptions, remoteDriveInfo } from './grpc-peer.js';
import { confirmRemotePosition, ResumeRefused, type SentObject } from './grpc-resume.js';
import { RemoteSink } from './remote-sink.js';
import type { SinkLog } from './sink-uri.js';

/** Requests sent before their replies; the bytes are bounded by the mirror (queueLimit). */
const MAX_IN_FLIGHT = 256;
/** Between attempts to reach the remote again after a link failure. */
const RETRY_MS = 1000;

export interface GrpcSinkOptions {
  peer: PeerOptions;
  drive: string;
  /** What the remote takes after early warning, if the user says so (the remote is asked too). */
  earlyWarningZone?: number;
  /** A reply must come within this, or the link counts as failed. */
  replyTimeoutMs: number;
  /** How long to try to resume after a link failure; 0 fails the copy at once. */
  graceMs: number;
  /**
   * Where records go: 'channel', the remote's record channel when it offers one (else, or when it
   * cannot be reached, in gRPC messages); 'grpc', always in gRPC messages; a number, the record
   * channel on that port (the remote's record port as this host reaches it, behind a port mapping).
   */
  records: 'channel' | 'grpc' | number;
  log?: SinkLog;
}

/**
 * What the copy sent and the remote has not confirmed yet, in order. A pooled record is held
 * (`release`) until confirmed: it may be sent again after a resume. One dropped unconfirmed with its
 * volume or a failure is never released, so its buffer is not reused: the collector takes it.
 */
type Entry = { kind: 'record'; data: Buffer; release?: () => void } | { kind: 'filemarks'; count: number } | { kind: 'erase' };

/**
 * A drive of another tapeproxy daemon as a copy, over its gRPC Session stream (TLS and a token as
 * configured). Records and filemarks are pipelined, at most 256 requests and the mirror's window of
 * bytes in flight. Records go as `behind` writes: the local writer was told they are written, so
 * the remote writes them whatever its early-warning state; the early warning in its replies ends
 * the volume for every copy. The sink's early-warning zone is half the remote's (its own copies may
 * learn of early warning up to half their zone late), so what is in flight always fits.
 *
 * A link failure (transport error, keepalive timeout, no reply within the timeout) does not lose
 * what was in flight: the sink keeps every unconfirmed object, reconnects within the grace period
 * and goes on only once the remote's position proves which of them landed (grpc-resume.ts). If it
 * cannot, the copy fails, its status naming the host and the last object the remote confirmed.
 */
export class GrpcSink extends RemoteSink {
  private peer: Peer | undefined;
  private session: DriveSession | undefined;
  /** Replies to requests of an older session are ignored. */
  private generation = 0;
  private remoteVolume = 0;
  private zone: number | undefined;
  private readonly entries: Entry[] = [];
  /** entries[0, sent) went out on the current session. */
  private sent = 0;
  private outstanding = 0;
  private replyTimer: NodeJS.Timeout | undefined;
  private resuming: Promise<void> | undefined;
  private waiters: (() => void)[] = [];
  /** Told the user once that records go in gRPC messages after all. */
  private warnedChannel = false;

  constructor(private readonly options: GrpcSinkOptions) {
    super(`grpc://${options.peer.address}/${options.drive}`);
    this.zone = options.earlyWarningZone;
  }

  get earlyWarningZone(): number | undefined {
    return this.zone;
  }

  async load(volume: number): Promise<{ writeProtected: boolean }> {
    await this.endSession();
    this.startVolume(volume);
    this.generation++;
    this.entries.length = 0;
    this.sent = 0;
    try {
      this.peer = await connectPeer(this.options.peer);
      const info = await remoteDriveInfo(this.peer, this.options.drive, this.options.replyTimeoutMs);
      const remoteZone = info.state?.earlyWarningZone;
      const zones = [this.options.earlyWarningZone, remoteZone === undefined ? undefined : Math.floor(remoteZone / 2)].filter((z) => z !== undefined);
      this.zone = zones.length > 0 ? Math.min(...zones) : undefined;
      // A blocking open: after the unload of the last volume, the remote's autoload loads its next.
      this.session = await this.openSession(this.peer, false);
      this.remoteVolume = this.session.lastFlags?.volume ?? 0;
      await this.withDeadline(this.session.mt(MtOp.MTREW, 1), 'rewinding');
    } catch (err) {
      await this.endSession();
      throw this.loadError(err, volume);
    }
    this.loaded = true;
    this.options.log?.('remote drive ready', {
      sink: this.name,
      volume,
      remoteVolume: this.remoteVolume,
      earlyWarningZone: this.zone,
      records: this.session.onChannel ? 'record channel' : 'gRPC messages',
    });
    return { writeProtected: false }; // a write-protected remote volume refuses the read-write open (EROFS)
  }

  protected async offline(): Promise<void> {
    await this.control({ mt: { op: MtOp.MTOFFL, count: 1 } });
  }

  /** Records are kept until the remote confirms them: a pooled one is held, not copied. */
  readonly holdsLeases = true;

  write(record: Buffer, lease?: Lease): void {
    if (this.failure) return;
    this.pos++;
    this.queue.added(record.length);
    this.push({ kind: 'record', data: record, release: lease?.hold() });
  }

  writeFilemarks(count: number): void {
    if (this.failure) return;
    this.pos += count;
    this.push({ kind: 'filemarks', count });
  }

  erase(): void {
    if (this.failure) return;
    this.push({ kind: 'erase' });
  }

  /** Everything confirmed, and the remote's copies have it (MTNOP is its sync point). */
  async sync(): Promise<void> {
    if (!this.loaded) return;
    try {
      const reply = await this.control({ mt: { op: MtOp.MTNOP, count: 1 } });
      if (reply.flags?.earlyWarning) this.ew = true;
    } catch (err) {
      this.fail(this.remoteError('sync', err));
    }
    if (this.failure) throw this.failure;
  }

  async locate(object: number): Promise<void> {
    await this.control({ mt: object === 0 ? { op: MtOp.MTREW, count: 1 } : { op: MtOp.MTSEEK, count: object } });
    this.pos = this.confirmed = object;
    if (object === 0) this.ew = false;
  }

  private push(entry: Entry): void {
    this.entries.push(entry);
    this.sendMore();
  }

  /** Pipelining: unsent entries go out while the window has room and the link is up. */
  private sendMore(): void {
    while (this.session && !this.resuming && !this.failure && this.sent < this.entries.length && this.sent < MAX_IN_FLIGHT) {
      this.send(this.entries[this.sent++]!);
    }
  }

  private send(entry: Entry): void {
    const op: Omit<DriveRequest, 'id' | 'pipelined'> =
      entry.kind === 'record'
        ? { write: { data: entry.data, behind: true } }
        : // MTWEOFI: the filemarks without the sync point MTWEOF makes of them
          { mt: entry.kind === 'filemarks' ? { op: MtOp.MTWEOFI, count: entry.count } : { op: MtOp.MTERASE, count: 0 } };
    const generation = this.generation;
    this.track(this.session!.request(op, true, (r) => r)).then(
      (reply) => generation === this.generation && this.confirm(entry, reply),
      (err: unknown) => generation === this.generation && this.sendFailed(entry, err),
    );
  }

  private confirm(entry: Entry, reply: DriveReply): void {
    this.entries.shift();
    this.sent--;
    this.confirmObjects(entry);
    if (reply.flags?.earlyWarning) this.ew = true;
    if (this.entries.length === 0) this.wake();
    this.sendMore();
  }

  private confirmObjects(entry: Entry): void {
    if (entry.kind === 'record') {
      this.recordConfirmed(entry.data.length);
      entry.release?.();
    } else if (entry.kind === 'filemarks') {
      this.confirmed += entry.count;
    }
  }

  private sendFailed(entry: Entry, err: unknown): void {
    if (isLinkFailure(err)) return this.linkLost(err);
    const what = entry.kind === 'record' ? `write of a ${entry.data.length}-byte record` : entry.kind === 'filemarks' ? 'writing filemarks' : 'erase';
    this.fail(this.remoteError(`${what} at object ${this.confirmed} of volume ${this.volume}`, err));
  }

  /**
   * A request the sink waits for (sync, locate, unload): once everything before it is confirmed;
   * if the link fails meanwhile, again after the resume.
   */
  private async control(op: Omit<DriveRequest, 'id' | 'pipelined'>): Promise<DriveReply> {
    for (;;) {
      await this.settled();
      if (this.failure) throw this.failure;
      if (!this.session) throw tapeError('ENOMEDIUM', `${this.name}: no volume loaded`);
      const generation = this.generation;
      try {
        return await this.track(this.session!.request(op));
      } catch (err) {
        if (!isLinkFailure(err) || this.failure) throw err;
        if (generation === this.generation) this.linkLost(err); // else a resume is under way already
      }
    }
  }

  /** Resolves once nothing is unconfirmed and no resume is under way (or the copy failed). */
  private async settled(): Promise<void> {
    while ((this.entries.length > 0 || this.resuming) && !this.failure) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  /** Counts a request in flight: a reply must come within the timeout of the previous one. */
  private track<T>(reply: Promise<T>): Promise<T> {
    const generation = this.generation;
    if (this.outstanding++ === 0) this.armReplyTimer();
    const done = () => {
      if (generation !== this.generation) return; // dropSession forgot that session's requests
      if (--this.outstanding === 0) clearTimeout(this.replyTimer);
      else this.armReplyTimer();
    };
    reply.then(done, done);
    return reply;
  }

  private armReplyTimer(): void {
    clearTimeout(this.replyTimer);
    const generation = this.generation;
    this.replyTimer = setTimeout(() => {
      if (generation === this.generation) this.linkLost(new Error(`no reply for ${this.options.replyTimeoutMs / 1000} s (link down or remote stalled)`));
    }, this.options.replyTimeoutMs);
    this.replyTimer.unref();
  }

  /** The link failed: resume within the grace period, or fail the copy. */
  private linkLost(err: unknown): void {
    if (this.failure || this.resuming) return;
    this.generation++;
    this.dropSession();
    const why = explainCallError(err, this.options.peer.address);
    if (this.options.graceMs <= 0) return this.fail(this.linkError(why));
    this.options.log?.('link to the remote drive lost: reconnecting to resume', {
      sink: this.name,
      err: why,
      lastConfirmed: this.confirmed,
      volume: this.volume,
      graceSeconds: this.options.graceMs / 1000,
    });
    this.resuming = this.resume(why).finally(() => {
      this.resuming = undefined;
      this.wake();
      this.sendMore();
    });
  }

  private async resume(firstWhy: string): Promise<void> {
    const deadline = Date.now() + this.options.graceMs;
    let why = firstWhy;
    while (Date.now() < deadline && !this.failure) {
      await sleep(RETRY_MS);
      const generation = this.generation;
      let session: DriveSession | undefined;
      try {
        this.peer = await connectPeer(this.options.peer);
        // Non-blocking: an open must not make the remote's autoload change the volume.
        session = await this.openSession(this.peer, true);
        if (session.lastFlags?.volume !== this.remoteVolume) {
          throw new ResumeRefused(`the remote drive holds volume ${session.lastFlags?.volume}, not volume ${this.remoteVolume}`);
        }
        const confirmed = this.confirmed;
        const unconfirmed = this.unconfirmedObjects();
        const { landed, remoteAt } = await this.withDeadline(confirmRemotePosition(session, confirmed, unconfirmed), 'confirming the position');
        if (generation !== this.generation) return;
        this.takeLanded(landed);
        this.session = session;
        this.sent = 0;
        this.options.log?.('resumed on the remote drive at the position it confirmed', {
          sink: this.name,
          volume: this.volume,
          object: landed,
          confirmedBefore: confirmed,
          unconfirmed: unconfirmed.length,
          closingFilemarkOverwritten: remoteAt > landed,
        });
        return;
      } catch (err) {
        session?.cancel();
        this.peer?.client.close();
        if (err instanceof ResumeRefused) return this.fail(this.linkError(`${firstWhy}; not resumed: ${err.message}`));
        if (!isLinkFailure(err) && (err as TapeError).errno !== Errno.EBUSY) return this.fail(this.linkError(`${firstWhy}; not resumed: ${explainCallError(err, this.options.peer.address)}`));
        // EBUSY: the remote has not noticed yet that the old session is gone; its keepalive will.
        why = explainCallError(err, this.options.peer.address);
      }
    }
    this.fail(this.linkError(`${firstWhy}; not resumed within ${this.options.graceMs / 1000} s (last attempt: ${why})`));
  }

  /** Every object sent or queued without a confirmation, one by one (null: a filemark). */
  private unconfirmedObjects(): SentObject[] {
    return this.entries.flatMap((e) => (e.kind === 'record' ? [e.data] : e.kind === 'filemarks' ? new Array<SentObject>(e.count).fill(null) : []));
  }

  /**
   * The first `landed - confirmed` unconfirmed objects are on the remote after all. An erase (no
   * object) at the resume point is sent again: at the same position it erases the same.
   */
  private takeLanded(landed: number): void {
    while (this.confirmed < landed) {
      const head = this.entries[0]!;
      if (head.kind === 'filemarks' && head.count > landed - this.confirmed) {
        head.count -= landed - this.confirmed;
        this.confirmed = landed;
        break;
      }
      this.entries.shift();
      this.confirmObjects(head);
    }
  }

  private fail(error: Error): void {
    if (this.queue.failure) return;
    this.queue.fail(error);
    this.generation++;
    this.dropSession();
    this.wake();
    this.options.log?.('grpc copy failed', { sink: this.name, lastConfirmed: this.confirmed, volume: this.volume });
  }

  private dropSession(): void {
    clearTimeout(this.replyTimer);
    this.outstanding = 0;
    this.session?.cancel();
    this.session = undefined;
    this.peer?.client.close();
    this.sent = 0;
  }

  protected async endSession(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    try {
      if (session) await this.withDeadline(session.close(), 'closing the drive');
    } catch {
      session?.cancel();
    }
    this.peer?.client.close();
    this.peer = undefined;
  }

  /**
   * Opens the remote drive within the timeout (a late success is closed at once, not left holding
   * it), and connects the record channel it offers.
   */
  private async openSession(peer: Peer, nonBlocking: boolean): Promise<DriveSession> {
    const recordChannel = this.options.records !== 'grpc';
    const opening = DriveSession.open(peer.client, this.options.drive, { access: 'read-write', nonBlocking, recordChannel }, peer.metadata);
    let session: DriveSession;
    try {
      session = await this.withDeadline(opening, 'opening the drive');
    } catch (err) {
      opening.then((s) => s.cancel(), () => undefined);
      throw err;
    }
    const port = typeof this.options.records === 'number' ? this.options.records : undefined;
    const channel = await useOfferedChannel(session, this.options.peer.address, peer.tls, Math.min(this.options.replyTimeoutMs, CHANNEL_CONNECT_MS), port);
    if (!channel.onChannel && recordChannel && !this.warnedChannel) {
      this.warnedChannel = true;
      if (channel.err) {
        const message = "cannot reach the remote's record port: records go in gRPC messages, slower (records=PORT if a port mapping moves it, records=grpc to not try)";
        this.options.log?.(message, { sink: this.name, port: port ?? session.channelOffer?.port, err: channel.err.message }, 'warn');
      } else this.options.log?.('the remote daemon offers no record channel: records go in gRPC messages', { sink: this.name });
    }
    return session;
  }

  private withDeadline<T>(work: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${this.options.replyTimeoutMs / 1000} s`)), this.options.replyTimeoutMs);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  private loadError(err: unknown, volume: number): TapeError {
    const why = err instanceof TapeError && !isLinkFailure(err) ? `the remote drive answered ${err.message}` : explainCallError(err, this.options.peer.address);
    return tapeError('EIO', `${this.name}: cannot load volume ${volume}: ${why}`);
  }

  private remoteError(what: string, err: unknown): TapeError {
    if (err instanceof TapeError && err.message.includes(this.name)) return err;
    const why = err instanceof TapeError ? err.message : explainCallError(err, this.options.peer.address);
    return tapeError('EIO', `${this.name}: ${what} failed on the remote drive: ${why}`);
  }

  private linkError(why: string): TapeError {
    return tapeError('EIO', `${this.name}: link failed: ${why}; the last object the remote confirmed is ${this.confirmed} of volume ${this.volume}`);
  }
}
