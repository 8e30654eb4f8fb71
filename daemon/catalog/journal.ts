import { type FileHandle, mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * An append-only JSON-lines file, robust against a process killed mid-write: entries are whole
 * lines, a torn last line is skipped by readers and closed off (a newline) before the next entry,
 * and durable entries are fsynced. Appends are serialized.
 */
export class Journal {
  private fh: FileHandle | undefined;
  private tail: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  append(entry: object, durable = false): Promise<void> {
    const run = this.tail.then(async () => {
      const fh = (this.fh ??= await this.openForAppend());
      await fh.write(`${JSON.stringify(entry)}\n`);
      if (durable) await fh.datasync();
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.tail;
    await this.fh?.close();
    this.fh = undefined;
  }

  private async openForAppend(): Promise<FileHandle> {
    await mkdir(dirname(this.path), { recursive: true });
    const fh = await open(this.path, 'a+');
    const { size } = await fh.stat();
    if (size > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) await fh.write('\n'); // a torn line from a crash: end it
    }
    return fh;
  }
}

/** One line appended by a process that does not hold the journal (tapeproxy verify). */
export async function appendOnce(path: string, entry: object): Promise<void> {
  const journal = new Journal(path);
  try {
    await journal.append(entry, true);
  } finally {
    await journal.close();
  }
}

/** The entries of a journal, skipping lines that are not whole JSON (a torn line). */
export async function readJournal(path: string): Promise<unknown[]> {
  const text = await readFile(path, 'utf8');
  const entries: unknown[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      entries.push(JSON.parse(line));
    } catch {
      // a line torn by a crash
    }
  }
  return entries;
}
