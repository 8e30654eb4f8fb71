/**
 * Fuzzing the gRPC front end (daemon/frontends/grpc/): Session streams of valid and invalid
 * requests (operations before open, unknown drives, enum values and mt ops, negative and huge
 * counts, records over the limit, pipelined or not, the stream ended or cancelled midway), raw
 * bytes that are not a DriveRequest, the same sessions on the record channel with noise after them,
 * and the admin RPCs with any arguments, against the real
 * server in this process over a pseudo drive in memory.
 *
 * Invariants: one reply per request, in order, with its id and exactly one result, the one the
 * operation gives, or an errno-style error (a Linux errno, its name, a message); ECANCELED only for
 * pipelined requests; a stream that is not protobuf harms nothing; Watch snapshots come at most every
 * 100 ms whatever the interval asked; nothing fails other
 * than with a TapeError (the server logs no unexpected failure); and afterwards the drive is closed
 * and a new session writes and reads it back.
 */
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DriveSession } from '../../client/drive-session.js';
import { connectRecordChannel } from '../../client/record-channel.js';
import { requestFrame } from '../../daemon/frontends/grpc/channel-frames.js';
import { Errno, errnoName } from '../../daemon/drive/tape-error.js';
import type { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { EventBus } from '../../daemon/events/events.js';
import { startGrpcServer } from '../../daemon/frontends/grpc/server.js';
import { type Access, type DriveReply, DriveRequest, type MtOpCode, TapeProxyClient } from '../../generated/tapeproxy.js';
import { memoryDrive } from '../support/memory-drive.js';
import { corpus, edgeInt, expectDriveWorks, fuzz, FUZZ_TIMEOUT, mtOperation, recordingLog, within } from './fuzz.js';

const MAX_RECORD = 4096;
const DRIVE = 'pnst0'; // memoryDrive's name

/**
 * A channel of its own for each server: grpc-js shares connections between channels to one address,
 * and a new server may get the port of one just shut down (an UNAVAILABLE now and then).
 */
const CHANNEL = { 'grpc.use_local_subchannel_pool': 1 };

/** A fresh drive and server for one input, so every input meets the same daemon. */
async function withDaemon(work: (d: { client: TapeProxyClient; address: string; drive: PseudoDrive }) => Promise<void>): Promise<void> {
  const { drive, mirror } = await memoryDrive([{}], { maxRecord: MAX_RECORD });
  const { log, errors } = recordingLog();
  const { server, address, watch, channels } = await startGrpcServer(
    new Map([[DRIVE, { drive, mirror }]]),
    '127.0.0.1:0',
    MAX_RECORD + 1024,
    log,
    new EventBus(),
    { credentials: grpc.ServerCredentials.createInsecure(), interceptors: [] },
    0,
  );
  const client = new TapeProxyClient(address, grpc.credentials.createInsecure(), CHANNEL);
  try {
    await work({ client, address, drive });
    // The session's end closed the drive (as a process exit closes its descriptor): it works.
    await within(5000, 'the drive being closed after the session', (async () => {
      while (drive.state().inUse) await new Promise((r) => setTimeout(r, 2));
    })());
    await expectDriveWorks(drive);
    expect(errors(), errors().join('\n')).toEqual([]);
  } finally {
    client.close();
    watch.close();
    await channels?.close();
    server.forceShutdown();
  }
}

const u32 = fc.oneof(fc.constantFrom(0, 1, MAX_RECORD - 1, MAX_RECORD, MAX_RECORD + 1, 2 ** 31, 2 ** 32 - 1), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
// Enum fields take any int32 on the wire; the generated types name only the known values.
const anyEnum = <E>() => fc.oneof(fc.constantFrom(0, 1, 2), edgeInt.filter((n) => n >= -(2 ** 31) && n < 2 ** 31)).map((n) => n as unknown as E);
type Op = Omit<DriveRequest, 'id' | 'pipelined'>;
const operation: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    open: fc.record({
      drive: fc.oneof(fc.constantFrom(DRIVE, DRIVE, 'nosuch', '', `/dev/${DRIVE}`), fc.string({ maxLength: 300 })),
      access: anyEnum<Access>(),
      nonBlocking: fc.boolean(),
      rewindOnClose: fc.boolean(),
      recordChannel: fc.boolean(),
    }),
  }),
  fc.record({
    write: fc.record({
      data: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(MAX_RECORD, MAX_RECORD + 1).map((n) => new Uint8Array(n))).map((a) => Buffer.from(a)),
      behind: fc.boolean(),
    }),
  }),
  fc.record({ read: fc.record({ maxBytes: u32 }) }),
  fc.record({ mt: mtOperation.map(({ op, count }) => ({ op: op as unknown as MtOpCode, count })) }),
  fc.constantFrom<Op>({ status: {} }, { position: {} }, { close: {} }, {}),
);
const session = fc.record({
  requests: fc.array(fc.record({ op: operation, pipelined: fc.boolean(), id: fc.oneof(fc.nat(), fc.constant(2 ** 53 - 1)) }), { maxLength: 25 }),
  /** How the client leaves: ends the stream, or cancels after some requests. */
  leave: fc.oneof(fc.constant<'end'>('end'), fc.nat({ max: 25 })),
});
type Session = typeof session extends fc.Arbitrary<infer T> ? T : never;

/** The result field each operation answers with. */
function resultOf(op: Op): keyof DriveReply {
  if (op.open || op.mt || op.close) return 'done';
  if (op.write) return 'written';
  if (op.read) return 'data';
  if (op.status) return 'status';
  if (op.position) return 'position';
  return 'error';
}
const RESULTS = ['error', 'written', 'data', 'status', 'position', 'done'] as const;
const ERRNOS = new Set<number>(Object.values(Errno));

async function checkSession(s: Session, client: TapeProxyClient): Promise<void> {
  const call = client.session();
  const replies: DriveReply[] = [];
  call.on('data', (r: DriveReply) => replies.push(r));
  const ended = new Promise<void>((resolve) => {
    call.on('end', resolve);
    call.on('error', () => resolve()); // cancelled
  });
  const requests = s.requests.map(({ op, pipelined, id }) => ({ ...op, pipelined, id }));
  const sent = s.leave === 'end' ? requests : requests.slice(0, s.leave);
  for (const r of sent) call.write(r);
  if (s.leave === 'end') call.end();
  else call.cancel();
  await within(5000, `the end of the session (${replies.length} of ${sent.length} replies)`, ended);

  if (s.leave === 'end') expect(replies.length).toBe(requests.length);
  expect(replies.length).toBeLessThanOrEqual(sent.length);
  replies.forEach((reply, i) => {
    const request = requests[i]!;
    expect(reply.id).toBe(request.id);
    const results = RESULTS.filter((k) => reply[k] !== undefined);
    expect(results.length, JSON.stringify(reply)).toBe(1);
    if (reply.error) {
      const { errno, name, message } = reply.error;
      expect(ERRNOS, `errno ${errno}`).toContain(errno);
      expect(name).toBe(errnoName(errno));
      expect(message.length).toBeGreaterThan(0);
      if (errno === Errno.ECANCELED) expect(request.pipelined).toBe(true);
    } else {
      expect(results[0]).toBe(resultOf(request));
      if (request.read) expect(reply.data!.length).toBeLessThanOrEqual(request.read.maxBytes);
      if (request.write) expect(reply.written).toBeLessThanOrEqual(request.write.data.length);
    }
  });
}

/**
 * Corpus entries (tests/fuzz/corpus/grpc/*.json) are sessions in JSON, a write's data as text or as
 * a number of zero bytes: `{"requests": [{"op": {"write": {"data": 4097}}, "pipelined": true}], "leave": "end"}`.
 */
function sessionFromJson(text: string): Session {
  const json = JSON.parse(text) as { requests: { op: Op & { write?: { data: string | number } }; pipelined?: boolean; id?: number }[]; leave?: Session['leave'] };
  return {
    leave: json.leave ?? 'end',
    requests: json.requests.map(({ op, pipelined = false, id = 0 }) => {
      const data = op.write?.data;
      const write = data === undefined ? {} : { write: { data: typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data), behind: op.write?.behind ?? false } };
      return { op: { ...op, ...write }, pipelined, id };
    }),
  };
}

function sessionToJson(s: Session): Buffer {
  const requests = s.requests.map((r) => (r.op.write ? { ...r, op: { write: { data: r.op.write.data.toString('latin1') } } } : r));
  return Buffer.from(JSON.stringify({ ...s, requests }));
}

/** Bytes for the Session stream that are not (all) a DriveRequest: noise, or one with bytes changed. */
const rawMessage = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  fc
    .tuple(operation, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([op, flips]) => {
      const b = Buffer.from(DriveRequest.encode({ ...op, id: 1, pipelined: false }).finish());
      for (const [at, value] of flips) if (b.length) b[at % b.length] = value;
      return b;
    }),
);

/** Sends raw messages on a Session stream; the status may not come (see inside). */
function checkRaw(messages: Buffer[]): Promise<void> {
  return withDaemon(async ({ client, address }) => {
    const raw = new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL);
    const call = raw.makeBidiStreamRequest('/tapeproxy.v1.TapeProxy/Session', (b: Buffer) => b, (b: Buffer) => b);
    call.on('data', () => {});
    call.on('error', () => {}); // the status says it
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    for (const m of messages) call.write(m);
    call.end();
    // grpc-js (1.14) sometimes never sends the INTERNAL status of a message it cannot
    // deserialize when it comes while a reply is being sent, and tells the handler nothing:
    // the client then gives up, and the daemon must not be hurt either way.
    const code = await Promise.race([status.then((s) => s.code), new Promise<'none'>((r) => setTimeout(() => r('none'), 2000))]);
    if (code === 'none') call.cancel();
    else expect(Object.values(grpc.status)).toContain(code);
    raw.close();
    const fd = await DriveSession.open(client, DRIVE, { access: 'write' });
    expect(await fd.write(Buffer.from('after raw bytes'))).toBe(15);
    await fd.close();
  });
}

/**
 * The same sessions on the record channel (proto/record-channel.md), then maybe bytes that are not
 * frames: every whole request before them is answered on the stream, once, in order, with its id
 * (a write's low 32 bits); the session then ends, and the drive is closed and works.
 */
const channelSession = fc.record({ session, noise: fc.option(fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a) => Buffer.from(a))) });

async function checkChannelSession({ session: s, noise }: typeof channelSession extends fc.Arbitrary<infer T> ? T : never, client: TapeProxyClient): Promise<void> {
  const call = client.session();
  const replies: DriveReply[] = [];
  call.on('data', (r: DriveReply) => replies.push(r));
  const ended = new Promise<void>((resolve) => {
    call.on('end', resolve);
    call.on('error', () => resolve());
  });
  call.write({ id: 0, pipelined: false, open: { drive: DRIVE, access: 2, nonBlocking: true, rewindOnClose: false, recordChannel: true } });
  await within(5000, 'the reply to the open', (async () => {
    while (replies.length === 0) await new Promise((r) => setTimeout(r, 2));
  })());
  const offer = replies.shift()!.recordChannel!;
  const socket = await connectRecordChannel('127.0.0.1', offer.port, offer, undefined, 5000);
  socket.on('error', () => {}); // the daemon may close it on the noise
  const requests = s.requests.map(({ op, pipelined, id }) => ({ ...op, pipelined, id }));
  for (const r of requests) for (const bytes of requestFrame(r)) socket.write(bytes);
  if (noise) socket.write(noise);
  socket.end();
  await within(5000, `the end of the session (${replies.length} of ${requests.length} replies)`, ended);
  expect(replies.length).toBeLessThanOrEqual(requests.length);
  if (!noise) expect(replies.length).toBe(requests.length);
  replies.forEach((reply, i) => {
    const request = requests[i]!;
    expect(reply.id).toBe(request.write ? request.id % 2 ** 32 : request.id);
    expect(RESULTS.filter((k) => reply[k] !== undefined).length, JSON.stringify(reply)).toBe(1);
    if (!reply.error) expect(RESULTS.find((k) => reply[k] !== undefined)).toBe(resultOf(request));
  });
}

const rawToJson = (messages: Buffer[]) => Buffer.from(JSON.stringify(messages.map((m) => m.toString('hex'))));

const name = fc.oneof(fc.constantFrom(DRIVE, '', 'nosuch'), fc.string({ maxLength: 200 }));
const admin = fc.record({ status: name, watch: name, intervalMs: u32 });
type Admin = typeof admin extends fc.Arbitrary<infer T> ? T : never;

function checkAdmin(a: Admin): Promise<void> {
  return withDaemon(async ({ client }) => {
    const info = await new Promise<{ code?: number; name?: string }>((resolve) =>
      client.driveStatus({ drive: a.status }, (err, reply) => resolve(err ? { code: err.code } : { name: reply!.name })),
    );
    expect(info).toEqual(a.status === DRIVE ? { name: DRIVE } : { code: grpc.status.NOT_FOUND });
    const list = await new Promise<number>((resolve, reject) => client.listDrives({}, (err, r) => (err ? reject(err) : resolve(r!.drives.length))));
    expect(list).toBe(1);
    const watch = client.watch({ drive: a.watch, intervalMs: a.intervalMs });
    let messages = 0;
    const first = await within(5000, 'the first Watch message', new Promise<string>((resolve) => {
      watch.on('data', () => messages++ === 0 && resolve('snapshot'));
      watch.on('error', (err: grpc.ServiceError) => resolve(err.code === grpc.status.NOT_FOUND ? 'not found' : `code ${err.code}`));
    }));
    expect(first).toBe(a.watch === '' || a.watch === DRIVE ? 'snapshot' : 'not found');
    // Snapshots come at most every 100 ms, whatever the interval asked (one over 2^31-1 ms
    // made Node's timer fire every millisecond).
    await new Promise((r) => setTimeout(r, 50));
    expect(messages).toBeLessThanOrEqual(1);
    watch.cancel();
  });
}

describe('gRPC front end under hostile input', () => {
  it('replays the corpus of sessions', { timeout: FUZZ_TIMEOUT }, async () => {
    for (const { name, bytes } of corpus('grpc')) {
      await withDaemon(({ client }) => checkSession(sessionFromJson(bytes.toString()), client)).catch((err: Error) =>
        Promise.reject(new Error(`${name}: ${err.message}`)),
      );
    }
  });

  it('a Session answers every request once, in order, with its result or an errno; the drive works after', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz({ corpus: 'grpc', save: sessionToJson, ext: 'json' }, session, (s) => withDaemon(({ client }) => checkSession(s, client)), 600);
  });

  it('the record channel: every whole request answered once, in order; noise ends the session; the drive works after', { timeout: FUZZ_TIMEOUT }, async () => {
    await fuzz({ corpus: 'grpc-channel' }, channelSession, (c) => withDaemon(({ client }) => checkChannelSession(c, client)), 300);
  });

  it('bytes that are not a DriveRequest: a status or nothing, and the daemon serves the next session', { timeout: FUZZ_TIMEOUT }, async () => {
    for (const { bytes } of corpus('grpc-raw')) await checkRaw((JSON.parse(bytes.toString()) as string[]).map((hex) => Buffer.from(hex, 'hex')));
    await fuzz({ corpus: 'grpc-raw', save: rawToJson, ext: 'json' }, fc.array(rawMessage, { minLength: 1, maxLength: 6 }), checkRaw, 200);
  });

  it('the admin RPCs answer any drive name and interval, or say NOT_FOUND', { timeout: FUZZ_TIMEOUT }, async () => {
    for (const { bytes } of corpus('grpc-admin')) await checkAdmin(JSON.parse(bytes.toString()) as Admin);
    await fuzz({ corpus: 'grpc-admin', save: (a) => Buffer.from(JSON.stringify(a)), ext: 'json' }, admin, checkAdmin, 60);
  });
});
