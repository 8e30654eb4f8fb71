import { clientSecurity } from '../server-options.js';
import * as grpc from '@grpc/grpc-js';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { UsageError } from '../cli-error.js';
import { connect } from '../drive-session.js';
import type { WatchReply } from '../../generated/tapeproxy.js';
import { eventLine, snapshotLines } from '../watch/lines.js';
import { TerminalView } from '../watch/terminal.js';

interface Args {
  drive?: string;
  server: string;
  interval: number;
  json: boolean;
  plain: boolean;
  count?: number;
}

export const watchCommand = {
  command: 'watch [drive]',
  describe: 'Live view of each drive and its copies: bytes, records, rates, volume, early warning, events',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('drive', { type: 'string', describe: 'one drive (default: all)' })
      .option('interval', { type: 'number', default: 1, describe: 'seconds between snapshots (at least 0.1)' })
      .option('plain', { type: 'boolean', default: false, describe: 'one line per update, as when stdout is not a terminal' })
      .option('json', { type: 'boolean', default: false, describe: 'each snapshot and event as a JSON line (the gRPC Watch replies)' })
      .option('count', { type: 'number', describe: 'stop after this many snapshots' })
      .example('$0 watch', 'every drive, full screen on a terminal; q quits')
      .example('$0 watch pnst0 --interval 5 >> watch.log', 'one drive, a logfmt line per copy every 5 s and per event')
      .example('$0 watch --json --count 1', 'one snapshot as JSON'),
  handler: async (args: Args) => {
    if (!(args.interval >= 0.1)) throw new UsageError(`--interval: at least 0.1 seconds, not ${args.interval}`);
    if (args.count !== undefined && !(Number.isInteger(args.count) && args.count >= 1)) {
      throw new UsageError(`--count: a whole number of snapshots, at least 1, not ${args.count}`);
    }
    const intervalMs = Math.round(args.interval * 1000);
    const call = connect(args.server, await clientSecurity(args)).watch({ drive: args.drive ?? '', intervalMs });
    let quitting = false;
    const quit = () => {
      quitting = true;
      call.cancel();
    };
    const view = process.stdout.isTTY && !args.plain && !args.json ? new TerminalView(args.server, intervalMs, process.stdout, quit) : undefined;
    const show = (reply: WatchReply) => {
      if (view) view.update(reply);
      else if (args.json) console.log(JSON.stringify(reply));
      else if (reply.snapshot) console.log(snapshotLines(reply.snapshot).join('\n'));
      else if (reply.event) console.log(eventLine(reply.event));
    };
    let snapshots = 0;
    process.once('SIGINT', quit);
    process.once('SIGTERM', quit);
    view?.start();
    try {
      await new Promise<void>((resolve, reject) => {
        call.on('data', (reply: WatchReply) => {
          show(reply);
          if (reply.snapshot && args.count !== undefined && ++snapshots >= args.count) quit();
        });
        call.on('error', (err: grpc.ServiceError) => {
          if (quitting && err.code === grpc.status.CANCELLED) resolve();
          else if (err.code === grpc.status.UNAVAILABLE) reject(new Error(`cannot reach the daemon at ${args.server}: ${err.details}`));
          else reject(new Error(err.details || err.message));
        });
        // Not 'end', which comes before 'error' when the call fails.
        call.on('status', (status: grpc.StatusObject) => {
          if (status.code !== grpc.status.OK) return;
          if (!quitting) process.stderr.write(`tapeproxy: the daemon at ${args.server} ended the watch (it is stopping)\n`);
          resolve();
        });
      });
    } finally {
      view?.stop();
    }
  },
};
