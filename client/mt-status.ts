import { gstatNames, MT_ST_BLKSIZE_MASK, MT_ST_DENSITY_SHIFT } from '../daemon/drive/mtio.js';
import type { MtGet } from '../generated/tapeproxy.js';

/** MTIOCGET printed as mt-st 1.7 prints it for a SCSI-2 drive (mt.c L606-677). */
export function formatMtStatus(s: MtGet): string {
  const density = (s.dsreg >>> MT_ST_DENSITY_SHIFT) & 0xff;
  const gstat = s.gstat >>> 0;
  return [
    'SCSI 2 tape drive:',
    `File number=${s.fileno}, block number=${s.blkno}, partition=${s.resid}.`,
    `Tape block size ${s.dsreg & MT_ST_BLKSIZE_MASK} bytes. Density code 0x${density.toString(16)} (${density === 0 ? 'default' : 'unknown'}).`,
    `Soft error count since last status=${s.erreg & 0xffff}`,
    `General status bits on (${gstat.toString(16)}):`,
    ` ${gstatNames(gstat).join(' ')}`,
  ].join('\n');
}
