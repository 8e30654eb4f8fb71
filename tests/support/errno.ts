import { expect } from 'vitest';
import { Errno, type ErrnoName, TapeError } from '../../daemon/drive/tape-error.js';

/** Asserts that `promise` fails with the Linux errno `name`, as the st driver would. */
export async function expectErrno(promise: Promise<unknown>, name: ErrnoName): Promise<TapeError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${name}`).toBeInstanceOf(TapeError);
  expect((err as TapeError).errno, (err as TapeError).message).toBe(Errno[name]);
  return err as TapeError;
}
