import { makeGenericClientConstructor } from '@grpc/grpc-js';
import { DriveRequest, TapeProxyClient, TapeProxyService } from '../../../generated/tapeproxy.js';

/**
 * The protobuf encoding of a `write` DriveRequest, the one message a tape stream is made of, by
 * hand: one allocation and one copy of the record (ts-proto's writer grows its buffer by doubling
 * and copies the record four times, which made garbage collection a third of a grpc sink's time),
 * and decoding that leaves the record where it arrived. Every other message goes to the generated
 * code. Field numbers are those of proto/tapeproxy.proto.
 */
const ID = 0x08; // field 1, varint
const WRITE = 0x1a; // field 3, length-delimited
const WRITE_DATA = 0x0a; // Write field 1, length-delimited
const WRITE_BEHIND = 0x10; // Write field 2, varint
const PIPELINED = 0x48; // field 9, varint

export function encodeDriveRequest(request: DriveRequest): Buffer {
  const write = request.write;
  if (!write || request.id > Number.MAX_SAFE_INTEGER) return Buffer.from(DriveRequest.encode(request).finish());
  const data = write.data;
  const inner = 1 + varintSize(data.length) + data.length + (write.behind ? 2 : 0);
  const size = 1 + varintSize(request.id) + 1 + varintSize(inner) + inner + (request.pipelined ? 2 : 0);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  out[at++] = ID;
  at = putVarint(out, at, request.id);
  out[at++] = WRITE;
  at = putVarint(out, at, inner);
  out[at++] = WRITE_DATA;
  at = putVarint(out, at, data.length);
  out.set(data, at); // not data.copy: callers of the generated API may pass a plain Uint8Array
  at += data.length;
  if (write.behind) {
    out[at++] = WRITE_BEHIND;
    out[at++] = 1;
  }
  if (request.pipelined) {
    out[at++] = PIPELINED;
    out[at++] = 1;
  }
  return out;
}

/** A write request read without copying its record (fields in any order); others as generated. */
export function decodeDriveRequest(bytes: Buffer): DriveRequest {
  return decodeWrite(bytes) ?? DriveRequest.decode(bytes);
}

/** The write request in `bytes`, or undefined for anything else (the generated decoder reads it). */
function decodeWrite(bytes: Buffer): DriveRequest | undefined {
  const request: DriveRequest = { id: 0, pipelined: false };
  for (let at = 0; at < bytes.length; ) {
    const tag = bytes[at++];
    const field = readVarint(bytes, at);
    if (!field) return undefined;
    if (tag === ID) request.id = field.value;
    else if (tag === PIPELINED && field.value <= 1) request.pipelined = field.value === 1;
    else if (tag === WRITE && field.next + field.value <= bytes.length) {
      const write = decodeWriteFields(bytes.subarray(field.next, field.next + field.value));
      if (!write) return undefined;
      request.write = write;
      at = field.next + field.value;
      continue;
    } else return undefined;
    at = field.next;
  }
  return request.write ? request : undefined;
}

function decodeWriteFields(bytes: Buffer): DriveRequest['write'] {
  const write: NonNullable<DriveRequest['write']> = { data: EMPTY, behind: false };
  for (let at = 0; at < bytes.length; ) {
    const tag = bytes[at++];
    const field = readVarint(bytes, at);
    if (!field) return undefined;
    if (tag === WRITE_DATA && field.next + field.value <= bytes.length) {
      write.data = bytes.subarray(field.next, field.next + field.value);
      at = field.next + field.value;
    } else if (tag === WRITE_BEHIND && field.value <= 1) {
      write.behind = field.value === 1;
      at = field.next;
    } else return undefined;
  }
  return write;
}

const EMPTY = Buffer.alloc(0);

function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) size++;
  return size;
}

function putVarint(out: Buffer, at: number, value: number): number {
  let v = value;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** A varint of at most 7 bytes (49 bits: ids and lengths), or undefined. */
function readVarint(bytes: Buffer, from: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let at = from; at < bytes.length && at < from + 7; at++) {
    const b = bytes[at]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return { value, next: at + 1 };
    scale *= 0x80;
  }
  return undefined;
}

/** The TapeProxy service with the hand-made codec for Session requests (for the server). */
export const FastTapeProxyService = {
  ...TapeProxyService,
  session: { ...TapeProxyService.session, requestSerialize: encodeDriveRequest, requestDeserialize: decodeDriveRequest },
};

/** A TapeProxy client that sends Session requests with the hand-made codec. */
export const FastTapeProxyClient = makeGenericClientConstructor(FastTapeProxyService, 'tapeproxy.v1.TapeProxy') as unknown as typeof TapeProxyClient;
