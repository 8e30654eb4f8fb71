import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { encodeMtget } from '../../drive/mtio.js';
import type { Access, DriveHandle, PseudoDrive } from '../../drive/pseudo-drive.js';
import { Errno, TapeError, tapeError } from '../../drive/tape-error.js';
import type { FrameReader } from './frame-reader.js';
import { encodeHeader, type Frame, type FrameError, FrameType, REPLY, ReplyFlag, RequestFlag } from './frames.js';

const ACCESS: Access[] = ['read', 'write', 'read-write'];
const O_NONBLOCK = 0o4000;
/** Requests read ahead of the one being executed before the socket is paused. */
const MAX_WAITING = 64;

/** The shim's write-behind window (proto/shim-frames.md): records and bytes it may have unanswered. */
export interface ShimWindow {
  records: number;
  bytes: number;
}

/**
 * How long replies to write-behind records may wait to go together. Such a reply only frees a place
 * in the shim's window, and every write to the socket wakes the shim's reader, which costs this
 * thread about 100 µs on these machines; so they go when a quarter of the window is answered, when
 * another reply goes, or after this long.
 */
const HOLD_MS = 1;

interface Result {
  arg: number;
  payload?: Buffer;
}

/**
 * One shim's connection to a drive (proto/shim-frames.md): requests run in order, one reply each.
 * The connection's end closes the drive if the shim left it open, as a process exit would.
 */
export function serveShimConnection(socket: Socket, reader: FrameReader, drive: PseudoDrive, log: Logger, window: ShimWindow): Promise<void> {
  let handle: DriveHandle | undefined;
  let chain = Promise.resolve();
  let waiting = 0;

  async function execute(f: Frame): Promise<Result> {
    if (f.type === FrameType.OPEN) {
      const access = ACCESS[f.arg & 3];
      if (!access) throw tapeError('EINVAL', `open flags 0x${f.arg.toString(16)}: invalid access mode`);
      handle = await drive.open({ access, nonBlocking: (f.arg & O_NONBLOCK) !== 0 });
      return { arg: 0 };
    }
    const h = handle;
    if (!h) throw tapeError('EBADF', 'no open drive on this connection');
    switch (f.type) {
      case FrameType.WRITE:
        return {
          arg: await h.write(f.payload, {
            behind: (f.flags & RequestFlag.WRITE_BEHIND) !== 0,
            checked: (f.flags & RequestFlag.CHECKED) !== 0,
            lease: f.record,
          }),
        };
      case FrameType.WRITE_CHECK:
        await h.checkWrite(f.arg);
        return { arg: 0 };
      case FrameType.READ: {
        const data = await h.read(Math.max(0, f.arg));
        return { arg: data.length, payload: data };
      }
      case FrameType.MTIOCTOP:
        if (f.payload.length < 8) throw tapeError('EINVAL', 'MTIOCTOP needs an 8-byte struct mtop');
        await h.ioctl(f.payload.readInt16LE(0), f.payload.readInt32LE(4));
        return { arg: 0 };
      case FrameType.MTIOCGET:
        return { arg: 0, payload: encodeMtget(await h.status()) };
      case FrameType.MTIOCPOS: {
        const pos = Buffer.alloc(8);
        pos.writeBigInt64LE(BigInt(await h.position()));
        return { arg: 0, payload: pos };
      }
      case FrameType.FLUSH:
        await h.flush();
        return { arg: 0 };
      case FrameType.CLOSE:
        handle = undefined;
        await h.close();
        return { arg: 0 };
      default:
        throw tapeError('ENOSYS', `unknown frame type ${f.type}`);
    }
  }

  async function answer(f: Frame, release: (() => void) | undefined): Promise<void> {
    const result = await execute(f).catch((err: unknown): Result => {
      if (err instanceof TapeError) return { arg: -err.errno };
      log.error({ drive: drive.name, err }, 'shim request failed unexpectedly');
      return { arg: -Errno.EIO };
    });
    release?.(); // the sinks that still need the payload hold it themselves
    const flags = drive.flags();
    const replyFlags =
      (flags.earlyWarning ? ReplyFlag.EARLY_WARNING : 0) |
      (flags.endOfData ? ReplyFlag.END_OF_DATA : 0) |
      (flags.filemark ? ReplyFlag.FILEMARK : 0);
    const payload = result.payload ?? EMPTY;
    outgoing.push(encodeHeader({ type: f.type | REPLY, flags: replyFlags, id: f.id, arg: result.arg }, payload.length));
    if (payload.length > 0) outgoing.push(payload);
    const behind = f.type === FrameType.WRITE && (f.flags & RequestFlag.WRITE_BEHIND) !== 0;
    if (behind && result.arg >= 0 && replyFlags === 0) {
      heldRecords++;
      heldBytes += f.payload.length;
      if (heldRecords * 4 < window.records && heldBytes * 4 < window.bytes) {
        holding ??= setTimeout(flush, HOLD_MS);
      } else flushSoon();
    } else flushSoon();
    if (--waiting === MAX_WAITING / 2) socket.resume();
  }

  // Replies made in one turn of the event loop leave in one write, not one syscall each (and as
  // one buffer: a writev of hundreds of 16-byte headers costs more in Node than copying them).
  let outgoing: Buffer[] = [];
  let heldRecords = 0;
  let heldBytes = 0;
  let holding: NodeJS.Timeout | undefined;
  let flushing = false;
  function flushSoon(): void {
    if (!flushing) setImmediate(flush);
    flushing = true;
  }
  function flush(): void {
    clearTimeout(holding);
    holding = undefined;
    flushing = false;
    heldRecords = heldBytes = 0;
    const replies = outgoing;
    outgoing = [];
    if (replies.length > 0 && !socket.destroyed) socket.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies));
  }

  // A malformed frame's predecessors in the same read run, as they would have in an earlier read.
  reader.onFrames = (frames: Frame[], malformed?: FrameError): boolean => {
    for (const f of frames) {
      waiting++;
      const release = f.record?.hold();
      chain = chain.then(() => answer(f, release));
    }
    if (malformed) {
      log.error({ drive: drive.name, err: malformed.message }, 'shim sent a malformed frame; closing its connection');
      socket.destroy();
      return false;
    }
    return waiting < MAX_WAITING; // false pauses the socket
  };

  return new Promise((resolve) => {
    socket.on('close', () => {
      chain = chain.then(async () => {
        if (reader.buffered > 0) log.warn({ drive: drive.name }, 'shim connection ended inside a frame');
        const h = handle;
        handle = undefined;
        if (h && drive.isOpenedBy(h)) {
          await h.close().catch((err: Error) => log.error({ drive: drive.name, err: err.message }, 'closing the drive after the shim left failed'));
          log.warn({ drive: drive.name }, 'shim connection ended with the drive open: closed it');
        }
      });
      void chain.then(resolve);
    });
    socket.on('error', (err) => log.warn({ drive: drive.name, err: err.message }, 'shim connection error'));
  });
}

const EMPTY = Buffer.alloc(0);
