/**
 * The longest stretch of `needle` found anywhere in `haystack`, if longer than `limit` bytes (for
 * "the encrypted image holds no plaintext"). Indexes the haystack's 6-byte windows at every
 * (limit-5)th offset: any shared run longer than `limit` covers one of them, so each needle offset
 * costs one lookup, and candidates are extended byte by byte.
 */
export function sharedRunLongerThan(needle: Buffer, haystack: Buffer, limit: number): { needleAt: number; haystackAt: number; length: number } | undefined {
  const K = 6;
  const stride = limit + 1 - K;
  if (stride < 1) throw new Error('limit must be at least 6 bytes');
  const index = new Map<number, number[]>();
  for (let o = 0; o + K <= haystack.length; o += stride) {
    const key = haystack.readUIntLE(o, K);
    const at = index.get(key);
    if (at) at.push(o);
    else index.set(key, [o]);
  }
  let best: { needleAt: number; haystackAt: number; length: number } | undefined;
  for (let i = 0; i + K <= needle.length; i++) {
    const offsets = index.get(needle.readUIntLE(i, K));
    if (!offsets) continue;
    for (const o of offsets) {
      let start = 0;
      while (i - start > 0 && o - start > 0 && needle[i - start - 1] === haystack[o - start - 1]) start++;
      let end = K;
      while (i + end < needle.length && o + end < haystack.length && needle[i + end] === haystack[o + end]) end++;
      const length = start + end;
      if (length > limit && (!best || length > best.length)) best = { needleAt: i - start, haystackAt: o - start, length };
    }
  }
  return best;
}
