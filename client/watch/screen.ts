import type { DriveEvent, DriveInfo, SinkState, Snapshot } from '../../generated/tapeproxy.js';
import { bar, clock, formatBytes, formatDuration, formatRate } from './format.js';

/** What the terminal view shows: the latest snapshot and the latest events. */
export interface WatchModel {
  server: string;
  intervalMs: number;
  snapshot?: Snapshot;
  events: DriveEvent[];
}

/** The view keeps this many events; the screen shows those that fit. */
export const KEPT_EVENTS = 50;

const RESET = '\x1b[0m';
const COLORS: Record<string, string> = { red: '\x1b[31m', yellow: '\x1b[33m', green: '\x1b[32m', bold: '\x1b[1m', dim: '\x1b[2m' };

/** The drive's state, the most pressing first. */
function driveStateLabel(d: DriveInfo): string {
  const s = d.state!;
  if (d.sinks.some((k) => k.failure && !k.setAside)) return 'COPY FAILED';
  if (s.loading) return 'WAITING FOR A VOLUME';
  if (!s.loaded) return 'NO VOLUME';
  if (s.pastEarlyWarning) return 'EW REACHED';
  if (s.rw === 'writing') return 'WRITING';
  if (s.rw === 'reading') return 'READING';
  return s.inUse ? 'OPEN' : 'IDLE';
}

const COPY_STATE_LABELS: Record<string, string> = {
  'failed': 'FAILED',
  'set-aside': 'FAILED, set aside',
  'waiting-for-volume': 'waiting for a volume',
  'no-volume': 'no volume',
  'early-warning': 'EW reached',
};

function colorOf(label: string): string {
  if (/FAIL/.test(label)) return 'red';
  if (/WAIT|EW|NO VOLUME|no volume/i.test(label)) return 'yellow';
  if (/WRIT|READ/i.test(label)) return 'green';
  return 'dim';
}

/** A piece of a line and its color name. */
type Segment = [text: string, color?: string];

/** The screen as lines of at most `width` characters (colors not counted) and at most `height` lines. */
export function renderScreen(model: WatchModel, width: number, height: number, color: boolean): string[] {
  const lines: Segment[][] = [];
  const time = model.snapshot ? clock(model.snapshot.timeMs) : '--:--:--';
  lines.push([[`tapeproxy watch  ${model.server}  ${time}  every ${model.intervalMs / 1000}s  (q quits)`]]);
  if (!model.snapshot) lines.push([['waiting for the first snapshot...']]);
  for (const d of model.snapshot?.drives ?? []) {
    const s = d.state!;
    const label = driveStateLabel(d);
    const where = s.loaded ? `  volume ${s.volume}  file ${s.fileno} block ${s.blkno}  object ${s.position}` : '';
    const elapsed = (d.sessionEndedMs || model.snapshot!.timeMs) - d.sessionStartedMs;
    const session = d.sessionStartedMs ? `  session ${formatDuration(elapsed)}${d.sessionEndedMs ? ' (ended)' : ''}` : '';
    lines.push([], [[`${d.name}  `, 'bold'], [label, colorOf(label)], [where + session]]);
    for (const k of d.sinks) lines.push(...copyLines(k, width));
  }
  const room = height - lines.length - 2;
  if (room > 0 && model.events.length > 0) {
    lines.push([], [['events', 'bold']]);
    for (const e of model.events.slice(-room)) lines.push([[`  ${clock(e.timeMs)}  ${e.drive}  ${e.message}`]]);
  }
  return lines.slice(0, height).map((line) => paint(fit(line, width), color));
}

/** A copy: its name; state, volume, figures and rates; how far to early warning. */
function copyLines(k: SinkState, width: number): Segment[][] {
  const state = COPY_STATE_LABELS[k.state] ?? k.state;
  const figures =
    ` volume ${k.volume}  object ${k.position}  ${formatBytes(k.bytesWritten)} in ${k.recordsWritten} records` +
    `  now ${formatRate(k.rate)}  avg ${formatRate(k.averageRate)}`;
  const lines: Segment[][] = [[[`  ${k.name}`]], [['    '], [state.padEnd(20), colorOf(state)], [figures]]];
  if (k.failure) {
    lines.push([[`    ${k.failure}`, 'red']]);
  } else if (k.capacity !== undefined && k.earlyWarningAt !== undefined) {
    const toWarning = k.earlyWarningAt - k.used;
    const text =
      toWarning > 0
        ? `${Math.floor((k.used / k.earlyWarningAt) * 100)}%  ${formatBytes(toWarning)} to early warning (at ${formatBytes(k.earlyWarningAt)})`
        : `past early warning by ${formatBytes(-toWarning)}; ${formatBytes(Math.max(0, k.capacity - k.used))} to the end`;
    lines.push([[`    ${bar(k.used / k.earlyWarningAt, Math.max(10, Math.min(50, width - 70)))}  ${text}`]]);
  } else {
    lines.push([[`    ${formatBytes(k.used)} on this volume; capacity unknown (early warning comes from the drive)`]]);
  }
  return lines;
}

/** Cuts a line to `width` characters. */
function fit(line: Segment[], width: number): Segment[] {
  let left = width;
  return line.map(([text, name]): Segment => {
    const kept = text.slice(0, Math.max(0, left));
    left -= kept.length;
    return [kept, name];
  });
}

function paint(line: Segment[], color: boolean): string {
  return line.map(([text, name]) => (color && name && text ? `${COLORS[name]}${text}${RESET}` : text)).join('');
}
