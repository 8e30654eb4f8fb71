import type { DriveEvent, Snapshot } from '../../generated/tapeproxy.js';

/**
 * The watch as plain lines, one per update, for logs and scripts (stdout not a terminal): logfmt
 * (`key=value`, values with spaces quoted), figures in bytes and bytes per second.
 *   TIME drive=NAME state=... volume=N ...               per drive, at each snapshot
 *   TIME drive=NAME sink=URI state=... bytes=N rate=N ... per copy, at each snapshot
 *   TIME drive=NAME event=TYPE ... msg="..."              per event
 */
export function snapshotLines(snapshot: Snapshot): string[] {
  const time = new Date(snapshot.timeMs).toISOString();
  return snapshot.drives.flatMap((d) => {
    const s = d.state!;
    const drive = logfmt({
      drive: d.name,
      loaded: s.loaded,
      loading: s.loading,
      open: s.inUse,
      rw: s.rw,
      volume: s.volume,
      file: s.fileno,
      block: s.blkno,
      object: s.position,
      ew: s.pastEarlyWarning,
      session_ms: d.sessionStartedMs ? (d.sessionEndedMs || snapshot.timeMs) - d.sessionStartedMs : undefined,
    });
    const copies = d.sinks.map((k) =>
      logfmt({
        drive: d.name,
        sink: k.name,
        state: k.state,
        volume: k.volume,
        object: k.position,
        bytes: k.bytesWritten,
        records: k.recordsWritten,
        rate: Math.round(k.rate),
        avg: Math.round(k.averageRate),
        session_bytes: k.sessionBytes,
        used: k.used,
        capacity: k.capacity,
        to_ew: k.earlyWarningAt === undefined ? undefined : k.earlyWarningAt - k.used,
        queued: k.queuedBytes,
        failure: k.failure || undefined,
      }),
    );
    return [drive, ...copies].map((line) => `${time} ${line}`);
  });
}

export function eventLine(e: DriveEvent): string {
  const { drive, type, volume, sink, error, message } = e;
  return `${new Date(e.timeMs).toISOString()} ${logfmt({ drive, event: type, volume, sink: sink || undefined, error: error || undefined, msg: message })}`;
}

function logfmt(fields: Record<string, string | number | boolean | undefined>): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${quote(String(v))}`)
    .join(' ');
}

function quote(value: string): string {
  return value === '' || /[\s"=\\]/.test(value) ? `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"` : value;
}
