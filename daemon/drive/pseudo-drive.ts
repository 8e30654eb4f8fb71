import type { PublishEvent } from '../events/events.js';
import type { Medium, SpaceResult } from './medium.js';
import { Gstat, MT_ISSCSI2, MT_ST_BLKSIZE_MASK, MT_ST_DENSITY_SHIFT, MtOp, mtOpName, type MtGet } from './mtio.js';
import { Errno, TapeError, tapeError } from './tape-error.js';
import type { Lease } from './record-pool.js';

/**
 * The Linux st driver's per-drive state machine (drivers/scsi/st.c, kernel 6.1), over a Medium.
 * Line references ("st.c Lnnnn") point at the reference in shared/reference/linux-tape-semantics.md.
 */

/** st.h `eof` states, in st's order: comparisons such as `>= EOD_1` rely on it. */
export enum Eof {
  NOEOF,
  FM_HIT,
  FM,
  EOM_OK,
  EOM_ERROR,
  EOD_1,
  EOD_2,
  EOD,
}

type Rw = 'idle' | 'reading' | 'writing';

export type Access = 'read' | 'write' | 'read-write';

export interface OpenOptions {
  access: Access;
  /** O_NONBLOCK: open without a medium, and without the EROFS check. */
  nonBlocking?: boolean;
  /** /dev/st* (rewind at close) rather than /dev/nst*. */
  rewindOnClose?: boolean;
}

export interface DriveOptions {
  /** Largest record (READ BLOCK LIMITS maximum); bigger writes fail with EINVAL. */
  maxRecord: number;
  /**
   * Load the next volume on the next blocking open after a writer closed at logical EOT or a reader
   * closed at the end of a volume's data (an unattended stacker).
   */
  autoload: boolean;
  density?: number;
  /** Where opens, closes, filemarks and the end of tape are told (the daemon's event bus). */
  events?: PublishEvent;
}

/** Everything a status view shows about the drive (admin status, `watch`). */
export interface DriveState {
  loaded: boolean;
  volume: number;
  fileno: number;
  blkno: number;
  position: number;
  blockSize: number;
  inUse: boolean;
  eof: string;
  rw: Rw;
  writeProtected: boolean;
  pastEarlyWarning: boolean;
}

/**
 * How a front end that acknowledges writes early (write-behind, proto/shim-frames.md) hands a
 * record over: `behind` records were already reported written, so they are written whatever the
 * early-warning state, and a failure turns into st's EOM_ERROR (EIO for later writes); `checked`
 * records passed `checkWrite` already.
 */
export interface WriteMode {
  behind?: boolean;
  checked?: boolean;
  /** The data is a pooled record: copies that keep it past the write hold it (RecordPool). */
  lease?: Lease;
}

/** One open of the drive (a file descriptor). */
export class DriveHandle {
  constructor(
    private readonly drive: PseudoDrive,
    readonly readOnly: boolean,
    readonly rewindOnClose: boolean,
  ) {}

  write(data: Buffer, mode: WriteMode = {}): Promise<number> {
    return this.run(() => this.drive.write(this, data, mode));
  }
  /**
   * The checks st makes before a write, including its ENOSPC decision after early warning, for a
   * record of which only the first `firstBytes` are known yet (a CUSE write's first chunk).
   */
  checkWrite(firstBytes: number): Promise<void> {
    return this.run(() => this.drive.checkRecordStart(this, firstBytes));
  }
  read(maxBytes: number): Promise<Buffer> {
    return this.run(() => this.drive.read(maxBytes));
  }
  ioctl(op: number, count: number): Promise<void> {
    return this.run(() => this.drive.ioctl(this, op, count));
  }
  status(): Promise<MtGet> {
    return this.run(() => this.drive.mtget());
  }
  /** MTIOCPOS: logical object number (blocks and filemarks) from BOT. */
  position(): Promise<number> {
    return this.run(() => this.drive.mtpos());
  }
  /** A close(2) that may not be the last one of this open (FUSE/CUSE flush): see PseudoDrive.flush. */
  flush(): Promise<void> {
    return this.run(() => this.drive.flush());
  }
  close(): Promise<void> {
    return this.run(() => this.drive.close(this));
  }

  private run<T>(op: () => Promise<T>): Promise<T> {
    return this.drive.serialize(() => {
      if (!this.drive.isOpenedBy(this)) throw tapeError('EBADF', 'the drive handle is closed');
      return op();
    });
  }
}

export class PseudoDrive {
  /** The open handle; one at a time (EBUSY). */
  private current: DriveHandle | undefined;
  private rw: Rw = 'idle';
  private eof = Eof.NOEOF;
  private fileno = -1;
  private blkno = -1;
  private blockSize = 0;
  private density: number;
  /** Fixed-block mode: the unread rest of a block a read returned part of. */
  private readAhead: Buffer | undefined;
  /** Set when the next blocking open must load the next volume (autoload). */
  private changeVolumeOnOpen = false;
  /** A write met a copy's physical end since the last motion: the volume is full, warned or not. */
  private metPhysicalEnd = false;
  /** The filemark a flush wrote, and the state before it, while a later write may take it back. */
  private flushFilemark: { position: number; fileno: number; blkno: number; eof: Eof; changeVolumeOnOpen: boolean } | undefined;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly medium: Medium,
    readonly options: DriveOptions,
  ) {
    this.density = options.density ?? 0;
    if (medium.loaded) this.fileno = this.blkno = 0;
  }

  /** Loads volume 1 on every copy (a drive starts with its first cartridge in). */
  async start(): Promise<void> {
    await this.serialize(() => this.loadNextVolume());
  }

  /** What a reply tells the writer besides its result. */
  flags(): { earlyWarning: boolean; endOfData: boolean; filemark: boolean } {
    return {
      earlyWarning: this.eof === Eof.EOM_OK || this.eof === Eof.EOM_ERROR,
      endOfData: this.eof >= Eof.EOD_1,
      filemark: this.eof === Eof.FM,
    };
  }

  state(): DriveState {
    return {
      loaded: this.medium.loaded,
      volume: this.medium.volume,
      fileno: this.fileno,
      blkno: this.blkno,
      position: this.medium.position,
      blockSize: this.blockSize,
      inUse: this.current !== undefined,
      eof: Eof[this.eof],
      rw: this.rw,
      writeProtected: this.medium.writeProtected,
      pastEarlyWarning: this.medium.pastEarlyWarning,
    };
  }

  open(options: OpenOptions): Promise<DriveHandle> {
    return this.serialize(async () => {
      if (this.current) throw tapeError('EBUSY', `drive ${this.name} is already open`);
      const blocking = !options.nonBlocking;
      const autoload = blocking && this.options.autoload && (this.changeVolumeOnOpen || !this.medium.loaded);
      if (autoload) {
        if (this.medium.loaded) await this.medium.unload();
        await this.loadNextVolume();
      }
      if (blocking) this.changeVolumeOnOpen = false; // mt status (O_NONBLOCK) in between keeps it
      if (blocking && !this.medium.loaded) throw tapeError('ENOMEDIUM', `no volume in drive ${this.name}`);
      if (blocking && this.medium.loaded && this.medium.writeProtected && options.access !== 'read') {
        throw tapeError('EROFS', `the volume in drive ${this.name} is write-protected`);
      }
      this.rw = 'idle'; // st_open
      this.current = new DriveHandle(this, options.access === 'read', options.rewindOnClose ?? false);
      this.options.events?.({ type: 'opened', access: options.access, nonBlocking: !blocking, volume: this.medium.volume, autoloaded: autoload });
      return this.current;
    });
  }

  /** Runs drive operations one at a time, in arrival order. */
  serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(op, op);
    this.tail = run.catch(() => undefined);
    return run;
  }

  async write(handle: DriveHandle, data: Buffer, mode: WriteMode = {}): Promise<number> {
    this.requireMedium();
    if (data.length === 0) return 0; // st_write: zero count writes nothing, not even a filemark
    // A checked record passed checkWrite on its first bytes; its whole size is known only now.
    if (mode.checked) this.checkSize(data.length);
    else this.checkWrite(handle, data.length, { behind: mode.behind });
    if (this.rw === 'reading') this.readAhead = undefined;
    await this.takeBackFlushFilemark();
    this.rw = 'writing';

    const size = this.blockSize || data.length;
    let written = 0;
    let earlyWarning = false;
    try {
      for (; written < data.length; written += size) {
        const outcome = await this.medium.write(data.subarray(written, written + size), mode.lease);
        if (this.blkno >= 0) this.blkno++;
        if (outcome === 'early-warning') earlyWarning = true;
      }
    } catch (err) {
      if (!(err instanceof TapeError) || err.errno !== Errno.ENOSPC /* physical end */) {
        this.blkno = -1;
        throw err;
      }
      this.metPhysicalEnd = true;
      if (mode.behind) {
        this.eof = Eof.EOM_ERROR; // EOM inside data the writer believes written (st.c L1839-1848)
        throw tapeError('EIO', `physical end of volume ${this.medium.volume} reached by a record already acknowledged`);
      }
      this.eof = Eof.EOM_OK;
      this.options.events?.({ type: 'logical-eot', volume: this.medium.volume, physical: true });
      if (written === 0) throw err; // variable mode: nothing written, -1 ENOSPC (st.c L1800-1820)
      return written; // fixed mode: short count
    }
    this.eof = earlyWarning || this.eof === Eof.EOD_1 ? Eof.EOM_OK : Eof.NOEOF;
    return written;
  }

  checkWrite(handle: DriveHandle, length: number, { behind = false, partial = false } = {}): void {
    this.requireMedium();
    this.checkSize(length, partial);
    if (handle.readOnly || this.medium.writeProtected) {
      throw tapeError('EACCES', `drive ${this.name} is ${handle.readOnly ? 'open read-only' : 'write-protected'}`);
    }
    if (this.eof === Eof.EOM_OK && !behind) {
      this.eof = Eof.EOD_1; // the write after EW is refused; the one after that may proceed (st.c L1686-1692)
      this.options.events?.({ type: 'logical-eot', volume: this.medium.volume, physical: false });
      throw tapeError('ENOSPC', `logical end of tape on drive ${this.name} (volume ${this.medium.volume})`);
    }
    if (this.eof === Eof.EOM_ERROR) throw tapeError('EIO', 'end of medium reached while writing buffered data');
  }

  /**
   * checkWrite for a record of which only the first bytes are known. Its answer is final (a CUSE
   * writer only sees an errno on the first chunk), so the physical end is judged as if the record
   * were as long as it may be: near the end of a copy a long record gets ENOSPC a little early,
   * rather than being acknowledged and then not fitting.
   */
  async checkRecordStart(handle: DriveHandle, firstBytes: number): Promise<void> {
    this.checkWrite(handle, firstBytes, { partial: true });
    const longest = Math.max(firstBytes, this.blockSize || this.options.maxRecord);
    if (!(await this.medium.fits(longest))) {
      this.eof = Eof.EOM_OK; // as a write that met the physical end (see write)
      this.metPhysicalEnd = true;
      this.options.events?.({ type: 'logical-eot', volume: this.medium.volume, physical: true });
      throw tapeError('ENOSPC', `physical end of volume ${this.medium.volume} on drive ${this.name}: no room for a record of up to ${longest} bytes`);
    }
  }

  /** A partial length (the start of a record) can only be too long, not a wrong multiple. */
  private checkSize(length: number, partial = false): void {
    if (!partial && this.blockSize !== 0 && length % this.blockSize !== 0) {
      throw tapeError('EINVAL', `write of ${length} bytes is not a multiple of the block size ${this.blockSize}`);
    }
    if (this.blockSize === 0 && length > this.options.maxRecord) {
      throw tapeError('EINVAL', `record of ${length} bytes exceeds the drive's maximum of ${this.options.maxRecord}`);
    }
  }

  async read(maxBytes: number): Promise<Buffer> {
    this.flushFilemark = undefined;
    this.requireMedium();
    if (maxBytes === 0) return Buffer.alloc(0);
    if (this.rw === 'writing') await this.medium.sync();
    if (!this.readAhead && this.eof >= Eof.EOD_1) {
      if (this.eof < Eof.EOD) {
        this.eof++;
        return Buffer.alloc(0);
      }
      throw tapeError('EIO', `end of recorded data on drive ${this.name}`);
    }
    this.rw = 'reading';
    return this.blockSize === 0 ? this.readVariable(maxBytes) : this.readFixed(maxBytes);
  }

  private async readVariable(maxBytes: number): Promise<Buffer> {
    if (this.eof === Eof.FM_HIT) return this.reportFilemark();
    const object = await this.medium.read();
    switch (object.kind) {
      case 'record':
        if (this.blkno >= 0) this.blkno++;
        if (object.data.length > maxBytes) {
          // The record is consumed and lost, as st does since 2.4 (st.c L1985-1996).
          throw tapeError('ENOMEM', `record of ${object.data.length} bytes does not fit a ${maxBytes}-byte read`);
        }
        if (this.eof === Eof.FM) this.eof = Eof.NOEOF;
        return object.data;
      case 'filemark':
        return this.reportFilemark();
      case 'blank':
        return this.blankCheck();
    }
  }

  private async readFixed(maxBytes: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let total = 0;
    while (total < maxBytes) {
      if (this.readAhead) {
        const take = this.readAhead.subarray(0, maxBytes - total);
        parts.push(take);
        total += take.length;
        this.readAhead = take.length < this.readAhead.length ? this.readAhead.subarray(take.length) : undefined;
        continue;
      }
      if (this.eof === Eof.FM_HIT) break;
      const object = await this.medium.read();
      if (object.kind === 'filemark') {
        this.eof = Eof.FM_HIT; // returned after the data before it
        break;
      }
      if (object.kind === 'blank') {
        if (total > 0) break;
        return this.blankCheck();
      }
      if (object.data.length !== this.blockSize) {
        await this.medium.spaceRecords(-1); // st backspaces over the wrong-sized block
        if (total > 0) break;
        throw tapeError('EIO', `block of ${object.data.length} bytes in ${this.blockSize}-byte fixed-block mode`);
      }
      if (this.blkno >= 0) this.blkno++;
      this.readAhead = object.data;
    }
    if (total === 0) return this.reportFilemark();
    if (this.eof === Eof.FM) this.eof = Eof.NOEOF;
    return Buffer.concat(parts, total);
  }

  /** The read that reports a filemark returns 0 and leaves the tape after it (st.c L2206-2212). */
  private reportFilemark(): Buffer {
    this.eof = Eof.FM;
    this.blkno = 0;
    if (this.fileno >= 0) this.fileno++;
    return Buffer.alloc(0);
  }

  /** BLANK CHECK: zero bytes right after a filemark, EIO otherwise (st.c L2057-2066). */
  private blankCheck(): Buffer {
    this.blkno = -1;
    if (this.eof === Eof.FM) {
      this.eof = Eof.EOD; // EOD_2, then st_read's epilogue moves it to EOD
      return Buffer.alloc(0);
    }
    throw tapeError('EIO', `end of recorded data on drive ${this.name}`);
  }

  async ioctl(handle: DriveHandle, op: number, count: number): Promise<void> {
    this.flushFilemark = undefined;
    if (!this.medium.loaded && !OPS_WITHOUT_MEDIUM.has(op)) {
      throw tapeError('ENOMEDIUM', `no volume in drive ${this.name} for ${mtOpName(op)}`);
    }
    checkCount(op, count);
    if (MOTION_OPS.has(op)) this.changeVolumeOnOpen = this.metPhysicalEnd = false;
    let n = count;
    if (this.eof === Eof.FM_HIT) n = await this.settleFilemarkHit(op, n);
    this.readAhead = undefined;
    if (this.rw === 'writing' && FILEMARK_FIRST_OPS.has(op)) {
      await this.writeFilemarks(1);
      if (op === MtOp.MTBSF || op === MtOp.MTBSFM) n++;
    }
    if (!KEEPS_RW_OPS.has(op)) this.rw = 'idle';
    const protectedMedium = handle.readOnly || this.medium.writeProtected;

    switch (op) {
      case MtOp.MTFSF:
        return this.forwardFiles(n);
      case MtOp.MTBSF:
        return this.backwardFiles(n);
      case MtOp.MTFSFM:
        await this.forwardFiles(n);
        return this.backwardFiles(1);
      case MtOp.MTBSFM:
        await this.backwardFiles(n);
        return this.forwardFiles(1);
      case MtOp.MTFSR:
        return n >= 0 ? this.forwardRecords(n) : this.backwardRecords(-n);
      case MtOp.MTBSR:
        return n >= 0 ? this.backwardRecords(n) : this.forwardRecords(-n);
      case MtOp.MTWEOF:
      case MtOp.MTWEOFI:
        if (protectedMedium) throw tapeError('EACCES', `drive ${this.name} is not writable`);
        await this.writeFilemarks(n);
        this.eof = Eof.NOEOF;
        this.rw = 'idle'; // no second filemark at close
        if (op === MtOp.MTWEOF) await this.medium.sync();
        return;
      case MtOp.MTREW:
      case MtOp.MTRETEN:
        await this.medium.sync();
        await this.medium.rewind();
        return this.atBot();
      case MtOp.MTOFFL:
      case MtOp.MTUNLOAD:
        try {
          await this.medium.unload();
        } finally {
          this.fileno = this.blkno = -1;
          this.eof = Eof.NOEOF;
        }
        return;
      case MtOp.MTLOAD:
        if (this.medium.loaded) {
          await this.medium.sync();
          await this.medium.rewind();
          return this.atBot();
        }
        return this.loadNextVolume();
      case MtOp.MTNOP:
        return this.medium.sync();
      case MtOp.MTEOM: {
        const r = await this.medium.spaceFilemarks(0x7fffff);
        if (this.fileno >= 0) this.fileno += r.crossed;
        this.blkno = -1;
        this.eof = Eof.EOD;
        return;
      }
      case MtOp.MTERASE:
        if (protectedMedium) throw tapeError('EACCES', `drive ${this.name} is not writable`);
        await this.medium.erase();
        return this.medium.sync();
      case MtOp.MTSETBLK:
        if (n !== 0 && (n < 1 || n > this.options.maxRecord || n > MT_ST_BLKSIZE_MASK)) {
          throw tapeError('EINVAL', `block size ${n} is outside the drive's limits 1-${this.options.maxRecord}`);
        }
        this.blockSize = n;
        return;
      case MtOp.MTSETDENSITY:
        this.density = n & 0xff;
        return;
      case MtOp.MTSEEK:
        return this.seek(n);
      case MtOp.MTSETDRVBUFFER: // driver options: accepted; the pseudo drive has no buffering knobs
      case MtOp.MTLOCK:
      case MtOp.MTUNLOCK:
      case MtOp.MTCOMPRESSION:
        return;
      case MtOp.MTSETPART:
      case MtOp.MTMKPART:
        throw tapeError('EINVAL', `drive ${this.name} has no partitions`);
      case MtOp.MTFSS:
      case MtOp.MTBSS:
      case MtOp.MTWSM:
        throw tapeError('EIO', `drive ${this.name} does not support setmarks`);
      default:
        // MTRESET, MTRAS1-3 and MTTELL are not implemented by st either (st.c L2955-2956).
        throw tapeError('ENOSYS', `${mtOpName(op)} is not supported`);
    }
  }

  /** MTIOCGET (st.c L3782-3843); a sync point, like st's flush before status. */
  async mtget(): Promise<MtGet> {
    if (this.medium.loaded && this.rw === 'writing') await this.medium.sync();
    let blkno = this.blkno;
    if (this.blockSize !== 0 && this.rw === 'reading' && this.readAhead) blkno--;
    let gstat = Gstat.IM_REP_EN;
    if (this.medium.writeProtected) gstat |= Gstat.WR_PROT;
    if (blkno === 0) gstat |= this.fileno === 0 ? Gstat.BOT : Gstat.EOF;
    if (this.eof === Eof.EOM_OK || this.eof === Eof.EOM_ERROR) gstat |= Gstat.EOT;
    else if (this.eof >= Eof.EOM_OK) gstat |= Gstat.EOD;
    if (this.density === 1) gstat |= Gstat.D_800;
    else if (this.density === 2) gstat |= Gstat.D_1600;
    else if (this.density === 3) gstat |= Gstat.D_6250;
    gstat |= this.medium.loaded ? Gstat.ONLINE : Gstat.DR_OPEN;
    return {
      type: MT_ISSCSI2,
      resid: 0,
      dsreg: ((this.blockSize & MT_ST_BLKSIZE_MASK) | (this.density << MT_ST_DENSITY_SHIFT)) >>> 0,
      gstat: gstat >>> 0,
      erreg: 0,
      fileno: this.fileno,
      blkno,
    };
  }

  async mtpos(): Promise<number> {
    this.requireMedium();
    await this.medium.sync();
    return this.medium.position;
  }

  isOpenedBy(handle: DriveHandle): boolean {
    return this.current === handle;
  }

  /** Daemon shutdown: closes an open handle as a process exit would (filemark after writing). */
  shutdown(): Promise<void> {
    return this.serialize(async () => {
      if (this.current) await this.close(this.current);
    });
  }

  /** st_flush + st_release (st.c L1340-1448). */
  /**
   * st's close-time work at a close(2) through FUSE/CUSE, which does not say whether it is the last
   * descriptor of the open (st_flush checks that): after writes, the filemark and a sync point, so
   * the writer's close(2) gets their errors. If another descriptor of the open writes again, the
   * filemark was not st's to write: the next write takes it back (see takeBackFlushFilemark).
   */
  async flush(): Promise<void> {
    if (!this.medium.loaded) return;
    if (this.rw === 'writing') {
      const before = { position: this.medium.position, fileno: this.fileno, blkno: this.blkno, eof: this.eof, changeVolumeOnOpen: this.changeVolumeOnOpen };
      this.rw = 'idle';
      await this.closingFilemark();
      this.flushFilemark = { ...before, position: before.position + 1 };
    }
    await this.medium.sync();
  }

  /** A write right after a flush's filemark, from another descriptor: back over it, as if unwritten. */
  private async takeBackFlushFilemark(): Promise<void> {
    const mark = this.flushFilemark;
    this.flushFilemark = undefined;
    if (!mark || this.medium.position !== mark.position) return;
    await this.medium.locate(mark.position - 1);
    this.fileno = mark.fileno;
    this.blkno = mark.blkno;
    this.eof = mark.eof;
    this.changeVolumeOnOpen = mark.changeVolumeOnOpen;
  }

  /** The filemark st writes when a writer closes. */
  private async closingFilemark(): Promise<void> {
    await this.writeFilemarks(1);
    this.eof = Eof.FM;
    // A copy whose early-warning zone is smaller than a record reaches its end without warning.
    if (this.medium.pastEarlyWarning || this.metPhysicalEnd) this.changeVolumeOnOpen = true;
    this.metPhysicalEnd = false;
  }

  async close(handle: DriveHandle): Promise<void> {
    let failure: unknown;
    this.flushFilemark = undefined;
    try {
      if (this.rw === 'writing' && this.medium.loaded) {
        await this.closingFilemark();
      } else if (this.rw === 'reading' && this.medium.loaded) {
        if (this.eof === Eof.FM_HIT) {
          await this.medium.spaceFilemarks(-1); // BSD semantics: back over the unreported filemark
          this.eof = Eof.NOEOF;
        }
        if ((await this.medium.atEndOfData()) && (await this.medium.hasNextVolume())) {
          this.changeVolumeOnOpen = true;
        }
      }
      this.readAhead = undefined;
      if (this.medium.loaded) await this.medium.sync();
      if (handle.rewindOnClose && this.medium.loaded) {
        await this.medium.rewind();
        this.atBot();
      }
    } catch (err) {
      failure = err;
    }
    this.rw = 'idle';
    this.current = undefined;
    this.options.events?.({
      type: 'closed',
      volume: this.medium.volume,
      fileno: this.fileno,
      blkno: this.blkno,
      ...(failure !== undefined && { error: (failure as Error).message }),
    });
    if (failure) throw failure;
  }

  private async writeFilemarks(count: number): Promise<void> {
    await this.medium.writeFilemarks(count);
    if (this.fileno >= 0) this.fileno += count;
    this.blkno = 0;
    if (count > 0) this.options.events?.({ type: 'filemark', count, volume: this.medium.volume, fileno: this.fileno });
  }

  /** st_ioctl's handling of a filemark a fixed-block read met but did not report yet. */
  private async settleFilemarkHit(op: number, count: number): Promise<number> {
    if (op === MtOp.MTFSF || op === MtOp.MTFSFM || op === MtOp.MTEOM) {
      this.reportFilemark();
      return count - 1;
    }
    if (op === MtOp.MTBSF || op === MtOp.MTBSFM) {
      this.reportFilemark();
      return count + 1;
    }
    if (SEEK_NEXT_OPS.has(op)) {
      this.reportFilemark();
    } else {
      await this.medium.spaceFilemarks(-1);
      this.eof = Eof.NOEOF;
    }
    return count;
  }

  private async forwardFiles(count: number): Promise<void> {
    if (count < 0) return this.backwardFiles(-count);
    const r = await this.medium.spaceFilemarks(count);
    if (this.fileno >= 0) this.fileno += r.crossed;
    if (r.stoppedAt === 'blank') {
      this.blkno = -1;
      this.eof = Eof.EOD;
      throw this.spaceError('MTFSF', count, r);
    }
    this.blkno = 0;
    this.eof = Eof.FM;
  }

  private async backwardFiles(count: number): Promise<void> {
    if (count < 0) return this.forwardFiles(-count);
    const r = await this.medium.spaceFilemarks(-count);
    if (this.fileno >= 0) this.fileno -= r.crossed;
    this.eof = Eof.NOEOF;
    if (r.stoppedAt === 'bot') {
      this.blkno = 0;
      throw this.spaceError('MTBSF', count, r);
    }
    this.blkno = -1; // st cannot know the block number on the BOT side of a filemark
  }

  private async forwardRecords(count: number): Promise<void> {
    const r = await this.medium.spaceRecords(count);
    if (r.stoppedAt === 'filemark') {
      if (this.fileno >= 0) this.fileno++;
      this.blkno = 0;
      this.eof = Eof.FM;
      throw this.spaceError('MTFSR', count, r);
    }
    if (this.blkno >= 0) this.blkno += r.crossed;
    if (r.stoppedAt === 'blank') {
      this.eof = Eof.EOD;
      throw this.spaceError('MTFSR', count, r);
    }
    this.eof = Eof.NOEOF;
  }

  private async backwardRecords(count: number): Promise<void> {
    const r = await this.medium.spaceRecords(-count);
    this.eof = Eof.NOEOF;
    if (r.stoppedAt === 'filemark') {
      if (this.fileno >= 0) this.fileno--;
      this.blkno = -1;
      throw this.spaceError('MTBSR', count, r);
    }
    if (this.blkno >= 0) this.blkno -= r.crossed;
    if (r.stoppedAt === 'bot') throw this.spaceError('MTBSR', count, r);
  }

  private async seek(object: number): Promise<void> {
    await this.medium.sync();
    this.eof = Eof.NOEOF;
    try {
      await this.medium.locate(object);
    } finally {
      this.fileno = this.blkno = object === 0 && this.medium.position === 0 ? 0 : -1;
    }
  }

  private spaceError(op: string, count: number, r: SpaceResult): TapeError {
    const where = { filemark: 'a filemark', blank: 'the end of data', bot: 'the beginning of tape' }[r.stoppedAt!];
    return tapeError('EIO', `${op} ${count} stopped at ${where} after ${r.crossed}`);
  }

  private async loadNextVolume(): Promise<void> {
    await this.medium.loadNext();
    this.atBot();
  }

  private atBot(): void {
    this.metPhysicalEnd = false;
    this.fileno = this.blkno = 0;
    this.eof = Eof.NOEOF;
  }

  private requireMedium(): void {
    if (!this.medium.loaded) throw tapeError('ENOMEDIUM', `no volume in drive ${this.name}`);
  }
}

/** Ops after which st writes a filemark first if the last operation was a write (st.c L3606-3618). */
const FILEMARK_FIRST_OPS = new Set<number>([MtOp.MTREW, MtOp.MTOFFL, MtOp.MTSEEK, MtOp.MTBSF, MtOp.MTBSFM]);
/** Ops that keep the writing state, so close still writes its filemark (st.c L3659-3662). */
const KEEPS_RW_OPS = new Set<number>([MtOp.MTNOP, MtOp.MTSETBLK, MtOp.MTSETDENSITY, MtOp.MTWSM, MtOp.MTSETDRVBUFFER, MtOp.MTSETPART]);
/** flush_buffer(seek_next=1) ops: a pending filemark counts as crossed. */
const SEEK_NEXT_OPS = new Set<number>([MtOp.MTREW, MtOp.MTOFFL, MtOp.MTRETEN, MtOp.MTEOM, MtOp.MTLOCK, MtOp.MTLOAD, MtOp.MTCOMPRESSION]);
/** Ops that are fine on an empty drive (opened O_NONBLOCK). */
const OPS_WITHOUT_MEDIUM = new Set<number>([MtOp.MTLOAD, MtOp.MTNOP, MtOp.MTSETBLK, MtOp.MTSETDENSITY, MtOp.MTSETDRVBUFFER, MtOp.MTLOCK, MtOp.MTUNLOCK, MtOp.MTCOMPRESSION]);
/**
 * Filemarks one MTWEOF may write. st takes up to 2^24-1 (the field of WRITE FILEMARKS), but each
 * filemark is an object in every copy's queue, so one request could cost a gigabyte; tools write one
 * or two.
 */
const MAX_FILEMARKS = 0xffff;

/**
 * Counts no tape can honour, refused before anything moves: st would pass a negative filemark count
 * or position on to the drive as a huge unsigned one (and the pseudo drive's position went negative).
 */
function checkCount(op: number, count: number): void {
  if ((op === MtOp.MTWEOF || op === MtOp.MTWEOFI) && (count < 0 || count > MAX_FILEMARKS)) {
    throw tapeError('EINVAL', `${mtOpName(op)} ${count}: a filemark count is 0-${MAX_FILEMARKS}`);
  }
  if (op === MtOp.MTSEEK && count < 0) throw tapeError('EINVAL', `MTSEEK ${count}: a position is not negative`);
}

/** Ops that move the tape: they cancel a pending autoload volume change. */
const MOTION_OPS = new Set<number>([MtOp.MTFSF, MtOp.MTBSF, MtOp.MTFSR, MtOp.MTBSR, MtOp.MTWEOF, MtOp.MTREW, MtOp.MTRETEN, MtOp.MTBSFM, MtOp.MTFSFM, MtOp.MTEOM, MtOp.MTERASE, MtOp.MTSEEK, MtOp.MTWEOFI]);
