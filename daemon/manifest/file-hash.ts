import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * The hashes a manifest's digests are taken with. BLAKE3 for what is written now: 0.45 CPU s/GiB
 * on these machines where SHA-256, even with the CPU's SHA extensions, takes 0.73 (3 without
 * them), and hashing runs beside the drive on the same cores. SHA-256 for files recorded by
 * manifest format 1, and for drives configured with it (`manifest-hash: sha256`, where a site
 * must use a FIPS-approved hash).
 */
export const HASH_NAMES = ['blake3', 'sha256'] as const;
export type HashName = (typeof HASH_NAMES)[number];

/** A hash fed piece by piece whose digest can be read at any point, and feeding go on. */
export interface RunningHash {
  update(data: Uint8Array): void;
  digest(): Buffer;
}

interface Blake3Hasher {
  update(data: Uint8Array): unknown;
  /** Does not finalize: BLAKE3's output can be read mid-stream. */
  digestBuffer(): Buffer;
}

type Blake3 = { Hasher: new () => Blake3Hasher } | { missing: string };
let loaded: Blake3 | undefined;

/**
 * @napi-rs/blake-hash (BLAKE3's Rust crate, with its SIMD), or why it is missing here; loaded at
 * first use, so that a command that hashes nothing does not load it.
 */
function blake3(): Blake3 {
  if (!loaded) {
    try {
      loaded = { Hasher: (createRequire(import.meta.url)('@napi-rs/blake-hash') as { Blake3Hasher: new () => Blake3Hasher }).Blake3Hasher };
    } catch (err) {
      loaded = { missing: (err as Error).message.split('\n')[0]! };
    }
  }
  return loaded;
}

/** Why BLAKE3 cannot be used on this machine (its package has no build for it), or undefined. */
export function blake3Missing(): string | undefined {
  const b = blake3();
  return 'missing' in b ? b.missing : undefined;
}

/** The hash a drive configured with `wanted` records new files with: SHA-256 where BLAKE3 is missing. */
export function usableHash(wanted: HashName): HashName {
  return wanted === 'blake3' && blake3Missing() ? 'sha256' : wanted;
}

export function newHash(name: HashName): RunningHash {
  if (name === 'blake3') {
    const b = blake3();
    if ('missing' in b) throw new Error(`BLAKE3 is not available here: ${b.missing}`);
    const h = new b.Hasher();
    return { update: (data) => void h.update(data), digest: () => h.digestBuffer() };
  }
  const h = createHash('sha256');
  return { update: (data) => void h.update(data), digest: () => h.copy().digest() };
}

/** How a hash is named to people. */
export const hashLabel = (name: HashName): string => (name === 'blake3' ? 'BLAKE3' : 'SHA-256');
