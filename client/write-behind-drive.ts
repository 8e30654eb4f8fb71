import { Errno, TapeError } from '../daemon/drive/tape-error.js';
import type { WriteBehindWindow } from '../daemon/drive/write-behind-window.js';
import type { TapeDevice } from '../daemon/frontends/rmt/rmt-server.js';
import type { DriveSession } from './drive-session.js';

/**
 * An open drive over a Session that answers a write before the daemon has it, as the shim does and
 * as st's buffered writes do (proto/shim-frames.md, "Write-behind"). The rmt protocol makes its
 * client wait for the answer to each W, so a round trip to the daemon per record held tar to a
 * fraction of the drive's speed.
 *
 * A write goes behind (answered at once, sent pipelined and marked `behind`) only when one just like
 * it was answered by the drive itself: the first write after open or after any other request, a
 * write of another length (the drive's length checks, fixed-block mode), and every write once a
 * reply showed early warning wait for their own reply. So the writer sees the drive's own errors
 * where they can be told, and st's exact ENOSPC sequence at early warning: what went behind fits
 * before every copy's physical end (the window is half the smallest early-warning zone). A record
 * that went behind and then failed is reported as EIO to the next request, whatever it is, as st
 * reports a buffered write's failure; the drive then refuses further writes itself.
 */
export class WriteBehindDrive implements TapeDevice {
  private readonly inFlight: { bytes: number; settled: Promise<void> }[] = [];
  private inFlightBytes = 0;
  /** The length of the last write the drive answered itself; undefined after any other request. */
  private checkedLength: number | undefined;
  private earlyWarning = false;
  /** The first failure of a record that went behind, for the next request. */
  private failure: TapeError | undefined;

  constructor(
    private readonly session: DriveSession,
    private readonly window: WriteBehindWindow,
  ) {}

  async write(data: Buffer): Promise<number> {
    while (this.mayGoBehind(data.length) && this.full(data.length)) await this.inFlight[0]!.settled;
    if (!this.mayGoBehind(data.length)) {
      await this.beforeOther();
      const reply = await this.session.request({ write: { data, behind: false } }, false, (r) => r);
      const written = reply.written ?? 0;
      this.earlyWarning = !!reply.flags?.earlyWarning;
      if (written === data.length) this.checkedLength = written;
      return written;
    }
    const entry = { bytes: data.length, settled: Promise.resolve() };
    entry.settled = this.session
      .request({ write: { data, behind: true } }, true, (r) => r)
      .then(
        (reply) => {
          if (reply.flags?.earlyWarning) this.earlyWarning = true;
        },
        (err: unknown) => {
          this.failure ??= new TapeError(Errno.EIO, `a record acknowledged earlier was not written: ${(err as Error).message}`);
        },
      )
      .finally(() => {
        this.inFlight.shift(); // replies come in order
        this.inFlightBytes -= entry.bytes;
      });
    this.inFlight.push(entry);
    this.inFlightBytes += entry.bytes;
    return data.length;
  }

  async read(maxBytes: number): Promise<Buffer> {
    await this.beforeOther();
    return this.session.read(maxBytes);
  }

  async mt(op: number, count: number): Promise<void> {
    await this.beforeOther();
    await this.session.mt(op, count);
  }

  async status() {
    await this.beforeOther();
    return this.session.status();
  }

  /** Closes the session even when a record that went behind failed; that failure is thrown after. */
  async close(): Promise<void> {
    const failure = await this.beforeOther().then(
      () => undefined,
      (err: unknown) => err,
    );
    try {
      await this.session.close();
    } catch (err) {
      if (!failure) throw err;
    }
    if (failure) throw failure;
  }

  private mayGoBehind(length: number): boolean {
    return !this.failure && !this.earlyWarning && length === this.checkedLength && length <= this.window.bytes;
  }

  private full(length: number): boolean {
    return this.inFlight.length >= this.window.records || this.inFlightBytes + length > this.window.bytes;
  }

  /**
   * Before a request that waits for its own reply: every record in flight answered, and a failure
   * among them thrown, once. The checked length goes, so the writes after it wait for the drive's
   * own answer too (EIO from then on, after a failure).
   */
  private async beforeOther(): Promise<void> {
    this.checkedLength = undefined;
    while (this.inFlight.length > 0) await this.inFlight[0]!.settled;
    const failure = this.failure;
    this.failure = undefined;
    if (failure) throw failure;
  }
}
