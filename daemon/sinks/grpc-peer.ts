import * as grpc from '@grpc/grpc-js';
import { SessionLost } from '../../client/drive-session.js';
import type { DriveInfo, TapeProxyClient } from '../../generated/tapeproxy.js';
import { TapeError } from '../drive/tape-error.js';
import { type ClientTls, clientCredentials, readClientTls, readToken, tokenMetadata } from '../frontends/grpc/auth.js';
import { FastTapeProxyClient } from '../frontends/grpc/record-codec.js';

/** How to reach a remote tapeproxy daemon. */
export interface PeerOptions {
  /** host:port */
  address: string;
  /** Files of the TLS client: the CA that signed the daemon's certificate (else the system's), and a client certificate; undefined for plaintext. */
  tls?: { ca?: string; cert?: string; key?: string };
  tokenFile?: string;
  /** Pings on an idle or busy connection: a dead link is noticed within twice this. */
  keepaliveMs: number;
}

/** A channel to the remote daemon and the metadata every call carries (the token). */
export interface Peer {
  client: TapeProxyClient;
  metadata: grpc.Metadata;
  /** The TLS files, read (for the record channel too); undefined for plaintext. */
  tls?: ClientTls;
}

/** Records up to 64 MiB and the fields around them. */
const MAX_MESSAGE = 80 * 2 ** 20;

/** Opens a channel (no connection yet: the first call makes it). Reads the TLS and token files now. */
export async function connectPeer(options: PeerOptions): Promise<Peer> {
  const tls = options.tls && (await readClientTls(options.tls, (file) => file));
  const credentials = clientCredentials(tls);
  const token = options.tokenFile ? await readToken(options.tokenFile, 'token-file') : undefined;
  const client = new FastTapeProxyClient(options.address, credentials, {
    'grpc.max_receive_message_length': MAX_MESSAGE,
    'grpc.max_send_message_length': MAX_MESSAGE,
    'grpc.keepalive_time_ms': options.keepaliveMs,
    'grpc.keepalive_timeout_ms': options.keepaliveMs,
    'grpc.keepalive_permit_without_calls': 1,
    // The sink resumes by itself; grpc-js's retries would only hold a copy of every record sent.
    'grpc.enable_retries': 0,
  });
  return { client, metadata: tokenMetadata(token), ...(tls && { tls }) };
}

/** DriveStatus of one drive, within `timeoutMs`. */
export function remoteDriveInfo(peer: Peer, drive: string, timeoutMs: number): Promise<DriveInfo> {
  return new Promise((resolve, reject) =>
    peer.client.driveStatus({ drive }, peer.metadata, { deadline: Date.now() + timeoutMs }, (err, info) => (err ? reject(err) : resolve(info!))),
  );
}

/** The link failed (not the remote drive): a transport error, a cancelled call, a session that ended. */
export function isLinkFailure(err: unknown): boolean {
  return !(err instanceof TapeError) || err instanceof SessionLost;
}

/** What a failed call means for the user, and what to do about it. */
export function explainCallError(err: unknown, address: string): string {
  const e = err as Partial<grpc.ServiceError> & Error;
  const details = tidy(e.details ?? e.message);
  switch (e.code) {
    case grpc.status.UNAUTHENTICATED:
      return `${address} refused the call: ${details} (check token-file=; the daemon's token-file must hold the same token)`;
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
      if (/certificate required|handshake failure/i.test(details)) {
        return `cannot establish TLS with ${address}: ${details} (the daemon asks for a client certificate: give cert= and key=, signed by the CA of its tls.client-ca)`;
      }
      if (/certificate|self[- ]signed|verify|altnames|does not match/i.test(details)) {
        return `cannot establish TLS with ${address}: ${details} (give the CA that signed the daemon's certificate with ca=FILE, and check that the certificate names this host)`;
      }
      return `cannot reach the tapeproxy daemon at ${address}: ${details} (is it running and listening there, is the link up? plaintext only if it serves without TLS)`;
    default:
      return `${address}: ${details}`;
  }
}

/** grpc-js's connection errors on one line, without its framing and OpenSSL's source references. */
function tidy(details: string): string {
  return details
    .replace(/^No connection established\. Last error: /, '')
    .replace(/^Error( \[\w+\])?: /, '')
    .replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)/g, '')
    .replace(/\.?\s*Resolution note:.*$/s, '')
    .replace(/[0-9A-F]{8,}:error:[0-9A-F]+:SSL routines:\w+:/g, '')
    .replace(/:\.\.\/deps\/\S+( alert number \d+)?/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}
