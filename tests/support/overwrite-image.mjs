// Child of the crash-safety test: loads the image at argv[2] (on tmpfs) as a cartridge and writes
// argv[3] records of argv[4] bytes over it from BOT, record i filled with 0xbb and its index in its
// first 4 bytes. Given argv[5], it SIGKILLs itself right after handing record argv[5] to the sink,
// whatever the sink's writes have reached by then (a kill timed from outside landed after the end
// whenever the machine was busy); else it says "done" at the end.
import { Capacity } from '../../dist/daemon/sinks/capacity.js';
import { FileSink } from '../../dist/daemon/sinks/file-sink.js';

const [path, count, bytes] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const killAfter = process.argv[5] === undefined ? -1 : Number(process.argv[5]);
const sink = new FileSink({ path, capacity: new Capacity(), readonly: false, fsync: false });
await sink.load(1);
for (let i = 0; i < count; i++) {
  const record = Buffer.alloc(bytes, 0xbb);
  record.writeUInt32LE(i, 0);
  sink.write(record);
  if (i === killAfter) process.kill(process.pid, 'SIGKILL');
  if (i % 8 === 7) await sink.drain(1 << 20);
}
await sink.close();
process.stdout.write('done\n');
