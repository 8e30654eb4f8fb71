import { clientSecurity } from '../server-options.js';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import { UsageError } from '../cli-error.js';
import { connect, DriveSession, type OpenOptions } from '../drive-session.js';
import { formatMtStatus } from '../mt-status.js';

type Access = OpenOptions['access'];
interface MtCommand {
  op: number | 'status' | 'tell' | 'asf';
  /** How mt-st opens the device for it (mt.c L264-364). */
  access: Access;
  nonBlocking: boolean;
}

const motion = (op: number): MtCommand => ({ op, access: 'read', nonBlocking: false });
const setting = (op: number): MtCommand => ({ op, access: 'read', nonBlocking: true });
const writing = (op: number): MtCommand => ({ op, access: 'read-write', nonBlocking: false });

/** mt-st command names. */
const COMMANDS: Record<string, MtCommand> = {
  weof: writing(MtOp.MTWEOF),
  eof: writing(MtOp.MTWEOF),
  fsf: motion(MtOp.MTFSF),
  bsf: motion(MtOp.MTBSF),
  fsfm: motion(MtOp.MTFSFM),
  bsfm: motion(MtOp.MTBSFM),
  fsr: motion(MtOp.MTFSR),
  bsr: motion(MtOp.MTBSR),
  rewind: motion(MtOp.MTREW),
  offline: motion(MtOp.MTOFFL),
  rewoffl: motion(MtOp.MTOFFL),
  eject: motion(MtOp.MTOFFL),
  retension: motion(MtOp.MTRETEN),
  eod: motion(MtOp.MTEOM),
  seod: motion(MtOp.MTEOM),
  seek: motion(MtOp.MTSEEK),
  erase: writing(MtOp.MTERASE),
  setblk: setting(MtOp.MTSETBLK),
  setdensity: setting(MtOp.MTSETDENSITY),
  compression: setting(MtOp.MTCOMPRESSION),
  load: setting(MtOp.MTLOAD),
  lock: setting(MtOp.MTLOCK),
  unlock: setting(MtOp.MTUNLOCK),
  nop: setting(MtOp.MTNOP),
  status: { op: 'status', access: 'read', nonBlocking: true },
  tell: { op: 'tell', access: 'read', nonBlocking: false },
  asf: { op: 'asf', access: 'read', nonBlocking: false },
};

/** Count defaults as in mt-st: 1, except erase (1 = long erase) and setblk/seek, which need one. */
const NEEDS_COUNT = new Set(['setblk', 'setdensity', 'seek', 'compression']);

interface Args {
  drive: string;
  operation: string;
  count?: number;
  server: string;
}

export const mtCommand = {
  command: 'mt <drive> <operation> [count]',
  describe: 'Run an mt-st operation on a drive (opened as mt-st opens /dev/nst*)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('drive', { type: 'string', demandOption: true })
      .positional('operation', { type: 'string', demandOption: true, describe: Object.keys(COMMANDS).join(', ') })
      .positional('count', { type: 'number' })
      .example('$0 mt pnst0 status', 'print the status as mt-st does')
      .example('$0 mt pnst0 fsf 2', 'space forward over two filemarks')
      .example('$0 mt pnst0 offline', 'unload; the next open loads the next volume'),
  handler: async (args: Args) => {
    const name = resolveCommand(args.operation);
    const cmd = COMMANDS[name]!;
    if (NEEDS_COUNT.has(name) && args.count === undefined) throw new UsageError(`mt ${name} needs a count`);
    if (args.count !== undefined && !Number.isSafeInteger(args.count)) throw new UsageError(`count must be an integer`);
    const count = args.count ?? 1;
    const session = await DriveSession.open(connect(args.server, await clientSecurity(args)), args.drive, cmd);
    try {
      if (cmd.op === 'status') console.log(formatMtStatus(await session.status()));
      else if (cmd.op === 'tell') console.log(`At block ${await session.position()}.`);
      else if (cmd.op === 'asf') {
        await session.mt(MtOp.MTREW);
        if (count > 0) await session.mt(MtOp.MTFSF, count);
      } else await session.mt(cmd.op, count);
    } finally {
      await session.close();
    }
  },
};

/** mt-st accepts any unique prefix of a command name. */
function resolveCommand(given: string): string {
  if (COMMANDS[given]) return given;
  const matches = Object.keys(COMMANDS).filter((c) => c.startsWith(given));
  if (matches.length === 1) return matches[0]!;
  throw new UsageError(
    matches.length ? `'${given}' is ambiguous: ${matches.join(', ')}` : `unknown mt operation '${given}'; known: ${Object.keys(COMMANDS).join(', ')}`,
  );
}

