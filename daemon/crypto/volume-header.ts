import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { type Kdf, KEY_ID_BYTES, type MasterKey, SCRYPT_SALT_BYTES } from './keys.js';

/**
 * The record an encrypted volume starts with: self-describing, so an image decrypts with the key
 * (or passphrase) alone. Layout, version 1 (89 bytes, integers big-endian):
 *
 *   0  8  magic "TPXCRYPT"          29  8  key id (HKDF of the master key)
 *   8  1  format version (1)        37  4  volume number
 *   9  1  KDF: 1 raw key, 2 scrypt  41 32  volume salt (random): the volume's record key is
 *  10  3  scrypt log2 N, r, p              HKDF(master key, volume salt)
 *  13 16  scrypt salt (random        73 16  tag: HMAC-SHA256(header key, bytes 0-72), first 16 bytes
 *         bytes for a raw key)
 *
 * A fresh volume salt per volume means each volume has its own record key, so random 96-bit nonces
 * stay far inside GCM's limits however many volumes share the master key (see record-cipher.ts).
 */
const HEADER_MAGIC = Buffer.from('TPXCRYPT', 'latin1');
const HEADER_VERSION = 1;
export const HEADER_BYTES = 89;
const TAG_AT = 73;
const VOLUME_SALT_BYTES = 32;

export interface VolumeHeader {
  version: number;
  kdf: Kdf;
  keyId: Buffer;
  volume: number;
  volumeSalt: Buffer;
  /** The whole record, for checking its tag. */
  bytes: Buffer;
}

/** What encrypts and decrypts one volume's records. */
export interface VolumeKey {
  volume: number;
  keyId: Buffer;
  recordKey: Buffer;
}

export function isHeader(record: Buffer): boolean {
  return record.length >= HEADER_MAGIC.length && record.subarray(0, HEADER_MAGIC.length).equals(HEADER_MAGIC);
}

/** A new header for `volume`, and the key of its records. */
export function newHeader(master: MasterKey, kdf: Kdf, volume: number): { record: Buffer; key: VolumeKey } {
  const b = Buffer.alloc(HEADER_BYTES);
  HEADER_MAGIC.copy(b, 0);
  b[8] = HEADER_VERSION;
  if (kdf.kind === 'scrypt') {
    b.set([2, kdf.log2n, kdf.r, kdf.p], 9);
    kdf.salt.copy(b, 13);
  } else {
    b[9] = 1;
    randomBytes(SCRYPT_SALT_BYTES).copy(b, 13); // unused; random rather than a run of zeros
  }
  master.keyId.copy(b, 29);
  b.writeUInt32BE(volume, 37);
  const volumeSalt = randomBytes(VOLUME_SALT_BYTES);
  volumeSalt.copy(b, 41);
  headerTag(master, b).copy(b, TAG_AT);
  return { record: b, key: volumeKey(master, volume, volumeSalt) };
}

/** Parses a header record; throws a message for the user when it is not one this version reads. */
export function parseHeader(record: Buffer): VolumeHeader {
  if (!isHeader(record)) throw new Error('its first record is not an encryption header');
  const version = record[8]!;
  if (version !== HEADER_VERSION) throw new Error(`its encryption header has format version ${version}; this tapeproxy reads version ${HEADER_VERSION}`);
  if (record.length !== HEADER_BYTES) throw new Error(`its encryption header is ${record.length} bytes, not ${HEADER_BYTES}`);
  const kdfKind = record[9];
  let kdf: Kdf;
  if (kdfKind === 1) kdf = { kind: 'raw' };
  else if (kdfKind === 2) kdf = { kind: 'scrypt', log2n: record[10]!, r: record[11]!, p: record[12]!, salt: Buffer.from(record.subarray(13, 29)) };
  else throw new Error(`its encryption header names an unknown key derivation (${kdfKind})`);
  return {
    version,
    kdf,
    keyId: Buffer.from(record.subarray(29, 29 + KEY_ID_BYTES)),
    volume: record.readUInt32BE(37),
    volumeSalt: Buffer.from(record.subarray(41, 41 + VOLUME_SALT_BYTES)),
    bytes: Buffer.from(record),
  };
}

/**
 * The record key of the volume `header` describes, once its key id and tag check out with
 * `master`; throws a message for the user otherwise.
 */
export function openHeader(header: VolumeHeader, master: MasterKey): VolumeKey {
  if (!header.keyId.equals(master.keyId)) {
    throw new Error(`it was encrypted with key ${header.keyId.toString('hex')}, and this key is ${master.keyId.toString('hex')} (wrong key or passphrase?)`);
  }
  const tag = header.bytes.subarray(TAG_AT);
  if (!timingSafeEqual(tag, headerTag(master, header.bytes))) throw new Error('its encryption header fails authentication (it was changed)');
  return volumeKey(master, header.volume, header.volumeSalt);
}

function volumeKey(master: MasterKey, volume: number, volumeSalt: Buffer): VolumeKey {
  const recordKey = Buffer.from(hkdfSync('sha256', master.key, volumeSalt, 'tapeproxy records v1', 32));
  return { volume, keyId: master.keyId, recordKey };
}

function headerTag(master: MasterKey, header: Buffer): Buffer {
  const key = Buffer.from(hkdfSync('sha256', master.key, Buffer.alloc(0), 'tapeproxy header v1', 32));
  return createHmac('sha256', key).update(header.subarray(0, TAG_AT)).digest().subarray(0, 16);
}
