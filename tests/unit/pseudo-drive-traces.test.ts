/**
 * The worked traces of shared/reference/linux-tape-semantics.md section 4b, call by call, against
 * the pseudo drive over in-memory copies.
 */
import { describe, expect, it } from 'vitest';
import { gstatNames, MtOp } from '../../daemon/drive/mtio.js';
import { expectErrno } from '../support/errno.js';
import { memoryDrive, record, tag, writeVolumes } from '../support/memory-drive.js';

const REC = 10240;
const FRAMED = REC + 8; // SIMH framing, which the capacity model counts

describe('trace (a): tar -c -M -b 20 -f /dev/nst0 running into early warning', () => {
  it('crossing write succeeds, next is ENOSPC, close writes the filemark, volume 2 starts at BOT', async () => {
    // Early warning after the 5th record: capacity 10 records, EW zone leaves room for 4.5.
    const { drive, sinks } = await memoryDrive([{ capacity: 10 * FRAMED, earlyWarning: 5.5 * FRAMED }]);
    const fd = await drive.open({ access: 'write' });
    for (let i = 1; i <= 4; i++) {
      expect(await fd.write(record(REC, i))).toBe(REC);
      expect(bits(await fd.status())).not.toContain('EOT');
    }
    expect(await fd.write(record(REC, 5))).toBe(REC); // crosses EW: full count
    expect(bits(await fd.status())).toContain('EOT');
    await expectErrno(fd.write(record(REC, 6)), 'ENOSPC'); // nothing written
    expect(bits(await fd.status())).toContain('EOD');
    await fd.close(); // driver writes one filemark; nst: no rewind
    expect(sinks[0]!.contents(1).map(tag)).toEqual([1, 2, 3, 4, 5, 'FM']);

    // An operator's `mt status` (O_NONBLOCK) in between neither changes the volume nor cancels the change.
    const status = await drive.open({ access: 'read', nonBlocking: true });
    expect((await status.status()).fileno).toBe(1);
    await status.close();
    expect(drive.state().volume).toBe(1);

    // tar -F: reopen O_WRONLY|O_CREAT; autoload puts volume 2 in, at file 0 block 0.
    const fd2 = await drive.open({ access: 'write' });
    const st = await fd2.status();
    expect([st.fileno, st.blkno, st.gstat >>> 0]).toEqual([0, 0, 0x41010000]);
    expect(drive.state().volume).toBe(2);
    expect(await fd2.write(record(REC, 6))).toBe(REC); // the record refused on volume 1
    expect(await fd2.write(record(REC, 7))).toBe(REC);
    await fd2.close();
    expect(sinks[0]!.contents(2).map(tag)).toEqual([6, 7, 'FM']);
  });
});

describe('trace (b): reading it back with tar -x -M', () => {
  it('returns each record, 0 at the filemark, and the next volume on reopen', async () => {
    const { sinks } = await memoryDrive([{ capacity: 10 * FRAMED, earlyWarning: 5.5 * FRAMED }]);
    await writeVolumes(sinks[0]!, [[1, 2, 3, 4, 5], [6, 7]]);
    const { drive } = await memoryDrive(sinks);
    const fd = await drive.open({ access: 'read' });
    for (let i = 1; i <= 5; i++) expect(tag(await fd.read(REC))).toBe(i);
    expect((await fd.read(REC)).length).toBe(0); // the filemark: end of volume for tar -M
    await fd.close();
    const fd2 = await drive.open({ access: 'read' });
    expect(drive.state().volume).toBe(2);
    expect(tag(await fd2.read(REC))).toBe(6);
    expect(tag(await fd2.read(REC))).toBe(7);
    expect((await fd2.read(REC)).length).toBe(0); // filemark
    expect((await fd2.read(REC)).length).toBe(0); // end of data, first time: 0 again
    await expectErrno(fd2.read(REC), 'EIO'); // then EIO
    await expectErrno(fd2.read(REC), 'EIO');
    await fd2.close();
  });

  it('a single-volume reader that stops before the filemark does not trigger a volume change', async () => {
    const { sinks } = await memoryDrive();
    await writeVolumes(sinks[0]!, [[1, 2], [3]]);
    const { drive } = await memoryDrive(sinks);
    const fd = await drive.open({ access: 'read' });
    expect(tag(await fd.read(REC))).toBe(1);
    await fd.close(); // BSD semantics: the tape stays where it is
    const fd2 = await drive.open({ access: 'read' });
    expect(drive.state().volume).toBe(1);
    expect(tag(await fd2.read(REC))).toBe(2);
    await fd2.close();
  });
});

describe('trace (d): mt status after each step', () => {
  it('prints the position and status bits st computes', async () => {
    const { drive } = await memoryDrive();
    const mt = async (op?: number, count = 1) => {
      const fd = await drive.open({ access: 'read', nonBlocking: true });
      if (op !== undefined) await fd.ioctl(op, count);
      const st = await fd.status();
      await fd.close();
      return [st.fileno, st.blkno, st.gstat >>> 0, st.type];
    };
    expect(await mt()).toEqual([0, 0, 0x41010000, 0x72]); // BOT ONLINE IM_REP_EN, MT_ISSCSI2

    const w = await drive.open({ access: 'write' });
    await w.write(record(REC, 1));
    await w.write(record(REC, 2));
    await w.close();
    expect(await mt()).toEqual([1, 0, 0x81010000, 0x72]); // EOF ONLINE IM_REP_EN

    expect(await mt(MtOp.MTREW)).toEqual([0, 0, 0x41010000, 0x72]);
    expect(await mt(MtOp.MTEOM)).toEqual([1, -1, 0x09010000, 0x72]); // EOD ONLINE IM_REP_EN
    expect(await mt(MtOp.MTOFFL)).toEqual([-1, -1, 0x00050000, 0x72]); // DR_OPEN IM_REP_EN, not ONLINE
  });
});

function bits(status: { gstat: number }): string[] {
  return gstatNames(status.gstat);
}
