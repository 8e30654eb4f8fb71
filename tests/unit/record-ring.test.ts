/**
 * The daemon's side of the shim's record ring (proto/shim-frames.md, "Record ring"): records are
 * views of the ring where the shim put them, the shim's position moves only over records let go in
 * order, a position that breaks the ring's rules ends the connection, and FrameReader turns a WRITE
 * that carries a position into the record it points at. The shim's side (cuse-shim/record-ring.c)
 * has its C unit test, and tests/integration/shim-ring.test.ts runs both through a FUSE device.
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, type Frame, FrameError, FrameType, RequestFlag } from '../../daemon/frontends/shim/frames.js';
import { FrameReader } from '../../daemon/frontends/shim/frame-reader.js';
import { RecordRing, RING_HEADER_BYTES, RingError } from '../../daemon/drive/record-ring.js';

const KiB = 1024;
const SIZE = 256 * KiB;

/** A ring over plain shared memory, and what the shim sees of it. */
function makeRing() {
  const memory = new SharedArrayBuffer(RING_HEADER_BYTES + SIZE);
  const ring = new RecordRing(memory);
  const data = new Uint8Array(memory, RING_HEADER_BYTES);
  const released = () => Number(Atomics.load(new BigUint64Array(memory, 0, 1), 0));
  /** The shim's copy of `bytes` to ring position `start`. */
  const put = (start: number, bytes: Uint8Array) => data.set(bytes, start % SIZE);
  return { ring, memory, released, put };
}

const filled = (length: number, seed: number) => Buffer.from(Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff));

/** A WRITE frame whose record the shim put at `start` of the ring. */
const ringWrite = (id: number, start: number, length: number, flags = RequestFlag.WRITE_BEHIND): Frame => {
  const position = Buffer.alloc(8);
  position.writeBigUInt64LE(BigInt(start));
  return { type: FrameType.WRITE, flags: flags | RequestFlag.IN_RING, id, arg: length, payload: position };
};

describe('RecordRing', () => {
  it('a record is the ring bytes at its position, and the shim gets them back only in order', () => {
    const { ring, released, put } = makeRing();
    const a = filled(64 * KiB, 1);
    const b = filled(64 * KiB, 2);
    const c = filled(100 * KiB, 3);
    put(0, a);
    put(64 * KiB, b);
    put(128 * KiB, c);
    const ra = ring.recordAt(0, a.length);
    const rb = ring.recordAt(64 * KiB, b.length);
    const rc = ring.recordAt(128 * KiB, c.length);
    expect([ra.data.equals(a), rb.data.equals(b), rc.data.equals(c)]).toEqual([true, true, true]);
    expect(ra.data.buffer).toBeInstanceOf(SharedArrayBuffer); // workers read it in place
    const [releaseA, releaseB, releaseC] = [ra.hold(), rb.hold(), rc.hold()];
    const holdB2 = rb.hold(); // a second sink still writing b
    releaseB();
    expect(released()).toBe(0); // a is still held
    releaseA();
    expect(released()).toBe(64 * KiB); // a, not b: b has a hold left
    holdB2();
    expect(released()).toBe(128 * KiB);
    releaseC();
    expect(released()).toBe(128 * KiB + 100 * KiB);
    expect(ring.held).toBe(0);
  });

  it('takes a record placed at the start after the end of the ring was skipped', () => {
    const { ring, released, put } = makeRing();
    const first = ring.recordAt(0, 200 * KiB);
    const release = first.hold();
    release();
    expect(released()).toBe(200 * KiB);
    // 100 KiB does not fit in the 56 KiB left before the end: the shim puts it at the next lap's start.
    const next = filled(100 * KiB, 9);
    put(SIZE, next);
    const r = ring.recordAt(SIZE, next.length);
    expect(r.data.equals(next)).toBe(true);
    r.hold()();
    expect(released()).toBe(SIZE + 100 * KiB);
  });

  it('refuses positions that break the rules: behind the last record, across the end, over a held record', () => {
    const { ring } = makeRing();
    const held = ring.recordAt(0, 64 * KiB);
    held.hold();
    expect(() => ring.recordAt(0, 64 * KiB)).toThrow(RingError); // over the record before it
    expect(() => ring.recordAt(200 * KiB, 64 * KiB)).toThrow(RingError); // across the ring's end
    expect(() => ring.recordAt(SIZE, 64 * KiB)).toThrow(RingError); // next lap: onto the held record
    expect(() => ring.recordAt(64 * KiB, 0)).toThrow(RingError);
    expect(() => ring.recordAt(2 ** 60, 64 * KiB)).toThrow(RingError); // not a safe integer
    expect(ring.recordAt(64 * KiB, 64 * KiB).data.length).toBe(64 * KiB); // the rules kept, it takes one
  });

  it('take: the next free space at a page, the next lap when the end is too near, none while it would cover a held record', () => {
    const { ring, memory, released } = makeRing();
    const page = (r: { data: Buffer }) => r.data.byteOffset - RING_HEADER_BYTES;
    const a = ring.take(10 * KiB + 28)!;
    const b = ring.take(100 * KiB)!;
    expect([page(a), page(b), a.data.length, b.data.length]).toEqual([0, 12 * KiB, 10 * KiB + 28, 100 * KiB]);
    expect(a.data.buffer).toBe(memory); // shared: a worker writes into it
    const [releaseA, releaseB] = [a.hold(), b.hold()];
    // 112 KiB are taken and 144 KiB are left before the end; 150 KiB go at the next lap's start,
    // over `a`, which is still held: no room.
    expect(ring.take(150 * KiB)).toBeUndefined();
    releaseB();
    expect(ring.take(150 * KiB)).toBeUndefined(); // `a` holds the space from 0 on
    releaseA();
    expect(released()).toBe(112 * KiB);
    // Nothing held: the 144 KiB skipped at the end are free as well.
    const c = ring.take(150 * KiB)!;
    expect(page(c)).toBe(0);
    const releaseC = c.hold();
    const d = ring.take(100 * KiB)!; // after c, at a page
    expect(page(d)).toBe(152 * KiB);
    expect(ring.take(8 * KiB)).toBeUndefined(); // 4 KiB left before the end, and c at the start
    expect(ring.take(SIZE + 1)).toBeUndefined(); // larger than the ring
    releaseC();
    d.hold()();
    expect(released()).toBe(SIZE + 252 * KiB);
    expect(ring.held).toBe(0);
  });
});

describe('FrameReader with a record ring', () => {
  it('a WRITE in the ring comes out as its record, among frames that crossed the socket', () => {
    const { ring, released, put } = makeRing();
    const inRing = filled(128 * KiB, 5);
    put(0, inRing);
    const small = { type: FrameType.WRITE, flags: RequestFlag.WRITE_BEHIND, id: 2, arg: 0, payload: filled(10 * KiB, 6) };
    const writes = { ring: 0, socket: 0 };
    const reader = new FrameReader(undefined, { ring, writes });
    const frames = reader.push(Buffer.concat([encodeFrame(ringWrite(1, 0, inRing.length)), encodeFrame(small)]));
    expect(frames.map((f) => [f.id, f.flags, f.arg, f.payload.length])).toEqual([
      [1, RequestFlag.WRITE_BEHIND | RequestFlag.IN_RING, 0, inRing.length],
      [2, RequestFlag.WRITE_BEHIND, 0, small.payload.length],
    ]);
    expect(frames[0]!.payload.equals(inRing)).toBe(true);
    expect(frames[1]!.payload.equals(small.payload)).toBe(true);
    expect(writes).toEqual({ ring: 1, socket: 1 });
    frames[0]!.record!.hold()();
    expect(released()).toBe(inRing.length);
  });

  it('a ring record from a shim that has no ring, a position of the wrong size, or one outside the free space is malformed', () => {
    const before = { type: FrameType.WRITE, flags: 0, id: 1, arg: 0, payload: filled(100, 1) };
    const noRing = () => new FrameReader().push(Buffer.concat([encodeFrame(before), encodeFrame(ringWrite(2, 0, 64 * KiB))]));
    expect(noRing).toThrow(FrameError);
    try {
      noRing();
    } catch (err) {
      expect((err as FrameError).frames.map((f) => f.id)).toEqual([1]); // the frames before it still run
    }
    const { ring } = makeRing();
    const wrongSize = { ...ringWrite(3, 0, 64 * KiB), payload: Buffer.alloc(4) };
    expect(() => new FrameReader(undefined, { ring }).push(encodeFrame(wrongSize))).toThrow(/ring position of 4 bytes/);
    expect(() => new FrameReader(undefined, { ring }).push(encodeFrame(ringWrite(4, 200 * KiB, 64 * KiB)))).toThrow(FrameError);
  });
});
