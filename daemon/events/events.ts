/**
 * What happens to a drive that an operator or a program watching it cares about, as one typed
 * stream: the daemon's log, the gRPC Watch stream, the metrics and the health service all read it.
 * Nothing here is per record: events are state changes (opens, filemarks, early warning, volumes,
 * failures), and counters are read from the sinks' status when someone asks.
 */

/** An event as its source publishes it; the bus adds the drive, the time and a sequence number. */
export type DriveEventBody =
  /** `autoloaded`: this open loaded the next volume (a multi-volume writer going on). */
  | { type: 'opened'; access: 'read' | 'write' | 'read-write'; nonBlocking: boolean; volume: number; autoloaded: boolean }
  | { type: 'closed'; volume: number; fileno: number; blkno: number; error?: string }
  | { type: 'filemark'; count: number; volume: number; fileno: number }
  /** A copy passed its early-warning point (once per copy and volume). */
  | { type: 'early-warning'; sink: string; volume: number }
  /** The writer was told ENOSPC: logical end of tape (`physical`: a copy's physical end). */
  | { type: 'logical-eot'; volume: number; physical: boolean }
  /** A volume change began: copies that need a cartridge (a changer, an operator) wait for it now. */
  | { type: 'volume-loading'; volume: number }
  | { type: 'volume-loaded'; volume: number }
  | { type: 'volume-unloaded'; volume: number }
  /** `setAside`: the drive goes on without the copy (min-copies); otherwise the writer gets EIO. */
  /** Where the copy stopped: object number on the volume, and its file and record there (-1 when not known). */
  | { type: 'copy-failed'; sink: string; volume: number; object: number; fileno: number; record: number; error: string; setAside: boolean }
  /** A check of a copy against what was written (published by verification, e.g. `tapeproxy verify`). */
  | { type: 'verify'; sink?: string; volume?: number; ok: boolean; message: string };

export type DriveEvent = DriveEventBody & {
  drive: string;
  /** Milliseconds since the epoch. */
  time: number;
  /** Increasing over the daemon's life, so a consumer can tell order and gaps. */
  seq: number;
};

/** How a drive, its mirror or a verifier publishes: the drive's name is bound in. */
export type PublishEvent = (event: DriveEventBody) => void;

type Listener = (event: DriveEvent) => void;

/** One in-process event source for the whole daemon. Listeners run synchronously, in order. */
export class EventBus {
  private seq = 0;
  private readonly listeners = new Set<Listener>();

  constructor(private readonly now: () => number = Date.now) {}

  publish(drive: string, body: DriveEventBody): DriveEvent {
    const event: DriveEvent = { ...body, drive, time: this.now(), seq: ++this.seq };
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** A publisher for one drive's events. */
  forDrive(drive: string): PublishEvent {
    return (body) => this.publish(drive, body);
  }

  /** Returns the function that unsubscribes. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The event in a sentence, as the log and `tapeproxy watch` show it. */
export function describeEvent(e: DriveEvent): string {
  switch (e.type) {
    case 'opened':
      return `opened for ${e.access}${e.nonBlocking ? ' (non-blocking)' : ''}, volume ${e.volume}${e.autoloaded ? ' (loaded by this open)' : ''}`;
    case 'closed':
      return `closed at file ${e.fileno}, block ${e.blkno} of volume ${e.volume}${e.error ? `; the close failed: ${e.error}` : ''}`;
    case 'filemark':
      return `${e.count === 1 ? 'filemark' : `${e.count} filemarks`} written, volume ${e.volume}, now file ${e.fileno}`;
    case 'early-warning':
      return `early warning on ${e.sink} (volume ${e.volume})`;
    case 'logical-eot':
      return `logical end of tape reported to the writer (volume ${e.volume}${e.physical ? ', a copy is at its physical end' : ''})`;
    case 'volume-loading':
      return `loading volume ${e.volume} on every copy`;
    case 'volume-loaded':
      return `volume ${e.volume} loaded`;
    case 'volume-unloaded':
      return `volume ${e.volume} unloaded`;
    case 'copy-failed':
      return (
        `copy failed: ${e.setAside ? 'set aside, the backup goes on with the other copies' : 'the writer gets the error'}; ` +
        `${e.sink} at volume ${e.volume}, object ${e.object}${e.fileno >= 0 ? ` (file ${e.fileno}, record ${e.record})` : ''}: ${e.error}`
      );
    case 'verify':
      return `verify ${e.ok ? 'passed' : 'FAILED'}${e.sink ? ` on ${e.sink}` : ''}${e.volume ? ` (volume ${e.volume})` : ''}: ${e.message}`;
  }
}
