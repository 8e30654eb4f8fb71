/**
 * PseudoDrive against the Linux st driver's rules (shared/reference/linux-tape-semantics.md points
 * 0.1-0.14, sections 1.1-1.6): every errno it returns and the position it keeps.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gstatNames, MtOp } from '../../daemon/drive/mtio.js';
import { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { expectErrno } from '../support/errno.js';
import { memoryDrive, record, tag } from '../support/memory-drive.js';

const REC = 1024;

async function writeFiles(drive: PseudoDrive, files: number[][]) {
  const fd = await drive.open({ access: 'write' });
  for (const [i, file] of files.entries()) {
    for (const n of file) await fd.write(record(REC, n));
    if (i < files.length - 1) await fd.ioctl(MtOp.MTWEOF, 1);
  }
  await fd.close(); // the last filemark
}

async function pos(fd: { status(): Promise<{ fileno: number; blkno: number }> }) {
  const st = await fd.status();
  return [st.fileno, st.blkno];
}

describe('records and filemarks', () => {
  it('one write is one record; a zero-length write writes nothing, not even a filemark at close', async () => {
    const { drive, sinks } = await memoryDrive();
    const fd = await drive.open({ access: 'write' });
    expect(await fd.write(Buffer.alloc(0))).toBe(0);
    await fd.close();
    expect(sinks[0]!.contents(1)).toEqual([]);
    const fd2 = await drive.open({ access: 'write' });
    expect(await fd2.write(record(3, 7))).toBe(3);
    expect(await fd2.write(record(70000, 8))).toBe(70000);
    await fd2.close();
    expect(sinks[0]!.contents(1).map((d) => d?.length ?? 'FM')).toEqual([3, 70000, 'FM']);
  });

  it('close after writing writes one filemark; close after reading or nothing writes none', async () => {
    const { drive, sinks } = await memoryDrive();
    await writeFiles(drive, [[1]]);
    const fd = await drive.open({ access: 'read-write' });
    await fd.ioctl(MtOp.MTREW, 1);
    await fd.read(REC);
    await fd.close();
    (await drive.open({ access: 'read' })).close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 'FM']);
  });

  it('MTWEOF cancels the close-time filemark; MTNOP and MTSETBLK keep it', async () => {
    const { drive, sinks } = await memoryDrive();
    const fd = await drive.open({ access: 'write' });
    await fd.write(record(REC, 1));
    await fd.ioctl(MtOp.MTWEOF, 2);
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 'FM', 'FM']);
    const fd2 = await drive.open({ access: 'write' });
    await fd2.write(record(REC, 2));
    await fd2.ioctl(MtOp.MTNOP, 1);
    await fd2.ioctl(MtOp.MTSETBLK, 0);
    await fd2.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 'FM', 'FM', 2, 'FM']);
  });

  it('writes an implicit filemark before MTREW, MTOFFL, MTSEEK and MTBSF after writing (BSF counts it)', async () => {
    for (const op of [MtOp.MTREW, MtOp.MTSEEK, MtOp.MTOFFL]) {
      const { drive, sinks } = await memoryDrive();
      const fd = await drive.open({ access: 'write' });
      await fd.write(record(REC, 1));
      await fd.ioctl(op, 0);
      await fd.close(); // no second filemark: the op ended the writing state
      expect(sinks[0]!.contents(1).map(tag), `op ${op}`).toEqual([1, 'FM']);
    }
    const { drive, sinks } = await memoryDrive();
    await writeFiles(drive, [[1, 2]]);
    const fd = await drive.open({ access: 'write' });
    await fd.write(record(REC, 3));
    await fd.ioctl(MtOp.MTBSF, 1); // FM written, then BSF 2: over it and over file 0's filemark
    expect(await pos(fd)).toEqual([0, -1]);
    expect(drive.state().position).toBe(2); // BOT side of file 0's filemark
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 2, 'FM', 3, 'FM']);
  });

  it('a close(2) through FUSE/CUSE (flush) after writes writes the filemark and syncs; the last close adds none', async () => {
    const { drive, sinks } = await memoryDrive();
    const fd = await drive.open({ access: 'write' });
    await fd.write(record(REC, 1));
    await fd.flush();
    expect(await pos(fd)).toEqual([1, 0]);
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 'FM']);
    await fd.flush(); // another descriptor of the same open, nothing written since
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 'FM']);
  });

  it('a write after a flush (another descriptor of the open) takes the flush filemark back', async () => {
    const { drive, sinks } = await memoryDrive();
    const fd = await drive.open({ access: 'write' });
    await fd.write(record(REC, 1));
    await fd.flush();
    await fd.write(record(REC, 2));
    expect(await pos(fd)).toEqual([0, 2]);
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 2, 'FM']);
  });

  it('a filemark written on purpose after a flush stays', async () => {
    const { drive, sinks } = await memoryDrive();
    const fd = await drive.open({ access: 'write' });
    await fd.write(record(REC, 1));
    await fd.flush();
    await fd.ioctl(MtOp.MTWEOF, 1);
    await fd.write(record(REC, 2));
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 'FM', 'FM', 2, 'FM']);
  });

  it('writing in the middle of the tape discards everything after it', async () => {
    const { drive, sinks } = await memoryDrive();
    await writeFiles(drive, [[1, 2], [3, 4], [5]]);
    const fd = await drive.open({ access: 'write' });
    await fd.ioctl(MtOp.MTREW, 1);
    await fd.ioctl(MtOp.MTFSF, 1);
    await fd.write(record(REC, 9));
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 2, 'FM', 9, 'FM']);
  });

  it('found by the fuzzers: a negative or huge filemark count and a negative MTSEEK are EINVAL and change nothing', async () => {
    // A negative count made the position negative (the next write then failed with a RangeError);
    // 2^31-1 filemarks would have filled memory.
    const { drive, sinks } = await memoryDrive();
    const fd = await drive.open({ access: 'write' });
    await fd.write(record(REC, 1));
    for (const [op, count] of [[MtOp.MTWEOF, -3], [MtOp.MTWEOFI, 0x10000], [MtOp.MTWEOF, 2 ** 31 - 1], [MtOp.MTSEEK, -1]] as const) {
      await expectErrno(fd.ioctl(op, count), 'EINVAL');
    }
    expect(drive.state()).toMatchObject({ fileno: 0, blkno: 1, position: 1 });
    await fd.ioctl(MtOp.MTWEOF, 0xffff);
    await fd.close();
    expect(sinks[0]!.contents(1).length).toBe(1 + 0xffff);
  });
});

describe('reading', () => {
  it('returns 0 at a filemark and leaves the tape after it; 0 again at end of data, then EIO', async () => {
    const { drive } = await memoryDrive();
    await writeFiles(drive, [[1], [2]]);
    const fd = await drive.open({ access: 'read' });
    await fd.ioctl(MtOp.MTREW, 1);
    expect(tag(await fd.read(REC))).toBe(1);
    expect((await fd.read(REC)).length).toBe(0);
    expect(await pos(fd)).toEqual([1, 0]);
    expect(bits(await fd.status())).toContain('EOF');
    expect(tag(await fd.read(REC))).toBe(2);
    expect((await fd.read(REC)).length).toBe(0);
    expect((await fd.read(REC)).length).toBe(0);
    expect(await pos(fd)).toEqual([2, -1]);
    expect(bits(await fd.status())).toContain('EOD');
    await expectErrno(fd.read(REC), 'EIO');
    await fd.close();
  });

  it('fails with EIO at once on a blank tape and after MTEOM', async () => {
    const { drive } = await memoryDrive();
    const fd = await drive.open({ access: 'read' });
    await expectErrno(fd.read(REC), 'EIO');
    await fd.close();
    await writeFiles(drive, [[1]]);
    const fd2 = await drive.open({ access: 'read' });
    await fd2.ioctl(MtOp.MTEOM, 1);
    await expectErrno(fd2.read(REC), 'EIO');
    await fd2.close();
  });

  it('a buffer smaller than the record gives ENOMEM and the record is consumed', async () => {
    const { drive } = await memoryDrive();
    await writeFiles(drive, [[1, 2]]);
    const fd = await drive.open({ access: 'read' });
    await fd.ioctl(MtOp.MTREW, 1);
    await expectErrno(fd.read(REC - 1), 'ENOMEM');
    expect(await pos(fd)).toEqual([0, 1]);
    expect(tag(await fd.read(REC * 4))).toBe(2); // a larger buffer gets the record's length
    await fd.ioctl(MtOp.MTBSR, 2);
    expect((await fd.read(REC * 4)).length).toBe(REC);
    await fd.close();
  });
});

describe('early warning and end of medium', () => {
  it('alternates ENOSPC and success after EW, then ENOSPC only at the physical end; close still writes its filemark', async () => {
    const F = REC + 8;
    const { drive, sinks } = await memoryDrive([{ capacity: 6 * F + 4, earlyWarning: 3 * F }]);
    const fd = await drive.open({ access: 'write' });
    const results: (number | string)[] = [];
    for (let i = 1; i <= 10; i++) results.push(await fd.write(record(REC, i)).catch((e: Error) => e.message.split(':')[0]!));
    expect(results).toEqual([REC, REC, REC, REC, 'ENOSPC', REC, 'ENOSPC', REC, 'ENOSPC', 'ENOSPC']);
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 2, 3, 4, 6, 8, 'FM']);
  });

  it('a record known only by its start (CUSE first chunk) gets ENOSPC where the longest record would not fit', async () => {
    // Room for 8 records of REC, early warning after 4; the longest record is 3 REC.
    const F = REC + 8;
    const { drive, sinks } = await memoryDrive([{ capacity: 8 * F, earlyWarning: 4 * F }], { maxRecord: 3 * REC });
    const fd = await drive.open({ access: 'write' });
    const results: (string | number)[] = [];
    for (let i = 1; i <= 11; i++) {
      results.push(
        await fd.checkWrite(REC).then(
          () => fd.write(record(REC, i), { checked: true }),
          (e: Error) => e.message.split(':')[0]!,
        ),
      );
    }
    // Record 5 crosses early warning, then st's alternation; record 7 still has room for 3 REC.
    // From record 9 on only 2 REC are left: a REC-sized record would fit, but one of unknown length
    // may not, so the check says ENOSPC, every time, and no checked write ever fails afterwards.
    expect(results).toEqual([REC, REC, REC, REC, REC, 'ENOSPC', REC, 'ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC']);
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 2, 3, 4, 5, 7, 'FM']);
  });

  it('the first copy to reach early warning decides logical EOT for all', async () => {
    const F = REC + 8;
    const { drive, sinks } = await memoryDrive([{ capacity: 100 * F }, { capacity: 10 * F, earlyWarning: 7.5 * F }]);
    const fd = await drive.open({ access: 'write' });
    for (let i = 1; i <= 3; i++) await fd.write(record(REC, i));
    await expectErrno(fd.write(record(REC, 4)), 'ENOSPC');
    await fd.close();
    const fd2 = await drive.open({ access: 'write' }); // autoload: volume 2 on both copies
    await fd2.write(record(REC, 4));
    await fd2.close();
    for (const sink of sinks) {
      expect(sink.contents(1).map(tag)).toEqual([1, 2, 3, 'FM']);
      expect(sink.contents(2).map(tag)).toEqual([4, 'FM']);
    }
  });
});

describe('opens', () => {
  it('a second open is EBUSY; the position survives close and reopen', async () => {
    const { drive } = await memoryDrive();
    await writeFiles(drive, [[1, 2, 3]]);
    const fd = await drive.open({ access: 'read' });
    await expectErrno(drive.open({ access: 'read', nonBlocking: true }), 'EBUSY');
    await fd.ioctl(MtOp.MTREW, 1);
    await fd.read(REC);
    await fd.close();
    const fd2 = await drive.open({ access: 'read' });
    expect(await pos(fd2)).toEqual([0, 1]);
    expect(tag(await fd2.read(REC))).toBe(2);
    await fd2.close();
  });

  it('daemon shutdown closes an open handle as process exit would: filemark after writing', async () => {
    const { drive, sinks } = await memoryDrive();
    const fd = await drive.open({ access: 'write' });
    await fd.write(record(REC, 1));
    await drive.shutdown();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 'FM']);
    await expectErrno(fd.write(record(REC, 2)), 'EBADF');
    await (await drive.open({ access: 'read' })).close(); // free again
  });

  it('/dev/st* semantics rewind at close, /dev/nst* do not', async () => {
    const { drive } = await memoryDrive();
    const fd = await drive.open({ access: 'write', rewindOnClose: true });
    await fd.write(record(REC, 1));
    await fd.close();
    const fd2 = await drive.open({ access: 'read' });
    expect(await pos(fd2)).toEqual([0, 0]);
    expect(tag(await fd2.read(REC))).toBe(1);
    await fd2.close();
  });

  it('O_RDONLY makes writes and filemarks EACCES', async () => {
    const { drive } = await memoryDrive();
    const fd = await drive.open({ access: 'read' });
    await expectErrno(fd.write(record(REC, 1)), 'EACCES');
    await expectErrno(fd.ioctl(MtOp.MTWEOF, 1), 'EACCES');
    await expectErrno(fd.ioctl(MtOp.MTERASE, 1), 'EACCES');
    await fd.close();
  });

  it('a write-protected cartridge: EROFS on a write open, GMT_WR_PROT, EACCES when opened O_NONBLOCK', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tp-'));
    try {
      await writeFile(join(dir, 'a.tap'), Buffer.alloc(0));
      const sink = new FileSink({ path: join(dir, 'a.tap'), capacity: new Capacity(), readonly: true, fsync: false });
      const drive = new PseudoDrive('pnst0', new Mirror([sink], { window: 1 << 20 }), { maxRecord: 1 << 20, autoload: true });
      await drive.start();
      await expectErrno(drive.open({ access: 'write' }), 'EROFS');
      await expectErrno(drive.open({ access: 'read-write' }), 'EROFS');
      const fd = await drive.open({ access: 'read-write', nonBlocking: true });
      expect(bits(await fd.status())).toContain('WR_PROT');
      await expectErrno(fd.write(record(REC, 1)), 'EACCES');
      await fd.close();
      await (await drive.open({ access: 'read' })).close();
      await sink.close();
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('after unload: ENOMEDIUM without autoload, O_NONBLOCK opens, MTLOAD loads the next volume', async () => {
    const { drive } = await memoryDrive([{}], { autoload: false });
    const fd = await drive.open({ access: 'read' });
    await fd.ioctl(MtOp.MTOFFL, 1);
    await expectErrno(fd.read(REC), 'ENOMEDIUM');
    await expectErrno(fd.write(record(REC, 1)), 'ENOMEDIUM');
    await expectErrno(fd.ioctl(MtOp.MTREW, 1), 'ENOMEDIUM');
    await fd.close();
    await expectErrno(drive.open({ access: 'read' }), 'ENOMEDIUM');
    const fd2 = await drive.open({ access: 'read', nonBlocking: true });
    expect(bits(await fd2.status())).toEqual(['DR_OPEN', 'IM_REP_EN']);
    await fd2.ioctl(MtOp.MTLOAD, 1);
    expect(await pos(fd2)).toEqual([0, 0]);
    expect(drive.state().volume).toBe(2);
    await fd2.close();
  });

  it('with autoload, the next blocking open after an unload loads the next volume', async () => {
    const { drive } = await memoryDrive();
    const fd = await drive.open({ access: 'read' });
    await fd.ioctl(MtOp.MTOFFL, 1);
    await fd.close();
    const status = await drive.open({ access: 'read', nonBlocking: true }); // mt status: no load
    expect(drive.state().loaded).toBe(false);
    await status.close();
    await (await drive.open({ access: 'write' })).close();
    expect(drive.state()).toMatchObject({ loaded: true, volume: 2, fileno: 0, blkno: 0 });
  });
});

describe('positioning ioctls', () => {
  it('MTFSF/MTBSF/MTFSR/MTBSR set fileno and blkno as st does, with EIO at filemarks, BOT and EOD', async () => {
    const { drive } = await memoryDrive();
    await writeFiles(drive, [[1, 2, 3], [4, 5], [6]]);
    const fd = await drive.open({ access: 'read' });
    await fd.ioctl(MtOp.MTREW, 1);
    await fd.ioctl(MtOp.MTFSF, 2);
    expect(await pos(fd)).toEqual([2, 0]);
    expect(tag(await fd.read(REC))).toBe(6);
    await fd.ioctl(MtOp.MTBSF, 1);
    expect(await pos(fd)).toEqual([1, -1]);
    await fd.ioctl(MtOp.MTFSF, 1);
    expect(await pos(fd)).toEqual([2, 0]);
    await expectErrno(fd.ioctl(MtOp.MTFSF, 5), 'EIO'); // crosses 1 filemark, then end of data
    expect(await pos(fd)).toEqual([3, -1]);
    expect(bits(await fd.status())).toContain('EOD');

    await fd.ioctl(MtOp.MTREW, 1);
    await fd.ioctl(MtOp.MTFSR, 2);
    expect(await pos(fd)).toEqual([0, 2]);
    await expectErrno(fd.ioctl(MtOp.MTFSR, 5), 'EIO'); // hits the filemark: after it
    expect(await pos(fd)).toEqual([1, 0]);
    expect(tag(await fd.read(REC))).toBe(4);
    await expectErrno(fd.ioctl(MtOp.MTBSR, 3), 'EIO'); // back over 4, then the filemark: before it
    expect(await pos(fd)).toEqual([0, -1]);
    expect((await fd.read(REC)).length).toBe(0); // the filemark is next
    await fd.ioctl(MtOp.MTREW, 1);
    await fd.ioctl(MtOp.MTFSR, 1);
    await expectErrno(fd.ioctl(MtOp.MTBSR, 2), 'EIO'); // beginning of tape
    expect(await pos(fd)).toEqual([0, 0]);
    await expectErrno(fd.ioctl(MtOp.MTBSF, 1), 'EIO');
    await fd.close();
  });

  it('MTEOM leaves fileno = number of files and blkno -1, and writing there appends', async () => {
    const { drive, sinks } = await memoryDrive();
    await writeFiles(drive, [[1], [2]]);
    const fd = await drive.open({ access: 'write' });
    await fd.ioctl(MtOp.MTREW, 1);
    await fd.ioctl(MtOp.MTEOM, 1);
    expect(await pos(fd)).toEqual([2, -1]);
    await fd.write(record(REC, 3));
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 'FM', 2, 'FM', 3, 'FM']);
  });

  it('MTIOCPOS counts records and filemarks; MTSEEK goes there with fileno/blkno unknown (0/0 at 0)', async () => {
    const { drive } = await memoryDrive();
    await writeFiles(drive, [[1, 2], [3]]);
    const fd = await drive.open({ access: 'read' });
    expect(await fd.position()).toBe(5);
    await fd.ioctl(MtOp.MTSEEK, 3);
    expect(await pos(fd)).toEqual([-1, -1]);
    expect(tag(await fd.read(REC))).toBe(3);
    await expectErrno(fd.ioctl(MtOp.MTSEEK, 99), 'EIO');
    await fd.ioctl(MtOp.MTSEEK, 0);
    expect(await pos(fd)).toEqual([0, 0]);
    await fd.close();
  });

  it('MTERASE discards from the position on', async () => {
    const { drive, sinks } = await memoryDrive();
    await writeFiles(drive, [[1, 2, 3]]);
    const fd = await drive.open({ access: 'read-write' });
    await fd.ioctl(MtOp.MTREW, 1);
    await fd.ioctl(MtOp.MTFSR, 1);
    await fd.ioctl(MtOp.MTERASE, 1);
    await fd.close();
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1]);
  });
});

describe('block modes and limits', () => {
  it('variable mode: a record over the maximum is EINVAL', async () => {
    const { drive } = await memoryDrive([{}], { maxRecord: 4096 });
    const fd = await drive.open({ access: 'write' });
    await expectErrno(fd.write(record(4097, 1)), 'EINVAL');
    expect(await fd.write(record(4096, 1))).toBe(4096);
    await expectErrno(fd.ioctl(MtOp.MTSETBLK, 8192), 'EINVAL');
    await fd.close();
  });

  it('fixed mode: writes split into blocks, a count not a multiple is EINVAL, reads stop at the filemark', async () => {
    const { drive, sinks } = await memoryDrive();
    const fd = await drive.open({ access: 'read-write' });
    await fd.ioctl(MtOp.MTSETBLK, 512);
    expect((await fd.status()).dsreg).toBe(512);
    await expectErrno(fd.write(record(1000, 1)), 'EINVAL');
    expect(await fd.write(record(1536, 2))).toBe(1536);
    await fd.ioctl(MtOp.MTWEOF, 1);
    await fd.ioctl(MtOp.MTREW, 1);
    expect((await fd.read(2048)).length).toBe(1536); // the data before the filemark
    expect((await fd.read(2048)).length).toBe(0); // then the filemark
    expect(await pos(fd)).toEqual([1, 0]);
    await fd.close();
    expect(sinks[0]!.contents(1).map((d) => d?.length ?? 'FM')).toEqual([512, 512, 512, 'FM']);
  });

  it('MTSETDENSITY shows in mt_dsreg; density codes 1-3 set the GMT_D_* bits', async () => {
    const { drive } = await memoryDrive();
    const fd = await drive.open({ access: 'read', nonBlocking: true });
    await fd.ioctl(MtOp.MTSETDENSITY, 2);
    const st = await fd.status();
    expect(st.dsreg >>> 24).toBe(2);
    expect(bits(st)).toContain('D_1600');
    await fd.close();
  });
});

describe('operations st does not implement', () => {
  it.each([
    ['MTTELL', MtOp.MTTELL],
    ['MTRESET', MtOp.MTRESET],
    ['MTRAS1', MtOp.MTRAS1],
    ['unknown op 99', 99],
  ])('%s is ENOSYS', async (_name, op) => {
    const { drive } = await memoryDrive();
    const fd = await drive.open({ access: 'read' });
    await expectErrno(fd.ioctl(op, 1), 'ENOSYS');
    await fd.close();
  });

  it('partitions are EINVAL and setmarks EIO, as on a drive without them', async () => {
    const { drive } = await memoryDrive();
    const fd = await drive.open({ access: 'read' });
    await expectErrno(fd.ioctl(MtOp.MTSETPART, 1), 'EINVAL');
    await expectErrno(fd.ioctl(MtOp.MTFSS, 1), 'EIO');
    await fd.close();
  });
});

function bits(status: { gstat: number }): string[] {
  return gstatNames(status.gstat);
}
