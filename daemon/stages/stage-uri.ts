import { KeyError, KeySource } from '../crypto/keys.js';
import { RECORD_OVERHEAD } from '../crypto/record-cipher.js';
import type { Sink } from '../sinks/sink.js';
import type { SinkLog } from '../sinks/sink-uri.js';
import { EncryptStage } from './encrypt-stage.js';

/** A stage's part of a URI is wrong; sinkFromUri reports it as the URI's error. */
export class StageError extends Error {}

/**
 * Stages: sinks that wrap a sink, written `STAGE:PARAMS|URI`, for example
 * `encrypt:keyfile=/etc/tapeproxy/offsite.key|file:/srv/tapes/b-%v.tap`. PARAMS are
 * `key=value&key=value`, URL-encoded as query strings are.
 */
interface StageType {
  /** How it is written, for --help. */
  usage: string;
  params: Record<string, string>;
  /** The wrapped sink's URI as this stage needs it. */
  inner?: (uri: string) => string;
  make(params: URLSearchParams, inner: Sink, log?: SinkLog): Sink;
}

const STAGE_TYPES: Record<string, StageType> = {
  encrypt: {
    usage: 'encrypt:keyfile=PATH|URI or encrypt:keyenv=NAME|URI',
    params: {
      keyfile: 'key file, mode 0600: 32 raw bytes, 64 hex digits, or a passphrase (stretched with scrypt)',
      keyenv: 'environment variable holding 64 hex digits or a passphrase',
    },
    // Records are RECORD_OVERHEAD bytes longer: a real drive reads them back with room for that
    // (nst:'s default max-record is 1M, the drive's default).
    inner: (uri) => (/^nst:/.test(uri) && !/[?&]max-record=/.test(uri) ? `${uri}${uri.includes('?') ? '&' : '?'}max-record=${2 ** 20 + RECORD_OVERHEAD}` : uri),
    make(params, inner, log) {
      const file = params.get('keyfile');
      const env = params.get('keyenv');
      if ((file === null) === (env === null)) throw new StageError('encrypt: needs one of keyfile=PATH or keyenv=NAME');
      try {
        return new EncryptStage(inner, file !== null ? KeySource.fromFile(file) : KeySource.fromEnv(env!), log);
      } catch (err) {
        throw err instanceof KeyError ? new StageError(err.message) : err;
      }
    },
  },
};

export const STAGE_URI_HELP = Object.values(STAGE_TYPES)
  .map((t) => t.usage)
  .join('; ');

/**
 * `uri` is `STAGE:PARAMS|URI` with a known stage (a `|` elsewhere, as in a file name, is not one):
 * its parts, and the URI the wrapped sink is built from.
 */
export function stageOf(uri: string): { spec: string; inner: string; build: string } | undefined {
  const bar = uri.indexOf('|');
  const kind = STAGE_TYPES[uri.slice(0, uri.indexOf(':'))];
  if (bar < 0 || !kind) return undefined;
  const inner = uri.slice(bar + 1);
  return { spec: uri.slice(0, bar), inner, build: kind.inner?.(inner) ?? inner };
}

/** The stage `spec` (`STAGE:PARAMS`) around `inner`; StageError if its parameters are wrong. */
export function wrapInStage(spec: string, inner: Sink, log?: SinkLog): Sink {
  const colon = spec.indexOf(':');
  const type = spec.slice(0, colon);
  const kind = STAGE_TYPES[type]!;
  const params = new URLSearchParams(spec.slice(colon + 1));
  for (const key of params.keys()) {
    if (!(key in kind.params)) throw new StageError(`unknown parameter '${key}' for ${type}:; known: ${Object.keys(kind.params).join(', ')}`);
  }
  return kind.make(params, inner, log);
}

/** The sink at the bottom of a URI's stages (the sink that holds the data). */
export function innermostUri(uri: string): string {
  return layers(uri).inner;
}

/** The stages of a URI, outermost first (`['encrypt']` for `encrypt:...|file:...`). */
export function stageNames(uri: string): string[] {
  return layers(uri).stages;
}

function layers(uri: string): { stages: string[]; inner: string } {
  const stages: string[] = [];
  let rest = uri;
  for (let stage = stageOf(rest); stage; stage = stageOf(rest)) {
    stages.push(stage.spec.slice(0, stage.spec.indexOf(':')));
    rest = stage.inner;
  }
  return { stages, inner: rest };
}

/** Stage parameters written back as a URI's PARAMS: only what must be is escaped (paths stay legible). */
export function stageParams(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%2F/g, '/')}`)
    .join('&');
}
