import * as grpc from '@grpc/grpc-js';
import type { DriveEvent as DriveEventMessage, WatchReply, WatchRequest } from '../../../generated/tapeproxy.js';
import { describeEvent, type DriveEvent, type EventBus } from '../../events/events.js';
import { driveInfo, type ServedDrive } from './server.js';

const DEFAULT_INTERVAL_MS = 1000;
const MIN_INTERVAL_MS = 100;
/** setInterval's longest delay: a longer one (interval_ms is 32 bits unsigned) would fire every millisecond. */
const MAX_INTERVAL_MS = 2 ** 31 - 1;

/**
 * The Watch stream: a snapshot of the drives at once and every interval, and the events of the
 * bus as they happen. A client that does not keep up misses snapshots (the next one says it all),
 * never events.
 */
export class WatchService {
  private readonly calls = new Set<grpc.ServerWritableStream<WatchRequest, WatchReply>>();

  constructor(
    private readonly drives: ReadonlyMap<string, ServedDrive>,
    private readonly bus: EventBus,
  ) {}

  serve(call: grpc.ServerWritableStream<WatchRequest, WatchReply>): void {
    const { drive, intervalMs } = call.request;
    if (drive && !this.drives.has(drive)) {
      call.emit('error', { code: grpc.status.NOT_FOUND, details: `no drive named '${drive}'; drives: ${[...this.drives.keys()].join(', ')}` });
      return;
    }
    const watched = drive ? [this.drives.get(drive)!] : [...this.drives.values()];
    let congested = false;
    const send = (reply: WatchReply) => {
      if (!call.write(reply)) {
        congested = true;
        call.once('drain', () => (congested = false));
      }
    };
    const snapshot = () => {
      if (!congested) send({ snapshot: { timeMs: Date.now(), drives: watched.map(driveInfo) } });
    };
    const unsubscribe = this.bus.subscribe((e) => {
      if (!drive || e.drive === drive) send({ event: eventMessage(e) });
    });
    const timer = setInterval(snapshot, Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, intervalMs || DEFAULT_INTERVAL_MS)));
    this.calls.add(call);
    const stop = () => {
      clearInterval(timer);
      unsubscribe();
      this.calls.delete(call);
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('error', stop);
    snapshot();
  }

  /** Ends every stream (the daemon stops). */
  close(): void {
    for (const call of this.calls) call.end();
  }
}

/** The flat wire form: fields an event type does not have are left at their defaults. */
export function eventMessage(e: DriveEvent): DriveEventMessage {
  return {
    seq: e.seq,
    timeMs: e.time,
    drive: e.drive,
    type: e.type,
    message: describeEvent(e),
    volume: 'volume' in e ? (e.volume ?? 0) : 0,
    sink: 'sink' in e ? (e.sink ?? '') : '',
    access: e.type === 'opened' ? e.access : '',
    nonBlocking: e.type === 'opened' && e.nonBlocking,
    autoloaded: e.type === 'opened' && e.autoloaded,
    fileno: 'fileno' in e ? e.fileno : 0,
    blkno: e.type === 'closed' ? e.blkno : e.type === 'copy-failed' ? e.record : 0,
    object: e.type === 'copy-failed' ? e.object : 0,
    count: e.type === 'filemark' ? e.count : 0,
    physical: e.type === 'logical-eot' && e.physical,
    error: 'error' in e ? (e.error ?? '') : '',
    setAside: e.type === 'copy-failed' && e.setAside,
    ok: e.type === 'verify' && e.ok,
  };
}
