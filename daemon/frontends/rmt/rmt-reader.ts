import { Errno, TapeError } from '../../drive/tape-error.js';

/**
 * One request of the rmt protocol (reference section 3): a command letter, then its arguments, each
 * ended by a newline, and for `W` the data.
 */
export type RmtRequest =
  | { cmd: 'O'; device: string; flags: string }
  | { cmd: 'C' }
  | { cmd: 'L'; first: string; second: string }
  | { cmd: 'W'; data: Buffer }
  | { cmd: 'R'; count: number }
  | { cmd: 'I'; op: number; count: number }
  | { cmd: 'i'; op: number; count: number }
  | { cmd: 'S' }
  | { cmd: 's'; field: string }
  | { cmd: 'V'; arg: string }
  | { cmd: 'v' };

/** Longest argument line accepted; real ones are a device path or a number. */
const MAX_LINE = 4096;

/**
 * Reads rmt requests from a byte stream with bounded memory: lines are capped, `W` data is capped by
 * `maxWrite`. A malformed request throws a TapeError (EINVAL), after which the stream is out of step
 * and the server must stop.
 */
export class RmtReader {
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private readonly chunks: AsyncIterator<Buffer>;

  constructor(
    input: AsyncIterable<Buffer>,
    private readonly maxWrite: number,
  ) {
    this.chunks = input[Symbol.asyncIterator]();
  }

  /** The next request, or null at the end of the input. */
  async next(): Promise<RmtRequest | null> {
    let letter: string | null;
    // Newlines between requests are skipped: `S` may or may not be followed by one (tar and dump
    // send `S` alone, GNU rmt clients `S\n`), and the reply to `S` cannot wait to find out.
    do letter = await this.byte();
    while (letter === '\n');
    if (letter === null) return null;
    switch (letter) {
      case 'O':
        return { cmd: 'O', device: await this.line(), flags: await this.line() };
      case 'C':
        await this.line(); // optional device name
        return { cmd: 'C' };
      case 'L':
        return { cmd: 'L', first: await this.line(), second: await this.line() };
      case 'W': {
        const count = this.count(await this.line(), 'W');
        if (count > this.maxWrite) throw garbage(`W${count}: larger than the drive's largest record (${this.maxWrite})`);
        return { cmd: 'W', data: await this.bytes(count) };
      }
      case 'R':
        return { cmd: 'R', count: this.count(await this.line(), 'R') };
      case 'I':
      case 'i':
        return { cmd: letter, op: this.integer(await this.line(), letter), count: this.integer(await this.line(), letter) };
      case 'S':
        return { cmd: 'S' };
      case 's': {
        const field = await this.byte();
        if (field === null) return null;
        return { cmd: 's', field };
      }
      case 'V':
        return { cmd: 'V', arg: await this.line() };
      case 'v':
        await this.line();
        return { cmd: 'v' };
      default:
        throw garbage(`unknown command '${printable(letter)}'`);
    }
  }

  private integer(text: string, cmd: string): number {
    if (!/^\s*-?\d+\s*$/.test(text)) throw garbage(`${cmd}: '${printable(text)}' is not a number`);
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) throw garbage(`${cmd}: ${text} is out of range`);
    return n;
  }

  private count(text: string, cmd: string): number {
    const n = this.integer(text, cmd);
    if (n < 0) throw garbage(`${cmd}: negative count ${n}`);
    return n;
  }

  private async byte(): Promise<string | null> {
    if (!(await this.fill(1))) return null;
    const b = this.buffered[0]!;
    this.buffered = this.buffered.subarray(1);
    return String.fromCharCode(b);
  }

  private async line(): Promise<string> {
    for (let searched = 0; ; ) {
      const nl = this.buffered.indexOf(0x0a, searched);
      // The limit holds however the line arrived: in one chunk or across several.
      if ((nl < 0 ? this.buffered.length : nl) > MAX_LINE) throw garbage(`argument line longer than ${MAX_LINE} bytes`);
      if (nl >= 0) {
        const text = this.buffered.subarray(0, nl).toString('latin1');
        this.buffered = this.buffered.subarray(nl + 1);
        return text;
      }
      searched = this.buffered.length;
      if (!(await this.fill(searched + 1))) throw garbage('input ended inside a request');
    }
  }

  private async bytes(count: number): Promise<Buffer> {
    if (!(await this.fill(count))) throw garbage(`input ended inside the data of a W${count} request`);
    const data = this.buffered.subarray(0, count);
    this.buffered = this.buffered.subarray(count);
    return data;
  }

  /** Makes at least `count` bytes available (one concatenation per call); false if the input ended first. */
  private async fill(count: number): Promise<boolean> {
    if (this.buffered.length >= count) return true;
    const parts = [this.buffered];
    let total = this.buffered.length;
    while (total < count && !this.ended) {
      const { value, done } = await this.chunks.next();
      if (done) this.ended = true;
      else {
        parts.push(value);
        total += value.length;
      }
    }
    this.buffered = parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
    return total >= count;
  }
}

function garbage(message: string): TapeError {
  return new TapeError(Errno.EINVAL, `rmt: ${message}`);
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
