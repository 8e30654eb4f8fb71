import { open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { TapeObject } from '../../daemon/drive/medium.js';
import { TapeError } from '../../daemon/drive/tape-error.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { SimhReader } from '../../daemon/sinks/simh-reader.js';
import { decodeWord, framedSize } from '../../daemon/sinks/simh-tap.js';
import { useTempDir } from '../support/temp-dir.js';

const MTDUMP = '/usr/bin/mtdump';
const FM = 'FM' as const;
type Item = number | typeof FM; // a record of that many bytes, or a filemark

const tmp = useTempDir();

describe('SIMH format words', () => {
  it('decodes tape marks, markers, good and bad records', () => {
    expect(decodeWord(0)).toEqual({ kind: 'tape-mark' });
    expect(decodeWord(0xffffffff)).toEqual({ kind: 'end-of-medium' });
    expect(decodeWord(0xfffffffe)).toEqual({ kind: 'gap', bytes: 4 });
    expect(decodeWord(0xfffeffff)).toEqual({ kind: 'gap', bytes: 2 });
    expect(decodeWord(10240)).toEqual({ kind: 'record', length: 10240, bad: false });
    expect(decodeWord(0x80000003)).toEqual({ kind: 'record', length: 3, bad: true });
    expect(decodeWord(0x70000003)).toEqual({ kind: 'unsupported', word: 0x70000003 });
    expect(decodeWord(0x80000000)).toEqual({ kind: 'unsupported', word: 0x80000000 });
  });

  it('frames records with two length words and a pad byte for odd lengths', () => {
    expect([1, 2, 3, 10240, 65535].map(framedSize)).toEqual([10, 10, 12, 10248, 65544]);
  });
});

describe('FileSink writes SIMH images', () => {
  it('writes exactly the SIMH bytes for small records and tape marks', async () => {
    const file = path.join(tmp.path, 'small.tap');
    await writeImage(file, [Buffer.from([0xaa]), Buffer.from([0x01, 0x02]), Buffer.from([0x0a, 0x0b, 0x0c]), FM, FM]);

    // prettier-ignore
    const expected = Buffer.from([
      0x01, 0, 0, 0, 0xaa, 0x00, 0x01, 0, 0, 0,             // 1 byte + pad
      0x02, 0, 0, 0, 0x01, 0x02, 0x02, 0, 0, 0,             // 2 bytes, no pad
      0x03, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x00, 0x03, 0, 0, 0, // 3 bytes + pad
      0, 0, 0, 0,                                           // tape mark
      0, 0, 0, 0,                                           // tape mark
    ]);
    expect(await readFile(file)).toEqual(expected);
  });

  it('writes 10240- and 65535-byte records with their data and trailing length words', async () => {
    const file = path.join(tmp.path, 'big.tap');
    const a = pattern(10240, 1);
    const b = pattern(65535, 2);
    await writeImage(file, [a, b, FM]);

    const image = await readFile(file);
    expect(image.length).toBe(10248 + 65544 + 4);
    expect(image.readUInt32LE(0)).toBe(10240);
    expect(image.subarray(4, 4 + 10240)).toEqual(a);
    expect(image.readUInt32LE(4 + 10240)).toBe(10240);
    const at = 10248;
    expect(image.readUInt32LE(at)).toBe(65535);
    expect(image.subarray(at + 4, at + 4 + 65535)).toEqual(b);
    expect(image[at + 4 + 65535]).toBe(0); // pad byte
    expect(image.readUInt32LE(at + 4 + 65536)).toBe(65535);
    expect(image.readUInt32LE(at + 65544)).toBe(0);
  });

  it('lists in mtdump exactly the records and tape marks written', async () => {
    const file = path.join(tmp.path, 'dump.tap');
    const items: Item[] = [1, 2, 3, 10240, 65535, FM, 10240, 10240, 7, FM, 65535, 1, FM, FM];
    await writeImage(file, items.map((i) => (i === FM ? FM : pattern(i, i & 0xff))));

    const { stdout } = await execa(MTDUMP, [file]);
    const dumped = parseMtdump(stdout);

    const expected: DumpedObject[] = [];
    let position = 0;
    for (const item of items) {
      expected.push(item === FM ? { position, kind: 'tape-mark' } : { position, kind: 'record', length: item });
      position += item === FM ? 4 : 8 + item + (item & 1);
    }
    expect(dumped.objects).toEqual(expected);
    expect(dumped.objects.filter((o) => o.kind === 'record')).toHaveLength(10);
    expect(dumped.objects.filter((o) => o.kind === 'tape-mark')).toHaveLength(4);
    expect(dumped.endOfLogicalTape).toBe(true); // the closing double tape mark
    expect((await readFile(file)).length).toBe(position);
  });

  it('ends in mtdump at the physical end when no double tape mark closes the image', async () => {
    const file = path.join(tmp.path, 'open.tap');
    await writeImage(file, [pattern(3, 3), FM, pattern(65535, 4)]);

    const dumped = parseMtdump((await execa(MTDUMP, [file])).stdout);
    expect(dumped.objects).toEqual([
      { position: 0, kind: 'record', length: 3 },
      { position: 12, kind: 'tape-mark' },
      { position: 16, kind: 'record', length: 65535 },
    ]);
    expect(dumped.endOfLogicalTape).toBe(false);
    expect(dumped.endOfPhysicalTape).toBe(true);
  });
});

describe('SimhReader', () => {
  it('reads records, tape marks and end of data, forward and backward', async () => {
    const file = await rawImage('good.tap', [rec(Buffer.from('abc')), TM, rec(Buffer.from('defg'))]);
    await withReader(file, async (reader, end) => {
      expect(await reader.objectAt(0, end, true)).toEqual({
        object: { kind: 'record', data: Buffer.from('abc') },
        next: 12,
        length: 3,
      });
      expect(await reader.objectAt(12, end, true)).toEqual({ object: { kind: 'filemark' }, next: 16, length: 0 });
      expect(await reader.objectAt(16, end, false)).toEqual({
        object: { kind: 'record', data: Buffer.alloc(0) },
        next: 28,
        length: 4,
      });
      expect(await reader.objectAt(28, end, true)).toEqual({ object: { kind: 'blank' }, next: 28, length: 0 });

      expect(await reader.objectBefore(28)).toEqual({ kind: 'record', start: 16 });
      expect(await reader.objectBefore(16)).toEqual({ kind: 'filemark', start: 12 });
      expect(await reader.objectBefore(12)).toEqual({ kind: 'record', start: 0 });
      expect(await reader.objectBefore(0)).toEqual({ kind: 'bot', start: 0 });
    });
  });

  it('skips erase gaps and stops at the end-of-medium marker', async () => {
    const file = await rawImage('gaps.tap', [
      word(0xfffffffe),
      rec(Buffer.from('xyz')),
      word(0xfffffffe),
      word(0xfffffffe),
      TM,
      rec(Buffer.from('pq')),
      word(0xffffffff),
      rec(Buffer.from('never read')), // after end of medium: not part of the tape
    ]);
    await withReader(file, async (reader, end) => {
      expect(await readAll(reader, 0, end)).toEqual([
        { object: { kind: 'record', data: Buffer.from('xyz') }, next: 16 },
        { object: { kind: 'filemark' }, next: 28 },
        { object: { kind: 'record', data: Buffer.from('pq') }, next: 38 },
        { object: { kind: 'blank' }, next: 38 },
      ]);
      // End of medium is blank however often it is asked, and does not move.
      expect(await reader.objectAt(38, end, true)).toEqual({ object: { kind: 'blank' }, next: 38, length: 0 });
    });
  });

  it('rejects a truncated record with EIO naming its offset', async () => {
    const file = await rawImage('cut.tap', [rec(Buffer.from('1234')), rec(Buffer.from('567890')).subarray(0, 9)]);
    await withReader(file, async (reader, end) => {
      expect(end).toBe(21);
      expect((await reader.objectAt(0, end, true)).next).toBe(12);
      await expectCorrupt(reader.objectAt(12, end, true), 'record of 6 bytes cut short (image truncated) at byte 12');
    });
  });

  it('rejects mismatched leading and trailing lengths with EIO naming the offset', async () => {
    const bad = Buffer.concat([word(6), Buffer.from('567890'), word(7)]);
    const file = await rawImage('mismatch.tap', [rec(Buffer.from('1234')), bad]);
    await withReader(file, async (reader, end) => {
      await expectCorrupt(reader.objectAt(12, end, true), 'leading length 6 and trailing length 7 differ at byte 12');
    });
  });

  it('rejects a stray partial word at the end with EIO naming the offset', async () => {
    const file = await rawImage('stray.tap', [rec(Buffer.from('1234')), TM, Buffer.from([0x05, 0x00])]);
    await withReader(file, async (reader, end) => {
      expect((await reader.objectAt(12, end, true)).object).toEqual({ kind: 'filemark' });
      await expectCorrupt(reader.objectAt(16, end, true), '2 stray bytes after the last object at byte 16');
    });
  });

  it('rejects a class-8 (bad data) record with EIO naming the offset', async () => {
    const bad = Buffer.concat([word(0x80000004), Buffer.from('oops'), word(0x80000004)]);
    const file = await rawImage('class8.tap', [rec(Buffer.from('ab')), TM, bad]);
    await withReader(file, async (reader, end) => {
      await expectCorrupt(reader.objectAt(14, end, true), 'record marked bad (class 8) at byte 14');
    });
  });

  it('rejects an unsupported word, and boundaries that no object ends at', async () => {
    const file = await rawImage('odd.tap', [rec(Buffer.from('ab')), word(0x70000002)]);
    await withReader(file, async (reader, end) => {
      await expectCorrupt(reader.objectAt(10, end, true), 'unsupported length word 0x70000002 at byte 10');
      await expectCorrupt(reader.objectBefore(2), 'object boundary inside the first length word at byte 2');
      await expectCorrupt(reader.objectBefore(14), 'no record or tape mark ends here at byte 10');
      // Bytes 4-8 ("ab" and half the trailer) read as a length word of 0x26261: longer than the image so far.
      await expectCorrupt(reader.objectBefore(8), 'record length runs past the start of the image at byte 4');
    });
  });
});

// --- helpers ---

interface DumpedObject {
  position: number;
  kind: 'record' | 'tape-mark';
  length?: number;
}

/**
 * Parses mtdump's listing: "Obj N, position P, record R, length = L (0xL)" for a record,
 * "Obj N, position P, end of tape file F" for a tape mark, "Obj N, position P, end of logical tape"
 * for the second of two tape marks (mtdump stops there) and "End of physical tape" at end of file.
 */
function parseMtdump(stdout: string): { objects: DumpedObject[]; endOfLogicalTape: boolean; endOfPhysicalTape: boolean } {
  const objects: DumpedObject[] = [];
  let endOfLogicalTape = false;
  let endOfPhysicalTape = false;
  for (const line of stdout.split('\n')) {
    const obj = /^Obj (\d+), position (\d+), (.*)$/.exec(line);
    if (obj) {
      expect(Number(obj[1])).toBe(objects.length + 1);
      const position = Number(obj[2]);
      const what = obj[3]!;
      const record = /^record \d+, length = (\d+) \(0x[0-9A-F]+\)$/.exec(what);
      if (record) objects.push({ position, kind: 'record', length: Number(record[1]) });
      else if (/^end of tape file \d+$/.test(what)) objects.push({ position, kind: 'tape-mark' });
      else if (what === 'end of logical tape') {
        objects.push({ position, kind: 'tape-mark' });
        endOfLogicalTape = true;
      } else throw new Error(`unexpected mtdump line: ${line}`);
    } else if (line === 'End of physical tape') {
      endOfPhysicalTape = true;
    } else if (line !== '' && !/^Processing (input|tape) file /.test(line)) {
      throw new Error(`unexpected mtdump line: ${line}`);
    }
  }
  return { objects, endOfLogicalTape, endOfPhysicalTape };
}

async function writeImage(file: string, items: (Buffer | typeof FM)[]): Promise<void> {
  const sink = new FileSink({ path: file, capacity: new Capacity(), readonly: false, fsync: true });
  await sink.load(1);
  for (const item of items) {
    if (item === FM) sink.writeFilemarks(1);
    else sink.write(item);
  }
  await sink.sync();
  await sink.close();
}

/** `length` bytes counting up from `seed`, so misplaced bytes show. */
function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (seed + i * 7) & 0xff;
  return b;
}

function word(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value, 0);
  return b;
}

const TM = word(0);

/** A well-formed SIMH record, built here independently of the code under test. */
function rec(data: Buffer): Buffer {
  return Buffer.concat([word(data.length), data, Buffer.alloc(data.length & 1), word(data.length)]);
}

async function rawImage(name: string, parts: Buffer[]): Promise<string> {
  const file = path.join(tmp.path, name);
  await writeFile(file, Buffer.concat(parts));
  return file;
}

async function withReader(file: string, body: (reader: SimhReader, end: number) => Promise<void>): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await body(new SimhReader(fh, file), (await fh.stat()).size);
  } finally {
    await fh.close();
  }
}

async function readAll(reader: SimhReader, from: number, end: number): Promise<{ object: TapeObject; next: number }[]> {
  const out: { object: TapeObject; next: number }[] = [];
  let at = from;
  for (;;) {
    const { object, next } = await reader.objectAt(at, end, true);
    out.push({ object, next });
    if (object.kind === 'blank') return out;
    at = next;
  }
}

async function expectCorrupt(promise: Promise<unknown>, what: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TapeError);
  expect((err as TapeError).errno).toBe(5);
  expect((err as TapeError).message).toContain(`EIO: image ${tmp.path}`);
  expect((err as TapeError).message).toContain(what);
}
