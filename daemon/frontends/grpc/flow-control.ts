import type * as grpc from '@grpc/grpc-js';
import type { Http2Server, ServerHttp2Session } from 'node:http2';

/** The receive window the daemon gives its clients: records of a tape stream flow without waiting. */
const RECEIVE_WINDOW = 16 * 2 ** 20;

/**
 * HTTP/2 flow control: Node's default receive window (64 KiB per stream and per connection) lets a
 * client send 64 KiB per round trip, far below a tape's rate (a grpc sink writing 256 KiB records
 * reached a third of its speed with it). grpc-js sets the window of its clients
 * ('grpc-node.flow_control_window') but has no option for servers, so every session of the
 * server's HTTP/2 listeners gets it here. grpc-js keeps those listeners in a private field; should
 * it be gone in a later version, the daemon works as before, only slower.
 */
export function widenReceiveWindows(server: grpc.Server): void {
  const listeners = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  for (const listener of listeners?.keys() ?? []) {
    listener.on('session', (session: ServerHttp2Session) => {
      session.setLocalWindowSize(RECEIVE_WINDOW);
      session.settings({ initialWindowSize: RECEIVE_WINDOW });
    });
  }
}
