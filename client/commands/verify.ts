import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { defaultCatalogDir, journalPath, readSessions } from '../../daemon/catalog/catalog.js';
import { appendOnce } from '../../daemon/catalog/journal.js';
import { imageTemplate, manifestPath } from '../../daemon/manifest/image-paths.js';
import { describesCopy, type ImageManifest, READABLE_FORMATS, type VolumeManifest } from '../../daemon/manifest/manifest.js';
import { verifyVolume, type VerifyCopy, type VolumeVerdict } from '../../daemon/manifest/verifier.js';
import { sinkFromUri } from '../../daemon/sinks/sink-uri.js';
import { innermostUri, stageNames } from '../../daemon/stages/stage-uri.js';
import { type GlobalArgs, UsageError } from '../cli-error.js';

interface Args {
  copies: string[];
  volume?: number;
  manifest?: string;
  drive?: string;
  'catalog-dir'?: string;
}

/** Stops looking for further volumes here (a copy that claims endless volumes). */
const MAX_VOLUMES = 100_000;

export const verifyCommand = {
  command: 'verify <copies..>',
  describe: 'Read copies back and check them against their manifest and each other (exit 0 same, 1 different, 2 usage)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('copies', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'image files (a-%v.tap for every volume) or sink URIs, e.g. encrypt:keyfile=K|file:b-%v.tap; opened read-only',
      })
      .option('volume', { type: 'number', describe: 'only this volume (default: every volume a copy holds, from 1)' })
      .option('manifest', { type: 'string', describe: 'the manifest to check against (default: the newest next to an image copy, else the catalog of --drive)' })
      .option('drive', { type: 'string', describe: 'the drive whose catalog has the manifests (for copies that are not image files)' })
      .option('catalog-dir', { type: 'string', describe: `the catalog (default ${defaultCatalogDir()})` })
      .example('$0 verify /srv/tapes/a-%v.tap "encrypt:keyfile=/etc/tapeproxy/offsite.key|file:/srv/tapes/b-%v.tap"', 'both copies of every volume, against the manifests next to them and against each other')
      .example('$0 verify nst:/dev/nst0 --volume 3 --drive pnst0', 'the cartridge in a real drive, against volume 3 of drive pnst0 in the catalog'),
  handler: async (args: Args) => {
    const catalogDir = args['catalog-dir'] ?? defaultCatalogDir();
    const given = args.manifest ? await readManifest(args.manifest) : undefined;
    const copies: VerifyCopy[] = args.copies.map((c) => ({ label: c, sink: sinkFromUri(readOnly(c.includes(':') ? c : `file:${c}`)) }));
    const differing: number[] = [];
    let volumes = 0;
    try {
      const only = args.volume ?? given?.volume;
      for (let volume = only ?? 1; volume <= (only ?? MAX_VOLUMES); volume++) {
        if (only === undefined && !(await someCopyHas(copies, volume))) break;
        const found = given ? { manifest: given, source: args.manifest! } : await findManifest(args, copies, volume, catalogDir);
        const verdict = withFailedCopies(await verifyVolume(copies, volume, found?.manifest), await failedCopies(copies, volume));
        console.log(formatVerdict(verdict, copies.length, found));
        if (found) await recordVerdict(catalogDir, found.manifest, verdict, args.copies);
        volumes++;
        if (!verdict.ok) differing.push(volume);
      }
    } finally {
      await Promise.allSettled(copies.map((c) => c.sink.close()));
    }
    if (volumes === 0) throw new UsageError(`no copy holds volume 1: check the paths (a multi-volume image set is written a-%v.tap)`);
    if (differing.length > 0) throw new Error(`verify: ${differing.length} of ${volumes} volumes differ (${differing.join(', ')})`);
  },
};

/** The sink at the bottom of `uri` opened read-only, where its type can be. */
function readOnly(uri: string): string {
  const inner = innermostUri(uri);
  if (!/^(file|nst):/.test(inner) || /[?&]readonly\b/.test(inner)) return uri;
  return `${uri}${inner.includes('?') ? '&' : '?'}readonly`;
}

async function someCopyHas(copies: VerifyCopy[], volume: number): Promise<boolean> {
  for (const c of copies) if (await c.sink.hasVolume(volume)) return true;
  return false;
}

async function readManifest(path: string): Promise<VolumeManifest> {
  let manifest: VolumeManifest;
  try {
    manifest = JSON.parse(await readFile(path, 'utf8')) as VolumeManifest;
  } catch (err) {
    throw new UsageError(`cannot read the manifest ${path}: ${(err as Error).message}`);
  }
  if (!READABLE_FORMATS.includes(manifest.format)) throw new UsageError(`${path} is not a tapeproxy manifest (format ${READABLE_FORMATS.join(' or ')})`);
  return manifest;
}

/** What the manifests next to image copies say of copies that failed while `volume` was written. */
async function failedCopies(copies: VerifyCopy[], volume: number): Promise<string[]> {
  const notes: string[] = [];
  for (const copy of copies) {
    const template = imageTemplate(copy.label.includes(':') ? copy.label : `file:${copy.label}`);
    const path = template && manifestPath(template, volume);
    if (!path || !existsSync(path)) continue;
    const failed = ((await readManifest(path)) as ImageManifest).incomplete;
    if (!failed) continue;
    const place = failed.fileno >= 0 ? ` (file ${failed.fileno}, record ${failed.record})` : '';
    notes.push(`${copy.label}: the copy failed at object ${failed.object}${place} on ${failed.time}, so it lacks what was written after: ${failed.error}`);
  }
  return notes;
}

/** A volume with a copy that failed while it was written does not verify, whatever it holds now. */
function withFailedCopies(verdict: VolumeVerdict, notes: string[]): VolumeVerdict {
  return notes.length === 0 ? verdict : { ...verdict, ok: false, problems: [...verdict.problems, ...notes] };
}

/** The newest manifest of `volume` next to an image copy; else the catalog's, with --drive. */
async function findManifest(args: Args, copies: VerifyCopy[], volume: number, catalogDir: string) {
  let best: { manifest: VolumeManifest; source: string } | undefined;
  for (const copy of copies) {
    const uri = copy.label.includes(':') ? copy.label : `file:${copy.label}`;
    const template = imageTemplate(uri);
    const path = template && manifestPath(template, volume);
    if (!path || !existsSync(path)) continue;
    const manifest = await readManifest(path);
    // A manifest describes what went into the stages above the image (the records as the drive wrote them).
    if (!describesCopy(manifest, stageNames(uri))) continue;
    if (!best || manifest.updated > best.manifest.updated) best = { manifest, source: path };
  }
  if (best || !args.drive) return best;
  const sessions = await readSessions(catalogDir, args.drive);
  for (const s of sessions.reverse()) {
    const manifest = s.volumes.find((v) => v.volume === volume);
    if (manifest) return { manifest, source: `catalog ${journalPath(catalogDir, args.drive)}` };
  }
  return undefined;
}

function formatVerdict(v: VolumeVerdict, copies: number, found: { manifest: VolumeManifest; source: string } | undefined): string {
  const against = found ? `the manifest ${found.source} (session ${found.manifest.session})` : 'each other (no manifest found)';
  const what = `${v.files} files, ${v.records} records, ${v.bytes} bytes`;
  if (v.ok && !found && copies === 1) return `volume ${v.volume}: OK: read back whole (no manifest found to check it against); ${what}`;
  if (v.ok) return `volume ${v.volume}: OK: ${copies} ${copies === 1 ? 'copy matches' : 'copies match'} ${against}; ${what}`;
  return [`volume ${v.volume}: DIFFERENT (checked against ${against})`, ...v.problems.map((p) => `  ${p}`)].join('\n');
}

/** The verdict goes to the catalog of the drive that wrote the volume, if that catalog is here. */
async function recordVerdict(catalogDir: string, manifest: VolumeManifest, v: VolumeVerdict, copies: string[]): Promise<void> {
  const journal = journalPath(catalogDir, manifest.drive);
  if (!existsSync(journal)) return;
  const sessions = [...new Set(manifest.files.map((f) => f.session))];
  await appendOnce(journal, { type: 'verify', sessions, time: new Date().toISOString(), volume: v.volume, ok: v.ok, copies, problems: v.problems });
}
