import { isIP, type Socket, connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { RecordChannel } from '../generated/tapeproxy.js';
import { attachFrame } from '../daemon/frontends/grpc/channel-frames.js';

/** TLS material for the record channel: the gRPC channel's, as PEM. */
export interface ChannelTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * Connects the record channel a daemon offered (proto/record-channel.md) on `host`, plaintext or
 * TLS like the gRPC channel, and presents its ticket. Resolves with the socket once connected (the
 * daemon closes it if the ticket is not good); rejects on a connection error or after `timeoutMs`.
 */
export function connectRecordChannel(host: string, port: number, offer: RecordChannel, tls: ChannelTls | undefined, timeoutMs: number): Promise<Socket> {
  const bare = host.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? connectTls({ host: bare, port, ...(tls.ca && { ca: tls.ca }), ...(tls.cert && { cert: tls.cert }), ...(tls.key && { key: tls.key }), ...(isIP(bare) === 0 && { servername: bare }) })
      : connectTcp({ host: bare, port });
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
