import { DriveRequest } from '../../../generated/tapeproxy.js';
import { encodeHeader, type Frame } from '../shim/frames.js';

/**
 * The frames of a record channel (proto/record-channel.md): the shim's framing (16-byte header,
 * then payload) carrying a gRPC Session's requests. A record travels as its own payload, sent from
 * and received into pooled buffers; any other request as its protobuf encoding.
 */
export const ChannelFrame = { ATTACH: 1, WRITE: 2, REQUEST: 3 } as const;
export const WriteFlag = { PIPELINED: 0x1, BEHIND: 0x2 } as const;
export const TICKET_BYTES = 32;

export function attachFrame(ticket: Uint8Array): Buffer[] {
  return [encodeHeader({ type: ChannelFrame.ATTACH, flags: 0, id: 0, arg: 0 }, ticket.length), Buffer.from(ticket)];
}

/** A request as frame buffers; a write's record is one of them as it is, not copied. */
export function requestFrame(request: DriveRequest): Buffer[] {
  const write = request.write;
  if (!write) {
    const body = Buffer.from(DriveRequest.encode(request).finish());
    return [encodeHeader({ type: ChannelFrame.REQUEST, flags: 0, id: request.id, arg: 0 }, body.length), body];
  }
  const flags = (request.pipelined ? WriteFlag.PIPELINED : 0) | (write.behind ? WriteFlag.BEHIND : 0);
  return [encodeHeader({ type: ChannelFrame.WRITE, flags, id: request.id, arg: 0 }, write.data.length), write.data];
}

/** The request a WRITE or REQUEST frame carries; throws on any other frame or a malformed body. */
export function requestOf(frame: Frame): DriveRequest {
  if (frame.type === ChannelFrame.WRITE) {
    return {
      id: frame.id,
      pipelined: (frame.flags & WriteFlag.PIPELINED) !== 0,
      write: { data: frame.payload, behind: (frame.flags & WriteFlag.BEHIND) !== 0 },
    };
  }
  if (frame.type === ChannelFrame.REQUEST) return DriveRequest.decode(frame.payload);
  throw new Error(`unexpected frame type ${frame.type} on a record channel`);
}
