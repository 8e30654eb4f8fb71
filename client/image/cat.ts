import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { UsageError } from '../cli-error.js';
import { walkImage } from './walk.js';

interface Args {
  image: string;
  file: number;
}

/**
 * Writes the records of tape file `n` (counted from 1, as `image ls` lists them) to `out`, as a
 * byte stream, streaming: a record at a time, waiting when `out` is full. A reader that stops early
 * (EPIPE: `tar -t` after its end-of-archive blocks, `head`) ends it quietly. Says whether file `n`
 * exists, and how many files the image has.
 */
export async function catTapeFile(path: string, n: number, out: NodeJS.WritableStream): Promise<{ found: boolean; files: number }> {
  let file = 1; // the tape file the next object belongs to
  let found = false; // file n exists: a record of it or its closing tape mark was seen
  let recordsSinceMark = false;
  let closed = false;
  let failure: Error | undefined;
  // Stays attached: an EPIPE may come after the last write.
  out.on('error', (err: NodeJS.ErrnoException) => {
    closed = true;
    if (err.code !== 'EPIPE') failure ??= err;
  });
  await walkImage(path, true, async (o) => {
    if (closed) return false;
    if (o.kind === 'filemark') {
      if (file === n) {
        found = true;
        return false;
      }
      file++;
      recordsSinceMark = false;
      return true;
    }
    recordsSinceMark = true;
    if (file !== n) return true;
    found = true;
    if (!out.write(o.data)) await writable(out);
    return true;
  });
  if (failure) throw failure;
  // A last file without a closing tape mark counts, as in `image ls`.
  return { found, files: file - 1 + (recordsSinceMark ? 1 : 0) };
}

/** Resolves when `out` drains, fails or closes (a failure is the error listener's). */
function writable(out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const event of ['drain', 'error', 'close']) out.off(event, done);
      resolve();
    };
    for (const event of ['drain', 'error', 'close']) out.once(event, done);
  });
}

export const catCommand = {
  command: 'cat <image>',
  describe: 'Write one tape file of a SIMH image (its records, concatenated) to standard output',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('image', { type: 'string', demandOption: true })
      .option('file', { type: 'number', default: 1, describe: 'which tape file, counted from 1 as image ls lists them' })
      .example('$0 image cat a-1.tap --file 2 | tar -t -b 64', 'list the second archive on the tape')
      .example('$0 image cat a-1.tap > first.tar', 'extract the first tape file'),
  handler: async (args: Args) => {
    if (!(Number.isInteger(args.file) && args.file >= 1)) throw new UsageError(`--file: a tape file number from 1, not ${args.file}`);
    const { found, files } = await catTapeFile(args.image, args.file, process.stdout);
    if (!found) throw new Error(`${args.image} has ${files} tape ${files === 1 ? 'file' : 'files'}; there is no file ${args.file}`);
  },
};
