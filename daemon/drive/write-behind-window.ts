/**
 * The write-behind window of a front end that acknowledges writes before the drive has them (the
 * shim, proto/shim-frames.md; the rmt server): how many records and bytes may be unanswered.
 */
export interface WriteBehindWindow {
  records: number;
  bytes: number;
}

const RECORDS = 32;

/** Bytes in flight when no copy has a capacity. */
const MAX_BYTES = 32 * 2 ** 20;

/**
 * Half the smallest early-warning zone (the rest covers SIMH framing and a margin), so whatever a
 * front end acknowledged before the drive reached early warning fits on every copy (DESIGN.md
 * invariant 4). A zone smaller than a record means the front end waits for every such record.
 */
export function writeBehindWindow(earlyWarningZone: number | undefined): WriteBehindWindow {
  const bytes = earlyWarningZone === undefined ? MAX_BYTES : Math.max(1, Math.min(MAX_BYTES, Math.floor(earlyWarningZone / 2)));
  return { records: RECORDS, bytes };
}
