import { tapeError } from '../drive/tape-error.js';
import type { Room, Sink, SinkStatus } from './sink.js';
import { WriteQueue } from './write-queue.js';

/**
 * What remote copies (rmt, grpc) have in common: a remote drive that confirms what it wrote, a
 * queue of what it has not confirmed yet (the mirror's back-pressure), early warning learnt from
 * the remote, no reading back, and a session that ends at unload and close.
 */
export abstract class RemoteSink implements Sink {
  readonly readable = false;
  protected volume = 0;
  protected loaded = false;
  /** Where the next object goes, as the mirror counts. */
  protected pos = 0;
  /** Objects of the current volume the remote confirmed. */
  protected confirmed = 0;
  protected ew = false;
  protected readonly queue = new WriteQueue();
  private records = 0;
  private bytes = 0;
  private volumeBytes = 0;

  constructor(readonly name: string) {}

  abstract readonly earlyWarningZone: number | undefined;
  abstract load(volume: number): Promise<{ writeProtected: boolean }>;
  abstract write(record: Buffer): void;
  abstract writeFilemarks(count: number): void;
  abstract erase(): void;
  abstract sync(): Promise<void>;
  abstract locate(object: number): Promise<void>;
  /** Takes the cartridge out (MTOFFL), so that the next open brings the next one. */
  protected abstract offline(): Promise<void>;
  /** Ends the connection to the remote, quietly if it is gone. */
  protected abstract endSession(): Promise<void>;

  get position(): number {
    return this.pos;
  }
  get earlyWarning(): boolean {
    return this.ew;
  }
  get queuedBytes(): number {
    return this.queue.bytes;
  }
  get failure(): Error | undefined {
    return this.queue.failure;
  }

  async unload(): Promise<void> {
    if (!this.loaded) return;
    try {
      await this.sync();
      await this.offline();
    } finally {
      this.loaded = false;
      await this.endSession();
    }
  }

  async close(): Promise<void> {
    try {
      if (this.loaded && !this.failure) await this.sync();
    } finally {
      this.loaded = false;
      await this.endSession();
    }
  }

  async hasVolume(volume: number): Promise<boolean> {
    return this.loaded && volume === this.volume;
  }

  room(): Room {
    return this.ew ? 'early-warning' : 'ok';
  }

  drain(maxQueuedBytes: number): Promise<void> {
    return this.queue.drain(maxQueuedBytes);
  }

  next(): Promise<never> {
    return Promise.reject(this.notRead());
  }
  previous(): Promise<never> {
    return Promise.reject(this.notRead());
  }
  atEnd(): Promise<never> {
    return Promise.reject(this.notRead());
  }

  /** A failed copy shows the last object the remote confirmed as its position. */
  status(): SinkStatus {
    return {
      name: this.name,
      volume: this.volume,
      loaded: this.loaded,
      position: this.failure ? this.confirmed : this.pos,
      used: this.volumeBytes,
      earlyWarning: this.ew,
      queuedBytes: this.queue.bytes,
      recordsWritten: this.records,
      bytesWritten: this.bytes,
      failure: this.failure?.message,
    };
  }

  /** The beginning of `volume`, nothing queued, no failure. */
  protected startVolume(volume: number): void {
    this.queue.reset();
    this.volume = volume;
    this.loaded = false;
    this.pos = this.confirmed = this.volumeBytes = 0;
    this.ew = false;
  }

  /** The remote confirmed a record of `length` bytes. */
  protected recordConfirmed(length: number): void {
    this.confirmed++;
    this.records++;
    this.bytes += length;
    this.volumeBytes += length;
    this.queue.done(length);
  }

  private notRead(): Error {
    return tapeError('EIO', `${this.name}: remote copies are written, not read back; reads use a local copy (list one)`);
  }
}
