import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { DriveInfo, TapeProxyServer } from '../../../generated/tapeproxy.js';
import type { PseudoDrive } from '../../drive/pseudo-drive.js';
import { RecordPool } from '../../drive/record-pool.js';
import { copyState } from '../../events/copy-state.js';
import type { EventBus } from '../../events/events.js';
import type { RateMeter } from '../../events/rates.js';
import type { Mirror } from '../../mirror/mirror.js';
import { splitAddress } from '../../address.js';
import type { ServerSecrets } from './auth.js';
import { widenReceiveWindows } from './flow-control.js';
import { DriveHealth } from './health.js';
import { FastTapeProxyService } from './record-codec.js';
import { RecordChannelServer } from './record-channel-server.js';
import { serveSession } from './session.js';
import { WatchService } from './watch.js';

/** A drive and the mirror of copies behind it; `rates` measures how fast the copies are written. */
export interface ServedDrive {
  drive: PseudoDrive;
  mirror: Mirror;
  rates?: RateMeter;
}

export function driveInfo({ drive, mirror, rates }: ServedDrive): DriveInfo {
  const state = drive.state();
  const copyRates = rates?.rates();
  const sinks = mirror.sinks.map((s, i) => {
    const status = mirror.copyStatus(s);
    const setAside = mirror.isDropped(s);
    const { rate = 0, average = 0, sessionBytes = 0 } = copyRates?.[i] ?? {};
    return {
      ...status,
      failure: status.failure ?? '',
      setAside,
      state: copyState(state, mirror, status, setAside),
      rate,
      averageRate: average,
      sessionBytes,
    };
  });
  const session = rates?.sessionTimes ?? { started: 0, ended: 0 };
  return {
    name: drive.name,
    state: { ...state, loading: mirror.loading, earlyWarningZone: mirror.earlyWarningZone() },
    sinks,
    sessionStartedMs: session.started,
    sessionEndedMs: session.ended,
  };
}

/**
 * How often the server pings a client that went quiet: a client whose link died is noticed within
 * twice this, its session ends and the drive is free again (for the same client resuming).
 */
const KEEPALIVE_MS = 10_000;

/**
 * Serves the drives over gRPC on `address` (host:port), with the Watch stream of `bus` and the
 * standard health service, secured as `security` says; resolves with the bound address.
 */
export async function startGrpcServer(
  drives: ReadonlyMap<string, ServedDrive>,
  address: string,
  maxMessage: number,
  log: Logger,
  bus: EventBus,
  security: ServerSecrets,
  recordPort?: RecordPort,
): Promise<{ server: grpc.Server; address: string; watch: WatchService; health: DriveHealth; channels?: RecordChannelServer }> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxMessage,
    'grpc.max_send_message_length': maxMessage,
    'grpc.keepalive_time_ms': KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_MS,
    interceptors: security.interceptors,
  });
  const driveByName = new Map([...drives].map(([name, d]) => [name, d.drive]));
  const watch = new WatchService(drives, bus);
  const records = new RecordPool();
  let channels: RecordChannelServer | undefined;
  const handlers: TapeProxyServer = {
    session: (call) => serveSession(call, driveByName, log, records, channels),
    listDrives: (_call, callback) => callback(null, { drives: [...drives.values()].map(driveInfo) }),
    driveStatus: (call, callback) => {
      const drive = drives.get(call.request.drive);
      if (!drive) {
        callback({ code: grpc.status.NOT_FOUND, details: `no drive named '${call.request.drive}'; drives: ${[...drives.keys()].join(', ')}` });
        return;
      }
      callback(null, driveInfo(drive));
    },
    watch: (call) => watch.serve(call),
  };
  server.addService(FastTapeProxyService, handlers);
  const health = new DriveHealth(server, drives, bus);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, security.credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  widenReceiveWindows(server);
  const asked = splitAddress(address);
  channels = await startRecordPort(asked.host, recordPort ?? defaultRecordPort(asked.port), records, security.tls, log);
  // The bound address as it was asked for (an IPv6 host keeps its brackets), with the port bound.
  return { server, address: `${address.slice(0, address.lastIndexOf(':'))}:${port}`, watch, health, ...(channels && { channels }) };
}

/**
 * The record port (record-channel-server.ts): a port number, 0 for any free port, 'off' for none;
 * by default the one after the gRPC port, or any free port when gRPC's was chosen that way.
 */
export type RecordPort = number | 'off';

function defaultRecordPort(grpcPort: number): { port: number; optional: true } {
  return { port: grpcPort === 0 ? 0 : grpcPort + 1, optional: true };
}

/** A port given by the user must open; the default may be taken (the daemon then goes without). */
async function startRecordPort(
  host: string,
  wanted: RecordPort | { port: number; optional: true },
  pool: RecordPool,
  tls: ServerSecrets['tls'],
  log: Logger,
): Promise<RecordChannelServer | undefined> {
  if (wanted === 'off') return undefined;
  const port = typeof wanted === 'number' ? wanted : wanted.port;
  try {
    const channels = await RecordChannelServer.listen(host, port, pool, tls, (err) => log.warn({ err: err.message }, 'record port failed to take a connection'));
    log.info({ port: channels.port }, 'record port listening (grpc copies send their records there)');
    return channels;
  } catch (err) {
    const why = `cannot listen on ${host}:${port} for record channels: ${(err as Error).message}`;
    if (typeof wanted === 'number') throw new Error(`${why} (record-port: another port, or off)`);
    log.warn({ port }, `${why}; grpc copies of other daemons send their records over gRPC, slower (record-port: a free port)`);
    return undefined;
  }
}
