import { execa } from 'execa';
import { stat } from 'node:fs/promises';

/** Polls `test` every 50 ms until it holds; fails naming `what` after `seconds`. */
export async function waitFor(what: string, test: () => Promise<boolean>, seconds = 30): Promise<void> {
  for (const deadline = Date.now() + seconds * 1000; Date.now() < deadline; ) {
    if (await test()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}`);
}

/** A file's size, 0 while it does not exist. */
export const sizeOf = (path: string): Promise<number> => stat(path).then((s) => s.size, () => 0);

/** Whether something is mounted on `path`. */
export const isMountPoint = async (path: string): Promise<boolean> => (await execa('mountpoint', ['-q', path], { reject: false })).exitCode === 0;
