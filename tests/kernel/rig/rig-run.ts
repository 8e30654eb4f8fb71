import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KernelCase } from './cases.js';

const RIG_DIR = dirname(fileURLToPath(import.meta.url));

/** A fresh build downloads a kernel and debootstraps a root file system: about a minute here. */
export const BUILD_LIMIT_SECONDS = 600;
/** Boot, unpacking the daemon in the guest and power-off, on top of the cases' own timeouts. */
const BOOT_ALLOWANCE_SECONDS = 120;
/** Per case: the guest's kill-after grace and its clean-up between cases. */
const PER_CASE_ALLOWANCE_SECONDS = 15;

export function bootLimitSeconds(cases: KernelCase[]): number {
  return BOOT_ALLOWANCE_SECONDS + cases.reduce((sum, c) => sum + c.timeoutSeconds + PER_CASE_ALLOWANCE_SECONDS, 0);
}

export interface CaseResult {
  exitCode: number;
  seconds: number;
  log: string;
}

export interface RigRun {
  runDir: string;
  buildSeconds: number;
  bootSeconds: number;
  /** Why the guest did not finish every case, when it did not. */
  problem?: string;
  results: Map<string, CaseResult>;
  /** The guest init's own log (boot and per-case timings). */
  initLog: string;
  /** The end of the guest's serial console: kernel messages of a guest that crashed. */
  consoleTail: string;
}

/** Builds the rig if its cache has no rig for the current recipe; returns the rig's folder. */
export async function buildRig(): Promise<{ rig: string; seconds: number }> {
  const started = Date.now();
  const build = execa('bash', [join(RIG_DIR, 'build.sh')], {
    reject: false,
    timeout: BUILD_LIMIT_SECONDS * 1000,
    stdin: 'ignore',
    stderr: 'pipe',
    all: false,
  });
  build.stderr?.pipe(process.stderr);
  const r = await build;
  if (r.exitCode !== 0) {
    throw new Error(`building the kernel rig failed (${r.timedOut ? 'timed out' : `exit ${r.exitCode}`}): ${r.stderr.trim().split('\n').slice(-15).join('\n')}`);
  }
  const rig = r.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(join(rig, 'complete'))) throw new Error(`the rig build printed '${rig}', which is not a built rig`);
  return { rig, seconds: (Date.now() - started) / 1000 };
}

/** Boots the rig once and lets the guest run `cases`; collects what each case left. */
export async function bootRig(rig: string, buildSeconds: number, cases: KernelCase[]): Promise<RigRun> {
  const runDir = await mkdtemp(join(tmpdir(), 'tapeproxy-kernel-run-'));
  await mkdir(join(runDir, 'results'));
  await writeFile(join(runDir, 'cases.tsv'), cases.map((c) => `${c.name} ${c.timeoutSeconds}\n`).join(''));
  const limit = bootLimitSeconds(cases);
  const started = Date.now();
  const boot = await execa('bash', [join(RIG_DIR, 'boot.sh'), rig, runDir, String(limit), process.execPath], {
    reject: false,
    stdin: 'ignore',
    // boot.sh stops qemu itself at the limit; this is only the last resort.
    timeout: (limit + 60) * 1000,
  });
  const bootSeconds = (Date.now() - started) / 1000;
  const results = new Map<string, CaseResult>();
  for (const c of cases) {
    const rc = await readOptional(join(runDir, 'results', `${c.name}.rc`));
    if (rc === undefined) continue;
    const [code, seconds] = rc.trim().split(/\s+/).map(Number);
    results.set(c.name, {
      exitCode: Number.isInteger(code) ? code! : -1,
      seconds: seconds ?? Number.NaN,
      log: (await readOptional(join(runDir, 'results', `${c.name}.log`))) ?? '(no log)',
    });
  }
  const problem =
    boot.exitCode === 0 ? undefined : `${boot.stderr.trim() || boot.stdout.trim() || `boot.sh exit ${boot.exitCode}`}`;
  const consoleLog = (await readOptional(join(runDir, 'console.log'))) ?? '';
  return {
    runDir,
    buildSeconds,
    bootSeconds,
    ...(problem !== undefined && { problem }),
    results,
    initLog: (await readOptional(join(runDir, 'results', 'init.log'))) ?? '',
    consoleTail: consoleLog.split('\n').slice(-40).join('\n'),
  };
}

/** Removes a run's folder once everything in it has been reported. */
export async function removeRun(run: RigRun): Promise<void> {
  await rm(run.runDir, { recursive: true, force: true });
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}
