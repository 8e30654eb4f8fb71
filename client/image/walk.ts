import { open } from 'node:fs/promises';
import { ImageCorrupt, SimhReader } from '../../daemon/sinks/simh-reader.js';

/** A record (its data when asked for) or a tape mark, and where it lies in the image. */
export interface ImageObject {
  kind: 'record' | 'filemark';
  /** The record's bytes when walking with data, else empty. */
  data: Buffer;
  /** Data bytes of a record. */
  length: number;
  offset: number;
  /** Offset of the next object. */
  next: number;
}

export interface ImageEnd {
  /** Size of the image file. */
  size: number;
  /** Where the recorded data end: the size, or an end-of-medium marker before it. */
  end: number;
}

/** The image is whole up to `wholeUpTo` (the end of its last whole object); `problem` says what follows. */
export class ImageDamage extends Error {
  constructor(
    readonly path: string,
    readonly wholeUpTo: number,
    readonly size: number,
    readonly problem: ImageCorrupt,
  ) {
    super(`${path}: ${problem.problem} at byte ${problem.offset}`);
    this.name = 'ImageDamage';
  }
}

/**
 * Visits the objects of a SIMH image in order, up to the end of recorded data, through the
 * drive's own reader (daemon/sinks/simh-reader.ts) with its read-ahead: memory stays bounded by a
 * chunk and the records a visitor keeps. `visit` may return false to stop. Throws ImageDamage at
 * the first object that is not well formed.
 */
export async function walkImage(
  path: string,
  withData: boolean,
  visit: (object: ImageObject) => boolean | void | Promise<boolean | void>,
): Promise<ImageEnd> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const reader = new SimhReader(fh, path);
    for (let offset = 0; ; ) {
      let r;
      try {
        r = await reader.objectAt(offset, size, withData);
      } catch (err) {
        if (err instanceof ImageCorrupt) throw new ImageDamage(path, offset, size, err);
        throw err;
      }
      if (r.object.kind === 'blank') return { size, end: offset };
      const data = r.object.kind === 'record' ? r.object.data : Buffer.alloc(0);
      if ((await visit({ kind: r.object.kind, data, length: r.length, offset, next: r.next })) === false) return { size, end: r.next };
      offset = r.next;
    }
  } finally {
    await fh.close();
  }
}
