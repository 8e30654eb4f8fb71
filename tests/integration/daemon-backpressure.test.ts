/**
 * A slow copy makes the writer wait instead of growing the daemon's memory: 2 GiB through a drive
 * whose second copy writes at a simulated 100 MB/s.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const MiB = 2 ** 20;
const TOTAL = 2048 * MiB;
const RECORD = MiB;
const WINDOW = 16 * MiB;
const RATE = 100 * 10 ** 6;
const IN_FLIGHT = 32;

const dir = useTempDir();
let daemon: RunningDaemon;

beforeEach(async () => {
  daemon = await startDaemon([
    '--drive', 'pnst0', '--window', String(WINDOW),
    '--sink', `file:${dir.path}/fast.tap?fsync=false`,
    '--sink', `file:${dir.path}/slow.tap?fsync=false&rate=${RATE}`,
  ]);
});
afterEach(async () => {
  await daemon.stop();
});

it('2 GiB to a slow copy: RSS stays within the windows plus a fixed overhead', { timeout: 120_000 }, async () => {
  const baseline = await daemon.peakRss();
  const fd = await daemon.session('pnst0', { access: 'write' });
  const record = Buffer.alloc(RECORD, 0x5a);
  const started = performance.now();
  let slowQueuePeak = 0;
  const poll = setInterval(() => {
    void daemon.status('pnst0').then((info) => {
      slowQueuePeak = Math.max(slowQueuePeak, info.sinks[1]!.queuedBytes);
    });
  }, 50);
  const inFlight: Promise<number>[] = [];
  for (let sent = 0; sent < TOTAL; sent += RECORD) {
    inFlight.push(fd.write(record, true));
    if (inFlight.length >= IN_FLIGHT) expect(await inFlight.shift()).toBe(RECORD);
  }
  for (const w of inFlight) expect(await w).toBe(RECORD);
  await fd.close();
  clearInterval(poll);
  const seconds = (performance.now() - started) / 1000;
  const growth = (await daemon.peakRss()) - baseline;

  // The slow copy bounds the pace (a lower bound, so not a flaky timing check), and its queue
  // filled up to the window: the writer was held back by it, not by anything else.
  expect(seconds).toBeGreaterThan(TOTAL / RATE);
  expect(slowQueuePeak).toBeGreaterThan(WINDOW / 2);
  expect(slowQueuePeak).toBeLessThanOrEqual(WINDOW + RECORD + 8);
  // Memory: each copy's write-behind window, the requests the session reads ahead (32 records),
  // the same again in gRPC/HTTP2 buffers, and 64 MiB for the runtime. Without back-pressure the
  // daemon would hold most of the 2 GiB.
  const bound = 2 * WINDOW + 2 * IN_FLIGHT * RECORD + 64 * MiB;
  console.log(`2 GiB in ${seconds.toFixed(1)} s; slow queue peak ${(slowQueuePeak / MiB).toFixed(1)} MiB; RSS growth ${(growth / MiB).toFixed(0)} MiB (bound ${bound / MiB} MiB)`);
  expect(growth).toBeLessThan(bound);
});
