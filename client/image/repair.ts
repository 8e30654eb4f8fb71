import { open } from 'node:fs/promises';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { UsageError } from '../cli-error.js';
import { describeCounts, verifyImage } from './verify.js';

interface Args {
  file: string;
  output?: string;
  'in-place': boolean;
}

/** Copies bytes [start, end) of `from` to the new file `to` (never over an existing one), synced; 1 MiB at a time. */
async function copyRange(from: string, to: string, start: number, end: number): Promise<void> {
  const source = await open(from, 'r');
  try {
    const target = await open(to, 'wx');
    try {
      const buffer = Buffer.allocUnsafe(2 ** 20);
      for (let at = start; at < end; ) {
        const { bytesRead } = await source.read(buffer, 0, Math.min(buffer.length, end - at), at);
        if (bytesRead === 0) throw new Error(`${from} ended at byte ${at} while being copied`);
        await target.write(buffer, 0, bytesRead);
        at += bytesRead;
      }
      await target.sync();
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/**
 * Cuts an image after its last whole object (record or tape mark), as after a crash while it was
 * written. Nothing is destroyed: without a flag it only says what it would cut; `--output NEW`
 * writes the whole part to a new file and leaves the image as it is; `--in-place` first saves the
 * cut bytes to FILE.cut, then truncates the image.
 */
export const repairCommand = {
  command: 'repair <file>',
  describe: 'Cut a damaged or truncated SIMH image after its last whole record or tape mark',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('file', { type: 'string', demandOption: true })
      .option('output', { type: 'string', describe: 'write the repaired image to this new file; the image stays as it is' })
      .option('in-place', { type: 'boolean', default: false, describe: 'truncate the image itself, after saving the cut bytes to FILE.cut' })
      .example('$0 image repair a-3.tap', 'say what is damaged and what would be cut; change nothing')
      .example('$0 image repair a-3.tap --output a-3.fixed.tap', 'the whole part in a new file')
      .example('$0 image repair a-3.tap --in-place', 'cut a-3.tap itself; the cut bytes go to a-3.tap.cut'),
  handler: async (args: Args) => {
    if (args.output && args['in-place']) throw new UsageError('give --output NEW or --in-place, not both');
    const { counts, size, end, damage } = await verifyImage(args.file);
    if (!damage) {
      console.log(`${args.file}: whole (${describeCounts(counts)}); nothing to repair`);
      if (args.output) await copyRange(args.file, args.output, 0, size);
      return;
    }
    const cut = `bytes ${end}-${size - 1} (${size - end} bytes)`;
    const kept = `${describeCounts(counts)}, ${end} bytes`;
    if (args.output) {
      await copyRange(args.file, args.output, 0, end);
      console.log(`${damage.message}; wrote ${args.output} with ${kept}; ${args.file} is unchanged`);
    } else if (args['in-place']) {
      const saved = `${args.file}.cut`;
      await copyRange(args.file, saved, end, size);
      const image = await open(args.file, 'r+');
      try {
        await image.truncate(end);
        await image.sync();
      } finally {
        await image.close();
      }
      console.log(`${damage.message}; cut ${cut} into ${saved}; ${args.file} keeps ${kept}`);
    } else {
      console.log(`${damage.message}; repair would keep ${kept} and cut ${cut}: add --output NEW or --in-place`);
      process.exitCode = 1;
    }
  },
};
