import { writeSync } from 'node:fs';
import { access, constants, type FileHandle, open, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TapeObject } from '../drive/medium.js';
import type { Lease } from '../drive/record-pool.js';
import { TapeError, tapeError } from '../drive/tape-error.js';
import type { Capacity } from './capacity.js';
import { ObjectIndex } from './object-index.js';
import { ImageCorrupt, SimhReader } from './simh-reader.js';
import { END_OF_MEDIUM_BYTES, framedSize, lengthWords, PAD_BYTE, TAPE_MARK_BYTES, TAPE_MARK_SIZE } from './simh-tap.js';
import type { Room, Sink, SinkStatus } from './sink.js';
import { WriteQueue } from './write-queue.js';

export interface FileSinkOptions {
  /** Image path; `%v` is replaced by the volume number. */
  path: string;
  capacity: Capacity;
  readonly: boolean;
  /** fsync the image at every sync point (filemark, close, rewind, unload, status). */
  fsync: boolean;
  /** Bytes per second; simulates a drive's speed. */
  rate?: number;
}

/** Volume 1 is PATH; without `%v` later volumes are PATH.2, PATH.3, ... */
export function volumePath(template: string, volume: number): string {
  if (template.includes('%v')) return template.replaceAll('%v', String(volume));
  return volume === 1 ? template : `${template}.${volume}`;
}

/**
 * `releases` let go of the pooled records among `bufs` once written (or dropped); `staleEnd`: old
 * bytes lie from `at` up to there, behind an end-of-medium marker at `at` (0: none).
 */
type Op =
  | {
      kind: 'write';
      at: number;
      bufs: Buffer[];
      bytes: number;
      releases: (() => void)[];
      staleEnd: number;
      /** The position of its first object, and the records among its objects and their bytes. */
      first: number;
      records: number;
      recordBytes: number;
    }
  | { kind: 'truncate'; at: number }
  | { kind: 'fence'; at: number };

const MAX_IOV = 1024;

/**
 * Bytes a copy gathers before it writes them, unless someone waits for them (back-pressure, a sync
 * point, a read): fewer and larger writes, since each write wakes a libuv thread, which costs the
 * daemon's thread about 100 µs on these machines. A record of 256 KiB alone would be one write.
 */
const GATHER_BYTES = 1 << 20;
const GATHER_MS = 2;

/** tmpfs and ramfs: their files are memory, and nothing of them outlives the machine. */
const MEMORY_FILESYSTEMS = new Set([0x01021994, 0x858458f6]);

/** Whether the image at `path` is in memory: the file's filesystem, or if none yet its directory's. */
async function inMemory(path: string): Promise<boolean> {
  const s = await statfs(path).catch(() => statfs(dirname(path))).catch(() => undefined);
  return s !== undefined && MEMORY_FILESYSTEMS.has(Number(s.type));
}

/**
 * A SIMH .tap image per volume. An existing image is a loaded cartridge: it can be read, spaced
 * and appended to, and writing in its middle discards what follows, as on a drive. Writes are
 * batched into positional writev calls by a background pump.
 *
 * On tmpfs, writing over old data (a backup written again from BOT) overwrites the image in place
 * and cuts what is left of the old data at the next sync point: truncating first frees the file's
 * pages and the writes then take new ones, which here costs more than the write itself (in a VM,
 * each page freed may go back to the host, and its next use faults it in again). Until then an
 * end-of-medium marker after the last write fences off the old bytes, written so that a process
 * killed mid-write leaves an image that ends at a marker, never one whose new records run on into
 * old ones (see `overwrite`). On disk, where writes reach the disk in no set order, the image is
 * truncated first, as before.
 */
export class FileSink implements Sink {
  readonly name: string;
  readonly holdsLeases = true;
  private fh: FileHandle | undefined;
  private reader: SimhReader | undefined;
  private path = '';
  private volume = 0;
  private loaded = false;
  private pos = 0;
  /** Byte offset of `pos`. */
  private offset = 0;
  /** End of the image once queued operations are applied. */
  private end = 0;
  private readonly index = new ObjectIndex();
  private ops: Op[] = [];
  private readonly queue = new WriteQueue();
  private pumping: Promise<void> | undefined;
  private gathering: NodeJS.Timeout | undefined;
  /** Someone waits for the queue (a sync point, a read, back-pressure): write it all, no gathering. */
  private urgent = false;
  /** The gathering time ran out: write what there is, then gather again. */
  private gatheredEnough = false;
  /** Writing over old data in place (see the class comment). */
  private overwriteInPlace = false;
  /**
   * Old bytes lie past `end` up to here, behind an end-of-medium marker (0: none). A write that
   * reaches it covers them all: each write over old bytes ends at a marker the next one starts on.
   */
  private staleEnd = 0;
  private rateDue = 0;
  private records = 0;
  private bytes = 0;
  /** Where the image of a failed copy stops: the first object its failed write left out. */
  private stoppedAt: number | undefined;

  constructor(private readonly options: FileSinkOptions) {
    this.name = `file:${options.path}`;
  }

  get position(): number {
    return this.pos;
  }
  get earlyWarning(): boolean {
    return this.loaded && this.options.capacity.isPastEarlyWarning(this.end);
  }
  get queuedBytes(): number {
    return this.queue.bytes;
  }
  get earlyWarningZone(): number | undefined {
    return this.options.capacity.capacity === undefined ? undefined : this.options.capacity.earlyWarningZone;
  }
  get failure(): Error | undefined {
    return this.queue.failure;
  }

  async load(volume: number): Promise<{ writeProtected: boolean }> {
    await this.unload().catch(() => undefined); // its failure was reported at its last sync point
    this.volume = volume;
    this.path = volumePath(this.options.path, volume);
    this.queue.reset();
    this.stoppedAt = undefined;
    this.pos = this.offset = this.end = this.staleEnd = 0;
    this.index.reset();
    let writeProtected = this.options.readonly;
    try {
      this.fh = await open(this.path, writeProtected ? 'r' : 'r+');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EROFS') {
        this.fh = await open(this.path, 'r');
        writeProtected = true;
      } else if (code !== 'ENOENT') {
        throw tapeError('EIO', `${this.name}: cannot open ${this.path}: ${(err as Error).message}`);
      }
    }
    if (this.fh) {
      this.end = (await this.fh.stat()).size;
      this.reader = new SimhReader(this.fh, this.path);
      await this.reader.checkEnd(this.end).catch(async (err: unknown) => {
        await this.fh?.close();
        this.fh = this.reader = undefined;
        if (!(err instanceof ImageCorrupt)) throw err;
        throw tapeError('EIO', `${this.name}: ${err.message}; a crash can leave a record cut short: 'tapeproxy image repair ${this.path} --in-place' cuts the image there (keeping the cut bytes in ${this.path}.cut)`);
      });
    }
    this.overwriteInPlace = !writeProtected && (await inMemory(this.path));
    this.loaded = true;
    return { writeProtected };
  }

  async unload(): Promise<void> {
    if (!this.loaded) return;
    try {
      await this.sync();
    } finally {
      await this.fh?.close();
      this.fh = this.reader = undefined;
      this.loaded = false;
    }
  }

  async hasVolume(volume: number): Promise<boolean> {
    return access(volumePath(this.options.path, volume)).then(
      () => true,
      () => false,
    );
  }

  room(recordBytes: number): Room {
    return this.options.capacity.room(this.offset + framedSize(recordBytes));
  }

  write(record: Buffer, lease?: Lease): void {
    const words = lengthWords(record.length);
    const bufs = [words.subarray(0, 4), record];
    if (record.length & 1) bufs.push(PAD_BYTE);
    bufs.push(words.subarray(4));
    this.append(bufs, framedSize(record.length), 1, lease?.hold(), record.length);
  }

  writeFilemarks(count: number): void {
    for (let i = 0; i < count; i++) this.append([TAPE_MARK_BYTES], TAPE_MARK_SIZE, 1);
  }

  erase(): void {
    this.cutAtPosition(false);
    this.cutStale();
    this.kick();
  }

  drain(maxQueuedBytes: number): Promise<void> {
    if (this.ops.length > 0) this.kick();
    return this.queue.drain(maxQueuedBytes);
  }

  async sync(): Promise<void> {
    this.cutStale();
    await this.settle();
    if (this.options.fsync && this.fh) {
      try {
        await this.fh.datasync();
      } catch (err) {
        this.queue.fail(this.ioError('fsync', err));
        throw this.failure;
      }
    }
  }

  async locate(object: number): Promise<void> {
    if (object === this.pos) return;
    await this.settle();
    let { object: at, offset } =
      object > this.pos ? { object: this.pos, offset: this.offset } : this.index.nearest(object);
    while (at < object) {
      const r = this.reader ? await this.reader.objectAt(offset, this.end, false) : undefined;
      if (!r || r.object.kind === 'blank') {
        throw tapeError('EIO', `${this.name}: volume ${this.volume} ends at object ${at}, cannot reach ${object}`);
      }
      offset = r.next;
      this.index.passed(++at, offset);
    }
    this.pos = at;
    this.offset = offset;
  }

  async next(withData: boolean): Promise<TapeObject> {
    await this.settle();
    if (!this.reader) return { kind: 'blank' };
    const r = await this.reader.objectAt(this.offset, this.end, withData);
    if (r.object.kind !== 'blank') {
      this.offset = r.next;
      this.index.passed(++this.pos, this.offset);
    }
    return r.object;
  }

  async previous(): Promise<'record' | 'filemark' | 'bot'> {
    await this.settle();
    if (!this.reader || this.pos === 0) return 'bot';
    const r = await this.reader.objectBefore(this.offset);
    if (r.kind !== 'bot') {
      this.pos--;
      this.offset = r.start;
    }
    return r.kind;
  }

  async atEnd(): Promise<boolean> {
    await this.settle();
    if (this.offset === this.end) return true;
    if (!this.reader) return false;
    // An image may end at an end-of-medium marker before its last byte (a process killed while
    // overwriting it in place, or an image from elsewhere).
    const r = await this.reader.objectAt(this.offset, this.end, false).catch((err: unknown) => {
      if (err instanceof ImageCorrupt) return undefined;
      throw err;
    });
    return r?.object.kind === 'blank';
  }

  status(): SinkStatus {
    const { capacity } = this.options;
    return {
      name: this.name,
      volume: this.volume,
      loaded: this.loaded,
      position: this.stoppedAt ?? this.pos,
      used: this.end,
      capacity: capacity.capacity,
      earlyWarningAt: capacity.earlyWarningAt,
      earlyWarning: this.earlyWarning,
      queuedBytes: this.queue.bytes,
      recordsWritten: this.records,
      bytesWritten: this.bytes,
      failure: this.failure?.message,
    };
  }

  async close(): Promise<void> {
    await this.unload();
  }

  /** Queues `objects` objects of `bytes` bytes in all; `recordBytes` for a record's payload. */
  private append(bufs: Buffer[], bytes: number, objects: number, release?: () => void, recordBytes?: number): void {
    if (this.failure) {
      release?.();
      return; // already reported; queueing more would only grow memory
    }
    this.cutAtPosition(this.overwriteInPlace);
    const records = recordBytes === undefined ? 0 : 1;
    const last = this.ops.at(-1);
    if (last?.kind === 'write' && last.at + last.bytes === this.offset && last.bufs.length < MAX_IOV) {
      last.bufs.push(...bufs);
      last.bytes += bytes;
      last.records += records;
      last.recordBytes += recordBytes ?? 0;
      if (release) last.releases.push(release);
    } else {
      const releases = release ? [release] : [];
      this.ops.push({ kind: 'write', at: this.offset, bufs, bytes, releases, staleEnd: this.staleEnd, first: this.pos, records, recordBytes: recordBytes ?? 0 });
    }
    this.records += records;
    this.bytes += recordBytes ?? 0;
    this.queue.added(bytes);
    this.offset += bytes;
    this.end = this.offset;
    if (this.offset >= this.staleEnd) this.staleEnd = 0;
    this.pos += objects;
    this.index.passed(this.pos, this.offset);
    this.writeSoon();
  }

  /**
   * Writing or erasing in the middle of a volume discards everything after the position: at once
   * (truncate), or `inPlace` behind an end-of-medium marker, overwritten as the writing goes on.
   */
  private cutAtPosition(inPlace: boolean): void {
    if (this.offset === this.end) return;
    if (inPlace) {
      this.ops.push({ kind: 'fence', at: this.offset });
      // A marker after the last write may lie up to 3 bytes past the old bytes it fenced off.
      this.staleEnd = Math.max(this.staleEnd > 0 ? this.staleEnd + END_OF_MEDIUM_BYTES.length : 0, this.end);
    } else {
      this.ops.push({ kind: 'truncate', at: this.offset });
      this.staleEnd = 0;
    }
    this.end = this.offset;
    this.index.truncate(this.pos);
  }

  /** Cuts what is left of old data written over in place (at a sync point, or on erase). */
  private cutStale(): void {
    if (this.staleEnd === 0) return;
    this.ops.push({ kind: 'truncate', at: this.end });
    this.staleEnd = 0;
  }

  /** Writes once enough is gathered, or a moment later (see GATHER_BYTES). */
  private writeSoon(): void {
    this.reader?.invalidate();
    if (this.queue.bytes >= GATHER_BYTES) this.kick(false);
    else if (!this.pumping) this.gatherLater();
  }

  /** Starts the pump; `now`: write what there is without gathering more (someone waits for it). */
  private kick(now = true): void {
    if (now) this.urgent = true;
    clearTimeout(this.gathering);
    this.gathering = undefined;
    this.reader?.invalidate();
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
    });
  }

  private gatherLater(): void {
    this.gathering ??= setTimeout(() => {
      this.gatheredEnough = true;
      this.kick(false);
    }, GATHER_MS);
  }

  private async settle(): Promise<void> {
    if (this.ops.length > 0) this.kick();
    while (this.pumping) await this.pumping;
    if (this.failure) throw this.failure;
  }

  private async pump(): Promise<void> {
    while (this.ops.length > 0 && !this.failure) {
      if (!this.urgent && !this.gatheredEnough && this.queue.bytes < GATHER_BYTES) {
        this.gatherLater();
        return;
      }
      // Once the time ran out, that batch goes; what comes while it is written gathers anew (else
      // a busy small-record stream went on in writes of a few records each).
      this.gatheredEnough = false;
      const ops = this.ops;
      this.ops = [];
      for (const [i, op] of ops.entries()) {
        try {
          await this.apply(op);
        } catch (err) {
          // The copy keeps what was written before this op (part of it may be there too): its
          // status and the catalog say it stops at this op's first object, not at the queue's end.
          const dropped = [...ops.slice(i), ...this.ops.splice(0)];
          const writes = dropped.filter((d) => d.kind === 'write');
          this.stoppedAt = writes[0]?.first ?? this.pos;
          for (const w of writes) {
            this.records -= w.records;
            this.bytes -= w.recordBytes;
          }
          this.queue.fail(err instanceof TapeError ? err : this.ioError(op.kind, err));
          for (const d of dropped) releaseRecords(d);
          return;
        }
        releaseRecords(op);
        if (op.kind === 'write') this.queue.done(op.bytes);
      }
    }
    this.urgent = false;
  }

  private async apply(op: Op): Promise<void> {
    this.fh ??= await open(this.path, constants.O_RDWR | constants.O_CREAT, 0o644);
    this.reader ??= new SimhReader(this.fh, this.path);
    if (op.kind === 'truncate') {
      await this.fh.truncate(op.at);
      return;
    }
    if (op.kind === 'fence') {
      writeSync(this.fh.fd, END_OF_MEDIUM_BYTES, 0, END_OF_MEDIUM_BYTES.length, op.at); // tmpfs only: a memory copy
      return;
    }
    if (op.at < op.staleEnd) await overwrite(this.fh, op);
    else await writevAll(this.fh, op.bufs, op.at);
    if (this.options.rate) await this.throttle(op.bytes, this.options.rate);
  }

  private async throttle(bytes: number, rate: number): Promise<void> {
    const now = performance.now();
    this.rateDue = Math.max(this.rateDue, now) + (bytes / rate) * 1000;
    if (this.rateDue > now + 1) await sleep(this.rateDue - now);
  }

  private ioError(what: string, err: unknown): TapeError {
    return tapeError('EIO', `${this.name}: ${what} of ${this.path} failed: ${(err as Error).message}`);
  }
}

function releaseRecords(op: Op): void {
  if (op.kind === 'write') for (const release of op.releases) release();
}

/**
 * Writes over old bytes, behind the end-of-medium marker at `op.at`: first everything but the
 * first length word (or tape mark), with a new marker after it unless the write reaches past the
 * old bytes, then that first word over the marker. A process killed in the first write leaves the
 * marker at `op.at` (a write can stop at any page boundary); a 4-byte write cut across two pages
 * leaves a word whose top half is the marker's, which is never a length.
 */
async function overwrite(fh: FileHandle, op: Extract<Op, { kind: 'write' }>): Promise<void> {
  const [first, ...rest] = op.bufs;
  if (first?.length !== 4) throw new Error(`a write starts with a ${first?.length}-byte buffer, not a length word`);
  const fenced = op.at + op.bytes < op.staleEnd ? [...rest, END_OF_MEDIUM_BYTES] : rest;
  await writevAll(fh, fenced, op.at + 4);
  writeSync(fh.fd, first, 0, 4, op.at); // tmpfs only: a memory copy, not worth a libuv thread
}

async function writevAll(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let rest = bufs;
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, at);
    at += bytesWritten;
    let skip = bytesWritten;
    let i = 0;
    while (i < rest.length && skip >= rest[i]!.length) skip -= rest[i++]!.length;
    rest = rest.slice(i);
    if (skip > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(skip);
    if (bytesWritten === 0 && rest.length > 0) throw new Error('write made no progress');
  }
}
