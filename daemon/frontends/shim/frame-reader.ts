import type { OnReadOpts } from 'node:net';
import { RecordPool } from '../../drive/record-pool.js';
import { type Frame, FrameError, FrameType, HEADER_BYTES, MAX_PAYLOAD, RequestFlag, RING_POSITION_BYTES } from './frames.js';
import { type RecordRing, RingError } from '../../drive/record-ring.js';

/** A payload smaller than this is copied out of the staging buffer rather than read on its own. */
const DIRECT_MIN = 16 * 1024;

/**
 * Splits the shim's byte stream into frames whose payloads live in pooled record buffers
 * (RecordPool). On a socket made with `onread` (its `socketOptions`), reads go straight where they
 * belong: into one reused staging buffer between frames and, once a frame's header is known, the
 * rest of a large payload directly into its record, exactly as much as it lacks (so the next header
 * lands in staging again). A stream read would cost a fresh 64 KiB buffer per read and a copy per
 * record, whose garbage took most of the daemon's time at 256 KiB records.
 *
 * A WRITE whose record the shim put in its record ring carries only the record's position there; its
 * frame comes out with the ring's record as payload, as if it had crossed the socket.
 */
export class FrameReader {
  /** Told the frames each read completed; returning false pauses the socket. */
  onFrames: (frames: Frame[], malformed?: FrameError) => boolean = () => true;
  private readonly staging: Buffer;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private partial: Frame | undefined;
  private payloadFill = 0;
  private direct = false;
  /** The last frame's payload was large: the next may be too. */
  private lastLarge = false;

  private readonly ringPosition = Buffer.alloc(RING_POSITION_BYTES);
  private readonly ring: RecordRing | undefined;
  /** WRITE records read, by how they came: through the ring, or on the socket. */
  readonly writes: WriteCounts;

  constructor(
    private readonly pool = new RecordPool(),
    { ring, writes = { ring: 0, socket: 0 }, stagingBytes = 256 * 1024 }: { ring?: RecordRing; writes?: WriteCounts; stagingBytes?: number } = {},
  ) {
    this.ring = ring;
    this.writes = writes;
    this.staging = Buffer.allocUnsafeSlow(stagingBytes);
  }

  /** For net.connect: reads land where `buffer()` says and their frames go to `onFrames`. */
  get socketOptions(): { onread: OnReadOpts & { buffer: () => Buffer } } {
    return { onread: { buffer: () => this.buffer(), callback: (n) => this.received(n) } };
  }

  /** Bytes of an incomplete frame (a connection that ends with some was cut mid-frame). */
  get buffered(): number {
    return this.partial ? HEADER_BYTES + this.payloadFill : this.headerFill;
  }

  /** Takes bytes of the stream; returns the frames they complete. Throws FrameError on a bad header. */
  push(bytes: Buffer): Frame[] {
    const frames: Frame[] = [];
    let at = 0;
    while (at < bytes.length) {
      const f = this.partial;
      if (!f) {
        const take = Math.min(HEADER_BYTES - this.headerFill, bytes.length - at);
        bytes.copy(this.header, this.headerFill, at, at + take);
        this.headerFill += take;
        at += take;
        if (this.headerFill === HEADER_BYTES) this.startFrame(frames);
      } else {
        const take = Math.min(f.payload.length - this.payloadFill, bytes.length - at);
        bytes.copy(f.payload, this.payloadFill, at, at + take);
        this.payloadFill += take;
        at += take;
        this.completeIfFull(frames);
      }
    }
    return frames;
  }

  /**
   * Where the next read should land. A large payload is read straight into its record, all of what
   * it lacks; after it only the next header is read into staging, so that a large payload after it
   * goes straight to its record too (a full staging read would take most of that payload and copy
   * it, every byte at 256 KiB records). Small frames come many to a staging read.
   */
  private buffer(): Buffer {
    const f = this.partial;
    this.direct = f !== undefined && f.payload.length >= DIRECT_MIN;
    if (f) return this.direct ? f.payload.subarray(this.payloadFill) : this.staging;
    return this.lastLarge ? this.staging.subarray(0, HEADER_BYTES - this.headerFill) : this.staging;
  }

  private received(n: number): boolean {
    try {
      if (!this.direct) return this.onFrames(this.push(this.staging.subarray(0, n)));
      this.payloadFill += n; // read straight into the partial frame's record
      const frames: Frame[] = [];
      this.completeIfFull(frames);
      return this.onFrames(frames);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      return this.onFrames(err.frames, err);
    }
  }

  private startFrame(frames: Frame[]): void {
    const h = this.header;
    const length = h.readUInt32LE(0);
    if (length > MAX_PAYLOAD) throw new FrameError(`frame payload of ${length} bytes exceeds ${MAX_PAYLOAD}`, frames);
    const type = h.readUInt16LE(4);
    const flags = h.readUInt16LE(6);
    const inRing = type === FrameType.WRITE && (flags & RequestFlag.IN_RING) !== 0;
    if (inRing && !this.ring) throw new FrameError('a record in the record ring, but this shim was given none', frames);
    if (inRing && length !== RING_POSITION_BYTES) throw new FrameError(`a record ring position of ${length} bytes, not ${RING_POSITION_BYTES}`, frames);
    this.headerFill = 0;
    this.payloadFill = 0;
    const record = length > 0 && !inRing ? this.pool.take(length) : undefined;
    this.partial = {
      type,
      flags,
      id: h.readUInt32LE(8),
      arg: h.readInt32LE(12),
      payload: inRing ? this.ringPosition : (record?.data ?? EMPTY),
      record,
    };
    this.completeIfFull(frames);
  }

  private completeIfFull(frames: Frame[]): void {
    const f = this.partial!;
    if (this.payloadFill < f.payload.length) return;
    this.lastLarge = f.payload.length >= DIRECT_MIN;
    if (f.payload === this.ringPosition) {
      this.takeFromRing(f, frames);
      this.writes.ring++;
    } else if (f.type === FrameType.WRITE) this.writes.socket++;
    frames.push(f);
    this.partial = undefined;
  }

  private takeFromRing(f: Frame, frames: Frame[]): void {
    const position = Number(this.ringPosition.readBigUInt64LE(0));
    try {
      f.record = this.ring!.recordAt(position, f.arg);
    } catch (err) {
      if (!(err instanceof RingError)) throw err;
      this.partial = undefined;
      throw new FrameError(err.message, frames);
    }
    f.payload = f.record.data;
    f.arg = 0;
  }
}

export interface WriteCounts {
  ring: number;
  socket: number;
}

const EMPTY = Buffer.alloc(0);
