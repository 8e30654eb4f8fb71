/**
 * The shim framing (proto/shim-frames.md) on both sides of the socket: frames the C shim's codec
 * encodes (through cuse-shim/build/frame-tool) decode identically in TypeScript, frames TypeScript
 * encodes decode identically in C, and the C unit tests (`make -C cuse-shim check`) pass.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  encodeFrame,
  type Frame,
  FrameError,
  FrameType,
  HEADER_BYTES,
  REPLY,
  ReplyFlag,
  RequestFlag,
} from '../../daemon/frontends/shim/frames.js';
import { FrameReader } from '../../daemon/frontends/shim/frame-reader.js';

const SHIM_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cuse-shim');
const FRAME_TOOL = join(SHIM_DIR, 'build', 'frame-tool');

/** The tool's text form of a frame: `type flags id arg hexpayload`, `-` for no payload. */
function toLine(f: Frame): string {
  return `${f.type} ${f.flags} ${f.id} ${f.arg} ${f.payload.length ? f.payload.toString('hex') : '-'}`;
}

async function cEncode(frames: Frame[]): Promise<Buffer> {
  const { stdout } = await execa(FRAME_TOOL, ['encode'], {
    input: frames.map(toLine).join('\n') + '\n',
    encoding: 'buffer',
    maxBuffer: 64 * 2 ** 20,
  });
  return Buffer.from(stdout);
}

async function cDecode(bytes: Buffer): Promise<string[]> {
  const { stdout } = await execa(FRAME_TOOL, ['decode'], { input: bytes, maxBuffer: 64 * 2 ** 20 });
  return stdout.split('\n').filter((l) => l.length > 0);
}

const payload = (n: number) => (n === 0 ? Buffer.alloc(0) : randomBytes(n));

/** Every type as request and reply, every flag, the extremes of id and arg, payloads of 0, 1, 48 bytes and 1 MiB. */
function sampleFrames(): Frame[] {
  const frames: Frame[] = [];
  let id = 0;
  for (const type of Object.values(FrameType)) {
    frames.push({ type, flags: 0, id: id++, arg: 0, payload: payload(0) });
    frames.push({ type: type | REPLY, flags: 0, id: id++, arg: -28, payload: payload(1) });
  }
  // A WRITE request with IN_RING needs a reader with a ring (record-ring.test.ts).
  const requestFlags = [RequestFlag.WRITE_BEHIND, RequestFlag.CHECKED, RequestFlag.WRITE_BEHIND | RequestFlag.CHECKED, 0xffff & ~RequestFlag.IN_RING];
  for (const flags of requestFlags) frames.push({ type: FrameType.WRITE, flags, id: id++, arg: 0, payload: payload(10) });
  const replyFlags = [ReplyFlag.EARLY_WARNING, ReplyFlag.END_OF_DATA | ReplyFlag.FILEMARK, ReplyFlag.EARLY_WARNING | ReplyFlag.END_OF_DATA | ReplyFlag.FILEMARK, 0xffff];
  for (const flags of replyFlags) frames.push({ type: FrameType.WRITE | REPLY, flags, id: id++, arg: 10, payload: payload(0) });
  for (const arg of [1, -1, -5, -12, -28, 2 ** 31 - 1, -(2 ** 31), 1 << 20]) {
    frames.push({ type: FrameType.READ | REPLY, flags: ReplyFlag.FILEMARK, id: id++, arg, payload: payload(0) });
  }
  frames.push({ type: FrameType.OPEN, flags: 0, id: 2 ** 32 - 1, arg: 0o4002, payload: payload(0) });
  frames.push({ type: FrameType.MTIOCTOP, flags: 0, id: 0x12345678, arg: 0, payload: payload(8) });
  frames.push({ type: FrameType.MTIOCGET | REPLY, flags: ReplyFlag.END_OF_DATA, id: 7, arg: 0, payload: payload(48) });
  frames.push({ type: FrameType.WRITE, flags: RequestFlag.WRITE_BEHIND, id: 8, arg: 0, payload: payload(2 ** 20) });
  frames.push({ type: FrameType.READ | REPLY, flags: 0, id: 9, arg: 2 ** 20, payload: payload(2 ** 20) });
  frames.push({ type: 0xffff, flags: 0, id: 10, arg: 0, payload: payload(1) });
  return frames;
}

function expectSameFrames(got: Frame[], want: Frame[]) {
  expect(got.length).toBe(want.length);
  got.forEach((f, i) => {
    const w = want[i]!;
    expect({ type: f.type, flags: f.flags, id: f.id, arg: f.arg, length: f.payload.length }).toEqual({
      type: w.type,
      flags: w.flags,
      id: w.id,
      arg: w.arg,
      length: w.payload.length,
    });
    expect(f.payload.equals(w.payload)).toBe(true);
  });
}

beforeAll(async () => {
  // A clean clone after `npm run build` has no C build yet.
  if (!existsSync(FRAME_TOOL)) await execa('make', ['-C', SHIM_DIR]);
}, 300_000);

describe('shim frames across C and TypeScript', () => {
  it('frames encoded in C decode identically in TypeScript, byte for byte what TypeScript encodes', async () => {
    const frames = sampleFrames();
    const bytes = await cEncode(frames);
    expect(bytes.equals(Buffer.concat(frames.map(encodeFrame)))).toBe(true);
    expectSameFrames(new FrameReader().push(bytes), frames);
  });

  it('frames encoded in TypeScript decode identically in C', async () => {
    const frames = sampleFrames();
    const lines = await cDecode(Buffer.concat(frames.map(encodeFrame)));
    expect(lines).toEqual(frames.map(toLine));
  });

  it('a C stream split into many small chunks decodes whole on the TypeScript side', async () => {
    const frames = sampleFrames().filter((f) => f.payload.length < 2 ** 20);
    const bytes = await cEncode(frames);
    const decoder = new FrameReader();
    const got: Frame[] = [];
    for (let at = 0, step = 1; at < bytes.length; at += step, step = (step % 7) + 1) {
      // Copies: a chunk must not share memory with the next one.
      got.push(...decoder.push(Buffer.from(bytes.subarray(at, at + step))));
    }
    expect(decoder.buffered).toBe(0);
    expectSameFrames(got, frames);
  });

  it('found by the fuzzer: a header cut across chunks is joined once, and whole frames before a bad header are kept', () => {
    const payload = Buffer.alloc(100_000, 7);
    const bytes = encodeFrame({ type: FrameType.WRITE, flags: 0, id: 1, arg: 0, payload });
    const decoder = new FrameReader();
    const concat = vi.spyOn(Buffer, 'concat');
    const got = [decoder.push(bytes.subarray(0, 5))];
    for (let at = 5; at < bytes.length; at += 100) got.push(decoder.push(bytes.subarray(at, at + 100)));
    // Joining everything pending at every push copied about 50 MB here.
    expect(concat.mock.results.reduce((n, r) => n + (r.value as Buffer).length, 0)).toBeLessThan(2 * bytes.length);
    concat.mockRestore();
    expect(got.flat().map((f) => f.payload.equals(payload))).toEqual([true]);

    const bad = Buffer.alloc(HEADER_BYTES, 0xff);
    const err = (() => {
      try {
        new FrameReader().push(Buffer.concat([bytes, bad]));
      } catch (e) {
        return e as FrameError;
      }
    })();
    expect(err).toBeInstanceOf(FrameError);
    expect(err!.frames.map((f) => f.id)).toEqual([1]); // as if the bad header had come in a later chunk
  });

  it('the C side rejects malformed input', async () => {
    const run = (mode: string, input: string | Buffer) => execa(FRAME_TOOL, [mode], { input, reject: false, encoding: 'buffer' });
    for (const line of ['1 0 0 0', '1 0 0 0 abc', '1 0 0 0 zz', '65536 0 0 0 -', '1 0 4294967296 0 -', '1 0 0 2147483648 -', 'x 0 0 0 -']) {
      const r = await run('encode', line + '\n');
      expect(r.exitCode, line).toBe(1);
      expect(Buffer.from(r.stderr).toString()).toMatch(/^frame-tool: line 1: /);
    }
    const whole = encodeFrame({ type: FrameType.READ | REPLY, flags: 0, id: 1, arg: 3, payload: Buffer.from('abc') });
    for (const cut of [5, HEADER_BYTES, whole.length - 1]) {
      const r = await run('decode', whole.subarray(0, cut));
      expect(r.exitCode, `cut at ${cut}`).toBe(1);
    }
    const tooLong = Buffer.alloc(HEADER_BYTES);
    tooLong.writeUInt32LE(64 * 2 ** 20 + 65, 0);
    expect((await run('decode', tooLong)).exitCode).toBe(1);
  });

  it('the C unit tests pass (make -C cuse-shim check)', async () => {
    const r = await execa('make', ['-C', SHIM_DIR, 'check'], { reject: false, all: true });
    expect(r.exitCode, r.all).toBe(0);
  }, 300_000);
});
