/**
 * A copy that cannot load its next volume at a lockstep volume change has failed, like a copy whose
 * write fails: under the default policy the open that needed the volume fails and says which copy;
 * with min-copies allowing it, that copy is set aside and the others go on to the next volume.
 * The failure here is real: where copy B's volume 2 image should be there is a folder.
 */
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import type { Sink } from '../../daemon/sinks/sink.js';
import { expectErrno } from '../support/errno.js';
import { record } from '../support/memory-drive.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const mirrors: Mirror[] = [];
afterEach(async () => {
  for (const m of mirrors.splice(0)) await m.close().catch(() => undefined); // the images' file handles
});

async function twoCopies(minCopies?: number) {
  await mkdir(join(dir.path, 'b-2.tap')); // volume 2 of copy b cannot be opened
  const sink = (path: string) => new FileSink({ path, capacity: new Capacity(), readonly: false, fsync: false });
  const a = sink(join(dir.path, 'a-%v.tap'));
  const b = sink(join(dir.path, 'b-%v.tap'));
  const failed: { sink: Sink; dropped: boolean; message: string }[] = [];
  const mirror = new Mirror([a, b], {
    window: 1 << 20,
    ...(minCopies !== undefined && { minCopies }),
    onCopyFailed: (s, error, dropped) => failed.push({ sink: s, dropped, message: error.message }),
  });
  mirrors.push(mirror);
  const drive = new PseudoDrive('pnst0', mirror, { maxRecord: 1 << 20, autoload: true });
  await drive.start();
  const fd = await drive.open({ access: 'write' });
  await fd.write(record(1024, 1));
  await fd.ioctl(7 /* MTOFFL */, 1);
  await fd.close();
  return { drive, mirror, a, b, failed };
}

it('default policy: the open that needs volume 2 fails, naming the copy, and nothing moves on', async () => {
  const { drive, mirror, b, failed } = await twoCopies();
  const err = await expectErrno(drive.open({ access: 'write' }), 'EIO');
  expect(err.message).toContain(b.name);
  expect(failed).toEqual([expect.objectContaining({ sink: b, dropped: false })]);
  expect(mirror.loaded).toBe(false);
  // Once the folder is gone (an operator fixed it), the next open loads volume 2 on both copies.
  await rmdir(join(dir.path, 'b-2.tap'));
  const fd = await drive.open({ access: 'write' });
  await fd.write(record(1024, 2));
  await fd.close();
  expect(mirror.volume).toBe(2);
  expect(b.status()).toMatchObject({ volume: 2, recordsWritten: 2 });
});

it('min-copies 1: the copy that cannot load is set aside and the other goes on to volume 2', async () => {
  const { drive, mirror, a, b, failed } = await twoCopies(1);
  const fd = await drive.open({ access: 'write' });
  await fd.write(record(1024, 2));
  await fd.close();
  expect(failed).toEqual([expect.objectContaining({ sink: b, dropped: true })]);
  expect(mirror.isDropped(b)).toBe(true);
  expect(mirror.volume).toBe(2);
  expect(a.status()).toMatchObject({ volume: 2, recordsWritten: 2 });
});
