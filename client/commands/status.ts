import { clientSecurity } from '../server-options.js';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { formatSize } from '../../daemon/config/size.js';
import type { DriveInfo } from '../../generated/tapeproxy.js';
import { connect } from '../drive-session.js';

interface Args {
  drive?: string;
  server: string;
  json: boolean;
}

export const statusCommand = {
  command: 'status [drive]',
  describe: 'Show each drive and each of its copies',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('drive', { type: 'string', describe: 'one drive (default: all)' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .example('$0 status', 'all drives')
      .example('$0 status pnst0 --json', 'one drive, machine-readable'),
  handler: async (args: Args) => {
    const client = connect(args.server, await clientSecurity(args));
    const drives: DriveInfo[] = args.drive
      ? [await unary<DriveInfo>((cb) => client.driveStatus({ drive: args.drive! }, cb))]
      : (await unary<{ drives: DriveInfo[] }>((cb) => client.listDrives({}, cb))).drives;
    client.close();
    if (args.json) console.log(JSON.stringify(args.drive ? drives[0] : drives, null, 2));
    else console.log(drives.map(formatDrive).join('\n\n'));
  },
};

function formatDrive(d: DriveInfo): string {
  const s = d.state!;
  const lines = [
    `${d.name}: ${s.loaded ? `volume ${s.volume}, file ${s.fileno}, block ${s.blkno}, object ${s.position}` : 'no volume loaded'}` +
      `${s.inUse ? ', open' : ''}${s.pastEarlyWarning ? ', past early warning' : ''}${s.writeProtected ? ', write-protected' : ''}`,
  ];
  for (const k of d.sinks) {
    const cap = k.capacity !== undefined ? ` of ${formatSize(k.capacity)} (early warning at ${formatSize(k.earlyWarningAt ?? 0)})` : '';
    lines.push(
      `  ${k.name}: volume ${k.volume}, ${k.used} bytes used${cap}, ${k.recordsWritten} records written` +
        `${k.earlyWarning ? ', EARLY WARNING' : ''}${k.failure ? `, FAILED at object ${k.position}: ${k.failure}` : ''}` +
        `${k.setAside ? ' (set aside; the drive goes on with the other copies)' : ''}`,
    );
  }
  return lines.join('\n');
}

function unary<T>(call: (cb: (err: Error | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value as T))));
}
