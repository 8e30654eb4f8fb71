/**
 * The write-behind window of a front end that acknowledges writes before the drive has them (the
 * shim, proto/shim-frames.md; the rmt server): how many records and bytes may be unanswered.
 */
export interface WriteBehindWindow {
  records: number;
  bytes: number;
}

/**
 * Replies come back in batches of a quarter of the window (shim-connection.ts), and small records
 * are sent in batches as long: at 10 KiB, 128 records gave Cdd 40,600-43,300 records/s against
 * 33,300 with 32 (the daemon's main thread 0.8 CPU s/GiB against 1.2).
 */
const RECORDS = 128;

/**
 * Bytes in flight when no copy has a capacity: 32 records of 256 KiB. With 32 MiB and 128
 * records, large records filled the shim's 32 MiB record ring and crossed the socket meanwhile.
 */
const MAX_BYTES = 8 * 2 ** 20;

/**
 * Half the smallest early-warning zone (the rest covers SIMH framing and a margin), so whatever a
 * front end acknowledged before the drive reached early warning fits on every copy (DESIGN.md
 * invariant 4). A zone smaller than a record means the front end waits for every such record.
 */
export function writeBehindWindow(earlyWarningZone: number | undefined): WriteBehindWindow {
  const bytes = earlyWarningZone === undefined ? MAX_BYTES : Math.max(1, Math.min(MAX_BYTES, Math.floor(earlyWarningZone / 2)));
  return { records: RECORDS, bytes };
}
