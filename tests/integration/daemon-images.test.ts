/**
 * Through the real daemon over gRPC: records and filemarks land identically in two SIMH images,
 * mtdump (SIMH's own tool) reads them, and reading back through the drive returns them.
 */
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MtOp } from '../../daemon/drive/mtio.js';
import { expectErrno } from '../support/errno.js';
import { imageObjects, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
let daemon: RunningDaemon;

beforeEach(async () => {
  daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a.tap`, '--sink', `file:${dir.path}/b.tap`]);
});
afterEach(async () => {
  await daemon.stop();
});

/** Writes files of records (one filemark between files, the close writes the last). */
async function writeFiles(files: Buffer[][]): Promise<void> {
  const fd = await daemon.session('pnst0', { access: 'write' });
  for (const [i, file] of files.entries()) {
    await Promise.all(file.map((r) => fd.write(r, true)));
    if (i < files.length - 1) await fd.mt(MtOp.MTWEOF, 1);
  }
  await fd.close();
}

describe('two image copies through the daemon', () => {
  it('3 files of 10 KiB, 256 KiB and 1 MiB records: identical images that read back exactly', async () => {
    const sizes = [10240, 262144, 1048576, 10240, 7, 262144];
    const files = [0, 1, 2].map((f) => sizes.map((s, i) => randomBytes(s - ((f + i) % 3))));
    await writeFiles(files);

    const a = await readFile(join(dir.path, 'a.tap'));
    const b = await readFile(join(dir.path, 'b.tap'));
    expect(a.equals(b)).toBe(true);
    const expected = files.flatMap((f) => [...f, null]).map(digest);
    expect((await imageObjects(join(dir.path, 'a.tap'))).map(digest)).toEqual(expected);

    const fd = await daemon.session('pnst0', { access: 'read' });
    await fd.mt(MtOp.MTREW, 1);
    for (const file of files) {
      for (const r of file) expect((await fd.read(1 << 20)).equals(r)).toBe(true);
      expect((await fd.read(1 << 20)).length).toBe(0); // filemark
    }
    expect((await fd.read(1 << 20)).length).toBe(0); // end of data: 0 once more
    await expectErrno(fd.read(1 << 20), 'EIO'); // then EIO
    await fd.close();
  });

  it('mtdump lists exactly the records and tape marks written (records up to 64 KiB)', async () => {
    const lengths = [[1, 512, 65536, 3], [10240, 10240], [65535, 2, 4096]];
    await writeFiles(lengths.map((file) => file.map((n) => randomBytes(n))));
    const { stdout } = await execa('mtdump', [join(dir.path, 'a.tap')]);
    const listed = stdout
      .split('\n')
      .map((line) => /length = (\d+)/.exec(line)?.[1] ?? (/end of tape file/.test(line) ? 'TM' : undefined))
      .filter((x) => x !== undefined);
    expect(listed).toEqual(lengths.flatMap((file) => [...file.map(String), 'TM']));
  });
});

/** Compare records by digest: deep equality of megabyte buffers is slow and unreadable when it fails. */
function digest(data: Buffer | null): string {
  return data === null ? 'filemark' : `${data.length}:${createHash('sha256').update(data).digest('hex').slice(0, 16)}`;
}
