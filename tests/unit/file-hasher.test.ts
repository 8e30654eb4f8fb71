/**
 * FileHasher against each hash's own library, over records of every kind it treats apart: small
 * ones it copies together before hashing, large ones it hashes where they are, both mixed within a
 * group and across a group's end, read from shared memory as the hashing worker reads them, with a
 * digest taken midway and the hashing going on after it.
 */
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HASH_NAMES, type HashName } from '../../daemon/manifest/file-hash.js';
import { FileHasher, GROUP_RECORDS } from '../../daemon/manifest/manifest.js';

const reference: Record<HashName, () => { update(data: Uint8Array): unknown; digest(): Buffer }> = {
  blake3: () => {
    const h = new Blake3Hasher();
    return { update: (d) => h.update(Buffer.from(d)), digest: () => h.digestBuffer() };
  },
  sha256: () => createHash('sha256'),
};
const prefix: Record<HashName, string> = { blake3: 'tapeproxy-manifest-2\n', sha256: 'tapeproxy-manifest-1\n' };

/** The manifest's definition, straight: each group of records hashed as length (u32 BE) then bytes. */
function expected(hash: HashName, records: Uint8Array[]): { digest: string; groups: string[] } {
  const groups: Buffer[] = [];
  for (let at = 0; at < records.length; at += GROUP_RECORDS) {
    const h = reference[hash]();
    for (const r of records.slice(at, at + GROUP_RECORDS)) {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(r.length);
      h.update(length);
      h.update(r);
    }
    groups.push(h.digest());
  }
  const file = reference[hash]();
  file.update(Buffer.from(prefix[hash]));
  const count = Buffer.alloc(8);
  count.writeBigUInt64BE(BigInt(records.length));
  file.update(count);
  for (const g of groups) file.update(g);
  return { digest: file.digest().toString('hex'), groups: groups.map((g) => g.toString('hex')) };
}

/** Records of 1 byte to 200 KB, among them exactly 64 KiB, in shared memory, filled with varied bytes. */
function records(): Uint8Array[] {
  const sizes = Array.from({ length: GROUP_RECORDS + 300 }, (_, i) => (i % 97 === 5 ? 200_000 : i % 61 === 3 ? 65_536 : i % 29 === 1 ? 65_537 : ((i * 7919) % 12_000) + 1));
  const memory = new Uint8Array(new SharedArrayBuffer(sizes.reduce((a, b) => a + b, 0)));
  for (let i = 0; i < memory.length; i++) memory[i] = (i * 131 + (i >> 13)) & 255;
  let at = 0;
  return sizes.map((s) => memory.subarray(at, (at += s)));
}

describe('FileHasher', () => {
  it.each(HASH_NAMES)('matches the definition over small and large records, across groups, with a digest taken midway (%s)', (hash) => {
    const all = records();
    const h = new FileHasher(hash);
    const midway = 700;
    for (const r of all.slice(0, midway)) h.add(r);
    expect(h.snapshot()).toEqual({ hash, ...expected(hash, all.slice(0, midway)) });
    for (const r of all.slice(midway)) h.add(r);
    expect(h.count).toBe(all.length);
    expect(h.snapshot()).toEqual({ hash, ...expected(hash, all) });
  });
});
