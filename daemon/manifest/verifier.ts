import type { TapeObject } from '../drive/medium.js';
import type { Sink } from '../sinks/sink.js';
import { usableHash } from './file-hash.js';
import { digestOf, FileHasher, GROUP_RECORDS, sizeAt, type FileManifest, type VolumeManifest } from './manifest.js';

/** One copy to read back: a sink opened read-only, named as the user gave it. */
export interface VerifyCopy {
  label: string;
  sink: Sink;
}

export interface VolumeVerdict {
  volume: number;
  ok: boolean;
  /** What was read, from the first copy that read to the end. */
  files: number;
  records: number;
  bytes: number;
  /** One line per copy that differs: the copy, then where and how. */
  problems: string[];
}

/** Where a copy's head is, for messages. */
interface Place {
  file: number;
  record: number;
  object: number;
}

const where = (p: Place) => `file ${p.file}, record ${p.record} (object ${p.object})`;

/** A copy read back: its place, its digest of the current file, and its first differences. */
class CopyReader {
  readonly place: Place;
  private hasher: FileHasher;
  done = false;
  /** Its first difference from the manifest, or a read error. */
  problem: string | undefined;
  /** Where it first differs from the first copy (or, for the first, from another), and how. */
  differs: string | undefined;
  files = 0;
  records = 0;
  bytes = 0;

  constructor(
    readonly copy: VerifyCopy,
    start: number,
    private readonly manifest: VolumeManifest | undefined,
  ) {
    this.place = { file: 0, record: 0, object: start };
    this.hasher = this.fileHasher();
  }

  /** A hasher for the file at the head: with its digest's hash, or (no manifest says) any. */
  private fileHasher(): FileHasher {
    const expected = this.manifest?.files[this.place.file];
    return new FileHasher(expected ? digestOf(expected).hash : usableHash('blake3'));
  }

  async next(): Promise<TapeObject | undefined> {
    try {
      return await this.copy.sink.next(true);
    } catch (err) {
      this.stop(`${where(this.place)}: ${(err as Error).message}`);
      this.done = true; // a copy that cannot be read further
      return undefined;
    }
  }

  /** Checks the object just read against the manifest and moves on. */
  take(object: TapeObject): void {
    const expected = this.manifest?.files[this.place.file];
    if (object.kind === 'blank') {
      const open = this.place.record > 0; // a last file without a filemark
      if (open) this.fileEnded(expected, false);
      const files = this.place.file + (open ? 1 : 0);
      if (this.manifest && this.manifest.files.length > files) this.stop(`ends at ${where(this.place)}; the manifest has ${this.manifest.files.length} files`);
      this.done = true;
      return;
    }
    if (object.kind === 'filemark') {
      this.fileEnded(expected, true);
      this.place.file++;
      this.place.record = 0;
      this.place.object++;
      this.files++;
      this.hasher = this.fileHasher();
      return;
    }
    const { data } = object;
    if (this.manifest && !this.problem) {
      if (!expected) this.stop(`${where(this.place)}: an extra file (the manifest has ${this.manifest.files.length})`);
      else {
        const size = sizeAt(expected.sizes, this.place.record);
        if (size === undefined) this.stop(`${where(this.place)}: an extra record (the manifest has ${expected.records} in file ${this.place.file})`);
        else if (size !== data.length) this.stop(`${where(this.place)}: ${data.length} bytes, the manifest says ${size}`);
      }
    }
    this.hasher.add(data);
    if (this.hasher.count % GROUP_RECORDS === 0) this.checkGroups(expected);
    this.place.record++;
    this.place.object++;
    this.records++;
    this.bytes += data.length;
  }

  private fileEnded(expected: FileManifest | undefined, filemark: boolean): void {
    if (!this.manifest || this.problem) return;
    const p = this.place;
    if (!expected) return this.stop(`${where(p)}: an extra ${filemark ? 'filemark' : 'file'} (the manifest has ${this.manifest.files.length} files)`);
    if (p.record < expected.records) return this.stop(`file ${p.file} ends after ${p.record} records (object ${p.object}); the manifest has ${expected.records}: records missing`);
    if (filemark !== expected.filemark) return this.stop(`file ${p.file} ${filemark ? 'ends with a filemark the manifest does not have' : 'has no filemark'} (object ${p.object})`);
    this.checkGroups(expected);
    const { digest } = digestOf(expected);
    if (!this.problem && digest !== null && this.hasher.snapshot().digest !== digest) {
      this.stop(`file ${p.file}: its digest differs from the manifest`);
    }
  }

  /** Compares the groups hashed so far with the manifest's: names the first group that differs. */
  private checkGroups(expected: FileManifest | undefined): void {
    if (!expected || digestOf(expected).digest === null || this.problem) return;
    const groups = this.hasher.snapshot().groups;
    const last = groups.length - 1;
    const complete = this.hasher.count % GROUP_RECORDS === 0 || this.hasher.count === expected.records;
    if (last >= 0 && complete && groups[last] !== expected.groups[last]) {
      const first = last * GROUP_RECORDS;
      this.stop(`file ${this.place.file}, records ${first}-${first + (this.hasher.count - first) - 1}: content differs from the manifest`);
    }
  }

  /** Records the first difference; reading goes on, as the other copies compare with this one. */
  stop(problem: string): void {
    this.problem ??= problem;
  }

  /** The copy's differences for the report, or undefined if it has none. */
  report(): string | undefined {
    if (this.problem) {
      // A copy the manifest rejects: where it first differed from another copy is the exact place.
      const exact = this.manifest && this.differs ? `; the copies first differ at ${this.differs}` : '';
      return `${this.copy.label}: ${this.problem}${exact}`;
    }
    if (this.differs && !this.manifest) return `${this.copy.label}: ${this.differs}`;
    return undefined;
  }
}

/** How `object` of `copy` differs from the reference's, or undefined if it does not. */
function difference(object: TapeObject, reference: TapeObject, name: string): string | undefined {
  const what = (o: TapeObject) => (o.kind === 'record' ? `a record of ${o.data.length} bytes` : o.kind === 'filemark' ? 'a filemark' : 'end of data');
  if (object.kind !== reference.kind || (object.kind === 'record' && reference.kind === 'record' && object.data.length !== reference.data.length)) {
    return `${what(object)} where ${name} has ${what(reference)}`;
  }
  if (object.kind === 'record' && reference.kind === 'record' && !object.data.equals(reference.data)) return `content differs from ${name}`;
  return undefined;
}

/**
 * Reads volume `volume` of every copy in lockstep, checking each against the manifest (record
 * counts and sizes exactly; content per group of records and per file) and against the first copy
 * (record by record). A copy that matches the manifest is right, whatever another copy says; one
 * that does not is reported with its first difference from the manifest and, when another copy
 * told it apart earlier, the exact record where it did. Without a manifest, copies that differ
 * from the first are reported with their first differing record.
 */
export async function verifyVolume(copies: VerifyCopy[], volume: number, manifest: VolumeManifest | undefined): Promise<VolumeVerdict> {
  const problems: string[] = [];
  const start = manifest?.unrecordedBefore ?? 0;
  const readers: CopyReader[] = [];
  for (const copy of copies) {
    try {
      if (!(await copy.sink.hasVolume(volume))) {
        problems.push(`${copy.label}: volume ${volume} is missing`);
        continue;
      }
      await copy.sink.load(volume);
      if (start > 0) await copy.sink.locate(start);
      readers.push(new CopyReader(copy, start, manifest));
    } catch (err) {
      problems.push(`${copy.label}: ${(err as Error).message}`);
    }
  }
  const [reference, ...others] = readers;
  while (readers.some((r) => !r.done)) {
    const objects = new Map<CopyReader, TapeObject>();
    for (const r of readers.filter((x) => !x.done)) {
      const object = await r.next();
      if (object) objects.set(r, object);
    }
    const ref = reference && objects.get(reference);
    for (const r of ref ? others : []) {
      const object = objects.get(r);
      const d = object && !r.differs && difference(object, ref!, reference!.copy.label);
      if (!d) continue;
      r.differs = `${where(r.place)}: ${d}`;
      reference!.differs ??= `${where(reference!.place)}: differs from ${r.copy.label}`;
    }
    for (const [r, object] of objects) r.take(object);
  }
  for (const r of readers) {
    const line = r.report();
    if (line) problems.push(line);
  }
  const complete = readers.find((r) => !r.problem) ?? readers[0];
  return { volume, ok: problems.length === 0, files: complete?.files ?? 0, records: complete?.records ?? 0, bytes: complete?.bytes ?? 0, problems };
}
