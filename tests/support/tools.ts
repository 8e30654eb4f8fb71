import { execa } from 'execa';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The rsh stand-in that tar, cpio and dump run to reach a drive through rmt. */
export const RSH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'client', 'tapeproxy-rsh');

/**
 * Runs a command with a terminal (through script(1)), for tools that ask their operator on
 * /dev/tty (cpio's reel change, restore's volume prompts); `answers` is typed at that terminal.
 */
export function withTerminal(
  argv: string[],
  options: { cwd: string; env: Record<string, string>; answers: string; stdinFile?: string },
) {
  const redirect = options.stdinFile ? ` < ${shellQuote(options.stdinFile)}` : '';
  const command = argv.map(shellQuote).join(' ') + redirect;
  return execa('script', ['-qec', command, '/dev/null'], { cwd: options.cwd, env: options.env, input: options.answers });
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./<>-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
