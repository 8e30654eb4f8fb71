/**
 * GcStats counts the collections V8 reports as they happen (what tapeproxy_gc_collections_total
 * serves): garbage made here sets off young collections, which it counts with their pause time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { GcStats } from '../../daemon/metrics/gc-stats.js';

it('counts young collections, with their pause time, from when it starts until it stops', async () => {
  const stats = new GcStats();
  expect([...stats.collections.keys()].sort()).toEqual(['incremental', 'major', 'minor', 'weak callbacks']);
  const ring: { i: number }[] = new Array(1024);
  const garbage = () => {
    for (let i = 0; i < 2_000_000; i++) ring[i % ring.length] = { i }; // about 50 MB that dies young
  };
  garbage();
  // Entries are delivered after the task that made them.
  for (let waited = 0; stats.collections.get('minor') === 0 && waited < 5000; waited += 20) await sleep(20);
  const minor = stats.collections.get('minor')!;
  expect(minor).toBeGreaterThan(0);
  expect(stats.pauseSeconds.get('minor')!).toBeGreaterThan(0);
  stats.stop();
  garbage();
  await sleep(100);
  expect(stats.collections.get('minor')).toBe(minor);
});
