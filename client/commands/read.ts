import { clientSecurity } from '../server-options.js';
import { once } from 'node:events';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { parseSize } from '../../daemon/config/size.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import { Errno, TapeError } from '../../daemon/drive/tape-error.js';
import { connect, type DriveSession } from '../drive-session.js';
import { openOnChannel } from '../record-channel.js';

const WINDOW = 16;

interface Args {
  drive: string;
  'max-record': string;
  'multi-volume': boolean;
  server: string;
}

export const readCommand = {
  command: 'read <drive>',
  describe: 'Copy one tape file (up to its filemark) from a drive to standard output',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('drive', { type: 'string', demandOption: true })
      .option('max-record', { type: 'string', default: '1M', describe: 'read buffer; a longer record fails (ENOMEM)' })
      .option('multi-volume', {
        type: 'boolean',
        default: false,
        describe: 'when the filemark ends the volume, go on with the next volume',
      })
      .example('$0 read pnst0 | tar -tvf -', 'list the tar archive at the current position')
      .example('$0 mt pnst0 rewind && $0 read pnst0 --multi-volume > all.bin', 'a file that spans volumes'),
  handler: async (args: Args) => {
    const maxBytes = parseSize(args['max-record']);
    const security = await clientSecurity(args);
    const client = connect(args.server, security);
    let session = await openOnChannel(client, args.server, security.tls, args.drive, { access: 'read' });
    try {
      for (;;) {
        await copyFile(session, maxBytes);
        if (!args['multi-volume'] || !(await atEndOfVolume(session))) break;
        const volume = session.lastFlags?.volume;
        await session.close();
        session = await openOnChannel(client, args.server, security.tls, args.drive, { access: 'read' });
        if (session.lastFlags?.volume === volume) break;
      }
    } finally {
      await session.close();
      client.close();
    }
  },
};

/** Reads records with several reads in flight until one returns 0 bytes (a filemark). */
async function copyFile(session: DriveSession, maxBytes: number): Promise<void> {
  const reads: Promise<Buffer>[] = []; // those behind the filemark come back ECANCELED, unread
  let done = false;
  try {
    while (!done) {
      while (reads.length < WINDOW) reads.push(session.read(maxBytes, true));
      const data = await reads.shift()!;
      if (data.length === 0) done = true;
      else if (!process.stdout.write(data)) await once(process.stdout, 'drain');
    }
  } catch (err) {
    if (err instanceof TapeError && err.errno === Errno.ENOMEM) {
      throw new TapeError(err.errno, `${err.message}; raise --max-record`);
    }
    throw err;
  }
}

/** After a filemark: is this the end of the volume's data? If not, leave the position unchanged. */
async function atEndOfVolume(session: DriveSession): Promise<boolean> {
  try {
    const data = await session.read(1); // a record, if any, fails with ENOMEM and is backspaced over below
    if (data.length === 0) return true;
  } catch (err) {
    if (!(err instanceof TapeError) || err.errno !== Errno.ENOMEM) throw err;
  }
  await session.mt(MtOp.MTBSR, 1); // it was the next file's first record
  return false;
}
