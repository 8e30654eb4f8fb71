/**
 * Fuzzing the SIMH image reader (daemon/sinks/simh-reader.ts) and what reads images through it:
 * `tapeproxy image verify` and a drive whose copy is an existing image. Images are made from
 * records, tape marks and erase gaps, then cut, bit-flipped and given edge-case length words.
 *
 * Invariants: a well-formed image reads back as the objects it was made of, forward and backward;
 * any image reads as a plain reading of the format (simh-tap.ts) says, up to its end or its first
 * problem, which is an ImageCorrupt (EIO) at that problem's offset, never another error; no read
 * asks for more than a megabyte or the image's size, whatever a length word claims; verify names
 * the same first problem and counts the same objects before it; a drive refuses an image whose last
 * object is damaged, or reads the same records and
 * then fails with EIO.
 */
import fc from 'fast-check';
import type { FileHandle } from 'node:fs/promises';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyImage } from '../../client/image/verify.js';
import { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { TapeError } from '../../daemon/drive/tape-error.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { ImageCorrupt, SimhReader } from '../../daemon/sinks/simh-reader.js';
import { useTempDir } from '../support/temp-dir.js';
import { corpus, fuzz, FUZZ_TIMEOUT } from './fuzz.js';

const MiB = 1 << 20;
const word = (w: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(w >>> 0, 0);
  return b;
};

/** A record (its data) or a tape mark (null); gaps and an end-of-medium marker only in the bytes. */
type TapeObject = Buffer | null;
const tapeObject: fc.Arbitrary<TapeObject> = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.constant(null) },
);
const wellFormed = fc.record({
  objects: fc.array(fc.tuple(tapeObject, fc.constantFrom('', 'gap', 'half gap')), { maxLength: 15 }),
  end: fc.constantFrom('', 'end of medium', 'end of medium and junk'),
});
type WellFormed = typeof wellFormed extends fc.Arbitrary<infer T> ? T : never;

function encode(image: WellFormed): Buffer {
  const parts: Buffer[] = [];
  for (const [object, before] of image.objects) {
    if (before === 'gap') parts.push(word(0xfffffffe));
    // A half gap: the reader steps 2 bytes and finds an erase gap (its upper half and 2 more bytes).
    if (before === 'half gap') parts.push(word(0xfffeffff), Buffer.from([0xff, 0xff]));
    if (object === null) parts.push(word(0));
    else parts.push(word(object.length), object, Buffer.alloc(object.length & 1), word(object.length));
  }
  if (image.end) parts.push(word(0xffffffff));
  if (image.end === 'end of medium and junk') parts.push(Buffer.from('not read: after the end of medium'));
  return Buffer.concat(parts);
}

/** Length words that break parsers: the largest length, bad-data and reserved classes, markers. */
const edgeWord = fc.oneof(
  fc.constantFrom(0x0fffffff, 0x0ffffffe, 0x80000000, 0x80000005, 0x7fffffff, 0x10000001, 0xf0000000, 0xfffffffe, 0xfffeffff, 0xffffffff, 0, 1, 2, 3),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('word' as const), at: fc.nat(), value: edgeWord }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 12 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(bytes: Buffer, mutations: Mutation[]): Buffer {
  let b = Buffer.from(bytes);
  for (const m of mutations) {
    if (m.kind === 'append') b = Buffer.concat([b, m.bytes]);
    else if (b.length === 0) continue;
    else if (m.kind === 'cut') b = b.subarray(0, m.at % b.length);
    else if (m.kind === 'byte') b[m.at % b.length] = m.value;
    else if (b.length >= 4) b.writeUInt32LE(m.value, m.at % (b.length - 3));
  }
  return b;
}
const damaged = fc.record({ image: wellFormed, mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }) });
const damagedBytes = ({ image, mutations }: { image: WellFormed; mutations: Mutation[] }) => mutate(encode(image), mutations);

/** The format read plainly (simh-tap.ts): objects to the end or an end-of-medium marker, or the first problem. */
function specRead(b: Buffer): { objects: TapeObject[]; starts: number[]; problemAt?: number } {
  const objects: TapeObject[] = [];
  const starts: number[] = [];
  let at = 0;
  for (let start = 0; ; start = at) {
    if (at + 4 > b.length) return at === b.length ? { objects, starts } : { objects, starts, problemAt: at };
    const w = b.readUInt32LE(at);
    if (w === 0xffffffff) return { objects, starts };
    if (w === 0xfffffffe || w === 0xfffeffff) {
      at += w === 0xfffffffe ? 4 : 2;
      continue;
    }
    if (w === 0) {
      objects.push(null);
      starts.push(start);
      at += 4;
      continue;
    }
    const cls = w >>> 28;
    const length = w & 0x0fffffff;
    const next = at + 8 + length + (length & 1);
    const good = cls === 0 && length > 0 && next <= b.length && (b.readUInt32LE(next - 4) & 0x0fffffff) === length;
    if (!good) return { objects, starts, problemAt: at };
    objects.push(b.subarray(at + 4, at + 4 + length));
    starts.push(start);
    at = next;
  }
}

/** A FileHandle over bytes in memory that notes how much each read asks for. */
function memoryFile(bytes: Buffer) {
  const asked: number[] = [];
  const read = async (buffer: Buffer, offset: number, length: number, position: number) => {
    asked.push(length);
    const n = Math.max(0, Math.min(length, bytes.length - position));
    bytes.copy(buffer, offset, position, position + n);
    return { bytesRead: n, buffer };
  };
  // SimhReader uses only read(); the rest of FileHandle is not needed.
  return { fh: { read } as unknown as FileHandle, asked };
}

/** Reads forward from byte 0 with the reader: the objects, then the end or the error. */
async function readAll(bytes: Buffer) {
  const { fh, asked } = memoryFile(bytes);
  const reader = new SimhReader(fh, 'fuzz.tap');
  const objects: TapeObject[] = [];
  /** Where each object ends (the next one's gaps begin). */
  const ends: number[] = [];
  let error: unknown;
  for (let offset = 0; ; ) {
    try {
      const r = await reader.objectAt(offset, bytes.length, true);
      if (r.object.kind === 'blank') break;
      objects.push(r.object.kind === 'record' ? Buffer.from(r.object.data) : null);
      ends.push(r.next);
      offset = r.next;
    } catch (err) {
      error = err;
      break;
    }
  }
  return { reader, objects, ends, error, asked };
}

async function checkReader(bytes: Buffer): Promise<void> {
  const spec = specRead(bytes);
  const { reader, objects, error, asked } = await readAll(bytes);
  expect(objects).toEqual(spec.objects);
  if (spec.problemAt === undefined) {
    expect(error).toBeUndefined();
  } else {
    expect(error).toBeInstanceOf(ImageCorrupt);
    const corrupt = error as ImageCorrupt;
    expect(corrupt.offset).toBe(spec.problemAt);
    expect(corrupt.errno).toBe(5);
    expect(corrupt.message).toMatch(/^EIO: image fuzz\.tap: [^\n]+ at byte \d+$/);
  }
  for (const n of asked) expect(n).toBeLessThanOrEqual(Math.max(MiB, bytes.length));
  // Backward from any offset: a boundary before it inside the image, or ImageCorrupt.
  for (const offset of [bytes.length, ...spec.starts, Math.floor(bytes.length / 2)]) {
    try {
      const before = await reader.objectBefore(offset);
      expect(before.start).toBeGreaterThanOrEqual(0);
      expect(before.start).toBeLessThan(Math.max(offset, 1));
    } catch (err) {
      expect(err).toBeInstanceOf(ImageCorrupt);
    }
  }
}

const dir = useTempDir('all');
let files = 0;

/** verify, and a drive with the image as its loaded volume, against the plain reading. */
async function checkTools(bytes: Buffer): Promise<void> {
  const spec = specRead(bytes);
  const path = join(dir.path, `image-${files++}.tap`);
  await writeFile(path, bytes);
  const { counts, damage } = await verifyImage(path);
  const records = spec.objects.filter((o): o is Buffer => o !== null);
  expect(counts.records).toBe(records.length);
  expect(counts.tapeMarks).toBe(spec.objects.length - records.length);
  expect(damage?.problem.offset).toBe(spec.problemAt);

  const sink = new FileSink({ path, capacity: new Capacity(undefined, undefined), readonly: true, fsync: false });
  const mirror = new Mirror([sink], { window: MiB });
  const drive = new PseudoDrive('pfuzz0', mirror, { maxRecord: MiB, autoload: false });
  const refused = await drive.start().then(
    () => undefined,
    (err: unknown) => err,
  );
  if (refused !== undefined) {
    // Loading looks at the image's last object only: an image cut or damaged there is refused
    // (with the repair to run) rather than read; a well-formed one never is.
    expect(spec.problemAt, `a well-formed image was refused: ${String(refused)}`).toBeDefined();
    expect(refused).toBeInstanceOf(TapeError);
    expect((refused as TapeError).errno).toBe(5);
    expect((refused as TapeError).message).toContain('tapeproxy image repair');
    await mirror.close();
    await rm(path);
    return;
  }
  const fd = await drive.open({ access: 'read' });
  const read: Buffer[] = [];
  let error: unknown;
  for (let i = 0; i < spec.objects.length + 4 && error === undefined; i++) {
    await fd.read(MiB).then(
      (data) => data.length > 0 && read.push(Buffer.from(data)),
      (err: unknown) => (error = err),
    );
  }
  await fd.close();
  await mirror.close();
  await rm(path);
  expect(read).toEqual(records);
  expect(error).toBeInstanceOf(TapeError);
  expect((error as TapeError).errno).toBe(5);
}

describe('SIMH image reader under damaged images', () => {
  it('replays the corpus: the reader, verify and a drive agree with the format', { timeout: FUZZ_TIMEOUT }, async () => {
    for (const { name, bytes } of corpus('simh-image')) {
      await checkReader(bytes).catch((err: Error) => Promise.reject(new Error(`${name}: ${err.message}`)));
      await checkTools(bytes).catch((err: Error) => Promise.reject(new Error(`${name}: ${err.message}`)));
    }
  });

  it('a well-formed image reads back as its objects, forward and backward', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz(
      { corpus: 'simh-image', save: encode },
      wellFormed,
      async (image) => {
        const bytes = encode(image);
        const { reader, objects, ends, error } = await readAll(bytes);
        expect(error).toBeUndefined();
        expect(objects).toEqual(image.objects.map(([o]) => o));
        // objectBefore(the end of each object) finds it: its kind and where it starts, after its gaps.
        for (const [i, end] of ends.entries()) {
          const object = objects[i]!;
          const start = end - (object === null ? 4 : 8 + object.length + (object.length & 1));
          expect(await reader.objectBefore(end)).toEqual({ kind: object === null ? 'filemark' : 'record', start });
          expect(start - (ends[i - 1] ?? 0)).toBe({ '': 0, gap: 4, 'half gap': 6 }[image.objects[i]![1]]);
        }
      },
      1000,
    );
  });

  it('a damaged image reads as the format says up to its first problem, an ImageCorrupt there, reads bounded', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz({ corpus: 'simh-image', save: damagedBytes }, damaged, (d) => checkReader(damagedBytes(d)), 1000);
  });

  it('verify names the same first problem; a drive reads the same records, then EIO', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz({ corpus: 'simh-image', save: damagedBytes }, damaged, (d) => checkTools(damagedBytes(d)), 200);
  });
});
