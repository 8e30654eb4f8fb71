import { tapeError, type TapeError } from '../drive/tape-error.js';
import type { Sink } from '../sinks/sink.js';

interface Wait {
  queued: number;
  since: number;
  what: string;
  rejects: Set<(error: Error) => void>;
}

/**
 * Fails the waits on a copy that makes no progress: while the mirror waits for a copy to take its
 * queued records (back-pressure, a sync point), the copy's queue must shrink at least once every
 * `limitMs`, or the copy counts as failed (a hung NFS server, a drive that stopped answering), so the
 * writer gets an error instead of hanging forever. The copy's own I/O may stay stuck; the mirror
 * stops waiting for it.
 *
 * One timer for all copies, running only while some wait is in progress: registering a wait costs
 * a set insertion, not a timer per record.
 */
export class StallWatch {
  private readonly waits = new Map<Sink, Wait>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limitMs: number,
    private readonly onStall: (sink: Sink, error: TapeError) => void,
  ) {}

  /** `op` as it settles, or rejected with the stall error if `sink` stops making progress first. */
  watch<T>(sink: Sink, op: Promise<T>, what: string): Promise<T> {
    if (!(this.limitMs > 0)) return op;
    return new Promise<T>((resolve, reject) => {
      let wait = this.waits.get(sink);
      if (!wait) {
        wait = { queued: sink.queuedBytes, since: Date.now(), what, rejects: new Set() };
        this.waits.set(sink, wait);
      }
      wait.rejects.add(reject);
      this.timer ??= setInterval(() => this.check(), Math.min(1000, Math.max(50, this.limitMs / 4)));
      op.then(
        (value) => {
          this.done(sink, reject);
          resolve(value);
        },
        (err: unknown) => {
          this.done(sink, reject);
          reject(err);
        },
      );
    });
  }

  private done(sink: Sink, reject: (error: Error) => void): void {
    const wait = this.waits.get(sink);
    wait?.rejects.delete(reject);
    if (wait?.rejects.size === 0) this.waits.delete(sink);
    if (this.waits.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private check(): void {
    const now = Date.now();
    for (const [sink, wait] of this.waits) {
      if (sink.queuedBytes !== wait.queued) {
        wait.queued = sink.queuedBytes;
        wait.since = now;
        continue;
      }
      if (now - wait.since < this.limitMs) continue;
      const error = tapeError(
        'EIO',
        `${sink.name}: no progress for ${this.limitMs / 1000} s while ${wait.what} (${wait.queued} bytes queued): the copy counts as failed`,
      );
      this.waits.delete(sink);
      this.onStall(sink, error);
      for (const reject of wait.rejects) reject(error);
    }
    if (this.waits.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
