/**
 * The rmt server against the requests each client family sends (reference section 3), over a real
 * pseudo drive in memory.
 */
import { describe, expect, it } from 'vitest';
import type { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { RmtServer, type TapeDevice } from '../../daemon/frontends/rmt/rmt-server.js';
import { memoryDrive, tag } from '../support/memory-drive.js';

/** Runs a whole rmt conversation (the client's bytes at once) and returns the server's replies. */
async function converse(drive: PseudoDrive, ...requests: (string | Buffer)[]) {
  const server = new RmtServer({ maxRecord: 1 << 20, open: (_name, options) => openDevice(drive, options) });
  const replies: Buffer[] = [];
  await server.serve(
    (async function* () {
      for (const r of requests) yield Buffer.from(r);
    })(),
    async (reply) => void replies.push(reply),
  );
  return replies.map((r) => r.toString('latin1'));
}

async function openDevice(drive: PseudoDrive, options: Parameters<PseudoDrive['open']>[0]): Promise<TapeDevice> {
  const fd = await drive.open(options);
  return { write: (d) => fd.write(d), read: (n) => fd.read(n), mt: (op, n) => fd.ioctl(op, n), status: () => fd.status(), close: () => fd.close() };
}

describe('rmt requests', () => {
  it('tar 1.34: numeric+symbolic open, writes, S without newline, close writes the filemark', async () => {
    const { drive, sinks } = await memoryDrive();
    const replies = await converse(drive, 'O/dev/pnst0\n65 O_WRONLY|O_CREAT\n', 'W3\nabc', 'W2\nde', 'S', 'C\n');
    expect(replies.slice(0, 3)).toEqual(['A0\n', 'A3\n', 'A2\n']);
    expect(replies[3]!.slice(0, 4)).toBe('A48\n');
    expect(replies[3]!.length).toBe(4 + 48);
    expect(replies[4]).toBe('A0\n');
    expect(sinks[0]!.contents(1).map((d) => d?.toString() ?? 'FM')).toEqual(['abc', 'de', 'FM']);
  });

  it('S with a newline (GNU clients) and the mtget layout: type, fileno, blkno, gstat', async () => {
    const { drive } = await memoryDrive();
    const [, status] = await converse(drive, 'O/dev/pnst0\n0\n', 'S\n', 'C\n');
    const mtget = Buffer.from(status!.slice(4), 'latin1');
    expect(mtget.readBigInt64LE(0)).toBe(0x72n);
    expect(mtget.readInt32LE(40)).toBe(0);
    expect(mtget.readInt32LE(44)).toBe(0);
    expect(mtget.readBigInt64LE(24)).toBe(0x41010000n); // BOT ONLINE IM_REP_EN
  });

  it('L in both argument orders answers A0 (st lseek is a no-op returning 0)', async () => {
    const { drive } = await memoryDrive();
    const replies = await converse(drive, 'O/dev/pnst0\n0\n', 'L0\n1\n', 'L1\n0\n', 'LSEEK_SET\n0\n', 'Lx\n0\n', 'C\n');
    expect(replies).toEqual(['A0\n', 'A0\n', 'A0\n', 'A0\n', "E22\nrmt: L: 'x' is not an offset or whence\n", 'A0\n']);
  });

  it('R returns one record, A0 at the filemark; a short buffer gets E12 (ENOMEM)', async () => {
    const { drive } = await memoryDrive();
    await converse(drive, 'O/dev/pnst0\n1\n', 'W5\nhello', 'W5\nworld', 'C\n');
    const replies = await converse(drive, 'O/dev/pnst0\nO_RDONLY\n', 'I6\n1\n', 'R10\n', 'R2\n', 'R10\n', 'R10\n', 'C\n');
    expect(replies.slice(1)).toEqual(['A1\n', 'A5\nhello', 'E12\nrecord of 5 bytes does not fit a 2-byte read\n', 'A0\n', 'A0\n', 'A0\n']);
  });

  it('I uses Linux op numbers; after I-1 the RMT version 1 numbers (5 = rewind)', async () => {
    const { drive, sinks } = await memoryDrive();
    await converse(drive, 'O/dev/pnst0\n1\n', 'W1\na', 'I5\n1\n', 'W1\nb', 'C\n'); // I5 = MTWEOF on Linux
    expect(sinks[0]!.contents(1).map(tag)).toEqual([0x61, 'FM', 0x62, 'FM']);
    const replies = await converse(drive, 'O/dev/pnst0\n0\n', 'I-1\n0\n', 'I5\n1\n', 'R1\n', 'I11\n1\n', 'C\n');
    expect(replies).toEqual(['A0\n', 'A1\n', 'A1\n', 'A1\na', 'E38\nI11: not an RMT version 1 operation\n', 'A0\n']);
  });

  it('i (extended), s (one status field), V and v', async () => {
    const { drive } = await memoryDrive();
    const replies = await converse(drive, 'O/dev/pnst0\n2\n', 'W1\nz', 'i4\n1\n', 'sF', 'sB', 'sT', 'i0\n1\n', 'sX', 'V1\n', 'v\n', 'C\n');
    // i4 = EOM after the write: st writes no filemark for EOM, the close-time one is cancelled
    expect(replies).toEqual(['A0\n', 'A1\n', 'A1\n', 'A0\n', 'A-1\n', 'A114\n', 'A1\n', 'E22\nrmt: sX: unknown status field\n', 'A2\n', 'A1\n', 'A0\n']);
  });

  it('E28 for the write refused at early warning, then the alternation', async () => {
    const F = 10 + 8;
    const { drive } = await memoryDrive([{ capacity: 10 * F, earlyWarning: 8.5 * F }]);
    const w = 'W10\n0123456789';
    const replies = await converse(drive, 'O/dev/pnst0\n1\n', w, w, w, w, 'C\n');
    expect(replies).toEqual(['A0\n', 'A10\n', 'A10\n', 'E28\nlogical end of tape on drive pnst0 (volume 1)\n', 'A10\n', 'A0\n']);
  });

  it('requests before an open are EBADF; an unknown drive ENOENT when the server serves one drive', async () => {
    const { drive } = await memoryDrive();
    expect(await converse(drive, 'W1\na', 'R1\n')).toEqual(['E9\nno drive is open (send O first)\n', 'E9\nno drive is open (send O first)\n']);
    const server = new RmtServer({ drive: 'pnst0', maxRecord: 1024, open: (_n, o) => openDevice(drive, o) });
    const replies: string[] = [];
    await server.serve((async function* () { yield Buffer.from('O/dev/other\n0\n'); })(), async (r) => void replies.push(r.toString()));
    expect(replies).toEqual(["E2\nthis rmt server serves drive pnst0 only, not '/dev/other'\n"]);
  });

  it('garbage gets an E reply and the server stops; so does a W larger than any record, or a cut stream', async () => {
    const { drive, sinks } = await memoryDrive();
    expect(await converse(drive, 'X\n', 'V1\n')).toEqual(["E22\nrmt: unknown command 'X'\n"]);
    expect(await converse(drive, 'O/dev/pnst0\n1\n', 'W99999999\n')).toEqual(['A0\n', 'E22\nrmt: W99999999: larger than the drive\'s largest record (1048576)\n']);
    expect(await converse(drive, 'O/dev/pnst0\n1\n', 'W10\nabc')).toEqual(['A0\n', 'E22\nrmt: input ended inside the data of a W10 request\n']);
    expect(await converse(drive, 'O/dev/pnst0\nO_BOGUS\n')).toEqual(["E22\nrmt: open flags 'O_BOGUS': unknown flag 'O_BOGUS'\n"]);
    expect(await converse(drive, 'O' + 'x'.repeat(5000))).toEqual(['E22\nrmt: argument line longer than 4096 bytes\n']);
    // A drive left open when the input ends is closed, as process exit would: filemark written.
    await converse(drive, 'O/dev/pnst0\n1\n', 'W1\nq');
    expect(sinks[0]!.contents(1).map((d) => d?.toString() ?? 'FM')).toEqual(['q', 'FM']);
    await (await drive.open({ access: 'read' })).close(); // and the drive is free
  });

  it('an argument line over 4096 bytes is refused however it arrives (found by the fuzzer: one chunk got through)', async () => {
    const { drive } = await memoryDrive();
    const long = 'V' + 'x'.repeat(4097) + '\n';
    expect(await converse(drive, long)).toEqual(['E22\nrmt: argument line longer than 4096 bytes\n']);
    expect(await converse(drive, ...long.split(''))).toEqual(['E22\nrmt: argument line longer than 4096 bytes\n']);
    expect(await converse(drive, 'V' + 'x'.repeat(4096) + '\n')).toEqual(['A2\n']);
  });

  it('a request split across many small chunks is read whole', async () => {
    const { drive, sinks } = await memoryDrive();
    const bytes = Buffer.from('O/dev/pnst0\n1\nW6\nabcdefC\n');
    await converse(drive, ...[...bytes].map((b) => Buffer.from([b])));
    expect(sinks[0]!.contents(1).map((d) => d?.toString() ?? 'FM')).toEqual(['abcdef', 'FM']);
  });
});
