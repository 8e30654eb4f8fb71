import { open } from 'node:fs/promises';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { SimhReader } from '../../daemon/sinks/simh-reader.js';
import { type ContentType, detectContent } from '../../daemon/manifest/content-type.js';

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

/** Lists the files of a SIMH image: records, sizes and filemarks, up to end of data. */
export async function listImage(path: string, withRecords = false): Promise<{ files: TapeFile[]; imageBytes: number }> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const reader = new SimhReader(fh, path);
    const files: TapeFile[] = [];
    const fresh = (): TapeFile => ({ records: 0, bytes: 0, sizes: new Map(), endsWithFilemark: false, content: 'empty', ...(withRecords ? { recordList: [] } : {}) });
    let file = fresh();
    let encrypted = false;
    for (let offset = 0; ; ) {
      const r = await reader.objectAt(offset, size, file.records === 0);
      if (r.object.kind === 'blank') break;
      offset = r.next;
      if (r.object.kind === 'filemark') {
        file.endsWithFilemark = true;
        files.push(file);
        file = fresh();
        continue;
      }
      if (file.records === 0) {
        file.content = encrypted ? 'encrypted' : detectContent(r.object.data);
        encrypted ||= files.length === 0 && file.content === 'encrypted'; // a header: the volume is ciphertext
      }
      file.records++;
      file.bytes += r.length;
      file.sizes.set(r.length, (file.sizes.get(r.length) ?? 0) + 1);
      file.recordList?.push(r.length);
    }
    if (file.records > 0) files.push(file);
    return { files, imageBytes: size };
  } finally {
    await fh.close();
  }
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
      .example('$0 image ls /srv/tapes/a-1.tap', 'one line per tape file'),
  handler: async (args: Args) => {
    const { files, imageBytes } = await listImage(args.file, args.records);
    if (args.json) {
      console.log(JSON.stringify({ imageBytes, files: files.map((f) => ({ ...f, sizes: Object.fromEntries(f.sizes) })) }, null, 2));
      return;
    }
    files.forEach((f, i) => {
      const sizes = [...f.sizes].map(([size, n]) => `${size} x${n}`).join(', ');
      console.log(`file ${i}: ${f.content}, ${f.records} records, ${f.bytes} bytes${sizes ? ` (${sizes})` : ''}${f.endsWithFilemark ? '' : ', no filemark'}`);
      f.recordList?.forEach((len, j) => console.log(`  record ${j}: ${len} bytes`));
    });
    const marks = files.filter((f) => f.endsWithFilemark).length;
    console.log(`end of data after ${files.length} files and ${marks} filemarks; image ${imageBytes} bytes`);
  },
};

export const imageCommand = {
  command: 'image <command>',
  describe: 'Inspect SIMH .tap tape images',
  builder: (y: Argv<GlobalArgs>) => y.command(lsCommand).demandCommand(1),
  handler: () => undefined,
};
