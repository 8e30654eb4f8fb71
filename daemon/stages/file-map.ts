/**
 * Which tape file, and which record of it, each object of a volume is: the filemarks among the
 * first `known` objects, learnt as the head passes them (reading, spacing, writing). Memory is one
 * number per filemark.
 */
export class FileMap {
  /** Object numbers of the filemarks among the known objects, ascending. */
  private marks: number[] = [];
  private knownObjects = 0;

  /** Objects 0 to known-1 have been seen. */
  get known(): number {
    return this.knownObjects;
  }

  /** The head passed object `at` going forward; only the first unknown object adds anything. */
  passed(at: number, kind: 'record' | 'filemark'): void {
    if (at !== this.knownObjects) return;
    if (kind === 'filemark') this.marks.push(at);
    this.knownObjects++;
  }

  /** Object `at` was written: what followed it is gone. */
  wrote(at: number, kind: 'record' | 'filemark'): void {
    this.truncate(at);
    this.passed(at, kind);
  }

  /** Everything from object `at` on is gone (or unknown). */
  truncate(at: number): void {
    while (this.marks.length > 0 && this.marks.at(-1)! >= at) this.marks.pop();
    this.knownObjects = Math.min(this.knownObjects, at);
  }

  /** The tape file of object `at` and its number within it; `at` must be at most `known`. */
  spot(at: number): { file: number; record: number } {
    if (at > this.knownObjects) throw new Error(`object ${at} is past the known part of the volume (${this.knownObjects})`);
    let lo = 0;
    let hi = this.marks.length; // count the filemarks before `at`
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.marks[mid]! < at) lo = mid + 1;
      else hi = mid;
    }
    return { file: lo, record: lo === 0 ? at : at - this.marks[lo - 1]! - 1 };
  }

  reset(): void {
    this.marks = [];
    this.knownObjects = 0;
  }
}
