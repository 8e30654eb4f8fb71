import type { TapeObject } from '../drive/medium.js';
import type { Lease } from '../drive/record-pool.js';

/** Where a record of a given size would leave a copy's capacity model. */
export type Room = 'ok' | 'early-warning' | 'full';

export interface SinkStatus {
  name: string;
  volume: number;
  loaded: boolean;
  position: number;
  /** Bytes the current volume holds, as its capacity model counts them. */
  used: number;
  capacity?: number;
  earlyWarningAt?: number;
  earlyWarning: boolean;
  queuedBytes: number;
  recordsWritten: number;
  bytesWritten: number;
  failure?: string;
}

/**
 * One copy of the tape. Writes are queued (write-behind) and reported at `sync`; positioning and
 * reading are only asked of readable sinks. A sink keeps its own position; the mirror relocates a
 * sink that was not moved along with the copy it read from before writing to it.
 */
export interface Sink {
  /** For logs and status: the URI without secrets. */
  readonly name: string;
  readonly position: number;
  readonly earlyWarning: boolean;
  readonly queuedBytes: number;
  /**
   * Bytes this copy still takes after it reports early warning, when known. What the writer had
   * acknowledged before the drive reported early warning must fit in it.
   */
  readonly earlyWarningZone: number | undefined;
  /** The first write error; sticky until the next load. */
  readonly failure: Error | undefined;
  /** False for a copy that is written but not read back (remote drives): reads use another copy. */
  readonly readable?: boolean;

  load(volume: number): Promise<{ writeProtected: boolean }>;
  unload(): Promise<void>;
  hasVolume(volume: number): Promise<boolean>;

  room(recordBytes: number): Room;
  /**
   * Queues a record. A sink that `holdsLeases` is given the record's lease when it is pooled, and
   * holds it while it keeps the record; other sinks are given a record they own.
   */
  write(record: Buffer, lease?: Lease): void;
  readonly holdsLeases?: boolean;
  writeFilemarks(count: number): void;
  /** Discards everything from the position on. */
  erase(): void;
  /** Resolves once at most `maxQueuedBytes` wait to be written. */
  drain(maxQueuedBytes: number): Promise<void>;
  sync(): Promise<void>;

  locate(object: number): Promise<void>;
  /** Reads the object under the head and moves past it (`blank` does not move). */
  next(withData: boolean): Promise<TapeObject>;
  /** Moves back over one object. */
  previous(): Promise<'record' | 'filemark' | 'bot'>;
  atEnd(): Promise<boolean>;

  status(): SinkStatus;
  close(): Promise<void>;
}
