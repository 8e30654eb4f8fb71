import { AuthenticationError, type CryptoPool, cryptoPool, SEAL_BATCH_BYTES, type Spot } from '../crypto/crypto-pool.js';
import type { Kdf, KeySource, MasterKey } from '../crypto/keys.js';
import { RECORD_OVERHEAD } from '../crypto/record-cipher.js';
import { HEADER_BYTES, newHeader, openHeader, parseHeader, type VolumeKey } from '../crypto/volume-header.js';
import type { TapeObject } from '../drive/medium.js';
import type { Lease, PooledRecord } from '../drive/record-pool.js';
import { RecordRing, RING_HEADER_BYTES } from '../drive/record-ring.js';
import { TapeError, tapeError } from '../drive/tape-error.js';
import { framedSize, TAPE_MARK_SIZE } from '../sinks/simh-tap.js';
import type { Room, Sink, SinkStatus } from '../sinks/sink.js';
import type { SinkLog } from '../sinks/sink-uri.js';
import { WriteQueue } from '../sinks/write-queue.js';
import { Batcher, type RecordBatch } from '../workers/record-batch.js';
import { FileMap } from './file-map.js';

/**
 * A stage's sealed batches: twice a copy's default window (16 MiB may wait for the wrapped sink;
 * space comes back only in order, and the end of a lap may be skipped) and two batches at the
 * workers. With a larger window configured, or when the ring is full, a batch is sealed into memory
 * of its own.
 */
const SEALING_RING_BYTES = 32 * 2 ** 20 + 2 * SEAL_BATCH_BYTES;

/** What a volume's first object says about it. */
type Header =
  /** Nothing recorded: the header is written with the first object. */
  | { kind: 'blank' }
  | { kind: 'ours'; key: VolumeKey }
  /** No header, another key, tampered, or another volume's: unreadable, rewritable from BOT only. */
  | { kind: 'unusable'; why: string };

/** What goes to the wrapped sink, in order. */
type Step =
  /** `place`: where in the stage's ring `sealed` is, held until the wrapped sink has it (`release`). */
  | { kind: 'records'; sealed: Promise<Buffer>; lengths: number[]; place?: PooledRecord; release?: () => void }
  | { kind: 'filemarks'; count: number }
  | { kind: 'erase'; atStart: boolean }
  | { kind: 'header'; record: Buffer };

/**
 * The encrypt stage: a sink that wraps a sink and encrypts every record (AES-256-GCM, see
 * crypto/record-cipher.ts) with its place on the tape bound to it, behind a header record at the
 * start of each volume (crypto/volume-header.ts).
 *
 * Positions: the header is object 0 of the wrapped sink, so object n here is object n+1 there
 * (`delta`); a blank volume has no header until something is written. Writing or erasing at
 * object 0 starts the volume afresh (a new header and volume key); writing elsewhere appends with
 * the volume's own key, which needs the header to be ours. The file and record number of any
 * position come from a FileMap of the filemarks passed so far; locating past the known part scans
 * the wrapped sink forward first.
 *
 * Writes are queued (write-behind, like any sink): records are batched to the crypto pool's
 * worker threads and reach the wrapped sink in order once sealed. `queuedBytes`, `drain`, `sync`
 * and `failure` cover both this queue and the wrapped sink's.
 */
export class EncryptStage implements Sink {
  readonly name: string;
  private header: Header = { kind: 'blank' };
  /** Objects before ours on the wrapped sink: 1 once a header is there. */
  private delta = 0;
  private volume = 0;
  private pos = 0;
  private readonly map = new FileMap();
  /** The master key of the volumes this stage starts (derived at the first writable load). */
  private writeMaster: { master: MasterKey; kdf: Kdf } | undefined;
  private readonly queue = new WriteQueue();
  private readonly batcher: Batcher<Spot>;
  /** The key the records being batched are sealed with. */
  private batchKey: VolumeKey | undefined;
  /** Batches at the crypto workers: more wait, and grow, while two are (one sealed, one next). */
  private sealing = 0;
  /** Where batches are sealed into, reused (made at the first; see `sealBatch`). */
  private ring: RecordRing | undefined;
  private steps: Step[] = [];
  private pumping: Promise<void> | undefined;
  /** Bytes queued here that the wrapped sink will take (its framing counted as SIMH's). */
  private pendingLower = 0;
  private records = 0;
  private bytes = 0;

  constructor(
    private readonly lower: Sink,
    private readonly key: KeySource,
    private readonly log?: SinkLog,
    private readonly pool: CryptoPool = cryptoPool(),
    private readonly ringBytes = SEALING_RING_BYTES,
  ) {
    this.name = `encrypt:${key.label}|${lower.name}`;
    this.batcher = new Batcher(pool.chunks, (batch) => this.sealBatch(batch), { maxBytes: SEAL_BATCH_BYTES, busy: () => this.sealing >= 2 });
  }

  get position(): number {
    return this.pos;
  }
  get earlyWarning(): boolean {
    return this.lower.earlyWarning || (this.pendingLower > 8 && this.lower.room(this.pendingLower - 8) !== 'ok');
  }
  get queuedBytes(): number {
    return this.queue.bytes + this.lower.queuedBytes;
  }
  get earlyWarningZone(): number | undefined {
    return this.lower.earlyWarningZone;
  }
  get failure(): Error | undefined {
    return this.queue.failure ?? this.lower.failure;
  }
  get readable(): boolean | undefined {
    return this.lower.readable;
  }

  async load(volume: number): Promise<{ writeProtected: boolean }> {
    await this.settle().catch(() => undefined); // its failure was reported at the last sync point
    this.batcher.discard();
    const { writeProtected } = await this.lower.load(volume);
    this.queue.reset();
    this.dropSteps();
    this.pendingLower = 0;
    this.volume = volume;
    this.pos = 0;
    this.map.reset();
    // A copy that is not read back (a remote drive) is written from the beginning of a volume only.
    this.header = this.lower.readable === false ? { kind: 'unusable', why: 'the copy is not read back' } : await this.readHeader(volume);
    this.delta = this.header.kind === 'blank' ? 0 : 1;
    if (this.header.kind === 'unusable' && this.lower.readable !== false) {
      this.log?.(`volume ${volume} of ${this.name} cannot be read with this key: ${this.header.why}`, { sink: this.name, volume }, 'warn');
    }
    if (!writeProtected && !this.writeMaster) {
      const kdf = this.key.newVolumeKdf();
      this.writeMaster = { master: await this.key.masterKey(kdf), kdf };
    }
    return { writeProtected };
  }

  async unload(): Promise<void> {
    try {
      await this.settle();
    } finally {
      await this.lower.unload();
    }
  }

  hasVolume(volume: number): Promise<boolean> {
    return this.lower.hasVolume(volume);
  }

  room(recordBytes: number): Room {
    // What is queued here, a new header at BOT, then this record: SIMH-framed, at most a byte over.
    const header = this.pos === 0 ? framedSize(HEADER_BYTES) : 0;
    return this.lower.room(this.pendingLower + header + recordBytes + RECORD_OVERHEAD);
  }

  /** A pooled record is sealed where it is, held till then; any other is copied into a batch as it is written. */
  readonly holdsLeases = true;

  write(record: Buffer, lease?: Lease): void {
    const key = this.keyForWriting();
    if (!key) return;
    if (key !== this.batchKey) {
      this.batcher.flush();
      this.batchKey = key;
    }
    const spot = this.map.spot(this.pos);
    this.map.wrote(this.pos, 'record');
    this.batcher.add(record, spot, lease);
    this.pos++;
    this.queue.added(record.length);
    this.pendingLower += framedSize(record.length + RECORD_OVERHEAD);
    this.records++;
    this.bytes += record.length;
  }

  writeFilemarks(count: number): void {
    if (count <= 0 || !this.keyForWriting()) return;
    this.batcher.flush();
    for (let i = 0; i < count; i++) this.map.wrote(this.pos + i, 'filemark');
    this.pos += count;
    this.pendingLower += count * TAPE_MARK_SIZE;
    this.push({ kind: 'filemarks', count });
  }

  erase(): void {
    if (this.failure) return;
    this.batcher.flush();
    const atStart = this.pos === 0;
    this.map.truncate(this.pos);
    if (atStart) {
      this.header = { kind: 'blank' };
      this.delta = 0;
    }
    this.push({ kind: 'erase', atStart });
  }

  /**
   * Only the wrapped sink's writing makes room (sealing moves bytes from this queue to its), so
   * wait for that; the batch being filled is not cut short, it goes at the end of the turn.
   */
  async drain(maxQueuedBytes: number): Promise<void> {
    while (!this.failure && this.queuedBytes > maxQueuedBytes) {
      const own = this.queue.bytes;
      if (own >= maxQueuedBytes) await this.queue.drain(Math.floor(maxQueuedBytes / 2));
      else await this.lower.drain(maxQueuedBytes - own);
    }
  }

  async sync(): Promise<void> {
    await this.settle();
    await this.lower.sync();
  }

  async locate(object: number): Promise<void> {
    await this.settle();
    if (object === this.pos) return;
    if (object > 0) this.requireReadable();
    if (object > this.map.known) await this.scanTo(object);
    await this.lower.locate(object + this.delta);
    this.pos = object;
  }

  async next(withData: boolean): Promise<TapeObject> {
    await this.settle();
    if (this.header.kind === 'blank') return { kind: 'blank' };
    const key = this.requireReadable();
    const at = this.pos;
    const object = await this.lower.next(withData);
    if (object.kind === 'blank') return object;
    this.map.passed(at, object.kind);
    let result = object;
    if (object.kind === 'record' && withData) {
      const place = { volume: this.volume, ...this.map.spot(at) };
      try {
        result = { kind: 'record', data: await this.pool.open(key, place, object.data) };
      } catch (err) {
        await this.lower.previous().catch(() => undefined); // the head stays at the record, as the drive's count does
        const where = `volume ${place.volume}, file ${place.file}, record ${place.record}`;
        const why =
          err instanceof AuthenticationError
            ? 'the encrypted record fails authentication (changed, moved from elsewhere, or written with another key)'
            : `decryption failed: ${(err as Error).message}`;
        this.log?.(`${this.name}: ${where}: ${why}`, { sink: this.name, ...place }, 'error');
        throw tapeError('EIO', `${this.name}: ${where}: ${why}`);
      }
    }
    this.pos = at + 1;
    return result;
  }

  async previous(): Promise<'record' | 'filemark' | 'bot'> {
    await this.settle();
    if (this.pos === 0) return 'bot'; // never back over the header
    const kind = await this.lower.previous();
    if (kind !== 'bot') this.pos--;
    return kind;
  }

  async atEnd(): Promise<boolean> {
    await this.settle();
    return this.lower.atEnd();
  }

  status(): SinkStatus {
    return {
      ...this.lower.status(),
      name: this.name,
      position: this.pos,
      queuedBytes: this.queuedBytes,
      recordsWritten: this.records,
      bytesWritten: this.bytes,
      failure: this.failure?.message,
    };
  }

  async close(): Promise<void> {
    try {
      await this.settle();
    } finally {
      this.batcher.discard();
      await this.lower.close();
    }
  }

  /** The key for an object written at the position: a new volume's at BOT, else the volume's own. */
  private keyForWriting(): VolumeKey | undefined {
    if (this.failure) return undefined; // already reported; queueing more would only grow memory
    if (this.pos === 0) return this.startVolume();
    if (this.header.kind === 'ours') return this.header.key;
    this.fail(tapeError('EIO', `${this.name}: cannot append to volume ${this.volume}: ${this.unreadable()}`));
    return undefined;
  }

  /** Writing at BOT: a new header, and a new key for the volume's records. */
  private startVolume(): VolumeKey | undefined {
    if (!this.writeMaster) {
      this.fail(tapeError('EIO', `${this.name}: volume ${this.volume} was loaded write-protected`));
      return undefined;
    }
    const { record, key } = newHeader(this.writeMaster.master, this.writeMaster.kdf, this.volume);
    this.batcher.flush();
    this.map.reset();
    this.header = { kind: 'ours', key };
    this.delta = 1;
    this.pendingLower += framedSize(record.length);
    this.push({ kind: 'header', record });
    return key;
  }

  /**
   * Seals into the stage's ring when the wrapped sink lets go of its records (a lease) and the ring
   * has room: reused shared memory. A buffer per batch (a pool of 1 MiB chunks before) was new
   * memory each time at 10 KiB records, whose small batches each held a whole chunk: the daemon
   * peaked at 0.5-2.7 GiB and spent most of its time allocating.
   */
  private sealBatch(batch: RecordBatch<Spot>): void {
    const size = batch.bytes + batch.lengths.length * RECORD_OVERHEAD;
    const place = this.lower.holdsLeases ? this.sealingRing().take(size) : undefined;
    const sealed = this.pool.seal(this.batchKey!, batch, place?.data);
    this.sealing++;
    const sealedOrFailed = () => {
      this.sealing--;
      this.batcher.ready();
    };
    sealed.then(sealedOrFailed, sealedOrFailed); // a failure is taken up in order by the pump
    this.push({ kind: 'records', sealed, lengths: batch.lengths, place, release: place?.hold() });
  }

  private sealingRing(): RecordRing {
    return (this.ring ??= new RecordRing(new SharedArrayBuffer(RING_HEADER_BYTES + this.ringBytes)));
  }

  private push(step: Step): void {
    this.steps.push(step);
    this.pumping ??= this.pump();
  }

  private async pump(): Promise<void> {
    await null; // `pumping` is set before the loop can end
    try {
      while (this.steps.length > 0 && !this.queue.failure) {
        const step = this.steps.shift()!;
        try {
          await this.apply(step);
        } catch (err) {
          this.fail(err instanceof TapeError ? err : tapeError('EIO', `${this.name}: encryption failed: ${(err as Error).message}`));
        }
      }
    } finally {
      this.pumping = undefined;
    }
  }

  private async apply(step: Step): Promise<void> {
    switch (step.kind) {
      case 'records': {
        try {
          const sealed = await step.sealed;
          let at = 0;
          for (const length of step.lengths) {
            const size = length + RECORD_OVERHEAD;
            this.lower.write(sealed.subarray(at, at + size), step.place);
            at += size;
            this.pendingLower -= framedSize(size);
            this.queue.done(length);
          }
        } finally {
          step.release?.(); // after the last write: the wrapped sink holds what it keeps
        }
        return;
      }
      case 'filemarks':
        this.lower.writeFilemarks(step.count);
        this.pendingLower -= step.count * TAPE_MARK_SIZE;
        return;
      case 'erase':
        if (step.atStart) await this.lower.locate(0);
        this.lower.erase();
        return;
      case 'header':
        await this.lower.locate(0);
        this.lower.write(step.record);
        this.pendingLower -= framedSize(step.record.length);
        return;
    }
  }

  private fail(error: TapeError): void {
    this.queue.fail(error);
    this.dropSteps();
    this.pendingLower = 0;
    this.batcher.discard();
  }

  /** Steps not applied: their ring space comes back once the workers are done with it. */
  private dropSteps(): void {
    for (const step of this.steps.splice(0)) if (step.kind === 'records' && step.release) step.sealed.then(step.release, step.release);
  }

  /** Everything queued has reached the wrapped sink (or failed). */
  private async settle(): Promise<void> {
    this.batcher.flush();
    while (this.pumping) await this.pumping;
    if (this.queue.failure) throw this.queue.failure;
  }

  private async readHeader(volume: number): Promise<Header> {
    let first: TapeObject;
    try {
      first = await this.lower.next(true);
    } catch (err) {
      return { kind: 'unusable', why: `its first record cannot be read: ${(err as Error).message}` };
    }
    if (first.kind === 'blank') return { kind: 'blank' };
    if (first.kind === 'filemark') return { kind: 'unusable', why: 'it starts with a filemark: it is not an encrypted volume' };
    try {
      const header = parseHeader(first.data);
      const key = openHeader(header, await this.key.masterKey(header.kdf));
      if (header.volume !== volume) return { kind: 'unusable', why: `its header says it is volume ${header.volume}` };
      return { kind: 'ours', key };
    } catch (err) {
      return { kind: 'unusable', why: (err as Error).message };
    }
  }

  private requireReadable(): VolumeKey {
    if (this.header.kind === 'ours') return this.header.key;
    throw tapeError('EIO', `${this.name}: volume ${this.volume} cannot be read: ${this.unreadable()}`);
  }

  private unreadable(): string {
    return this.header.kind === 'unusable' ? this.header.why : 'it has no encryption header';
  }

  private async scanTo(object: number): Promise<void> {
    await this.lower.locate(this.map.known + this.delta);
    this.pos = this.map.known;
    while (this.pos < object) {
      const o = await this.lower.next(false);
      if (o.kind === 'blank') throw tapeError('EIO', `${this.name}: volume ${this.volume} ends at object ${this.pos}, cannot reach ${object}`);
      this.map.passed(this.pos, o.kind);
      this.pos++;
    }
  }
}
