/**
 * What the fuzz tests share: how long each property runs (bounded in CI, longer on request), its
 * seed, the committed corpora they replay first, and byte-stream helpers.
 *
 *   TAPEPROXY_FUZZ_RUNS=N      runs per property (default: the property's CI figure)
 *   TAPEPROXY_FUZZ_SECONDS=S   run each property for S seconds instead (a long run)
 *   TAPEPROXY_FUZZ_SEED=N      the seed (default: fixed for the bounded run, random for a long one)
 *   TAPEPROXY_FUZZ_PATH=P      with the seed: replay just the failing input fast-check reported
 *
 * A failure prints the seed and fast-check's path to the smallest failing input, and how to replay
 * it. A long run saves each failing input in the target's corpus directory as `found-*`, for a
 * look and a commit once the bug is fixed.
 */
import fc from 'fast-check';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { expect } from 'vitest';
import { MtOp } from '../../daemon/drive/mtio.js';
import type { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';

export const CORPUS_ROOT = join(dirname(fileURLToPath(import.meta.url)), 'corpus');

const env = process.env;
const seconds = Number(env.TAPEPROXY_FUZZ_SECONDS ?? 0);
const runs = env.TAPEPROXY_FUZZ_RUNS === undefined ? undefined : Number(env.TAPEPROXY_FUZZ_RUNS);
/** The bounded run's seed: the same inputs every CI run, so a red CI is the change's doing. */
const CI_SEED = 20261105;
const seed = env.TAPEPROXY_FUZZ_SEED !== undefined ? Number(env.TAPEPROXY_FUZZ_SEED) : seconds > 0 ? (Date.now() ^ (Math.random() * 2 ** 31)) | 0 : CI_SEED;
export const LONG_RUN = seconds > 0;
/** A long run's seconds per property (or per C target). */
export const FUZZ_SECONDS = seconds;

/** The vitest timeout for one property: its time limit and room for the slowest single run. */
export const FUZZ_TIMEOUT = LONG_RUN ? seconds * 1000 + 60_000 : 60_000;

export interface FuzzTarget<T> {
  /** Names the corpus directory a long run saves failing inputs in. */
  corpus: string;
  /** The bytes a failing input is saved as (replayed from the corpus by the target's own test). */
  save?: (input: T) => Buffer;
  /** The saved file's extension: `bin` unless the target's corpus is text. */
  ext?: string;
}

/**
 * Checks `property` for the CI number of runs (or as the environment asks) and fails with the seed,
 * the path and the counterexample.
 */
export async function fuzz<T>(target: FuzzTarget<T>, arbitrary: fc.Arbitrary<T>, check: (input: T) => Promise<void> | void, ciRuns: number): Promise<void> {
  const property = fc.asyncProperty(arbitrary, async (input) => {
    await check(input);
  });
  const params: fc.Parameters<[T]> = LONG_RUN
    ? { seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false }
    : { seed, numRuns: runs ?? ciRuns, ...(env.TAPEPROXY_FUZZ_PATH && { path: env.TAPEPROXY_FUZZ_PATH }) };
  const started = Date.now();
  const details = await fc.check(property, params);
  console.log(`fuzz ${target.corpus}: seed ${seed}, ${details.numRuns} runs in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (!details.failed) return;
  const example = details.counterexample?.[0] as T;
  // Long runs of one character (padding, overlong lines) are shown as `x×5000`.
  const shown = (target.save ? JSON.stringify(target.save(example).toString('latin1')) : fc.stringify(example)).replace(
    /(.)\1{15,}/g,
    (run, c: string) => `${c}×${run.length}`,
  );
  let saved = '';
  if (LONG_RUN && target.save) {
    const dir = join(CORPUS_ROOT, target.corpus);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `found-${seed >>> 0}-${Date.now()}.${target.ext ?? 'bin'}`);
    writeFileSync(file, target.save(example));
    saved = `\nthe input is saved as ${file}`;
  }
  const { testPath, currentTestName } = expect.getState();
  const testName = currentTestName?.split(' > ').at(-1);
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  throw new Error(
    `${target.corpus}: property failed after ${details.numRuns} runs (seed ${details.seed}, path ${details.counterexamplePath}, shrunk ${details.numShrinks} times)\n` +
      `${error}\ninput: ${shown.length > 2000 ? `${shown.slice(0, 2000)}... (${shown.length} characters)` : shown}\n` +
      `replay: TAPEPROXY_FUZZ_SEED=${details.seed} TAPEPROXY_FUZZ_PATH=${details.counterexamplePath} npx vitest run ${relative(process.cwd(), testPath ?? 'tests/fuzz')} -t ${JSON.stringify(testName ?? '')}${saved}`,
  );
}

/** The committed inputs of a target (tests/fuzz/corpus/NAME/*), in name order. */
export function corpus(name: string): { name: string; bytes: Buffer }[] {
  const dir = join(CORPUS_ROOT, name);
  return readdirSync(dir)
    .sort()
    .map((file) => ({ name: file, bytes: readFileSync(join(dir, file)) }));
}

/** Cuts `bytes` at `points` (any numbers: taken modulo the length, sorted, repeats ignored). */
export function split(bytes: Buffer, points: number[]): Buffer[] {
  const cuts = [...new Set(points.map((p) => (bytes.length ? p % (bytes.length + 1) : 0)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) chunks.push(bytes.subarray(from, cut));
    from = Math.max(from, cut);
  }
  return chunks;
}

/** Ways a stream is cut into chunks: whole, a byte at a time, and arbitrary points. */
export const cutPoints = fc.oneof(
  fc.constant<number[]>([]),
  fc.array(fc.nat(), { maxLength: 40 }),
  fc.constant<number[]>(Array.from({ length: 4096 }, (_, i) => i)), // one byte at a time, up to 4 KiB
);

/** Integers where parsers break: bounds of 8, 16, 32 and 53 bits, signs, and small ones. */
export const edgeInt = fc.oneof(
  fc.integer({ min: -3, max: 40 }),
  fc.constantFrom(-1, 0x7fff, 0x8000, 0xffff, 0xffffff, 0x1000000, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, -(2 ** 53)),
  fc.integer(),
);

/** A 32-bit signed integer, often at an edge. */
export const int32 = fc.oneof(
  edgeInt.filter((n) => n >= -(2 ** 31) && n < 2 ** 31),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
);

/** An MTIOCTOP: st's operations (and numbers that are none) with any count. */
export const mtOperation = fc.record({
  op: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...Object.values(MtOp)) }, fc.integer({ min: -(2 ** 15), max: 2 ** 15 - 1 })),
  count: int32,
});

/** An async stream of chunks, as a socket or stdin delivers them; counts the bytes taken from it. */
export function chunkStream(chunks: Iterable<Buffer>): AsyncIterable<Buffer> & { pulled: number } {
  const stream = {
    pulled: 0,
    async *[Symbol.asyncIterator]() {
      for (const chunk of chunks) {
        stream.pulled += chunk.length;
        yield chunk;
      }
    },
  };
  return stream;
}

/**
 * The drive is not wedged: a new writer rewinds, writes a record and closes (a filemark), and a
 * reader finds the record and the filemark, whatever state the fuzzed session left.
 */
export async function expectDriveWorks(drive: PseudoDrive): Promise<void> {
  const record = Buffer.from('the drive still works');
  const writer = await drive.open({ access: 'read-write' });
  await writer.ioctl(MtOp.MTSETBLK, 0);
  await writer.ioctl(MtOp.MTREW, 1);
  expect(await writer.write(record)).toBe(record.length);
  await writer.close();
  const reader = await drive.open({ access: 'read' });
  await reader.ioctl(MtOp.MTREW, 1);
  expect(await reader.read(1024)).toEqual(record);
  expect((await reader.read(1024)).length).toBe(0);
  await reader.close();
}

/** A pino logger that keeps what it logs, to find failures that were not a TapeError. */
export function recordingLog(): { log: Logger; errors: () => string[] } {
  const entries: { level: number; msg: string; err?: unknown }[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void entries.push(JSON.parse(line) as (typeof entries)[number]) });
  return { log, errors: () => entries.filter((e) => e.level >= 50).map((e) => `${e.msg}: ${JSON.stringify(e.err)}`) };
}

/** `promise`, or a failure naming `what` after `ms` (a hang becomes a counterexample, not a timeout). */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
