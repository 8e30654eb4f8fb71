import { stat } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { UsageError, type GlobalArgs } from '../cli-error.js';
import { listScsiDevices, scsiDevicesDir, type ScsiDevice } from '../devices/scsi-devices.js';

interface Args {
  json: boolean;
  'sysfs-root': string;
}

export const devicesCommand = {
  command: 'devices',
  describe: 'List the local SCSI tape drives and medium changers (from /sys), with their st, nst and sg nodes',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print JSON (an empty array when nothing is found)' })
      .option('sysfs-root', { type: 'string', default: '/sys', describe: 'read this sysfs tree instead (for tests)' })
      .example('$0 devices', 'one line per drive and changer')
      .example('$0 devices --json', 'machine-readable'),
  handler: async (args: Args) => {
    const root = args['sysfs-root'];
    // A mistyped --sysfs-root would otherwise look exactly like a machine without drives.
    if (!(await isDirectory(root))) throw new UsageError(`--sysfs-root ${root}: not a directory`);
    const devices = await listScsiDevices(root);
    if (args.json) console.log(JSON.stringify(devices, null, 2));
    else console.log(formatDevices(devices, scsiDevicesDir(root)));
  },
};

export function formatDevices(devices: ScsiDevice[], where: string): string {
  if (devices.length === 0) {
    return (
      `no tape drives or changers found in ${where}\n` +
      'If one is attached: is the driver of its host adapter loaded, and the SCSI tape driver (modprobe st)?'
    );
  }
  const header = ['ADDRESS', 'TYPE', 'VENDOR', 'MODEL', 'REV', 'ST', 'NST', 'SG', 'SINK'];
  const rows = devices.map((d) => [d.address, d.type, d.vendor, d.model, d.revision, d.st, d.nst, d.sg, d.sink].map((v) => v ?? '-'));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const lines = [line(header), ...rows.map(line)];

  // A drive without its node is still listed: the usual cause is a driver that is not loaded.
  const noSt = devices.filter((d) => d.type === 'tape' && !d.nst).map((d) => d.address);
  const noSg = devices.filter((d) => !d.sg).map((d) => d.address);
  const hints = [
    ...(noSt.length ? [`no st device for ${noSt.join(', ')}: is the SCSI tape driver loaded (modprobe st)?`] : []),
    ...(noSg.length ? [`no sg device for ${noSg.join(', ')}: is the SCSI generic driver loaded (modprobe sg)?`] : []),
  ];
  if (hints.length) lines.push('', ...hints);
  return lines.join('\n');
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
