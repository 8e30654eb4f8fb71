import { pino, type Logger } from 'pino';

/** JSON lines on stdout; pretty when stdout is a terminal (DESIGN.md section 3). */
export function createLogger(level = process.env.TAPEPROXY_LOG_LEVEL ?? 'info'): Logger {
  if (process.stdout.isTTY) {
    return pino({ level, transport: { target: 'pino-pretty', options: { destination: 1 } } });
  }
  return pino({ level }, pino.destination({ dest: 1, sync: false }));
}

export type { Logger };
