import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { loadCheckedConfig } from '../../daemon/config/config-paths.js';

interface Args {
  file: string;
}

const checkCommand = {
  command: 'check <file>',
  describe: 'Validate a daemon config file as the daemon would, without starting anything',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'YAML config file' })
      .example('$0 config check /etc/tapeproxy/tapeproxy.yaml', 'exit 0 and a summary, or exit 2 and the key that is wrong'),
  handler: async (args: Args) => {
    const config = await loadCheckedConfig(args.file);
    const drives = config.drives.map((d) => `${d.name} (${d.sinks.length} ${d.sinks.length === 1 ? 'copy' : 'copies'}${d.device ? `, ${d.device.kind}` : ''})`);
    console.log(
      `${args.file}: valid: ${drives.length} ${drives.length === 1 ? 'drive' : 'drives'} ${drives.join(', ')}; ` +
        `gRPC ${config.listen}; metrics ${config.metrics ?? 'off'}`,
    );
  },
};

export const configCommand = {
  command: 'config <command>',
  describe: 'Check daemon configuration files',
  builder: (y: Argv<GlobalArgs>) => y.command(checkCommand).demandCommand(1),
  handler: () => undefined,
};
