/**
 * The kernel rig: Debian 12's own kernel in a QEMU (TCG) guest, booted once for the whole file,
 * runs every tests/kernel/cases/*.sh with the real CUSE module and the real st driver, which the
 * CI host's kernel lacks. Each case is one test here, passing when the case exited 0 in the guest.
 * The rig (kernel, initramfs, root file system) is built once into TAPEPROXY_RIG_CACHE
 * (default /var/cache/tapeproxy-kernel-rig). TAPEPROXY_SKIP_KERNEL_RIG=1 skips it, saying so;
 * TAPEPROXY_KERNEL_CASES=NAME,... runs only those cases.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCases } from './rig/cases.js';
import { BUILD_LIMIT_SECONDS, bootLimitSeconds, bootRig, buildRig, removeRun, type RigRun } from './rig/rig-run.js';

const casesDir = join(dirname(fileURLToPath(import.meta.url)), 'cases');
const cases = listCases(casesDir, process.env.TAPEPROXY_KERNEL_CASES);
const skip = process.env.TAPEPROXY_SKIP_KERNEL_RIG === '1';

if (skip) {
  console.warn(
    `kernel rig SKIPPED (TAPEPROXY_SKIP_KERNEL_RIG=1): ${cases.length} cases on CUSE and real st drives did not run`,
  );
}

describe.skipIf(skip)('kernel rig (QEMU guest, Debian kernel 6.1: CUSE, st, iSCSI)', () => {
  let run: RigRun | undefined;
  let failed = false;

  beforeAll(async () => {
    const { rig, seconds } = await buildRig();
    run = await bootRig(rig, seconds, cases);
    const timings = [...run.results].map(([name, r]) => `${name} ${r.seconds.toFixed(1)}s`).join(', ');
    console.log(
      `kernel rig: build or cache check ${run.buildSeconds.toFixed(1)}s; boot, cases and power-off ${run.bootSeconds.toFixed(1)}s ` +
        `(${timings}); guest: ${run.initLog.match(/up after [\d.]+ s/)?.[0] ?? 'did not come up'}`,
    );
  }, (BUILD_LIMIT_SECONDS + bootLimitSeconds(cases) + 120) * 1000);

  afterAll(async () => {
    if (!run) return;
    if (failed || run.problem) console.warn(`kernel rig: the run's files are kept in ${run.runDir}`);
    else await removeRun(run);
  });

  for (const c of cases) {
    it(c.name, () => {
      const result = run?.results.get(c.name);
      if (!result) {
        failed = true;
        // A case that did not run is a failure, whatever stopped it.
        throw new Error(
          `case ${c.name} did not run to its end in the guest: ${run?.problem ?? 'no result was written'}\n` +
            `guest init log:\n${run?.initLog ?? ''}\nguest console (last lines):\n${run?.consoleTail ?? ''}`,
        );
      }
      if (result.exitCode !== 0) failed = true;
      expect(result.exitCode, `case ${c.name} exited ${result.exitCode}; its log:\n${result.log}`).toBe(0);
    });
  }
});
