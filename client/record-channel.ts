import { isIP, type Socket, connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { RecordChannel, TapeProxyClient } from '../generated/tapeproxy.js';
import { splitAddress } from '../daemon/address.js';
import type { ClientTls } from '../daemon/frontends/grpc/auth.js';
import { attachFrame } from '../daemon/frontends/grpc/channel-frames.js';
import { DriveSession, type OpenOptions } from './drive-session.js';

/** A record port that does not answer in this long is not used (a firewall that drops). */
export const CHANNEL_CONNECT_MS = 5000;

/**
 * Sends `session`'s requests on the record channel its daemon offered at open, if any: connects to
 * `port` (default: the offered one) on the daemon's host within `timeoutMs`. Resolves whether it
 * does, and why not if connecting failed; the session then goes on with requests on its stream.
 */
export async function useOfferedChannel(
  session: DriveSession,
  server: string,
  tls: ClientTls | undefined,
  timeoutMs: number,
  port?: number,
): Promise<{ onChannel: boolean; err?: Error }> {
  const offer = session.channelOffer;
  if (!offer) return { onChannel: false };
  try {
    session.useChannel(await connectRecordChannel(splitAddress(server).host, port ?? offer.port, offer, tls, timeoutMs));
    return { onChannel: true };
  } catch (err) {
    return { onChannel: false, err: err as Error };
  }
}

/**
 * Opens `drive` on the daemon at `server` with its requests on the record channel where the daemon
 * offers one and it can be reached; else on the stream, as before there was a channel.
 */
export async function openOnChannel(client: TapeProxyClient, server: string, tls: ClientTls | undefined, drive: string, options: OpenOptions): Promise<DriveSession> {
  const session = await DriveSession.open(client, drive, { ...options, recordChannel: true });
  await useOfferedChannel(session, server, tls, CHANNEL_CONNECT_MS);
  return session;
}

/**
 * Connects the record channel a daemon offered (proto/record-channel.md) on `host` (no brackets), plaintext or
 * TLS like the gRPC channel, and presents its ticket. Resolves with the socket once connected (the
 * daemon closes it if the ticket is not good); rejects on a connection error or after `timeoutMs`.
 */
export function connectRecordChannel(host: string, port: number, offer: RecordChannel, tls: ClientTls | undefined, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? connectTls({ host, port, ...(tls.ca && { ca: tls.ca }), ...(tls.cert && { cert: tls.cert }), ...(tls.key && { key: tls.key }), ...(isIP(host) === 0 && { servername: host }) })
      : connectTcp({ host, port });
    const timer = setTimeout(() => fail(new Error(`no connection in ${timeoutMs / 1000} s`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      socket.setNoDelay(true);
      for (const bytes of attachFrame(offer.ticket)) socket.write(bytes);
      resolve(socket);
    });
  });
}
