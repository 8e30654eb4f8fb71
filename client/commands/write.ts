import { clientSecurity } from '../server-options.js';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { parseSize } from '../../daemon/config/size.js';
import { Errno, TapeError } from '../../daemon/drive/tape-error.js';
import { connect } from '../drive-session.js';
import { openOnChannel } from '../record-channel.js';
import { recordsOf } from '../records.js';

/** Records in flight: enough to hide the round trip, small against any early-warning zone. */
const WINDOW = 32;

interface Args {
  drive: string;
  'record-size': string;
  'multi-volume': boolean;
  server: string;
}

export const writeCommand = {
  command: 'write <drive>',
  describe: 'Write standard input to a drive as records of --record-size bytes, then close (one filemark)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('drive', { type: 'string', demandOption: true })
      .option('record-size', { type: 'string', default: '10240', describe: 'bytes per record (K/M suffixes); the last may be shorter' })
      .option('multi-volume', { type: 'boolean', default: false, describe: 'at logical end of tape, close and continue on the next volume' })
      .example('tar -cf - /etc | $0 write pnst0 --record-size 10K', "a tar archive as tar's own 10 KiB records")
      .example('$0 write pnst0 --record-size 256K --multi-volume < big.img', 'continue on the next volume at EOT'),
  handler: async (args: Args) => {
    const recordSize = parseSize(args['record-size']);
    const security = await clientSecurity(args);
    const client = connect(args.server, security);
    let session = await openOnChannel(client, args.server, security.tls, args.drive, { access: 'write' });
    const firstVolume = session.lastFlags?.volume ?? 1;
    let records = 0;
    let bytes = 0;
    const inFlight: { record: Buffer; reply: Promise<number> }[] = [];
    const replay: Buffer[] = [];

    const settleOldest = async (): Promise<void> => {
      const entry = inFlight.shift()!;
      try {
        await entry.reply;
        records++;
        bytes += entry.record.length;
      } catch (err) {
        if (!(err instanceof TapeError) || err.errno !== Errno.ENOSPC || !args['multi-volume']) {
          if (err instanceof TapeError && err.errno === Errno.ENOSPC) {
            throw new TapeError(err.errno, `logical end of tape after ${records} records: the rest of the input was not written (use --multi-volume)`);
          }
          throw err;
        }
        // Everything sent behind the refused record was cancelled by the daemon: send it again.
        const unwritten = [entry.record, ...inFlight.splice(0).map((e) => e.record)];
        replay.unshift(...unwritten);
        const volume = session.lastFlags?.volume;
        await session.close();
        session = await openOnChannel(client, args.server, security.tls, args.drive, { access: 'write' });
        if (session.lastFlags?.volume === volume) {
          throw new TapeError(Errno.ENOSPC, `the drive did not move to a new volume after volume ${volume} (is autoload off?)`);
        }
        process.stderr.write(`tapeproxy: continuing on volume ${session.lastFlags?.volume}\n`);
      }
    };

    const input = recordsOf(process.stdin, recordSize)[Symbol.asyncIterator]();
    for (;;) {
      if (inFlight.length >= WINDOW) {
        await settleOldest();
        continue;
      }
      const record = replay.shift() ?? (await input.next()).value;
      if (record) inFlight.push({ record, reply: session.write(record, true) });
      else if (inFlight.length > 0) await settleOldest();
      else break;
    }
    const lastVolume = session.lastFlags?.volume ?? firstVolume;
    await session.close();
    client.close();
    const volumes = lastVolume === firstVolume ? `volume ${firstVolume}` : `volumes ${firstVolume}-${lastVolume}`;
    process.stderr.write(`tapeproxy: wrote ${records} records (${bytes} bytes) to ${args.drive}, ${volumes}\n`);
  },
};
