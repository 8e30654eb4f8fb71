/**
 * Fuzzing the daemon's side of the shim socket (daemon/frontends/shim/): the FrameReader on
 * arbitrary bytes cut anywhere, and a connection served over a real Unix socket.
 *
 * Invariants: the frames of a stream are the same however it is cut, and the same as a plain
 * reading of proto/shim-frames.md gives; a header over the payload limit is a FrameError as soon as
 * its 16 bytes are in (its payload is never waited for); the decoder keeps only the bytes of the
 * frame it has not finished, and copies each byte at most twice; a connection answers each whole
 * frame once, in order, with its id and an errno-style result, ends at a bad header, and leaves
 * the drive closed and working.
 */
import fc from 'fast-check';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Errno } from '../../daemon/drive/tape-error.js';
import { encodeFrame, encodeHeader, type Frame, FrameError, FrameType, HEADER_BYTES, MAX_PAYLOAD, REPLY, RequestFlag } from '../../daemon/frontends/shim/frames.js';
import { FrameReader } from '../../daemon/frontends/shim/frame-reader.js';
import { serveShimConnection } from '../../daemon/frontends/shim/shim-connection.js';
import { memoryDrive } from '../support/memory-drive.js';
import { useTempDir } from '../support/temp-dir.js';
import { corpus, cutPoints, expectDriveWorks, fuzz, FUZZ_TIMEOUT, int32, mtOperation, recordingLog, split, within } from './fuzz.js';

const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** The header fields of any frame. */
const header = fc.record({ type: u16, flags: u16, id: u32, arg: int32 });
const frame: fc.Arbitrary<Frame> = fc
  .record({ type: u16, flags: u16, id: u32, arg: int32, payload: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)) })
  .map((f) => (inRing(f) ? { ...f, flags: f.flags & ~RequestFlag.IN_RING } : f)); // frames any reader takes

/** Bytes that are mostly frames: whole ones, headers claiming lengths at and over the limit, noise. */
const segment = fc.oneof(
  { weight: 4, arbitrary: frame.map(encodeFrame) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(header, fc.constantFrom(MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 1, 2 ** 31, 2 ** 32 - 1))
      .map(([h, length]) => encodeHeader(h, length)),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) },
);
const stream = fc.record({ segments: fc.array(segment, { maxLength: 12 }), points: cutPoints });
type Stream = typeof stream extends fc.Arbitrary<infer T> ? T : never;
const bytesOf = (s: Stream) => Buffer.concat(s.segments);

/** A WRITE whose record is in the record ring: malformed for these readers, which have no ring. */
function inRing(h: { type: number; flags: number }): boolean {
  return h.type === FrameType.WRITE && (h.flags & RequestFlag.IN_RING) !== 0;
}

/** proto/shim-frames.md read plainly: frames until a bad header, or until the bytes run out. */
function specDecode(bytes: Buffer): { frames: Frame[]; badHeaderAt?: number; end: number } {
  const frames: Frame[] = [];
  let at = 0;
  while (bytes.length - at >= HEADER_BYTES) {
    const length = bytes.readUInt32LE(at);
    if (length > MAX_PAYLOAD) return { frames, badHeaderAt: at, end: at };
    const h = { type: bytes.readUInt16LE(at + 4), flags: bytes.readUInt16LE(at + 6), id: bytes.readUInt32LE(at + 8), arg: bytes.readInt32LE(at + 12) };
    if (inRing(h)) return { frames, badHeaderAt: at, end: at };
    if (bytes.length - at - HEADER_BYTES < length) break;
    frames.push({ ...h, payload: bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length) });
    at += HEADER_BYTES + length;
  }
  return { frames, end: at };
}

/** Frames without the pooled buffer that holds their payload, to compare with plain ones. */
const bare = (frames: Frame[]) => frames.map(({ record: _, ...f }) => f);

/** Pushes the chunks; checks what the decoder holds after each, the error's moment, its copying. */
function decodeChunks(bytes: Buffer, chunks: Buffer[]): void {
  const spec = specDecode(bytes);
  const copy = vi.spyOn(Buffer.prototype, 'copy');
  try {
    const decoder = new FrameReader();
    const frames: Frame[] = [];
    let pushed = 0;
    let error: unknown;
    let pushedBefore = 0;
    for (const chunk of chunks) {
      pushedBefore = pushed;
      pushed += chunk.length;
      try {
        frames.push(...decoder.push(chunk));
      } catch (err) {
        error = err;
        if (err instanceof FrameError) frames.push(...err.frames);
        break;
      }
      // It holds the unfinished frame's bytes only (the ones after the last whole frame).
      const whole = specDecode(bytes.subarray(0, pushed)).end;
      expect(decoder.buffered).toBe(pushed - whole);
    }
    expect(bare(frames)).toEqual(spec.frames);
    if (spec.badHeaderAt === undefined) {
      expect(error).toBeUndefined();
    } else {
      expect(error).toBeInstanceOf(FrameError);
      expect((error as Error).message).toMatch(/^frame payload of \d+ bytes exceeds 67108928$|^a record in the record ring, but this shim was given none$/);
      // Thrown by the push that completed the bad header, not later.
      expect(pushed).toBeGreaterThanOrEqual(spec.badHeaderAt + HEADER_BYTES);
      expect(pushedBefore).toBeLessThan(spec.badHeaderAt + HEADER_BYTES);
    }
    // Each byte is copied once, into its header or its record: never again as more arrive.
    const copied = copy.mock.calls.reduce((n, [, , start, end]) => n + (end as number) - (start as number), 0); // FrameReader passes all four
    if (error === undefined) expect(copied).toBe(pushed);
    else expect(copied).toBeLessThanOrEqual(pushed);
  } finally {
    copy.mockRestore();
  }
}

describe('FrameReader under hostile input', () => {
  it('replays the corpus whole, a byte at a time and in odd pieces', () => {
    for (const { bytes } of corpus('shim-frames')) {
      for (const points of [[], [...bytes.keys()], [3, 17, 100, 1000]]) decodeChunks(bytes, split(bytes, points));
    }
  });

  it('frames encoded and cut anywhere decode to the same frames, nothing left over', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz(
      { corpus: 'shim-frames', save: ({ frames }) => Buffer.concat(frames.map(encodeFrame)) },
      fc.record({ frames: fc.array(frame, { maxLength: 20 }), points: cutPoints }),
      ({ frames, points }) => {
        const decoder = new FrameReader();
        const out = split(Buffer.concat(frames.map(encodeFrame)), points).flatMap((c) => decoder.push(c));
        expect(bare(out)).toEqual(frames);
        expect(decoder.buffered).toBe(0);
      },
      1000,
    );
  });

  it('any bytes, cut anywhere: the frames the spec reads, then a FrameError at a bad header or a held remainder', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz({ corpus: 'shim-frames', save: bytesOf }, stream, (s) => decodeChunks(bytesOf(s), split(bytesOf(s), s.points)), 1000);
  });
});

/** A request the shim could send, and ones it never would: any type, flags, id, argument. */
const mtop = ({ op, count }: { op: number; count: number }) => {
  const b = Buffer.alloc(8);
  b.writeInt16LE(op, 0);
  b.writeInt32LE(count, 4);
  return b;
};
const RECORD_LIMIT = 4096;
const requestFrame: fc.Arbitrary<Frame> = fc
  .tuple(
    fc.oneof(
      fc.record({ type: fc.constant<number>(FrameType.OPEN), arg: fc.oneof(fc.constantFrom(0, 1, 2, 3, 0o4000, 0o4001, 0o4002), int32) }),
      fc.record({
        type: fc.constant<number>(FrameType.WRITE),
        payload: fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(RECORD_LIMIT, RECORD_LIMIT + 1).map((n) => new Uint8Array(n))),
      }),
      fc.record({ type: fc.constantFrom<number>(FrameType.READ, FrameType.WRITE_CHECK), arg: int32 }),
      fc.record({ type: fc.constant<number>(FrameType.MTIOCTOP), payload: fc.oneof({ weight: 5, arbitrary: mtOperation.map(mtop) }, fc.uint8Array({ maxLength: 7 })) }),
      fc.record({ type: fc.constantFrom<number>(FrameType.MTIOCGET, FrameType.MTIOCPOS, FrameType.CLOSE, FrameType.FLUSH) }),
      fc.record({ type: fc.oneof(fc.constant(0), fc.integer({ min: 10, max: 0xffff })), arg: int32, payload: fc.uint8Array({ maxLength: 20 }) }),
    ),
    fc.record({ flags: fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.integer({ min: 0, max: 0xffff })), id: fc.integer({ min: 0, max: 0xffffffff }) }),
  )
  .map(([r, h]) => {
    const f = { arg: 0, payload: new Uint8Array(0), ...r, ...h };
    return { ...f, payload: Buffer.from(f.payload) };
  });

/** What follows the whole frames: nothing, a header over the limit, or a frame cut short. */
const connection = fc.record({
  requests: fc.array(requestFrame, { maxLength: 30 }),
  tail: fc.constantFrom('none', 'bad header', 'cut frame'),
  points: cutPoints,
});
type Connection = typeof connection extends fc.Arbitrary<infer T> ? T : never;

function connectionBytes(c: Connection): Buffer {
  const tail =
    c.tail === 'bad header'
      ? encodeHeader({ type: FrameType.WRITE, flags: 0, id: 0, arg: 0 }, MAX_PAYLOAD + 1)
      : c.tail === 'cut frame'
        ? encodeFrame({ type: FrameType.WRITE, flags: 0, id: 0, arg: 0, payload: Buffer.alloc(100) }).subarray(0, 60)
        : Buffer.alloc(0);
  return Buffer.concat([...c.requests.map(encodeFrame), tail]);
}

const ERRNOS = new Set<number>(Object.values(Errno));
const dir = useTempDir('all');
let server: Server;
let accepted: (shimSide: Socket) => void;
beforeAll(async () => {
  server = createServer((shimSide) => accepted(shimSide));
  server.listen(join(dir.path, 'shim.sock'));
  await once(server, 'listening');
});
afterAll(() => server.close());

/** Serves `bytes` (cut at `points`) to a connection on a fresh drive and checks what comes back. */
async function checkConnection(bytes: Buffer, points: number[]): Promise<void> {
  const { frames: requests, badHeaderAt } = specDecode(bytes);
  const { drive } = await memoryDrive([{}], { maxRecord: RECORD_LIMIT });
  const { log, errors } = recordingLog();
  // This side plays the shim, which listens; the daemon's side connects and reads as ShimLink's does.
  const shimSide = new Promise<Socket>((resolve) => (accepted = resolve));
  const reader = new FrameReader();
  const daemonSide = connect({ path: join(dir.path, 'shim.sock'), ...reader.socketOptions });
  const served = serveShimConnection(daemonSide, reader, drive, log, { records: 32, bytes: 32 * 2 ** 20 });
  const socket = await shimSide;
  const decoder = new FrameReader();
  const replies: Frame[] = [];
  // Bytes after a bad frame may meet a connection the daemon already closed (EPIPE): only then.
  // (events.once would reject on that error.)
  const closed = new Promise((resolve) => socket.once('close', resolve));
  const socketErrors: Error[] = [];
  socket.on('error', (err) => socketErrors.push(err));
  let wake = () => {};
  socket.on('data', (chunk) => {
    replies.push(...decoder.push(chunk));
    wake();
  });
  for (const chunk of split(bytes, points)) socket.write(chunk);
  if (badHeaderAt !== undefined) {
    await within(5000, 'the daemon closing the connection after a bad header', closed);
    expect(replies.length).toBeLessThanOrEqual(requests.length);
  } else {
    // Every whole request is answered before the shim hangs up.
    await within(5000, `${requests.length} replies (${replies.length} came)`, (async () => {
      while (replies.length < requests.length) await new Promise<void>((r) => (wake = r));
    })());
    socket.end();
    await closed;
  }
  await within(5000, 'the connection being served to its end', served);
  if (badHeaderAt === undefined) expect(socketErrors).toEqual([]);
  replies.forEach((reply, i) => {
    const request = requests[i]!;
    expect(reply.id).toBe(request.id);
    expect(reply.type).toBe(request.type | REPLY);
    expect(reply.flags & ~7).toBe(0);
    if (reply.arg < 0) {
      expect(ERRNOS, `errno ${-reply.arg}`).toContain(-reply.arg);
      expect(reply.payload.length).toBe(0);
    } else {
      const expected = { [FrameType.MTIOCGET]: 48, [FrameType.MTIOCPOS]: 8, [FrameType.READ]: reply.arg }[request.type] ?? 0;
      expect(reply.payload.length).toBe(expected);
    }
  });
  const unexpected = errors().filter((e) => !e.startsWith('shim sent a malformed frame'));
  expect(unexpected, unexpected.join('\n')).toEqual([]);
  await expectDriveWorks(drive);
}

describe('a shim connection under hostile input', () => {
  it('replays the corpus, whole and a byte at a time', { timeout: FUZZ_TIMEOUT }, async () => {
    for (const { bytes } of corpus('shim-connection')) {
      await checkConnection(bytes, []);
      await checkConnection(bytes, [...bytes.keys()]);
    }
  });

  it('answers each whole request once, in order, with an errno or a result; a bad header ends it; the drive works after', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz({ corpus: 'shim-connection', save: connectionBytes }, connection, (c) => checkConnection(connectionBytes(c), c.points), 400);
  });
});
