import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** SCSI peripheral device types (SPC "peripheral device type") that matter for tape work. */
export const SCSI_TYPE_TAPE = 1;
export const SCSI_TYPE_CHANGER = 8;

export type ScsiDeviceKind = 'tape' | 'changer';

/** One tape drive or medium changer as the kernel shows it in sysfs. */
export interface ScsiDevice {
  /** Host:channel:target:lun, as lsscsi prints it. */
  address: string;
  type: ScsiDeviceKind;
  /** Inquiry strings, trimmed of their space padding; null when the file is missing or blank. */
  vendor: string | null;
  model: string | null;
  revision: string | null;
  /** Rewinding and non-rewinding st nodes; null when the st driver has not bound the drive. */
  st: string | null;
  nst: string | null;
  /** The SCSI generic node (what mtx and sg3_utils open); null when the sg driver is not loaded. */
  sg: string | null;
  /** The sink URI that would write to this drive; only tapes with an nst node have one. */
  sink: string | null;
}

const ADDRESS = /^(\d+):(\d+):(\d+):(\d+)$/;
/** st also names mode variants (st0l, st0m, st0a, nst0l...), which are the same drive with other defaults. */
const ST_NODE = /^(n?)st\d+$/;
const SG_NODE = /^sg\d+$/;

/** Where the SCSI bus lists its devices, below a sysfs mount (normally /sys). */
export function scsiDevicesDir(sysfsRoot: string): string {
  return join(sysfsRoot, 'bus', 'scsi', 'devices');
}

/**
 * The tape drives and medium changers under `sysfsRoot`, in address order. A machine without the
 * SCSI subsystem has no bus/scsi directory at all: that is an empty list, not an error.
 */
export async function listScsiDevices(sysfsRoot = '/sys'): Promise<ScsiDevice[]> {
  const dir = scsiDevicesDir(sysfsRoot);
  const names = await readdirOrEmpty(dir);
  const devices: ScsiDevice[] = [];
  for (const address of names.filter((n) => ADDRESS.test(n)).sort(compareAddresses)) {
    const device = await readDevice(join(dir, address), address);
    if (device) devices.push(device);
  }
  return devices;
}

async function readDevice(path: string, address: string): Promise<ScsiDevice | undefined> {
  const typeText = await readAttribute(path, 'type');
  const scsiType = typeText === null ? NaN : Number(typeText);
  const type: ScsiDeviceKind | undefined =
    scsiType === SCSI_TYPE_TAPE ? 'tape' : scsiType === SCSI_TYPE_CHANGER ? 'changer' : undefined;
  if (!type) return undefined;

  const tapeNodes = type === 'tape' ? await readdirOrEmpty(join(path, 'scsi_tape')) : [];
  const st = tapeNodes.find((n) => ST_NODE.exec(n)?.[1] === '');
  const nst = tapeNodes.find((n) => ST_NODE.exec(n)?.[1] === 'n');
  const sg = (await readdirOrEmpty(join(path, 'scsi_generic'))).find((n) => SG_NODE.test(n));
  return {
    address,
    type,
    vendor: await readAttribute(path, 'vendor'),
    model: await readAttribute(path, 'model'),
    revision: await readAttribute(path, 'rev'),
    st: st ? `/dev/${st}` : null,
    nst: nst ? `/dev/${nst}` : null,
    sg: sg ? `/dev/${sg}` : null,
    sink: nst ? `nst:/dev/${nst}` : null,
  };
}

/** A sysfs attribute, trimmed; null if absent or blank (a device may vanish while we look). */
async function readAttribute(dir: string, name: string): Promise<string | null> {
  try {
    return (await readFile(join(dir, name), 'utf8')).trim() || null;
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Numeric order field by field, so 10:0:0:0 follows 2:0:0:0 (LUNs can exceed 2^53, hence BigInt). */
function compareAddresses(a: string, b: string): number {
  const pa = a.split(':').map(BigInt);
  const pb = b.split(':').map(BigInt);
  for (let i = 0; i < 4; i++) {
    const x = pa[i] ?? 0n;
    const y = pb[i] ?? 0n;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
