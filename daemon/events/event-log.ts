import type { Logger } from 'pino';
import { describeEvent, type DriveEvent, type EventBus } from './events.js';

/** Failures are errors; the rest is the normal course of a backup. */
function level(e: DriveEvent): 'error' | 'info' {
  if (e.type === 'copy-failed' || (e.type === 'verify' && !e.ok) || (e.type === 'closed' && e.error)) return 'error';
  return 'info';
}

/**
 * Every event as one pino line: the event's fields, `event` its type, the message its sentence.
 * (`err` rather than `error`: the field the daemon's other failure lines use.)
 */
export function logEvents(bus: EventBus, log: Logger): () => void {
  return bus.subscribe((e) => {
    const { type, time: _time, error, ...fields } = e as DriveEvent & { error?: string };
    log[level(e)]({ event: type, ...fields, ...(error !== undefined && { err: error }) }, describeEvent(e));
  });
}
