import * as grpc from '@grpc/grpc-js';
import { clientSecurity } from '../server-options.js';
import { once } from 'node:events';
import type { Argv } from 'yargs';
import { MAX_RECORD_LIMIT } from '../../daemon/config/config.js';
import { RmtServer } from '../../daemon/frontends/rmt/rmt-server.js';
import type { GlobalArgs } from '../cli-error.js';
import { connect } from '../drive-session.js';
import { openOnChannel } from '../record-channel.js';
import { writeBehindWindow } from '../../daemon/drive/write-behind-window.js';
import { remoteDriveInfo } from '../../daemon/sinks/grpc-peer.js';
import { WriteBehindDrive } from '../write-behind-drive.js';

/** The drive's status right after the open: an answer in this long, or the open fails. */
const STATUS_TIMEOUT_MS = 30_000;

interface Args {
  drive?: string;
  server: string;
}

export const rmtCommand = {
  command: 'rmt',
  describe: "Serve the rmt protocol on stdin/stdout for the daemon's drives (for tar/cpio --rsh-command, dump's RSH, ssh)",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('drive', { type: 'string', describe: 'serve only this drive (default: the drive named by the device path)' })
      .example("tar -c -M -b 64 --rsh-command=$(pwd)/client/tapeproxy-rsh -f host:/dev/pnst0 dir", 'tar to drive pnst0 through rmt')
      .example('command="tapeproxy rmt --drive pnst0" ssh-ed25519 AAAA...', 'an ssh forced command in authorized_keys'),
  handler: async (args: Args) => {
    const security = await clientSecurity(args);
    const client = connect(args.server, security);
    const server = new RmtServer({
      drive: args.drive ?? process.env.TAPEPROXY_DRIVE,
      maxRecord: MAX_RECORD_LIMIT,
      open: async (drive, options) => {
        const session = await openOnChannel(client, args.server, security.tls, drive, options);
        try {
          // What the drive's copies take past early warning bounds what may go behind.
          const info = await remoteDriveInfo({ client, metadata: new grpc.Metadata() }, drive, STATUS_TIMEOUT_MS);
          return new WriteBehindDrive(session, writeBehindWindow(info.state?.earlyWarningZone));
        } catch (err) {
          await session.close().catch(() => undefined);
          throw err;
        }
      },
    });
    await server.serve(process.stdin, async (reply) => {
      if (!process.stdout.write(reply)) await once(process.stdout, 'drain');
    });
    client.close();
    // After a request it cannot parse the session is over even if the client keeps its end open:
    // an unread stdin would keep the process alive.
    process.stdin.destroy();
  },
};

