/**
 * Fuzzing the rmt server (daemon/frontends/rmt/): streams of well-formed, malformed, oversized and
 * truncated requests, cut into chunks anywhere, against a pseudo drive in memory.
 *
 * Invariants: one reply per request, in the protocol's forms (`A<n>\n` with a record or a status
 * where the request asks for one, or `E<errno>\n<message>\n`); a request the reader cannot parse is
 * answered `E22` with an `rmt:` message and ends the session; how the stream is cut changes nothing
 * (replies and tape); the reader holds at most one argument line (4 KiB) or one record beyond what
 * it has answered; the drive is closed when the session ends, and works.
 */
import { execa } from 'execa';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RmtServer, type TapeDevice } from '../../daemon/frontends/rmt/rmt-server.js';
import type { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { CLI } from '../support/daemon.js';
import { memoryDrive } from '../support/memory-drive.js';
import { chunkStream, corpus, cutPoints, edgeInt, expectDriveWorks, fuzz, FUZZ_TIMEOUT, split, within } from './fuzz.js';

/** The server's largest record: small, so records over it are cheap to make. */
const MAX_RECORD = 8192;
const MAX_LINE = 4096;

type Kind = 'ok' | 'fatal' | 'silent';
/** One request as bytes, and what the server must make of it. */
interface Req {
  bytes: Buffer;
  /** ok: one reply; fatal: E22 and the end of the session; silent: a newline between requests. */
  kind: Kind;
  /** What a good reply carries after `A<n>\n`: a record of at most n bytes (R), 48 bytes (S), nothing. */
  payload?: 'record' | 'status';
}

const req = (text: string | Buffer, kind: Kind = 'ok', payload?: Req['payload']): Req => ({
  bytes: Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'),
  kind,
  ...(payload && { payload }),
});

/** Text of an argument line: anything but a newline, sometimes longer than the reader takes. */
const lineText = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 12 }).map((s) => s.replace(/\n/g, '')) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_LINE - 2, max: MAX_LINE + 2 }).map((n) => 'x'.repeat(n)) },
);
const device = fc.oneof(fc.constantFrom('/dev/pnst0', 'pnst0', 'host:/dev/pnst0', '/dev/other'), lineText);
const openFlags = fc.oneof(
  fc.constantFrom('0', '1', '2', '3', '65 O_WRONLY|O_CREAT', 'O_RDONLY', 'O_RDWR|O_NONBLOCK', '2048', 'O_BOGUS', '', ' 1 '),
  lineText,
);
const number = fc.oneof(edgeInt.map(String), fc.constantFrom('', ' 7 ', '1e3', '0x10', '--1', '+1'), lineText);
/** What the reader does with a number line (rmt-reader.ts integer()). */
const numberKind = (text: string, min: number): Kind => {
  if (text.length > MAX_LINE) return 'fatal';
  if (!/^\s*-?\d+\s*$/.test(text)) return 'fatal';
  const n = Number(text);
  return n >= min && n < 2 ** 31 ? 'ok' : 'fatal';
};
const lineKind = (...lines: string[]): Kind => (lines.some((l) => l.length > MAX_LINE) ? 'fatal' : 'ok');

const request: fc.Arbitrary<Req> = fc.oneof(
  fc.tuple(device, openFlags).map(([d, f]) => req(`O${d}\n${f}\n`, lineKind(d, f))),
  fc.oneof(fc.constant(''), device).map((d) => req(`C${d}\n`, lineKind(d))),
  fc.tuple(number, number).map(([a, b]) => req(`L${a}\n${b}\n`, lineKind(a, b))),
  // W: a record, one over the server's largest, or a count that is not one
  fc.uint8Array({ maxLength: 300 }).map((d) => req(Buffer.concat([Buffer.from(`W${d.length}\n`), d]))),
  fc.integer({ min: MAX_RECORD - 1, max: MAX_RECORD + 2 }).map((n) =>
    req(Buffer.concat([Buffer.from(`W${n}\n`), Buffer.alloc(n, 0x55)]), n > MAX_RECORD ? 'fatal' : 'ok'),
  ),
  number.map((n) => req(`W${n}\n`, 'fatal')).filter((r) => numberKind(r.bytes.subarray(1, -1).toString('latin1'), 0) === 'fatal'),
  number.map((n) => req(`R${n}\n`, numberKind(n, 0), 'record')),
  fc.tuple(fc.constantFrom('I', 'i'), number, number).map(([c, op, n]) =>
    req(`${c}${op}\n${n}\n`, numberKind(op, -(2 ** 31)) === 'fatal' || numberKind(n, -(2 ** 31)) === 'fatal' ? 'fatal' : 'ok'),
  ),
  fc.constant(req('S', 'ok', 'status')),
  fc.constant(req('\n', 'silent')),
  fc.constantFrom(...'TDERFBfbX\n').map((f) => req(`s${f}`)),
  lineText.map((a) => req(`V${a}\n`, lineKind(a))),
  lineText.map((a) => req(`v${a}\n`, lineKind(a))),
  fc.integer({ min: 0, max: 255 })
    .filter((b) => !'OCLWRIiSsVv\n'.includes(String.fromCharCode(b)))
    .map((b) => req(Buffer.from([b, 0x0a]), 'fatal')),
);

/** A conversation: requests, perhaps a last one cut short, cut into chunks at some points. */
const conversation = fc.record({
  requests: fc.array(request, { maxLength: 25 }),
  cut: fc.option(fc.tuple(request, fc.nat()), { freq: 3 }),
  points: cutPoints,
});
type Conversation = typeof conversation extends fc.Arbitrary<infer T> ? T : never;

function streamOf(c: Conversation): { bytes: Buffer; expected: Req[] } {
  const expected = [...c.requests];
  const parts = c.requests.map((r) => r.bytes);
  if (c.cut) {
    const [r, at] = c.cut;
    // A proper prefix of a request of two bytes or more; `s` alone is a clean end (no field came).
    if (r.bytes.length >= 2 && r.kind !== 'silent') {
      const prefix = r.bytes.subarray(0, 1 + (at % (r.bytes.length - 1)));
      parts.push(prefix);
      // Every other cut ends the input inside a request (or inside one that was bad already).
      expected.push(req(prefix, prefix.toString('latin1') === 's' ? 'silent' : 'fatal'));
    }
  }
  return { bytes: Buffer.concat(parts), expected };
}

async function openDevice(drive: PseudoDrive, options: Parameters<PseudoDrive['open']>[0]): Promise<TapeDevice> {
  const fd = await drive.open(options);
  return { write: (d) => fd.write(d), read: (n) => fd.read(n), mt: (op, n) => fd.ioctl(op, n), status: () => fd.status(), close: () => fd.close() };
}

/** Serves `chunks` on a fresh drive: the replies, the tape, and how many bytes the server took. */
async function serve(chunks: Iterable<Buffer>) {
  const { drive, sinks } = await memoryDrive();
  const server = new RmtServer({ maxRecord: MAX_RECORD, open: (_name, options) => openDevice(drive, options) });
  const input = chunkStream(chunks);
  const replies: Buffer[] = [];
  await server.serve(input, async (reply) => void replies.push(Buffer.from(reply)));
  const tape = [...sinks[0]!.contents(1)];
  // The session's end closed the drive, and whatever the session did, it works.
  await expectDriveWorks(drive);
  return { replies, tape, pulled: input.pulled };
}

/** Checks each reply's form against the request it answers. */
function checkReplies(replies: Buffer[], expected: Req[]): void {
  const answered = expected.filter((r) => r.kind !== 'silent');
  const fatal = answered.findIndex((r) => r.kind === 'fatal');
  expect(replies.length).toBe(fatal < 0 ? answered.length : fatal + 1);
  replies.forEach((reply, i) => {
    const text = reply.toString('latin1');
    const error = /^E(\d+)\n([^\n]+)\n$/.exec(text);
    if (i === fatal) {
      expect(text).toMatch(/^E22\nrmt: [^\n]+\n$/);
      return;
    }
    if (error) {
      expect(Number(error[1])).toBeGreaterThan(0);
      return;
    }
    const ok = /^A(-?\d+)\n/.exec(text);
    expect(ok, `reply ${i}: ${JSON.stringify(text.slice(0, 80))}`).not.toBeNull();
    const n = Number(ok![1]);
    const rest = reply.length - ok![0].length;
    const payload = answered[i]!.payload;
    expect(rest).toBe(payload === 'status' ? 48 : payload === 'record' ? n : 0);
    if (payload) expect(n).toBeGreaterThanOrEqual(0);
  });
}

async function checkConversation(c: Conversation): Promise<void> {
  const { bytes, expected } = streamOf(c);
  const whole = await serve([bytes]);
  checkReplies(whole.replies, expected);
  const cut = await serve(split(bytes, c.points));
  expect(cut.replies).toEqual(whole.replies);
  expect(cut.tape).toEqual(whole.tape);
}

/** Requests, then an endless argument line or a W over the largest record, fed in chunks of `size`. */
const hostileTail = fc.record({
  requests: fc.array(request.filter((r) => r.kind === 'ok'), { maxLength: 8 }),
  tail: fc.constantFrom('line', 'W'),
  size: fc.integer({ min: 1, max: 3000 }),
});

describe('rmt server under hostile input', () => {
  it('replays the corpus: each stream whole and a byte at a time gives the same replies, in form', { timeout: FUZZ_TIMEOUT }, async () => {
    for (const { name, bytes } of corpus('rmt')) {
      const whole = await serve([bytes]);
      const bytewise = await serve(split(bytes, [...bytes.keys()]));
      expect(bytewise.replies, name).toEqual(whole.replies);
      for (const reply of whole.replies) expect(reply.toString('latin1'), name).toMatch(/^(A-?\d+\n|E\d+\n[^\n]+\n$)/);
    }
  });

  it('answers every request once, stops at the first it cannot parse, however the stream is cut', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz({ corpus: 'rmt', save: (c) => streamOf(c).bytes }, conversation, checkConversation, 500);
  });

  it('holds at most an argument line or a record beyond what it answered', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz(
      { corpus: 'rmt' },
      hostileTail,
      async ({ requests, tail, size }) => {
        const prefix = Buffer.concat(requests.map((r) => r.bytes));
        const head = tail === 'line' ? 'V' : `W${MAX_RECORD + 1}\n`;
        // 1 MiB more is offered, a chunk at a time; a reader without bounds would take it all.
        function* chunks() {
          yield* split(Buffer.concat([prefix, Buffer.from(head)]), Array.from({ length: 64 }, (_, i) => i * size));
          for (let sent = 0; sent < 1 << 20; sent += size) yield Buffer.alloc(size, 0x78);
        }
        const { replies, pulled } = await serve(chunks());
        expect(replies.length).toBe(requests.length + 1);
        expect(replies.at(-1)!.toString()).toMatch(tail === 'line' ? /^E22\nrmt: argument line longer than 4096 bytes\n$/ : /^E22\nrmt: W8193: larger/);
        expect(pulled).toBeLessThanOrEqual(prefix.length + head.length + MAX_LINE + 2 * size);
      },
      100,
    );
  });
});

describe('tapeproxy rmt (stdin and stdout) under hostile input', () => {
  it.each([
    ['an endless argument line', 'O' + 'x'.repeat(5000), true, /^E22\nrmt: argument line longer than 4096 bytes\n$/],
    ['a W larger than any record', 'W99999999\n', true, /^E22\nrmt: W99999999: larger than the drive's largest record/],
    ['an unknown command', '\x00\n', true, /^E22\nrmt: unknown command '\\x00'\n$/],
    ['an unknown command, then silence', 'X\n', false, /^E22\nrmt: unknown command 'X'\n$/],
  ])('%s: answers E22 and exits with the client still there, having read a bounded amount', async (_what, head, sending, reply) => {
    // No daemon: none of these gets as far as opening a drive.
    const proc = execa('node', [CLI, 'rmt', '--server', '127.0.0.1:1'], { reject: false, stdin: 'pipe', encoding: 'buffer', stripFinalNewline: false });
    let exited = false;
    void proc.finally(() => (exited = true));
    proc.stdin!.on('error', () => {}); // EPIPE once it has gone
    // Up to 4 MiB more while it runs; then the client keeps its end open and sends nothing.
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x78);
    proc.stdin!.write(head);
    while (sending && !exited && written < 4 << 20) {
      written += chunk.length;
      if (!proc.stdin!.write(chunk)) await Promise.race([new Promise((r) => proc.stdin!.once('drain', r)), proc]);
    }
    const r = await within(5000, 'tapeproxy rmt exiting', proc);
    expect(r.exitCode).toBe(0);
    expect(Buffer.from(r.stdout).toString('latin1')).toMatch(reply);
    // It stopped reading at the bad request: what it took is pipe and stream buffers, not the input.
    expect(written).toBeLessThan(4 << 20);
  });
});
