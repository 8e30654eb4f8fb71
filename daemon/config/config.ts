import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { HASH_NAMES, type HashName } from '../manifest/file-hash.js';
import { sinkFromUri } from '../sinks/sink-uri.js';
import { sinkEntry, stageKeysAt } from '../stages/stage-config.js';
import { parseSize } from './size.js';

/** A configuration the daemon cannot use; the message names the key and what is expected. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const DEFAULTS = {
  listen: '127.0.0.1:7070',
  runtimeDir: process.getuid?.() === 0 ? '/run/tapeproxy' : join(tmpdir(), `tapeproxy-${process.getuid?.() ?? 'user'}`),
  deviceMode: '0660',
  deviceGroup: 'tape',
  maxRecord: '1M',
  window: '16M',
  autoload: true,
  followWriter: true,
  stallTimeout: 120,
  manifestHash: 'blake3',
} as const;

const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  try {
    return parseSize(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/**
 * `HOST:PORT`, `[IPv6]:PORT` or a bare port (on 127.0.0.1: off the loopback only when asked),
 * normalized to HOST:PORT.
 */
const metricsAddress = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(String(value).trim());
  const port = Number(m?.[2]);
  if (!m || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `expected HOST:PORT or PORT, such as 127.0.0.1:9464, not '${value}'` });
    return z.NEVER;
  }
  return `${m[1] ?? '127.0.0.1'}:${port}`;
});

/** The record port: a port number (0: any free one), or off; a number in a string from a flag too. */
export const recordPort = z.union([z.string(), z.number()]).transform((value, ctx): number | 'off' => {
  if (value === 'off') return 'off';
  const port = Number(value);
  if (!/^\d{1,5}$/.test(String(value).trim()) || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `expected a port number (0: any free one) or off, not '${value}'` });
    return z.NEVER;
  }
  return port;
});

const DriveSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, ".", "_" and "-" only'),
    sinks: z.array(sinkEntry).min(1, 'a drive needs at least one sink'),
    'max-record': size.default(parseSize(DEFAULTS.maxRecord)),
    window: size.default(parseSize(DEFAULTS.window)),
    'min-copies': z.number().int().min(1).optional(),
    'stall-timeout': z.number().min(0, 'seconds, 0 or more (0: wait forever)').default(DEFAULTS.stallTimeout),
    autoload: z.boolean().default(DEFAULTS.autoload),
    fuse: z.string().min(1).optional(),
    cuse: z.union([z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a device name such as pnst0'), z.literal(true)]).optional(),
    'device-mode': z.string().regex(/^0?[0-7]{3}$/, 'an octal mode such as 0660').default(DEFAULTS.deviceMode),
    'device-group': z.string().min(1).default(DEFAULTS.deviceGroup),
    manifests: z.boolean().optional(),
    'manifest-hash': z.enum(HASH_NAMES).default(DEFAULTS.manifestHash),
    'follow-writer': z.boolean().default(DEFAULTS.followWriter),
  })
  .strict()
  .refine((d) => !(d.fuse && d.cuse), { message: 'a drive has either a fuse file or a cuse device, not both', path: ['cuse'] });

const TlsSchema = z.object({ cert: z.string().min(1), key: z.string().min(1), 'client-ca': z.string().min(1).optional() }).strict();

const ConfigSchema = z
  .object({
    listen: z.string().default(DEFAULTS.listen),
    tls: TlsSchema.optional(),
    'token-file': z.string().min(1).optional(),
    'allow-plaintext': z.boolean().optional(),
    'runtime-dir': z.string().min(1).default(DEFAULTS.runtimeDir),
    'catalog-dir': z.string().min(1).optional(),
    drives: z.array(DriveSchema).min(1, 'at least one drive is needed'),
    metrics: metricsAddress.optional(),
    'record-port': recordPort.optional(),
  })
  .strict();

export interface DriveConfig {
  name: string;
  sinks: string[];
  maxRecord: number;
  window: number;
  /** Copies that must stay healthy for the writer to go on (default: every sink). */
  minCopies: number;
  /** Milliseconds a copy may make no progress while the writer waits for it (0: forever). */
  stallTimeoutMs: number;
  autoload: boolean;
  /** Kernel-facing front end through cuse-shim: a FUSE file, or a CUSE device /dev/NAME. */
  device?: { kind: 'fuse'; path: string } | { kind: 'cuse'; name: string };
  deviceMode: string;
  deviceGroup: string;
  /** The shim serves reads and writes on the CPU its writer last ran on (cuse-shim/writer-cpu.h). */
  followWriter: boolean;
  /** Record manifests and the catalog (default true). */
  manifests?: boolean;
  /** The hash of the manifests' digests (daemon/manifest/file-hash.ts). */
  manifestHash: HashName;
}

export interface DaemonConfig {
  listen: string;
  /** The gRPC port's TLS: server certificate and key, and the CA client certificates must come from. */
  tls?: { cert: string; key: string; clientCa?: string };
  /** A file holding the bearer token every gRPC call must carry. */
  tokenFile?: string;
  /** Plaintext gRPC on an address other than loopback (a network the user trusts). */
  allowPlaintext?: boolean;
  /** Where the shims' sockets live. */
  runtimeDir: string;
  /** Where the catalog journals live (default: defaultCatalogDir()). */
  catalogDir?: string;
  drives: DriveConfig[];
  /** Where Prometheus metrics are served over HTTP (HOST:PORT); off when absent. */
  metrics?: string;
  /** The record port on the gRPC host (0: any free port; default: the gRPC port + 1), or 'off'. */
  recordPort?: number | 'off';
}

/** FUSE's largest write request, so the largest record through a FUSE file. */
export const FUSE_MAX_RECORD = 2 ** 20;

/** Largest record a drive accepts: SIMH images hold up to 2^28-1, gRPC messages carry 64 MiB here. */
export const MAX_RECORD_LIMIT = 64 * 2 ** 20;

/** Validates a parsed config (from YAML or from flags) and every sink URI in it. */
export function validateConfig(raw: unknown): DaemonConfig {
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${keyPath(i.path)}: ${issueMessage(i)}`).join('\n'));
  }
  const { tls, 'token-file': tokenFile, 'allow-plaintext': allowPlaintext } = parsed.data;
  const config: DaemonConfig = {
    listen: parsed.data.listen,
    ...(tls && { tls: { cert: tls.cert, key: tls.key, ...(tls['client-ca'] && { clientCa: tls['client-ca'] }) } }),
    ...(tokenFile && { tokenFile }),
    ...(allowPlaintext && { allowPlaintext }),
    runtimeDir: parsed.data['runtime-dir'],
    catalogDir: parsed.data['catalog-dir'],
    drives: parsed.data.drives.map((d) => ({
      name: d.name,
      sinks: d.sinks,
      maxRecord: d['max-record'],
      window: d.window,
      minCopies: d['min-copies'] ?? d.sinks.length,
      stallTimeoutMs: d['stall-timeout'] * 1000,
      autoload: d.autoload,
      ...(d.fuse && { device: { kind: 'fuse' as const, path: d.fuse } }),
      ...(d.cuse && { device: { kind: 'cuse' as const, name: d.cuse === true ? d.name : d.cuse } }),
      deviceMode: d['device-mode'],
      deviceGroup: d['device-group'],
      followWriter: d['follow-writer'],
      manifests: d.manifests,
      manifestHash: d['manifest-hash'],
    })),
    ...(parsed.data.metrics && { metrics: parsed.data.metrics }),
    ...(parsed.data['record-port'] !== undefined && { recordPort: parsed.data['record-port'] }),
  };
  const names = new Set<string>();
  config.drives.forEach((drive, i) => {
    if (names.has(drive.name)) throw new ConfigError(`drives[${i}].name: drive '${drive.name}' is defined twice`);
    names.add(drive.name);
    if (drive.maxRecord < 1 || drive.maxRecord > MAX_RECORD_LIMIT) {
      throw new ConfigError(`drives[${i}].max-record: must be between 1 and ${MAX_RECORD_LIMIT} bytes`);
    }
    if (drive.device?.kind === 'fuse' && drive.maxRecord > FUSE_MAX_RECORD) {
      throw new ConfigError(`drives[${i}].max-record: a FUSE file carries records of at most 1M (its max_write)`);
    }
    if (drive.minCopies > drive.sinks.length) {
      throw new ConfigError(`drives[${i}].min-copies: ${drive.minCopies} is more than the drive's ${drive.sinks.length} sinks`);
    }
    if (drive.window < drive.maxRecord) {
      throw new ConfigError(`drives[${i}].window: must hold at least one record of max-record bytes`);
    }
    drive.sinks.forEach((uri, j) => {
      try {
        sinkFromUri(uri);
      } catch (err) {
        throw new ConfigError(`drives[${i}].sinks[${j}]: ${(err as Error).message}`);
      }
    });
  });
  return config;
}

/** A metrics address from a flag: HOST:PORT, or PORT on 127.0.0.1. */
export function parseMetricsAddress(value: string): string {
  const parsed = metricsAddress.safeParse(value);
  if (!parsed.success) throw new ConfigError(parsed.error.issues[0]!.message);
  return parsed.data;
}

export async function loadConfigFile(path: string): Promise<DaemonConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path} is not valid YAML: ${(err as Error).message}`);
  }
  try {
    return validateConfig(raw);
  } catch (err) {
    throw new ConfigError(`${path}: ${(err as Error).message}`);
  }
}

/** An unknown key (a typo, most often) is answered with the keys that are known there. */
function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code !== 'unrecognized_keys') return issue.message;
  const known =
    stageKeysAt(issue.path) ?? Object.keys(issue.path[0] === 'drives' ? DriveSchema.shape : issue.path[0] === 'tls' ? TlsSchema.shape : ConfigSchema.shape);
  const keys = issue.keys.map((k) => `'${k}'`).join(', ');
  return `unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}; known keys here: ${known.join(', ')}`;
}

function keyPath(path: PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
}
