/**
 * CPU time by thread (the metrics' tapeproxy_thread_cpu_seconds_total): the manifest hashing worker
 * is named by its own OS thread id, its time is its own, and the labels add up to the process.
 */
import { describe, expect, it, vi } from 'vitest';
import { StreamHasher } from '../../daemon/manifest/stream-hasher.js';
import { ownThreadId, threadCpuSeconds } from '../../daemon/metrics/thread-cpu.js';

const total = (s: Record<string, number>) => Object.values(s).reduce((a, b) => a + b, 0);

describe('threadCpuSeconds', () => {
  it('names the hashing worker, counts its work there, and moves it to "other" when it ends', async () => {
    const hasher = new StreamHasher('sha256'); // the slower hash: enough work to measure
    const stream = hasher.newStream();
    const record = Buffer.alloc(256 * 1024, 7);
    const mainBefore = threadCpuSeconds().main!;
    for (let i = 0; i < 1024; i++) {
      hasher.add(stream, record); // 256 MiB: about 0.16 s of SHA-256 here
      await hasher.drain(16 * 2 ** 20);
    }
    await hasher.snapshot([stream]);

    const during = threadCpuSeconds();
    expect(Object.keys(during).sort()).toEqual(['main', 'manifest hashing', 'other']);
    expect(during['manifest hashing']).toBeGreaterThan(0.1);
    expect(during.main).toBeGreaterThan(mainBefore); // the batch copies
    // The labels share the process's time out: none is counted twice.
    const { user, system } = process.cpuUsage();
    expect(Math.abs(total(during) - (user + system) / 1e6)).toBeLessThan(0.1);

    await hasher.close();
    await vi.waitFor(() => expect(threadCpuSeconds()['manifest hashing']).toBeUndefined());
    expect(threadCpuSeconds().other).toBeGreaterThanOrEqual(during['manifest hashing']! + during.other! - 0.02);
  });

  it('tells a thread its own id: the process id on the main thread', () => {
    expect(ownThreadId()).toBe(process.pid);
  });
});
