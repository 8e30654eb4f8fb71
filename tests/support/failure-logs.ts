/**
 * When a test fails, what the daemons it started said: their warnings and errors, and the last lines
 * of each log. Without it a failure seen once under the whole suite's load (in CI) leaves no trace of
 * which copy failed or why.
 */
import { beforeEach } from 'vitest';
import { daemonLogs, parseJson } from './daemon.js';

const TAIL = 20;
const MAX_NOTABLE = 60;

beforeEach((ctx) => {
  // Daemons started before the test (in beforeAll) are reported from where the test began.
  const from = new Map(daemonLogs.map((log) => [log, log.lines.length]));
  ctx.onTestFailed(() => {
    for (const log of daemonLogs) {
      const said = log.lines.slice(from.get(log) ?? 0);
      if (said.length > 0) console.error(report(log.argv, said));
    }
  });
});

function report(argv: string[], lines: string[]): string {
  const notable = lines.filter((line) => (parseJson(line)?.level ?? 0) >= 40).slice(-MAX_NOTABLE);
  const tail = lines.slice(-TAIL).filter((line) => !notable.includes(line));
  return [`--- daemon ${argv.slice(argv.indexOf('daemon') + 1).join(' ')}: ${lines.length} log lines; warnings and errors, then the last lines`, ...notable, '...', ...tail].join('\n');
}
