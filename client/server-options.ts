import * as grpc from '@grpc/grpc-js';
import { type ClientTls, clientCredentials, readClientTls, readToken } from '../daemon/frontends/grpc/auth.js';
import type { GlobalArgs } from './cli-error.js';
import { DEFAULT_SERVER } from './drive-session.js';

/**
 * How a command reaches the daemon: its address, and, for a daemon that asks for them (README
 * "Remote drives"), TLS and a token. Every option also comes from the environment, so that rmt
 * through tapeproxy-rsh and scripts carry them too.
 */
export const serverOptions = {
  server: { type: 'string', default: DEFAULT_SERVER, describe: 'daemon gRPC address (env TAPEPROXY_SERVER)' },
  'token-file': {
    type: 'string',
    default: process.env.TAPEPROXY_TOKEN_FILE,
    describe: "file with the daemon's token, sent with every call (env TAPEPROXY_TOKEN_FILE)",
  },
  tls: { type: 'boolean', default: process.env.TAPEPROXY_TLS === '1', describe: 'talk TLS to the daemon (implied by --ca and --cert; env TAPEPROXY_TLS=1)' },
  ca: { type: 'string', default: process.env.TAPEPROXY_CA, describe: "CA that signed the daemon's certificate, PEM (else the system's; env TAPEPROXY_CA)" },
  cert: { type: 'string', default: process.env.TAPEPROXY_CERT, describe: 'client certificate, PEM, for a daemon that asks for one (with --key; env TAPEPROXY_CERT)' },
  key: { type: 'string', default: process.env.TAPEPROXY_KEY, describe: "the client certificate's private key, PEM (env TAPEPROXY_KEY)" },
} as const;

/** What `connect` needs: the channel's credentials and the token interceptor; the TLS files for a record channel. */
export interface ClientSecurity {
  credentials: grpc.ChannelCredentials;
  interceptors: grpc.Interceptor[];
  tls?: ClientTls;
}

/** Reads the TLS and token files the options name. */
export async function clientSecurity(args: GlobalArgs): Promise<ClientSecurity> {
  if (!args.cert !== !args.key) throw new Error('--cert and --key go together');
  const tls = args.tls || args.ca || args.cert ? { ca: args.ca, cert: args.cert, key: args.key } : undefined;
  const pem = tls && (await readClientTls(tls, (file) => `--${file}`));
  const credentials = clientCredentials(pem);
  const token = args['token-file'] ? await readToken(args['token-file'], '--token-file') : undefined;
  return { credentials, interceptors: token === undefined ? [] : [withToken(token)], ...(pem && { tls: pem }) };
}

/** Adds `authorization: Bearer TOKEN` to every call (grpc-js allows call credentials only over TLS). */
function withToken(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}
