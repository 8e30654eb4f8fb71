/**
 * The st-io helper's protocol, pipelining and write-failure rule, on devices this host has (a
 * file, /dev/full, a missing path). Its behaviour on a real st drive is tested in the kernel rig
 * (tests/kernel/).
 */
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { constants } from 'node:os';
import { afterEach, expect, it } from 'vitest';
import { StIoFlag, StIoLink, StIoOp, stIoBinary } from '../../daemon/sinks/st-io-link.js';
import { useTempDir } from '../support/temp-dir.js';

const { ENOSPC, ECANCELED, ENOTTY } = constants.errno;
const dir = useTempDir();
let link: StIoLink | undefined;
afterEach(async () => {
  await link?.close();
  link = undefined;
});

it('writes pipelined records in order, one reply each', async () => {
  const path = join(dir.path, 'drive');
  await writeFile(path, '');
  link = new StIoLink(path, false);
  const records = [Buffer.alloc(10240, 1), Buffer.alloc(300_000, 2), Buffer.alloc(1 << 20, 3)];
  const replies = await Promise.all(records.map((r) => link!.request(StIoOp.WRITE, 0, 0, r)));
  expect(replies.map((r) => [r.err, r.value, r.flags])).toEqual(records.map((r) => [0, r.length, 0]));
  expect((await readFile(path)).equals(Buffer.concat(records))).toBe(true);
});

it('after a refused write (ENOSPC twice: the physical end), later writes are refused until RESET', async () => {
  link = new StIoLink('/dev/full', false);
  const [first, second, filemark] = await Promise.all([
    link.request(StIoOp.WRITE, 0, 0, Buffer.alloc(512)),
    link.request(StIoOp.WRITE, 0, 0, Buffer.alloc(512)),
    link.request(StIoOp.MTOP, 5 /* MTWEOF */, 1),
  ]);
  expect(first).toMatchObject({ err: ENOSPC, flags: 0 });
  expect(second!.err).toBe(ECANCELED);
  expect(filemark!.err).toBe(ECANCELED);
  await link.request(StIoOp.RESET);
  expect((await link.request(StIoOp.WRITE, 0, 0, Buffer.alloc(512))).err).toBe(ENOSPC);
});

it('reads a record and reports ioctl errors by errno', async () => {
  const path = join(dir.path, 'drive');
  await writeFile(path, 'record');
  link = new StIoLink(path, true);
  const read = await link.request(StIoOp.READ, 1 << 20);
  expect(read.flags & StIoFlag.RECORD).toBeTruthy();
  expect(read.payload.toString()).toBe('record');
  expect((await link.request(StIoOp.MTOP, 6 /* MTREW */, 1)).err).toBe(ENOTTY);
  await expect(link.status()).rejects.toThrow(`MTIOCGET on ${path}: ENOTTY`);
});

it('a drive that cannot be opened fails every request with the reason', async () => {
  link = new StIoLink(join(dir.path, 'nst9'), false);
  await expect(link.request(StIoOp.GET)).rejects.toThrow(/tape helper for .*nst9: tapeproxy-st-io: cannot open .*No such file or directory/);
});

it('the helper has no leaks or memory errors under valgrind (writes, a read, errors, a bad op)', async () => {
  const path = join(dir.path, 'drive');
  await writeFile(path, '');
  const request = (op: number, a = 0, payload = Buffer.alloc(0)) => {
    const header = Buffer.alloc(16);
    header.writeUInt32LE(op, 0);
    header.writeUInt32LE(payload.length, 4);
    header.writeInt32LE(a, 8);
    return Buffer.concat([header, payload]);
  };
  const input = Buffer.concat([
    request(StIoOp.WRITE, 0, Buffer.alloc(300_000, 7)),
    request(StIoOp.WRITE, 0, Buffer.alloc(10240, 8)),
    request(StIoOp.READ, 1 << 20),
    request(StIoOp.GET),
    request(StIoOp.POS),
    request(StIoOp.RESET),
    request(99),
  ]);
  const r = await execa('valgrind', ['--quiet', '--leak-check=full', '--errors-for-leak-kinds=all', '--error-exitcode=99', stIoBinary(), path], {
    input,
    encoding: 'buffer',
    reject: false,
  });
  expect(Buffer.from(r.stderr).toString()).toBe('');
  expect(r.exitCode).toBe(0);
  // Seven replies of 24 bytes; the read found the end of the file (no payload).
  expect(r.stdout.length).toBe(7 * 24);
  expect((await readFile(path)).length).toBe(310_240);
});
