/**
 * Where objects start in an image, remembered for every STRIDE-th object only, so memory stays
 * flat on long tapes while locating an object reads at most STRIDE length words.
 */
export class ObjectIndex {
  static readonly STRIDE = 1024;
  private checkpoints: number[] = [0];

  /** Object `object` starts at byte `offset` (called as the head passes it going forward). */
  passed(object: number, offset: number): void {
    if (object % ObjectIndex.STRIDE !== 0) return;
    const k = object / ObjectIndex.STRIDE;
    if (k <= this.checkpoints.length) this.checkpoints[k] = offset;
  }

  /** Everything after `object` was discarded. */
  truncate(object: number): void {
    const keep = Math.floor(object / ObjectIndex.STRIDE) + 1;
    if (this.checkpoints.length > keep) this.checkpoints.length = keep;
  }

  /** The nearest remembered object at or before `object`. */
  nearest(object: number): { object: number; offset: number } {
    const k = Math.min(Math.floor(object / ObjectIndex.STRIDE), this.checkpoints.length - 1);
    return { object: k * ObjectIndex.STRIDE, offset: this.checkpoints[k] ?? 0 };
  }

  reset(): void {
    this.checkpoints = [0];
  }
}
