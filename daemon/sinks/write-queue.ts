/**
 * Write-behind bookkeeping shared by sinks: how many bytes wait to be written, waiters for the queue
 * to shrink (back-pressure) and for it to empty (sync), and the first failure, which is sticky.
 */
export class WriteQueue {
  private waiting = 0;
  private drainWaiters: { max: number; resolve: () => void }[] = [];
  private firstFailure: Error | undefined;

  get bytes(): number {
    return this.waiting;
  }

  get failure(): Error | undefined {
    return this.firstFailure;
  }

  added(bytes: number): void {
    this.waiting += bytes;
  }

  done(bytes: number): void {
    this.waiting -= bytes;
    this.wake();
  }

  fail(error: Error): void {
    this.firstFailure ??= error;
    this.waiting = 0;
    this.wake();
  }

  reset(): void {
    this.firstFailure = undefined;
    this.waiting = 0;
    this.wake();
  }

  /** Resolves once at most `max` bytes wait (or the sink failed: callers check `failure`). */
  drain(max: number): Promise<void> {
    if (this.waiting <= max || this.firstFailure) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push({ max, resolve }));
  }

  private wake(): void {
    if (this.drainWaiters.length === 0) return;
    const still: typeof this.drainWaiters = [];
    for (const w of this.drainWaiters) {
      if (this.waiting <= w.max || this.firstFailure) w.resolve();
      else still.push(w);
    }
    this.drainWaiters = still;
  }
}
