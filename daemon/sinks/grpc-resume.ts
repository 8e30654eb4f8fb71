import type { DriveSession } from '../../client/drive-session.js';
import { MtOp } from '../drive/mtio.js';
import { Errno, TapeError } from '../drive/tape-error.js';

/** An object the copy sent and the remote has not confirmed: a record's data, or a filemark (null). */
export type SentObject = Buffer | null;

/** The remote is not where the copy can go on from without losing or repeating a record. */
export class ResumeRefused extends Error {}

/**
 * After a link failure, on a new session: how many objects of the volume the remote really has of
 * what the copy sent, checked object by object, with the remote positioned after them. `confirmed`
 * objects were acknowledged before the link failed; `unconfirmed` were sent after them (or queued)
 * without a reply, so each may have landed or not, in order.
 *
 * When the old session ended, the remote drive closed as st closes a file descriptor: after a
 * write it wrote a filemark. So a filemark at the end where the copy had sent a record (or nothing)
 * is that filemark, not ours; the next write overwrites it. Anything else that does not match what
 * was sent (fewer objects than confirmed, more than sent, different data: another writer, a
 * restarted daemon, a reloaded volume) refuses the resume.
 */
export async function confirmRemotePosition(
  session: DriveSession,
  confirmed: number,
  unconfirmed: readonly SentObject[],
): Promise<{ landed: number; remoteAt: number }> {
  const at = await session.position();
  if (at < confirmed || at > confirmed + unconfirmed.length + 1) {
    throw new ResumeRefused(
      `the remote drive is at object ${at}, but ${confirmed} objects were confirmed and ${unconfirmed.length} more sent (restarted, or written by someone else?)`,
    );
  }
  const ours = (object: number): SentObject | undefined => (object >= confirmed ? unconfirmed[object - confirmed] : undefined);
  let landed = at;
  if (at > confirmed) {
    const last = await readObject(session, at - 1, ours(at - 1));
    if (last === null && ours(at - 1) !== null) landed = at - 1; // the filemark of the close
    else expectSame(last, ours(at - 1), at - 1);
  }
  if (landed < at && landed > confirmed) expectSame(await readObject(session, landed - 1, ours(landed - 1)), ours(landed - 1), landed - 1);
  await session.mt(MtOp.MTSEEK, landed);
  return { landed, remoteAt: at };
}

/** The object, read with room for one byte more than what was sent there: a longer record is not ours (ENOMEM). */
async function readObject(session: DriveSession, object: number, sent: SentObject | undefined): Promise<SentObject> {
  await session.mt(MtOp.MTSEEK, object);
  try {
    const data = await session.read((sent?.length ?? 0) + 1);
    return data.length === 0 ? null : data;
  } catch (err) {
    if (err instanceof TapeError && err.errno === Errno.ENOMEM) throw notSent(object);
    if (err instanceof TapeError) throw new ResumeRefused(`reading back object ${object} failed: ${err.message}`);
    throw err;
  }
}

function expectSame(remote: SentObject, sent: SentObject | undefined, object: number): void {
  const same = remote === null ? sent === null : sent != null && remote.equals(sent);
  if (!same) throw notSent(object);
}

function notSent(object: number): ResumeRefused {
  return new ResumeRefused(`object ${object} on the remote drive is not the one this copy sent`);
}
