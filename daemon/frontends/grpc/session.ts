import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Access, type DriveReply, type DriveRequest } from '../../../generated/tapeproxy.js';
import type { DriveHandle, PseudoDrive } from '../../drive/pseudo-drive.js';
import type { PooledRecord, RecordPool } from '../../drive/record-pool.js';
import { Errno, errnoName, TapeError, tapeError } from '../../drive/tape-error.js';
import { requestOf } from './channel-frames.js';
import type { AttachedChannel, RecordChannelServer } from './record-channel-server.js';

type Result = Omit<DriveReply, 'id' | 'flags' | 'recordChannel'> & Partial<Pick<DriveReply, 'recordChannel'>>;

const ACCESS = { [Access.ACCESS_READ]: 'read', [Access.ACCESS_WRITE]: 'write', [Access.ACCESS_READ_WRITE]: 'read-write' } as const;

/**
 * One `Session` stream = one open of a drive. Requests run in order; the stream's end closes the
 * drive like a process exit closes its file descriptor (filemark if the last operation was a write).
 */
export function serveSession(
  call: ServerDuplexStream<DriveRequest, DriveReply>,
  drives: ReadonlyMap<string, PseudoDrive>,
  log: Logger,
  pool: RecordPool,
  channels?: RecordChannelServer,
): void {
  let drive: PseudoDrive | undefined;
  let handle: DriveHandle | undefined;
  /** A pipelined request after this must not run (see `pipelined` in the proto). */
  let pipelineBroken = false;
  /** Where requests come from: the stream, or the record channel once attached. */
  let channel: AttachedChannel | undefined;
  /** The stream ended: a channel that attaches now has no session to serve. */
  let over = false;

  async function execute(req: DriveRequest, record: PooledRecord | undefined): Promise<Result> {
    if (req.open) {
      if (handle) throw tapeError('EINVAL', 'this session already has a drive open');
      const d = drives.get(req.open.drive);
      if (!d) {
        throw tapeError('ENOENT', `no drive named '${req.open.drive}'; drives: ${[...drives.keys()].join(', ')}`);
      }
      const access = ACCESS[req.open.access as keyof typeof ACCESS];
      if (!access) throw tapeError('EINVAL', `unknown access mode ${req.open.access}`);
      handle = await d.open({ access, nonBlocking: req.open.nonBlocking, rewindOnClose: req.open.rewindOnClose });
      drive = d; // the drive tells the log (event 'opened')
      return req.open.recordChannel && channels ? { done: {}, recordChannel: channels.offer(attach) } : { done: {} };
    }
    if (!handle || !drive) throw tapeError('EBADF', 'open a drive first');
    if (req.write && record) return { written: await handle.write(record.data, { behind: req.write.behind, lease: record }) };
    if (req.read) return { data: await handle.read(req.read.maxBytes) };
    if (req.mt) {
      await handle.ioctl(req.mt.op, req.mt.count);
      return { done: {} };
    }
    if (req.status) return { status: await handle.status() };
    if (req.position) return { position: await handle.position() };
    if (req.close) {
      const h = handle;
      handle = undefined;
      await h.close();
      return { done: {} };
    }
    throw tapeError('EINVAL', 'request carries no operation');
  }

  async function answer(req: DriveRequest, record: PooledRecord | undefined): Promise<void> {
    let result: Result;
    if (req.pipelined && pipelineBroken) {
      result = errorResult(tapeError('ECANCELED', 'not executed: an earlier pipelined request failed or met a filemark'));
    } else {
      result = await execute(req, record).catch((err: unknown) => errorResult(err, drive, log));
      pipelineBroken = req.pipelined ? pipelineBroken || endsPipeline(result) : endsPipeline(result);
    }
    if (!call.write({ id: req.id, recordChannel: undefined, ...result, flags: flagsOf(drive) })) await drainedOrGone(call);
  }

  async function finish(reason: string): Promise<void> {
    const h = handle;
    handle = undefined;
    if (!h || !drive?.isOpenedBy(h)) return; // closed already (by the client, or at shutdown)
    await h.close().catch((err: Error) => log.error({ drive: drive?.name, err: err.message }, 'close at session end failed'));
    log.info({ drive: drive?.name, reason }, 'drive closed at end of session');
  }

  // Requests are handled one at a time in arrival order; reading pauses while many wait. Events
  // rather than `for await`: ending the call after an async iterator leaves grpc-js clients hanging
  // (grpc-node issue 1839).
  let chain = Promise.resolve();
  let waiting = 0;
  const enqueue = (work: () => Promise<void>) => {
    chain = chain.then(work).catch((err: Error) => log.error({ drive: drive?.name, err: err.message }, 'session failure'));
  };
  /** Queues a request; returns false when enough wait that its source should stop reading. */
  const receive = (req: DriveRequest, record: PooledRecord | undefined): boolean => {
    const release = record?.hold();
    enqueue(async () => {
      await answer(req, record);
      release?.(); // the sinks that still need the record hold it themselves
      if (--waiting === MAX_WAITING / 2) (channel ?? call).resume();
    });
    return ++waiting < MAX_WAITING;
  };
  call.on('data', (req: DriveRequest) => {
    // Out of grpc-js's message as it arrives: half of a receiving daemon's mark-compacts in E's bench
    // rig went to freeing messages kept while their records waited and were written.
    if (!receive(req, req.write ? pool.copyOf(req.write.data) : undefined)) call.pause();
  });
  const ended = (work: () => Promise<void>) => {
    over = true;
    channel?.close();
    enqueue(work);
  };
  call.on('end', () => ended(async () => {
    await finish('client ended the stream');
    call.end();
  }));
  call.on('cancelled', () => ended(() => finish('call cancelled')));
  call.on('error', (err: Error) => ended(() => finish(`stream error: ${err.message}`)));

  /** The record channel this session offered: requests come from there now, records pooled already. */
  function attach(attached: AttachedChannel): void {
    if (over || channel) return attached.close(); // one channel per session, while it lasts
    channel = attached;
    attached.onFrames = (frames) => {
      let more = true;
      for (const frame of frames) {
        let req: DriveRequest;
        try {
          req = requestOf(frame);
        } catch (err) {
          attached.close();
          log.warn({ drive: drive?.name, err: (err as Error).message }, 'record channel closed: malformed request');
          return false;
        }
        more = receive(req, req.write ? (frame.record ?? pool.take(0)) : frame.record);
      }
      return more;
    };
    // Its end is the session's, as the stream's is: what the client sent after the last whole
    // frame never reached the drive, and the client learns so when the stream ends.
    attached.onClose = (why) => enqueue(async () => {
      await finish(`record channel: ${why}`);
      call.end();
    });
  }
}

/**
 * Resolves when the call takes writes again, or is over: a client that went away (a link that
 * stalled, then dropped) never drains, and waiting for it would hold the drive, EBUSY to the same
 * client resuming, since the session's end waits behind this reply.
 */
function drainedOrGone(call: ServerDuplexStream<DriveRequest, DriveReply>): Promise<void> {
  if (call.cancelled || call.destroyed) return Promise.resolve();
  const ends = ['drain', 'cancelled', 'close', 'error'] as const;
  return new Promise((resolve) => {
    const done = () => {
      for (const e of ends) call.off(e, done);
      resolve();
    };
    for (const e of ends) call.on(e, done);
  });
}

/** Requests read ahead of the one being executed (pipelining depth the daemon buffers). */
const MAX_WAITING = 32;

function endsPipeline(result: Result): boolean {
  return result.error !== undefined || result.data?.length === 0;
}

function flagsOf(drive: PseudoDrive | undefined): DriveReply['flags'] {
  if (!drive) return undefined;
  const state = drive.state();
  return { ...drive.flags(), volume: state.volume, fileno: state.fileno, blkno: state.blkno };
}

function errorResult(err: unknown, drive?: PseudoDrive, log?: Logger): Result {
  if (err instanceof TapeError) {
    // ENOSPC is the drive's event 'logical-eot'; ECANCELED follows an error already logged.
    if (log && err.errno !== Errno.ENOSPC && err.errno !== Errno.ECANCELED) {
      log.warn({ drive: drive?.name, errno: errnoName(err.errno) }, err.message);
    }
    return { error: { errno: err.errno, name: errnoName(err.errno), message: err.message } };
  }
  log?.error({ drive: drive?.name, err }, 'unexpected failure');
  return { error: { errno: Errno.EIO, name: 'EIO', message: (err as Error).message ?? String(err) } };
}
