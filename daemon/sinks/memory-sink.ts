import type { TapeObject } from '../drive/medium.js';
import { tapeError } from '../drive/tape-error.js';
import type { Capacity } from './capacity.js';
import { framedSize, TAPE_MARK_SIZE } from './simh-tap.js';
import type { Room, Sink, SinkStatus } from './sink.js';

/** A filemark in a memory volume. */
const FM = null;
type Volume = { objects: (Buffer | typeof FM)[]; ends: number[] };

/**
 * Volumes held in memory, sized as SIMH images would be so capacity behaves like `file:`. For
 * tests, demos and experiments: the volumes are gone when the daemon exits.
 */
export class MemorySink implements Sink {
  readonly name: string;
  readonly queuedBytes = 0;
  readonly failure = undefined;
  private readonly volumes = new Map<number, Volume>();
  private current: Volume | undefined;
  private volume = 0;
  private pos = 0;
  private records = 0;
  private bytes = 0;

  constructor(
    label: string,
    private readonly capacity: Capacity,
  ) {
    this.name = `mem:${label}`;
  }

  get earlyWarningZone(): number | undefined {
    return this.capacity.capacity === undefined ? undefined : this.capacity.earlyWarningZone;
  }
  get position(): number {
    return this.pos;
  }
  get earlyWarning(): boolean {
    return this.capacity.isPastEarlyWarning(this.endOf(this.objects.length));
  }

  /** The objects of a volume (null = filemark), for tests. */
  contents(volume: number): (Buffer | null)[] {
    return this.volumes.get(volume)?.objects ?? [];
  }

  async load(volume: number): Promise<{ writeProtected: boolean }> {
    this.volume = volume;
    this.current = this.volumes.get(volume) ?? { objects: [], ends: [] };
    this.volumes.set(volume, this.current);
    this.pos = 0;
    return { writeProtected: false };
  }
  async unload(): Promise<void> {
    this.current = undefined;
  }
  async hasVolume(volume: number): Promise<boolean> {
    return this.volumes.has(volume);
  }

  room(recordBytes: number): Room {
    return this.capacity.room(this.endOf(this.pos) + framedSize(recordBytes));
  }
  write(record: Buffer): void {
    this.put(Buffer.from(record), framedSize(record.length)); // callers may reuse their buffer
    this.records++;
    this.bytes += record.length;
  }
  writeFilemarks(count: number): void {
    for (let i = 0; i < count; i++) this.put(FM, TAPE_MARK_SIZE);
  }
  erase(): void {
    this.cut();
  }
  async drain(): Promise<void> {}
  async sync(): Promise<void> {}

  async locate(object: number): Promise<void> {
    if (object > this.objects.length) {
      throw tapeError('EIO', `${this.name}: volume ${this.volume} ends at object ${this.objects.length}`);
    }
    this.pos = object;
  }
  async next(): Promise<TapeObject> {
    if (this.pos >= this.objects.length) return { kind: 'blank' };
    const data = this.objects[this.pos++];
    return data ? { kind: 'record', data } : { kind: 'filemark' };
  }
  async previous(): Promise<'record' | 'filemark' | 'bot'> {
    if (this.pos === 0) return 'bot';
    return this.objects[--this.pos] ? 'record' : 'filemark';
  }
  async atEnd(): Promise<boolean> {
    return this.pos === this.objects.length;
  }

  status(): SinkStatus {
    const used = this.endOf(this.objects.length);
    return {
      name: this.name,
      volume: this.volume,
      loaded: this.current !== undefined,
      position: this.pos,
      used,
      capacity: this.capacity.capacity,
      earlyWarningAt: this.capacity.earlyWarningAt,
      earlyWarning: this.earlyWarning,
      queuedBytes: 0,
      recordsWritten: this.records,
      bytesWritten: this.bytes,
    };
  }
  async close(): Promise<void> {}

  private get objects(): (Buffer | null)[] {
    return this.current?.objects ?? [];
  }
  private endOf(objects: number): number {
    return objects === 0 ? 0 : (this.current?.ends[objects - 1] ?? 0);
  }
  private put(data: Buffer | null, size: number): void {
    const v = this.current;
    if (!v) throw tapeError('ENOMEDIUM', `${this.name}: no volume loaded`);
    this.cut();
    v.objects.push(data);
    v.ends.push(this.endOf(this.pos) + size);
    this.pos++;
  }
  private cut(): void {
    const v = this.current;
    if (!v) return;
    v.objects.length = this.pos;
    v.ends.length = this.pos;
  }
}
