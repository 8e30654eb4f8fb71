import { readFile, stat } from 'node:fs/promises';
import type { CatalogEntry } from '../catalog/catalog.js';
import type { Journal } from '../catalog/journal.js';
import type { Lease } from '../drive/record-pool.js';
import { volumePath } from '../sinks/file-sink.js';
import type { Sink } from '../sinks/sink.js';
import type { SinkLog } from '../sinks/sink-uri.js';
import { detectContent } from './content-type.js';
import { LatestWriter, manifestPath } from './image-paths.js';
import {
  addSize,
  type CopyFailure,
  describesCopy,
  DIGEST_DEFINITION,
  digestField,
  digestOf,
  fileDigest,
  type FileManifest,
  formatManifest,
  type ImageManifest,
  MANIFEST_FORMAT,
  READABLE_FORMATS,
  type VolumeManifest,
} from './manifest.js';
import type { HashName } from './file-hash.js';
import { StreamHasher } from './stream-hasher.js';

/**
 * How long a sync point waits for the manifests to be written (they are, in milliseconds, unless a
 * copy's file system stopped answering: then the drive goes on without them), and a shutdown.
 */
const SYNC_WAIT_MS = 2000;
const CLOSE_WAIT_MS = 5000;

/** What the mirror tells about the records and filemarks it writes, in order. */
export interface MirrorRecorder {
  loaded(volume: number): Promise<void>;
  /** `lease`: a pooled record, hashed where it is (held until then). */
  record(position: number, data: Buffer, lease?: Lease): void;
  filemarks(position: number, count: number): void;
  erased(position: number): void;
  /** Resolves once at most `maxQueuedBytes` wait to be hashed (back-pressure, as a sink's queue). */
  drain(maxQueuedBytes: number): Promise<void>;
  /** A sync point: the copies have everything; the manifests are brought up to date. */
  sync(): Promise<void>;
  unloaded(): Promise<void>;
  close(): Promise<void>;
}

export interface RecorderOptions {
  drive: string;
  /** The copies' names, for the catalog. */
  copies: string[];
  /** The copies that are image files, with their path templates (%v): each volume's manifest goes next to its image. */
  images: { template: string; sink: Sink; stages: string[] }[];
  /** A copy the drive goes on without: its manifest is no longer written. */
  setAside?: (sink: Sink) => boolean;
  /** The drive's catalog journal. */
  journal?: Journal;
  /** The hash new files' digests are taken with (file-hash.ts: usableHash). */
  hash: HashName;
  log: SinkLog;
}

/** A tape file being recorded; `stream` is its hash stream while its digest can still grow. */
interface FileState extends FileManifest {
  stream?: number;
  /** Records covered by the digest. */
  hashed: number;
}

interface VolumeState {
  volume: number;
  files: FileState[];
  unrecordedBefore: number;
  /** Records and filemarks to end of data. */
  objects: number;
  session: string;
  /** Changed since the manifest was last written. */
  dirty: boolean;
  /** Changed since the catalog last had it. */
  unjournaled: boolean;
}

/**
 * The mirror's recorder of manifests: per volume and tape file, record count, sizes, content type
 * and digests (manifest.ts) of what the drive wrote, hashed off the main thread (StreamHasher).
 * At each sync point the manifest of the volume is written next to each image copy
 * (`a-1.tap.manifest.json`, atomically); volumes and sessions go to the drive's catalog journal,
 * which is where copies that are not image files find theirs. Writing into an existing volume
 * continues the manifest found next to its image, when that still matches the image.
 * A recording problem is logged and never fails the backup.
 */
export class ManifestRecorder implements MirrorRecorder {
  private readonly hasher: StreamHasher;
  private readonly files = new LatestWriter((path, err) => this.options.log(`cannot write the manifest ${path}: ${err.message}`, { manifest: path }, 'warn'));
  private current: VolumeState | undefined;
  private session: { id: string; volumes: Set<number> } | undefined;
  private hashingLost = false;
  /** Copies that failed on the current volume: their manifest says so and is left as it is. */
  private readonly failedCopies = new Set<Sink>();

  constructor(private readonly options: RecorderOptions) {
    this.hasher = new StreamHasher(options.hash);
  }

  async loaded(volume: number): Promise<void> {
    this.failedCopies.clear();
    this.current = (await this.existing(volume)) ?? {
      volume,
      files: [],
      unrecordedBefore: 0,
      objects: 0,
      session: '',
      dirty: false,
      unjournaled: false,
    };
  }

  record(position: number, data: Buffer, lease?: Lease): void {
    const v = this.current;
    if (!v) return;
    this.touched(v);
    const file = this.fileFor(v, position);
    file.records++;
    file.bytes += data.length;
    addSize(file.sizes, data.length);
    if (file.records === 1) file.content = detectContent(data);
    if (file.stream !== undefined) this.hasher.add(file.stream, data, lease);
    v.objects = position + 1;
  }

  filemarks(position: number, count: number): void {
    const v = this.current;
    if (!v || count <= 0) return;
    this.touched(v);
    for (let at = position; at < position + count; at++) {
      if (at !== v.objects) this.cut(v, at);
      const last = v.files.at(-1);
      if (last && !last.filemark) last.filemark = true;
      else v.files.push({ ...this.newFile(at, v.session), filemark: true }); // a file without records
      v.objects = at + 1;
    }
  }

  erased(position: number): void {
    const v = this.current;
    if (!v || position >= v.objects) return;
    this.cut(v, position);
    this.touched(v);
  }

  drain(maxQueuedBytes: number): Promise<void> {
    return this.hasher.drain(maxQueuedBytes);
  }

  async sync(): Promise<void> {
    const v = this.current;
    if (!v?.dirty) return;
    v.dirty = false;
    await this.refreshDigests(v);
    const manifest = this.manifestOf(v);
    for (const { template, sink, stages } of this.options.images) {
      if (sink.failure || this.failedCopies.has(sink) || this.options.setAside?.(sink)) continue;
      const image = volumePath(template, v.volume);
      // Written in the background, after the image's size (the sink synced it just before).
      this.files.write(manifestPath(template, v.volume), async () => {
        const imageBytes = await stat(image).then((s) => s.size, () => undefined);
        return formatManifest({ ...manifest, imageBytes, ...(stages.length > 0 && { stages }) });
      });
    }
    await this.files.settled(SYNC_WAIT_MS);
  }

  /** The tape file and record in it at `object` of the current volume, as far as recorded. */
  place(object: number): { fileno: number; record: number } {
    const files = this.current?.files ?? [];
    for (let fileno = files.length - 1; fileno >= 0; fileno--) {
      const f = files[fileno]!;
      if (f.start <= object) return { fileno, record: Math.min(object - f.start, f.records) };
    }
    return { fileno: -1, record: -1 };
  }

  /**
   * A copy failed: its manifest says so once, for good (it is not written again), and the catalog
   * keeps where it stopped, so neither claims the copy holds what it lacks.
   */
  copyFailed(sink: Sink, failure: CopyFailure): void {
    this.failedCopies.add(sink);
    const time = new Date().toISOString();
    const v = this.current;
    for (const { template, sink: copy, stages } of this.options.images) {
      if (copy !== sink || !v) continue;
      const manifest = this.manifestOf(v);
      this.files.write(manifestPath(template, v.volume), async () => {
        const imageBytes = await stat(volumePath(template, v.volume)).then((s) => s.size, () => undefined);
        return formatManifest({ ...manifest, imageBytes, ...(stages.length > 0 && { stages }), incomplete: { ...failure, time } });
      });
    }
    const session = this.session?.id ?? v?.session;
    if (session) void this.journal({ type: 'copy-failed', session, time, copy: sink.name, ...failure }, true);
  }

  async unloaded(): Promise<void> {
    const v = this.current;
    if (!v) return;
    await this.sync();
    await this.journalVolume(v);
    this.hasher.drop(v.files.flatMap((f) => (f.stream === undefined ? [] : [f.stream])));
    this.current = undefined;
  }

  /**
   * A writer closed the drive. Short of early warning that ends the session; past it the next open
   * continues it on the next volume (a multi-volume backup is one session).
   */
  async writerClosed(pastEarlyWarning: boolean): Promise<void> {
    if (this.session && !pastEarlyWarning) await this.endSession(false);
  }

  async close(): Promise<void> {
    if (this.session) await this.endSession(true);
    await this.sync();
    await this.hasher.close();
    if (!(await this.files.settled(CLOSE_WAIT_MS))) this.options.log('manifests still being written at shutdown are left unfinished', { drive: this.options.drive }, 'warn');
    await this.options.journal?.close();
  }

  /** The file a record at `position` goes into: the open one it continues, or a new one. */
  private fileFor(v: VolumeState, position: number): FileState {
    if (position !== v.objects) this.cut(v, position);
    const last = v.files.at(-1);
    if (last && !last.filemark) {
      if (last.stream === undefined) this.unhashable(last); // a digest finished elsewhere cannot go on
      return last;
    }
    const file = this.newFile(position, v.session);
    v.files.push(file);
    return file;
  }

  /** Everything from object `position` on is gone (written over or erased). */
  private cut(v: VolumeState, position: number): void {
    if (position > v.objects || position < v.unrecordedBefore) {
      // Writing where nothing was recorded (an image from elsewhere): what is before is unknown.
      this.forget(v.files);
      v.files = [];
      v.unrecordedBefore = position;
      v.objects = position;
      return;
    }
    const gone = v.files.filter((f) => f.start >= position);
    this.forget(gone);
    v.files = v.files.filter((f) => !gone.includes(f));
    const last = v.files.at(-1);
    if (last && last.start + last.records >= position) {
      last.filemark = false;
      if (last.start + last.records > position) this.truncate(last, position - last.start);
    }
    v.objects = position;
  }

  /** A file rewritten from inside: its first `records` stay, its digest is unknown. */
  private truncate(file: FileState, records: number): void {
    const sizes: [number, number][] = [];
    let rest = records;
    for (const [size, count] of file.sizes) {
      if (rest === 0) break;
      sizes.push([size, Math.min(count, rest)]);
      rest -= Math.min(count, rest);
    }
    Object.assign(file, { records, sizes, bytes: sizes.reduce((sum, [size, count]) => sum + size * count, 0) });
    this.forget([file]);
    this.unhashable(file);
  }

  private unhashable(file: FileState): void {
    Object.assign(file, { ...digestField(digestOf(file).hash, null), groups: [], stream: undefined });
  }

  private forget(files: FileState[]): void {
    this.hasher.drop(files.flatMap((f) => (f.stream === undefined ? [] : [f.stream])));
  }

  private newFile(start: number, session: string): FileState {
    const hashing = !this.hasher.failure;
    return {
      start,
      session,
      records: 0,
      bytes: 0,
      sizes: [],
      filemark: false,
      content: 'empty',
      ...digestField(this.options.hash, hashing ? fileDigest(this.options.hash, 0, []) : null),
      groups: [],
      hashed: 0,
      ...(hashing && { stream: this.hasher.newStream() }),
    };
  }

  private touched(v: VolumeState): void {
    v.dirty = v.unjournaled = true;
    if (!this.session) {
      const started = new Date().toISOString();
      this.session = { id: `${this.options.drive}-${started.replace(/[-:.]/g, '')}`, volumes: new Set() };
      this.journal({ type: 'session', session: this.session.id, drive: this.options.drive, started, copies: this.options.copies });
    }
    v.session = this.session.id;
    this.session.volumes.add(v.volume);
  }

  /** Brings the digests of the files that grew up to date from the hashing worker. */
  private async refreshDigests(v: VolumeState): Promise<void> {
    const growing = v.files.filter((f) => f.stream !== undefined && f.hashed !== f.records);
    try {
      const snapshots = new Map((await this.hasher.snapshot(growing.map((f) => f.stream!))).map((s) => [s.stream, s]));
      for (const f of growing) {
        const s = snapshots.get(f.stream!)!;
        Object.assign(f, { ...digestField(s.hash, s.digest), groups: s.groups, hashed: f.records });
      }
    } catch (err) {
      for (const f of v.files) if (f.stream !== undefined) this.unhashable(f);
      if (!this.hashingLost) this.options.log(`manifest hashing failed; digests of the open files are lost: ${(err as Error).message}`, { drive: this.options.drive }, 'error');
      this.hashingLost = true;
    }
  }

  private manifestOf(v: VolumeState): VolumeManifest {
    return {
      format: MANIFEST_FORMAT,
      digest: DIGEST_DEFINITION,
      drive: this.options.drive,
      session: v.session,
      volume: v.volume,
      updated: new Date().toISOString(),
      ...(v.unrecordedBefore > 0 && { unrecordedBefore: v.unrecordedBefore }),
      files: v.files.map(({ stream: _stream, hashed: _hashed, ...f }) => f),
      objects: v.objects,
    };
  }

  private async endSession(stopped: boolean): Promise<void> {
    const session = this.session!;
    this.session = undefined; // a write from here on starts the next session
    const v = this.current;
    if (v && session.volumes.has(v.volume)) {
      await this.sync();
      // Under this session's name, even if the next session has begun writing meanwhile.
      if (v.session === session.id) v.unjournaled = false;
      await this.journal({ type: 'volume', session: session.id, time: new Date().toISOString(), manifest: this.manifestOf(v) });
    }
    await this.journal({ type: 'end', session: session.id, ended: new Date().toISOString(), volumes: [...session.volumes], ...(stopped && { stopped }) }, true);
  }

  private async journalVolume(v: VolumeState): Promise<void> {
    if (!v.unjournaled) return;
    v.unjournaled = false;
    await this.journal({ type: 'volume', session: v.session, time: new Date().toISOString(), manifest: this.manifestOf(v) });
  }

  private async journal(entry: CatalogEntry, durable = false): Promise<void> {
    await this.options.journal?.append(entry, durable).catch((err: Error) => {
      this.options.log(`cannot write the catalog ${this.options.journal!.path}: ${err.message}`, { drive: this.options.drive }, 'warn');
    });
  }

  /** The manifest next to an image of `volume`, if it describes the image as it is. */
  private async existing(volume: number): Promise<VolumeState | undefined> {
    for (const { template, stages } of this.options.images) {
      try {
        const m = JSON.parse(await readFile(manifestPath(template, volume), 'utf8')) as ImageManifest;
        const size = (await stat(volumePath(template, volume))).size;
        if (m.incomplete || !READABLE_FORMATS.includes(m.format) || m.volume !== volume || m.imageBytes !== size || !describesCopy(m, stages)) continue;
        const files = m.files.map((f) => ({ ...f, hashed: f.records }));
        return { volume, files, unrecordedBefore: m.unrecordedBefore ?? 0, objects: m.objects, session: m.session, dirty: false, unjournaled: false };
      } catch {
        // no manifest, or not one that still fits its image
      }
    }
    return undefined;
  }
}
