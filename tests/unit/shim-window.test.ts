import { expect, it } from 'vitest';
import { shimWindowBytes } from '../../daemon/daemon.js';

it('the shim may have in flight half the smallest early-warning zone, at most 32 MiB, at least 1 byte', () => {
  expect(shimWindowBytes(undefined)).toBe(32 * 2 ** 20);
  expect(shimWindowBytes(512 * 1024)).toBe(256 * 1024);
  expect(shimWindowBytes(20 * 2 ** 30)).toBe(32 * 2 ** 20);
  expect(shimWindowBytes(1)).toBe(1);
});
