#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError } from '../daemon/config/config.js';
import { TapeError } from '../daemon/drive/tape-error.js';
import { SinkUriError } from '../daemon/sinks/sink-uri.js';
import { UsageError } from './cli-error.js';
import { serverOptions } from './server-options.js';
import { catalogCommand } from './commands/catalog.js';
import { configCommand } from './commands/config.js';
import { daemonCommand } from './commands/daemon.js';
import { devicesCommand } from './commands/devices.js';
import { healthCommand } from './commands/health.js';
import { imageCommand } from './commands/image.js';
import { mtCommand } from './commands/mt.js';
import { readCommand } from './commands/read.js';
import { rmtCommand } from './commands/rmt.js';
import { statusCommand } from './commands/status.js';
import { verifyCommand } from './commands/verify.js';
import { watchCommand } from './commands/watch.js';
import { writeCommand } from './commands/write.js';

/** Exit codes: 1 the operation failed, 2 the command line or configuration is wrong. */
function exitCodeFor(err: unknown): number {
  return err instanceof UsageError || err instanceof ConfigError || err instanceof SinkUriError ? 2 : 1;
}

try {
  await yargs(hideBin(process.argv))
    .scriptName('tapeproxy')
    .usage('$0 <command>\n\nA pseudo tape drive that behaves like a Linux SCSI tape and mirrors every record to several copies.')
    .options(serverOptions)
    .command(daemonCommand)
    .command(statusCommand)
    .command(watchCommand)
    .command(healthCommand)
    .command(mtCommand)
    .command(writeCommand)
    .command(readCommand)
    .command(imageCommand)
    .command(verifyCommand)
    .command(catalogCommand)
    .command(configCommand)
    .command(devicesCommand)
    .command(rmtCommand)
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    })
    .help()
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .parseAsync();
} catch (err) {
  const message = err instanceof TapeError || err instanceof Error ? err.message : String(err);
  process.stderr.write(`tapeproxy: ${message}\n`);
  if (err instanceof UsageError) process.stderr.write('Run tapeproxy --help for usage.\n');
  process.exitCode = exitCodeFor(err);
}
