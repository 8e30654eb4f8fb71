import { setFlagsFromString } from 'node:v8';

/** A factor of 3; 2.5 was not enough (below). */
const GROWING_PERCENT = 200;

/**
 * Lets V8's old generation grow to three times what survives a full collection before the next one.
 *
 * V8 starts marking for a full collection as soon as the room left under the old generation's
 * limit is smaller than the young generation can hold. The daemon keeps about 18 MB alive, and the
 * limit V8 computed for it after a collection was often 41 MB: 23 MB of room, less than the young
 * generation, so it marked again at once, over and over. A drive with a grpc copy then ran 20 to 40
 * full collections per GiB in one daemon or the other, and whether it did changed from run to run
 * (E in the bench, 256 KiB records: 0.30 GiB/s, 0.16 in its worst runs). With a factor of 3, 0 to 3
 * per GiB in either daemon, in 8 runs of 1 GiB (--trace-gc); 2.5 left them in that state, and 4
 * cost 18 MiB more peak RSS than 3 under a 2 GiB stream for no measurable gain.
 *
 * The cost is memory: the daemon's heap may grow to three times its live size before a collection
 * (RSS growth under a 2 GiB stream to a slow copy: 127 MiB without this, 144 with it); the record
 * buffers, which are most of its memory, are not on that heap. The flag is read each time V8
 * computes the limit, so setting it at start takes effect at the first collection. A
 * --heap-growing-percent given to node itself wins.
 */
export function growHeapFreely(): void {
  if (process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent') || arg.startsWith('--heap_growing_percent'))) return;
  setFlagsFromString(`--heap-growing-percent=${GROWING_PERCENT}`);
}
