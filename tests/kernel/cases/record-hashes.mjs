// Prints every object of a tape, one line each: "LENGTH SHA256" for a record, "FM" for a filemark,
// up to the end of recorded data, so two copies can be compared with diff. SOURCE is a tape device
// (loaded and rewound, then one read(2) per record through tapeproxy-st-io) or a SIMH image file
// (read with the daemon's own reader).
// usage: node record-hashes.mjs SOURCE
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

const source = process.argv[2];
const app = process.env.APP ?? '.';
const hash = (data) => `${data.length} ${createHash('sha256').update(data).digest('hex')}`;

if (statSync(source).isCharacterDevice()) {
  // Through tapeproxy-st-io, one read(2) per record: it also tells tgt's blank check after a
  // filemark, which st returns as a whole buffer with GMT_EOD set, from a record (st-io.c do_read).
  const { StIoLink, StIoOp, StIoFlag, errnoName } = await import(join(app, 'dist/daemon/sinks/st-io-link.js'));
  const link = new StIoLink(source, true);
  // MTLOAD makes st look at the cartridge again (tgt raises no unit attention when the test swaps
  // it), then from BOT.
  for (const [op, what] of [[30, 'MTLOAD'], [6, 'MTREW']]) {
    const r = await link.request(StIoOp.MTOP, op, op === 30 ? 0 : 1);
    if (r.err) throw new Error(`${what} on ${source}: ${errnoName(r.err)}`);
  }
  for (;;) {
    const r = await link.request(StIoOp.READ, 1 << 20);
    if (r.err) throw new Error(`reading ${source}: ${errnoName(r.err)}`);
    if (r.flags & StIoFlag.BLANK) break;
    console.log(r.flags & StIoFlag.FILEMARK ? 'FM' : hash(r.payload));
  }
  await link.close();
} else {
  const { SimhReader } = await import(join(app, 'dist/daemon/sinks/simh-reader.js'));
  const fh = await open(source, 'r');
  const size = (await fh.stat()).size;
  const reader = new SimhReader(fh, source);
  for (let offset = 0; ; ) {
    const r = await reader.objectAt(offset, size, true);
    if (r.object.kind === 'blank') break;
    console.log(r.object.kind === 'record' ? hash(r.object.data) : 'FM');
    offset = r.next;
  }
  await fh.close();
}
