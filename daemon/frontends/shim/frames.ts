import type { PooledRecord } from '../../drive/record-pool.js';

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

export const RequestFlag = { WRITE_BEHIND: 0x1, CHECKED: 0x2, IN_RING: 0x4 } as const;
/** The payload of a WRITE with IN_RING: the record's u64 position in the record ring. */
export const RING_POSITION_BYTES = 8;
export const ReplyFlag = { EARLY_WARNING: 0x1, END_OF_DATA: 0x2, FILEMARK: 0x4 } as const;

export interface Frame {
  type: number;
  flags: number;
  id: number;
  arg: number;
  payload: Buffer;
  /** The pooled buffer holding a received payload (FrameReader). */
  record?: PooledRecord;
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
