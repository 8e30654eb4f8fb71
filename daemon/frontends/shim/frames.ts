/**
 * The shim <-> daemon framing (proto/shim-frames.md): a 16-byte little-endian header, then payload.
 */

export const HEADER_BYTES = 16;
export const MAX_PAYLOAD = 64 * 2 ** 20 + 64;
export const REPLY = 0x80;

export const FrameType = {
  OPEN: 1,
  WRITE: 2,
  READ: 3,
  MTIOCTOP: 4,
  MTIOCGET: 5,
  MTIOCPOS: 6,
  CLOSE: 7,
  WRITE_CHECK: 8,
  FLUSH: 9,
} as const;

export const RequestFlag = { WRITE_BEHIND: 0x1, CHECKED: 0x2 } as const;
export const ReplyFlag = { EARLY_WARNING: 0x1, END_OF_DATA: 0x2, FILEMARK: 0x4 } as const;

export interface Frame {
  type: number;
  flags: number;
  id: number;
  arg: number;
  payload: Buffer;
}

export function encodeHeader(frame: Omit<Frame, 'payload'>, payloadLength: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt32LE(payloadLength, 0);
  h.writeUInt16LE(frame.type, 4);
  h.writeUInt16LE(frame.flags, 6);
  h.writeUInt32LE(frame.id >>> 0, 8);
  h.writeInt32LE(frame.arg, 12);
  return h;
}

export function encodeFrame(frame: Frame): Buffer {
  return Buffer.concat([encodeHeader(frame, frame.payload.length), frame.payload]);
}

/**
 * A frame that breaks the framing rules: the connection cannot continue. `frames` are the whole
 * frames before it in the bytes pushed last, so what runs does not depend on how the stream was cut.
 */
export class FrameError extends Error {
  constructor(
    message: string,
    readonly frames: Frame[],
  ) {
    super(message);
  }
}

/**
 * Splits a byte stream into frames. Payloads are views of the received chunks when a frame fits in
 * one (no copy), else one concatenation.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** Adds received bytes; returns the frames now complete. Throws FrameError on a bad header. */
  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.pendingBytes < HEADER_BYTES) break;
      const head = this.peek(HEADER_BYTES);
      const length = head.readUInt32LE(0);
      if (length > MAX_PAYLOAD) throw new FrameError(`frame payload of ${length} bytes exceeds ${MAX_PAYLOAD}`, frames);
      if (this.pendingBytes < HEADER_BYTES + length) break;
      const whole = this.take(HEADER_BYTES + length);
      frames.push({
        type: whole.readUInt16LE(4),
        flags: whole.readUInt16LE(6),
        id: whole.readUInt32LE(8),
        arg: whole.readInt32LE(12),
        payload: whole.subarray(HEADER_BYTES),
      });
    }
    return frames;
  }

  /** Bytes of an incomplete frame (a connection that ends with some is cut mid-frame). */
  get buffered(): number {
    return this.pendingBytes;
  }

  /**
   * The first n bytes. A header cut across chunks is joined once, from the chunks that hold it: not
   * from everything pending, which a large payload arriving in small pieces would make quadratic.
   */
  private peek(n: number): Buffer {
    if (this.pending[0]!.length < n) {
      let count = 0;
      let bytes = 0;
      while (bytes < n) bytes += this.pending[count++]!.length;
      this.pending.splice(0, count, Buffer.concat(this.pending.slice(0, count), bytes));
    }
    return this.pending[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.pending[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.pending.shift();
      else this.pending[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.pending, this.pendingBytes);
      out = all.subarray(0, n);
      this.pending = all.length > n ? [all.subarray(n)] : [];
    }
    this.pendingBytes -= n;
    return out;
  }
}
