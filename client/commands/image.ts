import { type FileHandle, open } from 'node:fs/promises';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { type ContentType, detectContent } from '../../daemon/manifest/content-type.js';
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
  /** From its first record; every file of a volume that starts with an encryption header is 'encrypted'. */
  content: ContentType;
  recordList?: number[];
}

/** Enough of a record to tell its format (detectContent looks at most at its first 1 KiB). */
const HEAD_BYTES = 4096;
const HEAD = Buffer.alloc(HEAD_BYTES);

/** Lists the files of a SIMH image: records, sizes and filemarks, up to end of data. */
export async function listImage(path: string, withRecords = false): Promise<{ files: TapeFile[]; imageBytes: number }> {
  const files: TapeFile[] = [];
  const fresh = (): TapeFile => ({ records: 0, bytes: 0, sizes: new Map(), endsWithFilemark: false, content: 'empty', ...(withRecords ? { recordList: [] } : {}) });
  let file = fresh();
  let encrypted = false;
  const heads = await open(path, 'r');
  const { size } = await walkImage(path, false, async (o) => {
    if (o.kind === 'filemark') {
      file.endsWithFilemark = true;
      files.push(file);
      file = fresh();
      return;
    }
    if (file.records === 0) {
      file.content = encrypted ? 'encrypted' : detectContent(await head(heads, o.offset + 4, o.length));
      encrypted ||= files.length === 0 && file.content === 'encrypted'; // a header: the volume is ciphertext
    }
    file.records++;
    file.bytes += o.length;
    file.sizes.set(o.length, (file.sizes.get(o.length) ?? 0) + 1);
    file.recordList?.push(o.length);
  }).finally(() => heads.close());
  if (file.records > 0) files.push(file);
  return { files, imageBytes: size };
}

async function head(fh: FileHandle, at: number, length: number): Promise<Buffer> {
  const n = Math.min(length, HEAD_BYTES);
  const { bytesRead } = await fh.read(HEAD, 0, n, at);
  return HEAD.subarray(0, bytesRead);
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
      console.log(`file ${i + 1}: ${f.content}, ${f.records} records, ${f.bytes} bytes${sizes ? ` (${sizes})` : ''}${f.endsWithFilemark ? '' : ', no filemark'}`);
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
