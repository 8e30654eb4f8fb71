import { readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CopyFailure, VolumeManifest } from '../manifest/manifest.js';
import { readJournal } from './journal.js';

/**
 * The catalog: per drive, a journal (DRIVE.jsonl in the catalog folder) of writing sessions —
 * when, which copies, which volumes and files with their manifests — and of verify results.
 * A session starts with the first write after the drive was idle and ends when the writer closes
 * the drive short of early warning (a multi-volume backup is one session) or the daemon stops.
 */
export type CatalogEntry =
  | { type: 'session'; session: string; drive: string; started: string; copies: string[] }
  | { type: 'volume'; session: string; time: string; manifest: VolumeManifest }
  | { type: 'end'; session: string; ended: string; volumes: number[]; stopped?: boolean }
  /** A copy failed during the session: from where it stopped on, it lacks what was written. */
  | ({ type: 'copy-failed'; session: string; time: string; copy: string } & CopyFailure)
  /** A verify of a volume, for every session that wrote a file on it. */
  | { type: 'verify'; sessions: string[]; time: string; volume: number; ok: boolean; copies: string[]; problems: string[] };

/** /var/lib/tapeproxy/catalog for root (systemd's StateDirectory), else under ~/.local/state. */
export function defaultCatalogDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/tapeproxy/catalog';
  return join(process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'tapeproxy', 'catalog');
}

export function journalPath(dir: string, drive: string): string {
  return join(dir, `${drive}.jsonl`);
}

/** A session as the catalog tells it: its entries gathered. */
export interface Session {
  session: string;
  drive: string;
  started: string;
  ended?: string;
  /** The daemon stopped during the session (or the end was never written: a crash). */
  unfinished: boolean;
  copies: string[];
  /** The latest manifest of each volume the session wrote. */
  volumes: VolumeManifest[];
  verifications: Extract<CatalogEntry, { type: 'verify' }>[];
  /** Copies that failed during the session, and where. */
  failures: Extract<CatalogEntry, { type: 'copy-failed' }>[];
}

/** Every session in the catalog folder, oldest first (optionally one drive's). */
export async function readSessions(dir: string, drive?: string): Promise<Session[]> {
  const names = drive ? [`${drive}.jsonl`] : (await readdir(dir).catch(() => [])).filter((n) => n.endsWith('.jsonl'));
  const sessions = new Map<string, Session>();
  for (const name of names) {
    const entries = (await readJournal(join(dir, name)).catch(() => [])) as CatalogEntry[];
    for (const e of entries) {
      if (e.type === 'session') {
        sessions.set(e.session, { ...e, unfinished: true, volumes: [], verifications: [], failures: [] });
        continue;
      }
      if (e.type === 'verify') {
        for (const id of e.sessions) sessions.get(id)?.verifications.push(e);
        continue;
      }
      const s = sessions.get(e.session);
      if (!s) continue;
      if (e.type === 'copy-failed') s.failures.push(e);
      else if (e.type === 'volume') s.volumes = [...s.volumes.filter((v) => v.volume !== e.manifest.volume), e.manifest].sort((a, b) => a.volume - b.volume);
      else if (e.type === 'end') Object.assign(s, { ended: e.ended, unfinished: e.stopped === true });
    }
  }
  return [...sessions.values()].sort((a, b) => a.started.localeCompare(b.started));
}
