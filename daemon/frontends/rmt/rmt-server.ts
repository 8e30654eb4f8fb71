import { MtOp } from '../../drive/mtio.js';
import type { Access } from '../../drive/pseudo-drive.js';
import { Errno, errnoName, TapeError } from '../../drive/tape-error.js';
import { encodeMtget, type MtGet } from '../../drive/mtio.js';
import { RmtReader, type RmtRequest } from './rmt-reader.js';
import { parseOpenFlags } from './open-flags.js';

/** An open drive, as the rmt server uses it (the gRPC DriveSession is one). */
export interface TapeDevice {
  write(data: Buffer): Promise<number>;
  read(maxBytes: number): Promise<Buffer>;
  mt(op: number, count: number): Promise<void>;
  status(): Promise<MtGet>;
  close(): Promise<void>;
}

export type OpenDrive = (drive: string, options: { access: Access; nonBlocking: boolean }) => Promise<TapeDevice>;

export interface RmtServerOptions {
  open: OpenDrive;
  /** Serve only this drive (its name, or a device path ending in it). */
  drive?: string;
  /** Largest W or R count served. */
  maxRecord: number;
}

/** RMT protocol version 1 (`I-1`): the standard op numbers 0-10, mapped to Linux's. */
const VERSION_1_OPS = [MtOp.MTWEOF, MtOp.MTFSF, MtOp.MTBSF, MtOp.MTFSR, MtOp.MTBSR, MtOp.MTREW, MtOp.MTOFFL, MtOp.MTNOP, MtOp.MTRETEN, MtOp.MTERASE, MtOp.MTEOM];
/** `i` requests (dump's and star's extension): 0 CACHE, 1 NOCACHE, 2 RETEN, 3 ERASE, 4 EOM, 5 NBSF. */
const EXTENDED_OPS: (number | null)[] = [null, null, MtOp.MTRETEN, MtOp.MTERASE, MtOp.MTEOM, MtOp.MTBSF];
/** `s` requests: one field of struct mtget, in decimal. */
const STATUS_FIELDS: Record<string, (s: MtGet) => number> = {
  T: (s) => s.type,
  D: (s) => s.dsreg,
  E: (s) => s.erreg,
  R: (s) => s.resid,
  F: (s) => s.fileno,
  B: (s) => s.blkno,
  f: (s) => s.gstat,
  b: () => 0,
};

/**
 * An rmt server for the pseudo drives (reference section 3.4): accepts what BSD, dump, GNU and star
 * clients send, and answers as st would (`E28` for the write refused at early warning).
 */
export class RmtServer {
  private device: TapeDevice | undefined;
  private version1 = false;

  constructor(private readonly options: RmtServerOptions) {}

  /** Serves requests until the input ends or a request cannot be understood. */
  async serve(input: AsyncIterable<Buffer>, output: (reply: Buffer) => Promise<void>): Promise<void> {
    const reader = new RmtReader(input, this.options.maxRecord);
    try {
      for (;;) {
        let request: RmtRequest | null;
        try {
          request = await reader.next();
        } catch (err) {
          await output(errorReply(err)); // out of step with the client: answer, then stop
          return;
        }
        if (!request) return;
        await output(await this.answer(request).catch(errorReply));
      }
    } finally {
      await this.closeDevice().catch(() => undefined); // like process exit: the filemark still goes
    }
  }

  private async answer(req: RmtRequest): Promise<Buffer> {
    switch (req.cmd) {
      case 'O': {
        const flags = parseOpenFlags(req.flags);
        const drive = this.driveFor(req.device);
        await this.closeDevice();
        this.device = await this.options.open(drive, flags);
        return ok(0);
      }
      case 'C':
        await this.closeDevice();
        return ok(0);
      case 'L':
        // st's lseek does nothing and returns 0; the order of offset and whence does not matter.
        for (const arg of [req.first, req.second]) {
          if (!/^\s*-?\d+\s*$|^\s*SEEK_(SET|CUR|END)\s*$/.test(arg)) throw einval(`L: '${arg}' is not an offset or whence`);
        }
        this.open();
        return ok(0);
      case 'W':
        return ok(await this.open().write(req.data));
      case 'R': {
        const data = await this.open().read(Math.min(req.count, this.options.maxRecord));
        return Buffer.concat([Buffer.from(`A${data.length}\n`), data]);
      }
      case 'I': {
        if (req.op === -1) {
          this.version1 = true;
          return ok(1);
        }
        const op = this.version1 ? VERSION_1_OPS[req.op] : req.op;
        if (op === undefined) throw new TapeError(Errno.ENOSYS, `I${req.op}: not an RMT version 1 operation`);
        await this.open().mt(op, req.count);
        return ok(req.count);
      }
      case 'i': {
        const op = EXTENDED_OPS[req.op];
        if (op === undefined) throw einval(`i${req.op}: unknown extended operation`);
        if (op !== null) await this.open().mt(op, req.count);
        return ok(req.count);
      }
      case 'S':
        return Buffer.concat([Buffer.from('A48\n'), encodeMtget(await this.open().status())]);
      case 's': {
        const field = STATUS_FIELDS[req.field];
        if (!field) throw einval(`s${req.field}: unknown status field`);
        return ok(field(await this.open().status()));
      }
      case 'V':
        return ok(2);
      case 'v':
        return ok(1);
    }
  }

  private driveFor(device: string): string {
    const name = device.slice(device.lastIndexOf('/') + 1);
    const only = this.options.drive;
    if (only !== undefined && name !== only) {
      throw new TapeError(Errno.ENOENT, `this rmt server serves drive ${only} only, not '${device}'`);
    }
    return name;
  }

  private open(): TapeDevice {
    if (!this.device) throw new TapeError(Errno.EBADF, 'no drive is open (send O first)');
    return this.device;
  }

  private async closeDevice(): Promise<void> {
    const device = this.device;
    this.device = undefined;
    await device?.close();
  }
}

function ok(value: number): Buffer {
  return Buffer.from(`A${value}\n`);
}

function errorReply(err: unknown): Buffer {
  const errno = err instanceof TapeError ? err.errno : Errno.EIO;
  const message = (err instanceof Error ? err.message : String(err)).replace(/^[A-Z]+: /, '').replace(/\n/g, ' ');
  return Buffer.from(`E${errno}\n${message || errnoName(errno)}\n`);
}

function einval(message: string): TapeError {
  return new TapeError(Errno.EINVAL, `rmt: ${message}`);
}
