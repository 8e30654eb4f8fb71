import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { DriveInfo, TapeProxyServer } from '../../../generated/tapeproxy.js';
import type { PseudoDrive } from '../../drive/pseudo-drive.js';
import type { Mirror } from '../../mirror/mirror.js';
import { widenReceiveWindows } from './flow-control.js';
import { FastTapeProxyService } from './record-codec.js';
import { serveSession } from './session.js';

/** A drive and the mirror of copies behind it. */
export interface ServedDrive {
  drive: PseudoDrive;
  mirror: Mirror;
}

export function driveInfo({ drive, mirror }: ServedDrive): DriveInfo {
  const sinks = mirror.sinks.map((s) => {
    const { failure, ...status } = s.status();
    return { ...status, failure: failure ?? '', setAside: mirror.isDropped(s) };
  });
  return { name: drive.name, state: { ...drive.state(), earlyWarningZone: mirror.earlyWarningZone() }, sinks };
}

/**
 * How often the server pings a client that went quiet: a client whose link died is noticed within
 * twice this, its session ends and the drive is free again (for the same client resuming).
 */
const KEEPALIVE_MS = 10_000;

/** Serves the drives over gRPC on `address` (host:port); resolves with the bound address. */
export async function startGrpcServer(
  drives: ReadonlyMap<string, ServedDrive>,
  address: string,
  maxMessage: number,
  log: Logger,
  security: { credentials: grpc.ServerCredentials; interceptors: grpc.ServerInterceptor[] },
): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxMessage,
    'grpc.max_send_message_length': maxMessage,
    'grpc.keepalive_time_ms': KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_MS,
    interceptors: security.interceptors,
  });
  const driveByName = new Map([...drives].map(([name, d]) => [name, d.drive]));
  const handlers: TapeProxyServer = {
    session: (call) => serveSession(call, driveByName, log),
    listDrives: (_call, callback) => callback(null, { drives: [...drives.values()].map(driveInfo) }),
    driveStatus: (call, callback) => {
      const drive = drives.get(call.request.drive);
      if (!drive) {
        callback({ code: grpc.status.NOT_FOUND, details: `no drive named '${call.request.drive}'; drives: ${[...drives.keys()].join(', ')}` });
        return;
      }
      callback(null, driveInfo(drive));
    },
  };
  server.addService(FastTapeProxyService, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, security.credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  widenReceiveWindows(server);
  const host = address.slice(0, address.lastIndexOf(':'));
  return { server, address: `${host}:${port}` };
}
