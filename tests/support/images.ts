import { writeFile } from 'node:fs/promises';
import { framedSize, lengthWords, TAPE_MARK_BYTES } from '../../daemon/sinks/simh-tap.js';

/** Writes a SIMH image of `objects` (record data, or null for a tape mark): for doctoring copies. */
export async function writeImage(path: string, objects: (Buffer | null)[]): Promise<void> {
  const parts: Buffer[] = [];
  for (const o of objects) {
    if (o === null) {
      parts.push(TAPE_MARK_BYTES);
      continue;
    }
    const words = lengthWords(o.length);
    parts.push(words.subarray(0, 4), o, Buffer.alloc(framedSize(o.length) - 8 - o.length), words.subarray(4));
  }
  await writeFile(path, Buffer.concat(parts));
}
