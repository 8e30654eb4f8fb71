import { PseudoDrive, type DriveOptions } from '../../daemon/drive/pseudo-drive.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { MemorySink } from '../../daemon/sinks/memory-sink.js';

export interface CopySpec {
  capacity?: number;
  earlyWarning?: number;
}

/** A pseudo drive over in-memory copies (new ones, or ones that already hold volumes): no I/O. */
export async function memoryDrive(copies: CopySpec[] | MemorySink[] = [{}], options: Partial<DriveOptions> = {}) {
  const sinks = copies.map((c, i) =>
    c instanceof MemorySink ? c : new MemorySink(`copy${i}`, new Capacity(c.capacity, c.earlyWarning)),
  );
  const mirror = new Mirror(sinks, { window: 1 << 20 });
  const drive = new PseudoDrive('pnst0', mirror, { maxRecord: 1 << 20, autoload: true, ...options });
  await drive.start();
  return { drive, mirror, sinks };
}

/** A test record: every byte is `n`, so `tag()` tells which record came back. */
export function record(size: number, n: number): Buffer {
  return Buffer.alloc(size, n);
}

/** Which record a buffer is (its first byte), or 'FM' for a filemark in MemorySink contents. */
export function tag(data: Buffer | null): number | 'FM' {
  return data === null ? 'FM' : data[0]!;
}

/** Writes volumes straight onto a copy: each a list of record numbers, then one filemark. */
export async function writeVolumes(sink: MemorySink, volumes: number[][], size = 10240): Promise<void> {
  for (const [i, records] of volumes.entries()) {
    await sink.load(i + 1);
    for (const n of records) sink.write(record(size, n));
    sink.writeFilemarks(1);
    await sink.unload();
  }
}
