/**
 * The daemon's side of the shim socket (proto/shim-frames.md) against a fake shim over a real Unix
 * socket: write-behind, exact ENOSPC after early warning, CUSE's write check, ioctls, errors.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MtOp } from '../../daemon/drive/mtio.js';
import { type Frame, FrameType, REPLY, ReplyFlag, RequestFlag, encodeFrame } from '../../daemon/frontends/shim/frames.js';
import { FrameReader } from '../../daemon/frontends/shim/frame-reader.js';
import { ShimLink } from '../../daemon/frontends/shim/shim-link.js';
import { memoryDrive, tag, type CopySpec } from '../support/memory-drive.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const log = pino({ level: 'silent' });
const links: ShimLink[] = [];
afterEach(async () => {
  for (const l of links.splice(0)) await l.close();
});

const REC = 1000;
const FRAMED = REC + 8;
const O_WRONLY = 1;

/** A fake shim: sends frames, collects the replies in order. */
class FakeShim {
  private readonly decoder = new FrameReader();
  private readonly replies: Frame[] = [];
  private waiters: (() => void)[] = [];
  private nextId = 1;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.replies.push(...this.decoder.push(chunk));
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
  }

  send(type: number, arg = 0, payload = Buffer.alloc(0), flags = 0): void {
    this.socket.write(encodeFrame({ type, flags, id: this.nextId++, arg, payload }));
  }

  async reply(): Promise<Frame> {
    while (this.replies.length === 0) {
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return this.replies.shift()!;
  }

  async call(type: number, arg = 0, payload = Buffer.alloc(0), flags = 0): Promise<Frame> {
    this.send(type, arg, payload, flags);
    const r = await this.reply();
    expect(r.type).toBe(type | REPLY);
    return r;
  }
}

async function setup(copies: CopySpec[] = [{}]) {
  const { drive, sinks } = await memoryDrive(copies);
  const link = new ShimLink(join(dir.path, 'pnst0.sock'), drive, log, { records: 32, bytes: 32 * 2 ** 20 });
  links.push(link);
  const shim = await listen(link);
  return { drive, sinks, link, shim };
}

/** A fake shim listening where the link connects, as the real one does; one connection. */
async function listen(link: ShimLink): Promise<FakeShim> {
  const server = createServer();
  server.listen(link.path);
  await once(server, 'listening');
  link.start();
  const [socket] = (await once(server, 'connection')) as [Socket];
  server.close();
  return new FakeShim(socket);
}

const mtop = (op: number, count: number) => {
  const b = Buffer.alloc(8);
  b.writeInt16LE(op, 0);
  b.writeInt32LE(count, 4);
  return b;
};

describe('shim connection', () => {
  it('write-behind records are all written past early warning; the next waiting write gets ENOSPC, then alternation', async () => {
    const { sinks, shim } = await setup([{ capacity: 40 * FRAMED, earlyWarning: 20.5 * FRAMED }]);
    expect((await shim.call(FrameType.OPEN, O_WRONLY)).arg).toBe(0);
    for (let i = 0; i < 30; i++) shim.send(FrameType.WRITE, 0, Buffer.alloc(REC, i), RequestFlag.WRITE_BEHIND);
    const replies = await Promise.all(Array.from({ length: 30 }, () => shim.reply()));
    expect(replies.map((r) => r.arg)).toEqual(Array(30).fill(REC));
    // Early warning shows from the crossing record (the 20th) on.
    expect(replies.map((r) => (r.flags & ReplyFlag.EARLY_WARNING ? 1 : 0))).toEqual([...Array(19).fill(0), ...Array(11).fill(1)]);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC, 30))).arg).toBe(-28);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC, 30))).arg).toBe(REC);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC, 31))).arg).toBe(-28);
    expect((await shim.call(FrameType.CLOSE)).arg).toBe(0);
    expect(sinks[0]!.contents(1).map(tag)).toEqual([...Array.from({ length: 31 }, (_, i) => i), 'FM']);
  });

  it('a write-behind record that meets the physical end fails with EIO, and so does every later write', async () => {
    const { shim } = await setup([{ capacity: 3 * FRAMED, earlyWarning: 1 }]);
    await shim.call(FrameType.OPEN, O_WRONLY);
    for (let i = 0; i < 4; i++) shim.send(FrameType.WRITE, 0, Buffer.alloc(REC, i), RequestFlag.WRITE_BEHIND);
    const replies = await Promise.all(Array.from({ length: 4 }, () => shim.reply()));
    expect(replies.map((r) => r.arg)).toEqual([REC, REC, REC, -5]);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC))).arg).toBe(-5);
    await shim.call(FrameType.CLOSE);
  });

  it("WRITE_CHECK makes st's ENOSPC decision before a CUSE record's first chunk; CHECKED writes skip it", async () => {
    // Past early warning after two records, with room for a longest record (1 MiB) and a bit more.
    const MAX = 1 << 20;
    const { shim } = await setup([{ capacity: MAX + 10 * FRAMED, earlyWarning: MAX + 8.5 * FRAMED }]);
    await shim.call(FrameType.OPEN, O_WRONLY);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC))).arg).toBe(REC);
    const crossing = await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC));
    expect(crossing.flags & ReplyFlag.EARLY_WARNING).toBe(ReplyFlag.EARLY_WARNING);
    expect((await shim.call(FrameType.WRITE_CHECK, 131072)).arg).toBe(-28);
    expect((await shim.call(FrameType.WRITE_CHECK, 131072)).arg).toBe(0);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC), RequestFlag.CHECKED)).arg).toBe(REC);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(2 << 20), RequestFlag.CHECKED)).arg).toBe(-22); // over max-record
    // A record's start is judged as the longest record: once that would pass the physical end,
    // WRITE_CHECK says ENOSPC every time (a checked record must never fail after its check).
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(MAX - REC))).arg).toBe(-28);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(MAX - REC))).arg).toBe(MAX - REC);
    for (let i = 0; i < 4; i++) expect((await shim.call(FrameType.WRITE_CHECK, 131072)).arg).toBe(-28);
    // A whole record of known size is judged as it is: st's alternation, and a small one still fits.
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC))).arg).toBe(-28);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC))).arg).toBe(REC);
    await shim.call(FrameType.CLOSE);
  });

  it('WRITE_CHECK sees only the first chunk: fixed-block records are checked for their multiple only when whole', async () => {
    const { shim } = await setup();
    await shim.call(FrameType.OPEN, O_WRONLY);
    expect((await shim.call(FrameType.WRITE_CHECK, 2 << 20)).arg).toBe(-22); // already longer than any record
    await shim.call(FrameType.MTIOCTOP, 0, mtop(MtOp.MTSETBLK, 10240));
    expect((await shim.call(FrameType.WRITE_CHECK, 131072)).arg).toBe(0); // 131072 is no multiple of 10240: fine
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(204800), RequestFlag.CHECKED)).arg).toBe(204800);
    expect((await shim.call(FrameType.WRITE, 0, Buffer.alloc(131072), RequestFlag.CHECKED)).arg).toBe(-22);
    await shim.call(FrameType.CLOSE);
  });

  it('reads, MTIOCTOP, MTIOCGET (48 bytes), MTIOCPOS and the filemark flag', async () => {
    const { shim } = await setup();
    await shim.call(FrameType.OPEN, 2);
    await shim.call(FrameType.WRITE, 0, Buffer.from('first'));
    await shim.call(FrameType.MTIOCTOP, 0, mtop(MtOp.MTWEOF, 1));
    expect((await shim.call(FrameType.MTIOCTOP, 0, mtop(MtOp.MTREW, 1))).arg).toBe(0);
    const read = await shim.call(FrameType.READ, 100);
    expect([read.arg, read.payload.toString()]).toEqual([5, 'first']);
    const fm = await shim.call(FrameType.READ, 100);
    expect([fm.arg, fm.flags & ReplyFlag.FILEMARK]).toEqual([0, ReplyFlag.FILEMARK]);
    const status = await shim.call(FrameType.MTIOCGET);
    expect(status.payload.length).toBe(48);
    expect([status.payload.readBigInt64LE(0), status.payload.readInt32LE(40), status.payload.readInt32LE(44)]).toEqual([0x72n, 1, 0]);
    const pos = await shim.call(FrameType.MTIOCPOS);
    expect(pos.payload.readBigInt64LE(0)).toBe(2n);
    expect((await shim.call(FrameType.READ, 2)).arg).toBe(0); // end of data, first time
    expect((await shim.call(FrameType.MTIOCTOP, 0, mtop(MtOp.MTTELL, 1))).arg).toBe(-38);
    expect((await shim.call(FrameType.MTIOCTOP, 0, Buffer.alloc(3))).arg).toBe(-22);
    await shim.call(FrameType.CLOSE);
  });

  it('errors: requests before OPEN are EBADF, unknown types ENOSYS, a second open EBUSY', async () => {
    const { shim } = await setup();
    expect((await shim.call(FrameType.READ, 10)).arg).toBe(-9);
    expect((await shim.call(42)).arg).toBe(-9); // no open: EBADF comes first
    await shim.call(FrameType.OPEN, 0);
    expect((await shim.call(42)).arg).toBe(-38);
    expect((await shim.call(FrameType.OPEN, 0)).arg).toBe(-16);
    await shim.call(FrameType.CLOSE);
  });

  it('a shim that goes away with the drive open leaves it closed with its filemark; the link then connects to the next shim', async () => {
    const { sinks, link, shim } = await setup();
    await shim.call(FrameType.OPEN, O_WRONLY);
    await shim.call(FrameType.WRITE, 0, Buffer.alloc(REC, 7));
    shim.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(sinks[0]!.contents(1).map(tag)).toEqual([7, 'FM']);
    const again = await listen(link); // as a restarted shim
    expect((await again.call(FrameType.OPEN, 0)).arg).toBe(0);
    again.socket.destroy();
  });

  it('a malformed frame (payload over the limit) closes the connection without a crash', async () => {
    const { shim } = await setup();
    const bad = Buffer.alloc(16);
    bad.writeUInt32LE(0xffffffff, 0);
    shim.socket.write(bad);
    await expect(shim.reply()).rejects.toThrow('connection closed');
  });
});
