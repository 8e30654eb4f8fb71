import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { clientSecurity, type ClientSecurity } from '../server-options.js';

interface Args extends GlobalArgs {
  service: string;
}

interface HealthClient extends grpc.Client {
  check(request: { service: string }, callback: (err: grpc.ServiceError | null, reply?: { status: string }) => void): void;
}

/** A client of the standard grpc.health.v1.Health service, from the definition grpc-health-check ships. */
export function healthClient(server: string, security?: ClientSecurity): HealthClient {
  // proto-loader's and grpc-js's ServiceDefinition types differ only in their generics.
  const Client = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'Health');
  return new Client(server, security?.credentials ?? grpc.credentials.createInsecure(), {
    interceptors: security?.interceptors ?? [],
  }) as unknown as HealthClient;
}

export const healthCommand = {
  command: 'health [service]',
  describe: "Ask the daemon's gRPC health service: exit 0 when SERVING, else 1",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('service', { type: 'string', default: '', describe: "'' (the daemon), tapeproxy.v1.TapeProxy, or a drive name" })
      .example('$0 health', 'the daemon as a whole')
      .example('$0 health pnst0', 'one drive: NOT_SERVING while a failed copy fails its writer'),
  handler: async (args: Args) => {
    const client = healthClient(args.server, await clientSecurity(args));
    try {
      const status = await new Promise<string>((resolve, reject) =>
        client.check({ service: args.service }, (err, reply) => (err ? reject(new Error(err.details || err.message)) : resolve(reply!.status))),
      );
      console.log(status);
      if (status !== 'SERVING') process.exitCode = 1;
    } finally {
      client.close();
    }
  },
};
