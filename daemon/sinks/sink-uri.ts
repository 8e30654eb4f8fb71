import { dirname } from 'node:path';
import { parseSize } from '../config/size.js';
import { Capacity } from './capacity.js';
import { FileSink, volumePath } from './file-sink.js';
import { MemorySink } from './memory-sink.js';
import { NstSink } from './nst-sink.js';
import type { Sink } from './sink.js';

/** How a sink tells the daemon's log what it waits for (cartridges, changers). */
export type SinkLog = (message: string, fields: Record<string, unknown>) => void;

/** A sink URI that could not be understood; the message says what to write instead. */
export class SinkUriError extends Error {
  constructor(uri: string, problem: string) {
    super(`sink '${uri}': ${problem}`);
    this.name = 'SinkUriError';
  }
}

/** Something on this machine a sink needs before the daemon starts (checked by `config check` too). */
export interface RequiredPath {
  path: string;
  kind: 'directory' | 'file' | 'char-device';
  /** What it is, for the error: "the images' directory". */
  what: string;
}

interface SinkType {
  params: Record<string, string>;
  make(target: string, params: URLSearchParams, uri: string, log?: SinkLog): Sink;
  /** The files, directories and devices the sink needs (called after `make` accepted the URI). */
  requires?(target: string, params: URLSearchParams): RequiredPath[];
}

const capacityParams = {
  capacity: 'size of a volume (K/M/G/T); unlimited if absent',
  'early-warning': 'size of the early-warning zone before the end (default 2% of capacity)',
};

const SINK_TYPES: Record<string, SinkType> = {
  file: {
    params: {
      ...capacityParams,
      readonly: 'write-protect the images (reading only)',
      fsync: 'fsync at every sync point: true (default) or false',
      rate: 'limit writing to this many bytes per second, to simulate a drive',
    },
    make(target, params, uri) {
      if (!target) throw new SinkUriError(uri, 'a path is needed, as in file:/srv/tapes/a-%v.tap');
      return new FileSink({
        path: target,
        capacity: capacityFrom(params, uri),
        readonly: flag(params, 'readonly', false, uri),
        fsync: flag(params, 'fsync', true, uri),
        rate: optionalSize(params, 'rate', uri),
      });
    },
    requires: (target) => [{ path: dirname(volumePath(target, 1)), kind: 'directory', what: "the images' directory" }],
  },
  nst: {
    params: {
      'early-warning': "the drive's early-warning zone (what it takes past early warning), to bound the records in flight",
      'block-size': 'fixed block size in bytes; 0 (default) is variable block mode, one write per record',
      'max-record': 'largest record read back (default 1M)',
      changer: 'command (sh -c) that loads the next cartridge, %d the device, %v the volume; without it an operator loads it',
      'load-timeout': 'seconds to wait for a cartridge (default 3600)',
      readonly: 'open the drive read-only (reading and verifying only)',
    },
    make(target, params, uri, log) {
      if (!target.startsWith('/dev/')) throw new SinkUriError(uri, 'a tape device is needed, as in nst:/dev/nst0');
      if (/\/st\d+$/.test(target)) throw new SinkUriError(uri, `use the non-rewinding device (${target.replace(/\/st(\d+)$/, '/nst$1')})`);
      const timeout = params.get('load-timeout') ?? '3600';
      if (!/^\d+$/.test(timeout)) throw new SinkUriError(uri, `load-timeout must be whole seconds, not '${timeout}'`);
      return new NstSink({
        device: target,
        blockSize: optionalSize(params, 'block-size', uri) ?? 0,
        earlyWarningZone: optionalSize(params, 'early-warning', uri),
        maxRecord: optionalSize(params, 'max-record', uri) ?? 2 ** 20,
        changer: params.get('changer') ?? undefined,
        loadTimeoutMs: Number(timeout) * 1000,
        readonly: flag(params, 'readonly', false, uri),
        ...(log && { log }),
      });
    },
    requires: (target) => [{ path: target, kind: 'char-device', what: 'the tape device' }],
  },
  mem: {
    params: capacityParams,
    make(target, params, uri) {
      return new MemorySink(target || 'tape', capacityFrom(params, uri));
    },
  },
};

export const SINK_URI_HELP = Object.entries(SINK_TYPES)
  .map(([type, t]) => `${type}: ${Object.keys(t.params).join(', ')}`)
  .join('; ');

/**
 * Builds a sink from its URI: `TYPE:TARGET?param=value&flag`, for example
 * `file:/srv/tapes/a-%v.tap?capacity=18T&early-warning=20G`.
 */
export function sinkFromUri(uri: string, log?: SinkLog): Sink {
  const { kind, target, params } = parseSinkUri(uri);
  return kind.make(target, params, uri, log);
}

/** What a sink URI needs on this machine (directories, key files, devices), for checks before start. */
export function sinkRequires(uri: string): RequiredPath[] {
  const { kind, target, params } = parseSinkUri(uri);
  return kind.requires?.(target, params) ?? [];
}

function parseSinkUri(uri: string): { kind: SinkType; target: string; params: URLSearchParams } {
  const colon = uri.indexOf(':');
  const type = colon < 0 ? '' : uri.slice(0, colon);
  const kind = SINK_TYPES[type];
  if (!kind) {
    throw new SinkUriError(uri, `unknown sink type '${type}'; known types: ${Object.keys(SINK_TYPES).join(', ')}`);
  }
  const rest = uri.slice(colon + 1);
  const q = rest.indexOf('?');
  const target = q < 0 ? rest : rest.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
  for (const key of params.keys()) {
    if (!(key in kind.params)) {
      throw new SinkUriError(uri, `unknown parameter '${key}' for ${type}:; known: ${Object.keys(kind.params).join(', ')}`);
    }
  }
  return { kind, target, params };
}

function capacityFrom(params: URLSearchParams, uri: string): Capacity {
  const capacity = optionalSize(params, 'capacity', uri);
  const zone = optionalSize(params, 'early-warning', uri);
  if (capacity === undefined) {
    if (zone !== undefined) throw new SinkUriError(uri, 'early-warning needs a capacity');
    return new Capacity();
  }
  const earlyWarning = zone ?? Math.floor(capacity / 50);
  if (earlyWarning >= capacity) throw new SinkUriError(uri, 'early-warning must be smaller than capacity');
  return new Capacity(capacity, earlyWarning);
}

function optionalSize(params: URLSearchParams, key: string, uri: string): number | undefined {
  const value = params.get(key);
  if (value === null) return undefined;
  try {
    return parseSize(value);
  } catch (err) {
    throw new SinkUriError(uri, `${key}: ${(err as Error).message}`);
  }
}

function flag(params: URLSearchParams, key: string, fallback: boolean, uri: string): boolean {
  const value = params.get(key);
  if (value === null) return fallback;
  if (value === '' || value === 'true' || value === '1' || value === 'yes') return true;
  if (value === 'false' || value === '0' || value === 'no') return false;
  throw new SinkUriError(uri, `${key} must be true or false, not '${value}'`);
}
