import { expect, it } from 'vitest';
import { LARGEST_WINDOW_BYTES, writeBehindWindow } from '../../daemon/drive/write-behind-window.js';

it('a front end may have 32 records in flight, within half the smallest early-warning zone, at most 32 MiB, at least 1 byte', () => {
  expect(writeBehindWindow(undefined)).toEqual({ records: 32, bytes: 32 * 2 ** 20 });
  expect(writeBehindWindow(512 * 1024).bytes).toBe(256 * 1024);
  expect(writeBehindWindow(20 * 2 ** 30).bytes).toBe(32 * 2 ** 20);
  expect(writeBehindWindow(1).bytes).toBe(1);
});

it('one whose close(2) reports a failure (a FUSE file) may have 128 records in flight, at most 8 MiB, within the same zone', () => {
  expect(writeBehindWindow(undefined, true)).toEqual({ records: 128, bytes: 8 * 2 ** 20 });
  expect(writeBehindWindow(512 * 1024, true).bytes).toBe(256 * 1024);
  expect(writeBehindWindow(20 * 2 ** 30, true).bytes).toBe(8 * 2 ** 20);
  expect(LARGEST_WINDOW_BYTES).toBe(32 * 2 ** 20);
});
