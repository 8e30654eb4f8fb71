import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { formatBytes } from '../watch/format.js';
import { ImageDamage, walkImage } from './walk.js';

interface Args {
  file: string;
}

export interface ImageCounts {
  records: number;
  dataBytes: number;
  tapeMarks: number;
}

/**
 * Checks a SIMH image's framing, object by object: leading and trailing lengths agree, records are
 * padded to an even length, the class is good data, and nothing but whole objects (or an
 * end-of-medium marker) lies before the end. The first problem ends the check.
 */
export async function verifyImage(path: string): Promise<{ counts: ImageCounts; size: number; end: number; damage?: ImageDamage }> {
  const counts: ImageCounts = { records: 0, dataBytes: 0, tapeMarks: 0 };
  try {
    const { size, end } = await walkImage(path, false, (o) => {
      if (o.kind === 'filemark') counts.tapeMarks++;
      else {
        counts.records++;
        counts.dataBytes += o.length;
      }
    });
    return { counts, size, end };
  } catch (err) {
    if (!(err instanceof ImageDamage)) throw err;
    return { counts, size: err.size, end: err.wholeUpTo, damage: err };
  }
}

export function describeCounts(c: ImageCounts): string {
  return `${c.records} records (${formatBytes(c.dataBytes)} of data) and ${c.tapeMarks} tape marks`;
}

export const verifyCommand = {
  command: 'verify <file>',
  describe: "Check a SIMH image's framing; exit 1 at the first problem, with its byte offset",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('file', { type: 'string', demandOption: true })
      .example('$0 image verify /srv/tapes/a-1.tap', 'exit 0: every record and tape mark is whole'),
  handler: async (args: Args) => {
    const { counts, size, end, damage } = await verifyImage(args.file);
    if (damage) {
      console.log(`${damage.message}; before it, ${describeCounts(counts)} are whole (tapeproxy image repair cuts the rest)`);
      process.exitCode = 1;
      return;
    }
    const marker = end < size ? `; end-of-medium marker at byte ${end}, ${size - end} bytes from there on not read` : '';
    console.log(`${args.file}: valid SIMH image: ${describeCounts(counts)}, ${size} bytes${marker}`);
  },
};
