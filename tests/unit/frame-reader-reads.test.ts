/**
 * How the daemon's FrameReader reads a shim socket (`socketOptions.onread`): where each read lands.
 * Large payloads must go straight into their pooled record, not through the staging buffer, and
 * whatever the reads are, the frames come out as sent. A socket that has the whole stream ready is
 * played here: every read fills the buffer the reader offers, as the kernel does then.
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { encodeFrame, type Frame, FrameType, HEADER_BYTES } from '../../daemon/frontends/shim/frames.js';
import { FrameReader } from '../../daemon/frontends/shim/frame-reader.js';

interface OnRead {
  buffer: () => Uint8Array;
  callback: (n: number, buf: Uint8Array) => boolean;
}

/** Feeds `stream` through the reader's onread hooks; returns the frames and each read's size. */
function readAll(stream: Buffer): { frames: Frame[]; reads: number[]; copied: number } {
  const reader = new FrameReader();
  const frames: Frame[] = [];
  reader.onFrames = (done) => {
    frames.push(...done);
    return true;
  };
  const { buffer, callback } = reader.socketOptions.onread as OnRead;
  const copy = vi.spyOn(Buffer.prototype, 'copy');
  const reads: number[] = [];
  try {
    for (let at = 0; at < stream.length; ) {
      const into = buffer();
      if (into.length === 0) throw new Error(`the reader offered an empty buffer at byte ${at}`);
      const n = Math.min(into.length, stream.length - at);
      into.set(stream.subarray(at, at + n)); // the kernel's copy (TypedArray.set: not counted)
      at += n;
      reads.push(into.length);
      callback(n, into);
    }
    const copied = copy.mock.calls.reduce((sum, [, , start, end]) => sum + (end as number) - (start as number), 0);
    return { frames, reads, copied };
  } finally {
    copy.mockRestore();
  }
}

const write = (length: number, id: number): Frame => ({
  type: FrameType.WRITE,
  flags: 1,
  id,
  arg: 0,
  payload: Buffer.alloc(length, id & 0xff),
});
/** Frames compared by their fields and a digest of the payload (a diff of megabytes would not help). */
const summary = (frames: Frame[]) =>
  frames.map((f) => ({ type: f.type, flags: f.flags, id: f.id, arg: f.arg, length: f.payload.length, sha256: createHash('sha256').update(f.payload).digest('hex') }));

describe('FrameReader reads from a socket', () => {
  it('reads only the header after a large payload, so the next large payload lands in its record directly', () => {
    const sent = Array.from({ length: 8 }, (_, i) => write(256 * 1024, i + 1));
    const { frames, reads, copied } = readAll(Buffer.concat(sent.map(encodeFrame)));
    expect(summary(frames)).toEqual(summary(sent));
    // The first read is a full staging read (nothing known yet): the first header and most of its
    // payload. Then the rest of that payload, straight into its record, and from then on a header
    // alone and a payload straight into its record.
    expect(reads[0]).toBe(256 * 1024);
    expect(reads.slice(1)).toEqual([HEADER_BYTES, ...Array.from({ length: 7 }, () => [HEADER_BYTES, 256 * 1024]).flat()]);
    // Copied out of staging: the first read's bytes and each later header, nothing more.
    expect(copied).toBe(reads[0]! + 7 * HEADER_BYTES);
    // Each record in its own pooled buffer: no two at the same place of the same memory.
    const places = frames.map((f) => [f.payload.buffer, f.payload.byteOffset] as const);
    expect(places.filter(([b, o], k) => places.some(([b2, o2], j) => j !== k && b2 === b && o2 === o))).toEqual([]);
  });

  it('small frames after a large one come many to a read again', () => {
    const sent = [write(256 * 1024, 1), ...Array.from({ length: 50 }, (_, i) => write(100, i + 2))];
    const { frames, reads } = readAll(Buffer.concat(sent.map(encodeFrame)));
    expect(summary(frames)).toEqual(summary(sent));
    // After the large one: its header-only read, then one staging read holds all fifty small frames.
    expect(reads.length).toBeLessThanOrEqual(5);
  });

  it('any mix of payload sizes decodes to the frames sent', () => {
    const size = fc.constantFrom(0, 1, 100, 10 * 1024, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 64 * 1024, 256 * 1024 + 3);
    fc.assert(
      fc.property(fc.array(size, { minLength: 1, maxLength: 24 }), (sizes) => {
        const sent = sizes.map((n, i) => write(n, i + 1));
        const stream = Buffer.concat(sent.map(encodeFrame));
        const { frames, copied } = readAll(stream);
        expect(summary(frames)).toEqual(summary(sent));
        // Never more than one copy of any byte.
        expect(copied).toBeLessThanOrEqual(stream.length);
      }),
      { numRuns: 200 },
    );
  });
});
