/**
 * The position check a grpc sink makes before it resumes after a link failure, against a real
 * pseudo drive served over gRPC in this process: the old session ends as a lost link ends it (the
 * drive closes, writing st's filemark after writes), and a new session must find out which of the
 * unconfirmed objects landed, or refuse.
 */
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { connect, DriveSession } from '../../client/drive-session.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import { EventBus } from '../../daemon/events/events.js';
import { startGrpcServer } from '../../daemon/frontends/grpc/server.js';
import { confirmRemotePosition, ResumeRefused, type SentObject } from '../../daemon/sinks/grpc-resume.js';
import { memoryDrive, record, tag } from '../support/memory-drive.js';

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

async function servedDrive() {
  const { drive, mirror, sinks } = await memoryDrive();
  const { server, address, watch } = await startGrpcServer(
    new Map([['pnst0', { drive, mirror }]]),
    '127.0.0.1:0',
    2 ** 22,
    pino({ level: 'silent' }),
    new EventBus(),
    { credentials: grpc.ServerCredentials.createInsecure(), interceptors: [] },
    'off',
  );
  const client = connect(address);
  stops.push(() => {
    client.close();
    watch.close();
    server.forceShutdown();
  });
  const open = (nonBlocking = false) => DriveSession.open(client, 'pnst0', { access: 'read-write', nonBlocking });
  return { open, copy: sinks[0]! };
}

/** Writes records 1..n (and filemarks where `null`) as a grpc sink does, then ends the session. */
async function writeThenLoseLink(open: () => Promise<DriveSession>, objects: (number | null)[]): Promise<void> {
  const session = await open();
  for (const o of objects) {
    if (o === null) await session.mt(MtOp.MTWEOFI, 1);
    else await session.write(record(100, o), true, true);
  }
  await session.close(); // as the remote's session end does: st's close
}

const sent = (...objects: (number | null)[]): SentObject[] => objects.map((o) => (o === null ? null : record(100, o)));

it("all unconfirmed records landed: the closing filemark after them is overwritten, not kept", async () => {
  const { open, copy } = await servedDrive();
  await writeThenLoseLink(open, [1, 2, 3, 4, 5]);
  const session = await open(true);
  // 3 confirmed; 4 and 5 sent without a reply; 6 queued, never sent.
  expect(await confirmRemotePosition(session, 3, sent(4, 5, 6))).toEqual({ landed: 5, remoteAt: 6 });
  await session.write(record(100, 6), true, true);
  await session.close();
  expect(copy.contents(1).map(tag)).toEqual([1, 2, 3, 4, 5, 6, 'FM']);
});

it('some landed: the copy goes on after the last one that did', async () => {
  const { open, copy } = await servedDrive();
  await writeThenLoseLink(open, [1, 2, 3]);
  const session = await open(true);
  expect(await confirmRemotePosition(session, 2, sent(3, 4, 5))).toEqual({ landed: 3, remoteAt: 4 });
  for (const n of [4, 5]) await session.write(record(100, n), true, true);
  await session.close();
  expect(copy.contents(1).map(tag)).toEqual([1, 2, 3, 4, 5, 'FM']);
});

it('a filemark the copy sent is the one there (no closing filemark follows a filemark)', async () => {
  const { open } = await servedDrive();
  await writeThenLoseLink(open, [1, 2, null]);
  const session = await open(true);
  expect(await confirmRemotePosition(session, 1, sent(2, null, 3))).toEqual({ landed: 3, remoteAt: 3 });
  await session.close();
});

it('nothing of the unconfirmed landed: back to the confirmed position', async () => {
  const { open } = await servedDrive();
  await writeThenLoseLink(open, [1, 2]);
  const session = await open(true);
  expect(await confirmRemotePosition(session, 2, sent(3, 4))).toEqual({ landed: 2, remoteAt: 3 });
  await session.close();
});

it('refuses a remote that is behind what it confirmed (a restarted daemon at the beginning of the tape)', async () => {
  const { open } = await servedDrive();
  const session = await open(true);
  await expect(confirmRemotePosition(session, 3, sent(4))).rejects.toThrow(
    new ResumeRefused('the remote drive is at object 0, but 3 objects were confirmed and 1 more sent (restarted, or written by someone else?)'),
  );
  await session.close();
});

it('refuses a remote whose last record is not the one the copy sent', async () => {
  const { open } = await servedDrive();
  await writeThenLoseLink(open, [1, 2, 3]);
  const session = await open(true);
  await expect(confirmRemotePosition(session, 2, sent(9))).rejects.toThrow(new ResumeRefused('object 2 on the remote drive is not the one this copy sent'));
  await session.close();
});

it('refuses a remote that holds more than the copy sent', async () => {
  const { open } = await servedDrive();
  await writeThenLoseLink(open, [1, 2, 3]);
  const session = await open(true);
  await expect(confirmRemotePosition(session, 1, sent(2))).rejects.toThrow(
    new ResumeRefused('the remote drive is at object 4, but 1 objects were confirmed and 1 more sent (restarted, or written by someone else?)'),
  );
  await session.close();
});
