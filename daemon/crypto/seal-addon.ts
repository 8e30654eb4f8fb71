import { join } from 'node:path';
import { loadAddon } from '../native-addon.js';
import { packageRoot } from '../package-root.js';

/** Ciphertext then 16-byte tag of `plain` into `out` at `at`, AES-256-GCM. */
export type Seal = (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array, out: Uint8Array, at: number) => void;

/** Where the build puts the addon (daemon/crypto/native, `npm run build`). */
export const SEAL_ADDON_PATH = join(packageRoot(), 'daemon', 'crypto', 'native', 'build', 'record-seal.node');

/**
 * The AES-256-GCM addon (daemon/crypto/native/record-seal.c), which seals into the caller's buffer:
 * the encryption thread's CPU time at 256 KiB records went from 0.88-0.96 s/GiB to 0.45-0.53 in the
 * bench. Where it is not built (no C compiler), Node's cipher seals the same bytes, slower.
 */
export const sealAddon: Seal | undefined = loadAddon<{ seal: Seal }>(SEAL_ADDON_PATH, "Node's cipher seals instead")?.seal;
