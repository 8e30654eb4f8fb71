/**
 * The encryption workers' AES-256-GCM addon (daemon/crypto/native/record-seal.c): built by the
 * build, it seals exactly the bytes Node's cipher does, into the caller's buffer at an offset, shared
 * memory included; a key change is a new key, never the previous one; a buffer without room, or a
 * key or nonce of the wrong size, is an error before any byte is written. What sealRecord writes,
 * openRecord opens.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openRecord, RECORD_OVERHEAD, recordAad, sealRecord, sealWithNodeCipher } from '../../daemon/crypto/record-cipher.js';
import { SEAL_ADDON_PATH, sealAddon } from '../../daemon/crypto/seal-addon.js';

const seal = sealAddon!;

describe('the AES-256-GCM addon', () => {
  it('is built and loads', () => {
    expect(existsSync(SEAL_ADDON_PATH)).toBe(true);
    expect(sealAddon).toBeTypeOf('function');
  });

  it("seals the bytes Node's cipher does, at an offset of a shared buffer, whatever the lengths", () => {
    for (const [length, aadLength] of [[0, 28], [1, 28], [16_383, 28], [262_144, 28], [2 ** 20 + 3, 0], [100_003, 5]] as const) {
      const key = randomBytes(32);
      const nonce = randomBytes(12);
      const aad = randomBytes(aadLength);
      const plain = randomBytes(length);
      const out = Buffer.from(new SharedArrayBuffer(length + 64)).fill(0xaa);
      const expected = Buffer.alloc(length + 64).fill(0xaa);
      seal(key, nonce, aad, plain, out, 7);
      sealWithNodeCipher(key, nonce, aad, plain, expected, 7);
      expect(out.equals(expected), `${length} bytes, ${aadLength} of associated data`).toBe(true);
    }
  });

  it('takes each call’s key: a new key after another, and the first again', () => {
    const keys = [randomBytes(32), randomBytes(32)];
    const nonce = randomBytes(12);
    const plain = randomBytes(1000);
    for (const key of [keys[0]!, keys[1]!, keys[0]!]) {
      const out = Buffer.alloc(1016);
      const expected = Buffer.alloc(1016);
      seal(key, nonce, Buffer.alloc(0), plain, out, 0);
      sealWithNodeCipher(key, nonce, Buffer.alloc(0), plain, expected, 0);
      expect(out.equals(expected)).toBe(true);
    }
  });

  it('refuses a buffer without room and keys or nonces of the wrong size, writing nothing', () => {
    const out = Buffer.alloc(115).fill(1);
    expect(() => seal(randomBytes(32), randomBytes(12), Buffer.alloc(0), randomBytes(100), out, 0)).toThrow('out has no room');
    expect(() => seal(randomBytes(32), randomBytes(12), Buffer.alloc(0), randomBytes(100), out, -1)).toThrow('out has no room');
    expect(() => seal(randomBytes(31), randomBytes(12), Buffer.alloc(0), randomBytes(10), out, 0)).toThrow('the key must be 32 bytes');
    expect(() => seal(randomBytes(32), randomBytes(16), Buffer.alloc(0), randomBytes(10), out, 0)).toThrow('the nonce 12');
    expect(() => (seal as (...args: unknown[]) => void)('key', randomBytes(12), Buffer.alloc(0), randomBytes(10), out, 0)).toThrow('must be Uint8Arrays');
    expect(out.every((b) => b === 1)).toBe(true);
  });

  it('what sealRecord writes, openRecord opens, and a changed byte fails', () => {
    const key = randomBytes(32);
    const aad = recordAad(randomBytes(8), { volume: 1, file: 2, record: 3 });
    const plain = randomBytes(262_144);
    const out = Buffer.from(new SharedArrayBuffer(plain.length + RECORD_OVERHEAD + 10));
    sealRecord(key, aad, plain, out, 10);
    const sealed = out.subarray(10);
    expect(openRecord(key, aad, sealed).equals(plain)).toBe(true);
    sealed[5000]! ^= 1;
    expect(() => openRecord(key, aad, sealed)).toThrow();
  });
});
