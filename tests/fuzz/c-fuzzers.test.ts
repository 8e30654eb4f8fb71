/**
 * The C shim's libFuzzer harnesses (cuse-shim/fuzz/: the frame codec, the CUSE record assembler,
 * the reply reader on a real socket), each run for a bounded time from its committed corpus by
 * `make -C cuse-shim fuzz-ci`: no crash, no sanitizer report, no leak, and each really ran (a
 * harness that executes nothing, or a target left out, fails here).
 */
import { execa } from 'execa';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FUZZ_TIMEOUT, LONG_RUN, FUZZ_SECONDS } from './fuzz.js';

const SHIM_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cuse-shim');
const TARGETS = ['frames', 'record-assembler', 'daemon-link'];
/** Seconds per target in the bounded run (the Makefile's FUZZ_SECONDS otherwise). */
const CI_SECONDS = 10;
/** Inputs each target must at least get through in that time (they run 450-90,000 a second here). */
const MIN_INPUTS = 500;

describe('C shim fuzzers (libFuzzer, ASan, UBSan)', () => {
  it(`run ${TARGETS.join(', ')} without a crash`, { timeout: FUZZ_TIMEOUT * TARGETS.length + 120_000 }, async () => {
    const seconds = LONG_RUN ? FUZZ_SECONDS : CI_SECONDS;
    const r = await execa('make', ['-s', '-C', SHIM_DIR, 'fuzz-ci', `FUZZ_SECONDS=${seconds}`], { reject: false, all: true });
    expect(r.exitCode, r.all.slice(-4000)).toBe(0);
    const sections = r.all.split(/^== fuzz-/m).slice(1);
    const executed = Object.fromEntries(
      sections.map((s) => [s.slice(0, s.indexOf(' ')), Number(/stat::number_of_executed_units: (\d+)/.exec(s)?.[1] ?? 0)]),
    );
    console.log(`C fuzzers, ${seconds} s each: ${JSON.stringify(executed)}`);
    expect(Object.keys(executed)).toEqual(TARGETS);
    for (const t of TARGETS) expect(executed[t], t).toBeGreaterThanOrEqual(MIN_INPUTS);
  });
});
