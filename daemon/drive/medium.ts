import type { Lease } from './record-pool.js';
/**
 * What the pseudo drive needs from "the tape": the mirror of all sinks implements it, so the drive
 * never sees transports. Positions are logical object numbers from BOT (records and filemarks both
 * count), which is also what MTIOCPOS/MTSEEK use.
 */

/** One object under the head. `blank` is SCSI's BLANK CHECK: end of recorded data. */
export type TapeObject = { kind: 'record'; data: Buffer } | { kind: 'filemark' } | { kind: 'blank' };

/**
 * Result of a SPACE: how many objects of the asked kind were crossed, and what stopped it early.
 * Forward over a filemark: positioned after it. Backward over a filemark: positioned before it
 * (its BOT side). `blank`: positioned at end of data. `bot`: at object 0.
 */
export interface SpaceResult {
  crossed: number;
  stoppedAt?: 'filemark' | 'blank' | 'bot';
}

export type WriteOutcome = 'ok' | 'early-warning';

export interface Medium {
  readonly loaded: boolean;
  /** Cartridge write protection (GMT_WR_PROT), not the O_RDONLY of an open. */
  readonly writeProtected: boolean;
  readonly volume: number;
  readonly position: number;
  /** Some copy's current volume is past its early-warning point. */
  readonly pastEarlyWarning: boolean;

  /** Loads the next volume on every copy (lockstep). */
  loadNext(): Promise<void>;
  /** Syncs and unloads every copy; `loadNext` then moves them all to the following volume. */
  unload(): Promise<void>;
  hasNextVolume(): Promise<boolean>;

  /** Whether a record of `recordBytes` would fit on every copy here (false: a copy's physical end). */
  fits(recordBytes: number): Promise<boolean>;
  /**
   * Writes one record; throws ENOSPC (nothing written anywhere) at a copy's physical end. With a
   * lease, the record's memory is reused once the call returns unless held (RecordPool).
   */
  write(record: Buffer, lease?: Lease): Promise<WriteOutcome>;
  writeFilemarks(count: number): Promise<void>;
  read(): Promise<TapeObject>;
  spaceRecords(count: number): Promise<SpaceResult>;
  spaceFilemarks(count: number): Promise<SpaceResult>;
  rewind(): Promise<void>;
  locate(object: number): Promise<void>;
  /** Discards everything from the position on. */
  erase(): Promise<void>;
  atEndOfData(): Promise<boolean>;
  /** Sync point: resolves when every copy has everything before it; throws the first copy error. */
  sync(): Promise<void>;
}
