import { dirname } from 'node:path';
import { parseSize } from '../config/size.js';
import { isLoopbackHost } from '../address.js';
import { Capacity } from './capacity.js';
import { FileSink, volumePath } from './file-sink.js';
import { GrpcSink, type GrpcSinkOptions } from './grpc-sink.js';
import { MemorySink } from './memory-sink.js';
import { NstSink } from './nst-sink.js';
import { RmtSink } from './rmt-sink.js';
import type { Sink } from './sink.js';
import { STAGE_URI_HELP, StageError, stageOf, wrapInStage } from '../stages/stage-uri.js';

/** How a sink tells the daemon's log what it waits for (cartridges, changers) or what went wrong. */
export type SinkLog = (message: string, fields: Record<string, unknown>, level?: 'info' | 'warn' | 'error') => void;

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

/** The remote shell of rmt sinks: no password prompts, and a dead link is noticed within a minute. */
const DEFAULT_RSH = 'ssh -o BatchMode=yes -o ServerAliveInterval=15 -o ServerAliveCountMax=4';

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
  rmt: {
    params: {
      rsh: `remote shell and its options (default '${DEFAULT_RSH}'; URL-encode spaces as +); 'local' runs the rmt program on this machine`,
      rmt: 'the rmt program on the remote host (default /usr/sbin/rmt)',
      'early-warning': "the remote drive's early-warning zone (what it takes past early warning), to bound the records in flight",
      timeout: 'seconds to wait for a reply before the link counts as cut (default 300; more for a drive that waits for a cartridge)',
    },
    make(target, params, uri, log) {
      const { host, user, path } = remoteTarget(target, uri, 'rmt://[user@]host/dev/nst0');
      if (!path.startsWith('/')) throw new SinkUriError(uri, 'a device path is needed, as in rmt://backup@tapehost/dev/nst0');
      const rsh = params.get('rsh') ?? DEFAULT_RSH;
      if (rsh === 'local' && !isLoopbackHost(host)) throw new SinkUriError(uri, `rsh=local runs rmt on this machine: the host must be localhost, not '${host}'`);
      return new RmtSink({
        host,
        ...(user && { user }),
        device: path,
        ...(rsh !== 'local' && { rsh: rsh.split(/\s+/).filter(Boolean) }),
        rmt: params.get('rmt') ?? '/usr/sbin/rmt',
        earlyWarningZone: optionalSize(params, 'early-warning', uri),
        replyTimeoutMs: seconds(params, 'timeout', 300, uri) * 1000,
        ...(log && { log }),
      });
    },
  },
  grpc: {
    params: {
      ca: "CA certificate (PEM file) that signed the remote daemon's certificate (default: the system's CAs)",
      cert: 'client certificate (PEM file), for a daemon that asks for one; with key=',
      key: "the client certificate's private key (PEM file)",
      'token-file': 'file holding the token the remote daemon expects (never logged)',
      plaintext: 'no TLS: only to a loopback address; plaintext=insecure to any host, on a network you trust',
      'early-warning': "what the remote drive takes past early warning, if smaller than it says itself",
      keepalive: 'seconds between pings: a dead link is noticed within twice this (default 10)',
      timeout: 'seconds a reply may take before the link counts as failed (default 120; more for a remote drive that waits for a cartridge)',
      grace: 'seconds to reconnect and resume after a link failure; 0 fails the copy at once (default 60)',
      records:
        "how records travel: on the remote's record port beside gRPC (default; in gRPC messages when it cannot be reached), grpc: always in gRPC messages, PORT: the record port as this host reaches it (behind a port mapping)",
    },
    make(target, params, uri, log) {
      const { host, port, path } = remoteTarget(target, uri, 'grpc://tapehost:7070/pnst0');
      const drive = path.replace(/^\//, '');
      if (!/^[A-Za-z0-9_.-]+$/.test(drive)) throw new SinkUriError(uri, 'a drive name is needed, as in grpc://tapehost:7070/pnst0');
      const plaintext = params.get('plaintext');
      if (plaintext !== null && !['', 'true', 'insecure'].includes(plaintext)) throw new SinkUriError(uri, `plaintext is a flag, or plaintext=insecure; not '${plaintext}'`);
      if (plaintext !== null && plaintext !== 'insecure' && !isLoopbackHost(host)) {
        throw new SinkUriError(uri, `plaintext to ${host} would send the backup and the token unencrypted: use TLS (ca=...), or plaintext=insecure on a network you trust`);
      }
      const [ca, cert, key] = ['ca', 'cert', 'key'].map((k) => params.get(k) ?? undefined);
      if (plaintext !== null && (ca || cert || key)) throw new SinkUriError(uri, 'ca, cert and key are for TLS: leave them out with plaintext');
      if (!cert !== !key) throw new SinkUriError(uri, 'cert and key go together');
      return new GrpcSink({
        peer: {
          address: `${host}:${port || '7070'}`,
          ...(plaintext === null && { tls: { ca, cert, key } }),
          tokenFile: params.get('token-file') ?? undefined,
          keepaliveMs: seconds(params, 'keepalive', 10, uri) * 1000,
        },
        drive,
        earlyWarningZone: optionalSize(params, 'early-warning', uri),
        replyTimeoutMs: seconds(params, 'timeout', 120, uri) * 1000,
        graceMs: seconds(params, 'grace', 60, uri, { zero: true }) * 1000,
        records: recordsParam(params.get('records'), uri),
        ...(log && { log }),
      });
    },
  },
};

function recordsParam(value: string | null, uri: string): GrpcSinkOptions['records'] {
  if (value === null || value === 'channel') return 'channel';
  if (value === 'grpc') return 'grpc';
  if (/^\d+$/.test(value) && Number(value) > 0 && Number(value) < 65536) return Number(value);
  throw new SinkUriError(uri, `records is channel, grpc or a port number (1-65535); not '${value}'`);
}

export const SINK_URI_HELP = `${Object.entries(SINK_TYPES)
  .map(([type, t]) => `${type}: ${Object.keys(t.params).join(', ')}`)
  .join('; ')}; stages: ${STAGE_URI_HELP}`;

/**
 * Builds a sink from its URI: `TYPE:TARGET?param=value&flag`, for example
 * `file:/srv/tapes/a-%v.tap?capacity=18T&early-warning=20G`; or a stage around one,
 * `STAGE:PARAMS|URI` (daemon/stages/stage-uri.ts).
 */
export function sinkFromUri(uri: string, log?: SinkLog): Sink {
  const stage = stageOf(uri);
  if (stage) {
    try {
      return wrapInStage(stage.spec, sinkFromUri(stage.build, log), log);
    } catch (err) {
      throw err instanceof StageError ? new SinkUriError(uri, err.message) : err;
    }
  }
  const { kind, target, params } = parseSinkUri(uri);
  return kind.make(target, params, uri, log);
}

/** What a sink URI needs on this machine (directories, key files, devices), for checks before start. */
export function sinkRequires(uri: string): RequiredPath[] {
  const stage = stageOf(uri);
  if (stage) return sinkRequires(stage.build); // a stage's own files (key files) are read as it is made
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

/** `//[user@]host[:port]/path` of a remote sink's URI. */
function remoteTarget(target: string, uri: string, example: string): { host: string; port: string; user: string; path: string } {
  let url: URL;
  try {
    url = new URL(`remote:${target}`);
  } catch {
    throw new SinkUriError(uri, `expected ${example}`);
  }
  if (!target.startsWith('//') || !url.hostname) throw new SinkUriError(uri, `a host is needed, as in ${example}`);
  return { host: url.hostname, port: url.port, user: decodeURIComponent(url.username), path: decodeURIComponent(url.pathname) };
}

function seconds(params: URLSearchParams, key: string, fallback: number, uri: string, { zero = false } = {}): number {
  const value = params.get(key);
  if (value === null) return fallback;
  if (!/^\d+(\.\d+)?$/.test(value) || (Number(value) === 0 && !zero)) {
    throw new SinkUriError(uri, `${key} must be a number of seconds${zero ? '' : ' above 0'}, not '${value}'`);
  }
  return Number(value);
}
