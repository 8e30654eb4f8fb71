import { setFlagsFromString } from 'node:v8';

/** V8's largest growing factor (4), which it otherwise keeps for programs that allocate fast. */
const GROWING_PERCENT = 300;

/**
 * Lets V8's old generation grow to four times what survives a full collection before the next one.
 *
 * V8 starts marking for a full collection as soon as the room left under the old generation's
 * limit is smaller than the young generation can hold. The daemon keeps about 18 MB alive, and the
 * limit V8 computed for it after a collection was often 41 MB: 23 MB of room, less than the young
 * generation, so it marked again at once, over and over. A drive with a grpc copy then ran 20 to 40
 * full collections per GiB in one daemon or the other, and whether it did changed from run to run
 * (E in the bench: 0.30 GiB/s at 256 KiB records, 0.16 in its worst runs). With this, one or two
 * per GiB, and 0.32 to 0.39 GiB/s (/tmp rig: 1 GiB runs, --trace-gc). A factor of 2.5 was not enough.
 *
 * The cost is memory: the daemon's heap may grow to four times its live size, about 72 MB, before
 * a collection; the record buffers, which are most of its memory, are not on that heap. The flag
 * is read each time V8 computes the limit, so setting it at start takes effect at the first
 * collection. A --heap-growing-percent given to node itself wins.
 */
export function growHeapFreely(): void {
  if (process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent') || arg.startsWith('--heap_growing_percent'))) return;
  setFlagsFromString(`--heap-growing-percent=${GROWING_PERCENT}`);
}
