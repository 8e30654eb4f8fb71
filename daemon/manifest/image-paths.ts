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
async function writeAtomically(path: string, text: string): Promise<void> {
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

/**
 * Writes files in the background, the latest text per path: a write that hangs (a copy's file
 * system stopped answering) holds up only later writes of that path, never the drive, and a path
 * written often while a write is under way is written once more, with the newest text.
 */
export class LatestWriter {
  private readonly paths = new Map<string, { running: Promise<void>; next?: () => Promise<string | undefined> }>();

  constructor(private readonly onError: (path: string, err: Error) => void) {}

  /** `text` is asked for when the write happens (undefined: nothing to write). */
  write(path: string, text: () => Promise<string | undefined>): void {
    const entry = this.paths.get(path);
    if (entry) {
      entry.next = text;
      return;
    }
    const state: { running: Promise<void>; next?: () => Promise<string | undefined> } = { running: Promise.resolve(), next: text };
    this.paths.set(path, state);
    state.running = (async () => {
      while (state.next) {
        const make = state.next;
        state.next = undefined;
        try {
          const content = await make();
          if (content !== undefined) await writeAtomically(path, content);
        } catch (err) {
          this.onError(path, err as Error);
        }
      }
      this.paths.delete(path);
    })();
  }

  /** Resolves when every write is done, or after `ms` (a write that hangs is left behind). */
  async settled(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const done = Promise.all([...this.paths.values()].map((p) => p.running)).then(() => true);
    try {
      return await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
