import type { Sink } from '../sinks/sink.js';
import type { DriveEvent } from './events.js';

/** Seconds the current rate is measured over. */
export const RATE_WINDOW_SECONDS = 5;
/** How often the daemon samples each copy's byte counter. */
export const SAMPLE_INTERVAL_MS = 1000;

interface Sample {
  time: number;
  bytes: number[];
}

export interface CopyRates {
  /** Bytes per second over the last RATE_WINDOW_SECONDS. */
  rate: number;
  /** Bytes per second since the write session began (0 before the first one). */
  average: number;
  /** Bytes written in the write session. */
  sessionBytes: number;
}

/**
 * The write rates of a drive's copies, computed in the daemon so every consumer (watch, metrics,
 * status, other programs) sees the same figures, and because only the daemon knows where a
 * session began when a watcher starts in the middle of it. Costs nothing per record: the copies'
 * byte counters are sampled once a second.
 *
 * A write session begins at a blocking open for writing, and goes on through the reopen that loads
 * the next volume (autoload), so a multi-volume `tar -M` is one session; it ends at the close after
 * which no such reopen follows.
 */
export class RateMeter {
  private readonly samples: Sample[] = [];
  private session: { start: number; end?: number; bytes: number[]; endBytes?: number[] } | undefined;

  constructor(
    private readonly sinks: readonly Sink[],
    private readonly now: () => number = Date.now,
  ) {}

  sample(): void {
    this.samples.push(this.read());
    const oldest = this.now() - RATE_WINDOW_SECONDS * 1000;
    while (this.samples.length > 2 && this.samples[0]!.time < oldest) this.samples.shift();
  }

  onEvent(e: DriveEvent): void {
    if (e.type === 'opened' && e.access !== 'read' && !e.nonBlocking) {
      if (this.session && e.autoloaded) {
        this.session.end = this.session.endBytes = undefined;
      } else {
        const { time, bytes } = this.read();
        this.session = { start: time, bytes };
      }
    } else if (e.type === 'closed' && this.session && this.session.end === undefined) {
      const { time, bytes } = this.read();
      Object.assign(this.session, { end: time, endBytes: bytes });
    }
  }

  /** When the current or last write session began and ended (ms since the epoch; 0: none, still on). */
  get sessionTimes(): { started: number; ended: number } {
    return { started: this.session?.start ?? 0, ended: this.session?.end ?? 0 };
  }

  rates(): CopyRates[] {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    const span = first && last ? (last.time - first.time) / 1000 : 0;
    const current = this.read();
    return this.sinks.map((_, i) => {
      const rate = span > 0 ? (last!.bytes[i]! - first!.bytes[i]!) / span : 0;
      if (!this.session) return { rate, average: 0, sessionBytes: 0 };
      const endBytes = this.session.endBytes ?? current.bytes;
      const sessionBytes = endBytes[i]! - this.session.bytes[i]!;
      const seconds = ((this.session.end ?? current.time) - this.session.start) / 1000;
      return { rate, average: seconds > 0 ? sessionBytes / seconds : 0, sessionBytes };
    });
  }

  private read(): Sample {
    return { time: this.now(), bytes: this.sinks.map((s) => s.status().bytesWritten) };
  }
}
