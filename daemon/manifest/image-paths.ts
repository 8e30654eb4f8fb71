import { open, rename } from 'node:fs/promises';
import { volumePath } from '../sinks/file-sink.js';
import { innermostUri } from '../stages/stage-uri.js';

/** The image path template (with %v) of a sink URI whose data is in image files, stages and all. */
export function imageTemplate(uri: string): string | undefined {
  const inner = innermostUri(uri);
  if (!inner.startsWith('file:')) return undefined;
  const target = inner.slice('file:'.length);
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/** Where the manifest of volume `volume` of an image copy lives: next to the image. */
export function manifestPath(template: string, volume: number): string {
  return `${volumePath(template, volume)}.manifest.json`;
}

/** Replaces `path` whole or not at all: a temporary file, synced, renamed over it. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  const fh = await open(temporary, 'w', 0o644);
  try {
    await fh.writeFile(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(temporary, path);
}
