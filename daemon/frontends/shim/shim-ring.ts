import { join } from 'node:path';
import { loadAddon } from '../../native-addon.js';
import { packageRoot } from '../../package-root.js';
import { RecordRing, RING_ALIGN, RING_HEADER_BYTES } from '../../drive/record-ring.js';

/**
 * A drive's ring. Records stay in it from the shim's copy until the last sink wrote them and the
 * hashing read them; when it is full, records cross the socket as before. In the bench (Cdd, 256
 * KiB records) 32 MiB took 2.03-2.21 CPU s/GiB against 2.45-2.66 with 64 MiB and 2.38-2.65 without a
 * ring: a smaller ring is reused while its bytes are still in the CPU's caches.
 */
export const RING_BYTES = 32 * 2 ** 20;

/** Where the build puts the addon that makes the ring's memory (native/shared-ring.cc). */
export const RING_ADDON_PATH = join(packageRoot(), 'daemon', 'frontends', 'shim', 'native', 'build', 'shared-ring.node');

type CreateShared = (bytes: number) => { fd: number; memory: SharedArrayBuffer };

/** Loaded at the first ring (null: not there). */
let addon: { create: CreateShared } | null | undefined;

/**
 * A new ring of `bytes` (rounded up to whole pages) for a shim, in memory the shim can map, and its
 * descriptor, which the shim opens as /proc/PID/fd/N and the caller closes once the shim has
 * exited; undefined where the addon is not built.
 */
export function createRecordRing(bytes: number): { ring: RecordRing; fd: number } | undefined {
  addon ??= loadAddon<{ create: CreateShared }>(RING_ADDON_PATH, 'shim records go on the socket') ?? null;
  if (!addon) return undefined;
  const { fd, memory } = addon.create(RING_HEADER_BYTES + Math.ceil(bytes / RING_ALIGN) * RING_ALIGN);
  return { ring: new RecordRing(memory), fd };
}
