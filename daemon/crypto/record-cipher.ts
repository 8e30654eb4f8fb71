import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { sealAddon } from './seal-addon.js';

/**
 * One tape record, encrypted: AES-256-GCM under the volume's record key, as
 *
 *   nonce (12 bytes, random) | ciphertext (as long as the record) | tag (16 bytes)
 *
 * with the record's place bound as associated data: "TPXR", the key id, the volume number, the tape
 * file number and the record's number within that file (big-endian u32, u32, u64). A record that is
 * changed, swapped with another, moved to another file or copied into another volume fails its tag.
 *
 * Nonces are random: a volume's records share a key of their own (volume-header.ts), and even a
 * 20 TB volume of 10 KiB records (2^31 records) keeps the chance of a repeated 96-bit nonce below
 * 2^-35, inside NIST SP 800-38D's 2^-32. A counter would repeat when a volume is overwritten from
 * the middle, which tapes are.
 */
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** How much longer an encrypted record is than the record. */
export const RECORD_OVERHEAD = NONCE_BYTES + TAG_BYTES;
const AAD_BYTES = 28;
const AAD_MAGIC = 0x54505852; // "TPXR"

/** Where a record is on the tape: its associated data. */
export interface RecordPlace {
  volume: number;
  file: number;
  record: number;
}

/** The associated data of a record at `place`, written into `aad` (28 bytes, reusable). */
export function recordAad(keyId: Uint8Array, place: RecordPlace, aad: Buffer = Buffer.allocUnsafe(AAD_BYTES)): Buffer {
  aad.writeUInt32BE(AAD_MAGIC, 0);
  aad.set(keyId, 4);
  aad.writeUInt32BE(place.volume, 12);
  aad.writeUInt32BE(place.file, 16);
  aad.writeUInt32BE(Math.floor(place.record / 2 ** 32), 20);
  aad.writeUInt32BE(place.record % 2 ** 32, 24);
  return aad;
}

/**
 * Node's cipher returns a new buffer per update. One of a whole 256 KiB record is memory the
 * allocator maps and zeroes afresh each time, which made sealing cost 2.2 s/GiB here; slices of
 * 16 KiB come from reused heap memory and stay in cache: 0.8 s/GiB, the same ciphertext.
 */
const SEAL_SLICE = 16 * 1024;

/** Encrypts `plain` into `out` at `at` (RECORD_OVERHEAD + plain.length bytes). */
export function sealRecord(key: Uint8Array, aad: Buffer, plain: Uint8Array, out: Buffer, at: number): void {
  const nonce = out.subarray(at, at + NONCE_BYTES);
  randomFillSync(nonce);
  (sealAddon ?? sealWithNodeCipher)(key, nonce, aad, plain, out, at + NONCE_BYTES);
}

/** Ciphertext then tag of `plain` into `out` at `at`: what the addon does, with Node's cipher. */
export function sealWithNodeCipher(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array, out: Buffer, at: number): void {
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  let end = at;
  for (let from = 0; from < plain.length; from += SEAL_SLICE) {
    end += cipher.update(plain.subarray(from, from + SEAL_SLICE)).copy(out, end);
  }
  end += cipher.final().copy(out, end);
  cipher.getAuthTag().copy(out, end);
}

/** The record `sealed` holds; throws if it fails authentication (never returns unchecked data). */
export function openRecord(key: Uint8Array, aad: Buffer, sealed: Buffer): Buffer {
  if (sealed.length <= RECORD_OVERHEAD) throw new Error(`an encrypted record of ${sealed.length} bytes is too short`);
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plain = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  decipher.final(); // throws "Unsupported state or unable to authenticate data"
  return plain;
}
