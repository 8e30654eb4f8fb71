import { constants, PerformanceObserver } from 'node:perf_hooks';

/** Collections of the main thread's heap by kind, and the time they paused it. */
export type GcKind = 'minor' | 'major' | 'incremental' | 'weak callbacks';

const KINDS: [number, GcKind][] = [
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weak callbacks'],
];

/**
 * Counts the daemon's garbage collections as they happen. Full (major) collections are what made a
 * drive with a grpc copy run at half speed in some runs and not in others (heap-growth.ts): their
 * count per GiB written says whether a slow backup is in that state.
 */
export class GcStats {
  readonly collections = new Map<GcKind, number>(KINDS.map(([, kind]) => [kind, 0]));
  readonly pauseSeconds = new Map<GcKind, number>(KINDS.map(([, kind]) => [kind, 0]));
  private readonly observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = KINDS.find(([code]) => code === (entry as { detail?: { kind?: number } }).detail?.kind)?.[1];
      if (!kind) continue;
      this.collections.set(kind, this.collections.get(kind)! + 1);
      this.pauseSeconds.set(kind, this.pauseSeconds.get(kind)! + entry.duration / 1000);
    }
  });

  constructor() {
    this.observer.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    this.observer.disconnect();
  }
}
