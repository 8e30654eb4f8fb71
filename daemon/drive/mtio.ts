/**
 * The Linux tape ioctl vocabulary (include/uapi/linux/mtio.h), kept with Linux's own numbers so that
 * every front end (ioctl, rmt `I`, gRPC) passes them through unchanged.
 */

export const MtOp = {
  MTRESET: 0,
  MTFSF: 1,
  MTBSF: 2,
  MTFSR: 3,
  MTBSR: 4,
  MTWEOF: 5,
  MTREW: 6,
  MTOFFL: 7,
  MTNOP: 8,
  MTRETEN: 9,
  MTBSFM: 10,
  MTFSFM: 11,
  MTEOM: 12,
  MTERASE: 13,
  MTRAS1: 14,
  MTRAS2: 15,
  MTRAS3: 16,
  MTSETBLK: 20,
  MTSETDENSITY: 21,
  MTSEEK: 22,
  MTTELL: 23,
  MTSETDRVBUFFER: 24,
  MTFSS: 25,
  MTBSS: 26,
  MTWSM: 27,
  MTLOCK: 28,
  MTUNLOCK: 29,
  MTLOAD: 30,
  MTUNLOAD: 31,
  MTCOMPRESSION: 32,
  MTSETPART: 33,
  MTMKPART: 34,
  MTWEOFI: 35,
} as const;

export type MtOpName = keyof typeof MtOp;

const opNames = new Map<number, MtOpName>(
  Object.entries(MtOp).map(([name, value]) => [value, name as MtOpName]),
);

export function mtOpName(op: number): string {
  return opNames.get(op) ?? `op ${op}`;
}

/** `mt_type` for a SCSI-2 drive; mt-st prints its SCSI status layout only for this (and 0x71). */
export const MT_ISSCSI2 = 0x72;

/** `mt_gstat` bits (GMT_* macros of mtio.h, evaluated for a 32-bit word). */
export const Gstat = {
  EOF: 0x80000000,
  BOT: 0x40000000,
  EOT: 0x20000000,
  SM: 0x10000000,
  EOD: 0x08000000,
  WR_PROT: 0x04000000,
  ONLINE: 0x01000000,
  D_6250: 0x00800000,
  D_1600: 0x00400000,
  D_800: 0x00200000,
  DR_OPEN: 0x00040000,
  IM_REP_EN: 0x00010000,
  CLN: 0x00008000,
} as const;

export function gstatNames(gstat: number): string[] {
  return Object.entries(Gstat)
    .filter(([, bit]) => (gstat & bit) >>> 0 === bit)
    .map(([name]) => name);
}

export const MT_ST_BLKSIZE_MASK = 0xffffff;
export const MT_ST_DENSITY_SHIFT = 24;

/** What MTIOCGET returns (struct mtget, x86_64). */
export interface MtGet {
  type: number;
  resid: number;
  dsreg: number;
  gstat: number;
  erreg: number;
  fileno: number;
  blkno: number;
}

/** struct mtget as x86_64 lays it out: five longs, then two ints (48 bytes). */
export function encodeMtget(s: MtGet): Buffer {
  const b = Buffer.alloc(48);
  b.writeBigInt64LE(BigInt(s.type), 0);
  b.writeBigInt64LE(BigInt(s.resid), 8);
  b.writeBigInt64LE(BigInt(s.dsreg), 16);
  b.writeBigInt64LE(BigInt(s.gstat), 24);
  b.writeBigInt64LE(BigInt(s.erreg), 32);
  b.writeInt32LE(s.fileno, 40);
  b.writeInt32LE(s.blkno, 44);
  return b;
}
