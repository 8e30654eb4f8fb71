/**
 * Two image copies of different capacities through the real daemon: logical EOT comes when the
 * smaller one crosses its early-warning point, and volumes change in lockstep.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { MtOp } from '../../daemon/drive/mtio.js';
import { Errno, TapeError } from '../../daemon/drive/tape-error.js';
import { imageObjects, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const REC = 10240;
const FRAMED = REC + 8;

const dir = useTempDir();
let daemon: RunningDaemon;

beforeEach(async () => {
  // Small copy: early warning after 20 records (capacity 40 records, zone of 20); big copy: 1000.
  daemon = await startDaemon([
    '--drive', 'pnst0',
    '--sink', `file:${dir.path}/big-%v.tap?capacity=${1000 * FRAMED}`,
    '--sink', `file:${dir.path}/small-%v.tap?capacity=${40 * FRAMED}&early-warning=${20 * FRAMED}`,
  ]);
});
afterEach(async () => {
  await daemon.stop();
});

it('EW of the smaller copy: crossing write succeeds, next ENOSPC, then alternation; volume 2 in lockstep', async () => {
  const stream = Array.from({ length: 40 }, () => randomBytes(REC));
  const fd = await daemon.session('pnst0', { access: 'write' });
  const outcome: string[] = [];
  let next = 0;
  // One write at a time, as tar does, to see each result.
  while (outcome.length < 24) {
    try {
      await fd.write(stream[next]!);
      outcome.push(fd.lastFlags?.earlyWarning ? 'ok+EOT' : 'ok');
      next++;
    } catch (err) {
      expect((err as TapeError).errno).toBe(Errno.ENOSPC);
      outcome.push('ENOSPC');
      if (outcome.filter((o) => o === 'ENOSPC').length === 1) break;
    }
  }
  // 20 records fit before the EW point; the 21st crosses it and succeeds; the 22nd is refused.
  expect(outcome).toEqual([...Array(20).fill('ok'), 'ok+EOT', 'ENOSPC']);
  // st's alternation: the next write is allowed (trailer), the one after refused again.
  await fd.write(stream[next++]!);
  await expect(fd.write(stream[next]!)).rejects.toMatchObject({ errno: Errno.ENOSPC });
  await fd.close(); // filemark, still accepted past EW

  // The operator (or tar -F) unloads; the next open loads volume 2 on both copies.
  const mt = await daemon.session('pnst0', { access: 'read', nonBlocking: true });
  await mt.mt(MtOp.MTOFFL, 1);
  await mt.close();
  const fd2 = await daemon.session('pnst0', { access: 'write' });
  expect(fd2.lastFlags?.volume).toBe(2);
  for (; next < stream.length; next++) await fd2.write(stream[next]!, true);
  await fd2.close();

  for (const copy of ['big', 'small']) {
    const v1 = await imageObjects(join(dir.path, `${copy}-1.tap`));
    const v2 = await imageObjects(join(dir.path, `${copy}-2.tap`));
    expect(v1.length).toBe(23); // 22 records, filemark
    expect(v1.at(-1)).toBeNull();
    expect(v2.at(-1)).toBeNull();
    // The union of the volumes is the stream, in order.
    const records = [...v1, ...v2].filter((r): r is Buffer => r !== null);
    expect(records.length).toBe(stream.length);
    records.forEach((r, i) => expect(r.equals(stream[i]!), `${copy} record ${i}`).toBe(true));
  }
  // Both volume 2 images start with the same record: the first one refused on volume 1.
  const big2 = await imageObjects(join(dir.path, 'big-2.tap'));
  const small2 = await imageObjects(join(dir.path, 'small-2.tap'));
  expect(big2[0]!.equals(small2[0]!)).toBe(true);
  expect(big2[0]!.equals(stream[22]!)).toBe(true);
});
