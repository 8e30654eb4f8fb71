/**
 * The record channel (proto/record-channel.md) against a real pseudo drive served over gRPC in this
 * process: a session's requests go on the channel and land as they would on the stream; only a
 * live ticket, once, opens one; a malformed frame or the channel's end ends the session like a
 * lost stream, and the drive is free again.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { connect as connectTcp, createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { connect, DriveSession, SessionLost } from '../../client/drive-session.js';
import { connectRecordChannel } from '../../client/record-channel.js';
import { MtOp } from '../../daemon/drive/mtio.js';
import { Errno } from '../../daemon/drive/tape-error.js';
import { EventBus } from '../../daemon/events/events.js';
import { attachFrame } from '../../daemon/frontends/grpc/channel-frames.js';
import { readingDirectly } from '../../daemon/frontends/grpc/record-channel-server.js';
import { startGrpcServer } from '../../daemon/frontends/grpc/server.js';
import { encodeHeader } from '../../daemon/frontends/shim/frames.js';
import { memoryDrive, record, tag } from '../support/memory-drive.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function served() {
  const { drive, mirror, sinks } = await memoryDrive([{}], { maxRecord: 4 * 2 ** 20 });
  const { server, address, watch, channels } = await startGrpcServer(new Map([['pnst0', { drive, mirror }]]), '127.0.0.1:0', 2 ** 22, pino({ level: 'silent' }), new EventBus(), {
    credentials: grpc.ServerCredentials.createInsecure(),
    interceptors: [],
  });
  const client = connect(address);
  stops.push(async () => {
    client.close();
    watch.close();
    await channels?.close();
    server.forceShutdown();
  });
  const open = () => DriveSession.open(client, 'pnst0', { access: 'read-write', recordChannel: true });
  return { drive, copy: sinks[0]!, open, port: channels!.port };
}

/** A session with its requests on the channel, and the channel's socket. */
async function onChannel(open: () => Promise<DriveSession>): Promise<{ session: DriveSession; socket: Socket }> {
  const session = await open();
  expect(session.channelOffer?.ticket).toHaveLength(32);
  const socket = await connectRecordChannel('127.0.0.1', session.channelOffer!.port, session.channelOffer!, undefined, 5000);
  session.useChannel(socket);
  return { session, socket };
}

/** Resolves once the daemon closed `socket` (true), or after `ms` with it still open (false). */
function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return Promise.race([new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))), sleep(ms).then(() => false)]);
}

it('records, filemarks and status go on the channel, pipelined, and land in order; replies come on the stream', async () => {
  const { open, copy, port } = await served();
  const { session } = await onChannel(open);
  expect(session.onChannel).toBe(true);
  expect(session.channelOffer!.port).toBe(port);
  const writes = [1, 2, 3].map((n) => session.write(record(70_000, n), true, true));
  const mark = session.mt(MtOp.MTWEOFI, 1);
  const big = session.write(record(1_500_000, 4), true, true); // beyond the pool's largest buffer
  const empty = session.write(Buffer.alloc(0), true, true);
  expect(await Promise.all(writes)).toEqual([70_000, 70_000, 70_000]);
  await mark;
  expect(await big).toBe(1_500_000);
  expect(await empty).toBe(0);
  expect(await session.position()).toBe(5);
  await session.close();
  expect(copy.contents(1).map(tag)).toEqual([1, 2, 3, 'FM', 4, 'FM']);
  expect(copy.contents(1)[4]!.equals(record(1_500_000, 4))).toBe(true); // not toEqual: seconds on megabytes
});

it('a ticket that was never offered, one used already, or none at all opens nothing: the daemon closes the connection', async () => {
  const { open, port } = await served();
  const forged = connectTcp(port, '127.0.0.1');
  for (const bytes of attachFrame(randomBytes(32))) forged.write(bytes);
  expect(await closedWithin(forged, 5000)).toBe(true);
  // A record before any ticket: closed once its header and 32 bytes are in, nothing allocated for it.
  const eager = connectTcp(port, '127.0.0.1');
  eager.write(Buffer.concat([encodeHeader({ type: 2, flags: 0, id: 1, arg: 0 }, 64 * 2 ** 20), Buffer.alloc(32)]));
  expect(await closedWithin(eager, 5000)).toBe(true);

  const { session } = await onChannel(open);
  const again = connectTcp(port, '127.0.0.1');
  for (const bytes of attachFrame(session.channelOffer!.ticket)) again.write(bytes);
  expect(await closedWithin(again, 5000)).toBe(true);
  // The session that used it is unharmed.
  expect(await session.write(record(1000, 1), false, true)).toBe(1000);
  await session.close();
});

it('a ticket that arrives in pieces still opens the channel, and the records after it land whole', async () => {
  const { open, copy } = await served();
  const session = await open();
  const socket = connectTcp(session.channelOffer!.port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.setNoDelay(true);
  session.useChannel(socket); // before the ticket: a channel the daemon closes fails the session
  const hello = Buffer.concat(attachFrame(session.channelOffer!.ticket));
  for (const cut of [[0, 5], [5, 20], [20, hello.length]]) {
    socket.write(hello.subarray(cut[0], cut[1]));
    await sleep(20); // each piece its own read on the daemon's side
  }
  expect(await Promise.all([1, 2].map((n) => session.write(record(300_000, n), true, true)))).toEqual([300_000, 300_000]);
  await session.close();
  expect(copy.contents(1).map(tag)).toEqual([1, 2, 'FM']);
  expect(copy.contents(1)[1]!.equals(record(300_000, 2))).toBe(true);
});

it('this Node lets the record port move an accepted connection to a socket that reads into the buffers it gives', async () => {
  const server = createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stops.push(() => void server.close());
  const target = Buffer.alloc(64); // never full: a read into no room fails (ENOBUFS)
  let filled = 0;
  const moved = new Promise<Socket | undefined>((resolve) => {
    server.once('connection', (accepted: Socket) => {
      const socket = readingDirectly(accepted, {
        buffer: () => target.subarray(filled),
        callback: (n) => {
          filled += n;
          return true;
        },
      });
      socket?.on('data', () => expect.fail('no data events: reads go to the given buffer'));
      stops.push(() => void (socket ?? accepted).destroy());
      resolve(socket);
    });
  });
  const client = connectTcp((server.address() as { port: number }).port, '127.0.0.1');
  stops.push(() => void client.destroy());
  const socket = await moved;
  expect(socket).toBeDefined(); // else the record port reads from 'data' events: a copy per read
  client.write('tape');
  await sleep(20);
  client.write('!!');
  while (filled < 6) await sleep(5);
  expect(target.subarray(0, filled).toString()).toBe('tape!!');
});

it('a frame the channel cannot carry ends the session: the client learns it, and the drive is free again', async () => {
  const { open, drive } = await served();
  const { session, socket } = await onChannel(open);
  await session.write(record(1000, 1), false, true);
  socket.write(encodeHeader({ type: 7, flags: 0, id: 9, arg: 0 }, 0));
  expect(await closedWithin(socket, 5000)).toBe(true);
  await expect(session.write(record(1000, 2))).rejects.toBeInstanceOf(SessionLost);
  while (drive.state().inUse) await sleep(5);
  const next = await open(); // not EBUSY
  await next.close();
});

it('the channel cut mid-stream: the session ends as a lost link ends it (st closes the drive, a filemark after the writes)', async () => {
  const { open, copy, drive } = await served();
  const { session, socket } = await onChannel(open);
  for (let n = 1; n <= 3; n++) await session.write(record(1000, n), false, true);
  socket.destroy();
  await expect(session.position()).rejects.toBeInstanceOf(SessionLost);
  while (drive.state().inUse) await sleep(5);
  expect(copy.contents(1).map(tag)).toEqual([1, 2, 3, 'FM']);
  const next = await open();
  await expect(next.write(record(10, 1), false, false)).resolves.toBe(10);
  await next.close();
});

it('a daemon without a record port offers none, and the session goes on the stream', async () => {
  const { drive, mirror } = await memoryDrive();
  const { server, address, watch, channels } = await startGrpcServer(new Map([['pnst0', { drive, mirror }]]), '127.0.0.1:0', 2 ** 22, pino({ level: 'silent' }), new EventBus(), {
    credentials: grpc.ServerCredentials.createInsecure(),
    interceptors: [],
  }, 'off');
  const client = connect(address);
  stops.push(() => {
    client.close();
    watch.close();
    server.forceShutdown();
  });
  expect(channels).toBeUndefined();
  const session = await DriveSession.open(client, 'pnst0', { access: 'read-write', recordChannel: true });
  expect(session.channelOffer).toBeUndefined();
  expect(await session.write(record(100, 1))).toBe(100);
  await session.close();
});

it('a write refused by the drive comes back with its errno, on the stream, as without the channel', async () => {
  const { open } = await served();
  const { session } = await onChannel(open);
  await expect(session.write(Buffer.alloc(5 * 2 ** 20))).rejects.toMatchObject({ errno: Errno.EINVAL });
  await session.close();
});
