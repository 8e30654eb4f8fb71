import type { Argv } from 'yargs';
import { defaultCatalogDir, readSessions, type Session } from '../../daemon/catalog/catalog.js';
import { digestOf } from '../../daemon/manifest/manifest.js';
import { type GlobalArgs, UsageError } from '../cli-error.js';

interface Args {
  terms?: string[];
  drive?: string;
  since?: string;
  'catalog-dir'?: string;
  files: boolean;
  json: boolean;
}

export const catalogCommand = {
  command: 'catalog [terms..]',
  describe: "List the drives' writing sessions: when, copies, volumes, files, digests, verify results",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('terms', { type: 'string', array: true, describe: 'only sessions that mention every term (a copy, a content type, a digest prefix, ...)' })
      .option('drive', { type: 'string', describe: "one drive's sessions" })
      .option('since', { type: 'string', describe: 'sessions started since a date (2026-11-20, 2026-11-20T10:00) or an age (12h, 7d)' })
      .option('catalog-dir', { type: 'string', describe: `the catalog (default ${defaultCatalogDir()})` })
      .option('files', { type: 'boolean', default: false, describe: 'list every tape file with its digest' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .example('$0 catalog --drive pnst0 --since 7d', "last week's sessions of pnst0")
      .example('$0 catalog --files cde54cb4', 'the session that wrote a file with this digest, its files listed'),
  handler: async (args: Args) => {
    const since = args.since === undefined ? undefined : parseSince(args.since);
    const terms = (args.terms ?? []).map((t) => t.toLowerCase());
    const sessions = (await readSessions(args['catalog-dir'] ?? defaultCatalogDir(), args.drive)).filter(
      (s) => (!since || s.started >= since) && terms.every((t) => searchable(s).includes(t)),
    );
    if (args.json) console.log(JSON.stringify(sessions, null, 2));
    else console.log(sessions.map((s) => formatSession(s, args.files)).join('\n') || 'no sessions');
  },
};

/** What terms are looked for in: names, copies, content types and digests. */
function searchable(s: Session): string {
  const files = s.volumes.flatMap((v) => v.files.filter((f) => f.session === s.session));
  return [s.session, s.drive, ...s.copies, ...files.flatMap((f) => [f.content, digestOf(f).digest ?? ''])].join('\n').toLowerCase();
}

/** An ISO date (or date and time), or an age such as 12h or 7d, as an ISO time. */
function parseSince(text: string): string {
  const age = /^(\d+)([mhd])$/.exec(text);
  if (age) return new Date(Date.now() - Number(age[1]) * { m: 60e3, h: 3600e3, d: 86400e3 }[age[2] as 'm' | 'h' | 'd']).toISOString();
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new UsageError(`--since: '${text}' is neither a date (2026-11-20) nor an age (12h, 7d)`);
  return date.toISOString();
}

const time = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, '');

function formatSession(s: Session, withFiles: boolean): string {
  const files = s.volumes.flatMap((v) => v.files.filter((f) => f.session === s.session));
  const records = files.reduce((n, f) => n + f.records, 0);
  const bytes = files.reduce((n, f) => n + f.bytes, 0);
  const volumes = s.volumes.map((v) => v.volume);
  const end = s.ended ? ` to ${time(s.ended)}` : '';
  const state = s.unfinished ? (s.ended ? ' (the daemon stopped during it)' : ' (no end recorded: still writing, or the daemon was killed)') : '';
  const lines = [
    `${s.session}: drive ${s.drive}, ${time(s.started)}${end}${state}`,
    `  volumes ${volumes.join(', ') || '-'}; ${files.length} files, ${records} records, ${bytes} bytes; ${verdicts(s)}`,
    `  copies: ${s.copies.join(', ')}`,
    ...s.failures.map(
      (f) =>
        `  copy FAILED: ${f.copy} at volume ${f.volume}, object ${f.object}${f.fileno >= 0 ? ` (file ${f.fileno}, record ${f.record})` : ''}` +
        `, ${f.setAside ? 'set aside' : 'the writer got the error'} (${time(f.time)}): ${f.error}`,
    ),
  ];
  if (withFiles) {
    for (const v of s.volumes) {
      v.files.forEach((f, i) => {
        if (f.session !== s.session) return;
        const { hash, digest } = digestOf(f);
        lines.push(`  volume ${v.volume} file ${i}: ${f.content}, ${f.records} records, ${f.bytes} bytes, ${hash} ${digest ?? 'unknown (rewritten in place)'}`);
      });
    }
  }
  return lines.join('\n');
}

/** The latest verify result of each volume. */
function verdicts(s: Session): string {
  const latest = new Map(s.verifications.map((v) => [v.volume, v]));
  if (latest.size === 0) return 'not verified';
  const failed = [...latest.values()].filter((v) => !v.ok);
  const when = time([...latest.values()].map((v) => v.time).sort().at(-1)!);
  if (failed.length > 0) return `verify FAILED for volume ${failed.map((v) => v.volume).join(', ')} (${when})`;
  return `verified OK, volume ${[...latest.keys()].sort((a, b) => a - b).join(', ')} (${when})`;
}
