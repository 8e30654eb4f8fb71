import type { Room } from './sink.js';

/**
 * A volume's size model: early warning once `capacity - earlyWarning` bytes are exceeded, physical
 * end at `capacity` (a write that would pass it is refused whole, as a variable-block drive does).
 * Filemarks are always accepted, like st's close-time filemark after EW.
 */
export class Capacity {
  constructor(
    readonly capacity?: number,
    readonly earlyWarningZone?: number,
  ) {}

  get earlyWarningAt(): number | undefined {
    return this.capacity === undefined ? undefined : this.capacity - (this.earlyWarningZone ?? 0);
  }

  room(endAfterWrite: number): Room {
    if (this.capacity === undefined) return 'ok';
    if (endAfterWrite > this.capacity) return 'full';
    return this.isPastEarlyWarning(endAfterWrite) ? 'early-warning' : 'ok';
  }

  isPastEarlyWarning(end: number): boolean {
    const at = this.earlyWarningAt;
    return at !== undefined && end > at;
  }
}
