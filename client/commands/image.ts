import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { catCommand } from '../image/cat.js';
import { repairCommand } from '../image/repair.js';
import { verifyCommand } from '../image/verify.js';
import { walkImage } from '../image/walk.js';
import { imageWriteCommand } from '../image/write.js';

interface TapeFile {
  records: number;
  bytes: number;
  /** Record size -> how many records of it. */
  sizes: Map<number, number>;
  endsWithFilemark: boolean;
  recordList?: number[];
}

/** Lists the files of a SIMH image: records, sizes and filemarks, up to end of data. */
export async function listImage(path: string, withRecords = false): Promise<{ files: TapeFile[]; imageBytes: number }> {
  const files: TapeFile[] = [];
  const fresh = (): TapeFile => ({ records: 0, bytes: 0, sizes: new Map(), endsWithFilemark: false, ...(withRecords ? { recordList: [] } : {}) });
  let file = fresh();
  const { size } = await walkImage(path, false, (o) => {
    if (o.kind === 'filemark') {
      file.endsWithFilemark = true;
      files.push(file);
      file = fresh();
      return;
    }
    file.records++;
    file.bytes += o.length;
    file.sizes.set(o.length, (file.sizes.get(o.length) ?? 0) + 1);
    file.recordList?.push(o.length);
  });
  if (file.records > 0) files.push(file);
  return { files, imageBytes: size };
}

interface Args {
  file: string;
  records: boolean;
  json: boolean;
}

const lsCommand = {
  command: 'ls <file>',
  describe: 'List the files, records and filemarks of a SIMH .tap image',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('file', { type: 'string', demandOption: true })
      .option('records', { type: 'boolean', default: false, describe: 'list every record' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .example('$0 image ls /srv/tapes/a-1.tap', 'one line per tape file, counted from 1 (st counts from 0: file 1 is after mt rewind)'),
  handler: async (args: Args) => {
    const { files, imageBytes } = await listImage(args.file, args.records);
    if (args.json) {
      console.log(JSON.stringify({ imageBytes, files: files.map((f) => ({ ...f, sizes: Object.fromEntries(f.sizes) })) }, null, 2));
      return;
    }
    files.forEach((f, i) => {
      const sizes = [...f.sizes].map(([size, n]) => `${size} x${n}`).join(', ');
      console.log(`file ${i + 1}: ${f.records} records, ${f.bytes} bytes${sizes ? ` (${sizes})` : ''}${f.endsWithFilemark ? '' : ', no filemark'}`);
      f.recordList?.forEach((len, j) => console.log(`  record ${j}: ${len} bytes`));
    });
    const marks = files.filter((f) => f.endsWithFilemark).length;
    console.log(`end of data after ${files.length} files and ${marks} filemarks; image ${imageBytes} bytes`);
  },
};

export const imageCommand = {
  command: 'image <command>',
  describe: 'Inspect, check, extract, repair and replay SIMH .tap tape images',
  builder: (y: Argv<GlobalArgs>) =>
    y.command(lsCommand).command(verifyCommand).command(catCommand).command(repairCommand).command(imageWriteCommand).demandCommand(1),
  handler: () => undefined,
};
