/**
 * The write-behind window of a front end that acknowledges writes before the drive has them (the
 * shim, proto/shim-frames.md; the rmt server): how many records and bytes may be unanswered.
 */
export interface WriteBehindWindow {
  records: number;
  bytes: number;
}

/**
 * How far a front end may run ahead. A copy's failure reaches the writer at its next write, or at
 * close(2) where close can fail. A CUSE device gets no FLUSH from the kernel, so its close cannot:
 * a failure seen after the writer's last write would reach only the log (the kernel rig's
 * 41-nst-failure saw tar exit 0 with 128 records in flight), and 32 records keep that gap short.
 * A FUSE file's close returns the FLUSH's error, so it may run further ahead: at 10 KiB records
 * 128 records in flight did 40,600-43,300 records/s against 33,300 with 32 (fewer answers and
 * socket wake-ups), and at most 8 MiB of them keep large records within the shim's ring.
 */
const LIMITS = {
  closeCannotFail: { records: 32, bytes: 32 * 2 ** 20 },
  closeReportsFailure: { records: 128, bytes: 8 * 2 ** 20 },
};

/** The most bytes any front end may have unanswered. */
export const LARGEST_WINDOW_BYTES = Math.max(LIMITS.closeCannotFail.bytes, LIMITS.closeReportsFailure.bytes);

/**
 * Within half the smallest early-warning zone (the rest covers SIMH framing and a margin), so
 * whatever a front end acknowledged before the drive reached early warning fits on every copy
 * (DESIGN.md invariant 4). A zone smaller than a record means the front end waits for every such
 * record.
 */
export function writeBehindWindow(earlyWarningZone: number | undefined, closeReportsFailure = false): WriteBehindWindow {
  const limit = closeReportsFailure ? LIMITS.closeReportsFailure : LIMITS.closeCannotFail;
  const bytes = earlyWarningZone === undefined ? limit.bytes : Math.max(1, Math.min(limit.bytes, Math.floor(earlyWarningZone / 2)));
  return { records: limit.records, bytes };
}
