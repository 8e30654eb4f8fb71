import * as grpc from '@grpc/grpc-js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** How the daemon's gRPC port is protected: TLS (optionally asking clients for a certificate), a token. */
export interface ServerSecurity {
  tls?: { cert: string; key: string; clientCa?: string };
  tokenFile?: string;
}

/**
 * The server credentials and the interceptors that check a bearer token on every call. Files are
 * read here, so a missing or unreadable one stops the daemon at start with its name.
 */
export async function serverSecurity(security: ServerSecurity): Promise<ServerSecrets> {
  const { tls, tokenFile } = security;
  const pem = tls && {
    cert: await readSecret(tls.cert, 'tls.cert'),
    key: await readSecret(tls.key, 'tls.key'),
    ...(tls.clientCa !== undefined && { clientCa: await readSecret(tls.clientCa, 'tls.client-ca') }),
  };
  const credentials = pem
    ? grpc.ServerCredentials.createSsl(pem.clientCa ?? null, [{ cert_chain: pem.cert, private_key: pem.key }], pem.clientCa !== undefined)
    : grpc.ServerCredentials.createInsecure();
  const interceptors = tokenFile ? [tokenInterceptor(await readToken(tokenFile, 'token-file'))] : [];
  return { credentials, interceptors, ...(pem && { tls: pem }) };
}

/** What serverSecurity read: the gRPC credentials and token check, and the TLS files for the record port. */
export interface ServerSecrets {
  credentials: grpc.ServerCredentials;
  interceptors: grpc.ServerInterceptor[];
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer };
}

/** A token file: its first line, without surrounding white space; never empty. */
export async function readToken(path: string, key: string): Promise<string> {
  const token = (await readSecret(path, key)).toString('utf8').split('\n')[0]!.trim();
  if (!token) throw new Error(`${key}: ${path} holds no token`);
  return token;
}

export async function readSecret(path: string, key: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new Error(`${key}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * A client's TLS files, read: the CA that signed the daemon's certificate (absent: the system's),
 * a client certificate and its key (PEM), for the gRPC channel and the record channel alike.
 */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Reads the TLS files given; `name` says how the user calls each file, for errors. */
export async function readClientTls(
  files: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined },
  name: (file: 'ca' | 'cert' | 'key') => string,
): Promise<ClientTls> {
  const tls: ClientTls = {};
  for (const file of ['ca', 'cert', 'key'] as const) {
    const path = files[file];
    if (path) tls[file] = await readSecret(path, name(file));
  }
  return tls;
}

/** A client's channel credentials: TLS from what readClientTls read, or plaintext without it. */
export function clientCredentials(tls: ClientTls | undefined): grpc.ChannelCredentials {
  return tls ? grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null) : grpc.credentials.createInsecure();
}

/** The metadata a client sends its token in (`authorization: Bearer TOKEN`). */
export function tokenMetadata(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

/** Refuses (UNAUTHENTICATED) every call that does not carry the token. */
function tokenInterceptor(token: string): grpc.ServerInterceptor {
  const expected = digest(token);
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const given = /^Bearer (.+)$/.exec(String(metadata.get('authorization')[0] ?? ''))?.[1];
            if (given !== undefined && timingSafeEqual(digest(given), expected)) nextMetadata(metadata);
            else
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: given === undefined ? 'this daemon needs a token (authorization: Bearer ...)' : 'the token is not the one this daemon accepts',
              });
          },
        }),
    });
}

/** Digests have the same length whatever was sent, so the comparison takes the same time. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
