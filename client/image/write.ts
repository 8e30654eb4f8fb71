import { existsSync } from 'node:fs';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { volumePath } from '../../daemon/sinks/file-sink.js';
import type { Sink } from '../../daemon/sinks/sink.js';
import { sinkFromUri } from '../../daemon/sinks/sink-uri.js';
import { walkImage } from './walk.js';

interface Args {
  image: string;
  sink: string;
  overwrite: boolean;
}

/** Bytes queued for the sink before waiting for it: memory stays bounded for images of any size. */
const WINDOW = 16 * 2 ** 20;

export interface ReplayResult {
  volumes: number;
  records: number;
  tapeMarks: number;
  /** Volumes on which the sink passed its early-warning point. */
  pastEarlyWarning: number[];
}

/**
 * Replays an image's records and tape marks onto a sink, one to one (the same framing), volume by
 * volume: `image` names volume 1 as a file sink does (`%v` the volume number, else PATH, PATH.2, ...),
 * and every volume that exists is replayed onto the same volume of the sink. A sink volume that
 * already holds data is refused unless `overwrite`; one that is full is an error (never a record cut).
 */
export async function replayImage(image: string, sink: Sink, overwrite: boolean): Promise<ReplayResult> {
  const result: ReplayResult = { volumes: 0, records: 0, tapeMarks: 0, pastEarlyWarning: [] };
  for (let volume = 1; volume === 1 || existsSync(volumePath(image, volume)); volume++) {
    if (volume > 1) await sink.unload(); // the last volume stays in (a real drive is not ejected at the end)
    const { writeProtected } = await sink.load(volume);
    if (writeProtected) throw new Error(`${sink.name}: volume ${volume} is write-protected`);
    if (!overwrite && !(await sink.atEnd())) {
      throw new Error(`${sink.name}: volume ${volume} already holds data; --overwrite replaces it`);
    }
    await walkImage(volumePath(image, volume), true, async (o) => {
      if (o.kind === 'filemark') {
        sink.writeFilemarks(1);
        result.tapeMarks++;
        return;
      }
      if (sink.room(o.length) === 'full') {
        throw new Error(`${sink.name}: volume ${volume} is full at record ${result.records + 1} of the image (a ${o.length}-byte record at byte ${o.offset} does not fit)`);
      }
      sink.write(o.data);
      result.records++;
      if (sink.queuedBytes > WINDOW) await sink.drain(WINDOW / 2);
      if (sink.failure) throw sink.failure;
    });
    await sink.sync();
    if (sink.earlyWarning) result.pastEarlyWarning.push(volume);
    result.volumes = volume;
  }
  return result;
}

export const imageWriteCommand = {
  command: 'write <image> <sink>',
  describe: "Replay an image's records and tape marks onto a sink (another image, a tape drive), with the same framing",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'the image; %v for its volumes (else PATH, PATH.2, ...)' })
      .positional('sink', { type: 'string', demandOption: true, describe: 'a sink URI, as for the daemon (file:, nst:, ...)' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'write over sink volumes that already hold data' })
      .example("$0 image write 'a-%v.tap' 'file:/mnt/offsite/a-%v.tap'", 'copy every volume to another image set')
      .example("$0 image write a-1.tap 'nst:/dev/nst0'", 'write an image onto a real tape'),
  handler: async (args: Args) => {
    const sink = sinkFromUri(args.sink, (message, fields) => process.stderr.write(`tapeproxy: ${message} ${JSON.stringify(fields)}\n`));
    let r: ReplayResult;
    try {
      r = await replayImage(args.image, sink, args.overwrite);
    } catch (err) {
      await sink.close().catch(() => undefined); // the replay's error is the one to report
      throw err;
    }
    await sink.close();
    const ew = r.pastEarlyWarning.length > 0 ? `; past early warning on volume ${r.pastEarlyWarning.join(', ')}` : '';
    console.log(`wrote ${r.records} records and ${r.tapeMarks} tape marks, ${r.volumes} ${r.volumes === 1 ? 'volume' : 'volumes'}, from ${args.image} to ${sink.name}${ew}`);
  },
};
